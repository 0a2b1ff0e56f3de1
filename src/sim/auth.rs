//! The simulator's API gateway and IAM: who may call, checked before DLI sees a request.
//!
//! - **AK/SK**: an `Authorization: SDK-HMAC-SHA256 …` header is verified against the
//!   configured key pairs: known AK, `x-sdk-date` signed and within ±15 minutes, the
//!   security token of temporary keys sent and signed, and the signature recomputed from
//!   the request as received. Any failure is the gateway's 401 `APIG.0301`.
//! - **IAM**: `POST /v3/auth/tokens` with password credentials of a configured user and a
//!   project scope answers 201 with `X-Subject-Token` and `token.expires_at`; a wrong
//!   password is IAM's 401 body. A token it issued is only good for its project (DLI's
//!   400 `DLI.10006` otherwise) and until it expires (401 `APIG.0307`) or is revoked.
//! - **Other tokens**: any non-empty `X-Auth-Token` is accepted by default (so tests can use
//!   made-up tokens); with [`SimAuth::strict_tokens`] only issued and listed ones are.
//! - **Per-principal denial**: [`Simulator::forbid`] makes one token or access key get the
//!   gateway's 403 `APIG.0302` on one project, while others are served.

use std::{
    collections::{HashMap, HashSet},
    sync::Arc,
    time::{Duration, SystemTime},
};

use axum::{
    body::Body,
    extract::State,
    http::{HeaderMap, Request, StatusCode},
    response::{IntoResponse, Response},
};
use chrono::{DateTime, NaiveDateTime, SecondsFormat, Utc};
use serde::Deserialize;
use subtle::ConstantTimeEq;

use super::{SimState, Simulator, gateway_error, json_response};
use crate::upstream::auth::signer;

/// Accepted distance between `X-Sdk-Date` and the simulator's clock.
pub const CLOCK_WINDOW: Duration = Duration::from_secs(15 * 60);
/// Largest token request body read.
const MAX_TOKEN_REQUEST: usize = 64 * 1024;
/// Issued tokens kept before expired ones are purged.
const MAX_ISSUED: usize = 100_000;

/// An access key pair the gateway knows.
#[derive(Debug, Clone)]
pub struct SimAccessKey {
    /// The AK.
    pub access_key: String,
    /// The SK.
    pub secret_key: String,
    /// For temporary credentials: the `X-Security-Token` that must come (signed) with them.
    pub security_token: Option<String>,
}

/// An IAM user that may obtain tokens.
#[derive(Debug, Clone)]
pub struct SimIamUser {
    /// Account (domain) name.
    pub domain: String,
    /// User name.
    pub name: String,
    /// Password.
    pub password: String,
}

/// Authentication settings of the simulator.
#[derive(Debug, Clone)]
pub struct SimAuth {
    /// Key pairs whose signatures are accepted.
    pub access_keys: Vec<SimAccessKey>,
    /// Users IAM issues tokens to.
    pub iam_users: Vec<SimIamUser>,
    /// Lifetime of issued tokens (IAM's is 24 h).
    pub token_ttl: Duration,
    /// Delay before IAM answers a token request.
    pub iam_delay: Duration,
    /// Accept only issued tokens and those in `tokens`, instead of any non-empty token.
    pub strict_tokens: bool,
    /// Tokens accepted in strict mode besides the issued ones.
    pub tokens: Vec<String>,
}

impl Default for SimAuth {
    fn default() -> Self {
        Self {
            access_keys: Vec::new(),
            iam_users: Vec::new(),
            token_ttl: Duration::from_secs(24 * 3600),
            iam_delay: Duration::ZERO,
            strict_tokens: false,
            tokens: Vec::new(),
        }
    }
}

struct Issued {
    project: String,
    expires: SystemTime,
    revoked: bool,
}

/// The gateway's and IAM's mutable state.
#[derive(Default)]
pub(super) struct AuthState {
    issued: parking_lot::Mutex<HashMap<String, Issued>>,
    forbidden: parking_lot::Mutex<HashSet<(String, String)>>,
}

impl Simulator {
    /// Makes `principal` (a token or an access key) get 403 `APIG.0302` on `project`.
    pub fn forbid(&self, principal: &str, project: &str) {
        self.state.auth.forbidden.lock().insert((principal.to_owned(), project.to_owned()));
    }

    /// Revokes every token IAM has issued so far (as a password change does).
    pub fn revoke_issued_tokens(&self) {
        self.state.auth.issued.lock().values_mut().for_each(|t| t.revoked = true);
    }

