//! `plexus bench cluster`: nodes on the shared NATS server (`PLEXUS_TEST_NATS_URL`,
//! default `nats://127.0.0.1:4222`), each beside raw `async-nats` doing the same work
//! in the same run.
//!
//! Results (stable names):
//! - `cluster_call_c16` (calls/s, 16 concurrent callers): a call from one node to a
//!   no-op service on another, through the caller's whole call path (resolve,
//!   balance, breaker, deadline) and NATS request/reply, beside a raw requester and
//!   responder exchanging the same JSON. Target: at least 0.7 of raw.
//!   `cluster_call_c16_p50` and `cluster_call_c16_p99` (µs): the same calls' latency,
//!   beside raw's.
//! - `cluster_events_1to1` (events/s): events published on one node's bus on a
//!   shared topic (`[pubsub] backend = "nats"`) and delivered to a subscriber on
//!   another node's bus, beside a raw publisher and subscriber of the same JSON.
//!   Target: at least 0.7 of raw.
//! - `durable_events_per_s` (events/s) and `durable_events_p99` (µs, from append
//!   to delivery): events appended to the outbox (SQLite), relayed into a JetStream
//!   stream and put on another node's bus by a durable consumer. No ceiling: its own
//!   figure.
//!
//! Every run uses names of its own (bucket, subjects, stream), removed at the end.

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures::StreamExt;
use hdrhistogram::Histogram;
use plexus_bus::{Bus, Overflow, SubscribeOptions};
use plexus_cluster::{
    ConsumerConfig, DurableConfig, DurableStream, KvRegistry, KvRegistryConfig, LinkConfig,
    NatsLink,
};
use plexus_core::{
    CallContext, CallResult, Envelope, MethodDescriptor, Payload, Service, ServiceDescriptor,
    Timestamp, Topic, async_trait,
};
use plexus_node::Node;
use plexus_pubsub::{Backend, Bridge, NatsConnection, PubSubConfig, PubSubMetrics};
use plexus_store::{DataStore, Outbox, OutboxConfig, RelayConfig, StoreConfig};
use serde_json::{Value, json};
use tokio::sync::watch;

use crate::{BenchError, BenchResult, Options, Progress, Report, Unit};

const BENCH: &str = "cluster";
const RAW: &str = "raw async-nats, same JSON";
const CLIENTS: usize = 16;

fn failed(reason: impl ToString) -> BenchError {
    BenchError::failed(BENCH, reason)
}

fn nats_url() -> String {
    std::env::var("PLEXUS_TEST_NATS_URL").unwrap_or_else(|_| "nats://127.0.0.1:4222".to_owned())
}

struct Plan {
    calls: usize,
    events: usize,
    durable: usize,
}

impl Plan {
    fn new(options: Options) -> Self {
        if options.quick {
            Self {
                calls: 800,
                events: 2_000,
                durable: 500,
            }
        } else {
            Self {
                calls: 20_000,
                events: 100_000,
                durable: 10_000,
            }
        }
    }
}

/// A no-op service: answers `ping` with its params.
struct Noop;

#[async_trait]
impl Service for Noop {
    fn descriptor(&self) -> ServiceDescriptor {
        ServiceDescriptor::new("noop", "bench")
            .with_method(MethodDescriptor::new("ping").idempotent())
    }

    async fn call(&self, _method: &str, params: Value, _ctx: CallContext) -> CallResult {
        Ok(params)
    }
}

/// Names of the run's own.
struct Run {
    id: String,
    jetstream: async_nats::jetstream::Context,
}

impl Run {
    async fn open() -> Result<Self, BenchError> {
        let client = async_nats::connect(nats_url()).await.map_err(|e| {
            failed(format!(
                "cannot reach NATS at {} ({e}); start nats-server -js or set PLEXUS_TEST_NATS_URL",
                nats_url()
            ))
        })?;
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos());
        Ok(Self {
            id: format!("{}_{nanos}", std::process::id()),
            jetstream: async_nats::jetstream::new(client),
        })
    }

    async fn node(&self, name: &str, services: Vec<Arc<dyn Service>>) -> Result<Node, BenchError> {
        let client = async_nats::connect(nats_url()).await.map_err(failed)?;
        let registry = KvRegistry::open(
            &async_nats::jetstream::new(client.clone()),
            &KvRegistryConfig {
                bucket: format!("plexus_bench_{}", self.id),
                ..KvRegistryConfig::default()
            },
        )
        .await
        .map_err(failed)?;
        let link = NatsLink::new(
            client,
            registry,
            LinkConfig {
                call_prefix: format!("plexus.bench.{}.call", self.id),
                ..LinkConfig::node(name)
            },
        );
        let mut builder = Node::builder(name).cluster(Arc::new(link));
        for service in services {
            builder = builder.service(service);
        }
        builder.start().await.map_err(failed)
    }

    async fn clean(&self) {
        let _ = self
            .jetstream
            .delete_key_value(format!("plexus_bench_{}", self.id))
            .await;
        let _ = self
            .jetstream
            .delete_stream(format!("plexus_bench_durable_{}", self.id))
            .await;
    }
}

