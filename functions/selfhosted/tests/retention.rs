//! Retention rules a client cannot watch from outside (SPEC.md section 13): superseded data
//! outlives every retention pass (`RET-3`), and a retention pass that fails does not fail the
//! request that triggered it (`RET-4`).

use std::sync::Arc;
use std::sync::atomic::Ordering;

use wkp1_function::router::router;
use wkp1_protocol::Endpoint;
use wkp1_protocol::segment::SegmentHeader;
use wkp1_testkit::counting::{CountingStore, Counts};
use wkp1_testkit::{Backend, Raw, Server, segment};

/// A function that reclaims at every commit and keeps one manifest, every store call counted.
async fn eager_retention() -> (Server, Arc<Counts>) {
    let counts = Arc::new(Counts::default());
    let shared = counts.clone();
    let server = Server::start_custom(
        Backend::memory().unwrap(),
        |c| {
            c.keep_manifests = 1;
            c.retention_every = 1;
        },
        move |store| CountingStore::new(store, shared),
        router,
    )
    .await;
    (server, counts)
}

#[tokio::test]
async fn superseded_data_outlives_retention() {
    let (server, counts) = eager_retention().await;
    let client = server.client("replica-0");
    let old = client.plan(true).await.unwrap().generation;
    client.persist(old, &segment(SegmentHeader::snapshot(1), b"state 1").await.file).await.unwrap();
    let new = client.plan(true).await.unwrap().generation;
    let late = segment(SegmentHeader::delta(1, 2), b"the fenced writer's last changes").await;
    assert!(client.flush(old, Some(&late.file)).await.is_err(), "the stale flush is fenced");

    // Long after the grace period, compactions reclaim everything unreferenced...
    let grace = client.plan(false).await.unwrap().retention.grace_seconds;
    for (i, seq) in [5u64, 9].into_iter().enumerate() {
        server.advance(grace + 60);
        let snapshot =
            segment(SegmentHeader::snapshot(seq), format!("compacted {i}").as_bytes()).await;
        client.persist(new, &snapshot.file).await.unwrap();
    }
    assert!(counts.deletes() > 0, "retention ran and deleted the old chain");

    // ...but the superseded segment is the operator's, still listed and readable.
    let plan = client.plan(false).await.unwrap();
    assert_eq!(plan.superseded.len(), 1);
    let kept = plan.superseded[0].segment;
    assert_eq!(kept.id, late.file.descriptor.id);
    let query = format!("length={}&offset=0&segment={}", kept.size, kept.id);
    let (status, bytes) = Raw::for_subtree(Endpoint::Restore, "replica-0", &query, "")
        .signed(&server)
        .send(&server)
        .await;
    assert_eq!(status, 200);
    assert_eq!(bytes.as_ref(), late.bytes.as_slice(), "the kept segment, byte for byte");
}

#[tokio::test]
async fn a_failing_retention_pass_does_not_fail_the_commit() {
    let (server, counts) = eager_retention().await;
    let client = server.client("replica-0");
    let generation = client.plan(true).await.unwrap().generation;
    client
        .persist(generation, &segment(SegmentHeader::snapshot(1), b"old").await.file)
        .await
        .unwrap();
    let grace = client.plan(false).await.unwrap().retention.grace_seconds;
    server.advance(grace + 60);
    counts.refuse_deletes.store(true, Ordering::SeqCst);
    let before = counts.deletes();
    let answer = client
        .persist(generation, &segment(SegmentHeader::snapshot(2), b"new").await.file)
        .await
        .expect("the commit succeeds although its retention pass cannot delete");
    assert_eq!(answer.last_seq, 2);
    assert!(counts.deletes() > before, "retention tried to delete");
    // Nothing acknowledged was lost, and a later pass, once deletes work, catches up.
    counts.refuse_deletes.store(false, Ordering::SeqCst);
    server.advance(grace + 60);
    client
        .persist(generation, &segment(SegmentHeader::delta(2, 3), b"tail").await.file)
        .await
        .unwrap();
    let plan = client.plan(false).await.unwrap();
    assert_eq!((plan.last_seq, plan.chain.len()), (3, 2));
}
