//! Error bodies, isolation, concurrency and retention (SPEC.md sections 2, 8, 13, 14).

use std::sync::Arc;

use bytes::Bytes;
use wkp1_protocol::segment::SegmentHeader;
use wkp1_protocol::{Endpoint, ErrorCode};

use crate::check::{Check, CheckError, CheckResult};
use crate::session::{Request, Response, Session, segment};
use crate::{check, fail};

pub(crate) fn checks() -> Vec<Check> {
    vec![
        check!(
            errors_body_is_json_with_code_and_message,
            "errors",
            Must,
            ["ERR-1", "ERR-2"],
            "Clients decide on a stable code in a JSON body, sent with its status."
        ),
        check!(
            errors_first_defect_decides_the_answer,
            "errors",
            Must,
            ["ERR-5", "EP-2", "ID-1", "AUTH-10", "GEN-3"],
            "A request with two defects gets the same error from every function."
        ),
        check!(
            errors_never_reveal_secrets_or_signatures,
            "errors",
            Must,
            ["ERR-4", "AUTH-9"],
            "An error that shows the expected signature lets anyone forge requests."
        ),
        check!(
            isolation_replicas_do_not_see_each_other,
            "isolation",
            Must,
            ["ADDR-1", "ADDR-2"],
            "Each replica writes and restores only its own subtree."
        ),
        check!(
            concurrency_many_replicas_lose_nothing,
            "concurrency",
            Must,
            ["MAN-3", "ADDR-1"],
            "Replicas persisting at once all get back everything acknowledged."
        ),
        check!(
            retention_old_plan_survives_a_snapshot,
            "retention",
            Must,
            ["RET-1", "REST-4"],
            "A restore that started before a compaction still finds all its segments."
        ),
    ]
}

fn check_error_body(what: &str, response: &Response, status: u16) -> CheckResult {
    if response.status != status {
        fail!("{what}: expected status {status}, got {}", response.status);
    }
    let content_type =
        response.headers.get("content-type").and_then(|v| v.to_str().ok()).unwrap_or("");
    if !content_type.starts_with("application/json") {
        fail!("{what}: error body is {content_type:?}, not application/json");
    }
    let json: serde_json::Value = serde_json::from_slice(&response.body)
        .map_err(|e| CheckError::Fail(format!("{what}: error body is not JSON: {e}")))?;
    let (Some(code), Some(message)) =
        (json["error"]["code"].as_str(), json["error"]["message"].as_str())
    else {
        fail!("{what}: error body lacks error.code or error.message: {json}");
    };
    if message.is_empty() {
        fail!("{what}: error.message is empty");
    }
    match serde_json::from_value::<ErrorCode>(serde_json::json!(code)) {
        // unsupported_version is 404 on a path and 400 in a header; all others have one status.
        Ok(known) if known.status() != status && known != ErrorCode::UnsupportedVersion => {
            fail!("{what}: code {code} belongs with status {}, sent with {status}", known.status())
        }
        Ok(_) => Ok(()),
        Err(_) => fail!("{what}: {code:?} is not a WKP-1 error code"),
    }
}

async fn errors_body_is_json_with_code_and_message(s: &mut Session) -> CheckResult {
    let (subtree, generation) = s.claimed_replica().await?;
    let mut unsigned = s.sign(Request::new(Endpoint::Restore, &subtree, "", Bytes::new()));
    unsigned.headers.remove("wkp-signature");
    let response = s.send(unsigned).await?;
    check_error_body("unsigned restore", &response, 401)?;
    let mut route = Request::new(Endpoint::Restore, &subtree, "", Bytes::new());
    route.path = route.path.replacen("/v1/restore/", "/v1/nowhere/", 1);
    let response = s.send(s.sign(route)).await?;
    check_error_body("unknown route", &response, 404)?;
    let response = s
        .persist(
            &subtree,
            Endpoint::Persist,
            generation,
            &segment(SegmentHeader::delta(5, 6), b"gap"),
        )
        .await?;
    check_error_body("delta with a gap", &response, 409)?;
    let response = s.persist(&subtree, Endpoint::Persist, generation, b"not a segment").await?;
    check_error_body("invalid segment", &response, 422)
}

async fn isolation_replicas_do_not_see_each_other(s: &mut Session) -> CheckResult {
    let (a, ga) = s.claimed_replica().await?;
    let (b, gb) = s.claimed_replica().await?;
    s.persist_ok(&a, ga, &segment(SegmentHeader::snapshot(3), b"replica a")).await?;
    let plan_b = s.plan(&b, false).await?;
    if !plan_b.chain.is_empty() || plan_b.generation != gb {
        fail!(
            "replica b sees replica a's data or generation (state {}, generation {})",
            plan_b.last_seq,
            plan_b.generation
        );
    }
    s.persist_ok(&b, gb, &segment(SegmentHeader::snapshot(8), b"replica b")).await?;
    let (_, payloads_a) = s.restore(&a).await?;
    let (_, payloads_b) = s.restore(&b).await?;
    if payloads_a != vec![b"replica a".to_vec()] || payloads_b != vec![b"replica b".to_vec()] {
        fail!("replicas restored each other's data");
    }
    Ok(())
}

