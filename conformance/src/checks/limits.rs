//! Body limits and the large-segment path (SPEC.md section 11).

use wkp1_protocol::Endpoint;
use wkp1_protocol::manifest::{Limits, PersistResponse};
use wkp1_protocol::segment::SegmentHeader;

use crate::check::{Check, CheckError, CheckResult};
use crate::session::{Session, descriptor_of, noise, segment, segment_id, segment_of_size};
use crate::{check, fail};

pub(crate) fn checks() -> Vec<Check> {
    vec![
        check!(
            limits_oversized_body_is_413,
            "limits",
            Must,
            ["LARGE-1"],
            "A body over the advertised inline limit is refused before it is stored."
        ),
        check!(
            limits_inline_limit_is_exact,
            "limits",
            Must,
            ["LARGE-1"],
            "A body of exactly max_inline_bytes is allowed; one byte more is not."
        ),
        check!(
            limits_ranges_inside_later_parts_are_exact,
            "limits",
            Must,
            ["LARGE-5", "LARGE-6"],
            "A range starting inside a stored part, past the first, returns exactly its bytes."
        ),
        check!(
            limits_parts_that_are_not_the_segment_are_422,
            "limits",
            Must,
            ["LARGE-3", "MAN-4"],
            "A commit must verify the parts' bytes, not trust the descriptor."
        ),
        check!(
            limits_part_uploaded_twice_is_already_stored,
            "limits",
            Must,
            ["IDEM-3", "LARGE-2"],
            "A part whose answer was lost is sent again, and that must succeed."
        ),
        check!(
            limits_part_past_max_segment_is_413,
            "limits",
            Must,
            ["LARGE-2"],
            "A part reaching past max_segment_bytes is refused, wherever it starts."
        ),
        check!(
            limits_a_part_with_other_bytes_conflicts_or_replaces,
            "limits",
            Must,
            ["IDEM-2", "IDEM-3"],
            "Other bytes for a committed segment's part are a conflict; for an uncommitted one, a leftover."
        ),
        check!(
            limits_commit_bodies_that_cannot_be_are_refused,
            "limits",
            Must,
            ["LARGE-3"],
            "A commit body whose lengths, size or header contradict the parts must change nothing."
        ),
        check!(
            limits_large_segment_moves_in_parts,
            "limits",
            Must,
            ["LARGE-2", "LARGE-3", "LARGE-5", "LARGE-6"],
            "State several times the inline limit still moves, and comes back whole."
        ),
        check!(
            limits_commit_with_a_missing_part_is_400,
            "limits",
            Must,
            ["LARGE-3"],
            "A commit must not reference bytes that were never uploaded."
        ),
    ]
}

/// The advertised limits, and a state size several times the inline limit, if the run allows it.
async fn large_size(s: &mut Session) -> Result<(Limits, usize), CheckError> {
    let subtree = s.replica();
    let limits = s.plan(&subtree, false).await?.limits;
    let size = limits.max_inline_bytes.saturating_mul(7) / 2;
    if size > s.target.large_state_max {
        return Err(CheckError::Skip(format!(
            "the inline limit is {} bytes; a state 3.5 times larger exceeds --large-state-max {} (raise it, or lower the function's limit for the run)",
            limits.max_inline_bytes, s.target.large_state_max
        )));
    }
    Ok((limits, size as usize))
}

async fn limits_oversized_body_is_413(s: &mut Session) -> CheckResult {
    let (limits, _) = large_size(s).await?;
    let (subtree, generation) = s.claimed_replica().await?;
    let over =
        segment(SegmentHeader::snapshot(1), &noise(limits.max_inline_bytes as usize + 1024, 3));
    let response = s.persist(&subtree, Endpoint::Persist, generation, &over).await?;
    s.expect(
        &format!("persist of {} bytes (inline limit {})", over.len(), limits.max_inline_bytes),
        &response,
        413,
        Some("payload_too_large"),
    )?;
    let plan = s.plan(&subtree, false).await?;
    if !plan.chain.is_empty() {
        fail!("the oversized segment was committed");
    }
    Ok(())
}

