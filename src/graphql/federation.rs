//! Apollo Federation v2: the `Project` entity, `_entities`, `_service` and the subgraph SDL.
//!
//! Entities and keys:
//! - `Connection @key(fields: "projectId connectionId")`
//! - `Project @key(fields: "id")`
//!
//! `_entities` is resolved here rather than by async-graphql's built-in entity support,
//! because the built-in one is all-or-nothing: one failing representation turns the whole
//! non-null `_entities` list (and with it `data`) into null, and errors raised inside an
//! entity carry the path `["_entities", field]` without the entity's index, so a router
//! cannot attach them to the right entity. Here every representation resolves on its own:
//! an invalid one is `null` with a `BAD_USER_INPUT` error at `["_entities", i]`, an unknown
//! connection is `null` without an error, and the others keep their data. Lookups go through
//! the request's DataLoader, so they share one upstream call per project with each other and
//! with any `connections`/`project` field of the same request.
//!
//! Because async-graphql only writes `@key` for types that have built-in entity resolvers,
//! [`sdl`](super::sdl) adds the keys of [`ENTITY_KEYS`] to the type lines of its federation export (which
//! already carries the `@link` to the federation spec and leaves out `_entities`,
//! `_service`, `_Entity`, `_Any` and `_Service`, as a subgraph SDL must).

use std::fmt;

use async_graphql::{Any, Context, ID, Name, Object, PathSegment, SimpleObject, Union, Value};

use super::{
    connection::{Connection, ConnectionState},
    connection_list::ConnectionList,
    field::{connections_of, null_on_error},
};
use crate::{error, project_id::ProjectId};

/// Each entity type with the field set of its `@key`.
pub const ENTITY_KEYS: [(&str, &str); 2] = [("Connection", "projectId connectionId"), ("Project", "id")];

/// A DLI project. In a supergraph it is an entity (`@key(fields: "id")`): a subgraph that
/// owns projects can reach their datasource connections through this service.
#[derive(Clone)]
pub struct Project {
    id: ProjectId,
}

impl Project {
    /// The project with this (validated) id.
    pub fn new(id: ProjectId) -> Self {
        Self { id }
    }
}

/// A DLI project (a Huawei Cloud project in one region). In a supergraph it is an entity
/// keyed by `id`, so other subgraphs can add fields to it.
#[Object]
impl Project {
    /// The DLI project id (`^[A-Za-z0-9_-]{1,64}$`).
    async fn id(&self) -> ID {
        ID(self.id.as_str().to_owned())
    }

    /// The project's datasource connections, filtered server-side (like the root
    /// `connections` field). Null, with an error, when the upstream call fails.
    async fn connections(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "Only connections in this state.")] state: Option<ConnectionState>,
        #[graphql(
            desc = "Only connections to this peer service, compared case-insensitively (e.g. `DWS`, `CloudTable.OpenTSDB`)."
        )]
        service: Option<String>,
    ) -> Option<ConnectionList> {
        null_on_error(ctx, connections_of(ctx, &self.id, state, service.as_deref()).await)
    }
}

/// Any entity this subgraph resolves (the federation spec's `_Entity` union).
#[derive(Union)]
#[graphql(name = "_Entity")]
pub enum Entity {
    /// A datasource connection, keyed by `projectId connectionId`.
    Connection(Connection),
    /// A project, keyed by `id`.
    Project(Project),
}

/// The subgraph's SDL, for routers and gateways (the federation spec's `_Service`).
#[derive(SimpleObject)]
#[graphql(name = "_Service")]
pub struct Service {
    /// The Federation v2 SDL of this subgraph (the content of `schema.graphql`).
    pub sdl: String,
}

/// A representation parsed and validated: what to look up.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Representation {
    Connection { project: ProjectId, connection_id: String },
    Project(ProjectId),
}

/// Resolves `representations` in order, each on its own; see the module docs.
pub async fn entities(ctx: &Context<'_>, representations: &[Any]) -> Vec<Option<Entity>> {
    let lookups = representations.iter().enumerate().map(|(index, any)| async move {
        match resolve(ctx, &any.0).await {
            Ok(entity) => entity,
            Err(e) => {
                // The entry's own path, so the router attaches the error to this entity.
                let mut err = ctx.set_error_path(e.into_server_error(ctx.item.pos));
                err.path.push(PathSegment::Index(index));
                ctx.add_error(err);
                None
            }
        }
    });
    futures::future::join_all(lookups).await
}

async fn resolve(ctx: &Context<'_>, representation: &Value) -> async_graphql::Result<Option<Entity>> {
    match parse(representation)? {
        Representation::Project(id) => Ok(Some(Entity::Project(Project::new(id)))),
        Representation::Connection { project, connection_id } => {
            let all = connections_of(ctx, &project, None, None).await?;
            Ok(all.iter().find(|c| c.connection_id() == connection_id).map(Entity::Connection))
        }
    }
}

