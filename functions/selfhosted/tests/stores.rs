//! The self-hosted function against every store: memory, a local directory, and the real
//! S3-compatible servers the test command starts. One body per scenario, every backend.

use std::collections::BTreeMap;

use wkp1_client::ClientError;
use wkp1_protocol::manifest::Outcome;
use wkp1_protocol::segment::{SegmentHeader, SegmentReader};
use wkp1_protocol::{Endpoint, ErrorCode};
use wkp1_testkit::{Backend, Raw, Server, noise, segment};

wkp1_testkit::for_every_backend!(
    restore_of_an_empty_subtree_is_an_empty_plan,
    snapshot_and_deltas_round_trip_byte_identical,
    large_inline_segment_is_stored_in_parts_and_streams_back,
    segment_above_the_inline_limit_moves_in_parts,
    retry_of_a_committed_segment_is_already_committed,
    same_range_with_other_content_is_a_conflict,
    gaps_and_overlaps_are_refused,
    stale_writer_is_fenced_its_data_kept_and_newer_objects_untouched,
    never_claimed_generation_is_refused,
    flush_closes_the_generation,
    refused_requests_change_nothing,
    replicas_are_isolated,
    concurrent_replicas_lose_nothing,
    retention_keeps_what_a_restore_may_need_and_reclaims_the_rest,
);

fn code(err: &ClientError) -> Option<ErrorCode> {
    err.code()
}

/// Restores into a fresh directory and returns each segment's payload.
async fn restored_payloads(server: &Server, replica: &str) -> (u64, Vec<Vec<u8>>) {
    let dir = tempfile::tempdir().unwrap();
    let restored = server.client(replica).restore(false, dir.path()).await.unwrap();
    let payloads = restored
        .segments
        .iter()
        .map(|s| {
            let file = std::io::BufReader::new(std::fs::File::open(&s.path).unwrap());
            let mut reader = SegmentReader::new(file).unwrap();
            let mut out = Vec::new();
            std::io::Read::read_to_end(&mut reader, &mut out).unwrap();
            reader.finish().unwrap();
            out
        })
        .collect();
    (restored.plan.last_seq, payloads)
}

async fn restore_of_an_empty_subtree_is_an_empty_plan(backend: Backend) {
    let server = Server::start(backend).await;
    let plan = server.client("replica-0").plan(false).await.unwrap();
    assert_eq!((plan.manifest_version, plan.generation, plan.last_seq), (0, 0, 0));
    assert!(plan.chain.is_empty() && !plan.claimed && plan.previous_writer_closed);
    // The clock may tick during the request: valid_until counts from a moment inside it.
    let before = server.now();
    let claimed = server.client("replica-0").plan(true).await.unwrap();
    assert_eq!((claimed.generation, claimed.manifest_version, claimed.claimed), (1, 1, true));
    let grace = claimed.retention.grace_seconds;
    assert!((before + grace..=server.now() + grace).contains(&claimed.valid_until));
}

async fn snapshot_and_deltas_round_trip_byte_identical(backend: Backend) {
    let server = Server::start(backend).await;
    let client = server.client("replica-0");
    let generation = client.plan(true).await.unwrap().generation;
    let snap = segment(SegmentHeader::snapshot(100), &noise(200_000, 1)).await;
    let d1 = segment(SegmentHeader::delta(100, 150), b"put a 1\n").await;
    let d2 = segment(SegmentHeader::delta(150, 151), &[]).await;
    for s in [&snap, &d1, &d2] {
        let response = client.persist(generation, &s.file).await.unwrap();
        assert_eq!(response.outcome, Outcome::Committed);
        assert_eq!(response.last_seq, s.file.descriptor.last_seq);
    }
    let (last_seq, payloads) = restored_payloads(&server, "replica-0").await;
    assert_eq!(last_seq, 151);
    assert_eq!(payloads, vec![snap.payload.clone(), d1.payload.clone(), d2.payload.clone()]);
}

async fn large_inline_segment_is_stored_in_parts_and_streams_back(backend: Backend) {
    // Parts of 64 KiB and responses of 100 KiB: a 1 MiB segment crosses every boundary.
    let server = Server::start_with(backend, |c| {
        c.part_size = 64 << 10;
        c.limits.max_response_bytes = 100 << 10;
    })
    .await;
    let client = server.client("replica-0");
    let generation = client.plan(true).await.unwrap().generation;
    let snap = segment(SegmentHeader::snapshot(7), &noise(1 << 20, 2)).await;
    client.persist(generation, &snap.file).await.unwrap();
    let stored = server.fingerprint().await;
    let parts = stored.keys().filter(|k| k.contains("/segments/")).count();
    assert_eq!(parts as u64, snap.file.descriptor.size.div_ceil(64 << 10));
    let (_, payloads) = restored_payloads(&server, "replica-0").await;
    assert_eq!(payloads, vec![snap.payload]);
}