async fn limits_large_segment_moves_in_parts(s: &mut Session) -> CheckResult {
    let (limits, size) = large_size(s).await?;
    let (subtree, generation) = s.claimed_replica().await?;
    let bytes = segment(SegmentHeader::snapshot(9), &noise(size, 5));
    let part_len = limits.max_inline_bytes as usize;
    let response = s
        .persist_in_parts(&subtree, Endpoint::Persist, generation, &bytes, &limits, part_len)
        .await?;
    s.expect(
        &format!(
            "commit of a {} byte segment in {} parts",
            bytes.len(),
            bytes.len().div_ceil(part_len)
        ),
        &response,
        200,
        None,
    )?;
    let answer: PersistResponse = response.json("commit answer")?;
    if answer.last_seq != 9 {
        fail!("commit answered state {}, expected 9", answer.last_seq);
    }
    let plan = s.plan(&subtree, false).await?;
    let [planned] = &plan.chain[..] else {
        fail!("plan has {} segments, expected 1", plan.chain.len())
    };
    let downloaded = s.download(&subtree, planned, plan.limits.max_response_bytes).await?;
    if downloaded != bytes {
        fail!("the large segment came back different");
    }
    Ok(())
}

async fn limits_commit_with_a_missing_part_is_400(s: &mut Session) -> CheckResult {
    let (limits, size) = large_size(s).await?;
    let (subtree, generation) = s.claimed_replica().await?;
    let bytes = segment(SegmentHeader::snapshot(3), &noise(size, 6));
    let id = segment_id(&bytes);
    let part_len = limits.max_inline_bytes as usize;
    let mut lengths = Vec::new();
    for (i, chunk) in bytes.chunks(part_len).enumerate() {
        lengths.push(chunk.len() as u64);
        if i == 1 {
            continue; // never uploaded
        }
        let offset = (i * part_len) as u64;
        let response =
            s.upload_part(&subtree, Endpoint::Persist, generation, id, offset, chunk).await?;
        s.expect("part upload", &response, 200, None)?;
    }
    let response = s.commit(&subtree, Endpoint::Persist, generation, &bytes, lengths).await?;
    s.expect(
        "commit with the second part never uploaded",
        &response,
        400,
        Some("invalid_request"),
    )?;
    if !s.plan(&subtree, false).await?.chain.is_empty() {
        fail!("a segment with a missing part was committed");
    }
    Ok(())
}

async fn limits_inline_limit_is_exact(s: &mut Session) -> CheckResult {
    let (limits, _) = large_size(s).await?;
    let limit = limits.max_inline_bytes as usize;
    let (subtree, generation) = s.claimed_replica().await?;
    let Some(over) = segment_of_size(SegmentHeader::snapshot(2), limit + 1, 21) else {
        return Err(CheckError::Skip(format!("no segment of exactly {} bytes", limit + 1)));
    };
    let response = s.persist(&subtree, Endpoint::Persist, generation, &over).await?;
    s.expect(
        &format!("persist of max_inline_bytes + 1 = {} bytes", over.len()),
        &response,
        413,
        Some("payload_too_large"),
    )?;
    let Some(exact) = segment_of_size(SegmentHeader::snapshot(1), limit, 20) else {
        return Err(CheckError::Skip(format!("no segment of exactly {limit} bytes")));
    };
    let response = s.persist(&subtree, Endpoint::Persist, generation, &exact).await?;
    s.expect(&format!("persist of exactly max_inline_bytes = {limit} bytes"), &response, 200, None)
}

async fn limits_ranges_inside_later_parts_are_exact(s: &mut Session) -> CheckResult {
    let (subtree, generation) = s.claimed_replica().await?;
    let limits = s.plan(&subtree, false).await?.limits;
    // Odd part lengths, so no range below falls on a boundary a function might round to.
    let bytes = segment(SegmentHeader::snapshot(5), &noise(4 * 4099, 11));
    let part = 4099usize;
    let response =
        s.persist_in_parts(&subtree, Endpoint::Persist, generation, &bytes, &limits, part).await?;
    s.expect("commit of a segment uploaded in parts of 4099 bytes", &response, 200, None)?;
    let id = segment_id(&bytes);
    let size = bytes.len();
    let ranges = [
        (part + 7, part),     // inside the second part, into the third
        (2 * part - 3, 7),    // across the second boundary
        (3 * part + 100, 50), // inside the fourth
        (size - 1, 1),        // the last byte
        (1, size - 2),        // everything but the ends
    ];
    for (offset, length) in ranges {
        let length = length.min(limits.max_response_bytes as usize);
        let response = s.fetch(&subtree, id, offset as u64, length as u64).await?;
        s.expect(&format!("download of bytes {offset}+{length}"), &response, 200, None)?;
        if response.body[..] != bytes[offset..offset + length] {
            fail!("bytes {offset}+{length} of the segment came back different");
        }
    }
    Ok(())
}

