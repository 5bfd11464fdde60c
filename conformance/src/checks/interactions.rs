//! Where rules meet: retries after a fence, flushes from stale or closed writers, parts of a
//! fenced writer, and claims racing commits (SPEC.md PER-1, FLUSH-1, LARGE-9, GEN-4).

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use wkp1_protocol::manifest::{Outcome, PersistResponse};
use wkp1_protocol::segment::SegmentHeader;
use wkp1_protocol::{Endpoint, ErrorBody, Subtree};

use crate::check::{Check, CheckError, CheckResult};
use crate::session::{Request, Session, segment, segment_id};
use crate::{check, fail};

pub(crate) fn checks() -> Vec<Check> {
    vec![
        check!(
            interactions_retry_after_a_fence_is_already_committed,
            "interactions",
            Must,
            ["IDEM-1", "PER-1", "PER-2", "GEN-4"],
            "A writer fenced after its persist landed must learn it landed, not that it is lost."
        ),
        check!(
            interactions_empty_flush_from_a_stale_generation_is_409,
            "interactions",
            Must,
            ["FLUSH-1", "GEN-4"],
            "An old task's shutdown must not close the new task's generation."
        ),
        check!(
            interactions_empty_flush_again_is_closed,
            "interactions",
            Must,
            ["FLUSH-1", "FLUSH-2"],
            "A flush whose answer was lost is retried; the retry must not look like a failure."
        ),
        check!(
            interactions_flush_of_a_persisted_segment_closes,
            "interactions",
            Must,
            ["IDEM-1", "FLUSH-1"],
            "A final flush resending what a lost persist answer committed must still close."
        ),
        check!(
            interactions_parts_of_a_fenced_writer_are_kept,
            "interactions",
            Must,
            ["LARGE-9", "GEN-5"],
            "A writer fenced while uploading parts still has its data kept, not refused unseen."
        ),
        check!(
            interactions_claims_racing_commits_lose_nothing,
            "interactions",
            Must,
            ["GEN-4", "MAN-2", "MAN-3"],
            "A claim landing during a commit either fences it or follows it; neither is lost."
        ),
    ]
}

fn code_of(response: &crate::session::Response) -> Option<String> {
    serde_json::from_slice::<ErrorBody>(&response.body).ok().map(|b| b.error.code.to_string())
}

async fn empty_flush(
    s: &mut Session,
    subtree: &Subtree,
    generation: u64,
) -> Result<crate::session::Response, CheckError> {
    let request = Request::new(Endpoint::Flush, subtree, "", Bytes::new()).generation(generation);
    let request = s.sign(request);
    s.send(request).await
}

async fn interactions_retry_after_a_fence_is_already_committed(s: &mut Session) -> CheckResult {
    let (subtree, old) = s.claimed_replica().await?;
    let landed = segment(SegmentHeader::delta(0, 4), b"acknowledged, answer lost");
    s.persist_ok(&subtree, old, &landed).await?;
    let new = s.plan(&subtree, true).await?.generation;
    let retry = s.persist(&subtree, Endpoint::Persist, old, &landed).await?;
    s.expect("the fenced writer's retry of its committed persist", &retry, 200, None)?;
    let answer: PersistResponse = retry.json("retry answer")?;
    if answer.outcome != Outcome::AlreadyCommitted || answer.generation != new {
        fail!(
            "the retry answered {:?} with generation {} (expected already_committed, {new})",
            answer.outcome,
            answer.generation
        );
    }
    let more = segment(SegmentHeader::delta(4, 5), b"written after the fence");
    let response = s.persist(&subtree, Endpoint::Persist, old, &more).await?;
    s.expect("the fenced writer's next persist", &response, 409, Some("generation_fenced"))
}

async fn interactions_empty_flush_from_a_stale_generation_is_409(s: &mut Session) -> CheckResult {
    let (subtree, old) = s.claimed_replica().await?;
    let new = s.plan(&subtree, true).await?.generation;
    let response = empty_flush(s, &subtree, old).await?;
    s.expect(
        "empty flush by the superseded generation",
        &response,
        409,
        Some("generation_fenced"),
    )?;
    let bytes = segment(SegmentHeader::delta(0, 1), b"the new task keeps writing");
    let response = s.persist(&subtree, Endpoint::Persist, new, &bytes).await?;
    s.expect("persist by the new generation after the old one's flush", &response, 200, None)
}

