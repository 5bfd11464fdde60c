//! Query and Scan: a key range of a table's family, read in pages.
//!
//! A page stops at `Limit` items read or 1 MB read, whichever comes first, and names the last
//! item read in `LastEvaluatedKey` when more remain; filters apply after the limit, as in
//! DynamoDB.

use std::hash::{DefaultHasher, Hash, Hasher};
use std::ops::Bound;

use serde::Deserialize;
use serde_json::{Value as Json, json};

use super::Service;
use super::error::DynamoError;
use super::expr::{self, Cmp, Cond, Operand, Path, Placeholders};
use super::items::{Expressions, Legacy, consumed, read_units};
use super::keys;
use super::tables::{KeyAttr, Table};
use super::value::{Item, Value, item_size};

/// DynamoDB's page size limit.
const MAX_PAGE_BYTES: usize = 1 << 20;

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub(crate) struct Query {
    table_name: String,
    key_condition_expression: Option<String>,
    scan_index_forward: Option<bool>,
    #[serde(flatten)]
    page: PageParams,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub(crate) struct Scan {
    table_name: String,
    segment: Option<u64>,
    total_segments: Option<u64>,
    #[serde(flatten)]
    page: PageParams,
}

/// What Query and Scan share.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct PageParams {
    filter_expression: Option<String>,
    #[serde(flatten)]
    expressions: Expressions,
    limit: Option<i64>,
    exclusive_start_key: Option<Item>,
    select: Option<String>,
    index_name: Option<String>,
    consistent_read: Option<bool>,
    return_consumed_capacity: Option<String>,
    #[serde(flatten)]
    legacy: Legacy,
}

/// A range key condition of a Query.
#[derive(Debug)]
enum RangeCond {
    Cmp(Cmp, Value),
    Between(Value, Value),
    BeginsWith(Value),
}

/// Lower and upper bounds of an engine key range.
type KeyBounds = (Bound<Vec<u8>>, Bound<Vec<u8>>);

/// A parsed page request: what to read, filter and return.
struct Plan {
    table: std::sync::Arc<Table>,
    lower: Bound<Vec<u8>>,
    upper: Bound<Vec<u8>>,
    reverse: bool,
    limit: usize,
    filter: Option<Cond>,
    projection: Option<Vec<Path>>,
    count_only: bool,
    segment: Option<(u64, u64)>,
    consistent: bool,
    return_consumed_capacity: Option<String>,
}

fn key_value<'a>(attr: &KeyAttr, value: &'a Value) -> Result<&'a Value, DynamoError> {
    if !attr.kind.matches(value) {
        return Err(DynamoError::validation(format!(
            "One or more parameter values were invalid: Condition parameter type does not match schema type for {}",
            attr.name
        )));
    }
    Ok(value)
}

fn flatten_and(cond: Cond, out: &mut Vec<Cond>) {
    match cond {
        Cond::And(a, b) => {
            flatten_and(*a, out);
            flatten_and(*b, out);
        }
        other => out.push(other),
    }
}

fn single_attr(op: &Operand) -> Option<&str> {
    match op {
        Operand::Path(p) if p.0.len() == 1 => Some(p.root()),
        _ => None,
    }
}

fn flip(cmp: Cmp) -> Cmp {
    match cmp {
        Cmp::Lt => Cmp::Gt,
        Cmp::Le => Cmp::Ge,
        Cmp::Gt => Cmp::Lt,
        Cmp::Ge => Cmp::Le,
        other => other,
    }
}

