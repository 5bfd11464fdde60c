//! The segment format: one snapshot or delta, compressed and self-verifying (SPEC.md section
//! "Segments", `SEG-1` to `SEG-9`).
//!
//! ```text
//! offset  size  field
//!      0     8  magic          "WKP1SEG\0"  (57 4b 50 31 53 45 47 00)
//!      8     2  format version u16 big-endian, 1
//!     10     1  kind           1 = snapshot, 2 = delta
//!     11     1  compression    1 = zstd
//!     12     4  flags          u32 big-endian, 0 (reserved)
//!     16     8  base_seq       u64 big-endian: the state this segment applies to
//!     24     8  first_seq      u64 big-endian: first change sequence it contains
//!     32     8  last_seq       u64 big-endian: the state it produces
//!     40     n  payload        one or more zstd frames
//!   40+n    32  trailer        SHA-256 of bytes [0, 40+n)
//! ```
//!
//! A snapshot has `base_seq = first_seq = 0` and holds the whole state as of `last_seq`. A delta
//! has `first_seq = base_seq + 1 <= last_seq` and turns state `base_seq` into state `last_seq`.
//! A segment's identity (its `id` in manifests and URLs) is the SHA-256 of the complete file,
//! trailer included; the trailer lets the file verify itself without any manifest.

mod reader;
mod verifier;
mod writer;

use std::fmt;
use std::io;

use serde::{Deserialize, Serialize};

use crate::error::{ErrorCode, ProtocolError};

pub use reader::SegmentReader;
pub use verifier::{SegmentVerifier, VerifiedSegment};
pub use writer::{SegmentWriter, WrittenSegment, encode_segment};

/// The first eight bytes of every segment.
pub const MAGIC: [u8; 8] = *b"WKP1SEG\0";
/// The segment format version this crate reads and writes.
pub const FORMAT_VERSION: u16 = 1;
/// Length of the fixed header.
pub const HEADER_LEN: usize = 40;
/// Length of the SHA-256 trailer.
pub const TRAILER_LEN: usize = 32;
/// Compression byte for zstd, the only one defined.
pub const COMPRESSION_ZSTD: u8 = 1;
/// The zstd frame magic (0xFD2FB528, little-endian) every payload starts with.
pub const ZSTD_FRAME_MAGIC: [u8; 4] = [0x28, 0xb5, 0x2f, 0xfd];
/// zstd level used unless a writer asks for another.
pub const DEFAULT_LEVEL: i32 = 3;
/// Highest zstd level a writer uses: levels 1 to 19 keep the window within `WINDOW_LOG_MAX`.
pub const MAX_LEVEL: i32 = 19;
/// Largest zstd window a reader accepts, as a power of two: 8 MiB (`SEG-3`).
pub const WINDOW_LOG_MAX: u32 = 23;

/// Whether a segment holds a whole state or the changes between two states.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SegmentKind {
    Snapshot,
    Delta,
}

impl SegmentKind {
    pub fn code(self) -> u8 {
        match self {
            SegmentKind::Snapshot => 1,
            SegmentKind::Delta => 2,
        }
    }

    pub fn from_code(code: u8) -> Option<Self> {
        match code {
            1 => Some(SegmentKind::Snapshot),
            2 => Some(SegmentKind::Delta),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            SegmentKind::Snapshot => "snapshot",
            SegmentKind::Delta => "delta",
        }
    }
}

impl fmt::Display for SegmentKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The sequence fields of a segment header.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct SegmentHeader {
    pub kind: SegmentKind,
    pub base_seq: u64,
    pub first_seq: u64,
    pub last_seq: u64,
}

impl SegmentHeader {
    /// A snapshot of the whole state as of `last_seq`.
    pub fn snapshot(last_seq: u64) -> Self {
        Self { kind: SegmentKind::Snapshot, base_seq: 0, first_seq: 0, last_seq }
    }

    /// The changes that turn state `base_seq` into state `last_seq`.
    pub fn delta(base_seq: u64, last_seq: u64) -> Self {
        Self { kind: SegmentKind::Delta, base_seq, first_seq: base_seq.saturating_add(1), last_seq }
    }

    /// Checks the sequence rules of `SEG-4` and `SEG-5`.
    pub fn validate(&self) -> Result<(), SegmentError> {
        let bad = |reason: &str| Err(SegmentError::BadSequence(reason.to_owned()));
        match self.kind {
            SegmentKind::Snapshot if self.base_seq != 0 || self.first_seq != 0 => {
                bad("a snapshot must have base_seq = first_seq = 0")
            }
            SegmentKind::Delta
                if self.base_seq == u64::MAX || self.first_seq != self.base_seq + 1 =>
            {
                bad("a delta must have first_seq = base_seq + 1")
            }
            SegmentKind::Delta if self.last_seq < self.first_seq => {
                bad("a delta must have last_seq >= first_seq")
            }
            _ => Ok(()),
        }
    }

    /// The 40 header bytes.
    pub fn encode(&self) -> [u8; HEADER_LEN] {
        let mut out = [0u8; HEADER_LEN];
        out[0..8].copy_from_slice(&MAGIC);
        out[8..10].copy_from_slice(&FORMAT_VERSION.to_be_bytes());
        out[10] = self.kind.code();
        out[11] = COMPRESSION_ZSTD;
        // out[12..16]: flags, zero
        out[16..24].copy_from_slice(&self.base_seq.to_be_bytes());
        out[24..32].copy_from_slice(&self.first_seq.to_be_bytes());
        out[32..40].copy_from_slice(&self.last_seq.to_be_bytes());
        out
    }

