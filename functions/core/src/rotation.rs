//! Keys kept in a secret service (AWS Secrets Manager or SSM, GCP Secret Manager, Azure Key
//! Vault): read at start and again once the cached copy is older than the refresh interval, so
//! a rotation reaches warm instances without a redeploy, and most requests make no call for it.
//! An adapter implements [`KeyService`] for its SDK and serves through a [`RotatingFunction`].

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};
use tokio::sync::Mutex;
use wkp1_protocol::KeyRing;
use wkp1_protocol::signing::KeyError;

use crate::config::{ConfigError, FunctionConfig};
use crate::{Function, Store};

/// A service that stores the key ring as text, one `KEY_ID SECRET` line per key.
pub trait KeyService: Send + Sync + std::fmt::Debug {
    /// What to call it in messages, e.g. `Secrets Manager secret wkp1-keys`.
    fn describe(&self) -> String;

    /// The stored text. An error says what failed, never what the text holds.
    fn fetch(&self) -> impl Future<Output = Result<String, String>> + Send;
}

/// Where a function's keys come from.
#[derive(Debug)]
pub enum KeySource<K> {
    /// Fixed for the life of the deployment (`WKP1_KEYS`, `WKP1_KEYS_FILE`).
    Static(KeyRing),
    /// Read from `service`, and again every `refresh`.
    Service { service: K, refresh: Duration },
}

/// Why keys could not be read. Messages name the source, never a secret.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum KeysError {
    #[error("read keys from {origin}: {message}")]
    Fetch { origin: String, message: String },
    #[error("parse keys of {origin} (one `KEY_ID SECRET` line per key): {source}")]
    Parse { origin: String, source: KeyError },
    #[error(transparent)]
    Config(#[from] ConfigError),
}

/// A key ring and the moment it was read.
#[derive(Debug)]
struct Loaded {
    keys: KeyRing,
    /// SHA-256 of the stored text, to tell a rotation from a re-read of the same keys without
    /// keeping the secrets' text around (or in any `Debug` output).
    digest: [u8; 32],
    at: Instant,
}

impl<K: KeyService> KeySource<K> {
    async fn load(&self) -> Result<Loaded, KeysError> {
        let service = match self {
            Self::Static(keys) => {
                return Ok(Loaded { keys: keys.clone(), digest: [0; 32], at: Instant::now() });
            }
            Self::Service { service, .. } => service,
        };
        let origin = service.describe();
        let text = service
            .fetch()
            .await
            .map_err(|message| KeysError::Fetch { origin: origin.clone(), message })?;
        // An empty ring is a parse error: it could authenticate nothing.
        let keys = KeyRing::parse(&text).map_err(|source| KeysError::Parse { origin, source })?;
        Ok(Loaded { keys, digest: Sha256::digest(text.as_bytes()).into(), at: Instant::now() })
    }

    fn is_stale(&self, at: Instant) -> bool {
        match self {
            Self::Static(_) => false,
            Self::Service { refresh, .. } => at.elapsed() >= *refresh,
        }
    }
}

/// A function kept across warm invocations and rebuilt when its keys rotate.
#[derive(Debug)]
pub struct RotatingFunction<S, K> {
    store: S,
    config: FunctionConfig,
    keys: KeySource<K>,
    current: Mutex<Current<S>>,
}

#[derive(Debug)]
struct Current<S> {
    function: Arc<Function<S>>,
    loaded: Loaded,
}

impl<S: Store + Clone, K: KeyService> RotatingFunction<S, K> {
    /// Reads the keys and builds the function; run once per cold start.
    pub async fn new(
        store: S,
        config: FunctionConfig,
        keys: KeySource<K>,
    ) -> Result<Self, KeysError> {
        let loaded = keys.load().await?;
        let function = Arc::new(Function::new(store.clone(), loaded.keys.clone(), config.clone())?);
        Ok(Self { store, config, keys, current: Mutex::new(Current { function, loaded }) })
    }

