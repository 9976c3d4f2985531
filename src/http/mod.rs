//! HTTP plumbing shared by every resource: the observability middleware, request extractors,
//! the fallback for unknown routes and actix's own errors, and Prometheus metrics.

pub mod extract;
pub mod fallback;
pub mod idempotency;
pub mod metrics;
pub mod middleware;

/// The id of the current request, as echoed in `X-Request-Id`.
#[derive(Debug, Clone)]
pub struct RequestId(pub String);
