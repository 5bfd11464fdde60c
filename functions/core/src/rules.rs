//! The commit rules as pure functions of the current manifest: idempotency (`IDEM-1`,
//! `IDEM-2`), fencing (`GEN-4`, `GEN-6`), closing (`FLUSH-1`, `FLUSH-2`), chains (`CHAIN-2` to
//! `CHAIN-4`) and claims (`GEN-1`). No I/O here, so every rule is tested directly.

use serde_json::json;
use wkp1_protocol::chain::check_append;
use wkp1_protocol::manifest::{ChainEntry, Manifest, Outcome, SegmentDescriptor};
use wkp1_protocol::segment::SegmentKind;
use wkp1_protocol::{Endpoint, ErrorCode, FencingDetails, ProtocolError};

use crate::manifests::Decision;

/// Deltas in a chain beyond which a snapshot is advised.
const ADVISE_AFTER_DELTAS: usize = 64;
/// Delta bytes beyond which a snapshot is advised even when the snapshot is smaller.
const ADVISE_AFTER_BYTES: u64 = 8 << 20;

/// Whether a commit failed in a way that keeps the writer's data as superseded (`GEN-5`).
pub(crate) fn keeps_data(err: &ProtocolError) -> bool {
    matches!(err.code, ErrorCode::GenerationFenced | ErrorCode::GenerationClosed)
}

fn generation_errors(current: &Manifest, generation: u64) -> Option<ProtocolError> {
    if generation > current.generation {
        return Some(
            ProtocolError::new(
                ErrorCode::GenerationUnknown,
                format!(
                    "generation {generation} was never claimed; the current generation is {}",
                    current.generation
                ),
            )
            .requirement("GEN-6")
            .fencing(FencingDetails::refused(current.generation)),
        );
    }
    if generation < current.generation {
        return Some(
            ProtocolError::new(
                ErrorCode::GenerationFenced,
                format!(
                    "generation {generation} was superseded by generation {}",
                    current.generation
                ),
            )
            .requirement("GEN-4")
            .fencing(FencingDetails::refused(current.generation)),
        );
    }
    current.writer_closed.then(|| {
        ProtocolError::new(
            ErrorCode::GenerationClosed,
            format!("generation {generation} already flushed and closed"),
        )
        .requirement("FLUSH-2")
        .fencing(FencingDetails::refused(current.generation))
    })
}

/// Decides the commit of a verified segment by `generation` on `endpoint`.
pub(crate) fn commit(
    current: &Manifest,
    segment: &SegmentDescriptor,
    parts: &[u64],
    generation: u64,
    endpoint: Endpoint,
    now: u64,
) -> Decision<Outcome> {
    let closing = endpoint == Endpoint::Flush;
    if current.find(&segment.id).is_some() {
        return if closing && generation == current.generation && !current.writer_closed {
            Decision::Write(
                Manifest { writer_closed: true, ..current.clone() },
                Outcome::AlreadyCommitted,
            )
        } else {
            Decision::Keep(Outcome::AlreadyCommitted)
        };
    }
    if let Some(err) = generation_errors(current, generation) {
        return Decision::Reject(err);
    }
    if let Some(other) = current.chain.iter().find(|e| e.segment.same_range(segment)) {
        return Decision::Reject(
            ProtocolError::new(
                ErrorCode::SegmentConflict,
                format!(
                    "{} {}..={} is already committed as segment {}, not {}",
                    segment.kind, segment.first_seq, segment.last_seq, other.segment.id, segment.id
                ),
            )
            .requirement("IDEM-2")
            .details(json!({"committed": other.segment.id, "offered": segment.id})),
        );
    }
    if let Err(err) = check_append(current.last_seq, current.chain.len(), &segment.header()) {
        return Decision::Reject(err.into());
    }
    let entry =
        ChainEntry { segment: *segment, parts: parts.to_vec(), generation, committed_at: now };
    let mut chain = match segment.kind {
        SegmentKind::Snapshot => Vec::new(),
        SegmentKind::Delta => current.chain.clone(),
    };
    chain.push(entry);
    let next =
        Manifest { chain, last_seq: segment.last_seq, writer_closed: closing, ..current.clone() };
    Decision::Write(next, Outcome::Committed)
}

