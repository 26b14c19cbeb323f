//! The InferenceEngine family in a whole node, configured by `[inference]` alone:
//! the OpenAI-compatible `/v1/chat/completions` and `/v1/models` the family brings
//! to the gateway (its `Parts::routes`), `inference.chat` over JSON-RPC, and the
//! `plexus_inference_*` metrics, against a fake provider on loopback.

mod support;

use plexus_inference::testing::{FakeProvider, REPLY, Wire};
use serde_json::{Value, json};
use support::Served;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_serves_the_openai_endpoint_from_configuration() {
    let fake = FakeProvider::start(Wire::OpenAi).await.unwrap();
    let extra = format!(
        "[inference.providers.local]\nkind = \"openai\"\nbase_url = \"{}\"\n\
         [[inference.models.fast]]\nprovider = \"local\"\nmodel = \"tiny\"\n\
         [inference.prices.tiny]\ninput_per_mtok = 1.0\noutput_per_mtok = 2.0\n",
        fake.base_url()
    );
    let node = Served::start("inference", "", &extra).await;
    let http = reqwest::Client::new();
    let base = format!("http://{}", node.addr);
    let request = json!({"model": "fast", "messages": [{"role": "user", "content": "hi"}]});
    let answer: Value = http
        .post(format!("{base}/v1/chat/completions"))
        .json(&request)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        answer.pointer("/choices/0/message/content"),
        Some(&json!(REPLY)),
        "{answer}"
    );
    let models: Value = http
        .get(format!("{base}/v1/models"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        models.pointer("/data/0/id"),
        Some(&json!("fast")),
        "{models}"
    );
    let over_rpc = node.client().call("inference.chat", request).await.unwrap();
    assert_eq!(
        over_rpc.pointer("/plexus/deployment"),
        Some(&json!("local/tiny"))
    );
    let metrics = http
        .get(format!("{base}/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains("plexus_inference_tokens_total{model=\"tiny\",kind=\"completion\"} 10"),
        "{metrics}"
    );
    assert!(metrics.contains("plexus_inference_cost_usd_total{model=\"tiny\"}"));
    node.stop().await;
}
