//! The language-neutral test vectors of `test-vectors/`, and the JSON Schemas that describe
//! them, built into the crate so tools (`wkp1-conformance vectors`) carry them anywhere.

/// Request signing cases (`AUTH-1` to `AUTH-8`).
pub const SIGNING: &str = include_str!("../test-vectors/signing.json");
/// Segment encoding cases (`SEG-1` to `SEG-8`).
pub const SEGMENTS: &str = include_str!("../test-vectors/segments.json");
/// JSON Schema (2020-12) of [`SIGNING`].
pub const SIGNING_SCHEMA: &str = include_str!("../test-vectors/signing.schema.json");
/// JSON Schema (2020-12) of [`SEGMENTS`].
pub const SEGMENTS_SCHEMA: &str = include_str!("../test-vectors/segments.schema.json");
