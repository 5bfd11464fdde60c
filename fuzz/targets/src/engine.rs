//! The engine's change records, and snapshot and delta imports (what a restore feeds it).

use weftkit_kv::{Change, Database, Direction, Mode, Options};
use wkp1_protocol::SegmentHeader;
use wkp1_protocol::segment::encode_segment;

/// A change record: whatever decodes encodes to bytes that decode to the same change.
pub fn change_record(data: &[u8]) {
    if let Ok(change) = Change::decode(data) {
        let again = Change::decode(&change.encode()).expect("an encoded change decodes");
        assert_eq!(again, change, "a change record round-trips");
    }
}

/// A segment payload imported into a fresh database. The first byte picks snapshot (bit 0
/// set) or delta from the empty state, and the store (bit 1: B+tree, else LSM); the next eight
/// are the header's `last_seq`, big-endian; the rest is the payload, wrapped in a well-formed
/// segment so the fuzzer spends its time in the engine's decoder, not on the trailer hash.
pub fn engine_import(data: &[u8]) {
    let Some((&flags, rest)) = data.split_first() else { return };
    let Some((last_seq, payload)) = rest.split_first_chunk::<8>() else { return };
    let last_seq = u64::from_be_bytes(*last_seq);
    let snapshot = flags & 1 == 1;
    let header = if snapshot {
        SegmentHeader::snapshot(last_seq)
    } else {
        SegmentHeader::delta(0, last_seq.max(1))
    };
    let segment = encode_segment(header, payload).expect("encode a segment");
    let mode = if flags & 2 == 2 { Mode::Btree } else { Mode::Lsm };
    let options = Options { maintenance_interval: None, ..Options::default() }.mode(mode);
    let dir = crate::scratch_dir();
    let path = dir.path().join("db");
    let imported = if snapshot {
        Database::import(&path, options, Some(&segment[..]), Vec::<&[u8]>::new())
    } else {
        Database::import(&path, options, None::<&[u8]>, [&segment[..]])
    };
    if let Ok(db) = imported {
        // What an import accepted, the database can read: every family, every key.
        for (family, _) in db.list_families() {
            for entry in db.range(&family, .., Direction::Forward).expect("iterate a family") {
                entry.expect("read an imported entry");
            }
        }
    }
}
