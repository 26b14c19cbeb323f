//! Configuration: serde structs whose validation names the field at fault.

use plexus_resilience::balance::BalancerConfig;
use plexus_resilience::breaker::Window;
use plexus_resilience::retry::BackoffConfig;
use plexus_resilience::{
    BreakerConfig, Bulkhead, BulkheadConfig, CircuitBreaker, ConfigError, HedgeConfig,
    RateLimitConfig, RateLimiter, Retry, RetryConfig,
};

fn field(result: Result<(), ConfigError>) -> &'static str {
    result.expect_err("nonsense must be rejected").field
}

#[test]
fn breaker_config_rejects_nonsense_naming_the_field() {
    let ok = BreakerConfig::default();
    assert!(ok.validate().is_ok());
    let cases: Vec<(BreakerConfig, &str)> = vec![
        (
            BreakerConfig {
                failure_rate_threshold: 150.0,
                ..ok.clone()
            },
            "failure_rate_threshold",
        ),
        (
            BreakerConfig {
                failure_rate_threshold: 0.0,
                ..ok.clone()
            },
            "failure_rate_threshold",
        ),
        (
            BreakerConfig {
                failure_rate_threshold: f64::NAN,
                ..ok.clone()
            },
            "failure_rate_threshold",
        ),
        (
            BreakerConfig {
                slow_call_rate_threshold: 101.0,
                ..ok.clone()
            },
            "slow_call_rate_threshold",
        ),
        (
            BreakerConfig {
                window: Window::Count { size: 0 },
                ..ok.clone()
            },
            "window.size",
        ),
        (
            BreakerConfig {
                window: Window::Time { seconds: 0 },
                ..ok.clone()
            },
            "window.seconds",
        ),
        (
            BreakerConfig {
                minimum_calls: 0,
                ..ok.clone()
            },
            "minimum_calls",
        ),
        (
            BreakerConfig {
                permitted_calls_in_half_open: 0,
                ..ok.clone()
            },
            "permitted_calls_in_half_open",
        ),
        (
            BreakerConfig {
                wait_in_open_ms: 0,
                ..ok.clone()
            },
            "wait_in_open_ms",
        ),
        (
            BreakerConfig {
                wait_multiplier: 0.5,
                ..ok.clone()
            },
            "wait_multiplier",
        ),
        (
            BreakerConfig {
                max_wait_in_open_ms: 1,
                ..ok.clone()
            },
            "max_wait_in_open_ms",
        ),
        (
            BreakerConfig {
                slow_call_duration_ms: Some(0),
                ..ok.clone()
            },
            "slow_call_duration_ms",
        ),
        (
            BreakerConfig {
                name: String::new(),
                ..ok.clone()
            },
            "name",
        ),
        (
            BreakerConfig {
                max_wait_in_half_open_ms: Some(0),
                ..ok.clone()
            },
            "max_wait_in_half_open_ms",
        ),
    ];
    for (config, expected) in cases {
        assert_eq!(field(config.validate()), expected, "{config:?}");
        let err = CircuitBreaker::new(config).unwrap_err();
        assert!(
            err.to_string().contains(expected),
            "message names the field: {err}"
        );
    }
}

#[test]
fn breaker_config_reads_from_json_and_refuses_unknown_fields() {
    let config: BreakerConfig = serde_json::from_str(
        r#"{"name": "s", "window": {"kind": "time", "seconds": 30}, "failure_rate_threshold": 25,
            "slow_call_duration_ms": 500, "slow_call_rate_threshold": 80}"#,
    )
    .unwrap();
    assert_eq!(config.window, Window::Time { seconds: 30 });
    assert_eq!(config.slow_call_duration_ms, Some(500));
    assert!(config.validate().is_ok());
    let typo = serde_json::from_str::<BreakerConfig>(r#"{"failure_threshold": 50}"#);
    assert!(typo.unwrap_err().to_string().contains("failure_threshold"));
}

