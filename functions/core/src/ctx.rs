//! What every endpoint handler knows about one authenticated request: the subtree, its object
//! layout, the verified headers, and the function's store, configuration and manifest cache.
//! Handlers depend on this, never on the dispatcher that built it.

use std::sync::Arc;

use wkp1_protocol::Subtree;
use wkp1_protocol::signing::Authenticated;

use crate::config::FunctionConfig;
use crate::layout::Layout;
use crate::manifests::{ManifestCache, Manifests};

/// One authenticated request, as the endpoint handlers see it.
pub(crate) struct Ctx<'a, S> {
    pub(crate) store: &'a Arc<S>,
    pub(crate) config: &'a FunctionConfig,
    pub(crate) cache: &'a ManifestCache,
    pub(crate) subtree: Subtree,
    pub(crate) layout: Layout,
    pub(crate) auth: Authenticated,
    pub(crate) request_id: String,
    pub(crate) now: u64,
    /// The client's `wkp-manifest-version`, a guess of the latest version (`PER-3`).
    pub(crate) manifest_hint: Option<u64>,
}

impl<S> Ctx<'_, S> {
    pub(crate) fn manifests(&self) -> Manifests<'_, S> {
        Manifests {
            store: self.store,
            layout: &self.layout,
            cache: self.cache,
            now: self.now,
            guess_for: self.config.grace_seconds / 2,
            hint: self.manifest_hint,
            serialize: self.config.serialize_updates,
        }
    }

    pub(crate) fn config(&self) -> &FunctionConfig {
        self.config
    }

    pub(crate) fn store(&self) -> &Arc<S> {
        self.store
    }
}
