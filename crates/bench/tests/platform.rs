//! The agent platform's load test through `POST /rpc`: 100 concurrent users send
//! 1,000 requests mixed across the cache, locks, rate limits and sessions of a node
//! on Redis, and every one of them must be answered as it must be. (The original
//! claimed "over 500 requests/s, over 94% success" on mocks.) The rate and p99 are
//! printed; the figure held to a target is `platform_mix_c100` in
//! `plexus bench redis`.

use plexus_bench::platform::{Load, Node, run};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hundred_users_send_a_thousand_requests_and_every_one_succeeds() {
    let url =
        std::env::var("PLEXUS_TEST_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into());
    let prefix = format!("plexus-test:platform:{}:", std::process::id());
    let node = Node::start(&url, &prefix).await.expect("the node starts");
    let measured = run(
        node.addr,
        Load {
            users: 100,
            requests: 1_000,
        },
    )
    .await;
    node.stop().await;
    let measured = measured.expect("every request succeeds");
    assert_eq!(measured.requests, 1_000);
    println!(
        "platform load: {} requests, {:.0} requests/s, p99 {:.0} us",
        measured.requests, measured.per_second, measured.p99_us
    );
}
