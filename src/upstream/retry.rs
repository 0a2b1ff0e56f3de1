//! Retries, the call budget, the concurrency cap and the circuit breaker around each
//! upstream list call.
//!
//! One call has one deadline (`--upstream-timeout`), set when it starts: waiting for a slot
//! in the call budget ([`super::rate_limit`], at most until half the deadline is left), for a
//! concurrency permit, every attempt and
//! every backoff sleep all fit inside it, so a client never waits longer than configured. Each attempt is a fresh call of the closure the
//! client passes in, which authenticates the request afresh.

use std::{future::Future, sync::Arc, time::Duration};

use rand::Rng as _;
use tokio::{
    sync::Semaphore,
    time::{Instant, sleep, timeout_at},
};

use super::{
    auth::CredentialIdentity,
    breaker::{Breaker, BreakerState, failure},
    rate_limit::RateLimiter,
};
pub use crate::config::ResilienceOptions;
use crate::{
    error::UpstreamError,
    observability::metrics::{CircuitState, Metrics},
};

/// The `Unavailable` kind of a failed connect (the only transport error that is retried).
pub(crate) const CONNECT_FAILED: &str = "connect failed";

/// The shared state: one semaphore and one breaker per client (i.e. per upstream).
#[derive(Debug)]
pub(crate) struct Resilience {
    opts: ResilienceOptions,
    permits: Semaphore,
    breaker: Breaker,
    /// The `--upstream-rate` budget, when one is set.
    budget: Option<RateLimiter>,
}

impl Resilience {
    pub(crate) fn new(opts: ResilienceOptions, budget: Option<RateLimiter>) -> Arc<Self> {
        Arc::new(Self {
            permits: Semaphore::new(opts.max_concurrency.max(1)),
            breaker: Breaker::new(opts.breaker_threshold, opts.breaker_cooldown),
            budget,
            opts,
        })
    }

    /// The breaker's state as the circuit gauge shows it.
    pub(crate) fn circuit_state(&self) -> CircuitState {
        match self.breaker.state() {
            BreakerState::Closed { .. } => CircuitState::Closed,
            BreakerState::HalfOpen { .. } => CircuitState::HalfOpen,
            BreakerState::Open { .. } => CircuitState::Open,
        }
    }
}

/// The longest single backoff, whatever the attempt number.
const MAX_BACKOFF: Duration = Duration::from_secs(5);

/// How long to wait before retry number `retry` (1 for the second attempt) after `err`, or
/// `None` when it must not be retried: not a retryable failure, attempts used up, a
/// `Retry-After` above the cap, or no time left before the deadline. `jitter` in `[0, 1]`
/// picks the point in the full-jitter window.
pub fn retry_delay(
    err: &UpstreamError,
    retry: usize,
    opts: &ResilienceOptions,
    remaining: Duration,
    jitter: f64,
) -> Option<Duration> {
    if retry >= opts.max_attempts {
        return None;
    }
    let delay = match err {
        UpstreamError::Status { status: 429, retry_after: Some(secs), .. } => {
            let asked = Duration::from_secs(*secs);
            if asked > opts.retry_after_cap {
                return None;
            }
            asked
        }
        UpstreamError::Status { status: 429 | 502 | 503 | 504, .. } => {
            backoff(retry, opts.retry_base, jitter)
        }
        UpstreamError::Unavailable(kind) if kind == CONNECT_FAILED => backoff(retry, opts.retry_base, jitter),
        _ => return None,
    };
    (delay < remaining).then_some(delay)
}

fn backoff(retry: usize, base: Duration, jitter: f64) -> Duration {
    let exp = u32::try_from(retry.saturating_sub(1)).unwrap_or(u32::MAX).min(16);
    let window = base.saturating_mul(1 << exp).min(MAX_BACKOFF);
    window.mul_f64(jitter.clamp(0.0, 1.0))
}

impl Resilience {
    /// Sets the circuit-state gauge (cheap; called after every breaker interaction, so the
    /// gauge follows every transition).
    fn report_circuit_state(&self, metrics: &Metrics) {
        metrics.circuit_state(self.circuit_state());
    }

