//! What a function that has just started (a cold Lambda, a restarted sidecar) costs the store:
//! with the client's `wkp-manifest-version` hint (SPEC.md `PER-3`) it finds the latest manifest
//! without listing, no hint however wrong changes an answer, and a retention pass reads
//! manifests only when some part is old enough to go.

use std::path::Path;
use std::sync::Arc;

use bytes::Bytes;
use wkp1_function::FunctionConfig;
use wkp1_function::router::router;
use wkp1_protocol::manifest::{Outcome, PersistResponse};
use wkp1_protocol::segment::SegmentHeader;
use wkp1_protocol::{Endpoint, ErrorBody, headers};
use wkp1_testkit::counting::{CountingStore, Counts};
use wkp1_testkit::{Backend, Raw, Server, segment};

const REPLICA: &str = "replica-0";

/// A function that has just started over `dir`: nothing cached, every store call counted.
async fn fresh_function(dir: &Path) -> (Server, Arc<Counts>) {
    fresh_function_with(dir, |_| {}).await
}

async fn fresh_function_with(
    dir: &Path,
    configure: impl FnOnce(&mut FunctionConfig),
) -> (Server, Arc<Counts>) {
    let counts = Arc::new(Counts::default());
    let shared = counts.clone();
    let server = Server::start_custom(
        Backend::file_at(dir),
        configure,
        move |store| CountingStore::new(store, shared),
        router,
    )
    .await;
    (server, counts)
}

/// Claims, then commits states 1, 2 and 3 through another function: the generation and the
/// last manifest version.
async fn history(dir: &Path) -> (u64, u64) {
    let server = Server::start(Backend::file_at(dir)).await;
    let client = server.client(REPLICA);
    let generation = client.plan(true).await.unwrap().generation;
    let mut version = 0;
    for (header, payload) in [
        (SegmentHeader::snapshot(1), "one"),
        (SegmentHeader::delta(1, 2), "two"),
        (SegmentHeader::delta(2, 3), "three"),
    ] {
        let written = segment(header, payload.as_bytes()).await;
        version = client.persist(generation, &written.file).await.unwrap().manifest_version;
    }
    (generation, version)
}

async fn persist(
    server: &Server,
    generation: u64,
    hint: Option<&str>,
    header: SegmentHeader,
    payload: &str,
) -> (u16, Bytes) {
    let bytes = segment(header, payload.as_bytes()).await.bytes;
    let mut request =
        Raw::for_subtree(Endpoint::Persist, REPLICA, "", bytes).generation(generation);
    if let Some(hint) = hint {
        request = request.header(headers::MANIFEST_VERSION, hint);
    }
    request.signed(server).send(server).await
}

fn answer(status: u16, body: &Bytes) -> PersistResponse {
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(body));
    serde_json::from_slice(body).unwrap()
}

fn error_code(status: u16, body: &Bytes) -> (u16, String) {
    let error: ErrorBody = serde_json::from_slice(body).unwrap();
    (status, error.error.code.to_string())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_function_that_just_started_commits_from_the_hint_without_listing() {
    let dir = tempfile::tempdir().unwrap();
    let (generation, version) = history(dir.path()).await;

    let (hinted, counts) = fresh_function(dir.path()).await;
    let hint = version.to_string();
    let (status, body) =
        persist(&hinted, generation, Some(&hint), SegmentHeader::delta(3, 4), "four").await;
    let committed = answer(status, &body);
    assert_eq!((committed.outcome, committed.manifest_version), (Outcome::Committed, version + 1));
    assert_eq!(counts.lists(), 0, "the hinted commit listed the store");

    // Without the hint the same cold start has to list: the count above means something.
    let (unhinted, counts) = fresh_function(dir.path()).await;
    let (status, body) =
        persist(&unhinted, generation, None, SegmentHeader::delta(4, 5), "five").await;
    assert_eq!(answer(status, &body).manifest_version, version + 2);
    assert!(counts.lists() > 0, "a commit without a hint found the latest manifest unlisted");

    let plan = unhinted.client(REPLICA).plan(false).await.unwrap();
    assert_eq!((plan.last_seq, plan.chain.len()), (5, 5));
}

/// Hints that name the claim (long superseded), a version never written, and the empty
/// manifest: every answer is the one the latest manifest gives.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_hint_changes_an_answer() {
    for wrong in ["1", "1000", "0"] {
        let dir = tempfile::tempdir().unwrap();
        let (generation, version) = history(dir.path()).await;
        let (server, _) = fresh_function(dir.path()).await;
        let hint = Some(wrong);

        // A retry of the last commit is recognised as one.
        let (status, body) =
            persist(&server, generation, hint, SegmentHeader::delta(2, 3), "three").await;
        let retried = answer(status, &body);
        assert_eq!(
            (retried.outcome, retried.manifest_version),
            (Outcome::AlreadyCommitted, version),
            "hint {wrong}"
        );
        // A snapshot that would start the hinted claim's empty chain is older than the state.
        let (status, body) =
            persist(&server, generation, hint, SegmentHeader::snapshot(2), "stale").await;
        assert_eq!(error_code(status, &body), (409, "chain_overlap".into()), "hint {wrong}");
        // A delta that continues the state commits, though it is a gap after the hinted claim.
        let (status, body) =
            persist(&server, generation, hint, SegmentHeader::delta(3, 4), "four").await;
        let committed = answer(status, &body);
        assert_eq!(
            (committed.outcome, committed.manifest_version),
            (Outcome::Committed, version + 1),
            "hint {wrong}"
        );

        let plan = server.client(REPLICA).plan(false).await.unwrap();
        assert_eq!((plan.last_seq, plan.chain.len()), (4, 4), "hint {wrong}");
    }
}

