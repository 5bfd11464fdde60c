//! The end-to-end harness: an object store (a directory, or an S3 server it starts), the
//! self-hosted function and the `weftkit-kv` engine as real processes, driven through
//! restore, persist and flush the way an orchestrator drives them (SIGTERM, SIGKILL, rolling
//! deploys, an unavailable function).
//!
//! - `processes`: children, their logs and signals.
//! - `dataset`: the items written through the DynamoDB API and the comparison.
//! - `soak`: replicas writing while the function and an engine are killed at random.
//! - this module: the environment and the other scenarios.

mod dataset;
mod processes;
mod soak;

pub use soak::SoakOptions;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, ensure};
use base64::Engine as _;
use dataset::Expected;
use processes::{Process, Ready, free_port};
use rand::Rng;
use serde::Serialize;

/// What to run.
#[derive(Debug, Clone)]
pub struct E2eOptions {
    /// The `weftkit-kv` binary.
    pub engine: PathBuf,
    /// The `wkp1-selfhosted` binary.
    pub function: PathBuf,
    /// An S3 server binary (`s3s-fs`) to store through; without one the function stores in a
    /// directory.
    pub s3_server: Option<PathBuf>,
    /// Or an S3-compatible server already running (MinIO, moto), and its bucket, which must
    /// exist. Credentials come from `AWS_ACCESS_KEY_ID` and `AWS_SECRET_ACCESS_KEY`.
    pub s3_endpoint: Option<(String, String)>,
    /// Where volumes, the store and logs go.
    pub work: PathBuf,
    /// Items in the first dataset.
    pub items: i64,
    /// Scenarios to run (all when empty).
    pub only: Vec<String>,
    /// The soak's size and seed.
    pub soak: SoakOptions,
}

/// One scenario's result.
#[derive(Debug, Clone, Serialize)]
pub struct ScenarioReport {
    pub name: &'static str,
    pub passed: bool,
    pub seconds: f64,
    /// What was checked, or why it failed.
    pub detail: String,
}

/// Every scenario, in the order they run.
pub const SCENARIOS: &[(&str, &str)] = &[
    ("round-trip", "write, tick, write more, SIGTERM; a fresh volume restores every item"),
    (
        "crash",
        "SIGKILL loses at most what followed the last acknowledged persist, corrupts nothing",
    ),
    (
        "rolling-deploy",
        "a new engine restores while the old one runs; the old one is fenced and its last data kept",
    ),
    ("function-outage", "the function dies during a tick and comes back; nothing is lost"),
    (
        "soak",
        "replicas write and persist while the function and one engine are SIGKILLed at random; every acknowledged write restores",
    ),
];

const SECRET_ACCESS_KEY: &str = "wkp1-e2e-secret-access-key";
const KEY_ID: &str = "e2e";

/// The store, the function and the settings every engine of a run shares.
struct Environment {
    options: E2eOptions,
    launcher: Launcher,
    function: Option<Process>,
    _s3: Option<Process>,
}

/// What it takes to start the function and engines on the run's store; cloned into the soak's
/// concurrent tasks.
#[derive(Debug, Clone)]
struct Launcher {
    engine: PathBuf,
    function: PathBuf,
    logs: PathBuf,
    key_secret: String,
    keys_file: PathBuf,
    store: String,
    store_env: BTreeMap<String, String>,
    function_port: u16,
    engines_started: Arc<AtomicUsize>,
}

