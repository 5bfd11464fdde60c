//! Single-item operations (PutItem, GetItem, DeleteItem, UpdateItem) and the item helpers the
//! batch, transaction and query operations share: keys, validation, storage and TTL.

use std::collections::HashMap;

use serde::Deserialize;
use serde_json::{Value as Json, json};
use weftkit_kv::{Expiry, WriteBatch, WriteOptions};

use super::Service;
use super::error::{DynamoError, Kind};
use super::expr::{self, Cond, Placeholders, Update};
use super::keys;
use super::tables::Table;
use super::value::{Item, Value, item_size};

/// DynamoDB's item size limit.
pub(crate) const MAX_ITEM_BYTES: usize = 400 * 1024;
/// DynamoDB's limit on lists and maps inside lists and maps.
pub(crate) const MAX_NESTING: usize = 32;

/// The expression parts of a request, with their placeholders.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub(crate) struct Expressions {
    pub(crate) condition_expression: Option<String>,
    pub(crate) projection_expression: Option<String>,
    pub(crate) expression_attribute_names: Option<HashMap<String, String>>,
    pub(crate) expression_attribute_values: Option<HashMap<String, Value>>,
}

impl Expressions {
    pub(crate) fn placeholders(&mut self) -> Placeholders {
        Placeholders::new(
            self.expression_attribute_names.take(),
            self.expression_attribute_values.take(),
        )
    }
}

/// Parameters of DynamoDB's legacy API that weftkit-kv does not take.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub(crate) struct Legacy {
    expected: Option<Json>,
    conditional_operator: Option<Json>,
    attribute_updates: Option<Json>,
    attributes_to_get: Option<Json>,
    key_conditions: Option<Json>,
    query_filter: Option<Json>,
    scan_filter: Option<Json>,
}

impl Legacy {
    pub(crate) fn refuse(&self) -> Result<(), DynamoError> {
        let given = [
            ("Expected", self.expected.is_some()),
            ("ConditionalOperator", self.conditional_operator.is_some()),
            ("AttributeUpdates", self.attribute_updates.is_some()),
            ("AttributesToGet", self.attributes_to_get.is_some()),
            ("KeyConditions", self.key_conditions.is_some()),
            ("QueryFilter", self.query_filter.is_some()),
            ("ScanFilter", self.scan_filter.is_some()),
        ];
        match given.iter().find(|(_, present)| *present) {
            Some((name, _)) => Err(DynamoError::validation(format!(
                "{name} is a legacy parameter weftkit-kv does not support; use the expression parameters instead"
            ))),
            None => Ok(()),
        }
    }
}

/// What a read or write consumed, when the request asked (`ReturnConsumedCapacity`).
pub(crate) fn consumed(table: &str, asked: Option<&str>, units: f64) -> Option<Json> {
    match asked {
        Some("TOTAL" | "INDEXES") => Some(json!({"TableName": table, "CapacityUnits": units})),
        _ => None,
    }
}

pub(crate) fn write_units(size: usize) -> f64 {
    size.div_ceil(1024).max(1) as f64
}

pub(crate) fn read_units(size: usize, consistent: bool) -> f64 {
    let units = size.div_ceil(4096).max(1) as f64;
    if consistent { units } else { units / 2.0 }
}

/// A key value as the schema allows it: right type, not empty.
fn key_part<'a>(values: &'a Item, attr: &super::tables::KeyAttr) -> Result<&'a Value, DynamoError> {
    let value = values.get(&attr.name).ok_or_else(|| {
        DynamoError::validation(format!(
            "One or more parameter values were invalid: Missing the key {} in the item",
            attr.name
        ))
    })?;
    if !attr.kind.matches(value) {
        return Err(DynamoError::validation(format!(
            "One or more parameter values were invalid: Type mismatch for key {} expected: {:?} actual: {}",
            attr.name,
            attr.kind,
            value.type_name()
        )));
    }
    if matches!(value, Value::S(s) if s.is_empty()) || matches!(value, Value::B(b) if b.is_empty())
    {
        return Err(DynamoError::validation(format!(
            "One or more parameter values are not valid. The AttributeValue for a key attribute cannot contain an empty string value. Key: {}",
            attr.name
        )));
    }
    Ok(value)
}

