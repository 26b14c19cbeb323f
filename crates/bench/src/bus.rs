//! `plexus bench bus`: events delivered per second through the bus, beside bare
//! channels carrying the same envelope, and Critical-lane latency under load.
//!
//! Results (stable names): `delivered_1to1`, `delivered_4to4`, `fanout_1to8`
//! (events/s received by subscribers, each with its ceiling and ratio), the peers
//! `peer_crossbeam_1to1`, `peer_flume_1to1`, `peer_mpsc_fanout_1to8`, and
//! `critical_p50`, `critical_p99`, `critical_p999` (µs from publish to receipt of a
//! Critical event while the subscriber's Normal lane is full).
//!
//! Every envelope, on the bus and in the ceilings, is built the same way: a fresh
//! UUID v7, a timestamp and a small typed payload. Each measurement runs on a fresh
//! tokio runtime with one worker per core; the bus and its ceiling alternate for a
//! few rounds and the best round of each counts.

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use plexus_bus::{Bus, Overflow, SubscribeOptions};
use plexus_core::{Envelope, Event, Payload, Priority, Topic};
use serde::{Deserialize, Serialize};

use crate::{BenchError, BenchResult, Options, Progress, Report, Unit};

/// The lane and channel capacity used everywhere in this benchmark.
const CAPACITY: usize = 1024;

/// A small event: what most bus traffic looks like.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Tick {
    seq: u64,
}

impl Event for Tick {
    const TOPIC: Topic = Topic::from_static("bench.tick");
}

/// A latency probe: nanoseconds since the run's base instant when it was published.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Probe {
    sent_ns: u64,
}

impl Event for Probe {
    const TOPIC: Topic = Topic::from_static("bench.tick");
    const PRIORITY: Priority = Priority::Critical;
}

fn tick(seq: u64, topic: &Topic) -> Envelope {
    Envelope::new(topic.clone(), Payload::typed(Tick { seq }))
}

struct Plan {
    events: u64,
    rounds: usize,
    probes: u64,
}

impl Plan {
    fn new(options: Options) -> Self {
        if options.quick {
            Self {
                events: 100_000,
                rounds: 1,
                probes: 2_000,
            }
        } else {
            Self {
                events: 2_000_000,
                rounds: 3,
                probes: 20_000,
            }
        }
    }
}

fn failed(reason: impl ToString) -> BenchError {
    BenchError::failed("bus", reason)
}

fn runtime() -> Result<tokio::runtime::Runtime, BenchError> {
    let workers = std::thread::available_parallelism().map_or(2, |n| n.get().max(2));
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(workers)
        .enable_all()
        .build()
        .map_err(failed)
}

/// Events per second and how many events were delivered.
#[derive(Clone, Copy, Default)]
struct Rate {
    per_second: f64,
    delivered: u64,
}

impl Rate {
    fn max(self, other: Rate) -> Rate {
        if other.per_second > self.per_second {
            other
        } else {
            self
        }
    }
}

/// Runs `work` on a fresh runtime and measures how fast it delivered.
fn rate<F, Fut>(work: F) -> Result<Rate, BenchError>
where
    F: FnOnce() -> Fut,
    Fut: Future<Output = Result<u64, BenchError>>,
{
    let rt = runtime()?;
    rt.block_on(async {
        let started = Instant::now();
        let delivered = work().await?;
        Ok(Rate {
            per_second: delivered as f64 / started.elapsed().as_secs_f64(),
            delivered,
        })
    })
}

/// The best of `rounds` alternating runs of `ours` and `ceiling`.
fn best_pair(
    rounds: usize,
    mut ours: impl FnMut() -> Result<Rate, BenchError>,
    mut ceiling: impl FnMut() -> Result<Rate, BenchError>,
) -> Result<(Rate, Rate), BenchError> {
    let (mut best_ours, mut best_ceiling) = (Rate::default(), Rate::default());
    for _ in 0..rounds {
        best_ours = best_ours.max(ours()?);
        best_ceiling = best_ceiling.max(ceiling()?);
    }
    Ok((best_ours, best_ceiling))
}

fn joined<T>(r: Result<T, tokio::task::JoinError>) -> Result<T, BenchError> {
    r.map_err(failed)
}

/// A task that counts what `rx` receives until every sender is gone.
fn count_mpsc<T: Send + 'static>(
    mut rx: tokio::sync::mpsc::Receiver<T>,
) -> tokio::task::JoinHandle<u64> {
    tokio::spawn(async move {
        let mut got = 0u64;
        while rx.recv().await.is_some() {
            got += 1;
        }
        got
    })
}

