//! The resilience benchmark: per-call overhead of each layer and of the whole stack
//! over a direct call, beside tower's own layers and the `tower-resilience` peer.
//!
//! Every variant wraps the same inner service (an `async` echo that is ready at
//! once), so the time measured is the layers' own. Variants are measured in
//! interleaved rounds (one batch of each per round) so drift hits them alike:
//!
//! - `*_overhead_ns`: the median over rounds of a batch's mean time per call, minus
//!   the same figure for the direct call;
//! - `stack_overhead_p99_ns`: calls timed one by one; the p99 of the stack's calls
//!   minus the p99 of the direct calls (the timer's own cost cancels out);
//! - `stack_overhead_contended_ns`: 4 tasks on a multi-thread runtime with one
//!   worker per core, calling through clones of one stack (shared breakers,
//!   bulkheads, balancer and retry budget), minus 4 tasks calling directly.
//!
//! The stack is the Plexus call path without its transport: retry (3 attempts, the
//! default budget) → deadline (1 s) → balancer (power of two choices over 3
//! instances) → per-instance circuit breaker → bulkhead → the service.

use std::hint::black_box;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use plexus_resilience::balance::{Balancer, Instance, Strategy};
use plexus_resilience::{BoxError, Bulkhead, CircuitBreaker, Deadline, Retry, RetryConfig};
use tower::retry::budget::{Budget, TpsBudget};
use tower::{Layer, Service, ServiceExt};

use crate::support::{median, overhead};
use crate::{BenchError, BenchResult, Options, Progress, Report, Unit};

const BENCH: &str = "resilience";
const TASKS: usize = 4;

fn failed(reason: impl ToString) -> BenchError {
    BenchError::failed(BENCH, reason)
}

/// The service every variant wraps: an echo that is ready at once.
#[derive(Clone, Copy, Debug)]
struct Echo;

impl Service<u64> for Echo {
    type Response = u64;
    type Error = std::convert::Infallible;
    type Future = std::future::Ready<Result<u64, Self::Error>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: u64) -> Self::Future {
        std::future::ready(Ok(black_box(req)))
    }
}

/// tower's retry with the policy of tower's own documentation: up to two retries
/// of errors, each withdrawn from a `TpsBudget` that every success deposits into;
/// the ceiling for Plexus's retry (which uses the same budget).
#[derive(Clone, Debug)]
struct TowerAttempts {
    left: usize,
    budget: Arc<TpsBudget>,
}

impl<E> tower::retry::Policy<u64, u64, E> for TowerAttempts {
    type Future = std::future::Ready<()>;

    fn retry(&mut self, _req: &mut u64, result: &mut Result<u64, E>) -> Option<Self::Future> {
        match result {
            Ok(_) => {
                self.budget.deposit();
                None
            }
            Err(_) if self.left > 0 && self.budget.withdraw() => {
                self.left -= 1;
                Some(std::future::ready(()))
            }
            Err(_) => None,
        }
    }

    fn clone_request(&mut self, req: &u64) -> Option<u64> {
        Some(*req)
    }
}

/// How much work a run does.
#[derive(Clone, Copy, Debug)]
struct Plan {
    rounds: usize,
    batch: u64,
    single_calls: usize,
    contended_rounds: usize,
}

impl Plan {
    fn new(options: Options) -> Self {
        if options.quick {
            Self {
                rounds: 40,
                batch: 500,
                single_calls: 20_000,
                contended_rounds: 40,
            }
        } else {
            Self {
                rounds: 400,
                batch: 2_000,
                single_calls: 400_000,
                contended_rounds: 400,
            }
        }
    }
}

/// One call through `service`, its input and output hidden from the optimizer.
#[inline(always)]
async fn call_once<S>(service: &mut S, i: u64) -> Result<(), BenchError>
where
    S: Service<u64, Response = u64>,
    S::Error: Into<BoxError>,
{
    let ready = service.ready().await.map_err(|e| failed(e.into()))?;
    let out = ready
        .call(black_box(i))
        .await
        .map_err(|e| failed(e.into()))?;
    black_box(out);
    Ok(())
}

/// Mean nanoseconds per call over `n` calls.
async fn batch<S>(service: &mut S, n: u64) -> Result<f64, BenchError>
where
    S: Service<u64, Response = u64>,
    S::Error: Into<BoxError>,
{
    let start = Instant::now();
    for i in 0..n {
        call_once(service, i).await?;
    }
    Ok(start.elapsed().as_nanos() as f64 / n as f64)
}

