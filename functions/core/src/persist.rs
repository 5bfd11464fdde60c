//! Persist and flush: inline segments, parts, presigned parts, commits, and closing
//! (SPEC.md sections 9 to 11).

use bytes::Bytes;
use http::{HeaderMap, Response, StatusCode, header};
use http_body_util::{BodyExt, Limited};
use serde_json::json;
use sha2::{Digest, Sha256};
use wkp1_protocol::endpoint::{SegmentId, WriteQuery};
use wkp1_protocol::manifest::{
    CommitRequest, Outcome, PartResponse, PersistResponse, PresignResponse, SegmentDescriptor,
    SupersededSegment, wkp_version,
};
use wkp1_protocol::segment::SegmentVerifier;
use wkp1_protocol::{Endpoint, ErrorCode, FencingDetails, ProtocolError, headers};

use crate::ctx::Ctx;
use crate::error::{internal, invalid, store_failed};
use crate::parts::{self, RequestBody, Stored, StreamError, Target};
use crate::response::{self, ResponseBody};
use crate::retention;
use crate::rules;
use crate::store::{PutMode, Store, StoreError};

/// Largest commit request body: a descriptor and up to `max_parts` lengths.
const MAX_COMMIT_BODY: usize = 1 << 20;
/// How far over the inline limit a refused body is still read (and dropped), so that its
/// sender gets the 413 instead of a reset connection.
const DRAIN_BEYOND_LIMIT: u64 = 4 << 20;

pub(crate) async fn handle<S, B: RequestBody>(
    ctx: &Ctx<'_, S>,
    endpoint: Endpoint,
    query: WriteQuery,
    headers: &HeaderMap,
    body: B,
) -> Result<Response<ResponseBody>, ProtocolError>
where
    S: Store,
{
    let generation = generation(headers)?;
    let limits = ctx.config().limits;
    if let Some(length) = content_length(headers)
        && length > limits.max_inline_bytes
    {
        // Closing with a body unread resets the connection, and the client, still sending,
        // may never see the 413. A body a little over the limit is read and dropped first;
        // one far over it is not worth reading.
        if length - limits.max_inline_bytes <= DRAIN_BEYOND_LIMIT {
            let mut body = body;
            while let Some(Ok(_)) = body.frame().await {}
        }
        return Err(too_large(ctx, length, limits.max_inline_bytes));
    }
    match query {
        WriteQuery::Inline
            if endpoint == Endpoint::Flush && ctx.auth.content_sha256 == empty_sha256() =>
        {
            require_empty(ctx, body).await?;
            let (outcome, manifest) =
                ctx.manifests().update(|m| rules::close(m, generation)).await?;
            Ok(persisted(ctx, outcome, &manifest))
        }
        WriteQuery::Inline => inline(ctx, endpoint, generation, body).await,
        WriteQuery::Part { segment, offset } => part(ctx, segment, offset, body).await,
        WriteQuery::Presign { segment, offset, length } => {
            presign(ctx, segment, offset, length).await
        }
        WriteQuery::Commit { segment } => {
            commit_parts(ctx, endpoint, generation, segment, body).await
        }
    }
}

/// `GEN-3`: every write names its generation.
fn generation(headers: &HeaderMap) -> Result<u64, ProtocolError> {
    let raw = headers.get(headers::GENERATION).ok_or_else(|| {
        invalid("header wkp-generation is required on persist and flush", "GEN-3")
    })?;
    raw.to_str()
        .ok()
        .map(str::trim)
        .filter(|v| !v.is_empty() && v.len() <= 20 && v.bytes().all(|b| b.is_ascii_digit()))
        .and_then(|v| v.parse::<u64>().ok())
        .filter(|g| *g > 0)
        .ok_or_else(|| invalid("header wkp-generation must be a positive decimal number", "GEN-3"))
}

