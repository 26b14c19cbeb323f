//! The command-language benchmark: what a program costs beside the same calls sent
//! directly, on a node serving JSON-RPC over HTTP with its DataStore on SQLite (and
//! on PostgreSQL when one answers at `PLEXUS_TEST_POSTGRES_URL`).
//!
//! - `dsl_case_ops_c1`, `dsl_case_ops_c20`: case operations per second (one
//!   operation: a case document written with `datastore.put`) as one-form programs
//!   through `dsl.run` (read, checked against the registry, run through the call
//!   path), with 1 and 20 clients; the ceiling is the same `datastore.put` sent
//!   directly as a JSON-RPC call, measured in the same run, interleaved round by
//!   round. `_postgres` results are the same on PostgreSQL.
//! - `dsl_check_us`: µs to read and check a 100-form program against the node's
//!   registry (verbs, schemas, scopes), schemas already compiled.

use std::time::Instant;

use plexus_app::App;
use plexus_dsl::{Catalog, Checker, Limits, SchemaCache, check, parse};
use serde_json::{Value, json};

use crate::support::median;
use crate::{BenchError, BenchResult, Options, Progress, Report, Unit};

const BENCH: &str = "dsl";

fn failed(reason: impl ToString) -> BenchError {
    BenchError::failed(BENCH, reason)
}

/// A served node and a way to stop it.
struct Served {
    url: String,
    catalog: Catalog,
    stop: tokio::sync::oneshot::Sender<()>,
    served: tokio::task::JoinHandle<()>,
    dir: std::path::PathBuf,
}

async fn start(name: &str, store: &str) -> Result<Served, BenchError> {
    let dir = std::env::temp_dir().join(format!("plexus-bench-dsl-{name}-{}", std::process::id()));
    let toml = format!(
        "[node]\ndata_dir = \"{}\"\n[gateway]\nbind = \"127.0.0.1:0\"\n{store}",
        dir.display()
    );
    let app = App::builder().toml(toml).start().await.map_err(failed)?;
    let catalog = Catalog::of(app.node().registry(), &SchemaCache::new(1024));
    let listening = app.listen().await.map_err(failed)?;
    let addr = listening.local_addr().map_err(failed)?;
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let served = tokio::spawn(async move {
        let _ = app
            .serve(listening, async {
                let _ = stopped.await;
            })
            .await;
    });
    let served = Served {
        url: format!("http://{addr}/rpc"),
        catalog,
        stop,
        served,
        dir,
    };
    let http = reqwest::Client::new();
    call(
        &http,
        &served.url,
        "datastore.create_collection",
        json!({"name": "cases"}),
    )
    .await?;
    Ok(served)
}

