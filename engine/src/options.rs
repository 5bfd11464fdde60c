//! How a database and its column families are configured.

use std::fmt;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use wkp1_protocol::Clock;

use crate::merge::MergeOperators;

/// The storage engine underneath, fixed when a database is created.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum Mode {
    /// fjall: a log-structured merge tree. Write-optimised; the default.
    #[default]
    Lsm,
    /// redb: a copy-on-write B+tree. Read-optimised.
    Btree,
}

impl Mode {
    pub fn as_str(self) -> &'static str {
        match self {
            Mode::Lsm => "lsm",
            Mode::Btree => "btree",
        }
    }
}

impl fmt::Display for Mode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for Mode {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "lsm" => Ok(Mode::Lsm),
            "btree" => Ok(Mode::Btree),
            other => Err(format!("mode {other:?} is neither lsm nor btree")),
        }
    }
}

/// How far a write goes before it is acknowledged.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum SyncMode {
    /// In the engine's buffers: lost if the process dies.
    None,
    /// Handed to the operating system: survives the process dying, not the machine. (redb has
    /// no such level; there this is as strong as `Fsync`.)
    #[default]
    Buffered,
    /// On disk (fsync) before the write returns; concurrent writers share one fsync.
    Fsync,
}

/// Compaction strategy of an LSM column family.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case", tag = "kind")]
pub enum Compaction {
    /// Leveled compaction: low space and read amplification (the default).
    #[default]
    Leveled,
    /// Drops the oldest tables once the family exceeds `max_bytes`, or tables older than
    /// `ttl_seconds`: for append-only data such as logs and time series.
    Fifo { max_bytes: u64, ttl_seconds: Option<u64> },
    /// Size-tiered compaction. Not supported yet: fjall 3 has no size-tiered strategy, so
    /// creating such a family is refused.
    SizeTiered,
}

/// Options of one column family, fixed when it is created.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FamilyOptions {
    pub compaction: Compaction,
    /// Bloom filter bits per key (LSM; ~1 % false positives at 10).
    pub bloom_bits_per_key: f32,
    /// Time to live of values written without their own, in seconds.
    pub default_ttl_seconds: Option<u64>,
    /// Name of the merge operator `merge` writes in this family use.
    pub merge_operator: Option<String>,
}

impl Default for FamilyOptions {
    fn default() -> Self {
        Self {
            compaction: Compaction::Leveled,
            bloom_bits_per_key: 10.0,
            default_ttl_seconds: None,
            merge_operator: None,
        }
    }
}

impl FamilyOptions {
    pub fn with_ttl(mut self, seconds: u64) -> Self {
        self.default_ttl_seconds = Some(seconds);
        self
    }

    pub fn with_merge_operator(mut self, name: impl Into<String>) -> Self {
        self.merge_operator = Some(name.into());
        self
    }

    pub fn with_compaction(mut self, compaction: Compaction) -> Self {
        self.compaction = compaction;
        self
    }
}

/// Options of one write.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct WriteOptions {
    pub sync: SyncMode,
}

/// Options of a database.
#[derive(Clone)]
pub struct Options {
    /// Engine for a new database; an existing one must have been created with it.
    pub mode: Mode,
    /// Create the database if the path holds none.
    pub create_if_missing: bool,
    /// Default durability of writes.
    pub sync: SyncMode,
    /// Block cache of the engine, in bytes.
    pub cache_bytes: u64,
    /// Record every committed batch in the change log (what WKP-1 deltas are cut from).
    pub change_log: bool,
    /// Merge operators families may name.
    pub merge_operators: MergeOperators,
    /// Source of "now" for TTL, in Unix seconds; tests move it.
    pub clock: Clock,
    /// How often background maintenance runs (TTL sweeps, merge folds, flushing buffered
    /// B+tree commits); `None` to run it only when `maintenance()` is called.
    pub maintenance_interval: Option<Duration>,
    /// Pending merge operands of one key beyond which it is folded in the background.
    pub fold_threshold: usize,
    /// Keys the B+tree TTL sweep looks at per family per round, to bound its work.
    pub sweep_batch: usize,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            mode: Mode::Lsm,
            create_if_missing: true,
            sync: SyncMode::Buffered,
            cache_bytes: 64 << 20,
            change_log: true,
            merge_operators: MergeOperators::with_builtins(),
            clock: Clock::system(),
            maintenance_interval: Some(Duration::from_secs(5)),
            fold_threshold: 16,
            sweep_batch: 10_000,
        }
    }
}

impl Options {
    pub fn mode(mut self, mode: Mode) -> Self {
        self.mode = mode;
        self
    }

    pub fn clock(mut self, clock: Clock) -> Self {
        self.clock = clock;
        self
    }
}

impl fmt::Debug for Options {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Options")
            .field("mode", &self.mode)
            .field("sync", &self.sync)
            .field("change_log", &self.change_log)
            .field("merge_operators", &self.merge_operators.names())
            .finish_non_exhaustive()
    }
}
