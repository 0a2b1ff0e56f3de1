//! A circuit breaker for the upstream: after a run of consecutive failures it fails calls
//! fast for a cool-down, then lets exactly one probe through; the probe's outcome closes or
//! re-opens it. Every state change is logged at `warn` (opening) or `info` (probing, closing).
//!
//! Failures are what say the upstream itself is unwell: connect errors, timeouts and 5xx.
//! Any other answer (2xx, 4xx, 429, a malformed body) shows it is reachable and answering.

use std::time::Duration;

use parking_lot::Mutex;

use tokio::time::Instant;

use crate::error::UpstreamError;

/// The breaker's state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BreakerState {
    /// Calls flow; `failures` consecutive failures so far.
    Closed {
        /// Consecutive failures.
        failures: usize,
    },
    /// Calls fail fast until `until`.
    Open {
        /// End of the cool-down.
        until: Instant,
    },
    /// The cool-down is over; one probe may go (or is in flight).
    HalfOpen {
        /// A probe is in flight.
        probing: bool,
    },
}

/// A circuit breaker shared by every call to one upstream.
#[derive(Debug)]
pub struct Breaker {
    threshold: usize,
    cooldown: Duration,
    state: Mutex<BreakerState>,
}

/// Permission for one upstream attempt. Report its outcome with [`Permit::record`]; a probe
/// dropped without an outcome (its request was cancelled) lets the next call probe instead.
#[derive(Debug)]
#[must_use = "record the attempt's outcome"]
pub struct Permit<'a> {
    breaker: &'a Breaker,
    probe: bool,
    recorded: bool,
}

/// Whether an attempt's outcome counts against DLI's health: `Some(true)` for a failure,
/// `Some(false)` for an answer, `None` when DLI was never asked (no credentials, an IAM
/// token failure, a refused project), which says nothing either way.
pub fn failure(result: &Result<impl Sized, UpstreamError>) -> Option<bool> {
    match result {
        Ok(_) => Some(false),
        Err(UpstreamError::Timeout(_) | UpstreamError::Unavailable(_)) => Some(true),
        Err(UpstreamError::Status { status, .. }) => Some(*status >= 500),
        Err(UpstreamError::BadResponse(_) | UpstreamError::NotSuccess { .. }) => Some(false),
        Err(_) => None,
    }
}

impl Breaker {
    /// A closed breaker that opens after `threshold` consecutive failures for `cooldown`.
    pub fn new(threshold: usize, cooldown: Duration) -> Self {
        Self {
            threshold: threshold.max(1),
            cooldown,
            state: Mutex::new(BreakerState::Closed { failures: 0 }),
        }
    }

    /// The current state.
    pub fn state(&self) -> BreakerState {
        *self.state.lock()
    }

    /// Lets an attempt through, or says how long the circuit stays open.
    pub fn try_acquire(&self) -> Result<Permit<'_>, Duration> {
        let mut state = self.state.lock();
        let now = Instant::now();
        let probe = match *state {
            BreakerState::Closed { .. } => false,
            BreakerState::Open { until } if now < until => return Err(until - now),
            BreakerState::Open { .. } | BreakerState::HalfOpen { probing: false } => {
                tracing::info!("upstream circuit breaker half-open: letting one probe request through");
                *state = BreakerState::HalfOpen { probing: true };
                true
            }
            // One probe at a time; the others keep failing fast meanwhile.
            BreakerState::HalfOpen { probing: true } => return Err(self.cooldown),
        };
        Ok(Permit { breaker: self, probe, recorded: false })
    }
}

impl Permit<'_> {
    /// Reports whether the attempt failed (see [`failure`]).
    pub fn record(mut self, failed: bool) {
        self.recorded = true;
        let b = self.breaker;
        let mut state = b.state.lock();
        match (*state, self.probe, failed) {
            (BreakerState::HalfOpen { .. }, true, false) => {
                tracing::info!("upstream circuit breaker closed: the probe request succeeded");
                *state = BreakerState::Closed { failures: 0 };
            }
            (BreakerState::HalfOpen { .. }, true, true) => {
                tracing::warn!(
                    cooldown_ms = b.cooldown.as_millis() as u64,
                    "upstream circuit breaker re-opened: the probe request failed"
                );
                *state = BreakerState::Open { until: Instant::now() + b.cooldown };
            }
            (BreakerState::Closed { .. }, _, false) => *state = BreakerState::Closed { failures: 0 },
            (BreakerState::Closed { failures }, _, true) => {
                let failures = failures + 1;
                *state = if failures >= b.threshold {
                    tracing::warn!(
                        failures,
                        cooldown_ms = b.cooldown.as_millis() as u64,
                        "upstream circuit breaker opened: failing calls fast for the cool-down"
                    );
                    BreakerState::Open { until: Instant::now() + b.cooldown }
                } else {
                    BreakerState::Closed { failures }
                };
            }
            // Attempts that started before the circuit opened change nothing.
            _ => {}
        }
    }
}

