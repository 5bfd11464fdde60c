//! # wkp1-selfhosted
//!
//! The self-hosted WKP-1 function: [`wkp1_function::Function`] served by axum through
//! `bounded-serve`, storing through the `object_store` crate (store URLs:
//! [`wkp1_function::store::url`]). It is also the long-running sidecar of the `container`
//! deployment mode.
//!
//! # Layout
//!
//! - [`settings`]: flags and environment variables.
//! - [`serve`]: the server (the router is [`wkp1_function::router`]).

pub mod settings;

use std::sync::Arc;

pub use bounded_serve::Limits;
use wkp1_function::store::object_store::ObjectStoreBackend;
use wkp1_function::{Function, Store};

/// The function this server runs.
pub type SelfHosted = Function<ObjectStoreBackend>;

/// Serves `function` on `listener` within `limits` until `shutdown` completes, then lets
/// in-flight requests finish (uploads included).
pub async fn serve<S: Store>(
    listener: tokio::net::TcpListener,
    function: Arc<Function<S>>,
    limits: Limits,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    bounded_serve::serve(listener, wkp1_function::router::router(function), limits, shutdown).await
}
