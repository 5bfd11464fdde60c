//! Request signing: the canonical request, HMAC-SHA256 signatures, key rings and verification
//! (SPEC.md section "Authentication", `AUTH-1` to `AUTH-10`).
//!
//! The canonical request is six or more lines joined by `\n`, with no trailing newline:
//!
//! ```text
//! WKP1-HMAC-SHA256
//! POST
//! /v1/persist/kv/orders/replica-0
//! offset=0&segment=9f86d0...
//! wkp-content-sha256:9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08
//! wkp-generation:3
//! wkp-key-id:k2026a
//! wkp-timestamp:1767225600
//! wkp-version:1.0
//! ```
//!
//! Line 1 is the algorithm, line 2 the method, line 3 the WKP path (from `/v1/` on, without the
//! deployment's URL prefix), line 4 the canonical query (possibly empty), then one line per
//! `wkp-*` header except `wkp-signature`, sorted by name. The signature is the lower-case hex
//! HMAC-SHA256 of that string under the key's secret.

use std::collections::BTreeMap;
use std::fmt;
use std::time::{SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use hmac::{KeyInit, Mac};
use http::{HeaderMap, HeaderName, HeaderValue, Method};
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, percent_decode_str, utf8_percent_encode};
use sha2::{Digest, Sha256};

use crate::error::{ErrorCode, ProtocolError};
use crate::headers;
use crate::version::{self, Version};

/// Line 1 of every canonical request.
pub const ALGORITHM: &str = "WKP1-HMAC-SHA256";
/// How far a request's timestamp may be from the verifier's clock, either way (`AUTH-6`).
pub const TIMESTAMP_TOLERANCE_SECS: u64 = 300;
/// Shortest secret a key ring accepts, in bytes (`AUTH-8`).
pub const MIN_SECRET_BYTES: usize = 32;
/// Longest key id, in bytes.
pub const MAX_KEY_ID_LEN: usize = 64;

type HmacSha256 = hmac::Hmac<Sha256>;

/// Lower-case hex SHA-256 of `bytes`.
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// Seconds since the Unix epoch by the system clock.
pub fn unix_now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0)
}

/// The identifier of a signing key: 1 to 64 of `A-Z a-z 0-9 . _ -`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct KeyId(String);

