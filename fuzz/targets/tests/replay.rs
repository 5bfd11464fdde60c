//! Replays, on stable, every committed regression input and a sample of each corpus through
//! the fuzz targets' bodies: a finding fixed once stays fixed without a nightly build.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::{Path, PathBuf};

use wkp1_fuzz_targets::TARGETS;

/// Corpus files replayed per target: enough to exercise each parser's main paths.
const CORPUS_SAMPLE: usize = 64;

/// What the process may hold at once, like the fuzz runs' `-rss_limit_mb`: an input that makes
/// a parser allocate what its length fields claim, not what it holds, aborts the test here
/// ("memory allocation of ... bytes failed") instead of passing on an overcommitting machine.
const ALLOCATION_LIMIT: usize = 2 << 30;

#[global_allocator]
static ALLOCATOR: cap::Cap<std::alloc::System> =
    cap::Cap::new(std::alloc::System, ALLOCATION_LIMIT);

fn fuzz_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// The files of `dir`, sorted by name so every run replays the same sample.
fn inputs(dir: &Path) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(dir) else { return Vec::new() };
    let mut files: Vec<PathBuf> =
        entries.map(|e| e.unwrap().path()).filter(|p| p.is_file()).collect();
    files.sort();
    files
}

fn replay(target: &str, dir: &str, limit: usize) -> usize {
    let (_, body) = TARGETS.iter().find(|(name, _)| *name == target).expect("a known target");
    let files = inputs(&fuzz_dir().join(dir).join(target));
    for file in files.iter().take(limit) {
        let data = std::fs::read(file).unwrap();
        let outcome = catch_unwind(|| body(&data));
        assert!(outcome.is_ok(), "{target} panics on {}", file.display());
    }
    files.len().min(limit)
}

/// Regressions are all replayed; the corpus must hold seeds, or the sample proves nothing.
fn replay_target(target: &str) {
    replay(target, "regressions", usize::MAX);
    let sampled = replay(target, "corpus", CORPUS_SAMPLE);
    assert!(sampled > 0, "fuzz/corpus/{target} holds no seeds");
}

#[test]
fn every_target_has_a_replay_test() {
    let source = include_str!("replay.rs");
    for (name, _) in TARGETS {
        assert!(source.contains(&format!("fn {name}_inputs_replay")), "no replay test for {name}");
    }
}

#[test]
fn wkp_request_inputs_replay() {
    replay_target("wkp_request");
}

#[test]
fn identifiers_inputs_replay() {
    replay_target("identifiers");
}

#[test]
fn segment_inputs_replay() {
    replay_target("segment");
}

#[test]
fn chain_inputs_replay() {
    replay_target("chain");
}

#[test]
fn manifest_inputs_replay() {
    replay_target("manifest");
}

#[test]
fn dynamo_request_inputs_replay() {
    // Each input gets a fresh service, so a finding replays the same way every time.
    let dir = fuzz_dir();
    for (sub, limit) in [("regressions", usize::MAX), ("corpus", CORPUS_SAMPLE)] {
        let files = inputs(&dir.join(sub).join("dynamo_request"));
        assert!(sub == "regressions" || !files.is_empty(), "fuzz/corpus/dynamo_request is empty");
        for file in files.iter().take(limit) {
            let data = std::fs::read(file).unwrap();
            let (_dir, service) = wkp1_fuzz_targets::dynamo::new_service();
            let outcome = catch_unwind(AssertUnwindSafe(|| {
                wkp1_fuzz_targets::dynamo::run_requests(&service, &data)
            }));
            assert!(outcome.is_ok(), "dynamo_request panics on {}", file.display());
        }
    }
}

#[test]
fn expression_inputs_replay() {
    replay_target("expression");
}

#[test]
fn number_inputs_replay() {
    replay_target("number");
}

#[test]
fn sigv4_inputs_replay() {
    replay_target("sigv4");
}

#[test]
fn change_record_inputs_replay() {
    replay_target("change_record");
}

#[test]
fn engine_import_inputs_replay() {
    replay_target("engine_import");
}
