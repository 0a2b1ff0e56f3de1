//! How a request to DLI authenticates.
//!
//! A [`Credential`] is chosen per GraphQL request (the caller's own token first, then the
//! service's configured credential, if any) and applied to every upstream call that
//! request makes, right before it is sent ([`Credential::authorize`]), so each attempt
//! carries a fresh signature date. Secrets live in [`SecretString`], whose `Debug` is
//! redacted, and are exposed only at the moment a header (or IAM request body) is written.
//!
//! The service's modes: a static token (from configuration, or a file re-read when it
//! changes, [`secret_file`]), AK/SK signing ([`signer`]), or IAM password credentials
//! exchanged for project-scoped tokens ([`iam`]); [`service`] picks one from the
//! configuration.

use std::{fmt, path::Path, sync::Arc};

use reqwest::header::HeaderValue;
use secrecy::{ExposeSecret, SecretString};
use sha2::{Digest, Sha256};

pub mod iam;
pub mod secret_file;
pub mod service;
pub mod signer;

use iam::{IamPassword, IamTokens};
use secret_file::{SecretFileError, WatchedFile};
use signer::AkSk;

use crate::{error::UpstreamError, project_id::ProjectId};

/// Credentials for one upstream call.
#[derive(Clone)]
pub enum Credential {
    /// An IAM token, sent as `X-Auth-Token` (the caller's own, or the service's).
    Token(Arc<SecretString>),
    /// The service's token, read from a file and re-read when the file changes.
    TokenFile(Arc<WatchedFile<SecretString>>),
    /// The service's access key pair: every call is signed (`SDK-HMAC-SHA256`).
    AkSk(Arc<AkSk>),
    /// The service's IAM password credentials, exchanged for one token per project.
    Iam(Arc<IamTokens>, CredentialIdentity),
}

impl fmt::Debug for Credential {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Token(_) => f.write_str("Credential::Token([REDACTED])"),
            Self::TokenFile(file) => write!(f, "Credential::TokenFile({})", file.path().display()),
            Self::AkSk(_) => f.write_str("Credential::AkSk([REDACTED])"),
            Self::Iam(..) => f.write_str("Credential::Iam([REDACTED])"),
        }
    }
}

/// A one-way, non-secret name for a credential: lets caches and coalescing keep callers
/// apart without holding or logging the secret itself.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct CredentialIdentity([u8; 32]);

impl fmt::Debug for CredentialIdentity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "CredentialIdentity({})", hex::encode(&self.0[..4]))
    }
}

impl CredentialIdentity {
    /// The digest itself, to derive further names from (it is already one-way).
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// SHA-256 over a mode tag and the fields, each NUL-terminated (domain separation).
    fn of(tag: &str, parts: &[&str]) -> Self {
        let mut h = Sha256::new();
        h.update(tag.as_bytes());
        h.update(b"\0");
        for p in parts {
            h.update(p.as_bytes());
            h.update(b"\0");
        }
        Self(h.finalize().into())
    }
}

/// A token usable as a header value: trimmed, non-empty, no control characters.
fn header_safe_token(raw: &str) -> Result<SecretString, &'static str> {
    let raw = raw.trim();
    if raw.is_empty() {
        Err("the token is empty")
    } else if HeaderValue::from_str(raw).is_err() {
        Err("the token holds characters that cannot be sent in a header")
    } else {
        Ok(SecretString::from(raw.to_owned()))
    }
}

fn auth_token_header(token: &SecretString) -> Option<HeaderValue> {
    let mut v = HeaderValue::from_str(token.expose_secret()).ok()?;
    v.set_sensitive(true);
    Some(v)
}

impl Credential {
    /// A token credential. Returns `None` for an empty or non-header-safe token.
    pub fn token(raw: &str) -> Option<Self> {
        header_safe_token(raw).ok().map(|t| Self::Token(Arc::new(t)))
    }

    /// The service's token from `path` (its whole content, trimmed), re-read whenever the
    /// file changes. Fails now if the file is unreadable or holds no usable token.
    pub fn token_file(path: &Path) -> Result<Self, SecretFileError> {
        WatchedFile::open(path, header_safe_token).map(|f| Self::TokenFile(Arc::new(f)))
    }

    /// AK/SK signing with `keys`.
    pub fn ak_sk(keys: AkSk) -> Self {
        Self::AkSk(Arc::new(keys))
    }

    /// IAM password credentials; `timeout` bounds one token request.
    pub fn iam(creds: IamPassword, timeout: std::time::Duration) -> Result<Self, reqwest::Error> {
        let identity = CredentialIdentity::of(
            "iam",
            &[creds.endpoint.as_str(), &creds.domain, &creds.user, creds.password.expose_secret()],
        );
        Ok(Self::Iam(Arc::new(IamTokens::new(creds, timeout)?), identity))
    }

    /// Adds the authentication of a call on `project` to the finished request: a token
    /// header, or the signature over its method, URL, headers and body. Call it once per
    /// attempt, right before sending (a signature is only valid for ±15 minutes).
    pub async fn authorize(
        &self,
        req: &mut reqwest::Request,
        project: &ProjectId,
    ) -> Result<(), UpstreamError> {
        let token = match self {
            Self::Token(token) => token.clone(),
            Self::TokenFile(file) => file.get(),
            Self::AkSk(keys) => {
                keys.sign(req, project, chrono::Utc::now());
                return Ok(());
            }
            Self::Iam(iam, _) => iam.token_for(project).await.map_err(UpstreamError::Iam)?,
        };
        // Checked when the token was accepted; without the header DLI answers a clean 401.
        if let Some(v) = auth_token_header(&token) {
            req.headers_mut().insert("x-auth-token", v);
        }
        Ok(())
    }

    /// Tells the credential that DLI refused it on `project` (HTTP 401): a cached IAM
    /// token is dropped so the next request fetches a new one.
    pub fn rejected(&self, project: &ProjectId) {
        if let Self::Iam(iam, _) = self {
            iam.forget(project);
        }
    }

    /// The identity of this credential: for a token, SHA-256 of the secret; for the
    /// service's modes, of what identifies the principal (domain-separated).
    pub fn identity(&self) -> CredentialIdentity {
        match self {
            Self::Token(t) => CredentialIdentity::of("token", &[t.expose_secret()]),
            Self::TokenFile(file) => CredentialIdentity::of("token-file", &[&file.path().to_string_lossy()]),
            Self::AkSk(keys) => CredentialIdentity::of(
                "aksk",
                &[
                    keys.access_key().expose_secret(),
                    keys.secret_key().expose_secret(),
                    keys.security_token().map_or("", |t| t.expose_secret()),
                ],
            ),
            Self::Iam(_, identity) => identity.clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_never_shows_the_token() {
        let c = Credential::token("s3cr3t-token").expect("valid");
        assert!(!format!("{c:?}").contains("s3cr3t"));
        assert!(!format!("{:?}", c.identity()).contains("s3cr3t"));
    }

    #[test]
    fn identities_differ_per_token() {
        let a = Credential::token("a").expect("valid").identity();
        let b = Credential::token("b").expect("valid").identity();
        assert_ne!(a, b);
        assert_eq!(a, Credential::token("a").expect("valid").identity());
    }

    #[test]
    fn rejects_tokens_that_cannot_be_headers() {
        assert!(Credential::token("").is_none());
        assert!(Credential::token("a\nb").is_none());
    }
}
