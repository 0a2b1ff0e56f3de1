//! The service's own upstream credential, picked from the configuration.
//!
//! At most one mode may be configured: a static token (`DLI_AUTH_TOKEN` or
//! `--auth-token-file`), an access key pair (`DLI_ACCESS_KEY` and `DLI_SECRET_KEY`, optionally
//! `DLI_SECURITY_TOKEN`), or IAM password credentials (`DLI_IAM_USER`, `DLI_IAM_PASSWORD` and
//! `DLI_IAM_DOMAIN`, optionally `DLI_IAM_ENDPOINT`). Half a mode, or two modes, is a
//! startup error rather than a guess. Error messages name settings, never their values.

use reqwest::Url;
use secrecy::{ExposeSecret, SecretString};

use super::{
    Credential,
    iam::IamPassword,
    secret_file::SecretFileError,
    signer::{AkSk, InvalidAkSk},
};
use crate::config::Config;

/// A credential configuration that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum CredentialConfigError {
    /// More than one mode is configured.
    #[error("configure one service credential mode, not several: {0}")]
    Conflicting(String),
    /// `--auth-token` is unusable.
    #[error("DLI_AUTH_TOKEN (--auth-token) is empty or holds characters that cannot be sent in a header")]
    BadToken,
    /// The token file is unreadable or holds no token.
    #[error("--auth-token-file: {0}")]
    TokenFile(SecretFileError),
    /// Only one half of an AK/SK pair, or a security token without a pair.
    #[error(
        "AK/SK signing needs both DLI_ACCESS_KEY (--access-key) and DLI_SECRET_KEY (--secret-key); DLI_SECURITY_TOKEN only comes with them"
    )]
    IncompleteAkSk,
    /// The AK/SK pair is malformed.
    #[error("AK/SK: {0}")]
    AkSk(InvalidAkSk),
    /// Some, not all, of the IAM settings.
    #[error(
        "IAM credentials need DLI_IAM_USER (--iam-user), DLI_IAM_PASSWORD (--iam-password) and DLI_IAM_DOMAIN (--iam-domain)"
    )]
    IncompleteIam,
    /// No way to find IAM.
    #[error("IAM credentials need DLI_IAM_ENDPOINT (--iam-endpoint) or DLI_REGION (--region)")]
    NoIamEndpoint,
    /// The IAM endpoint or region is unusable.
    #[error(
        "--iam-endpoint must be an http:// or https:// URL without query or credentials, or --region a region name"
    )]
    BadIamEndpoint,
    /// The HTTP client for IAM could not be built.
    #[error("building the IAM client: {0}")]
    Client(reqwest::Error),
    /// `--demo` together with real credentials.
    #[error("--demo serves simulated data with its own token; unset the service credential settings")]
    Demo,
}

fn given(s: &Option<SecretString>) -> Option<&SecretString> {
    s.as_ref().filter(|s| !s.expose_secret().trim().is_empty())
}

fn given_text(s: &Option<String>) -> Option<&str> {
    s.as_deref().map(str::trim).filter(|s| !s.is_empty())
}

/// The service's credential from `config`, or `None` when it has none (callers must then
/// bring their own `X-Auth-Token`).
pub fn service_credential(config: &Config) -> Result<Option<Credential>, CredentialConfigError> {
    let token = given(&config.credentials.auth_token);
    let token_file = config.credentials.auth_token_file.as_ref();
    let (ak, sk, st) = (
        given(&config.credentials.access_key),
        given(&config.credentials.secret_key),
        given(&config.credentials.security_token),
    );
    let (user, password, domain) = (
        given_text(&config.credentials.iam_user),
        given(&config.credentials.iam_password),
        given_text(&config.credentials.iam_domain),
    );
    let modes: Vec<&str> = [
        (token.is_some(), "DLI_AUTH_TOKEN"),
        (token_file.is_some(), "--auth-token-file"),
        (ak.is_some() || sk.is_some() || st.is_some(), "DLI_ACCESS_KEY/DLI_SECRET_KEY"),
        (user.is_some() || password.is_some() || domain.is_some(), "DLI_IAM_*"),
    ]
    .into_iter()
    .filter_map(|(set, name)| set.then_some(name))
    .collect();
    if modes.len() > 1 {
        return Err(CredentialConfigError::Conflicting(modes.join(", ")));
    }
    if config.demo && !modes.is_empty() {
        return Err(CredentialConfigError::Demo);
    }
    if let Some(name) = modes.first() {
        tracing::info!(mode = %name, "the service uses its own DLI credential for callers without a token");
    }
    if let Some(token) = token {
        return Credential::token(token.expose_secret()).map(Some).ok_or(CredentialConfigError::BadToken);
    }
    if let Some(path) = token_file {
        return Credential::token_file(path).map(Some).map_err(CredentialConfigError::TokenFile);
    }
    if ak.is_some() || sk.is_some() || st.is_some() {
        let (Some(ak), Some(sk)) = (ak, sk) else {
            return Err(CredentialConfigError::IncompleteAkSk);
        };
        let keys =
            AkSk::new(ak.expose_secret(), sk.clone(), st.cloned()).map_err(CredentialConfigError::AkSk)?;
        return Ok(Some(Credential::ak_sk(keys)));
    }
    if user.is_some() || password.is_some() || domain.is_some() {
        let (Some(user), Some(password), Some(domain)) = (user, password, domain) else {
            return Err(CredentialConfigError::IncompleteIam);
        };
        let creds = IamPassword {
            endpoint: iam_endpoint(config)?,
            domain: domain.to_owned(),
            user: user.to_owned(),
            password: password.clone(),
        };
        return Credential::iam(creds, config.upstream.timeout)
            .map(Some)
            .map_err(CredentialConfigError::Client);
    }
    Ok(None)
}

