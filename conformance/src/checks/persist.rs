//! Persist: round trips, chains, segment validation, idempotent retries (SPEC.md sections 6, 7,
//! 9, 10).

use wkp1_protocol::manifest::{Outcome, PersistResponse};
use wkp1_protocol::segment::SegmentHeader;
use wkp1_protocol::{Endpoint, Subtree, headers};

use crate::check::{Check, CheckError, CheckResult};
use crate::session::{Request, Response, Session, noise, segment};
use crate::{check, fail};

pub(crate) fn checks() -> Vec<Check> {
    vec![
        check!(
            persist_snapshot_round_trip_is_byte_identical,
            "persist",
            Must,
            ["PER-1", "PER-2", "SEG-7", "REST-2"],
            "What was persisted comes back byte for byte, under its id."
        ),
        check!(
            persist_delta_chain_restores_in_order,
            "persist",
            Must,
            ["CHAIN-1", "CHAIN-2", "REST-2"],
            "A snapshot and its deltas come back whole and in order."
        ),
        check!(
            persist_chain_from_empty_state_is_accepted,
            "persist",
            Must,
            ["CHAIN-1"],
            "A chain may start with a delta from state 0."
        ),
        check!(
            persist_gap_is_409,
            "persist",
            Must,
            ["CHAIN-2"],
            "A delta starting after the committed state would restore a hole."
        ),
        check!(
            persist_overlap_is_409,
            "persist",
            Must,
            ["CHAIN-3"],
            "A delta or snapshot older than the committed state is refused."
        ),
        check!(
            persist_snapshot_replaces_the_chain,
            "persist",
            Must,
            ["CHAIN-4"],
            "After a snapshot the chain is that snapshot alone."
        ),
        check!(
            persist_invalid_segment_is_422,
            "persist",
            Must,
            ["SEG-1", "SEG-6", "SEG-8"],
            "Bytes that are not a valid segment are refused and not committed."
        ),
        check!(
            persist_every_segment_defect_is_422,
            "persist",
            Must,
            ["SEG-1", "SEG-2", "SEG-3", "SEG-4", "SEG-8"],
            "Every defect of the segment vectors, sent as a persist, is refused and not committed."
        ),
        check!(
            persist_body_in_small_chunks_is_the_same_segment,
            "persist",
            Must,
            ["SEG-8", "AUTH-3", "PER-1"],
            "A body may arrive in pieces of any size; a streaming verifier must not care."
        ),
        check!(
            persist_content_type_is_no_reason_to_refuse,
            "persist",
            Must,
            ["EP-6"],
            "Proxies rewrite content types; answers are JSON and say so."
        ),
        check!(
            persist_missing_generation_is_400,
            "persist",
            Must,
            ["GEN-3"],
            "Every write names its generation."
        ),
        check!(
            persist_generation_zero_is_400,
            "persist",
            Must,
            ["GEN-3"],
            "Generation 0 means never claimed: accepting it lets an unclaimed writer in."
        ),
        check!(
            persist_manifest_hint_changes_no_answer,
            "persist",
            Must,
            ["PER-3", "MAN-2"],
            "A wrong wkp-manifest-version (stale, never written) changes no answer."
        ),
        check!(
            idempotency_retry_is_already_committed,
            "idempotency",
            Must,
            ["IDEM-1"],
            "A lost answer is recovered by sending the same request again."
        ),
        check!(
            idempotency_same_size_other_content_is_409,
            "idempotency",
            Must,
            ["IDEM-1", "IDEM-2"],
            "A retry is recognised by its id, not by its range and size."
        ),
        check!(
            idempotency_same_range_other_content_is_409,
            "idempotency",
            Must,
            ["IDEM-2"],
            "Other bytes for a committed range must never replace them."
        ),
    ]
}

