//! Restore plans and downloads (SPEC.md section 12).

use bytes::Bytes;
use wkp1_protocol::Endpoint;
use wkp1_protocol::endpoint::{RestoreQuery, SegmentId};
use wkp1_protocol::segment::SegmentHeader;

use crate::check::{Check, CheckResult};
use crate::session::{Request, Session, noise, segment};
use crate::{check, fail};

pub(crate) fn checks() -> Vec<Check> {
    vec![
        check!(
            restore_empty_subtree_is_an_empty_plan,
            "restore",
            Must,
            ["REST-1"],
            "A brand-new replica restores to nothing, not to an error."
        ),
        check!(
            restore_claim_increments_generation,
            "restore",
            Must,
            ["GEN-1", "GEN-2"],
            "Each claim is a new writer generation; a plain restore claims nothing."
        ),
        check!(
            restore_plan_advertises_limits_and_grace,
            "restore",
            Must,
            ["LARGE-1", "LARGE-8", "RET-2", "REST-4"],
            "Clients adapt to limits and finish within the grace the plan promises."
        ),
        check!(
            restore_long_chains_and_histories_come_back_whole,
            "restore",
            Must,
            ["REST-2", "MAN-1", "CHAIN-2"],
            "A chain longer than any page size or cache a function might pick restores whole."
        ),
        check!(
            restore_download_outside_the_segment_is_refused,
            "restore",
            Must,
            ["LARGE-6"],
            "Ranges past the end, over the response limit, or of unknown segments are refused."
        ),
    ]
}

async fn restore_empty_subtree_is_an_empty_plan(s: &mut Session) -> CheckResult {
    let subtree = s.replica();
    let plan = s.plan(&subtree, false).await?;
    if plan.manifest_version != 0 || plan.last_seq != 0 || !plan.chain.is_empty() || plan.claimed {
        fail!(
            "empty replica: expected version 0, state 0, no chain, not claimed; got version {}, state {}, {} segments, claimed {}",
            plan.manifest_version,
            plan.last_seq,
            plan.chain.len(),
            plan.claimed
        );
    }
    if plan.subtree != subtree {
        fail!("plan names subtree {}, asked for {subtree}", plan.subtree);
    }
    Ok(())
}

async fn restore_claim_increments_generation(s: &mut Session) -> CheckResult {
    let subtree = s.replica();
    let first = s.plan(&subtree, true).await?;
    let second = s.plan(&subtree, true).await?;
    if !first.claimed || first.generation == 0 || second.generation != first.generation + 1 {
        fail!(
            "two claims gave generations {} and {} (claimed: {}, {})",
            first.generation,
            second.generation,
            first.claimed,
            second.claimed
        );
    }
    let plain = s.plan(&subtree, false).await?;
    if plain.claimed || plain.generation != second.generation {
        fail!(
            "a plain restore after two claims says generation {} (claimed {}), expected {}",
            plain.generation,
            plain.claimed,
            second.generation
        );
    }
    Ok(())
}

async fn restore_plan_advertises_limits_and_grace(s: &mut Session) -> CheckResult {
    let subtree = s.replica();
    let plan = s.plan(&subtree, false).await?;
    let l = plan.limits;
    if l.max_inline_bytes == 0
        || l.max_response_bytes == 0
        || l.max_parts == 0
        || l.max_segment_bytes < l.max_inline_bytes
    {
        fail!("implausible limits: {l:?}");
    }
    if !l.presign_upload && l.max_segment_bytes > l.max_parts.saturating_mul(l.max_inline_bytes) {
        fail!(
            "max_segment_bytes {} cannot be reached without presigned uploads: {} parts of at most {} bytes carry {}",
            l.max_segment_bytes,
            l.max_parts,
            l.max_inline_bytes,
            l.max_parts.saturating_mul(l.max_inline_bytes)
        );
    }
    if plan.retention.grace_seconds < 900 {
        fail!("grace_seconds is {}, SPEC requires at least 900", plan.retention.grace_seconds);
    }
    let earliest = s.now().saturating_sub(60) + plan.retention.grace_seconds;
    if plan.valid_until < earliest {
        fail!(
            "valid_until {} is earlier than now + grace ({earliest}, allowing 60 s of clock skew)",
            plan.valid_until
        );
    }
    Ok(())
}

