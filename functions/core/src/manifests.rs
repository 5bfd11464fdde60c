//! Reading the latest manifest and replacing it by compare-and-swap (`MAN-2`, `IDEM-4`).
//!
//! Versions are create-only objects `manifest/{n:020}.json`: writing version `n + 1` succeeds
//! for exactly one writer, which makes it a compare-and-swap on version `n` that every store
//! supports. Manifest objects never change once written, so they are cached by key.

use std::num::NonZeroUsize;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use lru::LruCache;
use rand::Rng;
use wkp1_protocol::ProtocolError;
use wkp1_protocol::manifest::Manifest;

use crate::error::{internal, store_failed};
use crate::layout::Layout;
use crate::store::{self, ObjectMeta, Store, StoreError};

/// How many times an update re-reads and retries after losing a race.
const MAX_ATTEMPTS: usize = 32;

/// Versions read one by one past a stale guess before listing instead.
const FORWARD_READS: usize = 8;

/// Immutable manifest objects by key, and the latest version this process saw per subtree.
///
/// The latest version is only a first guess for updates: writing `guess + 1` create-only
/// fails if anyone wrote a newer version, and the update then reads the store. Restore plans
/// never use it (`REST-2`). A guess expires after half the retention grace period: only then is
/// version `guess + 1`, if someone else wrote it, sure to be still in the store (`RET-1`), so
/// that the create-only write can collide with it.
#[derive(Debug)]
pub(crate) struct ManifestCache {
    objects: Mutex<LruCache<String, Arc<Manifest>>>,
    latest: Mutex<LruCache<String, (Arc<Manifest>, u64)>>,
    /// Striped locks serializing updates of one subtree within this process.
    updates: Vec<tokio::sync::Mutex<()>>,
}

/// Update lock stripes: subtrees share a stripe only by hash collision.
const UPDATE_STRIPES: usize = 64;

impl ManifestCache {
    pub(crate) fn new(capacity: usize) -> Self {
        let capacity = NonZeroUsize::new(capacity.max(1)).expect("positive");
        Self {
            objects: Mutex::new(LruCache::new(capacity)),
            latest: Mutex::new(LruCache::new(capacity)),
            updates: (0..UPDATE_STRIPES).map(|_| tokio::sync::Mutex::new(())).collect(),
        }
    }

    fn update_lock(&self, base: &str) -> &tokio::sync::Mutex<()> {
        use std::hash::{BuildHasher, RandomState};
        static HASHER: std::sync::OnceLock<RandomState> = std::sync::OnceLock::new();
        let hash = HASHER.get_or_init(RandomState::new).hash_one(base);
        &self.updates[(hash % UPDATE_STRIPES as u64) as usize]
    }

    fn get(&self, key: &str) -> Option<Arc<Manifest>> {
        self.objects.lock().expect("cache lock").get(key).cloned()
    }

    fn put(&self, key: String, manifest: Arc<Manifest>) {
        self.objects.lock().expect("cache lock").put(key, manifest);
    }

    fn latest_guess(&self, base: &str, seen_after: u64) -> Option<Arc<Manifest>> {
        let mut latest = self.latest.lock().expect("cache lock");
        latest.get(base).filter(|(_, seen)| *seen >= seen_after).map(|(m, _)| m.clone())
    }

    fn saw_latest(&self, base: &str, manifest: &Arc<Manifest>, now: u64) {
        let mut latest = self.latest.lock().expect("cache lock");
        if latest.peek(base).is_none_or(|(known, _)| known.version <= manifest.version) {
            latest.put(base.to_owned(), (manifest.clone(), now));
        }
    }
}

/// What an update decides after looking at the current manifest.
#[derive(Debug)]
pub(crate) enum Decision<T> {
    /// Write this as the next version (version, put id and time are filled in).
    Write(Manifest, T),
    /// Nothing to write; answer with `T` and the current manifest.
    Keep(T),
    Reject(ProtocolError),
}