/// `PER-3`: the client's hint of the latest manifest version, if it sent one.
pub(crate) fn manifest_hint(headers: &HeaderMap) -> Result<Option<u64>, ProtocolError> {
    let Some(raw) = headers.get(headers::MANIFEST_VERSION) else { return Ok(None) };
    raw.to_str()
        .ok()
        .filter(|v| !v.is_empty() && v.len() <= 20 && v.bytes().all(|b| b.is_ascii_digit()))
        .and_then(|v| v.parse::<u64>().ok())
        // Version 0 is the empty manifest, never stored: nothing to look up.
        .map(|v| (v > 0).then_some(v))
        .ok_or_else(|| {
            invalid(
                "header wkp-manifest-version must be a decimal number of at most 20 digits",
                "PER-3",
            )
        })
}

fn content_length(headers: &HeaderMap) -> Option<u64> {
    headers.get(header::CONTENT_LENGTH)?.to_str().ok()?.parse().ok()
}

fn empty_sha256() -> [u8; 32] {
    Sha256::digest(b"").into()
}

fn too_large<S: Store>(ctx: &Ctx<'_, S>, length: u64, limit: u64) -> ProtocolError {
    ProtocolError::new(
        ErrorCode::PayloadTooLarge,
        format!("{length} bytes is more than this function accepts in one request ({limit}); upload the segment in parts"),
    )
    .requirement("LARGE-1")
    .details(json!({"limits": ctx.config().limits}))
}

fn hash_mismatch(computed: &[u8; 32], declared: &[u8; 32]) -> ProtocolError {
    ProtocolError::new(
        ErrorCode::ContentHashMismatch,
        format!(
            "the body hashes to {} but wkp-content-sha256 says {}",
            hex::encode(computed),
            hex::encode(declared)
        ),
    )
    .requirement("AUTH-3")
}

/// Reads a body that must be empty (a closing flush, signed as empty) and checks it is: any
/// byte at all contradicts `wkp-content-sha256` (`AUTH-3`), however many follow.
async fn require_empty<S: Store, B: RequestBody>(
    ctx: &Ctx<'_, S>,
    mut body: B,
) -> Result<(), ProtocolError> {
    while let Some(frame) = body.frame().await {
        let frame =
            frame.map_err(|e| invalid(format!("read request body: {}", e.into()), "AUTH-3"))?;
        if frame.data_ref().is_some_and(|data| !data.is_empty()) {
            return Err(ProtocolError::new(
                ErrorCode::ContentHashMismatch,
                "the body is not empty, but wkp-content-sha256 is the hash of an empty body",
            )
            .requirement("AUTH-3"));
        }
    }
    ctx.auth.check_body(&empty_sha256())
}

/// Reads a body of at most `limit` bytes into memory.
async fn read_small<B: RequestBody>(body: B, limit: usize) -> Result<Bytes, ProtocolError> {
    Limited::new(body, limit).collect().await.map(|c| c.to_bytes()).map_err(|e| {
        invalid(format!("read request body (at most {limit} bytes here): {e}"), "EP-6")
    })
}

/// An inline segment: stream it into parts while verifying, then commit (`PER-1`).
async fn inline<S: Store, B: RequestBody>(
    ctx: &Ctx<'_, S>,
    endpoint: Endpoint,
    generation: u64,
    body: B,
) -> Result<Response<ResponseBody>, ProtocolError> {
    let id = SegmentId(ctx.auth.content_sha256);
    let config = ctx.config();
    let latest = ctx.manifests().latest_guess().await?;
    if let Some(entry) = latest.find(&id) {
        // A retry of a committed segment: check the body, store nothing (`IDEM-1`).
        let (segment, parts) = (entry.segment, entry.parts.clone());
        let limit = config.limits.max_inline_bytes;
        let computed = hash_body(body, limit)
            .await
            .map_err(|e| e.unwrap_or_else(|| too_large(ctx, limit + 1, limit)))?;
        ctx.auth.check_body(&computed)?;
        return commit(ctx, segment, parts, generation, endpoint).await;
    }

    let mut verifier = SegmentVerifier::new();
    let limit = config.limits.max_inline_bytes;
    let target = Target {
        id: &id,
        start: 0,
        part_size: config.part_size,
        limit,
        fresh_after: fresh_after(ctx),
    };
    let stored = upload(ctx, target, body, Some(&mut verifier)).await?;
    let checked = signed_body(ctx, &stored).and_then(|()| Ok(verifier.finish()?));
    let verified = stored.kept_if_ok(&**ctx.store(), checked).await?;
    clear_leftovers(ctx, &stored).await?;
    let segment = SegmentDescriptor::from(&verified);
    commit(ctx, segment, stored.lengths, generation, endpoint).await
}

