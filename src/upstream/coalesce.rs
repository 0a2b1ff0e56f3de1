//! Sharing upstream answers between GraphQL requests, to spare DLI (which throttles with 429).
//!
//! Two mechanisms, both keyed by (credential identity, project) so that one caller's
//! answer never serves another caller:
//! - **Coalescing** (on by default): while a call for a key is in flight, further fetches of
//!   that key wait for it instead of sending their own. Nothing outlives the call.
//! - **TTL cache** (off by default): a successful answer is kept for `ttl` and served to later
//!   fetches of the same key without an upstream call, within a byte budget. Errors are
//!   never kept.
//!
//! The in-flight call runs in its own task, so a caller that goes away (client disconnect)
//! does not cancel it for the others; it is bounded by the client's own deadline.
//!
//! With `--redis-url` ([`FleetStore`]) the call in flight is shared by the fleet too: the
//! task first claims the key in Redis. A stored answer is used as is; otherwise one replica
//! takes the lease and calls DLI, storing the answer for `--cache-ttl` (or for
//! [`HANDOFF`] without a TTL, long enough for the waiters to read it), while the others
//! poll every [`POLL`] until the answer is there or the lease is free to take (its holder
//! failed or died). A waiter that sees neither within `--upstream-timeout` (and a few
//! polls), and any fetch while Redis is unusable, calls DLI itself: Redis can delay an
//! answer, never fail one.

use std::{
    collections::HashMap,
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    time::Duration,
};

use futures::{
    FutureExt,
    future::{BoxFuture, Shared},
};
use parking_lot::Mutex;
use tracing::Instrument;

use super::{
    auth::{Credential, CredentialIdentity},
    cache::{TtlCache, list_weight},
    client::Client,
    model::ListResponse,
    shared_state::{FetchKey, FleetStore, HANDOFF, POLL},
};
pub use crate::config::ShareOptions;
use crate::{error::UpstreamError, observability::trace_context, project_id::ProjectId};

/// The outcome of one list call, cheap to hand to every waiter.
pub type ListOutcome = Result<Arc<ListResponse>, Arc<UpstreamError>>;

type Key = (CredentialIdentity, ProjectId);
type Flight = Shared<BoxFuture<'static, ListOutcome>>;

/// The upstream client as the resolvers use it: identical concurrent calls coalesced,
/// answers optionally cached. Cheap to clone.
#[derive(Clone)]
pub struct SharedClient {
    inner: Arc<Inner>,
}

struct Inner {
    client: Client,
    coalesce: bool,
    cache: Option<TtlCache<Key, Arc<ListResponse>>>,
    /// The fleet's shared answers and leases, with `--redis-url`.
    fleet: Option<Fleet>,
    /// Calls in flight, each tagged with a serial so a finished call removes only itself.
    in_flight: Mutex<HashMap<Key, (u64, Flight)>>,
    serial: AtomicU64,
}

struct Fleet {
    store: FleetStore,
    /// How long a stored answer lives: `--cache-ttl`, or [`HANDOFF`].
    keep: Duration,
    /// Longest lease, and longest wait for another replica's call: `--upstream-timeout`.
    lease: Duration,
}

impl std::fmt::Debug for SharedClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SharedClient")
            .field("client", &self.inner.client)
            .field("coalesce", &self.inner.coalesce)
            .field("cache", &self.inner.cache.is_some())
            .field("fleet", &self.inner.fleet.as_ref().map(|f| &f.store))
            .finish()
    }
}

impl SharedClient {
    /// Wraps `client` with the sharing `opts` ask for; with `fleet`, coalescing and the
    /// cache are shared with the other replicas, leases lasting at most `lease`.
    pub fn new(client: Client, opts: &ShareOptions, fleet: Option<FleetStore>, lease: Duration) -> Self {
        let cache = opts.ttl().map(|ttl| TtlCache::new(ttl, opts.cache_max_bytes));
        // Sharing across replicas is coalescing across replicas: off with --no-coalesce.
        let fleet = fleet.filter(|_| opts.coalesce()).map(|store| Fleet {
            store,
            keep: opts.ttl().unwrap_or(HANDOFF),
            lease: lease.max(POLL),
        });
        Self {
            inner: Arc::new(Inner {
                client,
                coalesce: opts.coalesce(),
                cache,
                fleet,
                in_flight: Mutex::default(),
                serial: AtomicU64::new(0),
            }),
        }
    }

