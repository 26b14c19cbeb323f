//! Per-event cost of the bus beside bare channels, one thread, no waiting:
//! `cargo bench -p plexus-bus --bench per_event`.
//!
//! Each iteration builds the same envelope (UUID v7, timestamp, small typed payload),
//! hands it over and takes it back out, so the difference between rows is what the
//! bus adds: routing, the priority lanes, counters. Throughput across tasks and
//! threads, with ceilings and ratios, is `plexus bench bus`.

#![allow(missing_docs, clippy::unwrap_used)]

use divan::Bencher;
use plexus_bus::{Bus, Overflow, SubscribeOptions};
use plexus_core::{Envelope, Payload, Topic};

const TOPIC: Topic = Topic::from_static("bench.tick");

fn envelope(seq: u64) -> Envelope {
    Envelope::new(TOPIC, Payload::typed(seq))
}

fn main() {
    divan::main();
}

/// Builds an envelope, hands it over with `send`, takes it back with `recv`.
fn hand_over<R>(
    bencher: Bencher<'_, '_>,
    mut send: impl FnMut(Envelope),
    mut recv: impl FnMut() -> R,
) {
    let mut seq = 0;
    bencher.bench_local(|| {
        seq += 1;
        send(envelope(seq));
        recv()
    });
}

#[divan::bench]
fn bus_1to1(bencher: Bencher<'_, '_>) {
    let bus = Bus::new();
    let mut sub = bus
        .subscribe(
            "bench.tick",
            SubscribeOptions::new().overflow(Overflow::Reject),
        )
        .unwrap();
    hand_over(
        bencher,
        |e| {
            bus.try_publish(e).unwrap();
        },
        || sub.try_recv().unwrap(),
    );
}

#[divan::bench]
fn mpsc_1to1(bencher: Bencher<'_, '_>) {
    let (tx, mut rx) = tokio::sync::mpsc::channel(1024);
    hand_over(
        bencher,
        |e| tx.try_send(e).unwrap(),
        || rx.try_recv().unwrap(),
    );
}

#[divan::bench]
fn flume_1to1(bencher: Bencher<'_, '_>) {
    let (tx, rx) = flume::bounded(1024);
    hand_over(
        bencher,
        |e| tx.try_send(e).unwrap(),
        || rx.try_recv().unwrap(),
    );
}

#[divan::bench]
fn crossbeam_1to1(bencher: Bencher<'_, '_>) {
    let (tx, rx) = crossbeam_channel::bounded(1024);
    hand_over(
        bencher,
        |e| tx.try_send(e).unwrap(),
        || rx.try_recv().unwrap(),
    );
}

#[divan::bench]
fn bus_fanout_1to8(bencher: Bencher<'_, '_>) {
    let bus = Bus::new();
    let mut subs: Vec<_> = (0..8)
        .map(|_| {
            bus.subscribe(
                "bench.tick",
                SubscribeOptions::new().overflow(Overflow::Reject),
            )
            .unwrap()
        })
        .collect();
    hand_over(
        bencher,
        |e| {
            bus.try_publish(e).unwrap();
        },
        || subs.iter_mut().map(|s| s.try_recv().unwrap()).count(),
    );
}

#[divan::bench]
fn broadcast_fanout_1to8(bencher: Bencher<'_, '_>) {
    let (tx, _) = tokio::sync::broadcast::channel(1024);
    let mut rxs: Vec<_> = (0..8).map(|_| tx.subscribe()).collect();
    hand_over(
        bencher,
        |e| {
            tx.send(e).unwrap();
        },
        || rxs.iter_mut().map(|r| r.try_recv().unwrap()).count(),
    );
}
