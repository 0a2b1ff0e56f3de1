//! The HTTP layer: routes, GraphQL over HTTP, per-request data. Holds no resolvers.
//!
//! `POST /graphql` (JSON), `GET /graphql?query=…` ([`graphql`]), subscriptions over
//! WebSocket (`graphql-transport-ws`, [`ws`]) and SSE or multipart ([`streams`]) on the same
//! path, GraphiQL at `GET /graphql` for browsers and at `/` (assets under `/graphiql/`),
//! `GET /healthz`, `GET /readyz` and `GET /metrics` ([`health`]). Content negotiation lives
//! in [`encoding`], body limits in [`body`], API keys and allowed projects in [`access`],
//! rate limits and load shedding in [`admission`], the accept loop with its connection
//! limits and timeouts in [`serve`].
//!
//! Every request gets an `X-Request-Id` (the client's, when valid, else a new UUID), echoed
//! in the response, recorded on its `request` span and sent upstream.

use std::sync::Arc;

use axum::{
    Router,
    extract::Request,
    http::{HeaderValue, Method, header},
    response::Response,
    routing::get,
};
use tower_http::{
    compression::{
        CompressionLayer, CompressionLevel,
        predicate::{NotForContentType, Predicate, SizeAbove},
    },
    cors::{AllowOrigin, CorsLayer},
    request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer},
    sensitive_headers::SetSensitiveRequestHeadersLayer,
    trace::TraceLayer,
};

use crate::{
    config::{Limits, SubscriptionOptions},
    graphql::{DliSchema, Watcher},
    observability::{metrics::Metrics, trace_context},
    upstream::{Client, Credential, FleetStore, SharedClient},
};

pub(crate) mod access;
pub(crate) mod admission;
pub(crate) mod body;
pub(crate) mod encoding;
pub(crate) mod graphiql;
pub(crate) mod graphql;
pub mod health;
pub(crate) mod serve;
pub(crate) mod share;
pub mod streams;
pub mod ws;

use access::AccessPolicy;

/// What every request handler shares, behind one `Arc`: axum clones the state for every
/// request, and one reference count is cheaper than one per service (each an atomic that the
/// cores would pass back and forth).
#[derive(Clone)]
pub struct AppState(Arc<Services>);

impl AppState {
    /// The state of a router serving `services`.
    pub fn new(services: Services) -> Self {
        Self(Arc::new(services))
    }
}

impl std::ops::Deref for AppState {
    type Target = Services;
    fn deref(&self) -> &Services {
        &self.0
    }
}

/// The services and settings behind [`AppState`].
pub struct Services {
    /// The executable schema.
    pub schema: DliSchema,
    /// The upstream client.
    pub client: Client,
    /// The client as resolvers use it: coalescing and the optional cache in front of `client`.
    pub shared: SharedClient,
    /// The Redis shared with other replicas (`--redis-url`), for `/readyz`.
    pub fleet: Option<FleetStore>,
    /// Compress large responses for clients that accept gzip, br or zstd.
    pub compression: bool,
    /// Used when the caller sends no `X-Auth-Token` (e.g. the demo's token).
    pub service_credential: Option<Credential>,
    /// Who may use `service_credential`, and which projects anyone may query.
    pub access: Arc<AccessPolicy>,
    /// This server's metrics registry, served at `/metrics`.
    pub metrics: Metrics,
    /// Request limits (body size and read time, batch size; the rest are in the schema).
    pub limits: Arc<Limits>,
    /// Identical concurrent requests share one execution (off with `--no-coalesce`).
    pub(crate) executions: Option<Arc<share::Executions>>,
    /// The pollers subscriptions share.
    pub watcher: Watcher,
    /// Subscription transport settings.
    pub subscriptions: SubscriptionOptions,
    /// The cap on open streaming connections.
    pub slots: Arc<streams::StreamSlots>,
    /// Execution slots (`--max-concurrent-requests`).
    pub shed: Arc<admission::LoadShed>,
    /// Per-caller rate limits, when `--client-rate` is set.
    pub rate_limits: Option<Arc<admission::RateLimits>>,
    /// Whether only trusted documents run: requests may then name one by `documentId`.
    pub trusted_documents: bool,
    /// The planned executor's plans (none with `--no-planned-executor` or trusted documents).
    pub(crate) planner: Option<Arc<crate::graphql::plan::Planner>>,
    /// `--verify-plans`: planned answers are compared with async-graphql's.
    pub verify_plans: bool,
}