    /// How many tokens IAM has issued.
    pub fn issued_token_count(&self) -> usize {
        self.state.auth.issued.lock().len()
    }
}

/// Why the gateway refuses a request: a gateway-style body, or DLI's own.
#[derive(Debug, Clone, Copy)]
pub(super) struct Refusal {
    status: StatusCode,
    code: &'static str,
    message: &'static str,
    from_dli: bool,
}

impl IntoResponse for Refusal {
    fn into_response(self) -> Response {
        if self.from_dli {
            let body = serde_json::json!({ "error_code": self.code, "error_msg": self.message });
            json_response(self.status, body.to_string().into_bytes(), &[])
        } else {
            gateway_error(self.status, self.code, self.message)
        }
    }
}

const fn unauthorized(message: &'static str) -> Refusal {
    Refusal { status: StatusCode::UNAUTHORIZED, code: "APIG.0301", message, from_dli: false }
}

/// The gateway: `Ok` when the request may reach DLI's `project`, else why not.
pub(super) fn check(state: &SimState, project: &str, req: &Request<Body>) -> Result<(), Refusal> {
    let headers = req.headers();
    let authorization = headers.get("authorization").and_then(|v| v.to_str().ok()).unwrap_or("");
    let principal = if authorization.starts_with(signer::ALGORITHM) {
        verify_signature(state, req, authorization)?
    } else {
        verify_token(state, project, headers)?
    };
    if state.auth.forbidden.lock().contains(&(principal, project.to_owned())) {
        return Err(Refusal {
            status: StatusCode::FORBIDDEN,
            code: "APIG.0302",
            message: "The IAM user is not authorized to access the API",
            from_dli: false,
        });
    }
    Ok(())
}

fn verify_token(state: &SimState, project: &str, headers: &HeaderMap) -> Result<String, Refusal> {
    let token = headers.get("x-auth-token").and_then(|v| v.to_str().ok()).unwrap_or("").trim();
    if token.is_empty() {
        return Err(unauthorized("Incorrect IAM authentication information: x-auth-token not found"));
    }
    if let Some(issued) = state.auth.issued.lock().get(token) {
        if issued.revoked {
            return Err(unauthorized("Incorrect IAM authentication information: the token has been revoked"));
        }
        if SystemTime::now() >= issued.expires {
            return Err(Refusal {
                status: StatusCode::UNAUTHORIZED,
                code: "APIG.0307",
                message: "The token must be updated.",
                from_dli: false,
            });
        }
        if issued.project != project {
            return Err(Refusal {
                status: StatusCode::BAD_REQUEST,
                code: "DLI.10006",
                message: "The project id in the URL differs from the project id in the IAM token",
                from_dli: true,
            });
        }
    } else if state.opts.auth.strict_tokens && !state.opts.auth.tokens.iter().any(|t| t == token) {
        return Err(unauthorized("Incorrect IAM authentication information: decrypt token fail"));
    }
    Ok(token.to_owned())
}

fn verify_signature(state: &SimState, req: &Request<Body>, authorization: &str) -> Result<String, Refusal> {
    let fail = || unauthorized("Incorrect IAM authentication information: verify aksk signature fail");
    let headers = req.headers();
    let parsed = signer::parse_authorization(authorization).ok_or_else(fail)?;
    let key =
        state.opts.auth.access_keys.iter().find(|k| k.access_key == parsed.access_key).ok_or_else(fail)?;
    let signed: Vec<&str> = parsed.signed_headers.split(';').collect();
    if !signed.contains(&"x-sdk-date") {
        return Err(fail());
    }
    let date = headers.get("x-sdk-date").and_then(|v| v.to_str().ok()).unwrap_or("");
    let when = NaiveDateTime::parse_from_str(date, signer::DATE_FORMAT).map_err(|_| fail())?.and_utc();
    let skew = (Utc::now() - when).abs().to_std().unwrap_or(Duration::MAX);
    if skew > CLOCK_WINDOW {
        return Err(unauthorized("Incorrect IAM authentication information: the request has expired"));
    }
    let sent_token = headers.get("x-security-token").and_then(|v| v.to_str().ok());
    match (&key.security_token, sent_token) {
        (None, None) => {}
        (Some(want), Some(got)) if want == got && signed.contains(&"x-security-token") => {}
        _ => return Err(fail()),
    }
    // GET carries no body; a client may still declare its payload hash.
    let payload_hash = headers
        .get("x-sdk-content-sha256")
        .and_then(|v| v.to_str().ok())
        .unwrap_or(signer::EMPTY_PAYLOAD_SHA256);
    let canonical = signer::canonical_request(
        req.method().as_str(),
        req.uri().path(),
        req.uri().query(),
        headers,
        &parsed.signed_headers,
        payload_hash,
    );
    let expected = signer::signature(key.secret_key.as_bytes(), &signer::string_to_sign(date, &canonical));
    if !bool::from(expected.as_bytes().ct_eq(parsed.signature.as_bytes())) {
        return Err(fail());
    }
    Ok(key.access_key.clone())
}

