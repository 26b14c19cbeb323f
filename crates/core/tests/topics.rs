//! Property tests: topic and pattern parsing never panics, and wildcard matching

#![allow(clippy::unwrap_used)] // Tests may unwrap: a panic is a test failure.
//! agrees with a direct reading of the NATS rules.

use plexus_core::{Topic, TopicPattern};
use proptest::prelude::*;

/// The rules, read directly: `*` takes one token, `>` one or more, literals match
/// themselves.
fn reference(pattern: &[&str], topic: &[&str]) -> bool {
    match (pattern.split_first(), topic.split_first()) {
        (None, None) => true,
        (Some((&">", [])), Some(_)) => true,
        (Some((&"*", p)), Some((_, t))) => reference(p, t),
        (Some((lit, p)), Some((tok, t))) => lit == tok && reference(p, t),
        _ => false,
    }
}

fn token() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("a".to_owned()),
        Just("b".to_owned()),
        Just("c-1".to_owned())
    ]
}

fn pattern_token() -> impl Strategy<Value = String> {
    prop_oneof![token(), Just("*".to_owned())]
}

proptest! {
    #[test]
    fn parsing_any_text_returns_instead_of_panicking(text in ".{0,300}") {
        let _ = Topic::new(&text);
        let _ = TopicPattern::new(&text);
    }

    #[test]
    fn matching_agrees_with_the_rules(
        topic in prop::collection::vec(token(), 1..5),
        mut pattern in prop::collection::vec(pattern_token(), 1..5),
        rest in any::<bool>(),
    ) {
        if rest {
            pattern.push(">".to_owned());
        }
        let t = Topic::new(topic.join(".")).unwrap();
        let p = TopicPattern::new(pattern.join(".")).unwrap();
        let t_tokens: Vec<&str> = topic.iter().map(String::as_str).collect();
        let p_tokens: Vec<&str> = pattern.iter().map(String::as_str).collect();
        prop_assert_eq!(p.matches(&t), reference(&p_tokens, &t_tokens));
    }
}
