//! The bodies of the fuzz targets: one function per parser of untrusted input.
//!
//! Each `pub fn <target>(data: &[u8])` must never panic, hang or allocate without bound,
//! whatever `data` holds; where a parser has a property beyond that (a parse that round-trips,
//! a signature the signer made that the verifier accepts), the target asserts it too, so a
//! panic is always a finding. `fuzz/` drives these with libFuzzer on nightly; the tests in
//! `tests/replay.rs` call them on stable with the committed regression inputs and corpus.
//!
//! - [`request_text`]: the plain-text request layout the request targets read.
//! - [`wkp`]: WKP-1 requests (path, query, headers, signature) and identifiers.
//! - [`segments`]: the segment reader and verifier, and chain validation.
//! - [`manifests`]: the manifest and the other WKP-1 JSON bodies.
//! - [`dynamo`]: DynamoDB request bodies, expressions, numbers, SigV4 headers.
//! - [`engine`]: the engine's change records and snapshot and delta imports.

pub mod dynamo;
pub mod engine;
pub mod manifests;
pub mod request_text;
pub mod segments;
pub mod wkp;

pub use dynamo::{dynamo_request, expression, number, sigv4};
pub use engine::{change_record, engine_import};
pub use manifests::manifest;
pub use segments::{chain, segment};
pub use wkp::{identifiers, wkp_request};

/// A target's body: any bytes in, a panic on a finding.
pub type Target = fn(&[u8]);

/// Every target, by the name its corpus and regression directories carry.
pub const TARGETS: &[(&str, Target)] = &[
    ("wkp_request", wkp_request),
    ("identifiers", identifiers),
    ("segment", segment),
    ("chain", chain),
    ("manifest", manifest),
    ("dynamo_request", dynamo_request),
    ("expression", expression),
    ("number", number),
    ("sigv4", sigv4),
    ("change_record", change_record),
    ("engine_import", engine_import),
];

/// A temporary directory for a database, in memory (`/dev/shm`) where there is one: the
/// database syncs, and syncing to a disk would cost most of each run.
pub fn scratch_dir() -> tempfile::TempDir {
    let shm = std::path::Path::new("/dev/shm");
    let dir = if shm.is_dir() { tempfile::tempdir_in(shm) } else { tempfile::tempdir() };
    dir.expect("create a temporary directory")
}