#[derive(Deserialize)]
struct TokenRequest {
    auth: AuthBody,
}
#[derive(Deserialize)]
struct AuthBody {
    identity: Identity,
    scope: Option<Scope>,
}
#[derive(Deserialize)]
struct Identity {
    methods: Vec<String>,
    password: Option<PasswordBody>,
}
#[derive(Deserialize)]
struct PasswordBody {
    user: UserBody,
}
#[derive(Deserialize)]
struct UserBody {
    name: String,
    password: String,
    domain: DomainBody,
}
#[derive(Deserialize)]
struct DomainBody {
    name: String,
}
#[derive(Deserialize)]
struct Scope {
    project: Option<ProjectScope>,
}
#[derive(Deserialize)]
struct ProjectScope {
    id: Option<String>,
    name: Option<String>,
}

fn iam_error(status: StatusCode, message: &str, title: &str) -> Response {
    let body =
        serde_json::json!({ "error": { "code": status.as_u16(), "message": message, "title": title } });
    json_response(status, body.to_string().into_bytes(), &[])
}

/// `POST /v3/auth/tokens`: IAM's password → project-scoped token exchange.
pub(super) async fn issue_token(State(state): State<Arc<SimState>>, req: Request<Body>) -> Response {
    state.record(&req, None);
    let auth = &state.opts.auth;
    if !auth.iam_delay.is_zero() {
        tokio::time::sleep(auth.iam_delay).await;
    }
    let Ok(body) = axum::body::to_bytes(req.into_body(), MAX_TOKEN_REQUEST).await else {
        return iam_error(StatusCode::BAD_REQUEST, "The request body is too large.", "Bad Request");
    };
    let Ok(request) = serde_json::from_slice::<TokenRequest>(&body) else {
        return iam_error(
            StatusCode::BAD_REQUEST,
            "The request body is not a valid token request.",
            "Bad Request",
        );
    };
    let a = request.auth;
    let Some(user) = a.identity.password.filter(|_| a.identity.methods.iter().any(|m| m == "password"))
    else {
        return iam_error(StatusCode::BAD_REQUEST, "The password method is required.", "Bad Request");
    };
    let u = user.user;
    let known = auth.iam_users.iter().any(|k| {
        k.domain == u.domain.name
            && k.name == u.name
            && bool::from(k.password.as_bytes().ct_eq(u.password.as_bytes()))
    });
    if !known {
        return iam_error(StatusCode::UNAUTHORIZED, "The username or password is wrong.", "Unauthorized");
    }
    let Some(project) =
        a.scope.and_then(|s| s.project).and_then(|p| p.id.or(p.name)).filter(|p| !p.is_empty())
    else {
        return iam_error(StatusCode::BAD_REQUEST, "DLI needs a project-scoped token.", "Bad Request");
    };
    let token = format!("MIIsim{:032x}{:032x}", rand::random::<u128>(), rand::random::<u128>());
    let issued_at = SystemTime::now();
    let expires = issued_at + auth.token_ttl;
    {
        let mut issued = state.auth.issued.lock();
        if issued.len() >= MAX_ISSUED {
            issued.retain(|_, t| t.expires > issued_at);
        }
        issued.insert(token.clone(), Issued { project: project.clone(), expires, revoked: false });
    }
    let stamp = |t: SystemTime| DateTime::<Utc>::from(t).to_rfc3339_opts(SecondsFormat::Micros, true);
    let body = serde_json::json!({
        "token": {
            "expires_at": stamp(expires),
            "issued_at": stamp(issued_at),
            "methods": ["password"],
            "project": { "id": project, "name": project, "domain": { "name": u.domain.name } },
            "user": { "name": u.name, "domain": { "name": u.domain.name } },
        }
    });
    json_response(
        StatusCode::CREATED,
        body.to_string().into_bytes(),
        &[(axum::http::HeaderName::from_static("x-subject-token"), token)],
    )
}
