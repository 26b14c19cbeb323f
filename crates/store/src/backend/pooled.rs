//! A [`Backend`] on an sqlx pool, written once for any sqlx database: opening and
//! migrating the pool, handing out sessions, and the session that runs the store's
//! statements on one pooled connection. What really differs between engines (the
//! dialect, how a write transaction opens, how the document column decodes) each
//! backend's folder states through [`SqlxBackend`].

use async_trait::async_trait;
use futures::TryStreamExt;
use serde_json::Value;
use sqlx::migrate::{Migrate, Migrator};
use sqlx::pool::{PoolConnection, PoolOptions};
use sqlx::{
    ColumnIndex, Connection, Database, Decode, Encode, Executor, IntoArguments, Pool, Row, Type,
};

use crate::backend::{Backend, Budget, Dialect, DocRow, PoolState, Session, Statement};
use crate::error::connect_error;
use crate::{BackendKind, StoreConfig, StoreError};

/// An engine's backend on an sqlx pool: implementing this is implementing [`Backend`].
pub(crate) trait SqlxBackend: Send + Sync + 'static {
    /// The sqlx database.
    type Db: Database;
    /// Which engine.
    const KIND: BackendKind;
    /// How the engine spells the SQL that differs.
    const DIALECT: &'static dyn Dialect;
    /// The statement that opens a write transaction.
    const BEGIN: &'static str;
    /// The pool.
    fn pool(&self) -> &Pool<Self::Db>;
    /// The document in the third column (`SELECT id, version, doc`) of a row.
    fn doc(row: &<Self::Db as Database>::Row) -> Result<Value, sqlx::Error>;
    /// The rows a statement affected.
    fn rows_affected(done: &<Self::Db as Database>::QueryResult) -> u64;
}

/// Opens a pool with the bounds `config` sets, on connections made with `options`.
///
/// The pool's own acquire timeout is the *connect* timeout: the [`Store`](crate::Store)
/// hands out at most `max_connections` sessions (waiting up to `acquire_timeout_ms`
/// for one to come back under load), so a session never waits in the pool for a
/// connection another holds, and any time the pool takes is spent opening a
/// connection or testing an idle one: past `connect_timeout_ms`, the database does
/// not answer.
pub(crate) async fn connect<DB: Database>(
    config: &StoreConfig,
    options: <DB::Connection as Connection>::Options,
) -> Result<Pool<DB>, StoreError> {
    PoolOptions::<DB>::new()
        .max_connections(config.max_connections)
        .min_connections(config.min_connections)
        .acquire_timeout(config.connect_timeout())
        .idle_timeout(config.idle_timeout_ms.map(std::time::Duration::from_millis))
        .connect_with(options)
        .await
        .map_err(connect_error)
}

/// Runs the migrations the pool's engine has not run yet.
pub(crate) async fn migrate<DB>(migrator: &Migrator, pool: &Pool<DB>) -> Result<(), StoreError>
where
    DB: Database,
    DB::Connection: Migrate,
{
    migrator.run(pool).await.map_err(|e| StoreError::Backend {
        reason: format!("migrations failed: {e}"),
    })
}

#[async_trait]
impl<B> Backend for B
where
    B: SqlxBackend,
    PooledSession<B>: Session,
{
    fn kind(&self) -> BackendKind {
        B::KIND
    }

    fn dialect(&self) -> &'static dyn Dialect {
        B::DIALECT
    }

    async fn acquire(&self) -> Result<Box<dyn Session>, sqlx::Error> {
        let conn = self.pool().acquire().await?;
        Ok(Box::new(PooledSession::<B> {
            conn,
            in_transaction: false,
        }))
    }

    fn pool_state(&self) -> PoolState {
        let pool = self.pool();
        PoolState {
            size: pool.size(),
            idle: u32::try_from(pool.num_idle()).unwrap_or(u32::MAX),
        }
    }

    async fn close(&self) {
        self.pool().close().await;
    }
}