/// Waits for the senders, then sums what the receivers counted.
async fn settle(
    senders: Vec<tokio::task::JoinHandle<Result<(), BenchError>>>,
    receivers: Vec<tokio::task::JoinHandle<u64>>,
) -> Result<u64, BenchError> {
    for s in senders {
        joined(s.await)??;
    }
    let mut total = 0;
    for r in receivers {
        total += joined(r.await)?;
    }
    Ok(total)
}

/// `publishers` publish `events` each on topics `bench.{i % topics}`; `subscribers`
/// subscribe to `bench.{i % topics}`. Returns events received.
async fn bus_run(
    publishers: u64,
    subscribers: u64,
    topics: u64,
    events: u64,
) -> Result<u64, BenchError> {
    let bus = Bus::new();
    let per_topic_publishers = publishers / topics;
    let mut receivers = Vec::new();
    for i in 0..subscribers {
        let mut sub = bus
            .subscribe(
                &format!("bench.{}", i % topics),
                SubscribeOptions::new()
                    .capacity(CAPACITY)
                    .overflow(Overflow::Block {
                        timeout: Duration::from_secs(60),
                    }),
            )
            .map_err(failed)?;
        let expect = events * per_topic_publishers;
        receivers.push(tokio::spawn(async move {
            let mut got = 0u64;
            while got < expect {
                if sub.recv().await.is_none() {
                    break;
                }
                got += 1;
            }
            got
        }));
    }
    let mut senders = Vec::new();
    for p in 0..publishers {
        let bus = bus.clone();
        let topic = Topic::new(format!("bench.{}", p % topics)).map_err(failed)?;
        senders.push(tokio::spawn(async move {
            for seq in 0..events {
                bus.publish(tick(seq, &topic)).await.map_err(failed)?;
            }
            Ok::<(), BenchError>(())
        }));
    }
    settle(senders, receivers).await
}

/// `pairs` independent bounded mpsc channels, one sender and one receiver each.
async fn mpsc_run(pairs: u64, events: u64) -> Result<u64, BenchError> {
    let topic = Tick::TOPIC;
    let mut receivers = Vec::new();
    let mut senders = Vec::new();
    for _ in 0..pairs {
        let (tx, rx) = tokio::sync::mpsc::channel::<Envelope>(CAPACITY);
        receivers.push(count_mpsc(rx));
        let topic = topic.clone();
        senders.push(tokio::spawn(async move {
            for seq in 0..events {
                tx.send(tick(seq, &topic)).await.map_err(failed)?;
            }
            Ok::<(), BenchError>(())
        }));
    }
    settle(senders, receivers).await
}

/// One sender, `fan` receivers of a tokio broadcast channel.
async fn broadcast_run(fan: u64, events: u64) -> Result<u64, BenchError> {
    let (tx, _) = tokio::sync::broadcast::channel::<Envelope>(CAPACITY);
    let mut receivers = Vec::new();
    for _ in 0..fan {
        let mut rx = tx.subscribe();
        receivers.push(tokio::spawn(async move {
            let mut got = 0u64;
            loop {
                match rx.recv().await {
                    Ok(_) => got += 1,
                    Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {}
                    Err(tokio::sync::broadcast::error::RecvError::Closed) => break,
                }
            }
            got
        }));
    }
    let topic = Tick::TOPIC;
    let sender = tokio::spawn(async move {
        for seq in 0..events {
            // A send with no receivers left is not an error worth stopping for here.
            let _ = tx.send(tick(seq, &topic));
            if seq % 256 == 0 {
                tokio::task::yield_now().await;
            }
        }
        Ok(())
    });
    settle(vec![sender], receivers).await
}

/// One sender cloning each envelope into `fan` bounded mpsc channels.
async fn mpsc_fanout_run(fan: u64, events: u64) -> Result<u64, BenchError> {
    let mut txs = Vec::new();
    let mut receivers = Vec::new();
    for _ in 0..fan {
        let (tx, rx) = tokio::sync::mpsc::channel::<Arc<Envelope>>(CAPACITY);
        txs.push(tx);
        receivers.push(count_mpsc(rx));
    }
    let topic = Tick::TOPIC;
    let sender = tokio::spawn(async move {
        for seq in 0..events {
            let envelope = Arc::new(tick(seq, &topic));
            for tx in &txs {
                tx.send(Arc::clone(&envelope)).await.map_err(failed)?;
            }
        }
        Ok::<(), BenchError>(())
    });
    settle(vec![sender], receivers).await
}

