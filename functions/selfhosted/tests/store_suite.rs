//! The core's store conformance suite against every store URL the self-hosted function opens,
//! on every server the test command starts: `object_store`'s S3 backend as configured here.
//! (Memory and a local directory run in the core's own tests.)

use wkp1_function::store::suite::{self, Skip};
use wkp1_function::store::url as stores;
use wkp1_testkit::Backend;

async fn run(backend: Option<Backend>, skips: &[Skip]) {
    let Some(backend) = backend else { return };
    let opened = stores::open_with(backend.url(), &backend.s3).unwrap();
    suite::run_all_except(&opened.store, &format!("{}/suite", opened.prefix), skips).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s3_urls_keep_the_store_contract_on_moto() {
    run(Backend::s3("moto"), &[]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s3_urls_keep_the_store_contract_on_s3s_fs() {
    let skips = [
        Skip {
            clause: "create_only_is_exclusive_when_raced",
            reason: "s3s-fs checks If-None-Match and writes in two steps, so racing creates can \
                     both succeed (the start-up probe warns about it)",
        },
        Skip {
            clause: "every_key_character_round_trips",
            reason: "s3s-fs 0.14 answers 500 to keys longer than about 150 bytes (it names a side \
                     file after base64(key))",
        },
    ];
    run(Backend::s3("s3s"), &skips).await;
}

mod minio {
    use super::*;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    #[ignore = "needs a MinIO (WKP1_TEST_S3_ENDPOINT); the test command runs the minio:: tests when one is there"]
    async fn s3_urls_keep_the_store_contract() {
        run(Some(Backend::minio()), &[]).await;
    }
}
