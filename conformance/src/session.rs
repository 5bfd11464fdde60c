//! Talking to the function under test: signed requests that can be tampered with, a
//! transcript of every exchange (the evidence of a failure), and the protocol's steps (claim,
//! persist, parts, fetch, restore) built from them.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderMap, HeaderName, HeaderValue, Method};
use serde::Serialize;
use serde::de::DeserializeOwned;
use sha2::{Digest, Sha256};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use url::Url;
use wkp1_protocol::endpoint::{RestoreQuery, SegmentId, WriteQuery};
use wkp1_protocol::manifest::{
    CommitRequest, Limits, PersistResponse, PlannedSegment, RestorePlan, SegmentDescriptor,
};
use wkp1_protocol::segment::{SegmentHeader, SegmentReader, SegmentVerifier, encode_segment};
use wkp1_protocol::signing::{Signer, unix_now};
use wkp1_protocol::{Endpoint, ErrorBody, Identifier, KeyId, Secret, Subtree, WkpPath, headers};

use crate::fail;
use crate::verdict::CheckError;

/// The function under test and how to talk to it.
#[derive(Debug, Clone)]
pub struct Target {
    pub base_url: Url,
    pub key_id: KeyId,
    pub secret: Secret,
    /// A second key the function also accepts, for the rotation check.
    pub second_key: Option<(KeyId, Secret)>,
    pub engine: Identifier,
    /// This run's own instance: everything the kit writes is under it.
    pub instance: Identifier,
    pub request_timeout: Duration,
    /// Largest state the large-segment check may send.
    pub large_state_max: u64,
}

/// One request and its answer, as evidence.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Exchange {
    pub request: String,
    pub request_headers: Vec<String>,
    pub request_body: String,
    pub status: Option<u16>,
    pub response: String,
}

/// A request being built, signed, and perhaps tampered with before it is sent.
#[derive(Debug, Clone)]
pub struct Request {
    pub method: Method,
    /// The WKP path (`/v1/...`), appended to the base URL.
    pub path: String,
    pub query: String,
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl Request {
    pub fn new(
        endpoint: Endpoint,
        subtree: &Subtree,
        query: impl Into<String>,
        body: impl Into<Bytes>,
    ) -> Self {
        Self {
            method: endpoint.method(),
            path: WkpPath::new(endpoint, subtree.clone()).to_path(),
            query: query.into(),
            headers: HeaderMap::new(),
            body: body.into(),
        }
    }

    pub fn header(mut self, name: &str, value: &str) -> Self {
        self.headers.insert(
            HeaderName::from_bytes(name.as_bytes()).unwrap(),
            HeaderValue::from_str(value).unwrap(),
        );
        self
    }

    pub fn generation(self, generation: u64) -> Self {
        self.header(headers::GENERATION, &generation.to_string())
    }

    /// Signs with `key` at `timestamp` (the body's hash included), replacing any signature.
    pub fn signed_with(mut self, key_id: &KeyId, secret: &Secret, timestamp: u64) -> Self {
        let signer = Signer::new(key_id.clone(), secret.clone());
        let hash = hex::encode(Sha256::digest(&self.body));
        signer
            .sign(&self.method, &self.path, &self.query, &mut self.headers, &hash, timestamp)
            .expect("the kit builds valid headers");
        self
    }
}

/// An answer.
#[derive(Debug, Clone)]
pub struct Response {
    pub status: u16,
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl Response {
    /// The `error.code` of a WKP-1 error body.
    pub fn error_code(&self) -> Option<String> {
        serde_json::from_slice::<ErrorBody>(&self.body).ok().map(|b| b.error.code.to_string())
    }

    pub fn json<T: DeserializeOwned>(&self, what: &str) -> Result<T, CheckError> {
        serde_json::from_slice(&self.body).map_err(|e| {
            CheckError::Fail(format!("{what}: the answer is not the expected JSON ({e})"))
        })
    }
}

/// A check's connection to the target: it names fresh replicas and records every exchange.
#[derive(Debug)]
pub struct Session {
    pub target: Arc<Target>,
    http: reqwest::Client,
    check: &'static str,
    replicas: usize,
    pub transcript: Vec<Exchange>,
    /// Generations this session claimed, closed again when the check ends.
    claims: Vec<(Subtree, u64)>,
}

impl Session {
    pub fn new(target: Arc<Target>, check: &'static str) -> Self {
        let http = reqwest::Client::builder()
            .timeout(target.request_timeout)
            .connect_timeout(target.request_timeout.min(Duration::from_secs(10)))
            .build()
            .expect("HTTP client");
        Self { target, http, check, replicas: 0, transcript: Vec::new(), claims: Vec::new() }
    }

