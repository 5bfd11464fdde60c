//! Header names and media types (SPEC.md section "Headers").
//!
//! Every request header whose name starts with `wkp-` is covered by the signature, except
//! `wkp-signature` itself (`AUTH-2`). Names are lower case here because HTTP header names are
//! case-insensitive and the canonical request uses lower case.

/// Protocol version the sender speaks, `MAJOR.MINOR` (`VER-1`).
pub const VERSION: &str = "wkp-version";
/// Which shared secret signed the request (`AUTH-4`).
pub const KEY_ID: &str = "wkp-key-id";
/// Unix seconds when the request was signed (`AUTH-6`).
pub const TIMESTAMP: &str = "wkp-timestamp";
/// Lower-case hex SHA-256 of the request body; of the empty string when there is none (`AUTH-3`).
pub const CONTENT_SHA256: &str = "wkp-content-sha256";
/// The writer generation a persist or flush is made under (`GEN-3`).
pub const GENERATION: &str = "wkp-generation";
/// Optional: the manifest version of the client's last answer for the subtree, a hint the
/// function may use to find the latest manifest without listing (`PER-3`).
pub const MANIFEST_VERSION: &str = "wkp-manifest-version";
/// Optional caller-chosen id, echoed in the response and in logs.
pub const REQUEST_ID: &str = "wkp-request-id";
/// Lower-case hex HMAC-SHA256 of the canonical request (`AUTH-1`).
pub const SIGNATURE: &str = "wkp-signature";

/// Prefix of every header the signature covers.
pub const SIGNED_PREFIX: &str = "wkp-";

/// Media type of a segment body, in requests and in restore responses.
pub const SEGMENT_MEDIA_TYPE: &str = "application/vnd.wkp1.segment";
/// Media type of every JSON body.
pub const JSON_MEDIA_TYPE: &str = "application/json";
