//! Client errors: refused by the function, unreachable, or data that failed verification.

use std::time::Duration;

use wkp1_protocol::{ErrorCode, ProtocolError};

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ClientError {
    /// The function answered with a WKP-1 error.
    #[error("{endpoint}: function refused with {status}: {error}")]
    Refused {
        endpoint: &'static str,
        status: u16,
        error: Box<ProtocolError>,
        retry_after: Option<Duration>,
    },
    /// The function could not be reached, or its answer was not WKP-1.
    #[error("{endpoint}: {message}")]
    Transport { endpoint: &'static str, message: String, retryable: bool },
    /// The object store refused a presigned request for good: the URL expired, its signing
    /// credentials lapsed, or the object is gone. A restore answers it with a new plan, whose
    /// URLs are fresh (`LARGE-7`, `REST-6`). The URL is never part of the message: it carries a
    /// signature.
    #[error("{endpoint}: object store refused a presigned {method} with HTTP {status}{detail}")]
    PresignedRefused { endpoint: &'static str, method: String, status: u16, detail: String },
    /// Restored data failed verification: nothing of it may be applied (`CLI-5`).
    #[error("restore: {0}")]
    Integrity(String),
    #[error("{context}: {source}")]
    Io { context: String, source: std::io::Error },
    #[error("client configuration: {0}")]
    Config(String),
}

impl ClientError {
    /// Whether the same request may be sent again (`CLI-3`).
    pub fn is_retryable(&self) -> bool {
        match self {
            ClientError::Refused { error, .. } => error.code.is_retryable(),
            ClientError::Transport { retryable, .. } => *retryable,
            _ => false,
        }
    }

    /// The WKP-1 error code, when the function refused.
    pub fn code(&self) -> Option<ErrorCode> {
        match self {
            ClientError::Refused { error, .. } => Some(error.code),
            _ => None,
        }
    }

    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            ClientError::Refused { retry_after, .. } => *retry_after,
            _ => None,
        }
    }

    pub(crate) fn io(context: impl Into<String>, source: std::io::Error) -> Self {
        ClientError::Io { context: context.into(), source }
    }
}