/// Responses smaller than this are sent uncompressed whatever the client accepts.
pub const COMPRESS_MIN_BYTES: u16 = 1024;

/// The router with its middleware.
pub fn router(state: AppState) -> Router {
    let metrics = state.metrics.clone();
    let compression = state.compression;
    let mut router = Router::new()
        .route("/graphql", get(graphql::get).post(graphql::post).fallback(graphql::method_not_allowed))
        .route("/", get(graphiql::page))
        .route(graphiql::ASSET_ROUTE, get(graphiql::asset).layer(CompressionLayer::new().gzip(true)))
        .route("/healthz", get(health::healthz))
        .route("/readyz", get(health::readyz))
        .route("/metrics", get(health::metrics_text))
        .with_state(state);
    if compression {
        // gzip, br or zstd when the client asks for it; small bodies are not worth the CPU.
        // Level 1 keeps on-the-fly compression cheap (brotli's default level costs several
        // times more CPU), and brotli's quality 0 (tower-http's `Fastest`) is both slower and
        // worse than quality 1; gzip and zstd are at level 1 either way (docs/performance.md).
        router = router.layer(
            CompressionLayer::new().quality(CompressionLevel::Precise(1)).compress_when(
                SizeAbove::new(COMPRESS_MIN_BYTES)
                    .and(NotForContentType::GRPC)
                    .and(NotForContentType::IMAGES)
                    // Streams: a compressor would hold events back until its buffer fills.
                    .and(NotForContentType::SSE)
                    .and(NotForContentType::const_new("multipart/mixed")),
            ),
        );
        // Runs first: picks the coding the compression layer then uses.
        router = router.layer(axum::middleware::from_fn(encoding::prefer_cheapest_coding));
    }
    router
        // Layers added later run first: id check, id, sensitive headers, span, echo, metrics.
        .layer(axum::middleware::from_fn_with_state(metrics, crate::observability::metrics::track_http))
        .layer(PropagateRequestIdLayer::x_request_id())
        .layer(TraceLayer::new_for_http().make_span_with(request_span).on_response(
            |resp: &Response, latency: std::time::Duration, span: &tracing::Span| {
                span.record("http.response.status_code", i64::from(resp.status().as_u16()));
                let (status, latency_ms) = (resp.status().as_u16(), latency.as_millis() as u64);
                // One line per request is an access log, at debug (`RUST_LOG=dli_graphql=debug`):
                // at thousands of requests a second, formatting and writing it would cost more
                // than answering; the metrics count every request. Server errors stay visible.
                if resp.status().is_server_error() {
                    tracing::warn!(status, latency_ms, "request finished");
                } else {
                    tracing::debug!(status, latency_ms, "request finished");
                }
            },
        ))
        // Keeps credentials out of anything that prints headers.
        .layer(SetSensitiveRequestHeadersLayer::new([
            header::AUTHORIZATION,
            header::HeaderName::from_static("x-auth-token"),
            header::COOKIE,
        ]))
        .layer(SetRequestIdLayer::x_request_id(MakeRequestUuid))
        .layer(axum::middleware::from_fn(trace_context::drop_invalid_request_id))
}

/// The `request` span: method, route pattern, request id, and later the status. It joins
/// the caller's trace when the request carries a W3C `traceparent`.
fn request_span(req: &Request) -> tracing::Span {
    let route = req.extensions().get::<axum::extract::MatchedPath>().map_or("unmatched", |p| p.as_str());
    let request_id =
        req.headers().get(trace_context::REQUEST_ID_HEADER).and_then(|v| v.to_str().ok()).unwrap_or("");
    let span = tracing::info_span!(
        "request",
        otel.name = format!("{} {route}", req.method()),
        otel.kind = "server",
        http.request.method = %req.method(),
        http.route = route,
        request_id,
        http.response.status_code = tracing::field::Empty,
    );
    trace_context::continue_remote_trace(&span, req.headers());
    span
}

/// CORS for exactly these origins: GET and POST with the headers GraphQL clients send.
pub fn cors_layer(origins: Vec<HeaderValue>) -> CorsLayer {
    CorsLayer::new()
        .allow_origin(AllowOrigin::list(origins))
        .allow_methods([Method::GET, Method::POST])
        .allow_headers([
            header::CONTENT_TYPE,
            header::ACCEPT,
            header::AUTHORIZATION,
            header::HeaderName::from_static("x-auth-token"),
        ])
        .max_age(std::time::Duration::from_secs(600))
}