impl Served {
    async fn stop(self) {
        let _ = self.stop.send(());
        let _ = self.served.await;
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// One JSON-RPC call; an error answer fails the run.
async fn call(
    http: &reqwest::Client,
    url: &str,
    method: &str,
    params: Value,
) -> Result<Value, BenchError> {
    let body = json!({"jsonrpc": "2.0", "id": 1, "method": method, "params": params});
    let bytes = http
        .post(url)
        .header("content-type", "application/json")
        .body(body.to_string())
        .send()
        .await
        .map_err(failed)?
        .bytes()
        .await
        .map_err(failed)?;
    let mut answer: Value = serde_json::from_slice(&bytes).map_err(failed)?;
    match answer.get("error") {
        Some(e) => Err(failed(format!("{method}: {e}"))),
        None => Ok(answer["result"].take()),
    }
}

/// One case write, as a program or as the direct call.
fn case_op(via_dsl: bool, client: usize, i: u32) -> (&'static str, Value) {
    let id = format!("C-{client}-{i}");
    if via_dsl {
        let source = format!(
            "(datastore.put :collection \"cases\" :id \"{id}\" :doc {{:case_type \"kyc\" :state \"open\" :n {i}}})"
        );
        ("dsl.run", json!({"source": source}))
    } else {
        let params = json!({"collection": "cases", "id": id,
                            "doc": {"case_type": "kyc", "state": "open", "n": i}});
        ("datastore.put", params)
    }
}

/// Operations per second with `clients` clients doing `per_client` operations each.
async fn round(
    url: &str,
    via_dsl: bool,
    clients: usize,
    per_client: u32,
) -> Result<f64, BenchError> {
    let started = Instant::now();
    let mut tasks = Vec::with_capacity(clients);
    for client in 0..clients {
        let url = url.to_owned();
        tasks.push(tokio::spawn(async move {
            let http = reqwest::Client::new();
            for i in 0..per_client {
                let (method, params) = case_op(via_dsl, client, i);
                call(&http, &url, method, params).await?;
            }
            Ok::<_, BenchError>(())
        }));
    }
    for task in tasks {
        task.await.map_err(failed)??;
    }
    let ops = f64::from(per_client) * clients as f64;
    Ok(ops / started.elapsed().as_secs_f64())
}

/// `dsl_case_ops_c{clients}{suffix}` beside the direct calls.
async fn case_ops(
    served: &Served,
    clients: usize,
    rounds: usize,
    per_client: u32,
    suffix: &str,
) -> Result<BenchResult, BenchError> {
    let (mut dsl, mut direct) = (Vec::new(), Vec::new());
    round(&served.url, true, clients, per_client).await?;
    for _ in 0..rounds {
        dsl.push(round(&served.url, true, clients, per_client).await?);
        direct.push(round(&served.url, false, clients, per_client).await?);
    }
    let r = |v: f64| v.round();
    Ok(BenchResult::new(
        &format!("dsl_case_ops_c{clients}{suffix}"),
        Unit::OpsPerSecond,
        r(median(&mut dsl)),
        true,
    )
    .with_ceiling(
        "the same datastore.put sent directly as a JSON-RPC call",
        r(median(&mut direct)),
    ))
}

/// µs to read and check a 100-form program.
fn check_us(catalog: &Catalog, rounds: usize) -> Result<f64, BenchError> {
    let source: String = (0..100)
        .map(|i| format!("(datastore.put :collection \"cases\" :id \"C-{i}\" :doc {{:case_type \"kyc\" :n {i}}})\n"))
        .collect();
    let checker = Checker {
        catalog,
        scopes: None,
        max_calls: 1000,
    };
    let mut samples = Vec::with_capacity(rounds);
    for _ in 0..rounds {
        let started = Instant::now();
        let program = parse(&source, Limits::default()).map_err(|d| failed(d.message))?;
        let problems = check(&program, checker);
        if !problems.is_empty() {
            return Err(failed(format!("{problems:?}")));
        }
        samples.push(started.elapsed().as_secs_f64() * 1e6);
    }
    Ok(median(&mut samples))
}

/// Runs the command-language benchmark.
pub fn run(options: Options) -> Result<Report, BenchError> {
    let (rounds, per_client) = if options.quick { (2, 10) } else { (5, 100) };
    let progress = Progress::new(options, 3);
    let mut report = Report::new(BENCH, options);
    let workers = std::thread::available_parallelism().map_or(1, |n| n.get());
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(workers)
        .enable_all()
        .build()
        .map_err(failed)?;
    runtime.block_on(async {
        progress.step("sqlite");
        let sqlite = start("sqlite", "").await?;
        report
            .results
            .push(case_ops(&sqlite, 1, rounds, per_client, "").await?);
        report
            .results
            .push(case_ops(&sqlite, 20, rounds, per_client / 5, "").await?);
        let us = check_us(&sqlite.catalog, if options.quick { 20 } else { 200 })?;
        report.results.push(BenchResult::new(
            "dsl_check_us",
            Unit::Micros,
            (us * 100.0).round() / 100.0,
            false,
        ));
        sqlite.stop().await;
        progress.done_step();

        progress.step("postgres");
        let url = std::env::var("PLEXUS_TEST_POSTGRES_URL")
            .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".to_owned());
        let schema = format!("bench_dsl_{}", std::process::id());
        let store = format!("[store]\nurl = \"{url}\"\nschema = \"{schema}\"\n");
        if let Ok(pg) = start("postgres", &store).await {
            report
                .results
                .push(case_ops(&pg, 1, rounds, per_client, "_postgres").await?);
            report
                .results
                .push(case_ops(&pg, 20, rounds, per_client / 5, "_postgres").await?);
            pg.stop().await;
        }
        progress.done_step();
        Ok::<_, BenchError>(())
    })?;
    progress.step("report");
    progress.done_step();
    progress.finish();
    Ok(report)
}
