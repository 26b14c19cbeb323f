//! Nodes as one cluster on NATS: `plexus cluster status`, durable events across
//! killed nodes and a restarted NATS server.

use plexus_pubsub::testing::PrivateNats;

use super::*;

/// Two `plexus serve` nodes with `[cluster]` on the test NATS: `plexus cluster
/// status` on either lists both, each with its instances, all healthy.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cluster_status_lists_every_node_of_the_cluster() {
    let nats = std::env::var("PLEXUS_TEST_NATS_URL")
        .unwrap_or_else(|_| "nats://127.0.0.1:4222".to_owned());
    let id = std::process::id();
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    let bucket = format!("plexus_test_cli_{id}_{nanos}");
    let config = |name: &str| {
        format!(
            "[node]\nname = \"{name}\"\n[cluster]\nnats_url = \"{nats}\"\nregistry_bucket = \"{bucket}\"\ncall_prefix = \"plexus.test.{id}.{nanos}.call\"\n"
        )
    };
    let (dir_a, dir_b) = (temp_dir("cluster-a"), temp_dir("cluster-b"));
    let mut a = Server::start(&dir_a, &config("a")).await;
    let mut b = Server::start(&dir_b, &config("b")).await;
    let nodes = tokio::time::timeout(WAIT, async {
        loop {
            let status = a.json(&["cluster", "status", "--json"]).await;
            let names: Vec<&str> = status
                .as_array()
                .unwrap()
                .iter()
                .filter_map(|n| n["node"].as_str())
                .collect();
            if names == ["a", "b"] {
                return status;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await
    .expect("node a lists nodes a and b");
    for node in nodes.as_array().unwrap() {
        let instances = node["instances"].as_u64().unwrap();
        assert!(instances >= 5, "{node}");
        assert!(
            node["services"]
                .as_array()
                .unwrap()
                .contains(&json!("cache")),
            "{node}"
        );
    }
    let table = a.cli(&["cluster", "status"]).await.ok();
    assert!(table.stdout.contains("NODE") && table.stdout.contains("HEARTBEAT AGE"));
    assert_eq!(a.terminate().await, 0);
    assert_eq!(b.terminate().await, 0);
    let client = async_nats::connect(nats.as_str()).await.unwrap();
    async_nats::jetstream::new(client)
        .delete_key_value(&bucket)
        .await
        .unwrap();
}

/// Durable topics survive a node killed with SIGKILL: node `b`'s durable consumer
/// takes the events published on node `a`; `b` is killed, misses 40 events
/// published meanwhile, and when it comes back under the same name its consumer
/// resumes and its bus takes every one of them (its own counters say so, and its
/// lag goes back to 0).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_killed_with_sigkill_gets_every_durable_event_when_it_comes_back() {
    let nats = std::env::var("PLEXUS_TEST_NATS_URL")
        .unwrap_or_else(|_| "nats://127.0.0.1:4222".to_owned());
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    let id = format!("{}_{nanos}", std::process::id());
    let (bucket, stream) = (
        format!("plexus_test_kill_{id}"),
        format!("plexus_test_kill_{id}"),
    );
    let config = |name: &str| {
        format!(
            "[node]\nname = \"{name}\"\n\
             [store]\ndurable_topics = [\"orders.>\"]\n[store.relay]\npoll_interval_ms = 50\n\
             [cluster]\nnats_url = \"{nats}\"\nregistry_bucket = \"{bucket}\"\n\
             call_prefix = \"plexus.test.{id}.call\"\ndurable_topics = [\"orders.>\"]\n\
             durable_stream = \"{stream}\"\ndurable_subject_prefix = \"plexus.test.{id}.durable\"\n\
             durable_ack_wait_ms = 1000\n"
        )
    };
    let (dir_a, dir_b) = (temp_dir("kill-a"), temp_dir("kill-b"));
    let mut a = Server::start(&dir_a, &config("a")).await;
    let mut b = Server::start(&dir_b, &config("b")).await;
    let a_client = Client::new(&a.url, None).unwrap();
    let publish = |from: u32, to: u32| {
        let a_client = a_client.clone();
        async move {
            for n in from..to {
                let kept = a_client
                    .call(
                        "plexus.publish",
                        json!({"topic": "orders.created", "payload": {"n": n}}),
                    )
                    .await
                    .unwrap();
                assert!(kept["offset"].is_u64(), "{kept}");
            }
        }
    };
    // Waits until the node at `url` says its bus took at least `n` durable events
    // since it started and none is left for it in the stream.
    let taken = |url: String, n: u64| async move {
        let metrics = format!("{url}/metrics");
        let acknowledged = "plexus_cluster_durable_events_total{event=\"acknowledged\"} ";
        tokio::time::timeout(WAIT, async {
            let mut every = tokio::time::interval(Duration::from_millis(50));
            loop {
                every.tick().await;
                let Ok(answer) = reqwest::get(&metrics).await else {
                    continue;
                };
                let text = answer.text().await.unwrap_or_default();
                let count = text
                    .lines()
                    .find_map(|l| l.strip_prefix(acknowledged))
                    .and_then(|v| v.trim().parse::<u64>().ok())
                    .unwrap_or(0);
                if count >= n && text.contains("plexus_cluster_durable_lag 0") {
                    return;
                }
            }
        })
        .await
        .unwrap_or_else(|_| panic!("the node at {url} never took {n} durable events"));
    };
    publish(0, 20).await;
    taken(b.url.clone(), 20).await;

    let pid = Pid::from_raw(b.child.id().unwrap() as i32);
    kill(pid, Signal::SIGKILL).unwrap();
    let status = tokio::time::timeout(WAIT, b.child.wait())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(status.code(), None, "killed by a signal");
    publish(20, 60).await;

    // Back under the same name and data: its durable consumer resumes where it
    // acknowledged, and its bus takes the 40 it missed.
    let b = Server::start(&dir_b, &config("b")).await;
    taken(b.url.clone(), 40).await;
    drop(b);
    assert_eq!(a.terminate().await, 0);
    let js = async_nats::jetstream::new(async_nats::connect(nats.as_str()).await.unwrap());
    js.delete_stream(&stream).await.unwrap();
    js.delete_key_value(&bucket).await.unwrap();
}

/// The configuration of a node of a durable cluster on `nats` (a fresh bucket,
/// stream and prefixes named by `id`), with more `[cluster]` keys in `extra`.
fn durable_node(name: &str, nats: &str, id: &str, extra: &str) -> String {
    format!(
        "[node]\nname = \"{name}\"\n\
         [gateway]\nws_subscription_capacity = 262144\n\
         [store]\ndurable_topics = [\"orders.>\"]\n[store.relay]\npoll_interval_ms = 50\n\
         [cluster]\nnats_url = \"{nats}\"\nregistry_bucket = \"plexus_test_{id}\"\n\
         call_prefix = \"plexus.test.{id}.call\"\ndurable_topics = [\"orders.>\"]\n\
         durable_stream = \"plexus_test_{id}\"\ndurable_subject_prefix = \"plexus.test.{id}.durable\"\n\
         durable_ack_wait_ms = 1000\n{extra}"
    )
}

/// What a `/ws` subscriber of `orders.>` on one node saw: each envelope id with
/// how many times it came.
#[derive(Clone, Default)]
struct Seen {
    ids: Arc<std::sync::Mutex<std::collections::HashMap<String, u32>>>,
    count: Arc<watch::Sender<u64>>,
}

impl Seen {
    /// Subscribes on the node at `url` and records what comes until the socket
    /// ends.
    async fn subscribe(&self, url: &str) -> tokio::task::JoinHandle<()> {
        use futures::StreamExt;
        let mut events = Client::new(url, None)
            .unwrap()
            .subscribe("orders.>")
            .await
            .unwrap();
        let seen = self.clone();
        tokio::spawn(async move {
            while let Some(Ok(event)) = events.next().await {
                *seen.ids.lock().unwrap().entry(event.id).or_default() += 1;
                seen.count.send_modify(|n| *n += 1);
            }
        })
    }

    /// The ids of `wanted` not seen yet.
    fn missing<'a>(&self, wanted: impl IntoIterator<Item = &'a String>) -> Vec<String> {
        let ids = self.ids.lock().unwrap();
        wanted
            .into_iter()
            .filter(|id| !ids.contains_key(*id))
            .cloned()
            .collect()
    }

    /// Waits, within `bound`, until every id of `wanted` was seen; returns the ids
    /// still missing then (none when it succeeded).
    async fn wait_for(&self, wanted: &[String], bound: Duration) -> Vec<String> {
        let mut count = self.count.subscribe();
        let all = async {
            loop {
                if self.missing(wanted).is_empty() {
                    return;
                }
                if count.changed().await.is_err() {
                    return;
                }
            }
        };
        let _ = tokio::time::timeout(bound, all).await;
        self.missing(wanted)
    }

    /// (deliveries, distinct ids).
    fn totals(&self) -> (u64, u64) {
        let ids = self.ids.lock().unwrap();
        (ids.values().map(|&n| u64::from(n)).sum(), ids.len() as u64)
    }
}

/// One counter of a node's `/metrics` (0 when absent or unreadable).
async fn metric(url: &str, line_start: &str) -> u64 {
    let Ok(answer) = reqwest::get(format!("{url}/metrics")).await else {
        return 0;
    };
    answer
        .text()
        .await
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix(line_start))
        .and_then(|v| v.trim().parse::<f64>().ok())
        .map_or(0, |v| v as u64)
}

