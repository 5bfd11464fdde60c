//! # wkp1-aws-s3
//!
//! The function core's [`Store`] over Amazon S3, with `aws-sdk-s3`.
//!
//! Create-only writes are `If-None-Match: *` and manifest compare-and-swap is `If-Match`, both
//! enforced by S3 itself (strongly consistent since 2020, conditional writes since 2024), so
//! any number of function instances share one bucket safely. Presigned URLs carry the same
//! condition in their signature (`LARGE-4`), which `object_store`'s presigner cannot do.
//!
//! The AWS Lambda function stores through it; any other function running on AWS may too.
//! [`compatible_client`] reaches an S3-compatible server (MinIO, moto, s3s) with static keys.

use std::ops::Range;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use aws_sdk_s3::Client;
use aws_sdk_s3::error::{DisplayErrorContext, SdkError};
use aws_sdk_s3::presigning::{PresignedRequest as SdkPresigned, PresigningConfig};
use aws_sdk_s3::primitives::ByteStream as SdkByteStream;
use bytes::Bytes;
use wkp1_function::store::{ByteStream, Capabilities};
use wkp1_function::{ObjectMeta, PutMode, Store, StoreError};
use wkp1_protocol::manifest::PresignedRequest;

/// One bucket, through an S3 client.
#[derive(Debug, Clone)]
pub struct S3Store {
    client: Client,
    bucket: String,
}

impl S3Store {
    pub fn new(client: Client, bucket: impl Into<String>) -> Self {
        Self { client, bucket: bucket.into() }
    }

    pub fn bucket(&self) -> &str {
        &self.bucket
    }
}

/// A client for an S3-compatible server at `endpoint` with static keys: path-style addressing,
/// and checksums only where the S3 API requires them (most such servers predate the SDK's
/// default CRC32 checksums).
pub fn compatible_client(endpoint: &str, access_key_id: &str, secret_access_key: &str) -> Client {
    use aws_sdk_s3::config::{
        BehaviorVersion, Builder, Credentials, Region, RequestChecksumCalculation,
        ResponseChecksumValidation,
    };
    let config = Builder::new()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new("us-east-1"))
        .endpoint_url(endpoint)
        .credentials_provider(Credentials::new(
            access_key_id,
            secret_access_key,
            None,
            None,
            "static",
        ))
        .force_path_style(true)
        .request_checksum_calculation(RequestChecksumCalculation::WhenRequired)
        .response_checksum_validation(ResponseChecksumValidation::WhenRequired)
        .build();
    Client::from_conf(config)
}

/// Maps an SDK failure to a store failure by kind. Timeouts and connection failures leave a
/// write's outcome unknown, which the core resolves (`IDEM-4`).
fn failure<E, R>(doing: &str, key: &str, err: SdkError<E, R>) -> StoreError
where
    E: std::error::Error + Send + Sync + 'static,
    R: std::fmt::Debug,
{
    let message = format!("{doing} {key}: {}", DisplayErrorContext(&err));
    match &err {
        SdkError::TimeoutError(_) => StoreError::Timeout(message),
        _ => StoreError::Unavailable(message),
    }
}

/// The HTTP status S3 answered with, when it answered.
fn status<E>(err: &SdkError<E, aws_sdk_s3::config::http::HttpResponse>) -> Option<u16> {
    err.raw_response().map(|r| r.status().as_u16())
}

fn unix_seconds(time: Option<&aws_sdk_s3::primitives::DateTime>) -> u64 {
    time.and_then(|t| u64::try_from(t.secs()).ok()).unwrap_or(0)
}

fn presigned(request: &SdkPresigned, expires_in_secs: u64) -> PresignedRequest {
    let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default().as_secs();
    PresignedRequest {
        method: request.method().to_owned(),
        url: request.uri().to_owned(),
        headers: request
            .headers()
            .map(|(name, value)| (name.to_ascii_lowercase(), value.to_owned()))
            .collect(),
        expires_at: now + expires_in_secs,
    }
}

fn presigning(expires_in_secs: u64) -> Result<PresigningConfig, StoreError> {
    PresigningConfig::expires_in(Duration::from_secs(expires_in_secs))
        .map_err(|e| StoreError::Unsupported(format!("presign for {expires_in_secs} s: {e}")))
}

/// An SDK body as the core's byte stream.
fn byte_stream(body: SdkByteStream, key: String) -> ByteStream {
    Box::pin(futures::stream::unfold((body, key), |(mut body, key)| async move {
        let next = body.next().await?;
        let item = next.map_err(|e| StoreError::Unavailable(format!("read {key}: {e}")));
        Some((item, (body, key)))
    }))
}

