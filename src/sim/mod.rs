//! A faithful DLI simulator: real HTTP on a loopback port.
//!
//! It serves the classic list `GET /v2.0/{project_id}/datasource-connection` and show
//! `.../datasource-connection/{connection_id}`, and the enhanced list
//! `GET /v2.0/{project_id}/datasource/enhanced-connections` (with `limit`, `offset`,
//! `status`, `name`, `tags`), show and `.../{connection_id}/privileges`, with the documented
//! envelopes, error bodies (unknown ids: `DLI.0002`, or `DLI.0001` "... is not exist" for
//! enhanced connections) and deterministic data ([`fixtures`]), authenticates like the API gateway and IAM
//! ([`auth`]: tokens, AK/SK signatures, `POST /v3/auth/tokens`), logs every request
//! (path and headers) for tests to assert on, and injects faults per project: a status
//! with the documented error body, a delay, a malformed body, `is_success: false`, or no
//! answer at all.
//!
//! Connections change over time when asked to ([`live`]): created (`CREATING`, `process`
//! climbing), finished (`ACTIVE` or `FAILED`), queues bound and unbound, deleted; through
//! the Rust API on [`Simulator`], through `/__sim/projects/{project}/connections`, or on a
//! timer ([`Simulator::animate`], which `--demo` uses).
//!
//! Faults are set through [`Simulator::set_fault`], through `PUT /__sim/faults/{project}`,
//! or by naming a project `fault-401`, `fault-403`, `fault-404`, `fault-429`, `fault-500`,
//! `fault-slow`, `fault-garbage` or `fault-unsuccessful` (any suffix), so a person in
//! GraphiQL can see each error without any setup.

pub mod auth;
pub mod fixtures;
pub mod live;

use std::{
    collections::{HashMap, VecDeque},
    net::SocketAddr,
    sync::Arc,
    time::{Duration, Instant},
};

use parking_lot::Mutex;

use axum::{
    Json, Router,
    body::Body,
    extract::{Path, State},
    http::{Request, StatusCode, header},
    response::{IntoResponse, Response},
    routing::{get, patch, post, put},
};
use bytes::Bytes;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use tokio::{net::TcpListener, sync::oneshot};

pub use auth::{SimAccessKey, SimAuth, SimIamUser};

/// How many requests the log keeps (oldest dropped first); counters are never dropped.
const LOG_CAPACITY: usize = 10_000;
/// How many distinct projects' bodies are kept rendered.
const BODY_CACHE_CAPACITY: usize = 4_096;

/// Simulator settings.
#[derive(Debug, Clone)]
pub struct SimOptions {
    /// Connections per project (the first is always the seed sample).
    pub connections_per_project: usize,
    /// Enhanced connections per project.
    pub enhanced_per_project: usize,
    /// Delay added to every list call.
    pub base_delay: Duration,
    /// Known keys, IAM users, token checking.
    pub auth: SimAuth,
    /// Fraction (0.0–1.0) of list calls without a set fault that get a random one: a 500, a
    /// 429 with `Retry-After: 1`, a 2 s delay or a malformed body, in equal shares.
    pub fault_rate: f64,
}

impl Default for SimOptions {
    fn default() -> Self {
        Self {
            connections_per_project: 12,
            enhanced_per_project: 12,
            base_delay: Duration::ZERO,
            auth: SimAuth::default(),
            fault_rate: 0.0,
        }
    }
}

/// One injected behaviour for a project.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Fault {
    /// Milliseconds to wait before answering.
    #[serde(default)]
    pub delay_ms: u64,
    /// What to answer after the delay.
    #[serde(flatten)]
    pub kind: FaultKind,
}