impl Environment {
    async fn start(options: E2eOptions) -> anyhow::Result<Self> {
        let logs = options.work.join("logs");
        std::fs::create_dir_all(&logs)?;
        let secret: [u8; 32] = rand::rng().random();
        let key_secret = base64::engine::general_purpose::STANDARD.encode(secret);
        let keys_file = options.work.join("keys");
        std::fs::write(&keys_file, format!("{KEY_ID} {key_secret}\n"))?;
        let (store, store_env, s3) = match &options.s3_server {
            None if options.s3_endpoint.is_some() => {
                let (endpoint, bucket) = options.s3_endpoint.clone().expect("matched");
                let from_env = |name: &str| std::env::var(name).unwrap_or_default();
                let env = BTreeMap::from([
                    ("AWS_ENDPOINT_URL".to_owned(), endpoint),
                    ("AWS_ACCESS_KEY_ID".to_owned(), from_env("AWS_ACCESS_KEY_ID")),
                    ("AWS_SECRET_ACCESS_KEY".to_owned(), from_env("AWS_SECRET_ACCESS_KEY")),
                    ("AWS_REGION".to_owned(), "us-east-1".to_owned()),
                ]);
                let prefix = format!("e2e-{:08x}", rand::rng().random::<u32>());
                (format!("s3://{bucket}/{prefix}"), env, None)
            }
            None => {
                let dir = options.work.join("store");
                std::fs::create_dir_all(&dir)?;
                (format!("file://{}", dir.display()), BTreeMap::new(), None)
            }
            Some(binary) => {
                let root = options.work.join("s3");
                std::fs::create_dir_all(root.join("e2e"))?;
                let port = free_port()?;
                let address: SocketAddr = ([127, 0, 0, 1], port).into();
                let args: Vec<String> = [
                    "--host",
                    "127.0.0.1",
                    "--port",
                    &port.to_string(),
                    "--access-key",
                    "e2e-access",
                    "--secret-key",
                    "e2e-secret-key",
                ]
                .iter()
                .map(|s| s.to_string())
                .chain([root.display().to_string()])
                .collect();
                let mut s3 = Process::spawn("s3", binary, &args, &BTreeMap::new(), address, &logs)?;
                s3.wait_ready(Ready::Listens, Duration::from_secs(30)).await?;
                let env = BTreeMap::from([
                    ("AWS_ENDPOINT_URL".to_owned(), s3.url()),
                    ("AWS_ACCESS_KEY_ID".to_owned(), "e2e-access".to_owned()),
                    ("AWS_SECRET_ACCESS_KEY".to_owned(), "e2e-secret-key".to_owned()),
                    ("AWS_REGION".to_owned(), "us-east-1".to_owned()),
                ]);
                ("s3://e2e/store".to_owned(), env, Some(s3))
            }
        };
        let launcher = Launcher {
            engine: options.engine.clone(),
            function: options.function.clone(),
            logs,
            key_secret,
            keys_file,
            store,
            store_env,
            function_port: free_port()?,
            engines_started: Arc::new(AtomicUsize::new(0)),
        };
        let mut env = Self { options, launcher, function: None, _s3: s3 };
        env.start_function().await?;
        Ok(env)
    }

    /// Starts the function on its port (again, after it was killed).
    async fn start_function(&mut self) -> anyhow::Result<()> {
        self.function = Some(self.launcher.function().await?);
        Ok(())
    }

    /// Starts an engine on `volume` persisting to `instance`, and waits until it restored.
    async fn engine(&mut self, instance: &str, volume: &Path) -> anyhow::Result<Engine> {
        self.launcher.engine(instance, 0, volume).await
    }

    fn volume(&self, name: &str) -> PathBuf {
        self.options.work.join("volumes").join(name)
    }

    /// A WKP-1 client for an instance's subtree, to look at what the function holds.
    fn wkp1_client(&self, instance: &str) -> anyhow::Result<wkp1_client::Client> {
        self.launcher.wkp1_client(instance, 0)
    }
}

impl Launcher {
    /// Starts the function on the run's port and waits until it answers.
    async fn function(&self) -> anyhow::Result<Process> {
        let address: SocketAddr = ([127, 0, 0, 1], self.function_port).into();
        let args = vec![
            "--listen".to_owned(),
            address.to_string(),
            "--store".to_owned(),
            self.store.clone(),
            "--keys-file".to_owned(),
            self.keys_file.display().to_string(),
        ];
        let mut function = Process::spawn(
            "function",
            &self.function,
            &args,
            &self.store_env,
            address,
            &self.logs,
        )?;
        function.wait_ready(Ready::Answers("/healthz"), Duration::from_secs(60)).await?;
        Ok(function)
    }

    fn function_url(&self) -> String {
        format!("http://127.0.0.1:{}", self.function_port)
    }