async fn persist_snapshot_round_trip_is_byte_identical(s: &mut Session) -> CheckResult {
    let (subtree, generation) = s.claimed_replica().await?;
    let payload = noise(100_000, 11);
    let bytes = segment(SegmentHeader::snapshot(42), &payload);
    let answer = s.persist_ok(&subtree, generation, &bytes).await?;
    if answer.outcome != Outcome::Committed
        || answer.last_seq != 42
        || answer.generation != generation
    {
        fail!(
            "persist answered {:?}, state {}, generation {}",
            answer.outcome,
            answer.last_seq,
            answer.generation
        );
    }
    let plan = s.plan(&subtree, false).await?;
    let [planned] = &plan.chain[..] else {
        fail!("plan has {} segments, expected 1", plan.chain.len())
    };
    let downloaded = s.download(&subtree, planned, plan.limits.max_response_bytes).await?;
    if downloaded != bytes {
        fail!("the segment came back different ({} bytes, sent {})", downloaded.len(), bytes.len());
    }
    Ok(())
}

async fn persist_delta_chain_restores_in_order(s: &mut Session) -> CheckResult {
    let (subtree, generation) = s.claimed_replica().await?;
    let payloads: Vec<Vec<u8>> =
        (0..4).map(|i| format!("change set {i}").repeat(50 + i).into_bytes()).collect();
    let headers = [
        SegmentHeader::snapshot(10),
        SegmentHeader::delta(10, 20),
        SegmentHeader::delta(20, 21),
        SegmentHeader::delta(21, 35),
    ];
    for (header, payload) in headers.iter().zip(&payloads) {
        s.persist_ok(&subtree, generation, &segment(*header, payload)).await?;
    }
    let (plan, restored) = s.restore(&subtree).await?;
    if plan.last_seq != 35 || restored != payloads {
        fail!(
            "restored state {} with {} segments; expected state 35 and the 4 payloads in order",
            plan.last_seq,
            restored.len()
        );
    }
    Ok(())
}

async fn persist_chain_from_empty_state_is_accepted(s: &mut Session) -> CheckResult {
    let (subtree, generation) = s.claimed_replica().await?;
    s.persist_ok(
        &subtree,
        generation,
        &segment(SegmentHeader::delta(0, 3), b"first three changes"),
    )
    .await?;
    s.persist_ok(&subtree, generation, &segment(SegmentHeader::delta(3, 4), b"fourth")).await?;
    let (plan, restored) = s.restore(&subtree).await?;
    if plan.last_seq != 4 || restored.len() != 2 {
        fail!(
            "restored state {} from {} segments, expected state 4 from 2",
            plan.last_seq,
            restored.len()
        );
    }
    Ok(())
}

/// Sends `header` after a snapshot of state 100 and expects a 409 `code`, state unchanged.
async fn conflict_after_snapshot(
    s: &mut Session,
    header: SegmentHeader,
    code: &str,
) -> CheckResult {
    let (subtree, generation) = s.claimed_replica().await?;
    s.persist_ok(&subtree, generation, &segment(SegmentHeader::snapshot(100), b"state 100"))
        .await?;
    let response = s
        .persist(&subtree, Endpoint::Persist, generation, &segment(header, b"does not fit"))
        .await?;
    s.expect(&format!("persist of {header:?} on state 100"), &response, 409, Some(code))?;
    let plan = s.plan(&subtree, false).await?;
    if plan.last_seq != 100 || plan.chain.len() != 1 {
        fail!(
            "the refused segment changed the chain: state {}, {} segments",
            plan.last_seq,
            plan.chain.len()
        );
    }
    Ok(())
}

async fn persist_gap_is_409(s: &mut Session) -> CheckResult {
    conflict_after_snapshot(s, SegmentHeader::delta(101, 120), "chain_gap").await
}

async fn persist_overlap_is_409(s: &mut Session) -> CheckResult {
    conflict_after_snapshot(s, SegmentHeader::delta(99, 120), "chain_overlap").await?;
    conflict_after_snapshot(s, SegmentHeader::snapshot(99), "chain_overlap").await
}

