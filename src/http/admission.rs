//! Who gets a request executed right now: per-caller rate limits (`--client-rate`) and load
//! shedding (`--max-concurrent-requests`, `--queue-timeout`). Both answer before anything
//! runs or goes upstream, with a `Retry-After` the client can honour. Only GraphQL requests
//! pass through here; `/healthz` and `/metrics` never do.

use std::{
    net::{IpAddr, SocketAddr},
    num::NonZeroU32,
    sync::Arc,
    time::Duration,
};

use axum::{
    extract::ConnectInfo,
    http::{HeaderMap, StatusCode},
    response::Response,
};
use governor::{DefaultDirectRateLimiter, Quota, clock::Clock as _};
use ipnet::IpNet;
use lru::LruCache;
use parking_lot::Mutex;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use super::encoding::Format;
use crate::{
    config::FrontDoorOptions,
    error::{ErrorCode, http_retry_error},
    observability::metrics::Metrics,
};

/// Callers whose rate-limit state is kept; the least recently seen are forgotten first.
pub const MAX_TRACKED_CALLERS: usize = 65_536;

/// Whom a rate limit counts: an accepted API key (by its SHA-256, never the key itself), or
/// the client's IP address.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Caller {
    /// The digest of an API key the access policy accepted.
    ApiKey([u8; 32]),
    /// The client address (from `X-Forwarded-For` only behind a trusted proxy).
    Ip(IpAddr),
}

/// Execution slots, waited for up to `--queue-timeout`.
pub struct LoadShed {
    slots: Arc<Semaphore>,
    queue_timeout: Duration,
    metrics: Metrics,
}

impl LoadShed {
    /// Slots for `--max-concurrent-requests`.
    pub fn new(options: &FrontDoorOptions, metrics: Metrics) -> Self {
        Self {
            slots: Arc::new(Semaphore::new(options.max_concurrent_requests)),
            queue_timeout: options.queue_timeout,
            metrics,
        }
    }

    /// A slot held until dropped, or HTTP 503 `OVERLOADED` when none frees up in time.
    pub async fn slot(&self, format: Format) -> Result<OwnedSemaphorePermit, Response> {
        match tokio::time::timeout(self.queue_timeout, self.slots.clone().acquire_owned()).await {
            Ok(Ok(slot)) => Ok(slot),
            _ => {
                self.metrics.request_shed();
                tracing::info!("request shed: no execution slot within --queue-timeout");
                Err(http_retry_error(
                    StatusCode::SERVICE_UNAVAILABLE,
                    ErrorCode::Overloaded,
                    "the server is at its limit of requests in execution; retry later",
                    Duration::from_secs(1),
                    format.content_type(),
                ))
            }
        }
    }
}

/// Per-caller GCRA limits (governor), one limiter per caller in a bounded LRU.
pub struct RateLimits {
    quota: Quota,
    limiters: Mutex<LruCache<Caller, Arc<DefaultDirectRateLimiter>>>,
    trusted_proxies: Vec<IpNet>,
    metrics: Metrics,
}

impl RateLimits {
    /// The limits of `--client-rate` and `--client-burst`; `None` when no rate is set.
    pub fn new(options: &FrontDoorOptions, metrics: Metrics) -> Option<Self> {
        let (rate, burst) = options.client_limit()?;
        let quota = Quota::with_period(rate.interval().max(Duration::from_nanos(1)))?
            .allow_burst(NonZeroU32::new(burst).unwrap_or(NonZeroU32::MIN));
        let cap = std::num::NonZeroUsize::new(MAX_TRACKED_CALLERS).unwrap_or(std::num::NonZeroUsize::MIN);
        Some(Self {
            quota,
            limiters: Mutex::new(LruCache::new(cap)),
            trusted_proxies: options.trusted_proxies.clone(),
            metrics,
        })
    }

