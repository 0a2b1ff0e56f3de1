//! IAM password credentials → project-scoped tokens, cached per project.
//!
//! DLI wants a token scoped to the project it is called on, so the service asks IAM
//! (`POST {iam}/v3/auth/tokens`) for one token per project on first use and keeps it until
//! [`RENEW_BEFORE`] its expiry. Concurrent requests for the same project share one fetch:
//! each cache slot is an async mutex, and whoever waited while a fetch ran takes that
//! fetch's outcome (token or error) instead of starting another. A failed fetch is not
//! cached for later requests; a failed renewal keeps using the old token while it is
//! still valid.

use std::{collections::HashMap, fmt, sync::Arc, time::Duration};

use parking_lot::Mutex;
use reqwest::{StatusCode, Url, header::HeaderValue};
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use tokio::time::Instant;

use crate::{
    error::IamFailure,
    project_id::ProjectId,
    upstream::response::{self, BodyError},
};

/// Renew a token when less than this is left (IAM tokens live 24 h).
pub const RENEW_BEFORE: Duration = Duration::from_secs(5 * 60);
/// Largest token response read (the body carries the service catalog unless suppressed).
const MAX_BODY: usize = 1024 * 1024;
/// Cache slots kept before idle ones without a live token are dropped.
const MAX_SLOTS: usize = 4096;

/// An IAM user's password credentials.
pub struct IamPassword {
    /// IAM base URL, e.g. `https://iam.cn-north-4.myhuaweicloud.com`.
    pub endpoint: Url,
    /// The account (domain) name.
    pub domain: String,
    /// The IAM user name.
    pub user: String,
    /// The user's password.
    pub password: SecretString,
}

impl fmt::Debug for IamPassword {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("IamPassword").field("endpoint", &self.endpoint.as_str()).finish_non_exhaustive()
    }
}

/// A token in the cache.
struct CachedToken {
    value: Arc<SecretString>,
    renew_at: Instant,
    expires_at: Instant,
}

#[derive(Default)]
struct Slot {
    token: Option<CachedToken>,
    /// When the last fetch finished and whether it failed; waiters use it (see module doc).
    last_fetch: Option<(Instant, Option<IamFailure>)>,
}

/// Obtains and caches project-scoped IAM tokens for one set of password credentials.
pub struct IamTokens {
    http: reqwest::Client,
    tokens_url: Url,
    creds: IamPassword,
    // Keyed by project alone: one `IamTokens` holds one set of credentials.
    slots: Mutex<HashMap<ProjectId, Arc<tokio::sync::Mutex<Slot>>>>,
}

impl fmt::Debug for IamTokens {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("IamTokens").field("creds", &self.creds).finish_non_exhaustive()
    }
}

impl IamTokens {
    /// A token source for `creds`; `timeout` bounds one token request.
    pub fn new(creds: IamPassword, timeout: Duration) -> Result<Self, reqwest::Error> {
        let http = reqwest::Client::builder()
            .user_agent(concat!("dli-graphql/", env!("CARGO_PKG_VERSION")))
            .connect_timeout(timeout)
            .timeout(timeout)
            .redirect(reqwest::redirect::Policy::none())
            .build()?;
        let mut tokens_url = creds.endpoint.clone();
        tokens_url.set_query(None);
        tokens_url.set_fragment(None);
        if let Ok(mut segments) = tokens_url.path_segments_mut() {
            segments.pop_if_empty().push("v3").push("auth").push("tokens");
        }
        // The service catalog is not needed and can be large.
        tokens_url.set_query(Some("nocatalog=true"));
        Ok(Self { http, tokens_url, creds, slots: Mutex::default() })
    }

