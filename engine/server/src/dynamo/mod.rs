//! The DynamoDB JSON 1.0 protocol over a WeftKitKV database.
//!
//! - [`value`]: attribute values; [`number`]: DynamoDB's exact numbers.
//! - [`keys`]: order-preserving item keys.
//! - [`expr`]: condition, update, projection expressions.
//! - `tables`, `items`, `scan`, `batch`: the operations.
//! - `locks`: per-item serialisation of read-modify-write operations, and the write gate.
//! - [`sigv4`]: request authentication.
//! - [`error`]: DynamoDB's error shapes.

pub mod error;
pub mod expr;
pub mod keys;
pub mod number;
pub mod sigv4;
pub mod value;

mod batch;
mod items;
mod locks;
mod scan;
mod tables;

use serde::de::DeserializeOwned;
use serde_json::Value as Json;
use weftkit_kv::{Database, SyncMode};
use wkp1_protocol::Clock;

pub use error::{DynamoError, Kind};

/// The `X-Amz-Target` prefix of every operation.
pub const TARGET_PREFIX: &str = "DynamoDB_20120810.";

/// How the service writes and describes itself.
#[derive(Debug, Clone)]
pub struct ServiceOptions {
    /// Reported in table ARNs.
    pub region: String,
    /// Durability of each acknowledged write on the local volume.
    pub sync: SyncMode,
    /// "Now" for item TTLs, in Unix seconds.
    pub clock: Clock,
}

impl Default for ServiceOptions {
    fn default() -> Self {
        Self { region: "us-east-1".into(), sync: SyncMode::Buffered, clock: Clock::system() }
    }
}

/// DynamoDB's operations over one database.
#[derive(Debug)]
pub struct Service {
    db: Database,
    catalog: tables::Catalog,
    locks: locks::Locks,
    tokens: batch::Tokens,
    region: String,
    sync: SyncMode,
    clock: Clock,
}

fn parse<T: DeserializeOwned>(body: &[u8]) -> Result<T, DynamoError> {
    serde_json::from_slice(body).map_err(|e| {
        if e.is_data() {
            DynamoError::validation(e.to_string())
        } else {
            DynamoError::new(
                Kind::Serialization,
                format!("the request body is not valid JSON: {e}"),
            )
        }
    })
}

impl Service {
    pub fn new(db: Database, options: ServiceOptions) -> Result<Self, DynamoError> {
        Ok(Self {
            catalog: tables::Catalog::load(&db)?,
            db,
            locks: locks::Locks::default(),
            tokens: batch::Tokens::default(),
            region: options.region,
            sync: options.sync,
            clock: options.clock,
        })
    }

    pub fn database(&self) -> &Database {
        &self.db
    }

    /// Runs the operation named by an `X-Amz-Target` header on a JSON body.
    pub fn call(&self, target: &str, body: &[u8]) -> Result<Json, DynamoError> {
        let unknown = || {
            DynamoError::new(
                Kind::UnknownOperation,
                format!("weftkit-kv does not implement {target}"),
            )
        };
        let operation = target.strip_prefix(TARGET_PREFIX).ok_or_else(unknown)?;
        match operation {
            "CreateTable" => self.create_table(parse(body)?),
            "DescribeTable" => self.describe_table(parse(body)?),
            "ListTables" => self.list_tables(parse(body)?),
            "DeleteTable" => self.delete_table(parse(body)?),
            "UpdateTimeToLive" => self.update_time_to_live(parse(body)?),
            "DescribeTimeToLive" => self.describe_time_to_live(parse(body)?),
            "PutItem" => self.put_item(parse(body)?),
            "GetItem" => self.get_item(parse(body)?),
            "DeleteItem" => self.delete_item(parse(body)?),
            "UpdateItem" => self.update_item(parse(body)?),
            "Query" => self.query(parse(body)?),
            "Scan" => self.scan(parse(body)?),
            "BatchWriteItem" => self.batch_write_item(parse(body)?),
            "BatchGetItem" => self.batch_get_item(parse(body)?),
            "TransactWriteItems" => self.transact_write_items(parse(body)?),
            "TransactGetItems" => self.transact_get_items(parse(body)?),
            _ => Err(unknown()),
        }
    }

    /// Refuses writes from now on, once the ones in flight finished; reads go on. Returns
    /// whether this call closed them.
    pub fn close_writes(&self) -> bool {
        self.locks.close_writes()
    }

    fn now_seconds(&self) -> f64 {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0.0, |d| (d.as_millis() as f64) / 1000.0)
    }
}
