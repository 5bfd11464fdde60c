//! The persistence agent: restore on boot, a delta (or snapshot) per tick, the final flush.
//!
//! The volume holds `db/` (the database) and `wkp1/` (segments being uploaded, downloads, and
//! the marker saying what the function acknowledged). Changes stay in the engine's change log
//! until the function acknowledged them, so an unreachable function delays persistence but never
//! loses or blocks a local write.

use std::path::PathBuf;
use std::time::Instant;

use serde::Serialize;
use weftkit_kv::{Database, Options};
use wkp1_client::{Client, ClientConfig, ClientError, SegmentFile};
use wkp1_protocol::manifest::{Outcome, PersistResponse, RestorePlan};
use wkp1_protocol::segment::SegmentHeader;
use wkp1_protocol::{ErrorCode, FencingDetails, SegmentKind};

use super::config::{PersistConfig, RestoreOnBoot};
use super::marker::{self, Marker};

/// Where things live on the volume.
#[derive(Debug, Clone)]
pub struct Layout {
    pub volume: PathBuf,
}

impl Layout {
    pub fn new(volume: impl Into<PathBuf>) -> Self {
        Self { volume: volume.into() }
    }

    pub fn database(&self) -> PathBuf {
        self.volume.join("db")
    }

    fn restoring(&self) -> PathBuf {
        self.volume.join("db.restoring")
    }

    pub fn scratch(&self) -> PathBuf {
        self.volume.join("wkp1")
    }

    /// Whether the volume holds a database.
    pub fn has_database(&self) -> bool {
        self.database().join("weftkit.json").exists()
    }
}

