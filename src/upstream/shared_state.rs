//! State the replicas share over Redis (`--redis-url`): stored answers, leases for the one
//! call in flight per key, and the call budget's buckets ([`super::rate_limit`]).
//!
//! [`FleetStore::single_flight`] is the one path every fetch takes: keyed by [`FetchKey`]
//! (identity, project, endpoint and parameters), generic over the answer type, so another
//! DLI endpoint joins it with its own endpoint name and its own DTO.
//!
//! Redis is an optimisation, never a dependency: every operation is bounded by
//! `--redis-timeout`, and the first failure (unreachable, slow, frozen, refused) switches
//! this replica to its in-process fallback: [`FleetStore::is_up`] turns false, callers
//! share only within the process, and a background probe pings Redis until it answers,
//! then switches back. Each switch is logged once and shown by the
//! `dli_graphql_redis_fallback` gauge.
//!
//! Keys never hold a secret: the credential part is SHA-256 over the prefix and the
//! [`CredentialIdentity`] (itself a SHA-256), so an entry cannot be tied back to a token
//! and two deployments sharing one Redis under different prefixes never share a name.
//! Layout (`{…}` is a cluster hash tag, so an answer and its lease live in one slot):
//! `{prefix}answer:{tag:endpoint:project[:params]}`, `{prefix}lease:{…same…}`,
//! `{prefix}rate:{tag}`.

use std::{
    sync::{
        Arc, Weak,
        atomic::{AtomicBool, Ordering},
    },
    time::Duration,
};

use redis::{FromRedisValue, Script, aio::ConnectionManager, aio::ConnectionManagerConfig};
use serde::{Serialize, de::DeserializeOwned};
use sha2::{Digest, Sha256};

use super::auth::CredentialIdentity;
pub use crate::config::FleetOptions;
use crate::{error::UpstreamError, observability::metrics::Metrics, project_id::ProjectId};

/// How often a replica that found Redis down asks again.
const PROBE_EVERY: Duration = Duration::from_millis(250);

/// How often a replica waiting for another one's call looks for the answer.
pub const POLL: Duration = Duration::from_millis(10);

/// Without `--cache-ttl`, how long a fetched answer stays in Redis for the replicas that
/// waited for it; requests arriving in that window get it too (the only staleness then).
pub const HANDOFF: Duration = Duration::from_millis(250);

/// Returns the stored answer, else takes the lease when nobody holds it.
/// KEYS: answer, lease. ARGV: lease token, lease ms. Reply: {1, answer} | {2, ""} | {3, ""}.
const CLAIM: &str = r"
local v = redis.call('GET', KEYS[1])
if v then return {1, v} end
if redis.call('SET', KEYS[2], ARGV[1], 'NX', 'PX', ARGV[2]) then return {2, ''} end
return {3, ''}
";

/// Stores an answer and gives up the lease if it is still ours.
/// KEYS: answer, lease. ARGV: lease token, answer, ttl ms.
const STORE: &str = r"
redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[3])
if redis.call('GET', KEYS[2]) == ARGV[1] then redis.call('DEL', KEYS[2]) end
return 1
";

/// Gives up the lease if it is still ours (a lease that expired may be someone else's now).
/// KEYS: lease. ARGV: lease token.
const RELEASE: &str = r"
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
";

/// What one upstream fetch is about: whose credentials, which project, which endpoint with
/// which parameters. Each distinct key is fetched once for the fleet at a time.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct FetchKey {
    /// Who asks (never the secret).
    pub identity: CredentialIdentity,
    /// The project.
    pub project: ProjectId,
    /// The DLI endpoint, e.g. `list`.
    pub endpoint: &'static str,
    /// The endpoint's parameters in a canonical form; empty when it has none.
    pub params: String,
}

/// The Redis names of one fetch: where its answer is stored and its lease.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FetchKeys {
    /// The stored answer.
    pub answer: String,
    /// The lease of the one replica calling DLI for it.
    pub lease: String,
}

/// The outcome of [`FleetStore::claim`].
#[derive(Debug)]
pub enum Claim {
    /// An answer stored by an earlier call (this replica's or another's).
    Answer(Vec<u8>),
    /// The lease is ours: call DLI, then [`FleetStore::store`] or [`FleetStore::release`].
    Lease(LeaseToken),
    /// Another replica holds the lease: wait and claim again.
    Held,
}

