//! The soak: replicas writing and persisting at once through one function that is SIGKILLed and
//! restarted at random moments, while one engine is SIGKILLed and restarted on its own volume.
//! At the end every engine flushes on SIGTERM and each replica is restored into a fresh volume.
//!
//! What "acknowledged" means: a write request the engine answered with success. It survives
//! the engine process dying (the volume's database, `--sync buffered`); a persist tick the
//! function acknowledged makes it survive the volume; the final flush on SIGTERM (exit 0)
//! persists everything left. The killed engine restarts on its own volume, as a restarted
//! container with a kept volume does, and pushes what it had not persisted. So once every engine
//! exited 0, every acknowledged write of every replica must restore. A write whose answer never
//! came (its engine was killed with it in flight) may or may not have happened: a key may hold
//! its last acknowledged value or that of any later unanswered write, nothing else.
//!
//! Right after each engine kill the function must still hold at least what the engine's
//! acknowledged ticks pushed, however often the function itself was killed.
//!
//! The random choices (keys, sizes, operations, kill moments, the victim) come from one seed,
//! printed; the processes' own timing is not replayable, the choices are.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, bail, ensure};
use aws_sdk_dynamodb::error::DisplayErrorContext;
use aws_sdk_dynamodb::types::{AttributeValue as AV, PutRequest, WriteRequest};
use futures::StreamExt;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use super::dataset::{self, Expected, TABLE};
use super::processes::Process;
use super::{Engine, Environment, Launcher};

/// How long and how wide the soak runs.
#[derive(Debug, Clone)]
pub struct SoakOptions {
    /// Engine replicas writing at once.
    pub replicas: u32,
    /// Time under writes and kills (the start, final flushes and restores come on top).
    pub duration: Duration,
    /// Seed of every random choice; a random one (printed) when absent.
    pub seed: Option<u64>,
}

/// Keys each replica writes: few enough that most writes overwrite or delete an earlier one.
const KEYS: i64 = 200;
/// Hash keys the items spread over.
const PARTITIONS: i64 = 8;
/// Engines booting or restoring at once.
const PARALLEL_BOOTS: usize = 4;

/// What one key may hold: its last acknowledged value (`None`: absent), or that of any write
/// sent after it whose answer never came. A value is a version, unique within a replica.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
struct KeyState {
    acknowledged: Option<u64>,
    unanswered: Vec<Option<u64>>,
}

impl KeyState {
    fn record(&mut self, value: Option<u64>, acknowledged: bool) {
        if acknowledged {
            self.acknowledged = value;
            self.unanswered.clear();
        } else {
            self.unanswered.push(value);
        }
    }

    fn allows(&self, value: Option<u64>) -> bool {
        self.acknowledged == value || self.unanswered.contains(&value)
    }
}

/// One write request: a put, a delete, or a batch of puts.
#[derive(Debug, Clone)]
enum Op {
    Put(i64, u64),
    Delete(i64),
    Batch(Vec<(i64, u64)>),
}

impl Op {
    fn random(rng: &mut StdRng, version: &mut u64) -> Self {
        let mut next = || {
            *version += 1;
            *version
        };
        let key = rng.random_range(0..KEYS);
        match rng.random_range(0..10) {
            0 => Op::Delete(key),
            // Steps of 7 stay distinct modulo KEYS for 8 items: a batch never repeats a key.
            1 => Op::Batch(
                (0..rng.random_range(2..=8)).map(|i| ((key + i * 7) % KEYS, next())).collect(),
            ),
            _ => Op::Put(key, next()),
        }
    }

    /// Each key the request writes, with its value.
    fn writes(&self) -> Vec<(i64, Option<u64>)> {
        match self {
            Op::Put(key, version) => vec![(*key, Some(*version))],
            Op::Delete(key) => vec![(*key, None)],
            Op::Batch(items) => items.iter().map(|(k, v)| (*k, Some(*v))).collect(),
        }
    }
}

fn splitmix(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}

fn key_attributes(key: i64) -> (AV, AV) {
    (AV::S(format!("p{}", key % PARTITIONS)), AV::N(key.to_string()))
}

