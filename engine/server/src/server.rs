//! The server's life: listen, boot (restore), serve and tick, then on SIGTERM stop writes and
//! flush within the budget.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use anyhow::Context;
use weftkit_kv::{Database, Mode, Options, SyncMode};

use crate::dynamo::sigv4::Credentials;
use crate::dynamo::{Service, ServiceOptions};
use crate::http::{AppState, router};
use crate::persist::{Agent, Layout, PersistConfig, PersistError};

/// Everything `weftkit-kv serve` needs.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    pub listen: SocketAddr,
    /// The volume: the database lives in `db/`, persistence scratch in `wkp1/`.
    pub data: PathBuf,
    pub mode: Mode,
    pub sync: SyncMode,
    pub region: String,
    pub credentials: Vec<Credentials>,
    pub persist: Option<PersistConfig>,
    /// What one client may cost: connections, request head size and time, body rate.
    pub limits: bounded_serve::Limits,
}

/// How the process ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    /// Stopped cleanly; with persistence on, everything was flushed.
    Clean,
    /// Something was left unpersisted, or the server could not run.
    Failed,
}

/// Refuses a configuration that would expose an unauthenticated server.
pub fn check_listen(listen: &SocketAddr, credentials: &[Credentials]) -> anyhow::Result<()> {
    if credentials.is_empty() && !listen.ip().is_loopback() {
        anyhow::bail!(
            "no credentials are configured, so weftkit-kv listens on loopback only: set WEFTKIT_ACCESS_KEY_ID and WEFTKIT_SECRET_ACCESS_KEY (or _FILE) to listen on {listen}"
        );
    }
    Ok(())
}

/// Binds the configured address, refusing an unauthenticated non-loopback one.
pub async fn bind(config: &ServerConfig) -> anyhow::Result<tokio::net::TcpListener> {
    check_listen(&config.listen, &config.credentials)?;
    tokio::net::TcpListener::bind(config.listen)
        .await
        .with_context(|| format!("listen on {}", config.listen))
}

