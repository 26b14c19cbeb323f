//! The inference benchmark: what a chat completion through Plexus adds over the
//! same request sent straight to the provider.
//!
//! A fake OpenAI-compatible provider (`plexus_inference::testing`, a real HTTP
//! server on loopback) answers; 16 concurrent clients send the same chat request
//! through the gateway's `POST /v1/chat/completions` (gateway, engine, breaker,
//! accounting, the provider call) and straight to the fake, rounds of each
//! interleaved, every request timed from send to the last byte of the answer.
//!
//! - `inference_overhead_p50_us`, `inference_overhead_p99_us`: the answered
//!   request's latency through Plexus minus the direct one, at the same quantile.
//! - `inference_stream_overhead_p50_us`, `inference_stream_overhead_p99_us`: the
//!   same for a streamed answer (SSE, read to its end).
//! - `inference_p99_us`, `inference_stream_p99_us`: the latency through Plexus,
//!   beside the direct latency as the ceiling.
//! - `inference_overhead_paced_p50_us`, `inference_overhead_paced_p99_us`: the
//!   answered request's overhead again with the fake answering after
//!   [`PACE_MS`] ms, as a fast real provider does. With an instant fake the 16
//!   clients keep both cores busy and the figures above are mostly queueing for the
//!   CPU (a request through Plexus is two HTTP exchanges on the same cores); paced,
//!   the cores have room and the difference is what Plexus itself adds. Both are
//!   reported: neither hides the other.
//!
//! The response cache is not involved (the requests do not set `temperature: 0`).

use std::sync::Arc;
use std::time::Instant;

use hdrhistogram::Histogram;
use plexus_gateway::{Gateway, GatewayConfig};
use plexus_inference::testing::{Behaviour, FakeProvider, Wire};
use plexus_inference::{Inference, InferenceConfig, InferenceMetrics, InferenceService};
use plexus_node::Node;
use serde_json::{Value, json};

use crate::{BenchError, BenchResult, Options, Progress, Report, Unit};

const BENCH: &str = "inference";
/// Concurrent clients.
const CLIENTS: usize = 16;
/// How long the paced fake takes to answer.
const PACE_MS: u64 = 20;

fn failed(reason: impl ToString) -> BenchError {
    BenchError::failed(BENCH, reason)
}

#[derive(Clone, Copy)]
struct Plan {
    rounds: usize,
    per_client: usize,
}

impl Plan {
    fn new(options: Options) -> Self {
        if options.quick {
            Self {
                rounds: 2,
                per_client: 10,
            }
        } else {
            Self {
                rounds: 6,
                per_client: 100,
            }
        }
    }
}

/// The fake, and a node serving the engine over a gateway on loopback; the two
/// URLs of `/v1/chat/completions`.
struct Setup {
    fake: FakeProvider,
    node: Node,
    stop: tokio::sync::oneshot::Sender<()>,
    direct: String,
    plexus: String,
}

async fn setup() -> Result<Setup, BenchError> {
    let fake = FakeProvider::start(Wire::OpenAi).await.map_err(failed)?;
    let config: InferenceConfig = serde_json::from_value(json!({
        "providers": {"fake": {"kind": "openai", "base_url": fake.base_url()}},
        "models": {"bench": [{"provider": "fake", "model": "tiny"}]},
        "prices": {"tiny": {"input_per_mtok": 1.0, "output_per_mtok": 2.0}},
        "spend_queue": 1_000_000,
    }))
    .map_err(failed)?;
    let engine = Inference::new(config, InferenceMetrics::new()).map_err(failed)?;
    let node = Node::builder("bench")
        .service(Arc::new(InferenceService::new(engine.clone())))
        .start()
        .await
        .map_err(failed)?;
    engine.attach(&node);
    let gateway = Gateway::builder(node.clone())
        .config(GatewayConfig {
            bind: ([127, 0, 0, 1], 0).into(),
            ..GatewayConfig::default()
        })
        .merge(plexus_inference::http::router(engine))
        .build()
        .map_err(failed)?;
    let listener = gateway.bind().await.map_err(failed)?;
    let addr = listener.local_addr().map_err(failed)?;
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(gateway.serve(listener, async {
        let _ = stopped.await;
    }));
    Ok(Setup {
        direct: format!("{}/chat/completions", fake.base_url()),
        plexus: format!("http://{addr}/v1/chat/completions"),
        fake,
        node,
        stop,
    })
}

