//! Byte layouts: stored values, merge-operand keys, change records.
//!
//! ```text
//! stored value   kind u8 | flags u8 | [expires_at u64] | [seq u64] | payload
//!                kind 1 = value, 2 = tombstone (merge families only)
//!                flags bit 0 = has expires_at (Unix seconds), bit 1 = has seq
//! operand key    escaped(user key) | 00 00 | seq u64 | index u32   (escaped: 00 -> 00 ff)
//! change record  seq u64 | op count u32 | op...
//! op             tag u8 | family (u16 len) | key (u32 len) | value (u32 len)
//!                tag 1 put (value = stored value), 2 delete, 3 merge (value = operand),
//!                    4 create family (value = options JSON), 5 drop family
//! ```
//! Integers are big-endian, so keys that embed them sort numerically.

use crate::error::{Error, Result};

const KIND_VALUE: u8 = 1;
const KIND_TOMBSTONE: u8 = 2;
const HAS_EXPIRY: u8 = 1;
const HAS_SEQ: u8 = 2;

/// A decoded stored value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Stored<'a> {
    pub(crate) tombstone: bool,
    pub(crate) expires_at: Option<u64>,
    /// The sequence that wrote it (merge families: older operands no longer apply).
    pub(crate) seq: Option<u64>,
    pub(crate) payload: &'a [u8],
}

impl Stored<'_> {
    pub(crate) fn expired(&self, now: u64) -> bool {
        self.expires_at.is_some_and(|at| at <= now)
    }
}

pub(crate) fn encode_value(payload: &[u8], expires_at: Option<u64>, seq: Option<u64>) -> Vec<u8> {
    encode(KIND_VALUE, payload, expires_at, seq)
}

pub(crate) fn encode_tombstone(seq: u64) -> Vec<u8> {
    encode(KIND_TOMBSTONE, &[], None, Some(seq))
}

fn encode(kind: u8, payload: &[u8], expires_at: Option<u64>, seq: Option<u64>) -> Vec<u8> {
    let mut out = Vec::with_capacity(payload.len() + 18);
    let flags =
        if expires_at.is_some() { HAS_EXPIRY } else { 0 } | if seq.is_some() { HAS_SEQ } else { 0 };
    out.extend_from_slice(&[kind, flags]);
    if let Some(at) = expires_at {
        out.extend_from_slice(&at.to_be_bytes());
    }
    if let Some(seq) = seq {
        out.extend_from_slice(&seq.to_be_bytes());
    }
    out.extend_from_slice(payload);
    out
}

pub(crate) fn decode_value(bytes: &[u8]) -> Result<Stored<'_>> {
    let corrupt =
        || Error::Corrupt(format!("stored value of {} bytes has a bad header", bytes.len()));
    let (head, rest) = bytes.split_first_chunk::<2>().ok_or_else(corrupt)?;
    let [kind, flags] = *head;
    if !matches!(kind, KIND_VALUE | KIND_TOMBSTONE) || flags & !(HAS_EXPIRY | HAS_SEQ) != 0 {
        return Err(corrupt());
    }
    let mut rest = rest;
    let mut take_u64 = |present: bool| -> Result<Option<u64>> {
        if !present {
            return Ok(None);
        }
        let (n, tail) = rest.split_first_chunk::<8>().ok_or_else(corrupt)?;
        rest = tail;
        Ok(Some(u64::from_be_bytes(*n)))
    };
    let expires_at = take_u64(flags & HAS_EXPIRY != 0)?;
    let seq = take_u64(flags & HAS_SEQ != 0)?;
    Ok(Stored { tombstone: kind == KIND_TOMBSTONE, expires_at, seq, payload: rest })
}

/// The expiry of a stored value, without decoding the rest: what the LSM compaction filter
/// asks of every entry it sees.
pub(crate) fn expires_at(bytes: &[u8]) -> Option<u64> {
    match bytes {
        [KIND_VALUE, flags, rest @ ..] if flags & HAS_EXPIRY != 0 => {
            rest.first_chunk::<8>().map(|b| u64::from_be_bytes(*b))
        }
        _ => None,
    }
}

/// Order-preserving escape: `00` becomes `00 ff`, then `00 00` ends the key.
pub(crate) fn escape_key(key: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(key.len() + 2);
    for &b in key {
        out.push(b);
        if b == 0 {
            out.push(0xff);
        }
    }
    out.extend_from_slice(&[0, 0]);
    out
}

