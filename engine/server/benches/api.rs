//! GetItem and PutItem over loopback HTTP, against two floors measured in the same run: an HTTP
//! round trip that does no work (`GET /healthz`) and the engine's own get and put.
//! `cargo bench -p weftkit-kv-server --bench api`; `WEFTKIT_BENCH_SECONDS` sets each
//! measurement's length (default 3). Prints a Markdown table.
#![allow(clippy::print_stdout)]

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use weftkit_kv::{Database, Options};
use weftkit_kv_server::server::{ServerConfig, run};

const ITEMS: u64 = 100_000;

#[derive(Clone, Copy)]
struct Measured {
    p50_us: f64,
    p99_us: f64,
    ops: f64,
}

fn summarize(histogram: &Histogram<u64>, count: u64, seconds: f64) -> Measured {
    Measured {
        p50_us: histogram.value_at_quantile(0.5) as f64 / 1000.0,
        p99_us: histogram.value_at_quantile(0.99) as f64 / 1000.0,
        ops: count as f64 / seconds,
    }
}

fn get_body(i: u64) -> String {
    format!(r#"{{"TableName":"bench","Key":{{"pk":{{"S":"item-{:06}"}}}}}}"#, i % ITEMS)
}

fn put_body(i: u64) -> String {
    format!(
        r#"{{"TableName":"bench","Item":{{"pk":{{"S":"item-{:06}"}},"n":{{"N":"{i}"}},"payload":{{"S":"{}"}}}}}}"#,
        i % ITEMS,
        "x".repeat(100)
    )
}

/// Runs `clients` concurrent request loops for `seconds`.
async fn measure(
    url: &str,
    clients: usize,
    seconds: f64,
    request: fn(&reqwest::Client, &str, u64) -> reqwest::RequestBuilder,
) -> Measured {
    let http = reqwest::Client::builder().pool_max_idle_per_host(clients).build().unwrap();
    let deadline = Instant::now() + Duration::from_secs_f64(seconds);
    let count = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let tasks: Vec<_> = (0..clients)
        .map(|c| {
            let (http, url, count) = (http.clone(), url.to_owned(), count.clone());
            tokio::spawn(async move {
                let mut histogram = Histogram::<u64>::new(3).unwrap();
                let mut i = c as u64 * 7_919;
                while Instant::now() < deadline {
                    i = i.wrapping_add(104_729);
                    let start = Instant::now();
                    let response = request(&http, &url, i).send().await.unwrap();
                    assert!(response.status().is_success());
                    response.bytes().await.unwrap();
                    histogram.record(start.elapsed().as_nanos() as u64).unwrap();
                    count.fetch_add(1, Ordering::Relaxed);
                }
                histogram
            })
        })
        .collect();
    let mut all = Histogram::<u64>::new(3).unwrap();
    for t in tasks {
        all.add(t.await.unwrap()).unwrap();
    }
    summarize(&all, count.load(Ordering::Relaxed), started.elapsed().as_secs_f64())
}

fn dynamo(
    http: &reqwest::Client,
    url: &str,
    target: &str,
    body: String,
) -> reqwest::RequestBuilder {
    http.post(url)
        .header("x-amz-target", format!("DynamoDB_20120810.{target}"))
        .header("content-type", "application/x-amz-json-1.0")
        .body(body)
}

/// The engine alone, on `threads` threads: the floor under the API.
fn engine_floor(threads: usize, seconds: f64, put: bool) -> Measured {
    let dir = tempfile::tempdir().unwrap();
    let db = Database::open(dir.path(), Options::default()).unwrap();
    db.create_family("bench", Default::default()).unwrap();
    for i in 0..ITEMS {
        db.put("bench", format!("item-{i:06}").into_bytes(), vec![b'x'; 150]).unwrap();
    }
    let deadline = Instant::now() + Duration::from_secs_f64(seconds);
    let count = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let handles: Vec<_> = (0..threads)
        .map(|t| {
            let (db, count) = (db.clone(), count.clone());
            std::thread::spawn(move || {
                let mut histogram = Histogram::<u64>::new(3).unwrap();
                let mut i = t as u64 * 7_919;
                while Instant::now() < deadline {
                    i = i.wrapping_add(104_729);
                    let key = format!("item-{:06}", i % ITEMS).into_bytes();
                    let start = Instant::now();
                    if put {
                        db.put("bench", key, vec![b'y'; 150]).unwrap();
                    } else {
                        assert!(db.get("bench", &key).unwrap().is_some());
                    }
                    histogram.record(start.elapsed().as_nanos() as u64).unwrap();
                    count.fetch_add(1, Ordering::Relaxed);
                }
                histogram
            })
        })
        .collect();
    let mut all = Histogram::<u64>::new(3).unwrap();
    for h in handles {
        all.add(h.join().unwrap()).unwrap();
    }
    summarize(&all, count.load(Ordering::Relaxed), started.elapsed().as_secs_f64())
}

#[tokio::main]
async fn main() {
    let seconds: f64 =
        std::env::var("WEFTKIT_BENCH_SECONDS").ok().and_then(|s| s.parse().ok()).unwrap_or(3.0);
    let dir = tempfile::tempdir().unwrap();
    let config = ServerConfig {
        listen: "127.0.0.1:0".parse().unwrap(),
        data: dir.path().to_path_buf(),
        mode: weftkit_kv::Mode::Lsm,
        sync: weftkit_kv::SyncMode::Buffered,
        region: "us-east-1".into(),
        credentials: Vec::new(),
        persist: None,
        limits: bounded_serve::Limits::default(),
    };
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(run(config, listener, std::future::pending()));
    let http = reqwest::Client::new();
    for _ in 0..200 {
        if http.get(format!("{url}/ready")).send().await.is_ok_and(|r| r.status().is_success()) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let create = r#"{"TableName":"bench","KeySchema":[{"AttributeName":"pk","KeyType":"HASH"}],"AttributeDefinitions":[{"AttributeName":"pk","AttributeType":"S"}],"BillingMode":"PAY_PER_REQUEST"}"#;
    assert!(
        dynamo(&http, &url, "CreateTable", create.into())
            .send()
            .await
            .unwrap()
            .status()
            .is_success()
    );
    eprintln!("loading {ITEMS} items ...");
    let loads: Vec<_> = (0..8u64)
        .map(|c| {
            let (http, url) = (http.clone(), url.clone());
            tokio::spawn(async move {
                for i in (c..ITEMS).step_by(8) {
                    let response =
                        dynamo(&http, &url, "PutItem", put_body(i)).send().await.unwrap();
                    assert!(response.status().is_success());
                }
            })
        })
        .collect();
    for l in loads {
        l.await.unwrap();
    }

    println!("| operation | clients | p50 | p99 | ops/s | p50 vs HTTP floor | p50 vs engine |");
    println!("|---|---|---|---|---|---|---|");
    for clients in [1usize, 16] {
        let floor =
            measure(&url, clients, seconds, |http, url, _| http.get(format!("{url}/healthz")))
                .await;
        let engine_get = engine_floor(clients.min(2), seconds, false);
        let engine_put = engine_floor(clients.min(2), seconds, true);
        let get = measure(&url, clients, seconds, |http, url, i| {
            dynamo(http, url, "GetItem", get_body(i))
        })
        .await;
        let put = measure(&url, clients, seconds, |http, url, i| {
            dynamo(http, url, "PutItem", put_body(i))
        })
        .await;
        let row = |name: &str, m: Measured, engine: Option<Measured>| {
            println!(
                "| {name} | {clients} | {:.0} µs | {:.0} µs | {:.0} | {} | {} |",
                m.p50_us,
                m.p99_us,
                m.ops,
                if name.starts_with("HTTP") {
                    "1.00x".into()
                } else {
                    format!("{:.2}x", m.p50_us / floor.p50_us)
                },
                engine.map_or("".into(), |e| format!(
                    "{:.0}x ({:.1} µs)",
                    m.p50_us / e.p50_us,
                    e.p50_us
                )),
            );
        };
        row("HTTP floor (GET /healthz)", floor, None);
        row("GetItem", get, Some(engine_get));
        row("PutItem", put, Some(engine_put));
    }
}
