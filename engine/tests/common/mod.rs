//! Shared by the engine's tests: databases in temporary directories, an injectable clock, and
//! one macro that runs a test body against both engines.
#![allow(dead_code, unreachable_pub)]

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use weftkit_kv::{Database, Mode, Options};
use wkp1_protocol::Clock;

/// A clock tests move by hand.
#[derive(Clone, Debug)]
pub struct TestClock(pub Arc<AtomicU64>);

impl TestClock {
    pub fn new() -> Self {
        Self(Arc::new(AtomicU64::new(1_800_000_000)))
    }

    pub fn now(&self) -> u64 {
        self.0.load(Ordering::SeqCst)
    }

    pub fn advance(&self, seconds: u64) {
        self.0.fetch_add(seconds, Ordering::SeqCst);
    }

    pub fn clock(&self) -> Clock {
        let at = self.0.clone();
        Clock::from_fn(move || at.load(Ordering::SeqCst))
    }
}

/// Options for tests: the mode, a test clock, maintenance only on demand.
pub fn options(mode: Mode, clock: &TestClock) -> Options {
    Options { maintenance_interval: None, ..Options::default().mode(mode).clock(clock.clock()) }
}

pub struct TestDb {
    pub db: Database,
    pub clock: TestClock,
    pub dir: tempfile::TempDir,
    pub mode: Mode,
}

impl TestDb {
    pub fn new(mode: Mode) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let clock = TestClock::new();
        let db = Database::open(dir.path().join("db"), options(mode, &clock)).unwrap();
        Self { db, clock, dir, mode }
    }

    /// Closes the database and opens it again.
    pub fn reopen(self) -> Self {
        let Self { db, clock, dir, mode } = self;
        let path = db.path().to_path_buf();
        drop(db);
        let db = Database::open(path, options(mode, &clock)).unwrap();
        Self { db, clock, dir, mode }
    }
}

/// Every (key, value) of a family, in order.
pub fn contents(db: &Database, family: &str) -> Vec<(Vec<u8>, Vec<u8>)> {
    db.range(family, .., weftkit_kv::Direction::Forward).unwrap().collect::<Result<_, _>>().unwrap()
}

/// Runs each listed test body once per engine: `fn name(mode: Mode)`.
#[macro_export]
macro_rules! for_both_modes {
    ($($name:ident),* $(,)?) => {
        mod lsm {
            $( #[test] fn $name() { super::$name(weftkit_kv::Mode::Lsm) } )*
        }
        mod btree {
            $( #[test] fn $name() { super::$name(weftkit_kv::Mode::Btree) } )*
        }
    };
}