    /// A replica nobody has written to, under this run's instance.
    pub fn replica(&mut self) -> Subtree {
        self.replicas += 1;
        let name: String = self.check.chars().take(40).collect();
        self.subtree(&format!("{name}-{}", self.replicas))
    }

    pub fn subtree(&self, replica: &str) -> Subtree {
        Subtree {
            engine: self.target.engine.clone(),
            instance: self.target.instance.clone(),
            replica: Identifier::new(replica).expect("kit replica names are valid"),
        }
    }

    /// The function's clock as far as the kit knows: the local one.
    pub fn now(&self) -> u64 {
        unix_now()
    }

    /// Signs with the primary key, now.
    pub fn sign(&self, request: Request) -> Request {
        request.signed_with(&self.target.key_id, &self.target.secret, self.now())
    }

    fn url(&self, path: &str, query: &str) -> Url {
        let mut url = self.target.base_url.clone();
        let base = url.path().trim_end_matches('/').to_owned();
        url.set_path(&format!("{base}{path}"));
        url.set_query((!query.is_empty()).then_some(query));
        url
    }

    /// Sends a request exactly as built; a function that does not answer in time fails the check.
    pub async fn send(&mut self, request: Request) -> Result<Response, CheckError> {
        let exchange = exchange_of(&request);
        let body = reqwest::Body::from(request.body.clone());
        self.exchange(&request, body, exchange).await
    }

    /// Sends a request with its body in chunks of `chunk` bytes (chunked transfer encoding, no
    /// content-length), as a proxy or a streaming client may deliver it.
    pub async fn send_in_chunks(
        &mut self,
        request: Request,
        chunk: usize,
    ) -> Result<Response, CheckError> {
        let mut exchange = exchange_of(&request);
        exchange.request_body = format!("{} in chunks of {chunk} bytes", exchange.request_body);
        let pieces: Vec<Result<Bytes, std::io::Error>> =
            request.body.chunks(chunk.max(1)).map(|c| Ok(Bytes::copy_from_slice(c))).collect();
        let body = reqwest::Body::wrap_stream(futures::stream::iter(pieces));
        self.exchange(&request, body, exchange).await
    }

    /// Sends `request` with `body` and records the exchange; no answer, or an answer whose body
    /// breaks off, fails the check.
    async fn exchange(
        &mut self,
        request: &Request,
        body: reqwest::Body,
        mut exchange: Exchange,
    ) -> Result<Response, CheckError> {
        let url = self.url(&request.path, &request.query);
        let result = self
            .http
            .request(request.method.clone(), url)
            .headers(request.headers.clone())
            .body(body)
            .send()
            .await;
        let response = match result {
            Ok(response) => response,
            Err(e) => {
                exchange.response = format!("no answer: {e}");
                self.transcript.push(exchange);
                fail!(
                    "{} {}: no answer within {:?}: {e}",
                    request.method,
                    request.path,
                    self.target.request_timeout
                );
            }
        };
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        let body = match response.bytes().await {
            Ok(body) => body,
            Err(e) => {
                exchange.status = Some(status);
                exchange.response = format!("body broke off: {e}");
                self.transcript.push(exchange);
                fail!("{} {}: the answer's body broke off: {e}", request.method, request.path);
            }
        };
        exchange.status = Some(status);
        exchange.response = excerpt(&headers, &body);
        self.transcript.push(exchange);
        Ok(Response { status, headers, body })
    }

