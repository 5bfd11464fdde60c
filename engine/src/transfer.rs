//! Moving state in WKP-1 segments: a snapshot of every family at one sequence number, deltas
//! cut from the change log, and the import that rebuilds a database (in either mode) from a
//! snapshot and a chain of deltas.
//!
//! ```text
//! snapshot payload   "WKVS" 01 | record* | end
//!   family record    01 | name (u16) | options JSON (u32)
//!   value record     02 | family (u16) | key (u32) | stored value (u32)
//!   operand record   03 | family (u16) | operand key (u32) | operand (u32)
//!   end              00 | last_seq u64 | records u64
//! delta payload      "WKVD" 01 | (01 | change record (u32))* | end
//!   end              00 | changes u64
//! ```
//! Stored values move as they are, TTL and sequence headers included, so an import expires and
//! merges exactly as the source would have. Both formats stream: neither side holds the state.

use std::io::{BufRead, BufReader, Read, Write};
use std::path::Path;
use std::sync::Arc;

use wkp1_protocol::segment::{
    SegmentHeader, SegmentKind, SegmentReader, SegmentWriter, WrittenSegment,
};

use crate::codec::{self, ChangeOp};
use crate::commit::LAST_SEQ_KEY;
use crate::db::{Database, create_keyspaces, drop_keyspaces, family_meta_op};
use crate::error::{Error, Result};
use crate::family::{Family, META};
use crate::options::{FamilyOptions, Options};
use crate::store::{Durability, KeyRange, Op};
use crate::write;

const SNAPSHOT_MAGIC: &[u8; 5] = b"WKVS\x01";
const DELTA_MAGIC: &[u8; 5] = b"WKVD\x01";
/// Engine writes per import batch: bounds memory whatever the state's size.
const IMPORT_BATCH: usize = 4096;

/// What an export wrote.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Exported {
    pub segment: WrittenSegment,
    /// Values, operands and family definitions (snapshot), or batches (delta).
    pub records: u64,
}

fn put_bytes16(out: &mut Vec<u8>, bytes: &[u8]) {
    out.extend_from_slice(&(bytes.len() as u16).to_be_bytes());
    out.extend_from_slice(bytes);
}

fn put_bytes32(out: &mut Vec<u8>, bytes: &[u8]) {
    out.extend_from_slice(&(bytes.len() as u32).to_be_bytes());
    out.extend_from_slice(bytes);
}

fn io(context: &str) -> impl FnOnce(std::io::Error) -> Error + '_ {
    move |e| Error::io(context, e)
}

impl Database {
    /// Writes a snapshot segment of every family, consistent at one sequence number.
    pub fn export_snapshot<W: Write>(&self, out: W) -> Result<Exported> {
        let snapshot = self.snapshot()?;
        let seq = snapshot.seq()?;
        let mut writer =
            SegmentWriter::new(out, SegmentHeader::snapshot(seq)).map_err(Error::export)?;
        writer.write_all(SNAPSHOT_MAGIC).map_err(io("write snapshot"))?;
        let mut records = 0u64;
        let mut buf = Vec::with_capacity(64 << 10);
        for family in snapshot.families().values() {
            buf.push(1);
            put_bytes16(&mut buf, family.name.as_bytes());
            put_bytes32(&mut buf, &serde_json::to_vec(&family.options).expect("options serialize"));
            records += 1;
        }
        for family in snapshot.families().values() {
            for (tag, keyspace) in [(2u8, Some(&family.data)), (3u8, family.operands.as_ref())] {
                let Some(keyspace) = keyspace else { continue };
                for item in snapshot.store().range(keyspace, &KeyRange::all(), false)? {
                    let (key, value) = item?;
                    buf.push(tag);
                    put_bytes16(&mut buf, family.name.as_bytes());
                    put_bytes32(&mut buf, &key);
                    put_bytes32(&mut buf, &value);
                    records += 1;
                    if buf.len() >= 64 << 10 {
                        writer.write_all(&buf).map_err(io("write snapshot"))?;
                        buf.clear();
                    }
                }
            }
        }
        buf.push(0);
        buf.extend_from_slice(&seq.to_be_bytes());
        buf.extend_from_slice(&records.to_be_bytes());
        writer.write_all(&buf).map_err(io("write snapshot"))?;
        Ok(Exported { segment: writer.finish().map_err(Error::export)?, records })
    }