async fn concurrency_many_replicas_lose_nothing(s: &mut Session) -> CheckResult {
    const REPLICAS: usize = 8;
    const STEPS: u64 = 4;
    let target = Arc::clone(&s.target);
    let subtrees: Vec<_> = (0..REPLICAS).map(|_| s.replica()).collect();
    let mut tasks = tokio::task::JoinSet::new();
    for subtree in subtrees.clone() {
        let target = target.clone();
        tasks.spawn(async move {
            let mut session = Session::new(target, "concurrency");
            let generation = session.plan(&subtree, true).await?.generation;
            for step in 0..STEPS {
                let payload = format!("{} step {step}", subtree.replica);
                session
                    .persist_ok(
                        &subtree,
                        generation,
                        &segment(SegmentHeader::delta(step, step + 1), payload.as_bytes()),
                    )
                    .await?;
            }
            Ok::<_, CheckError>(())
        });
    }
    while let Some(joined) = tasks.join_next().await {
        joined.map_err(|e| CheckError::Fail(format!("replica task: {e}")))??;
    }
    for subtree in &subtrees {
        let (plan, payloads) = s.restore(subtree).await?;
        let expected: Vec<Vec<u8>> = (0..STEPS)
            .map(|step| format!("{} step {step}", subtree.replica).into_bytes())
            .collect();
        if plan.last_seq != STEPS || payloads != expected {
            fail!(
                "replica {} restored state {} with {} segments; every acknowledged delta must be back",
                subtree.replica,
                plan.last_seq,
                payloads.len()
            );
        }
    }
    Ok(())
}

async fn retention_old_plan_survives_a_snapshot(s: &mut Session) -> CheckResult {
    let (subtree, generation) = s.claimed_replica().await?;
    s.persist_ok(&subtree, generation, &segment(SegmentHeader::snapshot(10), b"old snapshot"))
        .await?;
    s.persist_ok(&subtree, generation, &segment(SegmentHeader::delta(10, 11), b"old delta"))
        .await?;
    let old_plan = s.plan(&subtree, false).await?;
    // The writer compacts while a restore is still downloading the old plan.
    s.persist_ok(&subtree, generation, &segment(SegmentHeader::snapshot(11), b"compacted")).await?;
    s.persist_ok(&subtree, generation, &segment(SegmentHeader::delta(11, 12), b"after")).await?;
    for planned in &old_plan.chain {
        s.download(&subtree, planned, old_plan.limits.max_response_bytes).await?;
    }
    Ok(())
}

async fn errors_first_defect_decides_the_answer(s: &mut Session) -> CheckResult {
    let (subtree, generation) = s.claimed_replica().await?;
    let bad_replica = |request: &Request| request.path.replace(subtree.replica.as_str(), "Bad.Id");
    let body = segment(SegmentHeader::delta(0, 1), b"two defects");

    // Method before authentication.
    let mut request = Request::new(Endpoint::Persist, &subtree, "", body.clone());
    request.method = http::Method::PUT;
    let response = s.send(request).await?;
    s.expect("unsigned PUT to persist", &response, 405, Some("method_not_allowed"))?;

    // Authentication before identifiers.
    let mut request = Request::new(Endpoint::Persist, &subtree, "", body.clone())
        .header("wkp-version", "1.0")
        .generation(generation);
    request.path = bad_replica(&request);
    let response = s.send(request).await?;
    s.expect(
        "unsigned persist to an invalid replica",
        &response,
        401,
        Some("missing_authentication"),
    )?;

    // Identifiers before the query.
    let mut request = Request::new(Endpoint::Restore, &subtree, "from_the_future=1", Bytes::new());
    request.path = bad_replica(&request);
    let response = s.send(s.sign(request)).await?;
    s.expect(
        "restore of an invalid replica with an unknown parameter",
        &response,
        400,
        Some("invalid_identifier"),
    )?;

    // Headers before the body: no generation and a body that is not a segment.
    let request =
        Request::new(Endpoint::Persist, &subtree, "", Bytes::from_static(b"not a segment"));
    let response = s.send(s.sign(request)).await?;
    s.expect(
        "persist without wkp-generation of bytes that are no segment",
        &response,
        400,
        Some("invalid_request"),
    )?;

    // The body's hash before its content, whether the content is short or has a bad header
    // (which a streaming verifier notices before the body has ended).
    for bad in [&b"not a segment, and not what was signed"[..], &[b'X'; 200][..]] {
        let mut request = s.sign(
            Request::new(Endpoint::Persist, &subtree, "", body.clone()).generation(generation),
        );
        request.body = Bytes::copy_from_slice(bad);
        let response = s.send(request).await?;
        s.expect(
            &format!("persist of {} other bytes than signed, not a segment", bad.len()),
            &response,
            401,
            Some("content_hash_mismatch"),
        )?;
    }
    let plan = s.plan(&subtree, false).await?;
    if plan.last_seq != 0 {
        fail!("a refused request was committed: the replica is at state {}", plan.last_seq);
    }
    Ok(())
}

async fn errors_never_reveal_secrets_or_signatures(s: &mut Session) -> CheckResult {
    let (subtree, generation) = s.claimed_replica().await?;
    let body = segment(SegmentHeader::delta(0, 1), b"forged");
    let good = s.sign(Request::new(Endpoint::Persist, &subtree, "", body).generation(generation));
    let signature = good.headers["wkp-signature"].to_str().unwrap_or_default().to_owned();
    let secret = s.target.secret.to_base64();
    let mut tampered = good.clone();
    tampered.headers.insert("wkp-signature", http::HeaderValue::from_static("00"));
    let mut wrong_body = good.clone();
    wrong_body.body = Bytes::from_static(b"other bytes");
    for (what, request) in [("wrong signature", tampered), ("wrong body", wrong_body)] {
        let response = s.send(request).await?;
        let text = String::from_utf8_lossy(&response.body).to_lowercase();
        let headers = format!("{:?}", response.headers).to_lowercase();
        for (name, needle) in [("the expected signature", &signature), ("the secret", &secret)] {
            let needle = needle.to_lowercase();
            if text.contains(&needle) || headers.contains(&needle) {
                fail!("the answer to a request with a {what} reveals {name}");
            }
        }
    }
    Ok(())
}
