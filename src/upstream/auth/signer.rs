//! AK/SK request signing, algorithm `SDK-HMAC-SHA256`, as Huawei Cloud's API gateway
//! verifies it.
//!
//! The steps, in the gateway's words: canonical request (method, canonical URI with a
//! trailing `/`, sorted and encoded query, the signed headers, the payload hash) → string
//! to sign (`SDK-HMAC-SHA256`, `X-Sdk-Date`, SHA-256 of the canonical request) → lower-case
//! hex HMAC-SHA256 keyed with the raw secret key → `Authorization: SDK-HMAC-SHA256
//! Access=…, SignedHeaders=…, Signature=…`. There is no derived key and no region scope.
//!
//! The free functions are the algorithm (the simulator verifies with them, and the unit
//! tests pin them to the published test vectors); [`AkSk::sign`] applies it to one
//! outgoing request.

use std::fmt;

use chrono::{DateTime, Utc};
use hmac::{Hmac, Mac};
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, percent_decode_str, utf8_percent_encode};
use reqwest::header::{self, HeaderMap, HeaderName, HeaderValue};
use secrecy::{ExposeSecret, SecretString};
use sha2::{Digest, Sha256};

use crate::project_id::ProjectId;

/// The algorithm name, first in the string to sign and in `Authorization`.
pub const ALGORITHM: &str = "SDK-HMAC-SHA256";
/// `X-Sdk-Date` format: UTC, e.g. `20191115T033655Z`.
pub const DATE_FORMAT: &str = "%Y%m%dT%H%M%SZ";
/// SHA-256 of the empty body.
pub const EMPTY_PAYLOAD_SHA256: &str = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";
/// Payload hash used (and sent in `X-Sdk-Content-Sha256`) when the body is a stream.
pub const UNSIGNED_PAYLOAD: &str = "UNSIGNED-PAYLOAD";

/// `X-Sdk-Date`.
pub const X_SDK_DATE: HeaderName = HeaderName::from_static("x-sdk-date");
/// `X-Project-Id`: the project of a project-scoped call.
pub const X_PROJECT_ID: HeaderName = HeaderName::from_static("x-project-id");
/// `X-Security-Token`: the session token of temporary AK/SK credentials.
pub const X_SECURITY_TOKEN: HeaderName = HeaderName::from_static("x-security-token");
/// `X-Sdk-Content-Sha256`: overrides the payload hash when present.
pub const X_SDK_CONTENT_SHA256: HeaderName = HeaderName::from_static("x-sdk-content-sha256");

/// RFC 3986 unreserved characters stay; everything else is `%XY` (upper-case hex).
const ENCODE: &AsciiSet = &NON_ALPHANUMERIC.remove(b'-').remove(b'_').remove(b'.').remove(b'~');

fn encode(s: &str) -> String {
    utf8_percent_encode(s, ENCODE).to_string()
}

/// Lower-case hex SHA-256 of `bytes`.
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// The canonical URI of a request path as sent on the wire (percent-encoded): each
/// segment decoded and re-encoded with the RFC 3986 rule, and a trailing `/` added.
pub fn canonical_uri(path: &str) -> String {
    let mut out = path
        .split('/')
        .map(|segment| encode(&percent_decode_str(segment).decode_utf8_lossy()))
        .collect::<Vec<_>>()
        .join("/");
    if !out.ends_with('/') {
        out.push('/');
    }
    out
}

/// The canonical query string of a raw query (`None` or empty gives `""`): names and
/// values decoded, sorted by name then value, re-encoded, joined as `name=value` with `&`.
pub fn canonical_query(query: Option<&str>) -> String {
    let Some(query) = query.filter(|q| !q.is_empty()) else {
        return String::new();
    };
    let mut pairs: Vec<(String, String)> =
        form_urlencoded::parse(query.as_bytes()).map(|(k, v)| (k.into_owned(), v.into_owned())).collect();
    pairs.sort();
    pairs.iter().map(|(k, v)| format!("{}={}", encode(k), encode(v))).collect::<Vec<_>>().join("&")
}