async fn interactions_empty_flush_again_is_closed(s: &mut Session) -> CheckResult {
    let (subtree, generation) = s.claimed_replica().await?;
    for what in ["empty flush", "the same empty flush again"] {
        let response = empty_flush(s, &subtree, generation).await?;
        s.expect(what, &response, 200, None)?;
        let answer: PersistResponse = response.json(what)?;
        if answer.outcome != Outcome::Closed || !answer.writer_closed {
            fail!("{what} answered {:?}, closed {}", answer.outcome, answer.writer_closed);
        }
    }
    let bytes = segment(SegmentHeader::delta(0, 1), b"after the flush");
    let response = s.persist(&subtree, Endpoint::Persist, generation, &bytes).await?;
    s.expect("persist after the flush", &response, 409, Some("generation_closed"))
}

async fn interactions_parts_of_a_fenced_writer_are_kept(s: &mut Session) -> CheckResult {
    let (subtree, old) = s.claimed_replica().await?;
    let limits = s.plan(&subtree, true).await?.limits;
    let late = segment(SegmentHeader::delta(0, 9), &crate::session::noise(3000, 9));
    // Parts of about a third: several parts whatever the function's limits.
    let part_len = late.len().div_ceil(3);
    let response =
        s.persist_in_parts(&subtree, Endpoint::Flush, old, &late, &limits, part_len).await?;
    s.expect(
        "commit of parts by the superseded generation",
        &response,
        409,
        Some("generation_fenced"),
    )?;
    let error: ErrorBody = response.json("fencing error")?;
    let details = error.error.details.unwrap_or_default();
    if details["kept"] != true {
        fail!("the fenced commit's details do not say its data was kept: {details}");
    }
    let plan = s.plan(&subtree, false).await?;
    if !plan.superseded.iter().any(|k| k.segment.id == segment_id(&late) && k.generation == old) {
        fail!("the fenced writer's parts are not listed as superseded data");
    }
    Ok(())
}

async fn interactions_claims_racing_commits_lose_nothing(s: &mut Session) -> CheckResult {
    let (subtree, mut generation) = s.claimed_replica().await?;
    let mut state = 0u64;
    let started = Instant::now();
    for round in 0..24u64 {
        if round >= 4 && started.elapsed() > Duration::from_secs(15) {
            break;
        }
        let bytes = segment(SegmentHeader::delta(state, state + 1), &round.to_be_bytes());
        let (target, claimed_subtree) = (Arc::clone(&s.target), subtree.clone());
        let claim = tokio::spawn(async move {
            let mut session = Session::new(target, "racing-claim");
            session.plan(&claimed_subtree, true).await.map(|p| p.generation)
        });
        let persisted = s.persist(&subtree, Endpoint::Persist, generation, &bytes).await?;
        let claimed = claim.await.map_err(|e| CheckError::Fail(format!("claim task: {e}")))??;
        let plan = s.plan(&subtree, false).await?;
        if plan.generation != claimed {
            fail!(
                "round {round}: a claim was answered with generation {claimed}, but the replica is at generation {}: the claim was lost",
                plan.generation
            );
        }
        let committed = plan.chain.iter().any(|e| e.segment.id == segment_id(&bytes));
        match (persisted.status, code_of(&persisted).as_deref()) {
            (200, _) if !committed => fail!(
                "round {round}: the persist was acknowledged while a claim raced it, but it is not in the chain"
            ),
            (200, _) => state += 1,
            (409, Some("generation_fenced")) if committed => {
                fail!("round {round}: the persist was refused as fenced, but it is in the chain")
            }
            (409, Some("generation_fenced")) => {}
            (status, code) => fail!(
                "round {round}: a persist racing a claim answered {status} {code:?}; expected 200 or 409 generation_fenced"
            ),
        }
        generation = claimed;
    }
    Ok(())
}

async fn interactions_flush_of_a_persisted_segment_closes(s: &mut Session) -> CheckResult {
    let (subtree, generation) = s.claimed_replica().await?;
    let bytes = segment(SegmentHeader::delta(0, 2), b"persisted, answer lost, flushed again");
    s.persist_ok(&subtree, generation, &bytes).await?;
    let flushed = s.persist(&subtree, Endpoint::Flush, generation, &bytes).await?;
    s.expect("flush of the segment the persist committed", &flushed, 200, None)?;
    let answer: PersistResponse = flushed.json("flush answer")?;
    if answer.outcome != Outcome::AlreadyCommitted || !answer.writer_closed {
        fail!(
            "the flush answered {:?} with writer_closed {}; expected already_committed and closed",
            answer.outcome,
            answer.writer_closed
        );
    }
    let more = segment(SegmentHeader::delta(2, 3), b"after the flush");
    let response = s.persist(&subtree, Endpoint::Persist, generation, &more).await?;
    s.expect("persist after the flush", &response, 409, Some("generation_closed"))
}
