//! Tables: their definitions, kept in the engine's `__tables` family, and the table operations
//! (CreateTable, DescribeTable, ListTables, DeleteTable, UpdateTimeToLive, DescribeTimeToLive).
//!
//! A table's items live in the column family `t.{table}`. The definition is written after the
//! family is created, so a crash between the two leaves a family without a definition, which the
//! next CreateTable of that name drops and creates afresh.

use std::collections::BTreeMap;
use std::sync::{Arc, RwLock};

use serde::{Deserialize, Serialize};
use serde_json::{Value as Json, json};
use weftkit_kv::{Database, FamilyOptions};

use super::Service;
use super::error::{DynamoError, Kind};
use super::value::Value;

/// The family holding table definitions; user tables may not start with `__`.
pub(crate) const CATALOG: &str = "__tables";
const FAMILY_PREFIX: &str = "t.";
/// Family names are at most 200 bytes, and `t.` takes two.
const MAX_TABLE_NAME: usize = 198;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) enum KeyType {
    S,
    N,
    B,
}

impl KeyType {
    fn name(self) -> &'static str {
        match self {
            KeyType::S => "S",
            KeyType::N => "N",
            KeyType::B => "B",
        }
    }

    pub(crate) fn matches(self, value: &Value) -> bool {
        matches!(
            (self, value),
            (KeyType::S, Value::S(_)) | (KeyType::N, Value::N(_)) | (KeyType::B, Value::B(_))
        )
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct KeyAttr {
    pub(crate) name: String,
    pub(crate) kind: KeyType,
}

/// A table's definition.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct Table {
    pub(crate) name: String,
    pub(crate) hash: KeyAttr,
    pub(crate) range: Option<KeyAttr>,
    /// Unix seconds, with fraction, as DynamoDB reports it.
    pub(crate) created: f64,
    pub(crate) billing_mode: String,
    pub(crate) read_capacity: u64,
    pub(crate) write_capacity: u64,
    /// The TTL attribute, when TTL is enabled.
    pub(crate) ttl_attribute: Option<String>,
}

impl Table {
    pub(crate) fn family(&self) -> String {
        family_of(&self.name)
    }

    pub(crate) fn key_names(&self) -> Vec<&str> {
        let mut names = vec![self.hash.name.as_str()];
        if let Some(range) = &self.range {
            names.push(range.name.as_str());
        }
        names
    }

    fn key_schema(&self) -> Json {
        let mut schema = vec![json!({"AttributeName": self.hash.name, "KeyType": "HASH"})];
        let mut definitions =
            vec![json!({"AttributeName": self.hash.name, "AttributeType": self.hash.kind.name()})];
        if let Some(range) = &self.range {
            schema.push(json!({"AttributeName": range.name, "KeyType": "RANGE"}));
            definitions
                .push(json!({"AttributeName": range.name, "AttributeType": range.kind.name()}));
        }
        json!({"KeySchema": schema, "AttributeDefinitions": definitions})
    }

    /// The TableDescription DynamoDB returns.
    pub(crate) fn describe(&self, status: &str, region: &str, counts: Option<(u64, u64)>) -> Json {
        let mut out = self.key_schema();
        let (items, bytes) = counts.unwrap_or((0, 0));
        let fields = json!({
            "TableName": self.name,
            "TableStatus": status,
            "CreationDateTime": self.created,
            "ItemCount": items,
            "TableSizeBytes": bytes,
            "TableArn": format!("arn:aws:dynamodb:{region}:000000000000:table/{}", self.name),
            "TableId": table_id(&self.name, self.created),
            "BillingModeSummary": {"BillingMode": self.billing_mode},
            "ProvisionedThroughput": {
                "ReadCapacityUnits": self.read_capacity,
                "WriteCapacityUnits": self.write_capacity,
                "NumberOfDecreasesToday": 0,
            },
            "DeletionProtectionEnabled": false,
        });
        out.as_object_mut().expect("object").extend(fields.as_object().expect("object").clone());
        out
    }
}

fn table_id(name: &str, created: f64) -> String {
    use sha2::Digest;
    let digest = sha2::Sha256::digest(format!("{name}/{created}").as_bytes());
    let h = hex::encode(&digest[..16]);
    format!("{}-{}-{}-{}-{}", &h[..8], &h[8..12], &h[12..16], &h[16..20], &h[20..32])
}

pub(crate) fn family_of(table: &str) -> String {
    format!("{FAMILY_PREFIX}{table}")
}

