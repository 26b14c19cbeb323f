//! One pooled PostgreSQL connection running the store's statements.

use async_trait::async_trait;
use serde_json::Value;
use sqlx::pool::PoolConnection;
use sqlx::types::Json;
use sqlx::{Postgres, Row};

use crate::backend::{DocRow, Session, Statement};

pub(super) struct PgSession {
    conn: PoolConnection<Postgres>,
    in_transaction: bool,
}

impl PgSession {
    pub(super) fn new(conn: PoolConnection<Postgres>) -> Self {
        Self {
            conn,
            in_transaction: false,
        }
    }
}

#[async_trait]
impl Session for PgSession {
    async fn begin(&mut self) -> Result<(), sqlx::Error> {
        sqlx::query("BEGIN").execute(&mut *self.conn).await?;
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
        let rows = stmt.bound::<Postgres>().fetch_all(&mut *self.conn).await?;
        rows.iter()
            .map(|row| {
                let Json(doc): Json<Value> = row.try_get(2)?;
                Ok(DocRow {
                    id: row.try_get(0)?,
                    version: row.try_get(1)?,
                    doc,
                })
            })
            .collect()
    }

    async fn fetch_i64(&mut self, stmt: &Statement) -> Result<Option<i64>, sqlx::Error> {
        let row = stmt
            .bound::<Postgres>()
            .fetch_optional(&mut *self.conn)
            .await?;
        row.map(|r| r.try_get(0)).transpose()
    }

    async fn execute(&mut self, stmt: &Statement) -> Result<u64, sqlx::Error> {
        Ok(stmt
            .bound::<Postgres>()
            .execute(&mut *self.conn)
            .await?
            .rows_affected())
    }
}

impl Drop for PgSession {
    fn drop(&mut self) {
        if self.in_transaction {
            // Dropped mid-transaction (a cancelled call, a failed commit): close the
            // connection rather than pool it, so the database rolls the work back.
            self.conn.close_on_drop();
        }
    }
}