/// Splits a KeyConditionExpression into the hash key value and the range key condition.
fn key_condition(table: &Table, cond: Cond) -> Result<(Value, Option<RangeCond>), DynamoError> {
    let unsupported = || DynamoError::validation("Query key condition not supported");
    let mut parts = Vec::new();
    flatten_and(cond, &mut parts);
    let (mut hash, mut range) = (None, None);
    for part in parts {
        // (attribute, condition on it)
        let (attr, condition) = match part {
            Cond::Compare(a, cmp, b) => {
                match (single_attr(&a).map(str::to_owned), single_attr(&b).map(str::to_owned), a, b)
                {
                    (Some(name), None, _, Operand::Value(v)) => (name, RangeCond::Cmp(cmp, v)),
                    (None, Some(name), Operand::Value(v), _) => {
                        (name, RangeCond::Cmp(flip(cmp), v))
                    }
                    _ => return Err(unsupported()),
                }
            }
            Cond::Between(a, Operand::Value(low), Operand::Value(high)) => {
                (single_attr(&a).ok_or_else(unsupported)?.to_owned(), RangeCond::Between(low, high))
            }
            Cond::BeginsWith(a, Operand::Value(prefix)) => {
                (single_attr(&a).ok_or_else(unsupported)?.to_owned(), RangeCond::BeginsWith(prefix))
            }
            _ => return Err(unsupported()),
        };
        if attr == table.hash.name {
            let RangeCond::Cmp(Cmp::Eq, v) = condition else {
                return Err(DynamoError::validation(
                    "Query key condition not supported: the hash key condition must be an equality",
                ));
            };
            if hash.replace(key_value(&table.hash, &v)?.clone()).is_some() {
                return Err(unsupported());
            }
        } else if let Some(r) = table.range.as_ref().filter(|r| r.name == attr) {
            match &condition {
                RangeCond::Cmp(Cmp::Ne, _) => return Err(unsupported()),
                RangeCond::Cmp(_, v) | RangeCond::BeginsWith(v) => {
                    key_value(r, v)?;
                }
                RangeCond::Between(a, b) => {
                    key_value(r, a)?;
                    key_value(r, b)?;
                    if a.compare(b) == Some(std::cmp::Ordering::Greater) {
                        return Err(DynamoError::validation(
                            "Invalid KeyConditionExpression: The BETWEEN operator requires upper bound to be greater than or equal to lower bound",
                        ));
                    }
                }
            }
            if matches!(condition, RangeCond::BeginsWith(Value::N(_))) {
                return Err(DynamoError::validation(
                    "Invalid KeyConditionExpression: begins_with does not take a number",
                ));
            }
            if range.replace(condition).is_some() {
                return Err(unsupported());
            }
        } else {
            return Err(DynamoError::validation(format!(
                "Query condition missed key schema element: {attr} is not a key attribute"
            )));
        }
    }
    let hash = hash.ok_or_else(|| {
        DynamoError::validation(format!(
            "Query condition missed key schema element: {}",
            table.hash.name
        ))
    })?;
    Ok((hash, range))
}

/// The engine key range a key condition selects.
fn key_range(
    table: &Table,
    hash: &Value,
    range: Option<&RangeCond>,
) -> Result<KeyBounds, DynamoError> {
    let prefix = keys::part(hash)?;
    if table.range.is_none() {
        return Ok((Bound::Included(prefix.clone()), Bound::Included(prefix)));
    }
    let at = |v: &Value| -> Result<Vec<u8>, DynamoError> {
        let mut key = prefix.clone();
        key.extend(keys::part(v)?);
        Ok(key)
    };
    let all_after = || match keys::prefix_end(&prefix) {
        Some(end) => Bound::Excluded(end),
        None => Bound::Unbounded,
    };
    Ok(match range {
        None => (Bound::Included(prefix.clone()), all_after()),
        Some(RangeCond::Cmp(cmp, v)) => match cmp {
            Cmp::Eq => (Bound::Included(at(v)?), Bound::Included(at(v)?)),
            Cmp::Lt => (Bound::Included(prefix.clone()), Bound::Excluded(at(v)?)),
            Cmp::Le => (Bound::Included(prefix.clone()), Bound::Included(at(v)?)),
            Cmp::Gt => (Bound::Excluded(at(v)?), all_after()),
            Cmp::Ge => (Bound::Included(at(v)?), all_after()),
            Cmp::Ne => unreachable!("refused by key_condition"),
        },
        Some(RangeCond::Between(a, b)) => (Bound::Included(at(a)?), Bound::Included(at(b)?)),
        Some(RangeCond::BeginsWith(v)) => {
            // The encoding without its terminator prefixes every value starting with `v`.
            let mut start = at(v)?;
            start.truncate(start.len() - 2);
            let end = match keys::prefix_end(&start) {
                Some(end) => Bound::Excluded(end),
                None => Bound::Unbounded,
            };
            (Bound::Included(start), end)
        }
    })
}