async fn segment_above_the_inline_limit_moves_in_parts(backend: Backend) {
    let server = Server::start_with(backend, |c| {
        c.limits.max_inline_bytes = 48 << 10;
        c.part_size = 16 << 10;
    })
    .await;
    let client = server.client("replica-0");
    let generation = client.plan(true).await.unwrap().generation;
    // About five times the inline limit.
    let snap = segment(SegmentHeader::snapshot(3), &noise(240 << 10, 3)).await;
    let response = client.persist(generation, &snap.file).await.unwrap();
    assert_eq!(response.outcome, Outcome::Committed);
    assert_eq!(response.limits.max_inline_bytes, 48 << 10);
    let delta = segment(SegmentHeader::delta(3, 4), b"small").await;
    client.persist(generation, &delta.file).await.unwrap();
    let (_, payloads) = restored_payloads(&server, "replica-0").await;
    assert_eq!(payloads, vec![snap.payload, delta.payload]);
}

async fn retry_of_a_committed_segment_is_already_committed(backend: Backend) {
    let server = Server::start(backend).await;
    let client = server.client("replica-0");
    let generation = client.plan(true).await.unwrap().generation;
    let d = segment(SegmentHeader::delta(0, 5), b"five changes").await;
    let first = client.persist(generation, &d.file).await.unwrap();
    let before = server.fingerprint().await;
    let again = client.persist(generation, &d.file).await.unwrap();
    assert_eq!((first.outcome, again.outcome), (Outcome::Committed, Outcome::AlreadyCommitted));
    assert_eq!(again.manifest_version, first.manifest_version);
    assert_eq!(server.fingerprint().await, before, "a retry must write nothing");
}

async fn same_range_with_other_content_is_a_conflict(backend: Backend) {
    let server = Server::start(backend).await;
    let client = server.client("replica-0");
    let generation = client.plan(true).await.unwrap().generation;
    client
        .persist(generation, &segment(SegmentHeader::delta(0, 5), b"original").await.file)
        .await
        .unwrap();
    let other = segment(SegmentHeader::delta(0, 5), b"different").await;
    let err = client.persist(generation, &other.file).await.unwrap_err();
    assert_eq!(code(&err), Some(ErrorCode::SegmentConflict), "{err}");
}

async fn gaps_and_overlaps_are_refused(backend: Backend) {
    let server = Server::start(backend).await;
    let client = server.client("replica-0");
    let generation = client.plan(true).await.unwrap().generation;
    client
        .persist(generation, &segment(SegmentHeader::snapshot(100), b"s").await.file)
        .await
        .unwrap();
    let before = server.fingerprint().await;
    let gap =
        client.persist(generation, &segment(SegmentHeader::delta(101, 120), b"g").await.file).await;
    assert_eq!(gap.as_ref().err().and_then(code), Some(ErrorCode::ChainGap));
    let overlap =
        client.persist(generation, &segment(SegmentHeader::delta(99, 120), b"o").await.file).await;
    assert_eq!(overlap.as_ref().err().and_then(code), Some(ErrorCode::ChainOverlap));
    let plan = client.plan(false).await.unwrap();
    assert_eq!((plan.last_seq, plan.chain.len()), (100, 1));
    let manifests = |f: &BTreeMap<String, String>| {
        f.keys().filter(|k| k.contains("/manifest/")).cloned().collect::<Vec<_>>()
    };
    assert_eq!(manifests(&server.fingerprint().await), manifests(&before));
}

