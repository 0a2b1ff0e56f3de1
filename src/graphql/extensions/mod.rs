//! async-graphql extensions: document limits checked before anything executes ([`limits`]),
//! automatic persisted queries ([`apq`]), spans and operation metrics ([`observe`]), and
//! parsed documents kept for reuse ([`document_cache`]), each operation's budget of
//! per-connection upstream calls ([`budget`]), and operation safelisting
//! ([`trusted_documents`]).

pub(crate) mod apq;
pub(crate) mod budget;
pub(crate) mod document_cache;
pub mod limits;
pub(crate) mod observe;
pub(crate) mod order;
pub(crate) mod trusted_documents;
