//! The store conformance suite (feature `testing`): one async function per clause of the
//! [`Store`] contract, for every implementation to call from its own tests against every real
//! server it runs on. Each takes the store and a key prefix of its own (so suites can share a
//! bucket), panics with a message naming the clause when the store breaks it, and leaves no
//! object behind when it passes.
//!
//! ```ignore
//! #[tokio::test]
//! async fn my_store_keeps_the_contract() {
//!     let store = MyStore::new(...);
//!     wkp1_function::store::suite::run_all(&store, "suite/my-store").await;
//! }
//! ```
//!
//! A store that cannot meet a clause on one server skips that one function by name, with the
//! reason next to the skip; it never deletes the call.

use bytes::Bytes;
use futures::{StreamExt, TryStreamExt};

use super::probe::{Atomicity, probe_create_only};
use super::{PutMode, Store, StoreError};

/// Every clause, in order. Presigned requests are tried only where the store offers them.
pub async fn run_all<S: Store>(store: &S, prefix: &str) {
    run_all_except(store, prefix, &[]).await;
}

/// A clause one server cannot meet, and why: a known divergence, tagged, never deleted.
#[derive(Debug, Clone, Copy)]
pub struct Skip {
    /// The clause's function name, e.g. `"create_only_is_exclusive_when_raced"`.
    pub clause: &'static str,
    pub reason: &'static str,
}

/// Every clause but the skipped ones, each skip printed with its reason.
pub async fn run_all_except<S: Store>(store: &S, prefix: &str, skips: &[Skip]) {
    let mut known = Vec::new();
    macro_rules! clause {
        ($clause:ident $(, $arg:expr)*) => {
            known.push(stringify!($clause));
            match skips.iter().find(|s| s.clause == stringify!($clause)) {
                Some(skip) => eprintln!("SKIPPED store clause {}: {}", skip.clause, skip.reason),
                None => $clause(store, prefix $(, $arg)*).await,
            }
        };
    }
    clause!(create_only_is_exclusive);
    clause!(create_only_is_exclusive_when_raced);
    clause!(update_is_compare_and_swap_or_unsupported);
    clause!(overwrite_replaces);
    clause!(list_returns_every_page, 1100);
    clause!(list_is_scoped_to_its_prefix);
    clause!(reads_are_whole_ranged_and_streamed);
    clause!(absent_objects_read_as_none_and_delete_quietly);
    clause!(every_key_character_round_trips);
    clause!(presigned_put_is_create_only);
    clause!(presigned_get_reads_the_object);
    for skip in skips {
        assert!(known.contains(&skip.clause), "no store clause is named {}", skip.clause);
    }
}

fn key(prefix: &str, name: &str) -> String {
    let prefix = prefix.trim_matches('/');
    if prefix.is_empty() { name.to_owned() } else { format!("{prefix}/{name}") }
}

/// Deletes everything under `prefix`, which ends in `/`.
async fn remove_all<S: Store>(store: &S, prefix: &str) {
    let listed = store.list(prefix).await.expect("list for cleanup");
    for meta in listed {
        store.delete(&meta.key).await.expect("delete for cleanup");
    }
}

/// `put(Create)` of an existing key fails with `AlreadyExists` and leaves the first bytes.
pub async fn create_only_is_exclusive<S: Store>(store: &S, prefix: &str) {
    let k = key(prefix, "create/one");
    store.put(&k, Bytes::from_static(b"first"), PutMode::Create).await.expect("first create");
    let second = store.put(&k, Bytes::from_static(b"second"), PutMode::Create).await;
    assert!(
        matches!(second, Err(StoreError::AlreadyExists(_))),
        "create-only over an existing object must fail with AlreadyExists: {second:?}"
    );
    let kept = store.get(&k).await.expect("get").expect("present");
    assert_eq!(&kept[..], b"first", "a refused create-only write changed the object");
    store.delete(&k).await.expect("delete");
}

/// Of many concurrent creates of one key exactly one succeeds.
pub async fn create_only_is_exclusive_when_raced<S: Store>(store: &S, prefix: &str) {
    let atomicity = probe_create_only(store, prefix).await.expect("probe create-only writes");
    assert_eq!(atomicity, Atomicity::Atomic, "racing create-only writes let several through");
}

