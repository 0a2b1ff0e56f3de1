//! Connections that change over time, as they do in DLI: a new connection sits in
//! `CREATING` with `process` climbing from 0.0 to 1.0, then turns `ACTIVE` or `FAILED`;
//! queues are bound and unbound; connections are deleted.
//!
//! A project's list is the deterministic fixture until its first change; from then on the
//! simulator keeps that project's whole list and serves it. Changes come from the Rust API
//! on [`Simulator`] (tests), from the admin routes below (scripts), or from
//! [`Simulator::animate`] (the demo):
//! - `POST /__sim/projects/{project}/connections` with `{"name", "service"}` creates a
//!   `CREATING` connection and answers `{"connection_id"}`;
//! - `PATCH /__sim/projects/{project}/connections/{id}` merges the body's top-level keys
//!   into the connection (e.g. `{"state": "ACTIVE", "process": 1}`);
//! - `DELETE /__sim/projects/{project}/connections/{id}` removes it from the list.

use std::{sync::Arc, time::Duration};

use axum::{
    Json,
    extract::{Path, State},
    http::StatusCode,
    response::{IntoResponse, Response},
};
use serde::Deserialize;
use serde_json::{Value, json};

use super::{SimState, Simulator, fixtures};

impl SimState {
    /// Applies `change` to `project`'s list (materialised from the fixture on first use;
    /// from then on it is served instead of the fixture). Returns what `change` returns.
    fn change<T>(&self, project: &str, change: impl FnOnce(&mut Vec<Value>) -> T) -> T {
        let mut live = self.live.lock();
        let list = live
            .entry(project.to_owned())
            .or_insert_with(|| fixtures::connections(project, self.opts.connections_per_project));
        change(list)
    }

    fn create(&self, project: &str, name: &str, service: &str) -> String {
        let id = format!("{:032x}", rand::random::<u128>());
        let id = format!("{}-{}-{}-{}-{}", &id[..8], &id[8..12], &id[12..16], &id[16..20], &id[20..]);
        let connection = json!({
            "is_success": true,
            "message": "",
            "connection_id": id,
            "destination": format!("{}-new.example.internal:2181", service.to_ascii_lowercase()),
            "state": "CREATING",
            "process": 0.0,
            "name": name,
            "connection_url": "",
            "cluster_name": "",
            "service": service,
            "create_time": chrono::Utc::now().timestamp_millis(),
        });
        self.change(project, |list| list.push(connection));
        id
    }

    fn patch(&self, project: &str, id: &str, patch: &serde_json::Map<String, Value>) -> bool {
        self.change(project, |list| {
            let Some(c) = list.iter_mut().find(|c| c["connection_id"] == id) else {
                return false;
            };
            if let Some(object) = c.as_object_mut() {
                for (k, v) in patch {
                    object.insert(k.clone(), v.clone());
                }
            }
            true
        })
    }

    fn remove(&self, project: &str, id: &str) -> bool {
        self.change(project, |list| {
            let before = list.len();
            list.retain(|c| c["connection_id"] != id);
            list.len() != before
        })
    }

    fn queues_of(&self, project: &str, id: &str) -> Vec<String> {
        self.change(project, |list| {
            list.iter()
                .find(|c| c["connection_id"] == id)
                .and_then(|c| c["queue_list"].as_array().cloned())
                .unwrap_or_default()
                .into_iter()
                .filter_map(|q| q.as_str().map(str::to_owned))
                .collect()
        })
    }
}

impl Simulator {
    /// Adds a `CREATING` connection (`process` 0.0) to `project`; returns its id.
    pub fn create_connection(&self, project: &str, name: &str, service: &str) -> String {
        self.state.create(project, name, service)
    }

    /// Sets the creation progress of a connection; false when it does not exist.
    pub fn set_process(&self, project: &str, id: &str, process: f64) -> bool {
        self.state.patch(project, id, &patch([("process", json!(process))]))
    }

    /// Ends creation: `ACTIVE` (`process` 1) when `ok`, else `FAILED`.
    pub fn finish_connection(&self, project: &str, id: &str, ok: bool) -> bool {
        let changes = if ok {
            patch([("state", json!("ACTIVE")), ("process", json!(1))])
        } else {
            patch([("state", json!("FAILED"))])
        };
        self.state.patch(project, id, &changes)
    }

    /// Merges `changes` (upstream field names, e.g. `state`) into a connection.
    pub fn update_connection(&self, project: &str, id: &str, changes: Value) -> bool {
        match changes {
            Value::Object(map) => self.state.patch(project, id, &map),
            _ => false,
        }
    }

    /// Binds `queue` to a connection (its `queue_list`).
    pub fn bind_queue(&self, project: &str, id: &str, queue: &str) -> bool {
        let mut queues = self.state.queues_of(project, id);
        if !queues.iter().any(|q| q == queue) {
            queues.push(queue.to_owned());
        }
        self.state.patch(project, id, &patch([("queue_list", json!(queues))]))
    }

