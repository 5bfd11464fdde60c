//! The DynamoDB side of the server: request bodies of every operation, expressions, numbers
//! and SigV4 headers. Written against the server crate's public API (`Service::call`, the
//! `expr`, `value` and `sigv4` modules).

use std::collections::HashMap;
use std::sync::OnceLock;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde_json::{Value as Json, json};
use weftkit_kv::{Database, Options, SyncMode};
use weftkit_kv_server::dynamo::expr::{
    Placeholders, apply_update, evaluate, parse_condition, parse_projection, parse_update, project,
};
use weftkit_kv_server::dynamo::sigv4::{Credentials, verify};
use weftkit_kv_server::dynamo::value::{Item, Number, Value, item_size};
use weftkit_kv_server::dynamo::{Kind, Service, ServiceOptions, TARGET_PREFIX};
use wkp1_protocol::Clock;

use crate::request_text::RequestText;

/// Every operation the service implements, in the order the input's selector byte picks them.
pub const OPERATIONS: [&str; 16] = [
    "CreateTable",
    "DescribeTable",
    "ListTables",
    "DeleteTable",
    "UpdateTimeToLive",
    "DescribeTimeToLive",
    "PutItem",
    "GetItem",
    "DeleteItem",
    "UpdateItem",
    "Query",
    "Scan",
    "BatchWriteItem",
    "BatchGetItem",
    "TransactWriteItems",
    "TransactGetItems",
];

const WRITES: [&str; 6] = [
    "PutItem",
    "UpdateItem",
    "DeleteItem",
    "BatchWriteItem",
    "TransactWriteItems",
    "UpdateTimeToLive",
];

/// A fixed "now" for item TTLs, so a run does not depend on the day.
const NOW: u64 = 1_767_225_600;

/// A service over a fresh database in a temporary directory, with the tables the seeds use:
/// `tab` (hash `pk` S, range `sk` N) and `kvs` (hash `pk` S).
pub fn new_service() -> (tempfile::TempDir, Service) {
    let dir = crate::scratch_dir();
    let options = Options {
        sync: SyncMode::None,
        maintenance_interval: None,
        clock: Clock::from_fn(|| NOW),
        ..Options::default()
    };
    let db = Database::open(dir.path(), options).expect("open a database");
    let options = ServiceOptions {
        sync: SyncMode::None,
        clock: Clock::from_fn(|| NOW),
        ..Default::default()
    };
    let service = Service::new(db, options).expect("start the service");
    let tables = [
        json!({"TableName": "tab", "BillingMode": "PAY_PER_REQUEST",
            "AttributeDefinitions": [{"AttributeName": "pk", "AttributeType": "S"}, {"AttributeName": "sk", "AttributeType": "N"}],
            "KeySchema": [{"AttributeName": "pk", "KeyType": "HASH"}, {"AttributeName": "sk", "KeyType": "RANGE"}]}),
        json!({"TableName": "kvs", "BillingMode": "PAY_PER_REQUEST",
            "AttributeDefinitions": [{"AttributeName": "pk", "AttributeType": "S"}],
            "KeySchema": [{"AttributeName": "pk", "KeyType": "HASH"}]}),
    ];
    for table in tables {
        service.call(&format!("{TARGET_PREFIX}CreateTable"), table.to_string().as_bytes()).unwrap();
    }
    (dir, service)
}

/// Operations on one service. The input is a sequence of requests separated by NUL bytes,
/// each a selector byte (operation `b % 16`) and a JSON body, so a finding that needs earlier
/// writes carries them. The fuzzer shares one service across runs (opening a database per run
/// would cost most of the time); the replay test gives each input a fresh one.
///
/// Properties: no request answers InternalServerError, and after an acknowledged write every
/// table it names can still be read: a GetItem of the written key and a Scan.
pub fn dynamo_request(data: &[u8]) {
    static SHARED: OnceLock<(tempfile::TempDir, Service)> = OnceLock::new();
    let (_, service) = SHARED.get_or_init(new_service);
    run_requests(service, data);
}

