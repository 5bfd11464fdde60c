//! The three endpoints, their paths and their query parameters (SPEC.md sections "Endpoints"
//! and "Large segments", `EP-1` to `EP-6`).
//!
//! ```text
//! GET  /v1/restore/{engine}/{instance}/{replica}                    restore plan
//! GET  /v1/restore/...?claim=true                                   plan + new writer generation
//! GET  /v1/restore/...?segment={id}&offset={n}&length={n}           segment bytes
//! POST /v1/persist/{engine}/{instance}/{replica}                    inline segment, committed
//! POST /v1/persist/...?segment={id}&offset={n}                      one part of a large segment
//! POST /v1/persist/...?segment={id}&offset={n}&length={n}&presign=true   presigned part upload
//! POST /v1/persist/...?segment={id}&commit=true                     commit the parts (JSON body)
//! POST /v1/flush/...                                                as persist, then closes
//! ```

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::error::{ErrorCode, ProtocolError};
use crate::ids::Subtree;
use crate::signing::parse_sha256;
use crate::version;

/// One of the three WKP-1 endpoints.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Endpoint {
    Restore,
    Persist,
    Flush,
}

impl Endpoint {
    pub const ALL: [Endpoint; 3] = [Endpoint::Restore, Endpoint::Persist, Endpoint::Flush];

    /// The path segment after `/v1/`.
    pub fn as_str(self) -> &'static str {
        match self {
            Endpoint::Restore => "restore",
            Endpoint::Persist => "persist",
            Endpoint::Flush => "flush",
        }
    }

    /// The only method the endpoint accepts (`EP-1`).
    pub fn method(self) -> http::Method {
        match self {
            Endpoint::Restore => http::Method::GET,
            Endpoint::Persist | Endpoint::Flush => http::Method::POST,
        }
    }

    fn from_segment(segment: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|e| e.as_str() == segment)
    }
}

impl fmt::Display for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A parsed WKP path: `/v1/{endpoint}/{engine}/{instance}/{replica}`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WkpPath {
    pub endpoint: Endpoint,
    pub subtree: Subtree,
}

impl WkpPath {
    pub fn new(endpoint: Endpoint, subtree: Subtree) -> Self {
        Self { endpoint, subtree }
    }

    /// The path as signed and sent, e.g. `/v1/persist/kv/orders/replica-0`.
    pub fn to_path(&self) -> String {
        format!("{}{}/{}", version::PATH_PREFIX, self.endpoint, self.subtree.path())
    }

    /// Parses a WKP path. The path is used exactly as received: nothing is percent-decoded,
    /// so an encoded separator is simply an invalid identifier (`ID-2`).
    pub fn parse(path: &str) -> Result<Self, ProtocolError> {
        route(path)?.validate()
    }
}

/// A WKP path whose shape is right but whose identifiers are not validated yet.
///
/// Functions route first (404, 405 need no secrets), authenticate, and only then validate
/// identifiers, so an unauthenticated caller learns nothing about the identifier grammar.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Route<'a> {
    pub endpoint: Endpoint,
    pub engine: &'a str,
    pub instance: &'a str,
    pub replica: &'a str,
}

impl Route<'_> {
    /// Validates the identifiers (`ID-1`).
    pub fn validate(&self) -> Result<WkpPath, ProtocolError> {
        let subtree = Subtree::new(self.engine, self.instance, self.replica).map_err(|e| {
            ProtocolError::new(ErrorCode::InvalidIdentifier, e.to_string()).requirement("ID-1")
        })?;
        Ok(WkpPath { endpoint: self.endpoint, subtree })
    }
}

/// Splits a WKP path into endpoint and raw identifiers (`EP-1`, `VER-2`).
pub fn route(path: &str) -> Result<Route<'_>, ProtocolError> {
    let Some(rest) = path.strip_prefix(version::PATH_PREFIX) else {
        return Err(unknown_version_or_route(path));
    };
    let parts: Vec<&str> = rest.split('/').collect();
    let [endpoint, engine, instance, replica] = parts[..] else {
        return Err(not_found(path));
    };
    let endpoint = Endpoint::from_segment(endpoint).ok_or_else(|| not_found(path))?;
    Ok(Route { endpoint, engine, instance, replica })
}

fn not_found(path: &str) -> ProtocolError {
    let shown: String = path.chars().take(200).collect();
    ProtocolError::new(ErrorCode::NotFound, format!("no WKP-1 endpoint at {shown:?}"))
        .requirement("EP-1")
}

/// `/v2/...` on a v1 function is a clear 404 naming the versions spoken (`VER-2`).
fn unknown_version_or_route(path: &str) -> ProtocolError {
    let major = path
        .strip_prefix("/v")
        .and_then(|rest| rest.split('/').next())
        .filter(|m| !m.is_empty() && m.bytes().all(|b| b.is_ascii_digit()));
    match major {
        Some(major) => ProtocolError::new(
            ErrorCode::UnsupportedVersion,
            format!(
                "WKP major version {major} is not served here; this function speaks v{}",
                version::CURRENT.major
            ),
        )
        .requirement("VER-2")
        .with_status(404),
        None => not_found(path),
    }
}

