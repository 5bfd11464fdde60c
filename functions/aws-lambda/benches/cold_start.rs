//! Cold start of the real `wkp1-lambda` binary behind the local Lambda runtime: process start
//! to the end of init (its first poll for work), and to the first answered request (a restore
//! plan, which reads S3), against the same request on a warm instance, measured in the same
//! run. Needs an S3 server: run it through `scripts/bench.sh`, or set `WKP1_TEST_S3_MOTO`.
//! `WKP1_BENCH_COLD_STARTS` sets the number of cold starts (default 10), `WKP1_BENCH_BINARY`
//! another binary to start (the packaged `bootstrap`). Prints Markdown.
#![allow(clippy::print_stdout, unreachable_pub)]

#[path = "../tests/common/mod.rs"]
mod common;

use std::time::{Duration, Instant};

use wkp1_testkit as testing;
use wkp1_testkit::lambda::LocalLambda;

fn median(mut values: Vec<Duration>) -> Duration {
    values.sort();
    values[values.len() / 2]
}

fn ms(d: Duration) -> String {
    format!("{:.1} ms", d.as_secs_f64() * 1000.0)
}

#[tokio::main]
async fn main() {
    // moto first: s3s-fs takes tens of milliseconds per listing, which would hide the function.
    let s3 = ["moto", "s3s"]
        .into_iter()
        .find(|name| std::env::var(format!("WKP1_TEST_S3_{}", name.to_uppercase())).is_ok())
        .and_then(common::S3::server)
        .expect("an S3 server: run scripts/bench.sh, or set WKP1_TEST_S3_MOTO");
    let runs: usize =
        std::env::var("WKP1_BENCH_COLD_STARTS").ok().and_then(|v| v.parse().ok()).unwrap_or(10);
    // WKP1_BENCH_BINARY measures another build, e.g. the packaged bootstrap.
    let binary = std::env::var_os("WKP1_BENCH_BINARY")
        .map_or_else(|| env!("CARGO_BIN_EXE_wkp1-lambda").into(), std::path::PathBuf::from);
    let binary = binary.as_path();
    let env = s3.lambda_env(&[("WKP1_LOG_FORMAT", "json")]);
    let (mut inits, mut firsts, mut warms) = (Vec::new(), Vec::new(), Vec::new());
    for run in 0..runs {
        let started = Instant::now();
        let lambda = LocalLambda::start(binary, &env, 1).await.unwrap();
        inits.push(started.elapsed());
        let client = common::client(&lambda.url, &format!("cold-{run}"), testing::KEY_ID);
        client.plan(false).await.unwrap();
        firsts.push(started.elapsed());
        for _ in 0..20 {
            let at = Instant::now();
            client.plan(false).await.unwrap();
            warms.push(at.elapsed());
        }
    }
    let warm = median(warms);
    let (init, first) = (median(inits), median(firsts));
    println!("| measure (median of {runs}, against {}) | time | vs warm request |", s3.name);
    println!("|---|---|---|");
    println!(
        "| init: process start to first poll for work | {} | {:.1}x |",
        ms(init),
        init.as_secs_f64() / warm.as_secs_f64()
    );
    println!(
        "| cold start: process start to first answered restore plan | {} | {:.1}x |",
        ms(first),
        first.as_secs_f64() / warm.as_secs_f64()
    );
    println!("| warm restore plan (baseline) | {} | 1.0x |", ms(warm));
    println!("| binary size | {:.1} MB | |", std::fs::metadata(binary).unwrap().len() as f64 / 1e6);
}
