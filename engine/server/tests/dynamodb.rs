//! The DynamoDB API driven by the real `aws-sdk-dynamodb` client: every operation, and the error
//! classes the SDK raises.

mod common;

use std::collections::HashMap;

use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::error::ProvideErrorMetadata;
use aws_sdk_dynamodb::types::{
    AttributeDefinition, AttributeValue as AV, BillingMode, ConditionCheck, Delete, DeleteRequest,
    Get, KeySchemaElement, KeyType, KeysAndAttributes, Put, PutRequest, ReturnValue,
    ScalarAttributeType, Select, TimeToLiveSpecification, TransactGetItem, TransactWriteItem,
    Update, WriteRequest,
};
use common::Engine;

fn s(v: &str) -> AV {
    AV::S(v.into())
}

fn n(v: impl ToString) -> AV {
    AV::N(v.to_string())
}

/// The error code the SDK saw (`ConditionalCheckFailedException`, ...).
fn code<E: ProvideErrorMetadata + std::fmt::Debug, R: std::fmt::Debug>(
    result: Result<
        R,
        aws_sdk_dynamodb::error::SdkError<E, aws_sdk_dynamodb::config::http::HttpResponse>,
    >,
) -> String {
    match result {
        Ok(r) => panic!("expected an error, got {r:?}"),
        Err(e) => e
            .as_service_error()
            .and_then(|e| e.code())
            .map(str::to_owned)
            .unwrap_or_else(|| format!("{e:?}")),
    }
}

async fn create(client: &Client, table: &str, range: Option<(&str, ScalarAttributeType)>) {
    let mut request =
        common::hash_key_table(client, table, "pk").billing_mode(BillingMode::PayPerRequest);
    if let Some((name, kind)) = range {
        request = request
            .key_schema(
                KeySchemaElement::builder()
                    .attribute_name(name)
                    .key_type(KeyType::Range)
                    .build()
                    .unwrap(),
            )
            .attribute_definitions(
                AttributeDefinition::builder()
                    .attribute_name(name)
                    .attribute_type(kind)
                    .build()
                    .unwrap(),
            );
    }
    request.send().await.unwrap();
}

async fn put(client: &Client, table: &str, item: &[(&str, AV)]) {
    let item: HashMap<String, AV> = item.iter().map(|(k, v)| (k.to_string(), v.clone())).collect();
    client.put_item().table_name(table).set_item(Some(item)).send().await.unwrap();
}

fn key(pk: &str) -> HashMap<String, AV> {
    HashMap::from([("pk".to_string(), s(pk))])
}

fn key2(pk: &str, sk: i64) -> HashMap<String, AV> {
    HashMap::from([("pk".to_string(), s(pk)), ("sk".to_string(), n(sk))])
}