    /// `None` lets the request through; else the answer: HTTP 429 `RATE_LIMITED` with
    /// `Retry-After`.
    pub fn check(&self, caller: Caller, format: Format) -> Option<Response> {
        let limiter = {
            let mut limiters = self.limiters.lock();
            limiters.get_or_insert(caller, || Arc::new(DefaultDirectRateLimiter::direct(self.quota))).clone()
        };
        match limiter.check() {
            Ok(()) => None,
            Err(not_until) => {
                self.metrics.request_rate_limited();
                let wait = not_until.wait_time_from(limiter.clock().now());
                tracing::info!(
                    wait_ms = wait.as_millis() as u64,
                    "request refused: caller over --client-rate"
                );
                Some(http_retry_error(
                    StatusCode::TOO_MANY_REQUESTS,
                    ErrorCode::RateLimited,
                    "too many requests from this caller; retry later",
                    wait,
                    format.content_type(),
                ))
            }
        }
    }

    /// The client's address: the peer's, or, when the peer is a trusted proxy, the nearest
    /// untrusted address of `X-Forwarded-For` (read from the right, as each proxy appends).
    pub fn client_ip(&self, peer: Option<&ConnectInfo<SocketAddr>>, headers: &HeaderMap) -> Option<IpAddr> {
        let peer = peer.map(|ConnectInfo(a)| a.ip())?;
        if !self.trusted(peer) {
            return Some(peer);
        }
        let mut client = peer;
        let forwarded = headers.get_all("x-forwarded-for").iter().filter_map(|v| v.to_str().ok());
        let hops: Vec<&str> = forwarded.flat_map(|v| v.split(',')).collect();
        for hop in hops.iter().rev() {
            let Ok(ip) = hop.trim().parse::<IpAddr>() else { break };
            client = ip;
            if !self.trusted(ip) {
                break;
            }
        }
        Some(client)
    }

    fn trusted(&self, ip: IpAddr) -> bool {
        self.trusted_proxies.iter().any(|net| net.contains(&ip))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn limits(args: &[&str]) -> RateLimits {
        let c = crate::config::Config::from_args(args).expect("parses");
        RateLimits::new(&c.front_door, Metrics::new()).expect("rate set")
    }

    fn xff(v: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert("x-forwarded-for", HeaderValue::from_str(v).expect("value"));
        h
    }

    #[test]
    fn forwarded_addresses_count_only_behind_trusted_proxies() {
        let peer = ConnectInfo(SocketAddr::from(([10, 0, 0, 5], 4000)));
        let open = limits(&["--client-rate", "1/s"]);
        assert_eq!(open.client_ip(Some(&peer), &xff("1.2.3.4")), Some(IpAddr::from([10, 0, 0, 5])));
        let behind = limits(&["--client-rate", "1/s", "--trusted-proxies", "10.0.0.0/8"]);
        assert_eq!(behind.client_ip(Some(&peer), &xff("1.2.3.4")), Some(IpAddr::from([1, 2, 3, 4])));
        // A client cannot choose its address by prepending to the header.
        assert_eq!(
            behind.client_ip(Some(&peer), &xff("9.9.9.9, 1.2.3.4, 10.0.0.7")),
            Some(IpAddr::from([1, 2, 3, 4]))
        );
        assert_eq!(behind.client_ip(Some(&peer), &xff("garbage")), Some(IpAddr::from([10, 0, 0, 5])));
        assert_eq!(behind.client_ip(Some(&peer), &HeaderMap::new()), Some(IpAddr::from([10, 0, 0, 5])));
    }

    #[test]
    fn the_burst_is_allowed_then_refused_with_a_retry_after() {
        let l = limits(&["--client-rate", "1/min", "--client-burst", "2"]);
        let a = Caller::Ip(IpAddr::from([1, 1, 1, 1]));
        assert!(l.check(a, Format::Json).is_none());
        assert!(l.check(a, Format::Json).is_none());
        let refused = l.check(a, Format::Json).expect("over the burst");
        assert_eq!(refused.status(), StatusCode::TOO_MANY_REQUESTS);
        let secs: u64 =
            refused.headers()["retry-after"].to_str().ok().and_then(|s| s.parse().ok()).unwrap_or(0);
        assert!((1..=60).contains(&secs), "{secs}");
        assert!(l.check(Caller::Ip(IpAddr::from([2, 2, 2, 2])), Format::Json).is_none());
    }
}