impl KeyId {
    pub fn new(value: &str) -> Result<Self, KeyError> {
        let ok_char = |b: u8| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-');
        if value.is_empty() || value.len() > MAX_KEY_ID_LEN || !value.bytes().all(ok_char) {
            return Err(KeyError::BadKeyId);
        }
        Ok(Self(value.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for KeyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A shared secret. Its `Debug` output never shows the bytes (`AUTH-9`).
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(Vec<u8>);

impl Secret {
    /// Decodes the text form: standard base64 (RFC 4648 section 4) with padding, at least
    /// 32 bytes once decoded (`AUTH-8`).
    pub fn from_base64(text: &str) -> Result<Self, KeyError> {
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(text.trim())
            .map_err(|_| KeyError::SecretNotBase64)?;
        Self::from_bytes(bytes)
    }

    pub fn from_bytes(bytes: Vec<u8>) -> Result<Self, KeyError> {
        if bytes.len() < MIN_SECRET_BYTES {
            return Err(KeyError::SecretTooShort { len: bytes.len() });
        }
        Ok(Self(bytes))
    }

    /// The text form, for writing a keys file.
    pub fn to_base64(&self) -> String {
        base64::engine::general_purpose::STANDARD.encode(&self.0)
    }

    fn mac(&self) -> HmacSha256 {
        HmacSha256::new_from_slice(&self.0).expect("HMAC accepts keys of any length")
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(<redacted>)")
    }
}

/// Why a key, secret or keys file was refused. Messages never contain secret material.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum KeyError {
    #[error("key id must be 1 to {MAX_KEY_ID_LEN} characters of A-Z a-z 0-9 . _ -")]
    BadKeyId,
    #[error("secret is not standard padded base64")]
    SecretNotBase64,
    #[error("secret is {len} bytes; at least {MIN_SECRET_BYTES} are required")]
    SecretTooShort { len: usize },
    #[error("keys file line {line}: {reason}")]
    Line { line: usize, reason: String },
    #[error("key ring holds no keys")]
    Empty,
}

/// Every key a verifier accepts, by id. Holding several is how keys rotate (`AUTH-7`).
#[derive(Debug, Clone, Default)]
pub struct KeyRing {
    keys: BTreeMap<KeyId, Secret>,
}

impl KeyRing {
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a key; a second secret for the same id replaces the first.
    pub fn insert(&mut self, id: KeyId, secret: Secret) {
        self.keys.insert(id, secret);
    }

    pub fn get(&self, id: &str) -> Option<&Secret> {
        self.keys.iter().find(|(k, _)| k.as_str() == id).map(|(_, s)| s)
    }

    pub fn len(&self) -> usize {
        self.keys.len()
    }

    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    pub fn key_ids(&self) -> impl Iterator<Item = &KeyId> {
        self.keys.keys()
    }

    /// Parses a keys file: one `KEY_ID SECRET` pair per line, separated by spaces or tabs, the
    /// secret in base64; blank lines and lines starting with `#` are ignored (`AUTH-8`).
    /// A key id listed twice is an error, so a typo cannot silently shadow a key.
    pub fn parse(text: &str) -> Result<Self, KeyError> {
        let mut ring = KeyRing::new();
        for (index, raw) in text.lines().enumerate() {
            let line = index + 1;
            let content = raw.trim();
            if content.is_empty() || content.starts_with('#') {
                continue;
            }
            let fail = |reason: String| KeyError::Line { line, reason };
            let mut fields = content.split_whitespace();
            let (Some(id), Some(secret), None) = (fields.next(), fields.next(), fields.next())
            else {
                return Err(fail("expected exactly two fields: KEY_ID SECRET".into()));
            };
            let id = KeyId::new(id).map_err(|e| fail(e.to_string()))?;
            let secret = Secret::from_base64(secret)
                .map_err(|e| fail(format!("secret of key {id}: {e}")))?;
            if ring.keys.contains_key(&id) {
                return Err(fail(format!("key {id} is listed twice")));
            }
            ring.insert(id, secret);
        }
        if ring.is_empty() {
            return Err(KeyError::Empty);
        }
        Ok(ring)
    }
}

/// The secret for `key_id` from a secret file's text: either one base64 secret, or a keys file
/// (`KEY_ID SECRET` lines) with a line for `key_id`.
pub fn secret_from_text(text: &str, key_id: &KeyId) -> Result<Secret, KeyError> {
    if let Ok(secret) = Secret::from_base64(text.trim()) {
        return Ok(secret);
    }
    KeyRing::parse(text)?.get(key_id.as_str()).cloned().ok_or(KeyError::Line {
        line: 0,
        reason: format!("the keys file has no line for key {key_id}"),
    })
}

/// The characters a canonical query leaves unencoded: RFC 3986 "unreserved".
const QUERY_ENCODE_SET: &AsciiSet =
    &NON_ALPHANUMERIC.remove(b'-').remove(b'.').remove(b'_').remove(b'~');

/// Canonical form of a raw query string (`AUTH-2`): split on `&`, drop empty pieces, split
/// each on the first `=`, percent-decode name and value (`+` is a literal plus), re-encode
/// everything but unreserved characters as upper-case `%XX`, sort by name then value, and
/// join as `name=value` with `&`. A name without `=` gets an empty value.
pub fn canonical_query(raw: &str) -> Result<String, ProtocolError> {
    let mut pairs = Vec::new();
    for piece in raw.split('&').filter(|p| !p.is_empty()) {
        let (name, value) = piece.split_once('=').unwrap_or((piece, ""));
        pairs.push((reencode(name)?, reencode(value)?));
    }
    pairs.sort();
    Ok(pairs.iter().map(|(n, v)| format!("{n}={v}")).collect::<Vec<_>>().join("&"))
}

fn reencode(component: &str) -> Result<String, ProtocolError> {
    let decoded = strict_percent_decode(component)?;
    Ok(utf8_percent_encode(&decoded, QUERY_ENCODE_SET).to_string())
}

/// Percent-decodes, refusing a `%` not followed by two hex digits and bytes that are not UTF-8.
fn strict_percent_decode(component: &str) -> Result<String, ProtocolError> {
    let bytes = component.as_bytes();
    for (i, b) in bytes.iter().enumerate() {
        if *b == b'%' {
            let ok = bytes.get(i + 1..i + 3).is_some_and(|h| h.iter().all(u8::is_ascii_hexdigit));
            if !ok {
                return Err(invalid("query has a '%' not followed by two hex digits"));
            }
        }
    }
    percent_decode_str(component)
        .decode_utf8()
        .map(|s| s.into_owned())
        .map_err(|_| invalid("query decodes to bytes that are not UTF-8"))
}

fn invalid(message: &str) -> ProtocolError {
    ProtocolError::new(ErrorCode::InvalidRequest, message).requirement("AUTH-2")
}

/// Builds the canonical request string from its parts (`AUTH-2`).
///
/// `headers` are all request headers; only `wkp-*` ones other than `wkp-signature` are used.
/// A signed header given twice, or with a value that is not visible ASCII, is refused.
pub fn canonical_request(
    method: &str,
    wkp_path: &str,
    raw_query: &str,
    headers: &HeaderMap,
) -> Result<String, ProtocolError> {
    let mut lines = vec![
        ALGORITHM.to_owned(),
        method.to_ascii_uppercase(),
        wkp_path.to_owned(),
        canonical_query(raw_query)?,
    ];
    let mut signed: Vec<(&str, String)> = Vec::new();
    for name in headers.keys() {
        let name = name.as_str(); // `http` stores names in lower case
        if !name.starts_with(headers::SIGNED_PREFIX) || name == headers::SIGNATURE {
            continue;
        }
        let mut values = headers.get_all(name).iter();
        let (Some(value), None) = (values.next(), values.next()) else {
            return Err(invalid_header(name, "is given more than once"));
        };
        signed.push((name, canonical_header_value(name, value)?));
    }
    signed.sort();
    lines.extend(signed.into_iter().map(|(n, v)| format!("{n}:{v}")));
    Ok(lines.join("\n"))
}

fn canonical_header_value(name: &str, value: &HeaderValue) -> Result<String, ProtocolError> {
    let text = value
        .to_str()
        .ok()
        .filter(|v| v.bytes().all(|b| b == b'\t' || (0x20..0x7f).contains(&b)))
        .ok_or_else(|| invalid_header(name, "is not visible ASCII"))?;
    Ok(text.trim_matches([' ', '\t']).to_owned())
}

fn invalid_header(name: &str, what: &str) -> ProtocolError {
    ProtocolError::new(ErrorCode::InvalidRequest, format!("header {name} {what}"))
        .requirement("AUTH-2")
}

/// Lower-case hex HMAC-SHA256 of `canonical` under `secret` (`AUTH-1`).
pub fn signature(secret: &Secret, canonical: &str) -> String {
    let mut mac = secret.mac();
    mac.update(canonical.as_bytes());
    hex::encode(mac.finalize().into_bytes())
}

/// Signs outgoing requests with one key.
#[derive(Debug, Clone)]
pub struct Signer {
    key_id: KeyId,
    secret: Secret,
}

impl Signer {
    pub fn new(key_id: KeyId, secret: Secret) -> Self {
        Self { key_id, secret }
    }

    pub fn key_id(&self) -> &KeyId {
        &self.key_id
    }

    /// Adds `wkp-version` (unless present), `wkp-key-id`, `wkp-timestamp`,
    /// `wkp-content-sha256` and finally `wkp-signature` to `headers`.
    ///
    /// Add every other `wkp-*` header (such as `wkp-generation`) before calling this.
    pub fn sign(
        &self,
        method: &Method,
        wkp_path: &str,
        raw_query: &str,
        headers: &mut HeaderMap,
        body_sha256_hex: &str,
        timestamp: u64,
    ) -> Result<(), ProtocolError> {
        let set = |headers: &mut HeaderMap, name: &'static str, value: &str| {
            let value = HeaderValue::from_str(value)
                .map_err(|_| invalid_header(name, "is not a valid header value"))?;
            headers.insert(HeaderName::from_static(name), value);
            Ok::<_, ProtocolError>(())
        };
        if !headers.contains_key(headers::VERSION) {
            set(headers, headers::VERSION, &version::CURRENT.to_string())?;
        }
        set(headers, headers::KEY_ID, self.key_id.as_str())?;
        set(headers, headers::TIMESTAMP, &timestamp.to_string())?;
        set(headers, headers::CONTENT_SHA256, body_sha256_hex)?;
        headers.remove(headers::SIGNATURE);
        let canonical = canonical_request(method.as_str(), wkp_path, raw_query, headers)?;
        set(headers, headers::SIGNATURE, &signature(&self.secret, &canonical))
    }
}

/// What a verified request proved about itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Authenticated {
    pub key_id: KeyId,
    pub timestamp: u64,
    pub version: Version,
    /// The body hash the signature covers. The body must still be hashed and compared
    /// (`AUTH-3`) before anything it carries is committed.
    pub content_sha256: [u8; 32],
}

impl Authenticated {
    /// Compares the hash of the body as received with the signed `wkp-content-sha256`
    /// (`AUTH-3`). Call it before committing anything the body carries.
    pub fn check_body(&self, computed: &[u8; 32]) -> Result<(), ProtocolError> {
        if computed == &self.content_sha256 {
            return Ok(());
        }
        Err(ProtocolError::new(
            ErrorCode::ContentHashMismatch,
            format!(
                "the body hashes to {} but wkp-content-sha256 says {}",
                hex::encode(computed),
                hex::encode(self.content_sha256)
            ),
        )
        .requirement("AUTH-3"))
    }
}

/// Checks incoming requests against a key ring and a clock.
#[derive(Debug, Clone)]
pub struct Verifier {
    keys: KeyRing,
    tolerance_secs: u64,
}

impl Verifier {
    pub fn new(keys: KeyRing) -> Self {
        Self { keys, tolerance_secs: TIMESTAMP_TOLERANCE_SECS }
    }

