//! `wkp1-conformance`: see `wkp1-conformance --help`.

use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use clap::{Parser, Subcommand, ValueEnum};
use rand::Rng;
use wkp1_conformance::{RunOptions, Target, checks, run, select};
use wkp1_protocol::signing::secret_from_text;
use wkp1_protocol::{Identifier, KeyId};

/// Conformance kit for WKP-1 functions.
#[derive(Debug, Parser)]
#[command(name = "wkp1-conformance", version)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the checks against a function.
    Run(Box<RunArgs>),
    /// List the checks with their requirement ids.
    List {
        #[arg(long, value_enum, default_value_t = Format::Human)]
        format: Format,
    },
    /// The test vectors: check your signer, verifier and segment reader before your endpoint.
    #[command(subcommand)]
    Vectors(VectorsCommand),
    /// End to end: an object store, the self-hosted function and the weftkit-kv engine as real
    /// processes, through restore, persist, flush, crashes, a rolling deploy and an outage.
    E2e(E2eArgs),
}

#[derive(Debug, Subcommand)]
enum VectorsCommand {
    /// Write signing.json, segments.json and their JSON Schemas into a directory.
    Export {
        /// The directory (created if missing).
        dir: PathBuf,
    },
    /// Run your programs on every vector: each reads one case as JSON on standard input and
    /// writes its answer as JSON on standard output (see the kit's README).
    Check {
        /// Shell command that signs: reads {key_id, secret_base64, request}, writes
        /// {canonical_request, signature}.
        #[arg(long)]
        sign: Option<String>,
        /// Shell command that verifies: reads {keys, now, request}, writes {error}.
        #[arg(long)]
        verify: Option<String>,
        /// Shell command that reads segments: reads {segment_hex}, writes {error, header,
        /// payload_hex, segment_id}.
        #[arg(long)]
        segment: Option<String>,
        /// Your segment reader decompresses, so it must also find corrupt payloads.
        #[arg(long)]
        decompresses: bool,
    },
    /// One of the three programs, on this kit's own implementation (an example of the contract).
    Adapter {
        #[arg(value_enum)]
        kind: wkp1_conformance::vectors::AdapterKind,
    },
}

