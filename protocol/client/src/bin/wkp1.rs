//! `wkp1`: the WKP-1 client on the command line.
//!
//! ```text
//! wkp1 keygen [--key-id ID]                        print a keys-file line with a fresh secret
//! wkp1 pack --snapshot N | --delta B..L IN OUT     wrap a payload file in a segment
//! wkp1 unpack SEGMENT OUT                          verify a segment and write its payload
//! wkp1 plan    [--claim]                           print the restore plan
//! wkp1 restore [--claim] --out DIR                 download and verify every segment
//! wkp1 persist --generation G SEGMENT              persist one segment
//! wkp1 flush   --generation G [SEGMENT]            flush (and close the generation)
//! wkp1 demo                                        persist a sample state, restore it, compare
//! ```
//!
//! The commands that talk to a function take `--url`, `--subtree ENGINE/INSTANCE/REPLICA`,
//! `--key-id` and `--secret-file` (or the `WKP1_*` variables named in `--help`).

use std::io::{BufReader, BufWriter, Read, Write};
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{Context, bail};
use base64::Engine as _;
use clap::{Args, Parser, Subcommand};
use rand::RngCore;
use sha2::{Digest, Sha256};
use wkp1_client::{Client, ClientConfig, SegmentFile};
use wkp1_protocol::segment::{SegmentHeader, SegmentReader, SegmentWriter};
use wkp1_protocol::{KeyId, Subtree};

#[derive(Debug, Parser)]
#[command(name = "wkp1", version, about = "WKP-1 client: keys, segments, restore, persist, flush")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Print `KEY_ID SECRET` with a fresh 32-byte secret, for a keys file.
    Keygen {
        #[arg(long, default_value = "k1")]
        key_id: String,
    },
    /// Wrap a payload file in a segment.
    Pack {
        /// A snapshot of state N.
        #[arg(long, conflicts_with = "delta")]
        snapshot: Option<u64>,
        /// A delta from state B to state L, written B..L.
        #[arg(long)]
        delta: Option<String>,
        input: PathBuf,
        output: PathBuf,
    },
    /// Verify a segment and write its payload.
    Unpack { segment: PathBuf, output: PathBuf },
    /// Print the restore plan as JSON.
    Plan {
        #[command(flatten)]
        remote: Remote,
        #[arg(long)]
        claim: bool,
    },
    /// Download and verify every segment of the plan into a directory.
    Restore {
        #[command(flatten)]
        remote: Remote,
        #[arg(long)]
        claim: bool,
        #[arg(long)]
        out: PathBuf,
    },
    /// Persist one segment.
    Persist {
        #[command(flatten)]
        remote: Remote,
        #[arg(long)]
        generation: u64,
        segment: PathBuf,
    },
    /// Flush: persist the segment if given, then close the generation.
    Flush {
        #[command(flatten)]
        remote: Remote,
        #[arg(long)]
        generation: u64,
        segment: Option<PathBuf>,
    },
    /// Persist a sample state (a snapshot and deltas), restore it elsewhere, and compare.
    Demo {
        #[command(flatten)]
        remote: Remote,
        /// Sample records in the snapshot.
        #[arg(long, default_value_t = 200_000)]
        records: u64,
        /// Working directory (default: a new temporary one).
        #[arg(long)]
        dir: Option<PathBuf>,
    },
}

/// Where the function is and how to sign for it.
#[derive(Debug, Args)]
struct Remote {
    /// The function's base URL.
    #[arg(long, env = "WKP1_URL")]
    url: url::Url,
    /// ENGINE/INSTANCE/REPLICA.
    #[arg(long, env = "WKP1_SUBTREE", default_value = "kv/demo/replica-0")]
    subtree: String,
    #[arg(long, env = "WKP1_KEY_ID")]
    key_id: String,
    /// File holding the base64 secret, or a keys file whose line for --key-id is used.
    #[arg(long, env = "WKP1_SECRET_FILE")]
    secret_file: PathBuf,
}