fn histogram() -> Result<Histogram<u64>, BenchError> {
    Histogram::new_with_bounds(1, 60_000_000, 3).map_err(failed)
}

/// Calls/s and latencies of `calls` calls of `op` over [`CLIENTS`] tasks.
async fn closed_loop<F, Fut>(calls: usize, op: Arc<F>) -> Result<(f64, Histogram<u64>), BenchError>
where
    F: Fn() -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = Result<(), BenchError>> + Send,
{
    let per = (calls / CLIENTS).max(1);
    let started = Instant::now();
    let tasks: Vec<_> = (0..CLIENTS)
        .map(|_| {
            let op = op.clone();
            tokio::spawn(async move {
                let mut h = histogram()?;
                for _ in 0..per {
                    let t = Instant::now();
                    op().await?;
                    let _ = h.record(u64::try_from(t.elapsed().as_micros()).unwrap_or(u64::MAX));
                }
                Ok::<_, BenchError>(h)
            })
        })
        .collect();
    let mut all = histogram()?;
    for task in tasks {
        let h = task.await.map_err(failed)??;
        all.add(&h).map_err(failed)?;
    }
    Ok((
        (per * CLIENTS) as f64 / started.elapsed().as_secs_f64(),
        all,
    ))
}

async fn bench_calls(
    run: &Run,
    plan: &Plan,
    report: &mut Report,
    progress: &Progress,
) -> Result<(), BenchError> {
    progress.step("cluster_call_c16");
    let _server = run.node("bench-a", vec![Arc::new(Noop)]).await?;
    let caller = run.node("bench-c", vec![]).await?;
    let ready = tokio::time::timeout(
        Duration::from_secs(10),
        caller.registry().until_routable(&"noop".into(), 1),
    )
    .await;
    ready.map_err(|_| failed("the caller never saw the no-op service on the other node"))?;
    let params = json!({"n": 1, "text": "ping"});

    let ours = {
        let (caller, params) = (caller.clone(), params.clone());
        Arc::new(move || {
            let (caller, params) = (caller.clone(), params.clone());
            async move {
                caller
                    .call("noop.ping", params, CallContext::new())
                    .await
                    .map(|_| ())
                    .map_err(failed)
            }
        })
    };
    // The raw twin: a responder echoing the request, requests of the same JSON.
    let client = async_nats::connect(nats_url()).await.map_err(failed)?;
    let subject = format!("plexus.bench.{}.raw", run.id);
    let mut requests = client.subscribe(subject.clone()).await.map_err(failed)?;
    let responder_client = client.clone();
    let responder = tokio::spawn(async move {
        while let Some(message) = requests.next().await {
            if let Some(reply) = message.reply {
                let _ = responder_client.publish(reply, message.payload).await;
            }
        }
    });
    client.flush().await.map_err(failed)?;
    let body = Bytes::from(
        serde_json::to_vec(&json!({"method": "ping", "params": params})).map_err(failed)?,
    );
    let raw = {
        let (client, subject) = (client.clone(), subject.clone());
        Arc::new(move || {
            let (client, subject, body) = (client.clone(), subject.clone(), body.clone());
            async move {
                let answer = client.request(subject, body).await.map_err(failed)?;
                serde_json::from_slice::<Value>(&answer.payload)
                    .map(|_| ())
                    .map_err(failed)
            }
        })
    };
    let (mut best, mut best_raw) = ((0.0, histogram()?), (0.0, histogram()?));
    for _ in 0..2 {
        let a = closed_loop(plan.calls, ours.clone()).await?;
        if a.0 > best.0 {
            best = a;
        }
        let b = closed_loop(plan.calls, raw.clone()).await?;
        if b.0 > best_raw.0 {
            best_raw = b;
        }
    }
    responder.abort();
    report.results.push(
        BenchResult::new("cluster_call_c16", Unit::CallsPerSecond, best.0, true)
            .with_ceiling(RAW, best_raw.0)
            .with_target(">= 0.7 of raw"),
    );
    for (name, q) in [
        ("cluster_call_c16_p50", 0.5),
        ("cluster_call_c16_p99", 0.99),
    ] {
        report.results.push(
            BenchResult::new(
                name,
                Unit::Micros,
                best.1.value_at_quantile(q) as f64,
                false,
            )
            .with_ceiling(RAW, best_raw.1.value_at_quantile(q) as f64),
        );
    }
    progress.done_step();
    Ok(())
}