    /// The wrapped client.
    pub fn client(&self) -> &Client {
        &self.inner.client
    }

    /// Answers cached right now (0 without a cache).
    pub fn cached_entries(&self) -> usize {
        self.inner.cache.as_ref().map_or(0, TtlCache::len)
    }

    /// The connections of `project` as `credential` sees them: from the cache, from a call
    /// already in flight for the same credential identity, or from a new upstream call.
    pub async fn list_connections(&self, project: &ProjectId, credential: &Credential) -> ListOutcome {
        let inner = &self.inner;
        if !inner.coalesce && inner.cache.is_none() {
            return inner.client.list_connections(project, credential).await.map_err(Arc::new);
        }
        let key = (credential.identity(), project.clone());
        if let Some(hit) = inner.cached(&key) {
            return Ok(hit);
        }
        if !inner.coalesce {
            let result = inner.client.list_connections(project, credential).await.map_err(Arc::new);
            inner.remember(key, &result);
            return result;
        }
        let flight = {
            let mut in_flight = inner.in_flight.lock();
            if let Some((_, flight)) = in_flight.get(&key) {
                inner.client.metrics().upstream_coalesced();
                flight.clone()
            } else if let Some(hit) = inner.cache.as_ref().and_then(|c| c.get(&key)) {
                // Filled by a call that finished since the first look (counted as a miss there).
                inner.client.metrics().cache_hit();
                return Ok(hit);
            } else {
                let flight = self.start(key.clone(), project.clone(), credential.clone());
                in_flight.insert(key, flight.clone());
                flight.1
            }
        };
        flight.await
    }

    /// Spawns the upstream call for `key`; it caches its answer and leaves the in-flight
    /// table by itself when done, whether or not anyone still waits for it.
    fn start(&self, key: Key, project: ProjectId, credential: Credential) -> (u64, Flight) {
        let serial = self.inner.serial.fetch_add(1, Ordering::Relaxed);
        let inner = Arc::clone(&self.inner);
        let call = async move {
            let (result, fetched) = inner.fetch(&key, &project, &credential).await;
            // Into the cache before leaving the table, so no fetch sees neither. Answers read
            // from Redis are not kept here: they may be up to a TTL old already.
            if fetched {
                inner.remember(key.clone(), &result);
            }
            let mut in_flight = inner.in_flight.lock();
            if in_flight.get(&key).is_some_and(|(s, _)| *s == serial) {
                in_flight.remove(&key);
            }
            result
        };
        // The shared call keeps the request id (and span) of the request that started it.
        let call = call.in_current_span();
        let task = match trace_context::current_request_id() {
            Some(id) => tokio::spawn(trace_context::with_request_id(id, call)),
            None => tokio::spawn(call),
        };
        let flight = async move {
            task.await.unwrap_or_else(|e| {
                tracing::error!(error = %e, "upstream call task failed");
                Err(Arc::new(UpstreamError::Unavailable("upstream call aborted".to_owned())))
            })
        }
        .boxed()
        .shared();
        (serial, flight)
    }
}

impl Inner {
    /// One fetch for the fleet: through Redis when it is in use, else straight to DLI.
    /// The flag says whether this replica called DLI itself.
    async fn fetch(&self, key: &Key, project: &ProjectId, credential: &Credential) -> (ListOutcome, bool) {
        if let Some(fleet) = self.fleet.as_ref().filter(|f| f.store.is_up()) {
            let fetch = FetchKey {
                identity: key.0.clone(),
                project: key.1.clone(),
                endpoint: "list",
                params: String::new(),
            };
            let call = || async { self.client.list_connections(project, credential).await.map_err(Arc::new) };
            if let Some(shared) = fleet.store.single_flight(&fetch, fleet.lease, fleet.keep, call).await {
                return shared;
            }
        }
        (self.client.list_connections(project, credential).await.map_err(Arc::new), true)
    }

    /// The cached answer for `key`, counting the hit or the miss (nothing without a cache).
    fn cached(&self, key: &Key) -> Option<Arc<ListResponse>> {
        let cache = self.cache.as_ref()?;
        let hit = cache.get(key);
        if hit.is_some() {
            self.client.metrics().cache_hit();
        } else {
            self.client.metrics().cache_miss();
        }
        hit
    }

    fn remember(&self, key: Key, result: &ListOutcome) {
        if let (Some(cache), Ok(list)) = (&self.cache, result) {
            cache.insert(key, Arc::clone(list), list_weight(list));
        }
    }
}
