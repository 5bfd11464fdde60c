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
use wkp1_selfhosted::testing::{self, Backend, Server};

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
            wkp1_selfhosted::app(function).layer(axum::middleware::from_fn(
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
    let pushed = engine1.admin(reqwest::Method::POST).await;
    assert_eq!(pushed["pushed"]["first_seq"], 1, "the delta covers the outage: {pushed}");
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
    let function = Server::start(Backend::file().unwrap()).await;
    let volume = tempfile::tempdir().unwrap();
    let engine1 = engine(&function, volume.path(), &[]).await;
    let client = engine1.client();
    create_table(&client).await;
    let writer = {
        let client = client.clone();
        tokio::spawn(async move {
            let mut acknowledged = Vec::new();
            for i in 0..100_000u32 {
                let put = client
                    .put_item()
                    .table_name("items")
                    .item("pk", AV::S(format!("k{i:05}")))
                    .item("v", AV::N(i.to_string()))
                    .send()
                    .await;
                match put {
                    Ok(_) => acknowledged.push(i),
                    Err(e) => {
                        let code = e.as_service_error().and_then(|e| e.code()).map(str::to_owned);
                        return (acknowledged, code.or_else(|| Some(format!("{e:?}"))));
                    }
                }
            }
            (acknowledged, None)
        })
    };
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    assert_eq!(engine1.stop().await.unwrap(), Exit::Clean);
    let (acknowledged, _) = writer.await.unwrap();
    assert!(!acknowledged.is_empty());
    let fresh = tempfile::tempdir().unwrap();
    let engine2 = engine(&function, fresh.path(), &[]).await;
    let restored = read_all(&engine2.client()).await;
    // Every acknowledged write was flushed; at most the one whose answer was cut off is extra.
    assert!(
        restored.starts_with(&acknowledged),
        "{} restored, {} acknowledged",
        restored.len(),
        acknowledged.len()
    );
    assert!(restored.len() <= acknowledged.len() + 1);
    engine2.stop().await.unwrap();
}