impl Remote {
    fn client(&self) -> anyhow::Result<Client> {
        let parts: Vec<&str> = self.subtree.split('/').collect();
        let [engine, instance, replica] = parts[..] else {
            bail!("--subtree must be ENGINE/INSTANCE/REPLICA, not {:?}", self.subtree);
        };
        let subtree = Subtree::new(engine, instance, replica)?;
        let key_id = KeyId::new(&self.key_id)?;
        let text = std::fs::read_to_string(&self.secret_file)
            .with_context(|| format!("read {}", self.secret_file.display()))?;
        let secret = wkp1_protocol::signing::secret_from_text(&text, &key_id)
            .with_context(|| format!("secret file {}", self.secret_file.display()))?;
        Ok(Client::new(ClientConfig::new(self.url.clone(), subtree, key_id, secret))?)
    }
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    match run(Cli::parse().command).await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("wkp1: {err:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

#[allow(clippy::print_stdout)]
async fn run(command: Command) -> anyhow::Result<()> {
    match command {
        Command::Keygen { key_id } => {
            let key_id = KeyId::new(&key_id)?;
            let mut bytes = vec![0u8; 32];
            rand::rng().fill_bytes(&mut bytes);
            let secret = base64::engine::general_purpose::STANDARD.encode(&bytes);
            println!("{key_id} {secret}");
        }
        Command::Pack { snapshot, delta, input, output } => {
            let header = match (snapshot, delta) {
                (Some(last), None) => SegmentHeader::snapshot(last),
                (None, Some(range)) => {
                    let (base, last) = range.split_once("..").context("--delta is BASE..LAST")?;
                    SegmentHeader::delta(base.parse()?, last.parse()?)
                }
                _ => bail!("pass --snapshot N or --delta BASE..LAST"),
            };
            let written = pack(header, &input, &output)?;
            println!(
                "{} {} bytes ({} before compression)",
                written.id_hex(),
                written.size,
                written.payload_len
            );
        }
        Command::Unpack { segment, output } => {
            let (header, bytes) = unpack(&segment, &output)?;
            println!("{header:?}: {bytes} payload bytes");
        }
        Command::Plan { remote, claim } => {
            let plan = remote.client()?.plan(claim).await?;
            println!("{}", serde_json::to_string_pretty(&plan)?);
        }
        Command::Restore { remote, claim, out } => {
            let restored = remote.client()?.restore(claim, &out).await?;
            for s in &restored.segments {
                println!("{}", s.path.display());
            }
            eprintln!(
                "restored state {} in {} segments, {} bytes, generation {}",
                restored.plan.last_seq,
                restored.segments.len(),
                restored.bytes(),
                restored.plan.generation
            );
        }
        Command::Persist { remote, generation, segment } => {
            let segment = SegmentFile::open(&segment).await?;
            let response = remote.client()?.persist(generation, &segment).await?;
            println!("{}", serde_json::to_string_pretty(&response)?);
        }
        Command::Flush { remote, generation, segment } => {
            let segment = match segment {
                Some(path) => Some(SegmentFile::open(&path).await?),
                None => None,
            };
            let response = remote.client()?.flush(generation, segment.as_ref()).await?;
            println!("{}", serde_json::to_string_pretty(&response)?);
        }
        Command::Demo { remote, records, dir } => demo(&remote, records, dir).await?,
    }
    Ok(())
}

fn pack(
    header: SegmentHeader,
    input: &Path,
    output: &Path,
) -> anyhow::Result<wkp1_protocol::segment::WrittenSegment> {
    let mut reader = BufReader::new(
        std::fs::File::open(input).with_context(|| format!("open {}", input.display()))?,
    );
    let file =
        std::fs::File::create(output).with_context(|| format!("create {}", output.display()))?;
    let mut writer = SegmentWriter::new(BufWriter::new(file), header)?;
    std::io::copy(&mut reader, &mut writer)?;
    Ok(writer.finish()?)
}

/// Verifies a segment and writes its payload; the output is removed again if it fails.
fn unpack(segment: &Path, output: &Path) -> anyhow::Result<(SegmentHeader, u64)> {
    let input = BufReader::new(
        std::fs::File::open(segment).with_context(|| format!("open {}", segment.display()))?,
    );
    let mut reader = SegmentReader::new(input)?;
    let header = reader.header();
    let mut out = BufWriter::new(std::fs::File::create(output)?);
    let copied = std::io::copy(&mut reader, &mut out);
    let verified = reader.finish();
    if let Err(err) = verified.map_err(anyhow::Error::from).and(copied.map_err(anyhow::Error::from))
    {
        drop(out);
        let _ = std::fs::remove_file(output);
        return Err(err.context(format!("unpack {}", segment.display())));
    }
    out.flush()?;
    Ok((header, reader_len(output)?))
}

fn reader_len(path: &Path) -> anyhow::Result<u64> {
    Ok(std::fs::metadata(path)?.len())
}

/// Sample records shaped like a key-value change log: `put key value` lines.
fn write_records(path: &Path, from: u64, count: u64, salt: u64) -> anyhow::Result<()> {
    let mut out = BufWriter::new(std::fs::File::create(path)?);
    for n in from..from + count {
        let value = Sha256::digest((n ^ salt).to_le_bytes());
        writeln!(
            out,
            "put orders/{n:010} {{\"customer\":{},\"total_cents\":{},\"token\":\"{}\"}}",
            n % 9973,
            n * 37 % 100_000,
            hex::encode(&value[..12])
        )?;
    }
    out.flush()?;
    Ok(())
}

fn sha256_file(path: &Path) -> anyhow::Result<String> {
    let mut file = std::fs::File::open(path)?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = file.read(&mut buf)?;
        if n == 0 {
            return Ok(hex::encode(hasher.finalize()));
        }
        hasher.update(&buf[..n]);
    }
}

#[allow(clippy::print_stdout)]
async fn demo(remote: &Remote, records: u64, dir: Option<PathBuf>) -> anyhow::Result<()> {
    let temp;
    let dir = match dir {
        Some(dir) => dir,
        None => {
            temp = std::env::temp_dir().join(format!("wkp1-demo-{}", std::process::id()));
            temp
        }
    };
    let (work, restored_dir) = (dir.join("engine"), dir.join("restored"));
    std::fs::create_dir_all(&work)?;
    let client = remote.client()?;

    // Boot: claim a generation (the volume is empty, so there is nothing to restore yet).
    let started = Instant::now();
    let plan = client.plan(true).await?;
    let generation = plan.generation;
    let base = plan.last_seq;
    println!("claimed generation {generation} of {} (state {base})", client.config().subtree);

    // The state: a snapshot, two scheduled deltas, and a final delta at shutdown.
    let delta = records / 20;
    let steps = [
        ("snapshot", SegmentHeader::snapshot(base + records), base, records),
        (
            "delta (tick 1)",
            SegmentHeader::delta(base + records, base + records + delta),
            base + records,
            delta,
        ),
        (
            "delta (tick 2)",
            SegmentHeader::delta(base + records + delta, base + records + 2 * delta),
            base + records + delta,
            delta,
        ),
        (
            "delta (SIGTERM)",
            SegmentHeader::delta(base + records + 2 * delta, base + records + 3 * delta),
            base + records + 2 * delta,
            delta,
        ),
    ];
    let (mut raw_bytes, mut sent_bytes, mut expected) = (0u64, 0u64, Vec::new());
    let persisting = Instant::now();
    for (i, (label, header, from, count)) in steps.iter().enumerate() {
        let payload = work.join(format!("{i}.payload"));
        let segment = work.join(format!("{i}.wkp"));
        write_records(&payload, *from, *count, generation)?;
        let written = pack(*header, &payload, &segment)?;
        raw_bytes += written.payload_len;
        sent_bytes += written.size;
        expected.push(sha256_file(&payload)?);
        let file = SegmentFile::open(&segment).await?;
        let response = if i + 1 == steps.len() {
            client.flush(generation, Some(&file)).await?
        } else {
            client.persist(generation, &file).await?
        };
        println!(
            "  {label:<16} {:>9} records  {:>11} bytes -> {:>10} compressed  {:?}  (manifest v{})",
            count, written.payload_len, written.size, response.outcome, response.manifest_version
        );
    }
    let persist_time = persisting.elapsed();

    // A new container with an empty volume: restore, verify, unpack.
    let restoring = Instant::now();
    let restored = client.restore(true, &restored_dir).await?;
    let restore_time = restoring.elapsed();
    let mut actual = Vec::new();
    for (i, segment) in restored.segments.iter().enumerate() {
        let payload = restored_dir.join(format!("{i}.payload"));
        unpack(&segment.path, &payload)?;
        actual.push(sha256_file(&payload)?);
    }
    if actual != expected {
        bail!("restored payloads differ from what was persisted");
    }
    let total_records = records + 3 * delta;
    println!(
        "restored state {} as generation {} from {} verified segments: {} records identical",
        restored.plan.last_seq,
        restored.plan.generation,
        restored.segments.len(),
        total_records
    );
    println!(
        "summary: {} raw bytes, {} sent ({:.1}x compression), persist {:.2?}, restore {:.2?}, total {:.2?}",
        raw_bytes,
        sent_bytes,
        raw_bytes as f64 / sent_bytes.max(1) as f64,
        persist_time,
        restore_time,
        started.elapsed()
    );
    println!("working files: {}", dir.display());
    Ok(())
}