/// The key of one merge operand of `key`: the `index`th op of the batch committed at `seq`.
pub(crate) fn operand_key(key: &[u8], seq: u64, index: u32) -> Vec<u8> {
    let mut out = escape_key(key);
    out.extend_from_slice(&seq.to_be_bytes());
    out.extend_from_slice(&index.to_be_bytes());
    out
}

/// Splits an operand key into user key and seq.
pub(crate) fn decode_operand_key(bytes: &[u8]) -> Result<(Vec<u8>, u64)> {
    let corrupt = || Error::Corrupt("merge operand key does not decode".into());
    let mut key = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match (bytes[i], bytes.get(i + 1)) {
            (0, Some(0xff)) => {
                key.push(0);
                i += 2;
            }
            (0, Some(0)) => {
                let rest = bytes.get(i + 2..).filter(|r| r.len() == 12).ok_or_else(corrupt)?;
                return Ok((key, u64::from_be_bytes(rest[..8].try_into().map_err(|_| corrupt())?)));
            }
            (0, _) => return Err(corrupt()),
            (b, _) => {
                key.push(b);
                i += 1;
            }
        }
    }
    Err(corrupt())
}

/// One operation of a committed batch, as the change log records it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ChangeOp {
    /// `value` is the stored value (with its TTL and seq header).
    Put {
        family: String,
        key: Vec<u8>,
        value: Vec<u8>,
    },
    Delete {
        family: String,
        key: Vec<u8>,
    },
    Merge {
        family: String,
        key: Vec<u8>,
        operand: Vec<u8>,
    },
    CreateFamily {
        family: String,
        options_json: Vec<u8>,
    },
    DropFamily {
        family: String,
    },
}

/// A committed batch: its sequence number and operations.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Change {
    pub seq: u64,
    pub ops: Vec<ChangeOp>,
}

impl Change {
    /// Parses a change record: the bytes the change log keeps and delta segments carry.
    pub fn decode(bytes: &[u8]) -> Result<Self> {
        decode_change(bytes)
    }

    /// The change record's bytes, as the change log keeps them.
    pub fn encode(&self) -> Vec<u8> {
        encode_change(self.seq, &self.ops)
    }
}

pub(crate) fn encode_change(seq: u64, ops: &[ChangeOp]) -> Vec<u8> {
    let mut out = Vec::with_capacity(64);
    out.extend_from_slice(&seq.to_be_bytes());
    out.extend_from_slice(&(ops.len() as u32).to_be_bytes());
    for op in ops {
        let (tag, family, key, value): (u8, &str, &[u8], &[u8]) = match op {
            ChangeOp::Put { family, key, value } => (1, family, key, value),
            ChangeOp::Delete { family, key } => (2, family, key, &[]),
            ChangeOp::Merge { family, key, operand } => (3, family, key, operand),
            ChangeOp::CreateFamily { family, options_json } => (4, family, &[], options_json),
            ChangeOp::DropFamily { family } => (5, family, &[], &[]),
        };
        out.push(tag);
        out.extend_from_slice(&(family.len() as u16).to_be_bytes());
        out.extend_from_slice(family.as_bytes());
        out.extend_from_slice(&(key.len() as u32).to_be_bytes());
        out.extend_from_slice(key);
        out.extend_from_slice(&(value.len() as u32).to_be_bytes());
        out.extend_from_slice(value);
    }
    out
}

/// Reads length-prefixed fields from a byte slice.
pub(crate) struct Reader<'a> {
    bytes: &'a [u8],
    what: &'static str,
}

impl<'a> Reader<'a> {
    pub(crate) fn new(bytes: &'a [u8], what: &'static str) -> Self {
        Self { bytes, what }
    }

    fn corrupt(&self) -> Error {
        Error::Corrupt(format!("{} is truncated", self.what))
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.bytes.is_empty()
    }

