//! `weftkit.json`: what a database directory holds, written once at creation.

use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::options::Mode;

pub(crate) const FILE: &str = "weftkit.json";
const FORMAT: u32 = 1;

#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct DirMeta {
    pub(crate) format: u32,
    pub(crate) mode: Mode,
}

/// Reads the directory's metadata; `None` when the directory holds no database.
pub(crate) fn read(dir: &Path) -> Result<Option<DirMeta>> {
    let path = dir.join(FILE);
    let text = match std::fs::read_to_string(&path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(Error::io(format!("read {}", path.display()), e)),
    };
    let meta: DirMeta = serde_json::from_str(&text)
        .map_err(|e| Error::Corrupt(format!("{}: {e}", path.display())))?;
    if meta.format != FORMAT {
        return Err(Error::Corrupt(format!(
            "{}: format {} is not supported (this build reads {FORMAT})",
            path.display(),
            meta.format
        )));
    }
    Ok(Some(meta))
}

/// Writes the metadata of a new database: to a temporary file, fsynced, then renamed into place.
pub(crate) fn create(dir: &Path, mode: Mode) -> Result<DirMeta> {
    std::fs::create_dir_all(dir).map_err(|e| Error::io(format!("create {}", dir.display()), e))?;
    let meta = DirMeta { format: FORMAT, mode };
    let tmp = dir.join(format!("{FILE}.tmp"));
    let text = serde_json::to_string_pretty(&meta).expect("metadata serializes");
    let write = || -> std::io::Result<()> {
        use std::io::Write;
        let mut file = std::fs::File::create(&tmp)?;
        file.write_all(text.as_bytes())?;
        file.sync_all()?;
        std::fs::rename(&tmp, dir.join(FILE))?;
        std::fs::File::open(dir)?.sync_all()
    };
    write().map_err(|e| Error::io(format!("write {}", dir.join(FILE).display()), e))?;
    Ok(meta)
}
