//! Segment round trips and corruption: every change to a segment's bytes is refused.

use std::io::{Read, Write};

use proptest::prelude::*;
use wkp1_protocol::segment::{
    SegmentError, SegmentHeader, SegmentReader, SegmentVerifier, SegmentWriter, encode_segment,
};

fn decode(bytes: &[u8]) -> Result<(SegmentHeader, Vec<u8>, [u8; 32]), SegmentError> {
    let mut reader = SegmentReader::new(bytes)?;
    let mut payload = Vec::new();
    let read = reader.read_to_end(&mut payload);
    let verified = reader.finish()?;
    read.map_err(SegmentError::Corrupt)?;
    Ok((verified.header, payload, verified.id))
}

fn verify(bytes: &[u8], chunk: usize) -> Result<[u8; 32], SegmentError> {
    let mut verifier = SegmentVerifier::new();
    for piece in bytes.chunks(chunk.max(1)) {
        verifier.update(piece)?;
    }
    verifier.finish().map(|v| v.id)
}

#[test]
fn empty_payload_round_trips() {
    let bytes = encode_segment(SegmentHeader::snapshot(0), b"").unwrap();
    let (header, payload, id) = decode(&bytes).unwrap();
    assert_eq!(header, SegmentHeader::snapshot(0));
    assert!(payload.is_empty());
    assert_eq!(verify(&bytes, 5).unwrap(), id);
}

#[test]
fn small_payload_round_trips_and_reports_sizes() {
    let payload = b"put orders/1 {\"qty\":3}\n".repeat(100);
    let mut out = Vec::new();
    let mut writer = SegmentWriter::new(&mut out, SegmentHeader::delta(100, 250)).unwrap();
    writer.write_all(&payload).unwrap();
    let written = writer.finish().unwrap();
    assert_eq!(written.size as usize, out.len());
    assert_eq!(written.payload_len as usize, payload.len());
    assert!(out.len() < payload.len() / 4, "repetitive payload should compress");
    let (header, decoded, id) = decode(&out).unwrap();
    assert_eq!((header, decoded, id), (SegmentHeader::delta(100, 250), payload, written.id));
}

#[test]
fn id_is_the_sha256_of_the_whole_file() {
    use sha2::{Digest, Sha256};
    let bytes = encode_segment(SegmentHeader::delta(1, 2), b"x").unwrap();
    let id: [u8; 32] = Sha256::digest(&bytes).into();
    assert_eq!(verify(&bytes, 3).unwrap(), id);
    let trailer: [u8; 32] = Sha256::digest(&bytes[..bytes.len() - 32]).into();
    assert_eq!(&bytes[bytes.len() - 32..], &trailer);
}

#[test]
fn writer_refuses_an_invalid_header() {
    let mut bad = SegmentHeader::delta(5, 9);
    bad.first_seq = 7;
    assert!(matches!(SegmentWriter::new(Vec::new(), bad), Err(SegmentError::BadSequence(_))));
}

proptest! {
    #[test]
    fn any_payload_round_trips(
        payload in proptest::collection::vec(any::<u8>(), 0..4096),
        base in 0u64..1_000_000,
        len in 1u64..1000,
        snapshot in any::<bool>(),
        chunk in 1usize..64,
    ) {
        let header = if snapshot { SegmentHeader::snapshot(base) } else { SegmentHeader::delta(base, base + len) };
        let bytes = encode_segment(header, &payload).unwrap();
        let (h, p, id) = decode(&bytes).unwrap();
        prop_assert_eq!(h, header);
        prop_assert_eq!(p, payload);
        prop_assert_eq!(verify(&bytes, chunk).unwrap(), id);
    }

    #[test]
    fn any_single_byte_corruption_is_rejected(
        payload in proptest::collection::vec(any::<u8>(), 0..512),
        position in any::<proptest::sample::Index>(),
        xor in 1u8..=255,
    ) {
        let mut bytes = encode_segment(SegmentHeader::delta(10, 20), &payload).unwrap();
        let i = position.index(bytes.len());
        bytes[i] ^= xor;
        prop_assert!(decode(&bytes).is_err(), "reader accepted corruption at {}", i);
        prop_assert!(verify(&bytes, 13).is_err(), "verifier accepted corruption at {}", i);
    }

    #[test]
    fn any_truncation_or_extension_is_rejected(
        payload in proptest::collection::vec(any::<u8>(), 0..512),
        cut in any::<proptest::sample::Index>(),
        extra in proptest::collection::vec(any::<u8>(), 1..40),
    ) {
        let bytes = encode_segment(SegmentHeader::snapshot(3), &payload).unwrap();
        let short = &bytes[..cut.index(bytes.len())];
        prop_assert!(decode(short).is_err());
        prop_assert!(verify(short, 7).is_err());
        let mut long = bytes.clone();
        long.extend_from_slice(&extra);
        prop_assert!(decode(&long).is_err());
        prop_assert!(verify(&long, 7).is_err());
    }
}

#[test]
fn digest_is_the_sha256_of_whatever_was_fed_valid_or_not() {
    use sha2::{Digest, Sha256};
    let good = encode_segment(SegmentHeader::delta(1, 2), b"abc").unwrap();
    let mut bad = good.clone();
    bad[0] = b'X';
    for bytes in [good, bad, b"short".to_vec()] {
        let mut verifier = SegmentVerifier::new();
        for piece in bytes.chunks(3) {
            let _ = verifier.update(piece);
        }
        assert_eq!(verifier.digest(), <[u8; 32]>::from(Sha256::digest(&bytes)));
    }
}
