//! The `weftkit-kv` server: WeftKitKV behind the DynamoDB JSON 1.0 protocol, with its state kept
//! alive across container recycles through WKP-1.
//!
//! - [`dynamo`]: the DynamoDB operations over a database.
//! - [`persist`]: WKP-1 settings and the agent (restore, ticks, final flush).
//! - [`http`]: the routes.
//! - [`server`]: the process's life from boot to the final flush.

pub mod dynamo;
pub mod http;
pub mod persist;
pub mod server;