/// The signed-headers list as it appears in the canonical request and `Authorization`:
/// lower-case names, sorted, deduplicated, joined with `;`.
pub fn signed_headers_list(names: &[&str]) -> String {
    let mut names: Vec<String> = names.iter().map(|n| n.to_ascii_lowercase()).collect();
    names.sort();
    names.dedup();
    names.join(";")
}

/// One canonical request. `signed_headers` is the `;`-joined list from
/// [`signed_headers_list`]; a signed header with several values gives one sorted line each.
pub fn canonical_request(
    method: &str,
    path: &str,
    query: Option<&str>,
    headers: &HeaderMap,
    signed_headers: &str,
    payload_hash: &str,
) -> String {
    let mut canonical_headers = String::new();
    for name in signed_headers.split(';').filter(|n| !n.is_empty()) {
        let mut values: Vec<String> = headers
            .get_all(name)
            .iter()
            .map(|v| String::from_utf8_lossy(v.as_bytes()).trim().to_owned())
            .collect();
        if values.is_empty() {
            values.push(String::new());
        }
        values.sort();
        for v in values {
            canonical_headers.push_str(name);
            canonical_headers.push(':');
            canonical_headers.push_str(&v);
            canonical_headers.push('\n');
        }
    }
    format!(
        "{}\n{}\n{}\n{}\n{}\n{}",
        method.to_ascii_uppercase(),
        canonical_uri(path),
        canonical_query(query),
        canonical_headers,
        signed_headers,
        payload_hash
    )
}

/// The string to sign for a canonical request made at `sdk_date` (the `X-Sdk-Date` value).
pub fn string_to_sign(sdk_date: &str, canonical_request: &str) -> String {
    format!("{ALGORITHM}\n{sdk_date}\n{}", sha256_hex(canonical_request.as_bytes()))
}

/// Lower-case hex HMAC-SHA256 of `string_to_sign`, keyed with the raw secret key.
pub fn signature(secret_key: &[u8], string_to_sign: &str) -> String {
    hex::encode(hmac_sha256(secret_key, string_to_sign.as_bytes()))
}

fn hmac_sha256(key: &[u8], message: &[u8]) -> [u8; 32] {
    // HMAC takes keys of any length; `new_from_slice` cannot fail for it.
    match Hmac::<Sha256>::new_from_slice(key) {
        Ok(mut mac) => {
            mac.update(message);
            mac.finalize().into_bytes().into()
        }
        Err(_) => [0; 32],
    }
}

/// The `Authorization` header value.
pub fn authorization(access_key: &str, signed_headers: &str, signature: &str) -> String {
    format!("{ALGORITHM} Access={access_key}, SignedHeaders={signed_headers}, Signature={signature}")
}

/// The parts of an `SDK-HMAC-SHA256` `Authorization` header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParsedAuthorization {
    /// `Access=`: the access key.
    pub access_key: String,
    /// `SignedHeaders=`: the `;`-joined list, as sent.
    pub signed_headers: String,
    /// `Signature=`: lower-case hex.
    pub signature: String,
}

/// Parses `SDK-HMAC-SHA256 Access=…, SignedHeaders=…, Signature=…`; `None` for anything else.
pub fn parse_authorization(value: &str) -> Option<ParsedAuthorization> {
    let rest = value.trim().strip_prefix(ALGORITHM)?.strip_prefix(' ')?;
    let (mut access, mut signed, mut sig) = (None, None, None);
    for part in rest.split(',') {
        let (k, v) = part.trim().split_once('=')?;
        let slot = match k {
            "Access" => &mut access,
            "SignedHeaders" => &mut signed,
            "Signature" => &mut sig,
            _ => return None,
        };
        if slot.replace(v.trim().to_owned()).is_some() {
            return None;
        }
    }
    Some(ParsedAuthorization { access_key: access?, signed_headers: signed?, signature: sig? })
}