    /// Sends a GET with a path the URL parser would normalise (`..`, `%2e%2e`), byte for byte.
    /// Only possible over plain HTTP; over HTTPS the check is skipped.
    pub async fn send_raw_path(
        &mut self,
        raw_path: &str,
        signed_headers: &HeaderMap,
    ) -> Result<u16, CheckError> {
        let url = &self.target.base_url;
        if url.scheme() != "http" {
            return Err(CheckError::Skip(
                "sending an unnormalised path needs a plain http:// target".into(),
            ));
        }
        let host = url.host_str().unwrap_or("127.0.0.1").to_owned();
        let port = url.port_or_known_default().unwrap_or(80);
        let base = url.path().trim_end_matches('/');
        let mut text = format!(
            "GET {base}{raw_path} HTTP/1.1\r\nhost: {host}:{port}\r\nconnection: close\r\n"
        );
        for (name, value) in signed_headers {
            text.push_str(&format!("{name}: {}\r\n", value.to_str().unwrap_or_default()));
        }
        text.push_str("\r\n");
        let timeout = self.target.request_timeout;
        let exchange = |status: Option<u16>, response: String| Exchange {
            request: format!("GET {raw_path} (sent byte for byte)"),
            request_headers: wkp_headers(signed_headers),
            request_body: "empty".into(),
            status,
            response,
        };
        let attempt = async {
            let mut stream = tokio::net::TcpStream::connect((host.as_str(), port)).await?;
            stream.write_all(text.as_bytes()).await?;
            let mut answer = Vec::new();
            stream.read_to_end(&mut answer).await?;
            Ok::<_, std::io::Error>(answer)
        };
        let answer = match tokio::time::timeout(timeout, attempt).await {
            Ok(Ok(answer)) => answer,
            Ok(Err(e)) => {
                self.transcript.push(exchange(None, e.to_string()));
                fail!("GET {raw_path}: {e}");
            }
            Err(_) => {
                self.transcript.push(exchange(None, "no answer".into()));
                fail!("GET {raw_path}: no answer within {timeout:?}");
            }
        };
        let text = String::from_utf8_lossy(&answer).into_owned();
        let status = text.split(' ').nth(1).and_then(|s| s.parse().ok());
        self.transcript.push(exchange(status, text.chars().take(600).collect()));
        status.ok_or_else(|| CheckError::Fail(format!("GET {raw_path}: not an HTTP answer")))
    }

    /// Fails unless the answer has this status and (when given) this error code.
    pub fn expect(
        &self,
        what: &str,
        response: &Response,
        status: u16,
        code: Option<&str>,
    ) -> Result<(), CheckError> {
        let got_code = response.error_code();
        if response.status != status || (code.is_some() && got_code.as_deref() != code) {
            fail!(
                "{what}: expected {status}{}, got {}{}",
                code.map(|c| format!(" {c}")).unwrap_or_default(),
                response.status,
                got_code.map(|c| format!(" {c}")).unwrap_or_default()
            );
        }
        Ok(())
    }

    pub async fn plan(
        &mut self,
        subtree: &Subtree,
        claim: bool,
    ) -> Result<RestorePlan, CheckError> {
        let request = self.sign(Request::new(
            Endpoint::Restore,
            subtree,
            RestoreQuery::Plan { claim }.to_query_string(),
            Bytes::new(),
        ));
        let response = self.send(request).await?;
        self.expect(if claim { "claim" } else { "restore plan" }, &response, 200, None)?;
        let plan: RestorePlan = response.json("restore plan")?;
        if claim {
            self.claims.push((subtree.clone(), plan.generation));
        }
        Ok(plan)
    }

    /// Leaves no writer open: an empty flush for every generation this session claimed. WKP-1
    /// has no delete, so this is all the cleaning up a run can do. Answers are not evidence.
    pub async fn close_claims(&mut self) {
        for (subtree, generation) in std::mem::take(&mut self.claims) {
            let request = self.sign(
                Request::new(Endpoint::Flush, &subtree, "", Bytes::new()).generation(generation),
            );
            let url = self.url(&request.path, &request.query);
            let _ = self.http.post(url).headers(request.headers).send().await;
        }
    }

