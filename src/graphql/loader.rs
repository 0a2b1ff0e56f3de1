//! The per-request loader: one upstream call per distinct key per request (and, through
//! [`SharedClient`], at most one in flight per key and credential across requests).
//!
//! One loader serves every kind of call, each with its own key type: a project's classic
//! list ([`ProjectId`]), one classic connection ([`ShowKey`]), one enhanced connection
//! ([`EnhancedShowKey`]), its privileges ([`PrivilegesKey`]) and a page of enhanced
//! connections ([`EnhancedListKey`]). The first field that asks for a key starts its call as
//! a shared future and keeps it; every later ask in the same request (aliases, nested
//! fields, `_entities`) awaits that same future. Fields of one request are resolved
//! concurrently, so different keys are fetched concurrently. There is no batching window:
//! DLI has no multi-key call, so a batch would only wait for nothing, and a timer-based
//! window (async-graphql's DataLoader waits 1 ms) was spent in every request's latency.

use std::{
    collections::{HashMap, HashSet},
    convert::Infallible,
    hash::Hash,
    sync::Arc,
};

use futures::{
    FutureExt as _,
    future::{BoxFuture, Shared},
};
use parking_lot::Mutex;

use crate::{
    error::UpstreamError,
    project_id::{ConnectionId, ProjectId},
    upstream::{
        ConnectionDto, Credential, EnhancedConnectionDto, EnhancedListResponse, EnhancedQuery, ListOutcome,
        PrivilegesResponse, SharedClient,
    },
};

/// The outcome of one project's list call, shared by every field that asked for it.
pub type ProjectResult = ListOutcome;

/// A call started for one key, shared by every field that asks for that key.
type Call<V> = Shared<BoxFuture<'static, V>>;

/// The calls of one key type, by key.
pub struct Calls<K, V>(Mutex<HashMap<K, Call<V>>>);

impl<K, V> Default for Calls<K, V> {
    fn default() -> Self {
        Self(Mutex::default())
    }
}

/// Loads what the fields of one request need, with that request's credential.
///
/// Each key carries its own result, so one failing key never fails the fields of another.
pub struct ProjectLoader {
    client: SharedClient,
    credential: Option<Credential>,
    allowed: Option<Arc<HashSet<ProjectId>>>,
    lists: Calls<ProjectId, ProjectResult>,
    shows: Calls<ShowKey, Outcome<Option<Arc<ConnectionDto>>>>,
    enhanced_shows: Calls<EnhancedShowKey, Outcome<Option<Arc<EnhancedConnectionDto>>>>,
    privileges: Calls<PrivilegesKey, Outcome<Option<Arc<PrivilegesResponse>>>>,
    enhanced_lists: Calls<EnhancedListKey, Outcome<Arc<EnhancedListResponse>>>,
}

impl ProjectLoader {
    /// A loader for one GraphQL request made with `credential`; projects outside `allowed`
    /// (when given) fail as `FORBIDDEN` without an upstream call.
    pub fn new(
        client: SharedClient,
        credential: Option<Credential>,
        allowed: Option<Arc<HashSet<ProjectId>>>,
    ) -> Self {
        Self {
            client,
            credential,
            allowed,
            lists: Calls::default(),
            shows: Calls::default(),
            enhanced_shows: Calls::default(),
            privileges: Calls::default(),
            enhanced_lists: Calls::default(),
        }
    }

    /// What `key` loads to: the call this request already made or started for it, or a new
    /// one. Never fails itself (`Infallible`): per-key failures travel inside the value.
    pub async fn load_one<K>(&self, key: K) -> Result<Option<<Self as Fetch<K>>::Value>, Infallible>
    where
        Self: Fetch<K>,
        K: Hash + Eq + Clone,
    {
        let call = {
            let mut calls = self.calls().0.lock();
            match calls.get(&key) {
                Some(call) => call.clone(),
                None => {
                    let call = match self.gate(Self::project(&key)) {
                        Ok(credential) => self.start(key.clone(), credential),
                        Err(e) => futures::future::ready(<Self as Fetch<K>>::refused(e)).boxed(),
                    }
                    .shared();
                    calls.insert(key, call.clone());
                    call
                }
            }
        };
        Ok(Some(call.await))
    }

    /// The credential to call for `project` with, or why no call may be made.
    fn gate(&self, project: &ProjectId) -> Result<Credential, Arc<UpstreamError>> {
        if self.allowed.as_ref().is_some_and(|allowed| !allowed.contains(project)) {
            return Err(Arc::new(UpstreamError::ProjectNotAllowed));
        }
        // Nothing to authenticate with: no upstream call at all.
        self.credential.clone().ok_or_else(|| Arc::new(UpstreamError::NoCredentials))
    }
}