    /// Narrows the timestamp window. Wider than the spec's 300 s is not allowed.
    pub fn with_tolerance(mut self, secs: u64) -> Self {
        self.tolerance_secs = secs.min(TIMESTAMP_TOLERANCE_SECS);
        self
    }

    pub fn keys(&self) -> &KeyRing {
        &self.keys
    }

    /// Verifies version, presence of the signed headers, key id, timestamp and signature, in
    /// that order, and returns what the request proved. Touches no storage.
    pub fn verify(
        &self,
        method: &Method,
        wkp_path: &str,
        raw_query: &str,
        headers: &HeaderMap,
        now: u64,
    ) -> Result<Authenticated, ProtocolError> {
        let version = check_version(headers)?;
        let required = |name: &'static str, requirement: &str| {
            headers.get(name).and_then(|v| v.to_str().ok()).map(str::trim).ok_or_else(|| {
                ProtocolError::new(
                    ErrorCode::MissingAuthentication,
                    format!("header {name} is missing"),
                )
                .requirement(requirement)
            })
        };
        let key_id = required(headers::KEY_ID, "AUTH-4")?;
        let timestamp = required(headers::TIMESTAMP, "AUTH-6")?;
        let content = required(headers::CONTENT_SHA256, "AUTH-3")?;
        let presented = required(headers::SIGNATURE, "AUTH-1")?;
        // A proxy may join repeated headers with commas (Lambda Function URLs do); a signature
        // never contains one.
        if headers.get_all(headers::SIGNATURE).iter().nth(1).is_some() || presented.contains(',') {
            return Err(invalid_header(headers::SIGNATURE, "is given more than once"));
        }

