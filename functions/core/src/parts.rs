//! Segment bytes in the store: a body streamed into create-only part objects, parts read back
//! as a range stream, and a segment's parts verified end to end (`MAN-4`, `LARGE-2`..`LARGE-6`).

use std::collections::{BTreeMap, VecDeque};
use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use futures::{StreamExt, TryStreamExt};
use http_body::Body;
use http_body_util::BodyExt;
use sha2::{Digest, Sha256};
use tokio::task::JoinSet;
use wkp1_protocol::endpoint::SegmentId;
use wkp1_protocol::segment::{SegmentVerifier, VerifiedSegment};
use wkp1_protocol::{ErrorCode, ProtocolError};

use crate::error::{internal, invalid, store_failed};
use crate::layout::Layout;
use crate::store::{ByteStream, ObjectMeta, PutMode, Store, StoreError};

/// Part writes in flight per request: enough to overlap the network, bounded for memory.
const IN_FLIGHT: usize = 4;
/// Parts read ahead while serving a download.
const READ_AHEAD: usize = 4;

pub(crate) type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// A request body the function can stream: what axum, hyper and `lambda_http` hand over.
pub trait RequestBody: Body<Data = Bytes, Error: Into<BoxError>> + Send + Unpin + 'static {}

impl<B> RequestBody for B where B: Body<Data = Bytes, Error: Into<BoxError>> + Send + Unpin + 'static
{}

/// What happened to one create-only part write.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum PartWrite {
    Created,
    /// An earlier attempt stored the same bytes (`IDEM-3`).
    AlreadyStored,
    /// Another object with different bytes holds the name: left over from a failed attempt.
    Differs,
}

/// Writes `bytes` create-only at `key`; on "already exists" compares with what is there.
///
/// A part stored before `fresh_after` with the same bytes is written again, so that it counts
/// as fresh for the commit that follows (`IDEM-3`): a commit ignores parts old enough for
/// retention to reclaim, and without this a client re-uploading one would never get it counted.
/// Writing the same bytes over the same bytes is atomic on every store and changes no content.
pub(crate) async fn put_part<S: Store>(
    store: &S,
    key: &str,
    bytes: Bytes,
    fresh_after: u64,
) -> Result<PartWrite, ProtocolError> {
    match crate::store::create(store, key, bytes.clone()).await {
        Ok(()) => Ok(PartWrite::Created),
        Err(StoreError::AlreadyExists(_)) => {
            let existing = store.get(key).await.map_err(|e| store_failed("read back part", e))?;
            match existing {
                Some(existing) if Sha256::digest(&existing) == Sha256::digest(&bytes) => {
                    // Best effort: a part left old is only treated as absent by the commit,
                    // and the client uploads it again.
                    let old = store.head(key).await.ok().flatten();
                    if old.is_some_and(|m| m.last_modified < fresh_after)
                        && let Err(e) = store.put(key, bytes, PutMode::Overwrite).await
                    {
                        tracing::warn!(%e, "could not refresh an old part");
                    }
                    Ok(PartWrite::AlreadyStored)
                }
                _ => Ok(PartWrite::Differs),
            }
        }
        Err(e) => Err(store_failed("write part", e)),
    }
}

/// The parts a request body became.
#[derive(Debug, Default)]
pub(crate) struct Stored {
    pub(crate) total: u64,
    /// Lengths of the part objects, in order, from the body's start offset.
    pub(crate) lengths: Vec<u64>,
    /// Keys this request created (deleted again if the body turns out invalid).
    pub(crate) created: Vec<String>,
    /// Keys held by different bytes (see [`PartWrite::Differs`]).
    pub(crate) differing: Vec<String>,
    /// SHA-256 of the whole body.
    pub(crate) sha256: [u8; 32],
}

impl Stored {
    /// The one cleanup of a refused upload: when `result` is an error, the parts this request
    /// created are deleted before the error goes back, so a refused body leaves nothing behind.
    pub(crate) async fn kept_if_ok<S: Store, T>(
        &self,
        store: &S,
        result: Result<T, ProtocolError>,
    ) -> Result<T, ProtocolError> {
        if result.is_err() {
            delete_all(store, &self.created).await;
        }
        result
    }
}

/// Why streaming a body into parts stopped.
#[derive(Debug)]
pub(crate) enum StreamError {
    /// Too large: the limit that was exceeded.
    TooLarge(u64),
    /// The segment verifier refused the bytes.
    Segment(wkp1_protocol::segment::SegmentError),
    /// Reading the body or writing the store failed.
    Protocol(ProtocolError),
}

/// Where a request body goes: bytes `start ..` of segment `id`, in objects of `part_size`,
/// at most `limit` bytes; parts already stored before `fresh_after` are refreshed.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Target<'a> {
    pub(crate) id: &'a SegmentId,
    pub(crate) start: u64,
    pub(crate) part_size: u64,
    pub(crate) limit: u64,
    pub(crate) fresh_after: u64,
}

