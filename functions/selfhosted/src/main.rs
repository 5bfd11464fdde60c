//! `wkp1-selfhosted`: see `wkp1-selfhosted --help`.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use clap::Parser;
use wkp1_function::Function;
use wkp1_function::store::probe::{self, Atomicity};
use wkp1_function::store::url;
use wkp1_selfhosted::settings::Settings;

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let settings = Settings::parse();
    weftkit_logging::init(settings.log_format, weftkit_logging::Timestamps::Own);
    match run(settings).await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(err) => {
            tracing::error!("{err:#}");
            eprintln!("wkp1-selfhosted: {err:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

async fn run(settings: Settings) -> anyhow::Result<()> {
    let keys = settings.key_ring()?;
    let limits = settings.clients.limits()?;
    let opened = url::open(&settings.store)?;
    let config = settings.function_config(&opened.prefix)?;
    if let Atomicity::NotAtomic { winners } =
        probe::probe_create_only(&opened.store, &config.prefix).await?
    {
        tracing::warn!(winners, store = %opened.description, "{}", probe::NOT_ATOMIC_WARNING);
    }
    let function = Function::new(opened.store, keys, config)?;
    let listener = tokio::net::TcpListener::bind(settings.listen)
        .await
        .with_context(|| format!("listen on {}", settings.listen))?;
    let address = listener.local_addr()?;
    tracing::info!(%address, store = %opened.description, "wkp1-selfhosted listening");

    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let server = wkp1_selfhosted::serve(listener, Arc::new(function), limits, async move {
        let mut stop_rx = stop_rx;
        let _ = stop_rx.wait_for(|stop| *stop).await;
    });
    let server = tokio::spawn(server);
    shutdown_signal().await;
    tracing::info!(
        seconds = settings.shutdown_seconds,
        "shutting down: finishing in-flight requests"
    );
    let _ = stop_tx.send(true);
    match tokio::time::timeout(Duration::from_secs(settings.shutdown_seconds), server).await {
        Ok(joined) => joined.context("server task")?.context("serve")?,
        Err(_) => anyhow::bail!(
            "in-flight requests did not finish within {} s",
            settings.shutdown_seconds
        ),
    }
    tracing::info!("stopped");
    Ok(())
}

async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
            .expect("install SIGTERM handler");
        tokio::select! {
            _ = ctrl_c => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    let _ = ctrl_c.await;
}
