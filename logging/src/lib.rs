//! # weftkit-logging
//!
//! How every binary of the workspace (the functions and the engine server) writes its logs:
//! `tracing` events on stderr, as text or JSON lines, filtered by `RUST_LOG` (default `info`).

use std::io::IsTerminal;

use tracing_subscriber::EnvFilter;

/// How a binary writes its logs (`--log-format`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

/// Who stamps each line with the time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Timestamps {
    /// The binary does (servers and containers); colours too when stderr is a terminal.
    Own,
    /// The host does, and shows no colours (AWS Lambda's CloudWatch).
    Host,
}

/// Installs the global subscriber. Call once, first thing in `main`.
pub fn init(format: LogFormat, timestamps: Timestamps) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr);
    match timestamps {
        Timestamps::Own => {
            let builder = builder.with_ansi(std::io::stderr().is_terminal());
            match format {
                LogFormat::Json => builder.json().init(),
                LogFormat::Text => builder.init(),
            }
        }
        Timestamps::Host => {
            let builder = builder.with_ansi(false).without_time();
            match format {
                LogFormat::Json => builder.json().init(),
                LogFormat::Text => builder.init(),
            }
        }
    }
}