    /// Writes a delta segment of the changes after `since`; `None` when there are none.
    pub fn export_delta<W: Write>(&self, since: u64, out: W) -> Result<Option<Exported>> {
        let changes = self.changes_since(since)?;
        let last = changes.last_seq();
        if last <= since {
            return Ok(None);
        }
        let mut writer =
            SegmentWriter::new(out, SegmentHeader::delta(since, last)).map_err(Error::export)?;
        writer.write_all(DELTA_MAGIC).map_err(io("write delta"))?;
        let mut records = 0u64;
        for change in changes {
            let change = change?;
            let bytes = codec::encode_change(change.seq, &change.ops);
            writer.write_all(&[1]).map_err(io("write delta"))?;
            writer.write_all(&(bytes.len() as u32).to_be_bytes()).map_err(io("write delta"))?;
            writer.write_all(&bytes).map_err(io("write delta"))?;
            records += 1;
        }
        writer.write_all(&[0]).map_err(io("write delta"))?;
        writer.write_all(&records.to_be_bytes()).map_err(io("write delta"))?;
        Ok(Some(Exported { segment: writer.finish().map_err(Error::export)?, records }))
    }

    /// Builds a new database at `path` from a snapshot (or none: the empty state) and the deltas
    /// that follow it, in order. Records are applied as they stream in; the database is returned
    /// only once every segment's trailer verified, and on any error the half-built directory is
    /// removed, so nothing unverified is ever opened.
    pub fn import<S: Read, D: Read>(
        path: impl AsRef<Path>,
        options: Options,
        snapshot: Option<S>,
        deltas: impl IntoIterator<Item = D>,
    ) -> Result<Database> {
        let path = path.as_ref();
        if crate::meta::read(path)?.is_some() {
            return Err(Error::Import(format!("{} already holds a database", path.display())));
        }
        let result = (|| {
            let db =
                Database::open(path, Options { maintenance_interval: None, ..options.clone() })?;
            let mut importer = Importer { db: &db, at: 0, pending: Vec::new() };
            if let Some(snapshot) = snapshot {
                importer.snapshot(snapshot)?;
            }
            for delta in deltas {
                importer.delta(delta)?;
            }
            importer.flush()?;
            db.inner.store.write(
                &[Op::Put {
                    keyspace: META.into(),
                    key: LAST_SEQ_KEY.to_vec(),
                    value: importer.at.to_be_bytes().to_vec(),
                }],
                Durability::Buffer,
            )?;
            db.inner.store.sync()?;
            Ok(importer.at)
        })();
        match result {
            // Reopen so the sequence number and families are what the import left.
            Ok(_) => Database::open(path, options),
            Err(e) => {
                let _ = std::fs::remove_dir_all(path);
                Err(e)
            }
        }
    }
}

struct Importer<'a> {
    db: &'a Database,
    /// The state imported so far.
    at: u64,
    pending: Vec<Op>,
}

