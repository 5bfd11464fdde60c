//! Streaming segment encoder: header, zstd payload, SHA-256 trailer, in one pass over the data.

use std::io::{self, Write};

use sha2::{Digest, Sha256};

use super::verifier::seal;
use super::{DEFAULT_LEVEL, MAX_LEVEL, SegmentError, SegmentHeader};

/// What a finished writer produced.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WrittenSegment {
    pub header: SegmentHeader,
    /// Bytes written, trailer included.
    pub size: u64,
    /// Payload bytes before compression.
    pub payload_len: u64,
    /// SHA-256 of the complete file: the segment's id.
    pub id: [u8; 32],
}

impl WrittenSegment {
    pub fn id_hex(&self) -> String {
        hex::encode(self.id)
    }
}

/// Writes everything through to `inner` while hashing it.
struct HashingWriter<W> {
    inner: W,
    hasher: Sha256,
    written: u64,
}

impl<W: Write> Write for HashingWriter<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hasher.update(&buf[..n]);
        self.written += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// Encodes a segment into any `Write`. Payload bytes written to it are compressed on the fly,
/// so memory stays bounded whatever the payload size.
///
/// ```
/// use std::io::Write;
/// use wkp1_protocol::segment::{SegmentHeader, SegmentWriter};
///
/// let mut out = Vec::new();
/// let mut writer = SegmentWriter::new(&mut out, SegmentHeader::delta(41, 42))?;
/// writer.write_all(b"put k v")?;
/// let segment = writer.finish()?;
/// assert_eq!(segment.size as usize, out.len());
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct SegmentWriter<W: Write> {
    header: SegmentHeader,
    encoder: zstd::stream::write::Encoder<'static, HashingWriter<W>>,
    payload_len: u64,
}

impl<W: Write> std::fmt::Debug for SegmentWriter<W> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SegmentWriter")
            .field("header", &self.header)
            .field("payload_len", &self.payload_len)
            .finish_non_exhaustive()
    }
}

impl<W: Write> SegmentWriter<W> {
    /// Starts a segment at the default zstd level.
    pub fn new(inner: W, header: SegmentHeader) -> Result<Self, SegmentError> {
        Self::with_level(inner, header, DEFAULT_LEVEL)
    }

    /// Starts a segment at zstd `level`, clamped to 1 ..= 19: higher levels use windows larger
    /// than readers must accept (`SEG-3`).
    pub fn with_level(inner: W, header: SegmentHeader, level: i32) -> Result<Self, SegmentError> {
        header.validate()?;
        let level = level.clamp(1, MAX_LEVEL);
        let mut sink = HashingWriter { inner, hasher: Sha256::new(), written: 0 };
        sink.write_all(&header.encode())?;
        let encoder = zstd::stream::write::Encoder::new(sink, level)?;
        Ok(Self { header, encoder, payload_len: 0 })
    }

    /// Ends the zstd stream, appends the trailer and flushes.
    pub fn finish(self) -> Result<WrittenSegment, SegmentError> {
        let HashingWriter { mut inner, hasher, written } = self.encoder.finish()?;
        let (trailer, id) = seal(hasher);
        inner.write_all(&trailer)?;
        inner.flush()?;
        Ok(WrittenSegment {
            header: self.header,
            size: written + trailer.len() as u64,
            payload_len: self.payload_len,
            id,
        })
    }
}

impl<W: Write> Write for SegmentWriter<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.encoder.write(buf)?;
        self.payload_len += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.encoder.flush()
    }
}

/// Encodes a whole in-memory payload as one segment.
pub fn encode_segment(header: SegmentHeader, payload: &[u8]) -> Result<Vec<u8>, SegmentError> {
    let mut out = Vec::with_capacity(payload.len() / 2 + 128);
    let mut writer = SegmentWriter::new(&mut out, header)?;
    writer.write_all(payload)?;
    writer.finish()?;
    Ok(out)
}