/// A hint a few versions behind (an answer was lost) is caught up by reading the versions after
/// it, not by listing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stale_hint_is_caught_up_without_listing() {
    let dir = tempfile::tempdir().unwrap();
    let (generation, version) = history(dir.path()).await;
    let (server, counts) = fresh_function(dir.path()).await;
    let behind = (version - 2).to_string();
    // A retry of the last commit, and a delta after it, each decided on the latest version.
    let (status, body) =
        persist(&server, generation, Some(&behind), SegmentHeader::delta(2, 3), "three").await;
    let retried = answer(status, &body);
    assert_eq!((retried.outcome, retried.manifest_version), (Outcome::AlreadyCommitted, version));
    let (status, body) =
        persist(&server, generation, Some(&behind), SegmentHeader::delta(3, 4), "four").await;
    assert_eq!(answer(status, &body).manifest_version, version + 1);
    assert_eq!(counts.lists(), 0, "a stale hint was caught up by listing");
}

/// A hinted manifest older than half the grace period is not trusted: its successor may be
/// gone, and a write of "the next version" could then fork the history (`RET-1`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_old_hinted_manifest_is_looked_up_again() {
    let dir = tempfile::tempdir().unwrap();
    let (generation, version) = history(dir.path()).await;
    let (server, counts) = fresh_function(dir.path()).await;
    server.advance(server.config.grace_seconds / 2 + 1);
    let hint = version.to_string();
    let (status, body) =
        persist(&server, generation, Some(&hint), SegmentHeader::delta(3, 4), "four").await;
    assert_eq!(answer(status, &body).manifest_version, version + 1);
    assert!(counts.lists() > 0, "an old hinted manifest was trusted without listing");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_malformed_hint_is_400_and_changes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let (generation, _) = history(dir.path()).await;
    let (server, _) = fresh_function(dir.path()).await;
    let before = server.fingerprint().await;
    for malformed in ["x1", "-1", "1.0", "123456789012345678901", "18446744073709551616"] {
        let (status, body) =
            persist(&server, generation, Some(malformed), SegmentHeader::delta(3, 4), "four").await;
        assert_eq!(error_code(status, &body), (400, "invalid_request".into()), "{malformed:?}");
    }
    assert_eq!(server.fingerprint().await, before);
}

/// Within the grace period nothing can be reclaimed, so a pass must not read the history: a
/// cold function would otherwise read every manifest version of the last hour.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_retention_pass_with_nothing_to_reclaim_reads_no_manifest() {
    let dir = tempfile::tempdir().unwrap();
    let (generation, mut version) = history(dir.path()).await;
    {
        let server = Server::start(Backend::file_at(dir.path())).await;
        let client = server.client(REPLICA);
        for seq in 3..30 {
            let written = segment(SegmentHeader::delta(seq, seq + 1), b"more").await;
            version = client.persist(generation, &written.file).await.unwrap().manifest_version;
        }
    }
    let (server, counts) = fresh_function_with(dir.path(), |c| c.retention_every = 1).await;
    let hint = version.to_string();
    let (status, body) =
        persist(&server, generation, Some(&hint), SegmentHeader::delta(30, 31), "last").await;
    assert_eq!(answer(status, &body).manifest_version, version + 1);
    // The hinted manifest is the only object read; the pass itself only lists.
    assert_eq!(counts.gets(), 1, "{} reads for one commit and a retention pass", counts.gets());
    assert!(counts.lists() > 0, "no retention pass ran");

    // Past the grace period parts are old enough to go, so the pass reads the manifests it
    // keeps (the newest `keep_manifests`, less the three this process wrote or read) to learn
    // which parts are still needed.
    server.advance(server.config.grace_seconds + 1);
    let before = counts.gets();
    let (status, body) =
        persist(&server, generation, None, SegmentHeader::snapshot(31), "compacted").await;
    assert_eq!(answer(status, &body).last_seq, 31);
    let read = counts.gets() - before;
    assert_eq!(read, server.config.keep_manifests - 3, "objects the pass read");
    let plan = server.client(REPLICA).plan(false).await.unwrap();
    assert_eq!((plan.last_seq, plan.chain.len()), (31, 1));
}
