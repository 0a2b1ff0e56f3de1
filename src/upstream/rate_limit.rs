//! The call budget toward DLI (`--upstream-rate`, `--upstream-burst`), per credential
//! identity: one for the whole fleet in Redis, in-process when Redis is off or down.
//!
//! The bucket is GCRA (the generic cell rate algorithm): one number per identity, the
//! theoretical arrival time (TAT) of the next call. A call at `now` may go at
//! `max(TAT, now) + interval - burst * interval`; it reserves that slot and waits for it
//! when the slot comes before the caller's deadline, else it is refused with the wait as
//! `retryAfter`. Reserving (rather than polling for a token) keeps callers in order and
//! the rate exact. In Redis this runs as one Lua script on Redis' own clock, so replicas'
//! clocks do not matter.

use std::{collections::HashMap, time::Duration};

use parking_lot::Mutex;
use redis::Script;
use tokio::time::Instant;

use super::{auth::CredentialIdentity, shared_state::FleetStore};
use crate::{config::Rate, error::UpstreamError, observability::metrics::Metrics};

/// KEYS: bucket. ARGV: interval µs, burst, longest wait µs.
/// Reply: {1, wait µs} when the slot is reserved, {0, wait µs} when refused.
const GCRA: &str = r"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local interval = tonumber(ARGV[1])
local tat = tonumber(redis.call('GET', KEYS[1]) or 0) or 0
if tat < now then tat = now end
local next_tat = tat + interval
local wait = next_tat - interval * tonumber(ARGV[2]) - now
if wait < 0 then wait = 0 end
if wait > tonumber(ARGV[3]) then return {0, wait} end
redis.call('SET', KEYS[1], string.format('%.0f', next_tat), 'PX', math.ceil((next_tat - now) / 1000) + 1000)
return {1, wait}
";

/// In-process buckets above this many identities drop the idle ones.
const LOCAL_PRUNE_AT: usize = 4096;

/// The call budget of one client.
pub struct RateLimiter {
    interval: Duration,
    burst: u32,
    store: Option<FleetStore>,
    script: Script,
    local: Mutex<HashMap<CredentialIdentity, Instant>>,
    metrics: Metrics,
}

impl std::fmt::Debug for RateLimiter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RateLimiter").field("interval", &self.interval).field("burst", &self.burst).finish()
    }
}

/// What the bucket said.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Decision {
    /// Reserved: go after this wait.
    Go(Duration),
    /// Refused: the next slot is this far away.
    Refused(Duration),
}

impl RateLimiter {
    /// `rate` with `burst` per identity, in `store` when given (and up).
    pub fn new(rate: Rate, burst: u32, store: Option<FleetStore>, metrics: Metrics) -> Self {
        Self {
            interval: rate.interval(),
            burst: burst.max(1),
            store,
            script: Script::new(GCRA),
            local: Mutex::default(),
            metrics,
        }
    }

    /// Waits for a slot in `identity`'s budget that comes within `max_wait`, or fails with
    /// `OverBudget` (nothing sent) saying when to retry.
    pub async fn acquire(
        &self,
        identity: &CredentialIdentity,
        max_wait: Duration,
    ) -> Result<(), UpstreamError> {
        let decision = match self.shared(identity, max_wait).await {
            Some(d) => d,
            None => self.local(identity, max_wait, Instant::now()),
        };
        match decision {
            Decision::Go(wait) if wait.is_zero() => Ok(()),
            Decision::Go(wait) => {
                self.metrics.upstream_budget("delayed");
                tokio::time::sleep(wait).await;
                Ok(())
            }
            Decision::Refused(wait) => {
                self.metrics.upstream_budget("refused");
                let secs = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
                Err(UpstreamError::OverBudget { retry_after: secs.max(1) })
            }
        }
    }

    /// The fleet's bucket in Redis; `None` when Redis is not in use right now.
    async fn shared(&self, identity: &CredentialIdentity, max_wait: Duration) -> Option<Decision> {
        let store = self.store.as_ref().filter(|s| s.is_up())?;
        let key = store.bucket_key(identity);
        let args = [micros(self.interval), u64::from(self.burst), micros(max_wait)];
        let (go, wait): (i64, i64) = store.eval(&self.script, &[&key], &args).await?;
        let wait = Duration::from_micros(u64::try_from(wait).unwrap_or(0));
        Some(if go == 1 { Decision::Go(wait) } else { Decision::Refused(wait) })
    }

    /// This process's bucket: the same algorithm on the local clock.
    fn local(&self, identity: &CredentialIdentity, max_wait: Duration, now: Instant) -> Decision {
        let mut buckets = self.local.lock();
        if buckets.len() >= LOCAL_PRUNE_AT {
            buckets.retain(|_, tat| *tat > now);
        }
        let tat = buckets.get(identity).copied().filter(|t| *t > now).unwrap_or(now);
        let next = tat + self.interval;
        let tolerance = self.interval.saturating_mul(self.burst);
        let wait = (next - now).saturating_sub(tolerance);
        if wait > max_wait {
            return Decision::Refused(wait);
        }
        buckets.insert(identity.clone(), next);
        Decision::Go(wait)
    }
}

fn micros(d: Duration) -> u64 {
    u64::try_from(d.as_micros()).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::upstream::Credential;

    fn limiter(calls: u32, burst: u32) -> RateLimiter {
        RateLimiter::new(Rate { calls, per: Duration::from_secs(1) }, burst, None, Metrics::new())
    }

    #[tokio::test(start_paused = true)]
    async fn a_burst_goes_at_once_then_calls_are_spaced_by_the_interval() {
        let l = limiter(10, 3);
        let id = Credential::token("a").expect("valid").identity();
        let now = Instant::now();
        let waits: Vec<Decision> = (0..5).map(|_| l.local(&id, Duration::from_secs(1), now)).collect();
        let ms = Duration::from_millis;
        assert_eq!(
            waits,
            vec![
                Decision::Go(ms(0)),
                Decision::Go(ms(0)),
                Decision::Go(ms(0)),
                Decision::Go(ms(100)),
                Decision::Go(ms(200))
            ]
        );
        // A slot beyond the caller's deadline is refused and not reserved.
        assert_eq!(l.local(&id, ms(250), now), Decision::Refused(ms(300)));
        assert_eq!(l.local(&id, ms(300), now), Decision::Go(ms(300)));
        // Idle time refills the burst, no more.
        let later = now + Duration::from_secs(10);
        assert_eq!(l.local(&id, Duration::ZERO, later), Decision::Go(ms(0)));
    }

    #[tokio::test(start_paused = true)]
    async fn identities_have_their_own_budgets() {
        let l = limiter(1, 1);
        let a = Credential::token("a").expect("valid").identity();
        let b = Credential::token("b").expect("valid").identity();
        assert!(l.acquire(&a, Duration::ZERO).await.is_ok());
        assert!(l.acquire(&b, Duration::ZERO).await.is_ok());
        let refused = l.acquire(&a, Duration::from_millis(500)).await;
        assert!(matches!(refused, Err(UpstreamError::OverBudget { retry_after: 1 })), "{refused:?}");
        let text = l.metrics.render();
        assert!(text.contains(r#"dli_graphql_upstream_budget_total{outcome="refused"} 1"#), "{text}");
    }
}
