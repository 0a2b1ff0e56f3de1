//! Property tests (proptest) for the pure edges that take untrusted input: the project id
//! and URL builder, the upstream parser, the pre-parse scan and the retry planner. They run
//! with `cargo test` everywhere; the `fuzz/` targets explore the same code for longer.

use std::time::Duration;

use dli_graphql::{
    config::UpstreamOptions,
    error::UpstreamError,
    graphql::extensions::limits::{ScanOutcome, scan},
    project_id::ProjectId,
    upstream::{
        Client,
        client::parse_list,
        retry::{ResilienceOptions, retry_delay},
    },
};
use proptest::prelude::*;

fn client() -> &'static Client {
    static CLIENT: std::sync::OnceLock<Client> = std::sync::OnceLock::new();
    CLIENT.get_or_init(|| {
        let base = reqwest::Url::parse("https://dli.cn-north-4.myhuaweicloud.com/").expect("url");
        Client::new(base, &UpstreamOptions::default()).expect("client")
    })
}

/// Strings biased towards the characters that matter in URLs.
fn hostile_string() -> impl Strategy<Value = String> {
    prop::collection::vec(
        prop_oneof![
            Just('/'),
            Just('.'),
            Just('%'),
            Just('?'),
            Just('#'),
            Just('\\'),
            Just(':'),
            Just('@'),
            Just(' '),
            Just('\n'),
            Just('\0'),
            Just('é'),
            Just('_'),
            Just('-'),
            prop::char::range('a', 'z'),
            prop::char::range('0', '9'),
            any::<char>(),
        ],
        0..80,
    )
    .prop_map(|cs| cs.into_iter().collect())
}

/// Ids from the accepted alphabet, 1 to 70 long (so some are too long).
fn valid_id() -> impl Strategy<Value = String> {
    const ALPHABET: &[u8] = b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-";
    prop::collection::vec(prop::sample::select(ALPHABET), 1..70)
        .prop_map(|bytes| bytes.into_iter().map(char::from).collect())
}

/// Near-miss JSON: the envelope's keys with values of every type, in any order and nesting.
fn json_shaped() -> impl Strategy<Value = String> {
    #[rustfmt::skip]
    const PIECES: &[&str] = &[
        "{", "}", "[", "]", ",", ":", "\"connections\"", "\"is_success\"", "\"message\"", "\"count\"",
        "\"process\"", "\"create_time\"", "\"queue_list\"", "\"available_queue_info\"", "\"name\"",
        "\"state\"", "true", "false", "null", "0", "-1", "1.5e12", "1e400", "\"12\"", "\"x\"", "\"\\u0000\"",
    ];
    prop::collection::vec(prop::sample::select(PIECES), 0..40).prop_map(|p| format!("{{{}", p.concat()))
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn any_accepted_project_id_is_exactly_one_path_segment(raw in prop_oneof![
        hostile_string(),
        valid_id(),
        prop::collection::vec(any::<char>(), 0..100).prop_map(String::from_iter),
    ]) {
        let client = client();
        if let Ok(id) = ProjectId::parse(&raw) {
            let url = client.list_url(&id);
            prop_assert_eq!(url.host_str(), Some("dli.cn-north-4.myhuaweicloud.com"));
            prop_assert_eq!(url.query(), None);
            prop_assert_eq!(url.fragment(), None);
            let segments: Vec<&str> = url.path_segments().expect("base").collect();
            prop_assert_eq!(segments, vec!["v2.0", raw.as_str(), "datasource-connection"]);
        } else {
            prop_assert!(raw.is_empty() || raw.len() > 64
                || !raw.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-'));
        }
    }

    #[test]
    fn the_upstream_parser_never_panics_on_arbitrary_bytes(body in prop::collection::vec(any::<u8>(), 0..512)) {
        match parse_list(&body) {
            Ok(list) => prop_assert!(list.connections.is_some()),
            Err(e) => {
                let expected = matches!(e, UpstreamError::BadResponse(_) | UpstreamError::NotSuccess { .. });
                prop_assert!(expected, "unexpected error kind: {:?}", e);
            }
        }
    }

    #[test]
    fn the_upstream_parser_never_panics_on_json_shaped_input(
        body in json_shaped()
    ) {
        let _ = parse_list(body.as_bytes());
    }

    #[test]
    fn the_pre_parse_scan_never_panics_and_counts_at_most_one_token_per_byte(q in any::<String>()) {
        match scan(&q, usize::MAX, usize::MAX) {
            ScanOutcome::Ok { tokens, nesting } => {
                prop_assert!(tokens <= q.len());
                prop_assert!(nesting <= q.len());
            }
            other => prop_assert!(false, "no bound can be passed: {:?}", other),
        }
    }

    #[test]
    fn retries_never_wait_past_the_deadline_or_the_caps(
        status in prop_oneof![Just(429u16), Just(502), Just(503), Just(504), 400u16..600],
        retry_after in proptest::option::of(0u64..120),
        retry in 1usize..6,
        remaining_ms in 0u64..20_000,
        jitter in 0.0f64..=1.0,
    ) {
        let opts = ResilienceOptions::default();
        let err = UpstreamError::Status { status, code: None, message: None, retry_after };
        let remaining = Duration::from_millis(remaining_ms);
        if let Some(d) = retry_delay(&err, retry, &opts, remaining, jitter) {
            prop_assert!(d < remaining);
            prop_assert!(retry < opts.max_attempts);
            prop_assert!(matches!(status, 429 | 502 | 503 | 504));
            prop_assert!(d <= opts.retry_after_cap.max(Duration::from_secs(5)));
        }
    }
}