/// `--iam-endpoint`, else `https://iam.{region}.myhuaweicloud.com` (`.eu` for eu-west-101).
pub fn iam_endpoint(config: &Config) -> Result<Url, CredentialConfigError> {
    if let Some(url) = &config.credentials.iam_endpoint {
        let ok = matches!(url.scheme(), "http" | "https")
            && url.host().is_some()
            && url.query().is_none()
            && url.username().is_empty()
            && url.password().is_none();
        return if ok { Ok(url.clone()) } else { Err(CredentialConfigError::BadIamEndpoint) };
    }
    let Some(region) = &config.upstream.region else {
        return Err(CredentialConfigError::NoIamEndpoint);
    };
    let ok = !region.is_empty()
        && region.len() <= 32
        && region.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
    if !ok {
        return Err(CredentialConfigError::BadIamEndpoint);
    }
    let domain = if region == "eu-west-101" { "myhuaweicloud.eu" } else { "myhuaweicloud.com" };
    Url::parse(&format!("https://iam.{region}.{domain}")).map_err(|_| CredentialConfigError::BadIamEndpoint)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(args: &[&str]) -> Config {
        let mut all = vec!["--endpoint", "http://127.0.0.1:9"];
        all.extend_from_slice(args);
        Config::from_args(all).expect("parses")
    }

    fn mode(args: &[&str]) -> Result<Option<String>, String> {
        service_credential(&config(args)).map(|c| c.map(|c| format!("{c:?}"))).map_err(|e| e.to_string())
    }

    #[test]
    fn each_mode_is_recognised() {
        assert_eq!(mode(&[]), Ok(None));
        assert_eq!(mode(&["--auth-token", "tok"]), Ok(Some("Credential::Token([REDACTED])".into())));
        assert_eq!(
            mode(&["--access-key", "AK", "--secret-key", "SK"]),
            Ok(Some("Credential::AkSk([REDACTED])".into()))
        );
        assert_eq!(
            mode(&["--iam-user", "u", "--iam-password", "p", "--iam-domain", "d", "--region", "cn-north-4"]),
            Ok(Some("Credential::Iam([REDACTED])".into()))
        );
    }

    #[test]
    fn half_or_several_modes_refuse_to_start_without_echoing_values() {
        let cases: &[&[&str]] = &[
            &["--auth-token", "v4lue-a", "--access-key", "AK", "--secret-key", "v4lue-b"],
            &["--access-key", "AK"],
            &["--secret-key", "v4lue-b"],
            &["--security-token", "v4lue-c"],
            &["--iam-user", "u", "--iam-password", "v4lue-d"],
            &["--iam-user", "u", "--iam-password", "v4lue-d", "--iam-domain", "d"],
            &["--auth-token", "bad\u{1}token-v4lue"],
            &["--auth-token-file", "/nonexistent/token"],
            &["--demo", "--auth-token", "v4lue-e"],
        ];
        for args in cases {
            let err = mode(args).expect_err("refused");
            assert!(!err.contains("v4lue"), "{args:?}: {err}");
        }
        assert!(mode(cases[0]).expect_err("x").contains("DLI_AUTH_TOKEN, DLI_ACCESS_KEY/DLI_SECRET_KEY"));
        assert!(mode(cases[5]).expect_err("x").contains("DLI_IAM_ENDPOINT"));
    }

    #[test]
    fn the_iam_endpoint_follows_the_region() {
        let c = config(&["--region", "cn-north-4"]);
        assert_eq!(iam_endpoint(&c).expect("ok").as_str(), "https://iam.cn-north-4.myhuaweicloud.com/");
        let eu = config(&["--region", "eu-west-101"]);
        assert_eq!(iam_endpoint(&eu).expect("ok").as_str(), "https://iam.eu-west-101.myhuaweicloud.eu/");
        let own = config(&["--region", "cn-north-4", "--iam-endpoint", "http://127.0.0.1:1/"]);
        assert_eq!(iam_endpoint(&own).expect("ok").as_str(), "http://127.0.0.1:1/");
        let bad = config(&["--iam-endpoint", "http://user:pw@host/"]);
        assert!(matches!(iam_endpoint(&bad), Err(CredentialConfigError::BadIamEndpoint)));
    }
}