    /// Unbinds `queue` from a connection.
    pub fn unbind_queue(&self, project: &str, id: &str, queue: &str) -> bool {
        let mut queues = self.state.queues_of(project, id);
        queues.retain(|q| q != queue);
        self.state.patch(project, id, &patch([("queue_list", json!(queues))]))
    }

    /// Removes a connection from `project`'s list; false when it does not exist.
    pub fn delete_connection(&self, project: &str, id: &str) -> bool {
        self.state.remove(project, id)
    }

    /// The ids of `project`'s connections, in list order.
    pub fn connection_ids(&self, project: &str) -> Vec<String> {
        self.state.change(project, |list| {
            list.iter().filter_map(|c| c["connection_id"].as_str().map(str::to_owned)).collect()
        })
    }

    /// Animates every project that has been listed, one step per `every`, for as long as
    /// the simulator runs: a `demo_conn_N` is created, its `process` climbs in quarters, it
    /// turns `ACTIVE` (even N) or `FAILED` (odd N), a queue is bound, and it is deleted;
    /// then the next one starts. So someone watching sees a change every step.
    pub fn animate(&self, every: Duration) {
        let state = Arc::downgrade(&self.state);
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(every);
            tick.tick().await;
            loop {
                tick.tick().await;
                let Some(state) = state.upgrade() else { return };
                let mut projects: Vec<String> = state
                    .stats
                    .lock()
                    .by_project
                    .keys()
                    .filter(|p| !p.starts_with("fault-"))
                    .cloned()
                    .collect();
                projects.sort();
                projects.truncate(100);
                for project in projects {
                    demo_step(&state, &project);
                }
            }
        });
    }
}

/// Steps of one demo connection's life; see [`Simulator::animate`].
const DEMO_STEPS: u64 = 8;

fn demo_step(state: &SimState, project: &str) {
    let step = {
        let mut steps = state.demo_steps.lock();
        let s = steps.entry(project.to_owned()).or_insert(0);
        let now = *s;
        *s += 1;
        now
    };
    let n = step / DEMO_STEPS;
    let name = format!("demo_conn_{n}");
    let id = state.change(project, |list| {
        list.iter()
            .find(|c| c["name"] == name.as_str())
            .and_then(|c| c["connection_id"].as_str().map(str::to_owned))
    });
    match (step % DEMO_STEPS, id) {
        (0, _) => {
            state.create(project, &name, if n.is_multiple_of(2) { "DWS" } else { "RDS" });
        }
        (s @ 1..=3, Some(id)) => {
            state.patch(project, &id, &patch([("process", json!(s as f64 / 4.0))]));
        }
        (4, Some(id)) => {
            let changes = if n.is_multiple_of(2) {
                patch([("state", json!("ACTIVE")), ("process", json!(1))])
            } else {
                patch([("state", json!("FAILED"))])
            };
            state.patch(project, &id, &changes);
        }
        (5, Some(id)) => {
            state.patch(project, &id, &patch([("queue_list", json!(["queue_demo"]))]));
        }
        (6, Some(id)) => {
            state.patch(project, &id, &patch([("queue_list", json!([]))]));
        }
        (7, Some(id)) => {
            state.remove(project, &id);
        }
        _ => {}
    }
}

fn patch<const N: usize>(pairs: [(&str, Value); N]) -> serde_json::Map<String, Value> {
    pairs.into_iter().map(|(k, v)| (k.to_owned(), v)).collect()
}

/// Body of `POST /__sim/projects/{project}/connections`.
#[derive(Debug, Deserialize)]
pub(super) struct NewConnection {
    name: String,
    #[serde(default = "default_service")]
    service: String,
}

fn default_service() -> String {
    "DWS".to_owned()
}

pub(super) async fn post_connection(
    State(state): State<Arc<SimState>>,
    Path(project): Path<String>,
    Json(new): Json<NewConnection>,
) -> Response {
    let id = state.create(&project, &new.name, &new.service);
    (StatusCode::CREATED, Json(json!({ "connection_id": id }))).into_response()
}

pub(super) async fn patch_connection(
    State(state): State<Arc<SimState>>,
    Path((project, id)): Path<(String, String)>,
    Json(changes): Json<serde_json::Map<String, Value>>,
) -> StatusCode {
    if state.patch(&project, &id, &changes) { StatusCode::NO_CONTENT } else { StatusCode::NOT_FOUND }
}

pub(super) async fn delete_connection(
    State(state): State<Arc<SimState>>,
    Path((project, id)): Path<(String, String)>,
) -> StatusCode {
    if state.remove(&project, &id) { StatusCode::NO_CONTENT } else { StatusCode::NOT_FOUND }
}
