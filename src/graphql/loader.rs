//! The per-request DataLoader: one upstream call per distinct key per request (and, for
//! lists, through [`SharedClient`], at most one in flight per project and credential across
//! requests).
//!
//! One loader serves every kind of call, each with its own key type (async-graphql's
//! DataLoader keeps one cache per key type): a project's classic list ([`ProjectId`]), one
//! classic connection ([`ShowKey`]), one enhanced connection ([`EnhancedShowKey`]), its
//! privileges ([`PrivilegesKey`]) and a page of enhanced connections ([`EnhancedListKey`]).

use std::{
    collections::{HashMap, HashSet},
    convert::Infallible,
    sync::Arc,
};

use async_graphql::dataloader::{DataLoader, HashMapCache, Loader};

use crate::{
    error::UpstreamError,
    observability::trace_context,
    project_id::{ConnectionId, ProjectId},
    upstream::{
        ConnectionDto, Credential, EnhancedConnectionDto, EnhancedListResponse, EnhancedQuery, ListOutcome,
        PrivilegesResponse, SharedClient,
    },
};

/// The outcome of one project's list call, shared by every field that asked for it.
pub type ProjectResult = ListOutcome;

/// Loads connection lists by project with one request's credential.
///
/// Each key carries its own result, so one failing project never fails the fields of
/// another project that happened to share its batch.
pub struct ProjectLoader {
    client: SharedClient,
    credential: Option<Credential>,
    allowed: Option<Arc<HashSet<ProjectId>>>,
}

/// The DataLoader type stored in each request's data. Its cache lives as long as the
/// request, so later fields (nested or entity lookups) reuse the first answer.
pub type ProjectDataLoader = DataLoader<ProjectLoader, HashMapCache>;

impl ProjectLoader {
    /// A DataLoader for one GraphQL request made with `credential`.
    pub fn data_loader(client: SharedClient, credential: Option<Credential>) -> ProjectDataLoader {
        Self::restricted_data_loader(client, credential, None)
    }

    /// Like [`Self::data_loader`]; projects outside `allowed` (when given) fail as
    /// `FORBIDDEN` without an upstream call.
    pub fn restricted_data_loader(
        client: SharedClient,
        credential: Option<Credential>,
        allowed: Option<Arc<HashSet<ProjectId>>>,
    ) -> ProjectDataLoader {
        // The batch task keeps the request id and span of the request that started it.
        DataLoader::with_cache(
            Self { client, credential, allowed },
            trace_context::spawn_in_context,
            HashMapCache::default(),
        )
    }
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

impl ProjectLoader {
    /// The credential to call for `project` with, or why no call may be made.
    fn gate(&self, project: &ProjectId) -> Result<&Credential, Arc<UpstreamError>> {
        if self.allowed.as_ref().is_some_and(|allowed| !allowed.contains(project)) {
            return Err(Arc::new(UpstreamError::ProjectNotAllowed));
        }
        self.credential.as_ref().ok_or_else(|| Arc::new(UpstreamError::NoCredentials))
    }

    /// Runs `call` for every key concurrently (under the client's concurrency cap), each key
    /// with its own outcome.
    async fn each<K, V, F, Fut>(
        &self,
        keys: &[K],
        project: impl Fn(&K) -> &ProjectId,
        call: F,
    ) -> HashMap<K, V>
    where
        K: Clone + Eq + std::hash::Hash,
        F: Fn(K, Credential) -> Fut,
        Fut: std::future::Future<Output = V>,
        V: From<Arc<UpstreamError>>,
    {
        let calls = keys.iter().map(|key| {
            let gate = self.gate(project(key)).cloned();
            let call = &call;
            async move {
                let value = match gate {
                    Ok(credential) => call(key.clone(), credential).await,
                    Err(e) => V::from(e),
                };
                (key.clone(), value)
            }
        });
        futures::future::join_all(calls).await.into_iter().collect()
    }
}

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

impl Loader<ShowKey> for ProjectLoader {
    type Value = Outcome<Option<Arc<ConnectionDto>>>;
    type Error = Infallible;

    async fn load(&self, keys: &[ShowKey]) -> Result<HashMap<ShowKey, Self::Value>, Infallible> {
        let client = &self.client;
        Ok(self
            .each(
                keys,
                |k| &k.0,
                |ShowKey(project, id), credential| async move {
                    Outcome(client.show_connection(&project, &id, &credential).await)
                },
            )
            .await)
    }
}

impl Loader<EnhancedShowKey> for ProjectLoader {
    type Value = Outcome<Option<Arc<EnhancedConnectionDto>>>;
    type Error = Infallible;

    async fn load(
        &self,
        keys: &[EnhancedShowKey],
    ) -> Result<HashMap<EnhancedShowKey, Self::Value>, Infallible> {
        let client = &self.client;
        Ok(self
            .each(
                keys,
                |k| &k.0,
                |EnhancedShowKey(project, id), credential| async move {
                    Outcome(client.show_enhanced_connection(&project, &id, &credential).await)
                },
            )
            .await)
    }
}

impl Loader<PrivilegesKey> for ProjectLoader {
    type Value = Outcome<Option<Arc<PrivilegesResponse>>>;
    type Error = Infallible;

    async fn load(&self, keys: &[PrivilegesKey]) -> Result<HashMap<PrivilegesKey, Self::Value>, Infallible> {
        let client = &self.client;
        Ok(self
            .each(
                keys,
                |k| &k.0,
                |PrivilegesKey(project, id), credential| async move {
                    Outcome(client.enhanced_connection_privileges(&project, &id, &credential).await)
                },
            )
            .await)
    }
}

impl Loader<EnhancedListKey> for ProjectLoader {
    type Value = Outcome<Arc<EnhancedListResponse>>;
    type Error = Infallible;

    async fn load(
        &self,
        keys: &[EnhancedListKey],
    ) -> Result<HashMap<EnhancedListKey, Self::Value>, Infallible> {
        let client = &self.client;
        Ok(self
            .each(
                keys,
                |k| &k.0,
                |EnhancedListKey(project, query), credential| async move {
                    Outcome(client.list_enhanced_connections(&project, &query, &credential).await)
                },
            )
            .await)
    }
}

impl Loader<ProjectId> for ProjectLoader {
    type Value = ProjectResult;
    type Error = Infallible;

    async fn load(&self, keys: &[ProjectId]) -> Result<HashMap<ProjectId, ProjectResult>, Infallible> {
        let mut results = HashMap::with_capacity(keys.len());
        let (keys, refused): (Vec<&ProjectId>, Vec<&ProjectId>) =
            keys.iter().partition(|k| self.allowed.as_ref().is_none_or(|allowed| allowed.contains(*k)));
        if !refused.is_empty() {
            let err = Arc::new(UpstreamError::ProjectNotAllowed);
            results.extend(refused.into_iter().map(|k| (k.clone(), Err(err.clone()))));
        }
        let Some(credential) = &self.credential else {
            // Nothing to authenticate with: no upstream call at all.
            let err = Arc::new(UpstreamError::NoCredentials);
            results.extend(keys.into_iter().map(|k| (k.clone(), Err(err.clone()))));
            return Ok(results);
        };
        let calls = keys.into_iter().map(|project| async move {
            (project.clone(), self.client.list_connections(project, credential).await)
        });
        results.extend(futures::future::join_all(calls).await);
        Ok(results)
    }
}
