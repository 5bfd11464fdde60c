//! Why a check did not pass: the one error type checks and the session that runs their
//! requests both speak, apart from both so neither imports the other back.

/// Why a check did not pass.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CheckError {
    #[error("{0}")]
    Fail(String),
    #[error("skipped: {0}")]
    Skip(String),
}

/// Fails a check with a formatted message.
#[macro_export]
macro_rules! fail {
    ($($arg:tt)*) => { return Err($crate::verdict::CheckError::Fail(format!($($arg)*))) };
}

/// What a check's body returns.
pub type CheckResult = Result<(), CheckError>;
