//! The client sends back, on every write, the manifest version of the last answer it received
//! (SPEC.md `PER-3`), so a function that has just started need not list the store.

use std::sync::{Arc, Mutex};

use axum::extract::Request;
use axum::middleware::{self, Next};
use wkp1_protocol::headers;
use wkp1_protocol::segment::SegmentHeader;
use wkp1_testkit::{Backend, Server, segment};

/// Each request's endpoint and its `wkp-manifest-version`, in order.
type Seen = Arc<Mutex<Vec<(String, Option<String>)>>>;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_write_carries_the_version_of_the_last_answer() {
    let seen: Seen = Arc::default();
    let record = seen.clone();
    let server = Server::start_custom(
        Backend::memory().unwrap(),
        |_| {},
        |store| store,
        move |function| {
            let record = record.clone();
            wkp1_function::router::router(function).layer(middleware::from_fn(
                move |request: Request, next: Next| {
                    let hint = request
                        .headers()
                        .get(headers::MANIFEST_VERSION)
                        .map(|v| v.to_str().unwrap().to_owned());
                    let path = request.uri().path().split('/').nth(2).unwrap().to_owned();
                    record.lock().unwrap().push((path, hint));
                    next.run(request)
                },
            ))
        },
    )
    .await;
    let client = server.client("replica-0");
    let plan = client.plan(true).await.unwrap();
    let first = client
        .persist(plan.generation, &segment(SegmentHeader::snapshot(1), b"one").await.file)
        .await
        .unwrap();
    let flushed = client
        .flush(plan.generation, Some(&segment(SegmentHeader::delta(1, 2), b"two").await.file))
        .await
        .unwrap();
    assert_eq!(flushed.manifest_version, first.manifest_version + 1);

    let hint = |v: u64| Some(v.to_string());
    assert_eq!(
        *seen.lock().unwrap(),
        [
            ("restore".to_owned(), None),
            ("persist".to_owned(), hint(plan.manifest_version)),
            ("flush".to_owned(), hint(first.manifest_version)),
        ]
    );
}