/// Streams a body into the segment's part objects. On failure the parts it created are gone
/// again, and the error says why in WKP-1's terms.
async fn upload<S: Store, B: RequestBody>(
    ctx: &Ctx<'_, S>,
    target: Target<'_>,
    body: B,
    verifier: Option<&mut SegmentVerifier>,
) -> Result<Stored, ProtocolError> {
    match parts::store_body(ctx.store(), &ctx.layout, target, body, verifier).await {
        Ok(stored) => Ok(stored),
        Err((err, stored)) => {
            let err = match err {
                StreamError::TooLarge(limit) => too_large(ctx, stored.total, limit),
                // Refused either way; but when it is not even the body that was signed, that
                // is the reason (`AUTH-3` before `SEG-8`).
                StreamError::Segment(_) if stored.sha256 != ctx.auth.content_sha256 => {
                    hash_mismatch(&stored.sha256, &ctx.auth.content_sha256)
                }
                StreamError::Segment(e) => ProtocolError::from(e),
                StreamError::Protocol(e) => e,
            };
            stored.kept_if_ok(&**ctx.store(), Err(err)).await
        }
    }
}

/// `AUTH-3`: the bytes stored are the bytes that were signed.
fn signed_body<S>(ctx: &Ctx<'_, S>, stored: &Stored) -> Result<(), ProtocolError> {
    if stored.sha256 == ctx.auth.content_sha256 {
        Ok(())
    } else {
        Err(hash_mismatch(&stored.sha256, &ctx.auth.content_sha256))
    }
}

/// Hashes a body without storing it; `Err(None)` when it is longer than `limit`.
async fn hash_body<B: RequestBody>(
    mut body: B,
    limit: u64,
) -> Result<[u8; 32], Option<ProtocolError>> {
    let mut hasher = Sha256::new();
    let mut total = 0u64;
    while let Some(frame) = body.frame().await {
        let frame =
            frame.map_err(|e| invalid(format!("read request body: {}", e.into()), "AUTH-3"))?;
        if let Ok(data) = frame.into_data() {
            total += data.len() as u64;
            if total > limit {
                return Err(None);
            }
            hasher.update(&data);
        }
    }
    Ok(hasher.finalize().into())
}

/// Objects that held other bytes under this segment's names are leftovers of failed attempts:
/// now that this body verified, they are provably not the segment's bytes, so delete them and
/// ask for a retry (`IDEM-4`).
async fn clear_leftovers<S: Store>(ctx: &Ctx<'_, S>, stored: &Stored) -> Result<(), ProtocolError> {
    if stored.differing.is_empty() {
        return Ok(());
    }
    tracing::warn!(count = stored.differing.len(), "clearing parts left by a failed attempt");
    parts::delete_all(&**ctx.store(), &stored.differing).await;
    Err(ProtocolError::new(
        ErrorCode::StoreUnavailable,
        "cleared parts left over by an earlier failed upload of this segment; retry",
    )
    .requirement("IDEM-4"))
}

/// Commits a verified segment, keeping the data of a fenced writer (`GEN-5`).
pub(crate) async fn commit<S: Store>(
    ctx: &Ctx<'_, S>,
    segment: SegmentDescriptor,
    parts: Vec<u64>,
    generation: u64,
    endpoint: Endpoint,
) -> Result<Response<ResponseBody>, ProtocolError> {
    let now = ctx.now;
    let result = ctx
        .manifests()
        .update(|m| rules::commit(m, &segment, &parts, generation, endpoint, now))
        .await;
    match result {
        Ok((outcome, manifest)) => {
            if outcome == Outcome::Committed {
                retention::maybe_run(ctx, &manifest, &segment).await;
            }
            Ok(persisted(ctx, outcome, &manifest))
        }
        Err(err) if rules::keeps_data(&err) => {
            let record = SupersededSegment { segment, parts, generation, endpoint, kept_at: now };
            keep_superseded(ctx, &record).await?;
            Err(match FencingDetails::of(&err) {
                Some(refused) => err.fencing(refused.kept(segment.id)),
                None => err,
            })
        }
        Err(err) => Err(err),
    }
}