/// Why an AK/SK pair cannot be used.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum InvalidAkSk {
    /// The access key is empty or not a plain token of printable ASCII.
    #[error("the access key must be non-empty printable ASCII without spaces or commas")]
    AccessKey,
    /// The secret key is empty.
    #[error("the secret key must not be empty")]
    SecretKey,
    /// The security token is empty or cannot be sent as a header.
    #[error("the security token must be non-empty and header-safe")]
    SecurityToken,
}

/// An access key with its secret key, and the session token of temporary credentials.
pub struct AkSk {
    access_key: SecretString,
    secret_key: SecretString,
    security_token: Option<SecretString>,
}

impl fmt::Debug for AkSk {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AkSk").field("temporary", &self.security_token.is_some()).finish_non_exhaustive()
    }
}

impl AkSk {
    /// Checks and holds the keys.
    pub fn new(
        access_key: &str,
        secret_key: SecretString,
        security_token: Option<SecretString>,
    ) -> Result<Self, InvalidAkSk> {
        let access_key = access_key.trim();
        // The AK goes into a comma-separated header field: keep it to a plain token.
        if access_key.is_empty() || !access_key.bytes().all(|b| b.is_ascii_graphic() && b != b',') {
            return Err(InvalidAkSk::AccessKey);
        }
        if secret_key.expose_secret().is_empty() {
            return Err(InvalidAkSk::SecretKey);
        }
        if let Some(t) = &security_token {
            let t = t.expose_secret();
            if t.trim().is_empty() || HeaderValue::from_str(t).is_err() {
                return Err(InvalidAkSk::SecurityToken);
            }
        }
        Ok(Self { access_key: SecretString::from(access_key.to_owned()), secret_key, security_token })
    }

    /// The access key (an identifier, still kept out of logs).
    pub fn access_key(&self) -> &SecretString {
        &self.access_key
    }

    /// The secret key.
    pub fn secret_key(&self) -> &SecretString {
        &self.secret_key
    }

    /// The security token of temporary credentials.
    pub fn security_token(&self) -> Option<&SecretString> {
        self.security_token.as_ref()
    }

    /// Signs `req` for a call on `project` at `now`: sets `Host`, `X-Sdk-Date`,
    /// `X-Project-Id` (and `X-Security-Token`), then `Authorization` over
    /// `host;x-project-id;x-sdk-date[;x-security-token]` and the exact body bytes.
    pub fn sign(&self, req: &mut reqwest::Request, project: &ProjectId, now: DateTime<Utc>) {
        let host = host_header(req.url());
        let date = now.format(DATE_FORMAT).to_string();
        let mut names = vec!["host", "x-project-id", "x-sdk-date"];
        let payload_hash = match req.body().map(|b| b.as_bytes()) {
            None => EMPTY_PAYLOAD_SHA256.to_owned(),
            Some(Some(bytes)) => sha256_hex(bytes),
            Some(None) => {
                names.push("x-sdk-content-sha256");
                req.headers_mut().insert(X_SDK_CONTENT_SHA256, HeaderValue::from_static(UNSIGNED_PAYLOAD));
                UNSIGNED_PAYLOAD.to_owned()
            }
        };
        let headers = req.headers_mut();
        headers.remove(header::AUTHORIZATION);
        if let Ok(v) = HeaderValue::from_str(&host) {
            headers.insert(header::HOST, v);
        }
        if let Ok(v) = HeaderValue::from_str(&date) {
            headers.insert(X_SDK_DATE, v);
        }
        if let Ok(v) = HeaderValue::from_str(project.as_str()) {
            headers.insert(X_PROJECT_ID, v);
        }
        if let Some(token) = &self.security_token
            && let Ok(mut v) = HeaderValue::from_str(token.expose_secret())
        {
            v.set_sensitive(true);
            headers.insert(X_SECURITY_TOKEN, v);
            names.push("x-security-token");
        }
        let signed = signed_headers_list(&names);
        let url = req.url();
        let canonical = canonical_request(
            req.method().as_str(),
            url.path(),
            url.query(),
            req.headers(),
            &signed,
            &payload_hash,
        );
        let sig = signature(self.secret_key.expose_secret().as_bytes(), &string_to_sign(&date, &canonical));
        let auth = authorization(self.access_key.expose_secret(), &signed, &sig);
        if let Ok(mut v) = HeaderValue::from_str(&auth) {
            v.set_sensitive(true);
            req.headers_mut().insert(header::AUTHORIZATION, v);
        }
    }
}

