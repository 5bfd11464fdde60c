//! The data an end-to-end run writes through the DynamoDB API, and what it expects back.

use std::collections::{BTreeMap, HashMap};

use anyhow::Context;
use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::config::{BehaviorVersion, Credentials, Region};
use aws_sdk_dynamodb::types::{
    AttributeDefinition, AttributeValue as AV, BillingMode, KeySchemaElement, KeyType, PutRequest,
    ScalarAttributeType, WriteRequest,
};

pub(super) const TABLE: &str = "e2e";
pub(super) const ACCESS_KEY: &str = "AKIDWKP1E2E";

/// Items by (pk, sk): what the engine must hold.
pub(super) type Expected = BTreeMap<(String, i64), HashMap<String, AV>>;

pub(super) fn client(url: &str, secret: &str) -> Client {
    let config = aws_sdk_dynamodb::Config::builder()
        .behavior_version(BehaviorVersion::latest())
        .endpoint_url(url)
        .region(Region::new("us-east-1"))
        .credentials_provider(Credentials::new(ACCESS_KEY, secret, None, None, "e2e"))
        .build();
    Client::from_conf(config)
}

pub(super) async fn create_table(client: &Client) -> anyhow::Result<()> {
    client
        .create_table()
        .table_name(TABLE)
        .billing_mode(BillingMode::PayPerRequest)
        .key_schema(
            KeySchemaElement::builder().attribute_name("pk").key_type(KeyType::Hash).build()?,
        )
        .key_schema(
            KeySchemaElement::builder().attribute_name("sk").key_type(KeyType::Range).build()?,
        )
        .attribute_definitions(
            AttributeDefinition::builder()
                .attribute_name("pk")
                .attribute_type(ScalarAttributeType::S)
                .build()?,
        )
        .attribute_definitions(
            AttributeDefinition::builder()
                .attribute_name("sk")
                .attribute_type(ScalarAttributeType::N)
                .build()?,
        )
        .send()
        .await
        .context("CreateTable")?;
    Ok(())
}

/// Item `i` of generation `round`: every attribute type, sizes varying with `i`.
pub(super) fn item(i: i64, round: u32) -> HashMap<String, AV> {
    let pk = format!("user-{:03}", i % 37);
    let mut tags = vec![format!("t{}", i % 5), format!("r{round}")];
    tags.sort();
    HashMap::from([
        ("pk".to_owned(), AV::S(pk)),
        ("sk".to_owned(), AV::N(i.to_string())),
        ("round".to_owned(), AV::N(round.to_string())),
        ("score".to_owned(), AV::N(format!("{}.{}", i * 7 - 500, (i % 9) + 1))),
        ("name".to_owned(), AV::S(format!("item {i} ").repeat(1 + (i as usize % 20)))),
        ("blob".to_owned(), AV::B(vec![(i % 251) as u8; 1 + (i as usize * 13) % 700].into())),
        ("active".to_owned(), AV::Bool(i % 2 == 0)),
        ("tags".to_owned(), AV::Ss(tags)),
        (
            "profile".to_owned(),
            AV::M(HashMap::from([
                ("age".to_owned(), AV::N((20 + i % 50).to_string())),
                ("city".to_owned(), AV::S(["Oslo", "Lima", "Pune"][i as usize % 3].to_owned())),
                ("nothing".to_owned(), AV::Null(true)),
            ])),
        ),
        ("events".to_owned(), AV::L((0..(i % 4)).map(|e| AV::N(e.to_string())).collect())),
    ])
}

fn key_of(item: &HashMap<String, AV>) -> (String, i64) {
    let pk = item["pk"].as_s().expect("pk is S").clone();
    let sk = item["sk"].as_n().expect("sk is N").parse().expect("sk is an integer");
    (pk, sk)
}

/// Writes items `range` of `round` with BatchWriteItem, recording them in `expected`.
pub(super) async fn write(
    client: &Client,
    range: std::ops::Range<i64>,
    round: u32,
    expected: &mut Expected,
) -> anyhow::Result<()> {
    let items: Vec<_> = range.map(|i| item(i, round)).collect();
    for chunk in items.chunks(25) {
        let requests = chunk
            .iter()
            .map(|item| {
                Ok(WriteRequest::builder()
                    .put_request(PutRequest::builder().set_item(Some(item.clone())).build()?)
                    .build())
            })
            .collect::<anyhow::Result<Vec<_>>>()?;
        let out = client
            .batch_write_item()
            .request_items(TABLE, requests)
            .send()
            .await
            .context("BatchWriteItem")?;
        anyhow::ensure!(
            out.unprocessed_items.unwrap_or_default().is_empty(),
            "BatchWriteItem left items unprocessed"
        );
        for item in chunk {
            expected.insert(key_of(item), item.clone());
        }
    }
    Ok(())
}

/// Deletes every `step`-th item of `expected`.
pub(super) async fn delete_some(
    client: &Client,
    step: usize,
    expected: &mut Expected,
) -> anyhow::Result<usize> {
    let keys: Vec<_> = expected.keys().step_by(step).cloned().collect();
    for (pk, sk) in &keys {
        client
            .delete_item()
            .table_name(TABLE)
            .key("pk", AV::S(pk.clone()))
            .key("sk", AV::N(sk.to_string()))
            .send()
            .await
            .context("DeleteItem")?;
        expected.remove(&(pk.clone(), *sk));
    }
    Ok(keys.len())
}

/// Every item of the table, read in pages.
pub(super) async fn read_all(client: &Client) -> anyhow::Result<Expected> {
    let (mut out, mut start) = (Expected::new(), None);
    loop {
        let page = client
            .scan()
            .table_name(TABLE)
            .limit(200)
            .set_exclusive_start_key(start)
            .send()
            .await
            .context("Scan")?;
        for item in page.items() {
            out.insert(key_of(item), item.clone());
        }
        start = page.last_evaluated_key;
        if start.is_none() {
            return Ok(out);
        }
    }
}

/// Where `actual` differs from `expected`, in a few words.
pub(super) fn compare(expected: &Expected, actual: &Expected) -> Result<(), String> {
    let missing = expected.keys().filter(|k| !actual.contains_key(*k)).count();
    let extra = actual.keys().filter(|k| !expected.contains_key(*k)).count();
    let changed = expected.iter().filter(|(k, v)| actual.get(*k).is_some_and(|a| a != *v)).count();
    if missing + extra + changed == 0 {
        return Ok(());
    }
    let example = expected
        .iter()
        .find(|(k, v)| actual.get(*k) != Some(v))
        .map(|(k, _)| format!("; first difference at {k:?}"))
        .unwrap_or_default();
    Err(format!("{missing} items missing, {extra} unexpected, {changed} changed{example}"))
}
