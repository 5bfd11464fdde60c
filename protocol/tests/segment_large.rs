//! A multi-hundred-MB payload streams through encode and decode in bounded memory.
//!
//! This file holds a single test so that its process's peak RSS is this test's alone.

use std::io::{self, Read, Write};

use sha2::{Digest, Sha256};
use wkp1_protocol::segment::{SegmentHeader, SegmentReader, SegmentWriter};

const PAYLOAD_BYTES: u64 = 384 << 20;
const MEMORY_BUDGET: u64 = 96 << 20;

/// Deterministic, mildly compressible records: what a key-value delta looks like.
struct Records {
    remaining: u64,
    state: u64,
    n: u64,
    line: Vec<u8>,
    pos: usize,
}

impl Read for Records {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        if self.remaining == 0 {
            return Ok(0);
        }
        if self.pos == self.line.len() {
            self.state ^= self.state << 13;
            self.state ^= self.state >> 7;
            self.state ^= self.state << 17;
            self.n += 1;
            self.line.clear();
            writeln!(self.line, "put table/{:012} {:016x}{:016x}", self.n, self.state, self.n)?;
            self.pos = 0;
        }
        let n = (self.line.len() - self.pos).min(out.len()).min(self.remaining as usize);
        out[..n].copy_from_slice(&self.line[self.pos..self.pos + n]);
        self.pos += n;
        self.remaining -= n as u64;
        Ok(n)
    }
}

/// Hashes what it is given, keeps nothing.
struct HashSink(Sha256, u64);

impl Write for HashSink {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.update(buf);
        self.1 += buf.len() as u64;
        Ok(buf.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// The peak RSS; a missing `/proc` fails the test rather than read 0, which would pass any bound.
fn peak_rss() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status")
        .expect("read /proc/self/status: this test measures memory through it");
    let kb = status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches(" kB").trim().parse::<u64>().ok())
        .expect("read VmHWM from /proc/self/status");
    assert!(kb > 0, "VmHWM reads 0 kB");
    kb * 1024
}

#[test]
fn multi_hundred_megabyte_payload_streams_in_bounded_memory() {
    let before = peak_rss();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("big.wkp");
    let source = || Records {
        remaining: PAYLOAD_BYTES,
        state: 0x9e37_79b9_7f4a_7c15,
        n: 0,
        line: Vec::new(),
        pos: 0,
    };

    let mut expected = HashSink(Sha256::new(), 0);
    io::copy(&mut source(), &mut expected).unwrap();

    let file = io::BufWriter::new(std::fs::File::create(&path).unwrap());
    let mut writer =
        SegmentWriter::with_level(file, SegmentHeader::snapshot(1_000_000), 1).unwrap();
    io::copy(&mut source(), &mut writer).unwrap();
    let written = writer.finish().unwrap();
    assert_eq!(written.payload_len, PAYLOAD_BYTES);
    assert_eq!(std::fs::metadata(&path).unwrap().len(), written.size);

    let file = io::BufReader::new(std::fs::File::open(&path).unwrap());
    let mut reader = SegmentReader::new(file).unwrap();
    let mut actual = HashSink(Sha256::new(), 0);
    io::copy(&mut reader, &mut actual).unwrap();
    let verified = reader.finish().unwrap();

    assert_eq!(verified.id, written.id);
    assert_eq!(actual.1, PAYLOAD_BYTES);
    assert_eq!(actual.0.finalize(), expected.0.finalize());
    let grew = peak_rss().saturating_sub(before);
    assert!(
        grew < MEMORY_BUDGET,
        "peak RSS grew by {} MiB streaming {} MiB",
        grew >> 20,
        PAYLOAD_BYTES >> 20
    );
}
