//! Every operation either commits fully and answers success, or answers an error and changes
//! nothing: no item, no table definition, no TTL setting, no change-log entry. And a record that
//! cannot be decoded (damage on disk; no accepted request can write one) costs only that item.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use serde_json::{Value as Json, json};
use weftkit_kv::{Database, Direction, Options};
use weftkit_kv_server::dynamo::{DynamoError, Kind, Service, ServiceOptions};
use wkp1_protocol::Clock;

struct Api {
    service: Service,
    _dir: tempfile::TempDir,
}

/// One family's entries, key and value.
type Entries = Vec<(Vec<u8>, Vec<u8>)>;

/// Everything a request could change: every family's entries and the change log's head.
#[derive(Debug, PartialEq)]
struct State {
    last_seq: u64,
    families: Vec<(String, Entries)>,
}

impl Api {
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let db = Database::open(dir.path(), Options::default()).unwrap();
        let api = Self { service: Service::new(db, ServiceOptions::default()).unwrap(), _dir: dir };
        api.ok(
            "CreateTable",
            json!({
                "TableName": "things",
                "KeySchema": [{"AttributeName": "pk", "KeyType": "HASH"}],
                "AttributeDefinitions": [{"AttributeName": "pk", "AttributeType": "S"}],
                "BillingMode": "PAY_PER_REQUEST"
            }),
        );
        for (pk, n) in [("a", "1"), ("b", "2"), ("c", "3")] {
            api.ok(
                "PutItem",
                json!({"TableName": "things", "Item": {"pk": {"S": pk}, "n": {"N": n}, "s": {"S": "x"}}}),
            );
        }
        api
    }

    fn call(&self, operation: &str, body: &Json) -> Result<Json, DynamoError> {
        self.service.call(&format!("DynamoDB_20120810.{operation}"), body.to_string().as_bytes())
    }

    fn ok(&self, operation: &str, body: Json) -> Json {
        self.call(operation, &body).unwrap_or_else(|e| panic!("{operation}: {e:?}"))
    }

    fn db(&self) -> &Database {
        self.service.database()
    }

    fn state(&self) -> State {
        let db = self.db();
        let mut names: Vec<String> = db.list_families().into_iter().map(|(n, _)| n).collect();
        names.sort();
        let families = names
            .into_iter()
            .map(|name| {
                let entries =
                    db.range(&name, .., Direction::Forward).unwrap().map(Result::unwrap).collect();
                (name, entries)
            })
            .collect();
        State { last_seq: db.last_seq(), families }
    }

    fn table_family(&self) -> String {
        self.db()
            .list_families()
            .into_iter()
            .map(|(n, _)| n)
            .find(|n| n.ends_with("things") && !n.starts_with("__"))
            .expect("the table's family")
    }

    /// The request fails with `kind` and leaves every byte of state as it was.
    fn refused(&self, operation: &str, body: Json, kind: Kind) -> DynamoError {
        let before = self.state();
        let err = match self.call(operation, &body) {
            Ok(answer) => panic!("{operation} {body} should fail, answered {answer}"),
            Err(err) => err,
        };
        assert_eq!(err.kind, kind, "{operation} {body}: {}", err.message);
        assert_eq!(self.state(), before, "{operation} {body} failed but changed state");
        err
    }
}

fn key(pk: &str) -> Json {
    json!({"pk": {"S": pk}})
}

fn nested(depth: usize) -> Json {
    (0..depth).fold(json!({"S": "leaf"}), |inner, _| json!({"L": [inner]}))
}

