//! Every number the API accepts reads back as the same decimal through every read path, and
//! sorts as a number when it is a key; every number outside DynamoDB's range is refused with
//! DynamoDB's message and stores nothing.

use std::str::FromStr;

use bigdecimal::BigDecimal;
use proptest::prelude::*;
use serde_json::{Value as Json, json};
use weftkit_kv::{Database, Options};
use weftkit_kv_server::dynamo::number::{MAX_MAGNITUDE, MIN_MAGNITUDE};
use weftkit_kv_server::dynamo::{Kind, Service, ServiceOptions};

struct Api {
    service: Service,
    _dir: tempfile::TempDir,
}

impl Api {
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let db = Database::open(dir.path(), Options::default()).unwrap();
        let service = Service::new(db, ServiceOptions::default()).unwrap();
        let api = Self { service, _dir: dir };
        api.ok(
            "CreateTable",
            json!({
                "TableName": "nums",
                "KeySchema": [{"AttributeName": "pk", "KeyType": "HASH"},
                              {"AttributeName": "sk", "KeyType": "RANGE"}],
                "AttributeDefinitions": [{"AttributeName": "pk", "AttributeType": "S"},
                                         {"AttributeName": "sk", "AttributeType": "N"}],
                "BillingMode": "PAY_PER_REQUEST"
            }),
        );
        api
    }

    fn call(
        &self,
        operation: &str,
        body: Json,
    ) -> Result<Json, weftkit_kv_server::dynamo::DynamoError> {
        self.service.call(&format!("DynamoDB_20120810.{operation}"), body.to_string().as_bytes())
    }

    fn ok(&self, operation: &str, body: Json) -> Json {
        self.call(operation, body).unwrap_or_else(|e| panic!("{operation}: {e:?}"))
    }
}

fn decimal(json: &Json) -> BigDecimal {
    BigDecimal::from_str(json.as_str().expect("N is a string")).unwrap()
}

