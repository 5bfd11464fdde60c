#![doc = include_str!("../README.md")]
//!
//! # Layout
//!
//! - [`ids`]: subtree identifiers and their grammar.
//! - [`endpoint`]: the three endpoints, their paths and query parameters.
//! - [`headers`]: header names and media types.
//! - [`signing`]: canonical requests, HMAC-SHA256 signatures, key rings, verification.
//! - [`segment`]: the segment format, streaming encode, decode and verification.
//! - [`manifest`]: the manifest, restore plans and the other JSON bodies.
//! - [`chain`]: validation of a snapshot-and-delta chain.
//! - [`clock`]: an injectable Unix clock.
//! - [`fencing`]: the typed `details` of a generation refusal.
//! - [`error`]: error codes, their status codes and the JSON error body.
//! - [`version`]: protocol versions and their compatibility.
//! - [`vectors`]: the test vectors and their JSON Schemas.

pub mod chain;
pub mod clock;
pub mod endpoint;
pub mod error;
pub mod fencing;
pub mod headers;
pub mod ids;
pub mod manifest;
pub mod segment;
pub mod signing;
pub mod vectors;
pub mod version;

pub use chain::{ChainError, validate_chain};
pub use clock::Clock;
pub use endpoint::{Endpoint, WkpPath};
pub use error::{ErrorBody, ErrorCode, ProtocolError};
pub use fencing::FencingDetails;
pub use ids::{Identifier, Subtree};
pub use segment::{SegmentHeader, SegmentKind, SegmentReader, SegmentVerifier, SegmentWriter};
pub use signing::{KeyId, KeyRing, Secret, Signer, Verifier};
pub use version::Version;
