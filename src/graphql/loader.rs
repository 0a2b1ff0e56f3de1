//! The per-request loader: one upstream call per distinct project per request (and, through
//! [`SharedClient`], at most one in flight per project and credential across requests).
//!
//! Every field that needs a project's list asks [`ProjectLoader::load`]. The first ask for a
//! project starts its call as a shared future and keeps it; every later ask in the same
//! request (aliases, nested `project { connections }`, `_entities`) awaits that same future.
//! Fields of one request are resolved concurrently, so asks for different projects run their
//! calls concurrently. There is no batching window: DLI has no multi-project call, so a
//! batch would only wait for nothing, and a timer-based window (async-graphql's DataLoader
//! waits 1 ms) was spent in every request's latency.

use std::{
    collections::{HashMap, HashSet},
    sync::Arc,
};

use futures::{
    FutureExt as _,
    future::{BoxFuture, Shared},
};
use parking_lot::Mutex;

use crate::{
    error::UpstreamError,
    project_id::ProjectId,
    upstream::{Credential, ListOutcome, SharedClient},
};

/// The outcome of one project's list call, shared by every field that asked for it.
pub type ProjectResult = ListOutcome;

type Call = Shared<BoxFuture<'static, ProjectResult>>;

/// Loads connection lists by project with one request's credential. Lives as long as the
/// request, so later fields reuse the first answer.
///
/// Each project carries its own result, so one failing project never fails the fields of
/// another project.
pub struct ProjectLoader {
    client: SharedClient,
    credential: Option<Credential>,
    allowed: Option<Arc<HashSet<ProjectId>>>,
    calls: Mutex<HashMap<ProjectId, Call>>,
}

impl ProjectLoader {
    /// A loader for one GraphQL request made with `credential`; projects outside `allowed`
    /// (when given) fail as `FORBIDDEN` without an upstream call.
    pub fn new(
        client: SharedClient,
        credential: Option<Credential>,
        allowed: Option<Arc<HashSet<ProjectId>>>,
    ) -> Self {
        Self { client, credential, allowed, calls: Mutex::default() }
    }

    /// The list of `project`: the call this request already made or started for it, or a
    /// new one.
    pub async fn load(&self, project: &ProjectId) -> ProjectResult {
        let call = {
            let mut calls = self.calls.lock();
            match calls.get(project) {
                Some(call) => call.clone(),
                None => {
                    let call = self.start(project.clone());
                    calls.insert(project.clone(), call.clone());
                    call
                }
            }
        };
        call.await
    }

    fn start(&self, project: ProjectId) -> Call {
        if self.allowed.as_ref().is_some_and(|allowed| !allowed.contains(&project)) {
            return futures::future::ready(Err(Arc::new(UpstreamError::ProjectNotAllowed))).boxed().shared();
        }
        let Some(credential) = self.credential.clone() else {
            // Nothing to authenticate with: no upstream call at all.
            return futures::future::ready(Err(Arc::new(UpstreamError::NoCredentials))).boxed().shared();
        };
        let client = self.client.clone();
        async move { client.list_connections(&project, &credential).await }.boxed().shared()
    }
}