    /// A token scoped to `project`: cached, or fetched (once for all concurrent callers).
    pub async fn token_for(&self, project: &ProjectId) -> Result<Arc<SecretString>, IamFailure> {
        let asked_at = Instant::now();
        let slot = self.slot(project);
        let mut slot = slot.lock().await;
        let now = Instant::now();
        // A fetch finished while we waited: take its outcome rather than fetching again.
        if let Some((done_at, outcome)) = &slot.last_fetch
            && *done_at > asked_at
        {
            match (outcome, &slot.token) {
                (None, Some(t)) if now < t.expires_at => return Ok(t.value.clone()),
                (Some(failure), _) => return Err(failure.clone()),
                _ => {}
            }
        }
        if let Some(t) = &slot.token
            && now < t.renew_at
        {
            return Ok(t.value.clone());
        }
        let result = self.fetch(project).await;
        let done_at = Instant::now();
        match result {
            Ok(token) => {
                let value = token.value.clone();
                slot.token = Some(token);
                slot.last_fetch = Some((done_at, None));
                Ok(value)
            }
            Err(failure) => match &slot.token {
                Some(old) if done_at < old.expires_at => {
                    tracing::warn!(error = %failure, "IAM token renewal failed; using the current token until it expires");
                    let value = old.value.clone();
                    slot.last_fetch = Some((done_at, None));
                    Ok(value)
                }
                _ => {
                    slot.token = None;
                    slot.last_fetch = Some((done_at, Some(failure.clone())));
                    Err(failure)
                }
            },
        }
    }

    /// Drops the cached token of `project` (DLI refused it: revoked or expired early), so
    /// the next request fetches a new one. A fetch in flight is left alone.
    pub fn forget(&self, project: &ProjectId) {
        let slot = self.slots.lock().get(project).cloned();
        if let Some(slot) = slot
            && let Ok(mut slot) = slot.try_lock()
        {
            slot.token = None;
            slot.last_fetch = None;
        }
    }

    fn slot(&self, project: &ProjectId) -> Arc<tokio::sync::Mutex<Slot>> {
        let mut slots = self.slots.lock();
        if slots.len() >= MAX_SLOTS {
            // Keep slots in use or holding a live token; drop the rest (failed projects).
            let now = Instant::now();
            slots.retain(|_, s| {
                s.try_lock().map_or(true, |s| s.token.as_ref().is_some_and(|t| now < t.expires_at))
            });
        }
        slots.entry(project.clone()).or_default().clone()
    }

    #[tracing::instrument(name = "iam.token", skip(self), fields(http.status = tracing::field::Empty))]
    async fn fetch(&self, project: &ProjectId) -> Result<CachedToken, IamFailure> {
        let started = Instant::now();
        let body = serde_json::json!({
            "auth": {
                "identity": {
                    "methods": ["password"],
                    "password": { "user": {
                        "name": self.creds.user,
                        "password": self.creds.password.expose_secret(),
                        "domain": { "name": self.creds.domain },
                    } },
                },
                "scope": { "project": { "id": project.as_str() } },
            }
        });
        let resp = self
            .http
            .post(self.tokens_url.clone())
            .header(reqwest::header::CONTENT_TYPE, "application/json;charset=utf8")
            .body(body.to_string())
            .send()
            .await
            .map_err(|e| {
                let kind = if e.is_timeout() { "timed out" } else { "request failed" };
                tracing::debug!(error = %e.without_url(), "IAM transport error");
                IamFailure::Unreachable(kind)
            })?;
        let status = resp.status();
        tracing::Span::current().record("http.status", status.as_u16());
        let subject_token = resp.headers().get("x-subject-token").cloned();
        let body = response::read_capped(resp, MAX_BODY).await.map_err(|e| match e {
            BodyError::TooLarge => IamFailure::BadResponse("body too large"),
            BodyError::Read(_) => IamFailure::Unreachable("body read failed"),
        })?;
        if !status.is_success() {
            let failure = rejected(status, &body);
            let message = match &failure {
                IamFailure::Rejected { message: Some(m), .. } => m.as_str(),
                _ => "",
            };
            tracing::warn!(error = %failure, iam_message = message, "IAM refused to issue a token");
            return Err(failure);
        }
        let token = subject_token
            .filter(|v| HeaderValue::from_bytes(v.as_bytes()).is_ok())
            .and_then(|v| v.to_str().ok().map(str::trim).filter(|t| !t.is_empty()).map(str::to_owned))
            .ok_or(IamFailure::BadResponse("no X-Subject-Token header"))?;
        let lifetime = lifetime(&body).ok_or(IamFailure::BadResponse("no usable token.expires_at"))?;
        // Counted from when we asked, so a slow answer errs on the early side.
        let expires_at = started + lifetime;
        let renew_at = expires_at.checked_sub(RENEW_BEFORE).unwrap_or(started).max(started);
        tracing::info!(
            lifetime_s = lifetime.as_secs(),
            elapsed_ms = started.elapsed().as_millis() as u64,
            "IAM token obtained"
        );
        Ok(CachedToken { value: Arc::new(SecretString::from(token)), renew_at, expires_at })
    }
}