#[test]
fn failed_item_writes_change_nothing() {
    let api = Api::new();
    let v = Kind::Validation;
    let big = "x".repeat(400 * 1024);
    api.refused(
        "PutItem",
        json!({"TableName": "things", "Item": {"pk": {"S": "a"}, "big": {"S": big}}}),
        v,
    );
    api.refused(
        "PutItem",
        json!({"TableName": "things", "Item": {"pk": {"S": "a"}, "deep": nested(33)}}),
        v,
    );
    api.refused(
        "PutItem",
        json!({"TableName": "things", "Item": {"pk": {"S": "a"}}, "ConditionExpression": "attribute_not_exists(pk)"}),
        Kind::ConditionalCheckFailed,
    );
    api.refused(
        "PutItem",
        json!({"TableName": "missing", "Item": {"pk": {"S": "a"}}}),
        Kind::ResourceNotFound,
    );
    let update = |expression: &str, values: Json| json!({"TableName": "things", "Key": key("a"), "UpdateExpression": expression, "ExpressionAttributeValues": values});
    let largest = format!("9.{}E+125", "9".repeat(37));
    api.ok(
        "PutItem",
        json!({"TableName": "things", "Item": {"pk": {"S": "big"}, "n": {"N": largest}}}),
    );
    api.refused(
        "UpdateItem",
        json!({"TableName": "things", "Key": key("big"), "UpdateExpression": "ADD n :v",
               "ExpressionAttributeValues": {":v": {"N": "1E+100"}}}),
        v,
    );
    api.refused(
        "UpdateItem",
        update("SET n = n + :v", json!({":v": {"N": "0.00000000000000000000000000000000000001"}})),
        v,
    );
    api.refused("UpdateItem", update("ADD s :v", json!({":v": {"N": "1"}})), v);
    api.refused("UpdateItem", update("SET pk = :v", json!({":v": {"S": "z"}})), v);
    api.refused("UpdateItem", update("SET big = :v", json!({":v": {"S": big}})), v);
    api.refused("UpdateItem", update("SET deep = :v", json!({":v": nested(33)})), v);
    api.refused(
        "UpdateItem",
        json!({"TableName": "things", "Key": key("a"), "UpdateExpression": "SET n = :v",
               "ConditionExpression": "n = :other", "ExpressionAttributeValues": {":v": {"N": "9"}, ":other": {"N": "7"}}}),
        Kind::ConditionalCheckFailed,
    );
    api.refused(
        "DeleteItem",
        json!({"TableName": "things", "Key": key("a"), "ConditionExpression": "attribute_not_exists(n)"}),
        Kind::ConditionalCheckFailed,
    );
    // The deepest list DynamoDB accepts is stored.
    api.ok(
        "PutItem",
        json!({"TableName": "things", "Item": {"pk": {"S": "deep"}, "deep": nested(32)}}),
    );
}

#[test]
fn failed_batches_and_transactions_change_nothing() {
    let api = Api::new();
    let put = |item: Json| json!({"PutRequest": {"Item": item}});
    api.refused(
        "BatchWriteItem",
        json!({"RequestItems": {"things": [
            put(json!({"pk": {"S": "new"}, "n": {"N": "1"}})),
            put(json!({"pk": {"S": "bad"}, "n": {"N": "1e126"}})),
        ]}}),
        Kind::Validation,
    );
    api.refused(
        "BatchWriteItem",
        json!({"RequestItems": {"things": [
            put(json!({"pk": {"S": "new"}})),
            {"DeleteRequest": {"Key": key("new")}},
        ]}}),
        Kind::Validation,
    );
    api.refused(
        "TransactWriteItems",
        json!({"TransactItems": [
            {"Put": {"TableName": "things", "Item": {"pk": {"S": "new"}}}},
            {"Delete": {"TableName": "things", "Key": key("b")}},
            {"ConditionCheck": {"TableName": "things", "Key": key("c"), "ConditionExpression": "n = :v",
                                "ExpressionAttributeValues": {":v": {"N": "4"}}}},
        ]}),
        Kind::TransactionCanceled,
    );
    api.refused(
        "TransactWriteItems",
        json!({"TransactItems": [
            {"Put": {"TableName": "things", "Item": {"pk": {"S": "new"}}}},
            {"Update": {"TableName": "things", "Key": key("b"), "UpdateExpression": "ADD s :one",
                        "ExpressionAttributeValues": {":one": {"N": "1"}}}},
        ]}),
        Kind::TransactionCanceled,
    );
}

#[test]
fn failed_table_operations_change_nothing() {
    let api = Api::new();
    let v = Kind::Validation;
    let ttl = |enabled: bool, attribute: &str| json!({"TableName": "things", "TimeToLiveSpecification": {"Enabled": enabled, "AttributeName": attribute}});
    api.refused("UpdateTimeToLive", ttl(false, "n"), v);
    api.refused("UpdateTimeToLive", ttl(true, ""), v);
    api.ok("UpdateTimeToLive", ttl(true, "n"));
    api.refused("UpdateTimeToLive", ttl(true, "n"), v);
    api.refused("UpdateTimeToLive", ttl(false, "other"), v);
    api.refused(
        "CreateTable",
        json!({"TableName": "things", "KeySchema": [{"AttributeName": "pk", "KeyType": "HASH"}],
               "AttributeDefinitions": [{"AttributeName": "pk", "AttributeType": "S"}], "BillingMode": "PAY_PER_REQUEST"}),
        Kind::ResourceInUse,
    );
    api.refused(
        "CreateTable",
        json!({"TableName": "other", "KeySchema": [{"AttributeName": "pk", "KeyType": "HASH"}],
               "AttributeDefinitions": [{"AttributeName": "pk", "AttributeType": "X"}], "BillingMode": "PAY_PER_REQUEST"}),
        v,
    );
    api.refused("DeleteTable", json!({"TableName": "missing"}), Kind::ResourceNotFound);
    assert!(api.service.close_writes());
    api.refused(
        "PutItem",
        json!({"TableName": "things", "Item": {"pk": {"S": "late"}}}),
        Kind::Unavailable,
    );
}