/// Serves on `listener` until `shutdown` resolves (SIGTERM or SIGINT in the binary).
pub async fn run(
    config: ServerConfig,
    listener: tokio::net::TcpListener,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> anyhow::Result<Exit> {
    let address = listener.local_addr()?;
    check_listen(&address, &config.credentials)?;
    std::fs::create_dir_all(&config.data)
        .with_context(|| format!("create the data directory {}", config.data.display()))?;
    let layout = Layout::new(&config.data);
    let agent = config
        .persist
        .clone()
        .map(|p| Agent::new(p, layout.clone()).map(Arc::new))
        .transpose()
        .context("persistence client")?;
    let state = Arc::new(AppState::new(agent.clone(), config.credentials.clone()));
    if config.credentials.is_empty() {
        tracing::warn!(%address, "no credentials configured: requests are not authenticated, and only loopback is served");
    }
    tracing::info!(%address, data = %config.data.display(), persist = config.persist.as_ref().map_or("disabled", |p| p.mode.as_str()), "weftkit-kv listening");
    let (stop_http, http_stopped) = tokio::sync::watch::channel(false);
    let http = tokio::spawn({
        let router = router(state.clone());
        async move {
            let mut stopped = http_stopped;
            bounded_serve::serve(listener, router, config.limits, async move {
                let _ = stopped.wait_for(|s| *s).await;
            })
            .await
        }
    });
    let mut shutdown = std::pin::pin!(shutdown);

    let options = Options { mode: config.mode, sync: config.sync, ..Options::default() };
    let clock = options.clock.clone();
    let boot = async {
        match &agent {
            Some(agent) => {
                state.set_unready("restoring");
                let (db, report) = agent.boot(options.clone()).await?;
                tracing::info!(
                    generation = report.generation,
                    restored = report.restored,
                    segments = report.segments,
                    bytes = report.bytes,
                    seq = report.seq,
                    seconds = report.seconds,
                    previous_writer_closed = report.previous_writer_closed,
                    "boot: state ready"
                );
                anyhow::Ok(db)
            }
            None => {
                let path = layout.database();
                Ok(tokio::task::spawn_blocking(move || Database::open(path, options)).await??)
            }
        }
    };
    let db = tokio::select! {
        db = boot => db,
        () = &mut shutdown => {
            tracing::info!("stopped during boot; nothing was written");
            let _ = stop_http.send(true);
            return Ok(Exit::Clean);
        }
    };
    let db = match db {
        Ok(db) => db,
        Err(e) => {
            let _ = stop_http.send(true);
            return Err(e.context("boot"));
        }
    };
    let service_options =
        ServiceOptions { region: config.region.clone(), sync: config.sync, clock };
    let service = Arc::new(
        tokio::task::spawn_blocking({
            let db = db.clone();
            move || Service::new(db, service_options)
        })
        .await?
        .map_err(|e| anyhow::anyhow!("open the table catalog: {}", e.message))?,
    );
    let _ = state.service.set(service.clone());
    state.set_ready();
    tracing::info!("ready");

    let (stop_ticks, ticks_stopped) = tokio::sync::watch::channel(false);
    let ticker = agent
        .clone()
        .map(|agent| tokio::spawn(tick_loop(agent, state.clone(), service.clone(), ticks_stopped)));

    shutdown.await;
    let started = Instant::now();
    tracing::info!("shutting down: refusing new writes");
    state.set_unready("shutting down");
    tokio::task::spawn_blocking({
        let service = service.clone();
        move || service.close_writes()
    })
    .await?;
    let _ = stop_ticks.send(true);
    let exit = match &agent {
        None => Exit::Clean,
        Some(agent) => final_flush(agent, &db, started).await,
    };
    drop(ticker);
    let _ = stop_http.send(true);
    match tokio::time::timeout(Duration::from_secs(5), http).await {
        Ok(served) => served?.context("serve")?,
        Err(_) => tracing::warn!("in-flight requests did not finish within 5 s"),
    }
    tokio::task::spawn_blocking(move || db.sync()).await??;
    Ok(exit)
}

/// Pushes what is not persisted yet within the flush budget, and says exactly what was lost
/// if it could not.
async fn final_flush(agent: &Agent, db: &Database, started: Instant) -> Exit {
    let budget = agent.config().flush_budget.saturating_sub(started.elapsed());
    let result = tokio::time::timeout(budget, agent.flush(db)).await;
    let (persisted, last) = agent.unpersisted(db).await;
    match result {
        Ok(Ok(pushed)) => {
            match pushed {
                Some(p) => {
                    tracing::info!(kind = %p.kind, first_seq = p.first_seq, last_seq = p.last_seq, bytes = p.bytes, seconds = started.elapsed().as_secs_f64(), "final flush done; generation closed")
                }
                None => tracing::info!(
                    seq = last,
                    seconds = started.elapsed().as_secs_f64(),
                    "final flush: nothing new; generation closed"
                ),
            }
            Exit::Clean
        }
        Ok(Err(e @ PersistError::Fenced { .. })) => {
            tracing::error!("final flush fenced: {e}");
            Exit::Failed
        }
        Ok(Err(e)) => {
            tracing::error!(
                not_persisted_from = persisted + 1,
                not_persisted_to = last,
                "final flush failed: {e}; changes {}..={last} are not persisted (they remain in the change log of {})",
                persisted + 1,
                db.path().display()
            );
            Exit::Failed
        }
        Err(_) => {
            tracing::error!(
                not_persisted_from = persisted + 1,
                not_persisted_to = last,
                budget_seconds = agent.config().flush_budget.as_secs_f64(),
                "final flush did not finish within the budget; changes {}..={last} are not persisted (they remain in the change log of {})",
                persisted + 1,
                db.path().display()
            );
            Exit::Failed
        }
    }
}

/// Persists on the schedule; after a failure, retries sooner with growing, jittered delays.
async fn tick_loop(
    agent: Arc<Agent>,
    state: Arc<AppState>,
    service: Arc<Service>,
    mut stop: tokio::sync::watch::Receiver<bool>,
) {
    let mut failures = 0u32;
    loop {
        let now = SystemTime::now();
        let scheduled = agent
            .config()
            .next_tick(now)
            .and_then(|t| t.duration_since(now).ok())
            .unwrap_or(Duration::from_secs(60));
        let wait = if failures == 0 {
            scheduled
        } else {
            let backoff = Duration::from_secs(15 << failures.min(5)).min(Duration::from_secs(300));
            let jitter =
                Duration::from_millis(rand::random_range(0..=backoff.as_millis() as u64 / 4));
            scheduled.min(backoff + jitter)
        };
        tokio::select! {
            () = tokio::time::sleep(wait) => {}
            _ = stop.wait_for(|s| *s) => return,
        }
        if *stop.borrow() {
            return;
        }
        match agent.tick(service.database()).await {
            Ok(Some(p)) => {
                failures = 0;
                tracing::info!(kind = %p.kind, first_seq = p.first_seq, last_seq = p.last_seq, bytes = p.bytes, payload_bytes = p.payload_bytes, seconds = p.seconds, "persisted");
            }
            Ok(None) => {
                failures = 0;
                tracing::debug!("nothing changed since the last persist");
            }
            Err(e @ PersistError::Fenced { .. }) => {
                state.fence(&e).await;
                return;
            }
            Err(e) => {
                failures += 1;
                tracing::warn!(
                    failures,
                    "persist failed, local changes wait in the change log: {e}"
                );
            }
        }
    }
}