/// What a faulty project answers.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum FaultKind {
    /// The normal answer (use with `delay_ms`).
    Normal,
    /// A DLI error: `{error_code, error_msg}`; with `gateway`, the API gateway's
    /// `{error_msg, error_code, request_id}`.
    Error {
        /// HTTP status.
        status: u16,
        /// `error_code`, e.g. `DLI.0002` or `APIG.0308`.
        error_code: String,
        /// `error_msg`.
        error_msg: String,
        /// Gateway-style body (with `request_id`).
        #[serde(default)]
        gateway: bool,
        /// `Retry-After` seconds.
        #[serde(default)]
        retry_after: Option<u64>,
    },
    /// HTTP 200 with this exact body (malformed, or hand-crafted JSON).
    Body {
        /// The body sent.
        body: String,
    },
    /// HTTP 200 with `is_success: false`.
    NotSuccess {
        /// The envelope's `message`.
        message: String,
    },
    /// Never answers (the connection stays open until the client gives up).
    Hang,
}

impl Fault {
    /// A DLI-style error body with this status.
    pub fn dli(status: u16, code: &str, msg: &str) -> Self {
        Self::now(FaultKind::Error {
            status,
            error_code: code.into(),
            error_msg: msg.into(),
            gateway: false,
            retry_after: None,
        })
    }
    /// An API-gateway-style error body with this status.
    pub fn gateway(status: u16, code: &str, msg: &str) -> Self {
        Self::now(FaultKind::Error {
            status,
            error_code: code.into(),
            error_msg: msg.into(),
            gateway: true,
            retry_after: None,
        })
    }
    /// The gateway's throttling answer with `Retry-After`.
    pub fn throttled(retry_after: u64) -> Self {
        Self::now(FaultKind::Error {
            status: 429,
            error_code: "APIG.0308".into(),
            error_msg:
                "The throttling threshold has been reached: policy ip over ratelimit,limit:5,time:1 minute"
                    .into(),
            gateway: true,
            retry_after: Some(retry_after),
        })
    }
    /// A 200 with exactly this body: garbage, or a hand-crafted list.
    pub fn body(body: &str) -> Self {
        Self::now(FaultKind::Body { body: body.into() })
    }
    /// A 200 with `is_success: false`.
    pub fn not_success(message: &str) -> Self {
        Self::now(FaultKind::NotSuccess { message: message.into() })
    }
    /// The normal answer, late.
    pub fn delay(d: Duration) -> Self {
        Self { delay_ms: d.as_millis() as u64, kind: FaultKind::Normal }
    }
    /// No answer at all.
    pub fn hang() -> Self {
        Self::now(FaultKind::Hang)
    }
    fn now(kind: FaultKind) -> Self {
        Self { delay_ms: 0, kind }
    }

    /// The fault a project's name asks for (`fault-401...`), if any.
    pub fn for_project_name(project: &str) -> Option<Self> {
        let rest = project.strip_prefix("fault-")?;
        let pick = |p: &str| rest.starts_with(p);
        Some(if pick("401") {
            Self::gateway(
                401,
                "APIG.0301",
                "Incorrect IAM authentication information: verify aksk signature fail",
            )
        } else if pick("403") {
            Self::gateway(403, "APIG.0302", "The IAM user is not authorized to access the API")
        } else if pick("404") {
            Self::dli(400, "DLI.0002", "There is no project with this id")
        } else if pick("429") {
            Self::throttled(2)
        } else if pick("500") {
            Self::dli(500, "DLI.0999", "Internal server error")
        } else if pick("slow") {
            Self::delay(Duration::from_secs(3))
        } else if pick("garbage") {
            Self::body("{\"is_success\": true, \"connections\": [{\"name\": ")
        } else if pick("unsuccessful") {
            Self::not_success("The connection list could not be loaded")
        } else {
            return None;
        })
    }
}

/// One request as the simulator received it.
#[derive(Debug, Clone, Serialize)]
pub struct LoggedRequest {
    /// HTTP method.
    pub method: String,
    /// Raw path, as sent (still percent-encoded).
    pub path: String,
    /// Raw query string, if any.
    pub query: Option<String>,
    /// Headers, lower-case names, in arrival order.
    pub headers: Vec<(String, String)>,
    /// When it arrived, relative to simulator start, in milliseconds.
    pub at_ms: u64,
}

