//! Write batches: several writes, across families, committed atomically under one sequence
//! number.

/// When a value stops being readable.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Expiry {
    /// The family's default TTL, if it has one.
    Default,
    /// Never, whatever the family's default.
    Never,
    /// This many seconds after the write.
    After(u64),
    /// At this Unix time, in seconds.
    At(u64),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum BatchOp {
    Put { family: String, key: Vec<u8>, value: Vec<u8>, expiry: Expiry },
    Delete { family: String, key: Vec<u8> },
    Merge { family: String, key: Vec<u8>, operand: Vec<u8> },
}

/// Writes to commit together: all of them or none, one sequence number.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct WriteBatch {
    pub(crate) ops: Vec<BatchOp>,
}

impl WriteBatch {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn put(
        &mut self,
        family: &str,
        key: impl Into<Vec<u8>>,
        value: impl Into<Vec<u8>>,
    ) -> &mut Self {
        self.put_expiring(family, key, value, Expiry::Default)
    }

    pub fn put_expiring(
        &mut self,
        family: &str,
        key: impl Into<Vec<u8>>,
        value: impl Into<Vec<u8>>,
        expiry: Expiry,
    ) -> &mut Self {
        self.ops.push(BatchOp::Put {
            family: family.into(),
            key: key.into(),
            value: value.into(),
            expiry,
        });
        self
    }

    pub fn delete(&mut self, family: &str, key: impl Into<Vec<u8>>) -> &mut Self {
        self.ops.push(BatchOp::Delete { family: family.into(), key: key.into() });
        self
    }

    /// Adds an operand for the family's merge operator; the current value is not read.
    pub fn merge(
        &mut self,
        family: &str,
        key: impl Into<Vec<u8>>,
        operand: impl Into<Vec<u8>>,
    ) -> &mut Self {
        self.ops.push(BatchOp::Merge {
            family: family.into(),
            key: key.into(),
            operand: operand.into(),
        });
        self
    }

    pub fn len(&self) -> usize {
        self.ops.len()
    }

    pub fn is_empty(&self) -> bool {
        self.ops.is_empty()
    }
}
