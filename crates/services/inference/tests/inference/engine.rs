//! Routing: fallback, breakers, retries honouring Retry-After, balancing, streams
//! failing over before their first content and failing after it, budgets, the
//! spend queue, raw bodies passing through, keys never shown.

use std::time::{Duration, Instant};

use futures::StreamExt;
use plexus_inference::testing::{Behaviour, REPLY, Wire};
use plexus_inference::{InferenceError, ProviderError};
use serde_json::{Value, json};

use crate::support::*;

fn deployment(answer: &Value) -> &str {
    answer
        .pointer("/plexus/deployment")
        .and_then(Value::as_str)
        .unwrap()
}

#[tokio::test]
async fn a_failing_deployment_falls_back_and_its_breaker_opens() {
    let (a, b) = (fake(Wire::OpenAi).await, fake(Wire::Anthropic).await);
    a.always(Behaviour::ServerError);
    let e = engine(config(&[&a, &b], json!({"retries": 0})));
    for i in 0..4 {
        let answer = e.chat(request("chain"), None).await.unwrap();
        assert_eq!(deployment(&answer), "p1/m1", "request {i}");
        assert_eq!(
            answer
                .pointer("/plexus/failed_attempts/0")
                .and_then(Value::as_str)
                .map(|s| s.starts_with("p0/m0")),
            Some(true)
        );
    }
    assert_eq!(a.requests(), 4);
    // Four failures in a window of four: open. The fifth request skips `a`.
    let answer = e.chat(request("chain"), None).await.unwrap();
    assert_eq!(deployment(&answer), "p1/m1");
    assert_eq!(
        a.requests(),
        4,
        "the open breaker kept the request from `a`"
    );
    assert!(answer.to_string().contains("circuit open"), "{answer}");
    let models = e.models();
    assert_eq!(
        models.pointer("/data/0/deployments/0/breaker"),
        Some(&json!("open")),
        "{models}"
    );
}

#[tokio::test]
async fn every_kind_of_failure_falls_back() {
    for behaviour in [
        Behaviour::ServerError,
        Behaviour::Malformed,
        Behaviour::Slow(Duration::from_secs(30)),
        Behaviour::RateLimited {
            retry_after_secs: 3600,
        },
    ] {
        let (a, b) = (fake(Wire::Gemini).await, fake(Wire::OpenAi).await);
        a.always(behaviour);
        let e = engine(config(&[&a, &b], json!({"retries": 0, "timeout_ms": 300})));
        let answer = e.chat(request("chain"), None).await.unwrap();
        assert_eq!(deployment(&answer), "p1/m1", "{behaviour:?}");
        let mut s = e.chat_stream(request("chain"), None).await.unwrap();
        let first = s.next().await.unwrap().unwrap();
        assert!(
            first.to_string().contains("chatcmpl-fake"),
            "{behaviour:?}: streamed from b"
        );
    }
}

#[tokio::test]
async fn a_429_is_retried_after_the_wait_it_asks_for() {
    let (a, b) = (fake(Wire::OpenAi).await, fake(Wire::OpenAi).await);
    a.then(Behaviour::RateLimited {
        retry_after_secs: 1,
    });
    let e = engine(config(
        &[&a, &b],
        json!({"retries": 1, "max_retry_after_ms": 5000}),
    ));
    let began = Instant::now();
    let answer = e.chat(request("chain"), None).await.unwrap();
    assert_eq!(deployment(&answer), "p0/m0");
    assert_eq!(a.requests(), 2);
    assert_eq!(b.requests(), 0);
    assert!(
        began.elapsed() >= Duration::from_secs(1),
        "Retry-After honoured"
    );

    // A wait longer than max_retry_after_ms goes to the next deployment at once.
    a.then(Behaviour::RateLimited {
        retry_after_secs: 60,
    });
    let answer = e.chat(request("chain"), None).await.unwrap();
    assert_eq!(deployment(&answer), "p1/m1");
    assert_eq!(a.requests(), 3);
}

#[tokio::test]
async fn deployments_of_equal_priority_are_balanced() {
    let (a, b) = (fake(Wire::OpenAi).await, fake(Wire::OpenAi).await);
    let mut c = config(&[&a, &b], json!({}));
    for d in c.models.get_mut("chain").unwrap() {
        d.priority = Some(0);
    }
    let e = engine(c);
    for _ in 0..6 {
        e.chat(request("chain"), None).await.unwrap();
    }
    assert_eq!((a.requests(), b.requests()), (3, 3));
}