fn durable_counter(event: &str) -> String {
    format!("plexus_cluster_durable_events_total{{event=\"{event}\"}} ")
}

/// Waits within `WAIT` until the node at `url` counted at least `n` durable
/// events as `event`.
async fn until_counted(url: &str, event: &str, n: u64) {
    let line = durable_counter(event);
    tokio::time::timeout(WAIT, async {
        let mut every = tokio::time::interval(Duration::from_millis(50));
        loop {
            every.tick().await;
            if metric(url, &line).await >= n {
                return;
            }
        }
    })
    .await
    .unwrap_or_else(|_| panic!("the node at {url} never counted {n} durable events {event}"));
}

/// Publishes `orders.created {n}` through the node at `url`; the event's id once
/// the node answered with its offset (kept in its outbox).
async fn publish_durable(client: &Client, n: u64) -> Result<String, String> {
    let kept = client
        .call(
            "plexus.publish",
            json!({"topic": "orders.created", "payload": {"n": n}}),
        )
        .await
        .map_err(|e| e.to_string())?;
    match (kept["offset"].as_u64(), kept["id"].as_str()) {
        (Some(_), Some(id)) => Ok(id.to_owned()),
        _ => Err(format!("no offset in {kept}")),
    }
}

/// Durable events across three nodes under faults. Events (`PLEXUS_TEST_DURABLE_EVENTS`,
/// default 3,000) are published through nodes `a`, `b` and `c` in turn by eight
/// publishers, on a private nats-server. A quarter of the way in, node `b` is
/// killed with SIGKILL and started again (same name, same data); halfway, the
/// NATS server is restarted (same port, same store). Every event a node answered
/// with an offset must then be:
/// - delivered at least once to the `/ws` subscribers of nodes `a` and `c`, which
///   ran throughout, and exactly once after dedupe by envelope id;
/// - in the stream exactly once (JetStream dropped the relays' retries), read back
///   with `plexus.replay`;
/// - acknowledged by node `b`'s durable consumer: JetStream says it holds nothing
///   pending or unacknowledged for `b` and its acknowledgements reach the stream's
///   last event.
///
/// It prints the figures (time, publishes refused, redeliveries, duplicates
/// dropped, lost).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn durable_events_survive_a_killed_node_and_a_restarted_nats_server() {
    use std::collections::HashSet;
    use std::sync::atomic::{AtomicU64, Ordering};

    let total: u64 = std::env::var("PLEXUS_TEST_DURABLE_EVENTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(3_000);
    let started = std::time::Instant::now();
    let root = temp_dir("durable-faults");
    let mut nats = PrivateNats::start().await;
    let id = format!("faults_{}", std::process::id());
    let url = nats.url();
    let config = |name: &str| durable_node(name, &url, &id, "");
    let dirs: Vec<PathBuf> = ["a", "b", "c"]
        .iter()
        .map(|n| {
            let dir = root.join(n);
            std::fs::create_dir_all(&dir).unwrap();
            dir
        })
        .collect();
    let a = Server::start(&dirs[0], &config("a")).await;
    let mut b = Server::start(&dirs[1], &config("b")).await;
    let c = Server::start(&dirs[2], &config("c")).await;
    let (seen_a, seen_c) = (Seen::default(), Seen::default());
    seen_a.subscribe(&a.url).await;
    seen_c.subscribe(&c.url).await;

    // Eight publishers take the next number and publish it through the next node
    // in turn; a node that does not answer with an offset (b while it is down)
    // passes the number on to the next node.
    let clients = Arc::new(std::sync::RwLock::new(
        [&a, &b, &c].map(|s| Client::new(&s.url, None).unwrap()),
    ));
    let next = Arc::new(AtomicU64::new(0));
    let acked = Arc::new(std::sync::Mutex::new(Vec::<String>::new()));
    let (progress, mut progressed) = watch::channel(0u64);
    let progress = Arc::new(progress);
    let refused = Arc::new(AtomicU64::new(0));
    let publishers: Vec<_> = (0..8)
        .map(|_| {
            let (clients, next, acked) = (clients.clone(), next.clone(), acked.clone());
            let (progress, refused) = (progress.clone(), refused.clone());
            tokio::spawn(async move {
                loop {
                    let n = next.fetch_add(1, Ordering::Relaxed);
                    if n >= total {
                        return;
                    }
                    let mut node = n as usize % 3;
                    let mut tries = 0;
                    let id = loop {
                        let client = clients.read().unwrap()[node].clone();
                        match publish_durable(&client, n).await {
                            Ok(id) => break id,
                            Err(error) => {
                                tries += 1;
                                assert!(tries < 300, "event {n} was never kept: {error}");
                                refused.fetch_add(1, Ordering::Relaxed);
                                node = (node + 1) % 3;
                            }
                        }
                    };
                    acked.lock().unwrap().push(id);
                    progress.send_modify(|k| *k += 1);
                }
            })
        })
        .collect();

    // The faults, at a quarter and at half of the events acknowledged.
    progressed.wait_for(|&k| k >= total / 4).await.unwrap();
    sigkill(&mut b).await;
    let killed_at = *progressed.borrow();
    b = Server::start(&dirs[1], &config("b")).await;
    clients.write().unwrap()[1] = Client::new(&b.url, None).unwrap();
    progressed.wait_for(|&k| k >= total / 2).await.unwrap();
    nats.stop().await;
    let nats_stopped_at = *progressed.borrow();
    nats.start_again().await;
    for publisher in publishers {
        publisher.await.unwrap();
    }
    let published_in = started.elapsed();
    let acked: Vec<String> = acked.lock().unwrap().clone();
    assert_eq!(acked.len() as u64, total);
    assert_eq!(
        acked.iter().collect::<HashSet<_>>().len() as u64,
        total,
        "every acknowledged publish has an id of its own"
    );

    // Every acknowledged event reaches a's and c's subscribers.
    let bound = WAIT + Duration::from_millis(total);
    let lost_a = seen_a.wait_for(&acked, bound).await;
    let lost_c = seen_c.wait_for(&acked, bound).await;
    let delivered_in = started.elapsed();

    // The stream holds each of them once, read back page by page through a
    // until a page comes back empty.
    let a_client = Client::new(&a.url, None).unwrap();
    let mut in_stream = Vec::new();
    let mut from = 1;
    loop {
        let page = a_client
            .call(
                "plexus.replay",
                json!({"pattern": "orders.>", "from_offset": from, "limit": 10_000}),
            )
            .await
            .unwrap();
        let events = page["events"].as_array().unwrap();
        let Some(last) = events.last() else {
            break;
        };
        from = last["offset"].as_u64().unwrap() + 1;
        for event in events {
            in_stream.push(event["envelope"]["id"].as_str().unwrap().to_owned());
        }
    }
    let stream_ids: HashSet<&String> = in_stream.iter().collect();
    let missing_in_stream = acked.iter().filter(|i| !stream_ids.contains(i)).count();
    let stream_copies = in_stream.len() - stream_ids.len();

    // b's durable consumer acknowledged the whole stream.
    let js = async_nats::jetstream::new(async_nats::connect(nats.url()).await.unwrap());
    let consumer_b = tokio::time::timeout(bound, async {
        let mut every = tokio::time::interval(Duration::from_millis(100));
        loop {
            every.tick().await;
            let Ok(mut stream) = js.get_stream(format!("plexus_test_{id}")).await else {
                continue;
            };
            let Ok(last) = stream.info().await.map(|i| i.state.last_sequence) else {
                continue;
            };
            let Ok(mut consumer) = stream
                .get_consumer::<async_nats::jetstream::consumer::pull::Config>("plexus_node_b")
                .await
            else {
                continue;
            };
            let Ok(info) = consumer.info().await else {
                continue;
            };
            if info.num_pending == 0
                && info.num_ack_pending == 0
                && info.ack_floor.stream_sequence == last
            {
                return (last, info.ack_floor.stream_sequence);
            }
        }
    })
    .await;

    let redelivered = durable_counter("redelivered");
    let mut redeliveries = Vec::new();
    for server in [&a, &b, &c] {
        redeliveries.push(metric(&server.url, &redelivered).await);
    }
    let ((deliveries_a, distinct_a), (deliveries_c, distinct_c)) =
        (seen_a.totals(), seen_c.totals());
    eprintln!(
        "durable faults: {total} events acknowledged in {:.1} s, all delivered after {:.1} s; \
         b killed after {killed_at}, NATS restarted after {nats_stopped_at}; \
         publishes refused (retried on another node): {}; \
         redelivered by the consumers of a, b (since its restart), c: {redeliveries:?}; \
         deliveries a/c: {deliveries_a}/{deliveries_c}, distinct a/c: {distinct_a}/{distinct_c}, \
         duplicates dropped by id a/c: {}/{}; copies in the stream: {stream_copies}; \
         lost a/c/stream: {}/{}/{missing_in_stream}; b's consumer caught up: {consumer_b:?}",
        published_in.as_secs_f64(),
        delivered_in.as_secs_f64(),
        refused.load(Ordering::Relaxed),
        deliveries_a - distinct_a,
        deliveries_c - distinct_c,
        lost_a.len(),
        lost_c.len(),
    );
    assert_eq!(
        (lost_a.len(), lost_c.len(), missing_in_stream),
        (0, 0, 0),
        "lost at a (first: {:?}), at c (first: {:?}), or missing in the stream",
        lost_a.first(),
        lost_c.first()
    );
    assert_eq!(stream_copies, 0, "the stream keeps each event once");
    let (last, floor) = consumer_b.expect("b's durable consumer acknowledges the whole stream");
    assert!(last >= total, "{last} events in the stream");
    assert_eq!(floor, last);

    drop(b);
    drop((a, c));
    nats.stop().await;
}