impl Importer<'_> {
    fn flush(&mut self) -> Result<()> {
        if !self.pending.is_empty() {
            self.db.inner.store.write(&std::mem::take(&mut self.pending), Durability::None)?;
        }
        Ok(())
    }

    fn push(&mut self, ops: Vec<Op>) -> Result<()> {
        self.pending.extend(ops);
        if self.pending.len() >= IMPORT_BATCH {
            self.flush()?;
        }
        Ok(())
    }

    fn family(&self, name: &str) -> Result<Arc<Family>> {
        self.db.families().get(name).cloned().ok_or_else(|| {
            Error::Import(format!("record for family {name:?} before its definition"))
        })
    }

    fn define_family(&mut self, name: &str, options_json: &[u8]) -> Result<()> {
        let options: FamilyOptions = serde_json::from_slice(options_json)
            .map_err(|e| Error::Import(format!("options of family {name}: {e}")))?;
        let family = Family::new(name, options, &self.db.inner.options.merge_operators)?;
        let inner = &self.db.inner;
        let mut families = inner.families.write().expect("families lock");
        if let Some(existing) = families.get(name) {
            if existing.options == family.options {
                return Ok(());
            }
            drop_keyspaces(&inner.store, existing)?;
        }
        create_keyspaces(&inner.store, &family)?;
        self.pending.push(family_meta_op(&family)?);
        Arc::make_mut(&mut families).insert(name.to_owned(), Arc::new(family));
        Ok(())
    }

    fn drop_family(&mut self, name: &str) -> Result<()> {
        self.flush()?;
        let inner = &self.db.inner;
        let removed =
            Arc::make_mut(&mut inner.families.write().expect("families lock")).remove(name);
        if let Some(family) = removed {
            inner.store.write(
                &[Op::Remove { keyspace: META.into(), key: Family::meta_key(name) }],
                Durability::None,
            )?;
            drop_keyspaces(&inner.store, &family)?;
        }
        Ok(())
    }

    fn open_segment<R: Read>(
        &self,
        reader: R,
        expect: SegmentKind,
    ) -> Result<SegmentReader<BufReader<R>>> {
        let segment = SegmentReader::new(BufReader::with_capacity(256 << 10, reader))
            .map_err(Error::import)?;
        let kind = segment.header().kind;
        if kind != expect {
            return Err(Error::Import(format!("expected a {expect} segment, got a {kind}")));
        }
        Ok(segment)
    }

    fn snapshot<R: Read>(&mut self, reader: R) -> Result<()> {
        let mut segment = self.open_segment(reader, SegmentKind::Snapshot)?;
        let header = segment.header();
        let mut r = BufReader::with_capacity(256 << 10, &mut segment);
        expect_magic(&mut r, SNAPSHOT_MAGIC)?;
        let mut records = 0u64;
        loop {
            match read_u8(&mut r)? {
                0 => {
                    let last = read_u64(&mut r)?;
                    let count = read_u64(&mut r)?;
                    if last != header.last_seq || count != records {
                        return Err(Error::Import(format!(
                            "snapshot ends at state {last} with {count} records; its header says {} and {records} were read",
                            header.last_seq
                        )));
                    }
                    break;
                }
                1 => {
                    let name = read_string16(&mut r)?;
                    let options = read_bytes32(&mut r)?;
                    self.define_family(&name, &options)?;
                }
                tag @ (2 | 3) => {
                    let family = self.family(&read_string16(&mut r)?)?;
                    let key = read_bytes32(&mut r)?;
                    let value = read_bytes32(&mut r)?;
                    let keyspace = if tag == 2 {
                        family.data.clone()
                    } else {
                        family.operands.clone().ok_or_else(|| {
                            Error::Import(format!(
                                "operands for {}, which has no merge operator",
                                family.name
                            ))
                        })?
                    };
                    self.push(vec![Op::Put { keyspace, key, value }])?;
                }
                other => {
                    return Err(Error::Import(format!("snapshot has unknown record tag {other}")));
                }
            }
            records += 1;
        }
        expect_end(&mut r)?;
        drop(r);
        segment.finish().map_err(Error::import)?;
        self.at = header.last_seq;
        Ok(())
    }

    fn delta<R: Read>(&mut self, reader: R) -> Result<()> {
        let mut segment = self.open_segment(reader, SegmentKind::Delta)?;
        let header = segment.header();
        if header.base_seq != self.at {
            return Err(Error::Import(format!(
                "delta {}..={} does not follow state {}",
                header.first_seq, header.last_seq, self.at
            )));
        }
        let mut r = BufReader::with_capacity(256 << 10, &mut segment);
        expect_magic(&mut r, DELTA_MAGIC)?;
        let mut count = 0u64;
        while read_u8(&mut r)? == 1 {
            let change = codec::decode_change(&read_bytes32(&mut r)?)?;
            if change.seq != self.at + 1 {
                return Err(Error::Import(format!(
                    "delta jumps from state {} to batch {}",
                    self.at, change.seq
                )));
            }
            self.apply(change)?;
            count += 1;
        }
        let declared = read_u64(&mut r)?;
        if declared != count || self.at != header.last_seq {
            return Err(Error::Import(format!(
                "delta ended at state {} after {count} batches; it declares {declared} batches up to {}",
                self.at, header.last_seq
            )));
        }
        expect_end(&mut r)?;
        drop(r);
        segment.finish().map_err(Error::import)?;
        Ok(())
    }

    fn apply(&mut self, change: codec::Change) -> Result<()> {
        // Family changes split a batch: what precedes them applies to the families before.
        let mut data = Vec::new();
        for op in change.ops {
            match op {
                ChangeOp::CreateFamily { family, options_json } => {
                    let ops = replay(self.db, change.seq, &std::mem::take(&mut data))?;
                    self.push(ops)?;
                    self.define_family(&family, &options_json)?;
                }
                ChangeOp::DropFamily { family } => {
                    let ops = replay(self.db, change.seq, &std::mem::take(&mut data))?;
                    self.push(ops)?;
                    self.drop_family(&family)?;
                }
                other => data.push(other),
            }
        }
        let ops = replay(self.db, change.seq, &data)?;
        self.push(ops)?;
        self.at = change.seq;
        Ok(())
    }
}