    /// Runs `attempt` with retries, `identity`'s call budget, the concurrency cap and the
    /// breaker, all inside one deadline of `timeout`; retries are counted into `metrics`.
    pub(crate) async fn run<T, F, Fut>(
        &self,
        timeout: Duration,
        metrics: &Metrics,
        identity: &CredentialIdentity,
        mut attempt_once: F,
    ) -> Result<T, UpstreamError>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T, UpstreamError>>,
    {
        let deadline = Instant::now() + timeout;
        let mut attempt = 1usize;
        let mut last_error: Option<UpstreamError> = None;
        loop {
            let acquired = self.breaker.try_acquire();
            self.report_circuit_state(metrics);
            let permit = match acquired {
                Ok(p) => p,
                // After our own failed attempts the real error says more than "circuit open".
                Err(retry_in) => return Err(last_error.unwrap_or(UpstreamError::CircuitOpen(retry_in))),
            };
            // Right before the attempt: every HTTP request to DLI spends one slot, retries too.
            // A slot is waited for only while half the deadline stays for DLI to answer: a
            // call that would time out in flight spends budget and trips the breaker for nothing.
            if let Some(budget) = &self.budget {
                let remaining = deadline.saturating_duration_since(Instant::now());
                if let Err(over) = budget.acquire(identity, remaining.saturating_sub(timeout / 2)).await {
                    return Err(last_error.unwrap_or(over));
                }
            }
            let Ok(Ok(slot)) = timeout_at(deadline, self.permits.acquire()).await else {
                tracing::warn!(
                    in_flight = self.opts.max_concurrency,
                    "no upstream concurrency slot freed up before the deadline"
                );
                return Err(UpstreamError::Timeout(timeout));
            };
            let result =
                timeout_at(deadline, attempt_once()).await.unwrap_or(Err(UpstreamError::Timeout(timeout)));
            drop(slot);
            match failure(&result) {
                Some(failed) => permit.record(failed),
                // DLI was not asked (e.g. the IAM token could not be had): no verdict.
                None => drop(permit),
            }
            self.report_circuit_state(metrics);
            let err = match result {
                Ok(value) => return Ok(value),
                Err(e) => e,
            };
            let remaining = deadline.saturating_duration_since(Instant::now());
            let Some(delay) = retry_delay(&err, attempt, &self.opts, remaining, rand::rng().random::<f64>())
            else {
                return Err(err);
            };
            tracing::info!(attempt, delay_ms = delay.as_millis() as u64, error = %err, "retrying upstream call");
            metrics.upstream_retry();
            sleep(delay).await;
            last_error = Some(err);
            attempt += 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn status(status: u16, retry_after: Option<u64>) -> UpstreamError {
        UpstreamError::Status { status, code: None, message: None, retry_after }
    }

    const LOTS: Duration = Duration::from_secs(60);

    #[test]
    fn retries_only_connect_errors_502_503_504_and_429() {
        let o = ResilienceOptions::default();
        for s in [502, 503, 504, 429] {
            assert!(retry_delay(&status(s, None), 1, &o, LOTS, 0.5).is_some(), "{s}");
        }
        for s in [400, 401, 403, 404, 409, 500, 501] {
            assert!(retry_delay(&status(s, None), 1, &o, LOTS, 0.5).is_none(), "{s}");
        }
        assert!(retry_delay(&UpstreamError::Unavailable(CONNECT_FAILED.into()), 1, &o, LOTS, 0.5).is_some());
        assert!(
            retry_delay(&UpstreamError::Unavailable("body read failed".into()), 1, &o, LOTS, 0.5).is_none()
        );
        assert!(retry_delay(&UpstreamError::Timeout(LOTS), 1, &o, LOTS, 0.5).is_none());
        assert!(retry_delay(&UpstreamError::BadResponse("x".into()), 1, &o, LOTS, 0.5).is_none());
        assert!(retry_delay(&UpstreamError::NotSuccess { message: None }, 1, &o, LOTS, 0.5).is_none());
    }

    #[test]
    fn stops_after_max_attempts() {
        let o = ResilienceOptions { max_attempts: 3, ..ResilienceOptions::default() };
        assert!(retry_delay(&status(503, None), 2, &o, LOTS, 0.5).is_some());
        assert!(retry_delay(&status(503, None), 3, &o, LOTS, 0.5).is_none());
        let once = ResilienceOptions { max_attempts: 1, ..o };
        assert!(retry_delay(&status(503, None), 1, &once, LOTS, 0.5).is_none());
    }

    #[test]
    fn backoff_is_exponential_with_full_jitter() {
        let o = ResilienceOptions { retry_base: Duration::from_millis(100), ..ResilienceOptions::default() };
        let o = ResilienceOptions { max_attempts: 10, ..o };
        let at = |retry, jitter| retry_delay(&status(503, None), retry, &o, LOTS, jitter).expect("retried");
        assert_eq!(at(1, 1.0), Duration::from_millis(100));
        assert_eq!(at(2, 1.0), Duration::from_millis(200));
        assert_eq!(at(3, 1.0), Duration::from_millis(400));
        assert_eq!(at(3, 0.0), Duration::ZERO);
        assert_eq!(at(3, 0.5), Duration::from_millis(200));
        assert_eq!(at(9, 1.0), MAX_BACKOFF);
    }

    #[test]
    fn retry_after_is_honoured_up_to_the_cap() {
        let o = ResilienceOptions { retry_after_cap: Duration::from_secs(2), ..ResilienceOptions::default() };
        assert_eq!(retry_delay(&status(429, Some(2)), 1, &o, LOTS, 0.0), Some(Duration::from_secs(2)));
        assert_eq!(retry_delay(&status(429, Some(0)), 1, &o, LOTS, 0.9), Some(Duration::ZERO));
        assert_eq!(retry_delay(&status(429, Some(3)), 1, &o, LOTS, 0.0), None);
    }

    #[test]
    fn never_sleeps_past_the_deadline() {
        let o = ResilienceOptions::default();
        assert_eq!(retry_delay(&status(429, Some(1)), 1, &o, Duration::from_millis(999), 0.0), None);
        assert_eq!(retry_delay(&status(503, None), 1, &o, Duration::from_millis(50), 1.0), None);
        assert!(retry_delay(&status(503, None), 1, &o, Duration::from_millis(50), 0.1).is_some());
    }
}
