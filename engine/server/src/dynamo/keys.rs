//! Order-preserving keys: a table's hash and range key values become one engine key, so items
//! of one hash key are contiguous and sorted by range key, and Query is a range scan.
//!
//! ```text
//! key       = part(hash) | part(range)?
//! part(S)   = escaped UTF-8 | 00 00          escaped: 00 -> 00 ff
//! part(B)   = escaped bytes | 00 00
//! part(N)   = Number::sort_key               (self-terminating)
//! ```

use super::error::DynamoError;
use super::value::Value;

pub fn part(value: &Value) -> Result<Vec<u8>, DynamoError> {
    Ok(match value {
        Value::S(s) => escape(s.as_bytes()),
        Value::B(b) => escape(b),
        Value::N(n) => n.sort_key(),
        other => {
            return Err(DynamoError::validation(format!(
                "a key attribute must be S, N or B, not {}",
                other.type_name()
            )));
        }
    })
}

fn escape(bytes: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(bytes.len() + 2);
    for &b in bytes {
        out.push(b);
        if b == 0 {
            out.push(0xff);
        }
    }
    out.extend_from_slice(&[0, 0]);
    out
}

/// The engine key of an item with these key values.
pub fn encode(hash: &Value, range: Option<&Value>) -> Result<Vec<u8>, DynamoError> {
    let mut key = part(hash)?;
    if let Some(range) = range {
        key.extend(part(range)?);
    }
    Ok(key)
}

/// The first key after every key that starts with `prefix`.
pub fn prefix_end(prefix: &[u8]) -> Option<Vec<u8>> {
    let mut end = prefix.to_vec();
    while let Some(last) = end.pop() {
        if last < 0xff {
            end.push(last + 1);
            return Some(end);
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dynamo::value::Number;

    #[test]
    fn composite_keys_sort_by_hash_then_range() {
        let s = |t: &str| Value::S(t.into());
        let n = |t: &str| Value::N(Number::parse(t).unwrap());
        let keys = [
            encode(&s("a"), Some(&n("-5"))).unwrap(),
            encode(&s("a"), Some(&n("2"))).unwrap(),
            encode(&s("a"), Some(&n("10"))).unwrap(),
            encode(&s("a\0"), Some(&n("1"))).unwrap(),
            encode(&s("ab"), Some(&n("1"))).unwrap(),
        ];
        for pair in keys.windows(2) {
            assert!(pair[0] < pair[1]);
        }
        let prefix = part(&s("a")).unwrap();
        assert!(keys[..3].iter().all(|k| k.starts_with(&prefix)));
        assert!(!keys[3].starts_with(&prefix) && !keys[4].starts_with(&prefix));
        assert!(part(&Value::Bool(true)).is_err());
    }
}