pub(crate) fn validate_table_name(name: &str) -> Result<(), DynamoError> {
    let ok = |c: char| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-');
    if name.len() < 3 || name.len() > MAX_TABLE_NAME || !name.chars().all(ok) {
        return Err(DynamoError::validation(format!(
            "1 validation error detected: Value '{name}' at 'tableName' failed to satisfy constraint: a table name is 3 to {MAX_TABLE_NAME} characters of [a-zA-Z0-9_.-]"
        )));
    }
    if name.starts_with("__") {
        return Err(DynamoError::validation(format!(
            "table names starting with '__' are reserved by weftkit-kv: {name}"
        )));
    }
    Ok(())
}

/// Table definitions, cached in memory and stored in the `__tables` family.
#[derive(Debug)]
pub(crate) struct Catalog {
    tables: RwLock<BTreeMap<String, Arc<Table>>>,
}

impl Catalog {
    pub(crate) fn load(db: &Database) -> Result<Self, DynamoError> {
        if !db.list_families().iter().any(|(name, _)| name == CATALOG) {
            db.create_family(CATALOG, FamilyOptions::default())?;
        }
        let mut tables = BTreeMap::new();
        for entry in db.range(CATALOG, .., weftkit_kv::Direction::Forward)? {
            let (_, value) = entry?;
            let table: Table = serde_json::from_slice(&value)
                .map_err(|e| DynamoError::internal(format!("stored table definition: {e}")))?;
            tables.insert(table.name.clone(), Arc::new(table));
        }
        Ok(Self { tables: RwLock::new(tables) })
    }

    pub(crate) fn get(&self, name: &str) -> Result<Arc<Table>, DynamoError> {
        self.tables
            .read()
            .expect("catalog lock")
            .get(name)
            .cloned()
            .ok_or_else(|| DynamoError::not_found(name))
    }

    fn names(&self) -> Vec<String> {
        self.tables.read().expect("catalog lock").keys().cloned().collect()
    }

