//! Proof that the kit catches bugs: deliberately broken variants of the self-hosted function,
//! each of which must fail at least one named MUST check. Every check is named by some variant,
//! so no check exists that could never fail.
//!
//! Broken routers rewrite requests (re-signing them, so the function itself is fooled) or
//! answers; broken stores ignore create-only writes, truncate, lose writes, or reclaim eagerly.

mod common;

use std::collections::BTreeSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::State;
use bytes::Bytes;
use http::{HeaderValue, StatusCode, request::Parts};
use http_body_util::{BodyExt, Full};
use sha2::{Digest, Sha256};
use wkp1_conformance::{Level, Outcome, RunOptions, checks, run, select};
use wkp1_function::layout::Layout;
use wkp1_function::store::object_store::ObjectStoreBackend;
use wkp1_function::store::{ByteStream, ObjectMeta, PutMode, Store, StoreError};
use wkp1_function::{Function, FunctionConfig};
use wkp1_protocol::endpoint::WkpPath;
use wkp1_protocol::endpoint::{RestoreQuery, WriteQuery};
use wkp1_protocol::manifest::Manifest;
use wkp1_protocol::segment::{HEADER_LEN, SegmentHeader, SegmentKind};
use wkp1_protocol::signing::{self, Signer, unix_now};
use wkp1_protocol::{KeyId, headers};
use wkp1_testkit::{self as testing, Backend, Server};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Breakage {
    // Authentication.
    AcceptUnsigned,
    AcceptBadSignatures,
    AcceptStaleTimestamps,
    AcceptUnknownKeys,
    IgnoreBodyHash,
    RejectSecondKey,
    // Identifiers, routes, versions.
    NormalizeIdentifiers,
    RejectLongIdentifiers,
    IgnoreUnknownQuery,
    NoResponseHeaders,
    AcceptAnyVersion,
    RejectNewerMinor,
    NotFoundAs400,
    MethodNotAllowedAs404,
    // Restore.
    EmptySubtreeIs404,
    ClaimsDoNotClaim,
    ShortGrace,
    ServeAnyRange,
    CorruptDownloads,
    DropLastDelta,
    DuplicateSnapshotInPlan,
    // Persist.
    RejectDeltaFromEmpty,
    LieAboutConflicts,
    AcceptInvalidSegments,
    GenerationOptional,
    RetriesCommitAgain,
    TrustManifestHint,
    // Fencing and flush.
    IgnoreGenerations,
    DropSuperseded,
    FlushIsPersist,
    PreviousWriterAlwaysClosed,
    // Limits, errors, isolation.
    SharedReplicas,
    AdvertiseSmallerLimit,
    AcceptIncompleteCommits,
    PlainTextErrors,
    HangOnClaims,
    // Stores.
    OverwriteObjects,
    TruncateLargeObjects,
    LoseSomeWrites,
    EagerRetention,
    // Subtle bugs, of the kind an implementer writes (SPEC 1.0.1).
    WideTimestampWindow,
    LooseSignatureCompare,
    RawQuerySigned,
    UnknownHeadersUnsigned,
    FirstSignatureWins,
    CheckFirstCharacterOnly,
    HeadServesRestore,
    EchoAnyRequestId,
    NoGeneratedRequestId,
    IdentifiersBeforeAuth,
    GenerationZeroIsUnclaimed,
    ConflictBySize,
    FenceBeforeRetry,
    EmptyFlushIgnoresGeneration,
    RepeatedFlushIs409,
    FencedPartsRefused,
    CommitsOverwriteClaims,
    InlineLimitOffByOne,
    RangeFromPartStart,
    CommitTrustsDescriptor,
    PlanTruncatesChain,
    SequenceUnchecked,
    RefuseOtherContentTypes,
    PartRetryConflicts,
    RevealExpectedSignature,
    AdvertiseUnreachableSegment,
    LenientQueryValues,
    FlushRetryDoesNotClose,
    NeedsContentLength,
    LenientGenerationParse,
    EmptyFlushBodyUnread,
    PartLimitFromZero,
    PartConflictsIgnored,
    CommitTrustsItsCount,
}

use Breakage::*;