#[derive(Debug, clap::Args)]
struct E2eArgs {
    /// The weftkit-kv binary.
    #[arg(long)]
    engine: PathBuf,
    /// The wkp1-selfhosted binary.
    #[arg(long)]
    function: PathBuf,
    /// An s3s-fs binary: store through an S3 server it starts (default: a local directory).
    #[arg(long)]
    s3_server: Option<PathBuf>,
    /// Or store through an S3-compatible server already running at this URL (MinIO, moto), in
    /// a fresh prefix of `--s3-bucket`; credentials from AWS_ACCESS_KEY_ID and
    /// AWS_SECRET_ACCESS_KEY.
    #[arg(long, conflicts_with = "s3_server")]
    s3_endpoint: Option<String>,
    /// The bucket for `--s3-endpoint`; it must exist.
    #[arg(long, default_value = "e2e", requires = "s3_endpoint")]
    s3_bucket: String,
    /// Where volumes, the store and logs go (default: a temporary directory, kept on failure).
    #[arg(long)]
    work: Option<PathBuf>,
    /// Items in the first dataset.
    #[arg(long, default_value_t = 600)]
    items: i64,
    /// Run only these scenarios (comma-separated).
    #[arg(long, value_delimiter = ',')]
    only: Vec<String>,
    /// Engine replicas writing at once in the soak.
    #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(u32).range(1..=256))]
    soak_replicas: u32,
    /// Seconds the soak writes under kills (start, final flushes and restores come on top).
    #[arg(long, default_value_t = 20, value_parser = clap::value_parser!(u64).range(5..=86_400))]
    soak_seconds: u64,
    /// Seed of the soak's random choices (default: a random one, printed).
    #[arg(long)]
    seed: Option<u64>,
    #[arg(long, value_enum, default_value_t = Format::Human)]
    format: Format,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Format {
    Human,
    Json,
    Junit,
}

#[derive(Debug, clap::Args)]
struct RunArgs {
    /// The function's base URL (with its path prefix, if any).
    #[arg(long, env = "WKP1_URL")]
    url: url::Url,
    #[arg(long, env = "WKP1_KEY_ID")]
    key_id: String,
    /// A base64 secret, or a keys file with a line for --key-id.
    #[arg(long, env = "WKP1_SECRET_FILE")]
    secret_file: PathBuf,
    /// A second key the function accepts, to check rotation.
    #[arg(long, requires = "second_secret_file")]
    second_key_id: Option<String>,
    #[arg(long)]
    second_secret_file: Option<PathBuf>,
    /// Engine identifier the run writes under.
    #[arg(long, default_value = "conformance")]
    engine: String,
    /// Instance prefix; a random suffix makes every run's subtree fresh.
    #[arg(long, default_value = "run")]
    instance: String,
    /// Run only these groups or check ids (comma-separated).
    #[arg(long, value_delimiter = ',')]
    only: Vec<String>,
    #[arg(long, value_enum, default_value_t = Format::Human)]
    format: Format,
    /// Write the report here instead of standard output.
    #[arg(long)]
    out: Option<PathBuf>,
    /// Seconds any single request may take.
    #[arg(long, default_value_t = 30)]
    request_timeout: u64,
    /// Seconds any single check may take.
    #[arg(long, default_value_t = 180)]
    check_timeout: u64,
    /// Checks running at once.
    #[arg(long, default_value_t = 4)]
    concurrency: usize,
    /// Largest state, in bytes, the large-segment checks may send.
    #[arg(long, default_value_t = 64 << 20)]
    large_state_max: u64,
}

#[tokio::main]
async fn main() -> ExitCode {
    match Cli::parse().command {
        Command::List { format } => {
            list(format);
            ExitCode::SUCCESS
        }
        Command::Vectors(command) => match vectors_command(command) {
            Ok(true) => ExitCode::SUCCESS,
            Ok(false) => ExitCode::from(1),
            Err(err) => {
                eprintln!("wkp1-conformance vectors: {err:#}");
                ExitCode::from(2)
            }
        },
        Command::E2e(args) => match e2e_command(args).await {
            Ok(true) => ExitCode::SUCCESS,
            Ok(false) => ExitCode::from(1),
            Err(err) => {
                eprintln!("wkp1-conformance e2e: {err:#}");
                ExitCode::from(2)
            }
        },
        Command::Run(args) => match run_command(*args).await {
            Ok(true) => ExitCode::SUCCESS,
            Ok(false) => ExitCode::from(1),
            Err(err) => {
                eprintln!("wkp1-conformance: {err:#}");
                ExitCode::from(2)
            }
        },
    }
}

/// `vectors export|check|adapter`; `Ok(false)` when a program disagreed with a vector.
fn vectors_command(command: VectorsCommand) -> anyhow::Result<bool> {
    use std::io::Write;
    use wkp1_conformance::vectors;
    let mut out = std::io::stdout().lock();
    match command {
        VectorsCommand::Export { dir } => {
            for path in vectors::export(&dir)? {
                writeln!(out, "wrote {path}")?;
            }
            Ok(true)
        }
        VectorsCommand::Adapter { kind } => {
            vectors::adapter(kind, std::io::stdin().lock(), out)?;
            Ok(true)
        }
        VectorsCommand::Check { sign, verify, segment, decompresses } => {
            let programs = vectors::Programs { sign, verify, segment, decompresses };
            let results = vectors::check(&programs)?;
            let failed = results.iter().filter(|r| r.failure.is_some()).count();
            for result in &results {
                match &result.failure {
                    None => writeln!(out, " PASS  {}", result.case)?,
                    Some(why) => writeln!(out, " FAIL  {}\n         {why}", result.case)?,
                }
            }
            let verdict =
                if failed == 0 { "AGREES WITH THE VECTORS" } else { "DISAGREES WITH THE VECTORS" };
            writeln!(out, "\n{} passed, {failed} failed: {verdict}", results.len() - failed)?;
            Ok(failed == 0)
        }
    }
}

/// Prints the catalogue; a closed pipe (`| head`) ends it quietly.
fn list(format: Format) {
    use std::io::Write;
    let all = checks::all();
    let mut out = std::io::stdout().lock();
    let _ = if format == Format::Json {
        let rows: Vec<_> = all
            .iter()
            .map(|c| serde_json::json!({"id": c.id, "group": c.group, "level": c.level, "requirements": c.requirements, "why": c.why}))
            .collect();
        writeln!(out, "{}", serde_json::to_string_pretty(&rows).expect("json"))
    } else {
        all.iter().try_for_each(|c| {
            writeln!(out, "{:<6}  {:<56} {}", c.level.to_string(), c.id, c.requirements.join(" "))
        })
    };
}

/// Runs the checks; `Ok(false)` when a MUST check failed.
#[allow(clippy::print_stdout)]
async fn run_command(args: RunArgs) -> anyhow::Result<bool> {
    let read_secret = |path: &PathBuf, key_id: &KeyId| {
        let text =
            std::fs::read_to_string(path).with_context(|| format!("read {}", path.display()))?;
        secret_from_text(&text, key_id).with_context(|| format!("secret file {}", path.display()))
    };
    let key_id = KeyId::new(&args.key_id).context("--key-id")?;
    let secret = read_secret(&args.secret_file, &key_id)?;
    let second_key = match (&args.second_key_id, &args.second_secret_file) {
        (Some(id), Some(path)) => {
            let id = KeyId::new(id).context("--second-key-id")?;
            let secret = read_secret(path, &id)?;
            Some((id, secret))
        }
        _ => None,
    };
    let suffix = format!("{:08x}", rand::rng().random::<u32>());
    let instance = Identifier::new(format!("{}-{suffix}", args.instance)).context("--instance")?;
    let target = Target {
        base_url: args.url.clone(),
        key_id,
        secret,
        second_key,
        engine: Identifier::new(args.engine.clone()).context("--engine")?,
        instance,
        request_timeout: Duration::from_secs(args.request_timeout),
        large_state_max: args.large_state_max,
    };
    let selected = select(checks::all(), &args.only).map_err(anyhow::Error::msg)?;
    let options = RunOptions {
        only: args.only.clone(),
        concurrency: args.concurrency,
        check_timeout: Duration::from_secs(args.check_timeout),
        progress: args.format == Format::Human && std::io::stderr().is_terminal(),
    };
    let report = run(target, selected, &options).await;
    let text = match args.format {
        Format::Human => report.to_human(),
        Format::Json => report.to_json(),
        Format::Junit => report.to_junit(),
    };
    match &args.out {
        Some(path) => {
            std::fs::write(path, &text).with_context(|| format!("write {}", path.display()))?;
            eprintln!(
                "{} passed, {} failed ({} MUST), {} skipped; report in {}",
                report.summary.passed,
                report.summary.failed,
                report.summary.must_failed,
                report.summary.skipped,
                path.display()
            );
        }
        None => print!("{text}"),
    }
    Ok(report.conformant())
}

/// Runs the end-to-end scenarios; `Ok(false)` when one failed.
#[cfg(feature = "e2e")]
#[allow(clippy::print_stdout)]
async fn e2e_command(args: E2eArgs) -> anyhow::Result<bool> {
    use wkp1_conformance::e2e;
    let temporary = match &args.work {
        Some(_) => None,
        None => Some(tempfile::Builder::new().prefix("wkp1-e2e-").tempdir()?),
    };
    let work = args
        .work
        .clone()
        .unwrap_or_else(|| temporary.as_ref().expect("made above").path().to_path_buf());
    let options = e2e::E2eOptions {
        engine: args.engine,
        function: args.function,
        s3_server: args.s3_server,
        s3_endpoint: args.s3_endpoint.map(|endpoint| (endpoint, args.s3_bucket)),
        work: work.clone(),
        items: args.items,
        only: args.only,
        soak: e2e::SoakOptions {
            replicas: args.soak_replicas,
            duration: Duration::from_secs(args.soak_seconds),
            seed: args.seed,
        },
    };
    let store = match (&options.s3_server, &options.s3_endpoint) {
        (Some(_), _) => "an S3 server (s3s-fs)".to_owned(),
        (None, Some((endpoint, bucket))) => {
            format!("the S3 server at {endpoint} (bucket {bucket})")
        }
        (None, None) => "a local directory".to_owned(),
    };
    if args.format == Format::Human {
        eprintln!("wkp1-conformance e2e: engine, function and {store} in {}", work.display());
    }
    let reports = e2e::run(options).await?;
    let passed = reports.iter().all(|r| r.passed);
    match args.format {
        Format::Json => println!("{}", serde_json::to_string_pretty(&reports)?),
        _ => {
            for r in &reports {
                println!(
                    "{} {:<16} {:>6.1}s  {}",
                    if r.passed { "PASS" } else { "FAIL" },
                    r.name,
                    r.seconds,
                    r.detail
                );
            }
            println!(
                "{} of {} scenarios passed",
                reports.iter().filter(|r| r.passed).count(),
                reports.len()
            );
        }
    }
    if !passed && let Some(dir) = temporary {
        let kept = dir.keep();
        eprintln!("logs and volumes kept in {}", kept.display());
    }
    Ok(passed)
}

#[cfg(not(feature = "e2e"))]
async fn e2e_command(_args: E2eArgs) -> anyhow::Result<bool> {
    anyhow::bail!("this build has no end-to-end harness: install with `--features e2e`")
}
