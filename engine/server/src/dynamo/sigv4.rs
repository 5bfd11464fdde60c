//! AWS Signature Version 4 verification, so clients authenticate exactly as they do against
//! DynamoDB: the SDK signs with an access key id and secret; the server recomputes the signature
//! with the secret it was configured with and compares in constant time.

use std::time::{Duration, SystemTime};

use hmac::{KeyInit, Mac};
use http::HeaderMap;
use sha2::{Digest, Sha256};

use super::error::{DynamoError, Kind};

type HmacSha256 = hmac::Hmac<Sha256>;

/// How far a request's `x-amz-date` may be from now, as in AWS.
const MAX_SKEW: Duration = Duration::from_secs(15 * 60);

/// An access key pair the server accepts.
#[derive(Clone)]
pub struct Credentials {
    pub access_key_id: String,
    pub secret_access_key: String,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credentials")
            .field("access_key_id", &self.access_key_id)
            .field("secret_access_key", &"<redacted>")
            .finish()
    }
}

/// The parts of an `Authorization: AWS4-HMAC-SHA256 ...` header.
struct Authorization<'a> {
    access_key_id: &'a str,
    date: &'a str,
    region: &'a str,
    service: &'a str,
    signed_headers: Vec<&'a str>,
    signature: &'a str,
}

fn invalid_signature(message: impl Into<String>) -> DynamoError {
    DynamoError::new(Kind::InvalidSignature, message)
}

fn parse_authorization(header: &str) -> Result<Authorization<'_>, DynamoError> {
    let malformed = || {
        DynamoError::new(
            Kind::InvalidSignature,
            "Authorization header is not a valid AWS4-HMAC-SHA256 authorization",
        )
    };
    let rest = header.strip_prefix("AWS4-HMAC-SHA256").ok_or_else(malformed)?;
    let (mut credential, mut signed, mut signature) = (None, None, None);
    for field in rest.split(',') {
        let (name, value) = field.trim().split_once('=').ok_or_else(malformed)?;
        match name {
            "Credential" => credential = Some(value),
            "SignedHeaders" => signed = Some(value),
            "Signature" => signature = Some(value),
            _ => return Err(malformed()),
        }
    }
    let scope: Vec<&str> = credential.ok_or_else(malformed)?.split('/').collect();
    let [access_key_id, date, region, service, "aws4_request"] = scope.as_slice() else {
        return Err(malformed());
    };
    Ok(Authorization {
        access_key_id,
        date,
        region,
        service,
        signed_headers: signed.ok_or_else(malformed)?.split(';').collect(),
        signature: signature.ok_or_else(malformed)?,
    })
}

/// `20261122T224049Z` as a time.
fn parse_amz_date(text: &str) -> Option<SystemTime> {
    let b = text.as_bytes();
    if b.len() != 16 || b[8] != b'T' || b[15] != b'Z' {
        return None;
    }
    let rfc3339 = format!(
        "{}-{}-{}T{}:{}:{}Z",
        &text[0..4],
        &text[4..6],
        &text[6..8],
        &text[9..11],
        &text[11..13],
        &text[13..15]
    );
    humantime::parse_rfc3339(&rfc3339).ok()
}

fn hmac(key: &[u8], data: &[u8]) -> Vec<u8> {
    let mut mac = HmacSha256::new_from_slice(key).expect("HMAC takes any key length");
    mac.update(data);
    mac.finalize().into_bytes().to_vec()
}