/// Decides an empty flush: close the generation.
pub(crate) fn close(current: &Manifest, generation: u64) -> Decision<Outcome> {
    if generation == current.generation && current.writer_closed {
        return Decision::Keep(Outcome::Closed);
    }
    match generation_errors(current, generation) {
        Some(err) => Decision::Reject(err),
        None => {
            Decision::Write(Manifest { writer_closed: true, ..current.clone() }, Outcome::Closed)
        }
    }
}

/// Decides a claim: the next generation, same chain, open (`GEN-1`).
pub(crate) fn claim(current: &Manifest) -> Decision<()> {
    Decision::Write(
        Manifest { generation: current.generation + 1, writer_closed: false, ..current.clone() },
        (),
    )
}

/// Whether the function should suggest a snapshot for this chain (SPEC.md section 13).
pub(crate) fn snapshot_advised(manifest: &Manifest) -> bool {
    let snapshot = manifest
        .chain
        .first()
        .filter(|e| e.segment.kind == SegmentKind::Snapshot)
        .map_or(0, |e| e.segment.size);
    let deltas = manifest.chain.iter().filter(|e| e.segment.kind == SegmentKind::Delta);
    let (count, bytes) = deltas.fold((0, 0), |(n, b), e| (n + 1, b + e.segment.size));
    count > ADVISE_AFTER_DELTAS || bytes > snapshot.max(ADVISE_AFTER_BYTES)
}

#[cfg(test)]
mod tests {
    use super::*;
    use wkp1_protocol::SegmentHeader;
    use wkp1_protocol::endpoint::SegmentId;

    fn seg(header: SegmentHeader, tag: u8) -> SegmentDescriptor {
        SegmentDescriptor::from_header(header, SegmentId([tag; 32]), 100)
    }

    fn manifest(generation: u64, chain: &[SegmentDescriptor]) -> Manifest {
        Manifest {
            version: 5,
            generation,
            last_seq: chain.last().map_or(0, |s| s.last_seq),
            chain: chain
                .iter()
                .map(|s| ChainEntry { segment: *s, parts: vec![100], generation, committed_at: 1 })
                .collect(),
            ..Manifest::empty()
        }
    }

    fn code<T: std::fmt::Debug>(d: Decision<T>) -> ErrorCode {
        match d {
            Decision::Reject(e) => e.code,
            other => panic!("expected a rejection, got {other:?}"),
        }
    }

    fn written<T>(d: Decision<T>) -> (Manifest, T) {
        match d {
            Decision::Write(m, t) => (m, t),
            Decision::Keep(_) => panic!("expected a write, got keep"),
            Decision::Reject(e) => panic!("expected a write, got {e}"),
        }
    }

    #[test]
    fn delta_extends_and_snapshot_replaces_the_chain() {
        let snap = seg(SegmentHeader::snapshot(100), 1);
        let m = manifest(3, &[snap]);
        let (next, outcome) = written(commit(
            &m,
            &seg(SegmentHeader::delta(100, 150), 2),
            &[100],
            3,
            Endpoint::Persist,
            9,
        ));
        assert_eq!(outcome, Outcome::Committed);
        assert_eq!((next.chain.len(), next.last_seq, next.writer_closed), (2, 150, false));
        let (next, _) = written(commit(
            &next,
            &seg(SegmentHeader::snapshot(150), 3),
            &[100],
            3,
            Endpoint::Persist,
            9,
        ));
        assert_eq!((next.chain.len(), next.last_seq), (1, 150));
    }