#[tokio::test]
async fn tables_are_created_described_listed_and_deleted() {
    let engine = Engine::start().await;
    let client = engine.client();
    create(&client, "orders", Some(("sk", ScalarAttributeType::N))).await;
    for name in ["t-a", "t-b", "t-c"] {
        create(&client, name, None).await;
    }
    let table = client.describe_table().table_name("orders").send().await.unwrap().table.unwrap();
    assert_eq!(table.table_status.unwrap().as_str(), "ACTIVE");
    assert_eq!(table.key_schema.unwrap().len(), 2);
    assert!(table.table_arn.unwrap().ends_with(":table/orders"));
    put(&client, "orders", &[("pk", s("a")), ("sk", n(1))]).await;
    let table = client.describe_table().table_name("orders").send().await.unwrap().table.unwrap();
    assert_eq!(table.item_count, Some(1));

    // Pagination of ListTables.
    let first = client.list_tables().limit(2).send().await.unwrap();
    assert_eq!(first.table_names(), ["orders", "t-a"]);
    let next = client
        .list_tables()
        .exclusive_start_table_name(first.last_evaluated_table_name.unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(next.table_names(), ["t-b", "t-c"]);
    assert!(next.last_evaluated_table_name.is_none());

    let again = common::hash_key_table(&client, "orders", "pk")
        .billing_mode(BillingMode::PayPerRequest)
        .send()
        .await;
    assert_eq!(code(again), "ResourceInUseException");
    let no_definition = common::hash_key_table(&client, "broken", "other")
        .billing_mode(BillingMode::PayPerRequest)
        .send()
        .await;
    assert_eq!(code(no_definition), "ValidationException");
    let provisioned_without_throughput =
        common::hash_key_table(&client, "broken", "pk").send().await;
    assert_eq!(code(provisioned_without_throughput), "ValidationException");

    client.delete_table().table_name("orders").send().await.unwrap();
    assert_eq!(
        code(client.describe_table().table_name("orders").send().await),
        "ResourceNotFoundException"
    );
    assert_eq!(
        code(client.get_item().table_name("orders").set_key(Some(key2("a", 1))).send().await),
        "ResourceNotFoundException"
    );
    // A table of the same name starts empty.
    create(&client, "orders", Some(("sk", ScalarAttributeType::N))).await;
    let got =
        client.get_item().table_name("orders").set_key(Some(key2("a", 1))).send().await.unwrap();
    assert!(got.item.is_none());
    engine.stop().await.unwrap();
}

#[tokio::test]
async fn items_are_written_read_and_deleted_under_conditions() {
    let engine = Engine::start().await;
    let client = engine.client();
    create(&client, "items", None).await;
    let item = HashMap::from([
        ("pk".to_string(), s("k1")),
        ("n".to_string(), n("12.50")),
        ("b".to_string(), AV::B(vec![0u8, 1, 2].into())),
        ("ok".to_string(), AV::Bool(true)),
        ("nothing".to_string(), AV::Null(true)),
        ("l".to_string(), AV::L(vec![s("x"), n(1)])),
        ("m".to_string(), AV::M(HashMap::from([("inner".to_string(), s("y"))]))),
        ("ss".to_string(), AV::Ss(vec!["b".into(), "a".into()])),
        ("ns".to_string(), AV::Ns(vec!["2".into(), "1".into()])),
    ]);
    client.put_item().table_name("items").set_item(Some(item.clone())).send().await.unwrap();
    let got = client
        .get_item()
        .table_name("items")
        .set_key(Some(key("k1")))
        .send()
        .await
        .unwrap()
        .item
        .unwrap();
    assert_eq!(got["n"], n("12.5"), "numbers come back canonical");
    assert_eq!(got["b"], item["b"]);
    assert_eq!(got["m"], item["m"]);
    assert_eq!(got["l"], item["l"]);
    let mut set = got["ss"].as_ss().unwrap().clone();
    set.sort();
    assert_eq!(set, ["a", "b"]);

    let projected = client
        .get_item()
        .table_name("items")
        .set_key(Some(key("k1")))
        .projection_expression("#n, m.inner, l[1]")
        .expression_attribute_names("#n", "n")
        .send()
        .await
        .unwrap()
        .item
        .unwrap();
    assert_eq!(projected.len(), 3);
    assert_eq!(projected["l"], AV::L(vec![n(1)]));

    // Conditional put: only if absent.
    let again = client
        .put_item()
        .table_name("items")
        .set_item(Some(item.clone()))
        .condition_expression("attribute_not_exists(pk)")
        .send()
        .await;
    assert_eq!(code(again), "ConditionalCheckFailedException");
    let failed = client
        .put_item()
        .table_name("items")
        .set_item(Some(item.clone()))
        .condition_expression("n > :big")
        .expression_attribute_values(":big", n(100))
        .return_values_on_condition_check_failure(
            aws_sdk_dynamodb::types::ReturnValuesOnConditionCheckFailure::AllOld,
        )
        .send()
        .await
        .unwrap_err();
    let failed = failed.into_service_error();
    assert!(failed.is_conditional_check_failed_exception());
    let aws_sdk_dynamodb::operation::put_item::PutItemError::ConditionalCheckFailedException(e) =
        failed
    else {
        unreachable!()
    };
    assert_eq!(e.item.unwrap()["n"], n("12.5"), "the old item comes back with the failure");

    let replaced = client
        .put_item()
        .table_name("items")
        .item("pk", s("k1"))
        .item("v", n(2))
        .condition_expression("n = :n AND contains(ss, :a) AND size(l) = :two")
        .expression_attribute_values(":n", n("12.5"))
        .expression_attribute_values(":a", s("a"))
        .expression_attribute_values(":two", n(2))
        .return_values(ReturnValue::AllOld)
        .send()
        .await
        .unwrap();
    assert_eq!(replaced.attributes.unwrap()["ok"], AV::Bool(true));

    let deleted = client
        .delete_item()
        .table_name("items")
        .set_key(Some(key("k1")))
        .condition_expression("v = :v")
        .expression_attribute_values(":v", n(3))
        .send()
        .await;
    assert_eq!(code(deleted), "ConditionalCheckFailedException");
    let deleted = client
        .delete_item()
        .table_name("items")
        .set_key(Some(key("k1")))
        .return_values(ReturnValue::AllOld)
        .send()
        .await
        .unwrap();
    assert_eq!(deleted.attributes.unwrap()["v"], n(2));
    assert!(
        client
            .get_item()
            .table_name("items")
            .set_key(Some(key("k1")))
            .send()
            .await
            .unwrap()
            .item
            .is_none()
    );

    // Bad input: a clear error and nothing changed.
    let cases = [
        client.put_item().table_name("items").item("pk", n(1)).send().await.map(drop),
        client.put_item().table_name("items").item("other", s("x")).send().await.map(drop),
        client.put_item().table_name("items").item("pk", s("")).send().await.map(drop),
        client
            .put_item()
            .table_name("items")
            .item("pk", s("big"))
            .item("blob", AV::B(vec![0u8; 401 * 1024].into()))
            .send()
            .await
            .map(drop),
        client
            .put_item()
            .table_name("items")
            .item("pk", s("x"))
            .condition_expression("a = :missing")
            .send()
            .await
            .map(drop),
        client
            .put_item()
            .table_name("items")
            .item("pk", s("x"))
            .condition_expression("a = :v")
            .expression_attribute_values(":v", n(1))
            .expression_attribute_values(":unused", n(1))
            .send()
            .await
            .map(drop),
        client
            .put_item()
            .table_name("items")
            .item("pk", s("x"))
            .condition_expression("a = = :v")
            .expression_attribute_values(":v", n(1))
            .send()
            .await
            .map(drop),
    ];
    for (i, result) in cases.into_iter().enumerate() {
        assert_eq!(code(result), "ValidationException", "case {i}");
    }
    let extra_key = HashMap::from([("pk".into(), s("x")), ("extra".into(), s("y"))]);
    assert_eq!(
        code(client.get_item().table_name("items").set_key(Some(extra_key)).send().await),
        "ValidationException"
    );
    let scan = client.scan().table_name("items").send().await.unwrap();
    assert_eq!(scan.count, 0, "refused writes changed nothing");
    engine.stop().await.unwrap();
}

#[tokio::test]
async fn update_expressions_set_remove_add_and_delete() {
    let engine = Engine::start().await;
    let client = engine.client();
    create(&client, "counters", None).await;
    // UpdateItem on a missing item creates it.
    let created = client
        .update_item()
        .table_name("counters")
        .set_key(Some(key("c")))
        .update_expression(
            "SET hits = if_not_exists(hits, :zero) + :one, tags = :tags, history = :empty",
        )
        .expression_attribute_values(":zero", n(0))
        .expression_attribute_values(":one", n(1))
        .expression_attribute_values(":tags", AV::Ss(vec!["a".into(), "b".into()]))
        .expression_attribute_values(":empty", AV::L(vec![]))
        .return_values(ReturnValue::AllNew)
        .send()
        .await
        .unwrap()
        .attributes
        .unwrap();
    assert_eq!(created["hits"], n(1));
    let updated = client
        .update_item()
        .table_name("counters")
        .set_key(Some(key("c")))
        .update_expression("SET history = list_append(history, :h), #s = :s ADD hits :ten, extra :one DELETE tags :a")
        .expression_attribute_names("#s", "status")
        .expression_attribute_values(":h", AV::L(vec![s("first")]))
        .expression_attribute_values(":s", s("active"))
        .expression_attribute_values(":ten", n(10))
        .expression_attribute_values(":one", n(1))
        .expression_attribute_values(":a", AV::Ss(vec!["a".into()]))
        .condition_expression("hits = :one")
        .return_values(ReturnValue::UpdatedOld)
        .send()
        .await
        .unwrap()
        .attributes
        .unwrap();
    assert_eq!(updated["hits"], n(1), "UPDATED_OLD holds the touched attributes before");
    assert!(!updated.contains_key("status"), "status did not exist before");
    let now = client
        .get_item()
        .table_name("counters")
        .set_key(Some(key("c")))
        .send()
        .await
        .unwrap()
        .item
        .unwrap();
    assert_eq!(now["hits"], n(11));
    assert_eq!(now["extra"], n(1));
    assert_eq!(now["tags"], AV::Ss(vec!["b".into()]));
    assert_eq!(now["history"], AV::L(vec![s("first")]));
    assert_eq!(now["status"], s("active"));
    let removed = client
        .update_item()
        .table_name("counters")
        .set_key(Some(key("c")))
        .update_expression("REMOVE history[0], extra SET hits = hits - :one")
        .expression_attribute_values(":one", n(1))
        .return_values(ReturnValue::UpdatedNew)
        .send()
        .await
        .unwrap()
        .attributes
        .unwrap();
    assert_eq!(removed["hits"], n(10));
    assert!(!removed.contains_key("extra"));
    let now = client
        .get_item()
        .table_name("counters")
        .set_key(Some(key("c")))
        .send()
        .await
        .unwrap()
        .item
        .unwrap();
    assert_eq!(now["history"], AV::L(vec![]));

    for (expression, values) in [
        ("SET pk = :v", vec![(":v", s("x"))]),
        ("SET hits = hits + :v", vec![(":v", s("not a number"))]),
        ("SET a = :v, a = :v", vec![(":v", n(1))]),
        ("ADD status :v", vec![(":v", n(1))]),
        ("SET missing.child = :v", vec![(":v", n(1))]),
    ] {
        let mut request = client
            .update_item()
            .table_name("counters")
            .set_key(Some(key("c")))
            .update_expression(expression);
        for (k, v) in values {
            request = request.expression_attribute_values(k, v);
        }
        assert_eq!(code(request.send().await), "ValidationException", "{expression}");
    }
    let failed = client
        .update_item()
        .table_name("counters")
        .set_key(Some(key("c")))
        .update_expression("SET hits = :v")
        .condition_expression("attribute_not_exists(hits)")
        .expression_attribute_values(":v", n(0))
        .send()
        .await;
    assert_eq!(code(failed), "ConditionalCheckFailedException");
    let now = client
        .get_item()
        .table_name("counters")
        .set_key(Some(key("c")))
        .send()
        .await
        .unwrap()
        .item
        .unwrap();
    assert_eq!(now["hits"], n(10), "a failed update changes nothing");
    engine.stop().await.unwrap();
}

#[tokio::test]
async fn concurrent_counter_updates_are_not_lost() {
    let engine = Engine::start().await;
    let client = engine.client();
    create(&client, "counters", None).await;
    let tasks: Vec<_> = (0..8)
        .map(|_| {
            let client = client.clone();
            tokio::spawn(async move {
                for _ in 0..25 {
                    client
                        .update_item()
                        .table_name("counters")
                        .set_key(Some(key("c")))
                        .update_expression("SET hits = if_not_exists(hits, :zero) + :one")
                        .expression_attribute_values(":zero", n(0))
                        .expression_attribute_values(":one", n(1))
                        .send()
                        .await
                        .unwrap();
                }
            })
        })
        .collect();
    for task in tasks {
        task.await.unwrap();
    }
    let item = client
        .get_item()
        .table_name("counters")
        .set_key(Some(key("c")))
        .send()
        .await
        .unwrap()
        .item
        .unwrap();
    assert_eq!(item["hits"], n(200));
    engine.stop().await.unwrap();
}

#[tokio::test]
async fn query_reads_key_ranges_in_order_with_pages_filters_and_projections() {
    let engine = Engine::start().await;
    let client = engine.client();
    create(&client, "events", Some(("sk", ScalarAttributeType::N))).await;
    let sks = [-20, -3, 0, 1, 2, 5, 10, 11, 100, 1000];
    for sk in sks {
        put(&client, "events", &[("pk", s("p")), ("sk", n(sk)), ("even", AV::Bool(sk % 2 == 0))])
            .await;
    }
    put(&client, "events", &[("pk", s("other")), ("sk", n(1))]).await;
    let query = |condition: &str, values: Vec<(&str, AV)>| {
        let mut q = client
            .query()
            .table_name("events")
            .key_condition_expression(condition)
            .expression_attribute_values(":p", s("p"));
        for (k, v) in values {
            q = q.expression_attribute_values(k, v);
        }
        q
    };
    let sk_of = |items: &[HashMap<String, AV>]| -> Vec<i64> {
        items.iter().map(|i| i["sk"].as_n().unwrap().parse().unwrap()).collect()
    };
    let all = query("pk = :p", vec![]).send().await.unwrap();
    assert_eq!(sk_of(all.items()), sks, "numbers sort numerically, negatives first");
    type Case<'a> = (&'a str, Vec<(&'a str, AV)>, Vec<i64>);
    let cases: Vec<Case<'_>> = vec![
        ("pk = :p AND sk = :v", vec![(":v", n(5))], vec![5]),
        ("pk = :p AND sk < :v", vec![(":v", n(1))], vec![-20, -3, 0]),
        ("pk = :p AND sk <= :v", vec![(":v", n(1))], vec![-20, -3, 0, 1]),
        ("pk = :p AND sk > :v", vec![(":v", n(10))], vec![11, 100, 1000]),
        ("pk = :p AND sk >= :v", vec![(":v", n(10))], vec![10, 11, 100, 1000]),
        ("sk BETWEEN :a AND :b AND pk = :p", vec![(":a", n(-3)), (":b", n(2))], vec![-3, 0, 1, 2]),
    ];
    for (condition, values, expected) in cases {
        let got = query(condition, values).send().await.unwrap();
        assert_eq!(sk_of(got.items()), expected, "{condition}");
    }
    let reversed =
        query("pk = :p", vec![]).scan_index_forward(false).limit(3).send().await.unwrap();
    assert_eq!(sk_of(reversed.items()), [1000, 100, 11]);

    // Pages of 3 until done, both directions.
    for forward in [true, false] {
        let (mut seen, mut start) = (Vec::new(), None);
        loop {
            let page = query("pk = :p", vec![])
                .scan_index_forward(forward)
                .limit(3)
                .set_exclusive_start_key(start)
                .send()
                .await
                .unwrap();
            seen.extend(sk_of(page.items()));
            assert!(page.count <= 3);
            start = page.last_evaluated_key;
            if start.is_none() {
                break;
            }
        }
        let mut expected = sks.to_vec();
        if !forward {
            expected.reverse();
        }
        assert_eq!(seen, expected);
    }

    let filtered = query("pk = :p", vec![(":t", AV::Bool(true))])
        .filter_expression("even = :t")
        .limit(5)
        .send()
        .await
        .unwrap();
    assert_eq!(filtered.scanned_count, 5, "Limit counts items read before the filter");
    assert_eq!(sk_of(filtered.items()), [-20, 0, 2]);
    let projected = query("pk = :p AND sk = :v", vec![(":v", n(5))])
        .projection_expression("sk")
        .send()
        .await
        .unwrap();
    assert_eq!(projected.items()[0].len(), 1);
    let counted = query("pk = :p", vec![]).select(Select::Count).send().await.unwrap();
    assert_eq!((counted.count, counted.items.map(|i| i.len()).unwrap_or(0)), (10, 0));

    for (condition, values) in [
        ("sk = :v", vec![(":v", n(1))]),
        ("pk = :p AND sk <> :v", vec![(":v", n(1))]),
        ("pk = :p AND even = :v", vec![(":v", AV::Bool(true))]),
        ("pk = :p AND sk = :v", vec![(":v", s("not a number"))]),
        ("pk = :p AND sk BETWEEN :a AND :b", vec![(":a", n(5)), (":b", n(1))]),
    ] {
        assert_eq!(
            code(query(condition, values).send().await),
            "ValidationException",
            "{condition}"
        );
    }
    assert_eq!(
        code(query("pk = :p", vec![(":v", n(1))]).filter_expression("sk = :v").send().await),
        "ValidationException",
        "filters may not use key attributes"
    );
    engine.stop().await.unwrap();
}

#[tokio::test]
async fn string_range_keys_support_begins_with() {
    let engine = Engine::start().await;
    let client = engine.client();
    create(&client, "docs", Some(("path", ScalarAttributeType::S))).await;
    for path in ["a", "a/b", "a/b/c", "a\u{0}z", "ab", "b"] {
        put(&client, "docs", &[("pk", s("p")), ("path", s(path))]).await;
    }
    let got = client
        .query()
        .table_name("docs")
        .key_condition_expression("pk = :p AND begins_with(#path, :prefix)")
        .expression_attribute_names("#path", "path")
        .expression_attribute_values(":p", s("p"))
        .expression_attribute_values(":prefix", s("a/"))
        .send()
        .await
        .unwrap();
    let paths: Vec<&str> = got.items().iter().map(|i| i["path"].as_s().unwrap().as_str()).collect();
    assert_eq!(paths, ["a/b", "a/b/c"]);
    engine.stop().await.unwrap();
}

#[tokio::test]
async fn scan_pages_by_limit_and_by_megabyte_and_splits_into_segments() {
    let engine = Engine::start().await;
    let client = engine.client();
    create(&client, "blobs", None).await;
    let blob = AV::B(vec![7u8; 100 * 1024].into());
    for i in 0..30 {
        put(
            &client,
            "blobs",
            &[("pk", s(&format!("k{i:02}"))), ("blob", blob.clone()), ("i", n(i))],
        )
        .await;
    }
    let first = client.scan().table_name("blobs").send().await.unwrap();
    assert!(first.count < 30 && first.count >= 10, "a page stops after 1 MB: {}", first.count);
    let mut total = first.count;
    let mut start = first.last_evaluated_key;
    while let Some(key) = start {
        let page = client
            .scan()
            .table_name("blobs")
            .set_exclusive_start_key(Some(key))
            .send()
            .await
            .unwrap();
        total += page.count;
        start = page.last_evaluated_key;
    }
    assert_eq!(total, 30);

    let limited =
        client.scan().table_name("blobs").limit(7).projection_expression("i").send().await.unwrap();
    assert_eq!(limited.count, 7);
    assert!(limited.last_evaluated_key.is_some());
    assert_eq!(limited.items()[0].len(), 1);

    let filtered = client
        .scan()
        .table_name("blobs")
        .filter_expression("i >= :v")
        .expression_attribute_values(":v", n(25))
        .projection_expression("pk")
        .send()
        .await
        .unwrap();
    assert!(filtered.count <= 5);

    let mut seen = std::collections::BTreeSet::new();
    for segment in 0..3 {
        let mut start = None;
        loop {
            let page = client
                .scan()
                .table_name("blobs")
                .segment(segment)
                .total_segments(3)
                .projection_expression("pk")
                .set_exclusive_start_key(start)
                .send()
                .await
                .unwrap();
            for item in page.items() {
                assert!(
                    seen.insert(item["pk"].as_s().unwrap().clone()),
                    "each item is in one segment"
                );
            }
            start = page.last_evaluated_key;
            if start.is_none() {
                break;
            }
        }
    }
    assert_eq!(seen.len(), 30);
    assert_eq!(
        code(client.scan().table_name("blobs").segment(3).total_segments(3).send().await),
        "ValidationException"
    );
    assert_eq!(
        code(client.scan().table_name("blobs").limit(0).send().await),
        "ValidationException"
    );
    engine.stop().await.unwrap();
}

#[tokio::test]
async fn batch_writes_and_gets_follow_dynamodb_limits() {
    let engine = Engine::start().await;
    let client = engine.client();
    create(&client, "a-table", None).await;
    create(&client, "b-table", None).await;
    let put_request = |pk: String| {
        WriteRequest::builder()
            .put_request(PutRequest::builder().item("pk", s(&pk)).item("v", n(1)).build().unwrap())
            .build()
    };
    let written = client
        .batch_write_item()
        .request_items("a-table", (0..20).map(|i| put_request(format!("a{i}"))).collect())
        .request_items("b-table", (0..5).map(|i| put_request(format!("b{i}"))).collect())
        .send()
        .await
        .unwrap();
    assert!(written.unprocessed_items.unwrap_or_default().is_empty());
    let too_many = client
        .batch_write_item()
        .request_items("a-table", (0..26).map(|i| put_request(format!("x{i}"))).collect())
        .send()
        .await;
    assert_eq!(code(too_many), "ValidationException");
    let duplicate = client
        .batch_write_item()
        .request_items("a-table", vec![put_request("d".into()), put_request("d".into())])
        .send()
        .await;
    assert_eq!(code(duplicate), "ValidationException");
    let missing_table =
        client.batch_write_item().request_items("nope", vec![put_request("d".into())]).send().await;
    assert_eq!(code(missing_table), "ResourceNotFoundException");
    assert_eq!(
        client
            .scan()
            .table_name("a-table")
            .filter_expression("begins_with(pk, :x)")
            .expression_attribute_values(":x", s("x"))
            .send()
            .await
            .unwrap()
            .count,
        0
    );

    let deleted = client
        .batch_write_item()
        .request_items(
            "a-table",
            (0..10)
                .map(|i| {
                    WriteRequest::builder()
                        .delete_request(
                            DeleteRequest::builder()
                                .set_key(Some(key(&format!("a{i}"))))
                                .build()
                                .unwrap(),
                        )
                        .build()
                })
                .collect(),
        )
        .send()
        .await;
    deleted.unwrap();

    let keys = |prefix: &str, range: std::ops::Range<usize>| {
        let mut k = KeysAndAttributes::builder();
        for i in range {
            k = k.keys(key(&format!("{prefix}{i}")));
        }
        k
    };
    let got = client
        .batch_get_item()
        .request_items("a-table", keys("a", 0..20).projection_expression("pk").build().unwrap())
        .request_items("b-table", keys("b", 0..5).consistent_read(true).build().unwrap())
        .send()
        .await
        .unwrap();
    let responses = got.responses.unwrap();
    assert_eq!(responses["a-table"].len(), 10, "the deleted half is gone");
    assert!(responses["a-table"].iter().all(|i| i.len() == 1));
    assert_eq!(responses["b-table"].len(), 5);
    assert!(got.unprocessed_keys.unwrap_or_default().is_empty());
    let too_many = client
        .batch_get_item()
        .request_items("a-table", keys("a", 0..101).build().unwrap())
        .send()
        .await;
    assert_eq!(code(too_many), "ValidationException");
    let duplicate = client
        .batch_get_item()
        .request_items(
            "a-table",
            KeysAndAttributes::builder().keys(key("a1")).keys(key("a1")).build().unwrap(),
        )
        .send()
        .await;
    assert_eq!(code(duplicate), "ValidationException");
    engine.stop().await.unwrap();
}

#[tokio::test]
async fn transactions_commit_all_or_nothing() {
    let engine = Engine::start().await;
    let client = engine.client();
    create(&client, "accounts", None).await;
    create(&client, "ledger", None).await;
    put(&client, "accounts", &[("pk", s("alice")), ("balance", n(100))]).await;
    put(&client, "accounts", &[("pk", s("bob")), ("balance", n(0))]).await;
    let transfer = |amount: i64, token: &str| {
        client
            .transact_write_items()
            .client_request_token(token)
            .transact_items(
                TransactWriteItem::builder()
                    .update(
                        Update::builder()
                            .table_name("accounts")
                            .set_key(Some(key("alice")))
                            .update_expression("SET balance = balance - :a")
                            .condition_expression("balance >= :a")
                            .expression_attribute_values(":a", n(amount))
                            .build()
                            .unwrap(),
                    )
                    .build(),
            )
            .transact_items(
                TransactWriteItem::builder()
                    .update(
                        Update::builder()
                            .table_name("accounts")
                            .set_key(Some(key("bob")))
                            .update_expression("SET balance = balance + :a")
                            .expression_attribute_values(":a", n(amount))
                            .build()
                            .unwrap(),
                    )
                    .build(),
            )
            .transact_items(
                TransactWriteItem::builder()
                    .put(
                        Put::builder()
                            .table_name("ledger")
                            .item("pk", s(token))
                            .item("amount", n(amount))
                            .condition_expression("attribute_not_exists(pk)")
                            .build()
                            .unwrap(),
                    )
                    .build(),
            )
    };
    transfer(60, "t1").send().await.unwrap();
    // The same token and request again: accepted, applied once.
    transfer(60, "t1").send().await.unwrap();
    let balance = |who: &'static str| {
        let client = client.clone();
        async move {
            client
                .get_item()
                .table_name("accounts")
                .set_key(Some(key(who)))
                .send()
                .await
                .unwrap()
                .item
                .unwrap()["balance"]
                .clone()
        }
    };
    assert_eq!((balance("alice").await, balance("bob").await), (n(40), n(60)));
    assert_eq!(code(transfer(1, "t1").send().await), "IdempotentParameterMismatchException");

    let err = transfer(60, "t2").send().await.unwrap_err().into_service_error();
    let aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError::TransactionCanceledException(cancelled) = err else {
        panic!("expected TransactionCanceledException, got {err:?}");
    };
    let reasons: Vec<_> = cancelled
        .cancellation_reasons()
        .iter()
        .map(|r| r.code().unwrap_or("").to_owned())
        .collect();
    assert_eq!(reasons, ["ConditionalCheckFailed", "None", "None"]);
    assert_eq!((balance("alice").await, balance("bob").await), (n(40), n(60)), "nothing applied");
    assert!(
        client
            .get_item()
            .table_name("ledger")
            .set_key(Some(key("t2")))
            .send()
            .await
            .unwrap()
            .item
            .is_none()
    );

    let checked = client
        .transact_write_items()
        .transact_items(
            TransactWriteItem::builder()
                .condition_check(
                    ConditionCheck::builder()
                        .table_name("accounts")
                        .set_key(Some(key("bob")))
                        .condition_expression("balance = :b")
                        .expression_attribute_values(":b", n(60))
                        .build()
                        .unwrap(),
                )
                .build(),
        )
        .transact_items(
            TransactWriteItem::builder()
                .delete(
                    Delete::builder()
                        .table_name("ledger")
                        .set_key(Some(key("t1")))
                        .build()
                        .unwrap(),
                )
                .build(),
        )
        .send()
        .await;
    checked.unwrap();
    assert!(
        client
            .get_item()
            .table_name("ledger")
            .set_key(Some(key("t1")))
            .send()
            .await
            .unwrap()
            .item
            .is_none()
    );

    let same_item_twice = client
        .transact_write_items()
        .transact_items(
            TransactWriteItem::builder()
                .delete(
                    Delete::builder()
                        .table_name("accounts")
                        .set_key(Some(key("bob")))
                        .build()
                        .unwrap(),
                )
                .build(),
        )
        .transact_items(
            TransactWriteItem::builder()
                .put(Put::builder().table_name("accounts").item("pk", s("bob")).build().unwrap())
                .build(),
        )
        .send()
        .await;
    assert_eq!(code(same_item_twice), "ValidationException");

    let read = client
        .transact_get_items()
        .transact_items(
            TransactGetItem::builder()
                .get(
                    Get::builder()
                        .table_name("accounts")
                        .set_key(Some(key("alice")))
                        .build()
                        .unwrap(),
                )
                .build(),
        )
        .transact_items(
            TransactGetItem::builder()
                .get(
                    Get::builder()
                        .table_name("accounts")
                        .set_key(Some(key("nobody")))
                        .build()
                        .unwrap(),
                )
                .build(),
        )
        .send()
        .await
        .unwrap();
    let responses = read.responses();
    assert_eq!(responses[0].item.as_ref().unwrap()["balance"], n(40));
    assert!(responses[1].item.is_none());
    engine.stop().await.unwrap();
}

