//! Entity identifiers: the value of an entity's join key, validated once at the edge.

use std::fmt;

use compact_str::CompactString;

/// Longest entity id accepted anywhere (HTTP, files, events). Longer ids are rejected as
/// absurd rather than stored: they would only bloat keys and logs.
pub const MAX_ENTITY_ID_LEN: usize = 256;

/// Why a string is not a usable entity id.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EntityIdError {
    #[error("entity id is empty")]
    Empty,
    #[error("entity id is {0} bytes long; the limit is {MAX_ENTITY_ID_LEN}")]
    TooLong(usize),
    #[error("entity id contains a control character")]
    ControlCharacter,
}

/// A validated entity id (the value of a join key), kept as text whatever the key type:
/// an `int64` key `42` and a string key `"42"` address the same stored row.
///
/// Held as a [`CompactString`]: ids up to 24 bytes (nearly all: user and device ids) sit
/// inline, so the clones ingest makes per event and per flush allocate nothing, and the key
/// compares of its entity maps read no second cache line. Hashes, orders and compares as
/// its text, like a `String`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct EntityId(CompactString);

impl EntityId {
    /// Validates `raw` as an entity id.
    pub fn new(raw: impl AsRef<str>) -> Result<Self, EntityIdError> {
        let raw = raw.as_ref();
        if raw.is_empty() {
            return Err(EntityIdError::Empty);
        }
        if raw.len() > MAX_ENTITY_ID_LEN {
            return Err(EntityIdError::TooLong(raw.len()));
        }
        if raw.chars().any(char::is_control) {
            return Err(EntityIdError::ControlCharacter);
        }
        // `new`, not `from(String)`: the latter keeps a short string's heap buffer.
        Ok(Self(CompactString::new(raw)))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for EntityId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl AsRef<str> for EntityId {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rejects_absurd_ids() {
        assert_eq!(EntityId::new(""), Err(EntityIdError::Empty));
        assert_eq!(
            EntityId::new("x".repeat(300)),
            Err(EntityIdError::TooLong(300))
        );
        assert_eq!(EntityId::new("a\nb"), Err(EntityIdError::ControlCharacter));
        assert_eq!(EntityId::new("u42").unwrap().as_str(), "u42");
    }
}
