//! The family door: `[jobs]` opens the `jobs` service on its SQLite file (or in
//! PostgreSQL with `backend = "postgres"`).

use plexus_jobs::JobsFamily;
use plexus_node::family::{Family, NodeSection};
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_section_opens_the_service() {
    let dir = std::env::temp_dir().join(format!("plexus-jobs-family-{}", std::process::id()));
    let node = NodeSection {
        data_dir: dir.clone(),
        ..NodeSection::default()
    };
    let parts = JobsFamily::default().open(None, &node).await.unwrap();
    let names: Vec<String> = parts
        .services
        .iter()
        .map(|s| s.descriptor().name.to_string())
        .collect();
    assert_eq!(names, ["jobs"]);
    assert!(
        dir.join("plexus.db").exists(),
        "jobs live in the node's SQLite file"
    );

    let off = json!({"enabled": false});
    assert!(
        JobsFamily::default()
            .open(Some(&off), &node)
            .await
            .unwrap()
            .services
            .is_empty()
    );
    let bad = json!({"lease_ms": 1});
    let Err(err) = JobsFamily::default().open(Some(&bad), &node).await else {
        panic!("lease_ms = 1 was accepted");
    };
    assert!(err.to_string().contains("jobs.lease_ms"), "{err}");
}

/// `backend = "postgres"` opens the queue in PostgreSQL, in the schema named.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_section_opens_the_queue_in_postgres() {
    let schema = format!("pj_{}", crate::unique());
    let section = json!({
        "backend": "postgres",
        "postgres_url": crate::postgres::url(),
        "postgres_schema": schema,
        "pool_size": 2,
    });
    let parts = JobsFamily::default()
        .open(Some(&section), &NodeSection::default())
        .await
        .unwrap();
    assert_eq!(parts.services.len(), 1);
    let pool = sqlx::PgPool::connect(&crate::postgres::url())
        .await
        .unwrap();
    let tables: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM information_schema.tables WHERE table_schema = $1",
    )
    .bind(&schema)
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!(
        tables, 4,
        "plexus_jobs, plexus_job_queues, plexus_job_schedules, plexus_job_rates"
    );
    sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
        "DROP SCHEMA \"{schema}\" CASCADE"
    )))
    .execute(&pool)
    .await
    .unwrap();
}

/// `backend = "redis"` keeps the queue on the node's `[redis]` connection (which
/// brings the `redis` health component); without a `[redis]` section the family
/// says which setting is wrong.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_section_opens_the_queue_on_redis() {
    let section = json!({"backend": "redis"});
    let Err(err) = JobsFamily::default()
        .open(Some(&section), &NodeSection::default())
        .await
    else {
        panic!("redis without the redis family opened");
    };
    assert!(err.to_string().contains("jobs.backend"), "{err}");

    let redis = plexus_redis::RedisFamily::new();
    let url = json!({"url": plexus_redis::testing::redis_url(), "key_prefix": plexus_redis::testing::unique_prefix()});
    redis
        .open(Some(&url), &NodeSection::default())
        .await
        .unwrap();
    let parts = JobsFamily::new(redis.slot())
        .open(Some(&section), &NodeSection::default())
        .await
        .unwrap();
    assert_eq!(parts.services.len(), 1);
    assert_eq!(parts.components.len(), 1, "the redis health component");
}