    /// Starts an engine on `volume` persisting to `replica` of `instance`, and waits until it
    /// restored.
    async fn engine(&self, instance: &str, replica: u32, volume: &Path) -> anyhow::Result<Engine> {
        let started = self.engines_started.fetch_add(1, Ordering::Relaxed) + 1;
        let port = free_port()?;
        let address: SocketAddr = ([127, 0, 0, 1], port).into();
        let function_url = self.function_url();
        let replica = replica.to_string();
        let env: BTreeMap<String, String> = [
            ("WEFTKIT_ACCESS_KEY_ID", dataset::ACCESS_KEY),
            ("WEFTKIT_SECRET_ACCESS_KEY", SECRET_ACCESS_KEY),
            ("WEFTKIT_PERSIST_MODE", "serverless"),
            ("WEFTKIT_PERSIST_URL", function_url.as_str()),
            ("WEFTKIT_PERSIST_KEY_ID", KEY_ID),
            ("WEFTKIT_PERSIST_SECRET", self.key_secret.as_str()),
            ("WEFTKIT_PERSIST_INSTANCE", instance),
            ("WEFTKIT_PERSIST_REPLICA", replica.as_str()),
            // Ticks are forced through the admin endpoint; the schedule never fires in a run.
            ("WEFTKIT_PERSIST_SCHEDULE", "0 0 1 1 *"),
            ("WEFTKIT_PERSIST_FLUSH_BUDGET", "20s"),
            ("WEFTKIT_PERSIST_RETRY_FOR", "2s"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
        let args = vec![
            "serve".to_owned(),
            "--listen".to_owned(),
            address.to_string(),
            "--data".to_owned(),
            volume.display().to_string(),
        ];
        let name = format!("engine-{started}");
        let mut process = Process::spawn(&name, &self.engine, &args, &env, address, &self.logs)?;
        process.wait_ready(Ready::Answers("/ready"), Duration::from_secs(120)).await?;
        let client = dataset::client(&process.url(), SECRET_ACCESS_KEY);
        Ok(Engine { process, client })
    }

    /// A WKP-1 client for a replica's subtree, to look at what the function holds.
    fn wkp1_client(&self, instance: &str, replica: u32) -> anyhow::Result<wkp1_client::Client> {
        let key_id = wkp1_protocol::KeyId::new(KEY_ID)?;
        let secret = wkp1_protocol::signing::secret_from_text(&self.key_secret, &key_id)?;
        let subtree = wkp1_protocol::Subtree::new("weftkit-kv", instance, &replica.to_string())?;
        Ok(wkp1_client::Client::new(wkp1_client::ClientConfig::new(
            self.function_url().parse()?,
            subtree,
            key_id,
            secret,
        ))?)
    }
}

struct Engine {
    process: Process,
    client: aws_sdk_dynamodb::Client,
}

impl Engine {
    /// Forces a persist tick; the function's answer, or the error the engine reported.
    async fn tick(&self) -> anyhow::Result<Result<serde_json::Value, String>> {
        tick(&self.process.url()).await
    }

    async fn tick_ok(&self) -> anyhow::Result<serde_json::Value> {
        self.tick().await?.map_err(|e| anyhow::anyhow!("tick failed: {e}"))
    }

    /// What the engine reports of its persistence (`GET /_admin/persist`).
    async fn status(&self) -> anyhow::Result<serde_json::Value> {
        let url = format!("{}/_admin/persist", self.process.url());
        let response = reqwest::Client::new().get(url).send().await?;
        Ok(serde_json::from_slice(&response.bytes().await?)?)
    }
}

/// Forces a persist tick of the engine at `url`: what it pushed (`null` when nothing changed), or
/// the error it reported.
async fn tick(url: &str) -> anyhow::Result<Result<serde_json::Value, String>> {
    let response = reqwest::Client::new().post(format!("{url}/_admin/persist")).send().await?;
    let ok = response.status().is_success();
    let body: serde_json::Value = serde_json::from_slice(&response.bytes().await?)?;
    Ok(if ok {
        Ok(body["pushed"].clone())
    } else {
        Err(body["error"].as_str().unwrap_or_default().to_owned())
    })
}

fn instance(name: &str) -> String {
    format!("{name}-{:06x}", rand::rng().random::<u32>() & 0xff_ffff)
}

async fn round_trip(env: &mut Environment) -> anyhow::Result<String> {
    let instance = instance("round-trip");
    let mut expected = Expected::new();
    let items = env.options.items;
    let first = env.engine(&instance, &env.volume("round-trip-1")).await?;
    dataset::create_table(&first.client).await?;
    dataset::write(&first.client, 0..items, 0, &mut expected).await?;
    let pushed = first.tick_ok().await?;
    ensure!(pushed["kind"] == "delta", "the first tick pushes a delta: {pushed}");
    dataset::write(&first.client, items / 2..items + items / 5, 1, &mut expected).await?;
    let deleted = dataset::delete_some(&first.client, 17, &mut expected).await?;
    let stopping = Instant::now();
    let code = first.process.terminate(Duration::from_secs(40)).await?;
    ensure!(code == Some(0), "the engine exits 0 after its final flush, not {code:?}");
    let flush_seconds = stopping.elapsed().as_secs_f64();

    let restoring = Instant::now();
    let second = env.engine(&instance, &env.volume("round-trip-2")).await?;
    let restore_seconds = restoring.elapsed().as_secs_f64();
    let restored = dataset::read_all(&second.client).await?;
    dataset::compare(&expected, &restored).map_err(|e| anyhow::anyhow!("after restore: {e}"))?;
    second.process.terminate(Duration::from_secs(40)).await?;
    Ok(format!(
        "{} items ({} deleted) restored exactly; SIGTERM to exit {flush_seconds:.2}s, boot with restore {restore_seconds:.2}s; first delta {} bytes for {} payload bytes",
        restored.len(),
        deleted,
        pushed["bytes"],
        pushed["payload_bytes"],
    ))
}

async fn crash(env: &mut Environment) -> anyhow::Result<String> {
    let instance = instance("crash");
    let (mut persisted, mut all) = (Expected::new(), Expected::new());
    let volume = env.volume("crash-1");
    let engine = env.engine(&instance, &volume).await?;
    dataset::create_table(&engine.client).await?;
    dataset::write(&engine.client, 0..200, 0, &mut persisted).await?;
    engine.tick_ok().await?;
    all.clone_from(&persisted);
    dataset::write(&engine.client, 150..300, 1, &mut all).await?;
    engine.process.kill().await?;

    // A new container on an empty volume gets exactly the acknowledged state.
    let fresh = env.engine(&instance, &env.volume("crash-2")).await?;
    let restored = dataset::read_all(&fresh.client).await?;
    dataset::compare(&persisted, &restored)
        .map_err(|e| anyhow::anyhow!("restore after SIGKILL: {e}"))?;
    let code = fresh.process.terminate(Duration::from_secs(40)).await?;
    ensure!(code == Some(0), "the fresh engine exits 0, not {code:?}");

    // The killed container's own volume still holds what followed; it is kept and persisted.
    let same = env.engine(&instance, &volume).await?;
    let local = dataset::read_all(&same.client).await?;
    dataset::compare(&all, &local)
        .map_err(|e| anyhow::anyhow!("restart on the killed engine's volume: {e}"))?;
    let code = same.process.terminate(Duration::from_secs(40)).await?;
    ensure!(code == Some(0), "exit 0 after the flush, not {code:?}");
    let last = env.engine(&instance, &env.volume("crash-3")).await?;
    dataset::compare(&all, &dataset::read_all(&last.client).await?)
        .map_err(|e| anyhow::anyhow!("final restore: {e}"))?;
    last.process.terminate(Duration::from_secs(40)).await?;
    Ok(format!(
        "SIGKILL after {} acknowledged items and {} more: an empty volume restored the {} acknowledged exactly; the killed volume kept all {} and persisted them",
        persisted.len(),
        all.len() - persisted.len(),
        persisted.len(),
        all.len()
    ))
}

async fn rolling_deploy(env: &mut Environment) -> anyhow::Result<String> {
    let instance = instance("rolling");
    let mut before = Expected::new();
    let old = env.engine(&instance, &env.volume("rolling-old")).await?;
    dataset::create_table(&old.client).await?;
    dataset::write(&old.client, 0..150, 0, &mut before).await?;
    let acknowledged = old.tick_ok().await?["last_seq"].as_u64().context("tick's last_seq")?;
    // The new task restores while the old one is still serving.
    let new = env.engine(&instance, &env.volume("rolling-new")).await?;
    dataset::compare(&before, &dataset::read_all(&new.client).await?)
        .map_err(|e| anyhow::anyhow!("new engine: {e}"))?;
    let mut late = before.clone();
    dataset::write(&old.client, 150..180, 0, &mut late).await?;
    let log = old.process.log.clone();
    let code = old.process.terminate(Duration::from_secs(40)).await?;
    ensure!(code.is_some_and(|c| c != 0), "a fenced engine exits non-zero, not {code:?}");
    let old_log = std::fs::read_to_string(&log)?;
    ensure!(
        old_log.contains("superseded by generation") && old_log.contains("kept"),
        "the old engine reports its fenced data:\n{old_log}"
    );

    let plan = env.wkp1_client(&instance)?.plan(false).await?;
    let kept =
        plan.superseded.iter().find(|s| s.segment.base_seq == acknowledged).with_context(|| {
            format!("no superseded segment after state {acknowledged}: {:?}", plan.superseded)
        })?;
    ensure!(kept.generation + 1 == plan.generation, "kept under the old generation");
    ensure!(
        old_log.contains(&kept.segment.id.to_string()),
        "the old engine names the kept segment {}",
        kept.segment.id
    );
    dataset::compare(&before, &dataset::read_all(&new.client).await?)
        .map_err(|e| anyhow::anyhow!("fenced data must not be applied: {e}"))?;
    let code = new.process.terminate(Duration::from_secs(40)).await?;
    ensure!(code == Some(0), "the new engine exits 0, not {code:?}");
    Ok(format!(
        "old writer fenced at generation {}; its final {} changes kept as superseded segment {} (seq {}..={}), not applied",
        kept.generation,
        kept.segment.last_seq - kept.segment.first_seq + 1,
        kept.segment.id,
        kept.segment.first_seq,
        kept.segment.last_seq
    ))
}

async fn function_outage(env: &mut Environment) -> anyhow::Result<String> {
    let instance = instance("outage");
    let mut expected = Expected::new();
    let engine = env.engine(&instance, &env.volume("outage-1")).await?;
    dataset::create_table(&engine.client).await?;
    dataset::write(&engine.client, 0..100, 0, &mut expected).await?;
    engine.tick_ok().await?;
    env.function.take().context("the function runs")?.kill().await?;
    dataset::write(&engine.client, 100..200, 0, &mut expected).await?;
    let failed = engine.tick().await?;
    ensure!(failed.is_err(), "a tick with the function down fails: {failed:?}");
    dataset::compare(&expected, &dataset::read_all(&engine.client).await?)
        .map_err(|e| anyhow::anyhow!("local state during the outage: {e}"))?;
    env.start_function().await?;
    engine.tick_ok().await?;
    // The tick first settles the upload the outage cut off (it may have committed), then
    // pushes what is new: either way the engine has persisted everything by now.
    let status = engine.status().await?;
    ensure!(
        status["persisted_seq"] == status["last_seq"],
        "after the outage a tick left changes unpersisted: {status}"
    );
    let code = engine.process.terminate(Duration::from_secs(40)).await?;
    ensure!(code == Some(0), "exit 0 after the flush, not {code:?}");
    let fresh = env.engine(&instance, &env.volume("outage-2")).await?;
    dataset::compare(&expected, &dataset::read_all(&fresh.client).await?)
        .map_err(|e| anyhow::anyhow!("restore after the outage: {e}"))?;
    fresh.process.terminate(Duration::from_secs(40)).await?;
    Ok(format!(
        "tick failed while the function was down; writes went on; the next tick persisted up to seq {} and a fresh volume restored all {} items",
        status["persisted_seq"],
        expected.len()
    ))
}

/// Runs the scenarios; every one runs even when an earlier one failed.
pub async fn run(options: E2eOptions) -> anyhow::Result<Vec<ScenarioReport>> {
    for binary in [&options.engine, &options.function].into_iter().chain(options.s3_server.as_ref())
    {
        ensure!(binary.is_file(), "{} is not a file", binary.display());
    }
    let unknown: Vec<_> =
        options.only.iter().filter(|o| !SCENARIOS.iter().any(|(n, _)| n == o)).collect();
    ensure!(
        unknown.is_empty(),
        "unknown scenarios {unknown:?}; the scenarios are {:?}",
        SCENARIOS.iter().map(|s| s.0).collect::<Vec<_>>()
    );
    let mut env = Environment::start(options).await?;
    let mut reports = Vec::new();
    for (name, _) in SCENARIOS {
        if !env.options.only.is_empty() && !env.options.only.iter().any(|o| o == name) {
            continue;
        }
        if env.function.is_none() {
            env.start_function().await?;
        }
        let started = Instant::now();
        let result = match *name {
            "round-trip" => round_trip(&mut env).await,
            "crash" => crash(&mut env).await,
            "rolling-deploy" => rolling_deploy(&mut env).await,
            "function-outage" => function_outage(&mut env).await,
            _ => soak::soak(&mut env).await,
        };
        reports.push(ScenarioReport {
            name,
            passed: result.is_ok(),
            seconds: started.elapsed().as_secs_f64(),
            detail: match result {
                Ok(detail) => detail,
                Err(e) => format!("{e:#}"),
            },
        });
    }
    Ok(reports)
}
