//! # wkp1-function
//!
//! Everything SPEC.md requires of a WKP-1 function, written once, over a small [`Store`]
//! trait. A cloud adapter only turns its trigger into an `http::Request`, hands it to
//! [`Function::handle`], and implements [`Store`] for its SDK.
//!
//! # Layout
//!
//! - [`store`]: the object-store seam, the start-up probe, and (feature `object-store`) the
//!   `object_store` adapter and store URLs.
//! - [`layout`]: object names inside a subtree.
//! - [`config`]: limits, retention and the clock.
//! - `function`: routing, authentication, dispatch, logging.
//! - `ctx`: what the endpoint handlers know of one authenticated request.
//! - `restore`, `persist`: the endpoints.
//! - `rules`: the commit rules as pure functions (fencing, idempotency, chains).
//! - `manifests`: the latest manifest and its compare-and-swap.
//! - `parts`: segment bytes as create-only part objects.
//! - `retention`: the GC boundary.
//! - [`rotation`]: keys kept in a secret service, re-read while warm ([`rotation::RotatingFunction`]).
//! - `response`: response bodies and headers.
//! - [`settings`] (feature `settings`): the flags every function binary shares.
//! - [`router`] (feature `axum`): the HTTP application of functions served by axum.

pub mod config;
mod ctx;
mod error;
mod function;
pub mod layout;
mod manifests;
mod parts;
mod persist;
mod response;
mod restore;
mod retention;
pub mod rotation;
#[cfg(feature = "axum")]
pub mod router;
mod rules;
#[cfg(feature = "settings")]
pub mod settings;
pub mod store;

pub use config::{Clock, ConfigError, FunctionConfig};
pub use function::Function;
pub use parts::RequestBody;
pub use response::ResponseBody;
pub use retention::RetentionReport;
pub use store::{ObjectMeta, PutMode, Store, StoreError};
