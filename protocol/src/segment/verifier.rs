//! Push-style verification of a segment as its bytes arrive, without decompressing.
//!
//! A function feeds request body chunks in and learns, at the end, whether the body is a
//! well-formed segment (`SEG-1` to `SEG-6`) and what its id is (`SEG-7`), in one SHA-256 pass:
//! the hash of everything but the trailer is the trailer's expected value, and the same hash
//! state extended by the trailer is the id.

use sha2::{Digest, Sha256};

use super::{HEADER_LEN, SegmentError, SegmentHeader, TRAILER_LEN, ZSTD_FRAME_MAGIC};

/// Holds back the last `TRAILER_LEN` bytes of a stream, releasing everything before them.
#[derive(Debug, Default)]
pub(crate) struct TailSplitter {
    tail: [u8; TRAILER_LEN],
    len: usize,
}

impl TailSplitter {
    /// Feeds `data`; `release` receives, in order, every byte now known not to be trailer.
    pub(crate) fn push(&mut self, data: &[u8], mut release: impl FnMut(&[u8])) {
        let total = self.len + data.len();
        if total <= TRAILER_LEN {
            self.tail[self.len..total].copy_from_slice(data);
            self.len = total;
            return;
        }
        let release_len = total - TRAILER_LEN;
        let from_tail = release_len.min(self.len);
        if from_tail > 0 {
            release(&self.tail[..from_tail]);
        }
        let from_data = release_len - from_tail;
        if from_data > 0 {
            release(&data[..from_data]);
        }
        let mut next = [0u8; TRAILER_LEN];
        let kept = self.len - from_tail;
        next[..kept].copy_from_slice(&self.tail[from_tail..self.len]);
        next[kept..].copy_from_slice(&data[from_data..]);
        self.tail = next;
        self.len = TRAILER_LEN;
    }

    /// The held-back bytes, if a full trailer's worth arrived.
    pub(crate) fn trailer(&self) -> Option<[u8; TRAILER_LEN]> {
        (self.len == TRAILER_LEN).then_some(self.tail)
    }
}

/// What verification proved about a complete segment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct VerifiedSegment {
    pub header: SegmentHeader,
    /// Total length in bytes, trailer included.
    pub size: u64,
    /// SHA-256 of the complete file: the segment's id.
    pub id: [u8; 32],
}

impl VerifiedSegment {
    /// The id as lower-case hex, as it appears in manifests and URLs.
    pub fn id_hex(&self) -> String {
        hex::encode(self.id)
    }
}

/// Incremental segment checker: `update` with every chunk, then `finish`.
#[derive(Debug, Default)]
pub struct SegmentVerifier {
    splitter: TailSplitter,
    hasher: Sha256,
    /// Header plus the first bytes of the payload, until the zstd magic has been checked.
    prefix: Vec<u8>,
    header: Option<SegmentHeader>,
    released: u64,
}

const PREFIX_LEN: usize = HEADER_LEN + ZSTD_FRAME_MAGIC.len();

impl SegmentVerifier {
    pub fn new() -> Self {
        Self::default()
    }

    /// The header, once its 40 bytes have arrived and validated.
    pub fn header(&self) -> Option<SegmentHeader> {
        self.header
    }

    /// Feeds the next chunk. Fails as soon as the header or payload start is known to be bad.
    pub fn update(&mut self, data: &[u8]) -> Result<(), SegmentError> {
        let Self { splitter, hasher, prefix, released, .. } = self;
        splitter.push(data, |bytes| {
            hasher.update(bytes);
            *released += bytes.len() as u64;
            if prefix.len() < PREFIX_LEN {
                let want = (PREFIX_LEN - prefix.len()).min(bytes.len());
                prefix.extend_from_slice(&bytes[..want]);
            }
        });
        self.check_prefix()
    }

    fn check_prefix(&mut self) -> Result<(), SegmentError> {
        if self.header.is_none() && self.prefix.len() >= HEADER_LEN {
            let bytes: &[u8; HEADER_LEN] = self.prefix[..HEADER_LEN].try_into().expect("40 bytes");
            self.header = Some(SegmentHeader::decode(bytes)?);
        }
        if self.prefix.len() == PREFIX_LEN && self.prefix[HEADER_LEN..] != ZSTD_FRAME_MAGIC {
            return Err(SegmentError::NotZstd);
        }
        Ok(())
    }

    /// SHA-256 of every byte fed so far, valid segment or not: for a complete segment, its id.
    /// Hashing goes on after `update` reported a defect, so a caller can still tell whether the
    /// bytes were at least the ones that were signed.
    pub fn digest(&self) -> [u8; 32] {
        let mut hasher = self.hasher.clone();
        hasher.update(&self.splitter.tail[..self.splitter.len]);
        hasher.finalize().into()
    }

    /// Checks length, header, payload start and trailer, and returns the segment's id.
    pub fn finish(self) -> Result<VerifiedSegment, SegmentError> {
        let size = self.released + self.splitter.len as u64;
        let (Some(trailer), Some(header), true) =
            (self.splitter.trailer(), self.header, self.prefix.len() == PREFIX_LEN)
        else {
            return Err(SegmentError::Truncated(size));
        };
        let (computed, id) = seal(self.hasher);
        if computed != trailer {
            return Err(SegmentError::TrailerMismatch {
                expected: hex::encode(trailer),
                computed: hex::encode(computed),
            });
        }
        Ok(VerifiedSegment { header, size, id })
    }
}

/// From the hash state over header and payload: the trailer those bytes must end with, and
/// the id of the file they make once that trailer is appended.
pub(crate) fn seal(hasher: Sha256) -> ([u8; TRAILER_LEN], [u8; 32]) {
    let mut with_trailer = hasher.clone();
    let trailer: [u8; TRAILER_LEN] = hasher.finalize().into();
    with_trailer.update(trailer);
    (trailer, with_trailer.finalize().into())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn splitter_releases_all_but_the_last_32_bytes_whatever_the_chunking(
            data in proptest::collection::vec(any::<u8>(), 0..300),
            cuts in proptest::collection::vec(0usize..300, 0..8),
        ) {
            let mut cuts: Vec<usize> = cuts.into_iter().map(|c| c.min(data.len())).collect();
            cuts.sort();
            let mut splitter = TailSplitter::default();
            let mut released = Vec::new();
            let mut start = 0;
            for cut in cuts.into_iter().chain([data.len()]) {
                splitter.push(&data[start..cut], |b| released.extend_from_slice(b));
                start = cut;
            }
            if data.len() >= TRAILER_LEN {
                let split = data.len() - TRAILER_LEN;
                prop_assert_eq!(&released[..], &data[..split]);
                prop_assert_eq!(&splitter.trailer().unwrap()[..], &data[split..]);
            } else {
                prop_assert!(released.is_empty());
                prop_assert!(splitter.trailer().is_none());
            }
        }
    }
}