async fn stale_writer_is_fenced_its_data_kept_and_newer_objects_untouched(backend: Backend) {
    let server = Server::start(backend).await;
    let old_task = server.client("replica-0");
    let old = old_task.plan(true).await.unwrap().generation;
    old_task
        .persist(old, &segment(SegmentHeader::snapshot(10), b"state 10").await.file)
        .await
        .unwrap();

    // A rolling deploy: the new task restores and claims while the old one is still running.
    let new_task = server.client("replica-0");
    let new = new_task.plan(true).await.unwrap().generation;
    assert_eq!(new, old + 1);
    new_task
        .persist(new, &segment(SegmentHeader::delta(10, 12), b"new writer").await.file)
        .await
        .unwrap();
    let newer_objects: BTreeMap<_, _> = server.fingerprint().await;

    let late = segment(SegmentHeader::delta(10, 11), b"old writer's last change").await;
    let err = old_task.flush(old, Some(&late.file)).await.unwrap_err();
    let ClientError::Refused { error, status, .. } = &err else { panic!("{err}") };
    assert_eq!((*status, error.code), (409, ErrorCode::GenerationFenced));
    let details = error.details.clone().unwrap();
    assert_eq!(details["current_generation"], new);
    assert_eq!(details["kept"], true);
    assert_eq!(details["segment"], late.file.descriptor.id.to_hex());

    let after = server.fingerprint().await;
    for (key, hash) in &newer_objects {
        assert_eq!(after.get(key), Some(hash), "{key} changed or vanished");
    }
    let plan = new_task.plan(false).await.unwrap();
    assert_eq!((plan.generation, plan.last_seq), (new, 12));
    assert_eq!(plan.superseded.len(), 1);
    assert_eq!(plan.superseded[0].generation, old);
    assert_eq!(plan.superseded[0].segment.id, late.file.descriptor.id);
    // The kept segment can be fetched for recovery, and is byte-identical.
    let raw = Raw::for_subtree(
        Endpoint::Restore,
        "replica-0",
        &format!("length={}&offset=0&segment={}", late.bytes.len(), late.file.descriptor.id),
        bytes::Bytes::new(),
    )
    .signed(&server);
    let (status, body) = raw.send(&server).await;
    assert_eq!((status, &body[..]), (200, &late.bytes[..]));
}

async fn never_claimed_generation_is_refused(backend: Backend) {
    let server = Server::start(backend).await;
    let client = server.client("replica-0");
    let generation = client.plan(true).await.unwrap().generation;
    let before = server.fingerprint().await;
    let err = client
        .persist(generation + 1, &segment(SegmentHeader::delta(0, 1), b"x").await.file)
        .await
        .unwrap_err();
    assert_eq!(code(&err), Some(ErrorCode::GenerationUnknown));
    let plan = client.plan(false).await.unwrap();
    assert!(plan.superseded.is_empty() && plan.chain.is_empty());
    let manifests = |f: &BTreeMap<String, String>| {
        f.keys().filter(|k| !k.contains("/segments/")).cloned().collect::<Vec<_>>()
    };
    assert_eq!(manifests(&server.fingerprint().await), manifests(&before));
}

async fn flush_closes_the_generation(backend: Backend) {
    let server = Server::start(backend).await;
    let client = server.client("replica-0");
    let generation = client.plan(true).await.unwrap().generation;
    let last = segment(SegmentHeader::delta(0, 3), b"final").await;
    let flushed = client.flush(generation, Some(&last.file)).await.unwrap();
    assert!(flushed.writer_closed);
    // A retried flush is fine; more data under the closed generation is not.
    assert_eq!(
        client.flush(generation, Some(&last.file)).await.unwrap().outcome,
        Outcome::AlreadyCommitted
    );
    assert_eq!(client.flush(generation, None).await.unwrap().outcome, Outcome::Closed);
    let err = client
        .persist(generation, &segment(SegmentHeader::delta(3, 4), b"late").await.file)
        .await
        .unwrap_err();
    assert_eq!(code(&err), Some(ErrorCode::GenerationClosed));
    let next = client.plan(true).await.unwrap();
    assert!(next.previous_writer_closed);
    assert_eq!(next.last_seq, 3);
}

