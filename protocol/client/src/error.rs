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