/// A segment id: the SHA-256 of the complete segment file, as 64 lower-case hex digits.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct SegmentId(pub [u8; 32]);

impl SegmentId {
    pub fn to_hex(&self) -> String {
        hex::encode(self.0)
    }
}

impl fmt::Display for SegmentId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_hex())
    }
}

impl fmt::Debug for SegmentId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SegmentId({})", self.to_hex())
    }
}

impl FromStr for SegmentId {
    type Err = ProtocolError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        parse_sha256(s).map(SegmentId).ok_or_else(|| {
            ProtocolError::new(
                ErrorCode::InvalidRequest,
                "a segment id is 64 lower-case hex digits",
            )
            .requirement("SEG-7")
        })
    }
}

impl TryFrom<String> for SegmentId {
    type Error = ProtocolError;
    fn try_from(value: String) -> Result<Self, Self::Error> {
        value.parse()
    }
}

impl From<SegmentId> for String {
    fn from(id: SegmentId) -> Self {
        id.to_hex()
    }
}

/// What a restore request asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RestoreQuery {
    /// The restore plan; with `claim`, a new writer generation too (`GEN-1`).
    Plan { claim: bool },
    /// Bytes `offset .. offset + length` of a segment in the plan (`LARGE-6`).
    Fetch { segment: SegmentId, offset: u64, length: u64 },
}

/// What a persist or flush request carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WriteQuery {
    /// The body is one whole segment, committed by this request.
    Inline,
    /// The body is bytes `offset ..` of segment `segment` (`LARGE-2`).
    Part { segment: SegmentId, offset: u64 },
    /// Asks for a presigned URL to upload `offset .. offset + length` directly (`LARGE-4`).
    Presign { segment: SegmentId, offset: u64, length: u64 },
    /// Commits the uploaded parts; the body is a JSON [`CommitRequest`](crate::manifest::CommitRequest).
    Commit { segment: SegmentId },
}

impl RestoreQuery {
    /// Parses the raw query string strictly: unknown, repeated or malformed parameters are a 400.
    pub fn parse(raw: &str) -> Result<Self, ProtocolError> {
        let mut q = QueryParams::parse(raw)?;
        let query = if let Some(segment) = q.take("segment") {
            RestoreQuery::Fetch {
                segment: segment.parse()?,
                offset: q.number("offset")?.ok_or_else(|| missing("offset"))?,
                length: q.number("length")?.ok_or_else(|| missing("length"))?,
            }
        } else {
            RestoreQuery::Plan { claim: q.flag("claim")? }
        };
        q.finish()?;
        Ok(query)
    }

    pub fn to_query_string(&self) -> String {
        match self {
            RestoreQuery::Plan { claim: false } => String::new(),
            RestoreQuery::Plan { claim: true } => "claim=true".into(),
            RestoreQuery::Fetch { segment, offset, length } => {
                format!("length={length}&offset={offset}&segment={segment}")
            }
        }
    }
}

impl WriteQuery {
    /// Parses the raw query string strictly: unknown, repeated or malformed parameters are a 400.
    pub fn parse(raw: &str) -> Result<Self, ProtocolError> {
        let mut q = QueryParams::parse(raw)?;
        let query = match q.take("segment") {
            None => WriteQuery::Inline,
            Some(segment) => {
                let segment: SegmentId = segment.parse()?;
                if q.flag("commit")? {
                    WriteQuery::Commit { segment }
                } else {
                    let offset = q.number("offset")?.ok_or_else(|| missing("offset"))?;
                    if q.flag("presign")? {
                        let length = q.number("length")?.ok_or_else(|| missing("length"))?;
                        WriteQuery::Presign { segment, offset, length }
                    } else {
                        WriteQuery::Part { segment, offset }
                    }
                }
            }
        };
        q.finish()?;
        Ok(query)
    }

    /// The query string a client sends, parameters sorted as in the canonical form.
    pub fn to_query_string(&self) -> String {
        match self {
            WriteQuery::Inline => String::new(),
            WriteQuery::Part { segment, offset } => format!("offset={offset}&segment={segment}"),
            WriteQuery::Presign { segment, offset, length } => {
                format!("length={length}&offset={offset}&presign=true&segment={segment}")
            }
            WriteQuery::Commit { segment } => format!("commit=true&segment={segment}"),
        }
    }
}

fn missing(name: &str) -> ProtocolError {
    bad_query(format!("query parameter {name} is required here"))
}

fn bad_query(message: String) -> ProtocolError {
    ProtocolError::new(ErrorCode::InvalidRequest, message).requirement("EP-4")
}

/// Query parameters, each allowed once, consumed as they are interpreted.
struct QueryParams(BTreeMap<String, String>);

