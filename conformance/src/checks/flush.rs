//! Flush closes a generation (SPEC.md section 9).

use bytes::Bytes;
use wkp1_protocol::Endpoint;
use wkp1_protocol::manifest::{Outcome, PersistResponse};
use wkp1_protocol::segment::SegmentHeader;

use crate::check::{Check, CheckResult};
use crate::session::{Request, Session, segment};
use crate::{check, fail};

pub(crate) fn checks() -> Vec<Check> {
    vec![
        check!(
            flush_closes_the_generation,
            "flush",
            Must,
            ["FLUSH-1", "FLUSH-2"],
            "After its final flush a writer may not write again."
        ),
        check!(
            flush_empty_body_closes,
            "flush",
            Must,
            ["FLUSH-1"],
            "Nothing left to push: an empty flush still closes."
        ),
        check!(
            flush_empty_with_bytes_after_all_is_401,
            "flush",
            Must,
            ["AUTH-3", "FLUSH-1"],
            "A flush signed as empty must not close the writer while carrying unverified bytes."
        ),
        check!(
            flush_previous_writer_closed_is_reported,
            "flush",
            Must,
            ["REST-3"],
            "A new task learns whether its predecessor flushed or crashed."
        ),
    ]
}

async fn flush_closes_the_generation(s: &mut Session) -> CheckResult {
    let (subtree, generation) = s.claimed_replica().await?;
    let last = segment(SegmentHeader::delta(0, 4), b"final changes");
    let response = s.persist(&subtree, Endpoint::Flush, generation, &last).await?;
    s.expect("flush", &response, 200, None)?;
    let answer: PersistResponse = response.json("flush answer")?;
    if !answer.writer_closed || answer.last_seq != 4 {
        fail!("flush answered writer_closed {} at state {}", answer.writer_closed, answer.last_seq);
    }
    let after = s
        .persist(
            &subtree,
            Endpoint::Persist,
            generation,
            &segment(SegmentHeader::delta(4, 5), b"too late"),
        )
        .await?;
    s.expect("persist after the flush", &after, 409, Some("generation_closed"))?;
    let retry = s.persist(&subtree, Endpoint::Flush, generation, &last).await?;
    s.expect("retry of the flush", &retry, 200, None)
}

async fn flush_empty_body_closes(s: &mut Session) -> CheckResult {
    let (subtree, generation) = s.claimed_replica().await?;
    s.persist_ok(&subtree, generation, &segment(SegmentHeader::delta(0, 2), b"two")).await?;
    let request =
        s.sign(Request::new(Endpoint::Flush, &subtree, "", Bytes::new()).generation(generation));
    let response = s.send(request).await?;
    s.expect("empty flush", &response, 200, None)?;
    let answer: PersistResponse = response.json("flush answer")?;
    if answer.outcome != Outcome::Closed || !answer.writer_closed || answer.last_seq != 2 {
        fail!(
            "empty flush answered {:?}, writer_closed {}, state {}",
            answer.outcome,
            answer.writer_closed,
            answer.last_seq
        );
    }
    let after = s
        .persist(
            &subtree,
            Endpoint::Persist,
            generation,
            &segment(SegmentHeader::delta(2, 3), b"late"),
        )
        .await?;
    s.expect("persist after an empty flush", &after, 409, Some("generation_closed"))
}

async fn flush_previous_writer_closed_is_reported(s: &mut Session) -> CheckResult {
    // Nobody ever wrote: no writer was left open (1.0.1). A plain plan tells of the current
    // generation, a claim of the one before it.
    let subtree = s.replica();
    if !s.plan(&subtree, false).await?.previous_writer_closed {
        fail!("a replica never claimed says its writer did not close");
    }
    let generation = s.plan(&subtree, true).await?.generation;
    if s.plan(&subtree, false).await?.previous_writer_closed {
        fail!("while the claimed writer runs, a plain plan says it closed");
    }
    // A clean shutdown...
    let flushed = s
        .persist(
            &subtree,
            Endpoint::Flush,
            generation,
            &segment(SegmentHeader::delta(0, 1), b"bye"),
        )
        .await?;
    s.expect("flush", &flushed, 200, None)?;
    if !s.plan(&subtree, false).await?.previous_writer_closed {
        fail!("after a flush, a plain plan says the writer did not close");
    }
    let next = s.plan(&subtree, true).await?;
    if !next.previous_writer_closed {
        fail!("after a flush, the next claim says the previous writer did not close");
    }
    // ...then a crash: the new writer persists and never flushes.
    s.persist_ok(&subtree, next.generation, &segment(SegmentHeader::delta(1, 2), b"then crash"))
        .await?;
    let after_crash = s.plan(&subtree, true).await?;
    if after_crash.previous_writer_closed {
        fail!("after a writer that never flushed, the next claim says it closed");
    }
    Ok(())
}

async fn flush_empty_with_bytes_after_all_is_401(s: &mut Session) -> CheckResult {
    let (subtree, generation) = s.claimed_replica().await?;
    let mut request =
        s.sign(Request::new(Endpoint::Flush, &subtree, "", Bytes::new()).generation(generation));
    request.body = Bytes::from(segment(SegmentHeader::delta(0, 1), b"smuggled"));
    let response = s.send(request).await?;
    s.expect(
        "flush signed with an empty body's hash, carrying a segment",
        &response,
        401,
        Some("content_hash_mismatch"),
    )?;
    let bytes = segment(SegmentHeader::delta(0, 1), b"the writer is still open");
    s.persist_ok(&subtree, generation, &bytes).await?;
    Ok(())
}