#[tokio::test]
async fn expired_items_are_never_returned() {
    let engine = Engine::start().await;
    let client = engine.client();
    create(&client, "sessions", None).await;
    let past =
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() - 60;
    let future = past + 3600;
    put(&client, "sessions", &[("pk", s("old")), ("expires", n(past))]).await;
    put(&client, "sessions", &[("pk", s("live")), ("expires", n(future))]).await;
    let ttl = client.describe_time_to_live().table_name("sessions").send().await.unwrap();
    assert_eq!(
        ttl.time_to_live_description.unwrap().time_to_live_status.unwrap().as_str(),
        "DISABLED"
    );
    // Without TTL, an expiry attribute is just data.
    assert_eq!(client.scan().table_name("sessions").send().await.unwrap().count, 2);

    let spec =
        TimeToLiveSpecification::builder().enabled(true).attribute_name("expires").build().unwrap();
    client
        .update_time_to_live()
        .table_name("sessions")
        .time_to_live_specification(spec.clone())
        .send()
        .await
        .unwrap();
    let ttl = client
        .describe_time_to_live()
        .table_name("sessions")
        .send()
        .await
        .unwrap()
        .time_to_live_description
        .unwrap();
    assert_eq!(
        (ttl.time_to_live_status.unwrap().as_str(), ttl.attribute_name.unwrap().as_str()),
        ("ENABLED", "expires")
    );
    assert_eq!(
        code(
            client
                .update_time_to_live()
                .table_name("sessions")
                .time_to_live_specification(spec)
                .send()
                .await
        ),
        "ValidationException"
    );

    put(&client, "sessions", &[("pk", s("new-old")), ("expires", n(past))]).await;
    assert!(
        client
            .get_item()
            .table_name("sessions")
            .set_key(Some(key("old")))
            .send()
            .await
            .unwrap()
            .item
            .is_none()
    );
    assert!(
        client
            .get_item()
            .table_name("sessions")
            .set_key(Some(key("new-old")))
            .send()
            .await
            .unwrap()
            .item
            .is_none()
    );
    let scanned = client.scan().table_name("sessions").send().await.unwrap();
    assert_eq!(
        scanned.items().iter().map(|i| i["pk"].as_s().unwrap().as_str()).collect::<Vec<_>>(),
        ["live"]
    );
    engine.stop().await.unwrap();
}

