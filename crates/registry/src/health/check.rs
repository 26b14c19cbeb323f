//! [`HealthCheck`]: how a component is asked whether it works.

use std::future::Future;
use std::sync::Arc;

use async_trait::async_trait;
use plexus_core::{HealthReport, Service, ServiceError};

/// A check of one component.
///
/// `Ok` is the component's own answer (healthy, degraded or unhealthy); `Err` means
/// the check itself could not run, which the [`crate::health::CheckPolicy`] treats
/// apart from an unhealthy answer. A check that does not end within the policy's
/// timeout counts as a failed check too.
#[async_trait]
pub trait HealthCheck: Send + Sync + 'static {
    /// Runs the check once.
    async fn check(&self) -> Result<HealthReport, CheckError>;
}

/// A check that could not run: the component could not be asked, or did not answer.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct CheckError {
    /// What went wrong.
    pub message: String,
}

impl CheckError {
    /// A check error saying `message`.
    pub fn new(message: impl Into<String>) -> Self {
        Self {
            message: message.into(),
        }
    }
}

impl From<ServiceError> for CheckError {
    fn from(error: ServiceError) -> Self {
        Self::new(error.to_string())
    }
}

/// A check made of an async closure; see [`check_fn`].
pub struct FnCheck<F>(F);

/// A check from an async closure.
///
/// ```
/// use plexus_core::HealthReport;
/// use plexus_registry::health::{CheckError, check_fn};
///
/// let check = check_fn(|| async { Ok::<_, CheckError>(HealthReport::healthy()) });
/// # let _ = check;
/// ```
pub fn check_fn<F, Fut>(f: F) -> FnCheck<F>
where
    F: Fn() -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<HealthReport, CheckError>> + Send + 'static,
{
    FnCheck(f)
}

#[async_trait]
impl<F, Fut> HealthCheck for FnCheck<F>
where
    F: Fn() -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<HealthReport, CheckError>> + Send + 'static,
{
    async fn check(&self) -> Result<HealthReport, CheckError> {
        (self.0)().await
    }
}

/// Checks an in-process [`Service`] through [`Service::health`]; a
/// [`ServiceError`] from it is a check error.
#[derive(Clone)]
pub struct ServiceCheck {
    service: Arc<dyn Service>,
}

impl ServiceCheck {
    /// A check of `service`.
    pub fn new(service: Arc<dyn Service>) -> Self {
        Self { service }
    }
}

#[async_trait]
impl HealthCheck for ServiceCheck {
    async fn check(&self) -> Result<HealthReport, CheckError> {
        self.service.health().await.map_err(CheckError::from)
    }
}
