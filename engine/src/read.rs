//! Reading logical values: decode, hide what expired, fold pending merge operands.

use std::ops::Bound;

use crate::codec::{self, decode_operand_key, decode_value, operand_key};
use crate::error::{Error, Result};
use crate::family::Family;
use crate::store::{KeyRange, RawIter, StoreSnapshot};

/// A value as read, and how many operands were folded to get it (for the background fold).
pub(crate) struct Read {
    pub(crate) value: Option<Vec<u8>>,
    pub(crate) operands: usize,
}

/// The logical value of a plain (merge-less) family's stored bytes, reusing their buffer.
pub(crate) fn plain(mut stored: Vec<u8>, now: u64) -> Result<Option<Vec<u8>>> {
    let v = decode_value(&stored)?;
    if v.tombstone || v.expired(now) {
        return Ok(None);
    }
    let header = stored.len() - v.payload.len();
    stored.drain(..header);
    Ok(Some(stored))
}

/// Reads one key through a snapshot.
pub(crate) fn get(snapshot: &StoreSnapshot, family: &Family, key: &[u8], now: u64) -> Result<Read> {
    let stored = snapshot.get(&family.data, key)?;
    let Some(operands_ks) = &family.operands else {
        let value = stored.map(|s| plain(s, now)).transpose()?.flatten();
        return Ok(Read { value, operands: 0 });
    };
    let base = stored.as_deref().map(decode_value).transpose()?;
    let base_seq = base.as_ref().and_then(|b| b.seq).unwrap_or(0);
    let base_value = base.as_ref().filter(|b| !b.tombstone && !b.expired(now)).map(|b| b.payload);
    let range = KeyRange {
        lower: Bound::Included(operand_key(key, base_seq.saturating_add(1), 0)),
        upper: Bound::Included(operand_key(key, u64::MAX, u32::MAX)),
    };
    let operands: Vec<Vec<u8>> = snapshot
        .range(operands_ks, &range, false)?
        .map(|r| r.map(|(_, v)| v))
        .collect::<Result<_>>()?;
    let value = fold(family, key, base_value, &operands)?;
    Ok(Read { value, operands: operands.len() })
}

/// Applies a family's merge operator; no operands means the base as it is.
pub(crate) fn fold(
    family: &Family,
    key: &[u8],
    base: Option<&[u8]>,
    operands: &[Vec<u8>],
) -> Result<Option<Vec<u8>>> {
    if operands.is_empty() {
        return Ok(base.map(<[u8]>::to_vec));
    }
    let op = family.merge.as_ref().expect("operands exist only in merge families");
    let refs: Vec<&[u8]> = operands.iter().map(Vec::as_slice).collect();
    op.merge(key, base, &refs)
        .map(Some)
        .map_err(|e| Error::Merge(format!("{} on key of {} bytes: {e}", op.name(), key.len())))
}

/// The smallest key greater than every key starting with `prefix`, if any.
pub(crate) fn prefix_end(prefix: &[u8]) -> Option<Vec<u8>> {
    let mut end = prefix.to_vec();
    while let Some(last) = end.pop() {
        if last < u8::MAX {
            end.push(last + 1);
            return Some(end);
        }
    }
    None
}

/// The operand-key range holding the operands of every user key in `range`.
fn operand_range(range: &KeyRange) -> KeyRange {
    let lower = match &range.lower {
        Bound::Included(k) => Bound::Included(codec::escape_key(k)),
        Bound::Excluded(k) => Bound::Excluded(operand_key(k, u64::MAX, u32::MAX)),
        Bound::Unbounded => Bound::Unbounded,
    };
    let upper = match &range.upper {
        Bound::Included(k) => Bound::Included(operand_key(k, u64::MAX, u32::MAX)),
        Bound::Excluded(k) => Bound::Excluded(codec::escape_key(k)),
        Bound::Unbounded => Bound::Unbounded,
    };
    KeyRange { lower, upper }
}

/// Logical key-value pairs of a family range, in key order (or reverse).
pub struct Iter {
    inner: Inner,
}

enum Inner {
    Plain { raw: RawIter, now: u64 },
    Merged(Box<MergeJoin>),
}

/// Merge operands in key order: (user key, seq, operand).
type OperandIter = Box<dyn Iterator<Item = Result<(Vec<u8>, u64, Vec<u8>)>> + Send>;

struct MergeJoin {
    family: Family,
    data: std::iter::Peekable<RawIter>,
    operands: std::iter::Peekable<OperandIter>,
    reverse: bool,
    now: u64,
}

