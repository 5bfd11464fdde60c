//! WKP-1 persistence of the server against the real self-hosted function: restore on boot,
//! ticks, the final flush, fencing, and a function that goes away.

mod common;

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::error::ProvideErrorMetadata;
use aws_sdk_dynamodb::types::{AttributeValue as AV, BillingMode};
use axum::response::IntoResponse;
use common::Engine;
use weftkit_kv_server::persist::PersistConfig;
use weftkit_kv_server::server::Exit;
use wkp1_testkit::{self as testing, Backend, Server};

fn persist_config(function: &Server, extra: &[(&str, &str)]) -> PersistConfig {
    let mut vars: HashMap<String, String> = HashMap::from([
        ("WEFTKIT_PERSIST_MODE".into(), "serverless".into()),
        ("WEFTKIT_PERSIST_URL".into(), function.url.to_string()),
        ("WEFTKIT_PERSIST_KEY_ID".into(), testing::KEY_ID.into()),
        ("WEFTKIT_PERSIST_SECRET".into(), testing::secret().to_base64()),
        ("WEFTKIT_PERSIST_INSTANCE".into(), "orders".into()),
        ("WEFTKIT_PERSIST_RETRY_FOR".into(), "1s".into()),
    ]);
    for (k, v) in extra {
        vars.insert(k.to_string(), v.to_string());
    }
    PersistConfig::from_vars(|name| vars.get(name).cloned()).unwrap().unwrap()
}

async fn engine(function: &Server, volume: &Path, extra: &[(&str, &str)]) -> Engine {
    let config = common::with_persist(common::config(volume), persist_config(function, extra));
    Engine::start_with(config).await
}

async fn create_table(client: &Client) {
    common::hash_key_table(client, "items", "pk")
        .billing_mode(BillingMode::PayPerRequest)
        .send()
        .await
        .unwrap();
}

async fn write(client: &Client, range: std::ops::Range<u32>) {
    for i in range {
        client
            .put_item()
            .table_name("items")
            .item("pk", AV::S(format!("k{i:05}")))
            .item("v", AV::N(i.to_string()))
            .send()
            .await
            .unwrap();
    }
}

/// Every item's number, sorted.
async fn read_all(client: &Client) -> Vec<u32> {
    let (mut out, mut start) = (Vec::new(), None);
    loop {
        let page =
            client.scan().table_name("items").set_exclusive_start_key(start).send().await.unwrap();
        out.extend(page.items().iter().map(|i| i["v"].as_n().unwrap().parse::<u32>().unwrap()));
        start = page.last_evaluated_key;
        if start.is_none() {
            break;
        }
    }
    out.sort_unstable();
    out
}

fn all(range: std::ops::Range<u32>) -> Vec<u32> {
    range.collect()
}

#[tokio::test]
async fn state_survives_a_fresh_volume_through_tick_and_flush() {
    let function = Server::start(Backend::file().unwrap()).await;
    let first = tempfile::tempdir().unwrap();
    let engine1 = engine(&function, first.path(), &[]).await;
    let client = engine1.client();
    create_table(&client).await;
    write(&client, 0..50).await;
    let pushed = engine1.admin(reqwest::Method::POST).await;
    assert_eq!(pushed["pushed"]["kind"], "delta", "{pushed}");
    assert_eq!(pushed["pushed"]["first_seq"], 1);
    write(&client, 50..80).await;
    let status = engine1.admin(reqwest::Method::GET).await;
    assert_eq!(status["generation"], 1);
    assert!(status["last_seq"].as_u64().unwrap() > status["persisted_seq"].as_u64().unwrap());
    assert_eq!(engine1.stop().await.unwrap(), Exit::Clean, "the final flush pushes the rest");

    let second = tempfile::tempdir().unwrap();
    let engine2 = engine(&function, second.path(), &[]).await;
    assert_eq!(read_all(&engine2.client()).await, all(0..80), "every item is back");
    let status = engine2.admin(reqwest::Method::GET).await;
    assert_eq!(status["generation"], 2);
    assert!(second.path().join("db").exists());
    engine2.stop().await.unwrap();
}

