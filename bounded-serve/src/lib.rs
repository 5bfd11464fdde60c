//! # bounded-serve
//!
//! Serves an axum [`Router`](axum::Router) over HTTP/1.1 so that no one client can hold the
//! server: connections are capped, the request head is bounded in size and in time, and a
//! request body must keep arriving at a minimum rate. The self-hosted WKP-1 function and the
//! `weftkit-kv` server both serve through it.
//!
//! # Layout
//!
//! - [`limits`]: the bounds and their defaults.
//! - [`accept`]: the accept loop (hyper's HTTP/1.1 connection, graceful shutdown, the
//!   connection cap and its 503).
//! - `body_rate`: the request body wrapper that cuts a body arriving too slowly (408).
//! - `testing` (feature `testing`): hostile clients on raw TCP for servers' tests.

pub mod accept;
mod body_rate;
pub mod limits;
#[cfg(feature = "testing")]
pub mod testing;

pub use accept::serve;
pub use limits::Limits;