    /// Claims a generation on a fresh replica.
    pub async fn claimed_replica(&mut self) -> Result<(Subtree, u64), CheckError> {
        let subtree = self.replica();
        let plan = self.plan(&subtree, true).await?;
        Ok((subtree, plan.generation))
    }

    /// Sends a whole segment in one request.
    pub async fn persist(
        &mut self,
        subtree: &Subtree,
        endpoint: Endpoint,
        generation: u64,
        segment: &[u8],
    ) -> Result<Response, CheckError> {
        let request = Request::new(endpoint, subtree, "", Bytes::copy_from_slice(segment))
            .header("content-type", headers::SEGMENT_MEDIA_TYPE)
            .generation(generation);
        let request = self.sign(request);
        self.send(request).await
    }

    /// Sends a whole segment and requires it to be committed.
    pub async fn persist_ok(
        &mut self,
        subtree: &Subtree,
        generation: u64,
        segment: &[u8],
    ) -> Result<PersistResponse, CheckError> {
        let response = self.persist(subtree, Endpoint::Persist, generation, segment).await?;
        self.expect("persist", &response, 200, None)?;
        response.json("persist answer")
    }

    /// Uploads a segment in parts of `part_len` (presigned when the function offers it), then
    /// commits; returns the commit's answer.
    pub async fn persist_in_parts(
        &mut self,
        subtree: &Subtree,
        endpoint: Endpoint,
        generation: u64,
        segment: &[u8],
        limits: &Limits,
        part_len: usize,
    ) -> Result<Response, CheckError> {
        let id = SegmentId(Sha256::digest(segment).into());
        let mut parts = Vec::new();
        for (i, chunk) in segment.chunks(part_len).enumerate() {
            let offset = (i * part_len) as u64;
            if limits.presign_upload {
                let query = WriteQuery::Presign { segment: id, offset, length: chunk.len() as u64 }
                    .to_query_string();
                let request = self.sign(
                    Request::new(endpoint, subtree, query, Bytes::new()).generation(generation),
                );
                let response = self.send(request).await?;
                self.expect("presign a part", &response, 200, None)?;
                let presigned: wkp1_protocol::manifest::PresignResponse =
                    response.json("presign answer")?;
                let upload = presigned.upload;
                let mut put = self
                    .http
                    .request(upload.method.parse().unwrap_or(Method::PUT), &upload.url)
                    .body(Bytes::copy_from_slice(chunk));
                for (k, v) in &upload.headers {
                    put = put.header(k, v);
                }
                let status = put.send().await.map(|r| r.status().as_u16()).unwrap_or(0);
                if !(200..300).contains(&status) {
                    fail!(
                        "presigned upload of the part at offset {offset}: store answered {status}"
                    );
                }
            } else {
                let response =
                    self.upload_part(subtree, endpoint, generation, id, offset, chunk).await?;
                self.expect(&format!("upload the part at offset {offset}"), &response, 200, None)?;
            }
            parts.push(chunk.len() as u64);
        }
        self.commit(subtree, endpoint, generation, segment, parts).await
    }

    /// Sends `chunk` as the part of segment `id` at `offset`, answer unchecked.
    pub async fn upload_part(
        &mut self,
        subtree: &Subtree,
        endpoint: Endpoint,
        generation: u64,
        id: SegmentId,
        offset: u64,
        chunk: &[u8],
    ) -> Result<Response, CheckError> {
        let query = WriteQuery::Part { segment: id, offset }.to_query_string();
        let request = self.sign(
            Request::new(endpoint, subtree, query, Bytes::copy_from_slice(chunk))
                .generation(generation),
        );
        self.send(request).await
    }