/// A node killed while it holds unacknowledged durable events gets them after it
/// comes back. Node `b` requires a subscriber (`durable_require_subscriber`) and
/// has none: its consumer receives the events published on `a` but does not
/// acknowledge them. Then NATS stops, `b` keeps 20 events of its own in its outbox
/// that its relay cannot hand on, and `b` is killed with SIGKILL. NATS and `b` come
/// back: `b`'s relay hands on its 20 (they reach `a`), and `b`'s consumer gets all
/// 40 again, the 20 from `a` counted as redelivered.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_killed_with_unacknowledged_events_gets_them_again_when_it_comes_back() {
    let root = temp_dir("durable-unacked");
    let mut nats = PrivateNats::start().await;
    let id = format!("unacked_{}", std::process::id());
    let (dir_a, dir_b) = (root.join("a"), root.join("b"));
    std::fs::create_dir_all(&dir_a).unwrap();
    std::fs::create_dir_all(&dir_b).unwrap();
    let url = nats.url();
    let config_b = || durable_node("b", &url, &id, "durable_require_subscriber = true\n");
    let a = Server::start(&dir_a, &durable_node("a", &url, &id, "")).await;
    let mut b = Server::start(&dir_b, &config_b()).await;
    let seen_a = Seen::default();
    seen_a.subscribe(&a.url).await;

    let a_client = Client::new(&a.url, None).unwrap();
    let mut from_a = Vec::new();
    for n in 0..20 {
        from_a.push(publish_durable(&a_client, n).await.unwrap());
    }
    assert_eq!(seen_a.wait_for(&from_a, WAIT).await, Vec::<String>::new());
    // b's consumer got all 20 and acknowledged none (nothing subscribes there).
    until_counted(&b.url, "unmatched", 20).await;
    assert_eq!(metric(&b.url, &durable_counter("acknowledged")).await, 0);

    // NATS goes away: what b keeps now stays in its outbox.
    nats.stop().await;
    let b_client = Client::new(&b.url, None).unwrap();
    let mut from_b = Vec::new();
    for n in 20..40 {
        from_b.push(publish_durable(&b_client, n).await.unwrap());
    }
    sigkill(&mut b).await;
    nats.start_again().await;
    let b = Server::start(&dir_b, &config_b()).await;
    let seen_b = Seen::default();
    seen_b.subscribe(&b.url).await;

    let all: Vec<String> = from_a.iter().chain(&from_b).cloned().collect();
    assert_eq!(
        seen_a.wait_for(&from_b, WAIT).await,
        Vec::<String>::new(),
        "b's relay hands on what it kept"
    );
    assert_eq!(
        seen_b.wait_for(&all, WAIT).await,
        Vec::<String>::new(),
        "b's consumer gets every event again"
    );
    let redelivered = metric(&b.url, &durable_counter("redelivered")).await;
    assert!(
        redelivered >= 20,
        "a's 20 came to b a second time: {redelivered}"
    );
    eprintln!(
        "unacknowledged at kill: b's consumer redelivered {redelivered}, a saw {:?}, b saw {:?} (deliveries, distinct)",
        seen_a.totals(),
        seen_b.totals()
    );
    drop((a, b));
    nats.stop().await;
}

