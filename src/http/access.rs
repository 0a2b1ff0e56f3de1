//! Who may use the service, and which projects anyone may query.
//!
//! When the service holds its own credentials, anyone who reaches it would act with them.
//! So a caller that does not bring its own `X-Auth-Token` must present an API key,
//! `Authorization: Bearer <key>`, unless anonymous use was allowed explicitly. Keys are
//! compared as SHA-256 digests in constant time (no early exit on the first differing
//! byte, no length leak), against every configured key. A refused request is HTTP 401 with
//! a GraphQL `UNAUTHENTICATED` error and causes no upstream call.
//!
//! `--allowed-projects` restricts the project ids anyone may query; the per-request
//! project loader refuses the others with `FORBIDDEN` before any upstream call.

use std::{collections::HashSet, path::PathBuf, sync::Arc};

use axum::{
    http::{HeaderMap, HeaderValue, StatusCode, header},
    response::Response,
};
use secrecy::{ExposeSecret, SecretString};
use sha2::{Digest, Sha256};
use subtle::{Choice, ConstantTimeEq};

use super::encoding::Format;
use crate::{
    config::AccessOptions,
    error::{ErrorCode, http_error},
    project_id::ProjectId,
    upstream::{
        Credential,
        auth::secret_file::{SecretFileError, WatchedFile},
    },
};

type KeyDigest = [u8; 32];

fn digest(key: &str) -> KeyDigest {
    Sha256::digest(key.as_bytes()).into()
}

/// Keys from a file: one per line, blank lines and `#` comments skipped.
fn parse_key_file(text: &str) -> Result<Vec<KeyDigest>, &'static str> {
    let keys: Vec<KeyDigest> =
        text.lines().map(str::trim).filter(|l| !l.is_empty() && !l.starts_with('#')).map(digest).collect();
    if keys.is_empty() { Err("holds no API keys") } else { Ok(keys) }
}

/// The accepted API keys.
struct ApiKeys {
    listed: Vec<KeyDigest>,
    file: Option<WatchedFile<Vec<KeyDigest>>>,
}

impl ApiKeys {
    fn accepts(&self, presented: &str) -> bool {
        let presented = digest(presented);
        let from_file = self.file.as_ref().map(WatchedFile::get);
        let all = self.listed.iter().chain(from_file.iter().flat_map(|keys| keys.iter()));
        // Every key is compared; the result is combined without branching on it.
        let matched = all.fold(Choice::from(0), |acc, key| acc | key.ct_eq(&presented));
        bool::from(matched)
    }
}

/// A configuration that cannot be served.
#[derive(Debug, thiserror::Error)]
pub enum AccessConfigError {
    /// Service credentials but no way for callers to prove who they are.
    #[error(
        "the service has its own DLI credentials, so callers need API keys: set DLI_GRAPHQL_API_KEYS \
         (--api-keys) or --api-keys-file, or pass --allow-anonymous to let anyone who can reach it use them"
    )]
    NoApiKeys,
    /// The key file is unreadable or empty.
    #[error("--api-keys-file: {0}")]
    KeyFile(SecretFileError),
    /// An entry of `--allowed-projects` is not a project id.
    #[error("--allowed-projects entry {index}: {reason}")]
    BadProject {
        /// 1-based position in the list.
        index: usize,
        /// Why it is invalid.
        reason: crate::project_id::InvalidProjectId,
    },
}

/// Why a request is refused before it runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Denied {
    /// No `Authorization: Bearer` header.
    MissingKey,
    /// A key that matches none of the configured ones.
    InvalidKey,
}

impl Denied {
    /// HTTP 401 with a GraphQL `UNAUTHENTICATED` error and a `WWW-Authenticate` challenge.
    pub fn into_response(self, format: Format) -> Response {
        let message = match self {
            Self::MissingKey => "an API key is required: send `Authorization: Bearer <key>`",
            Self::InvalidKey => "the API key is not valid",
        };
        let mut resp =
            http_error(StatusCode::UNAUTHORIZED, ErrorCode::Unauthenticated, message, format.content_type());
        resp.headers_mut()
            .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer realm=\"dli-graphql\""));
        resp
    }
}

