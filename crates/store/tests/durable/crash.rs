//! A writer killed with SIGKILL in the middle of writing durable events: after a
//! restart every committed event is delivered — each event the writer reported,
//! and exactly the events whose documents exist — and duplicates, if any, carry the
//! same event id.

use std::collections::{HashMap, HashSet};
use std::os::unix::process::ExitStatusExt;
use std::process::Stdio;

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use plexus_bus::{Bus, SubscribeOptions};
use plexus_core::EventId;
use plexus_store::{BackendKind, Filter, Outbox, OutboxConfig, RelayConfig};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::Command;

use crate::support::{PATIENCE, Place, payload_of};

crate::on_both!(a_killed_writer_loses_no_committed_event);

/// Lines to read before the kill.
const BEFORE_KILL: usize = 300;
/// More than the writer can write before it is killed.
const COUNT: &str = "100000000";

async fn a_killed_writer_loses_no_committed_event(kind: BackendKind) {
    let place = Place::new(kind);
    let config = place.config();
    let schema = config.schema.clone().unwrap_or_else(|| "-".to_owned());
    let mut child = Command::new(env!("CARGO_BIN_EXE_plexus-store-crash-writer"))
        .args([&config.url, &schema, COUNT])
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let mut reported: HashMap<EventId, u64> = HashMap::new();
    let parse = |line: &str| {
        let mut parts = line.split(' ');
        let n: u64 = parts.next().unwrap().parse().unwrap();
        let id: uuid::Uuid = parts.next().unwrap().parse().unwrap();
        (EventId::from_uuid(id), n)
    };
    while reported.len() < BEFORE_KILL {
        let line = tokio::time::timeout(PATIENCE, lines.next_line())
            .await
            .expect("the writer stalled")
            .unwrap()
            .expect("the writer ended early");
        let (id, n) = parse(&line);
        reported.insert(id, n);
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
        if let Some((id, n)) = line.contains(' ').then(|| parse(&line)) {
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