fn replay(db: &Database, seq: u64, changes: &[ChangeOp]) -> Result<Vec<Op>> {
    write::replay(&db.families(), seq, changes)
}

fn expect_magic(r: &mut impl Read, magic: &[u8; 5]) -> Result<()> {
    let mut got = [0u8; 5];
    r.read_exact(&mut got).map_err(io("read segment payload"))?;
    if &got != magic {
        return Err(Error::Import("the segment payload is not a WeftKitKV export".into()));
    }
    Ok(())
}

/// The payload must end where its end record does.
fn expect_end(r: &mut impl BufRead) -> Result<()> {
    if r.fill_buf().map_err(io("read segment payload"))?.is_empty() {
        return Ok(());
    }
    Err(Error::Import("the segment payload continues after its end record".into()))
}

fn read_u8(r: &mut impl Read) -> Result<u8> {
    let mut b = [0u8; 1];
    r.read_exact(&mut b).map_err(io("read segment payload"))?;
    Ok(b[0])
}

fn read_u64(r: &mut impl Read) -> Result<u64> {
    let mut b = [0u8; 8];
    r.read_exact(&mut b).map_err(io("read segment payload"))?;
    Ok(u64::from_be_bytes(b))
}

fn read_bytes32(r: &mut impl Read) -> Result<Vec<u8>> {
    let mut len = [0u8; 4];
    r.read_exact(&mut len).map_err(io("read segment payload"))?;
    let len = u64::from(u32::from_be_bytes(len));
    // The length is the payload's claim, not a fact: grow with the bytes that arrive, so a
    // 4 GiB length in a short payload costs nothing (fuzz/regressions/engine_import).
    let mut out = Vec::new();
    r.by_ref().take(len).read_to_end(&mut out).map_err(io("read segment payload"))?;
    if out.len() as u64 != len {
        return Err(Error::Import(format!(
            "the segment payload ends {} bytes into a field of {len}",
            out.len()
        )));
    }
    Ok(out)
}

fn read_string16(r: &mut impl Read) -> Result<String> {
    let mut len = [0u8; 2];
    r.read_exact(&mut len).map_err(io("read segment payload"))?;
    let mut out = vec![0u8; u16::from_be_bytes(len) as usize];
    r.read_exact(&mut out).map_err(io("read segment payload"))?;
    String::from_utf8(out).map_err(|_| Error::Import("family name is not UTF-8".into()))
}
