//! Turning store failures into protocol errors without leaking store internals (`ERR-4`).

use wkp1_protocol::{ErrorCode, ProtocolError};

use crate::store::StoreError;

/// "verb noun" context plus the store failure, logged in full, answered in general terms.
pub(crate) fn store_failed(doing: &str, err: StoreError) -> ProtocolError {
    tracing::warn!(error = %err, "{doing}: store failure");
    let code = match err {
        StoreError::Timeout(_) => ErrorCode::StoreTimeout,
        _ => ErrorCode::StoreUnavailable,
    };
    ProtocolError::new(code, format!("{doing}: the object store failed; retry later"))
}

pub(crate) fn invalid(message: impl Into<String>, requirement: &str) -> ProtocolError {
    ProtocolError::new(ErrorCode::InvalidRequest, message).requirement(requirement)
}

pub(crate) fn internal(message: impl Into<String>) -> ProtocolError {
    let message = message.into();
    tracing::error!("{message}");
    ProtocolError::new(ErrorCode::Internal, message)
}