#[tokio::test]
async fn a_restart_on_the_same_volume_continues_with_deltas() {
    let function = Server::start(Backend::file().unwrap()).await;
    let volume = tempfile::tempdir().unwrap();
    let engine1 = engine(&function, volume.path(), &[]).await;
    create_table(&engine1.client()).await;
    write(&engine1.client(), 0..10).await;
    assert_eq!(engine1.stop().await.unwrap(), Exit::Clean);

    let engine2 = engine(&function, volume.path(), &[]).await;
    write(&engine2.client(), 10..20).await;
    let pushed = engine2.admin(reqwest::Method::POST).await;
    assert_eq!(pushed["pushed"]["kind"], "delta", "the local database is in step: {pushed}");
    assert!(
        !volume.path().read_dir().unwrap().any(|e| e
            .unwrap()
            .file_name()
            .to_string_lossy()
            .starts_with("db.replaced"))
    );
    assert_eq!(engine2.stop().await.unwrap(), Exit::Clean);

    let fresh = tempfile::tempdir().unwrap();
    let engine3 = engine(&function, fresh.path(), &[]).await;
    assert_eq!(read_all(&engine3.client()).await, all(0..20));
    engine3.stop().await.unwrap();
}

#[tokio::test]
async fn a_stale_volume_is_moved_aside_and_restored_in_auto_mode() {
    let function = Server::start(Backend::file().unwrap()).await;
    let (stale, other) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let engine1 = engine(&function, stale.path(), &[]).await;
    create_table(&engine1.client()).await;
    write(&engine1.client(), 0..10).await;
    assert_eq!(engine1.stop().await.unwrap(), Exit::Clean);
    // Another container moved on from there.
    let engine2 = engine(&function, other.path(), &[]).await;
    write(&engine2.client(), 10..30).await;
    assert_eq!(engine2.stop().await.unwrap(), Exit::Clean);

    // `never` refuses to persist a database that is behind the function.
    let refused =
        engine(&function, stale.path(), &[("WEFTKIT_PERSIST_RESTORE_ON_BOOT", "never")]).await;
    assert!(refused.has_stopped());
    let err = refused.stop().await.unwrap_err();
    assert!(format!("{err:#}").contains("behind"), "{err:#}");

    let engine3 = engine(&function, stale.path(), &[]).await;
    assert_eq!(read_all(&engine3.client()).await, all(0..30));
    let aside: Vec<_> = stale
        .path()
        .read_dir()
        .unwrap()
        .filter_map(|e| e.ok().map(|e| e.file_name().to_string_lossy().into_owned()))
        .filter(|n| n.starts_with("db.replaced-"))
        .collect();
    assert_eq!(aside.len(), 1, "the stale database is kept, not deleted");
    engine3.stop().await.unwrap();
}

#[tokio::test]
async fn snapshots_are_pushed_periodically_and_restore_with_their_deltas() {
    let function = Server::start(Backend::file().unwrap()).await;
    let volume = tempfile::tempdir().unwrap();
    let engine1 =
        engine(&function, volume.path(), &[("WEFTKIT_PERSIST_SNAPSHOT_EVERY", "2")]).await;
    let client = engine1.client();
    create_table(&client).await;
    let mut kinds = Vec::new();
    for round in 0..4 {
        write(&client, round * 10..round * 10 + 10).await;
        let pushed = engine1.admin(reqwest::Method::POST).await;
        kinds.push(pushed["pushed"]["kind"].as_str().unwrap().to_owned());
    }
    assert_eq!(kinds, ["delta", "delta", "snapshot", "delta"]);
    assert_eq!(
        engine1.admin(reqwest::Method::POST).await["pushed"],
        serde_json::Value::Null,
        "nothing new"
    );
    client
        .delete_item()
        .table_name("items")
        .key("pk", AV::S("k00003".into()))
        .send()
        .await
        .unwrap();
    assert_eq!(engine1.stop().await.unwrap(), Exit::Clean);
    let fresh = tempfile::tempdir().unwrap();
    let engine2 = engine(&function, fresh.path(), &[]).await;
    let mut expected = all(0..40);
    expected.retain(|v| *v != 3);
    assert_eq!(read_all(&engine2.client()).await, expected);
    engine2.stop().await.unwrap();
}

