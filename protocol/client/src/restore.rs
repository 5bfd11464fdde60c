//! Restore: the plan, then every segment streamed to disk and verified before the engine may
//! apply any of it (`REST-6`, `SEG-9`, `CLI-5`).

use std::collections::{BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use futures::{StreamExt, TryStreamExt};
use tokio::io::AsyncWriteExt;
use wkp1_protocol::chain::validate_chain;
use wkp1_protocol::endpoint::RestoreQuery;
use wkp1_protocol::manifest::{PlannedSegment, RestorePlan, SegmentDescriptor};
use wkp1_protocol::segment::{SegmentHeader, SegmentVerifier};
use wkp1_protocol::{Endpoint, ErrorCode};

use crate::error::ClientError;
use crate::transport::{Call, Payload, Transport};

/// How many new plans in a row may bring no newly verified segment before a restore gives up
/// (`REST-6`). Plans that do bring progress do not count: a restore that outlives its presigned
/// URLs several times over still finishes.
const NEW_PLANS_WITHOUT_PROGRESS: usize = 3;
/// How often one segment's download starts over after a broken transfer.
const SEGMENT_ATTEMPTS: usize = 3;

/// A verified segment on disk.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DownloadedSegment {
    pub descriptor: SegmentDescriptor,
    /// The generation that committed it.
    pub generation: u64,
    pub path: PathBuf,
}

/// A plan and its verified segments, in chain order.
#[derive(Debug, Clone)]
pub struct Restored {
    pub plan: RestorePlan,
    pub segments: Vec<DownloadedSegment>,
}

impl Restored {
    /// Total bytes downloaded.
    pub fn bytes(&self) -> u64 {
        self.segments.iter().map(|s| s.descriptor.size).sum()
    }
}

pub(crate) async fn plan(t: &Transport, claim: bool) -> Result<RestorePlan, ClientError> {
    let call = Call::new(Endpoint::Restore, RestoreQuery::Plan { claim }.to_query_string());
    let plan: RestorePlan = t.json(&call).await?;
    t.learn_limits(plan.limits);
    check_plan(t, &plan)?;
    t.learn_manifest_version(plan.manifest_version);
    Ok(plan)
}

/// The plan must be for our subtree and its chain must be whole (`CHAIN-1`, `CHAIN-2`).
fn check_plan(t: &Transport, plan: &RestorePlan) -> Result<(), ClientError> {
    if plan.subtree != t.config().subtree {
        return Err(ClientError::Integrity(format!(
            "plan is for subtree {}, not {}",
            plan.subtree,
            t.config().subtree
        )));
    }
    let headers: Vec<SegmentHeader> = plan.chain.iter().map(|s| s.segment.header()).collect();
    let state = validate_chain(&headers)
        .map_err(|e| ClientError::Integrity(format!("plan's chain is broken: {e}")))?;
    if state != plan.last_seq {
        return Err(ClientError::Integrity(format!(
            "plan says state {} but its chain produces state {state}",
            plan.last_seq
        )));
    }
    Ok(())
}

pub(crate) async fn restore(
    t: &Transport,
    claim: bool,
    dir: &Path,
) -> Result<Restored, ClientError> {
    tokio::fs::create_dir_all(dir)
        .await
        .map_err(|e| ClientError::io(format!("create {}", dir.display()), e))?;
    let first = plan(t, claim).await?;
    let mut current = first.clone();
    let progress = Mutex::new(Progress::default());
    let mut without_progress = 0;
    loop {
        let verified_before = progress.lock().expect("progress lock").verified.len();
        match download_all(t, &current, dir, &progress).await {
            Ok(segments) => {
                let progress = progress.into_inner().expect("progress lock");
                remove_unused(&progress, &segments).await;
                // Report the generation we claimed, whatever later plans said.
                let plan =
                    RestorePlan { generation: first.generation, claimed: first.claimed, ..current };
                return Ok(Restored { plan, segments });
            }
            Err(err) if needs_new_plan(&err) => {
                let verified = progress.lock().expect("progress lock").verified.len();
                // Rounds in a row that verified nothing: the first plan's, then new plans'.
                without_progress =
                    if verified > verified_before { 0 } else { without_progress + 1 };
                if without_progress > NEW_PLANS_WITHOUT_PROGRESS {
                    return Err(ClientError::Integrity(format!(
                        "gave up after {NEW_PLANS_WITHOUT_PROGRESS} new plans in a row without a \
                         newly verified segment (is retention or the presigned URL lifetime \
                         too short for this restore?): {err}"
                    )));
                }
                tracing::warn!(
                    kept = verified,
                    "a segment of the plan is gone or its URL expired; resuming from a new \
                     plan with the segments already verified: {err}"
                );
                current = plan(t, false).await?;
            }
            Err(err) => return Err(err),
        }
    }
}

/// Whether a failed download asks for a new plan (`REST-6`): the segment is gone from the
/// function, or the store no longer honours the plan's presigned URL (expired, `LARGE-7`).
fn needs_new_plan(err: &ClientError) -> bool {
    err.code() == Some(ErrorCode::SegmentNotFound)
        || matches!(err, ClientError::PresignedRefused { .. })
}

/// What a restore holds on disk across its plans.
#[derive(Debug, Default)]
struct Progress {
    /// Verified segments, by descriptor and generation: a later plan naming the same one reuses
    /// the file instead of downloading it again.
    verified: HashMap<(SegmentDescriptor, u64), PathBuf>,
    /// Every file the restore wrote, verified or not.
    written: BTreeSet<PathBuf>,
}