/// Each variant, and the MUST checks it must fail.
const VARIANTS: &[(Breakage, &[&str])] = &[
    (AcceptUnsigned, &["auth_missing_signature_is_401", "auth_restore_requires_signature"]),
    (
        AcceptBadSignatures,
        &[
            "auth_wrong_signature_is_401",
            "auth_tampered_path_is_401",
            "auth_tampered_query_is_401",
            "auth_tampered_header_is_401",
        ],
    ),
    (AcceptStaleTimestamps, &["auth_stale_timestamp_is_401", "auth_future_timestamp_is_401"]),
    (AcceptUnknownKeys, &["auth_unknown_key_is_401"]),
    (IgnoreBodyHash, &["auth_tampered_body_is_401"]),
    (RejectSecondKey, &["auth_rotated_key_is_accepted"]),
    (
        NormalizeIdentifiers,
        &[
            "ids_traversal_is_400",
            "ids_malformed_are_400",
            "ids_dot_segments_never_reach_a_subtree",
        ],
    ),
    (RejectLongIdentifiers, &["ids_longest_is_accepted"]),
    (IgnoreUnknownQuery, &["endpoints_unknown_query_parameter_is_400"]),
    (NoResponseHeaders, &["endpoints_answers_carry_version_and_request_id"]),
    (
        AcceptAnyVersion,
        &[
            "versioning_missing_version_is_400",
            "versioning_other_major_path_is_404",
            "versioning_other_major_header_is_400",
        ],
    ),
    (RejectNewerMinor, &["versioning_newer_minor_is_accepted"]),
    (NotFoundAs400, &["endpoints_unknown_route_is_404"]),
    (MethodNotAllowedAs404, &["endpoints_wrong_method_is_405"]),
    (EmptySubtreeIs404, &["restore_empty_subtree_is_an_empty_plan"]),
    (ClaimsDoNotClaim, &["restore_claim_increments_generation"]),
    (ShortGrace, &["restore_plan_advertises_limits_and_grace"]),
    (ServeAnyRange, &["restore_download_outside_the_segment_is_refused"]),
    (CorruptDownloads, &["persist_snapshot_round_trip_is_byte_identical"]),
    (DropLastDelta, &["persist_delta_chain_restores_in_order"]),
    (DuplicateSnapshotInPlan, &["persist_snapshot_replaces_the_chain"]),
    (RejectDeltaFromEmpty, &["persist_chain_from_empty_state_is_accepted"]),
    (
        LieAboutConflicts,
        &[
            "persist_gap_is_409",
            "persist_overlap_is_409",
            "idempotency_same_range_other_content_is_409",
            "fencing_unclaimed_generation_is_409",
        ],
    ),
    (AcceptInvalidSegments, &["persist_invalid_segment_is_422"]),
    (GenerationOptional, &["persist_missing_generation_is_400"]),
    (RetriesCommitAgain, &["idempotency_retry_is_already_committed"]),
    (TrustManifestHint, &["persist_manifest_hint_changes_no_answer"]),
    (
        IgnoreGenerations,
        &["fencing_stale_generation_is_409", "fencing_stale_data_is_kept_as_superseded"],
    ),
    (DropSuperseded, &["fencing_stale_data_is_kept_as_superseded"]),
    (FlushIsPersist, &["flush_closes_the_generation", "flush_empty_body_closes"]),
    (PreviousWriterAlwaysClosed, &["flush_previous_writer_closed_is_reported"]),
    (SharedReplicas, &["isolation_replicas_do_not_see_each_other"]),
    (AdvertiseSmallerLimit, &["limits_oversized_body_is_413"]),
    (AcceptIncompleteCommits, &["limits_commit_with_a_missing_part_is_400"]),
    (PlainTextErrors, &["errors_body_is_json_with_code_and_message"]),
    (HangOnClaims, &["restore_claim_increments_generation"]),
    (OverwriteObjects, &["fencing_concurrent_claims_get_distinct_generations"]),
    (TruncateLargeObjects, &["limits_large_segment_moves_in_parts"]),
    (LoseSomeWrites, &["concurrency_many_replicas_lose_nothing"]),
    (EagerRetention, &["retention_old_plan_survives_a_snapshot"]),
    (WideTimestampWindow, &["auth_timestamp_just_outside_the_window_is_401"]),
    (LooseSignatureCompare, &["auth_signature_is_compared_in_full"]),
    (RawQuerySigned, &["auth_query_is_canonicalised_not_taken_as_sent"]),
    (UnknownHeadersUnsigned, &["auth_unknown_wkp_headers_are_signed"]),
    (FirstSignatureWins, &["auth_second_signature_header_is_400"]),
    (CheckFirstCharacterOnly, &["ids_every_character_is_checked"]),
    (HeadServesRestore, &["endpoints_head_is_405_without_a_body"]),
    (EchoAnyRequestId, &["endpoints_malformed_request_id_is_not_echoed"]),
    (NoGeneratedRequestId, &["endpoints_request_id_is_generated"]),
    (IdentifiersBeforeAuth, &["errors_first_defect_decides_the_answer"]),
    (GenerationZeroIsUnclaimed, &["persist_generation_zero_is_400"]),
    (ConflictBySize, &["idempotency_same_size_other_content_is_409"]),
    (FenceBeforeRetry, &["interactions_retry_after_a_fence_is_already_committed"]),
    (EmptyFlushIgnoresGeneration, &["interactions_empty_flush_from_a_stale_generation_is_409"]),
    (RepeatedFlushIs409, &["interactions_empty_flush_again_is_closed"]),
    (FencedPartsRefused, &["interactions_parts_of_a_fenced_writer_are_kept"]),
    (CommitsOverwriteClaims, &["interactions_claims_racing_commits_lose_nothing"]),
    (InlineLimitOffByOne, &["limits_inline_limit_is_exact"]),
    (RangeFromPartStart, &["limits_ranges_inside_later_parts_are_exact"]),
    (CommitTrustsDescriptor, &["limits_parts_that_are_not_the_segment_are_422"]),
    (PlanTruncatesChain, &["restore_long_chains_and_histories_come_back_whole"]),
    (SequenceUnchecked, &["persist_every_segment_defect_is_422"]),
    (RefuseOtherContentTypes, &["persist_content_type_is_no_reason_to_refuse"]),
    (PartRetryConflicts, &["limits_part_uploaded_twice_is_already_stored"]),
    (RevealExpectedSignature, &["errors_never_reveal_secrets_or_signatures"]),
    (AdvertiseUnreachableSegment, &["restore_plan_advertises_limits_and_grace"]),
    (LenientQueryValues, &["endpoints_malformed_query_values_are_400"]),
    (FlushRetryDoesNotClose, &["interactions_flush_of_a_persisted_segment_closes"]),
    (NeedsContentLength, &["persist_body_in_small_chunks_is_the_same_segment"]),
    (LenientGenerationParse, &["persist_missing_generation_is_400"]),
    (EmptyFlushBodyUnread, &["flush_empty_with_bytes_after_all_is_401"]),
    (PartLimitFromZero, &["limits_part_past_max_segment_is_413"]),
    (PartConflictsIgnored, &["limits_a_part_with_other_bytes_conflicts_or_replaces"]),
    (CommitTrustsItsCount, &["limits_commit_bodies_that_cannot_be_are_refused"]),
];

// ---- broken stores ------------------------------------------------------------------------

#[derive(Debug)]
struct BrokenStore {
    inner: ObjectStoreBackend,
    breakage: Breakage,
    puts: AtomicUsize,
    /// Manifest writes of the racing claims seen so far, and the barrier the first two meet at.
    racing: AtomicUsize,
    collide: tokio::sync::Barrier,
}