fn crossbeam_1to1(events: u64) -> Result<f64, BenchError> {
    let (tx, rx) = crossbeam_channel::bounded::<Envelope>(CAPACITY);
    let started = Instant::now();
    let receiver = std::thread::spawn(move || rx.iter().count() as u64);
    let topic = Tick::TOPIC;
    for seq in 0..events {
        tx.send(tick(seq, &topic)).map_err(failed)?;
    }
    drop(tx);
    let got = receiver
        .join()
        .map_err(|_| failed("crossbeam receiver panicked"))?;
    Ok(got as f64 / started.elapsed().as_secs_f64())
}

async fn flume_run(events: u64) -> Result<u64, BenchError> {
    let (tx, rx) = flume::bounded::<Envelope>(CAPACITY);
    let receiver = tokio::spawn(async move {
        let mut got = 0u64;
        while rx.recv_async().await.is_ok() {
            got += 1;
        }
        got
    });
    let topic = Tick::TOPIC;
    for seq in 0..events {
        tx.send_async(tick(seq, &topic)).await.map_err(failed)?;
    }
    drop(tx);
    joined(receiver.await)
}

/// Critical-lane latency while a flood keeps the subscriber's Normal lane full.
fn critical_latency(probes: u64) -> Result<Histogram<u64>, BenchError> {
    let rt = runtime()?;
    rt.block_on(async move {
        let bus = Bus::new();
        let mut sub = bus
            .subscribe(
                "bench.tick",
                SubscribeOptions::new()
                    .capacity(CAPACITY)
                    .overflow(Overflow::DropOldest),
            )
            .map_err(failed)?;
        let base = Instant::now();
        let stop = Arc::new(AtomicBool::new(false));
        let received = Arc::new(tokio::sync::Notify::new());

        // The subscriber does a little work per normal event, so the flood outruns it
        // and its Normal lane stays full.
        let got = Arc::clone(&received);
        let subscriber = tokio::spawn(async move {
            let mut histogram =
                Histogram::<u64>::new_with_bounds(1, 60_000_000_000, 3).map_err(failed)?;
            let mut normal = 0u64;
            while let Some(envelope) = sub.recv().await {
                if let Some(probe) = envelope.payload().get::<Probe>() {
                    let now = base.elapsed().as_nanos() as u64;
                    histogram.saturating_record(now.saturating_sub(probe.sent_ns).max(1));
                    got.notify_one();
                    if histogram.len() >= probes {
                        break;
                    }
                } else {
                    normal += 1;
                    std::hint::black_box(busy_work(normal));
                    if normal.is_multiple_of(64) {
                        tokio::task::yield_now().await;
                    }
                }
            }
            Ok::<_, BenchError>(histogram)
        });

        let flood = {
            let bus = bus.clone();
            let stop = Arc::clone(&stop);
            tokio::spawn(async move {
                let topic = Tick::TOPIC;
                let mut seq = 0u64;
                while !stop.load(Ordering::Relaxed) {
                    let _ = bus.publish(tick(seq, &topic)).await;
                    seq += 1;
                    if seq.is_multiple_of(32) {
                        tokio::task::yield_now().await;
                    }
                }
            })
        };

        // Let the flood fill the lane before the first probe.
        while bus
            .subscriptions()
            .first()
            .map_or(0, |s| s.stats.queued_by_lane[1])
            < CAPACITY
        {
            tokio::task::yield_now().await;
        }
        for _ in 0..probes {
            let sent_ns = base.elapsed().as_nanos() as u64;
            bus.publish(Envelope::event(Probe { sent_ns }))
                .await
                .map_err(failed)?;
            tokio::time::timeout(Duration::from_secs(10), received.notified())
                .await
                .map_err(|_| failed("a critical probe was not received within 10 s"))?;
        }
        stop.store(true, Ordering::Relaxed);
        joined(flood.await)?;
        let histogram = joined(subscriber.await)??;
        bus.shutdown(Duration::from_millis(10)).await;
        Ok(histogram)
    })
}

/// About half a microsecond of arithmetic standing in for a handler's work.
fn busy_work(seed: u64) -> u64 {
    let mut x = seed;
    for _ in 0..200 {
        x = x
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
    }
    x
}