/// The instances named `echo-…` node `client`'s node lists, with their status.
async fn echo_instances(client: &Client) -> Vec<(String, String)> {
    let Ok(services) = client.services().await else {
        return Vec::new();
    };
    services
        .as_array()
        .map(|records| {
            records
                .iter()
                .filter_map(|r| {
                    let instance = r["descriptor"]["instance"].as_str()?;
                    instance.starts_with("echo-").then(|| {
                        let status = r["status"].as_str().unwrap_or("").to_owned();
                        (instance.to_owned(), status)
                    })
                })
                .collect()
        })
        .unwrap_or_default()
}

/// Three `plexus serve` nodes; `echo` runs as an external Python instance on
/// nodes `a` and `b`, and 8 clients call `echo.say` (idempotent) through node
/// `c`. The calls are balanced over both; a third of the way in, node `b` is
/// killed with SIGKILL (its instance's process loses its node too). Calls fail
/// over to `a`: none that started later than one call deadline after the kill
/// fails (the failures before are counted and printed), and `b`'s instance goes
/// stale at `[registry] heartbeat_ttl_ms` and is removed after
/// `deregister_after_ms`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn calls_fail_over_when_a_node_running_the_service_is_killed_mid_load() {
    use std::sync::atomic::{AtomicU64, Ordering};

    const CALLS: u64 = 600;
    const DEADLINE: Duration = Duration::from_millis(2_000);
    let nats = std::env::var("PLEXUS_TEST_NATS_URL")
        .unwrap_or_else(|_| "nats://127.0.0.1:4222".to_owned());
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    let id = format!("{}_{nanos}", std::process::id());
    let bucket = format!("plexus_test_failover_{id}");
    let config = |name: &str| {
        format!(
            "[node]\nname = \"{name}\"\n\
             [registry]\nheartbeat_ttl_ms = 5000\nderegister_after_ms = 2000\nsweep_interval_ms = 100\n\
             [calls.default]\ntimeout_ms = {}\n\
             [cluster]\nnats_url = \"{nats}\"\nregistry_bucket = \"{bucket}\"\n\
             call_prefix = \"plexus.test.{id}.call\"\n",
            DEADLINE.as_millis()
        )
    };
    let dirs: Vec<PathBuf> = ["fo-a", "fo-b", "fo-c"].map(temp_dir).into();
    let a = Server::start(&dirs[0], &config("a")).await;
    let mut b = Server::start(&dirs[1], &config("b")).await;
    let c = Server::start(&dirs[2], &config("c")).await;
    let _echo_a = python_echo(&a, "echo-a");
    let _echo_b = python_echo(&b, "echo-b");
    let client = Client::new(&c.url, None).unwrap();
    let seen = std::sync::Mutex::new(Vec::new());
    let both = tokio::time::timeout(WAIT, async {
        let mut every = tokio::time::interval(Duration::from_millis(50));
        loop {
            every.tick().await;
            let now = echo_instances(&client).await;
            let healthy = now.iter().filter(|(_, status)| status == "healthy").count();
            *seen.lock().unwrap() = now;
            if healthy == 2 {
                return;
            }
        }
    })
    .await;
    assert!(
        both.is_ok(),
        "node c never saw both echo instances healthy: {seen:?}; {:?}; a: {:?}",
        client.services().await,
        Client::new(&a.url, None).unwrap().services().await
    );

    // Eight callers take the next number until CALLS are made; each call's start
    // (since the test began), outcome and answering instance are kept.
    let started = std::time::Instant::now();
    let next = Arc::new(AtomicU64::new(0));
    let (done_tx, mut done) = watch::channel(0u64);
    let done_tx = Arc::new(done_tx);
    let outcomes = Arc::new(std::sync::Mutex::new(Vec::new()));
    let callers: Vec<_> = (0..8)
        .map(|_| {
            let (client, next, outcomes, done_tx) = (
                client.clone(),
                next.clone(),
                outcomes.clone(),
                done_tx.clone(),
            );
            tokio::spawn(async move {
                while next.fetch_add(1, Ordering::Relaxed) < CALLS {
                    let at = started.elapsed();
                    let answer = client.call("echo.say", json!({"text": "hi"})).await;
                    let instance = answer
                        .as_ref()
                        .map(|a| a["instance"].as_str().unwrap_or("?").to_owned())
                        .map_err(ToString::to_string);
                    outcomes.lock().unwrap().push((at, instance));
                    done_tx.send_modify(|n| *n += 1);
                }
            })
        })
        .collect();
    tokio::time::timeout(WAIT, done.wait_for(|n| *n >= CALLS / 3))
        .await
        .unwrap()
        .unwrap();
    let killed_at = started.elapsed();
    sigkill(&mut b).await;
    for caller in callers {
        tokio::time::timeout(Duration::from_secs(60), caller)
            .await
            .expect("the callers finish")
            .unwrap();
    }

    let outcomes = outcomes.lock().unwrap().clone();
    assert_eq!(outcomes.len() as u64, CALLS);
    let before: Vec<_> = outcomes.iter().filter(|(at, _)| *at < killed_at).collect();
    for instance in ["echo-a", "echo-b"] {
        assert!(
            before.iter().any(|(_, r)| r.as_deref() == Ok(instance)),
            "{instance} answered no call before the kill"
        );
    }
    let failed: Vec<_> = outcomes.iter().filter(|(_, r)| r.is_err()).collect();
    let late: Vec<_> = failed
        .iter()
        .filter(|(at, _)| *at > killed_at + DEADLINE)
        .collect();
    assert!(
        late.is_empty(),
        "calls failed past one deadline after the kill: {late:?}"
    );
    let after_kill = outcomes.iter().filter(|(at, _)| *at >= killed_at).count();
    println!(
        "failover: {CALLS} calls, node b killed after {killed_at:?}; {} failed (all within \
         one {DEADLINE:?} deadline of the kill), {after_kill} started after it",
        failed.len()
    );

    // b's instance: stale after the TTL, then removed.
    let gone = tokio::time::timeout(WAIT, async {
        let mut every = tokio::time::interval(Duration::from_millis(50));
        let mut stale_seen = false;
        loop {
            every.tick().await;
            let instances = echo_instances(&client).await;
            match instances.iter().find(|(i, _)| i.starts_with("echo-b")) {
                Some((_, status)) if status != "healthy" => stale_seen = true,
                Some(_) => {}
                None => return (stale_seen, started.elapsed() - killed_at),
            }
        }
    })
    .await
    .expect("node b's instance is removed within the wait");
    println!(
        "failover: node b's instance removed {:?} after the kill",
        gone.1
    );
    assert!(gone.0, "node b's instance was stale before it was removed");
    assert!(
        gone.1 >= Duration::from_millis(5_000),
        "removed before its TTL: {gone:?}"
    );
    assert!(
        echo_instances(&client)
            .await
            .iter()
            .any(|(i, s)| i.starts_with("echo-a") && s == "healthy"),
        "a's instance stays"
    );
    let js = async_nats::jetstream::new(async_nats::connect(nats.as_str()).await.unwrap());
    js.delete_key_value(&bucket).await.unwrap();
}