/// [`dynamo_request`] against a service of the caller's.
pub fn run_requests(service: &Service, data: &[u8]) {
    for request in data.split(|b| *b == 0).take(16) {
        let Some((selector, body)) = request.split_first() else { continue };
        let operation = OPERATIONS[usize::from(*selector) % OPERATIONS.len()];
        let answer = call(service, operation, body);
        if answer.is_ok() && WRITES.contains(&operation) {
            check_readable(service, body);
        }
    }
}

fn call(service: &Service, operation: &str, body: &[u8]) -> Result<Json, Kind> {
    let answer = service.call(&format!("{TARGET_PREFIX}{operation}"), body);
    if let Err(error) = &answer {
        assert_ne!(
            error.kind,
            Kind::Internal,
            "{operation} {} answered InternalServerError: {}",
            String::from_utf8_lossy(body),
            error.message
        );
    }
    answer.map_err(|e| e.kind)
}

/// Reads back what an acknowledged write touched.
fn check_readable(service: &Service, body: &[u8]) {
    let Ok(body) = serde_json::from_slice::<Json>(body) else { return };
    let mut tables: Vec<(String, Option<&Json>)> = Vec::new();
    if let Some(name) = body.get("TableName").and_then(Json::as_str) {
        tables.push((name.to_owned(), body.get("Item").or_else(|| body.get("Key"))));
    }
    for (name, _) in body.get("RequestItems").and_then(Json::as_object).into_iter().flatten() {
        tables.push((name.clone(), None));
    }
    for item in body.get("TransactItems").and_then(Json::as_array).into_iter().flatten() {
        for op in item.as_object().into_iter().flat_map(|o| o.values()) {
            if let Some(name) = op.get("TableName").and_then(Json::as_str) {
                tables.push((name.to_owned(), op.get("Item").or_else(|| op.get("Key"))));
            }
        }
    }
    for (table, item) in tables {
        if let Some(key) = item.and_then(|item| key_of(service, &table, item)) {
            let _ = call(
                service,
                "GetItem",
                json!({"TableName": table, "Key": key}).to_string().as_bytes(),
            );
        }
        let _ = call(service, "Scan", json!({"TableName": table}).to_string().as_bytes());
        let _ =
            call(service, "DescribeTimeToLive", json!({"TableName": table}).to_string().as_bytes());
    }
}

/// The key attributes of `item`, by the table's key schema.
fn key_of(service: &Service, table: &str, item: &Json) -> Option<Json> {
    let described =
        call(service, "DescribeTable", json!({"TableName": table}).to_string().as_bytes()).ok()?;
    let schema = described.pointer("/Table/KeySchema")?.as_array()?;
    let mut key = serde_json::Map::new();
    for part in schema {
        let name = part.get("AttributeName")?.as_str()?;
        key.insert(name.to_owned(), item.get(name)?.clone());
    }
    Some(Json::Object(key))
}

/// The item and placeholder values every expression uses, built once: building them per run
/// would cost most of the run.
/// An item, its placeholder names and its placeholder values.
type Samples = (Item, HashMap<String, String>, HashMap<String, Value>);

fn samples() -> &'static Samples {
    static SAMPLES: OnceLock<Samples> = OnceLock::new();
    SAMPLES.get_or_init(|| {
        let names =
            [("#p", "pk"), ("#s", "s"), ("#n", "n"), ("#l", "l"), ("#m", "m"), ("#x", "missing")]
                .into_iter()
                .map(|(k, v)| (k.to_owned(), v.to_owned()))
                .collect();
        (sample_item(), names, sample_values())
    })
}

