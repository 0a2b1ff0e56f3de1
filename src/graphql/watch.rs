//! The pollers behind subscriptions: one per (credential identity, project) in this
//! process, shared by every subscriber, started by the first and stopped when the last
//! one leaves.
//!
//! A poller reads through [`SharedClient::list_connections`], the path queries take
//! (coalescing, cache, retries, breaker), every `--watch-interval` with up to 10% jitter,
//! and publishes each outcome on a `tokio::sync::watch` channel. The channel holds only the
//! latest outcome: a subscriber that reads slowly compares its own last state with the
//! newest one and skips the intermediate ones, so its memory stays bounded however far
//! behind it falls. Transient failures back off (doubling, at most four intervals);
//! `UNAUTHENTICATED`, `FORBIDDEN` and `NOT_FOUND` are final: the poller publishes them and
//! stops, which ends its subscriptions.
//!
//! The poller's task notices at once when the last receiver is dropped (a `complete`, a
//! closed socket, an aborted stream) and removes itself from the table under the table's
//! lock, so a subscriber arriving at that moment either joins it first or starts a new one.

use std::{
    collections::{HashMap, HashSet},
    sync::Arc,
    time::Duration,
};

use chrono::{DateTime, Utc};
use parking_lot::Mutex;
use tokio::sync::watch;

use crate::{
    config::SubscriptionOptions,
    error::{ErrorCode, UpstreamError},
    observability::metrics::Metrics,
    project_id::ProjectId,
    upstream::{Credential, CredentialIdentity, ListResponse, SharedClient},
};

type Key = (CredentialIdentity, ProjectId);

/// The latest outcome of a project's polls.
#[derive(Clone)]
pub enum Observed {
    /// Nothing polled yet.
    Pending,
    /// The list as of `at`.
    Listed {
        /// The upstream answer.
        list: Arc<ListResponse>,
        /// When the poll finished.
        at: DateTime<Utc>,
    },
    /// A failed poll; `fatal` ones end the subscriptions.
    Failed {
        /// Why.
        error: Arc<UpstreamError>,
        /// When the poll finished.
        at: DateTime<Utc>,
        /// Whether the poller stopped because of it.
        fatal: bool,
    },
}

/// Why a subscriber could not start watching.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WatchRefused {
    /// `--max-watched-projects` distinct projects are watched already.
    TooManyProjects(usize),
}

/// The table of pollers. Cheap to clone.
#[derive(Clone)]
pub struct Watcher {
    inner: Arc<Inner>,
}

struct Inner {
    client: SharedClient,
    interval: Duration,
    max_projects: usize,
    metrics: Metrics,
    pollers: Mutex<HashMap<Key, Arc<watch::Sender<Observed>>>>,
}

impl std::fmt::Debug for Watcher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Watcher").field("interval", &self.inner.interval).finish()
    }
}

impl Watcher {
    /// Pollers reading through `client` with the settings of `opts`.
    pub fn new(client: SharedClient, opts: &SubscriptionOptions, metrics: Metrics) -> Self {
        Self {
            inner: Arc::new(Inner {
                client,
                interval: opts.watch_interval,
                max_projects: opts.max_watched_projects,
                metrics,
                pollers: Mutex::default(),
            }),
        }
    }

    /// The poll interval.
    pub fn interval(&self) -> Duration {
        self.inner.interval
    }

    /// The metrics registry subscriptions count into.
    pub fn metrics(&self) -> &Metrics {
        &self.inner.metrics
    }

    /// Pollers running now.
    pub fn pollers(&self) -> usize {
        self.inner.pollers.lock().len()
    }

    /// The outcomes of `project`'s polls with `credential`: joins the poller of that
    /// credential identity and project, or starts one. Dropping the receiver leaves it.
    pub fn watch(
        &self,
        project: &ProjectId,
        credential: &Credential,
    ) -> Result<watch::Receiver<Observed>, WatchRefused> {
        let key = (credential.identity(), project.clone());
        let mut pollers = self.inner.pollers.lock();
        if let Some(tx) = pollers.get(&key) {
            return Ok(tx.subscribe());
        }
        let watched: HashSet<&ProjectId> = pollers.keys().map(|(_, p)| p).collect();
        if !watched.contains(project) && watched.len() >= self.inner.max_projects {
            return Err(WatchRefused::TooManyProjects(self.inner.max_projects));
        }
        let (tx, rx) = watch::channel(Observed::Pending);
        let tx = Arc::new(tx);
        pollers.insert(key.clone(), tx.clone());
        drop(pollers);
        let inner = self.inner.clone();
        tokio::spawn(poll(inner, key, credential.clone(), tx));
        Ok(rx)
    }
}

impl Inner {
    /// Removes `key`'s poller if it is still `tx` and nobody listens; true when it did.
    fn retire(&self, key: &Key, tx: &Arc<watch::Sender<Observed>>, force: bool) -> bool {
        let mut pollers = self.pollers.lock();
        if !force && tx.receiver_count() > 0 {
            return false;
        }
        if pollers.get(key).is_some_and(|t| Arc::ptr_eq(t, tx)) {
            pollers.remove(key);
        }
        true
    }

    /// The wait after a poll: the interval with up to 10% jitter either way, or after
    /// `failures` consecutive transient failures, doubling up to four intervals.
    fn wait(&self, failures: u32) -> Duration {
        let base =
            if failures == 0 { self.interval } else { self.interval * 2u32.saturating_pow(failures).min(4) };
        let jitter = rand::random::<f64>() * 0.2 - 0.1;
        base.mul_f64(1.0 + jitter)
    }
}

/// Whether a failure ends the subscriptions (the caller must change something first).
pub fn is_fatal(error: &UpstreamError) -> bool {
    matches!(error.code(), ErrorCode::Unauthenticated | ErrorCode::Forbidden | ErrorCode::NotFound)
}

async fn poll(inner: Arc<Inner>, key: Key, credential: Credential, tx: Arc<watch::Sender<Observed>>) {
    let _running = inner.metrics.poller_running();
    let project = key.1.clone();
    let mut failures = 0u32;
    tracing::debug!(%project, "poller started");
    loop {
        // Nobody left while the poll is under way (it may take up to the upstream
        // deadline): stop without waiting for it.
        let call = inner.client.list_connections(&project, &credential);
        tokio::pin!(call);
        let outcome = loop {
            tokio::select! {
                outcome = &mut call => break Some(outcome),
                () = tx.closed() => {
                    if inner.retire(&key, &tx, false) {
                        break None;
                    }
                }
            }
        };
        let Some(outcome) = outcome else { break };
        let at = Utc::now();
        match outcome {
            Ok(list) => {
                inner.metrics.watch_poll("ok");
                failures = 0;
                tx.send_replace(Observed::Listed { list, at });
            }
            Err(error) => {
                inner.metrics.watch_poll(error.code().as_str());
                let fatal = is_fatal(&error);
                tracing::info!(%project, error = %error, fatal, "poll failed");
                tx.send_replace(Observed::Failed { error, at, fatal });
                if fatal {
                    inner.retire(&key, &tx, true);
                    break;
                }
                failures += 1;
            }
        }
        let until = tokio::time::Instant::now() + inner.wait(failures);
        let retired = loop {
            tokio::select! {
                () = tokio::time::sleep_until(until) => break false,
                () = tx.closed() => {
                    if inner.retire(&key, &tx, false) {
                        break true;
                    }
                    // Someone joined just now: `closed` waits again.
                }
            }
        };
        if retired {
            break;
        }
    }
    tracing::debug!(%project, "poller stopped");
}