impl LoggedRequest {
    /// The first value of header `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }
}

/// Call counters, as served by `GET /__sim/stats`.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Stats {
    /// Classic list calls in total.
    pub calls: u64,
    /// Classic list calls per project id.
    pub by_project: HashMap<String, u64>,
    /// Calls of every endpoint, keyed `{endpoint} {project}` (see [`Endpoint`]).
    pub by_endpoint: HashMap<String, u64>,
}

/// The endpoints the simulator counts calls of.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Endpoint {
    /// `GET /v2.0/{project_id}/datasource-connection`
    List,
    /// `GET /v2.0/{project_id}/datasource-connection/{connection_id}`
    Show,
    /// `GET /v2.0/{project_id}/datasource/enhanced-connections`
    EnhancedList,
    /// `GET /v2.0/{project_id}/datasource/enhanced-connections/{connection_id}`
    EnhancedShow,
    /// `GET /v2.0/{project_id}/datasource/enhanced-connections/{connection_id}/privileges`
    Privileges,
}

impl Endpoint {
    /// The name used in [`Stats::by_endpoint`] keys.
    pub const fn name(self) -> &'static str {
        match self {
            Self::List => "list",
            Self::Show => "show",
            Self::EnhancedList => "enhanced_list",
            Self::EnhancedShow => "enhanced_show",
            Self::Privileges => "privileges",
        }
    }
}

/// The simulator's shared state.
pub struct SimState {
    opts: SimOptions,
    started: Instant,
    log: Mutex<VecDeque<LoggedRequest>>,
    stats: Mutex<Stats>,
    faults: Mutex<HashMap<String, Fault>>,
    /// Faults set for a number of calls only: calls left before the fault is removed.
    fault_uses: Mutex<HashMap<String, u32>>,
    bodies: Mutex<HashMap<String, Bytes>>,
    /// Projects whose connections changed: their whole current list (see [`live`]).
    live: Mutex<HashMap<String, Vec<serde_json::Value>>>,
    /// Where each animated project is in its demo lifecycle.
    demo_steps: Mutex<HashMap<String, u64>>,
    auth: auth::AuthState,
}

impl SimState {
    fn new(opts: SimOptions) -> Self {
        Self {
            opts,
            started: Instant::now(),
            log: Mutex::default(),
            stats: Mutex::default(),
            faults: Mutex::default(),
            fault_uses: Mutex::default(),
            bodies: Mutex::default(),
            live: Mutex::default(),
            demo_steps: Mutex::default(),
            auth: auth::AuthState::default(),
        }
    }

    /// The fault for this call: a set one (used up if counted), a named one, or a random one.
    fn take_fault(&self, project: &str) -> Option<Fault> {
        let mut faults = self.faults.lock();
        let set = faults.get(project).cloned();
        if set.is_some() {
            let mut uses = self.fault_uses.lock();
            if let Some(left) = uses.get_mut(project) {
                *left = left.saturating_sub(1);
                if *left == 0 {
                    uses.remove(project);
                    faults.remove(project);
                }
            }
        }
        drop(faults);
        set.or_else(|| Fault::for_project_name(project)).or_else(|| self.random_fault())
    }

    fn random_fault(&self) -> Option<Fault> {
        if self.opts.fault_rate <= 0.0 || rand::random::<f64>() >= self.opts.fault_rate {
            return None;
        }
        Some(match rand::random::<u8>() % 4 {
            0 => Fault::dli(500, "DLI.0999", "Internal server error"),
            1 => Fault::throttled(1),
            2 => Fault::delay(Duration::from_secs(2)),
            _ => Fault::body("{\"is_success\": true, \"connections\": [{\"name\": "),
        })
    }