/// The item `version` of `key` on `replica`: derived from the three, so a restored item shows
/// which write it came from and whether its bytes are intact.
fn item(replica: u32, key: i64, version: u64) -> HashMap<String, AV> {
    let mix = splitmix((u64::from(replica) << 48) ^ ((key as u64) << 32) ^ version);
    let payload: Vec<u8> = (0..mix % 1500).map(|i| (splitmix(mix ^ (i / 16)) >> 8) as u8).collect();
    let (pk, sk) = key_attributes(key);
    HashMap::from([
        ("pk".to_owned(), pk),
        ("sk".to_owned(), sk),
        ("version".to_owned(), AV::N(version.to_string())),
        ("payload".to_owned(), AV::B(payload.into())),
        ("note".to_owned(), AV::S(format!("replica {replica} key {key} version {version}"))),
    ])
}

/// Checks a replica's restored items against what its keys allow; the number of items on
/// success, the differences otherwise.
fn check_replica(replica: u32, keys: &[KeyState], restored: &Expected) -> Result<usize, String> {
    let (mut wrong, mut corrupt, mut example) = (0, 0, None);
    let mut seen = 0;
    for (key, state) in (0..KEYS).zip(keys) {
        let stored = restored.get(&(format!("p{}", key % PARTITIONS), key));
        seen += usize::from(stored.is_some());
        let value = match stored {
            None => None,
            Some(found) => {
                let version = found
                    .get("version")
                    .and_then(|v| v.as_n().ok())
                    .and_then(|v| v.parse::<u64>().ok());
                match version {
                    Some(v) if *found == item(replica, key, v) => Some(v),
                    _ => {
                        corrupt += 1;
                        example.get_or_insert_with(|| format!("key {key} holds {found:?}"));
                        continue;
                    }
                }
            }
        };
        if !state.allows(value) {
            wrong += 1;
            example.get_or_insert_with(|| {
                format!(
                    "key {key} holds version {value:?}; acknowledged {:?}, unanswered {:?}",
                    state.acknowledged, state.unanswered
                )
            });
        }
    }
    let unexpected = restored.len() - seen;
    if wrong + corrupt + unexpected == 0 {
        return Ok(seen);
    }
    Err(format!(
        "{wrong} keys hold neither their acknowledged value nor an unanswered one, {corrupt} items corrupt, {unexpected} items outside the key space; first: {}",
        example.unwrap_or_else(|| "an unknown key".to_owned())
    ))
}

/// One replica: its engine (absent while it is being restarted) and what its keys may hold.
struct Replica {
    index: u32,
    volume: PathBuf,
    engine: tokio::sync::RwLock<Option<Engine>>,
    keys: std::sync::Mutex<Vec<KeyState>>,
    /// The highest state a tick of this replica's engines had acknowledged.
    persisted_seq: AtomicU64,
}

impl Replica {
    /// The engine's DynamoDB client and URL, unless it is being restarted.
    async fn connection(&self) -> Option<(aws_sdk_dynamodb::Client, String)> {
        self.engine.read().await.as_ref().map(|e| (e.client.clone(), e.process.url()))
    }

    fn record(&self, op: &Op, acknowledged: bool) {
        let mut keys = self.keys.lock().expect("keys lock");
        for (key, value) in op.writes() {
            keys[key as usize].record(value, acknowledged);
        }
    }
}

#[derive(Debug, Default)]
struct Counts {
    writes: AtomicU64,
    items: AtomicU64,
    unanswered_writes: AtomicU64,
    persists: AtomicU64,
    empty_ticks: AtomicU64,
    refused_ticks: AtomicU64,
    unanswered_ticks: AtomicU64,
    function_kills: AtomicU64,
    engine_kills: AtomicU64,
    boot_retries: AtomicU64,
}

fn add(counter: &AtomicU64, n: u64) {
    counter.fetch_add(n, Ordering::Relaxed);
}

fn get(counter: &AtomicU64) -> u64 {
    counter.load(Ordering::Relaxed)
}

/// Everything the soak's tasks share.
struct Soak {
    launcher: Launcher,
    instance: String,
    replicas: Vec<Replica>,
    /// The replica whose engine is killed and restarted.
    victim: u32,
    started: Instant,
    deadline: Instant,
    counts: Counts,
}

impl Soak {
    fn task_rng(&self, seed: u64, task: u64) -> StdRng {
        StdRng::seed_from_u64(splitmix(seed ^ splitmix(task)))
    }