async fn refused_requests_change_nothing(backend: Backend) {
    let server = Server::start_with(backend, |c| c.limits.max_inline_bytes = 4096).await;
    let client = server.client("replica-0");
    let generation = client.plan(true).await.unwrap().generation;
    client
        .persist(generation, &segment(SegmentHeader::snapshot(1), b"committed").await.file)
        .await
        .unwrap();
    let before = server.fingerprint().await;
    let good = segment(SegmentHeader::delta(1, 2), b"next").await;
    let body = bytes::Bytes::from(good.bytes.clone());
    let now = server.now();
    let persist = || {
        Raw::for_subtree(Endpoint::Persist, "replica-0", "", body.clone()).generation(generation)
    };

    let mut cases: Vec<(&str, Raw, u16, &str)> = Vec::new();
    let mut bad_sig = persist().signed(&server);
    bad_sig.headers.insert("wkp-signature", "0".repeat(64).parse().unwrap());
    cases.push(("bad signature", bad_sig, 401, "signature_mismatch"));
    cases.push(("stale timestamp", persist().signed_at(now - 1000), 401, "timestamp_out_of_range"));
    cases.push((
        "future timestamp",
        persist().signed_at(now + 1000),
        401,
        "timestamp_out_of_range",
    ));
    let mut unknown = persist();
    unknown.sign_with("k-unknown", &wkp1_testkit::secret(), now);
    cases.push(("unknown key", unknown, 401, "unknown_key"));
    let traversal = Raw::new(Endpoint::Persist, "kv/..%2f../replica-0", "", body.clone())
        .generation(generation)
        .signed(&server);
    cases.push(("path traversal", traversal, 400, "invalid_identifier"));
    let upper = Raw::new(Endpoint::Persist, "kv/Orders/replica-0", "", body.clone())
        .generation(generation)
        .signed(&server);
    cases.push(("upper-case identifier", upper, 400, "invalid_identifier"));
    let huge = Raw::for_subtree(Endpoint::Persist, "replica-0", "", noise(5000, 9))
        .generation(generation)
        .signed(&server);
    cases.push(("oversized body", huge, 413, "payload_too_large"));
    let mut tampered = persist().signed(&server);
    let mut altered = good.bytes.clone();
    altered[50] ^= 1;
    tampered.body = altered.into();
    cases.push(("body does not match its hash", tampered, 401, "content_hash_mismatch"));
    let mut not_a_segment = Raw::for_subtree(
        Endpoint::Persist,
        "replica-0",
        "",
        &b"not a segment at all, just bytes"[..],
    );
    not_a_segment = not_a_segment.generation(generation).signed(&server);
    cases.push(("not a segment", not_a_segment, 422, "invalid_segment"));
    let no_generation =
        Raw::for_subtree(Endpoint::Persist, "replica-0", "", body.clone()).signed(&server);
    cases.push(("missing generation", no_generation, 400, "invalid_request"));
    let unknown_param = Raw::for_subtree(Endpoint::Persist, "replica-0", "bogus=1", body.clone())
        .generation(generation)
        .signed(&server);
    cases.push(("unknown query parameter", unknown_param, 400, "invalid_request"));

    for (name, request, status, code) in cases {
        let (got_status, got_code) = request.send_for_code(&server).await;
        assert_eq!((got_status, got_code.as_deref()), (status, Some(code)), "{name}");
        assert_eq!(server.fingerprint().await, before, "{name} changed the store");
    }
    let plan = client.plan(false).await.unwrap();
    assert_eq!(plan.last_seq, 1);
}

async fn replicas_are_isolated(backend: Backend) {
    let server = Server::start(backend).await;
    let (a, b) = (server.client("replica-0"), server.client("replica-1"));
    let (ga, gb) = (a.plan(true).await.unwrap().generation, b.plan(true).await.unwrap().generation);
    assert_eq!((ga, gb), (1, 1), "each replica has its own generations");
    a.persist(ga, &segment(SegmentHeader::snapshot(5), b"replica zero").await.file).await.unwrap();
    b.persist(gb, &segment(SegmentHeader::snapshot(9), b"replica one").await.file).await.unwrap();
    assert_eq!(restored_payloads(&server, "replica-0").await, (5, vec![b"replica zero".to_vec()]));
    assert_eq!(restored_payloads(&server, "replica-1").await, (9, vec![b"replica one".to_vec()]));
    // Every object is in one of the two replicas' own subtrees, and each holds its own.
    let keys = server.fingerprint().await;
    let base = |replica| {
        let subtree = wkp1_testkit::subtree(replica);
        wkp1_function::layout::Layout::new(&server.config.prefix, &subtree).base().to_owned()
    };
    let (zero, one) = (base("replica-0"), base("replica-1"));
    assert!(zero.ends_with("/replica-0/") && one.ends_with("/replica-1/"), "{zero} {one}");
    let stray: Vec<_> =
        keys.keys().filter(|k| !k.starts_with(&zero) && !k.starts_with(&one)).collect();
    assert!(stray.is_empty(), "objects outside both replicas' subtrees: {stray:?}");
    assert!(keys.keys().any(|k| k.starts_with(&zero)) && keys.keys().any(|k| k.starts_with(&one)));
}

