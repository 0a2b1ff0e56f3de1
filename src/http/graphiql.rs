//! GraphiQL, served from files embedded in the binary: the page makes no request that
//! leaves the host (no CDN, no web fonts), so it works in closed networks.
//!
//! The third-party files in `assets/graphiql/` come from npm (`assets/update-graphiql.sh`
//! pins the versions). They are served under `/graphiql/{fingerprint}/`, where the
//! fingerprint is a hash of all of them, so browsers may cache them for a year and still
//! never run a stale mix after an upgrade.

use std::sync::LazyLock;

use axum::{
    extract::Path,
    http::{HeaderValue, StatusCode, header},
    response::{IntoResponse, Response},
};
use sha2::{Digest, Sha256};

/// Where the assets are mounted; the route is `/graphiql/{fingerprint}/{file}`.
pub const ASSET_ROUTE: &str = "/graphiql/{fingerprint}/{file}";

struct Asset {
    name: &'static str,
    content_type: &'static str,
    body: &'static [u8],
}

const JS: &str = "text/javascript; charset=utf-8";
const CSS: &str = "text/css; charset=utf-8";

static ASSETS: &[Asset] = &[
    Asset {
        name: "graphiql.min.js",
        content_type: JS,
        body: include_bytes!("../../assets/graphiql/graphiql.min.js"),
    },
    Asset {
        name: "graphiql.min.css",
        content_type: CSS,
        body: include_bytes!("../../assets/graphiql/graphiql.min.css"),
    },
    Asset {
        name: "react.production.min.js",
        content_type: JS,
        body: include_bytes!("../../assets/graphiql/react.production.min.js"),
    },
    Asset {
        name: "react-dom.production.min.js",
        content_type: JS,
        body: include_bytes!("../../assets/graphiql/react-dom.production.min.js"),
    },
    Asset {
        name: "dli-graphql.js",
        content_type: JS,
        body: include_bytes!("../../assets/graphiql/dli-graphql.js"),
    },
    Asset {
        name: "dli-graphql.css",
        content_type: CSS,
        body: include_bytes!("../../assets/graphiql/dli-graphql.css"),
    },
];

/// A hash of every embedded asset: changes whenever any of them does.
pub static FINGERPRINT: LazyLock<String> = LazyLock::new(|| {
    let mut h = Sha256::new();
    for a in ASSETS {
        h.update(a.name.as_bytes());
        h.update((a.body.len() as u64).to_le_bytes());
        h.update(a.body);
    }
    hex::encode(&h.finalize()[..6])
});

static PAGE: LazyLock<String> = LazyLock::new(|| {
    // Relative URLs: the page works at `/` and `/graphql`, and behind a path prefix.
    include_str!("../../assets/graphiql/index.html")
        .replace("{{ASSETS}}", &format!("graphiql/{}", *FINGERPRINT))
});

/// Only this server's own files, data: fonts and images, and fetches to this server.
const PAGE_CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline'; \
                        img-src 'self' data:; font-src 'self' data:; connect-src 'self'; \
                        base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

/// The GraphiQL page.
pub async fn page() -> Response {
    (
        [
            (header::CONTENT_TYPE, HeaderValue::from_static("text/html; charset=utf-8")),
            // Small, and it names the current asset fingerprint: always revalidate.
            (header::CACHE_CONTROL, HeaderValue::from_static("no-cache")),
            (header::CONTENT_SECURITY_POLICY, HeaderValue::from_static(PAGE_CSP)),
            (header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff")),
            (header::REFERRER_POLICY, HeaderValue::from_static("no-referrer")),
        ],
        PAGE.as_str(),
    )
        .into_response()
}

/// One embedded asset. A fingerprint other than the current one (a page from before an
/// upgrade) still gets the file, but without the long cache lifetime.
pub async fn asset(Path((fingerprint, file)): Path<(String, String)>) -> Response {
    let Some(asset) = ASSETS.iter().find(|a| a.name == file) else {
        return (StatusCode::NOT_FOUND, [(header::CACHE_CONTROL, "no-store")], "no such file")
            .into_response();
    };
    let cache = if fingerprint == *FINGERPRINT { "public, max-age=31536000, immutable" } else { "no-cache" };
    (
        [
            (header::CONTENT_TYPE, asset.content_type),
            (header::CACHE_CONTROL, cache),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        ],
        asset.body,
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The GraphiQL release embedded (see `assets/graphiql/VERSIONS`).
    const GRAPHIQL_VERSION: &str = "3.9.0";

    /// The React release GraphiQL runs on.
    const REACT_VERSION: &str = "18.3.1";

    #[test]
    fn the_page_loads_only_embedded_assets() {
        let srcs: Vec<&str> = PAGE
            .split(['"', '\''])
            .filter(|s| s.starts_with("graphiql/") || s.contains("://") || s.starts_with("//"))
            .collect();
        assert_eq!(srcs.len(), 6, "{srcs:?}");
        for s in srcs {
            let file =
                s.strip_prefix(&format!("graphiql/{}/", *FINGERPRINT)).unwrap_or_else(|| panic!("{s}"));
            assert!(ASSETS.iter().any(|a| a.name == file), "{file} is not embedded");
        }
    }

    #[test]
    fn vendored_files_are_the_pinned_releases() {
        let versions = include_str!("../../assets/graphiql/VERSIONS");
        assert!(versions.contains(&format!("graphiql {GRAPHIQL_VERSION}\n")), "{versions}");
        assert!(versions.contains(&format!("react {REACT_VERSION}\n")), "{versions}");
        let sums = include_str!("../../assets/graphiql/SHA256SUMS");
        for line in sums.lines() {
            let (sum, name) = line.split_once("  ").expect("sha256sum format");
            let asset = ASSETS.iter().find(|a| a.name == name).expect("listed file is embedded");
            assert_eq!(hex::encode(Sha256::digest(asset.body)), sum, "{name} differs from the npm release");
        }
    }
}
