//! The `wkp1-selfhosted` binary as an operator runs it: configuration errors, health, and a
//! SIGTERM that lets an in-flight upload finish.

use std::process::{Command, Stdio};
use std::time::Duration;

use bytes::Bytes;
use futures::StreamExt;
use sha2::{Digest, Sha256};
use wkp1_protocol::segment::{SegmentHeader, encode_segment};
use wkp1_protocol::signing::{Signer, unix_now};
use wkp1_protocol::{Endpoint, KeyId, WkpPath};
use wkp1_testkit::{KEY_ID, noise, secret};

const BIN: &str = env!("CARGO_BIN_EXE_wkp1-selfhosted");

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

fn keys_env() -> String {
    format!("{KEY_ID} {}", secret().to_base64())
}

#[test]
fn configuration_errors_name_the_setting_and_never_the_secret() {
    let dir = tempfile::tempdir().unwrap();
    let store = format!("file://{}", dir.path().display());
    let run = |args: &[&str], keys: Option<&str>| {
        let mut command = Command::new(BIN);
        command
            .args(args)
            .env_remove("WKP1_KEYS")
            .env_remove("WKP1_KEYS_FILE")
            .env_remove("WKP1_STORE");
        if let Some(keys) = keys {
            command.env("WKP1_KEYS", keys);
        }
        let out = command.output().unwrap();
        (out.status.success(), String::from_utf8_lossy(&out.stderr).into_owned())
    };
    let (ok, err) = run(&["--store", &store], None);
    assert!(!ok && err.contains("--keys-file") && err.contains("WKP1_KEYS"), "{err}");
    let (ok, err) = run(&["--store", &store], Some("k1 c2hvcnQ="));
    assert!(!ok && err.contains("at least 32") && !err.contains("c2hvcnQ="), "{err}");
    let (ok, err) = run(&["--store", &store, "--grace-seconds", "10"], Some(&keys_env()));
    assert!(!ok && err.contains("grace_seconds"), "{err}");
    let (ok, err) = run(&["--store", "ftp://x/y"], Some(&keys_env()));
    assert!(!ok && err.contains("ftp"), "{err}");
    let (ok, err) = run(&[], Some(&keys_env()));
    assert!(!ok && err.contains("--store"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_lets_an_in_flight_upload_finish_then_exits_cleanly() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let mut child = Command::new(BIN)
        .args([
            "--listen",
            &format!("127.0.0.1:{port}"),
            "--store",
            &format!("file://{}", dir.path().display()),
        ])
        .env("WKP1_KEYS", keys_env())
        // Small parts: the upload's first half reaches the store while the second is held back,
        // which is how the test knows the upload is in flight.
        .env("WKP1_PART_SIZE", "65536")
        .env("RUST_LOG", "info")
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let (log_tx, log) = std::sync::mpsc::channel::<String>();
    let stderr = child.stderr.take().unwrap();
    std::thread::spawn(move || {
        use std::io::BufRead;
        for line in std::io::BufReader::new(stderr).lines().map_while(Result::ok) {
            let _ = log_tx.send(line);
        }
    });
    let base = format!("http://127.0.0.1:{port}");
    let http = reqwest::Client::new();
    let mut healthy = false;
    for _ in 0..100 {
        if let Ok(r) = http.get(format!("{base}/healthz")).send().await {
            healthy = r.status() == 200;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(healthy, "healthz");

    let subtree = wkp1_testkit::subtree("replica-0");
    let signer = Signer::new(KeyId::new(KEY_ID).unwrap(), secret());
    let send = |endpoint: Endpoint, query: &str, generation: Option<u64>, body: Bytes| {
        let path = WkpPath::new(endpoint, subtree.clone()).to_path();
        let mut headers = http::HeaderMap::new();
        if let Some(g) = generation {
            headers.insert("wkp-generation", g.into());
        }
        let hash = hex::encode(Sha256::digest(&body));
        signer.sign(&endpoint.method(), &path, query, &mut headers, &hash, unix_now()).unwrap();
        (
            format!(
                "{base}{path}{}",
                if query.is_empty() { String::new() } else { format!("?{query}") }
            ),
            headers,
            body,
        )
    };
    let (url, headers, _) = send(Endpoint::Restore, "claim=true", None, Bytes::new());
    let plan: serde_json::Value = serde_json::from_slice(
        &http.get(url).headers(headers).send().await.unwrap().bytes().await.unwrap(),
    )
    .unwrap();
    let generation = plan["generation"].as_u64().unwrap();

    // An upload whose second half arrives only after SIGTERM.
    let segment =
        Bytes::from(encode_segment(SegmentHeader::snapshot(1), &noise(2 << 20, 5)).unwrap());
    let (url, headers, body) = send(Endpoint::Persist, "", Some(generation), segment.clone());
    let (first, second) = (body.slice(..body.len() / 2), body.slice(body.len() / 2..));
    let (release_tx, release_rx) = tokio::sync::oneshot::channel::<()>();
    let stream = futures::stream::iter([Ok::<_, std::io::Error>(first)]).chain(
        futures::stream::once(async move {
            let _ = release_rx.await;
            Ok(second)
        }),
    );
    let upload = tokio::spawn(
        http.post(url)
            .headers(headers)
            .header("content-length", segment.len())
            .body(reqwest::Body::wrap_stream(stream))
            .send(),
    );
    let before = files_under(dir.path());
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while files_under(dir.path()) == before {
        assert!(std::time::Instant::now() < deadline, "the upload's first parts never arrived");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(
        Command::new("kill").args(["-TERM", &child.id().to_string()]).status().unwrap().success()
    );
    let shutting_down = tokio::task::spawn_blocking(move || {
        log.iter().any(|line| line.contains("shutting down: finishing in-flight requests"))
    });
    assert!(
        tokio::time::timeout(Duration::from_secs(30), shutting_down).await.unwrap().unwrap(),
        "the function logs that it got SIGTERM"
    );
    assert!(child.try_wait().unwrap().is_none(), "exited with an upload in flight");
    release_tx.send(()).unwrap();
    let response = upload.await.unwrap().unwrap();
    assert_eq!(response.status(), 200);
    let body: serde_json::Value = serde_json::from_slice(&response.bytes().await.unwrap()).unwrap();
    assert_eq!(body["outcome"], "committed");

    let status = tokio::task::spawn_blocking(move || child.wait()).await.unwrap().unwrap();
    assert!(status.success(), "exit status {status}");
    let manifests =
        std::fs::read_dir(dir.path().join("kv/orders/replica-0/manifest")).unwrap().count();
    assert_eq!(manifests, 2, "the claim and the commit");
}

/// Every file under `dir`, recursively.
fn files_under(dir: &std::path::Path) -> std::collections::BTreeSet<std::path::PathBuf> {
    let mut found = std::collections::BTreeSet::new();
    let mut pending = vec![dir.to_path_buf()];
    while let Some(dir) = pending.pop() {
        for entry in std::fs::read_dir(&dir).into_iter().flatten().flatten() {
            let path = entry.path();
            if path.is_dir() {
                pending.push(path);
            } else {
                found.insert(path);
            }
        }
    }
    found
}
