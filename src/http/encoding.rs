//! Content negotiation: the response media type ([`Format`], with the one 406 answer), and
//! the content coding.
//!
//! Media type: `application/graphql-response+json` when the client accepts it (request
//! errors then answer 400 without `data`), else `application/json` with status 200, as the
//! GraphQL-over-HTTP spec asks.
//!
//! Coding: the server's preference among codings a client rates equally.
//!
//! RFC 9110 §12.5.3 leaves the choice among equally acceptable codings to the server, and
//! tower-http's `CompressionLayer` breaks ties by a fixed order (zstd, br, gzip, deflate).
//! Responses here are compressed on the fly, so this server prefers the coding that costs
//! least to produce at level 1: zstd, then gzip, then br (measured in docs/performance.md). A client that rates br
//! higher still gets br. The middleware narrows `Accept-Encoding` to the chosen coding, so the
//! compression layer behind it compresses with that one and nothing else changes.

use axum::{
    extract::Request,
    http::{HeaderMap, HeaderValue, StatusCode, header, header::ACCEPT_ENCODING},
    middleware::Next,
    response::Response,
};

use crate::error::{ErrorCode, http_error};

/// The media type of GraphQL-over-HTTP responses.
pub const GRAPHQL_RESPONSE_JSON: &str = "application/graphql-response+json";

/// The response media type the client asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Format {
    /// `application/graphql-response+json`: request errors are HTTP 400.
    GraphqlResponseJson,
    /// `application/json`: always HTTP 200 once the request is well-formed.
    Json,
}

impl Format {
    /// The media type `headers` accept, or `None` when they accept neither.
    pub fn negotiate(headers: &HeaderMap) -> Option<Self> {
        let Some(accept) = headers.get(header::ACCEPT).and_then(|v| v.to_str().ok()) else {
            return Some(Self::Json);
        };
        let types: Vec<&str> = accept
            .split(',')
            .filter_map(|t| {
                let mut parts = t.split(';').map(str::trim);
                let mt = parts.next()?;
                // `q=0` means "not acceptable".
                let refused = parts
                    .any(|p| p.strip_prefix("q=").is_some_and(|q| q.parse::<f32>().is_ok_and(|q| q <= 0.0)));
                (!refused).then_some(mt)
            })
            .collect();
        let has = |t: &str| types.iter().any(|m| m.eq_ignore_ascii_case(t));
        if has(GRAPHQL_RESPONSE_JSON) {
            Some(Self::GraphqlResponseJson)
        } else if has("application/json") || has("application/*") || has("*/*") || accept.trim().is_empty() {
            Some(Self::Json)
        } else {
            None
        }
    }

    /// The `Content-Type` of responses in this format.
    pub fn content_type(self) -> &'static str {
        match self {
            Self::GraphqlResponseJson => "application/graphql-response+json; charset=utf-8",
            Self::Json => "application/json; charset=utf-8",
        }
    }
}

/// The HTTP 406 answer for a request whose `Accept` allows no format of [`Format`].
pub fn not_acceptable() -> Response {
    http_error(
        StatusCode::NOT_ACCEPTABLE,
        ErrorCode::BadRequest,
        "Accept must allow application/graphql-response+json or application/json",
        Format::Json.content_type(),
    )
}

/// Codings this server produces, most preferred first.
const PREFERENCE: [&str; 3] = ["zstd", "gzip", "br"];

/// Narrows the request's `Accept-Encoding` to the coding [`choose`] picks (when it picks one).
pub async fn prefer_cheapest_coding(mut request: Request, next: Next) -> Response {
    if let Some(coding) = choose(request.headers()) {
        request.headers_mut().insert(ACCEPT_ENCODING, HeaderValue::from_static(coding));
    }
    next.run(request).await
}