async fn limits_parts_that_are_not_the_segment_are_422(s: &mut Session) -> CheckResult {
    let (subtree, generation) = s.claimed_replica().await?;
    let limits = s.plan(&subtree, false).await?.limits;
    let claimed = segment(SegmentHeader::delta(0, 3), &noise(6000, 31));
    let other = segment(SegmentHeader::delta(0, 3), &noise(6000, 32));
    if claimed.len() != other.len() {
        return Err(CheckError::Skip("the kit could not build two segments of one size".into()));
    }
    let id = segment_id(&claimed);
    let part_len = claimed.len().div_ceil(2);
    // Upload another valid segment's bytes, then bytes that are no segment at all, as the parts
    // of `claimed`; each time the function must refuse and drop them.
    let garbage = vec![b'X'; claimed.len()];
    for (wrong, what) in
        [(&other, "another segment's bytes"), (&garbage, "bytes that are no segment")]
    {
        let mut parts = Vec::new();
        for (i, chunk) in wrong.chunks(part_len).enumerate() {
            let offset = (i * part_len) as u64;
            let mut response =
                s.upload_part(&subtree, Endpoint::Persist, generation, id, offset, chunk).await?;
            if response.status == 503 {
                // Leftovers of the previous round being cleared (IDEM-3): retry once.
                response = s
                    .upload_part(&subtree, Endpoint::Persist, generation, id, offset, chunk)
                    .await?;
            }
            s.expect("part upload", &response, 200, None)?;
            parts.push(chunk.len() as u64);
        }
        let response = s.commit(&subtree, Endpoint::Persist, generation, &claimed, parts).await?;
        s.expect(
            &format!("commit of parts holding {what}"),
            &response,
            422,
            Some("invalid_segment"),
        )?;
        if !s.plan(&subtree, false).await?.chain.is_empty() {
            fail!("parts holding {what} were committed");
        }
    }
    // The function dropped the wrong parts, so the right ones can now be uploaded.
    let response = s
        .persist_in_parts(&subtree, Endpoint::Persist, generation, &claimed, &limits, part_len)
        .await?;
    s.expect("commit of the right parts afterwards", &response, 200, None)
}

async fn limits_part_uploaded_twice_is_already_stored(s: &mut Session) -> CheckResult {
    let (subtree, generation) = s.claimed_replica().await?;
    let bytes = segment(SegmentHeader::snapshot(4), &noise(2000, 41));
    let id = segment_id(&bytes);
    for (what, stored) in [("part upload", false), ("the same part upload again", true)] {
        let response =
            s.upload_part(&subtree, Endpoint::Persist, generation, id, 0, &bytes).await?;
        s.expect(what, &response, 200, None)?;
        let answer: serde_json::Value = response.json(what)?;
        if answer["already_stored"] != stored {
            fail!("{what} answered already_stored {}, expected {stored}", answer["already_stored"]);
        }
    }
    Ok(())
}

async fn limits_part_past_max_segment_is_413(s: &mut Session) -> CheckResult {
    let (subtree, generation) = s.claimed_replica().await?;
    let max = s.plan(&subtree, false).await?.limits.max_segment_bytes;
    let id = segment_id(b"a segment of exactly max_segment_bytes");
    for (offset, len) in [(max.saturating_sub(10), 20usize), (max, 1)] {
        let chunk = noise(len, offset);
        let response =
            s.upload_part(&subtree, Endpoint::Persist, generation, id, offset, &chunk).await?;
        s.expect(
            &format!("part of {len} bytes at offset {offset} (max_segment_bytes {max})"),
            &response,
            413,
            Some("payload_too_large"),
        )?;
    }
    Ok(())
}