    fn record(&self, req: &Request<Body>, call: Option<(Endpoint, &str)>) {
        let entry = LoggedRequest {
            method: req.method().to_string(),
            path: req.uri().path().to_owned(),
            query: req.uri().query().map(str::to_owned),
            headers: req
                .headers()
                .iter()
                .map(|(k, v)| (k.as_str().to_owned(), String::from_utf8_lossy(v.as_bytes()).into_owned()))
                .collect(),
            at_ms: self.started.elapsed().as_millis() as u64,
        };
        let mut log = self.log.lock();
        if log.len() == LOG_CAPACITY {
            log.pop_front();
        }
        log.push_back(entry);
        drop(log);
        if let Some((endpoint, p)) = call {
            let mut stats = self.stats.lock();
            if endpoint == Endpoint::List {
                stats.calls += 1;
                *stats.by_project.entry(p.to_owned()).or_default() += 1;
            }
            *stats.by_endpoint.entry(format!("{} {p}", endpoint.name())).or_default() += 1;
        }
    }

    fn body_for(&self, project: &str) -> Bytes {
        // A changed project's list is rendered on every call (never cached): a change
        // between rendering and caching would otherwise be lost.
        if let Some(list) = self.live.lock().get(project) {
            return Bytes::from(fixtures::list_body_of(list.clone()));
        }
        if let Some(b) = self.bodies.lock().get(project) {
            return b.clone();
        }
        let body = Bytes::from(fixtures::list_body(project, self.opts.connections_per_project));
        let mut bodies = self.bodies.lock();
        if bodies.len() >= BODY_CACHE_CAPACITY {
            bodies.clear();
        }
        bodies.insert(project.to_owned(), body.clone());
        body
    }
}

/// A running simulator. Stops when dropped.
pub struct Simulator {
    addr: SocketAddr,
    state: Arc<SimState>,
    _stop: oneshot::Sender<()>,
}

impl Simulator {
    /// Binds `addr` (use port 0 for a random port) and serves until dropped.
    pub async fn start(addr: SocketAddr, opts: SimOptions) -> std::io::Result<Self> {
        let listener = TcpListener::bind(addr).await?;
        let addr = listener.local_addr()?;
        let state = Arc::new(SimState::new(opts));
        let (stop, stopped) = oneshot::channel::<()>();
        let app = router(state.clone());
        tokio::spawn(async move {
            let serve = axum::serve(listener, app).with_graceful_shutdown(async {
                let _ = stopped.await;
            });
            if let Err(e) = serve.await {
                tracing::error!(error = %e, "simulator stopped");
            }
        });
        Ok(Self { addr, state, _stop: stop })
    }

    /// The address it listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Its base URL, e.g. `http://127.0.0.1:40123`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Makes `project` answer with `fault` until cleared.
    pub fn set_fault(&self, project: &str, fault: Fault) {
        self.state.fault_uses.lock().remove(project);
        self.state.faults.lock().insert(project.to_owned(), fault);
    }

    /// Makes `project` answer with `fault` for its next `calls` list calls only.
    pub fn set_fault_times(&self, project: &str, fault: Fault, calls: u32) {
        self.state.faults.lock().insert(project.to_owned(), fault);
        self.state.fault_uses.lock().insert(project.to_owned(), calls.max(1));
    }

    /// Removes every injected fault.
    pub fn clear_faults(&self) {
        self.state.faults.lock().clear();
        self.state.fault_uses.lock().clear();
    }

    /// Every request received (up to the last 10 000).
    pub fn requests(&self) -> Vec<LoggedRequest> {
        self.state.log.lock().iter().cloned().collect()
    }

    /// Classic list calls received for `project`.
    pub fn calls_for(&self, project: &str) -> u64 {
        self.state.stats.lock().by_project.get(project).copied().unwrap_or(0)
    }

    /// Calls of `endpoint` received for `project`.
    pub fn calls_to(&self, endpoint: Endpoint, project: &str) -> u64 {
        let key = format!("{} {project}", endpoint.name());
        self.state.stats.lock().by_endpoint.get(&key).copied().unwrap_or(0)
    }