fn segment_of(key: &[u8], total: u64) -> u64 {
    let mut hasher = DefaultHasher::new();
    key.hash(&mut hasher);
    hasher.finish() % total
}

impl Service {
    fn plan(
        &self,
        table_name: &str,
        mut page: PageParams,
        key_expression: Option<&str>,
        reverse: bool,
        segment: Option<(u64, u64)>,
    ) -> Result<Plan, DynamoError> {
        page.legacy.refuse()?;
        if page.index_name.is_some() {
            return Err(DynamoError::validation(
                "IndexName: secondary indexes are not supported by weftkit-kv",
            ));
        }
        let table = self.catalog.get(table_name)?;
        let ph: Placeholders = page.expressions.placeholders();
        if page.expressions.condition_expression.is_some() {
            return Err(DynamoError::validation(
                "Query and Scan take a FilterExpression, not a ConditionExpression",
            ));
        }
        let key_cond = key_expression.map(|k| expr::parse_condition(k, &ph)).transpose()?;
        let filter =
            page.filter_expression.as_deref().map(|f| expr::parse_condition(f, &ph)).transpose()?;
        let projection = page
            .expressions
            .projection_expression
            .as_deref()
            .map(|p| expr::parse_projection(p, &ph))
            .transpose()?;
        ph.check_all_used()?;
        let count_only = match (page.select.as_deref(), &projection) {
            (None | Some("ALL_ATTRIBUTES"), None)
            | (None | Some("SPECIFIC_ATTRIBUTES"), Some(_)) => false,
            (Some("COUNT"), None) => true,
            (Some("ALL_ATTRIBUTES" | "COUNT"), Some(_)) => {
                return Err(DynamoError::validation(
                    "Cannot specify a ProjectionExpression unless Select is SPECIFIC_ATTRIBUTES",
                ));
            }
            (Some("SPECIFIC_ATTRIBUTES"), None) => {
                return Err(DynamoError::validation(
                    "Select SPECIFIC_ATTRIBUTES needs a ProjectionExpression",
                ));
            }
            (Some(other), _) => {
                return Err(DynamoError::validation(format!(
                    "Select must be ALL_ATTRIBUTES, SPECIFIC_ATTRIBUTES or COUNT, not {other}"
                )));
            }
        };
        let limit = match page.limit {
            None => usize::MAX,
            Some(n) if n >= 1 => n as usize,
            Some(n) => {
                return Err(DynamoError::validation(format!(
                    "1 validation error detected: Value '{n}' at 'limit' failed to satisfy constraint: Member must have value greater than or equal to 1"
                )));
            }
        };
        let (mut lower, mut upper) = match key_cond {
            Some(cond) => {
                let (hash, range) = key_condition(&table, cond)?;
                if let Some(filter) = &filter
                    && let Some(key) =
                        filter.roots().into_iter().find(|r| table.key_names().contains(r))
                {
                    return Err(DynamoError::validation(format!(
                        "Filter Expression can only contain non-primary key attributes: Primary key attribute: {key}"
                    )));
                }
                key_range(&table, &hash, range.as_ref())?
            }
            None => (Bound::Unbounded, Bound::Unbounded),
        };
        if let Some(start) = &page.exclusive_start_key {
            let start = table.key_param(start).map_err(|_| {
                DynamoError::validation("The provided starting key is invalid: it does not match the table's key schema")
            })?;
            if reverse {
                upper = tighter_upper(upper, start);
            } else {
                lower = tighter_lower(lower, start);
            }
        }
        Ok(Plan {
            table,
            lower,
            upper,
            reverse,
            limit,
            filter,
            projection,
            count_only,
            segment,
            consistent: page.consistent_read.unwrap_or(false),
            return_consumed_capacity: page.return_consumed_capacity,
        })
    }

