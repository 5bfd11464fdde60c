//! Multi-item operations: BatchWriteItem, BatchGetItem, TransactWriteItems, TransactGetItems.
//!
//! Batch writes and transactions each commit as one engine batch, so they are all-or-nothing;
//! DynamoDB promises that only for transactions, and a caller cannot tell the difference.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::Deserialize;
use serde_json::{Value as Json, json};
use sha2::Digest;
use weftkit_kv::WriteBatch;

use super::Service;
use super::error::{DynamoError, Kind};
use super::expr::{self, Cond, Path, Update};
use super::items::{
    Expressions, MAX_ITEM_BYTES, check_condition, consumed, parse_condition, read_units,
    return_old_on_failure, updated, validate_item, write_units,
};
use super::tables::Table;
use super::value::{Item, item_size};

const MAX_BATCH_WRITE: usize = 25;
const MAX_BATCH_GET: usize = 100;
const MAX_TRANSACT: usize = 100;
/// BatchGetItem answers at most this much; the rest comes back as UnprocessedKeys.
const MAX_BATCH_GET_BYTES: usize = 16 << 20;
/// How long a ClientRequestToken makes a transaction idempotent.
const TOKEN_LIFETIME: Duration = Duration::from_secs(600);

fn duplicates() -> DynamoError {
    DynamoError::validation("Provided list of item keys contains duplicates")
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct PutRequest {
    item: Item,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct DeleteRequest {
    key: Item,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct WriteRequest {
    put_request: Option<PutRequest>,
    delete_request: Option<DeleteRequest>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub(crate) struct BatchWriteItem {
    request_items: BTreeMap<String, Vec<WriteRequest>>,
    return_consumed_capacity: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct KeysAndAttributes {
    keys: Vec<Item>,
    #[serde(flatten)]
    expressions: Expressions,
    consistent_read: Option<bool>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub(crate) struct BatchGetItem {
    request_items: BTreeMap<String, KeysAndAttributes>,
    return_consumed_capacity: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub(crate) struct TransactWriteItems {
    transact_items: Vec<Json>,
    client_request_token: Option<String>,
    return_consumed_capacity: Option<String>,
}

/// One action of a transaction, as sent.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct TransactAction {
    table_name: String,
    key: Option<Item>,
    item: Option<Item>,
    update_expression: Option<String>,
    #[serde(flatten)]
    expressions: Expressions,
    return_values_on_condition_check_failure: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub(crate) struct TransactGetItems {
    transact_items: Vec<BTreeMap<String, TransactAction>>,
    return_consumed_capacity: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ActionKind {
    ConditionCheck,
    Put,
    Delete,
    Update,
}

/// A validated transaction action.
struct Action {
    kind: ActionKind,
    table: Arc<Table>,
    key: Vec<u8>,
    key_item: Item,
    item: Option<Item>,
    update: Option<Update>,
    condition: Option<Cond>,
    return_old: bool,
}

/// Recent transaction tokens: their request digest, when they expire, and whether they committed.
#[derive(Debug, Default)]
pub(crate) struct Tokens(std::sync::Mutex<HashMap<String, ([u8; 32], Instant)>>);

impl Tokens {
    /// Whether this exact request already committed under `token`; an error when the token was
    /// used for another request.
    fn seen(&self, token: &str, digest: &[u8; 32]) -> Result<bool, DynamoError> {
        let mut tokens = self.0.lock().expect("tokens lock");
        let now = Instant::now();
        tokens.retain(|_, (_, expires)| *expires > now);
        match tokens.get(token) {
            Some((seen, _)) if seen == digest => Ok(true),
            Some(_) => Err(DynamoError::new(
                Kind::IdempotentParameterMismatch,
                "The request uses the same client token as a previous, but non-identical request",
            )),
            None => Ok(false),
        }
    }

    fn remember(&self, token: String, digest: [u8; 32]) {
        self.0
            .lock()
            .expect("tokens lock")
            .insert(token, (digest, Instant::now() + TOKEN_LIFETIME));
    }
}

impl Service {
    pub(crate) fn batch_write_item(&self, req: BatchWriteItem) -> Result<Json, DynamoError> {
        let total: usize = req.request_items.values().map(Vec::len).sum();
        if total == 0 || total > MAX_BATCH_WRITE {
            return Err(DynamoError::validation(format!(
                "1 validation error detected: Value at 'requestItems' failed to satisfy constraint: Member must have between 1 and {MAX_BATCH_WRITE} items; got {total}"
            )));
        }
        let mut writes = Vec::with_capacity(total);
        let mut sizes: BTreeMap<String, usize> = BTreeMap::new();
        for (name, requests) in &req.request_items {
            let table = self.catalog.get(name)?;
            let mut seen = BTreeSet::new();
            for request in requests {
                let (key, item) = match (&request.put_request, &request.delete_request) {
                    (Some(put), None) => (validate_item(&table, &put.item)?, Some(&put.item)),
                    (None, Some(delete)) => (table.key_param(&delete.key)?, None),
                    _ => {
                        return Err(DynamoError::validation(
                            "Each WriteRequest holds exactly one of PutRequest and DeleteRequest",
                        ));
                    }
                };
                if !seen.insert(key.clone()) {
                    return Err(duplicates());
                }
                *sizes.entry(name.clone()).or_default() += item.map_or(1, item_size);
                writes.push((table.clone(), key, item));
            }
        }
        let families: Vec<String> = writes.iter().map(|(t, _, _)| t.family()).collect();
        let _guard = self.locks.write(
            families.iter().zip(&writes).map(|(f, (_, key, _))| (f.as_str(), key.as_slice())),
        )?;
        let mut batch = WriteBatch::new();
        for ((table, key, item), family) in writes.iter().zip(&families) {
            match item {
                Some(item) => self.stage_put(&mut batch, table, key.clone(), item),
                None => {
                    batch.delete(family, key.clone());
                }
            }
        }
        self.commit(&writes[0].0, &batch)?;
        let mut out = json!({"UnprocessedItems": {}});
        let capacity: Vec<Json> = sizes
            .iter()
            .filter_map(|(t, size)| {
                consumed(t, req.return_consumed_capacity.as_deref(), write_units(*size))
            })
            .collect();
        if !capacity.is_empty() {
            out["ConsumedCapacity"] = json!(capacity);
        }
        Ok(out)
    }

    pub(crate) fn batch_get_item(&self, req: BatchGetItem) -> Result<Json, DynamoError> {
        let total: usize = req.request_items.values().map(|k| k.keys.len()).sum();
        if total == 0 || total > MAX_BATCH_GET {
            return Err(DynamoError::validation(format!(
                "Too many items requested for the BatchGetItem call: between 1 and {MAX_BATCH_GET} keys, got {total}"
            )));
        }
        let mut responses = serde_json::Map::new();
        let mut unprocessed = serde_json::Map::new();
        let mut capacity = Vec::new();
        let mut bytes = 0usize;
        for (name, mut request) in req.request_items {
            let table = self.catalog.get(&name)?;
            let ph = request.expressions.placeholders();
            let projection = request
                .expressions
                .projection_expression
                .as_deref()
                .map(|p| expr::parse_projection(p, &ph))
                .transpose()?;
            ph.check_all_used()?;
            let mut seen = BTreeSet::new();
            let mut found = Vec::new();
            let mut left = Vec::new();
            let mut read = 0usize;
            for key_item in &request.keys {
                let key = table.key_param(key_item)?;
                if !seen.insert(key.clone()) {
                    return Err(duplicates());
                }
                if bytes >= MAX_BATCH_GET_BYTES {
                    left.push(key_item);
                    continue;
                }
                if let Some(item) = self.load(&table, &key)? {
                    let size = item_size(&item);
                    bytes += size;
                    read += size;
                    found.push(project(item, projection.as_deref()));
                }
            }
            responses.insert(name.clone(), serde_json::to_value(found).expect("items serialize"));
            if !left.is_empty() {
                let mut again = json!({"Keys": left});
                if let Some(p) = &request.expressions.projection_expression {
                    again["ProjectionExpression"] = json!(p);
                }
                unprocessed.insert(name.clone(), again);
            }
            let units = read_units(read, request.consistent_read.unwrap_or(false));
            capacity.extend(consumed(&name, req.return_consumed_capacity.as_deref(), units));
        }
        let mut out = json!({"Responses": responses, "UnprocessedKeys": unprocessed});
        if !capacity.is_empty() {
            out["ConsumedCapacity"] = json!(capacity);
        }
        Ok(out)
    }

    fn transact_action(&self, raw: &Json) -> Result<Action, DynamoError> {
        let invalid = || {
            DynamoError::validation(
                "Each TransactItem holds exactly one of ConditionCheck, Put, Delete and Update",
            )
        };
        let object = raw.as_object().filter(|o| o.len() == 1).ok_or_else(invalid)?;
        let (name, body) = object.iter().next().expect("one entry");
        let kind = match name.as_str() {
            "ConditionCheck" => ActionKind::ConditionCheck,
            "Put" => ActionKind::Put,
            "Delete" => ActionKind::Delete,
            "Update" => ActionKind::Update,
            _ => return Err(invalid()),
        };
        let mut action: TransactAction = serde_json::from_value(body.clone())
            .map_err(|e| DynamoError::validation(format!("{name}: {e}")))?;
        let table = self.catalog.get(&action.table_name)?;
        let ph = action.expressions.placeholders();
        let condition = parse_condition(action.expressions.condition_expression.as_deref(), &ph)?;
        let update =
            action.update_expression.as_deref().map(|u| expr::parse_update(u, &ph)).transpose()?;
        ph.check_all_used()?;
        let (key, key_item) = match (kind, &action.item, &action.key) {
            (ActionKind::Put, Some(item), None) => {
                (validate_item(&table, item)?, table.key_attributes(item))
            }
            (ActionKind::Put, _, _) => {
                return Err(DynamoError::validation("Put takes an Item and no Key"));
            }
            (_, None, Some(key)) => (table.key_param(key)?, key.clone()),
            (_, _, _) => {
                return Err(DynamoError::validation(format!("{name} takes a Key and no Item")));
            }
        };
        match (kind, &condition, &update) {
            (ActionKind::ConditionCheck, None, _) => {
                return Err(DynamoError::validation("ConditionCheck needs a ConditionExpression"));
            }
            (ActionKind::Update, _, None) => {
                return Err(DynamoError::validation("Update needs an UpdateExpression"));
            }
            (ActionKind::Put | ActionKind::Delete | ActionKind::ConditionCheck, _, Some(_)) => {
                return Err(DynamoError::validation(format!("{name} takes no UpdateExpression")));
            }
            _ => {}
        }
        let return_old =
            return_old_on_failure(action.return_values_on_condition_check_failure.as_deref())?;
        Ok(Action { kind, table, key, key_item, item: action.item, update, condition, return_old })
    }

    pub(crate) fn transact_write_items(
        &self,
        req: TransactWriteItems,
    ) -> Result<Json, DynamoError> {
        let count = req.transact_items.len();
        if count == 0 || count > MAX_TRANSACT {
            return Err(DynamoError::validation(format!(
                "1 validation error detected: Value at 'transactItems' failed to satisfy constraint: Member must have between 1 and {MAX_TRANSACT} items; got {count}"
            )));
        }
        let digest: [u8; 32] =
            sha2::Sha256::digest(serde_json::to_vec(&req.transact_items).expect("json")).into();
        let actions = req
            .transact_items
            .iter()
            .map(|raw| self.transact_action(raw))
            .collect::<Result<Vec<_>, _>>()?;
        let mut seen = BTreeSet::new();
        if !actions.iter().all(|a| seen.insert((a.table.family(), a.key.clone()))) {
            return Err(DynamoError::validation(
                "Transaction request cannot include multiple operations on one item",
            ));
        }
        let families: Vec<String> = actions.iter().map(|a| a.table.family()).collect();
        let _guard = self
            .locks
            .write(families.iter().zip(&actions).map(|(f, a)| (f.as_str(), a.key.as_slice())))?;
        if let Some(token) = &req.client_request_token
            && self.tokens.seen(token, &digest)?
        {
            return Ok(json!({}));
        }
        let mut batch = WriteBatch::new();
        let mut reasons = Vec::with_capacity(count);
        let mut failed = false;
        let mut sizes: BTreeMap<String, usize> = BTreeMap::new();
        for (action, family) in actions.iter().zip(&families) {
            let current = self.load(&action.table, &action.key)?;
            let outcome =
                check_condition(action.condition.as_ref(), current.as_ref(), action.return_old)
                    .and_then(|()| {
                        match action.kind {
                            ActionKind::ConditionCheck => {}
                            ActionKind::Put => {
                                let item = action.item.as_ref().expect("validated");
                                self.stage_put(&mut batch, &action.table, action.key.clone(), item);
                            }
                            ActionKind::Delete => {
                                batch.delete(family, action.key.clone());
                            }
                            ActionKind::Update => {
                                let new = updated(
                                    &action.table,
                                    current.as_ref(),
                                    &action.key_item,
                                    action.update.as_ref(),
                                )?;
                                self.stage_put(&mut batch, &action.table, action.key.clone(), &new);
                            }
                        }
                        Ok(())
                    });
            *sizes.entry(action.table.name.clone()).or_default() +=
                current.as_ref().map_or(1, item_size).min(MAX_ITEM_BYTES);
            reasons.push(match outcome {
                Ok(()) => json!({"Code": "None"}),
                Err(e) => {
                    failed = true;
                    let code = if e.is_condition_failure() {
                        "ConditionalCheckFailed"
                    } else {
                        "ValidationError"
                    };
                    let mut reason = json!({"Code": code, "Message": e.message});
                    if let Some(item) = e.item {
                        reason["Item"] = item;
                    }
                    reason
                }
            });
        }
        if failed {
            let codes: Vec<&str> =
                reasons.iter().map(|r| r["Code"].as_str().unwrap_or("None")).collect();
            let mut err = DynamoError::new(
                Kind::TransactionCanceled,
                format!(
                    "Transaction cancelled, please refer cancellation reasons for specific reasons [{}]",
                    codes.join(", ")
                ),
            );
            err.reasons = Some(Json::Array(reasons));
            return Err(err);
        }
        if !batch.is_empty() {
            self.commit(&actions[0].table, &batch)?;
        }
        if let Some(token) = req.client_request_token {
            self.tokens.remember(token, digest);
        }
        let mut out = json!({});
        let capacity: Vec<Json> = sizes
            .iter()
            .filter_map(|(t, size)| {
                consumed(t, req.return_consumed_capacity.as_deref(), 2.0 * write_units(*size))
            })
            .collect();
        if !capacity.is_empty() {
            out["ConsumedCapacity"] = json!(capacity);
        }
        Ok(out)
    }

    pub(crate) fn transact_get_items(&self, req: TransactGetItems) -> Result<Json, DynamoError> {
        let count = req.transact_items.len();
        if count == 0 || count > MAX_TRANSACT {
            return Err(DynamoError::validation(format!(
                "TransactGetItems takes 1 to {MAX_TRANSACT} items; got {count}"
            )));
        }
        // Every read comes from one consistent view.
        let snapshot = self.db.snapshot()?;
        let mut responses = Vec::with_capacity(count);
        let mut sizes: BTreeMap<String, usize> = BTreeMap::new();
        for mut entry in req.transact_items {
            let Some(mut get) = entry.remove("Get").filter(|_| entry.is_empty()) else {
                return Err(DynamoError::validation("Each TransactGetItem holds one Get"));
            };
            let table = self.catalog.get(&get.table_name)?;
            let ph = get.expressions.placeholders();
            let projection = get
                .expressions
                .projection_expression
                .as_deref()
                .map(|p| expr::parse_projection(p, &ph))
                .transpose()?;
            ph.check_all_used()?;
            let key = table.key_param(
                get.key.as_ref().ok_or_else(|| DynamoError::validation("Get needs a Key"))?,
            )?;
            let bytes = snapshot.get(&table.family(), &key).map_err(|e| self.engine(&table, e))?;
            let item = bytes.map(|b| self.decode(&table, &key, &b)).transpose()?.flatten();
            *sizes.entry(table.name.clone()).or_default() += item.as_ref().map_or(0, item_size);
            responses.push(match item {
                Some(item) => json!({"Item": project(item, projection.as_deref())}),
                None => json!({}),
            });
        }
        let mut out = json!({"Responses": responses});
        let capacity: Vec<Json> = sizes
            .iter()
            .filter_map(|(t, size)| {
                consumed(t, req.return_consumed_capacity.as_deref(), 2.0 * read_units(*size, true))
            })
            .collect();
        if !capacity.is_empty() {
            out["ConsumedCapacity"] = json!(capacity);
        }
        Ok(out)
    }
}

fn project(item: Item, projection: Option<&[Path]>) -> Item {
    match projection {
        Some(paths) => expr::project(&item, paths),
        None => item,
    }
}
