//! JSON documents: the manifest a function keeps per subtree, and the bodies of restore,
//! persist and flush (SPEC.md sections "Manifest", "Restore", "Persist and flush").
//!
//! Every document carries `wkp_version`; readers ignore fields they do not know (`VER-4`).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::endpoint::{Endpoint, SegmentId};
use crate::ids::Subtree;
use crate::segment::{SegmentHeader, SegmentKind, VerifiedSegment};
use crate::version;

/// The `wkp_version` value this crate writes.
pub fn wkp_version() -> String {
    version::CURRENT.to_string()
}

/// Identity and shape of one segment.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct SegmentDescriptor {
    pub id: SegmentId,
    pub kind: SegmentKind,
    pub base_seq: u64,
    pub first_seq: u64,
    pub last_seq: u64,
    /// Length of the complete segment file in bytes.
    pub size: u64,
}

impl SegmentDescriptor {
    pub fn header(&self) -> SegmentHeader {
        SegmentHeader {
            kind: self.kind,
            base_seq: self.base_seq,
            first_seq: self.first_seq,
            last_seq: self.last_seq,
        }
    }

    pub fn from_header(header: SegmentHeader, id: SegmentId, size: u64) -> Self {
        Self {
            id,
            kind: header.kind,
            base_seq: header.base_seq,
            first_seq: header.first_seq,
            last_seq: header.last_seq,
            size,
        }
    }

    /// True when both describe the same sequence range and kind, whatever their bytes.
    pub fn same_range(&self, other: &SegmentDescriptor) -> bool {
        self.header() == other.header()
    }
}

impl From<&VerifiedSegment> for SegmentDescriptor {
    fn from(v: &VerifiedSegment) -> Self {
        Self::from_header(v.header, SegmentId(v.id), v.size)
    }
}

/// A committed segment as the manifest records it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChainEntry {
    #[serde(flatten)]
    pub segment: SegmentDescriptor,
    /// Lengths of the stored parts, in order; they sum to `size` (`LARGE-5`).
    pub parts: Vec<u64>,
    /// Generation of the writer that committed it.
    pub generation: u64,
    /// Unix seconds.
    pub committed_at: u64,
}

/// The latest committed state of a subtree (`MAN-1` to `MAN-4`).
///
/// Kept as numbered, create-only versions: version `n + 1` can only be written once, so
/// writing it is a compare-and-swap on version `n` that works on every store.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Manifest {
    pub wkp_version: String,
    pub version: u64,
    /// The generation allowed to write; 0 before any claim.
    pub generation: u64,
    /// True once that generation flushed (`FLUSH-2`).
    pub writer_closed: bool,
    /// The state the chain produces.
    pub last_seq: u64,
    pub chain: Vec<ChainEntry>,
    /// Unix seconds when this version was written.
    pub created_at: u64,
    /// Random id of the write that created this version, to resolve ambiguous retries
    /// (`IDEM-4`).
    pub put_id: String,
}

impl Manifest {
    /// The manifest of a subtree nobody has written to: version 0, generation 0, empty chain.
    pub fn empty() -> Self {
        Self {
            wkp_version: wkp_version(),
            version: 0,
            generation: 0,
            writer_closed: false,
            last_seq: 0,
            chain: Vec::new(),
            created_at: 0,
            put_id: String::new(),
        }
    }

    /// Total bytes of the chain's segments.
    pub fn chain_bytes(&self) -> u64 {
        self.chain.iter().map(|e| e.segment.size).sum()
    }

    /// The committed entry with exactly this id, if any.
    pub fn find(&self, id: &SegmentId) -> Option<&ChainEntry> {
        self.chain.iter().find(|e| &e.segment.id == id)
    }
}

/// The limits a function advertises; clients adapt to them (`LARGE-1`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Limits {
    /// Largest request body the function accepts: an inline segment or one part.
    pub max_inline_bytes: u64,
    /// Largest body the function returns from one segment fetch.
    pub max_response_bytes: u64,
    /// Largest segment it accepts at all.
    pub max_segment_bytes: u64,
    /// Most parts one segment may have.
    pub max_parts: u64,
    /// Whether `presign=true` part uploads are offered.
    pub presign_upload: bool,
    /// Whether restore plans carry presigned download URLs.
    pub presign_download: bool,
}

/// How long a restore plan's segments are guaranteed to stay readable (`RET-2`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Retention {
    pub grace_seconds: u64,
}

/// A presigned HTTP request the client sends straight to the object store (`LARGE-4`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PresignedRequest {
    pub method: String,
    pub url: String,
    /// Headers the client must send exactly as given (they are part of the presigned request).
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    /// Unix seconds after which the URL no longer works.
    pub expires_at: u64,
}

