//! Prometheus metrics, served at `GET /metrics`.
//!
//! Every [`Metrics`] value owns its own recorder (no process-global one), so several
//! servers in one process (the integration tests) keep separate counts. The `metrics`
//! macros are pointed at that recorder for the duration of one call with
//! [`metrics::with_local_recorder`]; that is cheap and never crosses an `.await`.
//!
//! Label values come from bounded sets only: matched route patterns (never raw paths),
//! method names, status codes, sanitised upstream `error_code`s and at most
//! [`MAX_OPERATION_NAMES`] distinct GraphQL operation names (later ones count as `other`),
//! so a client cannot grow the registry without bound.

use std::{
    collections::HashSet,
    sync::Arc,
    time::{Duration, Instant},
};

use parking_lot::Mutex;

use metrics::{Unit, counter, describe_counter, describe_gauge, describe_histogram, gauge, histogram};
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle, PrometheusRecorder};

/// Distinct GraphQL operation names kept as label values; the rest are `other`.
pub const MAX_OPERATION_NAMES: usize = 200;

/// Histogram buckets, in seconds, for every latency series.
const LATENCY_BUCKETS: &[f64] = &[0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0];

/// `dli_graphql_http_requests_total{method, route, status}`.
pub const HTTP_REQUESTS: &str = "dli_graphql_http_requests_total";
/// `dli_graphql_http_request_duration_seconds{method, route, status}`.
pub const HTTP_DURATION: &str = "dli_graphql_http_request_duration_seconds";
/// `dli_graphql_http_requests_in_flight`.
pub const HTTP_IN_FLIGHT: &str = "dli_graphql_http_requests_in_flight";
/// `dli_graphql_operations_total{operation, type, outcome}`.
pub const GRAPHQL_OPERATIONS: &str = "dli_graphql_operations_total";
/// `dli_graphql_operation_duration_seconds{operation, type, outcome}`.
pub const GRAPHQL_DURATION: &str = "dli_graphql_operation_duration_seconds";
/// `dli_graphql_upstream_requests_total{outcome, status, error_code}`.
pub const UPSTREAM_REQUESTS: &str = "dli_graphql_upstream_requests_total";
/// `dli_graphql_upstream_request_duration_seconds{outcome}`.
pub const UPSTREAM_DURATION: &str = "dli_graphql_upstream_request_duration_seconds";
/// `dli_graphql_upstream_retries_total`.
pub const UPSTREAM_RETRIES: &str = "dli_graphql_upstream_retries_total";
/// `dli_graphql_upstream_coalesced_total`.
pub const UPSTREAM_COALESCED: &str = "dli_graphql_upstream_coalesced_total";
/// `dli_graphql_shared_executions_total`.
pub const SHARED_EXECUTIONS: &str = "dli_graphql_shared_executions_total";
/// `dli_graphql_planned_operations_total`.
pub const PLANNED_OPERATIONS: &str = "dli_graphql_planned_operations_total";
/// `dli_graphql_plan_mismatches_total`.
pub const PLAN_MISMATCHES: &str = "dli_graphql_plan_mismatches_total";
/// `dli_graphql_cache_hits_total`.
pub const CACHE_HITS: &str = "dli_graphql_cache_hits_total";
/// `dli_graphql_cache_misses_total`.
pub const CACHE_MISSES: &str = "dli_graphql_cache_misses_total";
/// `dli_graphql_upstream_circuit_state` (0 closed, 1 half-open, 2 open).
pub const CIRCUIT_STATE: &str = "dli_graphql_upstream_circuit_state";
/// `dli_graphql_upstream_budget_total{outcome}`: calls the `--upstream-rate` budget delayed or refused.
pub const UPSTREAM_BUDGET: &str = "dli_graphql_upstream_budget_total";
/// `dli_graphql_shared_answers_total`: answers read from Redis instead of calling DLI.
pub const SHARED_ANSWERS: &str = "dli_graphql_shared_answers_total";
/// `dli_graphql_redis_fallback` (1 while Redis is unusable and this replica shares in-process only).
pub const REDIS_FALLBACK: &str = "dli_graphql_redis_fallback";
/// `dli_graphql_redis_state_changes_total{to}` (`fallback` or `redis`).
pub const REDIS_STATE_CHANGES: &str = "dli_graphql_redis_state_changes_total";