/// Proof of holding a lease: a random token only the holder knows.
#[derive(Debug)]
pub struct LeaseToken(String);

/// The Redis shared by the replicas, with this replica's view of whether it works.
/// Cheap to clone.
#[derive(Clone)]
pub struct FleetStore {
    inner: Arc<Inner>,
}

struct Inner {
    conn: ConnectionManager,
    prefix: String,
    timeout: Duration,
    /// The probe's own bound: a reconnect (TCP, maybe TLS) takes longer than one command.
    probe_timeout: Duration,
    up: AtomicBool,
    probing: AtomicBool,
    metrics: Metrics,
    claim: Script,
    store: Script,
    release: Script,
}

impl std::fmt::Debug for FleetStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FleetStore").field("prefix", &self.inner.prefix).field("up", &self.is_up()).finish()
    }
}

impl FleetStore {
    /// A store for `opts.redis_url` (`None` without one). Nothing is sent yet: call
    /// [`FleetStore::check`] to learn whether Redis answers.
    pub fn new(opts: &FleetOptions, metrics: Metrics) -> Result<Option<Self>, redis::RedisError> {
        let Some(url) = &opts.redis_url else { return Ok(None) };
        let client = redis::Client::open(url.0.as_str())?;
        let probe_timeout = opts.redis_timeout.max(Duration::from_secs(1));
        let config = ConnectionManagerConfig::new()
            .set_response_timeout(Some(opts.redis_timeout))
            .set_connection_timeout(Some(probe_timeout))
            // Reconnects are driven by the probe below; the manager tries once per command.
            .set_number_of_retries(1)
            .set_max_delay(Duration::from_millis(100));
        let conn = ConnectionManager::new_lazy_with_config(client, config)?;
        metrics.redis_fallback(true);
        Ok(Some(Self {
            inner: Arc::new(Inner {
                conn,
                prefix: opts.redis_prefix.clone(),
                timeout: opts.redis_timeout,
                probe_timeout,
                up: AtomicBool::new(false),
                probing: AtomicBool::new(false),
                metrics,
                claim: Script::new(CLAIM),
                store: Script::new(STORE),
                release: Script::new(RELEASE),
            }),
        }))
    }

    /// Asks Redis once (within the probe bound) and takes the answer as the current state;
    /// when it does not answer, the fallback is on and the probe keeps asking.
    pub async fn check(&self) {
        if ping(&self.inner).await {
            self.inner.set_up(true, "Redis answers");
        } else {
            // Not a change of state (the store starts on the fallback), but worth one line.
            tracing::warn!("Redis does not answer: starting with in-process sharing until it does");
            self.inner.set_up(false, "Redis does not answer");
        }
    }

    /// Whether fetches and budgets go through Redis now (else the in-process fallback).
    pub fn is_up(&self) -> bool {
        self.inner.up.load(Ordering::Acquire)
    }

    /// The registry state changes are counted into.
    pub fn metrics(&self) -> &Metrics {
        &self.inner.metrics
    }

    /// The key part naming a credential identity under this prefix.
    pub fn identity_tag(&self, identity: &CredentialIdentity) -> String {
        identity_tag(&self.inner.prefix, identity)
    }

    /// The names of `key`'s answer and lease.
    pub fn keys(&self, key: &FetchKey) -> FetchKeys {
        fetch_keys(&self.inner.prefix, key)
    }

    /// The name of the call budget's bucket of `identity`.
    pub fn bucket_key(&self, identity: &CredentialIdentity) -> String {
        format!("{}rate:{{{}}}", self.inner.prefix, self.identity_tag(identity))
    }

    /// The stored answer of `key`, or its lease for `lease` (when free), or `Held`.
    /// `None` when Redis did not answer (the fallback is on now).
    pub async fn claim(&self, keys: &FetchKeys, lease: Duration) -> Option<Claim> {
        let token = LeaseToken(hex::encode(rand::random::<[u8; 16]>()));
        let mut inv = self.inner.claim.key(&keys.answer);
        inv.key(&keys.lease).arg(&token.0).arg(millis(lease));
        let mut conn = self.inner.conn.clone();
        let (kind, value): (i64, Vec<u8>) = self.run(inv.invoke_async(&mut conn)).await?;
        Some(match kind {
            1 => Claim::Answer(value),
            2 => Claim::Lease(token),
            _ => Claim::Held,
        })
    }