    /// Commits with a descriptor as given, true or not; answer unchecked.
    pub async fn commit_declared(
        &mut self,
        subtree: &Subtree,
        endpoint: Endpoint,
        generation: u64,
        segment: SegmentDescriptor,
        parts: Vec<u64>,
    ) -> Result<Response, CheckError> {
        let body =
            Bytes::from(serde_json::to_vec(&CommitRequest { segment, parts }).expect("json"));
        let query = WriteQuery::Commit { segment: segment.id }.to_query_string();
        let request = self.sign(
            Request::new(endpoint, subtree, query, body)
                .header("content-type", headers::JSON_MEDIA_TYPE)
                .generation(generation),
        );
        self.send(request).await
    }

    /// Commits the parts uploaded for `segment` (its descriptor computed from its bytes), with
    /// `parts` as the declared lengths; answer unchecked.
    pub async fn commit(
        &mut self,
        subtree: &Subtree,
        endpoint: Endpoint,
        generation: u64,
        segment: &[u8],
        parts: Vec<u64>,
    ) -> Result<Response, CheckError> {
        let descriptor = descriptor_of(segment)?;
        self.commit_declared(subtree, endpoint, generation, descriptor, parts).await
    }

    /// Asks for bytes `offset .. offset + length` of a segment, answer unchecked.
    pub async fn fetch(
        &mut self,
        subtree: &Subtree,
        segment: SegmentId,
        offset: u64,
        length: u64,
    ) -> Result<Response, CheckError> {
        let query = RestoreQuery::Fetch { segment, offset, length }.to_query_string();
        let request = self.sign(Request::new(Endpoint::Restore, subtree, query, Bytes::new()));
        self.send(request).await
    }

    /// Downloads one planned segment in ranges the function allows and checks it is exactly
    /// what the plan names (id, header, size, trailer).
    pub async fn download(
        &mut self,
        subtree: &Subtree,
        planned: &PlannedSegment,
        max_response: u64,
    ) -> Result<Vec<u8>, CheckError> {
        let segment = planned.segment;
        let mut bytes = Vec::with_capacity(segment.size as usize);
        while (bytes.len() as u64) < segment.size {
            let offset = bytes.len() as u64;
            let length = max_response.max(1).min(segment.size - offset);
            let query =
                RestoreQuery::Fetch { segment: segment.id, offset, length }.to_query_string();
            let request = self.sign(Request::new(Endpoint::Restore, subtree, query, Bytes::new()));
            let response = self.send(request).await?;
            self.expect(
                &format!("download bytes {offset}+{length} of segment {}", segment.id),
                &response,
                200,
                None,
            )?;
            if response.body.len() as u64 != length {
                fail!(
                    "download of segment {} at {offset}: asked for {length} bytes, got {}",
                    segment.id,
                    response.body.len()
                );
            }
            bytes.extend_from_slice(&response.body);
        }
        let mut verifier = SegmentVerifier::new();
        let verified = verifier.update(&bytes).and_then(|()| verifier.finish());
        match verified {
            Ok(v) if SegmentDescriptor::from(&v) == segment => Ok(bytes),
            Ok(v) => fail!(
                "segment {} downloaded as a different segment: {} {:?}",
                segment.id,
                v.id_hex(),
                v.header
            ),
            Err(e) => fail!("segment {} downloaded corrupt: {e}", segment.id),
        }
    }