    /// Starts an engine on `replica`'s volume, again after a failed boot (the function may be
    /// down: the engine then exits, as a container whose restore failed does).
    async fn boot(&self, replica: u32) -> anyhow::Result<Engine> {
        let volume = &self.replicas[replica as usize].volume;
        let mut attempt = 0;
        loop {
            attempt += 1;
            match self.launcher.engine(&self.instance, replica, volume).await {
                Ok(engine) => return Ok(engine),
                Err(e) if attempt >= 30 => {
                    return Err(e.context(format!("boot replica {replica} ({attempt} attempts)")));
                }
                Err(_) => {
                    add(&self.counts.boot_retries, 1);
                    tokio::time::sleep(Duration::from_millis(300)).await;
                }
            }
        }
    }
}

/// Sends `op` to the engine; `Ok` only when every item was acknowledged.
async fn apply(client: &aws_sdk_dynamodb::Client, replica: u32, op: &Op) -> anyhow::Result<()> {
    match op {
        Op::Put(key, version) => {
            client
                .put_item()
                .table_name(TABLE)
                .set_item(Some(item(replica, *key, *version)))
                .send()
                .await
                .map_err(|e| anyhow::anyhow!("PutItem: {}", DisplayErrorContext(e)))?;
        }
        Op::Delete(key) => {
            let (pk, sk) = key_attributes(*key);
            client
                .delete_item()
                .table_name(TABLE)
                .key("pk", pk)
                .key("sk", sk)
                .send()
                .await
                .map_err(|e| anyhow::anyhow!("DeleteItem: {}", DisplayErrorContext(e)))?;
        }
        Op::Batch(items) => {
            let requests = items
                .iter()
                .map(|(key, version)| {
                    let put =
                        PutRequest::builder().set_item(Some(item(replica, *key, *version))).build();
                    Ok(WriteRequest::builder().put_request(put?).build())
                })
                .collect::<anyhow::Result<Vec<_>>>()?;
            let out = client
                .batch_write_item()
                .request_items(TABLE, requests)
                .send()
                .await
                .map_err(|e| anyhow::anyhow!("BatchWriteItem: {}", DisplayErrorContext(e)))?;
            ensure!(
                out.unprocessed_items.unwrap_or_default().is_empty(),
                "BatchWriteItem left items unprocessed"
            );
        }
    }
    Ok(())
}

/// Writes one request after another until the deadline. A request that fails on an engine
/// nobody killed fails the soak: local writes must go on whatever the function does.
async fn write_loop(soak: Arc<Soak>, replica: u32, mut rng: StdRng) -> anyhow::Result<()> {
    let this = &soak.replicas[replica as usize];
    let mut version = 0;
    while Instant::now() < soak.deadline {
        let Some((client, _)) = this.connection().await else {
            tokio::time::sleep(Duration::from_millis(20)).await;
            continue;
        };
        let op = Op::random(&mut rng, &mut version);
        let result = apply(&client, replica, &op).await;
        this.record(&op, result.is_ok());
        match result {
            Ok(()) => {
                add(&soak.counts.writes, 1);
                add(&soak.counts.items, op.writes().len() as u64);
            }
            // The victim was killed with it in flight.
            Err(_) if replica == soak.victim => add(&soak.counts.unanswered_writes, 1),
            Err(e) => bail!("replica {replica}: a write failed on an engine nobody killed: {e:#}"),
        }
        tokio::time::sleep(Duration::from_millis(rng.random_range(2..25))).await;
    }
    Ok(())
}

/// Forces persist ticks at random intervals until the deadline.
async fn tick_loop(soak: Arc<Soak>, replica: u32, mut rng: StdRng) -> anyhow::Result<()> {
    let this = &soak.replicas[replica as usize];
    loop {
        let pause = Duration::from_millis(rng.random_range(200..2500));
        if Instant::now() + pause >= soak.deadline {
            return Ok(());
        }
        tokio::time::sleep(pause).await;
        let Some((_, url)) = this.connection().await else { continue };
        match super::tick(&url).await {
            Ok(Ok(pushed)) if pushed.is_null() => add(&soak.counts.empty_ticks, 1),
            Ok(Ok(pushed)) => {
                let last_seq = pushed["last_seq"].as_u64().context("a pushed tick's last_seq")?;
                this.persisted_seq.fetch_max(last_seq, Ordering::Relaxed);
                add(&soak.counts.persists, 1);
            }
            // The function is down: the changes wait in the change log for a later tick.
            Ok(Err(_)) => add(&soak.counts.refused_ticks, 1),
            Err(_) if replica == soak.victim => add(&soak.counts.unanswered_ticks, 1),
            Err(e) => bail!("replica {replica}: a tick went unanswered by a live engine: {e:#}"),
        }
    }
}

