//! The implementation against the language-neutral vectors in `test-vectors/`, so neither can
//! drift from the other. The same files are checked by `test-vectors/reference.py`, an
//! independent implementation written from SPEC.md.

use std::io::Write;

use http::{HeaderMap, HeaderName, HeaderValue, Method};
use serde_json::Value;
use sha2::{Digest, Sha256};
use wkp1_protocol::segment::{
    SegmentHeader, SegmentKind, SegmentReader, SegmentVerifier, SegmentWriter,
};
use wkp1_protocol::signing::{self, KeyId, KeyRing, Secret, Verifier};

fn load(name: &str) -> Value {
    let path = format!("{}/test-vectors/{name}", env!("CARGO_MANIFEST_DIR"));
    serde_json::from_str(&std::fs::read_to_string(&path).expect("read vectors")).expect("json")
}

fn str_of<'a>(v: &'a Value, key: &str) -> &'a str {
    v[key].as_str().unwrap_or_else(|| panic!("{key} missing in {v}"))
}

struct Request {
    method: Method,
    path: String,
    query: String,
    headers: HeaderMap,
    body: Vec<u8>,
}

fn request(v: &Value) -> Request {
    let mut headers = HeaderMap::new();
    for (name, value) in v["headers"].as_object().unwrap() {
        headers.append(
            HeaderName::from_bytes(name.as_bytes()).unwrap(),
            HeaderValue::from_str(value.as_str().unwrap()).unwrap(),
        );
    }
    Request {
        method: str_of(v, "method").parse().unwrap(),
        path: str_of(v, "path").to_owned(),
        query: str_of(v, "query").to_owned(),
        headers,
        body: hex::decode(str_of(v, "body_hex")).unwrap(),
    }
}

fn ring(keys: &Value) -> KeyRing {
    let mut ring = KeyRing::new();
    for (id, secret) in keys.as_object().unwrap() {
        ring.insert(
            KeyId::new(id).unwrap(),
            Secret::from_base64(secret.as_str().unwrap()).unwrap(),
        );
    }
    ring
}

/// Verification as a function does it: signature first, then the body against its hash.
fn verify(verifier: &Verifier, r: &Request, now: u64) -> Result<(), String> {
    let auth = verifier
        .verify(&r.method, &r.path, &r.query, &r.headers, now)
        .map_err(|e| e.code.to_string())?;
    auth.check_body(&Sha256::digest(&r.body).into()).map_err(|e| e.code.to_string())
}

#[test]
fn signing_vectors_match_canonical_form_signature_and_verdict() {
    let v = load("signing.json");
    let verifier = Verifier::new(ring(&v["keys"]));
    let positive = v["positive"].as_array().unwrap();
    assert!(positive.len() >= 6);
    for case in positive {
        let name = str_of(case, "name");
        let r = request(&case["request"]);
        let canonical =
            signing::canonical_request(r.method.as_str(), &r.path, &r.query, &r.headers)
                .unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(canonical, str_of(case, "canonical_request"), "{name}");
        let secret = Secret::from_base64(str_of(case, "secret_base64")).unwrap();
        assert_eq!(signing::signature(&secret, &canonical), str_of(case, "signature"), "{name}");
        let now = case["now"].as_u64().unwrap();
        assert_eq!(verify(&verifier, &r, now), Ok(()), "{name}");
    }
    let negative = v["negative"].as_array().unwrap();
    assert!(negative.len() >= 10);
    for case in negative {
        let name = str_of(case, "name");
        let r = request(&case["request"]);
        let now = case["now"].as_u64().unwrap();
        assert_eq!(
            verify(&verifier, &r, now),
            Err(str_of(case, "expected_error").to_owned()),
            "{name}"
        );
    }
}

#[test]
fn signer_reproduces_the_vector_signatures() {
    let v = load("signing.json");
    for case in v["positive"].as_array().unwrap() {
        let mut r = request(&case["request"]);
        let expected = r.headers.remove("wkp-signature").unwrap();
        let timestamp = r.headers["wkp-timestamp"].to_str().unwrap().trim().parse().unwrap();
        let content = r.headers["wkp-content-sha256"].to_str().unwrap().trim().to_owned();
        let signer = signing::Signer::new(
            KeyId::new(str_of(case, "key_id")).unwrap(),
            Secret::from_base64(str_of(case, "secret_base64")).unwrap(),
        );
        signer.sign(&r.method, &r.path, &r.query, &mut r.headers, &content, timestamp).unwrap();
        assert_eq!(r.headers["wkp-signature"], expected, "{}", str_of(case, "name"));
    }
}

fn header_of(v: &Value) -> SegmentHeader {
    SegmentHeader {
        kind: serde_json::from_value::<SegmentKind>(v["kind"].clone()).unwrap(),
        base_seq: v["base_seq"].as_u64().unwrap(),
        first_seq: v["first_seq"].as_u64().unwrap(),
        last_seq: v["last_seq"].as_u64().unwrap(),
    }
}

#[test]
fn segment_vectors_decode_verify_and_reencode() {
    let v = load("segments.json");
    for case in v["positive"].as_array().unwrap() {
        let name = str_of(case, "name");
        let bytes = hex::decode(str_of(case, "segment_hex")).unwrap();
        let header = header_of(&case["header"]);
        let payload = hex::decode(str_of(case, "payload_hex")).unwrap();

        let mut reader = SegmentReader::new(&bytes[..]).unwrap();
        assert_eq!(reader.header(), header, "{name}");
        let mut decoded = Vec::new();
        std::io::copy(&mut reader, &mut decoded).unwrap();
        assert_eq!(decoded, payload, "{name}");
        let verified = reader.finish().unwrap();
        assert_eq!(verified.id_hex(), str_of(case, "segment_id"), "{name}");

        let mut verifier = SegmentVerifier::new();
        for chunk in bytes.chunks(7) {
            verifier.update(chunk).unwrap();
        }
        assert_eq!(verifier.finish().unwrap(), verified, "{name}");

        // Our encoder: same header bytes, and its output decodes to the same payload.
        assert_eq!(hex::encode(header.encode()), str_of(case, "header_hex"), "{name}");
        let mut ours = Vec::new();
        let mut writer = SegmentWriter::new(&mut ours, header).unwrap();
        writer.write_all(&payload).unwrap();
        let written = writer.finish().unwrap();
        let mut again = Vec::new();
        let mut reader = SegmentReader::new(&ours[..]).unwrap();
        std::io::copy(&mut reader, &mut again).unwrap();
        assert_eq!(reader.finish().unwrap().id, written.id, "{name}");
        assert_eq!(again, payload, "{name}");
    }
}

#[test]
fn segment_vectors_negative_cases_are_refused_for_the_stated_reason() {
    let v = load("segments.json");
    for case in v["negative"].as_array().unwrap() {
        let name = str_of(case, "name");
        let bytes = hex::decode(str_of(case, "segment_hex")).unwrap();
        let expected = str_of(case, "expected_error");

        let from_reader = SegmentReader::new(&bytes[..]).and_then(|mut reader| {
            let _ = std::io::copy(&mut reader, &mut std::io::sink());
            reader.finish()
        });
        assert_eq!(from_reader.unwrap_err().reason(), expected, "{name} (reader)");

        let mut verifier = SegmentVerifier::new();
        let from_verifier = verifier.update(&bytes).and_then(|()| verifier.finish());
        if case["needs_decompression"].as_bool().unwrap() {
            assert!(from_verifier.is_ok(), "{name}: the verifier does not decompress");
        } else {
            assert_eq!(from_verifier.unwrap_err().reason(), expected, "{name} (verifier)");
        }
    }
}
