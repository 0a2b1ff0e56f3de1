//! How a request to DLI authenticates.
//!
//! A [`Credential`] is chosen per GraphQL request (the caller's own token first, then the
//! service's configured credential, if any) and applied to every upstream call that
//! request makes. Secrets live in [`SecretString`], whose `Debug` is redacted, and are
//! exposed only at the moment a header is written.

use std::{fmt, sync::Arc};

use reqwest::{RequestBuilder, header::HeaderValue};
use secrecy::{ExposeSecret, SecretString};
use sha2::{Digest, Sha256};

use crate::project_id::ProjectId;

/// Credentials for one upstream call.
#[derive(Clone)]
pub enum Credential {
    /// An IAM token, sent as `X-Auth-Token` (the caller's own, or the service's).
    Token(Arc<SecretString>),
}

impl fmt::Debug for Credential {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Token(_) => f.write_str("Credential::Token([REDACTED])"),
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

impl Credential {
    /// A token credential. Returns `None` for an empty or non-header-safe token.
    pub fn token(raw: &str) -> Option<Self> {
        let raw = raw.trim();
        if raw.is_empty() || HeaderValue::from_str(raw).is_err() {
            return None;
        }
        Some(Self::Token(Arc::new(SecretString::from(raw.to_owned()))))
    }

    /// Adds the authentication headers for a call on `project`.
    pub fn apply(&self, req: RequestBuilder, _project: &ProjectId) -> RequestBuilder {
        match self {
            Self::Token(token) => match HeaderValue::from_str(token.expose_secret()) {
                Ok(mut v) => {
                    v.set_sensitive(true);
                    req.header("X-Auth-Token", v)
                }
                // Unreachable: checked in `token()`; sending nothing yields a clean 401.
                Err(_) => req,
            },
        }
    }

    /// The identity of this credential (SHA-256 of the secret, domain-separated).
    pub fn identity(&self) -> CredentialIdentity {
        let mut h = Sha256::new();
        match self {
            Self::Token(t) => {
                h.update(b"token\0");
                h.update(t.expose_secret().as_bytes());
            }
        }
        CredentialIdentity(h.finalize().into())
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
