//! Sign → verify properties: round trips, tamper detection, clock window, key rotation.

use http::{HeaderMap, HeaderName, HeaderValue, Method};
use proptest::prelude::*;
use sha2::{Digest, Sha256};
use wkp1_protocol::ErrorCode;
use wkp1_protocol::signing::{
    Authenticated, KeyId, KeyRing, Secret, Signer, TIMESTAMP_TOLERANCE_SECS, Verifier,
};

const NOW: u64 = 1_767_225_600;

fn secret(seed: u8) -> Secret {
    Secret::from_bytes(vec![seed; 32]).unwrap()
}

fn ring(keys: &[(&str, u8)]) -> KeyRing {
    let mut ring = KeyRing::new();
    for (id, seed) in keys {
        ring.insert(KeyId::new(id).unwrap(), secret(*seed));
    }
    ring
}

#[derive(Debug, Clone)]
struct Req {
    method: Method,
    path: String,
    query: String,
    headers: HeaderMap,
    body: Vec<u8>,
}

impl Req {
    fn signed(mut self, key: &str, seed: u8, timestamp: u64) -> Self {
        let signer = Signer::new(KeyId::new(key).unwrap(), secret(seed));
        let body_hash = hex::encode(Sha256::digest(&self.body));
        signer
            .sign(&self.method, &self.path, &self.query, &mut self.headers, &body_hash, timestamp)
            .unwrap();
        self
    }

    fn verify(&self, verifier: &Verifier, now: u64) -> Result<Authenticated, ErrorCode> {
        let auth = verifier
            .verify(&self.method, &self.path, &self.query, &self.headers, now)
            .map_err(|e| e.code)?;
        auth.check_body(&Sha256::digest(&self.body).into()).map_err(|e| e.code)?;
        Ok(auth)
    }
}

fn example() -> Req {
    let mut headers = HeaderMap::new();
    headers.insert("wkp-generation", HeaderValue::from_static("3"));
    Req {
        method: Method::POST,
        path: "/v1/persist/kv/orders/replica-0".into(),
        query: String::new(),
        headers,
        body: b"segment bytes".to_vec(),
    }
}

prop_compose! {
    fn any_request()(
        post in any::<bool>(),
        ids in proptest::collection::vec("[a-z0-9][a-z0-9_-]{0,12}", 3),
        query in proptest::collection::vec(("[a-z]{1,8}", "[a-zA-Z0-9]{0,12}"), 0..4),
        generation in any::<u64>(),
        body in proptest::collection::vec(any::<u8>(), 0..256),
    ) -> Req {
        let mut headers = HeaderMap::new();
        headers.insert("wkp-generation", HeaderValue::from_str(&generation.to_string()).unwrap());
        headers.insert("content-type", HeaderValue::from_static("application/vnd.wkp1.segment"));
        Req {
            method: if post { Method::POST } else { Method::GET },
            path: format!("/v1/{}/{}/{}/{}", if post { "persist" } else { "restore" }, ids[0], ids[1], ids[2]),
            query: query.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join("&"),
            headers,
            body,
        }
    }
}

/// Which part of a signed request one byte is changed in.
#[derive(Debug, Clone, Copy)]
enum Target {
    Method,
    Path,
    Query,
    SignedHeader,
    Body,
}