impl Store for BrokenStore {
    async fn get(&self, key: &str) -> Result<Option<Bytes>, StoreError> {
        self.inner.get(key).await
    }

    async fn get_range(
        &self,
        key: &str,
        range: std::ops::Range<u64>,
    ) -> Result<ByteStream, StoreError> {
        self.inner.get_range(key, range).await
    }

    async fn put(&self, key: &str, body: Bytes, mode: PutMode) -> Result<(), StoreError> {
        match self.breakage {
            OverwriteObjects => {
                // The first two manifest writes of the racing claims wait for each other, so
                // both read the same head and write the same key: the collision happens every
                // run, not when the scheduler happens to interleave them.
                if key.contains("/fencing_concurrent_claims") && key.contains("/manifest/") {
                    let n = self.racing.fetch_add(1, Ordering::SeqCst);
                    if n < 2 {
                        self.collide.wait().await;
                    }
                }
                return self.inner.put(key, body, PutMode::Overwrite).await;
            }
            CommitsOverwriteClaims
                if key.contains("/interactions_claims_racing") && key.contains("/manifest/") =>
            {
                // Read, then write without the create-only condition: a claim and a commit that
                // read the same version both "succeed", and the later write erases the other.
                tokio::time::sleep(Duration::from_millis(25)).await;
                return self.inner.put(key, body, PutMode::Overwrite).await;
            }
            TruncateLargeObjects if body.len() > 32 << 10 => {
                return self.inner.put(key, body.slice(..body.len() - 1), mode).await;
            }
            LoseSomeWrites
                if key.contains("/segments/")
                    && self.puts.fetch_add(1, Ordering::SeqCst) % 5 == 4 =>
            {
                return Ok(());
            }
            _ => {}
        }
        self.inner.put(key, body.clone(), mode).await?;
        if self.breakage == EagerRetention && key.contains("/manifest/") {
            self.reclaim_now(key, &body).await;
        }
        Ok(())
    }

    async fn head(&self, key: &str) -> Result<Option<ObjectMeta>, StoreError> {
        self.inner.head(key).await
    }

    async fn list(&self, prefix: &str) -> Result<Vec<ObjectMeta>, StoreError> {
        self.inner.list(prefix).await
    }

    async fn delete(&self, key: &str) -> Result<(), StoreError> {
        self.inner.delete(key).await
    }
}

impl BrokenStore {
    /// Deletes every part the new manifest does not reference, grace period or not.
    async fn reclaim_now(&self, manifest_key: &str, body: &Bytes) {
        let Ok(manifest) = serde_json::from_slice::<Manifest>(body) else { return };
        let base = manifest_key.split("/manifest/").next().unwrap();
        let keep: BTreeSet<String> = manifest.chain.iter().map(|e| e.segment.id.to_hex()).collect();
        for meta in self.inner.list(&format!("{base}/segments/")).await.unwrap_or_default() {
            if !keep.iter().any(|id| meta.key.contains(id.as_str())) {
                let _ = self.inner.delete(&meta.key).await;
            }
        }
    }
}

// ---- broken routers -------------------------------------------------------------------------

struct Broken {
    function: Arc<Function<BrokenStore>>,
    breakage: Breakage,
}

fn signer() -> Signer {
    Signer::new(KeyId::new(testing::KEY_ID).unwrap(), testing::secret())
}

fn query_of(parts: &Parts) -> String {
    parts.uri.query().unwrap_or("").to_owned()
}

fn set_path_and_query(parts: &mut Parts, path: &str, query: &str) {
    let uri = if query.is_empty() { path.to_owned() } else { format!("{path}?{query}") };
    parts.uri = uri.parse().unwrap();
}

/// Signs the (rewritten) request afresh with the function's own key, so the function accepts it.
fn resign(parts: &mut Parts, body_sha256: &str) {
    parts.headers.remove(headers::SIGNATURE);
    let (path, query) = (parts.uri.path().to_owned(), query_of(parts));
    signer()
        .sign(&parts.method, &path, &query, &mut parts.headers, body_sha256, unix_now())
        .unwrap();
}

fn declared_hash(parts: &Parts, body: &Bytes) -> String {
    parts
        .headers
        .get(headers::CONTENT_SHA256)
        .and_then(|v| v.to_str().ok())
        .map_or_else(|| hex::encode(Sha256::digest(body)), str::to_owned)
}

fn header<'a>(parts: &'a Parts, name: &str) -> Option<&'a str> {
    parts.headers.get(name).and_then(|v| v.to_str().ok())
}

const EMPTY_SHA256: &str = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

/// The signature the test key gives this request with these headers.
fn expected_signature(parts: &Parts, query: &str, headers: http::HeaderMap) -> String {
    let secret = match header(parts, headers::KEY_ID) {
        Some(testing::SECOND_KEY_ID) => testing::second_secret(),
        _ => testing::secret(),
    };
    let canonical =
        signing::canonical_request(parts.method.as_str(), parts.uri.path(), query, &headers)
            .unwrap_or_default();
    signing::signature(&secret, &canonical)
}

/// Applies `f` to a JSON body; other bodies are left alone.
fn edit_json(body: &mut Bytes, f: impl FnOnce(&mut serde_json::Value)) {
    if let Ok(mut json) = serde_json::from_slice::<serde_json::Value>(body) {
        f(&mut json);
        *body = Bytes::from(json.to_string());
    }
}

fn json_response(status: u16, body: serde_json::Value) -> http::Response<Body> {
    http::Response::builder()
        .status(status)
        .header("content-type", "application/json")
        .header(headers::VERSION, "1.0")
        .body(Body::from(body.to_string()))
        .unwrap()
}

fn error_response(status: u16, code: &str) -> http::Response<Body> {
    json_response(
        status,
        serde_json::json!({"error": {"code": code, "message": "injected by a broken variant"}}),
    )
}