/// A function behind a switch: while off, every request gets a 503.
async fn switchable_function() -> (Server, Arc<AtomicBool>) {
    let down = Arc::new(AtomicBool::new(false));
    let switch = down.clone();
    let server = Server::start_custom(
        Backend::file().unwrap(),
        |_| {},
        |store| store,
        move |function| {
            wkp1_function::router::router(function).layer(axum::middleware::from_fn(
                move |request: axum::extract::Request, next: axum::middleware::Next| {
                    let down = switch.load(Ordering::SeqCst);
                    async move {
                        if down {
                            return axum::http::StatusCode::SERVICE_UNAVAILABLE.into_response();
                        }
                        next.run(request).await
                    }
                },
            ))
        },
    )
    .await;
    (server, down)
}

/// Requests to one endpoint of the function wait at a gate the test opens; the test hears of
/// each one that arrives, so it waits for events rather than for time.
struct Gate {
    open: tokio::sync::watch::Sender<bool>,
    arrived: tokio::sync::watch::Receiver<u32>,
}

impl Gate {
    fn set_open(&self, open: bool) {
        self.open.send_replace(open);
    }

    /// Waits until `n` requests have reached the gate in all.
    async fn wait_arrivals(&self, n: u32) {
        let mut arrived = self.arrived.clone();
        tokio::time::timeout(std::time::Duration::from_secs(60), arrived.wait_for(|a| *a >= n))
            .await
            .expect("a request reaches the gate within 60 s")
            .unwrap();
    }

    fn arrivals(&self) -> u32 {
        *self.arrived.borrow()
    }
}

/// A function whose requests to `/v1/{endpoint}/...` wait while the gate is closed.
async fn gated_function(endpoint: &'static str, open: bool) -> (Server, Gate) {
    let (open_tx, open_rx) = tokio::sync::watch::channel(open);
    let (arrived_tx, arrived_rx) = tokio::sync::watch::channel(0u32);
    let arrived_tx = Arc::new(arrived_tx);
    let prefix = format!("/v1/{endpoint}/");
    let server = Server::start_custom(
        Backend::file().unwrap(),
        |_| {},
        |store| store,
        move |function| {
            wkp1_function::router::router(function).layer(axum::middleware::from_fn(
                move |request: axum::extract::Request, next: axum::middleware::Next| {
                    let gated = request.uri().path().starts_with(&prefix);
                    let (mut open, arrived) = (open_rx.clone(), arrived_tx.clone());
                    async move {
                        if gated {
                            arrived.send_modify(|n| *n += 1);
                            let _ = open.wait_for(|o| *o).await;
                        }
                        next.run(request).await
                    }
                },
            ))
        },
    )
    .await;
    (server, Gate { open: open_tx, arrived: arrived_rx })
}

#[tokio::test]
async fn a_function_outage_delays_persistence_but_loses_nothing() {
    let (function, down) = switchable_function().await;
    let volume = tempfile::tempdir().unwrap();
    let engine1 = engine(&function, volume.path(), &[]).await;
    let client = engine1.client();
    create_table(&client).await;
    write(&client, 0..10).await;
    down.store(true, Ordering::SeqCst);
    let failed = engine1.admin(reqwest::Method::POST).await;
    assert!(failed["error"].is_string(), "{failed}");
    // Writes go on while the function is away.
    write(&client, 10..25).await;
    assert_eq!(read_all(&client).await, all(0..25));
    let status = engine1.admin(reqwest::Method::GET).await;
    assert_eq!((status["persisted_seq"].as_u64(), status["failures"].as_u64()), (Some(0), Some(1)));
    down.store(false, Ordering::SeqCst);
    // The next tick sends the upload the outage refused again (a 503 cannot say it did not
    // commit), then what came after it: everything up to the last write is persisted.
    let pushed = engine1.admin(reqwest::Method::POST).await;
    assert_eq!(pushed["pushed"]["last_seq"], status["last_seq"], "{pushed}");
    let status = engine1.admin(reqwest::Method::GET).await;
    assert_eq!(status["persisted_seq"], status["last_seq"], "{status}");
    assert_eq!(engine1.stop().await.unwrap(), Exit::Clean);

    let fresh = tempfile::tempdir().unwrap();
    let engine2 = engine(&function, fresh.path(), &[]).await;
    assert_eq!(read_all(&engine2.client()).await, all(0..25));
    write(&engine2.client(), 25..30).await;
    // The function goes away for good: the flush fails within its budget and says so.
    down.store(true, Ordering::SeqCst);
    let started = std::time::Instant::now();
    assert_eq!(engine2.stop().await.unwrap(), Exit::Failed);
    assert!(started.elapsed() < std::time::Duration::from_secs(20));
}