/// `put(Update(version))` replaces only the version it names, or the store says `Unsupported`.
pub async fn update_is_compare_and_swap_or_unsupported<S: Store>(store: &S, prefix: &str) {
    let k = key(prefix, "cas/object");
    store.put(&k, Bytes::from_static(b"v1"), PutMode::Create).await.expect("create");
    let v1 = store.head(&k).await.expect("head").expect("present");
    let result = store
        .put(&k, Bytes::from_static(b"v2"), PutMode::Update(v1.version.clone().unwrap_or_default()))
        .await;
    match result {
        Err(StoreError::Unsupported(_)) => {
            assert!(!store.capabilities().update_cas, "Unsupported, yet update_cas is claimed");
        }
        Ok(()) => {
            assert!(store.capabilities().update_cas, "update-CAS worked but is not claimed");
            let stale = store
                .put(&k, Bytes::from_static(b"v3"), PutMode::Update(v1.version.unwrap_or_default()))
                .await;
            assert!(
                matches!(stale, Err(StoreError::PreconditionFailed(_))),
                "an update against a replaced version must fail with PreconditionFailed: {stale:?}"
            );
            let now = store.get(&k).await.expect("get").expect("present");
            assert_eq!(&now[..], b"v2", "a refused update changed the object");
        }
        Err(e) => panic!("update-CAS against the current version failed: {e}"),
    }
    store.delete(&k).await.expect("delete");
}

/// `put(Overwrite)` replaces whatever is there.
pub async fn overwrite_replaces<S: Store>(store: &S, prefix: &str) {
    let k = key(prefix, "overwrite/object");
    store.put(&k, Bytes::from_static(b"a"), PutMode::Overwrite).await.expect("first");
    store.put(&k, Bytes::from_static(b"bb"), PutMode::Overwrite).await.expect("second");
    let got = store.get(&k).await.expect("get").expect("present");
    assert_eq!(&got[..], b"bb");
    let meta = store.head(&k).await.expect("head").expect("present");
    assert_eq!(meta.size, 2, "head reports the size of the current object");
    store.delete(&k).await.expect("delete");
}

/// `list` returns every object under the prefix, across every page of the backend (`count`
/// more than one page: S3 and GCS pages hold 1000).
pub async fn list_returns_every_page<S: Store>(store: &S, prefix: &str, count: usize) {
    let under = key(prefix, "pages/");
    let writes = (0..count).map(|i| {
        let k = format!("{under}{i:05}");
        async move { store.put(&k, Bytes::from(vec![1u8; 1 + i % 3]), PutMode::Create).await }
    });
    // A few dozen at a time: enough to be quick, few enough not to trip rate limits.
    futures::stream::iter(writes)
        .buffer_unordered(32)
        .try_collect::<Vec<()>>()
        .await
        .expect("write the objects to list");
    let mut listed = store.list(&under).await.expect("list");
    listed.sort_by(|a, b| a.key.cmp(&b.key));
    assert_eq!(listed.len(), count, "list must return every page");
    for (i, meta) in listed.iter().enumerate() {
        assert_eq!(meta.key, format!("{under}{i:05}"), "listed keys are the keys written");
        assert_eq!(meta.size, 1 + (i % 3) as u64, "listed sizes are the sizes written");
    }
    let deletes = listed.into_iter().map(|m| async move { store.delete(&m.key).await });
    futures::stream::iter(deletes)
        .buffer_unordered(32)
        .try_collect::<Vec<()>>()
        .await
        .expect("delete the listed objects");
    assert!(store.list(&under).await.expect("list").is_empty(), "deleted objects are not listed");
}

/// A prefix (ending in `/`, as every prefix the core lists) lists the objects under it, not
/// its siblings that share a stem.
pub async fn list_is_scoped_to_its_prefix<S: Store>(store: &S, prefix: &str) {
    let inside = key(prefix, "scope/a/object");
    let sibling = key(prefix, "scope/ab/object");
    for k in [&inside, &sibling] {
        store.put(k, Bytes::from_static(b"x"), PutMode::Create).await.expect("create");
    }
    let listed = store.list(&key(prefix, "scope/a/")).await.expect("list");
    let keys: Vec<&str> = listed.iter().map(|m| m.key.as_str()).collect();
    assert_eq!(keys, [inside.as_str()], "list of scope/a/");
    remove_all(store, &key(prefix, "scope/")).await;
}

