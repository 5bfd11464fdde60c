//! Writer generations and fencing (SPEC.md section 8).

use std::sync::Arc;

use wkp1_protocol::Endpoint;
use wkp1_protocol::segment::SegmentHeader;

use crate::check::{Check, CheckError, CheckResult};
use crate::session::{Session, segment};
use crate::{check, fail};

pub(crate) fn checks() -> Vec<Check> {
    vec![
        check!(
            fencing_stale_generation_is_409,
            "fencing",
            Must,
            ["GEN-4"],
            "After a new task claims, the old one's writes must not land."
        ),
        check!(
            fencing_stale_data_is_kept_as_superseded,
            "fencing",
            Must,
            ["GEN-5"],
            "A fenced writer's data is kept for recovery, byte for byte, never applied."
        ),
        check!(
            fencing_unclaimed_generation_is_409,
            "fencing",
            Must,
            ["GEN-6"],
            "A generation nobody claimed must not write."
        ),
        check!(
            fencing_concurrent_claims_get_distinct_generations,
            "fencing",
            Must,
            ["GEN-1", "MAN-2"],
            "Claims racing each other each get their own generation."
        ),
    ]
}

async fn rolling_deploy(
    s: &mut Session,
) -> Result<(wkp1_protocol::Subtree, u64, u64, Vec<u8>), CheckError> {
    let (subtree, old) = s.claimed_replica().await?;
    s.persist_ok(&subtree, old, &segment(SegmentHeader::snapshot(10), b"state 10")).await?;
    let new = s.plan(&subtree, true).await?.generation;
    s.persist_ok(&subtree, new, &segment(SegmentHeader::delta(10, 12), b"the new task's writes"))
        .await?;
    let late = segment(SegmentHeader::delta(10, 11), b"the old task's last writes");
    Ok((subtree, old, new, late))
}

async fn fencing_stale_generation_is_409(s: &mut Session) -> CheckResult {
    let (subtree, old, new, late) = rolling_deploy(s).await?;
    let response = s.persist(&subtree, Endpoint::Flush, old, &late).await?;
    s.expect("flush by the superseded generation", &response, 409, Some("generation_fenced"))?;
    let plan = s.plan(&subtree, false).await?;
    if plan.generation != new || plan.last_seq != 12 {
        fail!(
            "after the fenced flush: generation {}, state {} (expected {new}, 12)",
            plan.generation,
            plan.last_seq
        );
    }
    Ok(())
}

async fn fencing_stale_data_is_kept_as_superseded(s: &mut Session) -> CheckResult {
    let (subtree, old, _, late) = rolling_deploy(s).await?;
    let response = s.persist(&subtree, Endpoint::Flush, old, &late).await?;
    s.expect("flush by the superseded generation", &response, 409, Some("generation_fenced"))?;
    let plan = s.plan(&subtree, false).await?;
    let id = wkp1_protocol::endpoint::SegmentId(
        sha2::Digest::finalize(<sha2::Sha256 as sha2::Digest>::new_with_prefix(&late)).into(),
    );
    let Some(kept) = plan.superseded.iter().find(|k| k.segment.id == id) else {
        fail!("the fenced flush is not listed in the plan's superseded data");
    };
    if kept.generation != old {
        fail!("superseded data is listed under generation {}, it came from {old}", kept.generation);
    }
    let planned = wkp1_protocol::manifest::PlannedSegment {
        segment: kept.segment,
        generation: kept.generation,
        download: vec![],
    };
    let downloaded = s.download(&subtree, &planned, plan.limits.max_response_bytes).await?;
    if downloaded != late {
        fail!("the kept segment came back different");
    }
    Ok(())
}

async fn fencing_unclaimed_generation_is_409(s: &mut Session) -> CheckResult {
    let (subtree, generation) = s.claimed_replica().await?;
    let response = s
        .persist(
            &subtree,
            Endpoint::Persist,
            generation + 1,
            &segment(SegmentHeader::delta(0, 1), b"x"),
        )
        .await?;
    s.expect("persist by a generation nobody claimed", &response, 409, Some("generation_unknown"))?;
    let plan = s.plan(&subtree, false).await?;
    if !plan.chain.is_empty() || plan.generation != generation {
        fail!("the unclaimed generation's write changed the replica");
    }
    if !plan.superseded.is_empty() {
        fail!("the unclaimed generation's data was kept as superseded; GEN-6 keeps nothing");
    }
    Ok(())
}

async fn fencing_concurrent_claims_get_distinct_generations(s: &mut Session) -> CheckResult {
    let subtree = s.replica();
    let target = Arc::clone(&s.target);
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..12 {
        let (target, subtree) = (target.clone(), subtree.clone());
        tasks.spawn(async move {
            let mut session = Session::new(target, "concurrent-claims");
            session.plan(&subtree, true).await.map(|p| p.generation)
        });
    }
    let mut generations = Vec::new();
    while let Some(joined) = tasks.join_next().await {
        generations.push(joined.map_err(|e| CheckError::Fail(format!("claim task: {e}")))??);
    }
    generations.sort_unstable();
    let distinct = generations.windows(2).all(|w| w[0] != w[1]);
    let last = s.plan(&subtree, false).await?.generation;
    if !distinct || last != *generations.last().unwrap() {
        fail!("12 concurrent claims got generations {generations:?}; the replica ended at {last}");
    }
    Ok(())
}
