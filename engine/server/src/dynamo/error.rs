//! DynamoDB's error shape: `{"__type": "...#ValidationException", "message": "..."}` with the
//! status DynamoDB uses, so SDKs raise their usual exception classes.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::json;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Validation,
    ResourceNotFound,
    ResourceInUse,
    ConditionalCheckFailed,
    TransactionCanceled,
    IdempotentParameterMismatch,
    Serialization,
    UnknownOperation,
    MissingAuthenticationToken,
    UnrecognizedClient,
    InvalidSignature,
    Internal,
    Unavailable,
}

/// An error as a DynamoDB client sees it.
#[derive(Debug, Clone)]
pub struct DynamoError {
    pub kind: Kind,
    pub message: String,
    /// TransactionCanceledException's per-item reasons.
    pub reasons: Option<serde_json::Value>,
    /// ConditionalCheckFailed with ReturnValuesOnConditionCheckFailure = ALL_OLD.
    pub item: Option<serde_json::Value>,
}

impl DynamoError {
    pub fn new(kind: Kind, message: impl Into<String>) -> Self {
        Self { kind, message: message.into(), reasons: None, item: None }
    }

    pub fn validation(message: impl Into<String>) -> Self {
        Self::new(Kind::Validation, message)
    }

    pub fn not_found(table: &str) -> Self {
        Self::new(
            Kind::ResourceNotFound,
            format!("Requested resource not found: Table: {table} not found"),
        )
    }

    pub fn condition_failed() -> Self {
        Self::new(Kind::ConditionalCheckFailed, "The conditional request failed")
    }

    pub fn internal(message: impl Into<String>) -> Self {
        let message = message.into();
        tracing::error!("{message}");
        Self::new(Kind::Internal, "Internal server error")
    }

    fn type_name(&self) -> &'static str {
        match self.kind {
            Kind::Validation => "com.amazon.coral.validate#ValidationException",
            Kind::ResourceNotFound => "com.amazonaws.dynamodb.v20120810#ResourceNotFoundException",
            Kind::ResourceInUse => "com.amazonaws.dynamodb.v20120810#ResourceInUseException",
            Kind::ConditionalCheckFailed => {
                "com.amazonaws.dynamodb.v20120810#ConditionalCheckFailedException"
            }
            Kind::TransactionCanceled => {
                "com.amazonaws.dynamodb.v20120810#TransactionCanceledException"
            }
            Kind::IdempotentParameterMismatch => {
                "com.amazonaws.dynamodb.v20120810#IdempotentParameterMismatchException"
            }
            Kind::Serialization => "com.amazon.coral.service#SerializationException",
            Kind::UnknownOperation => "com.amazon.coral.service#UnknownOperationException",
            Kind::MissingAuthenticationToken => {
                "com.amazon.coral.service#MissingAuthenticationTokenException"
            }
            Kind::UnrecognizedClient => "com.amazon.coral.service#UnrecognizedClientException",
            Kind::InvalidSignature => "com.amazon.coral.service#InvalidSignatureException",
            Kind::Internal => "com.amazonaws.dynamodb.v20120810#InternalServerError",
            Kind::Unavailable => "com.amazonaws.dynamodb.v20120810#ServiceUnavailable",
        }
    }

    fn status(&self) -> StatusCode {
        match self.kind {
            Kind::Internal => StatusCode::INTERNAL_SERVER_ERROR,
            Kind::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
            Kind::MissingAuthenticationToken
            | Kind::UnrecognizedClient
            | Kind::InvalidSignature => StatusCode::BAD_REQUEST,
            _ => StatusCode::BAD_REQUEST,
        }
    }
}

impl From<weftkit_kv::Error> for DynamoError {
    fn from(err: weftkit_kv::Error) -> Self {
        match err {
            weftkit_kv::Error::InvalidArgument(m) => DynamoError::validation(m),
            other => DynamoError::internal(format!("storage: {other}")),
        }
    }
}

impl IntoResponse for DynamoError {
    fn into_response(self) -> Response {
        let mut body = json!({"__type": self.type_name(), "message": self.message});
        if let Some(reasons) = &self.reasons {
            body["CancellationReasons"] = reasons.clone();
        }
        if let Some(item) = &self.item {
            body["Item"] = item.clone();
        }
        (self.status(), [("content-type", "application/x-amz-json-1.0")], body.to_string())
            .into_response()
    }
}