/// SIGKILLs the function at random moments and starts it again after a random pause; returns
/// it running at the deadline.
async fn function_chaos(
    soak: Arc<Soak>,
    mut function: Process,
    mut rng: StdRng,
) -> anyhow::Result<Process> {
    loop {
        let up = Duration::from_millis(rng.random_range(1000..6000));
        if Instant::now() + up >= soak.deadline {
            tokio::time::sleep_until(soak.deadline.into()).await;
            return Ok(function);
        }
        tokio::time::sleep(up).await;
        function.kill().await?;
        add(&soak.counts.function_kills, 1);
        tokio::time::sleep(Duration::from_millis(rng.random_range(0..2500))).await;
        function = soak.launcher.function().await.context("restart the function")?;
    }
}

/// SIGKILLs the victim's engine at random moments, checks the function still holds what its
/// ticks acknowledged, and restarts it on the same volume.
async fn engine_chaos(soak: Arc<Soak>, mut rng: StdRng) -> anyhow::Result<()> {
    let victim = &soak.replicas[soak.victim as usize];
    let span = soak.deadline - soak.started;
    let mut next = soak.started + span.mul_f64(rng.random_range(0.2..0.5));
    let wkp1 = soak.launcher.wkp1_client(&soak.instance, soak.victim)?;
    while next + Duration::from_secs(3) < soak.deadline {
        tokio::time::sleep_until(next.into()).await;
        let engine = victim.engine.write().await.take().context("the victim's engine runs")?;
        engine.process.kill().await?;
        add(&soak.counts.engine_kills, 1);
        let acknowledged = victim.persisted_seq.load(Ordering::Relaxed);
        let held = plan_when_up(&wkp1).await?;
        ensure!(
            held >= acknowledged,
            "after SIGKILL of replica {}'s engine the function holds state {held}, behind the {acknowledged} its ticks acknowledged",
            soak.victim
        );
        let engine = soak.boot(soak.victim).await?;
        *victim.engine.write().await = Some(engine);
        next = Instant::now() + Duration::from_millis(rng.random_range(4000..15000));
    }
    Ok(())
}

/// The state the function holds for a subtree, without claiming it, waiting out the function's
/// restarts. The engine is down meanwhile, so that state cannot change and waiting long weakens
/// nothing: under 32 replicas on a loaded machine a plan can take longer than the function's
/// 1 to 6 s between kills, many times in a row.
async fn plan_when_up(client: &wkp1_client::Client) -> anyhow::Result<u64> {
    const PATIENCE: Duration = Duration::from_secs(300);
    let deadline = Instant::now() + PATIENCE;
    let mut attempts = 0u32;
    loop {
        attempts += 1;
        match client.plan(false).await {
            Ok(plan) => return Ok(plan.last_seq),
            Err(e) if Instant::now() > deadline => {
                return Err(anyhow::Error::new(e).context(format!(
                    "restore plan of the killed replica: no answer in {attempts} attempts over {PATIENCE:?}"
                )));
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(200)).await,
        }
    }
}

/// How many lines of the soak's engine logs (engines numbered above `first`) contain `text`.
fn count_in_engine_logs(logs: &std::path::Path, first: usize, text: &str) -> usize {
    let Ok(entries) = std::fs::read_dir(logs) else { return 0 };
    entries
        .flatten()
        .filter(|e| {
            let name = e.file_name().to_string_lossy().into_owned();
            name.strip_prefix("engine-")
                .and_then(|n| n.strip_suffix(".log"))
                .and_then(|n| n.parse::<usize>().ok())
                .is_some_and(|n| n > first)
        })
        .map(|e| std::fs::read_to_string(e.path()).unwrap_or_default().matches(text).count())
        .sum()
}

pub(super) async fn soak(env: &mut Environment) -> anyhow::Result<String> {
    let options = env.options.soak.clone();
    ensure!(options.replicas >= 1, "the soak needs at least one replica");
    let seed = options.seed.unwrap_or_else(|| rand::rng().random());
    eprintln!(
        "soak: seed {seed} ({} replicas, {:?} under kills; `--seed {seed}` replays these choices)",
        options.replicas, options.duration
    );
    run_with_seed(env, &options, seed).await.with_context(|| format!("soak with seed {seed}"))
}