async fn concurrent_replicas_lose_nothing(backend: Backend) {
    let server = std::sync::Arc::new(Server::start(backend).await);
    let mut tasks = tokio::task::JoinSet::new();
    for r in 0..8 {
        let server = server.clone();
        tasks.spawn(async move {
            let replica = format!("replica-{r}");
            let client = server.client(&replica);
            let generation = client.plan(true).await.unwrap().generation;
            for step in 0..5u64 {
                let payload = format!("{replica} step {step}");
                let d = segment(SegmentHeader::delta(step, step + 1), payload.as_bytes()).await;
                client.persist(generation, &d.file).await.unwrap();
            }
        });
    }
    while let Some(done) = tasks.join_next().await {
        done.unwrap();
    }
    for r in 0..8 {
        let replica = format!("replica-{r}");
        let (last, payloads) = restored_payloads(&server, &replica).await;
        let expected: Vec<Vec<u8>> =
            (0..5).map(|s| format!("{replica} step {s}").into_bytes()).collect();
        assert_eq!((last, payloads), (5, expected), "{replica}");
    }
}

async fn retention_keeps_what_a_restore_may_need_and_reclaims_the_rest(backend: Backend) {
    let server = Server::start_with(backend, |c| {
        c.keep_manifests = 1;
        c.retention_every = 1;
    })
    .await;
    let client = server.client("replica-0");
    let generation = client.plan(true).await.unwrap().generation;
    client
        .persist(generation, &segment(SegmentHeader::snapshot(10), b"old snapshot").await.file)
        .await
        .unwrap();
    client
        .persist(generation, &segment(SegmentHeader::delta(10, 11), b"old delta").await.file)
        .await
        .unwrap();
    // A restore starts from this plan...
    let old_plan = client.plan(false).await.unwrap();
    // ...while the writer compacts: a snapshot replaces the chain and triggers retention.
    let fresh = segment(SegmentHeader::snapshot(11), b"new snapshot").await;
    client.persist(generation, &fresh.file).await.unwrap();
    // Within the grace period the old plan's segments are all still there (`RET-1`).
    for planned in &old_plan.chain {
        let query =
            format!("length={}&offset=0&segment={}", planned.segment.size, planned.segment.id);
        let (status, _) =
            Raw::for_subtree(Endpoint::Restore, "replica-0", &query, bytes::Bytes::new())
                .signed(&server)
                .send(&server)
                .await;
        assert_eq!(status, 200, "segment {} of a plan within grace vanished", planned.segment.id);
    }
    // After the grace period, the next retention pass reclaims them.
    server.advance(old_plan.retention.grace_seconds + 60);
    let tail = segment(SegmentHeader::delta(11, 12), b"tail").await;
    client.persist(generation, &tail.file).await.unwrap();
    let keys = server.fingerprint().await;
    for planned in &old_plan.chain {
        assert!(
            !keys.keys().any(|k| k.contains(&planned.segment.id.to_hex())),
            "old segment {} kept",
            planned.segment.id
        );
    }
    let manifests = keys.keys().filter(|k| k.contains("/manifest/")).count();
    assert!(manifests <= 2, "{manifests} manifests kept");
    let (last, payloads) = restored_payloads(&server, "replica-0").await;
    assert_eq!((last, payloads), (12, vec![b"new snapshot".to_vec(), b"tail".to_vec()]));
}

/// Two function instances over one store (two Lambda instances, or a restarted sidecar): each
/// remembers the manifest it last wrote, and neither may act on that memory once it is stale.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_function_instances_sharing_a_store_stay_consistent() {
    let dir = tempfile::tempdir().unwrap();
    let a = Server::start(Backend::file_at(dir.path())).await;
    let b = Server::start(Backend::file_at(dir.path())).await;
    let old = a.client("replica-0").plan(true).await.unwrap().generation;
    a.client("replica-0")
        .persist(old, &segment(SegmentHeader::snapshot(1), b"one").await.file)
        .await
        .unwrap();
    // A new task claims through the other instance; the first still remembers generation 1.
    let new = b.client("replica-0").plan(true).await.unwrap().generation;
    let via_a = a
        .client("replica-0")
        .persist(new, &segment(SegmentHeader::delta(1, 2), b"two").await.file)
        .await;
    assert_eq!(via_a.unwrap().generation, new, "a current writer refused on a stale memory");
    let stale = a
        .client("replica-0")
        .persist(old, &segment(SegmentHeader::delta(2, 3), b"zombie").await.file)
        .await;
    assert_eq!(stale.unwrap_err().code(), Some(ErrorCode::GenerationFenced));
    // The second instance's memory is stale too; its write collides and is decided again.
    let via_b = b
        .client("replica-0")
        .persist(new, &segment(SegmentHeader::delta(2, 3), b"three").await.file)
        .await;
    assert_eq!(via_b.unwrap().last_seq, 3);
    let (last, payloads) = restored_payloads(&b, "replica-0").await;
    assert_eq!((last, payloads), (3, vec![b"one".to_vec(), b"two".to_vec(), b"three".to_vec()]));
}