/// Removes the files no segment of the result uses: downloads a later plan dropped, and
/// downloads cut off by a failure. Best effort; they are never applied either way.
async fn remove_unused(progress: &Progress, segments: &[DownloadedSegment]) {
    let used: BTreeSet<&PathBuf> = segments.iter().map(|s| &s.path).collect();
    for path in progress.written.iter().filter(|p| !used.contains(p)) {
        if let Err(err) = tokio::fs::remove_file(path).await {
            tracing::debug!(path = %path.display(), "remove unused download: {err}");
        }
    }
}

async fn download_all(
    t: &Transport,
    plan: &RestorePlan,
    dir: &Path,
    progress: &Mutex<Progress>,
) -> Result<Vec<DownloadedSegment>, ClientError> {
    let max = plan.limits.max_response_bytes.max(1);
    // Owned items: a closure over borrowed ones is not `Send` for every lifetime, which makes
    // the restore future unusable in `tokio::spawn`.
    futures::stream::iter(plan.chain.iter().cloned().enumerate())
        .map(|(index, planned)| async move {
            let identity = (planned.segment, planned.generation);
            let kept = progress.lock().expect("progress lock").verified.get(&identity).cloned();
            if let Some(path) = kept {
                return Ok(DownloadedSegment {
                    descriptor: planned.segment,
                    generation: planned.generation,
                    path,
                });
            }
            let path = dir.join(format!("{index:05}-{}.wkp", planned.segment.id));
            progress.lock().expect("progress lock").written.insert(path.clone());
            let mut attempt = 0;
            loop {
                attempt += 1;
                match download_one(t, &planned, &path, max).await {
                    Ok(()) => break,
                    Err(err) if attempt < SEGMENT_ATTEMPTS && err.is_retryable() => {
                        tracing::warn!(segment = %planned.segment.id, "segment download broke; starting it over: {err}");
                    }
                    Err(err) => return Err(err),
                }
            }
            progress.lock().expect("progress lock").verified.insert(identity, path.clone());
            Ok(DownloadedSegment { descriptor: planned.segment, generation: planned.generation, path })
        })
        .buffered(t.config().concurrency.max(1))
        .try_collect()
        .await
}

/// Downloads one segment into `path`, verifying id, header, size and trailer as it streams.
async fn download_one(
    t: &Transport,
    planned: &PlannedSegment,
    path: &Path,
    max: u64,
) -> Result<(), ClientError> {
    let segment = planned.segment;
    let context = || format!("write {}", path.display());
    let mut file =
        tokio::fs::File::create(path).await.map_err(|e| ClientError::io(context(), e))?;
    let mut verifier = SegmentVerifier::new();
    let mut written = 0u64;
    let ranges: Vec<(u64, u64)> = if planned.download.is_empty() {
        (0..segment.size).step_by(max as usize).map(|o| (o, max.min(segment.size - o))).collect()
    } else {
        planned.download.iter().map(|d| (d.offset, d.length)).collect()
    };
    for (i, (offset, length)) in ranges.into_iter().enumerate() {
        if offset != written {
            return Err(ClientError::Integrity(format!(
                "download ranges of {} skip byte {written}",
                segment.id
            )));
        }
        let response = match planned.download.get(i) {
            Some(presigned) => {
                t.retrying("presigned download", || {
                    t.presigned(&presigned.request, &Payload::Empty)
                })
                .await?
            }
            None => {
                let query =
                    RestoreQuery::Fetch { segment: segment.id, offset, length }.to_query_string();
                let mut call = Call::new(Endpoint::Restore, query);
                call.expect_bytes = length;
                t.send(&call).await?
            }
        };
        let mut body = response.bytes_stream();
        let mut received = 0u64;
        while let Some(chunk) = body.next().await {
            let chunk = chunk.map_err(|e| ClientError::Transport {
                endpoint: "restore",
                message: format!(
                    "segment {} broke off at byte {}: {e}",
                    segment.id,
                    offset + received
                ),
                retryable: true,
            })?;
            received += chunk.len() as u64;
            if received > length {
                return Err(ClientError::Integrity(format!(
                    "segment {} range {offset}+{length} sent too many bytes",
                    segment.id
                )));
            }
            verifier
                .update(&chunk)
                .map_err(|e| ClientError::Integrity(format!("segment {}: {e}", segment.id)))?;
            file.write_all(&chunk).await.map_err(|e| ClientError::io(context(), e))?;
        }
        if received != length {
            return Err(ClientError::Transport {
                endpoint: "restore",
                message: format!(
                    "segment {} range {offset}+{length} ended after {received} bytes",
                    segment.id
                ),
                retryable: true,
            });
        }
        written += length;
    }
    file.sync_all().await.map_err(|e| ClientError::io(context(), e))?;
    let verified = verifier
        .finish()
        .map_err(|e| ClientError::Integrity(format!("segment {}: {e}", segment.id)))?;
    if SegmentDescriptor::from(&verified) != segment {
        return Err(ClientError::Integrity(format!(
            "segment {} is not what the plan promised: got {} {:?} of {} bytes",
            segment.id,
            verified.id_hex(),
            verified.header,
            verified.size
        )));
    }
    Ok(())
}