impl Drop for Permit<'_> {
    fn drop(&mut self) {
        if self.probe && !self.recorded {
            let mut state = self.breaker.state.lock();
            if *state == (BreakerState::HalfOpen { probing: true }) {
                *state = BreakerState::HalfOpen { probing: false };
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn opens_after_the_threshold_and_fails_fast_for_the_cooldown() {
        let b = Breaker::new(3, Duration::from_secs(10));
        for _ in 0..2 {
            b.try_acquire().expect("closed").record(true);
        }
        assert_eq!(b.state(), BreakerState::Closed { failures: 2 });
        b.try_acquire().expect("closed").record(true);
        assert!(matches!(b.state(), BreakerState::Open { .. }));
        let wait = b.try_acquire().expect_err("open");
        assert_eq!(wait, Duration::from_secs(10));
        tokio::time::advance(Duration::from_secs(4)).await;
        assert_eq!(b.try_acquire().expect_err("still open"), Duration::from_secs(6));
    }

    #[tokio::test(start_paused = true)]
    async fn a_success_resets_the_run_of_failures() {
        let b = Breaker::new(3, Duration::from_secs(10));
        b.try_acquire().expect("closed").record(true);
        b.try_acquire().expect("closed").record(true);
        b.try_acquire().expect("closed").record(false);
        b.try_acquire().expect("closed").record(true);
        assert_eq!(b.state(), BreakerState::Closed { failures: 1 });
    }

    #[tokio::test(start_paused = true)]
    async fn after_the_cooldown_one_probe_goes_and_its_outcome_decides() {
        let b = Breaker::new(1, Duration::from_secs(5));
        b.try_acquire().expect("closed").record(true);
        tokio::time::advance(Duration::from_secs(5)).await;
        let probe = b.try_acquire().expect("probe allowed");
        assert!(b.try_acquire().is_err(), "only one probe at a time");
        probe.record(true);
        assert!(matches!(b.state(), BreakerState::Open { .. }), "a failed probe re-opens");
        assert!(b.try_acquire().is_err());
        tokio::time::advance(Duration::from_secs(5)).await;
        b.try_acquire().expect("second probe").record(false);
        assert_eq!(b.state(), BreakerState::Closed { failures: 0 });
        b.try_acquire().expect("closed again").record(false);
    }

    #[tokio::test(start_paused = true)]
    async fn a_cancelled_probe_lets_the_next_call_probe() {
        let b = Breaker::new(1, Duration::from_secs(5));
        b.try_acquire().expect("closed").record(true);
        tokio::time::advance(Duration::from_secs(5)).await;
        drop(b.try_acquire().expect("probe"));
        assert_eq!(b.state(), BreakerState::HalfOpen { probing: false });
        b.try_acquire().expect("next probe").record(false);
        assert_eq!(b.state(), BreakerState::Closed { failures: 0 });
    }

    #[test]
    fn only_unreachability_timeouts_and_5xx_are_failures() {
        let status = |s| {
            Err::<(), _>(UpstreamError::Status { status: s, code: None, message: None, retry_after: None })
        };
        assert_eq!(failure(&status(500)), Some(true));
        assert_eq!(failure(&status(503)), Some(true));
        assert_eq!(failure(&status(429)), Some(false));
        assert_eq!(failure(&status(401)), Some(false));
        assert_eq!(failure(&Err::<(), _>(UpstreamError::Timeout(Duration::from_secs(1)))), Some(true));
        assert_eq!(failure(&Err::<(), _>(UpstreamError::Unavailable("connect failed".into()))), Some(true));
        assert_eq!(failure(&Err::<(), _>(UpstreamError::BadResponse("x".into()))), Some(false));
        assert_eq!(failure(&Ok::<(), UpstreamError>(())), Some(false));
        assert_eq!(failure(&Err::<(), _>(UpstreamError::NoCredentials)), None);
        assert_eq!(failure(&Err::<(), _>(UpstreamError::ProjectNotAllowed)), None);
    }
}
