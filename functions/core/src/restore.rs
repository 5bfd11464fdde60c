//! Restore: plans (with or without a claim) and segment downloads (SPEC.md section 12).

use http::{Response, StatusCode};
use wkp1_protocol::endpoint::{RestoreQuery, SegmentId};
use wkp1_protocol::manifest::{
    PlannedSegment, PresignedRange, RestorePlan, Retention, wkp_version,
};
use wkp1_protocol::{ErrorCode, ProtocolError};

use crate::ctx::Ctx;
use crate::error::{internal, invalid, store_failed};
use crate::parts::{self, RequestBody};
use crate::response::{self, ResponseBody};
use crate::retention;
use crate::rules;
use crate::store::Store;

pub(crate) async fn handle<S: Store, B: RequestBody>(
    ctx: &Ctx<'_, S>,
    query: RestoreQuery,
    _body: B,
) -> Result<Response<ResponseBody>, ProtocolError> {
    if ctx.auth.content_sha256 != <[u8; 32]>::from(<sha2::Sha256 as sha2::Digest>::digest(b"")) {
        return Err(invalid("a restore request has no body", "AUTH-3"));
    }
    match query {
        RestoreQuery::Plan { claim } => plan(ctx, claim).await,
        RestoreQuery::Fetch { segment, offset, length } => {
            fetch(ctx, segment, offset, length).await
        }
    }
}

async fn plan<S: Store>(
    ctx: &Ctx<'_, S>,
    claim: bool,
) -> Result<Response<ResponseBody>, ProtocolError> {
    let manifests = ctx.manifests();
    let (manifest, previous_writer_closed) = if claim {
        let mut previous = true;
        let ((), manifest) = manifests
            .update(|current| {
                previous = current.generation == 0 || current.writer_closed;
                rules::claim(current)
            })
            .await?;
        tracing::info!(generation = manifest.generation, "claimed a writer generation");
        (manifest, previous)
    } else {
        let manifest = manifests.latest().await?;
        let closed = manifest.generation == 0 || manifest.writer_closed;
        (manifest, closed)
    };
    let grace_seconds = ctx.config().grace_seconds;
    let mut chain = Vec::with_capacity(manifest.chain.len());
    for entry in &manifest.chain {
        chain.push(PlannedSegment {
            segment: entry.segment,
            generation: entry.generation,
            download: presigned_downloads(ctx, &entry.segment.id, &entry.parts).await?,
        });
    }
    let body = RestorePlan {
        wkp_version: wkp_version(),
        subtree: ctx.subtree.clone(),
        manifest_version: manifest.version,
        generation: manifest.generation,
        claimed: claim,
        previous_writer_closed,
        last_seq: manifest.last_seq,
        chain,
        superseded: retention::superseded(ctx).await?,
        limits: ctx.config().limits,
        retention: Retention { grace_seconds },
        valid_until: ctx.now + grace_seconds,
    };
    Ok(response::json(StatusCode::OK, &body, &ctx.request_id))
}

/// One presigned GET per stored part of a segment, when the function offers them (`LARGE-7`):
/// the client then reads straight from the store, and no segment byte passes through the
/// function.
async fn presigned_downloads<S: Store>(
    ctx: &Ctx<'_, S>,
    id: &SegmentId,
    parts: &[u64],
) -> Result<Vec<PresignedRange>, ProtocolError> {
    let config = ctx.config();
    if !config.limits.presign_download {
        return Ok(Vec::new());
    }
    let mut ranges = Vec::with_capacity(parts.len());
    for (offset, length, key) in ctx.layout.parts(id, parts) {
        let request = ctx
            .store()
            .presign_get(&key, config.presign_expiry_seconds)
            .await
            .map_err(|e| store_failed("presign segment download", e))?
            .ok_or_else(|| internal("the store cannot presign although presign_download is set"))?;
        ranges.push(PresignedRange { offset, length, request });
    }
    Ok(ranges)
}

/// Streams bytes of one segment (`LARGE-6`, `REST-5`).
async fn fetch<S: Store>(
    ctx: &Ctx<'_, S>,
    id: SegmentId,
    offset: u64,
    length: u64,
) -> Result<Response<ResponseBody>, ProtocolError> {
    let max = ctx.config().limits.max_response_bytes;
    if length == 0 || length > max {
        return Err(invalid(format!("length must be 1 to max_response_bytes ({max})"), "LARGE-6"));
    }
    let Some((segment, parts)) = retention::find_segment(ctx, &id).await? else {
        return Err(ProtocolError::new(
            ErrorCode::SegmentNotFound,
            format!("segment {id} is not referenced by any kept manifest; fetch a new plan"),
        )
        .requirement("LARGE-6"));
    };
    if offset.checked_add(length).is_none_or(|end| end > segment.size) {
        return Err(invalid(
            format!(
                "bytes {offset}..{} are outside segment {id} of {} bytes",
                offset.saturating_add(length),
                segment.size
            ),
            "LARGE-6",
        ));
    }
    let stream = parts::read_range(ctx.store().clone(), &ctx.layout, &id, &parts, offset, length);
    Ok(response::segment_bytes(stream, length, &ctx.request_id))
}
