//! Upload rows: their states, how a row reads back, and the state changes
//! of an upload's life (creation with its asset, progress, a declared
//! length, the offset found at startup, and its end), each emitting the
//! asset's webhook in the same transaction.

use super::sql::{OptionalExtension, Row, params};

use super::assets::{AssetStatus, NewAsset};
use super::{DbError, Ops};

/// Where an upload is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UploadState {
    Active,
    Complete,
    Expired,
    Terminated,
    /// Its storage lost acknowledged bytes (found at startup); see the
    /// row's error. Never filled with anything it was not sent.
    Damaged,
}

impl UploadState {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            UploadState::Active => "active",
            UploadState::Complete => "complete",
            UploadState::Expired => "expired",
            UploadState::Terminated => "terminated",
            UploadState::Damaged => "damaged",
        }
    }
    pub(crate) fn parse(s: &str) -> Result<Self, DbError> {
        Ok(match s {
            "active" => UploadState::Active,
            "complete" => UploadState::Complete,
            "expired" => UploadState::Expired,
            "terminated" => UploadState::Terminated,
            "damaged" => UploadState::Damaged,
            other => return Err(DbError::Corrupt(format!("upload state {other:?}"))),
        })
    }
}

/// What kind of concatenation an upload takes part in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConcatKind {
    Partial,
    Final,
}

/// One TUS upload.
#[derive(Debug, Clone)]
pub struct UploadRow {
    pub id: String,
    pub asset_id: Option<String>,
    pub offset: u64,
    pub length: Option<u64>,
    /// The `Upload-Metadata` header value as the client sent it (validated).
    pub metadata: String,
    pub concat: Option<ConcatKind>,
    /// For a final upload: the part ids, in order.
    pub parts: Vec<String>,
    pub cors_origin: Option<String>,
    pub state: UploadState,
    pub created_at: i64,
    pub first_byte_at: Option<i64>,
    /// Unix ms after which an unfinished upload with no writer is expired.
    pub expires_at: i64,
    /// Unix seconds after which an unused signed URL stops working.
    pub sig_exp: u64,
    /// Why a damaged (or expired) upload ended.
    pub error_message: Option<String>,
    /// The upload's own size limit, below the server's (`max_size` of
    /// on-demand); see [`UploadRow::size_limit`].
    pub max_size: Option<u64>,
}

impl UploadRow {
    pub fn is_complete(&self) -> bool {
        self.state == UploadState::Complete
    }
}

/// A new upload to insert.
#[derive(Debug, Clone)]
pub struct NewUpload {
    pub id: String,
    pub length: Option<u64>,
    pub metadata: String,
    pub concat: Option<ConcatKind>,
    pub parts: Vec<String>,
    pub cors_origin: Option<String>,
    pub created_at: i64,
    pub expires_at: i64,
    pub sig_exp: u64,
}

fn upload_from_row(row: &Row) -> Result<(UploadRow, String, Option<String>), DbError> {
    let parts: Option<String> = row.get("parts")?;
    Ok((
        UploadRow {
            id: row.get("id")?,
            asset_id: row.get("asset_id")?,
            offset: row.get("offset")?,
            length: row.get("length")?,
            metadata: row.get("metadata")?,
            concat: None,
            parts: parts
                .map(|p| {
                    p.split(',')
                        .filter(|s| !s.is_empty())
                        .map(str::to_owned)
                        .collect()
                })
                .unwrap_or_default(),
            cors_origin: row.get("cors_origin")?,
            state: UploadState::Active,
            created_at: row.get("created_at")?,
            first_byte_at: row.get("first_byte_at")?,
            expires_at: row.get("expires_at")?,
            sig_exp: row.get("sig_exp")?,
            error_message: row.get("error_message")?,
            max_size: row.get("max_size")?,
        },
        row.get("state")?,
        row.get("concat")?,
    ))
}

fn finish_upload_row(
    (mut row, state, concat): (UploadRow, String, Option<String>),
) -> Result<UploadRow, DbError> {
    row.state = UploadState::parse(&state)?;
    row.concat = match concat.as_deref() {
        None => None,
        Some("partial") => Some(ConcatKind::Partial),
        Some("final") => Some(ConcatKind::Final),
        Some(other) => return Err(DbError::Corrupt(format!("concat {other:?}"))),
    };
    Ok(row)
}

