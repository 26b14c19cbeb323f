//! A writer killed with SIGKILL in the middle of writing durable events: after a
//! restart every committed event is delivered — each event the writer reported,
//! and exactly the events whose documents exist — and duplicates, if any, carry the
//! same event id.
//!
//! The writer is this test binary run again: [`crash_writer`] is an entry that does
//! nothing unless [`WRITER_URL`] is set in its environment, and then writes until it
//! is killed. Nothing of it ships in the library.

use std::collections::{HashMap, HashSet};
use std::io::Write;
use std::os::unix::process::ExitStatusExt;
use std::process::Stdio;

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use plexus_bus::{Bus, SubscribeOptions};
use plexus_core::EventId;
use plexus_store::{
    BackendKind, CollectionSpec, DataStore, Filter, Outbox, OutboxConfig, PutMode, RelayConfig,
    StoreConfig,
};
use serde_json::json;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::Command;

use crate::support::{PATIENCE, Place, event, payload_of};

plexus_store::on_both!(a_killed_writer_loses_no_committed_event);

/// Lines to read before the kill.
const BEFORE_KILL: usize = 300;
/// More than the writer can write before it is killed.
const COUNT: &str = "100000000";

/// The writer's store URL; set, it makes [`crash_writer`] write.
const WRITER_URL: &str = "PLEXUS_STORE_CRASH_WRITER_URL";
/// The writer's PostgreSQL schema, when it has one.
const WRITER_SCHEMA: &str = "PLEXUS_STORE_CRASH_WRITER_SCHEMA";
/// How many documents the writer writes at most.
const WRITER_COUNT: &str = "PLEXUS_STORE_CRASH_WRITER_COUNT";
/// What starts each line the writer reports a commit on (the test harness prints
/// lines of its own on the same stdout): `committed <n> <event id> <offset>`.
const COMMITTED: &str = "committed ";

/// Not a test: the crash test's writer process. With [`WRITER_URL`] set it writes
/// documents, each with a durable event in the same transaction, as fast as it can,
/// and reports each commit on stdout, until it is killed or has written
/// [`WRITER_COUNT`]; without it, it returns at once.
#[tokio::test]
async fn crash_writer() {
    let Ok(url) = std::env::var(WRITER_URL) else {
        return;
    };
    let config = StoreConfig {
        schema: std::env::var(WRITER_SCHEMA).ok(),
        ..StoreConfig::with_url(url)
    };
    let count: u64 = std::env::var(WRITER_COUNT).unwrap().parse().unwrap();
    let ds = DataStore::connect(&config).await.unwrap();
    ds.create_collection("crash", CollectionSpec::default())
        .await
        .unwrap();
    let outbox = Outbox::open(ds, OutboxConfig::default()).await.unwrap();
    outbox.declare_durable("crash.>").unwrap();
    let mut out = std::io::stdout().lock();
    for n in 0..count {
        let (_, appended) = outbox
            .put(
                "crash",
                &format!("d{n}"),
                &json!({"n": n}),
                PutMode::Insert,
                None,
                vec![event("crash.written", json!({"n": n}))],
            )
            .await
            .unwrap();
        for a in appended {
            // Printed only after the commit: every line names a committed event.
            writeln!(out, "{COMMITTED}{n} {} {}", a.id, a.offset).unwrap();
        }
        out.flush().unwrap();
    }
}

/// The writer: this test binary running only [`crash_writer`], on `place`.
fn writer(place: &Place) -> Command {
    let config = place.config();
    // The harness names tests by their path below the crate root.
    let module = module_path!()
        .split_once("::")
        .map_or(module_path!(), |(_, m)| m);
    let mut command = Command::new(std::env::current_exe().unwrap());
    command
        .args(["--exact", &format!("{module}::crash_writer"), "--nocapture"])
        .env(WRITER_URL, &config.url)
        .env(WRITER_COUNT, COUNT);
    match &config.schema {
        Some(schema) => command.env(WRITER_SCHEMA, schema),
        None => command.env_remove(WRITER_SCHEMA),
    };
    command
}

