//! `GET /healthz` (liveness), `GET /readyz` (readiness), `GET /metrics`, and the `dli-graphql healthcheck` probe that asks a
//! running server's `/healthz`, for container health checks on images without a shell or curl.

use std::{
    net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr},
    time::Duration,
};

use axum::{
    extract::State,
    http::header,
    response::{IntoResponse, Response},
};

use super::AppState;

/// Liveness: the process serves HTTP.
pub(crate) async fn healthz() -> impl IntoResponse {
    ([(header::CONTENT_TYPE, "application/json")], r#"{"status":"ok"}"#)
}

/// Readiness: the listener is up (this answer is proof), and with `--redis-url` either
/// Redis answers or the in-process fallback is on, so the replica always serves; the body
/// says which (`redis`: `up`, `fallback` or `off`) and the circuit breaker's state.
pub(crate) async fn readyz(State(state): State<AppState>) -> Response {
    let redis = match &state.fleet {
        None => "off",
        Some(store) if store.is_up() => "up",
        Some(_) => "fallback",
    };
    let body = serde_json::json!({
        "status": "ready",
        "redis": redis,
        "circuit": state.client.circuit_state().as_str(),
    });
    ([(header::CONTENT_TYPE, "application/json"), (header::CACHE_CONTROL, "no-store")], body.to_string())
        .into_response()
}

/// The Prometheus text exposition of this server's registry.
pub(crate) async fn metrics_text(State(state): State<AppState>) -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8"),
            (header::CACHE_CONTROL, "no-store"),
        ],
        state.metrics.render(),
    )
        .into_response()
}

/// How long the probe waits for the whole answer.
pub const TIMEOUT: Duration = Duration::from_secs(3);

/// The address to probe for a server listening on `listen`: a wildcard address (`0.0.0.0`,
/// `[::]`) is reached over loopback.
pub fn probe_addr(listen: SocketAddr) -> SocketAddr {
    let ip = match listen.ip() {
        IpAddr::V4(v4) if v4.is_unspecified() => IpAddr::V4(Ipv4Addr::LOCALHOST),
        IpAddr::V6(v6) if v6.is_unspecified() => IpAddr::V6(Ipv6Addr::LOCALHOST),
        ip => ip,
    };
    SocketAddr::new(ip, listen.port())
}

/// `Ok` when the server on `listen` answers `GET /healthz` with 200 and `"status":"ok"`.
pub async fn check(listen: SocketAddr) -> Result<(), String> {
    let url = format!("http://{}/healthz", probe_addr(listen));
    let client = reqwest::Client::builder()
        .timeout(TIMEOUT)
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .map_err(|e| format!("cannot build an HTTP client: {e}"))?;
    let resp = client.get(&url).send().await.map_err(|e| format!("{url}: {}", e.without_url()))?;
    let status = resp.status();
    let body = resp.text().await.map_err(|e| format!("{url}: {}", e.without_url()))?;
    let healthy = serde_json::from_str::<serde_json::Value>(&body).is_ok_and(|v| v["status"] == "ok");
    if status.is_success() && healthy { Ok(()) } else { Err(format!("{url} answered HTTP {status}")) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wildcard_listen_addresses_are_probed_on_loopback() {
        let p = |s: &str| probe_addr(s.parse().expect("addr")).to_string();
        assert_eq!(p("0.0.0.0:8080"), "127.0.0.1:8080");
        assert_eq!(p("[::]:8080"), "[::1]:8080");
        assert_eq!(p("127.0.0.2:9"), "127.0.0.2:9");
    }
}