/// A presigned download of bytes `offset .. offset + length` of a segment.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PresignedRange {
    pub offset: u64,
    pub length: u64,
    #[serde(flatten)]
    pub request: PresignedRequest,
}

/// One segment of a restore plan.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PlannedSegment {
    #[serde(flatten)]
    pub segment: SegmentDescriptor,
    pub generation: u64,
    /// Direct downloads covering the segment in order, when the function offers them.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub download: Vec<PresignedRange>,
}

/// Data a fenced writer sent after it was superseded: kept, not applied (`GEN-5`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SupersededSegment {
    #[serde(flatten)]
    pub segment: SegmentDescriptor,
    pub parts: Vec<u64>,
    /// The stale generation that wrote it.
    pub generation: u64,
    /// The endpoint it arrived on.
    pub endpoint: Endpoint,
    /// Unix seconds.
    pub kept_at: u64,
}

/// The body of `GET /v1/restore/...` (`REST-1` to `REST-6`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RestorePlan {
    pub wkp_version: String,
    pub subtree: Subtree,
    /// 0 when the subtree is empty.
    pub manifest_version: u64,
    /// The writer generation: the newly claimed one when `claimed`, else the current one.
    pub generation: u64,
    pub claimed: bool,
    /// Whether the writer before this claim ended with a flush. False after a crash or while
    /// the previous writer may still be running.
    pub previous_writer_closed: bool,
    /// The state the chain produces.
    pub last_seq: u64,
    pub chain: Vec<PlannedSegment>,
    #[serde(default)]
    pub superseded: Vec<SupersededSegment>,
    pub limits: Limits,
    pub retention: Retention,
    /// Unix seconds until which every segment in `chain` stays readable.
    pub valid_until: u64,
}

/// The JSON body of a commit request (`LARGE-3`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CommitRequest {
    pub segment: SegmentDescriptor,
    /// Part lengths in order; part `i` starts at the sum of the lengths before it.
    pub parts: Vec<u64>,
}

/// What a persist or flush achieved.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// The segment is now part of the committed chain.
    Committed,
    /// It already was: this was a retry (`IDEM-1`).
    AlreadyCommitted,
    /// A flush with no segment closed the generation.
    Closed,
}

/// The body of a successful persist, flush or commit.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PersistResponse {
    pub wkp_version: String,
    pub outcome: Outcome,
    pub manifest_version: u64,
    pub generation: u64,
    pub last_seq: u64,
    pub chain_length: u64,
    pub chain_bytes: u64,
    /// The function suggests the next upload be a snapshot (SPEC.md section 13).
    pub snapshot_advised: bool,
    pub writer_closed: bool,
    pub limits: Limits,
}

/// The body of a successful part upload.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PartResponse {
    pub wkp_version: String,
    pub segment: SegmentId,
    pub offset: u64,
    pub length: u64,
    /// True when the part was already stored by an earlier attempt (`IDEM-3`).
    pub already_stored: bool,
}

/// The body of a successful presign request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PresignResponse {
    pub wkp_version: String,
    pub segment: SegmentId,
    pub offset: u64,
    pub length: u64,
    pub upload: PresignedRequest,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn manifest_json_is_flat_and_round_trips() {
        let id: SegmentId = "ab".repeat(32).parse().unwrap();
        let header = SegmentHeader::delta(100, 250);
        let m = Manifest {
            version: 7,
            generation: 3,
            last_seq: 250,
            chain: vec![ChainEntry {
                segment: SegmentDescriptor::from_header(header, id, 4096),
                parts: vec![4096],
                generation: 3,
                committed_at: 1_767_225_600,
            }],
            created_at: 1_767_225_600,
            put_id: "p".into(),
            ..Manifest::empty()
        };
        let json = serde_json::to_value(&m).unwrap();
        assert_eq!(json["chain"][0]["kind"], "delta");
        assert_eq!(json["chain"][0]["id"], "ab".repeat(32));
        assert_eq!(json["chain"][0]["first_seq"], 101);
        let back: Manifest = serde_json::from_value(json).unwrap();
        assert_eq!(back, m);
        assert_eq!(back.chain_bytes(), 4096);
        assert!(back.find(&id).is_some());
    }

    #[test]
    fn unknown_fields_are_ignored_for_forward_compatibility() {
        let mut json = serde_json::to_value(Manifest::empty()).unwrap();
        json["added_in_1_1"] = serde_json::json!({"x": 1});
        assert!(serde_json::from_value::<Manifest>(json).is_ok());
    }
}
