//! A part uploaded again counts as fresh (`IDEM-3`, `LARGE-3`, SPEC 1.0.1).
//!
//! A commit ignores parts older than half the retention grace period, since retention may be
//! reclaiming them. Before 1.0.1 a client re-uploading such a part got `already_stored: true`
//! and the part stayed old, so every commit failed again: a livelock until retention removed
//! the part. Part ages are the store's own clock, so this test ages the part files on disk.

use std::time::{Duration, SystemTime};

use bytes::Bytes;
use sha2::{Digest, Sha256};
use wkp1_protocol::Endpoint;
use wkp1_protocol::manifest::{CommitRequest, SegmentDescriptor};
use wkp1_protocol::segment::{SegmentHeader, SegmentVerifier, encode_segment};
use wkp1_testkit::{Backend, Raw, Server, noise};

fn part_files(dir: &std::path::Path, out: &mut Vec<std::path::PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap().flatten() {
        let path = entry.path();
        if path.is_dir() {
            part_files(&path, out);
        } else if path.to_string_lossy().contains("/segments/") {
            out.push(path);
        }
    }
}

#[tokio::test]
async fn a_part_uploaded_again_counts_as_fresh_for_the_commit() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(Backend::file_at(dir.path())).await;
    let client = server.client("replica-0");
    let generation = client.plan(true).await.unwrap().generation;
    let bytes = encode_segment(SegmentHeader::snapshot(7), &noise(3000, 1)).unwrap();
    let id = hex::encode(Sha256::digest(&bytes));
    let upload = |offset: usize, len: usize| {
        let body = Bytes::copy_from_slice(&bytes[offset..offset + len]);
        Raw::for_subtree(
            Endpoint::Persist,
            "replica-0",
            &format!("offset={offset}&segment={id}"),
            body,
        )
        .generation(generation)
        .signed(&server)
        .send(&server)
    };
    let half = bytes.len() / 2;
    let rest = bytes.len() - half;
    assert_eq!(upload(0, half).await.0, 200);
    assert_eq!(upload(half, rest).await.0, 200);

    // Both parts age past half the grace period, as if the client had stalled.
    let mut files = Vec::new();
    part_files(dir.path(), &mut files);
    assert_eq!(files.len(), 2, "{files:?}");
    let old = SystemTime::now() - Duration::from_secs(server.config.grace_seconds);
    for file in &files {
        std::fs::File::options().write(true).open(file).unwrap().set_modified(old).unwrap();
    }
    let commit = || {
        let mut verifier = SegmentVerifier::new();
        verifier.update(&bytes).unwrap();
        let descriptor = SegmentDescriptor::from(&verifier.finish().unwrap());
        let body = CommitRequest { segment: descriptor, parts: vec![half as u64, rest as u64] };
        Raw::for_subtree(
            Endpoint::Persist,
            "replica-0",
            &format!("commit=true&segment={id}"),
            serde_json::to_vec(&body).unwrap(),
        )
        .generation(generation)
        .signed(&server)
        .send_for_code(&server)
    };
    assert_eq!(commit().await, (400, Some("invalid_request".into())), "old parts count as absent");

    // The client uploads the first part again: same bytes, so already stored, and now fresh.
    let (status, answer) = upload(0, half).await;
    assert_eq!(status, 200);
    let answer: serde_json::Value = serde_json::from_slice(&answer).unwrap();
    assert_eq!(answer["already_stored"], true, "{answer}");
    assert_eq!(
        commit().await,
        (400, Some("invalid_request".into())),
        "the second part is still old and still absent"
    );
    assert_eq!(upload(half, rest).await.0, 200);
    assert_eq!(commit().await, (200, None), "both parts were uploaded again: the commit lands");
    let restored = client.plan(false).await.unwrap();
    assert_eq!((restored.last_seq, restored.chain.len()), (7, 1));
}
