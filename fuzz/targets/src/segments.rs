//! The segment reader and the streaming verifier, and chain validation.

use std::io;

use wkp1_protocol::segment::HEADER_LEN;
use wkp1_protocol::{ProtocolError, SegmentHeader, SegmentKind, SegmentReader, SegmentVerifier};

/// A segment as a client restores it (reader, decompressing) and as a function receives it
/// (verifier, in chunks whose sizes come from the input). Both must agree on a good segment.
pub fn segment(data: &[u8]) {
    if let Ok(bytes) = <&[u8; HEADER_LEN]>::try_from(data.get(..HEADER_LEN).unwrap_or_default())
        && let Ok(header) = SegmentHeader::decode(bytes)
    {
        assert_eq!(&header.encode(), bytes, "a decoded header encodes to its bytes");
    }

    let read = SegmentReader::new(data).and_then(|mut reader| {
        // Decompressed bytes go to a sink: a small input may expand a lot, but never in memory.
        let _ = io::copy(&mut reader, &mut io::sink());
        reader.finish()
    });

    let mut verifier = SegmentVerifier::new();
    let mut rest = data;
    let mut step = data.first().map_or(1, |b| usize::from(*b % 61) + 1);
    let mut fed = Ok(());
    while !rest.is_empty() && fed.is_ok() {
        let (chunk, tail) = rest.split_at(step.min(rest.len()));
        fed = verifier.update(chunk);
        rest = tail;
        step = step * 7 % 97 + 1;
    }
    let verified = fed.and_then(|()| verifier.finish());

    if let Ok(read) = &read {
        let verified = verified.as_ref().expect("the verifier refuses a segment the reader read");
        assert_eq!(
            (read.header, read.size, read.id),
            (verified.header, verified.size, verified.id)
        );
        assert_eq!(read.size, data.len() as u64);
    }
    for error in [read.err(), verified.err()].into_iter().flatten() {
        let _ = (error.reason(), error.requirement(), error.to_string());
    }
}

/// A chain of segment headers, each 17 bytes: a kind byte (even: snapshot, odd: delta) and
/// two big-endian u64, `base_seq` and `last_seq`; a delta's `first_seq` is `base_seq + 1`
/// unless the kind byte's bit 1 asks for the raw third field of the wire header instead.
pub fn chain(data: &[u8]) {
    let headers: Vec<SegmentHeader> = data
        .chunks_exact(17)
        .map(|c| {
            let u64_at = |at: usize| u64::from_be_bytes(c[at..at + 8].try_into().unwrap());
            let (base, last) = (u64_at(1), u64_at(9));
            match c[0] & 3 {
                0 => SegmentHeader::snapshot(last),
                1 => SegmentHeader::delta(base, last),
                2 => SegmentHeader {
                    kind: SegmentKind::Snapshot,
                    base_seq: base,
                    first_seq: base,
                    last_seq: last,
                },
                _ => SegmentHeader {
                    kind: SegmentKind::Delta,
                    base_seq: base,
                    first_seq: base,
                    last_seq: last,
                },
            }
        })
        .collect();
    match wkp1_protocol::validate_chain(&headers) {
        Ok(state) => {
            assert_eq!(state, headers.last().map_or(0, |h| h.last_seq), "state is the last");
            for h in &headers {
                assert!(h.validate().is_ok(), "a valid chain holds only valid headers");
                let decoded = SegmentHeader::decode(&h.encode());
                assert_eq!(decoded.unwrap(), *h, "a valid header round-trips its bytes");
            }
        }
        Err(error) => {
            let _ = ProtocolError::from(error).to_string();
        }
    }
}
