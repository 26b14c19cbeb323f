//! Fallback on chosen errors.

use plexus_resilience::{CircuitBreaker, CircuitOpen, Fallback, ResilienceBuilderExt};
use tower::ServiceBuilder;

use crate::support::{Mock, MockError, call};

#[tokio::test]
async fn falls_back_on_chosen_errors_only() {
    let breaker = CircuitBreaker::builder("cache")
        .count_window(1)
        .minimum_calls(1)
        .build()
        .unwrap();
    let mock = Mock::new();
    let mut service = ServiceBuilder::new()
        .fallback(Fallback::value(999usize).when(|e| e.is::<CircuitOpen>()))
        .circuit_breaker(&breaker)
        .service(mock.failing::<()>());
    let first = call(&mut service, ()).await.unwrap_err();
    assert_eq!(
        first.downcast_ref::<MockError>(),
        Some(&MockError("down")),
        "passed through"
    );
    assert_eq!(
        call(&mut service, ()).await.unwrap(),
        999,
        "open breaker: fallback value"
    );
    assert_eq!(mock.count(), 1);
}

#[tokio::test]
async fn a_fallback_function_sees_the_error() {
    let fallback = Fallback::with(|e| Ok(format!("degraded: {e}")));
    let out = fallback
        .run(async { Err::<String, _>(MockError("x")) })
        .await
        .unwrap();
    assert_eq!(out, "degraded: mock failure: x");
    let ok = fallback
        .run(async { Ok::<_, MockError>("fresh".to_owned()) })
        .await
        .unwrap();
    assert_eq!(ok, "fresh");
}
