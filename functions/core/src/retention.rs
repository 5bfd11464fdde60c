//! Retention: what may be deleted, and when (SPEC.md section 13, `RET-1` to `RET-4`).
//!
//! Kept: the latest manifest, every version whose successor is younger than the grace period,
//! the newest `keep_manifests` versions, every part any of those or a superseded record
//! references, and every part younger than the grace period. Everything else goes.

use std::collections::HashSet;

use wkp1_protocol::ProtocolError;
use wkp1_protocol::endpoint::SegmentId;
use wkp1_protocol::manifest::{Manifest, SegmentDescriptor, SupersededSegment};
use wkp1_protocol::segment::SegmentKind;

use crate::ctx::Ctx;
use crate::error::store_failed;
use crate::store::Store;

/// What a retention pass removed.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct RetentionReport {
    pub manifests_deleted: u64,
    pub parts_deleted: u64,
}

/// Runs retention after a snapshot commit, or every `retention_every` versions. Never fails
/// the request that triggered it (`RET-4`).
pub(crate) async fn maybe_run<S: Store>(
    ctx: &Ctx<'_, S>,
    manifest: &Manifest,
    committed: &SegmentDescriptor,
) {
    let every = ctx.config().retention_every.max(1);
    if committed.kind != SegmentKind::Snapshot && !manifest.version.is_multiple_of(every) {
        return;
    }
    match run(ctx).await {
        Ok(report) => tracing::info!(?report, "retention pass"),
        Err(err) => tracing::warn!(%err, "retention pass failed; will retry on a later commit"),
    }
}

/// Every superseded record of the subtree.
pub(crate) async fn superseded<S: Store>(
    ctx: &Ctx<'_, S>,
) -> Result<Vec<SupersededSegment>, ProtocolError> {
    let listed = ctx
        .store()
        .list(&ctx.layout.superseded_all())
        .await
        .map_err(|e| store_failed("list superseded", e))?;
    let mut records = Vec::new();
    for meta in listed {
        let Some(bytes) =
            ctx.store().get(&meta.key).await.map_err(|e| store_failed("read superseded", e))?
        else {
            continue;
        };
        match serde_json::from_slice::<SupersededSegment>(&bytes) {
            Ok(record) => records.push(record),
            Err(e) => tracing::warn!(key = meta.key, error = %e, "unreadable superseded record"),
        }
    }
    records.sort_by_key(|r| (r.generation, r.kept_at));
    Ok(records)
}

/// The segment and its stored part lengths, from the newest manifest that names it, else from
/// a superseded record.
pub(crate) async fn find_segment<S: Store>(
    ctx: &Ctx<'_, S>,
    id: &SegmentId,
) -> Result<Option<(SegmentDescriptor, Vec<u64>)>, ProtocolError> {
    let manifests = ctx.manifests();
    for (version, _) in manifests.versions().await?.into_iter().rev() {
        if let Some(manifest) = manifests.read(version).await?
            && let Some(entry) = manifest.find(id)
        {
            return Ok(Some((entry.segment, entry.parts.clone())));
        }
    }
    Ok(superseded(ctx)
        .await?
        .into_iter()
        .find(|r| &r.segment.id == id)
        .map(|r| (r.segment, r.parts)))
}

/// Whether any stored manifest or superseded record names the segment.
pub(crate) async fn is_referenced<S: Store>(
    ctx: &Ctx<'_, S>,
    id: &SegmentId,
) -> Result<bool, ProtocolError> {
    Ok(find_segment(ctx, id).await?.is_some())
}

/// One retention pass over the subtree.
pub(crate) async fn run<S: Store>(ctx: &Ctx<'_, S>) -> Result<RetentionReport, ProtocolError> {
    let config = ctx.config();
    let horizon = ctx.now.saturating_sub(config.grace_seconds);
    let manifests = ctx.manifests();
    let versions = manifests.versions().await?;
    let newest_kept = versions.len().saturating_sub(config.keep_manifests.max(1) as usize);

    let mut kept = Vec::new();
    let mut expired = Vec::new();
    for (i, (version, meta)) in versions.iter().enumerate() {
        // A version stays while it is latest, or while its successor is younger than the grace
        // period: a restore may have started from it (`RET-1`).
        let successor_recent =
            versions.get(i + 1).is_none_or(|(_, next)| next.last_modified > horizon);
        if i >= newest_kept || successor_recent {
            kept.push(*version);
        } else {
            expired.push(meta.key.clone());
        }
    }

    let mut report = RetentionReport::default();
    let old_parts: Vec<_> = ctx
        .store()
        .list(&ctx.layout.segments())
        .await
        .map_err(|e| store_failed("list segments", e))?
        .into_iter()
        .filter(|part| part.last_modified <= horizon)
        .collect();
    // Reading every kept manifest is the costly part of a pass (one read per version within
    // the grace period), and only needed when some part is old enough to go.
    if !old_parts.is_empty() {
        let referenced = referenced_parts(ctx, &kept).await?;
        for part in old_parts {
            if !referenced.contains(&part.key) {
                ctx.store().delete(&part.key).await.map_err(|e| store_failed("delete part", e))?;
                report.parts_deleted += 1;
            }
        }
    }
    // Manifests last: if this pass stops half way, nothing still kept lost a part.
    for key in expired {
        ctx.store().delete(&key).await.map_err(|e| store_failed("delete manifest", e))?;
        report.manifests_deleted += 1;
    }
    Ok(report)
}

/// Every part key a kept manifest or a superseded record names.
async fn referenced_parts<S: Store>(
    ctx: &Ctx<'_, S>,
    kept: &[u64],
) -> Result<HashSet<String>, ProtocolError> {
    let manifests = ctx.manifests();
    let mut referenced = HashSet::new();
    for version in kept {
        let Some(manifest) = manifests.read(*version).await? else { continue };
        for entry in &manifest.chain {
            for (_, _, key) in ctx.layout.parts(&entry.segment.id, &entry.parts) {
                referenced.insert(key);
            }
        }
    }
    for record in superseded(ctx).await? {
        for (_, _, key) in ctx.layout.parts(&record.segment.id, &record.parts) {
            referenced.insert(key);
        }
    }
    Ok(referenced)
}