/// Runs the bus benchmark.
pub fn run(options: Options) -> Result<Report, BenchError> {
    let plan = Plan::new(options);
    let mut report = Report::new("bus", options);
    let progress = Progress::new(options, 6);
    let n = plan.events;

    progress.step("1 → 1: bus vs tokio mpsc");
    let (ours, ceiling) = best_pair(
        plan.rounds,
        || rate(|| bus_run(1, 1, 1, n)),
        || rate(|| mpsc_run(1, n)),
    )?;
    report.results.push(
        BenchResult::new(
            "delivered_1to1",
            Unit::EventsPerSecond,
            ours.per_second,
            true,
        )
        .with_ceiling("tokio::sync::mpsc bounded(1024)", ceiling.per_second)
        .with_target("ratio >= 0.6"),
    );
    progress.done_step();

    progress.step("1 → 1 peers: crossbeam, flume");
    let mut crossbeam = 0f64;
    let mut flume = 0f64;
    for _ in 0..plan.rounds {
        crossbeam = crossbeam.max(crossbeam_1to1(n)?);
        flume = flume.max(rate(|| flume_run(n))?.per_second);
    }
    report.results.push(
        BenchResult::new(
            "peer_crossbeam_1to1",
            Unit::EventsPerSecond,
            crossbeam,
            true,
        )
        .with_ceiling("tokio::sync::mpsc bounded(1024)", ceiling.per_second),
    );
    report.results.push(
        BenchResult::new("peer_flume_1to1", Unit::EventsPerSecond, flume, true)
            .with_ceiling("tokio::sync::mpsc bounded(1024)", ceiling.per_second),
    );
    progress.done_step();

    progress.step("4 → 4: bus vs 4 tokio mpsc");
    let quarter = n / 4;
    let (ours, ceiling) = best_pair(
        plan.rounds,
        || rate(|| bus_run(4, 4, 4, quarter)),
        || rate(|| mpsc_run(4, quarter)),
    )?;
    report.results.push(
        BenchResult::new(
            "delivered_4to4",
            Unit::EventsPerSecond,
            ours.per_second,
            true,
        )
        .with_ceiling("4 x tokio::sync::mpsc bounded(1024)", ceiling.per_second),
    );
    progress.done_step();

    progress.step("1 → 8 fan-out: bus vs tokio broadcast");
    let eighth = n / 8;
    let (ours, ceiling) = best_pair(
        plan.rounds,
        || rate(|| bus_run(1, 8, 1, eighth)),
        || rate(|| broadcast_run(8, eighth)),
    )?;
    // A lagging broadcast receiver skips events instead of slowing the sender; say
    // how many the ceiling skipped, since only received events count.
    let sent = eighth * 8;
    let skipped = sent.saturating_sub(ceiling.delivered);
    let broadcast = format!(
        "tokio::sync::broadcast(1024), {:.1}% skipped by lagging receivers",
        100.0 * skipped as f64 / sent.max(1) as f64
    );
    report.results.push(
        BenchResult::new("fanout_1to8", Unit::EventsPerSecond, ours.per_second, true)
            .with_ceiling(&broadcast, ceiling.per_second)
            .with_target("ratio >= 0.5"),
    );
    progress.done_step();

    progress.step("1 → 8 fan-out peer: 8 tokio mpsc");
    let mut mpsc8 = 0f64;
    for _ in 0..plan.rounds {
        mpsc8 = mpsc8.max(rate(|| mpsc_fanout_run(8, eighth))?.per_second);
    }
    report.results.push(
        BenchResult::new("peer_mpsc_fanout_1to8", Unit::EventsPerSecond, mpsc8, true)
            .with_ceiling(&broadcast, ceiling.per_second),
    );
    progress.done_step();

    progress.step("critical latency under a full normal lane");
    let histogram = critical_latency(plan.probes)?;
    for (name, quantile) in [
        ("critical_p50", 0.50),
        ("critical_p99", 0.99),
        ("critical_p999", 0.999),
    ] {
        let micros = histogram.value_at_quantile(quantile) as f64 / 1000.0;
        let mut result = BenchResult::new(name, Unit::Micros, micros, false);
        if name == "critical_p99" {
            result = result.with_target("< 100 us");
        }
        report.results.push(result);
    }
    progress.done_step();
    progress.finish();
    Ok(report)
}
