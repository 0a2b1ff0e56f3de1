//! The HTTP layer: routes, GraphQL over HTTP, per-request data. Holds no resolvers.
//!
//! `POST /graphql` (JSON), `GET /graphql?query=…`, GraphiQL at `GET /graphql` for browsers
//! and at `/` (assets under `/graphiql/`), `GET /healthz` and `GET /metrics`. Responses are
//! `application/graphql-response+json` when the client accepts it (request errors then
//! answer 400 without `data`), else `application/json` with status 200, as the
//! GraphQL-over-HTTP spec asks.
//!
//! Every request gets an `X-Request-Id` (the client's, when valid, else a new UUID), echoed
//! in the response, recorded on its `request` span and sent upstream.

use std::sync::Arc;

use async_graphql::{BatchResponse, ParseRequestError};
use async_graphql_axum::GraphQLBatchRequest;
use axum::{
    Router,
    extract::{FromRequest, Request, State},
    http::{HeaderMap, HeaderValue, Method, StatusCode, header},
    response::{IntoResponse, Response},
    routing::get,
};
use serde::Serialize;
use tower_http::{
    compression::{
        CompressionLayer, CompressionLevel,
        predicate::{NotForContentType, Predicate, SizeAbove},
    },
    request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer},
    sensitive_headers::SetSensitiveRequestHeadersLayer,
    trace::TraceLayer,
};

use crate::{
    access::AccessPolicy,
    error::ErrorCode,
    graphiql,
    graphql::{DliSchema, ProjectLoader, apq},
    limits::Limits,
    metrics::Metrics,
    trace_context,
    upstream::{Client, Credential, SharedClient},
};

pub mod encoding;
pub mod guard;

/// The media type of GraphQL-over-HTTP responses.
pub const GRAPHQL_RESPONSE_JSON: &str = "application/graphql-response+json";

/// What every request handler shares.
#[derive(Clone)]
pub struct AppState {
    /// The executable schema.
    pub schema: DliSchema,
    /// The upstream client.
    pub client: Client,
    /// The client as resolvers use it: coalescing and the optional cache in front of `client`.
    pub shared: SharedClient,
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
}

/// Responses smaller than this are sent uncompressed whatever the client accepts.
pub const COMPRESS_MIN_BYTES: u16 = 1024;

