//! The call path benchmark: what `node.call()` adds over calling the service directly.
//!
//! Both variants call the same in-process echo service with the same small params
//! (`{"text": "hello", "n": 7}`) and a fresh `CallContext`; the direct variant calls
//! `Service::call` on the service itself, the other goes through the whole path:
//! method lookup, the registry snapshot check, the params schema, the deadline, the
//! balancer, the instance breaker, dispatch and the metrics. The echo method is not
//! idempotent, as most methods are, so no retry layer is built for it.
//!
//! - `callpath_overhead_ns` / `callpath_overhead_p99_ns`: calls timed one by one in
//!   interleaved chunks; the p50 (p99) of path calls minus the p50 (p99) of direct
//!   calls, so the timer's own cost cancels out;
//! - `callpath_contended_ns`: 4 tasks on a multi-thread runtime with one worker per
//!   core, all calling through one node; the median batch mean minus the same with
//!   direct calls;
//! - `callpath_calls_per_s`: one task, calls per second through the path, with the
//!   direct calls per second as the ceiling.

use std::hint::black_box;
use std::sync::Arc;
use std::time::Instant;

use hdrhistogram::Histogram;
use plexus_core::{
    CallContext, MethodDescriptor, Service, ServiceDescriptor, ServiceError, async_trait,
};
use plexus_node::Node;
use serde_json::{Value, json};

use crate::support::{median, overhead};
use crate::{BenchError, BenchResult, Options, Progress, Report, Unit};

const BENCH: &str = "callpath";
const TASKS: usize = 4;

fn failed(reason: impl ToString) -> BenchError {
    BenchError::failed(BENCH, reason)
}

/// The echo service: returns its params (the script benchmark calls it too).
pub(crate) struct Echo;

#[async_trait]
impl Service for Echo {
    fn descriptor(&self) -> ServiceDescriptor {
        ServiceDescriptor::new("echo", "bench").with_method(
            MethodDescriptor::new("say").with_params(json!({
                "type": "object",
                "properties": {"text": {"type": "string"}, "n": {"type": "integer"}},
                "required": ["text"],
                "additionalProperties": false
            })),
        )
    }

    async fn call(
        &self,
        _method: &str,
        params: Value,
        _ctx: CallContext,
    ) -> Result<Value, ServiceError> {
        Ok(params)
    }
}

#[derive(Clone, Copy)]
struct Plan {
    rounds: usize,
    batch: u64,
    chunk: usize,
    chunks: usize,
}

impl Plan {
    fn new(options: Options) -> Self {
        if options.quick {
            Self {
                rounds: 20,
                batch: 500,
                chunk: 500,
                chunks: 20,
            }
        } else {
            Self {
                rounds: 200,
                batch: 2_000,
                chunk: 1_000,
                chunks: 300,
            }
        }
    }
}

/// One way of making the call.
#[derive(Clone)]
enum Caller {
    Direct(Arc<Echo>),
    Path(Node),
}

impl Caller {
    #[inline(always)]
    async fn call(&self, params: &Value) -> Result<(), BenchError> {
        let params = black_box(params.clone());
        let out = match self {
            Caller::Direct(echo) => echo
                .call("say", params, CallContext::new())
                .await
                .map_err(failed)?,
            Caller::Path(node) => node
                .call("echo.say", params, CallContext::new())
                .await
                .map_err(failed)?,
        };
        black_box(out);
        Ok(())
    }

    async fn batch(&self, params: &Value, n: u64) -> Result<f64, BenchError> {
        let start = Instant::now();
        for _ in 0..n {
            self.call(params).await?;
        }
        Ok(start.elapsed().as_nanos() as f64 / n as f64)
    }

    async fn singles(
        &self,
        params: &Value,
        n: usize,
        histogram: &mut Histogram<u64>,
    ) -> Result<(), BenchError> {
        for _ in 0..n {
            let start = Instant::now();
            self.call(params).await?;
            histogram.saturating_record(start.elapsed().as_nanos() as u64);
        }
        Ok(())
    }
}