/// `get` returns the whole object; `get_range` exactly the bytes asked for, streamed.
pub async fn reads_are_whole_ranged_and_streamed<S: Store>(store: &S, prefix: &str) {
    let k = key(prefix, "ranges/object");
    let bytes: Vec<u8> = (0..3_000_000u32).map(|i| (i % 251) as u8).collect();
    store.put(&k, Bytes::from(bytes.clone()), PutMode::Create).await.expect("create");
    let whole = store.get(&k).await.expect("get").expect("present");
    assert_eq!(whole.len(), bytes.len());
    assert!(whole[..] == bytes[..], "get returns the bytes written");
    for range in [0..1, 0..3_000_000, 1_234_567..2_345_678, 2_999_999..3_000_000] {
        let stream = store.get_range(&k, range.clone()).await.expect("get_range");
        let chunks: Vec<Bytes> = stream.try_collect().await.expect("stream");
        let got: Vec<u8> = chunks.concat();
        let want = &bytes[range.start as usize..range.end as usize];
        assert!(got == want, "get_range {range:?} returns exactly those bytes");
    }
    store.delete(&k).await.expect("delete");
}

/// Absent objects: `get` and `head` say `None`, `delete` succeeds.
pub async fn absent_objects_read_as_none_and_delete_quietly<S: Store>(store: &S, prefix: &str) {
    let k = key(prefix, "absent/object");
    assert!(store.get(&k).await.expect("get").is_none());
    assert!(store.head(&k).await.expect("head").is_none());
    store.delete(&k).await.expect("deleting an absent object succeeds");
}

/// Every character a WKP-1 key may hold (`a-z 0-9 _ - . /`) reaches the store unchanged, at
/// the longest key a subtree produces.
pub async fn every_key_character_round_trips<S: Store>(store: &S, prefix: &str) {
    let name = "abcdefghijklmnopqrstuvwxyz0123456789_-./x_y-z.0";
    let long = format!("long/{}", "k".repeat(200));
    for suffix in [name, long.as_str()] {
        let k = key(prefix, &format!("charset/{suffix}"));
        store.put(&k, Bytes::from_static(b"x"), PutMode::Create).await.expect("create");
        let listed = store.list(&key(prefix, "charset/")).await.expect("list");
        assert!(listed.iter().any(|m| m.key == k), "{k} is listed under its own name");
        assert_eq!(&store.get(&k).await.expect("get").expect("present")[..], b"x");
        store.delete(&k).await.expect("delete");
    }
}

/// A presigned PUT carries the create-only condition: used once it stores the bytes, replayed
/// with other bytes it is refused and the object keeps the first ones.
pub async fn presigned_put_is_create_only<S: Store>(store: &S, prefix: &str) {
    let k = key(prefix, "presigned/put");
    let Some(upload) = store.presign_put(&k, 300).await.expect("presign put") else {
        assert!(!store.capabilities().presign, "presign is claimed but presign_put gave nothing");
        return;
    };
    let client = reqwest::Client::new();
    let send = |body: &'static [u8]| {
        let mut request = client.request(upload.method.parse().expect("method"), &upload.url);
        for (name, value) in &upload.headers {
            request = request.header(name, value);
        }
        request.body(body).send()
    };
    let first = send(b"first").await.expect("presigned put");
    assert!(first.status().is_success(), "presigned put: {}", first.status());
    let replay = send(b"other bytes").await.expect("replayed presigned put");
    assert!(!replay.status().is_success(), "a replayed presigned put overwrote the object");
    let kept = store.get(&k).await.expect("get").expect("present");
    assert_eq!(&kept[..], b"first", "the replay changed the object");
    store.delete(&k).await.expect("delete");
}

/// A presigned GET reads the whole object.
pub async fn presigned_get_reads_the_object<S: Store>(store: &S, prefix: &str) {
    let k = key(prefix, "presigned/get");
    store.put(&k, Bytes::from_static(b"payload"), PutMode::Create).await.expect("create");
    let download = store.presign_get(&k, 300).await.expect("presign get");
    if let Some(download) = download {
        let mut request =
            reqwest::Client::new().request(download.method.parse().expect("method"), &download.url);
        for (name, value) in &download.headers {
            request = request.header(name, value);
        }
        let answer = request.send().await.expect("presigned get");
        assert!(answer.status().is_success(), "presigned get: {}", answer.status());
        assert_eq!(&answer.bytes().await.expect("body")[..], b"payload");
    } else {
        assert!(!store.capabilities().presign, "presign is claimed but presign_get gave nothing");
    }
    store.delete(&k).await.expect("delete");
}