async fn persist_snapshot_replaces_the_chain(s: &mut Session) -> CheckResult {
    let (subtree, generation) = s.claimed_replica().await?;
    s.persist_ok(&subtree, generation, &segment(SegmentHeader::snapshot(5), b"old")).await?;
    s.persist_ok(&subtree, generation, &segment(SegmentHeader::delta(5, 6), b"delta")).await?;
    s.persist_ok(&subtree, generation, &segment(SegmentHeader::snapshot(6), b"compacted")).await?;
    let (plan, restored) = s.restore(&subtree).await?;
    if plan.chain.len() != 1 || restored != vec![b"compacted".to_vec()] {
        fail!(
            "after a snapshot the chain has {} segments, expected the snapshot alone",
            plan.chain.len()
        );
    }
    Ok(())
}

async fn persist_invalid_segment_is_422(s: &mut Session) -> CheckResult {
    let (subtree, generation) = s.claimed_replica().await?;
    let good = segment(SegmentHeader::delta(0, 1), b"payload");
    let mut bad_magic = good.clone();
    bad_magic[0] = b'X';
    let mut bad_trailer = good.clone();
    let last = bad_trailer.len() - 1;
    bad_trailer[last] ^= 0xff;
    let cases: [(&str, &[u8]); 3] = [
        ("bad magic", &bad_magic),
        ("wrong trailer", &bad_trailer),
        ("plain text", b"definitely not a segment"),
    ];
    for (name, body) in cases {
        let response = s.persist(&subtree, Endpoint::Persist, generation, body).await?;
        s.expect(
            &format!("persist of a segment with {name}"),
            &response,
            422,
            Some("invalid_segment"),
        )?;
    }
    let plan = s.plan(&subtree, false).await?;
    if !plan.chain.is_empty() {
        fail!("an invalid segment was committed");
    }
    Ok(())
}

async fn persist_missing_generation_is_400(s: &mut Session) -> CheckResult {
    let (subtree, generation) = s.claimed_replica().await?;
    let body = segment(SegmentHeader::delta(0, 1), b"x");
    let request = Request::new(Endpoint::Persist, &subtree, "", body.clone());
    let response = s.send(s.sign(request)).await?;
    s.expect("persist without wkp-generation", &response, 400, Some("invalid_request"))?;
    // Values a lenient number parser takes for the claimed generation (1.0.1: 1 to 20 digits).
    let padded = format!("{generation:021}");
    for value in
        [format!("+{generation}"), format!("{generation}.0"), padded, format!("0x{generation}")]
    {
        let request = Request::new(Endpoint::Persist, &subtree, "", body.clone())
            .header("wkp-generation", &value);
        let response = s.send(s.sign(request)).await?;
        s.expect(
            &format!("persist with wkp-generation {value:?}"),
            &response,
            400,
            Some("invalid_request"),
        )?;
    }
    if s.plan(&subtree, false).await?.last_seq != 0 {
        fail!("a persist with a malformed generation was committed");
    }
    Ok(())
}

/// Sends `header` under `generation` with `wkp-manifest-version: hint`.
async fn persist_hinted(
    s: &mut Session,
    subtree: &Subtree,
    generation: u64,
    hint: u64,
    header: SegmentHeader,
    payload: &[u8],
) -> Result<Response, CheckError> {
    let request = Request::new(Endpoint::Persist, subtree, "", segment(header, payload))
        .header("content-type", headers::SEGMENT_MEDIA_TYPE)
        .header(headers::MANIFEST_VERSION, &hint.to_string())
        .generation(generation);
    let request = s.sign(request);
    s.send(request).await
}

