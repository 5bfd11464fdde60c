//! The processes an end-to-end run drives: an S3 server, the function, the engine. Each logs to
//! its own file, is signalled like an orchestrator would (SIGTERM, SIGKILL), and is killed if the
//! run ends first.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

/// A free port on loopback (bound and released: another process could take it first, which
/// the caller sees as a start-up failure).
pub(super) fn free_port() -> anyhow::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

/// A child process with its log.
#[derive(Debug)]
pub(super) struct Process {
    pub(super) name: String,
    pub(super) address: SocketAddr,
    pub(super) log: PathBuf,
    child: tokio::process::Child,
}

/// When a started process counts as ready.
#[derive(Debug, Clone, Copy)]
pub(super) enum Ready<'a> {
    /// `GET path` answers 2xx.
    Answers(&'a str),
    /// It accepts TCP connections (a server without a health endpoint).
    Listens,
}

impl Process {
    pub(super) fn spawn(
        name: &str,
        program: &Path,
        args: &[String],
        env: &BTreeMap<String, String>,
        address: SocketAddr,
        logs: &Path,
    ) -> anyhow::Result<Self> {
        let log = logs.join(format!("{name}.log"));
        let file = std::fs::OpenOptions::new().create(true).append(true).open(&log)?;
        let child = tokio::process::Command::new(program)
            .args(args)
            .envs(env)
            .stdin(Stdio::null())
            .stdout(file.try_clone()?)
            .stderr(file)
            .kill_on_drop(true)
            .spawn()
            .with_context(|| format!("start {name} ({})", program.display()))?;
        Ok(Self { name: name.to_owned(), address, log, child })
    }

    pub(super) fn url(&self) -> String {
        format!("http://{}", self.address)
    }

    /// The last lines of the log, for error messages.
    pub(super) fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(15)..].join("\n")
    }

    /// Waits until the process is ready (see [`Ready`]), failing early if it exits.
    pub(super) async fn wait_ready(
        &mut self,
        ready: Ready<'_>,
        timeout: Duration,
    ) -> anyhow::Result<()> {
        let http = reqwest::Client::new();
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if let Some(status) = self.child.try_wait()? {
                bail!(
                    "{} exited with {status} before it was ready:\n{}",
                    self.name,
                    self.log_tail()
                );
            }
            let up = match ready {
                Ready::Answers(path) => http
                    .get(format!("{}{path}", self.url()))
                    .send()
                    .await
                    .is_ok_and(|r| r.status().is_success()),
                Ready::Listens => tokio::net::TcpStream::connect(self.address).await.is_ok(),
            };
            if up {
                return Ok(());
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        bail!("{} was not ready within {timeout:?}:\n{}", self.name, self.log_tail())
    }

    fn signal(&self, signal: Signal) -> anyhow::Result<()> {
        let pid = self.child.id().context("the process already ended")?;
        kill(Pid::from_raw(pid as i32), signal)
            .with_context(|| format!("send {signal} to {}", self.name))
    }

    /// SIGTERM, then the exit code, within `timeout`.
    pub(super) async fn terminate(mut self, timeout: Duration) -> anyhow::Result<Option<i32>> {
        self.signal(Signal::SIGTERM)?;
        match tokio::time::timeout(timeout, self.child.wait()).await {
            Ok(status) => Ok(status?.code()),
            Err(_) => bail!(
                "{} did not exit within {timeout:?} of SIGTERM:\n{}",
                self.name,
                self.log_tail()
            ),
        }
    }

    /// SIGKILL: no shutdown code runs, as when a container is killed.
    pub(super) async fn kill(mut self) -> anyhow::Result<()> {
        self.signal(Signal::SIGKILL)?;
        self.child.wait().await?;
        Ok(())
    }
}