    /// The function to serve with: the cached one, or, once its keys are stale, one with the
    /// keys read again. A failed re-read keeps the cached keys (logged) rather than failing
    /// requests: the keys only change on rotation, and the old ones stay valid through it.
    pub async fn function(&self) -> Arc<Function<S>> {
        let mut current = self.current.lock().await;
        if !self.keys.is_stale(current.loaded.at) {
            return current.function.clone();
        }
        match self.keys.load().await {
            Ok(loaded) if loaded.digest == current.loaded.digest => current.loaded.at = loaded.at,
            Ok(loaded) => {
                match Function::new(self.store.clone(), loaded.keys.clone(), self.config.clone()) {
                    Ok(function) => {
                        tracing::info!(keys = loaded.keys.len(), "key ring rotated");
                        *current = Current { function: Arc::new(function), loaded };
                    }
                    Err(err) => {
                        tracing::error!("keeping the previous keys: {err}");
                        current.loaded.at = loaded.at;
                    }
                }
            }
            Err(err) => {
                // Try again after another interval, not on every request while the service
                // is down.
                tracing::error!("keeping the previous keys: {err}");
                current.loaded.at = Instant::now();
            }
        }
        current.function.clone()
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex as StdMutex;

    use bytes::Bytes;
    use http_body_util::Full;
    use sha2::{Digest, Sha256};
    use wkp1_protocol::signing::{Signer, unix_now};
    use wkp1_protocol::{KeyId, Secret, Subtree};

    use super::*;
    use crate::store::object_store::ObjectStoreBackend;

    /// A key service whose text the test sets; `None` fails every read.
    #[derive(Debug, Default)]
    struct Held(StdMutex<Option<String>>);

    impl KeyService for &'static Held {
        fn describe(&self) -> String {
            "the test's key service".into()
        }

        async fn fetch(&self) -> Result<String, String> {
            self.0.lock().unwrap().clone().ok_or_else(|| "unreachable".into())
        }
    }

    fn secret(fill: u8) -> Secret {
        Secret::from_bytes(vec![fill; 32]).unwrap()
    }

    fn line(id: &str, fill: u8) -> String {
        format!("{id} {}\n", secret(fill).to_base64())
    }

    fn store() -> ObjectStoreBackend {
        ObjectStoreBackend::new(Arc::new(object_store::memory::InMemory::new()), false)
    }

    async fn start(
        held: &'static Held,
        refresh: Duration,
    ) -> Result<RotatingFunction<ObjectStoreBackend, &'static Held>, KeysError> {
        let keys = KeySource::Service { service: held, refresh };
        RotatingFunction::new(store(), FunctionConfig::default(), keys).await
    }

    /// Whether the function authenticates a restore signed with key `id` (secret `fill`s).
    async fn accepts(
        rotating: &RotatingFunction<ObjectStoreBackend, &'static Held>,
        id: &str,
        fill: u8,
    ) -> bool {
        let path = format!("/v1/restore/{}", Subtree::new("kv", "orders", "r0").unwrap().path());
        let mut request = http::Request::get(&path).body(Full::new(Bytes::new())).unwrap();
        let hash = hex::encode(Sha256::digest(b""));
        Signer::new(KeyId::new(id).unwrap(), secret(fill))
            .sign(&http::Method::GET, &path, "", request.headers_mut(), &hash, unix_now())
            .unwrap();
        let status = rotating.function().await.handle(request).await.status();
        assert!(status == 200 || status == 401, "{status}");
        status == 200
    }

    fn set(held: &Held, text: Option<String>) {
        *held.0.lock().unwrap() = text;
    }

    #[tokio::test]
    async fn a_rotation_is_picked_up_once_stale_and_a_failed_read_keeps_the_keys() {
        let held: &'static Held = Box::leak(Box::default());
        set(held, Some(line("k1", 1)));
        let rotating = start(held, Duration::ZERO).await.unwrap();
        assert!(accepts(&rotating, "k1", 1).await);

        set(held, Some(line("k2", 2)));
        assert!(accepts(&rotating, "k2", 2).await, "rotated to k2");
        assert!(!accepts(&rotating, "k1", 1).await, "k1 left the ring");

        set(held, None);
        assert!(accepts(&rotating, "k2", 2).await, "a failed read keeps the keys");
        set(held, Some(String::new()));
        assert!(accepts(&rotating, "k2", 2).await, "an empty ring is not a rotation");
    }

    #[tokio::test]
    async fn fresh_keys_are_not_read_again_and_a_bad_start_names_the_source() {
        let held: &'static Held = Box::leak(Box::default());
        set(held, Some(line("k1", 1)));
        let rotating = start(held, Duration::from_secs(3600)).await.unwrap();
        set(held, Some(line("k2", 2)));
        assert!(accepts(&rotating, "k1", 1).await, "keys within the refresh are kept");
        assert!(!accepts(&rotating, "k2", 2).await, "and not read again");

        set(held, Some("k3 not-base64!".into()));
        let err = start(held, Duration::ZERO).await.unwrap_err();
        assert!(err.to_string().contains("the test's key service"), "{err}");
        assert!(!err.to_string().contains("not-base64"), "the text reached the error: {err}");
        set(held, Some(String::new()));
        let err = start(held, Duration::ZERO).await.unwrap_err();
        assert!(matches!(err, KeysError::Parse { source: KeyError::Empty, .. }), "{err}");
    }
}