    fn read_page(&self, plan: Plan) -> Result<Json, DynamoError> {
        let table = &plan.table;
        let direction = if plan.reverse {
            weftkit_kv::Direction::Reverse
        } else {
            weftkit_kv::Direction::Forward
        };
        let entries = self
            .db
            .range(&table.family(), (plan.lower, plan.upper), direction)
            .map_err(|e| self.engine(table, e))?;
        let (mut scanned, mut bytes, mut items, mut last) = (0usize, 0usize, Vec::new(), None);
        let mut more = false;
        for entry in entries {
            if scanned >= plan.limit || bytes >= MAX_PAGE_BYTES {
                more = true;
                break;
            }
            let (key, value) = entry?;
            if let Some((segment, total)) = plan.segment
                && segment_of(&key, total) != segment
            {
                continue;
            }
            let Some(item) = self.decode(table, &key, &value)? else { continue };
            scanned += 1;
            bytes += item_size(&item);
            last = Some(table.key_attributes(&item));
            if let Some(filter) = &plan.filter
                && !expr::evaluate(filter, &item)?
            {
                continue;
            }
            if !plan.count_only {
                items.push(match &plan.projection {
                    Some(paths) => expr::project(&item, paths),
                    None => item,
                });
            } else {
                items.push(Item::new());
            }
        }
        let mut out = json!({"Count": items.len(), "ScannedCount": scanned});
        if !plan.count_only {
            out["Items"] = serde_json::to_value(&items).expect("items serialize");
        }
        if more && let Some(last) = last {
            out["LastEvaluatedKey"] = serde_json::to_value(last).expect("items serialize");
        }
        let units = read_units(bytes, plan.consistent);
        if let Some(c) = consumed(&table.name, plan.return_consumed_capacity.as_deref(), units) {
            out["ConsumedCapacity"] = c;
        }
        Ok(out)
    }

    pub(crate) fn query(&self, req: Query) -> Result<Json, DynamoError> {
        let Some(key_condition) = req.key_condition_expression.as_deref() else {
            return Err(DynamoError::validation(
                "Either the KeyConditions or KeyConditionExpression parameter must be specified in the request",
            ));
        };
        let reverse = !req.scan_index_forward.unwrap_or(true);
        let plan = self.plan(&req.table_name, req.page, Some(key_condition), reverse, None)?;
        self.read_page(plan)
    }

    pub(crate) fn scan(&self, req: Scan) -> Result<Json, DynamoError> {
        let segment = match (req.segment, req.total_segments) {
            (None, None) => None,
            (Some(s), Some(t)) if (1..=1_000_000).contains(&t) && s < t => Some((s, t)),
            (Some(_), Some(_)) => {
                return Err(DynamoError::validation(
                    "TotalSegments must be 1 to 1000000 and Segment less than TotalSegments",
                ));
            }
            _ => {
                return Err(DynamoError::validation(
                    "The Segment parameter is required but was not present in the request when parameter TotalSegments is present (and the other way round)",
                ));
            }
        };
        let plan = self.plan(&req.table_name, req.page, None, false, segment)?;
        self.read_page(plan)
    }
}

fn tighter_lower(current: Bound<Vec<u8>>, after: Vec<u8>) -> Bound<Vec<u8>> {
    match &current {
        Bound::Included(k) | Bound::Excluded(k) if *k > after => current,
        _ => Bound::Excluded(after),
    }
}

fn tighter_upper(current: Bound<Vec<u8>>, before: Vec<u8>) -> Bound<Vec<u8>> {
    match &current {
        Bound::Included(k) | Bound::Excluded(k) if *k < before => current,
        _ => Bound::Excluded(before),
    }
}