/// What went wrong persisting.
#[derive(Debug, thiserror::Error)]
pub enum PersistError {
    /// A newer writer claimed the subtree: this one must stop persisting (`GEN-7`).
    #[error(
        "generation {generation} was superseded by generation {current}; {}",
        match segment { Some(s) => format!("its unpersisted changes {first_seq}..={last_seq} were kept by the function as superseded segment {s}, not applied"), None => "nothing more is persisted from this process".to_owned() }
    )]
    Fenced { generation: u64, current: u64, segment: Option<String>, first_seq: u64, last_seq: u64 },
    #[error(transparent)]
    Client(#[from] ClientError),
    #[error("engine: {0}")]
    Engine(#[from] weftkit_kv::Error),
    /// An earlier persist was fenced; this process persists nothing more.
    #[error("not persisting: {0}")]
    AfterFencing(String),
    /// The blocking task that exports or records state did not finish.
    #[error("export task failed: {0}")]
    Task(#[from] tokio::task::JoinError),
    #[error("write the persist marker: {0}")]
    Marker(std::io::Error),
    #[error("create {}: {source}", path.display())]
    Scratch { path: std::path::PathBuf, source: std::io::Error },
}

/// One upload.
#[derive(Debug, Clone, Serialize)]
pub struct Pushed {
    pub kind: SegmentKind,
    pub first_seq: u64,
    pub last_seq: u64,
    /// Segment bytes sent.
    pub bytes: u64,
    /// Payload bytes before compression.
    pub payload_bytes: u64,
    pub records: u64,
    pub seconds: f64,
    pub outcome: Outcome,
}

/// What boot did.
#[derive(Debug, Clone, Serialize)]
pub struct BootReport {
    pub generation: u64,
    pub restored: bool,
    pub segments: usize,
    pub bytes: u64,
    pub seq: u64,
    pub seconds: f64,
    pub previous_writer_closed: bool,
    /// Where a database that was replaced by the restore was moved.
    pub moved_aside: Option<PathBuf>,
}

/// Progress of this writer, guarded so ticks and the flush never overlap.
#[derive(Debug, Default)]
struct Progress {
    generation: u64,
    persisted_seq: u64,
    /// The next upload must be a snapshot: no delta joins the function's chain.
    need_snapshot: bool,
    deltas_since_snapshot: u32,
    fenced: Option<String>,
    /// The final flush closed the generation: nothing more is sent.
    closed: bool,
    /// An upload failed without an answer that says whether it committed (its answer was lost,
    /// or the function failed after the commit): the next push sends it again, unchanged,
    /// before anything else.
    in_doubt: Option<InDoubt>,
}

/// An upload whose outcome is unknown, kept in the scratch directory to be sent again.
#[derive(Debug)]
struct InDoubt {
    path: PathBuf,
    header: SegmentHeader,
}

/// What `/_admin/persist` reports.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Status {
    pub mode: &'static str,
    pub subtree: String,
    pub generation: u64,
    pub persisted_seq: u64,
    pub fenced: Option<String>,
    pub last_push: Option<Pushed>,
    pub last_error: Option<String>,
    pub pushes: u64,
    pub failures: u64,
}

#[derive(Debug)]
pub struct Agent {
    config: PersistConfig,
    client: Client,
    layout: Layout,
    progress: tokio::sync::Mutex<Progress>,
    status: std::sync::Mutex<Status>,
    uploads: std::sync::atomic::AtomicU64,
}

fn fenced_error(
    err: &ClientError,
    generation: u64,
    first_seq: u64,
    last_seq: u64,
) -> Option<PersistError> {
    let ClientError::Refused { error, .. } = err else { return None };
    if !matches!(error.code, ErrorCode::GenerationFenced | ErrorCode::GenerationClosed) {
        return None;
    }
    let details = FencingDetails::of(error);
    Some(PersistError::Fenced {
        generation,
        current: details.map_or(generation, |d| d.current_generation),
        segment: details.filter(|d| d.kept).and_then(|d| d.segment).map(|id| id.to_hex()),
        first_seq,
        last_seq,
    })
}

impl Agent {
    pub fn new(config: PersistConfig, layout: Layout) -> Result<Self, ClientError> {
        let mut client_config = ClientConfig::new(
            config.url.clone(),
            config.subtree.clone(),
            config.key_id.clone(),
            config.secret.clone(),
        );
        client_config.retry.max_total_delay = config.retry_for;
        client_config.retry.max_delay = client_config.retry.max_delay.min(config.retry_for);
        let client = Client::new(client_config)?;
        let status = Status {
            mode: config.mode.as_str(),
            subtree: config.subtree.path(),
            ..Status::default()
        };
        Ok(Self {
            config,
            client,
            layout,
            progress: tokio::sync::Mutex::new(Progress::default()),
            status: std::sync::Mutex::new(status),
            uploads: std::sync::atomic::AtomicU64::new(0),
        })
    }

    pub fn config(&self) -> &PersistConfig {
        &self.config
    }

    pub fn status(&self) -> Status {
        self.status.lock().expect("status lock").clone()
    }

    fn update_status(&self, progress: &Progress, result: Result<Option<&Pushed>, &PersistError>) {
        let mut status = self.status.lock().expect("status lock");
        status.generation = progress.generation;
        status.persisted_seq = progress.persisted_seq;
        status.fenced = progress.fenced.clone();
        match result {
            Ok(Some(pushed)) => {
                status.pushes += 1;
                status.last_push = Some(pushed.clone());
                status.last_error = None;
            }
            Ok(None) => status.last_error = None,
            Err(e) => {
                status.failures += 1;
                status.last_error = Some(e.to_string());
            }
        }
    }

    /// Claims a generation and makes the volume's database the latest state: restored from the
    /// function, or the local one when it is as new (see [`RestoreOnBoot`]).
    pub async fn boot(&self, options: Options) -> anyhow::Result<(Database, BootReport)> {
        let started = Instant::now();
        let scratch = self.layout.scratch();
        tokio::fs::create_dir_all(&scratch).await?;
        let _ = tokio::fs::remove_dir_all(self.layout.restoring()).await;
        let plan = self.client.plan(true).await?;
        let generation = plan.generation;
        for kept in &plan.superseded {
            tracing::warn!(
                generation = kept.generation,
                segment = %kept.segment.id,
                first_seq = kept.segment.first_seq,
                last_seq = kept.segment.last_seq,
                "the function keeps data a fenced writer sent after it was superseded; it is not part of the restored state"
            );
        }
        let local = self.layout.has_database();
        let marker = marker::read(&scratch).filter(|m| m.subtree == self.config.subtree.path());
        let mut in_step = marker.as_ref().is_some_and(|m| m.persisted_seq == plan.last_seq);
        if local
            && !in_step
            && let Some(last) = plan.chain.last()
            && own_upload(&scratch, &last.segment.id).await
        {
            // This writer's own last upload committed, but the process died before it heard so
            // (or before it recorded it): the local database holds that state, and maybe more.
            tracing::info!(
                last_seq = plan.last_seq,
                "the function's latest segment is this volume's own last upload; keeping the local database"
            );
            in_step = true;
        }
        let restore = match self.config.restore_on_boot {
            RestoreOnBoot::Always => true,
            RestoreOnBoot::Never => false,
            // Keep the local database only when it is what the function holds, plus changes.
            RestoreOnBoot::Auto => !local || (plan.last_seq > 0 && !in_step),
        };
        let mut progress = self.progress.lock().await;
        progress.generation = generation;
        let mut report = BootReport {
            generation,
            restored: restore,
            segments: 0,
            bytes: 0,
            seq: plan.last_seq,
            seconds: 0.0,
            previous_writer_closed: plan.previous_writer_closed,
            moved_aside: None,
        };
        let db = if restore {
            if local {
                let aside = self
                    .layout
                    .volume
                    .join(format!("db.replaced-{}", wkp1_protocol::signing::unix_now()));
                tokio::fs::rename(self.layout.database(), &aside).await?;
                tracing::warn!(path = %aside.display(), "moved the local database aside to restore the function's state");
                report.moved_aside = Some(aside);
            }
            let (db, segments, bytes) = self.restore(generation, options).await?;
            report.segments = segments;
            report.bytes = bytes;
            progress.persisted_seq = plan.last_seq;
            db
        } else {
            let path = self.layout.database();
            let db = tokio::task::spawn_blocking(move || Database::open(path, options)).await??;
            let local_seq = db.last_seq();
            if local_seq < plan.last_seq {
                anyhow::bail!(
                    "the local database (state {local_seq}) is behind the function's state {} of {}; WEFTKIT_PERSIST_RESTORE_ON_BOOT=never keeps it, so it cannot be persisted: restore it (auto or always) or use another subtree",
                    plan.last_seq,
                    self.config.subtree.path()
                );
            }
            if in_step {
                progress.persisted_seq = plan.last_seq;
            } else if local_seq > 0 {
                // Its history is not the function's: only a snapshot can replace it.
                progress.need_snapshot = true;
                tracing::info!(
                    local_seq,
                    remote_seq = plan.last_seq,
                    "the local database is not what the function holds: the next upload is a snapshot"
                );
            }
            report.seq = local_seq;
            db
        };
        marker::write(
            &scratch,
            &Marker { subtree: self.config.subtree.path(), persisted_seq: progress.persisted_seq },
        )?;
        remove_uploads(&scratch).await;
        report.seconds = started.elapsed().as_secs_f64();
        self.update_status(&progress, Ok(None));
        Ok((db, report))
    }

    /// Downloads and verifies the chain, imports it beside the database, then moves it in.
    async fn restore(
        &self,
        generation: u64,
        options: Options,
    ) -> anyhow::Result<(Database, usize, u64)> {
        let download = self.layout.scratch().join("download");
        let restored = self.client.restore(false, &download).await?;
        check_generation(&restored.plan, generation)?;
        let bytes = restored.bytes();
        let count = restored.segments.len();
        let (restoring, target) = (self.layout.restoring(), self.layout.database());
        let db = tokio::task::spawn_blocking(move || -> anyhow::Result<Database> {
            let mut files = Vec::with_capacity(restored.segments.len());
            for segment in &restored.segments {
                files.push((segment.descriptor.kind, std::fs::File::open(&segment.path)?));
            }
            let mut files = files.into_iter().peekable();
            let snapshot =
                files.next_if(|(kind, _)| *kind == SegmentKind::Snapshot).map(|(_, f)| f);
            let db =
                Database::import(&restoring, options.clone(), snapshot, files.map(|(_, f)| f))?;
            drop(db);
            std::fs::rename(&restoring, &target)?;
            let _ = std::fs::remove_dir_all(&download);
            Ok(Database::open(&target, options)?)
        })
        .await??;
        Ok((db, count, bytes))
    }

    /// One scheduled persist: a delta of what changed, or a snapshot when one is due. `None` when
    /// nothing changed.
    pub async fn tick(&self, db: &Database) -> Result<Option<Pushed>, PersistError> {
        let mut progress = self.progress.lock().await;
        let snapshot =
            progress.need_snapshot || progress.deltas_since_snapshot >= self.config.snapshot_every;
        let result = self.push(db, &mut progress, false, snapshot).await;
        self.update_status(&progress, result.as_ref().map(Option::as_ref));
        result
    }

    /// The final flush: the delta since the last acknowledged persist (a snapshot only when no
    /// delta can join the chain), closing the generation.
    pub async fn flush(&self, db: &Database) -> Result<Option<Pushed>, PersistError> {
        let mut progress = self.progress.lock().await;
        let snapshot = progress.need_snapshot;
        let result = self.push(db, &mut progress, true, snapshot).await;
        self.update_status(&progress, result.as_ref().map(Option::as_ref));
        result
    }

    /// What is not persisted yet: (persisted state, local state).
    pub async fn unpersisted(&self, db: &Database) -> (u64, u64) {
        (self.progress.lock().await.persisted_seq, db.last_seq())
    }

    /// Whatever was acknowledged last, without waiting for an upload in progress.
    pub fn persisted_seq(&self) -> u64 {
        self.status.lock().expect("status lock").persisted_seq
    }

    async fn push(
        &self,
        db: &Database,
        progress: &mut Progress,
        closing: bool,
        snapshot: bool,
    ) -> Result<Option<Pushed>, PersistError> {
        if let Some(fenced) = &progress.fenced {
            return Err(PersistError::AfterFencing(fenced.to_string()));
        }
        if progress.closed {
            return Ok(None);
        }
        if let Some(doubt) = progress.in_doubt.take() {
            self.settle(db, progress, doubt).await?;
        }
        let pushed = match self.push_once(db, progress, closing, snapshot).await {
            Err(PersistError::Client(e)) if e.code() == Some(ErrorCode::ChainOverlap) => {
                if !self.catch_up(db, progress).await? {
                    return Err(e.into());
                }
                self.push_once(db, progress, closing, snapshot).await
            }
            other => other,
        }?;
        progress.closed = closing;
        Ok(pushed)
    }

    /// Sends an upload whose answer was lost again, byte for byte: the function answers
    /// `already_committed` if it had committed (`IDEM-1`), or commits it now. Either way this
    /// writer learns where it stands without resending everything since, and without a plan.
    async fn settle(
        &self,
        db: &Database,
        progress: &mut Progress,
        doubt: InDoubt,
    ) -> Result<(), PersistError> {
        let result = async {
            let segment = SegmentFile::open(&doubt.path).await?;
            self.client.persist(progress.generation, &segment).await
        }
        .await;
        match result {
            Ok(response) => {
                if response.outcome == Outcome::AlreadyCommitted {
                    tracing::info!(
                        first_seq = doubt.header.first_seq,
                        last_seq = doubt.header.last_seq,
                        "an upload whose answer was lost had committed; continuing from there"
                    );
                }
                self.committed(db, progress, &doubt.header, &response).await;
                let _ = tokio::fs::remove_file(&doubt.path).await;
                Ok(())
            }
            Err(e) if in_doubt(&e) => {
                progress.in_doubt = Some(doubt);
                Err(e.into())
            }
            Err(e) => {
                let _ = tokio::fs::remove_file(&doubt.path).await;
                // The function's chain moved past it: learn from the plan what it holds.
                if e.code() == Some(ErrorCode::ChainOverlap) && self.catch_up(db, progress).await? {
                    return Ok(());
                }
                Err(self.refused(progress, e, doubt.header.first_seq, doubt.header.last_seq))
            }
        }
    }

    /// Records an acknowledged upload of the segment `header` describes.
    async fn committed(
        &self,
        db: &Database,
        progress: &mut Progress,
        header: &SegmentHeader,
        response: &PersistResponse,
    ) {
        if header.kind == SegmentKind::Snapshot {
            progress.need_snapshot = false;
            progress.deltas_since_snapshot = 0;
        } else {
            progress.deltas_since_snapshot += 1;
        }
        progress.need_snapshot |= response.snapshot_advised;
        self.acknowledged(db, progress, header.last_seq).await;
    }

    /// An upload whose answer was lost may have committed after all: continues from what the
    /// function holds, if that is this writer's own data. Whether it moved on.
    async fn catch_up(&self, db: &Database, progress: &mut Progress) -> Result<bool, PersistError> {
        let plan = self.client.plan(false).await?;
        let since = progress.persisted_seq;
        if plan.generation != progress.generation
            || plan.last_seq <= since
            || plan.last_seq > db.last_seq()
        {
            return Ok(false);
        }
        tracing::info!(
            from = since,
            to = plan.last_seq,
            "the function already holds this writer's changes up to {}; continuing from there",
            plan.last_seq
        );
        self.acknowledged(db, progress, plan.last_seq).await;
        Ok(true)
    }

    /// Records that the function holds the state up to `seq`: the marker, then the change log
    /// trim.
    async fn acknowledged(&self, db: &Database, progress: &mut Progress, seq: u64) {
        progress.persisted_seq = seq;
        let marker = Marker { subtree: self.config.subtree.path(), persisted_seq: seq };
        let scratch = self.layout.scratch();
        let db = db.clone();
        let recorded = tokio::task::spawn_blocking(move || -> Result<(), PersistError> {
            marker::write(&scratch, &marker).map_err(PersistError::Marker)?;
            db.trim_changes(seq)?;
            Ok(())
        })
        .await
        .map_err(PersistError::Task)
        .and_then(|r| r);
        if let Err(e) = recorded {
            // The function has the data; a longer change log only costs space.
            tracing::warn!(error = %e, "persisted, but could not record it locally");
        }
    }

    async fn push_once(
        &self,
        db: &Database,
        progress: &mut Progress,
        closing: bool,
        mut snapshot: bool,
    ) -> Result<Option<Pushed>, PersistError> {
        let started = Instant::now();
        let n = self.uploads.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let path = self.layout.scratch().join(format!("upload-{}-{n}.wkp1", std::process::id()));
        let since = progress.persisted_seq;
        if !snapshot && since < db.last_seq() && db.changes_since(since).is_err() {
            // The change log no longer reaches back to what the function holds.
            snapshot = true;
        }
        let exported = {
            let (db, path) = (db.clone(), path.clone());
            tokio::task::spawn_blocking(move || -> Result<_, PersistError> {
                let file = std::io::BufWriter::new(
                    std::fs::File::create(&path)
                        .map_err(|source| PersistError::Scratch { path: path.clone(), source })?,
                );
                Ok(if snapshot {
                    Some(db.export_snapshot(file)?)
                } else {
                    db.export_delta(since, file)?
                })
            })
            .await
            .map_err(PersistError::Task)??
        };
        let Some(exported) = exported else {
            let _ = std::fs::remove_file(&path);
            if closing {
                let generation = progress.generation;
                self.client
                    .flush(generation, None)
                    .await
                    .map_err(|e| self.refused(progress, e, since, since))?;
            }
            return Ok(None);
        };
        let header = exported.segment.header;
        let result = async {
            let segment = SegmentFile::open(&path).await?;
            if closing {
                self.client.flush(progress.generation, Some(&segment)).await
            } else {
                self.client.persist(progress.generation, &segment).await
            }
        }
        .await;
        let response = match result {
            Ok(response) => response,
            Err(e) if in_doubt(&e) && !closing => {
                progress.in_doubt = Some(InDoubt { path, header });
                return Err(e.into());
            }
            Err(e) => {
                let _ = tokio::fs::remove_file(&path).await;
                return Err(self.refused(progress, e, header.first_seq, header.last_seq));
            }
        };
        // The upload file goes only after the marker records it: until then, a boot after a
        // kill recognises its own committed upload by it.
        self.committed(db, progress, &header, &response).await;
        let _ = tokio::fs::remove_file(&path).await;
        Ok(Some(Pushed {
            kind: header.kind,
            first_seq: header.first_seq,
            last_seq: header.last_seq,
            bytes: exported.segment.size,
            payload_bytes: exported.segment.payload_len,
            records: exported.records,
            seconds: started.elapsed().as_secs_f64(),
            outcome: response.outcome,
        }))
    }

    fn refused(
        &self,
        progress: &mut Progress,
        err: ClientError,
        first_seq: u64,
        last_seq: u64,
    ) -> PersistError {
        match fenced_error(&err, progress.generation, first_seq, last_seq) {
            Some(fenced) => {
                progress.fenced = Some(fenced.to_string());
                fenced
            }
            None => err.into(),
        }
    }
}

/// The upload files (`upload-*.wkp1`) in `scratch`.
async fn upload_files(scratch: &std::path::Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    let Ok(mut entries) = tokio::fs::read_dir(scratch).await else { return files };
    while let Ok(Some(entry)) = entries.next_entry().await {
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.starts_with("upload-") && name.ends_with(".wkp1") {
            files.push(entry.path());
        }
    }
    files
}

/// Whether an upload file left in `scratch` by an earlier process is the segment `id`.
async fn own_upload(scratch: &std::path::Path, id: &wkp1_protocol::endpoint::SegmentId) -> bool {
    for path in upload_files(scratch).await {
        if SegmentFile::open(&path).await.is_ok_and(|f| f.descriptor.id == *id) {
            return true;
        }
    }
    false
}

/// Removes the upload files an earlier process left behind.
async fn remove_uploads(scratch: &std::path::Path) {
    for path in upload_files(scratch).await {
        let _ = tokio::fs::remove_file(path).await;
    }
}

/// Whether a failed upload may have committed all the same: only a definite refusal says it
/// did not.
fn in_doubt(err: &ClientError) -> bool {
    matches!(err, ClientError::Transport { .. }) || err.is_retryable()
}

fn check_generation(plan: &RestorePlan, generation: u64) -> anyhow::Result<()> {
    if plan.generation != generation {
        anyhow::bail!(
            "generation {} claimed the subtree while this process (generation {generation}) was booting; this process stops",
            plan.generation
        );
    }
    Ok(())
}
