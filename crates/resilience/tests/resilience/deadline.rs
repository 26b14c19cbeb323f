//! Deadlines: carried with the call, never extended, propagated in headers.

use std::time::Duration;

use plexus_core::Headers;
use plexus_resilience::{Deadline, DeadlineConfig, DeadlineExceeded, DeadlineLayer, deadline};
use tokio::time::Instant;
use tower::{Layer, ServiceBuilder, service_fn};

use crate::support::{Mock, MockError, call};

#[tokio::test(start_paused = true)]
async fn a_slow_call_fails_at_its_deadline() {
    let mock = Mock::new();
    let inner = mock.slow_at::<()>(0, Duration::from_secs(1), Duration::from_millis(10));
    let mut service = Deadline::new(Duration::from_millis(250)).layer(inner);
    let started = Instant::now();
    let err = call(&mut service, ()).await.unwrap_err();
    let exceeded = err.downcast_ref::<DeadlineExceeded>().unwrap();
    assert_eq!(exceeded.deadline, started + Duration::from_millis(250));
    assert_eq!(started.elapsed(), Duration::from_millis(250));
    assert_eq!(
        call(&mut service, ()).await.unwrap(),
        1,
        "a fast call passes"
    );
}

#[tokio::test(start_paused = true)]
async fn an_inner_timeout_never_extends_the_outer_deadline() {
    let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let sink = seen.clone();
    let inner = service_fn(move |_: ()| {
        sink.lock().unwrap().push(deadline::current());
        async {
            tokio::time::sleep(Duration::from_secs(3)).await;
            Ok::<_, MockError>(())
        }
    });
    let mut service = ServiceBuilder::new()
        .layer(DeadlineLayer::new(Duration::from_secs(1)))
        .layer(DeadlineLayer::new(Duration::from_secs(5)))
        .service(inner);
    let started = Instant::now();
    let err = call(&mut service, ()).await.unwrap_err();
    assert!(err.downcast_ref::<DeadlineExceeded>().is_some());
    assert_eq!(started.elapsed(), Duration::from_secs(1));
    assert_eq!(
        seen.lock().unwrap()[0],
        Some(started + Duration::from_secs(1))
    );
}

#[tokio::test(start_paused = true)]
async fn a_call_whose_deadline_passed_is_not_started() {
    let mock = Mock::new();
    let out = deadline::within(Duration::from_millis(100), async {
        tokio::time::sleep(Duration::from_millis(100)).await;
        // The caller's deadline is now; the inner layer must not start the call.
        let mut service = DeadlineLayer::new(Duration::from_secs(10)).layer(mock.healthy::<()>());
        call(&mut service, ()).await
    })
    .await;
    assert!(
        out.unwrap_err()
            .downcast_ref::<DeadlineExceeded>()
            .is_some()
    );
    assert_eq!(mock.count(), 0);
}

#[tokio::test(start_paused = true)]
async fn the_deadline_crosses_a_hop_in_headers() {
    let mut headers = Headers::new();
    deadline::to_headers(&mut headers);
    assert!(
        headers.get(deadline::HEADER).is_none(),
        "no deadline, no header"
    );

    deadline::within(Duration::from_millis(1500), async {
        tokio::time::sleep(Duration::from_millis(500)).await;
        deadline::to_headers(&mut headers);
        Ok::<_, MockError>(())
    })
    .await
    .unwrap();
    assert_eq!(headers.get(deadline::HEADER), Some("1000"));
    let remote = deadline::from_headers(&headers).unwrap();
    assert_eq!(remote, Instant::now() + Duration::from_secs(1));

    let mut bad = Headers::new();
    bad.insert(deadline::HEADER, "soon");
    assert_eq!(deadline::from_headers(&bad), None);
}

#[test]
fn a_zero_timeout_is_rejected() {
    let err = Deadline::from_config(&DeadlineConfig { timeout_ms: 0 }).unwrap_err();
    assert_eq!(err.field, "timeout_ms");
    assert!(Deadline::from_config(&DeadlineConfig { timeout_ms: 5 }).is_ok());
}