impl QueryParams {
    fn parse(raw: &str) -> Result<Self, ProtocolError> {
        let mut map = BTreeMap::new();
        for piece in raw.split('&').filter(|p| !p.is_empty()) {
            let (name, value) = piece.split_once('=').unwrap_or((piece, ""));
            let ok = |s: &str| s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_');
            if !ok(name) || !ok(value) {
                return Err(bad_query(format!(
                    "query parameter {:?} has characters outside A-Z a-z 0-9 _",
                    name.chars().take(40).collect::<String>()
                )));
            }
            if map.insert(name.to_owned(), value.to_owned()).is_some() {
                return Err(bad_query(format!("query parameter {name} is repeated")));
            }
        }
        Ok(Self(map))
    }

    fn take(&mut self, name: &str) -> Option<String> {
        self.0.remove(name)
    }

    fn flag(&mut self, name: &str) -> Result<bool, ProtocolError> {
        match self.take(name).as_deref() {
            None | Some("false") => Ok(false),
            Some("true") => Ok(true),
            Some(other) => Err(bad_query(format!("{name}={other:?}: expected true or false"))),
        }
    }

    fn number(&mut self, name: &str) -> Result<Option<u64>, ProtocolError> {
        self.take(name)
            .map(|v| {
                let digits =
                    !v.is_empty() && v.len() <= 20 && v.bytes().all(|b| b.is_ascii_digit());
                digits
                    .then(|| v.parse().ok())
                    .flatten()
                    .ok_or_else(|| bad_query(format!("{name}={v:?}: expected a decimal number")))
            })
            .transpose()
    }

    /// Refuses whatever was not consumed: a parameter this version does not define (`VER-4`).
    fn finish(self) -> Result<(), ProtocolError> {
        match self.0.keys().next() {
            None => Ok(()),
            Some(name) => Err(bad_query(format!(
                "query parameter {name} is not defined for this request in WKP {}",
                version::CURRENT
            ))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_round_trip() {
        let subtree = Subtree::new("kv", "orders", "replica-0").unwrap();
        let path = WkpPath::new(Endpoint::Persist, subtree);
        assert_eq!(path.to_path(), "/v1/persist/kv/orders/replica-0");
        assert_eq!(WkpPath::parse(&path.to_path()).unwrap(), path);
    }

    #[test]
    fn bad_paths_get_the_documented_codes() {
        let code = |p: &str| WkpPath::parse(p).unwrap_err().code;
        assert_eq!(code("/v2/persist/a/b/c"), ErrorCode::UnsupportedVersion);
        assert_eq!(WkpPath::parse("/v2/persist/a/b/c").unwrap_err().status(), 404);
        assert_eq!(code("/v1/compact/a/b/c"), ErrorCode::NotFound);
        assert_eq!(code("/v1/persist/a/b"), ErrorCode::NotFound);
        assert_eq!(code("/v1/persist/a/b/c/d"), ErrorCode::NotFound);
        assert_eq!(code("/healthz"), ErrorCode::NotFound);
        assert_eq!(code("/v1/persist/a/../c"), ErrorCode::InvalidIdentifier);
        assert_eq!(code("/v1/persist/a/%2e%2e/c"), ErrorCode::InvalidIdentifier);
        assert_eq!(code("/v1/persist/a/b/"), ErrorCode::InvalidIdentifier);
        assert_eq!(code("/v1/persist/a//c"), ErrorCode::InvalidIdentifier);
    }

    #[test]
    fn queries_parse_strictly_and_print_back() {
        let id = "ab".repeat(32);
        let cases = [
            ("", WriteQuery::Inline),
            (
                &*format!("segment={id}&offset=0"),
                WriteQuery::Part { segment: id.parse().unwrap(), offset: 0 },
            ),
            (
                &*format!("segment={id}&commit=true"),
                WriteQuery::Commit { segment: id.parse().unwrap() },
            ),
            (
                &*format!("presign=true&segment={id}&offset=5&length=9"),
                WriteQuery::Presign { segment: id.parse().unwrap(), offset: 5, length: 9 },
            ),
        ];
        for (raw, expected) in cases {
            let parsed = WriteQuery::parse(raw).unwrap();
            assert_eq!(parsed, expected);
            assert_eq!(WriteQuery::parse(&parsed.to_query_string()).unwrap(), parsed);
        }
        for bad in [
            "bogus=1".to_owned(),
            format!("segment={id}"),
            format!("segment={id}&offset=-1"),
            format!("segment={id}&offset=1&offset=2"),
            format!("segment={}&offset=0", "AB".repeat(32)),
            format!("segment={id}&commit=yes"),
        ] {
            let err = WriteQuery::parse(&bad).unwrap_err();
            assert_eq!(err.code, ErrorCode::InvalidRequest, "{bad}");
        }
        assert_eq!(RestoreQuery::parse("claim=true").unwrap(), RestoreQuery::Plan { claim: true });
        assert_eq!(RestoreQuery::parse("").unwrap(), RestoreQuery::Plan { claim: false });
        let fetch = RestoreQuery::parse(&format!("segment={id}&offset=3&length=4")).unwrap();
        assert_eq!(RestoreQuery::parse(&fetch.to_query_string()).unwrap(), fetch);
        assert!(RestoreQuery::parse("claim=true&segment=x").is_err());
    }
}