/// How the loader fetches one key type.
pub trait Fetch<K> {
    /// What a key loads to, failures included.
    type Value: Clone + Send + Sync + 'static;
    /// The calls of this key type made by this request.
    #[doc(hidden)]
    fn calls(&self) -> &Calls<K, Self::Value>;
    /// The project a key belongs to (for the allowed-projects rule).
    fn project(key: &K) -> &ProjectId;
    /// The upstream call for `key`.
    fn start(&self, key: K, credential: Credential) -> BoxFuture<'static, Self::Value>;
    /// The value of a key no call may be made for.
    fn refused(e: Arc<UpstreamError>) -> Self::Value;
}

/// One classic connection: `GET .../datasource-connection/{connection_id}`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ShowKey(pub ProjectId, pub ConnectionId);

/// One enhanced connection: `GET .../enhanced-connections/{connection_id}`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct EnhancedShowKey(pub ProjectId, pub ConnectionId);

/// The privileges of one enhanced connection: `GET .../{connection_id}/privileges`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct PrivilegesKey(pub ProjectId, pub ConnectionId);

/// One page of a project's enhanced connections, with DLI's query parameters.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct EnhancedListKey(pub ProjectId, pub EnhancedQuery);

/// A loader value carrying a per-key failure.
pub struct Outcome<T>(pub Result<T, Arc<UpstreamError>>);

impl<T> From<Arc<UpstreamError>> for Outcome<T> {
    fn from(e: Arc<UpstreamError>) -> Self {
        Self(Err(e))
    }
}

impl<T: Clone> Clone for Outcome<T> {
    fn clone(&self) -> Self {
        Self(self.0.clone())
    }
}

impl Fetch<ProjectId> for ProjectLoader {
    type Value = ProjectResult;
    fn calls(&self) -> &Calls<ProjectId, Self::Value> {
        &self.lists
    }
    fn project(key: &ProjectId) -> &ProjectId {
        key
    }
    fn refused(e: Arc<UpstreamError>) -> Self::Value {
        Err(e)
    }
    fn start(&self, project: ProjectId, credential: Credential) -> BoxFuture<'static, Self::Value> {
        let client = self.client.clone();
        async move { client.list_connections(&project, &credential).await }.boxed()
    }
}

impl Fetch<ShowKey> for ProjectLoader {
    type Value = Outcome<Option<Arc<ConnectionDto>>>;
    fn calls(&self) -> &Calls<ShowKey, Self::Value> {
        &self.shows
    }
    fn project(key: &ShowKey) -> &ProjectId {
        &key.0
    }
    fn refused(e: Arc<UpstreamError>) -> Self::Value {
        Outcome(Err(e))
    }
    fn start(
        &self,
        ShowKey(project, id): ShowKey,
        credential: Credential,
    ) -> BoxFuture<'static, Self::Value> {
        let client = self.client.clone();
        async move { Outcome(client.show_connection(&project, &id, &credential).await) }.boxed()
    }
}

impl Fetch<EnhancedShowKey> for ProjectLoader {
    type Value = Outcome<Option<Arc<EnhancedConnectionDto>>>;
    fn calls(&self) -> &Calls<EnhancedShowKey, Self::Value> {
        &self.enhanced_shows
    }
    fn project(key: &EnhancedShowKey) -> &ProjectId {
        &key.0
    }
    fn refused(e: Arc<UpstreamError>) -> Self::Value {
        Outcome(Err(e))
    }
    fn start(
        &self,
        EnhancedShowKey(project, id): EnhancedShowKey,
        credential: Credential,
    ) -> BoxFuture<'static, Self::Value> {
        let client = self.client.clone();
        async move { Outcome(client.show_enhanced_connection(&project, &id, &credential).await) }.boxed()
    }
}

impl Fetch<PrivilegesKey> for ProjectLoader {
    type Value = Outcome<Option<Arc<PrivilegesResponse>>>;
    fn calls(&self) -> &Calls<PrivilegesKey, Self::Value> {
        &self.privileges
    }
    fn project(key: &PrivilegesKey) -> &ProjectId {
        &key.0
    }
    fn refused(e: Arc<UpstreamError>) -> Self::Value {
        Outcome(Err(e))
    }
    fn start(
        &self,
        PrivilegesKey(project, id): PrivilegesKey,
        credential: Credential,
    ) -> BoxFuture<'static, Self::Value> {
        let client = self.client.clone();
        async move { Outcome(client.enhanced_connection_privileges(&project, &id, &credential).await) }
            .boxed()
    }
}

impl Fetch<EnhancedListKey> for ProjectLoader {
    type Value = Outcome<Arc<EnhancedListResponse>>;
    fn calls(&self) -> &Calls<EnhancedListKey, Self::Value> {
        &self.enhanced_lists
    }
    fn project(key: &EnhancedListKey) -> &ProjectId {
        &key.0
    }
    fn refused(e: Arc<UpstreamError>) -> Self::Value {
        Outcome(Err(e))
    }
    fn start(
        &self,
        EnhancedListKey(project, query): EnhancedListKey,
        credential: Credential,
    ) -> BoxFuture<'static, Self::Value> {
        let client = self.client.clone();
        async move { Outcome(client.list_enhanced_connections(&project, &query, &credential).await) }.boxed()
    }
}
