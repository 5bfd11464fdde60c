//! Streaming segment decoder: yields the decompressed payload and verifies the trailer at the
//! end, with memory bounded by zstd's window, not by the segment's size.

use std::io::{self, BufRead, Cursor, Read};

use sha2::{Digest, Sha256};

use super::verifier::{TailSplitter, seal};
use super::{
    HEADER_LEN, SegmentError, SegmentHeader, VerifiedSegment, WINDOW_LOG_MAX, ZSTD_FRAME_MAGIC,
};

const CHUNK: usize = 64 * 1024;

/// A `BufRead` over everything but the last 32 bytes of `inner`, hashing what it hands out.
struct ReleasedBytes<R> {
    inner: R,
    splitter: TailSplitter,
    hasher: Sha256,
    chunk: Vec<u8>,
    pending: Vec<u8>,
    pos: usize,
    size: u64,
    eof: bool,
}

impl<R: Read> ReleasedBytes<R> {
    fn new(inner: R) -> Self {
        Self {
            inner,
            splitter: TailSplitter::default(),
            hasher: Sha256::new(),
            chunk: vec![0; CHUNK],
            pending: Vec::with_capacity(CHUNK + 32),
            pos: 0,
            size: 0,
            eof: false,
        }
    }

    /// Reads `inner` to its end and checks the trailer against everything released; returns
    /// the total size and the segment id.
    fn finish(mut self) -> Result<(u64, [u8; 32]), SegmentError> {
        // Anything the decompressor left unread (after an error) still counts for the hash.
        io::copy(&mut self, &mut io::sink())?;
        let trailer = self.splitter.trailer().ok_or(SegmentError::Truncated(self.size))?;
        let (computed, id) = seal(self.hasher);
        if computed != trailer {
            return Err(SegmentError::TrailerMismatch {
                expected: hex::encode(trailer),
                computed: hex::encode(computed),
            });
        }
        Ok((self.size, id))
    }
}

impl<R: Read> Read for ReleasedBytes<R> {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        let available = self.fill_buf()?;
        let n = available.len().min(out.len());
        out[..n].copy_from_slice(&available[..n]);
        self.consume(n);
        Ok(n)
    }
}

impl<R: Read> BufRead for ReleasedBytes<R> {
    fn fill_buf(&mut self) -> io::Result<&[u8]> {
        while self.pos == self.pending.len() && !self.eof {
            self.pending.clear();
            self.pos = 0;
            let n = self.inner.read(&mut self.chunk)?;
            if n == 0 {
                self.eof = true;
                break;
            }
            self.size += n as u64;
            let Self { splitter, hasher, chunk, pending, .. } = self;
            splitter.push(&chunk[..n], |bytes| {
                hasher.update(bytes);
                pending.extend_from_slice(bytes);
            });
        }
        Ok(&self.pending[self.pos..])
    }

    fn consume(&mut self, amount: usize) {
        self.pos = (self.pos + amount).min(self.pending.len());
    }
}

type Payload<R> = io::Chain<Cursor<[u8; 4]>, ReleasedBytes<R>>;

/// Reads a segment: [`header`](Self::header) is known at once, `Read` yields the decompressed
/// payload, and [`finish`](Self::finish) verifies the trailer.
///
/// Payload bytes are provisional until `finish` returns `Ok`: write them somewhere you can
/// discard (a temporary file, an unpublished batch) and commit only after it (`CLI-5`).
pub struct SegmentReader<R: Read> {
    header: SegmentHeader,
    decoder: zstd::stream::read::Decoder<'static, Payload<R>>,
    payload_len: u64,
}

impl<R: Read> std::fmt::Debug for SegmentReader<R> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SegmentReader").field("header", &self.header).finish_non_exhaustive()
    }
}

impl<R: Read> SegmentReader<R> {
    /// Reads and validates the header and the start of the payload.
    pub fn new(inner: R) -> Result<Self, SegmentError> {
        let mut released = ReleasedBytes::new(inner);
        let mut header = [0u8; HEADER_LEN];
        let mut magic = [0u8; 4];
        let truncated = |released: &ReleasedBytes<R>, e: io::Error| match e.kind() {
            io::ErrorKind::UnexpectedEof => SegmentError::Truncated(released.size),
            _ => SegmentError::Io(e),
        };
        if let Err(e) = released.read_exact(&mut header) {
            return Err(truncated(&released, e));
        }
        let header = SegmentHeader::decode(&header)?;
        if let Err(e) = released.read_exact(&mut magic) {
            return Err(truncated(&released, e));
        }
        if magic != ZSTD_FRAME_MAGIC {
            return Err(SegmentError::NotZstd);
        }
        let mut decoder =
            zstd::stream::read::Decoder::with_buffer(Cursor::new(magic).chain(released))?;
        decoder.window_log_max(WINDOW_LOG_MAX)?;
        Ok(Self { header, decoder, payload_len: 0 })
    }

    pub fn header(&self) -> SegmentHeader {
        self.header
    }

    /// Decompressed bytes read so far.
    pub fn payload_len(&self) -> u64 {
        self.payload_len
    }

    /// Reads whatever payload is left, then verifies length and trailer.
    ///
    /// Call it also after a `read` error: when the bytes do not match their trailer, that is
    /// the reported reason, whatever the decompressor made of them.
    pub fn finish(mut self) -> Result<VerifiedSegment, SegmentError> {
        let decoded = io::copy(&mut self, &mut io::sink());
        let (_, released) = self.decoder.finish().into_inner();
        let (size, id) = released.finish()?;
        decoded.map_err(SegmentError::Corrupt)?;
        Ok(VerifiedSegment { header: self.header, size, id })
    }
}

impl<R: Read> Read for SegmentReader<R> {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        let n = self.decoder.read(out)?;
        self.payload_len += n as u64;
        Ok(n)
    }
}