impl std::fmt::Debug for Iter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Iter")
    }
}

impl Iter {
    pub(crate) fn new(
        snapshot: &StoreSnapshot,
        family: &Family,
        range: &KeyRange,
        reverse: bool,
        now: u64,
    ) -> Result<Self> {
        let raw = snapshot.range(&family.data, range, reverse)?;
        let Some(operands_ks) = &family.operands else {
            return Ok(Self { inner: Inner::Plain { raw, now } });
        };
        let operands: OperandIter =
            Box::new(snapshot.range(operands_ks, &operand_range(range), reverse)?.map(|item| {
                let (k, v) = item?;
                let (key, seq) = decode_operand_key(&k)?;
                Ok((key, seq, v))
            }));
        Ok(Self {
            inner: Inner::Merged(Box::new(MergeJoin {
                family: family.clone(),
                data: raw.peekable(),
                operands: operands.peekable(),
                reverse,
                now,
            })),
        })
    }
}

impl Iterator for Iter {
    type Item = Result<(Vec<u8>, Vec<u8>)>;

    fn next(&mut self) -> Option<Self::Item> {
        match &mut self.inner {
            Inner::Plain { raw, now } => loop {
                let (key, stored) = match raw.next()? {
                    Ok(pair) => pair,
                    Err(e) => return Some(Err(e)),
                };
                match plain(stored, *now) {
                    Ok(Some(value)) => return Some(Ok((key, value))),
                    Ok(None) => continue,
                    Err(e) => return Some(Err(e)),
                }
            },
            Inner::Merged(join) => join.next(),
        }
    }
}

impl MergeJoin {
    /// The next key either side holds, in iteration order.
    fn next_key(&mut self) -> Result<Option<Vec<u8>>> {
        let data = match self.data.peek() {
            Some(Ok((k, _))) => Some(k.clone()),
            Some(Err(_)) => return Err(self.data.next().expect("peeked").unwrap_err()),
            None => None,
        };
        let operand = match self.operands.peek() {
            Some(Ok((k, _, _))) => Some(k.clone()),
            Some(Err(_)) => return Err(self.operands.next().expect("peeked").unwrap_err()),
            None => None,
        };
        Ok(match (data, operand) {
            (Some(d), Some(o)) => Some(if (d <= o) != self.reverse { d } else { o }),
            (d, o) => d.or(o),
        })
    }

    fn next(&mut self) -> Option<Result<(Vec<u8>, Vec<u8>)>> {
        loop {
            let key = match self.next_key() {
                Ok(Some(key)) => key,
                Ok(None) => return None,
                Err(e) => return Some(Err(e)),
            };
            let stored = match self.data.peek() {
                Some(Ok((k, _))) if *k == key => self.data.next().map(|r| r.expect("peeked ok").1),
                _ => None,
            };
            let mut operands = Vec::new();
            while let Some(Ok((k, _, _))) = self.operands.peek() {
                if *k != key {
                    break;
                }
                let (_, seq, operand) = self.operands.next().expect("peeked").expect("peeked ok");
                operands.push((seq, operand));
            }
            if self.reverse {
                operands.reverse();
            }
            match self.resolve(&key, stored.as_deref(), operands) {
                Ok(Some(value)) => return Some(Ok((key, value))),
                Ok(None) => continue,
                Err(e) => return Some(Err(e)),
            }
        }
    }

    fn resolve(
        &self,
        key: &[u8],
        stored: Option<&[u8]>,
        operands: Vec<(u64, Vec<u8>)>,
    ) -> Result<Option<Vec<u8>>> {
        let base = stored.map(decode_value).transpose()?;
        let base_seq = base.as_ref().and_then(|b| b.seq).unwrap_or(0);
        let base_value =
            base.as_ref().filter(|b| !b.tombstone && !b.expired(self.now)).map(|b| b.payload);
        let live: Vec<Vec<u8>> =
            operands.into_iter().filter(|(seq, _)| *seq > base_seq).map(|(_, o)| o).collect();
        fold(&self.family, key, base_value, &live)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefix_end_is_the_next_prefix() {
        assert_eq!(prefix_end(b"ab"), Some(b"ac".to_vec()));
        assert_eq!(prefix_end(b"a\xff"), Some(b"b".to_vec()));
        assert_eq!(prefix_end(b"\xff\xff"), None);
        assert_eq!(prefix_end(b""), None);
    }
}
