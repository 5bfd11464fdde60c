//! WKP-1 requests through routing, query parsing and signature verification; identifiers.

use http::Method;
use wkp1_protocol::endpoint::{RestoreQuery, WriteQuery, route};
use wkp1_protocol::signing::{canonical_query, sha256_hex};
use wkp1_protocol::{Identifier, KeyId, KeyRing, Secret, Signer, Subtree, Verifier, WkpPath};

use crate::request_text::RequestText;

/// The clock of the signing test vectors (`protocol/test-vectors/signing.json`).
pub const VECTOR_NOW: u64 = 1_767_225_600;
/// The vectors' keys, so their requests verify.
pub const VECTOR_KEYS: [(&str, &str); 2] = [
    ("k2026a", "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8="),
    ("k2025b", "PQrPjRAv65oeqpByt0/yeEfcbBVnhqHN/eXtCrrHtJA="),
];

fn key_ring() -> KeyRing {
    let mut ring = KeyRing::new();
    for (id, secret) in VECTOR_KEYS {
        ring.insert(KeyId::new(id).unwrap(), Secret::from_base64(secret).unwrap());
    }
    ring
}

/// A request in [`RequestText`] form, as a function receives it: route, query, signature and
/// body hash. Anything the signer signs, the verifier must accept.
pub fn wkp_request(data: &[u8]) {
    let request = RequestText::parse(data);
    if let Ok(route) = route(&request.path)
        && let Ok(path) = route.validate()
    {
        assert_eq!(WkpPath::parse(&path.to_path()).unwrap(), path, "a parsed path round-trips");
    }
    if let Ok(query) = RestoreQuery::parse(&request.query) {
        let again = RestoreQuery::parse(&query.to_query_string());
        assert_eq!(again.unwrap(), query, "a restore query round-trips");
    }
    if let Ok(query) = WriteQuery::parse(&request.query) {
        let again = WriteQuery::parse(&query.to_query_string());
        assert_eq!(again.unwrap(), query, "a write query round-trips");
    }
    if let Ok(canonical) = canonical_query(&request.query) {
        assert_eq!(canonical_query(&canonical).unwrap(), canonical, "canonical form is stable");
    }
    let Ok(method) = Method::from_bytes(request.method.as_bytes()) else { return };
    let verifier = Verifier::new(key_ring());
    let body_hash = sha256_hex(&request.body);
    if let Ok(auth) =
        verifier.verify(&method, &request.path, &request.query, &request.headers, VECTOR_NOW)
    {
        let _ = auth.check_body(&wkp1_protocol::signing::parse_sha256(&body_hash).unwrap());
    }

    let (id, secret) = VECTOR_KEYS[0];
    let signer = Signer::new(KeyId::new(id).unwrap(), Secret::from_base64(secret).unwrap());
    let mut headers = request.headers.clone();
    headers.remove(wkp1_protocol::headers::VERSION);
    let signed =
        signer.sign(&method, &request.path, &request.query, &mut headers, &body_hash, VECTOR_NOW);
    if signed.is_ok() {
        let verified =
            verifier.verify(&method, &request.path, &request.query, &headers, VECTOR_NOW);
        assert!(verified.is_ok(), "the verifier refuses what the signer signed: {verified:?}");
    }
}

/// Identifiers and subtree addresses: as a string, `engine/instance/replica`, and JSON.
pub fn identifiers(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    if let Ok(id) = Identifier::new(text.as_ref()) {
        let json = serde_json::to_string(&id).unwrap();
        assert_eq!(serde_json::from_str::<Identifier>(&json).unwrap(), id, "JSON round-trips");
    }
    let parts: Vec<&str> = text.splitn(3, '/').collect();
    if let [engine, instance, replica] = parts[..]
        && let Ok(subtree) = Subtree::new(engine, instance, replica)
    {
        assert_eq!(subtree.path(), text, "a valid subtree is its own path");
        let json = serde_json::to_string(&subtree).unwrap();
        assert_eq!(serde_json::from_str::<Subtree>(&json).unwrap(), subtree);
    }
    if let Ok(path) = WkpPath::parse(&text) {
        assert_eq!(path.to_path(), text, "paths are used exactly as received");
    }
    let _ = serde_json::from_slice::<Identifier>(data);
    let _ = serde_json::from_slice::<Subtree>(data);
}