/// The access rules of one running service.
#[derive(Default)]
pub struct AccessPolicy {
    /// `Some`: callers without their own token must present one of these keys.
    api_keys: Option<ApiKeys>,
    allowed_projects: Option<Arc<HashSet<ProjectId>>>,
}

impl std::fmt::Debug for AccessPolicy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AccessPolicy")
            .field("api_keys_required", &self.api_keys.is_some())
            .field("allowed_projects", &self.allowed_projects.as_ref().map(|p| p.len()))
            .finish()
    }
}

impl AccessPolicy {
    /// The rules for `config`. `service_credential`: whether the service will act with its
    /// own credentials for callers that bring none (the demo does, with its demo token).
    /// `demo`: the demo's credential only reaches its own simulator, so it is anonymous
    /// unless keys are set.
    pub fn new(
        config: &AccessOptions,
        demo: bool,
        service_credential: bool,
    ) -> Result<Self, AccessConfigError> {
        let allowed_projects = if config.allowed_projects.is_empty() {
            None
        } else {
            let mut set = HashSet::new();
            for (i, raw) in config.allowed_projects.iter().enumerate() {
                let p = ProjectId::parse(raw.trim())
                    .map_err(|reason| AccessConfigError::BadProject { index: i + 1, reason })?;
                set.insert(p);
            }
            Some(Arc::new(set))
        };
        let listed: Vec<KeyDigest> = config
            .api_keys
            .iter()
            .map(|k| k.expose_secret().trim())
            .filter(|k| !k.is_empty())
            .map(digest)
            .collect();
        let file: Option<PathBuf> = config.api_keys_file.clone();
        let keys_configured = !listed.is_empty() || file.is_some();
        // The demo's credential only reaches its own simulator: anonymous unless keys are set.
        let anonymous = config.allow_anonymous || (demo && !keys_configured);
        let api_keys = if !service_credential || anonymous {
            if service_credential {
                tracing::warn!(
                    "anonymous access: anyone who can reach this service acts with its DLI credentials"
                );
            } else if keys_configured {
                tracing::info!("API keys are not needed: callers bring their own X-Auth-Token");
            }
            None
        } else if !keys_configured {
            return Err(AccessConfigError::NoApiKeys);
        } else {
            let file = file
                .map(|p| WatchedFile::open(&p, parse_key_file))
                .transpose()
                .map_err(AccessConfigError::KeyFile)?;
            Some(ApiKeys { listed, file })
        };
        Ok(Self { api_keys, allowed_projects })
    }

    /// Whether a caller without its own token may proceed (with the service's credential).
    pub fn admit(&self, headers: &HeaderMap) -> Result<(), Denied> {
        let Some(keys) = &self.api_keys else {
            return Ok(());
        };
        let Some(presented) = bearer(headers) else {
            tracing::info!("request refused: no API key");
            return Err(Denied::MissingKey);
        };
        if keys.accepts(presented.expose_secret()) {
            Ok(())
        } else {
            tracing::info!("request refused: invalid API key");
            Err(Denied::InvalidKey)
        }
    }

    /// The credential a request with these headers acts with. A caller's own
    /// `X-Auth-Token` needs no API key: DLI authorises it. Otherwise `service` is used, and
    /// only by callers this policy admits.
    pub fn credential(
        &self,
        headers: &HeaderMap,
        service: &Option<Credential>,
    ) -> Result<Option<Credential>, Denied> {
        self.credential_and_key(headers, service).map(|(credential, _)| credential)
    }

    /// Like [`Self::credential`], with the digest of the API key that admitted the caller
    /// (none when the caller brought its own token, or no key is required).
    pub fn credential_and_key(
        &self,
        headers: &HeaderMap,
        service: &Option<Credential>,
    ) -> Result<(Option<Credential>, Option<[u8; 32]>), Denied> {
        let own = headers.get("x-auth-token").and_then(|v| v.to_str().ok()).and_then(Credential::token);
        match own {
            Some(own) => Ok((Some(own), None)),
            None => {
                self.admit(headers)?;
                Ok((service.clone(), self.caller_key(headers)))
            }
        }
    }

