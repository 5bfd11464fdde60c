//! What a deployment configures: prefix, limits, retention, clock.

pub use wkp1_protocol::Clock;
use wkp1_protocol::manifest::Limits;

/// The shortest retention grace SPEC.md allows (`RET-2`).
pub const MIN_GRACE_SECONDS: u64 = 900;

/// Function configuration. `Default` suits a self-hosted server on a fast network.
#[derive(Debug, Clone)]
pub struct FunctionConfig {
    /// Store prefix every subtree lives under (`ADDR-1`); may be empty.
    pub prefix: String,
    /// URL path before `/v1/` at which the deployment is mounted, e.g. `/api`; usually empty.
    pub path_prefix: String,
    pub limits: Limits,
    /// Size of the objects an inline body is cut into; bounds memory per request.
    pub part_size: u64,
    /// Retention grace (`RET-1`, `RET-2`).
    pub grace_seconds: u64,
    /// Manifest versions kept beyond the grace rule, for operators' point-in-time history.
    pub keep_manifests: u64,
    /// Retention runs after a snapshot commit and after every this many manifest versions.
    pub retention_every: u64,
    /// How long presigned URLs stay valid (`LARGE-4`: at most an hour).
    pub presign_expiry_seconds: u64,
    /// Serialize manifest updates of one subtree within this process. It costs nothing (one
    /// subtree has one writer) and, for a single-process deployment, keeps fencing intact even
    /// on a store whose create-only writes are not atomic under concurrency.
    pub serialize_updates: bool,
    pub clock: Clock,
}

impl Default for FunctionConfig {
    fn default() -> Self {
        Self {
            prefix: String::new(),
            path_prefix: String::new(),
            limits: Limits {
                max_inline_bytes: 2 << 30,
                max_response_bytes: 256 << 20,
                max_segment_bytes: 64 << 30,
                max_parts: 10_000,
                presign_upload: false,
                presign_download: false,
            },
            part_size: 8 << 20,
            grace_seconds: 3600,
            keep_manifests: 8,
            retention_every: 16,
            presign_expiry_seconds: 900,
            serialize_updates: true,
            clock: Clock::system(),
        }
    }
}

/// Why a function cannot start with the configuration it was given. Each message names the
/// setting to change.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    #[error("grace_seconds must be at least {MIN_GRACE_SECONDS} (RET-2)")]
    GraceTooShort,
    #[error("max_inline_bytes, max_response_bytes and part_size must be positive")]
    ZeroLimit,
    #[error("max_segment_bytes must be at least max_inline_bytes")]
    SegmentBelowInline,
    #[error(
        "max_segment_bytes ({segment}) is more than max_parts x max_inline_bytes ({reachable}) \
         without presigned uploads: lower it, raise max_parts, or enable presign_upload (LARGE-8)"
    )]
    SegmentUnreachable { segment: u64, reachable: u64 },
    #[error("presign_expiry_seconds must be 1 to 3600 (LARGE-4)")]
    PresignExpiry,
    #[error("path_prefix must start with '/' and not end with one, e.g. /api")]
    PathPrefix,
    #[error("presign_upload and presign_download need a store that presigns")]
    PresignUnsupported,
    #[error("the key ring is empty: no request could ever authenticate")]
    NoKeys,
    #[error("read keys file {path}: {source}")]
    KeysFile { path: std::path::PathBuf, source: std::io::Error },
    #[error("parse keys ({origin}): {source}")]
    Keys { origin: &'static str, source: wkp1_protocol::signing::KeyError },
}

impl FunctionConfig {
    /// Lowers `max_segment_bytes` to what parts through the function can carry when uploads are
    /// not presigned (`LARGE-8`): for a limit that was not chosen explicitly, such as the default
    /// after a smaller inline limit was set.
    pub fn fit_segment_limit(&mut self) {
        let l = &mut self.limits;
        if !l.presign_upload {
            l.max_segment_bytes =
                l.max_segment_bytes.min(l.max_parts.saturating_mul(l.max_inline_bytes));
        }
    }

    /// Checks the values against SPEC.md's bounds, naming the offending setting.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let l = &self.limits;
        if self.grace_seconds < MIN_GRACE_SECONDS {
            return Err(ConfigError::GraceTooShort);
        }
        if l.max_inline_bytes == 0 || l.max_response_bytes == 0 || self.part_size == 0 {
            return Err(ConfigError::ZeroLimit);
        }
        if l.max_segment_bytes < l.max_inline_bytes {
            return Err(ConfigError::SegmentBelowInline);
        }
        // Parts through the function are at most `max_inline_bytes` each (`LARGE-8`).
        let reachable = l.max_parts.saturating_mul(l.max_inline_bytes);
        if !l.presign_upload && l.max_segment_bytes > reachable {
            return Err(ConfigError::SegmentUnreachable {
                segment: l.max_segment_bytes,
                reachable,
            });
        }
        if self.presign_expiry_seconds == 0 || self.presign_expiry_seconds > 3600 {
            return Err(ConfigError::PresignExpiry);
        }
        if !self.path_prefix.is_empty()
            && (!self.path_prefix.starts_with('/') || self.path_prefix.ends_with('/'))
        {
            return Err(ConfigError::PathPrefix);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `LARGE-8`: a function cannot start advertising a segment size its parts cannot reach.
    #[test]
    fn max_segment_bytes_must_be_reachable_through_parts() {
        let mut config = FunctionConfig::default();
        config.limits.max_inline_bytes = 4_500_000;
        config.limits.max_parts = 10_000;
        config.limits.max_segment_bytes = 53_687_091_200;
        let err = config.validate().unwrap_err();
        assert!(matches!(err, ConfigError::SegmentUnreachable { reachable: 45_000_000_000, .. }));
        assert!(err.to_string().contains("LARGE-8"), "{err}");
        config.limits.max_segment_bytes = 45_000_000_000;
        config.validate().unwrap();
        // Presigned parts do not pass through the function, so they are not bound by it.
        config.limits.max_segment_bytes = 53_687_091_200;
        config.limits.presign_upload = true;
        config.validate().unwrap();
    }
}