async fn restore_download_outside_the_segment_is_refused(s: &mut Session) -> CheckResult {
    let (subtree, generation) = s.claimed_replica().await?;
    let bytes = segment(SegmentHeader::snapshot(1), &noise(4096, 1));
    let committed = s.persist_ok(&subtree, generation, &bytes).await?;
    let id = SegmentId(
        sha2::Digest::finalize(<sha2::Sha256 as sha2::Digest>::new_with_prefix(&bytes)).into(),
    );
    let size = bytes.len() as u64;
    let fetch = |s: &mut Session, segment: SegmentId, offset: u64, length: u64| {
        let query = RestoreQuery::Fetch { segment, offset, length }.to_query_string();
        s.sign(Request::new(Endpoint::Restore, &subtree, query, Bytes::new()))
    };
    let past_end = fetch(s, id, size - 10, 20);
    let response = s.send(past_end).await?;
    s.expect("download of bytes past the segment's end", &response, 400, Some("invalid_request"))?;
    let max = committed.limits.max_response_bytes;
    if max < u64::MAX {
        let too_long = fetch(s, id, 0, max + 1);
        let response = s.send(too_long).await?;
        s.expect(
            "download longer than max_response_bytes",
            &response,
            400,
            Some("invalid_request"),
        )?;
    }
    let empty = fetch(s, id, 0, 0);
    let response = s.send(empty).await?;
    s.expect("download of 0 bytes", &response, 400, Some("invalid_request"))?;
    // Longer than max_response_bytes but inside a segment: only that limit refuses it.
    if max.saturating_add(2) <= s.target.large_state_max {
        let big = segment(SegmentHeader::delta(1, 2), &noise(max as usize + 2, 2));
        let limits = committed.limits;
        let part_len = limits.max_inline_bytes as usize;
        let response = s
            .persist_in_parts(&subtree, Endpoint::Persist, generation, &big, &limits, part_len)
            .await?;
        s.expect("persist of a segment larger than max_response_bytes", &response, 200, None)?;
        let request = fetch(s, crate::session::segment_id(&big), 0, max + 1);
        let response = s.send(request).await?;
        s.expect(
            "download of max_response_bytes + 1 bytes of a larger segment",
            &response,
            400,
            Some("invalid_request"),
        )?;
    }
    let unknown = fetch(s, SegmentId([7; 32]), 0, 1);
    let response = s.send(unknown).await?;
    s.expect("download of a segment nobody committed", &response, 404, Some("segment_not_found"))
}

async fn restore_long_chains_and_histories_come_back_whole(s: &mut Session) -> CheckResult {
    // More deltas than the usual small constants (16, 32, 50, 64), and claims in between, so the
    // manifest history is longer still.
    const DELTAS: u64 = 70;
    let (subtree, mut generation) = s.claimed_replica().await?;
    for seq in 0..DELTAS {
        if seq % 25 == 24 {
            generation = s.plan(&subtree, true).await?.generation;
        }
        let payload = format!("change {seq}");
        s.persist_ok(
            &subtree,
            generation,
            &segment(SegmentHeader::delta(seq, seq + 1), payload.as_bytes()),
        )
        .await?;
    }
    let (plan, payloads) = s.restore(&subtree).await?;
    if plan.last_seq != DELTAS || payloads.len() != DELTAS as usize {
        fail!(
            "{DELTAS} deltas restored as {} segments up to state {}",
            payloads.len(),
            plan.last_seq
        );
    }
    for (seq, payload) in payloads.iter().enumerate() {
        if payload != format!("change {seq}").as_bytes() {
            fail!("delta {seq} came back as {:?}", String::from_utf8_lossy(payload));
        }
    }
    Ok(())
}