        let secret = self.keys.get(key_id).ok_or_else(|| {
            ProtocolError::new(ErrorCode::UnknownKey, "the key id is not known to this function")
                .requirement("AUTH-4")
        })?;
        let timestamp = parse_timestamp(timestamp)?;
        if timestamp.abs_diff(now) > self.tolerance_secs {
            return Err(ProtocolError::new(
                ErrorCode::TimestampOutOfRange,
                format!(
                    "request timestamp {timestamp} is more than {} s from the function's clock {now}",
                    self.tolerance_secs
                ),
            )
            .requirement("AUTH-6"));
        }
        let content_sha256 = parse_sha256(content).ok_or_else(|| {
            invalid_header(headers::CONTENT_SHA256, "is not 64 lower-case hex digits")
        })?;

        let canonical = canonical_request(method.as_str(), wkp_path, raw_query, headers)?;
        let mut mac = secret.mac();
        mac.update(canonical.as_bytes());
        // Only the canonical lower-case form is a signature, so every implementation agrees.
        let presented = parse_sha256(presented).unwrap_or([0; 32]);
        // `verify_slice` compares in constant time (`AUTH-5`).
        mac.verify_slice(&presented).map_err(|_| {
            ProtocolError::new(
                ErrorCode::SignatureMismatch,
                "the signature does not match the canonical request",
            )
            .requirement("AUTH-1")
        })?;
        Ok(Authenticated {
            key_id: KeyId::new(key_id)
                .map_err(|_| invalid_header(headers::KEY_ID, "is malformed"))?,
            timestamp,
            version,
            content_sha256,
        })
    }
}

