//! # weftkit-kv
//!
//! WeftKitKV, the key-value engine bundled with WKP-1: an embedded database over fjall (an LSM
//! tree, the default) or redb (a B+tree), chosen when a database is created, with column
//! families, TTL, merge operators, consistent snapshots, group-committed durable writes, and a
//! change log that WKP-1 persists as segments.
//!
//! ```
//! use weftkit_kv::{Database, Direction, FamilyOptions, Options};
//!
//! let dir = tempfile::tempdir()?;
//! let db = Database::open(dir.path(), Options::default())?;
//! db.create_family("counters", FamilyOptions::default().with_merge_operator("int_add"))?;
//! db.put("default", "user/1", "ada")?;
//! db.merge("counters", "visits", 1i64.to_le_bytes())?;
//! db.merge("counters", "visits", 2i64.to_le_bytes())?;
//! assert_eq!(db.get("counters", b"visits")?, Some(3i64.to_le_bytes().to_vec()));
//! let users: Vec<_> = db.prefix("default", b"user/", Direction::Forward)?.collect::<Result<_, _>>()?;
//! assert_eq!(users, vec![(b"user/1".to_vec(), b"ada".to_vec())]);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! # Layout
//!
//! - [`options`]: modes, durability, database and family options.
//! - [`db`]: the database: open, reads, writes, families, snapshots, the change log.
//! - [`batch`]: atomic multi-family write batches, and value expiry.
//! - [`merge`]: merge operators and the built-ins.
//! - `transfer`: snapshot and delta export into WKP-1 segments, and import.
//! - `maintenance`: merge folds, TTL sweeps, background syncs.
//! - `commit`: sequence numbers and group commit. `write`: batches into engine writes.
//! - `read`: TTL and merge-aware reads and iterators. `codec`: byte layouts.
//! - `store`: the seam over fjall and redb. `family`, `meta`: families and directory metadata.

pub mod batch;
mod codec;
mod commit;
pub mod db;
pub mod error;
mod family;
pub mod maintenance;
pub mod merge;
mod meta;
pub mod options;
mod read;
mod store;
mod transfer;
mod write;

pub use batch::{Expiry, WriteBatch};
pub use codec::{Change, ChangeOp};
pub use db::{Changes, Database, Direction, Snapshot};
pub use error::{Error, Result};
pub use family::{DEFAULT_FAMILY, MAX_FAMILY_NAME};
pub use merge::{MergeOperator, MergeOperators};
pub use options::{Compaction, FamilyOptions, Mode, Options, SyncMode, WriteOptions};
pub use read::Iter;
pub use transfer::Exported;
pub use write::{MAX_KEY_BYTES, MAX_VALUE_BYTES};
