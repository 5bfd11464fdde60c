//! Merge operators: read-modify-write without the read. A merge write stores an operand; reads
//! fold the operands onto the value in write order; a background fold keeps reads cheap.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;

/// A user-defined merge. It must be associative: folding operands in groups (as the background
/// fold does) must give the same result as folding them all at once.
pub trait MergeOperator: Send + Sync + 'static {
    /// The name families refer to it by; stable across restarts.
    fn name(&self) -> &str;

    /// Folds `operands`, oldest first, onto `existing` (`None` when the key has no value).
    fn merge(
        &self,
        key: &[u8],
        existing: Option<&[u8]>,
        operands: &[&[u8]],
    ) -> Result<Vec<u8>, String>;
}

/// The operators a database knows, by name.
#[derive(Clone, Default)]
pub struct MergeOperators(BTreeMap<String, Arc<dyn MergeOperator>>);

impl MergeOperators {
    /// `int_add`, `append`, `max` and `min`.
    pub fn with_builtins() -> Self {
        let mut ops = Self::default();
        ops.register(Arc::new(IntAdd));
        ops.register(Arc::new(Append));
        ops.register(Arc::new(Extreme { name: "max", pick: std::cmp::max }));
        ops.register(Arc::new(Extreme { name: "min", pick: std::cmp::min }));
        ops
    }

    pub fn register(&mut self, operator: Arc<dyn MergeOperator>) {
        self.0.insert(operator.name().to_owned(), operator);
    }

    pub fn get(&self, name: &str) -> Option<Arc<dyn MergeOperator>> {
        self.0.get(name).cloned()
    }

    pub fn names(&self) -> Vec<&str> {
        self.0.keys().map(String::as_str).collect()
    }
}

impl fmt::Debug for MergeOperators {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.0.keys()).finish()
    }
}

/// Reads an i64 the built-ins store as 8 little-endian bytes.
pub fn decode_i64(bytes: &[u8]) -> Result<i64, String> {
    let array: [u8; 8] = bytes
        .try_into()
        .map_err(|_| format!("expected an 8-byte integer, got {} bytes", bytes.len()))?;
    Ok(i64::from_le_bytes(array))
}

/// `int_add`: values and operands are i64 (8 bytes little-endian); the sum wraps.
#[derive(Debug)]
struct IntAdd;

impl MergeOperator for IntAdd {
    fn name(&self) -> &str {
        "int_add"
    }

    fn merge(
        &self,
        _key: &[u8],
        existing: Option<&[u8]>,
        operands: &[&[u8]],
    ) -> Result<Vec<u8>, String> {
        let mut sum = existing.map(decode_i64).transpose()?.unwrap_or(0);
        for operand in operands {
            sum = sum.wrapping_add(decode_i64(operand)?);
        }
        Ok(sum.to_le_bytes().to_vec())
    }
}

/// `append`: concatenates operands onto the value.
#[derive(Debug)]
struct Append;

impl MergeOperator for Append {
    fn name(&self) -> &str {
        "append"
    }

    fn merge(
        &self,
        _key: &[u8],
        existing: Option<&[u8]>,
        operands: &[&[u8]],
    ) -> Result<Vec<u8>, String> {
        let mut out = existing.map(<[u8]>::to_vec).unwrap_or_default();
        for operand in operands {
            out.extend_from_slice(operand);
        }
        Ok(out)
    }
}

/// `max` / `min` over i64 (8 bytes little-endian).
struct Extreme {
    name: &'static str,
    pick: fn(i64, i64) -> i64,
}

impl MergeOperator for Extreme {
    fn name(&self) -> &str {
        self.name
    }

    fn merge(
        &self,
        _key: &[u8],
        existing: Option<&[u8]>,
        operands: &[&[u8]],
    ) -> Result<Vec<u8>, String> {
        let mut best = existing.map(decode_i64).transpose()?;
        for operand in operands {
            let value = decode_i64(operand)?;
            best = Some(best.map_or(value, |b| (self.pick)(b, value)));
        }
        best.map(|b| b.to_le_bytes().to_vec()).ok_or_else(|| "nothing to fold".to_owned())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn fold(name: &str, existing: Option<i64>, operands: &[i64]) -> i64 {
        let ops = MergeOperators::with_builtins();
        let op = ops.get(name).unwrap();
        let bytes: Vec<[u8; 8]> = operands.iter().map(|o| o.to_le_bytes()).collect();
        let refs: Vec<&[u8]> = bytes.iter().map(|b| &b[..]).collect();
        let existing = existing.map(|e| e.to_le_bytes());
        decode_i64(&op.merge(b"k", existing.as_ref().map(|e| &e[..]), &refs).unwrap()).unwrap()
    }

    #[test]
    fn builtins_fold_as_documented() {
        assert_eq!(fold("int_add", Some(10), &[5, -3]), 12);
        assert_eq!(fold("int_add", None, &[1, 1, 1]), 3);
        assert_eq!(fold("max", Some(4), &[9, 2]), 9);
        assert_eq!(fold("min", None, &[9, 2, 5]), 2);
        let append = MergeOperators::with_builtins().get("append").unwrap();
        assert_eq!(append.merge(b"k", Some(b"ab"), &[b"c", b"de"]).unwrap(), b"abcde");
        assert!(
            MergeOperators::with_builtins()
                .get("int_add")
                .unwrap()
                .merge(b"k", None, &[b"short"])
                .is_err()
        );
    }

    proptest! {
        /// The background fold splits operands into groups; associativity makes that safe.
        #[test]
        fn builtins_are_associative(base in proptest::option::of(any::<i64>()), ops in proptest::collection::vec(any::<i64>(), 1..20), split in any::<proptest::sample::Index>()) {
            for name in ["int_add", "max", "min"] {
                let at = split.index(ops.len());
                let all = fold(name, base, &ops);
                let grouped = if at == 0 { all } else { fold(name, Some(fold(name, base, &ops[..at])), &ops[at..]) };
                prop_assert_eq!(all, grouped, "{}", name);
            }
        }
    }
}