/// Times `n` calls one by one into `histogram` (nanoseconds).
async fn singles<S>(
    service: &mut S,
    n: usize,
    histogram: &mut Histogram<u64>,
) -> Result<(), BenchError>
where
    S: Service<u64, Response = u64>,
    S::Error: Into<BoxError>,
{
    for i in 0..n as u64 {
        let start = Instant::now();
        call_once(service, i).await?;
        histogram.saturating_record(start.elapsed().as_nanos() as u64);
    }
    Ok(())
}

/// Batches of calls on one task, yielding between batches so tasks interleave.
async fn task<S>(mut service: S, plan: Plan) -> Result<Vec<f64>, BenchError>
where
    S: Service<u64, Response = u64> + Send + 'static,
    S::Future: Send,
    S::Error: Into<BoxError>,
{
    let mut means = Vec::with_capacity(plan.contended_rounds);
    for _ in 0..plan.contended_rounds {
        means.push(batch(&mut service, plan.batch).await?);
        tokio::task::yield_now().await;
    }
    Ok(means)
}

/// Runs [`TASKS`] tasks, each with its own clone of `service`, and returns the
/// median of all their batch means.
async fn contended<S>(service: S, plan: Plan) -> Result<f64, BenchError>
where
    S: Service<u64, Response = u64> + Clone + Send + 'static,
    S::Future: Send,
    S::Error: Into<BoxError>,
{
    let handles: Vec<_> = (0..TASKS)
        .map(|_| tokio::spawn(task(service.clone(), plan)))
        .collect();
    let mut all = Vec::new();
    for handle in handles {
        all.extend(handle.await.map_err(failed)??);
    }
    Ok(median(&mut all))
}

fn histogram() -> Result<Histogram<u64>, BenchError> {
    Histogram::new_with_bounds(1, 60_000_000_000, 3).map_err(failed)
}

fn breaker(name: &str) -> Result<CircuitBreaker, BenchError> {
    CircuitBreaker::builder(name)
        .count_window(100)
        .minimum_calls(100)
        .failure_rate_threshold(50.0)
        .build()
        .map_err(failed)
}