async fn keep_superseded<S: Store>(
    ctx: &Ctx<'_, S>,
    record: &SupersededSegment,
) -> Result<(), ProtocolError> {
    let key = ctx.layout.superseded(record.generation, &record.segment.id);
    let body = Bytes::from(serde_json::to_vec(record).map_err(|e| internal(e.to_string()))?);
    match ctx.store().put(&key, body, PutMode::Create).await {
        Ok(()) | Err(StoreError::AlreadyExists(_)) => {
            tracing::warn!(
                generation = record.generation,
                segment = %record.segment.id,
                "kept the data of a fenced writer as superseded"
            );
            Ok(())
        }
        Err(e) => Err(store_failed("keep superseded segment", e)),
    }
}

fn persisted<S: Store>(
    ctx: &Ctx<'_, S>,
    outcome: Outcome,
    m: &wkp1_protocol::manifest::Manifest,
) -> Response<ResponseBody> {
    let body = PersistResponse {
        wkp_version: wkp_version(),
        outcome,
        manifest_version: m.version,
        generation: m.generation,
        last_seq: m.last_seq,
        chain_length: m.chain.len() as u64,
        chain_bytes: m.chain_bytes(),
        snapshot_advised: rules::snapshot_advised(m),
        writer_closed: m.writer_closed,
        limits: ctx.config().limits,
    };
    response::json(StatusCode::OK, &body, &ctx.request_id)
}

/// One part of a large segment (`LARGE-2`).
async fn part<S: Store, B: RequestBody>(
    ctx: &Ctx<'_, S>,
    id: SegmentId,
    offset: u64,
    body: B,
) -> Result<Response<ResponseBody>, ProtocolError> {
    let config = ctx.config();
    if offset >= config.limits.max_segment_bytes {
        return Err(too_large(ctx, offset, config.limits.max_segment_bytes));
    }
    if ctx.auth.content_sha256 == empty_sha256() {
        return Err(invalid("a part must not be empty", "LARGE-2"));
    }
    let limit = config.limits.max_inline_bytes.min(config.limits.max_segment_bytes - offset);
    let target = Target {
        id: &id,
        start: offset,
        part_size: config.part_size,
        limit,
        fresh_after: fresh_after(ctx),
    };
    let stored = upload(ctx, target, body, None).await?;
    let checked = match signed_body(ctx, &stored) {
        Ok(()) if !stored.differing.is_empty() => match retention::is_referenced(ctx, &id).await {
            Ok(true) => Err(ProtocolError::new(
                ErrorCode::SegmentConflict,
                format!("segment {id} is committed and its bytes at offset {offset} differ from this part"),
            )
            .requirement("IDEM-2")),
            other => other.map(drop),
        },
        other => other,
    };
    stored.kept_if_ok(&**ctx.store(), checked).await?;
    clear_leftovers(ctx, &stored).await?;
    let body = PartResponse {
        wkp_version: wkp_version(),
        segment: id,
        offset,
        length: stored.total,
        already_stored: stored.created.is_empty(),
    };
    Ok(response::json(StatusCode::OK, &body, &ctx.request_id))
}

/// A presigned upload of one part straight to the store (`LARGE-4`).
async fn presign<S: Store>(
    ctx: &Ctx<'_, S>,
    id: SegmentId,
    offset: u64,
    length: u64,
) -> Result<Response<ResponseBody>, ProtocolError> {
    let config = ctx.config();
    if !config.limits.presign_upload {
        return Err(invalid(
            "this function does not offer presigned uploads (limits.presign_upload is false)",
            "LARGE-4",
        ));
    }
    if length == 0 {
        return Err(invalid("a presigned part must not be empty", "LARGE-4"));
    }
    let end = offset.saturating_add(length);
    if end > config.limits.max_segment_bytes {
        return Err(too_large(ctx, end, config.limits.max_segment_bytes));
    }
    let key = ctx.layout.part(&id, offset, length);
    let upload = ctx
        .store()
        .presign_put(&key, config.presign_expiry_seconds)
        .await
        .map_err(|e| store_failed("presign part upload", e))?
        .ok_or_else(|| internal("the store cannot presign although presign_upload is set"))?;
    let body = PresignResponse { wkp_version: wkp_version(), segment: id, offset, length, upload };
    Ok(response::json(StatusCode::OK, &body, &ctx.request_id))
}