/// Streams `body` into part objects, feeding `verifier` (when given) and hashing everything.
pub(crate) async fn store_body<S: Store, B: RequestBody>(
    store: &Arc<S>,
    layout: &Layout,
    target: Target<'_>,
    mut body: B,
    mut verifier: Option<&mut SegmentVerifier>,
) -> Result<Stored, (StreamError, Stored)> {
    let mut stored = Stored::default();
    let mut hasher = Sha256::new();
    let Target { id, start, part_size, limit, fresh_after } = target;
    // Allocated at full size once per part: growing by doubling leaves the allocator holding
    // several part-sized blocks per request.
    let mut chunk = BytesMut::with_capacity(part_size as usize);
    let mut writes: JoinSet<(String, Result<PartWrite, ProtocolError>)> = JoinSet::new();
    let mut offset = start;
    let mut segment_error = None;

    // Collects finished writes; stops at the first failure.
    async fn settle(
        writes: &mut JoinSet<(String, Result<PartWrite, ProtocolError>)>,
        stored: &mut Stored,
        keep: usize,
    ) -> Result<(), StreamError> {
        while writes.len() > keep {
            let Some(joined) = writes.join_next().await else { break };
            let (key, result) = joined
                .map_err(|e| StreamError::Protocol(internal(format!("part write task: {e}"))))?;
            match result.map_err(StreamError::Protocol)? {
                PartWrite::Created => stored.created.push(key),
                PartWrite::AlreadyStored => {}
                PartWrite::Differs => stored.differing.push(key),
            }
        }
        Ok(())
    }

    let flush =
        |chunk: &mut BytesMut, offset: &mut u64, stored: &mut Stored, writes: &mut JoinSet<_>| {
            let bytes =
                std::mem::replace(chunk, BytesMut::with_capacity(part_size as usize)).freeze();
            let len = bytes.len() as u64;
            let key = layout.part(id, *offset, len);
            let store = store.clone();
            writes.spawn(async move {
                let result = put_part(&*store, &key, bytes, fresh_after).await;
                (key, result)
            });
            stored.lengths.push(len);
            *offset += len;
        };

    loop {
        let frame = match body.frame().await {
            None => break,
            Some(Ok(frame)) => frame,
            Some(Err(e)) => {
                let e: BoxError = e.into();
                let err = invalid(format!("read request body: {e}"), "AUTH-3");
                let _ = settle(&mut writes, &mut stored, 0).await;
                return Err((StreamError::Protocol(err), stored));
            }
        };
        let Ok(mut data) = frame.into_data() else { continue };
        stored.total += data.len() as u64;
        if stored.total > limit {
            let _ = settle(&mut writes, &mut stored, 0).await;
            return Err((StreamError::TooLarge(limit), stored));
        }
        // The verifier hashes every byte anyway (its digest is the body's SHA-256); hash here
        // only when there is none.
        match verifier.as_deref_mut() {
            Some(v) => {
                let result = v.update(&data);
                if segment_error.is_none() {
                    segment_error = result.err();
                }
            }
            None => hasher.update(&data),
        }
        // Once the bytes are known not to be a segment, only hash the rest: the caller still
        // needs to know whether they are at least the body that was signed.
        while segment_error.is_none() && !data.is_empty() {
            let room = (part_size - chunk.len() as u64) as usize;
            let take = room.min(data.len());
            chunk.extend_from_slice(&data.split_to(take));
            if chunk.len() as u64 == part_size {
                flush(&mut chunk, &mut offset, &mut stored, &mut writes);
                if let Err(e) = settle(&mut writes, &mut stored, IN_FLIGHT - 1).await {
                    let _ = settle(&mut writes, &mut stored, 0).await;
                    return Err((e, stored));
                }
            }
        }
    }
    if !chunk.is_empty() && segment_error.is_none() {
        flush(&mut chunk, &mut offset, &mut stored, &mut writes);
    }
    let settled = settle(&mut writes, &mut stored, 0).await;
    stored.sha256 = match verifier {
        Some(v) => v.digest(),
        None => hasher.finalize().into(),
    };
    if let Some(e) = segment_error {
        return Err((StreamError::Segment(e), stored));
    }
    match settled {
        Ok(()) => Ok(stored),
        Err(e) => Err((e, stored)),
    }
}

/// Deletes keys, logging (not failing on) errors: used to undo a refused request.
pub(crate) async fn delete_all<S: Store>(store: &S, keys: &[String]) {
    for key in keys {
        if let Err(e) = store.delete(key).await {
            tracing::warn!(key, error = %e, "delete part of a refused request");
        }
    }
}