    /// Stores `answer` under `keys` for `ttl` and gives up `lease`.
    pub async fn store(&self, keys: &FetchKeys, lease: &LeaseToken, answer: &[u8], ttl: Duration) {
        let mut inv = self.inner.store.key(&keys.answer);
        inv.key(&keys.lease).arg(&lease.0).arg(answer).arg(millis(ttl));
        let mut conn = self.inner.conn.clone();
        let _: Option<i64> = self.run(inv.invoke_async(&mut conn)).await;
    }

    /// Gives up `lease` without an answer (the call failed), so a waiter may take it.
    pub async fn release(&self, keys: &FetchKeys, lease: &LeaseToken) {
        let mut inv = self.inner.release.key(&keys.lease);
        inv.arg(&lease.0);
        let mut conn = self.inner.conn.clone();
        let _: Option<i64> = self.run(inv.invoke_async(&mut conn)).await;
    }

    /// One fetch for the whole fleet: the answer stored under `key`, or, under its lease,
    /// `call`'s answer (stored for `keep`), waiting while another replica holds the lease.
    /// The flag says whether `call` ran here. `None` when this replica should call DLI on
    /// its own: Redis failed, the stored answer is unreadable, or neither an answer nor a
    /// free lease came within `lease` (the longest lease taken) and a few polls: a lease
    /// taken just before this wait began expires first, so one waiter takes it over rather
    /// than all of them giving up together.
    pub async fn single_flight<T, F, Fut>(
        &self,
        key: &FetchKey,
        lease: Duration,
        keep: Duration,
        call: F,
    ) -> Option<(Result<Arc<T>, Arc<UpstreamError>>, bool)>
    where
        T: Serialize + DeserializeOwned,
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<Arc<T>, Arc<UpstreamError>>>,
    {
        let keys = self.keys(key);
        let give_up = tokio::time::Instant::now() + lease + 5 * POLL;
        loop {
            match self.claim(&keys, lease).await? {
                Claim::Answer(bytes) => {
                    return match serde_json::from_slice::<T>(&bytes) {
                        Ok(answer) => {
                            self.inner.metrics.shared_answer();
                            Some((Ok(Arc::new(answer)), false))
                        }
                        Err(e) => {
                            tracing::warn!(error = %e, "unreadable answer in Redis; calling DLI");
                            None
                        }
                    };
                }
                Claim::Lease(token) => {
                    let result = call().await;
                    match result.as_ref().ok().map(|answer| serde_json::to_vec(&**answer)) {
                        Some(Ok(bytes)) => self.store(&keys, &token, &bytes, keep).await,
                        // Errors are never stored: the next claimant calls DLI again.
                        _ => self.release(&keys, &token).await,
                    }
                    return Some((result, true));
                }
                Claim::Held if tokio::time::Instant::now() >= give_up => {
                    tracing::warn!("no answer from the replica holding the lease within the lease time");
                    return None;
                }
                Claim::Held => tokio::time::sleep(POLL).await,
            }
        }
    }

    /// Runs `script` with `keys` and `args` (for the budget's bucket).
    pub(crate) async fn eval<T: FromRedisValue>(
        &self,
        script: &Script,
        keys: &[&str],
        args: &[u64],
    ) -> Option<T> {
        let mut inv = script.prepare_invoke();
        for k in keys {
            inv.key(*k);
        }
        for a in args {
            inv.arg(*a);
        }
        let mut conn = self.inner.conn.clone();
        self.run(inv.invoke_async(&mut conn)).await
    }

    /// One Redis round trip within `--redis-timeout`; a failure turns the fallback on.
    async fn run<T>(&self, op: impl Future<Output = redis::RedisResult<T>>) -> Option<T> {
        if !self.is_up() {
            return None;
        }
        match tokio::time::timeout(self.inner.timeout, op).await {
            Ok(Ok(v)) => Some(v),
            Ok(Err(e)) => {
                self.inner.set_up(false, &format!("Redis command failed: {}", error_kind(&e)));
                None
            }
            Err(_) => {
                self.inner.set_up(false, "Redis did not answer within --redis-timeout");
                None
            }
        }
    }
}

/// What went wrong, in words that name no key, value or URL.
fn error_kind(e: &redis::RedisError) -> String {
    if e.is_timeout() {
        "timeout".to_owned()
    } else if e.is_io_error() || e.is_connection_dropped() || e.is_connection_refusal() {
        "connection lost".to_owned()
    } else {
        format!("{:?}", e.kind())
    }
}