/// Parts stored before this moment may be reclaimed by retention at any time, so a commit
/// treats them as absent and never references one (`LARGE-3`, `RET-1`); an upload of the same
/// bytes refreshes them (`IDEM-3`).
fn fresh_after<S>(ctx: &Ctx<'_, S>) -> u64 {
    ctx.now.saturating_sub(ctx.config().grace_seconds / 2)
}

/// Commits a segment uploaded in parts, after verifying it end to end (`LARGE-3`).
async fn commit_parts<S: Store, B: RequestBody>(
    ctx: &Ctx<'_, S>,
    endpoint: Endpoint,
    generation: u64,
    id: SegmentId,
    body: B,
) -> Result<Response<ResponseBody>, ProtocolError> {
    let bytes = read_small(body, MAX_COMMIT_BODY).await?;
    ctx.auth.check_body(&Sha256::digest(&bytes).into())?;
    let request: CommitRequest = serde_json::from_slice(&bytes)
        .map_err(|e| invalid(format!("commit body is not a commit request: {e}"), "LARGE-3"))?;
    let limits = ctx.config().limits;
    let declared = request.segment;
    if declared.id != id {
        return Err(invalid(
            format!("commit body names segment {}, the query {id}", declared.id),
            "LARGE-3",
        ));
    }
    if declared.size > limits.max_segment_bytes {
        return Err(too_large(ctx, declared.size, limits.max_segment_bytes));
    }
    if request.parts.len() as u64 > limits.max_parts
        || request.parts.iter().sum::<u64>() != declared.size
    {
        return Err(invalid(
            format!(
                "parts must be at most {} and sum to the segment size {}",
                limits.max_parts, declared.size
            ),
            "LARGE-3",
        ));
    }
    if let Some(entry) = ctx.manifests().latest_guess().await?.find(&id) {
        let (segment, parts) = (entry.segment, entry.parts.clone());
        return commit(ctx, segment, parts, generation, endpoint).await;
    }

    let fresh_after = fresh_after(ctx);
    let stored = parts::list_parts(&**ctx.store(), &ctx.layout, &id).await?;
    let mut usable = stored.clone();
    usable.retain(|_, meta| meta.last_modified >= fresh_after);
    let lengths = parts::tiling(&usable, declared.size).map_err(|offset| {
        invalid(
            format!(
                "no uploaded part of segment {id} covers byte {offset}; upload it and commit again"
            ),
            "LARGE-3",
        )
    })?;
    let verified = match parts::verify_stored(&**ctx.store(), &ctx.layout, &id, &lengths).await {
        Ok(v) if v.id == id.0 && SegmentDescriptor::from(&v) == declared => v,
        Ok(v) => {
            discard_unreferenced(ctx, &id, stored.into_values().map(|m| m.key).collect()).await?;
            return Err(ProtocolError::new(
                ErrorCode::InvalidSegment,
                format!(
                    "the parts form segment {} ({:?}), not the declared one",
                    v.id_hex(),
                    v.header
                ),
            )
            .requirement("LARGE-3"));
        }
        Err(err) if err.code == ErrorCode::InvalidSegment => {
            discard_unreferenced(ctx, &id, stored.into_values().map(|m| m.key).collect()).await?;
            return Err(err);
        }
        Err(err) => return Err(err),
    };
    commit(ctx, SegmentDescriptor::from(&verified), lengths, generation, endpoint).await
}

/// After a failed commit verification: the parts do not form the segment, so drop them (unless
/// something references the segment) and let the client upload them again.
async fn discard_unreferenced<S: Store>(
    ctx: &Ctx<'_, S>,
    id: &SegmentId,
    keys: Vec<String>,
) -> Result<(), ProtocolError> {
    if !retention::is_referenced(ctx, id).await? {
        parts::delete_all(&**ctx.store(), &keys).await;
    }
    Ok(())
}