    /// Parses and validates 40 header bytes.
    pub fn decode(bytes: &[u8; HEADER_LEN]) -> Result<Self, SegmentError> {
        if bytes[0..8] != MAGIC {
            return Err(SegmentError::BadMagic);
        }
        let version = u16::from_be_bytes([bytes[8], bytes[9]]);
        if version != FORMAT_VERSION {
            return Err(SegmentError::UnsupportedVersion(version));
        }
        let kind = SegmentKind::from_code(bytes[10]).ok_or(SegmentError::BadKind(bytes[10]))?;
        if bytes[11] != COMPRESSION_ZSTD {
            return Err(SegmentError::BadCompression(bytes[11]));
        }
        if bytes[12..16] != [0; 4] {
            return Err(SegmentError::ReservedFlags);
        }
        let u64_at = |at: usize| u64::from_be_bytes(bytes[at..at + 8].try_into().expect("8 bytes"));
        let header =
            Self { kind, base_seq: u64_at(16), first_seq: u64_at(24), last_seq: u64_at(32) };
        header.validate()?;
        Ok(header)
    }
}

/// Why bytes are not a valid segment. All of these are `invalid_segment` (422) on the wire.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SegmentError {
    #[error("read segment: {0}")]
    Io(#[from] io::Error),
    #[error("segment does not start with the WKP1SEG magic")]
    BadMagic,
    #[error("segment format version {0} is not supported (this reader knows version 1)")]
    UnsupportedVersion(u16),
    #[error("segment kind byte {0} is neither 1 (snapshot) nor 2 (delta)")]
    BadKind(u8),
    #[error("segment compression byte {0} is not 1 (zstd)")]
    BadCompression(u8),
    #[error("segment flags are not zero")]
    ReservedFlags,
    #[error("segment sequence fields are inconsistent: {0}")]
    BadSequence(String),
    #[error("segment is truncated: {0} bytes is shorter than header, one zstd frame and trailer")]
    Truncated(u64),
    #[error("segment payload does not start with a zstd frame")]
    NotZstd,
    #[error("segment payload does not decompress: {0}")]
    Corrupt(io::Error),
    #[error("segment trailer says SHA-256 {expected} but the bytes hash to {computed}")]
    TrailerMismatch { expected: String, computed: String },
}

impl SegmentError {
    /// A stable name for the defect, as used in `test-vectors/segments.json`.
    pub fn reason(&self) -> &'static str {
        match self {
            SegmentError::Io(_) => "io",
            SegmentError::BadMagic => "bad_magic",
            SegmentError::UnsupportedVersion(_) => "unsupported_version",
            SegmentError::BadKind(_) => "bad_kind",
            SegmentError::BadCompression(_) => "bad_compression",
            SegmentError::ReservedFlags => "reserved_flags",
            SegmentError::BadSequence(_) => "bad_sequence",
            SegmentError::Truncated(_) => "truncated",
            SegmentError::NotZstd => "not_zstd",
            SegmentError::Corrupt(_) => "corrupt_payload",
            SegmentError::TrailerMismatch { .. } => "trailer_mismatch",
        }
    }

    /// The requirement a segment with this defect violates.
    pub fn requirement(&self) -> &'static str {
        match self {
            SegmentError::Io(_) => "SEG-1",
            SegmentError::BadMagic | SegmentError::ReservedFlags => "SEG-1",
            SegmentError::UnsupportedVersion(_) => "SEG-2",
            SegmentError::BadKind(_) | SegmentError::BadSequence(_) => "SEG-4",
            SegmentError::BadCompression(_)
            | SegmentError::NotZstd
            | SegmentError::Corrupt(_)
            | SegmentError::Truncated(_) => "SEG-3",
            SegmentError::TrailerMismatch { .. } => "SEG-6",
        }
    }
}

impl From<SegmentError> for ProtocolError {
    fn from(err: SegmentError) -> Self {
        let requirement = err.requirement();
        ProtocolError::new(ErrorCode::InvalidSegment, err.to_string()).requirement(requirement)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_round_trips_and_is_byte_exact() {
        let h = SegmentHeader::delta(100, 250);
        let bytes = h.encode();
        assert_eq!(&bytes[0..8], b"WKP1SEG\0");
        assert_eq!(&bytes[8..12], &[0, 1, 2, 1]);
        assert_eq!(&bytes[16..24], &100u64.to_be_bytes());
        assert_eq!(&bytes[24..32], &101u64.to_be_bytes());
        assert_eq!(SegmentHeader::decode(&bytes).unwrap(), h);
    }

    #[test]
    fn header_rules_are_enforced() {
        let mut snap = SegmentHeader::snapshot(10);
        snap.base_seq = 1;
        assert!(matches!(snap.validate(), Err(SegmentError::BadSequence(_))));
        let mut d = SegmentHeader::delta(10, 20);
        d.first_seq = 12;
        assert!(matches!(d.validate(), Err(SegmentError::BadSequence(_))));
        assert!(SegmentHeader::delta(10, 10).validate().is_err());
        assert!(SegmentHeader::delta(u64::MAX, u64::MAX).validate().is_err());
        assert!(SegmentHeader::snapshot(0).validate().is_ok());

        let good = SegmentHeader::delta(1, 2).encode();
        let corrupt = |at: usize, value: u8| {
            let mut b = good;
            b[at] = value;
            SegmentHeader::decode(&b).unwrap_err()
        };
        assert!(matches!(corrupt(0, b'X'), SegmentError::BadMagic));
        assert!(matches!(corrupt(9, 2), SegmentError::UnsupportedVersion(2)));
        assert!(matches!(corrupt(10, 3), SegmentError::BadKind(3)));
        assert!(matches!(corrupt(11, 2), SegmentError::BadCompression(2)));
        assert!(matches!(corrupt(15, 1), SegmentError::ReservedFlags));
    }
}
