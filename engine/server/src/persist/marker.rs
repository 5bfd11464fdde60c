//! `wkp1/state.json` on the volume: how far this volume's database is known to be persisted, so
//! a restart on the same volume continues the chain with a delta instead of a snapshot.

use std::io::Write;
use std::path::Path;

use serde::{Deserialize, Serialize};

const FILE: &str = "state.json";

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Marker {
    /// `engine/instance/replica`.
    pub subtree: String,
    /// The database state the function acknowledged last.
    pub persisted_seq: u64,
}

/// The marker in `dir`, if there is a readable one.
pub fn read(dir: &Path) -> Option<Marker> {
    let bytes = std::fs::read(dir.join(FILE)).ok()?;
    match serde_json::from_slice(&bytes) {
        Ok(marker) => Some(marker),
        Err(e) => {
            tracing::warn!(error = %e, "ignoring an unreadable {}", dir.join(FILE).display());
            None
        }
    }
}

/// Replaces the marker atomically (write, fsync, rename).
pub fn write(dir: &Path, marker: &Marker) -> std::io::Result<()> {
    let mut file = tempfile::NamedTempFile::new_in(dir)?;
    file.write_all(&serde_json::to_vec(marker).expect("marker serializes"))?;
    file.as_file().sync_all()?;
    file.persist(dir.join(FILE)).map_err(|e| e.error)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_tolerates_garbage() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(read(dir.path()), None);
        let marker = Marker { subtree: "kv/a/0".into(), persisted_seq: 42 };
        write(dir.path(), &marker).unwrap();
        assert_eq!(read(dir.path()), Some(marker));
        std::fs::write(dir.path().join(FILE), b"{not json").unwrap();
        assert_eq!(read(dir.path()), None);
    }
}