async fn persist_manifest_hint_changes_no_answer(s: &mut Session) -> CheckResult {
    // Hints naming the claim (whose chain is empty) and a version never written.
    for stale in [false, true] {
        let (subtree, generation) = s.claimed_replica().await?;
        let claim = s.plan(&subtree, false).await?.manifest_version;
        s.persist_ok(&subtree, generation, &segment(SegmentHeader::snapshot(10), b"ten")).await?;
        let last = s
            .persist_ok(&subtree, generation, &segment(SegmentHeader::delta(10, 20), b"twenty"))
            .await?;
        let hint = if stale { claim } else { last.manifest_version + 1_000 };
        let what =
            format!("persist with wkp-manifest-version {hint} (latest {})", last.manifest_version);

        let retry =
            persist_hinted(s, &subtree, generation, hint, SegmentHeader::delta(10, 20), b"twenty")
                .await?;
        s.expect(&format!("retry of the last commit, {what}"), &retry, 200, None)?;
        let retry: PersistResponse = retry.json("persist answer")?;
        if retry.outcome != Outcome::AlreadyCommitted
            || retry.manifest_version != last.manifest_version
        {
            fail!(
                "a retry, {what}, answered {:?} at version {}",
                retry.outcome,
                retry.manifest_version
            );
        }
        let old = persist_hinted(s, &subtree, generation, hint, SegmentHeader::snapshot(5), b"old")
            .await?;
        s.expect(
            &format!("snapshot of state 5 on state 20, {what}"),
            &old,
            409,
            Some("chain_overlap"),
        )?;
        let next =
            persist_hinted(s, &subtree, generation, hint, SegmentHeader::delta(20, 30), b"thirty")
                .await?;
        s.expect(&format!("delta 20 to 30 on state 20, {what}"), &next, 200, None)?;
        let plan = s.plan(&subtree, false).await?;
        if plan.last_seq != 30 || plan.chain.len() != 3 {
            fail!(
                "after persists {what}: state {} with {} segments, expected 30 with 3",
                plan.last_seq,
                plan.chain.len()
            );
        }
    }
    Ok(())
}

async fn idempotency_retry_is_already_committed(s: &mut Session) -> CheckResult {
    let (subtree, generation) = s.claimed_replica().await?;
    let bytes = segment(SegmentHeader::delta(0, 7), b"seven changes");
    let first = s.persist_ok(&subtree, generation, &bytes).await?;
    let again = s.persist_ok(&subtree, generation, &bytes).await?;
    if again.outcome != Outcome::AlreadyCommitted
        || again.manifest_version != first.manifest_version
    {
        fail!(
            "the retry answered {:?} at manifest version {} (first: {})",
            again.outcome,
            again.manifest_version,
            first.manifest_version
        );
    }
    let (plan, restored) = s.restore(&subtree).await?;
    if plan.chain.len() != 1 || restored.len() != 1 {
        fail!("after a retry the chain has {} segments", plan.chain.len());
    }
    Ok(())
}

async fn idempotency_same_range_other_content_is_409(s: &mut Session) -> CheckResult {
    let (subtree, generation) = s.claimed_replica().await?;
    s.persist_ok(&subtree, generation, &segment(SegmentHeader::delta(0, 7), b"the original"))
        .await?;
    let other = segment(SegmentHeader::delta(0, 7), b"something else");
    let response = s.persist(&subtree, Endpoint::Persist, generation, &other).await?;
    s.expect(
        "persist of other bytes for a committed range",
        &response,
        409,
        Some("segment_conflict"),
    )?;
    let (_, restored) = s.restore(&subtree).await?;
    if restored != vec![b"the original".to_vec()] {
        fail!("the committed segment was replaced");
    }
    Ok(())
}

async fn persist_generation_zero_is_400(s: &mut Session) -> CheckResult {
    let subtree = s.replica();
    let bytes = segment(SegmentHeader::delta(0, 1), b"written by nobody");
    let response = s.persist(&subtree, Endpoint::Persist, 0, &bytes).await?;
    s.expect(
        "persist with wkp-generation 0 on a replica never claimed",
        &response,
        400,
        Some("invalid_request"),
    )?;
    let plan = s.plan(&subtree, false).await?;
    if plan.last_seq != 0 || plan.generation != 0 {
        fail!(
            "generation 0 changed the replica: generation {}, state {}",
            plan.generation,
            plan.last_seq
        );
    }
    Ok(())
}

