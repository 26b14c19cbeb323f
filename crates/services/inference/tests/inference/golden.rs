//! Usage and cost per wire format, answered and streamed: the tokens each
//! provider reported, the cost from the price table, and an estimate (marked) when
//! the provider reported none.

use futures::StreamExt;
use plexus_inference::testing::{Behaviour, COMPLETION_TOKENS, PROMPT_TOKENS, REPLY};
use serde_json::Value;

use crate::support::*;

/// (7 × 1 + 5 × 2) / 1e6 USD.
const GOLDEN_COST: f64 = 17e-6;

fn usage(v: &Value) -> (u64, u64) {
    (
        v.pointer("/usage/prompt_tokens")
            .and_then(Value::as_u64)
            .unwrap(),
        v.pointer("/usage/completion_tokens")
            .and_then(Value::as_u64)
            .unwrap(),
    )
}

#[tokio::test]
async fn every_wire_format_reports_usage_and_cost_answered_and_streamed() {
    for wire in WIRES {
        let f = fake(wire).await;
        let e = engine(config(&[&f], serde_json::json!({})));
        let answer = e.chat(request("chain"), Some("alice")).await.unwrap();
        assert_eq!(
            answer.pointer("/choices/0/message/content").unwrap(),
            REPLY,
            "{wire:?}"
        );
        assert_eq!(
            usage(&answer),
            (PROMPT_TOKENS, COMPLETION_TOKENS),
            "{wire:?}"
        );
        assert_eq!(
            answer.pointer("/plexus/usage_estimated"),
            Some(&Value::Bool(false))
        );
        let cost = answer
            .pointer("/plexus/cost_usd")
            .and_then(Value::as_f64)
            .unwrap();
        assert!((cost - GOLDEN_COST).abs() < 1e-12, "{wire:?}: {cost}");

        let mut stream = e
            .chat_stream(request("chain"), Some("alice"))
            .await
            .unwrap();
        let mut text = String::new();
        let mut last = Value::Null;
        while let Some(chunk) = stream.next().await {
            let chunk = chunk.unwrap();
            if let Some(t) = chunk
                .pointer("/choices/0/delta/content")
                .and_then(Value::as_str)
            {
                text.push_str(t);
            }
            last = chunk;
        }
        assert_eq!(text, REPLY, "{wire:?}");
        assert_eq!(
            usage(&last),
            (PROMPT_TOKENS, COMPLETION_TOKENS),
            "{wire:?}: {last}"
        );
        let cost = last
            .pointer("/plexus/cost_usd")
            .and_then(Value::as_f64)
            .unwrap();
        assert!((cost - GOLDEN_COST).abs() < 1e-12, "{wire:?}: {cost}");
        assert!((e.spent("alice") - 2.0 * GOLDEN_COST).abs() < 1e-12);
        assert_eq!(e.metrics().tokens("m0", "prompt"), 2 * PROMPT_TOKENS);
        assert_eq!(
            e.metrics().tokens("m0", "completion"),
            2 * COMPLETION_TOKENS
        );
    }
}

#[tokio::test]
async fn a_stream_without_usage_is_estimated_and_marked() {
    for wire in WIRES {
        let f = fake(wire).await;
        f.always(Behaviour::NoUsage);
        let e = engine(config(&[&f], serde_json::json!({})));
        let mut stream = e.chat_stream(request("chain"), None).await.unwrap();
        let mut last = Value::Null;
        while let Some(chunk) = stream.next().await {
            last = chunk.unwrap();
        }
        // "Be brief." + "Say hello" = 18 characters → 5 tokens; the reply's 29 → 8.
        assert_eq!(usage(&last), (5, 8), "{wire:?}: {last}");
        assert_eq!(
            last.pointer("/plexus/usage_estimated"),
            Some(&Value::Bool(true)),
            "{wire:?}"
        );
        let cost = last
            .pointer("/plexus/cost_usd")
            .and_then(Value::as_f64)
            .unwrap();
        assert!((cost - 21e-6).abs() < 1e-12, "{wire:?}: {cost}");
    }
}
