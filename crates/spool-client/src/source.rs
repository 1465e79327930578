//! Producers that feed a session. A whole file is queued as 16 MiB pieces
//! of itself, each hashed as it is read for sending (one read of the
//! file); a resumed file upload goes on queueing from
//! where the journal stopped, after checking the file did not change.

use std::path::Path;

use crate::error::{ClientError, Result};
use crate::journal::SourceRecord;
use crate::session::Session;

/// Size of the pieces a file is queued in.
pub const FILE_PIECE: u64 = 16 * 1024 * 1024;

fn modified_ms(meta: &std::fs::Metadata) -> i64 {
    meta.modified()
        .ok()
        .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// Describes a regular file for the journal.
pub fn file_source(path: &Path) -> Result<SourceRecord> {
    let path = std::fs::canonicalize(path).map_err(|e| ClientError::io(path, e))?;
    let meta = std::fs::metadata(&path).map_err(|e| ClientError::io(&path, e))?;
    if !meta.is_file() {
        return Err(ClientError::Invalid(format!(
            "{} is not a regular file",
            path.display()
        )));
    }
    Ok(SourceRecord::File {
        size: meta.len(),
        modified_ms: modified_ms(&meta),
        path,
    })
}

/// A whole-file source must still be the file it was: same size, same
/// mtime (its pieces are read when they are sent, so this is what stands
/// for the bytes not yet read). Other sources pass.
pub(crate) fn check_unchanged(source: &SourceRecord) -> Result<()> {
    let SourceRecord::File {
        path,
        size,
        modified_ms: mtime,
    } = source
    else {
        return Ok(());
    };
    let meta = std::fs::metadata(path)
        .map_err(|e| ClientError::LocalDataChanged(format!("{}: {e}", path.display())))?;
    if meta.len() != *size || modified_ms(&meta) != *mtime {
        return Err(ClientError::LocalDataChanged(format!(
            "{} was modified since the upload began",
            path.display()
        )));
    }
    Ok(())
}

/// Queues the rest of a file source into `session` and finishes it.
pub async fn produce_file(session: &Session, source: &SourceRecord) -> Result<()> {
    let SourceRecord::File { path, size, .. } = source else {
        return Err(ClientError::Invalid("not a file source".into()));
    };
    check_unchanged(source)?;
    let mut offset = session.produced().await;
    while offset < *size {
        let len = FILE_PIECE.min(size - offset);
        session.append_file(path, offset, len).await?;
        offset += len;
    }
    session.finish().await
}
