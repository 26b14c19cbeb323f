//! The command-language benchmark: the case pipeline as programs beside the same
//! case operations sent directly, on a node serving JSON-RPC over HTTP with its
//! DataStore on SQLite (and on PostgreSQL when one answers at
//! `PLEXUS_TEST_POSTGRES_URL`), the case service being the shipped example
//! (`examples/python-cases/cases.py`, an external Python service on the node's
//! WebSocket, storing cases in the DataStore).
//!
//! - `dsl_case_ops_c1`, `dsl_case_ops_c20`: case operations per second with 1 and
//!   20 clients, each client cycling through `case.create`, `case.update`,
//!   `case.get` and `case.close` on cases of its own, one operation per program
//!   through `dsl.run` (read, checked against the registry, run through the call
//!   path); the ceiling is the same operations sent directly as JSON-RPC calls,
//!   measured in the same run, rounds interleaved. `_postgres` results are the same
//!   on PostgreSQL. The original pipeline reported 5 operations/s at one client and
//!   35 at twenty.
//! - `dsl_check_us`: µs to read and check a 100-form program against the node's
//!   registry (verbs, schemas, scopes), schemas already compiled.
//!
//! It needs `python3` with the `websockets` package
//! (`pip install -r examples/python-cases/requirements.txt`) and the example's
//! script: found beside the source tree it was built from, or at
//! `PLEXUS_CASES_SCRIPT`.

use std::path::PathBuf;
use std::process::Stdio;
use std::time::{Duration, Instant};

use plexus_app::App;
use plexus_dsl::{Catalog, Checker, Limits, SchemaCache, check, parse};
use serde_json::{Value, json};

use crate::support::median;
use crate::{BenchError, BenchResult, Options, Progress, Report, Unit};

const BENCH: &str = "dsl";

fn failed(reason: impl ToString) -> BenchError {
    BenchError::failed(BENCH, reason)
}

/// How long the case service may take to register.
const REGISTER_WITHIN: Duration = Duration::from_secs(30);

/// A served node with the case service registered, and a way to stop both.
struct Served {
    url: String,
    catalog: Catalog,
    cases: tokio::process::Child,
    stop: tokio::sync::oneshot::Sender<()>,
    served: tokio::task::JoinHandle<()>,
    dir: std::path::PathBuf,
}

/// The case service's script.
fn cases_script() -> Result<PathBuf, BenchError> {
    let script = std::env::var_os("PLEXUS_CASES_SCRIPT").map_or_else(
        || PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../examples/python-cases/cases.py"),
        PathBuf::from,
    );
    if script.is_file() {
        Ok(script)
    } else {
        Err(failed(format!(
            "the case service's script is not at {}: run from a checkout of Plexus, or set \
             PLEXUS_CASES_SCRIPT to examples/python-cases/cases.py",
            script.display()
        )))
    }
}

async fn start(name: &str, store: &str) -> Result<Served, BenchError> {
    let dir = std::env::temp_dir().join(format!("plexus-bench-dsl-{name}-{}", std::process::id()));
    let toml = format!(
        "[node]\ndata_dir = \"{}\"\n[gateway]\nbind = \"127.0.0.1:0\"\n{store}",
        dir.display()
    );
    let app = App::builder().toml(toml).start().await.map_err(failed)?;
    let catalog = Catalog::of(app.node().registry(), &SchemaCache::new(1024));
    let node = app.node().clone();
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
    let cases = tokio::process::Command::new("python3")
        .arg(cases_script()?)
        .env("PLEXUS_URL", format!("ws://{addr}/ws"))
        .env("CASES_INSTANCE", format!("bench-cases-{name}"))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| failed(format!("python3 does not start ({e}): install Python 3")))?;
    let service = "case".into();
    let registered =
        tokio::time::timeout(REGISTER_WITHIN, node.registry().until_routable(&service, 1));
    if registered.await.is_err() {
        return Err(failed(format!(
            "the case service did not register within {REGISTER_WITHIN:?}: does python3 have \
             `websockets`? (pip install -r examples/python-cases/requirements.txt)"
        )));
    }
    Ok(Served {
        url: format!("http://{addr}/rpc"),
        catalog,
        cases,
        stop,
        served,
        dir,
    })
}

impl Served {
    async fn stop(mut self) {
        let _ = self.cases.kill().await;
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

/// The `i`th case operation of `client` in round `round`: a cycle of create,
/// update, get and close on a case of its own, as a one-form program or as the
/// direct call.
fn case_op(via_dsl: bool, round: usize, client: usize, i: u32) -> (&'static str, Value) {
    let id = format!("C-{round}-{}-{client}-{}", u8::from(via_dsl), i / 4);
    let (verb, params) = match i % 4 {
        0 => (
            "case.create",
            json!({"case-id": id, "case-type": "kyc", "client": "ACME"}),
        ),
        1 => (
            "case.update",
            json!({"case-id": id, "details": {"risk": "low"}, "note": "documents received"}),
        ),
        2 => ("case.get", json!({"case-id": id})),
        _ => (
            "case.close",
            json!({"case-id": id, "resolution": "approved"}),
        ),
    };
    if !via_dsl {
        return (verb, params);
    }
    let args: Vec<String> = params
        .as_object()
        .into_iter()
        .flatten()
        .map(|(k, v)| format!(":{k} {}", dsl_value(v)))
        .collect();
    (
        "dsl.run",
        json!({"source": format!("({verb} {})", args.join(" "))}),
    )
}

/// `value` written in the command language (strings and flat maps of strings).
fn dsl_value(value: &Value) -> String {
    match value {
        Value::Object(map) => {
            let pairs: Vec<String> = map
                .iter()
                .map(|(k, v)| format!(":{k} {}", dsl_value(v)))
                .collect();
            format!("{{{}}}", pairs.join(" "))
        }
        other => other.to_string(),
    }
}

/// Operations per second with `clients` clients doing `per_client` operations each.
async fn round(
    url: &str,
    via_dsl: bool,
    number: usize,
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
                let (method, params) = case_op(via_dsl, number, client, i);
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
    // Rounds are numbered apart per client count, so every case id is new.
    let number = |r: usize| clients * 1_000 + r;
    round(&served.url, true, number(0), clients, per_client).await?;
    round(&served.url, false, number(0), clients, per_client).await?;
    for r in 1..=rounds {
        dsl.push(round(&served.url, true, number(r), clients, per_client).await?);
        direct.push(round(&served.url, false, number(r), clients, per_client).await?);
    }
    let r = |v: f64| v.round();
    Ok(BenchResult::new(
        &format!("dsl_case_ops_c{clients}{suffix}"),
        Unit::OpsPerSecond,
        r(median(&mut dsl)),
        true,
    )
    .with_ceiling(
        "the same case operations sent directly as JSON-RPC calls",
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
