//! `wkp1-conformance vectors`: the test vectors for third parties. An author checks their
//! signer, verifier and segment reader against the vectors before pointing the kit at an
//! endpoint, in any language: each piece of their code is wrapped in a small program that reads
//! one case as JSON on standard input and writes its answer as JSON on standard output.
//!
//! | program | reads | writes |
//! |---|---|---|
//! | `--sign` | `{"key_id", "secret_base64", "request"}` (request without `wkp-signature`) | `{"canonical_request", "signature"}` |
//! | `--verify` | `{"keys", "now", "request"}` | `{"error": null}` or `{"error": "<code>"}` |
//! | `--segment` | `{"segment_hex"}` | `{"error": null, "header", "payload_hex", "segment_id"}` or `{"error": "<reason>"}` |
//!
//! `adapter` is the same three programs built on this kit's own implementation: an example of
//! the contract, and the reference the command is tested with.

use std::io::{Read, Write};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use http::{HeaderMap, HeaderName, HeaderValue, Method};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use wkp1_protocol::segment::SegmentReader;
use wkp1_protocol::signing::{self, KeyId, KeyRing, Secret, Verifier};
use wkp1_protocol::vectors;

/// Seconds one run of an author's program may take.
const PROGRAM_TIMEOUT: Duration = Duration::from_secs(20);

/// Writes the vector files and their schemas into `dir`.
pub fn export(dir: &Path) -> anyhow::Result<Vec<String>> {
    std::fs::create_dir_all(dir).with_context(|| format!("create {}", dir.display()))?;
    let files = [
        ("signing.json", vectors::SIGNING),
        ("segments.json", vectors::SEGMENTS),
        ("signing.schema.json", vectors::SIGNING_SCHEMA),
        ("segments.schema.json", vectors::SEGMENTS_SCHEMA),
    ];
    let mut written = Vec::new();
    for (name, text) in files {
        let path = dir.join(name);
        std::fs::write(&path, text).with_context(|| format!("write {}", path.display()))?;
        written.push(path.display().to_string());
    }
    Ok(written)
}

/// The author's programs, as shell commands; any may be absent.
#[derive(Debug, Clone, Default)]
pub struct Programs {
    pub sign: Option<String>,
    pub verify: Option<String>,
    pub segment: Option<String>,
    /// Whether `segment` decompresses the payload (cases only a decompressing reader finds).
    pub decompresses: bool,
}

/// One case's verdict.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CaseResult {
    /// `sign/restore_plan`, `verify/stale_timestamp`, `segment/bad_magic`, ...
    pub case: String,
    /// `None` when the program agreed with the vector, else what differed.
    pub failure: Option<String>,
}

/// Runs every case the given programs can answer.
pub fn check(programs: &Programs) -> anyhow::Result<Vec<CaseResult>> {
    if programs.sign.is_none() && programs.verify.is_none() && programs.segment.is_none() {
        bail!("give at least one of --sign, --verify, --segment");
    }
    let signing: Value = serde_json::from_str(vectors::SIGNING)?;
    let segments: Value = serde_json::from_str(vectors::SEGMENTS)?;
    let mut results = Vec::new();
    let cases = |v: &Value, key: &str| v[key].as_array().cloned().unwrap_or_default();
    if let Some(program) = &programs.sign {
        for case in cases(&signing, "positive") {
            let mut request = case["request"].clone();
            request["headers"].as_object_mut().map(|h| h.remove("wkp-signature"));
            let input = json!({
                "key_id": case["key_id"], "secret_base64": case["secret_base64"], "request": request,
            });
            let failure = run(program, &input).map_or_else(Some, |answer| {
                differing(&answer, &case, &["canonical_request", "signature"])
            });
            results.push(CaseResult {
                case: format!("sign/{}", case["name"].as_str().unwrap_or("?")),
                failure,
            });
        }
    }
    if let Some(program) = &programs.verify {
        let expectations = cases(&signing, "positive").into_iter().map(|c| (c, Value::Null)).chain(
            cases(&signing, "negative").into_iter().map(|c| {
                let expected = c["expected_error"].clone();
                (c, expected)
            }),
        );
        for (case, expected) in expectations {
            let input =
                json!({"keys": signing["keys"], "now": case["now"], "request": case["request"]});
            let failure = run(program, &input).map_or_else(Some, |answer| {
                (answer["error"] != expected)
                    .then(|| format!("error: expected {expected}, got {}", answer["error"]))
            });
            results.push(CaseResult {
                case: format!("verify/{}", case["name"].as_str().unwrap_or("?")),
                failure,
            });
        }
    }
    if let Some(program) = &programs.segment {
        for case in cases(&segments, "positive") {
            let input = json!({"segment_hex": case["segment_hex"]});
            let failure = run(program, &input).map_or_else(Some, |answer| {
                if !answer["error"].is_null() {
                    return Some(format!("refused a valid segment: {}", answer["error"]));
                }
                differing(&answer, &case, &["header", "payload_hex", "segment_id"])
            });
            results.push(CaseResult {
                case: format!("segment/{}", case["name"].as_str().unwrap_or("?")),
                failure,
            });
        }
        for case in cases(&segments, "negative") {
            if case["needs_decompression"] == true && !programs.decompresses {
                continue;
            }
            let input = json!({"segment_hex": case["segment_hex"]});
            let expected = &case["expected_error"];
            let failure = run(program, &input).map_or_else(Some, |answer| {
                (answer["error"] != *expected)
                    .then(|| format!("error: expected {expected}, got {}", answer["error"]))
            });
            results.push(CaseResult {
                case: format!("segment/{}", case["name"].as_str().unwrap_or("?")),
                failure,
            });
        }
    }
    Ok(results)
}