async fn limits_a_part_with_other_bytes_conflicts_or_replaces(s: &mut Session) -> CheckResult {
    let (subtree, generation) = s.claimed_replica().await?;
    // Committed: other bytes where a committed part is are a conflict.
    let committed = segment(SegmentHeader::snapshot(6), &noise(3000, 61));
    let half = committed.len() / 2;
    let id = segment_id(&committed);
    // Through the function, presigned uploads or not (LARGE-2 holds either way).
    for (i, chunk) in committed.chunks(half).enumerate() {
        let offset = (i * half) as u64;
        let response =
            s.upload_part(&subtree, Endpoint::Persist, generation, id, offset, chunk).await?;
        s.expect("part upload", &response, 200, None)?;
    }
    let lengths = committed.chunks(half).map(|c| c.len() as u64).collect();
    let response = s.commit(&subtree, Endpoint::Persist, generation, &committed, lengths).await?;
    s.expect("commit of a segment in two parts", &response, 200, None)?;
    let same = &committed[..half];
    let response = s.upload_part(&subtree, Endpoint::Persist, generation, id, 0, same).await?;
    s.expect("the same bytes for a committed segment's first part", &response, 200, None)?;
    let other = noise(half, 62);
    let response = s.upload_part(&subtree, Endpoint::Persist, generation, id, 0, &other).await?;
    s.expect(
        "other bytes for a committed segment's first part",
        &response,
        409,
        Some("segment_conflict"),
    )?;
    // Not committed: the old bytes are a leftover, replaced (at once, or after a 503 retry).
    let pending = segment_id(b"a segment nobody committed");
    let first = noise(500, 63);
    let second = noise(500, 64);
    let response =
        s.upload_part(&subtree, Endpoint::Persist, generation, pending, 0, &first).await?;
    s.expect("a part of an uncommitted segment", &response, 200, None)?;
    let mut response =
        s.upload_part(&subtree, Endpoint::Persist, generation, pending, 0, &second).await?;
    if response.status == 503 {
        response =
            s.upload_part(&subtree, Endpoint::Persist, generation, pending, 0, &second).await?;
    }
    s.expect(
        "other bytes for an uncommitted part (retried once after a 503)",
        &response,
        200,
        None,
    )?;
    let again = s.upload_part(&subtree, Endpoint::Persist, generation, pending, 0, &second).await?;
    s.expect("the new bytes once more", &again, 200, None)?;
    let answer: serde_json::Value = again.json("part answer")?;
    if answer["already_stored"] != true {
        fail!(
            "the new bytes did not replace the leftover: already_stored is {}",
            answer["already_stored"]
        );
    }
    Ok(())
}

async fn limits_commit_bodies_that_cannot_be_are_refused(s: &mut Session) -> CheckResult {
    let (subtree, generation) = s.claimed_replica().await?;
    let limits = s.plan(&subtree, false).await?.limits;
    if limits.max_parts > 100_000 {
        return Err(CheckError::Skip(format!(
            "max_parts {} is too many to list",
            limits.max_parts
        )));
    }
    let bytes = segment(SegmentHeader::delta(0, 4), &noise(limits.max_parts as usize + 2000, 71));
    let size = bytes.len() as u64;
    let half = bytes.len() / 2;
    for (i, chunk) in bytes.chunks(half).enumerate() {
        let offset = (i * half) as u64;
        let id = segment_id(&bytes);
        let response =
            s.upload_part(&subtree, Endpoint::Persist, generation, id, offset, chunk).await?;
        s.expect("part upload", &response, 200, None)?;
    }
    let descriptor = descriptor_of(&bytes)?;
    let mut too_many = vec![1u64; limits.max_parts as usize];
    too_many.push(size - limits.max_parts);
    let mut other_header = descriptor;
    other_header.last_seq += 1;
    let mut at_max = descriptor;
    at_max.size = limits.max_segment_bytes;
    let mut over_max = descriptor;
    over_max.size = limits.max_segment_bytes.saturating_add(1);
    let cases = [
        (descriptor, vec![size - 1], 400, "invalid_request", "lengths that do not sum to size"),
        (descriptor, too_many, 400, "invalid_request", "max_parts + 1 lengths"),
        (
            at_max,
            vec![limits.max_segment_bytes],
            400,
            "invalid_request",
            "size max_segment_bytes, parts missing",
        ),
        (over_max, vec![over_max.size], 413, "payload_too_large", "size max_segment_bytes + 1"),
        (other_header, vec![size], 422, "invalid_segment", "a header other than the parts'"),
    ];
    for (declared, parts, status, code, what) in cases {
        let response =
            s.commit_declared(&subtree, Endpoint::Persist, generation, declared, parts).await?;
        s.expect(&format!("commit with {what}"), &response, status, Some(code))?;
        if !s.plan(&subtree, false).await?.chain.is_empty() {
            fail!("a commit with {what} was committed");
        }
    }
    Ok(())
}