/// The stored part objects of a segment: `(offset, length) -> metadata`.
pub(crate) async fn list_parts<S: Store>(
    store: &S,
    layout: &Layout,
    id: &SegmentId,
) -> Result<BTreeMap<(u64, u64), ObjectMeta>, ProtocolError> {
    let prefix = layout.segment_parts(id);
    let listed = store.list(&prefix).await.map_err(|e| store_failed("list parts", e))?;
    Ok(listed
        .into_iter()
        .filter_map(|m| {
            let name = m.key.strip_prefix(&prefix)?;
            let (offset, length) = name.split_once('-')?;
            let parsed = (offset.parse().ok()?, length.parse().ok()?);
            (m.size == parsed.1).then_some((parsed, m))
        })
        .collect())
}

/// A tiling of `[0, size)` by stored parts, as lengths; `Err(offset)` names the first byte no
/// chain of parts reaches.
pub(crate) fn tiling<V>(parts: &BTreeMap<(u64, u64), V>, size: u64) -> Result<Vec<u64>, u64> {
    // Breadth-first over offsets: an edge per part from its start to its end.
    let mut came_from: BTreeMap<u64, (u64, u64)> = BTreeMap::new();
    let mut queue = VecDeque::from([0u64]);
    let mut furthest = 0;
    while let Some(at) = queue.pop_front() {
        if at == size {
            let mut lengths = Vec::new();
            let mut cursor = size;
            while cursor != 0 {
                let (from, len) = came_from[&cursor];
                lengths.push(len);
                cursor = from;
            }
            lengths.reverse();
            return Ok(lengths);
        }
        for &(offset, len) in parts.range((at, 0)..(at, u64::MAX)).map(|(k, _)| k) {
            let end = offset + len;
            if len > 0 && end <= size && !came_from.contains_key(&end) {
                came_from.insert(end, (at, len));
                furthest = furthest.max(end);
                queue.push_back(end);
            }
        }
    }
    Err(if size == 0 { 0 } else { furthest })
}

/// Streams the concatenation of a segment's parts through a verifier (`LARGE-3`).
pub(crate) async fn verify_stored<S: Store>(
    store: &S,
    layout: &Layout,
    id: &SegmentId,
    lengths: &[u64],
) -> Result<VerifiedSegment, ProtocolError> {
    let mut verifier = SegmentVerifier::new();
    for (offset, len, key) in layout.parts(id, lengths) {
        let mut stream = store
            .get_range(&key, 0..len)
            .await
            .map_err(|e| store_failed("read part for verification", e))?;
        let mut seen = 0;
        while let Some(bytes) = stream.try_next().await.map_err(|e| store_failed("read part", e))? {
            seen += bytes.len() as u64;
            verifier.update(&bytes).map_err(ProtocolError::from)?;
        }
        if seen != len {
            return Err(ProtocolError::new(
                ErrorCode::InvalidSegment,
                format!("part at offset {offset} holds {seen} bytes, not {len}"),
            )
            .requirement("LARGE-3"));
        }
    }
    verifier.finish().map_err(ProtocolError::from)
}

/// Bytes `offset .. offset + length` of a segment stored as parts of `lengths`.
pub(crate) fn read_range<S: Store>(
    store: Arc<S>,
    layout: &Layout,
    id: &SegmentId,
    lengths: &[u64],
    offset: u64,
    length: u64,
) -> ByteStream {
    let end = offset + length;
    let pieces: Vec<(String, u64, u64)> = layout
        .parts(id, lengths)
        .into_iter()
        .filter(|(start, len, _)| start + len > offset && *start < end)
        .map(|(start, len, key)| {
            let from = offset.saturating_sub(start);
            let to = (end - start).min(len);
            (key, from, to)
        })
        .collect();
    // Parts are read whole, a few ahead of the one being sent, so per-object latency overlaps
    // the transfer; memory stays at READ_AHEAD parts whatever the segment's size.
    futures::stream::iter(pieces)
        .map(move |(key, from, to)| {
            let store = store.clone();
            async move {
                let stream = store.get_range(&key, from..to).await?;
                let chunks: Vec<Bytes> = stream.try_collect().await?;
                Ok::<_, StoreError>(futures::stream::iter(chunks.into_iter().map(Ok)))
            }
        })
        .buffered(READ_AHEAD)
        .try_flatten()
        .boxed()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parts(ranges: &[(u64, u64)]) -> BTreeMap<(u64, u64), String> {
        ranges.iter().map(|&r| (r, format!("{}-{}", r.0, r.1))).collect()
    }

    #[test]
    fn tiling_finds_a_path_through_mixed_attempts() {
        assert_eq!(tiling(&parts(&[(0, 8), (8, 8), (16, 4)]), 20), Ok(vec![8, 8, 4]));
        // Two attempts with different part sizes; only one combination reaches the end.
        assert_eq!(tiling(&parts(&[(0, 10), (0, 8), (8, 12)]), 20), Ok(vec![8, 12]));
        assert_eq!(tiling(&parts(&[(0, 8), (10, 10)]), 20), Err(8));
        assert_eq!(tiling(&parts(&[]), 5), Err(0));
        assert_eq!(tiling(&parts(&[(0, 30)]), 20), Err(0));
    }
}
