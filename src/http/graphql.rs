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
    graphql::{ProjectLoader, apq, trusted_documents},
    observability::trace_context,
    upstream::Credential,
};

/// The Cache-Control of a GraphQL response. Answers depend on the caller's credentials
/// and DLI's live state, so nothing may be stored by default; a response cache with a
/// TTL would answer `private, max-age=<remaining TTL>` here instead.
pub fn cache_control(_response: &BatchResponse) -> HeaderValue {
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
    // The request's own bytes identify identical requests and carry any `documentId` (the
    // body is already in memory).
    let wants_bytes = state.executions.is_some() || state.trusted_documents;
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
            r.query.trim_start().starts_with("mutation") || r.query.trim_start().starts_with("subscription")
        })
    {
        return http_error(
            StatusCode::METHOD_NOT_ALLOWED,
            ErrorCode::BadRequest,
            "only queries may be sent with GET",
            format.content_type(),
        );
    }
    let identity = credential.as_ref().map(Credential::identity);
    // One loader per HTTP request: every operation and field in it shares its calls.
    let loader =
        Arc::new(ProjectLoader::new(state.shared.clone(), credential, state.access.allowed_projects()));
    let batch = batch.data(loader);
    let _slot = match state.shed.slot(format).await {
        Ok(slot) => slot,
        Err(shed) => return shed,
    };
    let schema = state.schema.clone();
    let run = async move {
        let response = match request_id {
            Some(id) => trace_context::with_request_id(id, schema.execute_batch(batch)).await,
            None => schema.execute_batch(batch).await,
        };
        encode(&response, format)
    };
    match (&state.executions, request_bytes) {
        (Some(executions), Some(bytes)) => {
            let key = Key::new(identity, format, &method, bytes);
            executions.run(key, run, || state.metrics.shared_execution()).await.to_response()
        }
        _ => run.await.to_response(),
    }
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
            cache_control: cache_control(response),
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