#[test]
fn a_damaged_record_costs_only_its_own_item_and_is_named() {
    let api = Api::new();
    let family = api.table_family();
    // What a torn or foreign write on disk would leave: bytes that are not an item.
    let damaged_key = b"zz-damaged".to_vec();
    api.db().put(&family, damaged_key.clone(), b"{not json".to_vec()).unwrap();
    let named = hex::encode(&damaged_key);

    let other = api.ok("GetItem", json!({"TableName": "things", "Key": key("a")}));
    assert_eq!(other["Item"]["n"]["N"], "1", "other items stay readable");
    let err = api.call("Scan", &json!({"TableName": "things"})).unwrap_err();
    assert_eq!(err.kind, Kind::Internal);
    assert!(err.message.contains(&named), "the error names the item: {}", err.message);

    // TTL on: committed and answered, although the damaged item cannot be re-stamped.
    let ttl = |enabled: bool| json!({"TableName": "things", "TimeToLiveSpecification": {"Enabled": enabled, "AttributeName": "n"}});
    api.ok("UpdateTimeToLive", ttl(true));
    // TTL off must clear every item's expiry first; it cannot, so it fails and changes nothing.
    let err = api.refused("UpdateTimeToLive", ttl(false), Kind::Internal);
    assert!(err.message.contains(&named), "{}", err.message);
    let described = api.ok("DescribeTimeToLive", json!({"TableName": "things"}));
    assert_eq!(described["TimeToLiveDescription"]["TimeToLiveStatus"], "ENABLED");
}

#[test]
fn turning_ttl_off_stops_items_from_expiring() {
    let now = Arc::new(AtomicU64::new(1_000_000));
    let clock = {
        let now = now.clone();
        Clock::from_fn(move || now.load(Ordering::SeqCst))
    };
    let dir = tempfile::tempdir().unwrap();
    let db = Database::open(dir.path(), Options::default().clock(clock.clone())).unwrap();
    let options = ServiceOptions { clock, ..ServiceOptions::default() };
    let api = Api { service: Service::new(db, options).unwrap(), _dir: dir };
    api.ok(
        "CreateTable",
        json!({"TableName": "things", "KeySchema": [{"AttributeName": "pk", "KeyType": "HASH"}],
               "AttributeDefinitions": [{"AttributeName": "pk", "AttributeType": "S"}], "BillingMode": "PAY_PER_REQUEST"}),
    );
    let ttl = |enabled: bool| json!({"TableName": "things", "TimeToLiveSpecification": {"Enabled": enabled, "AttributeName": "exp"}});
    let soon = "1000010";
    api.ok(
        "PutItem",
        json!({"TableName": "things", "Item": {"pk": {"S": "before"}, "exp": {"N": soon}}}),
    );
    api.ok("UpdateTimeToLive", ttl(true));
    api.ok(
        "PutItem",
        json!({"TableName": "things", "Item": {"pk": {"S": "during"}, "exp": {"N": soon}}}),
    );
    api.ok("UpdateTimeToLive", ttl(false));
    now.store(1_000_100, Ordering::SeqCst);
    api.db().maintenance().unwrap();
    for pk in ["before", "during"] {
        let back = api.ok("GetItem", json!({"TableName": "things", "Key": key(pk)}));
        assert_eq!(back["Item"]["exp"]["N"], soon, "TTL is off, so {pk} stays: {back}");
    }
    // And with TTL on, the same items expire.
    api.ok("UpdateTimeToLive", ttl(true));
    let gone = api.ok("GetItem", json!({"TableName": "things", "Key": key("during")}));
    assert!(gone.get("Item").is_none(), "{gone}");
}