#[test]
fn retry_config_rejects_nonsense_naming_the_field() {
    let ok = RetryConfig::default();
    assert!(ok.validate().is_ok());
    let expo = |initial_ms, multiplier, max_ms| BackoffConfig::Exponential {
        initial_ms,
        multiplier,
        max_ms,
        jitter: Default::default(),
    };
    let cases: Vec<(RetryConfig, &str)> = vec![
        (
            RetryConfig {
                max_attempts: 0,
                ..ok.clone()
            },
            "max_attempts",
        ),
        (
            RetryConfig {
                max_elapsed_ms: Some(0),
                ..ok.clone()
            },
            "max_elapsed_ms",
        ),
        (
            RetryConfig {
                backoff: expo(0, 2.0, 10),
                ..ok.clone()
            },
            "backoff.initial_ms",
        ),
        (
            RetryConfig {
                backoff: expo(10, 0.5, 10),
                ..ok.clone()
            },
            "backoff.multiplier",
        ),
        (
            RetryConfig {
                backoff: expo(10, 2.0, 5),
                ..ok.clone()
            },
            "backoff.max_ms",
        ),
        (
            RetryConfig {
                backoff: BackoffConfig::Schedule { delays_ms: vec![] },
                ..ok.clone()
            },
            "backoff.delays_ms",
        ),
    ];
    for (config, expected) in cases {
        assert_eq!(field(config.validate()), expected);
        assert_eq!(Retry::new(config).unwrap_err().field, expected);
    }
    let mut no_ttl = ok.clone();
    if let Some(b) = no_ttl.budget.as_mut() {
        b.ttl_secs = 0;
    }
    assert_eq!(field(no_ttl.validate()), "budget.ttl_secs");
    let mut wild = ok;
    if let Some(b) = wild.budget.as_mut() {
        b.retry_ratio = -1.0;
    }
    assert_eq!(field(wild.validate()), "budget.retry_ratio");
}

#[test]
fn bulkhead_rate_limit_balancer_and_hedge_configs_reject_nonsense() {
    let bulkhead = BulkheadConfig::default();
    assert_eq!(
        field(
            BulkheadConfig {
                max_concurrent: 0,
                ..bulkhead.clone()
            }
            .validate()
        ),
        "max_concurrent"
    );
    assert_eq!(
        field(
            BulkheadConfig {
                max_wait_ms: Some(0),
                ..bulkhead.clone()
            }
            .validate()
        ),
        "max_wait_ms"
    );
    assert!(Bulkhead::new(bulkhead).is_ok());

    let gcra = |per_second, burst| RateLimitConfig::Gcra { per_second, burst };
    assert_eq!(field(gcra(0.0, 1).validate()), "per_second");
    assert_eq!(field(gcra(f64::INFINITY, 1).validate()), "per_second");
    assert_eq!(field(gcra(10.0, 0).validate()), "burst");
    let window = |limit, window_ms| RateLimitConfig::SlidingWindow { limit, window_ms };
    assert_eq!(field(window(0, 1000).validate()), "limit");
    assert_eq!(field(window(10, 0).validate()), "window_ms");
    assert_eq!(
        RateLimiter::new("x", window(10, 0)).unwrap_err().field,
        "window_ms"
    );
    let parsed: RateLimitConfig =
        serde_json::from_str(r#"{"kind": "sliding_window", "limit": 5, "window_ms": 1000}"#)
            .unwrap();
    assert_eq!(parsed, window(5, 1000));

    assert_eq!(
        field(
            BalancerConfig {
                virtual_nodes: 0,
                ..Default::default()
            }
            .validate()
        ),
        "virtual_nodes"
    );
    let hedge = HedgeConfig::default();
    assert!(hedge.validate().is_ok());
    assert_eq!(
        field(
            HedgeConfig {
                latency_percentile: 100.0,
                ..hedge.clone()
            }
            .validate()
        ),
        "latency_percentile"
    );
    assert_eq!(
        field(
            HedgeConfig {
                min_data_points: 0,
                ..hedge.clone()
            }
            .validate()
        ),
        "min_data_points"
    );
    assert_eq!(
        field(
            HedgeConfig {
                period_ms: 0,
                ..hedge
            }
            .validate()
        ),
        "period_ms"
    );
}
