//! Chain validation: a restore is a snapshot (or the empty state) followed by deltas, each
//! starting exactly where the previous one ended (SPEC.md `CHAIN-1` to `CHAIN-4`).
//!
//! ```text
//! snapshot 0..=100 ─▶ delta 101..=250 ─▶ delta 251..=300        state 300
//!                     base 100            base 250
//! ```

use crate::error::{ErrorCode, ProtocolError};
use crate::segment::{SegmentHeader, SegmentKind};

/// Where a chain breaks.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ChainError {
    #[error("segment {index} is a delta from state {base_seq}, but the chain is at state {at}: a gap of {} changes", base_seq - at)]
    Gap { index: usize, at: u64, base_seq: u64 },
    #[error(
        "segment {index} starts from state {base_seq}, but the chain is already at state {at}: it overlaps"
    )]
    Overlap { index: usize, at: u64, base_seq: u64 },
    #[error("segment {index} is a snapshot of state {last_seq}, older than the chain's state {at}")]
    StaleSnapshot { index: usize, at: u64, last_seq: u64 },
    #[error("segment {index} is a snapshot after the start of the chain")]
    SnapshotInside { index: usize },
    #[error("segment {index}: {reason}")]
    BadSegment { index: usize, reason: String },
}

impl From<ChainError> for ProtocolError {
    fn from(err: ChainError) -> Self {
        let (code, requirement) = match &err {
            ChainError::Gap { .. } => (ErrorCode::ChainGap, "CHAIN-2"),
            ChainError::Overlap { .. } | ChainError::StaleSnapshot { .. } => {
                (ErrorCode::ChainOverlap, "CHAIN-3")
            }
            ChainError::SnapshotInside { .. } => (ErrorCode::ChainOverlap, "CHAIN-1"),
            ChainError::BadSegment { .. } => (ErrorCode::InvalidSegment, "SEG-4"),
        };
        ProtocolError::new(code, err.to_string()).requirement(requirement)
    }
}

/// Whether `next` may follow a chain that has reached state `at` (0 for an empty chain).
///
/// A delta must start exactly at `at`; a snapshot may replace the chain if it is not older.
pub fn check_append(at: u64, index: usize, next: &SegmentHeader) -> Result<(), ChainError> {
    next.validate().map_err(|e| ChainError::BadSegment { index, reason: e.to_string() })?;
    match next.kind {
        SegmentKind::Snapshot if next.last_seq < at => {
            Err(ChainError::StaleSnapshot { index, at, last_seq: next.last_seq })
        }
        SegmentKind::Snapshot => Ok(()),
        SegmentKind::Delta if next.base_seq > at => {
            Err(ChainError::Gap { index, at, base_seq: next.base_seq })
        }
        SegmentKind::Delta if next.base_seq < at => {
            Err(ChainError::Overlap { index, at, base_seq: next.base_seq })
        }
        SegmentKind::Delta => Ok(()),
    }
}

/// Validates a whole restore chain and returns the state it produces.
///
/// Only the first segment may be a snapshot; a chain may also start with a delta from the
/// empty state 0. The empty chain produces state 0.
pub fn validate_chain<'a>(
    chain: impl IntoIterator<Item = &'a SegmentHeader>,
) -> Result<u64, ChainError> {
    let mut at = 0;
    for (index, segment) in chain.into_iter().enumerate() {
        if index > 0 && segment.kind == SegmentKind::Snapshot {
            return Err(ChainError::SnapshotInside { index });
        }
        check_append(at, index, segment)?;
        at = segment.last_seq;
    }
    Ok(at)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn snap(last: u64) -> SegmentHeader {
        SegmentHeader::snapshot(last)
    }
    fn delta(base: u64, last: u64) -> SegmentHeader {
        SegmentHeader::delta(base, last)
    }

    #[test]
    fn accepts_snapshot_then_contiguous_deltas() {
        assert_eq!(validate_chain(&[snap(100), delta(100, 250), delta(250, 251)]), Ok(251));
        assert_eq!(validate_chain(&[delta(0, 5), delta(5, 9)]), Ok(9));
        assert_eq!(validate_chain(&[snap(0)]), Ok(0));
        assert_eq!(validate_chain(&[]), Ok(0));
    }

    #[test]
    fn rejects_gaps_overlaps_and_wrong_bases() {
        assert_eq!(
            validate_chain(&[snap(100), delta(101, 150)]),
            Err(ChainError::Gap { index: 1, at: 100, base_seq: 101 })
        );
        assert_eq!(
            validate_chain(&[snap(100), delta(100, 150), delta(120, 170)]),
            Err(ChainError::Overlap { index: 2, at: 150, base_seq: 120 })
        );
        // A first delta that does not start from the empty state is a gap from 0.
        assert_eq!(
            validate_chain(&[delta(7, 9)]),
            Err(ChainError::Gap { index: 0, at: 0, base_seq: 7 })
        );
        assert_eq!(
            validate_chain(&[snap(10), snap(20)]),
            Err(ChainError::SnapshotInside { index: 1 })
        );
        let mut wrong_first = delta(10, 20);
        wrong_first.first_seq = 12;
        assert!(matches!(
            validate_chain(&[snap(10), wrong_first]),
            Err(ChainError::BadSegment { index: 1, .. })
        ));
    }

    #[test]
    fn append_rules_for_function_side_checks() {
        assert!(check_append(100, 0, &delta(100, 120)).is_ok());
        assert!(check_append(100, 0, &snap(100)).is_ok());
        assert!(check_append(100, 0, &snap(130)).is_ok());
        assert_eq!(
            check_append(100, 0, &snap(99)),
            Err(ChainError::StaleSnapshot { index: 0, at: 100, last_seq: 99 })
        );
        let err: ProtocolError = check_append(100, 0, &delta(101, 120)).unwrap_err().into();
        assert_eq!(err.code, ErrorCode::ChainGap);
        let err: ProtocolError = check_append(100, 0, &delta(99, 120)).unwrap_err().into();
        assert_eq!(err.code, ErrorCode::ChainOverlap);
    }

    proptest! {
        /// Any contiguous chain validates; removing any inner delta makes it fail with a gap.
        #[test]
        fn dropping_a_delta_is_always_detected(
            start in 0u64..1000,
            lens in proptest::collection::vec(1u64..50, 2..20),
            drop in any::<proptest::sample::Index>(),
        ) {
            let mut chain = vec![snap(start)];
            let mut at = start;
            for len in &lens {
                chain.push(delta(at, at + len));
                at += len;
            }
            prop_assert_eq!(validate_chain(&chain), Ok(at));
            let victim = 1 + drop.index(chain.len() - 2); // never the snapshot, never the last
            chain.remove(victim);
            let is_gap = matches!(validate_chain(&chain), Err(ChainError::Gap { .. }));
            prop_assert!(is_gap);
        }
    }
}