/// The item every expression runs against.
pub fn sample_item() -> Item {
    serde_json::from_value(json!({
        "pk": {"S": "a"}, "sk": {"N": "1"}, "s": {"S": "text"}, "n": {"N": "-12.5"},
        "b": {"B": "AAEC"}, "t": {"BOOL": true}, "z": {"NULL": true},
        "l": {"L": [{"N": "1"}, {"S": "x"}, {"L": [{"N": "2"}]}]},
        "m": {"M": {"a": {"N": "3"}, "b": {"M": {"c": {"S": "deep"}}}}},
        "ss": {"SS": ["a", "b"]}, "ns": {"NS": ["1", "2.5"]}, "bs": {"BS": ["AA=="]}
    }))
    .expect("the sample item is valid")
}

/// The values every expression may use as placeholders.
pub fn sample_values() -> HashMap<String, Value> {
    serde_json::from_value(json!({
        ":s": {"S": "text"}, ":n": {"N": "5"}, ":big": {"N": "9.9999999999999999999999999999999999999E+125"},
        ":tiny": {"N": "1E-130"}, ":neg": {"N": "-1E+125"}, ":b": {"B": "AAE="}, ":t": {"BOOL": false},
        ":l": {"L": [{"N": "7"}]}, ":m": {"M": {"k": {"S": "v"}}}, ":ss": {"SS": ["c"]},
        ":ns": {"NS": ["3", "4"]}, ":z": {"NULL": true}
    }))
    .expect("the sample values are valid")
}

/// Expression text (its first byte picks condition, update or projection), parsed and run
/// against [`sample_item`].
pub fn expression(data: &[u8]) {
    let Some((kind, text)) = data.split_first() else { return };
    let text = String::from_utf8_lossy(text);
    let (item, names, values) = samples();
    let placeholders = Placeholders::new(Some(names.clone()), Some(values.clone()));
    match kind % 3 {
        0 => {
            if let Ok(condition) = parse_condition(&text, &placeholders) {
                let _ = evaluate(&condition, item);
            }
        }
        1 => {
            if let Ok(update) = parse_update(&text, &placeholders) {
                let mut updated = item.clone();
                if apply_update(&mut updated, &update, &["pk", "sk"]).is_ok() {
                    let _ = item_size(&updated);
                    let json = serde_json::to_value(&updated).unwrap();
                    let again: Item = serde_json::from_value(json)
                        .expect("an updated item is valid DynamoDB JSON");
                    assert_eq!(again, updated, "an updated item round-trips");
                }
            }
        }
        _ => {
            if let Ok(paths) = parse_projection(&text, &placeholders) {
                let _ = project(item, &paths);
            }
        }
    }
    let _ = placeholders.check_all_used();
}

/// A number, or two separated by a newline: whatever parses prints as text that parses to the
/// same number, and two numbers order the same by value and by their key bytes.
pub fn number(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    let (a, b) = text.split_once('\n').unwrap_or((&text, ""));
    let parse = |t: &str| {
        let n = Number::parse(t).ok()?;
        let again = Number::parse(&n.to_text()).expect("a number's own text parses");
        assert_eq!(again.sort_key(), n.sort_key(), "{t:?} round-trips through {:?}", n.to_text());
        assert_eq!(Value::N(again), Value::N(n.clone()));
        Some(n)
    };
    if let (Some(a), Some(b)) = (parse(a), parse(b)) {
        let by_value = Value::N(a.clone()).compare(&Value::N(b.clone()));
        assert_eq!(by_value, Some(a.sort_key().cmp(&b.sort_key())), "{a:?} vs {b:?}");
    }
}

/// The key of AWS's SigV4 test suite.
pub fn sigv4_credentials() -> Credentials {
    Credentials {
        access_key_id: "AKIDEXAMPLE".into(),
        secret_access_key: "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY".into(),
    }
}

/// The clock of AWS's SigV4 test suite: 2015-08-30T12:36:00Z.
pub fn sigv4_now() -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(1_440_938_160)
}

/// A request in [`RequestText`] form through SigV4 verification.
pub fn sigv4(data: &[u8]) {
    let request = RequestText::parse(data);
    let _ = verify(
        &[sigv4_credentials()],
        &request.method,
        &request.path,
        &request.query,
        &request.headers,
        &request.body,
        sigv4_now(),
    );
}
