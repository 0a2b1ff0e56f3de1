//! Request limits: what one client request may cost, checked before anything goes upstream.
//!
//! HTTP-level limits (body size, body read time, batch size) are enforced by [`crate::http`];
//! document limits (length, tokens, nesting, depth, complexity, upstream fan-out, distinct
//! projects) by the schema extension in [`crate::graphql::limits`]. Every rejection is a
//! GraphQL error with `extensions.code = LIMIT_EXCEEDED`, `extensions.limit` (the flag that
//! sets it) and `extensions.max`.

use std::time::Duration;

use async_graphql::{ErrorExtensionValues, ServerError};

use crate::error::ErrorCode;

/// Every request limit, each set by the flag of the same name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limits {
    /// Largest request body, in bytes (`--max-body-bytes`); larger answers HTTP 413.
    pub max_body_bytes: usize,
    /// Longest a client may take to send the request body (`--body-read-timeout`); HTTP 408.
    pub body_read_timeout: Duration,
    /// Operations in one batched HTTP request (`--max-batch`).
    pub max_batch: usize,
    /// Longest query document, in bytes (`--max-query-length`).
    pub max_query_length: usize,
    /// Most lexical tokens in a query document (`--max-tokens`), counted before parsing.
    pub max_tokens: usize,
    /// Deepest field nesting (`--max-depth`); also bounds bracket nesting before parsing.
    pub max_depth: usize,
    /// Highest complexity, one point per selected field (`--max-complexity`).
    pub max_complexity: usize,
    /// Most upstream-causing field selections (`connections`, `_entities`) per operation
    /// (`--max-upstream-fields`).
    pub max_upstream_fields: usize,
    /// Most distinct project ids one operation may name (`--max-projects`).
    pub max_projects: usize,
}

/// Default of `--max-body-bytes`: 1 MiB.
pub const DEFAULT_MAX_BODY_BYTES: usize = 1024 * 1024;
/// Default of `--body-read-timeout`.
pub const DEFAULT_BODY_READ_TIMEOUT: Duration = Duration::from_secs(10);
/// Default of `--max-batch`.
pub const DEFAULT_MAX_BATCH: usize = 16;
/// Default of `--max-query-length`: 64 KiB (the standard introspection query is about 2 KiB).
pub const DEFAULT_MAX_QUERY_LENGTH: usize = 64 * 1024;
/// Default of `--max-tokens` (Apollo Router's parser default; introspection needs about 300).
pub const DEFAULT_MAX_TOKENS: usize = 15_000;
/// Default of `--max-depth` (the standard introspection query is 15 levels deep).
pub const DEFAULT_MAX_DEPTH: usize = 20;
/// Default of `--max-complexity` (the standard introspection query selects about 230 fields).
pub const DEFAULT_MAX_COMPLEXITY: usize = 1_000;
/// Default of `--max-upstream-fields`.
pub const DEFAULT_MAX_UPSTREAM_FIELDS: usize = 50;
/// Default of `--max-projects`.
pub const DEFAULT_MAX_PROJECTS: usize = 50;

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_body_bytes: DEFAULT_MAX_BODY_BYTES,
            body_read_timeout: DEFAULT_BODY_READ_TIMEOUT,
            max_batch: DEFAULT_MAX_BATCH,
            max_query_length: DEFAULT_MAX_QUERY_LENGTH,
            max_tokens: DEFAULT_MAX_TOKENS,
            max_depth: DEFAULT_MAX_DEPTH,
            max_complexity: DEFAULT_MAX_COMPLEXITY,
            max_upstream_fields: DEFAULT_MAX_UPSTREAM_FIELDS,
            max_projects: DEFAULT_MAX_PROJECTS,
        }
    }
}

/// A `LIMIT_EXCEEDED` error naming the flag (`limit`, e.g. `max-tokens`) and its value.
pub fn limit_error(limit: &str, max: usize, message: impl std::fmt::Display) -> ServerError {
    let mut err = ServerError::new(format!("{message} (limit {limit} = {max})"), None);
    let mut ext = ErrorExtensionValues::default();
    ext.set("code", ErrorCode::LimitExceeded.as_str());
    ext.set("limit", limit);
    ext.set("max", max as u64);
    err.extensions = Some(ext);
    err
}

/// What the cheap pre-parse scan found, or where it stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ScanOutcome {
    /// Within both bounds.
    Ok {
        /// Lexical tokens seen.
        tokens: usize,
        /// Deepest `{`/`[`/`(` nesting seen.
        nesting: usize,
    },
    /// More than `max_tokens` tokens (the scan stopped there).
    TooManyTokens,
    /// Brackets nested deeper than `max_nesting` (the scan stopped there).
    TooDeep,
}

