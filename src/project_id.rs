//! [`ProjectId`] and [`ConnectionId`]: the client input that reaches upstream URLs.
//!
//! Parsed once at the edge ("parse, don't validate"); everything downstream takes these
//! types, so an unchecked string can never become part of an upstream path.

use std::{fmt, sync::Arc};

/// Longest project id accepted. Huawei Cloud project ids are 32 hex characters; 64 leaves
/// room for sub-projects and test ids without letting a client build huge URLs.
pub const MAX_LEN: usize = 64;

/// A validated DLI project id: `^[A-Za-z0-9_-]{1,64}$`.
///
/// Cheap to clone (shared string) because every connection view carries one.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ProjectId(Arc<str>);

/// Why a string is not a valid project id. The message never echoes the input: hostile
/// ids may hold control characters or be very long.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum InvalidProjectId {
    /// The id is empty.
    #[error("projectId must not be empty")]
    Empty,
    /// The id is longer than [`MAX_LEN`].
    #[error("projectId must be at most 64 characters")]
    TooLong,
    /// The id holds a character outside `A-Z a-z 0-9 _ -`.
    #[error("projectId may only contain letters, digits, '_' and '-'")]
    BadCharacter,
}

/// `^[A-Za-z0-9_-]{1,64}$`, or which rule `raw` breaks.
fn check(raw: &str) -> Result<(), InvalidProjectId> {
    if raw.is_empty() {
        return Err(InvalidProjectId::Empty);
    }
    if raw.len() > MAX_LEN {
        return Err(InvalidProjectId::TooLong);
    }
    if !raw.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-') {
        return Err(InvalidProjectId::BadCharacter);
    }
    Ok(())
}

impl ProjectId {
    /// Validates `raw` as a project id.
    pub fn parse(raw: &str) -> Result<Self, InvalidProjectId> {
        check(raw).map(|()| Self(Arc::from(raw)))
    }

    /// The id as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for ProjectId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for ProjectId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&*self.0, f)
    }
}

/// A validated datasource connection id (classic `connection_id` or enhanced `id`), with the
/// same rule as project ids: `^[A-Za-z0-9_-]{1,64}$` (DLI's are UUIDs).
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ConnectionId(Arc<str>);

/// Why a string is not a valid connection id. Never echoes the input.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum InvalidConnectionId {
    /// The id is empty.
    #[error("the connection id must not be empty")]
    Empty,
    /// The id is longer than [`MAX_LEN`].
    #[error("the connection id must be at most 64 characters")]
    TooLong,
    /// The id holds a character outside `A-Z a-z 0-9 _ -`.
    #[error("the connection id may only contain letters, digits, '_' and '-'")]
    BadCharacter,
}

impl ConnectionId {
    /// Validates `raw` as a connection id.
    pub fn parse(raw: &str) -> Result<Self, InvalidConnectionId> {
        match check(raw) {
            Ok(()) => Ok(Self(Arc::from(raw))),
            Err(InvalidProjectId::Empty) => Err(InvalidConnectionId::Empty),
            Err(InvalidProjectId::TooLong) => Err(InvalidConnectionId::TooLong),
            Err(InvalidProjectId::BadCharacter) => Err(InvalidConnectionId::BadCharacter),
        }
    }

    /// The id as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for ConnectionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for ConnectionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&*self.0, f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_huawei_style_ids() {
        for ok in ["0123456789abcdef0123456789abcdef", "p1", "A_b-9", &"x".repeat(64)] {
            assert_eq!(ProjectId::parse(ok).map(|p| p.to_string()), Ok(ok.to_string()));
        }
    }

    #[test]
    fn rejects_hostile_ids() {
        let cases = [
            ("", InvalidProjectId::Empty),
            (&*"x".repeat(65), InvalidProjectId::TooLong),
            ("../x", InvalidProjectId::BadCharacter),
            ("a/b", InvalidProjectId::BadCharacter),
            ("a?b", InvalidProjectId::BadCharacter),
            ("a#b", InvalidProjectId::BadCharacter),
            ("%2e%2e", InvalidProjectId::BadCharacter),
            ("a\nb", InvalidProjectId::BadCharacter),
            ("a b", InvalidProjectId::BadCharacter),
            ("é", InvalidProjectId::BadCharacter),
            (".", InvalidProjectId::BadCharacter),
        ];
        for (raw, want) in cases {
            assert_eq!(ProjectId::parse(raw), Err(want), "{raw:?}");
            assert!(ConnectionId::parse(raw).is_err(), "{raw:?}");
        }
    }

    #[test]
    fn connection_ids_follow_the_project_id_rule() {
        let uuid = "75419c22-7a31-42e4-a3f3-102f6e6895c9";
        assert_eq!(ConnectionId::parse(uuid).map(|c| c.to_string()), Ok(uuid.to_owned()));
        assert_eq!(ConnectionId::parse(""), Err(InvalidConnectionId::Empty));
        assert_eq!(ConnectionId::parse(&"a".repeat(65)), Err(InvalidConnectionId::TooLong));
        assert_eq!(ConnectionId::parse("a/../b"), Err(InvalidConnectionId::BadCharacter));
    }
}
