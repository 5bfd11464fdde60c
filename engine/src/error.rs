//! Errors, by what went wrong. Messages say "verb noun: cause".

/// Every error WeftKitKV returns.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The caller passed something invalid; nothing was changed.
    #[error("invalid argument: {0}")]
    InvalidArgument(String),
    #[error("column family {0:?} does not exist")]
    NoSuchFamily(String),
    #[error("column family {0:?} already exists")]
    FamilyExists(String),
    /// The database was created in another mode than the one asked for.
    #[error(
        "{path} is a {found} database; it cannot be opened as {asked} (the mode is fixed when a database is created)"
    )]
    ModeMismatch { path: String, found: &'static str, asked: &'static str },
    #[error("merge operator {0:?} is not registered (register it in Options before opening)")]
    UnknownMergeOperator(String),
    #[error("merge: {0}")]
    Merge(String),
    /// Stored bytes that do not decode: corruption or a bug.
    #[error("corrupt data: {0}")]
    Corrupt(String),
    /// A snapshot or delta that does not apply to this database.
    #[error("import: {0}")]
    Import(String),
    /// A snapshot or delta could not be written.
    #[error("export: {0}")]
    Export(String),
    #[error("{context}: {source}")]
    Io { context: String, source: std::io::Error },
    /// The storage engine underneath failed.
    #[error("{engine}: {message}")]
    Storage { engine: &'static str, message: String },
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    pub(crate) fn io(context: impl Into<String>, source: std::io::Error) -> Self {
        Error::Io { context: context.into(), source }
    }

    pub(crate) fn invalid(message: impl Into<String>) -> Self {
        Error::InvalidArgument(message.into())
    }
}

impl From<fjall::Error> for Error {
    fn from(err: fjall::Error) -> Self {
        Error::Storage { engine: "fjall", message: err.to_string() }
    }
}

impl From<redb::Error> for Error {
    fn from(err: redb::Error) -> Self {
        Error::Storage { engine: "redb", message: err.to_string() }
    }
}

macro_rules! from_redb {
    ($($t:ty),*) => {$(
        impl From<$t> for Error {
            fn from(err: $t) -> Self {
                Error::from(redb::Error::from(err))
            }
        }
    )*};
}

from_redb!(
    redb::DatabaseError,
    redb::TransactionError,
    redb::TableError,
    redb::StorageError,
    redb::CommitError,
    redb::SetDurabilityError
);

impl Error {
    /// A segment that could not be written, while exporting.
    pub(crate) fn export(err: wkp1_protocol::segment::SegmentError) -> Self {
        Error::Export(err.to_string())
    }

    /// A segment that could not be read, while importing.
    pub(crate) fn import(err: wkp1_protocol::segment::SegmentError) -> Self {
        Error::Import(err.to_string())
    }
}