/// A line reporting a commit: the event id and its document's number.
fn committed(line: &str) -> Option<(EventId, u64)> {
    let (_, report) = line.split_once(COMMITTED)?;
    let mut parts = report.split(' ');
    let n: u64 = parts.next().unwrap().parse().unwrap();
    let id: uuid::Uuid = parts.next().unwrap().parse().unwrap();
    Some((EventId::from_uuid(id), n))
}

async fn a_killed_writer_loses_no_committed_event(kind: BackendKind) {
    let place = Place::new(kind);
    let mut child = writer(&place)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let mut reported: HashMap<EventId, u64> = HashMap::new();
    while reported.len() < BEFORE_KILL {
        let line = tokio::time::timeout(PATIENCE, lines.next_line())
            .await
            .expect("the writer stalled")
            .unwrap()
            .expect("the writer ended early");
        if let Some((id, n)) = committed(&line) {
            reported.insert(id, n);
        }
    }
    let pid = Pid::from_raw(i32::try_from(child.id().unwrap()).unwrap());
    kill(pid, Signal::SIGKILL).unwrap();
    let status = tokio::time::timeout(PATIENCE, child.wait())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(status.signal(), Some(Signal::SIGKILL as i32), "{status:?}");
    // Whatever it printed before dying is still in the pipe.
    while let Some(line) = lines.next_line().await.unwrap() {
        if let Some((id, n)) = committed(&line) {
            reported.insert(id, n);
        }
    }

    // Restart: a new process opens the same database and runs a relay.
    let ds = place.open().await;
    let committed = ds.count("crash", &Filter::All).await.unwrap();
    assert!(committed >= reported.len() as u64);
    let outbox = Outbox::open(ds.clone(), OutboxConfig::default())
        .await
        .unwrap();
    outbox.declare_durable("crash.>").unwrap();
    assert_eq!(outbox.pending().await.unwrap(), committed);
    let bus = Bus::new();
    let mut sub = bus
        .subscribe("crash.>", SubscribeOptions::new().capacity(1 << 16))
        .unwrap();
    let relay = outbox
        .spawn_relay(bus.clone(), RelayConfig::default())
        .unwrap();
    let mut delivered: HashMap<EventId, u64> = HashMap::new();
    let mut deliveries = 0u64;
    while (delivered.len() as u64) < committed {
        let e = tokio::time::timeout(PATIENCE, sub.recv())
            .await
            .unwrap_or_else(|_| panic!("{} of {committed} delivered", delivered.len()))
            .unwrap();
        deliveries += 1;
        let n = payload_of(&e)["n"].as_u64().unwrap();
        // A duplicate carries the id the first delivery had, for the same document.
        if let Some(previous) = delivered.insert(e.id(), n) {
            assert_eq!(previous, n);
        }
    }
    let mut watch = relay.watch();
    tokio::time::timeout(PATIENCE, watch.wait_for(|s| s.delivered == committed))
        .await
        .unwrap()
        .unwrap();
    relay.shutdown().await;
    assert!(sub.try_recv().is_none());
    assert_eq!(deliveries, committed, "no duplicates after a clean restart");

    // Every reported event was delivered, with the document it was written with.
    for (id, n) in &reported {
        assert_eq!(delivered.get(id), Some(n), "event {id} of document d{n}");
    }
    // Exactly the committed documents have events: d0..d{committed-1}.
    let ns: HashSet<u64> = delivered.values().copied().collect();
    assert_eq!(ns, (0..committed).collect::<HashSet<u64>>());
    for n in [0, committed - 1] {
        assert!(ds.get("crash", &format!("d{n}")).await.unwrap().is_some());
    }
    assert_eq!(outbox.pending().await.unwrap(), 0);
    ds.store().close().await;
    place.remove().await;
}