/// The manifest versions of one subtree.
pub(crate) struct Manifests<'a, S> {
    pub(crate) store: &'a S,
    pub(crate) layout: &'a Layout,
    pub(crate) cache: &'a ManifestCache,
    /// The request's time, by the function's clock.
    pub(crate) now: u64,
    /// How long a remembered latest version may serve as a guess.
    pub(crate) guess_for: u64,
    /// The version the client last heard of (`PER-3`): a guess when this process has none newer.
    pub(crate) hint: Option<u64>,
    /// Whether updates of one subtree wait for each other within this process.
    pub(crate) serialize: bool,
}

impl<S: Store> Manifests<'_, S> {
    /// Every stored version with its metadata, oldest first.
    pub(crate) async fn versions(&self) -> Result<Vec<(u64, ObjectMeta)>, ProtocolError> {
        let listed = self
            .store
            .list(&self.layout.manifests())
            .await
            .map_err(|e| store_failed("list manifests", e))?;
        let mut versions: Vec<(u64, ObjectMeta)> = listed
            .into_iter()
            .filter_map(|m| self.layout.manifest_version(&m.key).map(|v| (v, m)))
            .collect();
        versions.sort_by_key(|(v, _)| *v);
        Ok(versions)
    }

    /// One version; `None` when it does not exist (any more).
    pub(crate) async fn read(&self, version: u64) -> Result<Option<Arc<Manifest>>, ProtocolError> {
        let key = self.layout.manifest(version);
        if let Some(hit) = self.cache.get(&key) {
            return Ok(Some(hit));
        }
        let Some(bytes) =
            self.store.get(&key).await.map_err(|e| store_failed("read manifest", e))?
        else {
            return Ok(None);
        };
        let manifest: Manifest = serde_json::from_slice(&bytes)
            .map_err(|e| internal(format!("parse manifest {key}: {e}")))?;
        if manifest.version != version {
            return Err(internal(format!(
                "manifest {key} says it is version {}",
                manifest.version
            )));
        }
        let manifest = Arc::new(manifest);
        self.cache.put(key, manifest.clone());
        Ok(Some(manifest))
    }

    /// The latest version, or the empty manifest (version 0) for a new subtree.
    pub(crate) async fn latest(&self) -> Result<Arc<Manifest>, ProtocolError> {
        for _ in 0..MAX_ATTEMPTS {
            let Some((version, _)) = self.versions().await?.pop() else {
                return Ok(Arc::new(Manifest::empty()));
            };
            // Retention may delete a version between list and read only if a newer one exists,
            // so listing again finds that one.
            if let Some(manifest) = self.read(version).await? {
                self.cache.saw_latest(self.layout.base(), &manifest, self.now);
                return Ok(manifest);
            }
        }
        Err(internal("read latest manifest: it kept disappearing"))
    }

    /// The latest version, read forward from `known` while the next version exists: versions
    /// are contiguous, so the first one missing ends the history. A few reads instead of a
    /// listing (which some stores answer by walking the whole bucket); as current as a listing,
    /// since both are snapshots that the next create-only write checks.
    ///
    /// `known` must be young (created, or seen as latest, within half the grace period): then
    /// retention cannot have removed any version after it (`RET-1`), so a missing version
    /// really is the end.
    async fn latest_after(&self, known: Arc<Manifest>) -> Result<Arc<Manifest>, ProtocolError> {
        let mut latest = known;
        for _ in 0..FORWARD_READS {
            match self.read(latest.version + 1).await? {
                Some(next) => latest = next,
                None => {
                    self.cache.saw_latest(self.layout.base(), &latest, self.now);
                    return Ok(latest);
                }
            }
        }
        self.latest().await
    }

    /// The latest version this process knows of, else the store's. Good enough wherever a
    /// stale answer is caught later by a create-only write (`MAN-2`).
    pub(crate) async fn latest_guess(&self) -> Result<Arc<Manifest>, ProtocolError> {
        Ok(self.guess_or_latest().await?.0)
    }

    /// Like `latest_guess`, saying whether the answer is only a guess.
    async fn guess_or_latest(&self) -> Result<(Arc<Manifest>, bool), ProtocolError> {
        let seen_after = self.now.saturating_sub(self.guess_for);
        let remembered = self.cache.latest_guess(self.layout.base(), seen_after);
        if let Some(hint) = self.hint
            && remembered.as_ref().is_none_or(|m| m.version < hint)
            && let Some(hinted) = self.read(hint).await?
            // Young enough that its successor, if any, is still stored: the write of
            // `hint + 1` then collides with it (the rule the cache's guesses follow).
            && hinted.created_at >= seen_after
        {
            return Ok((hinted, true));
        }
        match remembered {
            Some(manifest) => Ok((manifest, true)),
            None => Ok((self.latest().await?, false)),
        }
    }

    /// Applies `decide` to the latest manifest and writes its result as the next version,
    /// re-reading and deciding again whenever another writer got there first.
    pub(crate) async fn update<T>(
        &self,
        mut decide: impl FnMut(&Manifest) -> Decision<T>,
    ) -> Result<(T, Arc<Manifest>), ProtocolError> {
        // Within one process, updates of a subtree go one at a time: on a store whose
        // create-only writes are not atomic, two racing writers could otherwise both win.
        let _serialized = match self.serialize {
            true => Some(self.cache.update_lock(self.layout.base()).lock().await),
            false => None,
        };
        // After the first attempt: a version known to exist and to be young, to read forward
        // from; `None` lists.
        let mut known: Option<Arc<Manifest>> = None;
        for attempt in 0..MAX_ATTEMPTS {
            // First from a guess (what this process last saw, or the client's hint). A write
            // checks the guess by itself (it fails if anything newer exists); answering or
            // refusing without a write does not, so those are decided again on the latest.
            let (current, guessed) = match known.take() {
                _ if attempt == 0 => self.guess_or_latest().await?,
                Some(known) => (self.latest_after(known).await?, false),
                None => (self.latest().await?, false),
            };
            let (mut next, answer) = match decide(&current) {
                Decision::Keep(_) | Decision::Reject(_) if guessed => {
                    known = Some(current);
                    continue;
                }
                Decision::Keep(answer) => return Ok((answer, current)),
                Decision::Reject(err) => return Err(err),
                Decision::Write(next, answer) => (next, answer),
            };
            next.version = current.version + 1;
            next.created_at = self.now;
            next.put_id = format!("{:032x}", rand::rng().random::<u128>());
            let key = self.layout.manifest(next.version);
            let body = Bytes::from(serde_json::to_vec(&next).map_err(|e| internal(e.to_string()))?);
            match store::create(self.store, &key, body).await {
                Ok(()) => {}
                Err(StoreError::AlreadyExists(_)) => {
                    // Either another writer won, or our own write landed and only its answer
                    // was lost (the store client retried): the put id tells them apart.
                    let stored = self.read(next.version).await?;
                    if stored.as_ref().is_none_or(|m| m.put_id != next.put_id) {
                        known = stored;
                        tokio::time::sleep(jitter()).await;
                        continue;
                    }
                }
                Err(e) => return Err(store_failed("write manifest", e)),
            }
            let next = Arc::new(next);
            self.cache.put(key, next.clone());
            self.cache.saw_latest(self.layout.base(), &next, self.now);
            return Ok((answer, next));
        }
        Err(ProtocolError::new(
            wkp1_protocol::ErrorCode::StoreUnavailable,
            "update manifest: too many concurrent writers; retry",
        ))
    }
}

fn jitter() -> std::time::Duration {
    std::time::Duration::from_millis(rand::rng().random_range(1..20))
}