async fn idempotency_same_size_other_content_is_409(s: &mut Session) -> CheckResult {
    let (subtree, generation) = s.claimed_replica().await?;
    let original = segment(SegmentHeader::delta(0, 7), &noise(64, 1));
    let other = segment(SegmentHeader::delta(0, 7), &noise(64, 2));
    if original.len() != other.len() {
        return Err(CheckError::Skip("the kit could not build two segments of one size".into()));
    }
    s.persist_ok(&subtree, generation, &original).await?;
    let response = s.persist(&subtree, Endpoint::Persist, generation, &other).await?;
    s.expect(
        "persist of other bytes of the same size for a committed range",
        &response,
        409,
        Some("segment_conflict"),
    )?;
    let plan = s.plan(&subtree, false).await?;
    if plan.chain.len() != 1 || plan.chain[0].segment.id != crate::session::segment_id(&original) {
        fail!("the committed segment was replaced or joined by the conflicting one");
    }
    Ok(())
}

async fn persist_every_segment_defect_is_422(s: &mut Session) -> CheckResult {
    let vectors: serde_json::Value =
        serde_json::from_str(wkp1_protocol::vectors::SEGMENTS).expect("built-in vectors");
    let (subtree, generation) = s.claimed_replica().await?;
    for case in vectors["negative"].as_array().into_iter().flatten() {
        if case["needs_decompression"] == true {
            continue; // a function need not decompress (SEG-8)
        }
        let name = case["name"].as_str().unwrap_or("?");
        let bytes = hex::decode(case["segment_hex"].as_str().unwrap_or_default())
            .map_err(|e| CheckError::Fail(format!("vector {name}: {e}")))?;
        let response = s.persist(&subtree, Endpoint::Persist, generation, &bytes).await?;
        s.expect(
            &format!("persist of vector {name} ({})", case["expected_error"]),
            &response,
            422,
            Some("invalid_segment"),
        )?;
    }
    let plan = s.plan(&subtree, false).await?;
    if !plan.chain.is_empty() || !plan.superseded.is_empty() {
        fail!("an invalid segment was committed or kept");
    }
    Ok(())
}

async fn persist_content_type_is_no_reason_to_refuse(s: &mut Session) -> CheckResult {
    let (subtree, generation) = s.claimed_replica().await?;
    let body = segment(SegmentHeader::delta(0, 1), b"sent as text/plain");
    let request = Request::new(Endpoint::Persist, &subtree, "", body)
        .header("content-type", "text/plain")
        .generation(generation);
    let response = s.send(s.sign(request)).await?;
    s.expect("persist sent as text/plain", &response, 200, None)?;
    let json_type = |r: &Response| {
        r.headers
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.starts_with("application/json"))
    };
    let answer: serde_json::Value = response.json("persist answer")?;
    if !json_type(&response) || answer["wkp_version"].as_str().is_none() {
        fail!("the persist answer is not application/json with a wkp_version");
    }
    Ok(())
}

async fn persist_body_in_small_chunks_is_the_same_segment(s: &mut Session) -> CheckResult {
    let (subtree, generation) = s.claimed_replica().await?;
    // Pieces smaller than the header, the zstd magic and the trailer, so every boundary falls
    // inside one of them; then a larger piece size for good measure.
    let mut state = 0;
    for (chunk, seed) in [(1usize, 51u64), (7, 52), (33, 53)] {
        let bytes = segment(SegmentHeader::delta(state, state + 1), &noise(300, seed));
        let request = s.sign(
            Request::new(Endpoint::Persist, &subtree, "", bytes.clone())
                .header("content-type", headers::SEGMENT_MEDIA_TYPE)
                .generation(generation),
        );
        let response = s.send_in_chunks(request, chunk).await?;
        s.expect(&format!("persist sent in {chunk}-byte chunks"), &response, 200, None)?;
        state += 1;
    }
    let (plan, _) = s.restore(&subtree).await?;
    if plan.last_seq != state {
        fail!("after three chunked persists the replica is at state {}", plan.last_seq);
    }
    Ok(())
}
