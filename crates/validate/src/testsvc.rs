//! The test service: answers at once unless a fault says otherwise. Faults (error
//! rate, added latency, hang, unavailable, panic) are switched on and off while it
//! runs, on every instance at once.
//!
//! Methods: `NAME.work` (not idempotent: never retried, so every injected failure
//! reaches the breaker and the caller) and `NAME.read` (idempotent). Both return
//! their params.

use std::time::Duration;

use plexus_core::{
    CallContext, MethodDescriptor, Service, ServiceDescriptor, ServiceError, async_trait,
};
use serde_json::Value;

/// The fault in force on a test service.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub enum ServiceFault {
    /// None: answer at once.
    #[default]
    None,
    /// Fail this share of calls with a transient error.
    ErrorRate(f64),
    /// Answer after this long.
    Latency(Duration),
    /// Answer nothing until the fault is lifted.
    Hang,
    /// Answer "unavailable".
    Unavailable,
    /// Panic in the handler.
    Panic,
}

/// The switch shared by every instance of one test service.
#[derive(Clone, Debug)]
pub struct FaultSwitch(std::sync::Arc<tokio::sync::watch::Sender<ServiceFault>>);

impl Default for FaultSwitch {
    fn default() -> Self {
        Self(std::sync::Arc::new(tokio::sync::watch::Sender::new(
            ServiceFault::None,
        )))
    }
}

impl FaultSwitch {
    /// Puts `fault` in force.
    pub fn set(&self, fault: ServiceFault) {
        self.0.send_replace(fault);
    }

    /// The fault in force.
    pub fn get(&self) -> ServiceFault {
        *self.0.borrow()
    }

    /// Completes when the fault in force is no longer `fault`.
    async fn lifted(&self, fault: ServiceFault) {
        let mut rx = self.0.subscribe();
        let _ = rx.wait_for(|f| *f != fault).await;
    }
}

/// How an injected panic's message starts.
const INJECTED_PANIC: &str = "injected panic in";

/// Installs, once, a panic hook that prints an injected panic as one line and hands
/// every other panic to the hook that was there. With `RUST_BACKTRACE` set, the
/// default hook resolves a backtrace for each of the dozens of injected panics a
/// second, which stalls the very node being measured (seen as the generator's send
/// lag in the report); the harness's own panics are expected and need none.
fn quiet_injected_panics() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            let message = info
                .payload()
                .downcast_ref::<String>()
                .map(String::as_str)
                .unwrap_or_default();
            if message.starts_with(INJECTED_PANIC) {
                eprintln!("plexus validate: {message} (a scenario fault)");
            } else {
                previous(info);
            }
        }));
    });
}

/// One instance of a test service.
pub struct TestService {
    name: String,
    instance: String,
    switch: FaultSwitch,
}

impl TestService {
    /// Instance `index` of service `name`, obeying `switch`.
    pub fn new(name: &str, index: usize, switch: FaultSwitch) -> Self {
        quiet_injected_panics();
        Self {
            name: name.to_owned(),
            instance: format!("{name}-{}", index + 1),
            switch,
        }
    }
}

#[async_trait]
impl Service for TestService {
    fn descriptor(&self) -> ServiceDescriptor {
        ServiceDescriptor::new(self.name.as_str(), "validate-test")
            .with_instance(self.instance.as_str())
            .with_method(MethodDescriptor::new("work"))
            .with_method(MethodDescriptor::new("read").idempotent())
    }

    async fn call(
        &self,
        method: &str,
        params: Value,
        _: CallContext,
    ) -> Result<Value, ServiceError> {
        if method != "work" && method != "read" {
            return Err(ServiceError::failed(format!("no method {method}")));
        }
        match self.switch.get() {
            ServiceFault::None => {}
            ServiceFault::ErrorRate(rate) => {
                if rand::random::<f64>() < rate {
                    return Err(ServiceError::transient("injected failure"));
                }
            }
            ServiceFault::Latency(d) => tokio::time::sleep(d).await,
            // A hung call answers late once the fault is lifted (if its caller still waits).
            ServiceFault::Hang => self.switch.lifted(ServiceFault::Hang).await,
            ServiceFault::Unavailable => return Err(ServiceError::unavailable("injected")),
            #[allow(clippy::panic)]
            ServiceFault::Panic => panic!("{INJECTED_PANIC} {}", self.instance),
        }
        Ok(params)
    }
}