/// The first of `fields` where the program's answer differs from the vector, said plainly.
fn differing(answer: &Value, case: &Value, fields: &[&str]) -> Option<String> {
    fields
        .iter()
        .find(|f| answer[**f] != case[**f])
        .map(|field| format!("{field}: expected {}, got {}", case[*field], answer[*field]))
}

/// Runs `program` through the shell with `input` on standard input; its standard output must
/// be one JSON value.
fn run(program: &str, input: &Value) -> Result<Value, String> {
    let mut child = Command::new("sh")
        .arg("-c")
        .arg(program)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("could not start `{program}`: {e}"))?;
    let mut stdin = child.stdin.take().expect("piped");
    let text = input.to_string();
    let writer = std::thread::spawn(move || stdin.write_all(text.as_bytes()));
    let started = Instant::now();
    loop {
        match child.try_wait() {
            Ok(Some(_)) => break,
            Ok(None) if started.elapsed() > PROGRAM_TIMEOUT => {
                let _ = child.kill();
                return Err(format!("`{program}` did not finish within {PROGRAM_TIMEOUT:?}"));
            }
            Ok(None) => std::thread::sleep(Duration::from_millis(2)),
            Err(e) => return Err(format!("`{program}`: {e}")),
        }
    }
    let _ = writer.join();
    let output = child.wait_with_output().map_err(|e| format!("`{program}`: {e}"))?;
    if !output.status.success() {
        let stderr = String::from_utf8_lossy(&output.stderr);
        return Err(format!("`{program}` exited with {}: {}", output.status, stderr.trim()));
    }
    serde_json::from_slice(&output.stdout).map_err(|e| {
        format!("`{program}` wrote no JSON ({e}): {:?}", String::from_utf8_lossy(&output.stdout))
    })
}

/// Which of the three programs [`adapter`] plays.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum AdapterKind {
    Sign,
    Verify,
    Segment,
}

/// One of the three programs, on this kit's own implementation: reads a case from `input`,
/// writes the answer to `output`.
pub fn adapter(
    kind: AdapterKind,
    mut input: impl Read,
    mut output: impl Write,
) -> anyhow::Result<()> {
    let mut text = String::new();
    input.read_to_string(&mut text)?;
    let case: Value = serde_json::from_str(&text).context("standard input is not JSON")?;
    let answer = match kind {
        AdapterKind::Sign => {
            let (method, path, query, headers, _) = request_of(&case["request"])?;
            let canonical = signing::canonical_request(method.as_str(), &path, &query, &headers)
                .map_err(|e| anyhow::anyhow!("{e}"))?;
            let secret = Secret::from_base64(case["secret_base64"].as_str().unwrap_or_default())
                .map_err(|e| anyhow::anyhow!("secret: {e}"))?;
            json!({"signature": signing::signature(&secret, &canonical), "canonical_request": canonical})
        }
        AdapterKind::Verify => {
            let mut ring = KeyRing::new();
            for (id, secret) in case["keys"].as_object().context("keys")? {
                let secret = Secret::from_base64(secret.as_str().unwrap_or_default())
                    .map_err(|e| anyhow::anyhow!("secret of {id}: {e}"))?;
                ring.insert(KeyId::new(id).map_err(|e| anyhow::anyhow!("{e}"))?, secret);
            }
            let (method, path, query, headers, body) = request_of(&case["request"])?;
            let now = case["now"].as_u64().context("now")?;
            let verdict = Verifier::new(ring)
                .verify(&method, &path, &query, &headers, now)
                .and_then(|auth| auth.check_body(&Sha256::digest(&body).into()));
            json!({"error": verdict.err().map(|e| e.code.to_string())})
        }
        AdapterKind::Segment => {
            let bytes = hex::decode(case["segment_hex"].as_str().unwrap_or_default())?;
            let decoded = SegmentReader::new(&bytes[..]).and_then(|mut reader| {
                let header = reader.header();
                let mut payload = Vec::new();
                let read = std::io::copy(&mut reader, &mut payload);
                let verified = reader.finish()?;
                read?;
                Ok((header, payload, verified.id_hex()))
            });
            match decoded {
                Ok((header, payload, id)) => json!({
                    "error": null, "header": header, "payload_hex": hex::encode(payload), "segment_id": id,
                }),
                Err(e) => json!({"error": e.reason()}),
            }
        }
    };
    writeln!(output, "{answer}")?;
    Ok(())
}

type Parsed = (Method, String, String, HeaderMap, Vec<u8>);

fn request_of(v: &Value) -> anyhow::Result<Parsed> {
    let text = |key: &str| v[key].as_str().with_context(|| format!("request.{key}"));
    let mut headers = HeaderMap::new();
    for (name, value) in v["headers"].as_object().context("request.headers")? {
        headers.append(
            HeaderName::from_bytes(name.as_bytes())?,
            HeaderValue::from_str(value.as_str().unwrap_or_default())?,
        );
    }
    Ok((
        text("method")?.parse()?,
        text("path")?.to_owned(),
        text("query")?.to_owned(),
        headers,
        hex::decode(text("body_hex")?)?,
    ))
}