fn flip(text: &str, index: usize, to: char) -> String {
    let mut chars: Vec<char> = text.chars().collect();
    let i = index % chars.len();
    chars[i] = if chars[i] == to { if to == 'z' { 'y' } else { 'z' } } else { to };
    chars.into_iter().collect()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn sign_then_verify_round_trips(req in any_request(), skew in -300i64..=300) {
        let req = req.signed("k1", 7, NOW);
        let verifier = Verifier::new(ring(&[("k1", 7)]));
        let auth = req.verify(&verifier, NOW.saturating_add_signed(skew)).unwrap();
        prop_assert_eq!(auth.key_id.as_str(), "k1");
        prop_assert_eq!(auth.timestamp, NOW);
        prop_assert_eq!(auth.content_sha256, <[u8; 32]>::from(Sha256::digest(&req.body)));
    }

    #[test]
    fn any_single_byte_change_fails_verification(
        req in any_request(),
        target in prop_oneof![
            Just(Target::Method), Just(Target::Path), Just(Target::Query),
            Just(Target::SignedHeader), Just(Target::Body)
        ],
        index in any::<usize>(),
        to in "[a-z0-9]",
        byte in any::<u8>(),
    ) {
        let mut req = req.signed("k1", 7, NOW);
        let to = to.chars().next().unwrap();
        match target {
            Target::Method => {
                req.method = if req.method == Method::GET { Method::POST } else { Method::PUT };
            }
            Target::Path => req.path = flip(&req.path, index, to),
            Target::Query if req.query.is_empty() => req.query = format!("{to}=1"),
            Target::Query => req.query = flip(&req.query, index, to),
            Target::SignedHeader => {
                let value = req.headers["wkp-generation"].to_str().unwrap().to_owned();
                let changed = flip(&value, index, to);
                req.headers.insert(
                    HeaderName::from_static("wkp-generation"),
                    HeaderValue::from_str(&changed).unwrap(),
                );
            }
            Target::Body if req.body.is_empty() => req.body.push(byte),
            Target::Body => {
                let i = index % req.body.len();
                req.body[i] = req.body[i].wrapping_add(byte.max(1));
            }
        }
        let verifier = Verifier::new(ring(&[("k1", 7)]));
        let err = req.verify(&verifier, NOW).unwrap_err();
        let expected: &[ErrorCode] = match target {
            Target::Body => &[ErrorCode::ContentHashMismatch],
            // A flipped query byte may also make the query malformed: refused either way.
            Target::Query => &[ErrorCode::SignatureMismatch, ErrorCode::InvalidRequest],
            _ => &[ErrorCode::SignatureMismatch],
        };
        prop_assert!(expected.contains(&err), "{:?} gave {:?}", target, err);
    }

    #[test]
    fn timestamps_outside_the_window_fail(offset in (TIMESTAMP_TOLERANCE_SECS + 1)..100_000, future in any::<bool>()) {
        let sent_at = if future { NOW + offset } else { NOW - offset };
        let req = example().signed("k1", 7, sent_at);
        let verifier = Verifier::new(ring(&[("k1", 7)]));
        prop_assert_eq!(req.verify(&verifier, NOW).unwrap_err(), ErrorCode::TimestampOutOfRange);
    }
}

#[test]
fn window_edges_are_inclusive() {
    let verifier = Verifier::new(ring(&[("k1", 7)]));
    let req = example().signed("k1", 7, NOW);
    assert!(req.verify(&verifier, NOW + 300).is_ok());
    assert!(req.verify(&verifier, NOW - 300).is_ok());
    assert_eq!(req.verify(&verifier, NOW + 301).unwrap_err(), ErrorCode::TimestampOutOfRange);
    assert_eq!(req.verify(&verifier, NOW - 301).unwrap_err(), ErrorCode::TimestampOutOfRange);
    let narrow = Verifier::new(ring(&[("k1", 7)])).with_tolerance(60);
    assert_eq!(req.verify(&narrow, NOW + 61).unwrap_err(), ErrorCode::TimestampOutOfRange);
}

#[test]
fn unknown_key_id_fails_even_with_a_valid_secret() {
    let req = example().signed("k-old", 7, NOW);
    let verifier = Verifier::new(ring(&[("k-new", 7)]));
    assert_eq!(req.verify(&verifier, NOW).unwrap_err(), ErrorCode::UnknownKey);
}

#[test]
fn rotation_accepts_old_and_new_keys_until_the_old_is_removed() {
    let old = example().signed("k2025", 1, NOW);
    let new = example().signed("k2026", 2, NOW);
    let during = Verifier::new(ring(&[("k2025", 1), ("k2026", 2)]));
    assert!(old.verify(&during, NOW).is_ok());
    assert!(new.verify(&during, NOW).is_ok());
    let after = Verifier::new(ring(&[("k2026", 2)]));
    assert_eq!(old.verify(&after, NOW).unwrap_err(), ErrorCode::UnknownKey);
    assert!(new.verify(&after, NOW).is_ok());
    // A signature made with one key's secret does not verify under another id.
    let mut swapped = old.clone();
    swapped.headers.insert("wkp-key-id", HeaderValue::from_static("k2026"));
    assert_eq!(swapped.verify(&during, NOW).unwrap_err(), ErrorCode::SignatureMismatch);
}

#[test]
fn missing_headers_are_named() {
    let verifier = Verifier::new(ring(&[("k1", 7)]));
    for header in ["wkp-signature", "wkp-key-id", "wkp-timestamp", "wkp-content-sha256"] {
        let mut req = example().signed("k1", 7, NOW);
        req.headers.remove(header);
        let err =
            verifier.verify(&req.method, &req.path, &req.query, &req.headers, NOW).unwrap_err();
        assert_eq!(err.code, ErrorCode::MissingAuthentication, "{header}");
        assert!(err.message.contains(header), "{}", err.message);
    }
    let mut req = example().signed("k1", 7, NOW);
    req.headers.insert("wkp-version", HeaderValue::from_static("2.0"));
    assert_eq!(req.verify(&verifier, NOW).unwrap_err(), ErrorCode::UnsupportedVersion);
}

