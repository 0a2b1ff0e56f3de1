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

use std::{
    collections::HashMap,
    sync::{
        Arc, Mutex, MutexGuard,
        atomic::{AtomicU64, Ordering},
    },
    time::Duration,
};

use futures::{
    FutureExt,
    future::{BoxFuture, Shared},
};
use tracing::Instrument;

use super::{
    Client, Credential, CredentialIdentity, ListResponse,
    cache::{TtlCache, list_weight},
};
use crate::{error::UpstreamError, project_id::ProjectId};

/// The outcome of one list call, cheap to hand to every waiter.
pub type ListOutcome = Result<Arc<ListResponse>, Arc<UpstreamError>>;

type Key = (CredentialIdentity, ProjectId);
type Flight = Shared<BoxFuture<'static, ListOutcome>>;

/// How answers are shared between requests.
#[derive(Debug, Clone)]
pub struct ShareOptions {
    /// Concurrent fetches of the same key share one upstream call.
    pub coalesce: bool,
    /// Keep successful answers this long; `None` or zero: no cache.
    pub cache_ttl: Option<Duration>,
    /// Upper bound of the cache's estimated size, bytes.
    pub cache_max_bytes: usize,
}

impl Default for ShareOptions {
    fn default() -> Self {
        Self { coalesce: true, cache_ttl: None, cache_max_bytes: 64 * 1024 * 1024 }
    }
}

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
    /// Calls in flight, each tagged with a serial so a finished call removes only itself.
    in_flight: Mutex<HashMap<Key, (u64, Flight)>>,
    serial: AtomicU64,
}

impl std::fmt::Debug for SharedClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SharedClient")
            .field("client", &self.inner.client)
            .field("coalesce", &self.inner.coalesce)
            .field("cache", &self.inner.cache.is_some())
            .finish()
    }
}

impl SharedClient {
    /// Wraps `client` with the sharing `opts` ask for.
    pub fn new(client: Client, opts: &ShareOptions) -> Self {
        let cache =
            opts.cache_ttl.filter(|ttl| !ttl.is_zero()).map(|ttl| TtlCache::new(ttl, opts.cache_max_bytes));
        Self {
            inner: Arc::new(Inner {
                client,
                coalesce: opts.coalesce,
                cache,
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
        if let Some(hit) = inner.cache.as_ref().and_then(|c| c.get(&key)) {
            return Ok(hit);
        }
        if !inner.coalesce {
            let result = inner.client.list_connections(project, credential).await.map_err(Arc::new);
            inner.remember(key, &result);
            return result;
        }
        let flight = {
            let mut in_flight = lock(&inner.in_flight);
            if let Some((_, flight)) = in_flight.get(&key) {
                flight.clone()
            } else if let Some(hit) = inner.cache.as_ref().and_then(|c| c.get(&key)) {
                // Filled by a call that finished since the first look.
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
            let result = inner.client.list_connections(&project, &credential).await.map_err(Arc::new);
            // Into the cache before leaving the table, so no fetch sees neither.
            inner.remember(key.clone(), &result);
            let mut in_flight = lock(&inner.in_flight);
            if in_flight.get(&key).is_some_and(|(s, _)| *s == serial) {
                in_flight.remove(&key);
            }
            result
        };
        // The shared call keeps the request id (and span) of the request that started it.
        let call = call.in_current_span();
        let task = match crate::trace_context::current_request_id() {
            Some(id) => tokio::spawn(crate::trace_context::with_request_id(id, call)),
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
    fn remember(&self, key: Key, result: &ListOutcome) {
        if let (Some(cache), Ok(list)) = (&self.cache, result) {
            cache.insert(key, Arc::clone(list), list_weight(list));
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // The table is consistent between statements; a panic elsewhere must not stop serving.
    m.lock().unwrap_or_else(|p| p.into_inner())
}