    /// The digest of the API key of a caller [`Self::admit`] let through, when keys are
    /// required (so the key was checked); `None` otherwise.
    pub fn caller_key(&self, headers: &HeaderMap) -> Option<[u8; 32]> {
        self.api_keys.as_ref()?;
        bearer(headers).map(|k| digest(k.expose_secret()))
    }

    /// The projects that may be queried, when restricted.
    pub fn allowed_projects(&self) -> Option<Arc<HashSet<ProjectId>>> {
        self.allowed_projects.clone()
    }
}

/// The key of `Authorization: Bearer <key>` (scheme case-insensitive).
fn bearer(headers: &HeaderMap) -> Option<SecretString> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?.trim();
    let (scheme, key) = value.split_once(' ')?;
    let key = key.trim();
    (scheme.eq_ignore_ascii_case("bearer") && !key.is_empty()).then(|| SecretString::from(key.to_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(args: &[&str], service_credential: bool) -> Result<AccessPolicy, AccessConfigError> {
        let mut all = vec!["--endpoint", "http://127.0.0.1:9"];
        all.extend_from_slice(args);
        let config = crate::config::Config::from_args(all).expect("parses");
        AccessPolicy::new(&config.access, config.demo, service_credential)
    }

    fn with_auth(value: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(header::AUTHORIZATION, HeaderValue::from_str(value).expect("value"));
        h
    }

    #[test]
    fn keys_are_required_only_with_service_credentials() {
        let p = policy(&["--api-keys", "k1, k2"], true).expect("ok");
        assert_eq!(p.admit(&HeaderMap::new()), Err(Denied::MissingKey));
        assert_eq!(p.admit(&with_auth("Bearer k1")), Ok(()));
        assert_eq!(p.admit(&with_auth("bearer  k2 ")), Ok(()));
        assert_eq!(p.admit(&with_auth("Bearer k3")), Err(Denied::InvalidKey));
        assert_eq!(p.admit(&with_auth("Bearer k")), Err(Denied::InvalidKey));
        assert_eq!(p.admit(&with_auth("Bearer k1x")), Err(Denied::InvalidKey));
        assert_eq!(p.admit(&with_auth("Basic k1")), Err(Denied::MissingKey));
        assert_eq!(p.admit(&with_auth("k1")), Err(Denied::MissingKey));
        let none = policy(&["--api-keys", "k1"], false).expect("ok");
        assert_eq!(none.admit(&HeaderMap::new()), Ok(()));
        let anon = policy(&["--allow-anonymous"], true).expect("ok");
        assert_eq!(anon.admit(&HeaderMap::new()), Ok(()));
        assert!(matches!(policy(&[], true), Err(AccessConfigError::NoApiKeys)));
    }

    #[test]
    fn the_demo_is_anonymous_unless_keys_are_set() {
        let demo = policy(&["--demo"], true).expect("ok");
        assert_eq!(demo.admit(&HeaderMap::new()), Ok(()));
        let keyed = policy(&["--demo", "--api-keys", "k"], true).expect("ok");
        assert_eq!(keyed.admit(&HeaderMap::new()), Err(Denied::MissingKey));
    }

    #[test]
    fn allowed_projects_are_validated() {
        let p = policy(&["--allowed-projects", "p1, p2"], false).expect("ok");
        let set = p.allowed_projects().expect("restricted");
        assert!(set.contains(&ProjectId::parse("p2").expect("valid")));
        assert_eq!(set.len(), 2);
        let bad = policy(&["--allowed-projects", "p1,../x"], false);
        assert!(matches!(bad, Err(AccessConfigError::BadProject { index: 2, .. })));
        assert!(policy(&[], false).expect("ok").allowed_projects().is_none());
    }

    #[test]
    fn key_files_skip_comments_and_refuse_to_be_empty() {
        assert_eq!(parse_key_file("# rotated 2024-05\n\nk1\n  k2  \n").map(|k| k.len()), Ok(2));
        assert!(parse_key_file("# nothing\n\n").is_err());
    }
}
