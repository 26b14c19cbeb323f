//! `plexus_mcp::bench::tool_calls`, the measure behind `mcp_call_c16`, runs and
//! counts only real results. `PLEXUS_MCP_BENCH_MS` sets how long (default 500 ms);
//! run with `--nocapture` to see the figure.

use std::time::Duration;

use serde_json::json;

use crate::support::Harness;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sixteen_clients_call_a_tool_concurrently() {
    let h = Harness::start().await;
    let millis = std::env::var("PLEXUS_MCP_BENCH_MS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(500);
    let run = plexus_mcp::bench::tool_calls(
        &h.url,
        "echo.say",
        json!({"text": "bench"}),
        16,
        Duration::from_millis(millis),
    )
    .await
    .unwrap();
    println!(
        "mcp_call_c16: {:.0} calls/s, p50 {} us, p99 {} us ({} calls, {} errors in {:?})",
        run.calls_per_sec, run.p50_us, run.p99_us, run.calls, run.errors, run.elapsed
    );
    assert_eq!(run.clients, 16);
    assert!(run.calls > 16, "{run:?}");
    assert_eq!(run.errors, 0, "{run:?}");
    assert!(run.p99_us >= run.p50_us);

    // A call that fails is counted as an error, not as a call.
    let failing = plexus_mcp::bench::tool_calls(
        &h.url,
        "echo.say",
        json!({"text": 1}),
        2,
        Duration::from_millis(50),
    )
    .await
    .unwrap();
    assert_eq!(failing.calls, 0, "{failing:?}");
    assert!(failing.errors > 0);
}
