//! Turning a batch into engine writes and change-log records, at its sequence number; and
//! replaying change-log records (imports) into the same engine writes.
//!
//! In a merge family, a merge that follows a put or delete of the same key in the same batch
//! is folded into that put at once (its base is known, nothing is read), so operands stored
//! for a key always come from batches that did not also set the key.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use crate::batch::{BatchOp, Expiry, WriteBatch};
use crate::codec::{ChangeOp, decode_value, encode_tombstone, encode_value, operand_key};
use crate::commit::Prepared;
use crate::error::{Error, Result};
use crate::family::Family;
use crate::store::Op;

/// Longest key, in bytes.
pub const MAX_KEY_BYTES: usize = 16 << 10;
/// Longest value, in bytes.
pub const MAX_VALUE_BYTES: usize = 256 << 20;

pub(crate) type Families = BTreeMap<String, Arc<Family>>;

fn family<'a>(families: &'a Families, name: &str) -> Result<&'a Arc<Family>> {
    families.get(name).ok_or_else(|| Error::NoSuchFamily(name.to_owned()))
}

fn check_key(key: &[u8]) -> Result<()> {
    if key.is_empty() || key.len() > MAX_KEY_BYTES {
        return Err(Error::invalid(format!(
            "keys must be 1 to {MAX_KEY_BYTES} bytes, not {}",
            key.len()
        )));
    }
    Ok(())
}

/// A key of a merge family that this batch already set: where its put is, and its value.
struct Known {
    at: usize,
    base: Option<Vec<u8>>,
    expires_at: Option<u64>,
}

/// The engine writes of one batch at one sequence number.
struct Builder<'a> {
    seq: u64,
    ops: Vec<Op>,
    known: HashMap<(&'a str, &'a [u8]), Known>,
}

impl<'a> Builder<'a> {
    fn new(seq: u64, capacity: usize) -> Self {
        Self { seq, ops: Vec::with_capacity(capacity), known: HashMap::new() }
    }

    /// Stores `stored` (already encoded); `base` is its payload, for merges that follow.
    fn put(
        &mut self,
        fam: &Family,
        name: &'a str,
        key: &'a [u8],
        stored: Vec<u8>,
        base: &[u8],
        expires_at: Option<u64>,
    ) {
        if fam.merge.is_some() {
            self.known.insert(
                (name, key),
                Known { at: self.ops.len(), base: Some(base.to_vec()), expires_at },
            );
        }
        self.ops.push(Op::Put { keyspace: fam.data.clone(), key: key.to_vec(), value: stored });
    }

    fn delete(&mut self, fam: &Family, name: &'a str, key: &'a [u8]) {
        if fam.merge.is_some() {
            // A tombstone, so operands older than it no longer apply.
            self.known
                .insert((name, key), Known { at: self.ops.len(), base: None, expires_at: None });
            self.ops.push(Op::Put {
                keyspace: fam.data.clone(),
                key: key.to_vec(),
                value: encode_tombstone(self.seq),
            });
        } else {
            self.ops.push(Op::Remove { keyspace: fam.data.clone(), key: key.to_vec() });
        }
    }

    /// The `index`th op of the batch: an operand, or folded into this batch's put of the key.
    fn merge(
        &mut self,
        fam: &Family,
        name: &'a str,
        key: &'a [u8],
        operand: &[u8],
        index: usize,
    ) -> Result<()> {
        let Some(operator) = &fam.merge else {
            return Err(Error::invalid(format!("family {name:?} has no merge operator")));
        };
        if let Some(known) = self.known.get_mut(&(name, key)) {
            let merged = operator
                .merge(key, known.base.as_deref(), &[operand])
                .map_err(|e| Error::Merge(format!("{}: {e}", operator.name())))?;
            let value = encode_value(&merged, known.expires_at, Some(self.seq));
            self.ops[known.at] = Op::Put { keyspace: fam.data.clone(), key: key.to_vec(), value };
            known.base = Some(merged);
            return Ok(());
        }
        let operands = fam.operands.as_ref().expect("merge families have operands");
        let index = u32::try_from(index)
            .map_err(|_| Error::invalid("a batch may hold at most 2^32 ops"))?;
        self.ops.push(Op::Put {
            keyspace: operands.clone(),
            key: operand_key(key, self.seq, index),
            value: operand.to_vec(),
        });
        Ok(())
    }
}

/// Prepares a user batch committed at `seq`, the clock reading `now`.
pub(crate) fn prepare(
    families: &Families,
    batch: &WriteBatch,
    seq: u64,
    now: u64,
) -> Result<Prepared> {
    let mut builder = Builder::new(seq, batch.len());
    let mut changes = Vec::with_capacity(batch.len());
    for (index, op) in batch.ops.iter().enumerate() {
        match op {
            BatchOp::Put { family: name, key, value, expiry } => {
                let fam = family(families, name)?;
                check_key(key)?;
                if value.len() > MAX_VALUE_BYTES {
                    return Err(Error::invalid(format!(
                        "values may be at most {MAX_VALUE_BYTES} bytes"
                    )));
                }
                let expires_at = match expiry {
                    Expiry::Default => {
                        fam.options.default_ttl_seconds.map(|ttl| now.saturating_add(ttl))
                    }
                    Expiry::Never => None,
                    Expiry::After(seconds) => Some(now.saturating_add(*seconds)),
                    Expiry::At(at) => Some(*at),
                };
                let stored = encode_value(value, expires_at, fam.merge.as_ref().map(|_| seq));
                builder.put(fam, name, key, stored.clone(), value, expires_at);
                changes.push(ChangeOp::Put {
                    family: name.clone(),
                    key: key.clone(),
                    value: stored,
                });
            }
            BatchOp::Delete { family: name, key } => {
                let fam = family(families, name)?;
                check_key(key)?;
                builder.delete(fam, name, key);
                changes.push(ChangeOp::Delete { family: name.clone(), key: key.clone() });
            }
            BatchOp::Merge { family: name, key, operand } => {
                let fam = family(families, name)?;
                check_key(key)?;
                builder.merge(fam, name, key, operand, index)?;
                changes.push(ChangeOp::Merge {
                    family: name.clone(),
                    key: key.clone(),
                    operand: operand.clone(),
                });
            }
        }
    }
    Ok(Prepared { ops: builder.ops, changes })
}

/// The engine writes of a change record, for replay: puts keep their stored values (TTL and
/// all); deletes and merges are rebuilt exactly as `prepare` built them.
pub(crate) fn replay(families: &Families, seq: u64, changes: &[ChangeOp]) -> Result<Vec<Op>> {
    let mut builder = Builder::new(seq, changes.len());
    for (index, change) in changes.iter().enumerate() {
        match change {
            ChangeOp::Put { family: name, key, value } => {
                let fam = family(families, name)?;
                let stored = decode_value(value)?;
                builder.put(fam, name, key, value.clone(), stored.payload, stored.expires_at);
            }
            ChangeOp::Delete { family: name, key } => {
                builder.delete(family(families, name)?, name, key)
            }
            ChangeOp::Merge { family: name, key, operand } => {
                builder.merge(family(families, name)?, name, key, operand, index)?;
            }
            ChangeOp::CreateFamily { .. } | ChangeOp::DropFamily { .. } => {
                return Err(Error::Import("family changes are replayed by the caller".into()));
            }
        }
    }
    Ok(builder.ops)
}
