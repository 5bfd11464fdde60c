//! The store conformance suite against the `object_store` backends this crate ships: memory
//! and a local directory. (The S3 servers are covered where their stores are configured: the
//! self-hosted function and the Lambda function run the same suite against them.)

use std::sync::Arc;

use wkp1_function::store::object_store::ObjectStoreBackend;
use wkp1_function::store::suite;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_memory_store_keeps_the_store_contract() {
    let store = ObjectStoreBackend::new(Arc::new(object_store::memory::InMemory::new()), true);
    suite::run_all(&store, "suite/memory").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_local_directory_keeps_the_store_contract() {
    let dir = tempfile::tempdir().unwrap();
    let local = object_store::local::LocalFileSystem::new_with_prefix(dir.path()).unwrap();
    let store = ObjectStoreBackend::new(Arc::new(local), false);
    suite::run_all(&store, "suite/local").await;
    let left = files_under(dir.path());
    assert!(left.is_empty(), "the suite left objects behind: {left:?}");
}

fn files_under(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    std::fs::read_dir(dir)
        .unwrap()
        .flat_map(|entry| {
            let path = entry.unwrap().path();
            if path.is_dir() { files_under(&path) } else { vec![path] }
        })
        .collect()
}
