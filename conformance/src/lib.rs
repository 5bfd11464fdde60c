//! # wkp1-conformance
//!
//! The conformance kit for WKP-1 functions. Point it at an endpoint and it tells you,
//! requirement by requirement, whether the function is correct: every check has a stable id,
//! cites the SPEC.md requirements it exercises, and shows the exchange that failed it.
//!
//! # Layout
//!
//! - [`check`]: what a check is (id, group, MUST/SHOULD, requirements, body).
//! - [`verdict`]: why a check did not pass (fail or skip).
//! - [`checks`]: the catalogue, one file per group.
//! - [`session`]: signed (and deliberately mis-signed) requests, transcripts, protocol steps.
//! - [`runner`]: selection, concurrency, deadlines, progress.
//! - [`report`]: human, JSON and JUnit reports.
//! - [`vectors`]: the test vectors for third parties, checked against their own programs.
//! - `e2e` (feature `e2e`): the end-to-end harness for the weftkit-kv engine.

pub mod check;
pub mod checks;
#[cfg(feature = "e2e")]
pub mod e2e;
pub mod report;
pub mod runner;
pub mod session;
pub mod vectors;
pub mod verdict;

pub use check::{Check, CheckError, Level};
pub use report::{Outcome, Report};
pub use runner::{RunOptions, run, select};
pub use session::Target;