    /// Counters of list calls.
    pub fn stats(&self) -> Stats {
        self.state.stats.lock().clone()
    }

    /// Forgets logged requests and counters.
    pub fn reset(&self) {
        self.state.log.lock().clear();
        *self.state.stats.lock() = Stats::default();
    }
}

fn router(state: Arc<SimState>) -> Router {
    Router::new()
        .route("/v2.0/{project_id}/datasource-connection", get(list_connections))
        .route("/v2.0/{project_id}/datasource-connection/{connection_id}", get(show_connection))
        .route("/v2.0/{project_id}/datasource/enhanced-connections", get(list_enhanced))
        .route("/v2.0/{project_id}/datasource/enhanced-connections/{connection_id}", get(show_enhanced))
        .route(
            "/v2.0/{project_id}/datasource/enhanced-connections/{connection_id}/privileges",
            get(enhanced_privileges),
        )
        .route("/v3/auth/tokens", post(auth::issue_token))
        .route("/__sim/stats", get(stats))
        .route("/__sim/requests", get(requests))
        .route("/__sim/reset", post(reset))
        .route("/__sim/faults/{project_id}", put(put_fault).delete(delete_fault))
        .route("/__sim/projects/{project_id}/connections", post(live::post_connection))
        .route(
            "/__sim/projects/{project_id}/connections/{connection_id}",
            patch(live::patch_connection).delete(live::delete_connection),
        )
        .fallback(not_found)
        .with_state(state)
}

fn request_id() -> String {
    format!("{:032x}", rand::random::<u128>())
}

fn json_response(status: StatusCode, body: Vec<u8>, extra: &[(header::HeaderName, String)]) -> Response {
    let mut resp = (status, [(header::CONTENT_TYPE, "application/json;charset=UTF-8")], body).into_response();
    let headers = resp.headers_mut();
    if let Ok(v) = request_id().parse() {
        headers.insert("x-request-id", v);
    }
    for (k, v) in extra {
        if let Ok(v) = v.parse() {
            headers.insert(k.clone(), v);
        }
    }
    resp
}

fn gateway_error(status: StatusCode, code: &str, msg: &str) -> Response {
    let body = serde_json::json!({ "error_msg": msg, "error_code": code, "request_id": request_id() });
    json_response(status, body.to_string().into_bytes(), &[])
}

async fn list_connections(
    State(state): State<Arc<SimState>>,
    Path(project): Path<String>,
    req: Request<Body>,
) -> Response {
    state.record(&req, Some((Endpoint::List, &project)));
    answer(&state, &project, req, || json_response(StatusCode::OK, state.body_for(&project).to_vec(), &[]))
        .await
}

async fn show_connection(
    State(state): State<Arc<SimState>>,
    Path((project, id)): Path<(String, String)>,
    req: Request<Body>,
) -> Response {
    state.record(&req, Some((Endpoint::Show, &project)));
    answer(&state, &project, req, || {
        let all = fixtures::connections(&project, state.opts.connections_per_project);
        match all.iter().find(|c| c["connection_id"].as_str() == Some(id.as_str())) {
            Some(c) => json_response(StatusCode::OK, fixtures::show_body(c), &[]),
            None => dli_error(
                StatusCode::BAD_REQUEST,
                "DLI.0002",
                &format!("There is no datasource connection with id {}", printable(&id)),
            ),
        }
    })
    .await
}

/// The query parameters of the enhanced list, as DLI documents them (all strings).
#[derive(Debug, Default)]
struct EnhancedQuery {
    limit: Option<String>,
    offset: Option<String>,
    status: Option<String>,
    name: Option<String>,
    tags: Option<String>,
}

impl EnhancedQuery {
    fn parse(query: &str) -> Self {
        let mut q = Self::default();
        for (k, v) in form_urlencoded::parse(query.as_bytes()) {
            let slot = match &*k {
                "limit" => &mut q.limit,
                "offset" => &mut q.offset,
                "status" => &mut q.status,
                "name" => &mut q.name,
                "tags" => &mut q.tags,
                _ => continue,
            };
            *slot = Some(v.into_owned());
        }
        q
    }
}