/// The router with its middleware.
pub fn router(state: AppState) -> Router {
    let metrics = state.metrics.clone();
    let compression = state.compression;
    let mut router = Router::new()
        .route("/graphql", get(graphql_get).post(graphql_post).fallback(method_not_allowed))
        .route("/", get(graphiql::page))
        .route(graphiql::ASSET_ROUTE, get(graphiql::asset).layer(CompressionLayer::new().gzip(true)))
        .route("/healthz", get(healthz))
        .route("/metrics", get(metrics_text))
        .with_state(state);
    if compression {
        // gzip, br or zstd when the client asks for it; small bodies are not worth the CPU.
        // Level 1 keeps on-the-fly compression cheap: brotli's default level took a quarter of
        // the CPU time under load, and brotli's quality 0 (tower-http's `Fastest`) is slower
        // than quality 1 and compresses worse (a 15.6 KB W1 answer: 175 µs to 4.0 KB against
        // 119 µs to 3.6 KB); gzip and zstd are at level 1 either way.
        router = router.layer(CompressionLayer::new().quality(CompressionLevel::Precise(1)).compress_when(
            SizeAbove::new(COMPRESS_MIN_BYTES).and(NotForContentType::GRPC).and(NotForContentType::IMAGES),
        ));
        // Runs first: picks the coding the compression layer then uses.
        router = router.layer(axum::middleware::from_fn(encoding::prefer_cheapest_coding));
    }
    router
        // Layers added later run first: id check, id, sensitive headers, span, echo, metrics.
        .layer(axum::middleware::from_fn_with_state(metrics, crate::metrics::track_http))
        .layer(PropagateRequestIdLayer::x_request_id())
        .layer(TraceLayer::new_for_http().make_span_with(request_span).on_response(
            |resp: &Response, latency: std::time::Duration, span: &tracing::Span| {
                span.record("http.response.status_code", i64::from(resp.status().as_u16()));
                tracing::info!(
                    status = resp.status().as_u16(),
                    latency_ms = latency.as_millis() as u64,
                    "request finished"
                );
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

/// The Cache-Control of a GraphQL response. Answers depend on the caller's credentials
/// and DLI's live state, so nothing may be stored by default; a response cache with a
/// TTL would answer `private, max-age=<remaining TTL>` here instead.
pub fn cache_control(_response: &BatchResponse) -> HeaderValue {
    HeaderValue::from_static("private, no-store")
}

/// The response media type the client asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// `application/graphql-response+json`: request errors are HTTP 400.
    GraphqlResponseJson,
    /// `application/json`: always HTTP 200 once the request is well-formed.
    Json,
}

impl Format {
    fn negotiate(headers: &HeaderMap) -> Option<Self> {
        let Some(accept) = headers.get(header::ACCEPT).and_then(|v| v.to_str().ok()) else {
            return Some(Self::Json);
        };
        let types: Vec<&str> = accept
            .split(',')
            .filter_map(|t| {
                let mut parts = t.split(';').map(str::trim);
                let mt = parts.next()?;
                // `q=0` means "not acceptable".
                let refused = parts
                    .any(|p| p.strip_prefix("q=").is_some_and(|q| q.parse::<f32>().is_ok_and(|q| q <= 0.0)));
                (!refused).then_some(mt)
            })
            .collect();
        let has = |t: &str| types.iter().any(|m| m.eq_ignore_ascii_case(t));
        if has(GRAPHQL_RESPONSE_JSON) {
            Some(Self::GraphqlResponseJson)
        } else if has("application/json") || has("application/*") || has("*/*") || accept.trim().is_empty() {
            Some(Self::Json)
        } else {
            None
        }
    }

    fn content_type(self) -> &'static str {
        match self {
            Self::GraphqlResponseJson => "application/graphql-response+json; charset=utf-8",
            Self::Json => "application/json; charset=utf-8",
        }
    }
}

#[derive(Serialize)]
struct ErrorBody<'a> {
    errors: [ErrorEntry<'a>; 1],
}

#[derive(Serialize)]
struct ErrorEntry<'a> {
    message: &'a str,
    extensions: Extensions,
}

#[derive(Serialize)]
struct Extensions {
    code: &'static str,
}

/// An HTTP-level failure, answered as a GraphQL error body.
pub fn error_response(
    status: StatusCode,
    code: ErrorCode,
    message: &str,
    format: Option<Format>,
) -> Response {
    let body = ErrorBody { errors: [ErrorEntry { message, extensions: Extensions { code: code.as_str() } }] };
    let body = serde_json::to_vec(&body).unwrap_or_default();
    let ct = format.unwrap_or(Format::Json).content_type();
    (status, [(header::CONTENT_TYPE, ct), (header::CACHE_CONTROL, "private, no-store")], body).into_response()
}

/// Rejection for a request body that is not a GraphQL-over-HTTP request.
pub struct Rejection(ParseRequestError);

impl From<ParseRequestError> for Rejection {
    fn from(e: ParseRequestError) -> Self {
        Self(e)
    }
}

impl IntoResponse for Rejection {
    fn into_response(self) -> Response {
        match self.0 {
            ParseRequestError::PayloadTooLarge => error_response(
                StatusCode::PAYLOAD_TOO_LARGE,
                ErrorCode::LimitExceeded,
                "request body too large",
                None,
            ),
            e => {
                let message = match e {
                    ParseRequestError::InvalidRequest(e) => format!("the body is not a GraphQL request: {e}"),
                    ParseRequestError::Io(e) => format!("could not read the request: {e}"),
                    ParseRequestError::InvalidFilesMap(_) | ParseRequestError::InvalidMultipart(_) => {
                        "multipart requests are not supported".to_owned()
                    }
                    other => format!("bad request: {other}"),
                };
                error_response(StatusCode::BAD_REQUEST, ErrorCode::BadRequest, &message, None)
            }
        }
    }
}

async fn graphql_post(State(state): State<AppState>, req: Request) -> Response {
    let Some(format) = Format::negotiate(req.headers()) else {
        return error_response(
            StatusCode::NOT_ACCEPTABLE,
            ErrorCode::BadRequest,
            "Accept must allow application/graphql-response+json or application/json",
            None,
        );
    };
    let content_type = req.headers().get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or("");
    let media = content_type.split(';').next().unwrap_or("").trim();
    if !media.eq_ignore_ascii_case("application/json") {
        return error_response(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            ErrorCode::BadRequest,
            "POST bodies must be application/json",
            Some(format),
        );
    }
    let req = match guard::buffer_body(req, &state.limits, format).await {
        Ok(req) => req,
        Err(resp) => return resp,
    };
    execute(state, req, format).await
}

async fn graphql_get(State(state): State<AppState>, req: Request) -> Response {
    let wants_html = req
        .headers()
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|a| a.contains("text/html"));
    let has_query = req.uri().query().is_some_and(|q| !q.is_empty());
    if wants_html && !has_query {
        return graphiql::page().await;
    }
    let Some(format) = Format::negotiate(req.headers()) else {
        return error_response(
            StatusCode::NOT_ACCEPTABLE,
            ErrorCode::BadRequest,
            "Accept must allow application/graphql-response+json or application/json",
            None,
        );
    };
    execute(state, req, format).await
}