async fn contended(caller: &Caller, params: &Value, plan: Plan) -> Result<f64, BenchError> {
    let handles: Vec<_> = (0..TASKS)
        .map(|_| {
            let caller = caller.clone();
            let params = params.clone();
            tokio::spawn(async move {
                let mut means = Vec::with_capacity(plan.rounds);
                for _ in 0..plan.rounds {
                    means.push(caller.batch(&params, plan.batch).await?);
                    tokio::task::yield_now().await;
                }
                Ok::<_, BenchError>(means)
            })
        })
        .collect();
    let mut all = Vec::new();
    for handle in handles {
        all.extend(handle.await.map_err(failed)??);
    }
    Ok(median(&mut all))
}

async fn node() -> Result<Node, BenchError> {
    Node::builder("bench")
        .service(Arc::new(Echo))
        .start()
        .await
        .map_err(failed)
}

/// Runs the call path benchmark.
pub fn run(options: Options) -> Result<Report, BenchError> {
    let plan = Plan::new(options);
    let progress = Progress::new(options, 4);
    let mut report = Report::new(BENCH, options);
    let params = json!({"text": "hello", "n": 7});

    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .map_err(failed)?;

    progress.step("one task, calls timed one by one");
    let (direct_hist, path_hist, direct_rate, path_rate) = runtime.block_on(async {
        let direct = Caller::Direct(Arc::new(Echo));
        let path = Caller::Path(node().await?);
        // Warm up both.
        direct.batch(&params, plan.batch).await?;
        path.batch(&params, plan.batch).await?;
        let mut direct_hist =
            Histogram::<u64>::new_with_bounds(1, 60_000_000_000, 3).map_err(failed)?;
        let mut path_hist = direct_hist.clone();
        for _ in 0..plan.chunks {
            direct
                .singles(&params, plan.chunk, &mut direct_hist)
                .await?;
            path.singles(&params, plan.chunk, &mut path_hist).await?;
        }
        let mut direct_means = Vec::new();
        let mut path_means = Vec::new();
        for _ in 0..plan.rounds {
            direct_means.push(direct.batch(&params, plan.batch).await?);
            path_means.push(path.batch(&params, plan.batch).await?);
        }
        Ok::<_, BenchError>((
            direct_hist,
            path_hist,
            1e9 / median(&mut direct_means),
            1e9 / median(&mut path_means),
        ))
    })?;
    progress.done_step();

    progress.step("4 tasks, one node");
    let workers = std::thread::available_parallelism().map_or(1, |n| n.get());
    let multi = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(workers)
        .enable_time()
        .build()
        .map_err(failed)?;
    let (direct_contended, path_contended) = multi.block_on(async {
        let direct = Caller::Direct(Arc::new(Echo));
        let path = Caller::Path(node().await?);
        let mut d = Vec::new();
        let mut p = Vec::new();
        for _ in 0..3 {
            d.push(contended(&direct, &params, plan).await?);
            p.push(contended(&path, &params, plan).await?);
        }
        Ok::<_, BenchError>((median(&mut d), median(&mut p)))
    })?;
    progress.done_step();

    progress.step("report");
    let q = |h: &Histogram<u64>, q: f64| h.value_at_quantile(q) as f64;
    let ns = |name: &str, value: f64| BenchResult::new(name, Unit::Nanos, value, false);
    report.results = vec![
        ns(
            "callpath_overhead_ns",
            overhead(q(&path_hist, 0.5), q(&direct_hist, 0.5)),
        )
        .with_target("< 2000 ns"),
        ns(
            "callpath_overhead_p99_ns",
            overhead(q(&path_hist, 0.99), q(&direct_hist, 0.99)),
        ),
        ns(
            "callpath_contended_ns",
            overhead(path_contended, direct_contended),
        ),
        BenchResult::new(
            "callpath_calls_per_s",
            Unit::CallsPerSecond,
            path_rate.round(),
            true,
        )
        .with_ceiling("direct call of the echo service", direct_rate.round()),
        ns("direct_call_ns", q(&direct_hist, 0.5)),
        ns("callpath_call_ns", q(&path_hist, 0.5)),
    ];
    progress.done_step();
    progress.finish();
    Ok(report)
}