/// `dli_graphql_streams_open{transport}`: WebSockets, SSE and multipart streams open now.
pub const STREAMS_OPEN: &str = "dli_graphql_streams_open";
/// `dli_graphql_subscriptions_active`.
pub const SUBSCRIPTIONS_ACTIVE: &str = "dli_graphql_subscriptions_active";
/// `dli_graphql_subscription_events_total{kind}`.
pub const SUBSCRIPTION_EVENTS: &str = "dli_graphql_subscription_events_total";
/// `dli_graphql_watch_pollers`.
pub const WATCH_POLLERS: &str = "dli_graphql_watch_pollers";
/// `dli_graphql_watch_polls_total{outcome}`.
pub const WATCH_POLLS: &str = "dli_graphql_watch_polls_total";

/// A streaming transport, as the `transport` label names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transport {
    /// `graphql-transport-ws`.
    WebSocket,
    /// `graphql-sse`, distinct connections mode.
    Sse,
    /// Multipart subscriptions (Apollo).
    Multipart,
}

impl Transport {
    /// The label value.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::WebSocket => "websocket",
            Self::Sse => "sse",
            Self::Multipart => "multipart",
        }
    }
}
/// `dli_graphql_connections_open`.
pub const CONNECTIONS_OPEN: &str = "dli_graphql_connections_open";
/// `dli_graphql_connections_refused_total` (over `--max-connections`).
pub const CONNECTIONS_REFUSED: &str = "dli_graphql_connections_refused_total";
/// `dli_graphql_connections_timed_out_total{reason}` (`header_read` or `idle`).
pub const CONNECTIONS_TIMED_OUT: &str = "dli_graphql_connections_timed_out_total";
/// `dli_graphql_requests_shed_total`.
pub const REQUESTS_SHED: &str = "dli_graphql_requests_shed_total";
/// `dli_graphql_requests_rate_limited_total`.
pub const REQUESTS_RATE_LIMITED: &str = "dli_graphql_requests_rate_limited_total";
/// `dli_graphql_unknown_operations_total{mode}` (`enforce` refused, `log` served).
pub const UNKNOWN_OPERATIONS: &str = "dli_graphql_unknown_operations_total";

/// The state of the upstream circuit breaker, as the `dli_graphql_upstream_circuit_state`
/// gauge shows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CircuitState {
    /// Calls go through (gauge 0).
    Closed,
    /// A trial call is allowed (gauge 1).
    HalfOpen,
    /// Calls fail fast (gauge 2).
    Open,
}

impl CircuitState {
    /// The state's name, as `/readyz` reports it.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Closed => "closed",
            Self::HalfOpen => "half_open",
            Self::Open => "open",
        }
    }

    fn value(self) -> f64 {
        match self {
            Self::Closed => 0.0,
            Self::HalfOpen => 1.0,
            Self::Open => 2.0,
        }
    }
}

/// How one GraphQL operation ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OperationOutcome {
    /// No errors.
    Ok,
    /// Data with some field errors (e.g. one project failed upstream).
    FieldError,
    /// No data: the request did not parse or validate, or was refused before execution.
    RequestError,
}

impl OperationOutcome {
    /// The label value.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Ok => "ok",
            Self::FieldError => "field_error",
            Self::RequestError => "request_error",
        }
    }
}

/// One application's metrics registry. Cheap to clone; clones share the registry.
#[derive(Clone)]
pub struct Metrics {
    inner: Arc<Inner>,
}