impl Broken {
    /// The replica's restore plan (a claim when `query` is `claim=true`), asked of the
    /// function itself.
    async fn plan_json(&self, parts: &Parts, query: &str) -> serde_json::Value {
        let segments: Vec<&str> = parts.uri.path().split('/').collect();
        let path = format!("/v1/restore/{}/{}/{}", segments[3], segments[4], segments[5]);
        let uri = if query.is_empty() { path.clone() } else { format!("{path}?{query}") };
        let mut request =
            http::Request::builder().method("GET").uri(uri).body(Full::new(Bytes::new())).unwrap();
        let hash = hex::encode(Sha256::digest(b""));
        signer()
            .sign(&http::Method::GET, &path, query, request.headers_mut(), &hash, unix_now())
            .unwrap();
        let response = self.function.handle(request).await;
        let body = response.into_body().collect().await.unwrap().to_bytes();
        serde_json::from_slice(&body).unwrap_or_default()
    }

    /// The generation the store's latest manifest names.
    async fn current_generation(&self, parts: &Parts) -> u64 {
        self.plan_json(parts, "").await["generation"].as_u64().unwrap_or(0)
    }

    fn is_stale_write(parts: &Parts, current: u64) -> bool {
        parts.method == http::Method::POST
            && header(parts, headers::GENERATION)
                .and_then(|g| g.parse::<u64>().ok())
                .is_some_and(|g| g < current)
    }

    /// A function that answers "already committed" when a segment with the same range and the
    /// same size is committed, instead of comparing ids.
    async fn same_range_and_size(
        &self,
        parts: &Parts,
        body: &Bytes,
    ) -> Option<http::Response<Body>> {
        let segment = SegmentHeader::decode(body.get(..HEADER_LEN)?.try_into().ok()?).ok()?;
        let plan = self.plan_json(parts, "").await;
        let twin = plan["chain"].as_array()?.iter().any(|e| {
            e["base_seq"] == segment.base_seq
                && e["first_seq"] == segment.first_seq
                && e["last_seq"] == segment.last_seq
                && e["size"] == body.len() as u64
        });
        twin.then(|| {
            json_response(
                200,
                serde_json::json!({"wkp_version": "1.0", "outcome": "already_committed"}),
            )
        })
    }

    /// Rewrites a download starting inside a stored part to start at that part's beginning.
    async fn range_from_part_start(&self, parts: &mut Parts, query: &str) {
        let Ok(RestoreQuery::Fetch { segment, offset, length }) = RestoreQuery::parse(query) else {
            return;
        };
        let Ok(path) = WkpPath::parse(parts.uri.path()) else { return };
        let layout = Layout::new(&self.function.config().prefix, &path.subtree);
        let listed = self.function.store().list(&layout.segment_parts(&segment)).await;
        for meta in listed.unwrap_or_default() {
            let name = meta.key.rsplit('/').next().unwrap_or_default();
            let Some((start, len)) = name.split_once('-') else { continue };
            let (Ok(start), Ok(len)) = (start.parse::<u64>(), len.parse::<u64>()) else { continue };
            if start < offset && offset < start + len {
                let query =
                    RestoreQuery::Fetch { segment, offset: start, length }.to_query_string();
                set_path_and_query(parts, &path.to_path(), &query);
                resign(parts, &hex::encode(Sha256::digest(b"")));
                return;
            }
        }
    }

    /// A function that takes `wkp-manifest-version` for the truth: it refuses a delta that does
    /// not continue the hinted version, however old that version is.
    async fn decide_on_the_hinted_manifest(
        &self,
        parts: &Parts,
        body: &Bytes,
    ) -> Option<http::Response<Body>> {
        let hint: u64 = header(parts, headers::MANIFEST_VERSION)?.parse().ok()?;
        let subtree = WkpPath::parse(parts.uri.path()).ok()?.subtree;
        let layout = Layout::new(&self.function.config().prefix, &subtree);
        let stored = self.function.store().get(&layout.manifest(hint)).await.ok()??;
        let hinted: Manifest = serde_json::from_slice(&stored).ok()?;
        let segment = SegmentHeader::decode(body.get(..HEADER_LEN)?.try_into().ok()?).ok()?;
        match segment.base_seq.cmp(&hinted.last_seq) {
            _ if segment.kind != SegmentKind::Delta => None,
            std::cmp::Ordering::Greater => Some(error_response(409, "chain_gap")),
            std::cmp::Ordering::Less => Some(error_response(409, "chain_overlap")),
            std::cmp::Ordering::Equal => None,
        }
    }