/// A function whose persist answers are lost while `lose` is set: it commits, then the engine
/// hears a 503. Every persist answer it actually gave is recorded.
async fn forgetful_function() -> (Server, Arc<AtomicBool>, Arc<std::sync::Mutex<Vec<u16>>>) {
    let lose = Arc::new(AtomicBool::new(false));
    let answers: Arc<std::sync::Mutex<Vec<u16>>> = Arc::default();
    let (switch, record) = (lose.clone(), answers.clone());
    let server = Server::start_custom(
        Backend::file().unwrap(),
        |_| {},
        |store| store,
        move |function| {
            wkp1_function::router::router(function).layer(axum::middleware::from_fn(
                move |request: axum::extract::Request, next: axum::middleware::Next| {
                    let persist = request.uri().path().starts_with("/v1/persist/");
                    let (lose, record) = (switch.load(Ordering::SeqCst), record.clone());
                    async move {
                        let response = next.run(request).await;
                        if !persist {
                            return response;
                        }
                        record.lock().unwrap().push(response.status().as_u16());
                        if lose {
                            return axum::http::StatusCode::SERVICE_UNAVAILABLE.into_response();
                        }
                        response
                    }
                },
            ))
        },
    )
    .await;
    (server, lose, answers)
}

#[tokio::test]
async fn after_a_lost_answer_the_engine_settles_it_before_sending_more() {
    let (function, lose, answers) = forgetful_function().await;
    let volume = tempfile::tempdir().unwrap();
    let engine1 = engine(&function, volume.path(), &[]).await;
    let client = engine1.client();
    create_table(&client).await;
    write(&client, 0..10).await;
    let committed = engine1.admin(reqwest::Method::GET).await["last_seq"].as_u64().unwrap();
    lose.store(true, Ordering::SeqCst);
    let failed = engine1.admin(reqwest::Method::POST).await;
    assert!(failed["error"].is_string(), "{failed}");
    assert!(answers.lock().unwrap().contains(&200), "the lost persist did not commit");

    lose.store(false, Ordering::SeqCst);
    answers.lock().unwrap().clear();
    write(&client, 10..20).await;
    let pushed = engine1.admin(reqwest::Method::POST).await;
    assert_eq!(pushed["pushed"]["first_seq"], committed + 1, "{pushed}");
    // The lost upload again, unchanged (already committed), then only what is new: nothing
    // resent to be refused as an overlap.
    assert_eq!(*answers.lock().unwrap(), [200, 200]);
    assert_eq!(engine1.stop().await.unwrap(), Exit::Clean);

    let fresh = tempfile::tempdir().unwrap();
    let engine2 = engine(&function, fresh.path(), &[]).await;
    assert_eq!(read_all(&engine2.client()).await, all(0..20));
    engine2.stop().await.unwrap();
}