impl Table {
    /// The engine key of the item (or key) `values`, whose key attributes must be valid.
    pub(crate) fn key_of(&self, values: &Item) -> Result<Vec<u8>, DynamoError> {
        let hash = key_part(values, &self.hash)?;
        let range = self.range.as_ref().map(|r| key_part(values, r)).transpose()?;
        keys::encode(hash, range)
    }

    /// The engine key of a `Key` parameter, which must hold exactly the key attributes.
    pub(crate) fn key_param(&self, key: &Item) -> Result<Vec<u8>, DynamoError> {
        if key.len() != self.key_names().len() {
            return Err(DynamoError::validation(
                "The provided key element does not match the schema",
            ));
        }
        self.key_of(key)
    }

    /// Just the key attributes of an item.
    pub(crate) fn key_attributes(&self, item: &Item) -> Item {
        self.key_names()
            .into_iter()
            .filter_map(|n| item.get(n).map(|v| (n.to_owned(), v.clone())))
            .collect()
    }

    /// The Unix time the item expires at, when TTL is on and it carries a numeric TTL value.
    pub(crate) fn expires_at(&self, item: &Item) -> Option<u64> {
        let Value::N(n) = item.get(self.ttl_attribute.as_deref()?)? else { return None };
        n.to_u64()
    }
}

pub(crate) fn validate_item(table: &Table, item: &Item) -> Result<Vec<u8>, DynamoError> {
    let key = table.key_of(item)?;
    if item.keys().any(String::is_empty) {
        return Err(DynamoError::validation("an attribute name may not be empty"));
    }
    if item.values().any(|v| v.depth() > MAX_NESTING) {
        return Err(DynamoError::validation("Nesting Levels have exceeded supported limits"));
    }
    let size = item_size(item);
    if size > MAX_ITEM_BYTES {
        return Err(DynamoError::validation("Item size has exceeded the maximum allowed size"));
    }
    Ok(key)
}

pub(crate) fn parse_condition(
    text: Option<&str>,
    ph: &Placeholders,
) -> Result<Option<Cond>, DynamoError> {
    text.map(|t| expr::parse_condition(t, ph)).transpose()
}

/// Fails the write when the condition does not hold for the current item.
pub(crate) fn check_condition(
    cond: Option<&Cond>,
    current: Option<&Item>,
    return_old: bool,
) -> Result<(), DynamoError> {
    let Some(cond) = cond else { return Ok(()) };
    let empty = Item::new();
    if expr::evaluate(cond, current.unwrap_or(&empty))? {
        return Ok(());
    }
    let mut err = DynamoError::condition_failed();
    if return_old && let Some(item) = current {
        err.item = Some(serde_json::to_value(item).expect("items serialize"));
    }
    Err(err)
}

/// A ReturnValues-style parameter that allows only `NONE` (the default) and `ALL_OLD`: whether
/// the old item is wanted. `what` names the parameter in the error.
pub(crate) fn wants_all_old(value: Option<&str>, what: &str) -> Result<bool, DynamoError> {
    match value {
        None | Some("NONE") => Ok(false),
        Some("ALL_OLD") => Ok(true),
        Some(other) => {
            Err(DynamoError::validation(format!("{what} must be NONE or ALL_OLD, not {other}")))
        }
    }
}

