//! The script benchmark: what running a script through the `script` service costs.
//!
//! - `script_run_noop`: µs per `script.run` of a trivial script (`40 + 2`) through
//!   the node's call path, fresh engine and scope included, the hop to a pool
//!   thread and back included; the ceiling is the same compiled script evaluated by
//!   a bare rhai engine, reused, on the calling thread.
//! - `script_call_echo`: µs per `script.run` of a script making one
//!   `call("echo.say", #{text: "hello"})`; the ceiling is the same `echo.say` call
//!   made directly through the call path.
//!
//! Every figure is the median of batch means, one caller at a time, on a runtime
//! with one worker per core; the variants interleave batch by batch.

use std::hint::black_box;
use std::sync::Arc;
use std::time::Instant;

use plexus_core::CallContext;
use plexus_node::Node;
use plexus_script::{ScriptConfig, ScriptEngine, ScriptMetrics, ScriptService};
use serde_json::{Value, json};

use crate::callpath::Echo;
use crate::support::median;
use crate::{BenchError, BenchResult, Options, Progress, Report, Unit};

const BENCH: &str = "script";
const NOOP: &str = "40 + 2";
const CALL_ECHO: &str = "call(\"echo.say\", #{text: \"hello\"})";

fn failed(reason: impl ToString) -> BenchError {
    BenchError::failed(BENCH, reason)
}

#[derive(Clone, Copy)]
struct Plan {
    rounds: usize,
    batch: u32,
}

impl Plan {
    fn new(options: Options) -> Self {
        if options.quick {
            Self {
                rounds: 5,
                batch: 20,
            }
        } else {
            Self {
                rounds: 50,
                batch: 200,
            }
        }
    }
}

/// A node with the `script` and `echo` services.
async fn node() -> Result<Node, BenchError> {
    let engine =
        ScriptEngine::new(ScriptConfig::default(), ScriptMetrics::new()).map_err(failed)?;
    let service = ScriptService::new(engine);
    let node = Node::builder("bench")
        .service(Arc::new(service.clone()))
        .service(Arc::new(Echo))
        .start()
        .await
        .map_err(failed)?;
    service.attach(&node);
    Ok(node)
}

/// µs per call of `method` with `params`, over one batch.
async fn batch(node: &Node, method: &str, params: &Value, n: u32) -> Result<f64, BenchError> {
    let start = Instant::now();
    for _ in 0..n {
        let out = node
            .call(method, black_box(params.clone()), CallContext::new())
            .await
            .map_err(failed)?;
        black_box(out);
    }
    Ok(start.elapsed().as_secs_f64() * 1e6 / f64::from(n))
}

/// µs per evaluation of the compiled `source` by a bare rhai engine, over one batch.
fn bare(engine: &rhai::Engine, ast: &rhai::AST, n: u32) -> Result<f64, BenchError> {
    let start = Instant::now();
    for _ in 0..n {
        let out = engine
            .eval_ast::<rhai::Dynamic>(black_box(ast))
            .map_err(failed)?;
        drop(black_box(out));
    }
    Ok(start.elapsed().as_secs_f64() * 1e6 / f64::from(n))
}

/// Runs the script benchmark.
pub fn run(options: Options) -> Result<Report, BenchError> {
    let plan = Plan::new(options);
    let progress = Progress::new(options, 3);
    let mut report = Report::new(BENCH, options);
    let workers = std::thread::available_parallelism().map_or(1, |n| n.get());
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(workers)
        .enable_time()
        .build()
        .map_err(failed)?;
    let node = runtime.block_on(node())?;
    let noop = json!({"source": NOOP});
    let call_echo = json!({"source": CALL_ECHO});
    let echo = json!({"text": "hello"});
    let bare_engine = rhai::Engine::new_raw();
    let noop_ast = bare_engine.compile(NOOP).map_err(failed)?;

    progress.step("script_run_noop");
    let (mut run_noop, mut bare_noop) = (Vec::new(), Vec::new());
    runtime.block_on(async {
        batch(&node, "script.run", &noop, plan.batch).await?;
        for _ in 0..plan.rounds {
            run_noop.push(batch(&node, "script.run", &noop, plan.batch).await?);
            bare_noop.push(bare(&bare_engine, &noop_ast, plan.batch)?);
        }
        Ok::<_, BenchError>(())
    })?;
    progress.done_step();

    progress.step("script_call_echo");
    let (mut run_echo, mut direct_echo) = (Vec::new(), Vec::new());
    runtime.block_on(async {
        batch(&node, "script.run", &call_echo, plan.batch).await?;
        for _ in 0..plan.rounds {
            run_echo.push(batch(&node, "script.run", &call_echo, plan.batch).await?);
            direct_echo.push(batch(&node, "echo.say", &echo, plan.batch).await?);
        }
        Ok::<_, BenchError>(())
    })?;
    progress.done_step();

    progress.step("report");
    let us = |name: &str, value: f64| {
        BenchResult::new(name, Unit::Micros, (value * 100.0).round() / 100.0, false)
    };
    let round = |v: f64| (v * 100.0).round() / 100.0;
    report.results = vec![
        us("script_run_noop", median(&mut run_noop)).with_ceiling(
            "the same compiled script on a bare rhai engine, reused, on the calling thread",
            round(median(&mut bare_noop)),
        ),
        us("script_call_echo", median(&mut run_echo)).with_ceiling(
            "the same echo.say call made directly through the call path",
            round(median(&mut direct_echo)),
        ),
    ];
    progress.done_step();
    progress.finish();
    drop(node);
    Ok(report)
}