impl Store for S3Store {
    async fn get(&self, key: &str) -> Result<Option<Bytes>, StoreError> {
        let output = match self.client.get_object().bucket(&self.bucket).key(key).send().await {
            Ok(output) => output,
            Err(err) if err.as_service_error().is_some_and(|e| e.is_no_such_key()) => {
                return Ok(None);
            }
            Err(err) => return Err(failure("get", key, err)),
        };
        let bytes = output
            .body
            .collect()
            .await
            .map_err(|e| StoreError::Unavailable(format!("read {key}: {e}")))?;
        Ok(Some(bytes.into_bytes()))
    }

    async fn get_range(&self, key: &str, range: Range<u64>) -> Result<ByteStream, StoreError> {
        if range.is_empty() {
            return Ok(Box::pin(futures::stream::empty()));
        }
        let output = self
            .client
            .get_object()
            .bucket(&self.bucket)
            .key(key)
            .range(format!("bytes={}-{}", range.start, range.end - 1))
            .send()
            .await
            .map_err(|err| match err.as_service_error() {
                Some(e) if e.is_no_such_key() => StoreError::NotFound(key.to_owned()),
                _ => failure("get range of", key, err),
            })?;
        Ok(byte_stream(output.body, key.to_owned()))
    }

    async fn put(&self, key: &str, body: Bytes, mode: PutMode) -> Result<(), StoreError> {
        let request = self
            .client
            .put_object()
            .bucket(&self.bucket)
            .key(key)
            .content_length(body.len() as i64)
            .body(SdkByteStream::from(body));
        let request = match &mode {
            PutMode::Overwrite => request,
            PutMode::Create => request.if_none_match("*"),
            PutMode::Update(version) => request.if_match(version),
        };
        match request.send().await {
            Ok(_) => Ok(()),
            // 412: the condition failed. 409: a concurrent conditional write of the same key
            // won the race, which for a create is the same answer.
            Err(err) if matches!(status(&err), Some(412 | 409)) => match mode {
                PutMode::Create => Err(StoreError::AlreadyExists(key.to_owned())),
                _ => Err(StoreError::PreconditionFailed(key.to_owned())),
            },
            Err(err) => Err(failure("put", key, err)),
        }
    }

    async fn head(&self, key: &str) -> Result<Option<ObjectMeta>, StoreError> {
        match self.client.head_object().bucket(&self.bucket).key(key).send().await {
            Ok(output) => Ok(Some(ObjectMeta {
                key: key.to_owned(),
                size: output.content_length().and_then(|n| u64::try_from(n).ok()).unwrap_or(0),
                last_modified: unix_seconds(output.last_modified()),
                version: output.e_tag().map(str::to_owned),
            })),
            Err(err) if status(&err) == Some(404) => Ok(None),
            Err(err) => Err(failure("head", key, err)),
        }
    }

    async fn list(&self, prefix: &str) -> Result<Vec<ObjectMeta>, StoreError> {
        let mut pages = self
            .client
            .list_objects_v2()
            .bucket(&self.bucket)
            .prefix(prefix)
            .into_paginator()
            .send();
        let mut objects = Vec::new();
        while let Some(page) = pages.next().await {
            let page = page.map_err(|err| failure("list", prefix, err))?;
            for object in page.contents() {
                let Some(key) = object.key() else { continue };
                objects.push(ObjectMeta {
                    key: key.to_owned(),
                    size: object.size().and_then(|n| u64::try_from(n).ok()).unwrap_or(0),
                    last_modified: unix_seconds(object.last_modified()),
                    version: object.e_tag().map(str::to_owned),
                });
            }
        }
        Ok(objects)
    }

    async fn delete(&self, key: &str) -> Result<(), StoreError> {
        self.client
            .delete_object()
            .bucket(&self.bucket)
            .key(key)
            .send()
            .await
            .map(|_| ())
            .map_err(|err| failure("delete", key, err))
    }

    fn capabilities(&self) -> Capabilities {
        Capabilities { update_cas: true, presign: true }
    }

    async fn presign_put(
        &self,
        key: &str,
        expires_in_secs: u64,
    ) -> Result<Option<PresignedRequest>, StoreError> {
        let request = self
            .client
            .put_object()
            .bucket(&self.bucket)
            .key(key)
            .if_none_match("*")
            .presigned(presigning(expires_in_secs)?)
            .await
            .map_err(|err| failure("presign put", key, err))?;
        Ok(Some(presigned(&request, expires_in_secs)))
    }

    async fn presign_get(
        &self,
        key: &str,
        expires_in_secs: u64,
    ) -> Result<Option<PresignedRequest>, StoreError> {
        let request = self
            .client
            .get_object()
            .bucket(&self.bucket)
            .key(key)
            .presigned(presigning(expires_in_secs)?)
            .await
            .map_err(|err| failure("presign get", key, err))?;
        Ok(Some(presigned(&request, expires_in_secs)))
    }
}