    /// Rewrites the request, or answers it without asking the function.
    async fn request(&self, parts: &mut Parts, body: &mut Bytes) -> Option<http::Response<Body>> {
        let path = parts.uri.path().to_owned();
        let query = query_of(parts);
        let is_write = parts.method == http::Method::POST;
        match self.breakage {
            AcceptUnsigned if !parts.headers.contains_key(headers::SIGNATURE) => {
                resign(parts, &declared_hash(parts, body))
            }
            AcceptBadSignatures if parts.headers.contains_key(headers::SIGNATURE) => {
                resign(parts, &declared_hash(parts, body))
            }
            AcceptStaleTimestamps => {
                let ts: u64 =
                    header(parts, headers::TIMESTAMP).and_then(|t| t.parse().ok()).unwrap_or(0);
                if ts.abs_diff(unix_now()) > 300 {
                    resign(parts, &declared_hash(parts, body));
                }
            }
            AcceptUnknownKeys
                if header(parts, headers::KEY_ID)
                    .is_some_and(|k| k != testing::KEY_ID && k != testing::SECOND_KEY_ID) =>
            {
                resign(parts, &declared_hash(parts, body));
            }
            IgnoreBodyHash => resign(parts, &hex::encode(Sha256::digest(&body[..]))),
            RejectSecondKey if header(parts, headers::KEY_ID) == Some(testing::SECOND_KEY_ID) => {
                return Some(error_response(401, "unknown_key"));
            }
            NormalizeIdentifiers if path.starts_with("/v1/") => {
                let mut segments: Vec<String> = path.split('/').map(str::to_owned).collect();
                for segment in segments.iter_mut().skip(3) {
                    let mut clean: String = segment
                        .to_lowercase()
                        .chars()
                        .map(|c| {
                            if c.is_ascii_alphanumeric() || c == '_' || c == '-' { c } else { '-' }
                        })
                        .take(63)
                        .collect();
                    if !clean.starts_with(|c: char| c.is_ascii_alphanumeric()) {
                        clean = format!("x{}", clean.chars().take(62).collect::<String>());
                    }
                    *segment = clean;
                }
                set_path_and_query(parts, &segments.join("/"), &query);
                resign(parts, &declared_hash(parts, body));
            }
            RejectLongIdentifiers if path.split('/').any(|s| s.len() > 40) => {
                return Some(error_response(400, "invalid_identifier"));
            }
            IgnoreUnknownQuery => {
                let known = ["claim", "segment", "offset", "length", "presign", "commit"];
                let kept: Vec<&str> = query
                    .split('&')
                    .filter(|p| known.contains(&p.split('=').next().unwrap_or("")))
                    .collect();
                set_path_and_query(parts, &path, &kept.join("&"));
                resign(parts, &declared_hash(parts, body));
            }
            AcceptAnyVersion => {
                set_path_and_query(parts, &path.replacen("/v2/", "/v1/", 1), &query);
                parts.headers.insert(headers::VERSION, HeaderValue::from_static("1.0"));
                resign(parts, &declared_hash(parts, body));
            }
            RejectNewerMinor
                if header(parts, headers::VERSION)
                    .is_some_and(|v| v.starts_with("1.") && v != "1.0") =>
            {
                return Some(error_response(400, "unsupported_version"));
            }
            ClaimsDoNotClaim if query.contains("claim=true") => {
                set_path_and_query(parts, &path, "");
                resign(parts, &declared_hash(parts, body));
            }
            RejectDeltaFromEmpty
                if is_write
                    && query.is_empty()
                    && body.len() > 40
                    && body[10] == 2
                    && body[16..24] == [0; 8] =>
            {
                return Some(error_response(409, "chain_gap"));
            }
            GenerationOptional if is_write && !parts.headers.contains_key(headers::GENERATION) => {
                let generation = self.current_generation(parts).await;
                parts.headers.insert(headers::GENERATION, HeaderValue::from(generation));
                resign(parts, &declared_hash(parts, body));
            }
            IgnoreGenerations if is_write && parts.headers.contains_key(headers::GENERATION) => {
                let generation = self.current_generation(parts).await;
                parts.headers.insert(headers::GENERATION, HeaderValue::from(generation));
                resign(parts, &declared_hash(parts, body));
            }
            FlushIsPersist if path.starts_with("/v1/flush/") => {
                set_path_and_query(parts, &path.replacen("/v1/flush/", "/v1/persist/", 1), &query);
                resign(parts, &declared_hash(parts, body));
            }
            SharedReplicas if path.starts_with("/v1/") && path.split('/').count() == 6 => {
                let mut segments: Vec<&str> = path.split('/').collect();
                segments[5] = "shared";
                set_path_and_query(parts, &segments.join("/"), &query);
                resign(parts, &declared_hash(parts, body));
            }
            TrustManifestHint if is_write && query.is_empty() => {
                return self.decide_on_the_hinted_manifest(parts, body).await;
            }
            HangOnClaims if query.contains("claim=true") => {
                tokio::time::sleep(Duration::from_secs(3600)).await;
            }
            WideTimestampWindow => {
                let ts: u64 =
                    header(parts, headers::TIMESTAMP).and_then(|t| t.parse().ok()).unwrap_or(0);
                if (301..=450).contains(&ts.abs_diff(unix_now())) {
                    resign(parts, &declared_hash(parts, body));
                }
            }
            LooseSignatureCompare => {
                let presented = header(parts, headers::SIGNATURE).unwrap_or_default().to_owned();
                let expected = expected_signature(parts, &query, parts.headers.clone());
                let loose = presented.to_lowercase() == expected
                    || (presented.len() >= 16 && expected.starts_with(&presented))
                    || presented.starts_with(&expected);
                if presented != expected && loose {
                    resign(parts, &declared_hash(parts, body));
                }
            }
            RawQuerySigned => {
                let pieces: Vec<&str> = query.split('&').collect();
                if !pieces.is_sorted() {
                    return Some(error_response(401, "signature_mismatch"));
                }
            }
            UnknownHeadersUnsigned => {
                let known = [
                    headers::VERSION,
                    headers::KEY_ID,
                    headers::TIMESTAMP,
                    headers::CONTENT_SHA256,
                    headers::GENERATION,
                    headers::MANIFEST_VERSION,
                    headers::REQUEST_ID,
                    headers::SIGNATURE,
                ];
                let unknown: Vec<http::HeaderName> = parts
                    .headers
                    .keys()
                    .filter(|n| n.as_str().starts_with("wkp-") && !known.contains(&n.as_str()))
                    .cloned()
                    .collect();
                if !unknown.is_empty() {
                    let mut kept = parts.headers.clone();
                    unknown.iter().for_each(|n| drop(kept.remove(n)));
                    let presented = header(parts, headers::SIGNATURE).unwrap_or_default();
                    if presented != expected_signature(parts, &query, kept) {
                        return Some(error_response(401, "signature_mismatch"));
                    }
                    resign(parts, &declared_hash(parts, body));
                }
            }
            FirstSignatureWins => {
                let first = parts.headers.get(headers::SIGNATURE).cloned();
                if let Some(first) = first {
                    parts.headers.insert(headers::SIGNATURE, first);
                }
            }
            CheckFirstCharacterOnly if path.starts_with("/v1/") => {
                let mut segments: Vec<String> = path.split('/').map(str::to_owned).collect();
                for segment in segments.iter_mut().skip(3) {
                    if segment.starts_with(|c: char| c.is_ascii_lowercase() || c.is_ascii_digit()) {
                        *segment = segment
                            .to_lowercase()
                            .chars()
                            .map(|c| {
                                if c.is_ascii_alphanumeric() || c == '_' || c == '-' {
                                    c
                                } else {
                                    '-'
                                }
                            })
                            .collect();
                    }
                }
                set_path_and_query(parts, &segments.join("/"), &query);
                resign(parts, &declared_hash(parts, body));
            }
            HeadServesRestore if parts.method == http::Method::HEAD => {
                parts.method = http::Method::GET;
                resign(parts, &declared_hash(parts, body));
            }
            IdentifiersBeforeAuth if path.starts_with("/v1/") => {
                let invalid = path
                    .split('/')
                    .skip(3)
                    .any(|segment| wkp1_protocol::Identifier::new(segment).is_err());
                if path.split('/').count() == 6 && invalid {
                    return Some(error_response(400, "invalid_identifier"));
                }
            }
            GenerationZeroIsUnclaimed
                if is_write && header(parts, headers::GENERATION) == Some("0") =>
            {
                if self.current_generation(parts).await == 0 {
                    self.plan_json(parts, "claim=true").await;
                }
                parts.headers.insert(headers::GENERATION, HeaderValue::from(1u64));
                resign(parts, &declared_hash(parts, body));
            }
            ConflictBySize if is_write && query.is_empty() && path.starts_with("/v1/persist/") => {
                return self.same_range_and_size(parts, body).await;
            }
            FenceBeforeRetry if is_write => {
                let current = self.current_generation(parts).await;
                if Self::is_stale_write(parts, current) {
                    return Some(error_response(409, "generation_fenced"));
                }
            }
            EmptyFlushIgnoresGeneration
                if path.starts_with("/v1/flush/") && query.is_empty() && body.is_empty() =>
            {
                let generation = self.current_generation(parts).await;
                parts.headers.insert(headers::GENERATION, HeaderValue::from(generation));
                resign(parts, &declared_hash(parts, body));
            }
            RepeatedFlushIs409
                if path.starts_with("/v1/flush/") && query.is_empty() && body.is_empty() =>
            {
                let closed = self.plan_json(parts, "").await["previous_writer_closed"] == true;
                return closed.then(|| error_response(409, "generation_closed"));
            }
            FencedPartsRefused
                if is_write && query.contains("offset=") && !query.contains("presign") =>
            {
                let current = self.current_generation(parts).await;
                if Self::is_stale_write(parts, current) {
                    return Some(error_response(409, "generation_fenced"));
                }
            }
            InlineLimitOffByOne if is_write && query.is_empty() => {
                let limit = self.function.config().limits.max_inline_bytes;
                if body.len() as u64 == limit {
                    return Some(error_response(413, "payload_too_large"));
                }
            }
            SequenceUnchecked if is_write && query.is_empty() && body.len() >= 72 => {
                let header: Option<&[u8; HEADER_LEN]> = body[..HEADER_LEN].try_into().ok();
                let reason =
                    header.and_then(|h| SegmentHeader::decode(h).err()).map(|e| e.reason());
                if reason == Some("bad_sequence") {
                    let fake = serde_json::json!({"wkp_version": "1.0", "outcome": "committed"});
                    return Some(json_response(200, fake));
                }
            }
            RefuseOtherContentTypes
                if is_write
                    && header(parts, "content-type").is_some_and(|t| {
                        t != headers::SEGMENT_MEDIA_TYPE && t != headers::JSON_MEDIA_TYPE
                    }) =>
            {
                return Some(error_response(400, "invalid_request"));
            }
            LenientGenerationParse if is_write => {
                let raw = header(parts, headers::GENERATION).unwrap_or_default();
                let lenient =
                    raw.trim_start_matches('+').trim_end_matches(".0").trim_start_matches('0');
                if lenient != raw && lenient.parse::<u64>().is_ok() {
                    parts
                        .headers
                        .insert(headers::GENERATION, HeaderValue::from_str(lenient).unwrap());
                    resign(parts, &declared_hash(parts, body));
                }
            }
            EmptyFlushBodyUnread
                if path.starts_with("/v1/flush/")
                    && query.is_empty()
                    && header(parts, headers::CONTENT_SHA256) == Some(EMPTY_SHA256) =>
            {
                // Trusts the declared hash: an "empty" flush is never read.
                *body = Bytes::new();
            }
            PartLimitFromZero
                if is_write && query.contains("offset=") && !query.contains("presign") =>
            {
                // Bounds each part by max_segment_bytes alone, not by where it ends.
                let Ok(WriteQuery::Part { segment, offset }) = WriteQuery::parse(&query) else {
                    return None;
                };
                let max = self.function.config().limits.max_segment_bytes;
                if offset < max && offset + body.len() as u64 > max {
                    let query = WriteQuery::Part { segment, offset: 0 }.to_query_string();
                    set_path_and_query(parts, &path, &query);
                    resign(parts, &declared_hash(parts, body));
                }
            }
            CommitTrustsItsCount if is_write && query.contains("commit=true") => {
                // Counts nothing: any list of lengths becomes one part of the declared size.
                let mut json: serde_json::Value = serde_json::from_slice(body).ok()?;
                let size = json["segment"]["size"].clone();
                if json["parts"].as_array().is_some_and(|p| p.len() > 2) {
                    json["parts"] = serde_json::json!([size]);
                    *body = Bytes::from(json.to_string());
                    let hash = hex::encode(Sha256::digest(&body[..]));
                    parts
                        .headers
                        .insert(headers::CONTENT_SHA256, HeaderValue::from_str(&hash).unwrap());
                    resign(parts, &hash);
                }
            }
            NeedsContentLength
                if is_write
                    && !body.is_empty()
                    && !parts.headers.contains_key("content-length") =>
            {
                // Sizes its buffer from content-length, so a streamed body reads as empty.
                return Some(error_response(422, "invalid_segment"));
            }
            FlushRetryDoesNotClose
                if path.starts_with("/v1/flush/") && query.is_empty() && !body.is_empty() =>
            {
                // A retry of a committed segment answered as persist would: nothing closes.
                let plan = self.plan_json(parts, "").await;
                let id = hex::encode(Sha256::digest(&body[..]));
                let committed =
                    plan["chain"].as_array().is_some_and(|c| c.iter().any(|e| e["id"] == id));
                if committed {
                    set_path_and_query(parts, &path.replacen("/v1/flush/", "/v1/persist/", 1), "");
                    resign(parts, &declared_hash(parts, body));
                }
            }
            LenientQueryValues if !query.is_empty() => {
                // Decodes, lower-cases, reads "yes" as true and lets a repeated name win.
                let mut seen = std::collections::BTreeMap::new();
                for piece in query.split('&') {
                    let (name, value) = piece.split_once('=').unwrap_or((piece, ""));
                    let value = value.replace("%30", "0").to_lowercase().replace("yes", "true");
                    seen.insert(name.to_lowercase(), value);
                }
                let lenient: Vec<String> = seen.iter().map(|(n, v)| format!("{n}={v}")).collect();
                set_path_and_query(parts, &path, &lenient.join("&"));
                resign(parts, &declared_hash(parts, body));
            }
            RangeFromPartStart if !is_write && query.contains("segment=") => {
                self.range_from_part_start(parts, &query).await;
            }
            _ => {}
        }
        None
    }