struct Inner {
    recorder: PrometheusRecorder,
    handle: PrometheusHandle,
    operation_names: Mutex<HashSet<String>>,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Metrics")
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// A fresh registry with every series described, and the unlabelled ones at zero so
    /// they show up before their first event.
    pub fn new() -> Self {
        // `set_buckets` only fails on an empty list.
        let builder = PrometheusBuilder::new()
            .set_buckets(LATENCY_BUCKETS)
            .unwrap_or_else(|_| PrometheusBuilder::new());
        let recorder = builder.build_recorder();
        let handle = recorder.handle();
        let metrics = Self { inner: Arc::new(Inner { recorder, handle, operation_names: Mutex::default() }) };
        metrics.with(|| {
            describe_counter!(HTTP_REQUESTS, "HTTP requests answered, by method, route pattern and status.");
            describe_histogram!(
                HTTP_DURATION,
                Unit::Seconds,
                "HTTP request latency, by method, route and status."
            );
            describe_gauge!(HTTP_IN_FLIGHT, "HTTP requests being served right now.");
            describe_counter!(GRAPHQL_OPERATIONS, "GraphQL operations, by operation name, type and outcome.");
            describe_histogram!(
                GRAPHQL_DURATION,
                Unit::Seconds,
                "GraphQL operation latency, by name, type and outcome."
            );
            describe_counter!(
                UPSTREAM_REQUESTS,
                "Calls to DLI, by outcome, HTTP status and DLI/API-gateway error_code."
            );
            describe_histogram!(UPSTREAM_DURATION, Unit::Seconds, "Latency of calls to DLI, by outcome.");
            describe_counter!(UPSTREAM_RETRIES, "Upstream calls repeated after a retryable failure.");
            describe_counter!(
                UPSTREAM_COALESCED,
                "Upstream calls saved by joining an identical call in flight."
            );
            describe_counter!(
                SHARED_EXECUTIONS,
                "GraphQL requests answered by an identical request's execution in flight."
            );
            describe_counter!(
                PLANNED_OPERATIONS,
                "GraphQL operations answered by the planned executor (under --verify-plans: whose planned answer matched async-graphql's)."
            );
            describe_counter!(
                PLAN_MISMATCHES,
                "Operations whose planned answer differed from async-graphql's (--verify-plans; answered 500)."
            );
            describe_counter!(CACHE_HITS, "Upstream answers served from the response cache.");
            describe_counter!(CACHE_MISSES, "Response cache lookups that had to call upstream.");
            describe_gauge!(CIRCUIT_STATE, "Upstream circuit breaker: 0 closed, 1 half-open, 2 open.");
            describe_counter!(
                UPSTREAM_BUDGET,
                "Upstream calls the --upstream-rate budget delayed or refused (RATE_LIMITED), by outcome."
            );
            describe_counter!(
                SHARED_ANSWERS,
                "Answers read from Redis (fetched by another replica, or cached) instead of calling DLI."
            );
            describe_gauge!(
                REDIS_FALLBACK,
                "1 while Redis is unusable and this replica shares answers and budget in-process only; 0 while Redis is used."
            );
            describe_counter!(
                REDIS_STATE_CHANGES,
                "Switches between Redis and the in-process fallback, by the state switched to."
            );
            describe_gauge!(STREAMS_OPEN, "Streaming connections open now, by transport.");
            describe_gauge!(SUBSCRIPTIONS_ACTIVE, "GraphQL subscriptions running now.");
            describe_counter!(
                SUBSCRIPTION_EVENTS,
                "Subscription payloads sent, by kind (SNAPSHOT, ADDED, CHANGED, REMOVED, marker, error)."
            );
            describe_gauge!(WATCH_POLLERS, "Pollers running now (one per credential and watched project).");
            describe_counter!(WATCH_POLLS, "Upstream polls made by the pollers, by outcome.");
            gauge!(SUBSCRIPTIONS_ACTIVE).set(0.0);
            gauge!(WATCH_POLLERS).set(0.0);
            describe_gauge!(CONNECTIONS_OPEN, "Client connections open right now.");
            describe_counter!(
                CONNECTIONS_REFUSED,
                "Client connections closed on arrival because --max-connections were open."
            );
            describe_counter!(
                CONNECTIONS_TIMED_OUT,
                "Client connections closed by the server: header_read (request headers too slow) or idle."
            );
            describe_counter!(
                REQUESTS_SHED,
                "GraphQL requests answered 503 OVERLOADED (no execution slot within --queue-timeout)."
            );
            describe_counter!(
                REQUESTS_RATE_LIMITED,
                "GraphQL requests answered 429 RATE_LIMITED (caller over --client-rate)."
            );
            describe_counter!(
                UNKNOWN_OPERATIONS,
                "GraphQL documents not in the trusted-documents manifest, by mode (enforce: refused; log: served)."
            );
            gauge!(HTTP_IN_FLIGHT).set(0.0);
            gauge!(CONNECTIONS_OPEN).set(0.0);
            counter!(CONNECTIONS_REFUSED).absolute(0);
            counter!(REQUESTS_SHED).absolute(0);
            counter!(REQUESTS_RATE_LIMITED).absolute(0);
            counter!(UPSTREAM_RETRIES).absolute(0);
            counter!(UPSTREAM_COALESCED).absolute(0);
            counter!(SHARED_EXECUTIONS).absolute(0);
            counter!(PLANNED_OPERATIONS).absolute(0);
            counter!(PLAN_MISMATCHES).absolute(0);
            counter!(CACHE_HITS).absolute(0);
            counter!(CACHE_MISSES).absolute(0);
            gauge!(CIRCUIT_STATE).set(CircuitState::Closed.value());
        });
        metrics
    }