#[test]
fn duplicate_signed_headers_are_refused() {
    let mut req = example().signed("k1", 7, NOW);
    req.headers.append("wkp-generation", HeaderValue::from_static("4"));
    let verifier = Verifier::new(ring(&[("k1", 7)]));
    assert_eq!(req.verify(&verifier, NOW).unwrap_err(), ErrorCode::InvalidRequest);
}

/// `AUTH-2` (1.0.1): a second `wkp-signature` is refused, even when the first one is valid, so
/// no function picks the first value and another the last.
#[test]
fn a_second_signature_header_is_refused() {
    let verifier = Verifier::new(ring(&[("k1", 7)]));
    let good = example().signed("k1", 7, NOW);
    let signature = good.headers["wkp-signature"].clone();
    for second in [signature.clone(), HeaderValue::from_static("00")] {
        let mut req = example().signed("k1", 7, NOW);
        req.headers.append("wkp-signature", second);
        let err =
            verifier.verify(&req.method, &req.path, &req.query, &req.headers, NOW).unwrap_err();
        assert_eq!(err.code, ErrorCode::InvalidRequest);
        assert!(err.message.contains("wkp-signature"), "{}", err.message);
    }
    // As a proxy that joins repeated headers delivers them.
    let mut joined = example().signed("k1", 7, NOW);
    let value = format!("{},00", signature.to_str().unwrap());
    joined.headers.insert("wkp-signature", HeaderValue::from_str(&value).unwrap());
    assert_eq!(joined.verify(&verifier, NOW).unwrap_err(), ErrorCode::InvalidRequest);
}

/// `AUTH-1` (1.0.1): only the exact lower-case hex is a signature; upper case, a prefix or the
/// signature with a character more all fail.
#[test]
fn only_the_exact_signature_matches() {
    let verifier = Verifier::new(ring(&[("k1", 7)]));
    let good = example().signed("k1", 7, NOW);
    let hex = good.headers["wkp-signature"].to_str().unwrap().to_owned();
    for wrong in [hex.to_uppercase(), hex[..32].to_owned(), format!("{hex}0"), format!(" {hex}x")] {
        let mut req = example().signed("k1", 7, NOW);
        req.headers.insert("wkp-signature", HeaderValue::from_str(&wrong).unwrap());
        assert_eq!(
            req.verify(&verifier, NOW).unwrap_err(),
            ErrorCode::SignatureMismatch,
            "{wrong}"
        );
    }
}

/// `AUTH-4` (1.0.1): a key id that breaks its grammar is simply not in the ring.
#[test]
fn a_malformed_key_id_is_an_unknown_key() {
    let verifier = Verifier::new(ring(&[("k1", 7)]));
    for key_id in ["k/1", "k 1 x", &"k".repeat(65)] {
        let mut req = example().signed("k1", 7, NOW);
        req.headers.insert("wkp-key-id", HeaderValue::from_str(key_id).unwrap());
        assert_eq!(req.verify(&verifier, NOW).unwrap_err(), ErrorCode::UnknownKey, "{key_id}");
    }
}

/// `AUTH-9`: no secret in debug output or in errors about the secret itself.
#[test]
fn errors_and_debug_output_never_show_secrets() {
    let secret = Secret::from_bytes(b"correct horse battery staple 0123456789".to_vec()).unwrap();
    let b64 = secret.to_base64();
    assert!(!format!("{secret:?}").contains(&b64));
    let signer = Signer::new(KeyId::new("k1").unwrap(), secret);
    assert!(!format!("{signer:?}").contains(&b64));

    let err = KeyRing::parse("k1 not-base64!!\n").unwrap_err();
    assert!(!err.to_string().contains("not-base64"), "{err}");
    let short = KeyRing::parse("k1 c2hvcnQ=\n").unwrap_err();
    assert!(!short.to_string().contains("c2hvcnQ="), "{short}");
}

/// `AUTH-8`: the keys file format, comments after leading blanks included (1.0.1).
#[test]
fn keys_file_parses_rotation_and_refuses_mistakes() {
    let a = secret(1).to_base64();
    let b = secret(2).to_base64();
    let ring = KeyRing::parse(&format!(
        "# rotation in progress\n\n  # indented comment\nk-old {a}\nk-new\t{b}\n"
    ))
    .unwrap();
    assert_eq!(ring.len(), 2);
    assert_eq!(ring.get("k-new"), Some(&secret(2)));
    assert!(KeyRing::parse("").is_err());
    assert!(
        KeyRing::parse(&format!("k1 {a}\nk1 {b}\n")).unwrap_err().to_string().contains("twice")
    );
    assert!(KeyRing::parse(&format!("k1 {a} extra\n")).unwrap_err().to_string().contains("line 1"));
    assert!(KeyRing::parse(&format!("bad/id {a}\n")).is_err());
}