async fn run_with_seed(
    env: &mut Environment,
    options: &SoakOptions,
    seed: u64,
) -> anyhow::Result<String> {
    let mut rng = StdRng::seed_from_u64(seed);
    let first_engine = env.launcher.engines_started.load(Ordering::Relaxed);
    let instance = format!("soak-{:08x}", splitmix(seed) as u32);
    let replicas: Vec<Replica> = (0..options.replicas)
        .map(|index| Replica {
            index,
            volume: env.volume(&format!("soak-{index}")),
            engine: tokio::sync::RwLock::new(None),
            keys: std::sync::Mutex::new(vec![KeyState::default(); KEYS as usize]),
            persisted_seq: AtomicU64::new(0),
        })
        .collect();
    let victim = rng.random_range(0..options.replicas);
    let mut soak = Soak {
        launcher: env.launcher.clone(),
        instance,
        replicas,
        victim,
        started: Instant::now(),
        deadline: Instant::now(),
        counts: Counts::default(),
    };

    let booting = Instant::now();
    let shared = &soak;
    let engines: Vec<anyhow::Result<Engine>> =
        futures::stream::iter(shared.replicas.iter().map(|r| async move {
            let engine = shared.boot(r.index).await?;
            dataset::create_table(&engine.client).await?;
            Ok(engine)
        }))
        .buffered(PARALLEL_BOOTS)
        .collect()
        .await;
    for (replica, engine) in soak.replicas.iter_mut().zip(engines) {
        *replica.engine.get_mut() = Some(engine?);
    }
    let boot_seconds = booting.elapsed().as_secs_f64();

    soak.started = Instant::now();
    soak.deadline = soak.started + options.duration;
    let soak = Arc::new(soak);
    let function = env.function.take().context("the function runs")?;
    let chaos = tokio::spawn(function_chaos(soak.clone(), function, soak.task_rng(seed, 0)));
    let mut tasks = vec![tokio::spawn(engine_chaos(soak.clone(), soak.task_rng(seed, 1)))];
    for r in 0..options.replicas {
        let task = 2 + 2 * u64::from(r);
        tasks.push(tokio::spawn(write_loop(soak.clone(), r, soak.task_rng(seed, task))));
        tasks.push(tokio::spawn(tick_loop(soak.clone(), r, soak.task_rng(seed, task + 1))));
    }
    let mut failures = Vec::new();
    for task in tasks {
        if let Err(e) = task.await.context("soak task")? {
            failures.push(format!("{e:#}"));
        }
    }
    env.function = Some(chaos.await.context("function task")??);
    let under_kills = soak.started.elapsed().as_secs_f64();

    // Every engine flushes on SIGTERM, at once; each must be acknowledged (exit 0).
    let mut engines = Vec::new();
    for replica in &soak.replicas {
        engines.push((replica.index, replica.engine.write().await.take()));
    }
    let flushing = Instant::now();
    let exits = futures::future::join_all(engines.into_iter().map(|(index, engine)| async move {
        let engine = engine.with_context(|| format!("replica {index}'s engine is not running"))?;
        let code = engine.process.terminate(Duration::from_secs(60)).await?;
        ensure!(code == Some(0), "replica {index}'s final flush: exit {code:?}, not 0");
        anyhow::Ok(())
    }))
    .await;
    failures.extend(exits.into_iter().filter_map(Result::err).map(|e| format!("{e:#}")));
    let flush_seconds = flushing.elapsed().as_secs_f64();

    // Each replica into a fresh volume: every acknowledged write must be there.
    let restoring = Instant::now();
    let fresh = |index: u32| env.volume(&format!("soak-restore-{index}"));
    let restores: Vec<anyhow::Result<usize>> =
        futures::stream::iter(soak.replicas.iter().map(|replica| {
            let (soak, volume) = (soak.clone(), fresh(replica.index));
            async move {
                let index = replica.index;
                let engine = soak
                    .launcher
                    .engine(&soak.instance, index, &volume)
                    .await
                    .with_context(|| format!("restore replica {index}"))?;
                let restored = dataset::read_all(&engine.client).await?;
                let keys = replica.keys.lock().expect("keys lock").clone();
                let checked = check_replica(index, &keys, &restored)
                    .map_err(|e| anyhow::anyhow!("replica {index} restored: {e}"));
                let code = engine.process.terminate(Duration::from_secs(60)).await?;
                ensure!(code == Some(0), "restored replica {index}: exit {code:?}, not 0");
                checked
            }
        }))
        .buffered(PARALLEL_BOOTS)
        .collect()
        .await;
    let restore_seconds = restoring.elapsed().as_secs_f64();
    let mut restored_items = 0;
    for restore in restores {
        match restore {
            Ok(items) => restored_items += items,
            Err(e) => failures.push(format!("{e:#}")),
        }
    }
    if !failures.is_empty() {
        bail!("{} failures: {}", failures.len(), failures.join("; "));
    }

    let logs = &soak.launcher.logs;
    let recovered = count_in_engine_logs(logs, first_engine, "continuing from there");
    let replaced =
        count_in_engine_logs(logs, first_engine, "moved the local database aside to restore");
    let c = &soak.counts;
    let unanswered = get(&c.unanswered_writes);
    let refused = get(&c.refused_ticks);
    let kills = get(&c.engine_kills);
    Ok(format!(
        "seed {seed}; {n} replicas, {under_kills:.0}s under kills: {writes} writes acknowledged ({items} items; {unanswered} unanswered, in flight when their engine was killed), {persists} persists acknowledged ({empty} ticks with nothing new), {refused} ticks refused while the function was down and retried ({recovered} found already committed after a lost answer); function SIGKILLed and restarted {fk} times; replica {victim}'s engine SIGKILLed and restarted on its volume {kills} times ({boots} boots retried while the function was down, {replaced} restored over the local database), the function still holding its acknowledged persists each time; {n} final flushes exit 0 in {flush_seconds:.1}s; {n} fresh volumes restored every acknowledged write ({restored_items} items) in {restore_seconds:.1}s, no restore failed; boot {boot_seconds:.1}s",
        n = options.replicas,
        writes = get(&c.writes),
        items = get(&c.items),
        persists = get(&c.persists),
        empty = get(&c.empty_ticks),
        fk = get(&c.function_kills),
        boots = get(&c.boot_retries),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_acknowledged_write_settles_the_key() {
        let mut key = KeyState::default();
        key.record(Some(1), false);
        key.record(Some(2), true);
        assert!(key.allows(Some(2)));
        assert!(!key.allows(Some(1)), "an earlier unanswered write was overwritten");
        assert!(!key.allows(None));
    }

    #[test]
    fn an_unanswered_write_allows_the_value_before_and_its_own() {
        let mut key = KeyState::default();
        key.record(Some(1), true);
        key.record(None, false);
        key.record(Some(3), false);
        assert!(key.allows(Some(1)) && key.allows(None) && key.allows(Some(3)));
        assert!(!key.allows(Some(2)), "no write left version 2");
    }

    #[test]
    fn a_missing_acknowledged_item_fails_the_check() {
        let mut keys = vec![KeyState::default(); KEYS as usize];
        keys[5].record(Some(9), true);
        keys[6].record(Some(10), true);
        let mut restored = Expected::new();
        let full = item(3, 5, 9);
        restored.insert(("p5".to_owned(), 5), full.clone());
        let err = check_replica(3, &keys, &restored).unwrap_err();
        assert!(err.starts_with("1 keys hold neither"), "{err}");
        assert!(err.contains("key 6"), "{err}");
        restored.insert(("p6".to_owned(), 6), item(3, 6, 10));
        assert_eq!(check_replica(3, &keys, &restored), Ok(2));
    }

    #[test]
    fn a_corrupt_or_foreign_item_fails_the_check() {
        let mut keys = vec![KeyState::default(); KEYS as usize];
        keys[5].record(Some(9), true);
        let mut restored = Expected::new();
        let mut changed = item(3, 5, 9);
        changed.insert("payload".to_owned(), AV::B(vec![0u8; 3].into()));
        restored.insert(("p5".to_owned(), 5), changed);
        let err = check_replica(3, &keys, &restored).unwrap_err();
        assert!(err.contains("1 items corrupt"), "{err}");
        let mut foreign = Expected::new();
        foreign.insert(("p5".to_owned(), 5), item(3, 5, 9));
        foreign.insert(("p0".to_owned(), 1000), item(3, 1000, 1));
        let err = check_replica(3, &keys, &foreign).unwrap_err();
        assert!(err.contains("1 items outside the key space"), "{err}");
    }

    #[test]
    fn a_batch_never_repeats_a_key() {
        let mut rng = StdRng::seed_from_u64(7);
        let mut version = 0;
        for _ in 0..2000 {
            let writes = Op::random(&mut rng, &mut version).writes();
            let mut keys: Vec<_> = writes.iter().map(|w| w.0).collect();
            keys.sort_unstable();
            keys.dedup();
            assert_eq!(keys.len(), writes.len());
        }
    }
}
