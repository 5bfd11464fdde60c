//! Protocol errors: a stable machine-readable code, the HTTP status it travels with, and the
//! JSON error body (SPEC.md section "Errors", `ERR-1` to `ERR-4`).
//!
//! ```text
//! HTTP/1.1 409 Conflict
//! Content-Type: application/json
//!
//! {"error":{"code":"generation_fenced","message":"generation 3 was superseded by 4",
//!           "requirement":"GEN-4","request_id":"7f2c...","details":{"current_generation":4}}}
//! ```

use std::fmt;

use serde::{Deserialize, Serialize};

/// Every error code WKP-1 defines. The string form is the wire form and never changes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum ErrorCode {
    // 400
    InvalidIdentifier,
    InvalidRequest,
    UnsupportedVersion,
    // 401
    MissingAuthentication,
    UnknownKey,
    TimestampOutOfRange,
    SignatureMismatch,
    ContentHashMismatch,
    // 404
    NotFound,
    SegmentNotFound,
    // 405
    MethodNotAllowed,
    // 409
    GenerationFenced,
    GenerationUnknown,
    GenerationClosed,
    SegmentConflict,
    ChainGap,
    ChainOverlap,
    // 413
    PayloadTooLarge,
    // 422
    InvalidSegment,
    // 429
    RateLimited,
    // 5xx
    Internal,
    StoreUnavailable,
    StoreTimeout,
}

impl ErrorCode {
    /// All codes, in the order SPEC.md lists them.
    pub const ALL: &'static [ErrorCode] = &[
        Self::InvalidIdentifier,
        Self::InvalidRequest,
        Self::UnsupportedVersion,
        Self::MissingAuthentication,
        Self::UnknownKey,
        Self::TimestampOutOfRange,
        Self::SignatureMismatch,
        Self::ContentHashMismatch,
        Self::NotFound,
        Self::SegmentNotFound,
        Self::MethodNotAllowed,
        Self::GenerationFenced,
        Self::GenerationUnknown,
        Self::GenerationClosed,
        Self::SegmentConflict,
        Self::ChainGap,
        Self::ChainOverlap,
        Self::PayloadTooLarge,
        Self::InvalidSegment,
        Self::RateLimited,
        Self::Internal,
        Self::StoreUnavailable,
        Self::StoreTimeout,
    ];

    /// The HTTP status this code is sent with (`ERR-2`).
    ///
    /// `UnsupportedVersion` is 400 when named by the `WKP-Version` header; a request for an
    /// unknown path version (`/v2/...`) is 404 with the same code (see `VER-2`).
    pub fn status(self) -> u16 {
        use ErrorCode::*;
        match self {
            InvalidIdentifier | InvalidRequest | UnsupportedVersion => 400,
            MissingAuthentication
            | UnknownKey
            | TimestampOutOfRange
            | SignatureMismatch
            | ContentHashMismatch => 401,
            NotFound | SegmentNotFound => 404,
            MethodNotAllowed => 405,
            GenerationFenced | GenerationUnknown | GenerationClosed | SegmentConflict
            | ChainGap | ChainOverlap => 409,
            PayloadTooLarge => 413,
            InvalidSegment => 422,
            RateLimited => 429,
            Internal => 500,
            StoreUnavailable => 503,
            StoreTimeout => 504,
        }
    }

    /// The wire string, e.g. `generation_fenced`.
    pub fn as_str(self) -> &'static str {
        use ErrorCode::*;
        match self {
            InvalidIdentifier => "invalid_identifier",
            InvalidRequest => "invalid_request",
            UnsupportedVersion => "unsupported_version",
            MissingAuthentication => "missing_authentication",
            UnknownKey => "unknown_key",
            TimestampOutOfRange => "timestamp_out_of_range",
            SignatureMismatch => "signature_mismatch",
            ContentHashMismatch => "content_hash_mismatch",
            NotFound => "not_found",
            SegmentNotFound => "segment_not_found",
            MethodNotAllowed => "method_not_allowed",
            GenerationFenced => "generation_fenced",
            GenerationUnknown => "generation_unknown",
            GenerationClosed => "generation_closed",
            SegmentConflict => "segment_conflict",
            ChainGap => "chain_gap",
            ChainOverlap => "chain_overlap",
            PayloadTooLarge => "payload_too_large",
            InvalidSegment => "invalid_segment",
            RateLimited => "rate_limited",
            Internal => "internal",
            StoreUnavailable => "store_unavailable",
            StoreTimeout => "store_timeout",
        }
    }

    /// Whether a client may retry the same request unchanged (`CLI-3`).
    pub fn is_retryable(self) -> bool {
        matches!(
            self,
            ErrorCode::RateLimited
                | ErrorCode::Internal
                | ErrorCode::StoreUnavailable
                | ErrorCode::StoreTimeout
        )
    }
}