/// Runs the resilience benchmark.
pub fn run(options: Options) -> Result<crate::Report, BenchError> {
    let plan = Plan::new(options);
    let progress = Progress::new(options, 4);
    let mut report = Report::new(BENCH, options);

    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .map_err(failed)?;

    // The variants, each over the same echo.
    let mut direct = Echo;
    let mut plexus_breaker = breaker("bench")?.layer(Echo);
    let retry = Retry::new(RetryConfig::default()).map_err(failed)?;
    let mut plexus_retry = retry.layer(Echo);
    let mut tower_retry = tower::retry::RetryLayer::new(TowerAttempts {
        left: 2,
        budget: Arc::new(TpsBudget::default()),
    })
    .layer(Echo);
    let mut plexus_deadline = Deadline::new(Duration::from_secs(1)).layer(Echo);
    let mut tower_timeout = tower::timeout::TimeoutLayer::new(Duration::from_secs(1)).layer(Echo);
    let bulkhead = Bulkhead::builder("bench")
        .max_concurrent(64)
        .build()
        .map_err(failed)?;
    let mut plexus_bulkhead = bulkhead.layer(Echo);
    let balancer = Balancer::new("bench", Strategy::PowerOfTwoChoices);
    for id in ["a", "b", "c"] {
        balancer.insert(Instance::new(id, Echo));
    }
    let mut plexus_balancer = balancer;
    let peer_layer = tower_resilience::circuitbreaker::CircuitBreakerLayer::builder()
        .failure_rate_threshold(0.5)
        .sliding_window_size(100)
        .minimum_number_of_calls(100)
        .build()
        .map_err(failed)?;
    let mut peer_breaker = peer_layer.layer(Echo);
    let stack = |name: &str| -> Result<_, BenchError> {
        let balancer = Balancer::new(name, Strategy::PowerOfTwoChoices);
        for id in ["a", "b", "c"] {
            let breaker = breaker(id)?;
            let bulkhead = Bulkhead::builder(id)
                .max_concurrent(64)
                .build()
                .map_err(failed)?;
            balancer.insert(
                Instance::new(id, breaker.layer(bulkhead.layer(Echo))).watch_breaker(&breaker),
            );
        }
        let retry = Retry::new(RetryConfig::default()).map_err(failed)?;
        Ok(retry.layer(Deadline::new(Duration::from_secs(1)).layer(balancer)))
    };
    let mut plexus_stack = stack("bench")?;

    // 1. Per-layer and whole-stack means, in interleaved rounds.
    progress.step("layers, interleaved rounds");
    let mut samples: [Vec<f64>; 11] = Default::default();
    runtime.block_on(async {
        // Warm up every variant once.
        for round in 0..plan.rounds + 2 {
            let n = plan.batch;
            let means = [
                batch(&mut direct, n).await?,
                batch(&mut plexus_breaker, n).await?,
                batch(&mut peer_breaker, n).await?,
                batch(&mut plexus_retry, n).await?,
                batch(&mut tower_retry, n).await?,
                batch(&mut plexus_deadline, n).await?,
                batch(&mut tower_timeout, n).await?,
                batch(&mut plexus_bulkhead, n).await?,
                batch(&mut plexus_balancer, n).await?,
                batch(&mut plexus_stack, n).await?,
                batch(&mut direct, n).await?,
            ];
            if round >= 2 {
                for (sample, mean) in samples.iter_mut().zip(means) {
                    sample.push(mean);
                }
            }
        }
        Ok::<_, BenchError>(())
    })?;
    progress.done_step();
    let mut medians = samples.map(|mut s| median(&mut s));
    // The direct call was measured twice per round; take the lower median.
    medians[0] = medians[0].min(medians[10]);
    let [
        direct_ns,
        breaker_ns,
        peer_breaker_ns,
        retry_ns,
        tower_retry_ns,
        deadline_ns,
        timeout_ns,
        bulkhead_ns,
        balancer_ns,
        stack_ns,
        _,
    ] = medians;

    // 2. The tail: calls timed one by one.
    progress.step("stack p99, calls timed one by one");
    let (direct_p99, stack_p99) = runtime.block_on(async {
        let mut direct_hist = histogram()?;
        let mut stack_hist = histogram()?;
        let chunk = 1_000.min(plan.single_calls);
        for _ in 0..plan.single_calls / chunk {
            singles(&mut direct, chunk, &mut direct_hist).await?;
            singles(&mut plexus_stack, chunk, &mut stack_hist).await?;
        }
        Ok::<_, BenchError>((
            direct_hist.value_at_quantile(0.99) as f64,
            stack_hist.value_at_quantile(0.99) as f64,
        ))
    })?;
    progress.done_step();

    // 3. Contended: 4 tasks on one worker per core.
    progress.step("stack, 4 tasks");
    let workers = std::thread::available_parallelism().map_or(1, |n| n.get());
    let multi = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(workers)
        .enable_time()
        .build()
        .map_err(failed)?;
    let shared_stack = stack("contended")?;
    let (direct_contended, stack_contended) = multi.block_on(async {
        let mut direct_runs = Vec::new();
        let mut stack_runs = Vec::new();
        for _ in 0..3 {
            direct_runs.push(contended(Echo, plan).await?);
            stack_runs.push(contended(shared_stack.clone(), plan).await?);
        }
        Ok::<_, BenchError>((median(&mut direct_runs), median(&mut stack_runs)))
    })?;
    progress.done_step();
    progress.step("report");

    let ns = |name: &str, value: f64| BenchResult::new(name, Unit::Nanos, value, false);
    let breaker_overhead = overhead(breaker_ns, direct_ns);
    let peer_overhead = overhead(peer_breaker_ns, direct_ns);
    let retry_overhead = overhead(retry_ns, direct_ns);
    let tower_retry_overhead = overhead(tower_retry_ns, direct_ns);
    let deadline_overhead = overhead(deadline_ns, direct_ns);
    let timeout_overhead = overhead(timeout_ns, direct_ns);
    report.results = vec![
        ns("direct_call_ns", (direct_ns * 10.0).round() / 10.0),
        ns("breaker_overhead_ns", breaker_overhead)
            .with_ceiling("tower-resilience circuit breaker", peer_overhead)
            .with_target("< 100 ns, below tower-resilience"),
        ns("retry_overhead_ns", retry_overhead)
            .with_ceiling("tower Retry + TpsBudget", tower_retry_overhead),
        ns("deadline_overhead_ns", deadline_overhead)
            .with_ceiling("tower Timeout", timeout_overhead),
        ns("bulkhead_overhead_ns", overhead(bulkhead_ns, direct_ns)),
        ns("balancer_overhead_ns", overhead(balancer_ns, direct_ns)),
        ns("stack_overhead_ns", overhead(stack_ns, direct_ns)).with_target("< 1000 ns"),
        ns("stack_overhead_p99_ns", overhead(stack_p99, direct_p99)),
        ns(
            "stack_overhead_contended_ns",
            overhead(stack_contended, direct_contended),
        ),
        ns("tower_resilience_breaker_overhead_ns", peer_overhead),
        ns("tower_timeout_overhead_ns", timeout_overhead),
    ];
    progress.done_step();
    progress.finish();
    Ok(report)
}
