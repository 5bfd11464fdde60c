//! `weftkit-kv`: see `weftkit-kv serve --help`.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use bounded_serve::Limits;
use clap::{Parser, Subcommand, ValueEnum};
use weftkit_kv::{Mode, SyncMode};
use weftkit_kv_server::dynamo::sigv4::Credentials;
use weftkit_kv_server::persist::PersistConfig;
use weftkit_kv_server::server::{Exit, ServerConfig, bind, run};

#[derive(Debug, Parser)]
#[command(version, about = "WeftKitKV over the DynamoDB JSON protocol, persisted through WKP-1")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Serves the DynamoDB API. Persistence is configured by WEFTKIT_PERSIST_* variables
    /// (see the README); it is off unless WEFTKIT_PERSIST_MODE says otherwise.
    Serve(ServeArgs),
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum ModeArg {
    Lsm,
    Btree,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum SyncArg {
    /// Acknowledged writes survive the process dying, not the machine.
    Buffered,
    /// Acknowledged writes are on disk (concurrent writers share an fsync).
    Fsync,
}

#[derive(Debug, clap::Args)]
struct ServeArgs {
    /// Address to listen on. Without credentials only loopback is allowed.
    #[arg(long, env = "WEFTKIT_LISTEN", default_value = "127.0.0.1:8000")]
    listen: SocketAddr,
    /// The volume: the database is kept in DIR/db, persistence scratch in DIR/wkp1.
    #[arg(long, env = "WEFTKIT_DATA", value_name = "DIR")]
    data: PathBuf,
    /// Storage engine of a new database (an existing one keeps its own).
    #[arg(long, env = "WEFTKIT_MODE", value_enum, default_value = "lsm")]
    mode: ModeArg,
    /// Local durability of each acknowledged write.
    #[arg(long, env = "WEFTKIT_SYNC", value_enum, default_value = "buffered")]
    sync: SyncArg,
    /// Region reported in table ARNs.
    #[arg(long, env = "WEFTKIT_REGION", default_value = "us-east-1")]
    region: String,
    /// Access key id clients sign requests with (SigV4).
    #[arg(long, env = "WEFTKIT_ACCESS_KEY_ID")]
    access_key_id: Option<String>,
    #[arg(long, env = "WEFTKIT_LOG_FORMAT", value_enum, default_value = "text")]
    log_format: weftkit_logging::LogFormat,
    /// Connections served at once; one more is answered 503 and closed.
    #[arg(long, env = "WEFTKIT_MAX_CONNECTIONS", default_value_t = Limits::default().max_connections)]
    max_connections: usize,
    /// Largest request head (request line and headers) in bytes; larger is answered 431.
    #[arg(long, env = "WEFTKIT_MAX_HEADER_BYTES", default_value_t = Limits::default().max_header_bytes)]
    max_header_bytes: usize,
    /// Seconds a client has to send a request head (idle keep-alive connections included).
    #[arg(long, env = "WEFTKIT_HEADER_TIMEOUT_SECONDS", default_value_t = Limits::default().header_timeout.as_secs())]
    header_timeout_seconds: u64,
    /// Seconds of waiting over which a request body must arrive at --min-body-rate; a body
    /// that stalls or trickles is answered 408.
    #[arg(long, env = "WEFTKIT_BODY_TIMEOUT_SECONDS", default_value_t = Limits::default().body_timeout.as_secs())]
    body_timeout_seconds: u64,
    /// Slowest request body accepted, in bytes per second.
    #[arg(long, env = "WEFTKIT_MIN_BODY_RATE", default_value_t = Limits::default().min_body_rate)]
    min_body_rate: u64,
}

/// The secret comes only from the environment (or a file it names), never from a flag that
/// would show in `ps`.
fn credentials(access_key_id: Option<String>) -> anyhow::Result<Vec<Credentials>> {
    let secret = match (
        std::env::var("WEFTKIT_SECRET_ACCESS_KEY").ok(),
        std::env::var("WEFTKIT_SECRET_ACCESS_KEY_FILE").ok(),
    ) {
        (Some(_), Some(_)) => anyhow::bail!(
            "WEFTKIT_SECRET_ACCESS_KEY: set it or WEFTKIT_SECRET_ACCESS_KEY_FILE, not both"
        ),
        (Some(secret), None) => Some(secret),
        (None, Some(path)) => Some(
            std::fs::read_to_string(&path)
                .map_err(|e| anyhow::anyhow!("WEFTKIT_SECRET_ACCESS_KEY_FILE: read {path}: {e}"))?
                .trim()
                .to_owned(),
        ),
        (None, None) => None,
    };
    match (access_key_id, secret) {
        (Some(id), Some(secret)) if !id.is_empty() && !secret.is_empty() => {
            Ok(vec![Credentials { access_key_id: id, secret_access_key: secret }])
        }
        (None, None) => Ok(Vec::new()),
        (Some(_), _) => {
            anyhow::bail!("WEFTKIT_SECRET_ACCESS_KEY: required with WEFTKIT_ACCESS_KEY_ID")
        }
        (None, Some(_)) => {
            anyhow::bail!("WEFTKIT_ACCESS_KEY_ID: required with WEFTKIT_SECRET_ACCESS_KEY")
        }
    }
}

fn config(args: ServeArgs) -> anyhow::Result<ServerConfig> {
    let limits = Limits {
        max_connections: args.max_connections,
        max_header_bytes: args.max_header_bytes,
        header_timeout: Duration::from_secs(args.header_timeout_seconds),
        body_timeout: Duration::from_secs(args.body_timeout_seconds),
        min_body_rate: args.min_body_rate,
    };
    limits.check().map_err(|e| anyhow::anyhow!("client limits (WEFTKIT_MAX_CONNECTIONS, WEFTKIT_MAX_HEADER_BYTES, WEFTKIT_HEADER_TIMEOUT_SECONDS, WEFTKIT_BODY_TIMEOUT_SECONDS): {e}"))?;
    Ok(ServerConfig {
        listen: args.listen,
        data: args.data,
        mode: match args.mode {
            ModeArg::Lsm => Mode::Lsm,
            ModeArg::Btree => Mode::Btree,
        },
        sync: match args.sync {
            SyncArg::Buffered => SyncMode::Buffered,
            SyncArg::Fsync => SyncMode::Fsync,
        },
        region: args.region,
        credentials: credentials(args.access_key_id)?,
        persist: PersistConfig::from_env()?,
        limits,
    })
}

async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .expect("install the SIGTERM handler");
    tokio::select! {
        _ = ctrl_c => {}
        _ = term.recv() => {}
    }
}

#[tokio::main]
async fn main() -> ExitCode {
    let Command::Serve(args) = Cli::parse().command;
    weftkit_logging::init(args.log_format, weftkit_logging::Timestamps::Own);
    let config = match config(args) {
        Ok(config) => config,
        Err(e) => {
            tracing::error!("{e:#}");
            eprintln!("weftkit-kv: {e:#}");
            return ExitCode::from(2);
        }
    };
    let listener = match bind(&config).await {
        Ok(listener) => listener,
        Err(e) => {
            tracing::error!("{e:#}");
            eprintln!("weftkit-kv: {e:#}");
            return ExitCode::from(2);
        }
    };
    match run(config, listener, shutdown_signal()).await {
        Ok(Exit::Clean) => ExitCode::SUCCESS,
        Ok(Exit::Failed) => ExitCode::FAILURE,
        Err(e) => {
            tracing::error!("{e:#}");
            eprintln!("weftkit-kv: {e:#}");
            ExitCode::FAILURE
        }
    }
}
