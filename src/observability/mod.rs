//! What the service tells about itself: logs and span export ([`telemetry`]), Prometheus
//! metrics ([`metrics`]), and the request id and trace context that follow a request to DLI
//! ([`trace_context`]). Used by every layer; imports none of them.

pub mod metrics;
pub mod telemetry;
pub(crate) mod trace_context;