    fn with<T>(&self, f: impl FnOnce() -> T) -> T {
        metrics::with_local_recorder(&self.inner.recorder, f)
    }

    /// The registry in Prometheus text exposition format.
    pub fn render(&self) -> String {
        self.inner.handle.render()
    }

    /// Folds recent histogram samples into their buckets; call periodically so memory
    /// stays flat between scrapes.
    pub fn run_upkeep(&self) {
        self.inner.handle.run_upkeep();
    }

    /// Counts a request as in flight until the returned guard is dropped.
    pub fn http_in_flight(&self) -> InFlight {
        self.with(|| gauge!(HTTP_IN_FLIGHT).increment(1.0));
        InFlight { metrics: self.clone() }
    }

    /// One answered HTTP request. `route` is the matched route pattern, never a raw path.
    pub fn http_request(&self, method: &http::Method, route: &str, status: u16, elapsed: Duration) {
        let method = match *method {
            http::Method::GET => "GET",
            http::Method::POST => "POST",
            http::Method::HEAD => "HEAD",
            http::Method::OPTIONS => "OPTIONS",
            http::Method::PUT => "PUT",
            http::Method::DELETE => "DELETE",
            http::Method::PATCH => "PATCH",
            _ => "other",
        };
        let labels =
            [("method", method.to_owned()), ("route", route.to_owned()), ("status", status.to_string())];
        self.with(|| {
            counter!(HTTP_REQUESTS, &labels).increment(1);
            histogram!(HTTP_DURATION, &labels).record(elapsed.as_secs_f64());
        });
    }

    /// One GraphQL operation. `name` is the operation's name (`anonymous` when it has none).
    pub fn graphql_operation(&self, name: &str, kind: &str, outcome: OperationOutcome, elapsed: Duration) {
        let name = self.operation_label(name);
        let labels =
            [("operation", name), ("type", kind.to_owned()), ("outcome", outcome.as_str().to_owned())];
        self.with(|| {
            counter!(GRAPHQL_OPERATIONS, &labels).increment(1);
            histogram!(GRAPHQL_DURATION, &labels).record(elapsed.as_secs_f64());
        });
    }

    /// One finished call to DLI. `outcome` is `ok` or the failure kind (`http_error`,
    /// `timeout`, …); `status` the HTTP status (`2xx` for successes, `none` without an
    /// answer); `error_code` DLI's or the API gateway's `error_code` when the body had one.
    pub fn upstream_call(&self, outcome: &str, status: &str, error_code: Option<&str>, elapsed: Duration) {
        let status = status.to_owned();
        let code = error_code.map_or_else(|| "none".to_owned(), error_code_label);
        let labels = [("outcome", outcome.to_owned()), ("status", status), ("error_code", code)];
        self.with(|| {
            counter!(UPSTREAM_REQUESTS, &labels).increment(1);
            histogram!(UPSTREAM_DURATION, "outcome" => outcome.to_owned()).record(elapsed.as_secs_f64());
        });
    }