#[derive(Deserialize)]
struct TokenBody {
    token: TokenInfo,
}

#[derive(Deserialize)]
struct TokenInfo {
    expires_at: String,
    issued_at: Option<String>,
}

/// How long the token in a 201 body lives: `expires_at - issued_at` (both IAM's clock, so
/// our clock's skew does not matter), else `expires_at - now`.
fn lifetime(body: &[u8]) -> Option<Duration> {
    let info = serde_json::from_slice::<TokenBody>(body).ok()?.token;
    let parse = |s: &str| chrono::DateTime::parse_from_rfc3339(s.trim()).ok();
    let expires = parse(&info.expires_at)?;
    let from = info.issued_at.as_deref().and_then(parse).map_or_else(chrono::Utc::now, |d| d.to_utc());
    (expires.to_utc() - from).to_std().ok().filter(|d| !d.is_zero())
}

/// IAM's error body `{"error": {"code", "message", "title"}}`, or a gateway's
/// `{"error_code", "error_msg"}`.
fn rejected(status: StatusCode, body: &[u8]) -> IamFailure {
    let (code, message) = response::error_code_and_message(body);
    IamFailure::Rejected { status: status.as_u16(), code, message }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lifetime_comes_from_iams_own_timestamps() {
        let body = br#"{"token":{"expires_at":"2024-01-02T03:04:05.000000Z","issued_at":"2024-01-01T03:04:05.000000Z"}}"#;
        assert_eq!(lifetime(body), Some(Duration::from_secs(24 * 3600)));
        let past = br#"{"token":{"expires_at":"2001-01-01T00:00:00Z"}}"#;
        assert_eq!(lifetime(past), None);
        assert_eq!(lifetime(b"{}"), None);
        assert_eq!(lifetime(br#"{"token":{"expires_at":"tomorrow"}}"#), None);
    }

    #[test]
    fn iam_and_gateway_error_bodies_are_read() {
        let iam = rejected(
            StatusCode::UNAUTHORIZED,
            br#"{"error":{"code":401,"message":"The username or password is wrong.","title":"Unauthorized"}}"#,
        );
        assert!(matches!(iam, IamFailure::Rejected { status: 401, ref code, ref message }
            if code.as_deref() == Some("401") && message.as_deref() == Some("The username or password is wrong.")));
        let apig =
            rejected(StatusCode::TOO_MANY_REQUESTS, br#"{"error_code":"APIG.0308","error_msg":"slow down"}"#);
        assert!(
            matches!(apig, IamFailure::Rejected { status: 429, ref code, .. } if code.as_deref() == Some("APIG.0308"))
        );
        assert!(matches!(
            rejected(StatusCode::BAD_GATEWAY, b"<html>"),
            IamFailure::Rejected { status: 502, code: None, message: None }
        ));
    }

    #[test]
    fn the_tokens_url_keeps_the_endpoint_prefix() {
        let creds = |endpoint: &str| IamPassword {
            endpoint: Url::parse(endpoint).expect("url"),
            domain: "d".into(),
            user: "u".into(),
            password: "p".into(),
        };
        let t = IamTokens::new(creds("https://iam.cn-north-4.myhuaweicloud.com"), Duration::from_secs(1))
            .expect("client");
        assert_eq!(
            t.tokens_url.as_str(),
            "https://iam.cn-north-4.myhuaweicloud.com/v3/auth/tokens?nocatalog=true"
        );
        let t = IamTokens::new(creds("http://127.0.0.1:9/iam/"), Duration::from_secs(1)).expect("client");
        assert_eq!(t.tokens_url.as_str(), "http://127.0.0.1:9/iam/v3/auth/tokens?nocatalog=true");
        assert!(!format!("{t:?}").contains("\"p\""));
    }
}