/// Counts GraphQL tokens and bracket nesting in one linear pass, without allocating, and
/// stops as soon as a bound is passed. It follows the spec's lexical grammar closely enough
/// to count (names, numbers, strings, block strings, punctuators; whitespace, commas and
/// comments are ignored); anything it does not know counts as one token and is left for
/// the parser to reject. Runs before the parser so that hostile documents cannot make the
/// recursive parser use unbounded time or stack.
pub fn scan(query: &str, max_tokens: usize, max_nesting: usize) -> ScanOutcome {
    let b = query.as_bytes();
    let (mut i, mut tokens, mut nesting, mut deepest) = (0usize, 0usize, 0usize, 0usize);
    while i < b.len() {
        let c = b[i];
        match c {
            b' ' | b'\t' | b'\n' | b'\r' | b',' => {
                i += 1;
                continue;
            }
            b'#' => {
                while i < b.len() && b[i] != b'\n' && b[i] != b'\r' {
                    i += 1;
                }
                continue;
            }
            _ => {}
        }
        tokens += 1;
        if tokens > max_tokens {
            return ScanOutcome::TooManyTokens;
        }
        match c {
            b'{' | b'[' | b'(' => {
                nesting += 1;
                deepest = deepest.max(nesting);
                if nesting > max_nesting {
                    return ScanOutcome::TooDeep;
                }
                i += 1;
            }
            b'}' | b']' | b')' => {
                nesting = nesting.saturating_sub(1);
                i += 1;
            }
            b'"' if b[i..].starts_with(b"\"\"\"") => {
                i += 3;
                while i < b.len() && !b[i..].starts_with(b"\"\"\"") {
                    i += if b[i..].starts_with(b"\\\"\"\"") { 4 } else { 1 };
                }
                i += 3;
            }
            b'"' => {
                i += 1;
                while i < b.len() && b[i] != b'"' && b[i] != b'\n' && b[i] != b'\r' {
                    i += if b[i] == b'\\' { 2 } else { 1 };
                }
                i += 1;
            }
            b'.' if b[i..].starts_with(b"...") => i += 3,
            c if c == b'_' || c.is_ascii_alphanumeric() || c == b'-' => {
                // A name or a number: a run of name/number characters.
                i += 1;
                while i < b.len()
                    && (b[i] == b'_' || b[i].is_ascii_alphanumeric() || matches!(b[i], b'.' | b'+' | b'-'))
                    && !b[i..].starts_with(b"...")
                {
                    i += 1;
                }
            }
            // Punctuators and anything else: one token per character (UTF-8 continuation
            // bytes included, which only overcounts garbage the parser rejects anyway).
            _ => i += 1,
        }
    }
    ScanOutcome::Ok { tokens, nesting: deepest }
}

/// Checks a query document's length, tokens and bracket nesting before it is parsed.
pub fn check_document(query: &str, limits: &Limits) -> Result<(), ServerError> {
    if query.len() > limits.max_query_length {
        return Err(limit_error(
            "max-query-length",
            limits.max_query_length,
            format_args!("the query document is {} bytes long", query.len()),
        ));
    }
    match scan(query, limits.max_tokens, nesting_bound(limits.max_depth)) {
        ScanOutcome::Ok { .. } => Ok(()),
        ScanOutcome::TooManyTokens => {
            Err(limit_error("max-tokens", limits.max_tokens, "the query document has too many tokens"))
        }
        ScanOutcome::TooDeep => {
            Err(limit_error("max-depth", limits.max_depth, "the query document is nested too deeply"))
        }
    }
}

/// Bracket nesting allowed before parsing: field depth plus room for argument values
/// (`(`, `[`, `{` inside arguments), so that no document within `max_depth` is refused.
pub fn nesting_bound(max_depth: usize) -> usize {
    max_depth.saturating_mul(2).saturating_add(8)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tokens(q: &str) -> usize {
        match scan(q, usize::MAX, usize::MAX) {
            ScanOutcome::Ok { tokens, .. } => tokens,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn counts_tokens_like_the_spec() {
        assert_eq!(tokens("{ a }"), 3);
        assert_eq!(tokens("query Q($p: ID! = \"x y\") { a: b(c: -1.5e3, d: [1, 2]) ...F }"), 29);
        assert_eq!(tokens("# only a comment\n,,,"), 0);
        assert_eq!(tokens("{ a(s: \"\"\"block \\\"\"\" \"quoted\" \"\"\") }"), 8);
        assert_eq!(tokens("{ a(s: \"esc \\\" still\") }"), 8);
        assert_eq!(tokens("...on"), 2);
    }

    #[test]
    fn stops_at_the_bounds() {
        assert_eq!(scan(&"{a".repeat(100), 10_000, 50), ScanOutcome::TooDeep);
        assert_eq!(scan(&"a ".repeat(101), 100, 50), ScanOutcome::TooManyTokens);
        assert_eq!(scan("[[[]]]", 100, 3), ScanOutcome::Ok { tokens: 6, nesting: 3 });
    }

    #[test]
    fn unterminated_strings_and_odd_bytes_do_not_panic() {
        for q in ["\"", "\"\"\"", "\"\\", "{ a(s: \"\"\"x\\", "é😀\u{0}", "...", "..", "-", "\"\"\"\\\"\"\""]
        {
            let _ = scan(q, 100, 100);
        }
    }

    #[test]
    fn errors_name_the_limit() {
        let limits = Limits { max_tokens: 2, ..Limits::default() };
        let e = check_document("{ a b }", &limits).expect_err("too many tokens");
        let ext = e.extensions.expect("extensions");
        assert_eq!(ext.get("code"), Some(&async_graphql::Value::from("LIMIT_EXCEEDED")));
        assert_eq!(ext.get("limit"), Some(&async_graphql::Value::from("max-tokens")));
        assert!(e.message.contains("max-tokens = 2"), "{}", e.message);
    }
}