pub(crate) fn return_old_on_failure(value: Option<&str>) -> Result<bool, DynamoError> {
    wants_all_old(value, "ReturnValuesOnConditionCheckFailure")
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub(crate) struct PutItem {
    table_name: String,
    item: Item,
    #[serde(flatten)]
    expressions: Expressions,
    return_values: Option<String>,
    return_values_on_condition_check_failure: Option<String>,
    return_consumed_capacity: Option<String>,
    #[serde(flatten)]
    legacy: Legacy,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub(crate) struct GetItem {
    table_name: String,
    key: Item,
    #[serde(flatten)]
    expressions: Expressions,
    consistent_read: Option<bool>,
    return_consumed_capacity: Option<String>,
    #[serde(flatten)]
    legacy: Legacy,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub(crate) struct DeleteItem {
    table_name: String,
    key: Item,
    #[serde(flatten)]
    expressions: Expressions,
    return_values: Option<String>,
    return_values_on_condition_check_failure: Option<String>,
    return_consumed_capacity: Option<String>,
    #[serde(flatten)]
    legacy: Legacy,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub(crate) struct UpdateItem {
    table_name: String,
    key: Item,
    update_expression: Option<String>,
    #[serde(flatten)]
    expressions: Expressions,
    return_values: Option<String>,
    return_values_on_condition_check_failure: Option<String>,
    return_consumed_capacity: Option<String>,
    #[serde(flatten)]
    legacy: Legacy,
}

impl Service {
    /// The stored item under `key`, unless absent or past its TTL.
    pub(crate) fn load(&self, table: &Table, key: &[u8]) -> Result<Option<Item>, DynamoError> {
        let bytes = self.db.get(&table.family(), key).map_err(|e| self.engine(table, e))?;
        bytes.map(|b| self.decode(table, key, &b)).transpose().map(Option::flatten)
    }

    /// The stored item under `key`, unless past its TTL. Every write validates its item, so a
    /// record that does not decode is damage on disk: the error names the item, so the one
    /// item can be found and repaired while every other item stays readable.
    pub(crate) fn decode(
        &self,
        table: &Table,
        key: &[u8],
        bytes: &[u8],
    ) -> Result<Option<Item>, DynamoError> {
        Ok(self.live(table, self.decode_stored(table, key, bytes)?))
    }

    /// The stored item under `key`, expired or not.
    fn decode_stored(&self, table: &Table, key: &[u8], bytes: &[u8]) -> Result<Item, DynamoError> {
        serde_json::from_slice(bytes).map_err(|e| {
            tracing::error!(table = %table.name, key = %hex::encode(key), "decode stored item: {e}");
            DynamoError::new(
                Kind::Internal,
                format!(
                    "Internal server error: the stored item of table {} under engine key {} cannot be decoded",
                    table.name,
                    hex::encode(key)
                ),
            )
        })
    }

    /// The item, unless its TTL has passed (it may not have been reclaimed yet).
    pub(crate) fn live(&self, table: &Table, item: Item) -> Option<Item> {
        match table.expires_at(&item) {
            Some(at) if at <= self.clock.now() => None,
            _ => Some(item),
        }
    }

    /// Adds the write of `item` to `batch`, with the engine expiry its TTL attribute asks for.
    pub(crate) fn stage_put(
        &self,
        batch: &mut WriteBatch,
        table: &Table,
        key: Vec<u8>,
        item: &Item,
    ) {
        let expiry = match table.expires_at(item) {
            Some(at) => Expiry::At(at),
            None => Expiry::Never,
        };
        let bytes = serde_json::to_vec(item).expect("items serialize");
        batch.put_expiring(&table.family(), key, bytes, expiry);
    }

    pub(crate) fn commit(&self, table: &Table, batch: &WriteBatch) -> Result<(), DynamoError> {
        self.db
            .write(batch, WriteOptions { sync: self.sync })
            .map(drop)
            .map_err(|e| self.engine(table, e))
    }

    /// An engine error, with a dropped family reported as the missing table it is.
    pub(crate) fn engine(&self, table: &Table, err: weftkit_kv::Error) -> DynamoError {
        match err {
            weftkit_kv::Error::NoSuchFamily(_) => DynamoError::not_found(&table.name),
            other => other.into(),
        }
    }

    /// TTL was just enabled: give stored items with a TTL value their engine expiry, so the
    /// engine reclaims them (reads already hide them).
    /// Re-writes every item that carries `attribute` with the engine expiry `table` gives it,
    /// so the engine reclaims (or stops reclaiming) items as the table's TTL now says. A chunk
    /// of items at a time, under their locks, so no concurrent write is overwritten.
    pub(crate) fn restamp_expiry(&self, table: &Table, attribute: &str) -> Result<(), DynamoError> {
        const CHUNK: usize = 256;
        let family = table.family();
        let mut entries = self.db.range(&family, .., weftkit_kv::Direction::Forward)?;
        loop {
            let keys = entries
                .by_ref()
                .take(CHUNK)
                .map(|entry| entry.map(|(key, _)| key))
                .collect::<Result<Vec<_>, _>>()?;
            if keys.is_empty() {
                return Ok(());
            }
            let _guard = self.locks.write(keys.iter().map(|k| (family.as_str(), k.as_slice())))?;
            let mut batch = WriteBatch::new();
            for key in keys {
                // Re-read under the item's lock: a write since the scan wins.
                let Some(bytes) = self.db.get(&family, &key).map_err(|e| self.engine(table, e))?
                else {
                    continue;
                };
                let item = self.decode_stored(table, &key, &bytes)?;
                if item.contains_key(attribute) {
                    self.stage_put(&mut batch, table, key, &item);
                }
            }
            if !batch.is_empty() {
                self.commit(table, &batch)?;
            }
        }
    }

    pub(crate) fn put_item(&self, mut req: PutItem) -> Result<Json, DynamoError> {
        req.legacy.refuse()?;
        let table = self.catalog.get(&req.table_name)?;
        let return_old = wants_all_old(req.return_values.as_deref(), "ReturnValues for PutItem")?;
        let old_on_failure =
            return_old_on_failure(req.return_values_on_condition_check_failure.as_deref())?;
        let ph = req.expressions.placeholders();
        let cond = parse_condition(req.expressions.condition_expression.as_deref(), &ph)?;
        ph.check_all_used()?;
        let key = validate_item(&table, &req.item)?;
        let family = table.family();
        let _guard = self.locks.write([(family.as_str(), key.as_slice())])?;
        let old = self.load(&table, &key)?;
        check_condition(cond.as_ref(), old.as_ref(), old_on_failure)?;
        let mut batch = WriteBatch::new();
        self.stage_put(&mut batch, &table, key, &req.item);
        self.commit(&table, &batch)?;
        let mut out = json!({});
        if return_old && let Some(old) = old {
            out["Attributes"] = serde_json::to_value(old).expect("items serialize");
        }
        if let Some(c) = consumed(
            &table.name,
            req.return_consumed_capacity.as_deref(),
            write_units(item_size(&req.item)),
        ) {
            out["ConsumedCapacity"] = c;
        }
        Ok(out)
    }

    pub(crate) fn get_item(&self, mut req: GetItem) -> Result<Json, DynamoError> {
        req.legacy.refuse()?;
        let table = self.catalog.get(&req.table_name)?;
        let ph = req.expressions.placeholders();
        let projection = req
            .expressions
            .projection_expression
            .as_deref()
            .map(|p| expr::parse_projection(p, &ph))
            .transpose()?;
        if req.expressions.condition_expression.is_some() {
            return Err(DynamoError::validation("GetItem takes no ConditionExpression"));
        }
        ph.check_all_used()?;
        let key = table.key_param(&req.key)?;
        let item = self.load(&table, &key)?;
        let size = item.as_ref().map_or(0, item_size);
        let mut out = json!({});
        if let Some(item) = item {
            let item = match &projection {
                Some(paths) => expr::project(&item, paths),
                None => item,
            };
            out["Item"] = serde_json::to_value(item).expect("items serialize");
        }
        let units = read_units(size, req.consistent_read.unwrap_or(false));
        if let Some(c) = consumed(&table.name, req.return_consumed_capacity.as_deref(), units) {
            out["ConsumedCapacity"] = c;
        }
        Ok(out)
    }

    pub(crate) fn delete_item(&self, mut req: DeleteItem) -> Result<Json, DynamoError> {
        req.legacy.refuse()?;
        let table = self.catalog.get(&req.table_name)?;
        let return_old =
            wants_all_old(req.return_values.as_deref(), "ReturnValues for DeleteItem")?;
        let old_on_failure =
            return_old_on_failure(req.return_values_on_condition_check_failure.as_deref())?;
        let ph = req.expressions.placeholders();
        let cond = parse_condition(req.expressions.condition_expression.as_deref(), &ph)?;
        ph.check_all_used()?;
        let key = table.key_param(&req.key)?;
        let family = table.family();
        let _guard = self.locks.write([(family.as_str(), key.as_slice())])?;
        let old = self.load(&table, &key)?;
        check_condition(cond.as_ref(), old.as_ref(), old_on_failure)?;
        let mut batch = WriteBatch::new();
        batch.delete(&family, key);
        self.commit(&table, &batch)?;
        let mut out = json!({});
        let size = old.as_ref().map_or(0, item_size);
        if return_old && let Some(old) = old {
            out["Attributes"] = serde_json::to_value(old).expect("items serialize");
        }
        if let Some(c) =
            consumed(&table.name, req.return_consumed_capacity.as_deref(), write_units(size))
        {
            out["ConsumedCapacity"] = c;
        }
        Ok(out)
    }

    pub(crate) fn update_item(&self, mut req: UpdateItem) -> Result<Json, DynamoError> {
        req.legacy.refuse()?;
        let table = self.catalog.get(&req.table_name)?;
        let return_values = req.return_values.as_deref().unwrap_or("NONE");
        if !["NONE", "ALL_OLD", "UPDATED_OLD", "ALL_NEW", "UPDATED_NEW"].contains(&return_values) {
            return Err(DynamoError::validation(format!(
                "ReturnValues must be NONE, ALL_OLD, UPDATED_OLD, ALL_NEW or UPDATED_NEW, not {return_values}"
            )));
        }
        let old_on_failure =
            return_old_on_failure(req.return_values_on_condition_check_failure.as_deref())?;
        let ph = req.expressions.placeholders();
        let update =
            req.update_expression.as_deref().map(|u| expr::parse_update(u, &ph)).transpose()?;
        let cond = parse_condition(req.expressions.condition_expression.as_deref(), &ph)?;
        ph.check_all_used()?;
        let key = table.key_param(&req.key)?;
        let family = table.family();
        let _guard = self.locks.write([(family.as_str(), key.as_slice())])?;
        let old = self.load(&table, &key)?;
        check_condition(cond.as_ref(), old.as_ref(), old_on_failure)?;
        let new = updated(&table, old.as_ref(), &req.key, update.as_ref())?;
        let mut batch = WriteBatch::new();
        self.stage_put(&mut batch, &table, key, &new);
        self.commit(&table, &batch)?;
        let touched = |item: &Item| match &update {
            Some(u) => expr::project(item, &u.targets().cloned().collect::<Vec<_>>()),
            None => Item::new(),
        };
        let attributes = match return_values {
            "ALL_OLD" => old.clone(),
            "UPDATED_OLD" => old.as_ref().map(touched),
            "ALL_NEW" => Some(new.clone()),
            "UPDATED_NEW" => Some(touched(&new)),
            _ => None,
        };
        let mut out = json!({});
        if let Some(attributes) = attributes.filter(|a| !a.is_empty()) {
            out["Attributes"] = serde_json::to_value(attributes).expect("items serialize");
        }
        let units = write_units(item_size(&new).max(old.as_ref().map_or(0, item_size)));
        if let Some(c) = consumed(&table.name, req.return_consumed_capacity.as_deref(), units) {
            out["ConsumedCapacity"] = c;
        }
        Ok(out)
    }
}

/// The item after `update`: the old one, or a new one holding just the key, updated.
pub(crate) fn updated(
    table: &Table,
    old: Option<&Item>,
    key: &Item,
    update: Option<&Update>,
) -> Result<Item, DynamoError> {
    let mut item = old.cloned().unwrap_or_else(|| key.clone());
    if let Some(update) = update {
        expr::apply_update(&mut item, update, &table.key_names())?;
    }
    validate_item(table, &item)?;
    Ok(item)
}

impl DynamoError {
    pub(crate) fn is_condition_failure(&self) -> bool {
        self.kind == Kind::ConditionalCheckFailed
    }
}