/// One pooled connection of backend `B` running the store's statements.
pub(crate) struct PooledSession<B: SqlxBackend> {
    conn: PoolConnection<B::Db>,
    in_transaction: bool,
}

#[async_trait]
impl<B> Session for PooledSession<B>
where
    B: SqlxBackend,
    // What sqlx needs to run a statement on the connection, bind the store's
    // parameters, and read `id, version` and counts back.
    for<'c> &'c mut <B::Db as Database>::Connection: Executor<'c, Database = B::Db>,
    <B::Db as Database>::Arguments: IntoArguments<B::Db>,
    for<'t> &'t str: Encode<'t, B::Db> + Type<B::Db>,
    for<'t> i64: Encode<'t, B::Db> + Decode<'t, B::Db> + Type<B::Db>,
    for<'t> f64: Encode<'t, B::Db> + Type<B::Db>,
    for<'t> Option<&'t str>: Encode<'t, B::Db> + Type<B::Db>,
    for<'r> String: Decode<'r, B::Db> + Type<B::Db>,
    usize: ColumnIndex<<B::Db as Database>::Row>,
{
    async fn begin(&mut self) -> Result<(), sqlx::Error> {
        sqlx::query(B::BEGIN).execute(&mut *self.conn).await?;
        self.in_transaction = true;
        Ok(())
    }

    async fn commit(&mut self) -> Result<(), sqlx::Error> {
        // On failure the transaction may still be open: it stays marked, so dropping
        // the session closes the connection instead of pooling it.
        sqlx::query("COMMIT").execute(&mut *self.conn).await?;
        self.in_transaction = false;
        Ok(())
    }

    async fn rollback(&mut self) -> Result<(), sqlx::Error> {
        sqlx::query("ROLLBACK").execute(&mut *self.conn).await?;
        self.in_transaction = false;
        Ok(())
    }

    async fn fetch_docs(&mut self, stmt: &Statement) -> Result<Vec<DocRow>, sqlx::Error> {
        let rows = stmt.bound::<B::Db>().fetch_all(&mut *self.conn).await?;
        rows.iter()
            .map(|row| {
                Ok(DocRow {
                    id: row.try_get(0)?,
                    version: row.try_get(1)?,
                    doc: B::doc(row)?,
                })
            })
            .collect()
    }

    async fn fetch_docs_within(
        &mut self,
        stmt: &Statement,
        max_bytes: usize,
    ) -> Result<(Vec<DocRow>, bool), sqlx::Error> {
        // Rows are read one at a time and reading stops at the budget, so a query of
        // large documents holds at most the budget and one document.
        let mut rows = Vec::new();
        let mut budget = Budget::new(max_bytes);
        let mut stream = stmt.bound::<B::Db>().fetch(&mut *self.conn);
        while let Some(row) = stream.try_next().await? {
            let doc = B::doc(&row)?;
            if !budget.admit(&doc) {
                return Ok((rows, true));
            }
            rows.push(DocRow {
                id: row.try_get(0)?,
                version: row.try_get(1)?,
                doc,
            });
        }
        Ok((rows, false))
    }

    async fn fetch_i64(&mut self, stmt: &Statement) -> Result<Option<i64>, sqlx::Error> {
        let row = stmt
            .bound::<B::Db>()
            .fetch_optional(&mut *self.conn)
            .await?;
        row.map(|r| r.try_get(0)).transpose()
    }

    async fn execute(&mut self, stmt: &Statement) -> Result<u64, sqlx::Error> {
        let done = stmt.bound::<B::Db>().execute(&mut *self.conn).await?;
        Ok(B::rows_affected(&done))
    }
}

impl<B: SqlxBackend> Drop for PooledSession<B> {
    fn drop(&mut self) {
        if self.in_transaction {
            // Dropped mid-transaction (a cancelled call, a failed commit): close the
            // connection rather than pool it, so the database rolls the work back.
            self.conn.close_on_drop();
        }
    }
}
