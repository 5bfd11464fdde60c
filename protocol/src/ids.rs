//! Subtree identifiers (`engine`, `instance`, `replica`) and their grammar.
//!
//! ```text
//! identifier = [a-z0-9] [a-z0-9_-]{0,62}      ; 1 to 63 bytes, ASCII only
//! ```
//!
//! The grammar has no `.`, `/`, `%` or upper-case letters on purpose: no identifier can name a
//! parent directory, smuggle a separator through percent-decoding, or collide with another on a
//! case-insensitive file system (SPEC.md `ID-1`, `ID-2`).

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// The longest identifier, in bytes.
pub const MAX_IDENTIFIER_LEN: usize = 63;

/// A validated subtree identifier.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Identifier(String);

/// Why a string is not a valid identifier.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum IdentifierError {
    #[error("identifier is empty")]
    Empty,
    #[error("identifier is {len} bytes long; the limit is {MAX_IDENTIFIER_LEN}")]
    TooLong { len: usize },
    #[error("identifier must start with a lower-case letter or digit")]
    BadFirstCharacter,
    #[error("identifier contains {found:?} at byte {position}; allowed are a-z, 0-9, '_' and '-'")]
    BadCharacter { found: char, position: usize },
}

impl Identifier {
    /// Validates `value` against the identifier grammar.
    pub fn new(value: impl Into<String>) -> Result<Self, IdentifierError> {
        let value = value.into();
        validate(&value)?;
        Ok(Self(value))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

fn validate(value: &str) -> Result<(), IdentifierError> {
    let bytes = value.as_bytes();
    let Some(&first) = bytes.first() else {
        return Err(IdentifierError::Empty);
    };
    if bytes.len() > MAX_IDENTIFIER_LEN {
        return Err(IdentifierError::TooLong { len: bytes.len() });
    }
    if !(first.is_ascii_lowercase() || first.is_ascii_digit()) {
        return Err(IdentifierError::BadFirstCharacter);
    }
    for (position, found) in value.char_indices() {
        let allowed =
            found.is_ascii_lowercase() || found.is_ascii_digit() || found == '_' || found == '-';
        if !allowed {
            return Err(IdentifierError::BadCharacter { found, position });
        }
    }
    Ok(())
}

impl fmt::Display for Identifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl FromStr for Identifier {
    type Err = IdentifierError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::new(s)
    }
}

impl TryFrom<String> for Identifier {
    type Error = IdentifierError;
    fn try_from(value: String) -> Result<Self, Self::Error> {
        Self::new(value)
    }
}

impl From<Identifier> for String {
    fn from(id: Identifier) -> Self {
        id.0
    }
}

impl AsRef<str> for Identifier {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

/// The unit of ownership: one replica of one instance of one engine (`ADDR-1`).
///
/// Objects of a subtree live under `{prefix}/{engine}/{instance}/{replica}/` in the store.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Subtree {
    pub engine: Identifier,
    pub instance: Identifier,
    pub replica: Identifier,
}

/// Which part of a subtree address failed validation.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid {field}: {source}")]
pub struct SubtreeError {
    pub field: &'static str,
    #[source]
    pub source: IdentifierError,
}

impl Subtree {
    /// Validates the three identifiers, naming the first one that is wrong.
    pub fn new(engine: &str, instance: &str, replica: &str) -> Result<Self, SubtreeError> {
        let field = |field: &'static str, value: &str| {
            Identifier::new(value).map_err(|source| SubtreeError { field, source })
        };
        Ok(Self {
            engine: field("engine", engine)?,
            instance: field("instance", instance)?,
            replica: field("replica", replica)?,
        })
    }

    /// `engine/instance/replica`, the subtree's relative path in the store and in URLs.
    pub fn path(&self) -> String {
        format!("{}/{}/{}", self.engine, self.instance, self.replica)
    }
}

impl fmt::Display for Subtree {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.path())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn accepts_ordinals_names_and_separators() {
        for ok in ["0", "replica-0", "orders_v2", "a", &"x".repeat(63)] {
            assert!(Identifier::new(ok).is_ok(), "{ok:?} should be valid");
        }
    }

    #[test]
    fn rejects_traversal_separators_encodings_and_case() {
        let cases = [
            ("", IdentifierError::Empty),
            ("..", IdentifierError::BadFirstCharacter),
            (".", IdentifierError::BadFirstCharacter),
            ("a..b", IdentifierError::BadCharacter { found: '.', position: 1 }),
            ("a/b", IdentifierError::BadCharacter { found: '/', position: 1 }),
            ("a%2fb", IdentifierError::BadCharacter { found: '%', position: 1 }),
            ("a\\b", IdentifierError::BadCharacter { found: '\\', position: 1 }),
            ("Replica", IdentifierError::BadFirstCharacter),
            ("rEplica", IdentifierError::BadCharacter { found: 'E', position: 1 }),
            ("-lead", IdentifierError::BadFirstCharacter),
            ("_lead", IdentifierError::BadFirstCharacter),
            ("a b", IdentifierError::BadCharacter { found: ' ', position: 1 }),
            ("caf\u{e9}", IdentifierError::BadCharacter { found: '\u{e9}', position: 3 }),
            ("a\0", IdentifierError::BadCharacter { found: '\0', position: 1 }),
        ];
        for (input, expected) in cases {
            assert_eq!(Identifier::new(input), Err(expected), "input {input:?}");
        }
        assert_eq!(Identifier::new("x".repeat(64)), Err(IdentifierError::TooLong { len: 64 }));
    }

    #[test]
    fn subtree_error_names_the_field() {
        let err = Subtree::new("kv", "orders", "../x").unwrap_err();
        assert_eq!(err.field, "replica");
        assert!(err.to_string().starts_with("invalid replica:"));
    }

    #[test]
    fn identifiers_deserialize_only_when_valid() {
        assert!(serde_json::from_str::<Identifier>("\"ok-1\"").is_ok());
        assert!(serde_json::from_str::<Identifier>("\"../etc\"").is_err());
    }

    proptest! {
        #[test]
        fn valid_identifiers_never_contain_path_syntax(s in "\\PC{0,80}") {
            if let Ok(id) = Identifier::new(s) {
                let v = id.as_str();
                prop_assert!(!v.contains('/') && !v.contains('.') && !v.contains('%'));
                prop_assert!(!v.is_empty() && v.len() <= MAX_IDENTIFIER_LEN);
            }
        }

        #[test]
        fn grammar_strings_are_accepted(s in "[a-z0-9][a-z0-9_-]{0,62}") {
            prop_assert!(Identifier::new(s).is_ok());
        }
    }
}
