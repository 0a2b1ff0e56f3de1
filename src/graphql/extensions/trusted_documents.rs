//! Trusted documents (operation safelisting): only the documents of a manifest run.
//!
//! The manifest is Apollo's persisted-query-manifest JSON:
//! `{"format":"apollo-persisted-query-manifest","version":1,"operations":[{"id","name","type","body"}]}`,
//! where `id` is the SHA-256 of `body` in hex. A request names its document by
//! `extensions.persistedQuery.sha256Hash` (as APQ clients send it) or by `documentId`
//! (the `id`, with or without a `sha256:` prefix), or sends the text itself, accepted when it
//! equals a listed body.
//!
//! `enforce` mode refuses every other document with `PERSISTED_QUERY_NOT_IN_LIST` before
//! anything executes, and with it any attempt to register a new APQ hash, which would
//! otherwise bypass the list. Unlisted introspection is refused too, unless allowed by
//! `--trusted-documents-allow-introspection`. `log` mode serves unlisted documents, and logs
//! and counts them, so a team can build its list from traffic.
//!
//! The file is re-read when it changes, whether rewritten in place or replaced by a rename
//! (its modification time, length and inode are compared on each use); an unreadable or
//! invalid new version leaves the last good list in use.

use std::{
    collections::{HashMap, HashSet},
    path::Path,
    sync::Arc,
};

use async_graphql::{
    Request, ServerResult, Value,
    extensions::{Extension, ExtensionContext, ExtensionFactory, NextPrepareRequest},
    parser::types::Selection,
};
use serde::Deserialize;

use crate::{
    config::{TrustedDocumentOptions, TrustedDocumentsMode},
    error::{self, ErrorCode},
    observability::metrics::Metrics,
    upstream::auth::secret_file::{SecretFileError, WatchedFile},
};

/// The request extension key under which the HTTP layer passes a request's `documentId`.
pub const DOCUMENT_ID: &str = "documentId";

/// The documents of one manifest version.
#[derive(Debug, Default)]
pub struct Manifest {
    /// Body by lower-case id.
    by_id: HashMap<String, Arc<str>>,
    bodies: HashSet<Arc<str>>,
}

#[derive(Deserialize)]
struct ManifestFile {
    format: String,
    version: u32,
    operations: Vec<ManifestOperation>,
}

#[derive(Deserialize)]
struct ManifestOperation {
    id: String,
    body: String,
}

/// Parses a manifest; the reason never quotes the file.
pub fn parse_manifest(text: &str) -> Result<Manifest, &'static str> {
    let file: ManifestFile =
        serde_json::from_str(text).map_err(|_| "is not an Apollo persisted-query manifest (JSON)")?;
    if file.format != "apollo-persisted-query-manifest" || file.version != 1 {
        return Err("must have format \"apollo-persisted-query-manifest\" and version 1");
    }
    let mut manifest = Manifest::default();
    for op in file.operations {
        let body: Arc<str> = Arc::from(op.body);
        manifest.by_id.insert(op.id.trim().to_ascii_lowercase(), body.clone());
        manifest.bodies.insert(body);
    }
    Ok(manifest)
}

/// The trusted-documents check, shared by every request.
pub struct TrustedDocuments {
    file: WatchedFile<Manifest>,
    mode: TrustedDocumentsMode,
    allow_introspection: bool,
    metrics: Option<Metrics>,
}

impl std::fmt::Debug for TrustedDocuments {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TrustedDocuments").field("file", &self.file.path()).field("mode", &self.mode).finish()
    }
}

impl TrustedDocuments {
    /// Reads the manifest of `--trusted-documents`; `Ok(None)` when none is configured.
    pub fn open(
        options: &TrustedDocumentOptions,
        metrics: Option<Metrics>,
    ) -> Result<Option<Arc<Self>>, SecretFileError> {
        let Some(path) = options.trusted_documents.as_deref() else {
            return Ok(None);
        };
        Self::from_file(path, options, metrics).map(|t| Some(Arc::new(t)))
    }

    fn from_file(
        path: &Path,
        options: &TrustedDocumentOptions,
        metrics: Option<Metrics>,
    ) -> Result<Self, SecretFileError> {
        let file = WatchedFile::open(path, parse_manifest)?;
        tracing::info!(
            file = %path.display(),
            documents = file.get().by_id.len(),
            mode = ?options.trusted_documents_mode,
            "trusted documents loaded"
        );
        Ok(Self {
            file,
            mode: options.trusted_documents_mode,
            allow_introspection: options.trusted_documents_allow_introspection,
            metrics,
        })
    }