    pub(crate) fn take(&mut self, n: usize) -> Result<&'a [u8]> {
        if self.bytes.len() < n {
            return Err(self.corrupt());
        }
        let (head, tail) = self.bytes.split_at(n);
        self.bytes = tail;
        Ok(head)
    }

    pub(crate) fn u8(&mut self) -> Result<u8> {
        Ok(self.take(1)?[0])
    }

    pub(crate) fn u64(&mut self) -> Result<u64> {
        Ok(u64::from_be_bytes(self.take(8)?.try_into().expect("8 bytes")))
    }

    pub(crate) fn bytes16(&mut self) -> Result<&'a [u8]> {
        let n = u16::from_be_bytes(self.take(2)?.try_into().expect("2 bytes")) as usize;
        self.take(n)
    }

    pub(crate) fn bytes32(&mut self) -> Result<&'a [u8]> {
        let n = u32::from_be_bytes(self.take(4)?.try_into().expect("4 bytes")) as usize;
        self.take(n)
    }

    pub(crate) fn string16(&mut self) -> Result<String> {
        String::from_utf8(self.bytes16()?.to_vec())
            .map_err(|_| Error::Corrupt(format!("{} holds a name that is not UTF-8", self.what)))
    }
}

pub(crate) fn decode_change(bytes: &[u8]) -> Result<Change> {
    let mut r = Reader::new(bytes, "change record");
    let seq = r.u64()?;
    let count = u32::from_be_bytes(r.take(4)?.try_into().expect("4 bytes"));
    let mut ops = Vec::with_capacity(count.min(1 << 16) as usize);
    for _ in 0..count {
        let tag = r.u8()?;
        let family = r.string16()?;
        let key = r.bytes32()?.to_vec();
        let value = r.bytes32()?.to_vec();
        ops.push(match tag {
            1 => ChangeOp::Put { family, key, value },
            2 => ChangeOp::Delete { family, key },
            3 => ChangeOp::Merge { family, key, operand: value },
            4 => ChangeOp::CreateFamily { family, options_json: value },
            5 => ChangeOp::DropFamily { family },
            other => {
                return Err(Error::Corrupt(format!("change record has unknown op tag {other}")));
            }
        });
    }
    if !r.is_empty() {
        return Err(Error::Corrupt("change record has trailing bytes".into()));
    }
    Ok(Change { seq, ops })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn values_round_trip_with_and_without_headers() {
        for (expiry, seq) in [(None, None), (Some(5), None), (None, Some(9)), (Some(5), Some(9))] {
            let bytes = encode_value(b"payload", expiry, seq);
            let d = decode_value(&bytes).unwrap();
            assert_eq!(
                (d.tombstone, d.expires_at, d.seq, d.payload),
                (false, expiry, seq, &b"payload"[..])
            );
            assert_eq!(expires_at(&bytes), expiry);
        }
        let t = encode_tombstone(7);
        assert!(decode_value(&t).unwrap().tombstone);
        assert!(decode_value(&[9, 0]).is_err());
        assert!(decode_value(&[1, 1, 0]).is_err());
    }

    #[test]
    fn change_records_round_trip() {
        let ops = vec![
            ChangeOp::Put {
                family: "a".into(),
                key: b"k".to_vec(),
                value: encode_value(b"v", Some(3), None),
            },
            ChangeOp::Delete { family: "a".into(), key: b"gone".to_vec() },
            ChangeOp::Merge {
                family: "counters".into(),
                key: b"c".to_vec(),
                operand: 5i64.to_le_bytes().to_vec(),
            },
            ChangeOp::CreateFamily { family: "b".into(), options_json: b"{}".to_vec() },
            ChangeOp::DropFamily { family: "b".into() },
        ];
        let bytes = encode_change(42, &ops);
        assert_eq!(decode_change(&bytes).unwrap(), Change { seq: 42, ops });
        assert!(decode_change(&bytes[..bytes.len() - 1]).is_err());
    }

    proptest! {
        #[test]
        fn operand_keys_sort_like_user_keys_then_seq(
            a in proptest::collection::vec(any::<u8>(), 0..12),
            b in proptest::collection::vec(any::<u8>(), 0..12),
            sa in any::<u64>(),
            sb in any::<u64>(),
            ia in any::<u32>(),
            ib in any::<u32>(),
        ) {
            let (ka, kb) = (operand_key(&a, sa, ia), operand_key(&b, sb, ib));
            prop_assert_eq!(ka.cmp(&kb), (a.clone(), sa, ia).cmp(&(b.clone(), sb, ib)));
            prop_assert_eq!(decode_operand_key(&ka).unwrap(), (a, sa));
        }
    }
}
