//! Column families: names, options, and the engine keyspaces each one uses.

use std::sync::Arc;

use crate::error::{Error, Result};
use crate::merge::{MergeOperator, MergeOperators};
use crate::options::{Compaction, FamilyOptions};

/// Keyspace-name prefix of a family's values.
pub(crate) const DATA_PREFIX: &str = "cf.";
/// Keyspace-name prefix of a family's pending merge operands.
pub(crate) const OPERAND_PREFIX: &str = "mo.";
/// Internal keyspace: last sequence number, family definitions.
pub(crate) const META: &str = "__meta";
/// Internal keyspace: the change log, by sequence number.
pub(crate) const CHANGELOG: &str = "__changelog";
/// The family every database starts with.
pub const DEFAULT_FAMILY: &str = "default";
/// Longest family name.
pub const MAX_FAMILY_NAME: usize = 200;

/// Family names: 1 to 200 of `A-Z a-z 0-9 _ . -` (the characters DynamoDB allows in table names).
pub(crate) fn validate_name(name: &str) -> Result<()> {
    let ok = |b: u8| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-');
    if name.is_empty() || name.len() > MAX_FAMILY_NAME || !name.bytes().all(ok) {
        return Err(Error::invalid(format!(
            "family name {name:?} must be 1 to {MAX_FAMILY_NAME} characters of A-Z a-z 0-9 _ . -"
        )));
    }
    Ok(())
}

/// A family as the engine uses it.
#[derive(Clone)]
pub(crate) struct Family {
    pub(crate) name: String,
    pub(crate) options: FamilyOptions,
    pub(crate) data: String,
    /// Present when the family has a merge operator.
    pub(crate) operands: Option<String>,
    pub(crate) merge: Option<Arc<dyn MergeOperator>>,
}

impl std::fmt::Debug for Family {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Family").field("name", &self.name).field("options", &self.options).finish()
    }
}

impl Family {
    pub(crate) fn new(
        name: &str,
        options: FamilyOptions,
        registry: &MergeOperators,
    ) -> Result<Self> {
        validate_name(name)?;
        if options.compaction == Compaction::SizeTiered {
            return Err(Error::invalid(
                "size-tiered compaction is not supported yet (fjall 3 has no size-tiered strategy); use leveled or fifo",
            ));
        }
        if !(0.0..=64.0).contains(&options.bloom_bits_per_key) {
            return Err(Error::invalid("bloom_bits_per_key must be between 0 and 64"));
        }
        if options.default_ttl_seconds == Some(0) {
            return Err(Error::invalid(
                "default_ttl_seconds must be positive (omit it for no TTL)",
            ));
        }
        let merge = match &options.merge_operator {
            Some(op) => {
                Some(registry.get(op).ok_or_else(|| Error::UnknownMergeOperator(op.clone()))?)
            }
            None => None,
        };
        Ok(Self {
            name: name.to_owned(),
            data: format!("{DATA_PREFIX}{name}"),
            operands: merge.as_ref().map(|_| format!("{OPERAND_PREFIX}{name}")),
            merge,
            options,
        })
    }

    /// The meta key holding this family's options.
    pub(crate) fn meta_key(name: &str) -> Vec<u8> {
        format!("family/{name}").into_bytes()
    }
}
