//! `plexus_bench::mcp::tool_calls`, the measure behind `mcp_call_c16`, runs against a
//! real node's `/mcp` and counts only real results. `PLEXUS_MCP_BENCH_MS` sets how
//! long (default 500 ms); run with `--nocapture` to see the figure.
#![allow(clippy::unwrap_used)]

use std::sync::Arc;
use std::time::Duration;

use plexus_core::{
    CallContext, MethodDescriptor, Service, ServiceDescriptor, ServiceError, async_trait,
};
use serde_json::{Value, json};

/// `echo.say {text}` answers its params.
struct Echo;

#[async_trait]
impl Service for Echo {
    fn descriptor(&self) -> ServiceDescriptor {
        ServiceDescriptor::new("echo", "bench").with_method(
            MethodDescriptor::new("say")
                .idempotent()
                .with_params(json!({
                    "type": "object",
                    "properties": {"text": {"type": "string"}},
                    "required": ["text"]
                })),
        )
    }

    async fn call(&self, _: &str, params: Value, _: CallContext) -> Result<Value, ServiceError> {
        Ok(params)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sixteen_clients_call_a_tool_concurrently() {
    let toml = "[node]\ndatastore = false\n[gateway]\nbind = \"127.0.0.1:0\"\n";
    let app = plexus_app::App::builder()
        .toml(toml)
        .service(Arc::new(Echo))
        .start()
        .await
        .unwrap();
    let listening = app.listen().await.unwrap();
    let url = format!("http://{}/mcp", listening.local_addr().unwrap());
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let served = tokio::spawn(app.serve(listening, async {
        let _ = stopped.await;
    }));

    let millis = std::env::var("PLEXUS_MCP_BENCH_MS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(500);
    let run = plexus_bench::mcp::tool_calls(
        &url,
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
    let failing = plexus_bench::mcp::tool_calls(
        &url,
        "echo.say",
        json!({"text": 1}),
        2,
        Duration::from_millis(50),
    )
    .await
    .unwrap();
    assert_eq!(failing.calls, 0, "{failing:?}");
    assert!(failing.errors > 0);

    let _ = stop.send(());
    served.await.unwrap().unwrap();
}