fn collapse_spaces(value: &str) -> String {
    value.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// The canonical request of SigV4 for a request with an empty query string.
fn canonical_request(
    method: &str,
    path: &str,
    query: &str,
    headers: &HeaderMap,
    signed: &[&str],
    payload_hash: &str,
) -> Result<String, DynamoError> {
    let mut out = format!("{method}\n{path}\n{}\n", canonical_query(query));
    for name in signed {
        let values: Vec<String> = headers
            .get_all(*name)
            .iter()
            .map(|v| v.to_str().map(collapse_spaces))
            .collect::<Result<_, _>>()
            .map_err(|_| invalid_signature(format!("signed header {name} is not text")))?;
        if values.is_empty() {
            return Err(invalid_signature(format!("signed header {name} is missing")));
        }
        out.push_str(&format!("{name}:{}\n", values.join(",")));
    }
    out.push_str(&format!("\n{}\n{payload_hash}", signed.join(";")));
    Ok(out)
}

fn canonical_query(query: &str) -> String {
    let mut pairs: Vec<&str> = query.split('&').filter(|p| !p.is_empty()).collect();
    pairs.sort_unstable();
    pairs
        .iter()
        .map(|p| if p.contains('=') { (*p).to_owned() } else { format!("{p}=") })
        .collect::<Vec<_>>()
        .join("&")
}

/// Checks a request's SigV4 signature against `credentials`.
pub fn verify(
    credentials: &[Credentials],
    method: &str,
    path: &str,
    query: &str,
    headers: &HeaderMap,
    body: &[u8],
    now: SystemTime,
) -> Result<(), DynamoError> {
    let Some(header) = headers.get(http::header::AUTHORIZATION) else {
        return Err(DynamoError::new(
            Kind::MissingAuthenticationToken,
            "Request is missing Authentication Token",
        ));
    };
    let header = header.to_str().map_err(|_| invalid_signature("Authorization is not text"))?;
    let auth = parse_authorization(header)?;
    let Some(credentials) = credentials.iter().find(|c| c.access_key_id == auth.access_key_id)
    else {
        return Err(DynamoError::new(
            Kind::UnrecognizedClient,
            "The security token included in the request is invalid.",
        ));
    };
    let amz_date = headers
        .get("x-amz-date")
        .and_then(|v| v.to_str().ok())
        .ok_or_else(|| invalid_signature("the x-amz-date header is missing"))?;
    let signed_at = parse_amz_date(amz_date)
        .ok_or_else(|| invalid_signature(format!("x-amz-date {amz_date:?} is not a valid date")))?;
    let skew =
        now.duration_since(signed_at).or_else(|e| Ok::<_, ()>(e.duration())).unwrap_or_default();
    if skew > MAX_SKEW {
        return Err(invalid_signature(format!(
            "Signature expired: {amz_date} is more than 15 minutes from the server's time"
        )));
    }
    if !amz_date.starts_with(auth.date) {
        return Err(invalid_signature("the credential scope's date is not the x-amz-date's"));
    }
    if !auth.signed_headers.contains(&"host") || !auth.signed_headers.contains(&"x-amz-date") {
        return Err(invalid_signature("host and x-amz-date must be signed"));
    }
    let payload_hash = hex::encode(Sha256::digest(body));
    if let Some(claimed) = headers.get("x-amz-content-sha256").and_then(|v| v.to_str().ok())
        && claimed != payload_hash
    {
        return Err(invalid_signature("x-amz-content-sha256 does not match the body"));
    }
    let canonical =
        canonical_request(method, path, query, headers, &auth.signed_headers, &payload_hash)?;
    let scope = format!("{}/{}/{}/aws4_request", auth.date, auth.region, auth.service);
    let string_to_sign = format!(
        "AWS4-HMAC-SHA256\n{amz_date}\n{scope}\n{}",
        hex::encode(Sha256::digest(canonical.as_bytes()))
    );
    let key = [auth.date, auth.region, auth.service, "aws4_request"]
        .iter()
        .fold(format!("AWS4{}", credentials.secret_access_key).into_bytes(), |key, part| {
            hmac(&key, part.as_bytes())
        });
    let claimed =
        hex::decode(auth.signature).map_err(|_| invalid_signature("the signature is not hex"))?;
    let mut mac = HmacSha256::new_from_slice(&key).expect("HMAC takes any key length");
    mac.update(string_to_sign.as_bytes());
    mac.verify_slice(&claimed).map_err(|_| {
        invalid_signature(
            "The request signature we calculated does not match the signature you provided. Check your AWS Secret Access Key and signing method.",
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The `get-vanilla` case of AWS's SigV4 test suite.
    #[test]
    fn verifies_the_aws_test_suite_vanilla_request() {
        let credentials = [Credentials {
            access_key_id: "AKIDEXAMPLE".into(),
            secret_access_key: "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY".into(),
        }];
        let mut headers = HeaderMap::new();
        headers.insert("host", "example.amazonaws.com".parse().unwrap());
        headers.insert("x-amz-date", "20150830T123600Z".parse().unwrap());
        headers.insert(
            "authorization",
            "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws4_request, SignedHeaders=host;x-amz-date, Signature=5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31"
                .parse()
                .unwrap(),
        );
        let at = parse_amz_date("20150830T123600Z").unwrap();
        verify(&credentials, "GET", "/", "", &headers, b"", at).unwrap();
        let err = verify(&credentials, "POST", "/", "", &headers, b"", at).unwrap_err();
        assert_eq!(err.kind, Kind::InvalidSignature, "another method, another signature");
        let late = at + Duration::from_secs(16 * 60);
        assert_eq!(
            verify(&credentials, "GET", "/", "", &headers, b"", late).unwrap_err().kind,
            Kind::InvalidSignature
        );
        assert_eq!(
            verify(&[], "GET", "/", "", &headers, b"", at).unwrap_err().kind,
            Kind::UnrecognizedClient
        );
        headers.remove("authorization");
        assert_eq!(
            verify(&credentials, "GET", "/", "", &headers, b"", at).unwrap_err().kind,
            Kind::MissingAuthenticationToken
        );
    }
}
