//! GraphQL over HTTP: `POST /graphql` (JSON) and `GET /graphql?query=…`, per-request data
//! (the caller's credential, a fresh project loader), and the response's status and headers.

use std::sync::Arc;

use async_graphql::{BatchResponse, ParseRequestError};
use async_graphql_axum::GraphQLBatchRequest;
use axum::{
    body::Bytes,
    extract::{FromRequest, Request, State},
    http::{HeaderValue, Method, StatusCode, header},
    response::{IntoResponse, Response},
};
use serde::Serialize;

use super::{
    AppState,
    admission::Caller,
    body,
    encoding::{self, Format},
    share::{self, Encoded, Key},
    streams, ws,
};
use crate::{
    error::{ErrorCode, http_error},
    graphql::{
        ProjectLoader, apq,
        plan::{Bound, Known, Planner},
        trusted_documents,
    },
    observability::{metrics::OperationOutcome, trace_context},
    upstream::Credential,
};

/// The Cache-Control of a GraphQL response. Answers depend on the caller's credentials
/// and DLI's live state, so nothing may be stored by default; a response cache with a
/// TTL would answer `private, max-age=<remaining TTL>` here instead.
pub fn cache_control() -> HeaderValue {
    HeaderValue::from_static("private, no-store")
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
            ParseRequestError::PayloadTooLarge => http_error(
                StatusCode::PAYLOAD_TOO_LARGE,
                ErrorCode::LimitExceeded,
                "request body too large",
                Format::Json.content_type(),
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
                http_error(
                    StatusCode::BAD_REQUEST,
                    ErrorCode::BadRequest,
                    &message,
                    Format::Json.content_type(),
                )
            }
        }
    }
}

pub(crate) async fn post(State(state): State<AppState>, req: Request) -> Response {
    if streams::wants_event_stream(req.headers()) {
        return streams::sse(state, req).await;
    }
    if streams::wants_multipart(req.headers()) {
        return streams::multipart(state, req).await;
    }
    let Some(format) = Format::negotiate(req.headers()) else {
        return encoding::not_acceptable();
    };
    let content_type = req.headers().get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or("");
    let media = content_type.split(';').next().unwrap_or("").trim();
    if !media.eq_ignore_ascii_case("application/json") {
        return http_error(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            ErrorCode::BadRequest,
            "POST bodies must be application/json",
            format.content_type(),
        );
    }
    let req = match body::buffer_body(req, &state.limits, format).await {
        Ok(req) => req,
        Err(resp) => return resp,
    };
    execute(state, req, format).await
}

pub(crate) async fn get(State(state): State<AppState>, req: Request) -> Response {
    if ws::is_upgrade(req.headers()) {
        return ws::upgrade(state, req).await;
    }
    let wants_html = req
        .headers()
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|a| a.contains("text/html"));
    let has_query = req.uri().query().is_some_and(|q| !q.is_empty());
    if wants_html && !has_query {
        return super::graphiql::page().await;
    }
    let Some(format) = Format::negotiate(req.headers()) else {
        return encoding::not_acceptable();
    };
    execute(state, req, format).await
}

