//! The Lambda function against real S3-compatible servers on loopback: events decoded by
//! `lambda_http` in process, and the real binary behind the local Lambda runtime, driven by the
//! WKP-1 client and the conformance kit.

#[macro_use]
mod common;

use std::sync::atomic::Ordering;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use common::{S3, client};
use lambda_http::Body;
use sha2::{Digest, Sha256};
use wkp1_aws_lambda::LambdaFunction;
use wkp1_aws_lambda::keys::KeySource;
use wkp1_aws_lambda::settings::{LogFormat, Settings};
use wkp1_aws_s3::S3Store;
use wkp1_conformance::{RunOptions, Target, checks, run};
use wkp1_function::settings::FunctionSettings;
use wkp1_protocol::manifest::RestorePlan;
use wkp1_protocol::segment::{SegmentHeader, encode_segment};
use wkp1_protocol::{Endpoint, ErrorBody, Identifier, KeyId};
use wkp1_testkit::lambda::function_url_event;
use wkp1_testkit::{self as testing, Raw, noise, segment};

fn now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs()
}

/// The function as one warm Lambda instance holds it, configured from `env` as the binary is.
async fn in_process(s3: &S3, configure: impl FnOnce(&mut Settings)) -> LambdaFunction {
    let mut settings = Settings {
        bucket: s3.bucket.clone(),
        function: FunctionSettings { prefix: s3.prefix.clone(), ..FunctionSettings::default() },
        keys_secret: None,
        keys_parameter: None,
        keys_refresh_seconds: 300,
        presign: true,
        s3_force_path_style: true,
        log_format: LogFormat::Text,
    };
    configure(&mut settings);
    let store = S3Store::new(s3.client(), &s3.bucket);
    let keys = KeySource::Static(common::both_keys());
    LambdaFunction::new(store, settings.function_config().unwrap(), keys).await.unwrap()
}

/// Sends `raw` as a Function URL event through `lambda_http`'s decoding and the handler.
async fn invoke(function: &LambdaFunction, raw: Raw) -> (u16, Body, http::HeaderMap) {
    let event = function_url_event(
        raw.method.as_str(),
        &raw.path,
        &raw.query,
        &raw.headers,
        &raw.body,
        "t",
    );
    let request = lambda_http::request::from_str(&event.to_string()).unwrap();
    let response = function.handle(request).await;
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    (status, response.into_body(), headers)
}

fn json(body: &Body) -> serde_json::Value {
    match body {
        Body::Text(text) => serde_json::from_str(text).unwrap(),
        other => panic!("a JSON answer goes out as text, not {other:?}"),
    }
}

async fn events_carry_binary_bodies_both_ways(s3: S3) {
    let function = in_process(&s3, |_| {}).await;
    let (status, body, _) = invoke(
        &function,
        Raw::for_subtree(Endpoint::Restore, "ev", "claim=true", "").signed_at(now()),
    )
    .await;
    assert_eq!(status, 200, "{body:?}");
    let plan: RestorePlan = serde_json::from_value(json(&body)).unwrap();
    assert_eq!(plan.limits.max_inline_bytes, 4_500_000);
    assert!(plan.limits.presign_upload && plan.limits.presign_download);

    // Every byte value, and sequences that are not UTF-8: a text path would mangle them.
    let payload: Vec<u8> = (0..=255u8).cycle().take(70_000).chain([0xff, 0xfe, 0x00]).collect();
    let bytes = encode_segment(SegmentHeader::snapshot(3), &payload).unwrap();
    let persist = Raw::for_subtree(Endpoint::Persist, "ev", "", bytes.clone())
        .header("content-type", "application/vnd.wkp1.segment")
        .generation(plan.generation)
        .signed_at(now());
    let event = function_url_event("POST", &persist.path, "", &persist.headers, &persist.body, "t");
    assert_eq!(event["isBase64Encoded"], true, "a binary request arrives base64-encoded");
    let (status, body, _) = invoke(&function, persist).await;
    assert_eq!(status, 200, "{body:?}");
    assert_eq!(json(&body)["last_seq"], 3);
    let (_, body, _) =
        invoke(&function, Raw::for_subtree(Endpoint::Restore, "ev", "", "").signed_at(now())).await;
    let plan: RestorePlan = serde_json::from_value(json(&body)).unwrap();
    let id = plan.chain[0].segment.id;

    let query = format!("length={}&offset=0&segment={id}", bytes.len());
    let (status, body, headers) =
        invoke(&function, Raw::for_subtree(Endpoint::Restore, "ev", &query, "").signed_at(now()))
            .await;
    assert_eq!(status, 200);
    assert_eq!(headers["content-type"], "application/vnd.wkp1.segment");
    assert!(headers.get("content-length").is_none(), "Lambda sets the length itself");
    match body {
        Body::Binary(sent) => assert!(sent == bytes, "the segment comes back byte for byte"),
        other => panic!("a segment goes out as binary (base64 in the event), not {other:?}"),
    }

    // An error is JSON text with its WKP-1 code; a bad signature stores nothing.
    let mut forged =
        Raw::for_subtree(Endpoint::Persist, "ev", "", bytes).generation(plan.generation);
    forged.sign_with(testing::KEY_ID, &testing::second_secret(), now());
    let (status, body, _) = invoke(&function, forged).await;
    assert_eq!(status, 401);
    let error: ErrorBody = serde_json::from_value(json(&body)).unwrap();
    assert_eq!(error.error.code.to_string(), "signature_mismatch");
}