impl Inner {
    /// Records the state; logs and counts only real changes. Going down starts the probe.
    fn set_up(self: &Arc<Self>, up: bool, why: &str) {
        let was = self.up.swap(up, Ordering::AcqRel);
        if up {
            self.metrics.redis_fallback(false);
            if !was {
                tracing::info!(reason = why, "Redis in use: answers, leases and the call budget are shared");
                self.metrics.redis_state_change("redis");
            }
        } else {
            self.metrics.redis_fallback(true);
            if was {
                tracing::warn!(reason = why, "Redis unusable: falling back to in-process sharing");
                self.metrics.redis_state_change("fallback");
            }
            self.start_probe();
        }
    }

    /// Pings Redis every [`PROBE_EVERY`] until it answers; at most one probe at a time, and
    /// it ends with the store.
    fn start_probe(self: &Arc<Self>) {
        if self.probing.swap(true, Ordering::AcqRel) {
            return;
        }
        let weak: Weak<Self> = Arc::downgrade(self);
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(PROBE_EVERY).await;
                let Some(inner) = weak.upgrade() else { return };
                if ping(&inner).await {
                    inner.probing.store(false, Ordering::Release);
                    inner.set_up(true, "Redis answers again");
                    return;
                }
            }
        });
    }
}

async fn ping(inner: &Inner) -> bool {
    let mut conn = inner.conn.clone();
    let cmd = redis::cmd("PING");
    let pong = tokio::time::timeout(inner.probe_timeout, cmd.query_async::<String>(&mut conn)).await;
    matches!(pong, Ok(Ok(p)) if p == "PONG")
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX).max(1)
}

/// SHA-256 over a domain tag, the prefix and the identity (itself a digest), in hex.
pub fn identity_tag(prefix: &str, identity: &CredentialIdentity) -> String {
    let mut h = Sha256::new();
    h.update(b"dli-graphql fleet key\0");
    h.update(prefix.as_bytes());
    h.update(b"\0");
    h.update(identity.as_bytes());
    hex::encode(h.finalize())
}

/// The names of `key`'s answer and lease under `prefix`.
pub fn fetch_keys(prefix: &str, key: &FetchKey) -> FetchKeys {
    let tag = identity_tag(prefix, &key.identity);
    // Project ids are `[A-Za-z0-9_-]`; parameters are hashed so any text is safe in a name.
    let params = if key.params.is_empty() {
        String::new()
    } else {
        format!(":{}", hex::encode(Sha256::digest(key.params.as_bytes())))
    };
    let slot = format!("{{{tag}:{}:{}{params}}}", key.endpoint, key.project);
    FetchKeys { answer: format!("{prefix}answer:{slot}"), lease: format!("{prefix}lease:{slot}") }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::upstream::Credential;

    fn key(token: &str, project: &str) -> FetchKey {
        FetchKey {
            identity: Credential::token(token).expect("valid").identity(),
            project: ProjectId::parse(project).expect("valid"),
            endpoint: "list",
            params: String::new(),
        }
    }

    #[test]
    fn keys_separate_identities_prefixes_and_projects_and_hold_no_token() {
        let a = fetch_keys("dli-graphql:", &key("secret-token-a", "p1"));
        let b = fetch_keys("dli-graphql:", &key("secret-token-b", "p1"));
        let other_prefix = fetch_keys("staging:", &key("secret-token-a", "p1"));
        let other_project = fetch_keys("dli-graphql:", &key("secret-token-a", "p2"));
        assert_ne!(a.answer, b.answer);
        assert_ne!(
            a.answer.trim_start_matches("dli-graphql:"),
            other_prefix.answer.trim_start_matches("staging:")
        );
        assert_ne!(a.answer, other_project.answer);
        assert!(
            a.answer.starts_with("dli-graphql:answer:{") && a.answer.ends_with(":list:p1}"),
            "{}",
            a.answer
        );
        assert_eq!(a.lease.replace("lease:", "answer:"), a.answer);
        assert!(!a.answer.contains("secret"));
        let with_params = fetch_keys("x:", &FetchKey { params: "state=ACTIVE".into(), ..key("t", "p1") });
        assert!(!with_params.answer.contains("ACTIVE") && with_params.answer.len() > 64 + 64);
    }
}
