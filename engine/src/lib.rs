#![doc = include_str!("../README.md")]
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
mod inner;
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