#[tokio::test]
async fn a_stream_fails_over_before_its_first_content_and_fails_after_it() {
    for wire in WIRES {
        let (a, b) = (fake(wire).await, fake(Wire::OpenAi).await);
        let e = engine(config(&[&a, &b], json!({"retries": 0})));
        // Before content: an error event, a 500. The stream comes from `b`.
        for behaviour in [Behaviour::ErrorBeforeContent, Behaviour::ServerError] {
            a.then(behaviour);
            let s = e.chat_stream(request("chain"), None).await.unwrap();
            let chunks: Vec<_> = s.collect().await;
            let last = chunks.last().unwrap().as_ref().unwrap();
            assert_eq!(deployment(last), "p1/m1", "{wire:?} {behaviour:?}");
        }
        // After content: an error event, a dropped connection. A failure, never
        // a success, and no fallback (the caller has content already).
        for behaviour in [Behaviour::ErrorAfterStart, Behaviour::DropMidStream] {
            a.then(behaviour);
            let before = b.requests();
            let s = e.chat_stream(request("chain"), None).await.unwrap();
            let chunks: Vec<_> = s.collect().await;
            let text: String = chunks
                .iter()
                .filter_map(|c| c.as_ref().ok())
                .filter_map(|c| {
                    c.pointer("/choices/0/delta/content")
                        .and_then(Value::as_str)
                })
                .collect();
            assert!(
                !text.is_empty() && text != REPLY,
                "{wire:?} {behaviour:?}: {text}"
            );
            match chunks.last().unwrap() {
                Err(InferenceError::MidStream { deployment, source }) => {
                    assert_eq!(deployment, "p0/m0");
                    let expected = match behaviour {
                        Behaviour::ErrorAfterStart => matches!(source, ProviderError::InStream(_)),
                        _ => matches!(source, ProviderError::Connection(_)),
                    };
                    assert!(expected, "{wire:?} {behaviour:?}: {source}");
                }
                other => panic!("{wire:?} {behaviour:?}: ended with {other:?}"),
            }
            assert_eq!(b.requests(), before, "no fallback after content");
        }
    }
}

#[tokio::test]
async fn a_refused_request_goes_back_without_fallback() {
    let (a, b) = (fake(Wire::OpenAi).await, fake(Wire::OpenAi).await);
    let e = engine(config(&[&a, &b], json!({})));
    let err = e
        .chat(json!({"model": "chain", "messages": []}), None)
        .await
        .unwrap_err();
    assert!(
        matches!(&err, InferenceError::Invalid { field, .. } if field == "/messages"),
        "{err}"
    );
    let err = e
        .chat(
            json!({"model": "nope", "messages": [{"role": "user", "content": "x"}]}),
            None,
        )
        .await
        .unwrap_err();
    assert!(matches!(err, InferenceError::UnknownModel { .. }), "{err}");
    let err = e
        .chat(
            json!({"model": "chain", "messages": [{"content": "x"}]}),
            None,
        )
        .await
        .unwrap_err();
    assert!(err.to_string().contains("/messages/0/role"), "{err}");
    assert_eq!(a.requests() + b.requests(), 0);
}

#[tokio::test]
async fn a_spent_budget_is_refused_with_a_typed_error() {
    let a = fake(Wire::Anthropic).await;
    // Each answer costs 17e-6 USD.
    let e = engine(config(&[&a], json!({"budgets": {"alice": 0.00002}})));
    e.chat(request("chain"), Some("alice")).await.unwrap();
    e.chat(request("chain"), Some("alice")).await.unwrap();
    let err = e.chat(request("chain"), Some("alice")).await.unwrap_err();
    match err {
        InferenceError::BudgetExceeded {
            caller,
            budget_usd,
            spent_usd,
        } => {
            assert_eq!(caller, "alice");
            assert!((budget_usd - 0.00002).abs() < 1e-12);
            assert!((spent_usd - 34e-6).abs() < 1e-12);
        }
        other => panic!("{other}"),
    }
    assert!(
        e.chat_stream(request("chain"), Some("alice"))
            .await
            .is_err()
    );
    assert_eq!(a.requests(), 2);
    // Another token is not limited.
    e.chat(request("chain"), Some("bob")).await.unwrap();
}

#[tokio::test]
async fn spend_records_go_through_a_bounded_queue_and_drops_are_counted() {
    let a = fake(Wire::OpenAi).await;
    let e = engine(config(&[&a], json!({"spend_queue": 2})));
    for _ in 0..5 {
        e.chat(request("chain"), Some("alice")).await.unwrap();
    }
    assert_eq!(e.metrics().spend_dropped_count(), 3);
    let mut records = e.take_spend_records().unwrap();
    let first = records.recv().await.unwrap();
    assert_eq!(first.caller.as_deref(), Some("alice"));
    assert_eq!((first.prompt_tokens, first.completion_tokens), (7, 5));
    assert_eq!(first.deployment, "p0/m0");
}