impl fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A protocol error as a function reports it: code, human message, the requirement that was
/// violated and optional structured details.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ProtocolError {
    pub code: ErrorCode,
    pub message: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub requirement: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub details: Option<serde_json::Value>,
    /// The status when it is not the code's usual one (`unsupported_version` on a path: 404).
    #[serde(skip)]
    pub status_override: Option<u16>,
}

impl ProtocolError {
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
            requirement: None,
            request_id: None,
            details: None,
            status_override: None,
        }
    }

    /// Sends the error with another status than the code's usual one.
    pub fn with_status(mut self, status: u16) -> Self {
        self.status_override = Some(status);
        self
    }

    /// Names the SPEC.md requirement the request violated, e.g. `AUTH-6`.
    pub fn requirement(mut self, id: &str) -> Self {
        self.requirement = Some(id.to_owned());
        self
    }

    pub fn details(mut self, details: serde_json::Value) -> Self {
        self.details = Some(details);
        self
    }

    pub fn request_id(mut self, id: impl Into<String>) -> Self {
        self.request_id = Some(id.into());
        self
    }

    pub fn status(&self) -> u16 {
        self.status_override.unwrap_or(self.code.status())
    }

    /// The JSON error body (`ERR-1`).
    pub fn to_body(&self) -> ErrorBody {
        ErrorBody { error: self.clone() }
    }
}

impl fmt::Display for ProtocolError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({}): {}", self.code, self.status(), self.message)
    }
}

impl std::error::Error for ProtocolError {}

/// `{"error": {...}}`, the body of every non-2xx response.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ErrorBody {
    pub error: ProtocolError,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wire_strings_match_serde_and_are_unique() {
        let mut seen = std::collections::HashSet::new();
        for code in ErrorCode::ALL {
            let json = serde_json::to_string(code).unwrap();
            assert_eq!(json, format!("\"{}\"", code.as_str()));
            assert!(seen.insert(code.as_str()), "duplicate {code}");
            let back: ErrorCode = serde_json::from_str(&json).unwrap();
            assert_eq!(back, *code);
        }
    }

    #[test]
    fn statuses_are_the_documented_ones() {
        assert_eq!(ErrorCode::TimestampOutOfRange.status(), 401);
        assert_eq!(ErrorCode::GenerationFenced.status(), 409);
        assert_eq!(ErrorCode::PayloadTooLarge.status(), 413);
        assert_eq!(ErrorCode::InvalidSegment.status(), 422);
        assert_eq!(ErrorCode::StoreUnavailable.status(), 503);
        for code in ErrorCode::ALL {
            assert!((400..600).contains(&code.status()));
        }
    }

    #[test]
    fn error_body_shape_is_stable() {
        let err = ProtocolError::new(ErrorCode::GenerationFenced, "generation 3 was superseded")
            .requirement("GEN-4")
            .details(serde_json::json!({"current_generation": 4}));
        let json = serde_json::to_value(err.to_body()).unwrap();
        assert_eq!(json["error"]["code"], "generation_fenced");
        assert_eq!(json["error"]["requirement"], "GEN-4");
        assert_eq!(json["error"]["details"]["current_generation"], 4);
        assert!(json["error"].get("request_id").is_none());
        let back: ErrorBody = serde_json::from_value(json).unwrap();
        assert_eq!(back.error, err);
    }
}
