//! The per-request DataLoader: one upstream call per distinct project per request (and,
//! through [`SharedClient`], at most one in flight per project and credential across requests).

use std::{collections::HashMap, convert::Infallible, sync::Arc};

use async_graphql::dataloader::{DataLoader, HashMapCache, Loader};

use crate::{
    error::UpstreamError,
    project_id::ProjectId,
    upstream::{Credential, ListOutcome, SharedClient},
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
}

/// The DataLoader type stored in each request's data. Its cache lives as long as the
/// request, so later fields (nested or entity lookups) reuse the first answer.
pub type ProjectDataLoader = DataLoader<ProjectLoader, HashMapCache>;

impl ProjectLoader {
    /// A DataLoader for one GraphQL request made with `credential`.
    pub fn data_loader(client: SharedClient, credential: Option<Credential>) -> ProjectDataLoader {
        DataLoader::with_cache(Self { client, credential }, tokio::spawn, HashMapCache::default())
    }
}

impl Loader<ProjectId> for ProjectLoader {
    type Value = ProjectResult;
    type Error = Infallible;

    async fn load(&self, keys: &[ProjectId]) -> Result<HashMap<ProjectId, ProjectResult>, Infallible> {
        let Some(credential) = &self.credential else {
            // Nothing to authenticate with: no upstream call at all.
            let err = Arc::new(UpstreamError::NoCredentials);
            return Ok(keys.iter().map(|k| (k.clone(), Err(err.clone()))).collect());
        };
        let calls = keys.iter().map(|project| async move {
            let result = self.client.list_connections(project, credential).await;
            (project.clone(), result)
        });
        Ok(futures::future::join_all(calls).await.into_iter().collect())
    }
}
