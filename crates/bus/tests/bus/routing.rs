//! Topic patterns, targets, header filters, typed delivery without serialization.

use std::sync::Arc;

use plexus_bus::{Bus, BusError, HeaderFilter, SubscribeOptions};
use plexus_core::{Envelope, Member, Payload, Target, TopicError};

use crate::support::*;

fn drain(sub: &mut plexus_bus::Subscription) -> Vec<String> {
    let mut seen = Vec::new();
    while let Some(e) = sub.try_recv() {
        seen.push(e.topic().to_string());
    }
    seen
}

#[tokio::test]
async fn wildcards_route_as_in_nats() {
    let bus = Bus::new();
    let mut one = bus.subscribe("a.*", SubscribeOptions::new()).unwrap();
    let mut rest = bus.subscribe("a.>", SubscribeOptions::new()).unwrap();
    let mut exact = bus.subscribe("a.b", SubscribeOptions::new()).unwrap();
    for t in ["a", "a.b", "a.b.c", "b.a"] {
        bus.publish(Envelope::new(topic(t), Payload::Empty))
            .await
            .unwrap();
    }
    assert_eq!(drain(&mut one), ["a.b"]);
    assert_eq!(drain(&mut rest), ["a.b", "a.b.c"]);
    assert_eq!(drain(&mut exact), ["a.b"]);
    let stats = bus.stats();
    // `a` (`a.>` needs one more token) and `b.a` matched nothing.
    assert_eq!((stats.published, stats.unmatched), (4, 2));
}

#[tokio::test]
async fn many_exact_subscriptions_use_the_index_and_still_route() {
    // Past the linear-scan limit the router indexes exact patterns by topic.
    let bus = Bus::new();
    let mut subs: Vec<_> = (0..20)
        .map(|i| {
            bus.subscribe(&format!("t.{i}"), SubscribeOptions::new())
                .unwrap()
        })
        .collect();
    let mut wild = bus.subscribe("t.*", SubscribeOptions::new()).unwrap();
    let receipt = bus
        .publish(Envelope::new(topic("t.7"), Payload::Empty))
        .await
        .unwrap();
    assert_eq!((receipt.matched, receipt.enqueued), (2, 2));
    assert_eq!(drain(&mut subs[7]), ["t.7"]);
    assert!(drain(&mut subs[8]).is_empty());
    assert_eq!(drain(&mut wild), ["t.7"]);
}

#[tokio::test]
async fn targets_reach_only_the_members_they_name() {
    let bus = Bus::new();
    let storage1 = Member::new("storage-1", "storage", "persistence");
    let storage2 = Member::new("storage-2", "storage", "persistence");
    let ai = Member::new("ai-1", "ai", "inference");
    let opts = |m: &Member| SubscribeOptions::new().member(m.clone());
    let mut s1 = bus.subscribe("x", opts(&storage1)).unwrap();
    let mut s2 = bus.subscribe("x", opts(&storage2)).unwrap();
    let mut a1 = bus.subscribe("x", opts(&ai)).unwrap();
    let mut anon = bus.subscribe("x", SubscribeOptions::new()).unwrap();

    let send = |target: Target| {
        let bus = bus.clone();
        async move {
            bus.publish(Envelope::new(topic("x"), Payload::Empty).with_target(target))
                .await
                .unwrap()
                .enqueued
        }
    };
    assert_eq!(send(Target::Instance("storage-2".into())).await, 1);
    assert_eq!(send(Target::Service("storage".into())).await, 2);
    assert_eq!(send(Target::ServiceType("inference".into())).await, 1);
    assert_eq!(
        send(Target::Many(vec![
            Target::Instance("storage-1".into()),
            Target::Service("ai".into())
        ]))
        .await,
        2
    );
    assert_eq!(send(Target::Broadcast).await, 4);

    assert_eq!(drain(&mut s1).len(), 3); // service, many, broadcast
    assert_eq!(drain(&mut s2).len(), 3); // instance, service, broadcast
    assert_eq!(drain(&mut a1).len(), 3); // type, many, broadcast
    assert_eq!(drain(&mut anon).len(), 1); // broadcast only
}

#[tokio::test]
async fn header_filters_must_all_hold() {
    let bus = Bus::new();
    let mut eu = bus
        .subscribe(
            "orders.>",
            SubscribeOptions::new()
                .filter(HeaderFilter::Equals("region".into(), "eu".into()))
                .filter(HeaderFilter::Absent("test".into())),
        )
        .unwrap();
    let mut traced = bus
        .subscribe(
            "orders.>",
            SubscribeOptions::new().filter(HeaderFilter::Present("trace".into())),
        )
        .unwrap();
    let e = |h: &[(&str, &str)]| {
        let mut env = Envelope::new(topic("orders.new"), Payload::Empty);
        for (k, v) in h {
            env = env.with_header(*k, *v);
        }
        env
    };
    for env in [
        e(&[("region", "eu")]),
        e(&[("region", "us"), ("trace", "1")]),
        e(&[("region", "eu"), ("test", "1")]),
    ] {
        bus.publish(env).await.unwrap();
    }
    assert_eq!(drain(&mut eu).len(), 1);
    assert_eq!(drain(&mut traced).len(), 1);
}

#[tokio::test]
async fn typed_payload_arrives_as_the_same_value() {
    let bus = Bus::new();
    let mut sub = bus
        .subscribe_event::<Ping>(SubscribeOptions::new())
        .unwrap();
    let value = Arc::new(Ping { n: 5 });
    let env = Envelope::new(
        <Ping as plexus_core::Event>::TOPIC,
        Payload::from_arc(Arc::clone(&value)),
    );
    bus.publish(env).await.unwrap();
    let got = sub.recv().await.unwrap();
    let decoded = got.payload().decode::<Ping>().unwrap();
    assert!(Arc::ptr_eq(&decoded, &value), "no copy, no serialization");
}

#[tokio::test]
async fn malformed_patterns_are_typed_errors() {
    let bus = Bus::new();
    for (pattern, expected) in [
        ("", TopicError::Empty),
        ("a..b", TopicError::EmptyToken { at: 2 }),
        ("a.>.c", TopicError::MisplacedWildcard { at: 2 }),
        ("a.b c", TopicError::InvalidChar { ch: ' ', at: 3 }),
    ] {
        match bus.subscribe(pattern, SubscribeOptions::new()) {
            Err(BusError::InvalidPattern { source, .. }) => assert_eq!(source, expected),
            other => panic!("{pattern:?}: expected InvalidPattern, got {other:?}"),
        }
    }
    assert_eq!(bus.stats().subscriptions, 0);
}

#[tokio::test]
async fn dropping_a_subscription_unsubscribes_and_counts_leftovers() {
    let bus = Bus::new();
    let sub = bus.subscribe("a", SubscribeOptions::new()).unwrap();
    bus.publish(Envelope::new(topic("a"), Payload::Empty))
        .await
        .unwrap();
    drop(sub);
    let stats = bus.stats();
    assert_eq!((stats.subscriptions, stats.discarded), (0, 1));
    let receipt = bus
        .publish(Envelope::new(topic("a"), Payload::Empty))
        .await
        .unwrap();
    assert_eq!(receipt.matched, 0);
    assert_eq!(bus.stats().unmatched, 1);
}
