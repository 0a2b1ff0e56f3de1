//! The project-id validator and the URL builder: whatever a client sends, an accepted id is
//! `^[A-Za-z0-9_-]{1,64}$` and becomes exactly one path segment of an URL on the configured
//! host, with nothing else changed.
#![no_main]

use std::sync::OnceLock;

use dli_graphql::{config::UpstreamOptions, project_id::ProjectId, upstream::Client};
use libfuzzer_sys::fuzz_target;

fn client() -> &'static Client {
    static CLIENT: OnceLock<Client> = OnceLock::new();
    CLIENT.get_or_init(|| {
        let base = reqwest::Url::parse("https://dli.example-region.myhuaweicloud.com/base/").expect("url");
        Client::new(base, &UpstreamOptions::default()).expect("client")
    })
}

fuzz_target!(|data: &[u8]| {
    let Ok(raw) = std::str::from_utf8(data) else { return };
    let valid = !raw.is_empty()
        && raw.len() <= 64
        && raw.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
    match ProjectId::parse(raw) {
        Err(_) => assert!(!valid, "rejected a valid id: {raw:?}"),
        Ok(id) => {
            assert!(valid, "accepted an invalid id: {raw:?}");
            assert_eq!(id.as_str(), raw);
            let url = client().list_url(&id);
            assert_eq!(url.host_str(), Some("dli.example-region.myhuaweicloud.com"));
            assert_eq!(url.scheme(), "https");
            assert_eq!(url.query(), None);
            assert_eq!(url.fragment(), None);
            let segments: Vec<&str> = url.path_segments().expect("a base URL").collect();
            assert_eq!(segments, ["base", "v2.0", raw, "datasource-connection"]);
        }
    }
});