/// `CLIENTS` clients each sending `n` requests of `body` to `url`; every latency
/// in µs goes into `into`.
async fn round(
    http: &reqwest::Client,
    url: &str,
    body: &Value,
    n: usize,
    into: &mut Histogram<u64>,
) -> Result<(), BenchError> {
    let clients = (0..CLIENTS).map(|_| {
        let (http, url, body) = (http.clone(), url.to_owned(), body.to_string());
        tokio::spawn(async move {
            let mut latencies = Vec::with_capacity(n);
            for _ in 0..n {
                let start = Instant::now();
                let response = http
                    .post(&url)
                    .header("content-type", "application/json")
                    .body(body.clone())
                    .send()
                    .await
                    .map_err(failed)?;
                if !response.status().is_success() {
                    return Err(failed(format!("{url}: status {}", response.status())));
                }
                response.bytes().await.map_err(failed)?;
                latencies.push(start.elapsed().as_micros() as u64);
            }
            Ok::<_, BenchError>(latencies)
        })
    });
    for client in futures::future::join_all(clients).await {
        for us in client.map_err(failed)?? {
            into.record(us.max(1)).map_err(failed)?;
        }
    }
    Ok(())
}

fn histogram() -> Result<Histogram<u64>, BenchError> {
    Histogram::<u64>::new_with_bounds(1, 60_000_000, 3).map_err(failed)
}

/// Latencies through Plexus and direct, rounds interleaved.
async fn measure(
    setup: &Setup,
    body: &Value,
    direct_body: &Value,
    plan: Plan,
) -> Result<(Histogram<u64>, Histogram<u64>), BenchError> {
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(CLIENTS * 2)
        .build()
        .map_err(failed)?;
    let (mut plexus, mut direct) = (histogram()?, histogram()?);
    // Warm both paths (connections, allocations) first.
    let (mut warm_a, mut warm_b) = (histogram()?, histogram()?);
    round(&http, &setup.plexus, body, 5, &mut warm_a).await?;
    round(&http, &setup.direct, direct_body, 5, &mut warm_b).await?;
    for _ in 0..plan.rounds {
        round(
            &http,
            &setup.direct,
            direct_body,
            plan.per_client,
            &mut direct,
        )
        .await?;
        round(&http, &setup.plexus, body, plan.per_client, &mut plexus).await?;
    }
    Ok((plexus, direct))
}

/// Runs the inference benchmark.
pub fn run(options: Options) -> Result<Report, BenchError> {
    let plan = Plan::new(options);
    let progress = Progress::new(options, 4);
    let mut report = Report::new(BENCH, options);
    let workers = std::thread::available_parallelism().map_or(1, |n| n.get());
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(workers)
        .enable_all()
        .build()
        .map_err(failed)?;
    let setup = runtime.block_on(setup())?;
    let messages = json!([{"role": "user", "content": "Say hello"}]);
    let answered = json!({"model": "bench", "messages": messages});
    let streamed = json!({"model": "bench", "messages": messages, "stream": true});
    // Straight to the fake, the request names the deployment's model.
    let direct_body = |mut b: Value| {
        b["model"] = json!("tiny");
        b
    };

    // One step of the plan: `body` through Plexus and straight to the fake.
    let step = |name: &str, body: &Value| {
        progress.step(name);
        let measured = runtime.block_on(measure(&setup, body, &direct_body(body.clone()), plan));
        progress.done_step();
        measured
    };
    let (plexus, direct) = step("answered", &answered)?;
    let (plexus_s, direct_s) = step("streamed", &streamed)?;
    setup
        .fake
        .always(Behaviour::Slow(std::time::Duration::from_millis(PACE_MS)));
    let (plexus_p, direct_p) = step("paced", &answered)?;

    progress.step("report");
    let q = |h: &Histogram<u64>, q: f64| h.value_at_quantile(q) as f64;
    let over = |name: &str, p: &Histogram<u64>, d: &Histogram<u64>, quantile: f64| {
        BenchResult::new(
            name,
            Unit::Micros,
            (q(p, quantile) - q(d, quantile)).max(0.0),
            false,
        )
    };
    report.results = vec![
        over("inference_overhead_p50_us", &plexus, &direct, 0.5),
        over("inference_overhead_p99_us", &plexus, &direct, 0.99).with_target("under 1000"),
        over(
            "inference_stream_overhead_p50_us",
            &plexus_s,
            &direct_s,
            0.5,
        ),
        over(
            "inference_stream_overhead_p99_us",
            &plexus_s,
            &direct_s,
            0.99,
        )
        .with_target("under 1000"),
        BenchResult::new("inference_p99_us", Unit::Micros, q(&plexus, 0.99), false).with_ceiling(
            "the same request straight to the fake provider, p99, 16 clients",
            q(&direct, 0.99),
        ),
        BenchResult::new(
            "inference_stream_p99_us",
            Unit::Micros,
            q(&plexus_s, 0.99),
            false,
        )
        .with_ceiling(
            "the same streamed request straight to the fake provider, p99, 16 clients",
            q(&direct_s, 0.99),
        ),
        over("inference_overhead_paced_p50_us", &plexus_p, &direct_p, 0.5),
        over(
            "inference_overhead_paced_p99_us",
            &plexus_p,
            &direct_p,
            0.99,
        )
        .with_target("under 1000"),
    ];
    progress.done_step();
    progress.finish();
    let _ = setup.stop.send(());
    runtime.block_on(setup.node.shutdown(std::time::Duration::from_secs(1)));
    Ok(report)
}