    /// Rewrites the function's answer.
    fn answer(
        &self,
        parts: &Parts,
        status: &mut StatusCode,
        headers_out: &mut http::HeaderMap,
        body: &mut Bytes,
    ) {
        let query = query_of(parts);
        let is_plan = parts.method == http::Method::GET && !query.contains("segment=");
        let is_fetch = parts.method == http::Method::GET && query.contains("segment=");
        let fake_commit = serde_json::json!({"wkp_version": "1.0", "outcome": "committed"});
        match self.breakage {
            NoResponseHeaders => {
                headers_out.remove(headers::VERSION);
                headers_out.remove(headers::REQUEST_ID);
            }
            NotFoundAs400 if *status == StatusCode::NOT_FOUND => *status = StatusCode::BAD_REQUEST,
            MethodNotAllowedAs404 if *status == StatusCode::METHOD_NOT_ALLOWED => {
                *status = StatusCode::NOT_FOUND;
                headers_out.remove("allow");
            }
            EmptySubtreeIs404 if is_plan && status.is_success() => {
                let empty = serde_json::from_slice::<serde_json::Value>(body)
                    .is_ok_and(|p| p["manifest_version"] == 0);
                if empty {
                    *status = StatusCode::NOT_FOUND;
                    *body = Bytes::from_static(
                        br#"{"error":{"code":"not_found","message":"no state"}}"#,
                    );
                }
            }
            ShortGrace if is_plan => edit_json(body, |p| {
                p["retention"]["grace_seconds"] = 60.into();
                p["valid_until"] = (unix_now() + 60).into();
            }),
            ServeAnyRange if is_fetch && !status.is_success() => {
                *status = StatusCode::OK;
                *body = Bytes::new();
            }
            CorruptDownloads if is_fetch && status.is_success() && !body.is_empty() => {
                let mut bytes = body.to_vec();
                bytes[0] ^= 0xff;
                *body = Bytes::from(bytes);
            }
            DropLastDelta if is_plan => edit_json(body, |p| {
                let Some(chain) = p["chain"].as_array_mut() else { return };
                if chain.len() >= 2 {
                    chain.pop();
                    let last = chain.last().unwrap()["last_seq"].clone();
                    p["last_seq"] = last;
                }
            }),
            DuplicateSnapshotInPlan if is_plan => edit_json(body, |p| {
                let Some(chain) = p["chain"].as_array_mut() else { return };
                if chain.len() == 1 {
                    let twin = chain[0].clone();
                    chain.insert(0, twin);
                }
            }),
            LieAboutConflicts if *status == StatusCode::CONFLICT => {
                *status = StatusCode::OK;
                *body = Bytes::from(fake_commit.to_string());
            }
            AcceptInvalidSegments if *status == StatusCode::UNPROCESSABLE_ENTITY => {
                *status = StatusCode::OK;
                *body = Bytes::from(fake_commit.to_string());
            }
            RetriesCommitAgain => edit_json(body, |p| {
                if p["outcome"] == "already_committed" {
                    p["outcome"] = "committed".into();
                    p["manifest_version"] =
                        (p["manifest_version"].as_u64().unwrap_or(0) + 1).into();
                }
            }),
            DropSuperseded if is_plan => {
                edit_json(body, |p| p["superseded"] = serde_json::json!([]))
            }
            PreviousWriterAlwaysClosed if is_plan => {
                edit_json(body, |p| p["previous_writer_closed"] = true.into())
            }
            AdvertiseSmallerLimit => edit_json(body, |p| {
                if let Some(limit) = p["limits"]["max_inline_bytes"].as_u64() {
                    p["limits"]["max_inline_bytes"] = (limit / 4).into();
                }
            }),
            AcceptIncompleteCommits
                if query.contains("commit=true") && *status == StatusCode::BAD_REQUEST =>
            {
                *status = StatusCode::OK;
                *body = Bytes::from(fake_commit.to_string());
            }
            PartRetryConflicts => {
                let stored = serde_json::from_slice::<serde_json::Value>(body)
                    .is_ok_and(|a| a["already_stored"] == true);
                if stored {
                    *status = StatusCode::CONFLICT;
                    *body = Bytes::from_static(
                        br#"{"error":{"code":"segment_conflict","message":"part exists"}}"#,
                    );
                }
            }
            RevealExpectedSignature if *status == StatusCode::UNAUTHORIZED => {
                let expected = expected_signature(parts, &query, parts.headers.clone());
                edit_json(body, |e| {
                    if e["error"]["code"] == "signature_mismatch" {
                        e["error"]["message"] = format!("expected signature {expected}").into();
                    }
                });
            }
            AdvertiseUnreachableSegment => edit_json(body, |p| {
                let limits = &mut p["limits"];
                if let (Some(parts), Some(inline)) =
                    (limits["max_parts"].as_u64(), limits["max_inline_bytes"].as_u64())
                {
                    limits["max_segment_bytes"] = (parts * inline * 2).into();
                }
            }),
            PartConflictsIgnored
                if query.contains("offset=") && *status == StatusCode::CONFLICT =>
            {
                *status = StatusCode::OK;
                *body = Bytes::from_static(br#"{"wkp_version":"1.0","already_stored":true}"#);
            }
            EchoAnyRequestId => {
                if let Some(id) = parts.headers.get(headers::REQUEST_ID) {
                    headers_out.insert(headers::REQUEST_ID, id.clone());
                }
            }
            NoGeneratedRequestId if !parts.headers.contains_key(headers::REQUEST_ID) => {
                headers_out.remove(headers::REQUEST_ID);
            }
            CommitTrustsDescriptor
                if query.contains("commit=true") && *status == StatusCode::UNPROCESSABLE_ENTITY =>
            {
                *status = StatusCode::OK;
                *body = Bytes::from(fake_commit.to_string());
            }
            PlanTruncatesChain if is_plan => edit_json(body, |p| {
                let Some(chain) = p["chain"].as_array_mut() else { return };
                if chain.len() > 64 {
                    chain.truncate(64);
                    let last = chain[63]["last_seq"].clone();
                    p["last_seq"] = last;
                }
            }),
            PlainTextErrors if status.as_u16() >= 400 => {
                *body = Bytes::from_static(b"something went wrong\n");
                headers_out.insert("content-type", HeaderValue::from_static("text/plain"));
            }
            _ => {}
        }
    }
}

async fn serve_broken(
    State(broken): State<Arc<Broken>>,
    request: axum::extract::Request,
) -> http::Response<Body> {
    let (mut parts, body) = request.into_parts();
    let mut body = body.collect().await.unwrap().to_bytes();
    if let Some(answer) = broken.request(&mut parts, &mut body).await {
        return answer;
    }
    let response =
        broken.function.handle(http::Request::from_parts(parts.clone(), Full::new(body))).await;
    let (mut out, answer_body) = response.into_parts();
    let mut answer_body = answer_body.collect().await.unwrap().to_bytes();
    broken.answer(&parts, &mut out.status, &mut out.headers, &mut answer_body);
    out.headers.insert("content-length", HeaderValue::from(answer_body.len()));
    http::Response::from_parts(out, Body::from(answer_body))
}

async fn broken_server(breakage: Breakage) -> Server {
    Server::start_custom(
        Backend::memory().unwrap(),
        move |c: &mut FunctionConfig| {
            common::small_limits(c);
            // Overwriting stores show as lost claims only when updates race, as they do across
            // processes; within one the function would serialize them.
            c.serialize_updates = !matches!(breakage, OverwriteObjects | CommitsOverwriteClaims);
        },
        |inner| BrokenStore {
            inner,
            breakage,
            puts: AtomicUsize::new(0),
            racing: AtomicUsize::new(0),
            collide: tokio::sync::Barrier::new(2),
        },
        move |function| {
            Router::new().fallback(serve_broken).with_state(Arc::new(Broken { function, breakage }))
        },
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_broken_variant_fails_its_named_must_checks() {
    let mut missed = Vec::new();
    for (breakage, expected) in VARIANTS {
        let server = broken_server(*breakage).await;
        let mut target = common::target(&server);
        let mut checks = checks::all();
        if *breakage == HangOnClaims {
            // A hanging function must cost a timeout, not a hung kit.
            target.request_timeout = Duration::from_secs(2);
            checks = select(checks, &["restore".into()]).unwrap();
        }
        if *breakage as usize >= WideTimestampWindow as usize {
            // The subtle variants pass every other check, by design: run only theirs.
            let ids: Vec<String> = expected.iter().map(|id| id.to_string()).collect();
            checks = select(checks, &ids).unwrap();
        }
        let options = RunOptions {
            concurrency: 8,
            check_timeout: Duration::from_secs(60),
            ..RunOptions::default()
        };
        let report = tokio::time::timeout(Duration::from_secs(120), run(target, checks, &options))
            .await
            .unwrap_or_else(|_| panic!("the kit hung on {breakage:?}"));
        for id in *expected {
            let result = report
                .results
                .iter()
                .find(|r| r.id == *id)
                .unwrap_or_else(|| panic!("{id} did not run"));
            if result.outcome != Outcome::Fail {
                missed.push(format!("{breakage:?}: {id} was {:?}", result.outcome));
            }
        }
        let breaks_a_must =
            report.results.iter().any(|r| expected.contains(&r.id) && r.level == Level::Must);
        // Only a failed MUST makes a function non-conformant; a failed SHOULD is reported.
        assert_eq!(!report.conformant(), breaks_a_must, "{breakage:?}: conformance verdict");
    }
    assert!(missed.is_empty(), "broken variants not caught:\n{}", missed.join("\n"));
}

#[test]
fn every_check_is_named_by_some_broken_variant() {
    let named: BTreeSet<&str> = VARIANTS.iter().flat_map(|(_, ids)| ids.iter().copied()).collect();
    let unproven: Vec<&str> =
        checks::all().iter().map(|c| c.id).filter(|id| !named.contains(id)).collect();
    assert!(unproven.is_empty(), "checks no broken variant proves able to fail: {unproven:?}");
    for id in &named {
        assert!(checks::all().iter().any(|c| c.id == *id), "variant names unknown check {id}");
    }
}