    fn store(&self, db: &Database, table: Table) -> Result<(), DynamoError> {
        db.put(CATALOG, table.name.as_bytes(), serde_json::to_vec(&table).expect("serialize"))?;
        self.tables.write().expect("catalog lock").insert(table.name.clone(), Arc::new(table));
        Ok(())
    }
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct KeySchemaElement {
    attribute_name: String,
    key_type: String,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct AttributeDefinition {
    attribute_name: String,
    attribute_type: String,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct Throughput {
    read_capacity_units: u64,
    write_capacity_units: u64,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub(crate) struct CreateTable {
    table_name: String,
    key_schema: Vec<KeySchemaElement>,
    attribute_definitions: Vec<AttributeDefinition>,
    billing_mode: Option<String>,
    provisioned_throughput: Option<Throughput>,
    global_secondary_indexes: Option<Json>,
    local_secondary_indexes: Option<Json>,
    stream_specification: Option<Json>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub(crate) struct TableName {
    table_name: String,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub(crate) struct ListTables {
    exclusive_start_table_name: Option<String>,
    limit: Option<usize>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct TtlSpecification {
    enabled: bool,
    attribute_name: String,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub(crate) struct UpdateTimeToLive {
    table_name: String,
    time_to_live_specification: TtlSpecification,
}

fn parse_key(req: &CreateTable) -> Result<(KeyAttr, Option<KeyAttr>), DynamoError> {
    let invalid = |m: &str| DynamoError::validation(format!("Invalid KeySchema: {m}"));
    let definitions: BTreeMap<&str, &str> = req
        .attribute_definitions
        .iter()
        .map(|d| (d.attribute_name.as_str(), d.attribute_type.as_str()))
        .collect();
    if definitions.len() != req.attribute_definitions.len() {
        return Err(DynamoError::validation("Duplicate attribute names in AttributeDefinitions"));
    }
    let attr = |element: &KeySchemaElement| -> Result<KeyAttr, DynamoError> {
        let kind = match definitions.get(element.attribute_name.as_str()) {
            Some(&"S") => KeyType::S,
            Some(&"N") => KeyType::N,
            Some(&"B") => KeyType::B,
            Some(other) => {
                return Err(DynamoError::validation(format!(
                    "Member must satisfy enum value set: [B, N, S]; got {other} for {}",
                    element.attribute_name
                )));
            }
            None => {
                return Err(DynamoError::validation(format!(
                    "One or more parameter values were invalid: Some index key attributes are not defined in AttributeDefinitions. Keys: [{}], AttributeDefinitions: [{}]",
                    element.attribute_name,
                    definitions.keys().copied().collect::<Vec<_>>().join(", ")
                )));
            }
        };
        Ok(KeyAttr { name: element.attribute_name.clone(), kind })
    };
    let (hash, range) = match req.key_schema.as_slice() {
        [h] if h.key_type == "HASH" => (attr(h)?, None),
        [h, r] if h.key_type == "HASH" && r.key_type == "RANGE" => {
            if h.attribute_name == r.attribute_name {
                return Err(invalid("the hash and range key must be different attributes"));
            }
            (attr(h)?, Some(attr(r)?))
        }
        [] => return Err(invalid("the key schema is empty")),
        _ => {
            return Err(invalid(
                "the key schema is one HASH element, optionally followed by one RANGE element",
            ));
        }
    };
    if definitions.len() != 1 + usize::from(range.is_some()) {
        return Err(DynamoError::validation(
            "One or more parameter values were invalid: Number of attributes in KeySchema does not exactly match number of attributes defined in AttributeDefinitions",
        ));
    }
    Ok((hash, range))
}

impl Service {
    pub(crate) fn create_table(&self, req: CreateTable) -> Result<Json, DynamoError> {
        validate_table_name(&req.table_name)?;
        for (field, present) in [
            ("GlobalSecondaryIndexes", req.global_secondary_indexes.is_some()),
            ("LocalSecondaryIndexes", req.local_secondary_indexes.is_some()),
        ] {
            if present {
                return Err(DynamoError::validation(format!(
                    "{field}: secondary indexes are not supported by weftkit-kv"
                )));
            }
        }
        if req.stream_specification.as_ref().and_then(|s| s["StreamEnabled"].as_bool())
            == Some(true)
        {
            return Err(DynamoError::validation("streams are not supported by weftkit-kv"));
        }
        let (hash, range) = parse_key(&req)?;
        let billing_mode = req.billing_mode.clone().unwrap_or_else(|| "PROVISIONED".into());
        let (read_capacity, write_capacity) = match (
            billing_mode.as_str(),
            &req.provisioned_throughput,
        ) {
            ("PROVISIONED", Some(t)) => (t.read_capacity_units, t.write_capacity_units),
            ("PROVISIONED", None) => {
                return Err(DynamoError::validation(
                    "One or more parameter values were invalid: ReadCapacityUnits and WriteCapacityUnits must both be specified when BillingMode is PROVISIONED",
                ));
            }
            ("PAY_PER_REQUEST", None) => (0, 0),
            ("PAY_PER_REQUEST", Some(_)) => {
                return Err(DynamoError::validation(
                    "One or more parameter values were invalid: Neither ReadCapacityUnits nor WriteCapacityUnits can be specified when BillingMode is PAY_PER_REQUEST",
                ));
            }
            (other, _) => {
                return Err(DynamoError::validation(format!(
                    "BillingMode must be PROVISIONED or PAY_PER_REQUEST, not {other}"
                )));
            }
        };
        let _guard = self.locks.catalog();
        if self.catalog.get(&req.table_name).is_ok() {
            return Err(DynamoError::new(
                Kind::ResourceInUse,
                format!("Table already exists: {}", req.table_name),
            ));
        }
        let family = family_of(&req.table_name);
        if self.db.list_families().iter().any(|(name, _)| *name == family) {
            // Left by a CreateTable that crashed before writing the definition.
            self.db.drop_family(&family)?;
        }
        self.db.create_family(&family, FamilyOptions::default())?;
        let created = self.now_seconds();
        let table = Table {
            name: req.table_name,
            hash,
            range,
            created,
            billing_mode,
            read_capacity,
            write_capacity,
            ttl_attribute: None,
        };
        let description = table.describe("ACTIVE", &self.region, None);
        if let Err(err) = self.catalog.store(&self.db, table) {
            // No definition, no table: take the family back so nothing is left behind.
            if let Err(drop_err) = self.db.drop_family(&family) {
                tracing::warn!(%family, "drop the family of a table not created: {drop_err}");
            }
            return Err(err);
        }
        Ok(json!({"TableDescription": description}))
    }

    pub(crate) fn describe_table(&self, req: TableName) -> Result<Json, DynamoError> {
        let table = self.catalog.get(&req.table_name)?;
        let counts = self.count_items(&table)?;
        Ok(json!({"Table": table.describe("ACTIVE", &self.region, Some(counts))}))
    }

    /// Items and bytes of a table, counted now (DynamoDB refreshes these every few hours).
    fn count_items(&self, table: &Table) -> Result<(u64, u64), DynamoError> {
        let (mut items, mut bytes) = (0, 0);
        for entry in self.db.range(&table.family(), .., weftkit_kv::Direction::Forward)? {
            let (_, value) = entry?;
            items += 1;
            bytes += value.len() as u64;
        }
        Ok((items, bytes))
    }

    pub(crate) fn list_tables(&self, req: ListTables) -> Result<Json, DynamoError> {
        let limit = req.limit.unwrap_or(100);
        if !(1..=100).contains(&limit) {
            return Err(DynamoError::validation("Limit must be between 1 and 100"));
        }
        let names: Vec<String> = self
            .catalog
            .names()
            .into_iter()
            .filter(|n| req.exclusive_start_table_name.as_ref().is_none_or(|start| n > start))
            .collect();
        let page: Vec<&String> = names.iter().take(limit).collect();
        let mut out = json!({"TableNames": page});
        if names.len() > limit {
            out["LastEvaluatedTableName"] = json!(page.last());
        }
        Ok(out)
    }

    pub(crate) fn delete_table(&self, req: TableName) -> Result<Json, DynamoError> {
        let _guard = self.locks.catalog();
        let table = self.catalog.get(&req.table_name)?;
        // Removing the definition is the commit point: the table is gone from then on.
        self.db.delete(CATALOG, table.name.as_bytes())?;
        self.catalog.tables.write().expect("catalog lock").remove(&table.name);
        if let Err(err) = self.db.drop_family(&table.family()) {
            // A later CreateTable of the same name drops the leftover family first.
            tracing::warn!(table = %table.name, "drop the family of a deleted table: {err}");
        }
        Ok(json!({"TableDescription": table.describe("DELETING", &self.region, None)}))
    }

    pub(crate) fn update_time_to_live(&self, req: UpdateTimeToLive) -> Result<Json, DynamoError> {
        let _guard = self.locks.catalog();
        let table = self.catalog.get(&req.table_name)?;
        let spec = req.time_to_live_specification;
        if spec.attribute_name.is_empty() {
            return Err(DynamoError::validation("TimeToLiveSpecification.AttributeName is empty"));
        }
        let ttl_attribute = match (&table.ttl_attribute, spec.enabled) {
            (Some(_), true) => {
                return Err(DynamoError::validation("TimeToLive is already enabled"));
            }
            (None, false) => {
                return Err(DynamoError::validation("TimeToLive is already disabled"));
            }
            (Some(current), false) if *current != spec.attribute_name => {
                return Err(DynamoError::validation(format!(
                    "TimeToLive is enabled on attribute {current}, not {}",
                    spec.attribute_name
                )));
            }
            (_, true) => Some(spec.attribute_name.clone()),
            (_, false) => None,
        };
        let updated = Table { ttl_attribute: ttl_attribute.clone(), ..(*table).clone() };
        match ttl_attribute {
            Some(attribute) => {
                // Reads honour the TTL from this commit on; re-stamping the items only lets
                // the engine reclaim expired ones, so its failure leaves the change in place.
                self.catalog.store(&self.db, updated)?;
                let table = self.catalog.get(&table.name)?;
                if let Err(err) = self.restamp_expiry(&table, &attribute) {
                    tracing::warn!(table = %table.name, "expired items are hidden but not yet reclaimed: {}", err.message);
                }
            }
            None => {
                // Clear the engine expiries first: once the catalog says TTL is off, no item
                // may expire any more. Until then reads still apply the TTL, so a failure
                // here changes nothing a client can see.
                self.restamp_expiry(&updated, &spec.attribute_name)?;
                self.catalog.store(&self.db, updated)?;
            }
        }
        Ok(
            json!({"TimeToLiveSpecification": {"Enabled": spec.enabled, "AttributeName": spec.attribute_name}}),
        )
    }

    pub(crate) fn describe_time_to_live(&self, req: TableName) -> Result<Json, DynamoError> {
        let table = self.catalog.get(&req.table_name)?;
        Ok(match &table.ttl_attribute {
            Some(name) => {
                json!({"TimeToLiveDescription": {"TimeToLiveStatus": "ENABLED", "AttributeName": name}})
            }
            None => json!({"TimeToLiveDescription": {"TimeToLiveStatus": "DISABLED"}}),
        })
    }
}