/// The `weftkit-kv` binary on `volume`, persisting to `function`; with its URL once ready.
async fn engine_process(function: &Server, volume: &Path) -> (std::process::Child, String) {
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_weftkit-kv"))
        .arg("serve")
        .env("WEFTKIT_LISTEN", format!("127.0.0.1:{port}"))
        .env("WEFTKIT_DATA", volume)
        .env("WEFTKIT_PERSIST_MODE", "serverless")
        .env("WEFTKIT_PERSIST_URL", function.url.as_str())
        .env("WEFTKIT_PERSIST_KEY_ID", testing::KEY_ID)
        .env("WEFTKIT_PERSIST_SECRET", testing::secret().to_base64())
        .env("WEFTKIT_PERSIST_INSTANCE", "orders")
        .env("WEFTKIT_PERSIST_RETRY_FOR", "1s")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let url = format!("http://127.0.0.1:{port}");
    let http = reqwest::Client::new();
    for _ in 0..1500 {
        if http.get(format!("{url}/ready")).send().await.is_ok_and(|r| r.status().is_success()) {
            return (child, url);
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    let _ = child.kill();
    let _ = child.wait();
    panic!("weftkit-kv did not become ready");
}

async fn tick_process(url: &str) -> serde_json::Value {
    let response =
        reqwest::Client::new().post(format!("{url}/_admin/persist")).send().await.unwrap();
    serde_json::from_slice(&response.bytes().await.unwrap()).unwrap()
}

/// The process dies (SIGKILL) after a persist committed but before it heard so: restarted on
/// its volume, it keeps its database, with the writes made since, rather than replacing it with
/// the function's older state (which would hide acknowledged writes in a moved-aside copy).
#[tokio::test]
async fn a_restart_after_a_lost_answer_keeps_the_writes_made_since() {
    let (function, lose, _) = forgetful_function().await;
    let volume = tempfile::tempdir().unwrap();
    let (mut first, url) = engine_process(&function, volume.path()).await;
    let client = common::client_for(&url, common::ACCESS_KEY, common::SECRET_KEY);
    create_table(&client).await;
    write(&client, 0..10).await;
    lose.store(true, Ordering::SeqCst);
    let failed = tick_process(&url).await;
    assert!(failed["error"].is_string(), "{failed}");
    lose.store(false, Ordering::SeqCst);
    write(&client, 10..15).await;
    first.kill().unwrap();
    first.wait().unwrap();

    let (mut second, url) = engine_process(&function, volume.path()).await;
    let client = common::client_for(&url, common::ACCESS_KEY, common::SECRET_KEY);
    assert_eq!(read_all(&client).await, all(0..15));
    let moved_aside = std::fs::read_dir(volume.path())
        .unwrap()
        .filter(|e| e.as_ref().unwrap().file_name().to_string_lossy().starts_with("db.replaced"))
        .count();
    assert_eq!(moved_aside, 0, "the local database was replaced");
    let pushed = tick_process(&url).await;
    assert!(pushed["pushed"].is_object(), "{pushed}");
    second.kill().unwrap();
    second.wait().unwrap();

    let fresh = tempfile::tempdir().unwrap();
    let restored = engine(&function, fresh.path(), &[]).await;
    assert_eq!(read_all(&restored.client()).await, all(0..15));
    restored.stop().await.unwrap();
}

#[tokio::test]
async fn a_superseded_writer_is_fenced_and_its_data_kept() {
    let function = Server::start(Backend::file().unwrap()).await;
    let (old_volume, new_volume) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let old = engine(&function, old_volume.path(), &[]).await;
    create_table(&old.client()).await;
    write(&old.client(), 0..10).await;
    let persisted = old.admin(reqwest::Method::POST).await["pushed"]["last_seq"].as_u64().unwrap();
    // A rolling deploy: the new engine restores while the old one still runs.
    let new = engine(&function, new_volume.path(), &[]).await;
    assert_eq!(read_all(&new.client()).await, all(0..10));
    write(&old.client(), 10..15).await;
    let fenced = old.admin(reqwest::Method::POST).await;
    let message = fenced["error"].as_str().unwrap();
    assert!(
        message.contains("superseded by generation 2") && message.contains("kept"),
        "{message}"
    );
    // The old writer refuses writes it could never persist, and is no longer ready.
    let refused =
        old.client().put_item().table_name("items").item("pk", AV::S("late".into())).send().await;
    assert!(refused.is_err());
    let ready = reqwest::get(format!("{}/ready", old.url())).await.unwrap();
    assert_eq!(ready.status(), 503);
    assert_eq!(old.stop().await.unwrap(), Exit::Failed, "a fenced writer does not exit cleanly");

    let client = wkp1_client::Client::new({
        let mut c = wkp1_client::ClientConfig::new(
            function.url.clone(),
            wkp1_protocol::Subtree::new("weftkit-kv", "orders", "0").unwrap(),
            wkp1_protocol::KeyId::new(testing::KEY_ID).unwrap(),
            testing::secret(),
        );
        c.retry.max_retries = 0;
        c
    })
    .unwrap();
    let plan = client.plan(false).await.unwrap();
    assert_eq!(plan.superseded.len(), 1, "the fenced write is kept for an operator");
    let kept = &plan.superseded[0];
    assert_eq!(
        (kept.generation, kept.segment.first_seq, kept.segment.last_seq),
        (1, persisted + 1, persisted + 5)
    );
    assert_eq!(read_all(&new.client()).await, all(0..10), "and not applied");
    new.stop().await.unwrap();
}

#[tokio::test]
async fn shutdown_refuses_new_writes_before_the_final_flush() {
    // The final flush waits at the gate until the writer has been refused: the refusal comes
    // before the flush, not after it, and the flush then carries every acknowledged write.
    let (function, flush) = gated_function("flush", false).await;
    let volume = tempfile::tempdir().unwrap();
    let engine1 = engine(&function, volume.path(), &[]).await;
    let client = engine1.client();
    create_table(&client).await;
    let no_retries = Client::from_conf(
        client
            .config()
            .to_builder()
            .retry_config(aws_sdk_dynamodb::config::retry::RetryConfig::disabled())
            .build(),
    );
    let (progress, mut acknowledged_so_far) = tokio::sync::watch::channel(0usize);
    let writer = tokio::spawn(async move {
        let mut acknowledged = Vec::new();
        for i in 0..100_000u32 {
            let put = no_retries
                .put_item()
                .table_name("items")
                .item("pk", AV::S(format!("k{i:05}")))
                .item("v", AV::N(i.to_string()))
                .send()
                .await;
            match put {
                Ok(_) => {
                    acknowledged.push(i);
                    progress.send_replace(acknowledged.len());
                }
                Err(e) => {
                    let code = e.as_service_error().and_then(|e| e.code()).map(str::to_owned);
                    return (acknowledged, code.ok_or_else(|| format!("{e:?}")));
                }
            }
        }
        (acknowledged, Err("never refused".to_owned()))
    });
    acknowledged_so_far.wait_for(|n| *n >= 20).await.unwrap();
    let stopping = tokio::spawn(engine1.stop());
    let (acknowledged, refusal) = tokio::time::timeout(std::time::Duration::from_secs(60), writer)
        .await
        .expect("writes are refused while the final flush is held")
        .unwrap();
    assert_eq!(refusal.as_deref(), Ok("ServiceUnavailable"), "how the writer was stopped");
    assert!(!stopping.is_finished(), "the refusal came while the final flush was held");
    flush.wait_arrivals(1).await;
    flush.set_open(true);
    assert_eq!(stopping.await.unwrap().unwrap(), Exit::Clean);
    assert!(acknowledged.len() >= 20);
    let fresh = tempfile::tempdir().unwrap();
    let engine2 = engine(&function, fresh.path(), &[]).await;
    let restored = read_all(&engine2.client()).await;
    // Writes in flight when writes closed were finished and answered: exactly the
    // acknowledged ones are back.
    assert_eq!(
        restored,
        acknowledged,
        "{} restored, {} acknowledged",
        restored.len(),
        acknowledged.len()
    );
    engine2.stop().await.unwrap();
}

#[tokio::test]
async fn a_final_flush_the_function_never_answers_fails_at_the_budget() {
    let (function, flush) = gated_function("flush", false).await;
    let volume = tempfile::tempdir().unwrap();
    let budget = std::time::Duration::from_secs(2);
    let settings = [("WEFTKIT_PERSIST_FLUSH_BUDGET", "2s"), ("WEFTKIT_PERSIST_RETRY_FOR", "60s")];
    let engine1 = engine(&function, volume.path(), &settings).await;
    create_table(&engine1.client()).await;
    write(&engine1.client(), 0..10).await;
    let started = std::time::Instant::now();
    let exit = engine1.stop().await.unwrap();
    let took = started.elapsed();
    assert_eq!(exit, Exit::Failed, "an unacknowledged flush is a failed exit (code 1)");
    assert!(flush.arrivals() >= 1, "the flush reached the function and hung there");
    assert!(
        took >= budget && took < budget + std::time::Duration::from_secs(6),
        "stopped after {took:?} with a budget of {budget:?}"
    );

    // Nothing was lost: the change log kept it, and the next boot on the volume pushes it.
    flush.set_open(true);
    let engine2 = engine(&function, volume.path(), &[]).await;
    assert_eq!(engine2.stop().await.unwrap(), Exit::Clean);
    let fresh = tempfile::tempdir().unwrap();
    let engine3 = engine(&function, fresh.path(), &[]).await;
    assert_eq!(read_all(&engine3.client()).await, all(0..10));
    engine3.stop().await.unwrap();
}

#[tokio::test]
async fn ready_answers_503_while_restoring() {
    let (function, restore) = gated_function("restore", true).await;
    let first = tempfile::tempdir().unwrap();
    let engine1 = engine(&function, first.path(), &[]).await;
    create_table(&engine1.client()).await;
    write(&engine1.client(), 0..20).await;
    assert_eq!(engine1.stop().await.unwrap(), Exit::Clean);

    restore.set_open(false);
    let held = restore.arrivals() + 1;
    let fresh = tempfile::tempdir().unwrap();
    let config = common::with_persist(common::config(fresh.path()), persist_config(&function, &[]));
    let engine2 = Engine::spawn(config).await;
    restore.wait_arrivals(held).await;
    let ready = reqwest::get(format!("{}/ready", engine2.url())).await.unwrap();
    assert_eq!(ready.status(), 503);
    let body: serde_json::Value = serde_json::from_slice(&ready.bytes().await.unwrap()).unwrap();
    assert_eq!(body["status"], "restoring");
    restore.set_open(true);
    engine2.wait_ready().await;
    assert!(!engine2.has_stopped());
    assert_eq!(reqwest::get(format!("{}/ready", engine2.url())).await.unwrap().status(), 200);
    assert_eq!(read_all(&engine2.client()).await, all(0..20));
    engine2.stop().await.unwrap();
}

#[tokio::test]
async fn restore_on_boot_always_replaces_a_local_database_that_is_in_step() {
    let function = Server::start(Backend::file().unwrap()).await;
    let volume = tempfile::tempdir().unwrap();
    let engine1 = engine(&function, volume.path(), &[]).await;
    create_table(&engine1.client()).await;
    write(&engine1.client(), 0..10).await;
    assert_eq!(engine1.stop().await.unwrap(), Exit::Clean);
    // Local changes the function never saw, on a volume whose marker says it is in step: `auto`
    // would keep them (see a_restart_on_the_same_volume_continues_with_deltas).
    let unpersisted = Engine::start_with(common::config(volume.path())).await;
    write(&unpersisted.client(), 10..15).await;
    assert_eq!(unpersisted.stop().await.unwrap(), Exit::Clean);

    let engine2 =
        engine(&function, volume.path(), &[("WEFTKIT_PERSIST_RESTORE_ON_BOOT", "always")]).await;
    assert!(!engine2.has_stopped());
    assert_eq!(read_all(&engine2.client()).await, all(0..10), "the function's state, only");
    let aside: Vec<_> = volume
        .path()
        .read_dir()
        .unwrap()
        .filter_map(|e| e.ok().map(|e| e.file_name().to_string_lossy().into_owned()))
        .filter(|n| n.starts_with("db.replaced-"))
        .collect();
    assert_eq!(aside.len(), 1, "the local database is kept aside, not deleted");
    engine2.stop().await.unwrap();
}