impl Ops<'_> {
    /// Inserts an upload, and its asset if it has one (emitting `video.asset.created`).
    pub fn create_upload(&self, up: &NewUpload, asset: Option<&NewAsset>) -> Result<(), DbError> {
        let concat = up.concat.map(|c| match c {
            ConcatKind::Partial => "partial",
            ConcatKind::Final => "final",
        });
        let parts = (!up.parts.is_empty()).then(|| up.parts.join(","));
        self.tx.execute(
            r#"INSERT INTO uploads(id, asset_id, "offset", length, metadata, concat, parts, cors_origin, state, created_at, first_byte_at, expires_at, sig_exp)
               VALUES (?1, ?2, 0, ?3, ?4, ?5, ?6, ?7, 'active', ?8, NULL, ?9, ?10)"#,
            params![up.id, asset.map(|a| &a.id), up.length, up.metadata, concat, parts, up.cors_origin, up.created_at, up.expires_at, up.sig_exp],
        )?;
        if let Some(asset) = asset {
            let md = serde_json::to_string(&asset.metadata)
                .map_err(|e| DbError::Corrupt(e.to_string()))?;
            self.tx.execute(
                "INSERT INTO assets(id, upload_id, status, metadata, created_at, updated_at) VALUES (?1, ?2, 'waiting', ?3, ?4, ?4)",
                params![asset.id, up.id, md, up.created_at],
            )?;
            self.enqueue(&asset.id, "video.asset.created", up.created_at)?;
        }
        Ok(())
    }

    pub fn upload(&self, id: &str) -> Result<Option<UploadRow>, DbError> {
        // Cached: this runs several times for every PATCH.
        self.tx
            .prepare_cached("SELECT * FROM uploads WHERE id = ?1")?
            .query_row([id], upload_from_row)
            .optional()?
            .map(finish_upload_row)
            .transpose()
    }

    /// Unfinished uploads, for reconciliation at startup.
    pub fn active_uploads(&self) -> Result<Vec<UploadRow>, DbError> {
        let mut stmt = self
            .tx
            .prepare("SELECT * FROM uploads WHERE state = 'active'")?;
        let rows = stmt
            .query_map((), upload_from_row)?
            .collect::<Result<Vec<_>, _>>()?;
        rows.into_iter().map(finish_upload_row).collect()
    }

    /// Complete uploads as (id, length), for the startup check that every
    /// ready asset still has its bytes.
    pub fn complete_uploads(&self) -> Result<Vec<(String, u64)>, DbError> {
        let mut stmt = self
            .tx
            .prepare(r#"SELECT id, "offset" FROM uploads WHERE state = 'complete'"#)?;
        let rows = stmt.query_map((), |r| Ok((r.get(0)?, r.get(1)?)))?;
        rows.collect::<Result<_, _>>()
    }

    /// The state of every upload id in `ids` that has a row (orphan check).
    pub fn upload_states(&self, ids: &[String]) -> Result<Vec<(String, UploadState)>, DbError> {
        let mut stmt = self.tx.prepare("SELECT state FROM uploads WHERE id = ?1")?;
        let mut out = Vec::new();
        for id in ids {
            if let Some(state) = stmt.query_row([id], |r| r.get::<_, String>(0)).optional()? {
                out.push((id.clone(), UploadState::parse(&state)?));
            }
        }
        Ok(out)
    }

    /// Unfinished uploads whose expiry has passed.
    pub fn expired_candidates(&self, now: i64) -> Result<Vec<String>, DbError> {
        let mut stmt = self.tx.prepare(
            "SELECT id FROM uploads WHERE state = 'active' AND expires_at < ?1 LIMIT 256",
        )?;
        let rows = stmt.query_map([now], |r| r.get(0))?;
        rows.collect::<Result<_, _>>()
    }

    /// Declares the length of a deferred upload.
    pub fn declare_length(&self, id: &str, length: u64) -> Result<(), DbError> {
        self.tx.execute(
            "UPDATE uploads SET length = ?2 WHERE id = ?1 AND length IS NULL",
            params![id, length],
        )?;
        Ok(())
    }

    /// Records that the upload's durable offset is now `offset`, extends its
    /// expiry, and moves it (and its asset) to complete when the offset
    /// reaches the length. Returns the updated row.
    pub fn record_progress(
        &self,
        id: &str,
        offset: u64,
        now: i64,
        expiry_ms: i64,
    ) -> Result<UploadRow, DbError> {
        let before = self
            .upload(id)?
            .ok_or_else(|| DbError::Corrupt(format!("upload {id} vanished")))?;
        if offset < before.offset {
            return Err(DbError::Corrupt(format!(
                "offset of {id} would go back from {} to {offset}",
                before.offset
            )));
        }
        let received = offset > before.offset;
        if received {
            self.tx
                .prepare_cached(r#"UPDATE uploads SET "offset" = ?2, first_byte_at = COALESCE(first_byte_at, ?3), expires_at = ?4 WHERE id = ?1"#)?
                .execute(params![id, offset, now, now + expiry_ms])?;
        }
        let complete = before.state == UploadState::Active && before.length == Some(offset);
        if complete {
            self.tx
                .execute("UPDATE uploads SET state = 'complete' WHERE id = ?1", [id])?;
        }
        if let Some(asset_id) = &before.asset_id {
            if complete {
                // Every byte is in: processing begins (the processor is a
                // subscriber of this event; see crate::jobs).
                self.set_asset_status(asset_id, AssetStatus::Processing, now)?;
                self.tx
                    .execute("UPDATE assets SET progress = 0 WHERE id = ?1", [asset_id])?;
                self.enqueue(asset_id, "video.asset.uploaded", now)?;
            } else if received && before.offset == 0 {
                self.set_asset_status(asset_id, AssetStatus::Uploading, now)?;
            } else if received {
                self.tx
                    .prepare_cached("UPDATE assets SET updated_at = ?2 WHERE id = ?1")?
                    .execute(params![asset_id, now])?;
            }
        }
        self.upload(id)?
            .ok_or_else(|| DbError::Corrupt(format!("upload {id} vanished")))
    }

    /// Sets the offset found on disk at startup (never lower than recorded).
    pub fn reconcile_offset(&self, id: &str, offset: u64) -> Result<(), DbError> {
        self.tx.execute(
            r#"UPDATE uploads SET "offset" = GREATEST("offset", ?2) WHERE id = ?1"#,
            params![id, offset],
        )?;
        Ok(())
    }

    /// Ends an upload as expired, terminated or damaged; its asset becomes
    /// errored (with the reason) or deleted. Called before the bytes are
    /// removed, so a crash in between leaves an orphan file (cleaned at
    /// startup), never a live upload without its bytes.
    pub fn end_upload(&self, id: &str, state: UploadState, now: i64) -> Result<(), DbError> {
        self.end_upload_with(id, state, now, None)
    }

    /// [`Ops::end_upload`] with an explicit error message (damaged uploads).
    pub fn end_upload_with(
        &self,
        id: &str,
        state: UploadState,
        now: i64,
        message: Option<&str>,
    ) -> Result<(), DbError> {
        let error = match state {
            UploadState::Expired => Some((
                spool_proto::ErrorCode::UploadExpired,
                "the upload received no bytes for longer than the server's --upload-expiry",
            )),
            UploadState::Damaged => Some((
                spool_proto::ErrorCode::UploadDamaged,
                "the server's storage lost acknowledged bytes of this upload",
            )),
            _ => None,
        };
        self.tx.execute(
            "UPDATE uploads SET state = ?2, error_code = ?3, error_message = ?4 WHERE id = ?1",
            params![
                id,
                state.as_str(),
                error.map(|(c, _)| c.as_str()),
                error.map(|(_, m)| message.unwrap_or(m)),
            ],
        )?;
        let asset_id: Option<String> = self
            .tx
            .query_row("SELECT asset_id FROM uploads WHERE id = ?1", [id], |r| {
                r.get(0)
            })
            .optional()?
            .flatten();
        if let Some(asset_id) = asset_id {
            match state {
                UploadState::Expired | UploadState::Damaged => {
                    self.set_asset_status(&asset_id, AssetStatus::Errored, now)?;
                    self.enqueue(&asset_id, "video.asset.errored", now)?;
                }
                UploadState::Terminated => {
                    self.drop_job(&asset_id)?;
                    self.set_asset_status(&asset_id, AssetStatus::Deleted, now)?;
                    self.enqueue(&asset_id, "video.asset.deleted", now)?;
                }
                UploadState::Active | UploadState::Complete => {}
            }
        }
        Ok(())
    }
}