/// The acceptable coding with the highest q-value, ties broken by this server's preference (zstd, gzip, br); `None` when
/// the client accepts none of them (or sent no `Accept-Encoding`), which leaves the response
/// uncompressed as before.
pub fn choose(headers: &HeaderMap) -> Option<&'static str> {
    let mut q = [None::<u16>; PREFERENCE.len()];
    let mut wildcard = None::<u16>;
    for value in headers.get_all(ACCEPT_ENCODING) {
        let Ok(value) = value.to_str() else { continue };
        for item in value.split(',') {
            let mut parts = item.split(';');
            let coding = parts.next().unwrap_or("").trim();
            let Some(weight) = parts.find_map(|p| {
                let (name, v) = p.split_once('=')?;
                name.trim().eq_ignore_ascii_case("q").then(|| parse_qvalue(v.trim()))
            }) else {
                // No q parameter: fully acceptable.
                set(&mut q, &mut wildcard, coding, 1000);
                continue;
            };
            // A malformed q-value makes the item unusable, not the header.
            if let Some(weight) = weight {
                set(&mut q, &mut wildcard, coding, weight);
            }
        }
    }
    let mut best: Option<(u16, usize)> = None;
    for (i, explicit) in q.iter().enumerate() {
        let weight = explicit.or(wildcard).unwrap_or(0);
        // Strictly greater: an equal weight keeps the earlier, preferred coding.
        if weight > 0 && best.is_none_or(|(w, _)| weight > w) {
            best = Some((weight, i));
        }
    }
    best.map(|(_, i)| PREFERENCE[i])
}

fn set(q: &mut [Option<u16>], wildcard: &mut Option<u16>, coding: &str, weight: u16) {
    if coding == "*" {
        *wildcard = Some(weight);
    } else if let Some(i) = PREFERENCE.iter().position(|c| c.eq_ignore_ascii_case(coding)) {
        q[i] = Some(weight);
    }
}

/// An RFC 9110 qvalue (`0`, `0.5`, `1.000`, ...) in thousandths.
fn parse_qvalue(s: &str) -> Option<u16> {
    let (int, frac) = s.split_once('.').unwrap_or((s, ""));
    if frac.len() > 3 || !frac.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let frac_value =
        frac.bytes().zip([100, 10, 1]).map(|(b, scale)| u16::from(b - b'0') * scale).sum::<u16>();
    match int {
        "0" => Some(frac_value),
        "1" if frac_value == 0 => Some(1000),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pick(values: &[&str]) -> Option<&'static str> {
        let mut headers = HeaderMap::new();
        for v in values {
            headers.append(ACCEPT_ENCODING, HeaderValue::from_str(v).expect("header value"));
        }
        choose(&headers)
    }

    #[test]
    fn ties_go_to_the_cheapest_coding() {
        assert_eq!(pick(&["gzip, compress, deflate, br"]), Some("gzip"));
        assert_eq!(pick(&["gzip, deflate, br, zstd"]), Some("zstd"));
        assert_eq!(pick(&["br;q=0.8, gzip;q=0.8"]), Some("gzip"));
        assert_eq!(pick(&["*"]), Some("zstd"));
        assert_eq!(pick(&["br", "gzip"]), Some("gzip"));
    }

    #[test]
    fn a_higher_q_value_wins() {
        assert_eq!(pick(&["br;q=1.0, gzip;q=0.9"]), Some("br"));
        assert_eq!(pick(&["br"]), Some("br"));
        assert_eq!(pick(&["zstd;q=0.1, br;Q=0.2"]), Some("br"));
        assert_eq!(pick(&["*;q=0.5, gzip;q=0.6"]), Some("gzip"));
    }

    #[test]
    fn nothing_acceptable_leaves_the_choice_to_identity() {
        assert_eq!(pick(&[]), None);
        assert_eq!(pick(&["identity"]), None);
        assert_eq!(pick(&["deflate, compress"]), None);
        assert_eq!(pick(&["gzip;q=0, br;q=0"]), None);
        assert_eq!(pick(&["*;q=0"]), None);
        assert_eq!(pick(&["*, gzip;q=0, zstd;q=0, br;q=0"]), None);
        // Malformed q-values drop their item only.
        assert_eq!(pick(&["gzip;q=2, br;q=0.5000, zstd;q=x"]), None);
        assert_eq!(pick(&["gzip;q=abc, br"]), Some("br"));
    }

    #[test]
    fn parses_qvalues() {
        assert_eq!(parse_qvalue("0"), Some(0));
        assert_eq!(parse_qvalue("0.5"), Some(500));
        assert_eq!(parse_qvalue("0.125"), Some(125));
        assert_eq!(parse_qvalue("1"), Some(1000));
        assert_eq!(parse_qvalue("1.000"), Some(1000));
        assert_eq!(parse_qvalue("1.5"), None);
        assert_eq!(parse_qvalue("0.1234"), None);
        assert_eq!(parse_qvalue(""), None);
        assert_eq!(parse_qvalue("-0"), None);
    }
}
