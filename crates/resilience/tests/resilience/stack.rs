//! The whole call path as one stack: retry → deadline → balancer → per-instance
//! breaker → bulkhead → service.

use std::time::Duration;

use plexus_resilience::balance::{Balancer, Instance, Strategy};
use plexus_resilience::{BoxError, Bulkhead, CircuitBreaker, ResilienceBuilderExt, Retry, State};
use tower::util::BoxCloneSyncService;
use tower::{ServiceBuilder, service_fn};

use crate::support::{MockError, call};

type Svc = BoxCloneSyncService<u32, String, BoxError>;

fn instance(name: &'static str, healthy: bool) -> (Instance<Svc>, CircuitBreaker) {
    let breaker = CircuitBreaker::builder(name)
        .count_window(4)
        .minimum_calls(2)
        .wait_in_open(Duration::from_secs(60))
        .build()
        .expect("valid breaker");
    let bulkhead = Bulkhead::builder(name)
        .max_concurrent(8)
        .build()
        .expect("valid bulkhead");
    let service = ServiceBuilder::new()
        .circuit_breaker(&breaker)
        .bulkhead(&bulkhead)
        .service(service_fn(move |x: u32| async move {
            if healthy {
                Ok(format!("{name}:{x}"))
            } else {
                Err(MockError("down"))
            }
        }));
    (
        Instance::new(name, BoxCloneSyncService::new(service)).watch_breaker(&breaker),
        breaker,
    )
}

#[tokio::test(start_paused = true)]
async fn the_stack_routes_around_a_failing_instance_and_retries_into_a_healthy_one() {
    let balancer = Balancer::new("echo", Strategy::RoundRobin);
    let (good, good_breaker) = instance("good", true);
    let (bad, bad_breaker) = instance("bad", false);
    balancer.insert(bad);
    balancer.insert(good);
    let retry = Retry::builder()
        .max_attempts(3)
        .backoff(plexus_resilience::Backoff::Fixed(Duration::from_millis(10)))
        .no_budget()
        .build()
        .expect("valid retry");
    let mut service = ServiceBuilder::new()
        .retry_with(retry.clone())
        .deadline(Duration::from_secs(1))
        .service(balancer.clone());

    for x in 0..20 {
        let out = call(&mut service, x)
            .await
            .expect("every call ends on the good instance");
        assert_eq!(out, format!("good:{x}"));
    }
    assert_eq!(bad_breaker.state(), State::Open);
    assert_eq!(good_breaker.state(), State::Closed);
    assert_eq!(
        bad_breaker.metrics().failed_calls_total,
        2,
        "opened at its threshold"
    );
    assert_eq!(
        retry.metrics().retries_total,
        2,
        "one retry per failed attempt"
    );
    assert_eq!(good_breaker.metrics().successful_calls_total, 20);
}
