//! Persist and flush: inline when the segment fits the function's limit, else in parts
//! through the function or presigned straight to the store (`CLI-4`, `LARGE-2`..`LARGE-4`).

use std::path::Path;

use bytes::Bytes;
use futures::{StreamExt, TryStreamExt};
use sha2::{Digest, Sha256};
use tokio::io::{AsyncReadExt, AsyncSeekExt};
use wkp1_protocol::endpoint::WriteQuery;
use wkp1_protocol::manifest::{
    CommitRequest, Limits, PartResponse, PersistResponse, PresignResponse,
};
use wkp1_protocol::{Endpoint, ErrorCode, headers};

use crate::error::ClientError;
use crate::segment_file::SegmentFile;
use crate::transport::{Call, Payload, Transport};

pub(crate) async fn write(
    t: &Transport,
    endpoint: Endpoint,
    generation: u64,
    segment: Option<&SegmentFile>,
) -> Result<PersistResponse, ClientError> {
    let Some(segment) = segment else {
        let mut call = Call::new(endpoint, String::new());
        call.generation = Some(generation);
        return remember(t, t.json(&call).await);
    };
    let size = segment.descriptor.size;
    let fits = t.limits().is_none_or(|l| size <= l.max_inline_bytes);
    if fits {
        let mut call = Call::new(endpoint, WriteQuery::Inline.to_query_string());
        call.generation = Some(generation);
        call.payload = Payload::File {
            path: segment.path.clone(),
            offset: 0,
            length: size,
            sha256: segment.descriptor.id.to_hex(),
        };
        match t.json(&call).await {
            // Limits were unknown and the segment is too large: learn them, go by parts.
            Err(ClientError::Refused { error, .. }) if error.code == ErrorCode::PayloadTooLarge => {
                let limits = error
                    .details
                    .as_ref()
                    .and_then(|d| serde_json::from_value::<Limits>(d["limits"].clone()).ok())
                    .ok_or_else(|| ClientError::Config(format!("413 without limits: {error}")))?;
                t.learn_limits(limits);
            }
            result => return remember(t, result),
        }
    }
    let limits = t.limits().expect("limits are known here");
    in_parts(t, endpoint, generation, segment, limits).await
}

fn remember(
    t: &Transport,
    result: Result<PersistResponse, ClientError>,
) -> Result<PersistResponse, ClientError> {
    if let Ok(response) = &result {
        t.learn_limits(response.limits);
        t.learn_manifest_version(response.manifest_version);
    }
    result
}

async fn in_parts(
    t: &Transport,
    endpoint: Endpoint,
    generation: u64,
    segment: &SegmentFile,
    limits: Limits,
) -> Result<PersistResponse, ClientError> {
    let descriptor = segment.descriptor;
    if descriptor.size > limits.max_segment_bytes {
        return Err(ClientError::Config(format!(
            "segment of {} bytes exceeds the function's max_segment_bytes {}",
            descriptor.size, limits.max_segment_bytes
        )));
    }
    let part_len = limits.max_inline_bytes.max(1);
    let ranges: Vec<(u64, u64)> = (0..descriptor.size)
        .step_by(part_len as usize)
        .map(|offset| (offset, part_len.min(descriptor.size - offset)))
        .collect();
    if ranges.len() as u64 > limits.max_parts {
        return Err(ClientError::Config(format!(
            "segment needs {} parts of {part_len} bytes; the function allows {}",
            ranges.len(),
            limits.max_parts
        )));
    }
    let id = descriptor.id;
    futures::stream::iter(ranges.iter().copied())
        .map(|(offset, length)| async move {
            let sha256 = hash_range(&segment.path, offset, length).await?;
            let payload = Payload::File { path: segment.path.clone(), offset, length, sha256 };
            if limits.presign_upload {
                let mut call = Call::new(
                    endpoint,
                    WriteQuery::Presign { segment: id, offset, length }.to_query_string(),
                );
                call.generation = Some(generation);
                let presigned: PresignResponse = t.json(&call).await?;
                t.retrying("presigned upload", || t.presigned(&presigned.upload, &payload)).await?;
            } else {
                let mut call =
                    Call::new(endpoint, WriteQuery::Part { segment: id, offset }.to_query_string());
                call.generation = Some(generation);
                call.payload = payload;
                let _: PartResponse = t.json(&call).await?;
            }
            Ok::<_, ClientError>(())
        })
        .buffer_unordered(t.config().concurrency.max(1))
        .try_collect::<Vec<()>>()
        .await?;

    let commit =
        CommitRequest { segment: descriptor, parts: ranges.iter().map(|(_, len)| *len).collect() };
    let body = serde_json::to_vec(&commit).map_err(|e| ClientError::Config(e.to_string()))?;
    let mut call = Call::new(endpoint, WriteQuery::Commit { segment: id }.to_query_string());
    call.generation = Some(generation);
    call.payload =
        Payload::Bytes { bytes: Bytes::from(body), media_type: headers::JSON_MEDIA_TYPE };
    remember(t, t.json(&call).await)
}

async fn hash_range(path: &Path, offset: u64, length: u64) -> Result<String, ClientError> {
    let context = || format!("read part of {}", path.display());
    let mut file = tokio::fs::File::open(path).await.map_err(|e| ClientError::io(context(), e))?;
    file.seek(std::io::SeekFrom::Start(offset)).await.map_err(|e| ClientError::io(context(), e))?;
    let mut reader = file.take(length);
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = reader.read(&mut buf).await.map_err(|e| ClientError::io(context(), e))?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
    }
    Ok(hex::encode(hasher.finalize()))
}