async fn list_enhanced(
    State(state): State<Arc<SimState>>,
    Path(project): Path<String>,
    req: Request<Body>,
) -> Response {
    state.record(&req, Some((Endpoint::EnhancedList, &project)));
    let query = EnhancedQuery::parse(req.uri().query().unwrap_or(""));
    answer(&state, &project, req, || {
        let number = |v: &Option<String>, default: usize| match v.as_deref().map(str::trim) {
            None | Some("") => Some(default),
            Some(v) => v.parse::<usize>().ok(),
        };
        let (Some(limit), Some(offset)) = (number(&query.limit, 100), number(&query.offset, 0)) else {
            return dli_error(
                StatusCode::BAD_REQUEST,
                "DLI.0001",
                "limit and offset must be non-negative integers",
            );
        };
        let mut wanted_tags = Vec::new();
        for pair in query.tags.as_deref().unwrap_or("").split(',').map(str::trim).filter(|p| !p.is_empty()) {
            match pair.split_once('=') {
                Some((k, v)) => wanted_tags.push((k.trim().to_owned(), v.trim().to_owned())),
                None => {
                    return dli_error(
                        StatusCode::BAD_REQUEST,
                        "DLI.0001",
                        "tags must be k=v pairs joined by commas",
                    );
                }
            }
        }
        let status = query.status.as_deref().map(str::trim).filter(|s| !s.is_empty());
        let name = query.name.as_deref().map(str::trim).filter(|s| !s.is_empty()).map(str::to_lowercase);
        let matching: Vec<Value> = fixtures::enhanced_connections(&project, state.opts.enhanced_per_project)
            .into_iter()
            .filter(|e| {
                status.is_none_or(|s| e.item["status"].as_str().is_some_and(|v| v.eq_ignore_ascii_case(s)))
            })
            .filter(|e| {
                name.as_deref()
                    .is_none_or(|n| e.item["name"].as_str().is_some_and(|v| v.to_lowercase().contains(n)))
            })
            .filter(|e| wanted_tags.iter().all(|t| e.tags.contains(t)))
            .map(|e| e.item)
            .collect();
        let count = matching.len();
        let page: Vec<Value> =
            matching.into_iter().skip(offset).take(if limit == 0 { usize::MAX } else { limit }).collect();
        let body =
            serde_json::json!({ "is_success": true, "message": "", "count": count, "connections": page });
        json_response(StatusCode::OK, body.to_string().into_bytes(), &[])
    })
    .await
}

/// The enhanced connection `id` of `project` and its index, or DLI's answer for an unknown id.
fn find_enhanced(
    state: &SimState,
    project: &str,
    id: &str,
) -> Result<(usize, fixtures::Enhanced), Box<Response>> {
    fixtures::enhanced_connections(project, state.opts.enhanced_per_project)
        .into_iter()
        .enumerate()
        .find(|(_, e)| e.item["id"].as_str() == Some(id))
        .ok_or_else(|| {
            Box::new(dli_error(
                StatusCode::BAD_REQUEST,
                "DLI.0001",
                &format!("Connection {} is not exist", printable(id)),
            ))
        })
}

async fn show_enhanced(
    State(state): State<Arc<SimState>>,
    Path((project, id)): Path<(String, String)>,
    req: Request<Body>,
) -> Response {
    state.record(&req, Some((Endpoint::EnhancedShow, &project)));
    answer(&state, &project, req, || match find_enhanced(&state, &project, &id) {
        Ok((_, e)) => json_response(StatusCode::OK, fixtures::enhanced_show_body(&e), &[]),
        Err(resp) => *resp,
    })
    .await
}