/// Events/s delivered: `publish` sends `n` events, and the count reaches `n`.
async fn delivered_per_second(
    n: usize,
    received: &watch::Sender<u64>,
    publish: impl std::future::Future<Output = Result<(), BenchError>>,
) -> Result<f64, BenchError> {
    received.send_replace(0);
    let mut count = received.subscribe();
    let started = Instant::now();
    publish.await?;
    let arrived = tokio::time::timeout(
        Duration::from_secs(120),
        count.wait_for(|got| *got >= n as u64),
    )
    .await;
    if !matches!(arrived, Ok(Ok(_))) {
        return Err(failed(format!(
            "only {} of {n} events arrived within 120 s",
            *received.borrow()
        )));
    }
    Ok(n as f64 / started.elapsed().as_secs_f64())
}

async fn bench_events(
    run: &Run,
    plan: &Plan,
    report: &mut Report,
    progress: &Progress,
) -> Result<(), BenchError> {
    progress.step("cluster_events_1to1");
    let config = PubSubConfig {
        backend: Backend::Nats,
        topics: vec!["bench.>".into()],
        nats_url: Some(nats_url()),
        subject_prefix: format!("plexus.bench.{}.bus", run.id),
        queue: plan.events.max(1_024),
        ..PubSubConfig::default()
    };
    let connect = || async {
        NatsConnection::connect(&nats_url(), "plexus bench")
            .await
            .map_err(failed)
    };
    let (a, b) = (Bus::new(), Bus::new());
    let sender = Bridge::nats(connect().await?, &config, PubSubMetrics::new());
    let receiver = Bridge::nats(connect().await?, &config, PubSubMetrics::new());
    sender.start(&a).map_err(failed)?;
    receiver.start(&b).map_err(failed)?;
    let live = tokio::time::timeout(Duration::from_secs(10), async {
        while !(sender.live() && receiver.live()) {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
    .await;
    live.map_err(|_| failed("the bridges never subscribed"))?;
    let received = Arc::new(watch::Sender::new(0u64));
    let mut subscription = b
        .subscribe(
            "bench.>",
            SubscribeOptions::new()
                .capacity(plan.events.max(1_024))
                .overflow(Overflow::Reject),
        )
        .map_err(failed)?;
    let counter = received.clone();
    let counting = tokio::spawn(async move {
        while subscription.recv().await.is_some() {
            counter.send_modify(|n| *n += 1);
        }
    });
    let event = |i: usize| -> Result<Envelope, BenchError> {
        Ok(Envelope::new(
            Topic::new("bench.tick").map_err(failed)?,
            Payload::json(&json!({"i": i, "text": "tick"})).map_err(failed)?,
        ))
    };
    let ours = delivered_per_second(plan.events, &received, async {
        for i in 0..plan.events {
            a.publish(event(i)?).await.map_err(failed)?;
        }
        Ok(())
    })
    .await?;
    counting.abort();

    // The raw twin: the same envelope JSON from one client to another's subscriber.
    let publisher = async_nats::connect(nats_url()).await.map_err(failed)?;
    let subscriber = async_nats::connect(nats_url()).await.map_err(failed)?;
    let subject = format!("plexus.bench.{}.rawbus.bench.tick", run.id);
    let mut messages = subscriber
        .subscribe(subject.clone())
        .await
        .map_err(failed)?;
    subscriber.flush().await.map_err(failed)?;
    let raw_received = Arc::new(watch::Sender::new(0u64));
    let counter = raw_received.clone();
    let counting = tokio::spawn(async move {
        while let Some(message) = messages.next().await {
            if Envelope::from_json(&message.payload).is_ok() {
                counter.send_modify(|n| *n += 1);
            }
        }
    });
    let raw = delivered_per_second(plan.events, &raw_received, async {
        for i in 0..plan.events {
            let json = event(i)?.to_json().map_err(failed)?;
            publisher
                .publish(subject.clone(), Bytes::from(json))
                .await
                .map_err(failed)?;
        }
        publisher.flush().await.map_err(failed)
    })
    .await?;
    counting.abort();
    report.results.push(
        BenchResult::new("cluster_events_1to1", Unit::EventsPerSecond, ours, true)
            .with_ceiling(RAW, raw)
            .with_target(">= 0.7 of raw"),
    );
    progress.done_step();
    Ok(())
}

async fn bench_durable(
    run: &Run,
    plan: &Plan,
    report: &mut Report,
    progress: &Progress,
) -> Result<(), BenchError> {
    progress.step("durable_events_per_s");
    let stream = DurableStream::open(
        &run.jetstream,
        &DurableConfig {
            stream: format!("plexus_bench_durable_{}", run.id),
            subject_prefix: format!("plexus.bench.{}.durable", run.id),
            topics: vec!["orders.>".into()],
            ..DurableConfig::default()
        },
    )
    .await
    .map_err(failed)?;
    let dir = std::env::temp_dir().join(format!("plexus-bench-durable-{}", run.id));
    let store = DataStore::connect(&StoreConfig::sqlite_in(&dir))
        .await
        .map_err(failed)?;
    let outbox = Outbox::open(store, OutboxConfig::default())
        .await
        .map_err(failed)?;
    outbox.declare_durable("orders.>").map_err(failed)?;
    let relay = outbox
        .spawn_relay_to(stream.clone(), RelayConfig::default())
        .map_err(failed)?;
    let other = Bus::new();
    let mut subscription = other
        .subscribe(
            "orders.>",
            SubscribeOptions::new().capacity(plan.durable.max(1_024)),
        )
        .map_err(failed)?;
    let _consumer = stream
        .consume(other.clone(), ConsumerConfig::named("bench"))
        .await
        .map_err(failed)?;
    let started = Instant::now();
    for chunk in (0..plan.durable).collect::<Vec<_>>().chunks(100) {
        let events = chunk
            .iter()
            .map(|i| {
                Ok(Envelope::new(
                    Topic::new("orders.placed").map_err(failed)?,
                    Payload::json(&json!({"order": i})).map_err(failed)?,
                ))
            })
            .collect::<Result<Vec<_>, BenchError>>()?;
        outbox.append(events).await.map_err(failed)?;
    }
    let mut latency = histogram()?;
    for _ in 0..plan.durable {
        let event = tokio::time::timeout(Duration::from_secs(120), subscription.recv())
            .await
            .map_err(|_| failed("durable events stopped arriving for 120 s"))?
            .ok_or_else(|| failed("the subscription closed"))?;
        let age = Timestamp::now()
            .as_micros()
            .saturating_sub(event.timestamp().as_micros());
        let _ = latency.record(age.max(1));
    }
    let per_second = plan.durable as f64 / started.elapsed().as_secs_f64();
    relay.shutdown().await;
    let _ = std::fs::remove_dir_all(&dir);
    report.results.push(BenchResult::new(
        "durable_events_per_s",
        Unit::EventsPerSecond,
        per_second,
        true,
    ));
    report.results.push(BenchResult::new(
        "durable_events_p99",
        Unit::Micros,
        latency.value_at_quantile(0.99) as f64,
        false,
    ));
    progress.done_step();
    Ok(())
}

/// Runs the benchmark.
pub fn run(options: Options) -> Result<Report, BenchError> {
    let plan = Plan::new(options);
    let mut report = Report::new(BENCH, options);
    let progress = Progress::new(options, 3);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(std::thread::available_parallelism().map_or(2, |n| n.get().max(2)))
        .enable_all()
        .build()
        .map_err(failed)?;
    runtime.block_on(async {
        let run = Run::open().await?;
        let outcome = async {
            bench_calls(&run, &plan, &mut report, &progress).await?;
            bench_events(&run, &plan, &mut report, &progress).await?;
            bench_durable(&run, &plan, &mut report, &progress).await
        }
        .await;
        run.clean().await;
        outcome
    })?;
    progress.finish();
    Ok(report)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn a_quick_run_reports_every_figure_beside_its_ceiling() {
        let report = crate::support::quick_run_with_ceilings(
            run,
            &["cluster_call_c16", "cluster_events_1to1"],
        );
        assert!(report.get("durable_events_per_s").unwrap().value > 0.0);
        assert!(report.get("cluster_call_c16_p99").unwrap().value > 0.0);
    }
}