    #[test]
    fn stale_and_unknown_generations_are_refused() {
        let m = manifest(3, &[seg(SegmentHeader::snapshot(100), 1)]);
        let delta = seg(SegmentHeader::delta(100, 150), 2);
        assert_eq!(
            code(commit(&m, &delta, &[100], 2, Endpoint::Persist, 9)),
            ErrorCode::GenerationFenced
        );
        assert_eq!(
            code(commit(&m, &delta, &[100], 4, Endpoint::Persist, 9)),
            ErrorCode::GenerationUnknown
        );
        assert!(keeps_data(&ProtocolError::new(ErrorCode::GenerationFenced, "")));
        assert!(!keeps_data(&ProtocolError::new(ErrorCode::GenerationUnknown, "")));
    }

    #[test]
    fn retries_of_committed_segments_succeed_even_when_fenced() {
        let delta = seg(SegmentHeader::delta(100, 150), 2);
        let m = manifest(4, &[seg(SegmentHeader::snapshot(100), 1), delta]);
        assert!(matches!(
            commit(&m, &delta, &[100], 3, Endpoint::Persist, 9),
            Decision::Keep(Outcome::AlreadyCommitted)
        ));
        // A flush retry by the current generation also closes it.
        let (next, outcome) = written(commit(&m, &delta, &[100], 4, Endpoint::Flush, 9));
        assert_eq!(outcome, Outcome::AlreadyCommitted);
        assert!(next.writer_closed);
    }

    #[test]
    fn same_range_other_content_conflicts() {
        let delta = seg(SegmentHeader::delta(100, 150), 2);
        let m = manifest(3, &[seg(SegmentHeader::snapshot(100), 1), delta]);
        let other = seg(SegmentHeader::delta(100, 150), 9);
        assert_eq!(
            code(commit(&m, &other, &[100], 3, Endpoint::Persist, 9)),
            ErrorCode::SegmentConflict
        );
    }

    #[test]
    fn gaps_and_overlaps_are_refused() {
        let m = manifest(3, &[seg(SegmentHeader::snapshot(100), 1)]);
        let gap = seg(SegmentHeader::delta(120, 150), 2);
        let overlap = seg(SegmentHeader::delta(90, 150), 3);
        let stale_snapshot = seg(SegmentHeader::snapshot(99), 4);
        assert_eq!(code(commit(&m, &gap, &[1], 3, Endpoint::Persist, 9)), ErrorCode::ChainGap);
        assert_eq!(
            code(commit(&m, &overlap, &[1], 3, Endpoint::Persist, 9)),
            ErrorCode::ChainOverlap
        );
        assert_eq!(
            code(commit(&m, &stale_snapshot, &[1], 3, Endpoint::Persist, 9)),
            ErrorCode::ChainOverlap
        );
    }

    #[test]
    fn flush_closes_and_closed_generations_refuse_more() {
        let m = manifest(3, &[]);
        let (closed, _) =
            written(commit(&m, &seg(SegmentHeader::delta(0, 5), 1), &[1], 3, Endpoint::Flush, 9));
        assert!(closed.writer_closed);
        let more = seg(SegmentHeader::delta(5, 6), 2);
        assert_eq!(
            code(commit(&closed, &more, &[1], 3, Endpoint::Persist, 9)),
            ErrorCode::GenerationClosed
        );
        assert!(matches!(close(&closed, 3), Decision::Keep(Outcome::Closed)));
        let (reopened, ()) = written(claim(&closed));
        assert_eq!((reopened.generation, reopened.writer_closed), (4, false));
        assert_eq!(code(close(&reopened, 3)), ErrorCode::GenerationFenced);
    }

    #[test]
    fn snapshot_advice_follows_chain_length_and_bytes() {
        let mut chain = vec![seg(SegmentHeader::snapshot(0), 0)];
        for i in 0..64u64 {
            chain.push(seg(SegmentHeader::delta(i, i + 1), (i + 1) as u8));
        }
        assert!(!snapshot_advised(&manifest(1, &chain)));
        chain.push(seg(SegmentHeader::delta(64, 65), 200));
        assert!(snapshot_advised(&manifest(1, &chain)));
        let mut big = seg(SegmentHeader::delta(0, 1), 1);
        big.size = 9 << 20;
        assert!(snapshot_advised(&manifest(1, &[big])));
    }
}