    /// Restores a replica as an engine would: plan, every segment downloaded and verified, chain
    /// checked; returns the plan and each segment's payload, in order.
    pub async fn restore(
        &mut self,
        subtree: &Subtree,
    ) -> Result<(RestorePlan, Vec<Vec<u8>>), CheckError> {
        let plan = self.plan(subtree, false).await?;
        let headers: Vec<SegmentHeader> = plan.chain.iter().map(|s| s.segment.header()).collect();
        match wkp1_protocol::validate_chain(&headers) {
            Ok(state) if state == plan.last_seq => {}
            Ok(state) => {
                fail!("restore plan says state {} but its chain produces {state}", plan.last_seq)
            }
            Err(e) => fail!("restore plan's chain is broken: {e}"),
        }
        let mut payloads = Vec::new();
        for planned in &plan.chain {
            let bytes = self.download(subtree, planned, plan.limits.max_response_bytes).await?;
            payloads.push(payload_of(&bytes)?);
        }
        Ok((plan, payloads))
    }
}

/// A segment's bytes.
pub fn segment(header: SegmentHeader, payload: &[u8]) -> Vec<u8> {
    encode_segment(header, payload).expect("valid header")
}

/// A segment of exactly `size` bytes (at least 100), its payload incompressible noise; `None`
/// in the rare case zstd's framing jumps over that size.
pub fn segment_of_size(header: SegmentHeader, size: usize, seed: u64) -> Option<Vec<u8>> {
    // Noise compresses to itself plus a few framing bytes, so each payload byte is one more.
    let mut payload_len = size.saturating_sub(100);
    for _ in 0..16 {
        let bytes = segment(header, &noise(payload_len, seed));
        match bytes.len().cmp(&size) {
            std::cmp::Ordering::Equal => return Some(bytes),
            std::cmp::Ordering::Less => payload_len += size - bytes.len(),
            std::cmp::Ordering::Greater => payload_len -= (bytes.len() - size).min(payload_len),
        }
    }
    None
}

/// The descriptor of a segment the kit built (id, header fields, size).
pub fn descriptor_of(segment: &[u8]) -> Result<SegmentDescriptor, CheckError> {
    let mut verifier = SegmentVerifier::new();
    let verified = verifier.update(segment).and_then(|()| verifier.finish());
    verified
        .map(|v| SegmentDescriptor::from(&v))
        .map_err(|e| CheckError::Fail(format!("kit built a bad segment: {e}")))
}

/// A segment's id: the SHA-256 of all its bytes (`SEG-7`).
pub fn segment_id(bytes: &[u8]) -> SegmentId {
    SegmentId(Sha256::digest(bytes).into())
}

/// The decompressed payload of a verified segment.
pub fn payload_of(bytes: &[u8]) -> Result<Vec<u8>, CheckError> {
    let mut reader =
        SegmentReader::new(bytes).map_err(|e| CheckError::Fail(format!("segment: {e}")))?;
    let mut out = Vec::new();
    let read = std::io::Read::read_to_end(&mut reader, &mut out);
    reader.finish().map_err(|e| CheckError::Fail(format!("segment: {e}")))?;
    read.map_err(|e| CheckError::Fail(format!("segment: {e}")))?;
    Ok(out)
}

/// Pseudo-random, incompressible bytes.
pub fn noise(len: usize, seed: u64) -> Vec<u8> {
    let mut state = seed | 1;
    (0..len)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state as u8
        })
        .collect()
}

fn wkp_headers(headers: &HeaderMap) -> Vec<String> {
    headers
        .iter()
        .filter(|(n, _)| n.as_str().starts_with("wkp-"))
        .map(|(n, v)| format!("{n}: {}", v.to_str().unwrap_or("<binary>")))
        .collect()
}

fn exchange_of(request: &Request) -> Exchange {
    let query =
        if request.query.is_empty() { String::new() } else { format!("?{}", request.query) };
    Exchange {
        request: format!("{} {}{query}", request.method, request.path),
        request_headers: wkp_headers(&request.headers),
        request_body: if request.body.is_empty() {
            "empty".into()
        } else {
            format!("{} bytes", request.body.len())
        },
        status: None,
        response: String::new(),
    }
}

fn excerpt(headers: &HeaderMap, body: &Bytes) -> String {
    let json = headers
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"));
    if json || (body.len() < 600 && std::str::from_utf8(body).is_ok()) {
        let text = String::from_utf8_lossy(body);
        if text.chars().count() > 600 {
            return format!("{}…", text.chars().take(600).collect::<String>());
        }
        return text.into_owned();
    }
    format!(
        "<{} bytes of {}>",
        body.len(),
        headers.get("content-type").and_then(|v| v.to_str().ok()).unwrap_or("unknown type")
    )
}