async fn enhanced_privileges(
    State(state): State<Arc<SimState>>,
    Path((project, id)): Path<(String, String)>,
    req: Request<Body>,
) -> Response {
    state.record(&req, Some((Endpoint::Privileges, &project)));
    answer(&state, &project, req, || match find_enhanced(&state, &project, &id) {
        Ok((i, e)) => json_response(StatusCode::OK, fixtures::privileges_body(&project, &e, i), &[]),
        Err(resp) => *resp,
    })
    .await
}

/// An id fit to echo in an error message (DLI echoes it; ours may be hostile).
fn printable(id: &str) -> String {
    id.chars().filter(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_')).take(64).collect()
}

fn dli_error(status: StatusCode, code: &str, msg: &str) -> Response {
    let body = serde_json::json!({ "error_code": code, "error_msg": msg });
    json_response(status, body.to_string().into_bytes(), &[])
}

/// What every endpoint does around its answer: the project's delay and fault, then the
/// gateway's authentication, then `ok` (the normal answer) unless a fault replaces it.
async fn answer(
    state: &SimState,
    project: &str,
    req: Request<Body>,
    ok: impl FnOnce() -> Response,
) -> Response {
    let fault = state.take_fault(project);
    let base = state.opts.base_delay + Duration::from_millis(fault.as_ref().map_or(0, |f| f.delay_ms));
    if !base.is_zero() {
        tokio::time::sleep(base).await;
    }
    // Authentication happens at the gateway, before the service sees the request.
    if let Err(refused) = auth::check(state, project, &req) {
        return refused.into_response();
    }
    match fault.map(|f| f.kind) {
        None | Some(FaultKind::Normal) => ok(),
        Some(FaultKind::Error { status, error_code, error_msg, gateway, retry_after }) => {
            let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
            let body = if gateway {
                serde_json::json!({ "error_msg": error_msg, "error_code": error_code, "request_id": request_id() })
            } else {
                serde_json::json!({ "error_code": error_code, "error_msg": error_msg })
            };
            let extra: Vec<_> =
                retry_after.map(|s| (header::RETRY_AFTER, s.to_string())).into_iter().collect();
            json_response(status, body.to_string().into_bytes(), &extra)
        }
        Some(FaultKind::Body { body }) => json_response(StatusCode::OK, body.into_bytes(), &[]),
        Some(FaultKind::NotSuccess { message }) => {
            let body = serde_json::json!({ "is_success": false, "message": message });
            json_response(StatusCode::OK, body.to_string().into_bytes(), &[])
        }
        Some(FaultKind::Hang) => {
            std::future::pending::<()>().await;
            StatusCode::GATEWAY_TIMEOUT.into_response()
        }
    }
}

async fn stats(State(state): State<Arc<SimState>>) -> Json<Stats> {
    Json(state.stats.lock().clone())
}

async fn requests(State(state): State<Arc<SimState>>) -> Json<Vec<LoggedRequest>> {
    Json(state.log.lock().iter().cloned().collect())
}

async fn reset(State(state): State<Arc<SimState>>) -> StatusCode {
    state.log.lock().clear();
    *state.stats.lock() = Stats::default();
    state.faults.lock().clear();
    state.fault_uses.lock().clear();
    StatusCode::NO_CONTENT
}

async fn put_fault(
    State(state): State<Arc<SimState>>,
    Path(project): Path<String>,
    Json(fault): Json<Fault>,
) -> StatusCode {
    state.fault_uses.lock().remove(&project);
    state.faults.lock().insert(project, fault);
    StatusCode::NO_CONTENT
}

async fn delete_fault(State(state): State<Arc<SimState>>, Path(project): Path<String>) -> StatusCode {
    state.fault_uses.lock().remove(&project);
    state.faults.lock().remove(&project);
    StatusCode::NO_CONTENT
}

async fn not_found(State(state): State<Arc<SimState>>, req: Request<Body>) -> Response {
    state.record(&req, None);
    gateway_error(
        StatusCode::NOT_FOUND,
        "APIG.0101",
        "The API does not exist or has not been published in the environment",
    )
}