fn parse(representation: &Value) -> Result<Representation, async_graphql::Error> {
    let Value::Object(fields) = representation else {
        return Err(bad_representation("it must be an object"));
    };
    let get = |name: &str| fields.get(&Name::new(name));
    match get("__typename") {
        Some(Value::String(t)) if t == "Connection" => {
            let project = key_string(get("projectId"), "projectId")?;
            let connection_id = key_string(get("connectionId"), "connectionId")?;
            let project = ProjectId::parse(&project).map_err(bad_representation)?;
            Ok(Representation::Connection { project, connection_id })
        }
        Some(Value::String(t)) if t == "Project" => {
            let id = key_string(get("id"), "id")?;
            Ok(Representation::Project(ProjectId::parse(&id).map_err(bad_representation)?))
        }
        // The input is not echoed: it may be long or hold control characters.
        _ => Err(bad_representation("__typename must be \"Connection\" or \"Project\"")),
    }
}

/// A key field as text: a non-empty string, or an integer (as GraphQL's `ID` accepts).
fn key_string(value: Option<&Value>, field: &str) -> Result<String, async_graphql::Error> {
    match value {
        Some(Value::String(s)) if !s.is_empty() => Ok(s.clone()),
        Some(Value::Number(n)) if n.is_i64() || n.is_u64() => Ok(n.to_string()),
        _ => Err(bad_representation(format!("{field} must be a non-empty string"))),
    }
}

fn bad_representation(reason: impl fmt::Display) -> async_graphql::Error {
    error::bad_argument("representations", format!("invalid entity representation: {reason}"))
}

/// Adds `@key(fields: ...)` to the definition line of each type in [`ENTITY_KEYS`] of a
/// federation SDL export.
pub fn with_keys(sdl: &str) -> String {
    sdl.split_inclusive('\n')
        .map(|line| {
            let key = ENTITY_KEYS.iter().find(|(ty, _)| line.trim_end() == format!("type {ty} {{"));
            match key {
                Some((ty, fields)) => format!("type {ty} @key(fields: \"{fields}\") {{\n"),
                None => line.to_owned(),
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use async_graphql::indexmap::IndexMap;

    use super::*;

    fn object(fields: &[(&str, Value)]) -> Value {
        Value::Object(fields.iter().map(|(k, v)| (Name::new(k), v.clone())).collect::<IndexMap<_, _>>())
    }

    fn s(v: &str) -> Value {
        Value::String(v.into())
    }

    #[test]
    fn the_sdl_keys_each_entity_once_and_links_the_federation_spec() {
        let sdl = crate::graphql::schema::sdl();
        for (ty, fields) in ENTITY_KEYS {
            let line = format!("type {ty} @key(fields: \"{fields}\") {{\n");
            assert_eq!(sdl.matches(&line).count(), 1, "{line} in\n{sdl}");
        }
        assert_eq!(sdl.matches("@key(").count(), ENTITY_KEYS.len());
        assert!(sdl.contains("extend schema @link(\n\turl: \"https://specs.apollo.dev/federation/v2."));
        for federation_only in ["_entities", "_service", "_Entity", "_Any", "_Service"] {
            assert!(!sdl.contains(federation_only), "{federation_only} in the subgraph SDL");
        }
    }

    #[test]
    fn parses_both_entity_representations() {
        let conn =
            object(&[("__typename", s("Connection")), ("projectId", s("p1")), ("connectionId", s("c-1"))]);
        assert_eq!(
            parse(&conn).ok(),
            Some(Representation::Connection {
                project: ProjectId::parse("p1").expect("valid"),
                connection_id: "c-1".into()
            })
        );
        let project = object(&[("__typename", s("Project")), ("id", Value::Number(42.into()))]);
        assert_eq!(
            parse(&project).ok(),
            Some(Representation::Project(ProjectId::parse("42").expect("valid")))
        );
    }

    #[test]
    fn rejects_malformed_representations_as_bad_user_input() {
        let cases = [
            s("Connection"),
            object(&[("projectId", s("p1")), ("connectionId", s("c"))]),
            object(&[("__typename", s("Queue")), ("id", s("p1"))]),
            object(&[("__typename", s("Connection")), ("projectId", s("p1"))]),
            object(&[("__typename", s("Connection")), ("projectId", s("../x")), ("connectionId", s("c"))]),
            object(&[("__typename", s("Connection")), ("projectId", s("p1")), ("connectionId", s(""))]),
            object(&[("__typename", s("Project")), ("id", Value::Boolean(true))]),
            object(&[("__typename", s("Project")), ("id", s(&"x".repeat(65)))]),
        ];
        for case in cases {
            let err = parse(&case).expect_err("rejected");
            let ext = err.extensions.as_ref().and_then(|e| e.get("code").cloned());
            assert_eq!(ext, Some(s("BAD_USER_INPUT")), "{case}");
        }
    }
}