#[tokio::test]
async fn raw_protocol_errors_have_dynamodb_shapes() {
    let engine = Engine::start().await;
    let http = reqwest::Client::new();
    let send = |target: &str, body: &str| {
        http.post(engine.url())
            .header("x-amz-target", target)
            .header("content-type", "application/x-amz-json-1.0")
            .body(body.to_owned())
            .send()
    };
    let cases = [
        ("DynamoDB_20120810.NoSuchOperation", "{}", "UnknownOperationException"),
        ("DynamoDB_20120810.ListTables", "{not json", "SerializationException"),
        ("DynamoDB_20120810.GetItem", r#"{"TableName":"t"}"#, "ValidationException"),
        (
            "DynamoDB_20120810.PutItem",
            r#"{"TableName":"t","Item":{"pk":{"N":"not-a-number"}}}"#,
            "ValidationException",
        ),
        (
            "DynamoDB_20120810.CreateTable",
            r#"{"TableName":"__reserved","KeySchema":[{"AttributeName":"pk","KeyType":"HASH"}],"AttributeDefinitions":[{"AttributeName":"pk","AttributeType":"S"}],"BillingMode":"PAY_PER_REQUEST"}"#,
            "ValidationException",
        ),
        (
            "DynamoDB_20120810.PutItem",
            r#"{"TableName":"t","Item":{"pk":{"S":"x"}},"Expected":{}}"#,
            "ValidationException",
        ),
        (
            "DynamoDB_20120810.PutItem",
            r#"{"TableName":"t","Item":{"pk":{"S":"x"}}}"#,
            "ResourceNotFoundException",
        ),
    ];
    for (target, body, expected) in cases {
        let response = send(target, body).await.unwrap();
        assert_eq!(response.status(), 400, "{target}");
        assert_eq!(response.headers()["content-type"], "application/x-amz-json-1.0");
        let body: serde_json::Value =
            serde_json::from_slice(&response.bytes().await.unwrap()).unwrap();
        assert!(
            body["__type"].as_str().unwrap().ends_with(&format!("#{expected}")),
            "{target}: {body}"
        );
        assert!(!body["message"].as_str().unwrap().is_empty());
    }
    engine.stop().await.unwrap();
}

#[tokio::test]
async fn signatures_are_verified_when_credentials_are_configured() {
    let dir = tempfile::tempdir().unwrap();
    let engine = Engine::start_with(common::with_credentials(common::config(dir.path()))).await;
    let good = engine.client();
    good.list_tables().send().await.unwrap();
    let wrong_secret = common::client_for(&engine.url(), common::ACCESS_KEY, "not-the-secret");
    assert_eq!(code(wrong_secret.list_tables().send().await), "InvalidSignatureException");
    let unknown_key = common::client_for(&engine.url(), "AKIDUNKNOWN", common::SECRET_KEY);
    assert_eq!(code(unknown_key.list_tables().send().await), "UnrecognizedClientException");
    let unsigned = reqwest::Client::new()
        .post(engine.url())
        .header("x-amz-target", "DynamoDB_20120810.ListTables")
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(unsigned.status(), 400);
    let body: serde_json::Value = serde_json::from_slice(&unsigned.bytes().await.unwrap()).unwrap();
    assert!(body["__type"].as_str().unwrap().ends_with("#MissingAuthenticationTokenException"));
    let body_text = body.to_string();
    assert!(!body_text.contains(common::SECRET_KEY), "secrets stay out of error bodies");
    engine.stop().await.unwrap();

    // Without credentials, only loopback may be served.
    let mut open = common::config(dir.path());
    open.listen = "0.0.0.0:0".parse().unwrap();
    let refused = weftkit_kv_server::server::bind(&open).await.unwrap_err();
    assert!(refused.to_string().contains("WEFTKIT_ACCESS_KEY_ID"), "{refused}");
}