/// `VER-1`/`VER-3`: the header must be present and name our major version.
fn check_version(headers: &HeaderMap) -> Result<Version, ProtocolError> {
    let raw = headers.get(headers::VERSION).and_then(|v| v.to_str().ok()).ok_or_else(|| {
        ProtocolError::new(ErrorCode::InvalidRequest, "header wkp-version is missing")
            .requirement("VER-1")
    })?;
    let version: Version = raw.trim().parse().map_err(|_| {
        ProtocolError::new(
            ErrorCode::InvalidRequest,
            format!("header wkp-version {raw:?} is not MAJOR.MINOR"),
        )
        .requirement("VER-1")
    })?;
    if !version::CURRENT.is_compatible_with(version) {
        return Err(ProtocolError::new(
            ErrorCode::UnsupportedVersion,
            format!(
                "this function speaks WKP {}.x; the request is WKP {version}",
                version::CURRENT.major
            ),
        )
        .requirement("VER-3"));
    }
    Ok(version)
}

fn parse_timestamp(text: &str) -> Result<u64, ProtocolError> {
    if text.is_empty() || text.len() > 20 || !text.bytes().all(|b| b.is_ascii_digit()) {
        return Err(invalid_header(headers::TIMESTAMP, "is not decimal Unix seconds"));
    }
    text.parse().map_err(|_| invalid_header(headers::TIMESTAMP, "is out of range"))
}

/// Parses 64 lower-case hex digits.
pub fn parse_sha256(text: &str) -> Option<[u8; 32]> {
    if text.len() != 64 || !text.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)) {
        return None;
    }
    let mut out = [0u8; 32];
    hex::decode_to_slice(text, &mut out).ok()?;
    Some(out)
}