async fn conformance_kit_passes_through_the_lambda_runtime(s3: S3) {
    // Four warm instances share the bucket, as a Lambda under concurrent requests does.
    let lambda = s3.lambda(&[], 4).await;
    let target = Target {
        base_url: lambda.url.parse().unwrap(),
        key_id: KeyId::new(testing::KEY_ID).unwrap(),
        secret: testing::secret(),
        second_key: Some((KeyId::new(testing::SECOND_KEY_ID).unwrap(), testing::second_secret())),
        engine: Identifier::new("conformance").unwrap(),
        instance: Identifier::new(format!("l{:08x}", rand::random::<u32>())).unwrap(),
        request_timeout: Duration::from_secs(60),
        large_state_max: 24 << 20,
    };
    let report =
        run(target, checks::all(), &RunOptions { concurrency: 4, ..RunOptions::default() }).await;
    let failed = report.not_passed();
    assert!(
        failed.is_empty(),
        "against {}:\n{}\n\nlogs:\n{}",
        s3.name,
        failed.join("\n"),
        lambda.logs()
    );
    assert_eq!(report.summary.passed, checks::all().len());
}

/// `size` bytes of state through the function, then restored; returns the bytes that passed
/// through the Lambda front end.
async fn large_state_round_trip(s3: &S3, env: &[(&str, &str)], size: usize) -> u64 {
    let lambda = s3.lambda(env, 2).await;
    let writer = client(&lambda.url, "large", testing::KEY_ID);
    let generation = writer.plan(true).await.unwrap().generation;
    let state = segment(SegmentHeader::snapshot(1), &noise(size, 7)).await;
    writer.persist(generation, &state.file).await.unwrap();

    let dir = tempfile::tempdir().unwrap();
    let restored =
        client(&lambda.url, "large", testing::KEY_ID).restore(false, dir.path()).await.unwrap();
    assert_eq!(restored.segments.len(), 1);
    let downloaded = std::fs::read(&restored.segments[0].path).unwrap();
    assert_eq!(downloaded.len(), state.bytes.len());
    assert!(Sha256::digest(&downloaded) == Sha256::digest(&state.bytes), "restored state differs");
    let through = lambda.traffic.bytes_in.load(Ordering::Relaxed)
        + lambda.traffic.bytes_out.load(Ordering::Relaxed);
    assert!(
        lambda.logs().find(&testing::secret().to_base64()).is_none(),
        "a secret reached the logs"
    );
    through
}

async fn large_state_of_64_mb_goes_through_presigned_urls(s3: S3) {
    let size = 64 << 20;
    let through = large_state_round_trip(&s3, &[], size).await;
    // Plans, presign requests and the commit go through the function; the state does not.
    assert!(through < 1 << 20, "{through} bytes of a {size}-byte state went through the Lambda");
}

async fn large_state_goes_through_parts_without_presigning(s3: S3) {
    let size = 20 << 20;
    let through = large_state_round_trip(&s3, &[("WKP1_PRESIGN", "false")], size).await;
    assert!(through >= 2 * size as u64, "up in parts and down in ranges: {through} bytes");
}

async fn a_body_above_the_inline_limit_is_refused_before_storing(s3: S3) {
    let lambda = s3.lambda(&[], 1).await;
    let writer = client(&lambda.url, "limit", testing::KEY_ID);
    let generation = writer.plan(true).await.unwrap().generation;
    // 4.6 MB fits Lambda's 6 MB payload after base64 but not the advertised 4.5 MB.
    let bytes = encode_segment(SegmentHeader::snapshot(1), &noise(4_600_000, 3)).unwrap();
    let raw = Raw::for_subtree(Endpoint::Persist, "limit", "", bytes)
        .header("content-type", "application/vnd.wkp1.segment")
        .generation(generation)
        .signed_at(now());
    let response = reqwest::Client::new()
        .post(format!("{}{}", lambda.url, raw.path))
        .headers(raw.headers)
        .body(raw.body)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 413);
    let error: ErrorBody = serde_json::from_slice(&response.bytes().await.unwrap()).unwrap();
    assert_eq!(error.error.code.to_string(), "payload_too_large");
    let listed =
        s3.client().list_objects_v2().bucket(&s3.bucket).prefix(&s3.prefix).send().await.unwrap();
    assert!(
        listed.contents().iter().all(|o| !o.key().unwrap_or_default().contains("/segments/")),
        "nothing of the refused body was stored"
    );
}