/// Any number DynamoDB accepts, as a client might write it: 1 to 38 significant digits at any
/// magnitude in range, either sign, in plain or E notation, or zero.
fn valid_number() -> impl Strategy<Value = String> {
    prop_oneof![
        1 => Just("0".to_owned()),
        20 => (any::<bool>(), "[1-9][0-9]{0,37}", MIN_MAGNITUDE..=MAX_MAGNITUDE, any::<bool>())
            .prop_map(|(negative, digits, magnitude, plain)| {
                let sign = if negative { "-" } else { "" };
                let exponent = magnitude - (digits.len() as i64 - 1);
                if plain {
                    let d = BigDecimal::from_str(&format!("{digits}E{exponent}")).unwrap();
                    format!("{sign}{}", d.to_plain_string())
                } else {
                    format!("{sign}{digits}E{exponent}")
                }
            }),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    /// Numbers as attributes, set members and range keys come back equal through GetItem,
    /// Query (in numeric order), Scan, projections, ReturnValues, batches and transactions.
    #[test]
    fn every_accepted_number_reads_back_equal_everywhere(
        numbers in proptest::collection::btree_set(valid_number(), 2..6)
    ) {
        let api = Api::new();
        let numbers: Vec<String> = numbers.into_iter().collect();
        let expected: Vec<BigDecimal> =
            numbers.iter().map(|n| BigDecimal::from_str(n).unwrap()).collect();
        // Distinct texts may be equal numbers ("1E1" and "10"): keep one of each.
        let mut unique: Vec<(BigDecimal, String)> =
            expected.iter().cloned().zip(numbers.iter().cloned()).collect();
        unique.sort_by(|a, b| a.0.cmp(&b.0));
        unique.dedup_by(|a, b| a.0 == b.0);
        let set: Vec<&String> = unique.iter().map(|(_, t)| t).collect();

        for (i, (_, text)) in unique.iter().enumerate() {
            let item = json!({"pk": {"S": "p"}, "sk": {"N": text}, "n": {"N": text},
                              "ns": {"NS": set}, "m": {"M": {"deep": {"L": [{"N": text}]}}}});
            if i % 2 == 0 {
                api.ok("PutItem", json!({"TableName": "nums", "Item": item}));
            } else {
                api.ok("BatchWriteItem", json!({"RequestItems": {"nums": [{"PutRequest": {"Item": item}}]}}));
            }
        }
        let key = |t: &str| json!({"pk": {"S": "p"}, "sk": {"N": t}});
        for (value, text) in &unique {
            let got = api.ok("GetItem", json!({"TableName": "nums", "Key": key(text)}));
            prop_assert_eq!(&decimal(&got["Item"]["n"]["N"]), value);
            prop_assert_eq!(&decimal(&got["Item"]["sk"]["N"]), value);
            prop_assert_eq!(&decimal(&got["Item"]["m"]["M"]["deep"]["L"][0]["N"]), value);
            let members: Vec<BigDecimal> =
                got["Item"]["ns"]["NS"].as_array().unwrap().iter().map(decimal).collect();
            let mut want: Vec<BigDecimal> = unique.iter().map(|(v, _)| v.clone()).collect();
            let mut members_sorted = members.clone();
            members_sorted.sort();
            want.sort();
            prop_assert_eq!(members_sorted, want);

            let projected = api.ok("GetItem", json!({"TableName": "nums", "Key": key(text),
                "ProjectionExpression": "m.deep[0], n"}));
            prop_assert_eq!(&decimal(&projected["Item"]["n"]["N"]), value);
            prop_assert_eq!(&decimal(&projected["Item"]["m"]["M"]["deep"]["L"][0]["N"]), value);

            // Adding zero leaves the number as it was; ReturnValues shows both sides.
            let updated = api.ok("UpdateItem", json!({"TableName": "nums", "Key": key(text),
                "UpdateExpression": "SET n = n + :zero", "ExpressionAttributeValues": {":zero": {"N": "0"}},
                "ReturnValues": "ALL_NEW"}));
            prop_assert_eq!(&decimal(&updated["Attributes"]["n"]["N"]), value);
            let old = api.ok("PutItem", json!({"TableName": "nums",
                "Item": got["Item"].clone(), "ReturnValues": "ALL_OLD"}));
            prop_assert_eq!(&decimal(&old["Attributes"]["n"]["N"]), value);

            let batch = api.ok("BatchGetItem", json!({"RequestItems": {"nums": {"Keys": [key(text)]}}}));
            prop_assert_eq!(&decimal(&batch["Responses"]["nums"][0]["n"]["N"]), value);
            let transact = api.ok("TransactGetItems", json!({"TransactItems": [{"Get": {"TableName": "nums", "Key": key(text)}}]}));
            prop_assert_eq!(&decimal(&transact["Responses"][0]["Item"]["n"]["N"]), value);
            api.ok("TransactWriteItems", json!({"TransactItems": [{"Update": {"TableName": "nums", "Key": key(text),
                "UpdateExpression": "SET copy = n", "ConditionExpression": "n = :v",
                "ExpressionAttributeValues": {":v": {"N": text}}}}]}));
        }

        // Query returns the range keys in numeric order, forward and backward; Scan sees all.
        let ascending: Vec<BigDecimal> = unique.iter().map(|(v, _)| v.clone()).collect();
        for (forward, order) in [(true, ascending.clone()), (false, ascending.iter().rev().cloned().collect())] {
            let page = api.ok("Query", json!({"TableName": "nums", "KeyConditionExpression": "pk = :p",
                "ExpressionAttributeValues": {":p": {"S": "p"}}, "ScanIndexForward": forward}));
            let keys: Vec<BigDecimal> = page["Items"].as_array().unwrap().iter().map(|i| decimal(&i["sk"]["N"])).collect();
            prop_assert_eq!(keys, order);
        }
        let scanned = api.ok("Scan", json!({"TableName": "nums"}));
        for item in scanned["Items"].as_array().unwrap() {
            prop_assert_eq!(decimal(&item["n"]["N"]), decimal(&item["sk"]["N"]));
            prop_assert_eq!(decimal(&item["copy"]["N"]), decimal(&item["n"]["N"]));
        }
        prop_assert_eq!(scanned["Items"].as_array().unwrap().len(), unique.len());
        // A key condition on a number range finds exactly the numbers inside it.
        let (low, high) = (&unique[0].1, &unique[unique.len() - 1].1);
        let between = api.ok("Query", json!({"TableName": "nums",
            "KeyConditionExpression": "pk = :p AND sk BETWEEN :lo AND :hi",
            "ExpressionAttributeValues": {":p": {"S": "p"}, ":lo": {"N": low}, ":hi": {"N": high}}}));
        prop_assert_eq!(between["Count"].as_u64().unwrap() as usize, unique.len());
    }
}

#[test]
fn numbers_outside_dynamodbs_range_are_refused_with_its_messages_and_store_nothing() {
    let api = Api::new();
    let cases = [
        (
            "1e126",
            "Number overflow. Attempting to store a number with magnitude larger than supported range",
        ),
        (
            "-1E+126",
            "Number overflow. Attempting to store a number with magnitude larger than supported range",
        ),
        (
            "1e-131",
            "Number underflow. Attempting to store a number with magnitude smaller than supported range",
        ),
        (
            "123456789012345678901234567890123456789",
            "Attempting to store more than 38 significant digits in a Number",
        ),
        (
            "-1.23456789012345678901234567890123456789",
            "Attempting to store more than 38 significant digits in a Number",
        ),
        ("b", "The parameter cannot be converted to a numeric value: b"),
    ];
    for (text, message) in cases {
        for item in [
            json!({"pk": {"S": "p"}, "sk": {"N": "1"}, "n": {"N": text}}),
            json!({"pk": {"S": "p"}, "sk": {"N": "1"}, "n": {"NS": ["1", text]}}),
            json!({"pk": {"S": "p"}, "sk": {"N": text}}),
        ] {
            let err = api.call("PutItem", json!({"TableName": "nums", "Item": item})).unwrap_err();
            assert_eq!(err.kind, Kind::Validation, "{text}");
            assert!(err.message.contains(message), "{text}: {}", err.message);
        }
    }
    let scan = api.ok("Scan", json!({"TableName": "nums"}));
    assert_eq!(scan["Count"], 0, "nothing was stored");
}

#[test]
fn the_extremes_of_the_range_are_stored_and_read_back_exactly() {
    let api = Api::new();
    let largest = format!("9.{}E+125", "9".repeat(37));
    let extremes = [
        "1E+125",
        "1E-130",
        "-1E-130",
        largest.as_str(),
        "-9.9999999999999999999999999999999999999E+125",
    ];
    for text in extremes {
        api.ok("PutItem", json!({"TableName": "nums", "Item": {"pk": {"S": text}, "sk": {"N": text}, "n": {"N": text}}}));
        let got = api.ok(
            "GetItem",
            json!({"TableName": "nums", "Key": {"pk": {"S": text}, "sk": {"N": text}}}),
        );
        assert_eq!(decimal(&got["Item"]["n"]["N"]), BigDecimal::from_str(text).unwrap(), "{text}");
    }
    // A whole table of them scans, and TTL can be turned on and off over it (on an attribute
    // none has: as a TTL, 1E-130 seconds would be long past and its item would expire).
    assert_eq!(api.ok("Scan", json!({"TableName": "nums"}))["Count"], extremes.len());
    let ttl = |enabled: bool| json!({"TableName": "nums", "TimeToLiveSpecification": {"Enabled": enabled, "AttributeName": "exp"}});
    api.ok("UpdateTimeToLive", ttl(true));
    api.ok("UpdateTimeToLive", ttl(false));
    assert_eq!(api.ok("Scan", json!({"TableName": "nums"}))["Count"], extremes.len());
}

#[test]
fn arithmetic_past_the_range_or_precision_fails_and_changes_nothing() {
    let api = Api::new();
    let key = json!({"pk": {"S": "p"}, "sk": {"N": "1"}});
    let largest = format!("9.{}E+125", "9".repeat(37));
    let add = |n: &str, v: &str| {
        api.ok("PutItem", json!({"TableName": "nums", "Item": {"pk": {"S": "p"}, "sk": {"N": "1"}, "n": {"N": n}}}));
        let err = api
            .call(
                "UpdateItem",
                json!({"TableName": "nums", "Key": key, "UpdateExpression": "ADD n :v",
                "ExpressionAttributeValues": {":v": {"N": v}}}),
            )
            .unwrap_err();
        let got = api.ok("GetItem", json!({"TableName": "nums", "Key": key}));
        assert_eq!(decimal(&got["Item"]["n"]["N"]), BigDecimal::from_str(n).unwrap(), "unchanged");
        err.message
    };
    assert!(add(&largest, "1E+89").starts_with("Number overflow"));
    assert!(add(&"9".repeat(38), "0.5").starts_with("Attempting to store more than 38"));
    let ok = api.ok(
        "UpdateItem",
        json!({"TableName": "nums", "Key": key, "UpdateExpression": "SET n = n - :v",
        "ExpressionAttributeValues": {":v": {"N": "1"}}, "ReturnValues": "UPDATED_NEW"}),
    );
    assert_eq!(ok["Attributes"]["n"]["N"], format!("{}8", "9".repeat(37)));
}