    /// One upstream call repeated after a retryable failure.
    pub fn upstream_retry(&self) {
        self.with(|| counter!(UPSTREAM_RETRIES).increment(1));
    }

    /// One upstream call saved because an identical one was already in flight.
    pub fn upstream_coalesced(&self) {
        self.with(|| counter!(UPSTREAM_COALESCED).increment(1));
    }

    /// One request answered by an identical request's execution in flight.
    pub fn shared_execution(&self) {
        self.with(|| counter!(SHARED_EXECUTIONS).increment(1));
    }

    /// One operation answered by the planned executor.
    pub fn planned_operation(&self) {
        self.with(|| counter!(PLANNED_OPERATIONS).increment(1));
    }

    /// One planned answer that differed from async-graphql's.
    pub fn plan_mismatch(&self) {
        self.with(|| counter!(PLAN_MISMATCHES).increment(1));
    }

    /// One answer served from the response cache.
    pub fn cache_hit(&self) {
        self.with(|| counter!(CACHE_HITS).increment(1));
    }

    /// One response cache lookup that had to call upstream.
    pub fn cache_miss(&self) {
        self.with(|| counter!(CACHE_MISSES).increment(1));
    }

    /// The circuit breaker changed state.
    pub fn circuit_state(&self, state: CircuitState) {
        self.with(|| gauge!(CIRCUIT_STATE).set(state.value()));
    }

    /// One upstream call the budget `delayed` (waited for its slot) or `refused`.
    pub fn upstream_budget(&self, outcome: &'static str) {
        self.with(|| counter!(UPSTREAM_BUDGET, "outcome" => outcome).increment(1));
    }

    /// One answer read from Redis instead of calling DLI.
    pub fn shared_answer(&self) {
        self.with(|| counter!(SHARED_ANSWERS).increment(1));
    }

    /// Whether this replica is on its in-process fallback (Redis configured but unusable).
    pub fn redis_fallback(&self, on: bool) {
        self.with(|| gauge!(REDIS_FALLBACK).set(if on { 1.0 } else { 0.0 }));
    }

    /// The replica switched `to` Redis (`redis`) or to its fallback (`fallback`).
    pub fn redis_state_change(&self, to: &'static str) {
        self.with(|| counter!(REDIS_STATE_CHANGES, "to" => to).increment(1));
    }

    /// Counts a streaming connection as open until the returned guard is dropped.
    pub fn stream_open(&self, transport: Transport) -> Gauged {
        let labels = [("transport", transport.as_str())];
        self.with(|| gauge!(STREAMS_OPEN, &labels).increment(1.0));
        Gauged { metrics: self.clone(), gauge: STREAMS_OPEN, transport: Some(transport) }
    }

    /// Counts a subscription as active until the returned guard is dropped.
    pub fn subscription_active(&self) -> Gauged {
        self.with(|| gauge!(SUBSCRIPTIONS_ACTIVE).increment(1.0));
        Gauged { metrics: self.clone(), gauge: SUBSCRIPTIONS_ACTIVE, transport: None }
    }

    /// Counts a poller as running until the returned guard is dropped.
    pub fn poller_running(&self) -> Gauged {
        self.with(|| gauge!(WATCH_POLLERS).increment(1.0));
        Gauged { metrics: self.clone(), gauge: WATCH_POLLERS, transport: None }
    }

    /// One subscription payload sent; `kind` is the event kind, `marker` or `error`.
    pub fn subscription_event(&self, kind: &'static str) {
        self.with(|| counter!(SUBSCRIPTION_EVENTS, "kind" => kind).increment(1));
    }

    /// One upstream poll by a poller; `outcome` is `ok` or the error code.
    pub fn watch_poll(&self, outcome: &'static str) {
        self.with(|| counter!(WATCH_POLLS, "outcome" => outcome).increment(1));
    }