async fn execute(state: AppState, req: Request, format: Format) -> Response {
    // A caller's own token needs no API key: DLI authorises it. Otherwise the service's
    // credential is used, and only by callers the access policy admits.
    let (credential, api_key) =
        match state.access.credential_and_key(req.headers(), &state.service_credential) {
            Ok(admitted) => admitted,
            Err(denied) => return denied.into_response(format),
        };
    if let Some(limits) = &state.rate_limits {
        let caller = match api_key {
            Some(key) => Some(Caller::ApiKey(key)),
            None => limits.client_ip(req.extensions().get(), req.headers()).map(Caller::Ip),
        };
        if let Some(caller) = caller
            && let Some(refused) = limits.check(caller, format)
        {
            return refused;
        }
    }
    let method = req.method().clone();
    let is_get = method == Method::GET;
    let request_id = req.headers().get(trace_context::REQUEST_ID_HEADER).cloned();
    // The request's own bytes identify identical requests, carry any `documentId`, and are
    // what the planned executor reads (the body is already in memory).
    let wants_bytes = state.executions.is_some() || state.trusted_documents || state.planner.is_some();
    let (req, request_bytes) = if !wants_bytes {
        (req, None)
    } else if is_get {
        let query = Bytes::copy_from_slice(req.uri().query().unwrap_or("").as_bytes());
        (req, Some(query))
    } else {
        let (parts, body) = req.into_parts();
        let Ok(bytes) = axum::body::to_bytes(body, usize::MAX).await else {
            return http_error(
                StatusCode::BAD_REQUEST,
                ErrorCode::BadRequest,
                "could not read the request body",
                format.content_type(),
            );
        };
        (Request::from_parts(parts, axum::body::Body::from(bytes.clone())), Some(bytes))
    };
    let planned = match (&state.planner, &request_bytes) {
        (Some(planner), Some(bytes)) if !is_get => Planned::of(planner, bytes),
        _ => Planned::None,
    };
    // A bound plan needs nothing async-graphql parses, unless its answer is to be compared.
    let batch = if matches!(planned, Planned::Bound(_)) && !state.verify_plans {
        None
    } else {
        let document_ids = match &request_bytes {
            Some(bytes) if state.trusted_documents => document_ids(is_get, bytes),
            _ => Vec::new(),
        };
        let mut batch = match GraphQLBatchRequest::<Rejection>::from_request(req, &()).await {
            Ok(b) => b.into_inner(),
            Err(rejection) => return rejection.into_response(),
        };
        for (request, id) in batch.iter_mut().zip(document_ids) {
            if let Some(id) = id {
                request
                    .extensions
                    .0
                    .insert(trusted_documents::DOCUMENT_ID.to_owned(), async_graphql::Value::String(id));
            }
        }
        if let Some(resp) = body::check_batch(&batch, &state.limits, format) {
            return resp;
        }
        if is_get
            && batch.iter().any(|r| {
                r.query.trim_start().starts_with("mutation")
                    || r.query.trim_start().starts_with("subscription")
            })
        {
            return http_error(
                StatusCode::METHOD_NOT_ALLOWED,
                ErrorCode::BadRequest,
                "only queries may be sent with GET",
                format.content_type(),
            );
        }
        Some(batch)
    };
    let identity = credential.as_ref().map(Credential::identity);
    // One loader per HTTP request: every operation and field in it shares its calls.
    let loader =
        Arc::new(ProjectLoader::new(state.shared.clone(), credential, state.access.allowed_projects()));
    let _slot = match state.shed.slot(format).await {
        Ok(slot) => slot,
        Err(shed) => return shed,
    };
    let run = {
        let state = state.clone();
        let bytes = request_bytes.clone();
        async move {
            let work = respond(&state, planned, batch, bytes, loader, format);
            match request_id {
                Some(id) => trace_context::with_request_id(id, work).await,
                None => work.await,
            }
        }
    };
    match (&state.executions, request_bytes) {
        (Some(executions), Some(bytes)) => {
            let key = Key::new(identity, format, &method, bytes);
            executions.run(key, run, || state.metrics.shared_execution()).await.to_response()
        }
        _ => run.await.to_response(),
    }
}

/// What the planned executor can do for a request.
enum Planned {
    /// Nothing: not a single plain JSON request, or an operation that cannot be planned.
    None,
    /// Its plan, bound to the request's variables.
    Bound(Bound),
    /// An operation seen for the first time: learn its plan if async-graphql answers it
    /// without errors.
    Learn { query: String, operation_name: Option<String> },
}

impl Planned {
    fn of(planner: &Planner, body: &[u8]) -> Self {
        /// A single GraphQL request with nothing but a document, an operation name and
        /// variables: anything else (batches, APQ hashes, extensions) goes to async-graphql.
        #[derive(serde::Deserialize)]
        struct Plain<'a> {
            #[serde(borrow)]
            query: std::borrow::Cow<'a, str>,
            #[serde(rename = "operationName", borrow, default)]
            operation_name: Option<std::borrow::Cow<'a, str>>,
            #[serde(borrow, default)]
            variables: Option<&'a serde_json::value::RawValue>,
            #[serde(borrow, default)]
            extensions: Option<&'a serde_json::value::RawValue>,
        }
        let Ok(plain) = serde_json::from_slice::<Plain<'_>>(body) else { return Self::None };
        // `null` and `{}` (which some clients always send) are no extensions.
        let no_extensions = plain.extensions.is_none_or(|raw| {
            serde_json::from_str::<Option<serde_json::Map<String, serde_json::Value>>>(raw.get())
                .is_ok_and(|map| map.is_none_or(|m| m.is_empty()))
        });
        if !no_extensions || plain.query.trim().is_empty() {
            return Self::None;
        }
        let operation_name = plain.operation_name.as_deref();
        match planner.known(&plain.query, operation_name) {
            Known::Plan(plan) => {
                // `null` or an object; anything else is async-graphql's to refuse.
                let variables = match plain.variables.map(|raw| serde_json::from_str(raw.get())) {
                    None | Some(Ok(None)) => None,
                    Some(Ok(Some(map))) => Some(map),
                    Some(Err(_)) => return Self::None,
                };
                match plan.bind(variables.as_ref()) {
                    Some(bound) => Self::Bound(bound),
                    None => Self::None,
                }
            }
            Known::Unseen => Self::Learn {
                query: plain.query.into_owned(),
                operation_name: operation_name.map(str::to_owned),
            },
            Known::No => Self::None,
        }
    }
}