/// The `Host` header for `url`: the host, with the port when it is not the scheme's default.
pub fn host_header(url: &reqwest::Url) -> String {
    let host = url.host_str().unwrap_or_default();
    match url.port() {
        Some(port) => format!("{host}:{port}"),
        None => host.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(
                HeaderName::from_bytes(k.as_bytes()).expect("name"),
                HeaderValue::from_str(v).expect("value"),
            );
        }
        h
    }

    #[test]
    fn tv1_the_signing_guides_vpc_example() {
        let h = headers(&[
            ("Content-Type", "application/json"),
            ("Host", "service.region.example.com"),
            ("X-Sdk-Date", "20191115T033655Z"),
        ]);
        let signed = signed_headers_list(&["content-type", "host", "x-sdk-date"]);
        let cr = canonical_request(
            "GET",
            "/v1/77b6a44cba5143ab91d13ab9a8ff44fd/vpcs",
            Some("limit=2&marker=13551d6b-755d-4757-b956-536f674975c0"),
            &h,
            &signed,
            EMPTY_PAYLOAD_SHA256,
        );
        assert_eq!(
            cr,
            "GET\n/v1/77b6a44cba5143ab91d13ab9a8ff44fd/vpcs/\n\
             limit=2&marker=13551d6b-755d-4757-b956-536f674975c0\n\
             content-type:application/json\nhost:service.region.example.com\nx-sdk-date:20191115T033655Z\n\n\
             content-type;host;x-sdk-date\n\
             e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
        assert_eq!(
            sha256_hex(cr.as_bytes()),
            "b25362e603ee30f4f25e7858e8a7160fd36e803bb2dfe206278659d71a9bcd7a"
        );
        let sig =
            signature(b"MFyfvK41ba2giqM7Uio6PznpdUKGpownRZlmVmHc", &string_to_sign("20191115T033655Z", &cr));
        assert_eq!(sig, "7be6668032f70418fcc22abc52071e57aff61b84a1d2381bb430d6870f4f6ebe");
        assert_eq!(
            authorization("QTWAOYTTINDUT2QVKYUC", &signed, &sig),
            "SDK-HMAC-SHA256 Access=QTWAOYTTINDUT2QVKYUC, SignedHeaders=content-type;host;x-sdk-date, \
             Signature=7be6668032f70418fcc22abc52071e57aff61b84a1d2381bb430d6870f4f6ebe"
        );
    }

    /// TV2 and TV3 share keys, date, path and the unsigned `TEST_UNDERSCORE` header.
    fn go_sdk_vector(query: &str, extra: &[(&str, &str)], body: &[u8]) -> (String, String) {
        let mut pairs = vec![("X-Sdk-Date", "20060102T150405Z"), ("TEST_UNDERSCORE", "TEST_VALUE")];
        pairs.extend_from_slice(extra);
        let h = headers(&pairs);
        let signed = signed_headers_list(&["x-sdk-date"]);
        let cr = canonical_request("GET", "/path", Some(query), &h, &signed, &sha256_hex(body));
        let sig = signature(b"SecretKey", &string_to_sign("20060102T150405Z", &cr));
        (cr, authorization("AccessKey", &signed, &sig))
    }

    #[test]
    fn tv2_the_go_sdks_get_vector() {
        let (cr, auth) = go_sdk_vector("limit=1", &[], b"");
        assert!(cr.starts_with("GET\n/path/\nlimit=1\nx-sdk-date:20060102T150405Z\n\nx-sdk-date\n"), "{cr}");
        assert_eq!(
            sha256_hex(cr.as_bytes()),
            "85c3b7730f308aee452b16138a42a914397e43a8f0d732dfa521c0ef2afa98a4"
        );
        assert_eq!(
            auth,
            "SDK-HMAC-SHA256 Access=AccessKey, SignedHeaders=x-sdk-date, \
             Signature=5a2ce64c865e0e6046321c6f3d5a77ba8413eeaf355c3166c03d58d02ac79624"
        );
    }

    #[test]
    fn tv3_the_go_sdks_post_vector_hashes_the_exact_body() {
        let body = b"{\"Name\":\"test\",\"Id\":1}\n";
        assert_eq!(body.len(), 23);
        assert_eq!(sha256_hex(body), "a29d7b4c5efd1a22011d69fd7b7aee76fe51e4083c609244228de258afd61289");
        let h = headers(&[
            ("X-Sdk-Date", "20060102T150405Z"),
            ("TEST_UNDERSCORE", "TEST_VALUE"),
            ("Content-Type", "application/json"),
        ]);
        let signed = signed_headers_list(&["x-sdk-date"]);
        let cr = canonical_request("POST", "/path", Some("key=value"), &h, &signed, &sha256_hex(body));
        let sig = signature(b"SecretKey", &string_to_sign("20060102T150405Z", &cr));
        assert_eq!(
            authorization("AccessKey", &signed, &sig),
            "SDK-HMAC-SHA256 Access=AccessKey, SignedHeaders=x-sdk-date, \
             Signature=cecc2af119b18ab70b4d094c0750f3b42c02f254903179a0fc2cc72fc9db4f59"
        );
        // Without the encoder's trailing newline the signature differs.
        let cr2 =
            canonical_request("POST", "/path", Some("key=value"), &h, &signed, &sha256_hex(&body[..22]));
        assert_ne!(signature(b"SecretKey", &string_to_sign("20060102T150405Z", &cr2)), sig);
    }

    #[test]
    fn tv4_query_names_and_values_are_sorted_and_encoded() {
        let mut url = reqwest::Url::parse("https://example.huaweicloud.com/path").expect("url");
        url.query_pairs_mut()
            .append_pair("limit", "1")
            .append_pair("enable", "true")
            .append_pair("test", "一 (&=?!#%.*)")
            .append_pair("path", "/tmp/123")
            .append_pair("multi", "3")
            .append_pair("multi", "1")
            .append_pair("multi", "2");
        assert_eq!(
            canonical_query(url.query()),
            "enable=true&limit=1&multi=1&multi=2&multi=3&path=%2Ftmp%2F123&\
             test=%E4%B8%80%20%28%26%3D%3F%21%23%25.%2A%29"
        );
        assert_eq!(canonical_query(None), "");
        assert_eq!(canonical_query(Some("")), "");
        assert_eq!(canonical_query(Some("flag")), "flag=");
    }

    #[test]
    fn canonical_uris_reencode_segments_and_end_with_a_slash() {
        assert_eq!(canonical_uri("/v2.0/p1/datasource-connection"), "/v2.0/p1/datasource-connection/");
        assert_eq!(canonical_uri("/a/"), "/a/");
        assert_eq!(canonical_uri(""), "/");
        assert_eq!(canonical_uri("/a%20b/c~d/%e4%b8%80/x*y"), "/a%20b/c~d/%E4%B8%80/x%2Ay/");
    }

    #[test]
    fn authorization_headers_parse_back() {
        let value = authorization("AK", "host;x-sdk-date", "abc123");
        assert_eq!(
            parse_authorization(&value),
            Some(ParsedAuthorization {
                access_key: "AK".into(),
                signed_headers: "host;x-sdk-date".into(),
                signature: "abc123".into()
            })
        );
        for bad in [
            "Bearer x",
            "SDK-HMAC-SHA256 Access=AK",
            "SDK-HMAC-SHA256 Access=AK, Access=AK, SignedHeaders=a, Signature=b",
            "SDK-HMAC-SHA256 Access=AK, SignedHeaders=a, Signature=b, Extra=c",
            "SDK-HMAC-SHA256Access=AK, SignedHeaders=a, Signature=b",
        ] {
            assert_eq!(parse_authorization(bad), None, "{bad}");
        }
    }

    #[test]
    fn sign_sets_the_headers_it_signs_and_the_signature_verifies() {
        let keys = AkSk::new("QTWAOYTTINDUT2QVKYUC", "sk-value".into(), Some("session-token".into()))
            .expect("valid keys");
        let url = reqwest::Url::parse("http://127.0.0.1:9200/v2.0/p1/datasource-connection").expect("url");
        let mut req = reqwest::Request::new(reqwest::Method::GET, url);
        let now = DateTime::parse_from_rfc3339("2019-11-15T03:36:55Z").expect("date").with_timezone(&Utc);
        let project = ProjectId::parse("p1").expect("valid");
        keys.sign(&mut req, &project, now);
        let h = req.headers();
        assert_eq!(h["x-sdk-date"], "20191115T033655Z");
        assert_eq!(h["host"], "127.0.0.1:9200");
        assert_eq!(h["x-project-id"], "p1");
        assert_eq!(h["x-security-token"], "session-token");
        assert!(h["authorization"].is_sensitive() && h["x-security-token"].is_sensitive());
        let parsed = parse_authorization(h["authorization"].to_str().expect("ascii")).expect("parses");
        assert_eq!(parsed.access_key, "QTWAOYTTINDUT2QVKYUC");
        assert_eq!(parsed.signed_headers, "host;x-project-id;x-sdk-date;x-security-token");
        let cr = canonical_request(
            "GET",
            "/v2.0/p1/datasource-connection",
            None,
            h,
            &parsed.signed_headers,
            EMPTY_PAYLOAD_SHA256,
        );
        assert_eq!(parsed.signature, signature(b"sk-value", &string_to_sign("20191115T033655Z", &cr)));
        // Re-signing replaces, never appends.
        keys.sign(&mut req, &project, now);
        assert_eq!(req.headers().get_all("authorization").iter().count(), 1);
    }

    #[test]
    fn default_ports_are_left_out_of_host() {
        let u = |s: &str| reqwest::Url::parse(s).expect("url");
        assert_eq!(
            host_header(&u("https://dli.cn-north-4.myhuaweicloud.com/x")),
            "dli.cn-north-4.myhuaweicloud.com"
        );
        assert_eq!(host_header(&u("https://h:8443/")), "h:8443");
        assert_eq!(host_header(&u("http://[::1]:80/")), "[::1]");
    }

    #[test]
    fn bad_keys_are_refused_and_debug_shows_nothing_secret() {
        assert_eq!(AkSk::new("", "s".into(), None).err(), Some(InvalidAkSk::AccessKey));
        assert_eq!(AkSk::new("a,b", "s".into(), None).err(), Some(InvalidAkSk::AccessKey));
        assert_eq!(AkSk::new("AK", "".into(), None).err(), Some(InvalidAkSk::SecretKey));
        assert_eq!(AkSk::new("AK", "s".into(), Some("a\nb".into())).err(), Some(InvalidAkSk::SecurityToken));
        let k = AkSk::new("AKID-visible", "sk-hidden".into(), Some("st-hidden".into())).expect("valid");
        let dbg = format!("{k:?}");
        assert!(!dbg.contains("AKID") && !dbg.contains("hidden"), "{dbg}");
    }
}