    /// A client connection opened; counted open until the guard is dropped.
    pub fn connection_opened(&self) -> OpenConnection {
        self.with(|| gauge!(CONNECTIONS_OPEN).increment(1.0));
        OpenConnection { metrics: self.clone() }
    }

    /// A client connection closed on arrival (over `--max-connections`).
    pub fn connection_refused(&self) {
        self.with(|| counter!(CONNECTIONS_REFUSED).increment(1));
    }

    /// A client connection closed by the server; `reason` is `header_read` or `idle`.
    pub fn connection_timed_out(&self, reason: &'static str) {
        self.with(|| counter!(CONNECTIONS_TIMED_OUT, "reason" => reason).increment(1));
    }

    /// A GraphQL request shed (503 OVERLOADED).
    pub fn request_shed(&self) {
        self.with(|| counter!(REQUESTS_SHED).increment(1));
    }

    /// A GraphQL request refused by the per-caller rate limit (429).
    pub fn request_rate_limited(&self) {
        self.with(|| counter!(REQUESTS_RATE_LIMITED).increment(1));
    }

    /// A document not in the trusted-documents manifest; `mode` is `enforce` or `log`.
    pub fn unknown_operation(&self, mode: &'static str) {
        self.with(|| counter!(UNKNOWN_OPERATIONS, "mode" => mode).increment(1));
    }

    /// `name` if it is already a label value or there is room for it, else `other`.
    fn operation_label(&self, name: &str) -> String {
        let valid = !name.is_empty()
            && name.len() <= 64
            && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_');
        if !valid {
            return "other".to_owned();
        }
        let mut names = self.inner.operation_names.lock();
        if names.contains(name) || names.len() < MAX_OPERATION_NAMES {
            names.insert(name.to_owned());
            name.to_owned()
        } else {
            "other".to_owned()
        }
    }
}

/// DLI and API-gateway codes look like `DLI.0002`, `APIG.0308` or `401`; anything else
/// is `other`, so an upstream cannot invent label values.
fn error_code_label(code: &str) -> String {
    let ok = !code.is_empty()
        && code.len() <= 24
        && code.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'_' || b == b'-');
    if ok { code.to_owned() } else { "other".to_owned() }
}

/// Keeps `dli_graphql_http_requests_in_flight` raised while alive.
pub struct InFlight {
    metrics: Metrics,
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.metrics.with(|| gauge!(HTTP_IN_FLIGHT).decrement(1.0));
    }
}

/// Keeps one gauge raised while alive.
pub struct Gauged {
    metrics: Metrics,
    gauge: &'static str,
    transport: Option<Transport>,
}

impl Drop for Gauged {
    fn drop(&mut self) {
        let (gauge, transport) = (self.gauge, self.transport);
        self.metrics.with(|| match transport {
            Some(t) => gauge!(gauge, "transport" => t.as_str()).decrement(1.0),
            None => gauge!(gauge).decrement(1.0),
        });
    }
}

/// Keeps `dli_graphql_connections_open` raised while alive.
pub struct OpenConnection {
    metrics: Metrics,
}

impl Drop for OpenConnection {
    fn drop(&mut self) {
        self.metrics.with(|| gauge!(CONNECTIONS_OPEN).decrement(1.0));
    }
}