async fn execute(state: AppState, req: Request, format: Format) -> Response {
    // A caller's own token needs no API key: DLI authorises it. Otherwise the service's
    // credential is used, and only by callers the access policy admits.
    let credential = match caller_credential(req.headers()) {
        Some(own) => Some(own),
        None => match state.access.admit(req.headers()) {
            Ok(()) => state.service_credential.clone(),
            Err(denied) => return denied.into_response(format),
        },
    };
    let is_get = req.method() == Method::GET;
    let request_id = req.headers().get(trace_context::REQUEST_ID_HEADER).cloned();
    let batch = match GraphQLBatchRequest::<Rejection>::from_request(req, &()).await {
        Ok(b) => b.into_inner(),
        Err(rejection) => return rejection.into_response(),
    };
    if let Some(resp) = guard::check_batch(&batch, &state.limits, format) {
        return resp;
    }
    if is_get
        && batch.iter().any(|r| {
            r.query.trim_start().starts_with("mutation") || r.query.trim_start().starts_with("subscription")
        })
    {
        return error_response(
            StatusCode::METHOD_NOT_ALLOWED,
            ErrorCode::BadRequest,
            "only queries may be sent with GET",
            Some(format),
        );
    }
    // One loader per HTTP request: every operation and field in it shares the batches.
    let loader = Arc::new(ProjectLoader::restricted_data_loader(
        state.shared.clone(),
        credential,
        state.access.allowed_projects(),
    ));
    let batch = batch.data(loader);
    let response = match request_id {
        Some(id) => trace_context::with_request_id(id, state.schema.execute_batch(batch)).await,
        None => state.schema.execute_batch(batch).await,
    };
    graphql_response(response, format)
}

/// The caller's own `X-Auth-Token`, if it sent a usable one.
fn caller_credential(headers: &HeaderMap) -> Option<Credential> {
    headers.get("x-auth-token").and_then(|v| v.to_str().ok()).and_then(Credential::token)
}

#[derive(Serialize)]
struct RequestErrorBody<'a> {
    errors: &'a [async_graphql::ServerError],
}

fn graphql_response(response: BatchResponse, format: Format) -> Response {
    let (status, body) = match &response {
        // A request error (parse, validation, variables) has no data; with the new media
        // type it is a 400 and `data` must be absent.
        BatchResponse::Single(r)
            if format == Format::GraphqlResponseJson
                && r.data == async_graphql::Value::Null
                && !r.errors.is_empty()
                // Apollo clients expect an unknown APQ hash as a 200, then resend the query.
                && !apq::is_not_found(r) =>
        {
            (StatusCode::BAD_REQUEST, serde_json::to_vec(&RequestErrorBody { errors: &r.errors }))
        }
        _ => (StatusCode::OK, serde_json::to_vec(&response)),
    };
    match body {
        Ok(body) => {
            let cache = cache_control(&response);
            let mut resp = (status, body).into_response();
            resp.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static(format.content_type()));
            resp.headers_mut().insert(header::CACHE_CONTROL, cache);
            resp
        }
        Err(e) => {
            tracing::error!(error = %e, "could not serialize a response");
            error_response(
                StatusCode::INTERNAL_SERVER_ERROR,
                ErrorCode::BadRequest,
                "internal error",
                Some(format),
            )
        }
    }
}

async fn method_not_allowed() -> Response {
    let mut resp = error_response(
        StatusCode::METHOD_NOT_ALLOWED,
        ErrorCode::BadRequest,
        "use GET or POST on /graphql",
        None,
    );
    resp.headers_mut().insert(header::ALLOW, HeaderValue::from_static("GET, POST"));
    resp
}

async fn metrics_text(State(state): State<AppState>) -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8"),
            (header::CACHE_CONTROL, "no-store"),
        ],
        state.metrics.render(),
    )
        .into_response()
}

async fn healthz() -> impl IntoResponse {
    ([(header::CONTENT_TYPE, "application/json")], r#"{"status":"ok"}"#)
}