#[tokio::test]
async fn raw_fields_pass_through_and_keys_stay_hidden() {
    let a = fake(Wire::OpenAi).await;
    let c = config(&[&a], json!({}));
    let shown = format!("{c:?}");
    assert!(
        !shown.contains("secret-key-0") && shown.contains("<redacted>"),
        "{shown}"
    );
    let e = engine(c);
    let mut body = request("chain");
    body["x_custom"] = json!({"nested": [1, 2]});
    body["logit_bias"] = json!({"50256": -100});
    let answer = e.chat(body, None).await.unwrap();
    // The provider's own fields come back.
    assert_eq!(answer.pointer("/x_provider_extra/kept"), Some(&json!(true)));
    assert_eq!(answer["system_fingerprint"], "fp_fake");
    let (headers, sent) = a.last_request().unwrap();
    assert_eq!(sent["x_custom"], json!({"nested": [1, 2]}));
    assert_eq!(sent["model"], "m0", "the deployment's model name is sent");
    assert_eq!(headers["authorization"], "Bearer secret-key-0");
    assert!(!answer.to_string().contains("secret-key"));
    assert!(!format!("{e:?}").contains("secret-key-0"));
}

#[tokio::test]
async fn anthropic_and_gemini_requests_are_translated() {
    let (a, g) = (fake(Wire::Anthropic).await, fake(Wire::Gemini).await);
    let e = engine(config(&[&a, &g], json!({})));
    let mut body = request("p0/m0");
    body["temperature"] = json!(0.2);
    body["stop"] = json!("END");
    e.chat(body.clone(), None).await.unwrap();
    let (headers, sent) = a.last_request().unwrap();
    assert_eq!(headers["x-api-key"], "secret-key-0");
    assert_eq!(headers["anthropic-version"], "2023-06-01");
    assert_eq!(sent["system"], "Be brief.");
    assert_eq!(
        sent["messages"],
        json!([{"role": "user", "content": "Say hello"}])
    );
    assert_eq!(sent["max_tokens"], 4096);
    assert_eq!(sent["stop_sequences"], json!(["END"]));
    body["model"] = json!("p1/m1");
    e.chat(body, None).await.unwrap();
    let (headers, sent) = g.last_request().unwrap();
    assert_eq!(headers["x-goog-api-key"], "secret-key-1");
    assert_eq!(
        sent["systemInstruction"],
        json!({"parts": [{"text": "Be brief."}]})
    );
    assert_eq!(
        sent["contents"],
        json!([{"role": "user", "parts": [{"text": "Say hello"}]}])
    );
    assert_eq!(
        sent["generationConfig"],
        json!({"temperature": 0.2, "stopSequences": ["END"]})
    );
}

#[tokio::test]
async fn a_deterministic_answer_is_cached_and_the_hit_is_marked() {
    let a = fake(Wire::OpenAi).await;
    let e = engine(config(&[&a], json!({})));
    let mut body = request("chain");
    body["temperature"] = json!(0);
    let first = e.chat(body.clone(), Some("alice")).await.unwrap();
    assert_eq!(first.pointer("/plexus/cache"), Some(&json!("miss")));
    // The same request, keys in another order and streaming fields aside: a hit.
    let again =
        json!({"temperature": 0.0, "messages": body["messages"], "model": "chain", "user": "u"});
    let hit = e.chat(again, Some("alice")).await.unwrap();
    assert_eq!(hit.pointer("/plexus/cache"), Some(&json!("hit")));
    assert_eq!(hit.pointer("/plexus/cost_usd"), Some(&json!(0.0)));
    assert_eq!(hit["choices"], first["choices"]);
    assert_eq!(a.requests(), 1);
    assert!(
        (e.spent("alice") - 17e-6).abs() < 1e-12,
        "a hit costs nothing"
    );
    // Non-deterministic: not cached unless asked.
    body["temperature"] = json!(0.8);
    let answer = e.chat(body.clone(), None).await.unwrap();
    assert_eq!(answer.pointer("/plexus/cache"), None);
    e.chat(body.clone(), None).await.unwrap();
    assert_eq!(a.requests(), 3);
    body["cache"] = json!(true);
    e.chat(body.clone(), None).await.unwrap();
    let hit = e.chat(body, None).await.unwrap();
    assert_eq!(hit.pointer("/plexus/cache"), Some(&json!("hit")));
    assert_eq!(a.requests(), 4);
    let (_, sent) = a.last_request().unwrap();
    assert!(
        sent.get("cache").is_none(),
        "Plexus's own field is not sent on"
    );
}

#[tokio::test]
async fn ollama_requests_are_translated() {
    let o = fake(Wire::Ollama).await;
    let e = engine(config(&[&o], json!({})));
    let mut body = request("chain");
    body["temperature"] = json!(0.2);
    body["max_tokens"] = json!(64);
    e.chat(body, None).await.unwrap();
    let (_, sent) = o.last_request().unwrap();
    assert_eq!(sent["stream"], false);
    assert_eq!(
        sent["options"],
        json!({"temperature": 0.2, "num_predict": 64})
    );
    assert_eq!(
        sent["messages"][0],
        json!({"role": "system", "content": "Be brief."})
    );
}