/// A presigned part upload carries the create-only condition inside its signature: a replay of
/// the URL with other bytes is refused and the part keeps its first bytes, and the condition
/// cannot be dropped from the request without breaking the signature.
async fn a_replayed_presigned_part_upload_cannot_replace_the_part(s3: S3) {
    use wkp1_function::Store;
    let store = S3Store::new(s3.client(), &s3.bucket);
    let key = format!("{}/kv/orders/replica-0/parts/replay/000001", s3.prefix);
    let presigned = store.presign_put(&key, 300).await.unwrap().expect("S3 presigns uploads");
    assert_eq!(presigned.method, "PUT");
    assert_eq!(
        presigned.headers.get("if-none-match").map(String::as_str),
        Some("*"),
        "the create-only condition is one of the signed headers"
    );
    let http = reqwest::Client::new();
    let upload = |body: &'static [u8], with_condition: bool| {
        let mut request = http.put(&presigned.url).body(body);
        for (name, value) in &presigned.headers {
            if with_condition || name != "if-none-match" {
                request = request.header(name, value);
            }
        }
        async move { request.send().await.unwrap().status().as_u16() }
    };
    let stored = || async {
        let object = s3.client().get_object().bucket(&s3.bucket).key(&key).send().await.unwrap();
        object.body.collect().await.unwrap().into_bytes()
    };
    assert_eq!(upload(b"the first bytes", true).await, 200);
    assert_eq!(upload(b"OTHER bytes, replayed", true).await, 412, "a replay with other bytes");
    assert_eq!(stored().await.as_ref(), b"the first bytes");
    if s3.name == "moto" {
        // Known divergence: moto accepts presigned requests without checking their signature,
        // so a request that drops a signed header is not refused there (S3, MinIO and s3s-fs
        // refuse it).
        eprintln!("SKIPPED on moto: it does not verify presigned signatures");
        return;
    }
    let unconditional = upload(b"OTHER bytes, unconditional", false).await;
    assert_eq!(unconditional, 403, "the condition is part of the signature");
    assert_eq!(stored().await.as_ref(), b"the first bytes", "the part is unchanged");
}

/// `LARGE-8`: the limits advertised can be met. Without presigning every part passes through
/// the function, so the largest segment is `max_parts` inline bodies; a presigned part reaching
/// past `max_segment_bytes` is too large (`413`), like a part sent through the function.
async fn advertised_segment_limits_can_be_met(s3: S3) {
    let claim = || Raw::for_subtree(Endpoint::Restore, "limits", "claim=true", "").signed_at(now());
    let plan_of = |body: &Body| serde_json::from_value::<RestorePlan>(json(body)).unwrap();
    let through_parts = in_process(&s3, |s| s.presign = false).await;
    let limits = plan_of(&invoke(&through_parts, claim()).await.1).limits;
    assert_eq!(limits.max_segment_bytes, limits.max_parts * limits.max_inline_bytes);

    let presigning = in_process(&s3, |_| {}).await;
    let plan = plan_of(&invoke(&presigning, claim()).await.1);
    let max = plan.limits.max_segment_bytes;
    let id = hex::encode(Sha256::digest(b"a segment"));
    for (offset, length, status) in [(max - 10, 10, 200), (max - 10, 11, 413), (0, 0, 400)] {
        let query = format!("length={length}&offset={offset}&presign=true&segment={id}");
        let raw = Raw::for_subtree(Endpoint::Persist, "limits", &query, "")
            .generation(plan.generation)
            .signed_at(now());
        let (got, body, _) = invoke(&presigning, raw).await;
        assert_eq!(got, status, "presign {length} bytes at {offset}: {body:?}");
    }
}

// Not on s3s-fs: it names a side file after the base64 of each key, so keys longer than about
// 150 bytes (the kit's subtree names make them) fail there with 500 after the object is stored.
mod kit {
    use super::conformance_kit_passes_through_the_lambda_runtime;
    for_every_s3!(@server moto; conformance_kit_passes_through_the_lambda_runtime);
    for_every_s3!(@minio conformance_kit_passes_through_the_lambda_runtime);
}

for_every_s3!(
    events_carry_binary_bodies_both_ways,
    large_state_of_64_mb_goes_through_presigned_urls,
    large_state_goes_through_parts_without_presigning,
    a_body_above_the_inline_limit_is_refused_before_storing,
    a_replayed_presigned_part_upload_cannot_replace_the_part,
    advertised_segment_limits_can_be_met,
);