/// Axum middleware: in-flight gauge, request count and latency by matched route.
///
/// Added with `Router::layer`, so it runs after routing and sees [`axum::extract::MatchedPath`];
/// requests no route matched count under the route `unmatched`.
pub async fn track_http(
    axum::extract::State(metrics): axum::extract::State<Metrics>,
    req: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    let _in_flight = metrics.http_in_flight();
    let started = Instant::now();
    let method = req.method().clone();
    let route = req
        .extensions()
        .get::<axum::extract::MatchedPath>()
        .map_or_else(|| "unmatched".to_owned(), |p| p.as_str().to_owned());
    let resp = next.run(req).await;
    metrics.http_request(&method, &route, resp.status().as_u16(), started.elapsed());
    resp
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn two_registries_do_not_share_counts() {
        let a = Metrics::new();
        let b = Metrics::new();
        a.upstream_retry();
        a.upstream_retry();
        assert!(a.render().contains("dli_graphql_upstream_retries_total 2"), "{}", a.render());
        assert!(b.render().contains("dli_graphql_upstream_retries_total 0"), "{}", b.render());
    }

    #[test]
    fn helper_series_are_described_and_present_before_any_event() {
        let text = Metrics::new().render();
        for name in
            [UPSTREAM_RETRIES, UPSTREAM_COALESCED, CACHE_HITS, CACHE_MISSES, CIRCUIT_STATE, HTTP_IN_FLIGHT]
        {
            assert!(text.contains(&format!("# HELP {name} ")), "{name} has no HELP line:\n{text}");
            assert!(
                text.lines().any(|l| l.starts_with(&format!("{name} "))),
                "{name} has no sample:\n{text}"
            );
        }
    }

    #[test]
    fn circuit_state_and_cache_helpers_move_their_series() {
        let m = Metrics::new();
        m.circuit_state(CircuitState::Open);
        m.cache_hit();
        m.cache_miss();
        m.upstream_coalesced();
        let text = m.render();
        assert!(text.contains("dli_graphql_upstream_circuit_state 2"), "{text}");
        assert!(text.contains("dli_graphql_cache_hits_total 1"), "{text}");
        assert!(text.contains("dli_graphql_cache_misses_total 1"), "{text}");
        assert!(text.contains("dli_graphql_upstream_coalesced_total 1"), "{text}");
        m.circuit_state(CircuitState::HalfOpen);
        assert!(m.render().contains("dli_graphql_upstream_circuit_state 1"));
    }

    #[test]
    fn operation_names_are_bounded() {
        let m = Metrics::new();
        for i in 0..MAX_OPERATION_NAMES + 50 {
            m.graphql_operation(&format!("Op{i}"), "query", OperationOutcome::Ok, Duration::ZERO);
        }
        m.graphql_operation("not a name!", "query", OperationOutcome::Ok, Duration::ZERO);
        let text = m.render();
        let names: HashSet<&str> = text
            .lines()
            .filter(|l| l.starts_with(GRAPHQL_OPERATIONS))
            .filter_map(|l| l.split("operation=\"").nth(1)?.split('"').next())
            .collect();
        assert_eq!(names.len(), MAX_OPERATION_NAMES + 1, "the cap plus `other`");
        assert!(names.contains("other"));
        assert!(names.contains("Op0"));
        assert!(!names.contains(format!("Op{}", MAX_OPERATION_NAMES).as_str()));
    }

    #[test]
    fn stream_gauges_fall_when_their_guards_drop() {
        let m = Metrics::new();
        let socket = m.stream_open(Transport::WebSocket);
        let sub = m.subscription_active();
        let poller = m.poller_running();
        m.subscription_event("SNAPSHOT");
        m.watch_poll("ok");
        let text = m.render();
        assert!(text.contains("dli_graphql_streams_open{transport=\"websocket\"} 1"), "{text}");
        assert!(text.contains("dli_graphql_subscriptions_active 1"), "{text}");
        assert!(text.contains("dli_graphql_watch_pollers 1"), "{text}");
        assert!(text.contains("dli_graphql_subscription_events_total{kind=\"SNAPSHOT\"} 1"), "{text}");
        assert!(text.contains("dli_graphql_watch_polls_total{outcome=\"ok\"} 1"), "{text}");
        drop((socket, sub, poller));
        let text = m.render();
        assert!(text.contains("dli_graphql_streams_open{transport=\"websocket\"} 0"), "{text}");
        assert!(text.contains("dli_graphql_subscriptions_active 0"), "{text}");
        assert!(text.contains("dli_graphql_watch_pollers 0"), "{text}");
    }

    #[test]
    fn strange_upstream_codes_become_other() {
        assert_eq!(error_code_label("APIG.0308"), "APIG.0308");
        assert_eq!(error_code_label("401"), "401");
        assert_eq!(error_code_label("bad code\"}"), "other");
        assert_eq!(error_code_label(&"A".repeat(100)), "other");
    }
}
