//! A segment on disk, verified and described before it is uploaded.

use std::path::{Path, PathBuf};

use tokio::io::AsyncReadExt;
use wkp1_protocol::manifest::SegmentDescriptor;
use wkp1_protocol::segment::SegmentVerifier;

use crate::error::ClientError;

/// A complete, verified segment file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SegmentFile {
    pub path: PathBuf,
    pub descriptor: SegmentDescriptor,
}

impl SegmentFile {
    /// Reads the file once, checking header and trailer and computing its id.
    pub async fn open(path: impl AsRef<Path>) -> Result<Self, ClientError> {
        let path = path.as_ref().to_path_buf();
        let mut file = tokio::fs::File::open(&path)
            .await
            .map_err(|e| ClientError::io(format!("open segment {}", path.display()), e))?;
        let mut verifier = SegmentVerifier::new();
        let mut buf = vec![0u8; 1 << 20];
        loop {
            let n = file
                .read(&mut buf)
                .await
                .map_err(|e| ClientError::io(format!("read segment {}", path.display()), e))?;
            if n == 0 {
                break;
            }
            verifier.update(&buf[..n]).map_err(|e| {
                ClientError::Config(format!("{} is not a valid segment: {e}", path.display()))
            })?;
        }
        let verified = verifier.finish().map_err(|e| {
            ClientError::Config(format!("{} is not a valid segment: {e}", path.display()))
        })?;
        Ok(Self { path, descriptor: SegmentDescriptor::from(&verified) })
    }
}