/// Answers a request: from its plan when it has one (and every project loaded), else
/// through async-graphql; under `--verify-plans`, through both, comparing the bytes.
async fn respond(
    state: &AppState,
    planned: Planned,
    batch: Option<async_graphql::BatchRequest>,
    bytes: Option<Bytes>,
    loader: Arc<ProjectLoader>,
    format: Format,
) -> Encoded {
    if let (Planned::Bound(bound), false) = (&planned, state.verify_plans)
        && let Some(encoded) = run_planned(state, bound, &loader, format).await
    {
        return encoded;
    }
    // The generic path; a request that skipped parsing is parsed now (it is plain JSON).
    let batch = match batch {
        Some(batch) => batch,
        None => match bytes.as_deref().map(serde_json::from_slice::<async_graphql::BatchRequest>) {
            Some(Ok(batch)) => batch,
            _ => return share::internal_error(format),
        },
    };
    // Boxed: async-graphql's execution is a large future, which would otherwise be moved
    // (copied) with this request's every time the request's future moves.
    let response = Box::pin(state.schema.execute_batch(batch.data(loader.clone()))).await;
    let encoded = encode(&response, format);
    let succeeded = matches!(&response, BatchResponse::Single(r) if r.errors.is_empty());
    let plan = match planned {
        Planned::Learn { query, operation_name } if succeeded => {
            let plan = state.planner.as_ref().and_then(|p| p.learn(&query, operation_name.as_deref()));
            // Verifying: the new plan answers this same request too (with the variables
            // async-graphql just accepted), to be compared below.
            match (plan, state.verify_plans, state.planner.as_deref(), bytes.as_deref()) {
                (Some(_), true, Some(planner), Some(body)) => match Planned::of(planner, body) {
                    Planned::Bound(bound) => Some(bound),
                    _ => None,
                },
                _ => None,
            }
        }
        Planned::Bound(bound) if state.verify_plans => Some(bound),
        _ => None,
    };
    if let Some(bound) = plan
        && let Some(body) = bound.run(&loader).await
    {
        if succeeded && body == encoded.body {
            state.metrics.planned_operation();
            return encoded;
        }
        state.metrics.plan_mismatch();
        let at = body.iter().zip(encoded.body.iter()).take_while(|(a, b)| a == b).count();
        let around = |b: &[u8]| {
            String::from_utf8_lossy(&b[at.saturating_sub(60)..(at + 60).min(b.len())]).into_owned()
        };
        tracing::error!(
            operation = bound.operation_name().unwrap_or("anonymous"),
            generic_had_errors = !succeeded,
            first_difference_at = at,
            generic = around(&encoded.body),
            planned = around(&body),
            "the planned executor's answer differs from async-graphql's"
        );
        return share::internal_error(format);
    }
    encoded
}

/// The planned answer, or `None` when a project's load failed (async-graphql then answers
/// from the same loader). Recorded like an async-graphql operation: span, count, latency.
async fn run_planned(
    state: &AppState,
    bound: &Bound,
    loader: &ProjectLoader,
    format: Format,
) -> Option<Encoded> {
    let name = bound.operation_name().unwrap_or("anonymous");
    let span = tracing::info_span!(
        "graphql.operation",
        graphql.operation.name = name,
        graphql.operation.type = "query",
        outcome = OperationOutcome::Ok.as_str(),
        planned = true,
    );
    let started = std::time::Instant::now();
    let body = tracing::Instrument::instrument(bound.run(loader), span).await?;
    state.metrics.graphql_operation(name, "query", OperationOutcome::Ok, started.elapsed());
    state.metrics.planned_operation();
    Some(Encoded {
        status: StatusCode::OK,
        content_type: format.content_type(),
        cache_control: cache_control(),
        body: body.into(),
    })
}

/// The `documentId` of each operation of the request, in order, from the raw query string
/// (GET) or JSON body (POST: one object or a batch).
fn document_ids(is_get: bool, raw: &[u8]) -> Vec<Option<String>> {
    #[derive(serde::Deserialize)]
    struct Named {
        #[serde(rename = "documentId")]
        document_id: Option<String>,
    }
    #[derive(serde::Deserialize)]
    #[serde(untagged)]
    enum Body {
        One(Named),
        Batch(Vec<Named>),
    }
    if is_get {
        let id = form_urlencoded::parse(raw).find(|(k, _)| k == "documentId").map(|(_, v)| v.into_owned());
        return vec![id];
    }
    match serde_json::from_slice::<Body>(raw) {
        Ok(Body::One(n)) => vec![n.document_id],
        Ok(Body::Batch(ns)) => ns.into_iter().map(|n| n.document_id).collect(),
        // Not JSON of that shape: the parser reports it.
        Err(_) => Vec::new(),
    }
}

#[derive(Serialize)]
struct RequestErrorBody<'a> {
    errors: &'a [async_graphql::ServerError],
}

/// The status, headers and body of a GraphQL response in `format`.
fn encode(response: &BatchResponse, format: Format) -> Encoded {
    let (status, body) = match response {
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
        _ => (StatusCode::OK, serde_json::to_vec(response)),
    };
    match body {
        Ok(body) => Encoded {
            status,
            content_type: format.content_type(),
            cache_control: cache_control(),
            body: body.into(),
        },
        Err(e) => {
            tracing::error!(error = %e, "could not serialize a response");
            share::internal_error(format)
        }
    }
}

pub(crate) async fn method_not_allowed() -> Response {
    let mut resp = http_error(
        StatusCode::METHOD_NOT_ALLOWED,
        ErrorCode::BadRequest,
        "use GET or POST on /graphql",
        Format::Json.content_type(),
    );
    resp.headers_mut().insert(header::ALLOW, HeaderValue::from_static("GET, POST"));
    resp
}