    /// `request` with its document filled in from the manifest, or the refusal.
    fn check(&self, mut request: Request) -> ServerResult<Request> {
        let manifest = self.file.get();
        let named = named_document(&request);
        let known = match &named {
            Some(id) => match manifest.by_id.get(id) {
                Some(body) if request.query.is_empty() || request.query == **body => {
                    request.query = body.to_string();
                    // Resolved here: APQ has nothing left to look up or register.
                    request.extensions.0.remove("persistedQuery");
                    request.extensions.0.remove(DOCUMENT_ID);
                    true
                }
                _ => false,
            },
            None => manifest.bodies.contains(request.query.as_str()),
        };
        if known {
            return Ok(request);
        }
        let operation = request.operation_name.as_deref().unwrap_or("");
        let refuse = || {
            error::request_error(
                "the document is not in this server's list of trusted documents",
                ErrorCode::PersistedQueryNotInList,
            )
        };
        match self.mode {
            TrustedDocumentsMode::Enforce => {
                if self.allow_introspection && named.is_none() && is_introspection(&request.query) {
                    return Ok(request);
                }
                self.count("enforce");
                tracing::info!(operation, id = named.as_deref().unwrap_or(""), "unknown document refused");
                Err(refuse())
            }
            TrustedDocumentsMode::Log => {
                self.count("log");
                tracing::warn!(
                    operation,
                    id = named.as_deref().unwrap_or(""),
                    "document not in the trusted list (served: log mode)"
                );
                // A `documentId` alone carries no text to serve.
                if request.query.is_empty() && request.extensions.0.contains_key(DOCUMENT_ID) {
                    return Err(refuse());
                }
                request.extensions.0.remove(DOCUMENT_ID);
                Ok(request)
            }
        }
    }

    fn count(&self, mode: &'static str) {
        if let Some(m) = &self.metrics {
            m.unknown_operation(mode);
        }
    }
}

/// The lower-case document id a request names: `documentId` (any `sha256:` prefix
/// removed), else the APQ hash.
fn named_document(request: &Request) -> Option<String> {
    let string = |v: Option<&Value>| match v {
        Some(Value::String(s)) => Some(s.trim().to_ascii_lowercase()),
        _ => None,
    };
    if let Some(id) = string(request.extensions.0.get(DOCUMENT_ID)) {
        return Some(id.strip_prefix("sha256:").map(str::to_owned).unwrap_or(id));
    }
    match request.extensions.0.get("persistedQuery") {
        Some(Value::Object(pq)) => string(pq.get("sha256Hash")),
        _ => None,
    }
}

/// Whether every operation of `query` selects only `__schema`, `__type` or `__typename`.
fn is_introspection(query: &str) -> bool {
    let Ok(doc) = async_graphql::parser::parse_query(query) else {
        return false;
    };
    let mut operations = doc.operations.iter().peekable();
    operations.peek().is_some()
        && operations.all(|(_, op)| {
            op.node
                .selection_set
                .node
                .items
                .iter()
                .all(|s| matches!(&s.node, Selection::Field(f) if f.node.name.node.starts_with("__")))
        })
}

/// Registers the check as a schema extension.
pub struct TrustedDocumentsExtension(pub Arc<TrustedDocuments>);

impl ExtensionFactory for TrustedDocumentsExtension {
    fn create(&self) -> Arc<dyn Extension> {
        Arc::new(TrustedDocumentsExtension(self.0.clone()))
    }
}

#[async_trait::async_trait]
impl Extension for TrustedDocumentsExtension {
    async fn prepare_request(
        &self,
        ctx: &ExtensionContext<'_>,
        request: Request,
        next: NextPrepareRequest<'_>,
    ) -> ServerResult<Request> {
        let request = self.0.check(request)?;
        next.run(ctx, request).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn manifests_must_have_the_apollo_format() {
        let ok = r#"{"format":"apollo-persisted-query-manifest","version":1,
            "operations":[{"id":"ABC","name":"Q","type":"query","body":"{ __typename }"}]}"#;
        let m = parse_manifest(ok).expect("parses");
        assert_eq!(m.by_id.get("abc").map(|b| &**b), Some("{ __typename }"));
        assert!(parse_manifest(r#"{"format":"other","version":1,"operations":[]}"#).is_err());
        assert!(parse_manifest("not json").is_err());
    }

    #[test]
    fn introspection_means_only_meta_fields() {
        assert!(is_introspection("{ __schema { types { name } } }"));
        assert!(is_introspection("query A { __type(name: \"X\") { name } __typename }"));
        assert!(!is_introspection("{ __typename connections(projectId: \"p\") { name } }"));
        assert!(!is_introspection("{ ...F } fragment F on Query { __schema { types { name } } }"));
        assert!(!is_introspection("not graphql"));
    }
}
