//! SQLite metadata: assets, uploads, the webhook outbox, signing keys and
//! settings, in one WAL-mode database under the data directory. Every state
//! change that emits a webhook enqueues it in the same transaction (a
//! transactional outbox), so an event is never lost nor sent for a change that
//! did not happen. All access goes through [`Db::call`], which runs the
//! closure on the blocking pool so SQLite never stalls the async runtime.

use std::path::Path;
use std::sync::{Arc, Mutex};

use rusqlite::{Connection, OptionalExtension, Transaction, params};
use serde::Serialize;

mod max_size;
mod media;
mod metadata;
mod view;

use view::AssetRow;

pub use media::Playable;
pub use metadata::MetadataUpdate;

/// A database failure; always an internal error to clients.
#[derive(Debug, thiserror::Error)]
pub enum DbError {
    #[error("sqlite: {0}")]
    Sqlite(#[from] rusqlite::Error),
    #[error("database task failed: {0}")]
    Task(String),
    #[error("stored data is inconsistent: {0}")]
    Corrupt(String),
}

const SCHEMA: &str = r#"
CREATE TABLE IF NOT EXISTS settings (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS signing_keys (kid TEXT PRIMARY KEY, secret BLOB NOT NULL, created_at INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS assets (
    id TEXT PRIMARY KEY,
    upload_id TEXT NOT NULL,
    status TEXT NOT NULL,
    metadata TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS uploads (
    id TEXT PRIMARY KEY,
    asset_id TEXT,
    "offset" INTEGER NOT NULL,
    length INTEGER,
    metadata TEXT NOT NULL,
    concat TEXT,
    parts TEXT,
    cors_origin TEXT,
    state TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    first_byte_at INTEGER,
    expires_at INTEGER NOT NULL,
    sig_exp INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS uploads_expiry ON uploads(state, expires_at);
"#;

/// Columns added after the first release, with their declarations: added
/// to an existing database at open, so an older data folder keeps working.
const ADDED_UPLOAD_COLUMNS: &[(&str, &str)] = &[("error_code", "TEXT"), ("error_message", "TEXT")];

/// Asset columns added for processing and playback (issue 10): what the
/// index and the processor found, and a processing failure's reason.
const ADDED_ASSET_COLUMNS: &[(&str, &str)] = &[
    ("live", "INTEGER NOT NULL DEFAULT 0"),
    ("duration_ms", "INTEGER"),
    ("width", "INTEGER"),
    ("height", "INTEGER"),
    ("progress", "REAL"),
    ("poster", "INTEGER NOT NULL DEFAULT 0"),
    ("error_code", "TEXT"),
    ("error_message", "TEXT"),
    // Issue 11: the video has a sound track.
    ("has_audio", "INTEGER NOT NULL DEFAULT 0"),
];

/// Adds each of `columns` to `table` where it is missing.
fn add_missing_columns(
    conn: &Connection,
    table: &str,
    columns: &[(&str, &str)],
) -> Result<(), DbError> {
    let existing: Vec<String> = conn
        .prepare(&format!("SELECT name FROM pragma_table_info('{table}')"))?
        .query_map([], |r| r.get(0))?
        .collect::<Result<_, _>>()?;
    for (name, decl) in columns {
        if !existing.iter().any(|c| c == name) {
            conn.execute_batch(&format!("ALTER TABLE {table} ADD COLUMN {name} {decl}"))?;
        }
    }
    Ok(())
}

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
    fn as_str(self) -> &'static str {
        match self {
            UploadState::Active => "active",
            UploadState::Complete => "complete",
            UploadState::Expired => "expired",
            UploadState::Terminated => "terminated",
            UploadState::Damaged => "damaged",
        }
    }
    fn parse(s: &str) -> Result<Self, DbError> {
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

/// An asset's status, as the API reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum AssetStatus {
    Waiting,
    Uploading,
    /// Every byte is in; the processor is making it playable.
    Processing,
    Ready,
    Errored,
    Deleted,
}

impl AssetStatus {
    /// The word the API and the share page use.
    pub fn as_str(self) -> &'static str {
        match self {
            AssetStatus::Waiting => "waiting",
            AssetStatus::Uploading => "uploading",
            AssetStatus::Processing => "processing",
            AssetStatus::Ready => "ready",
            AssetStatus::Errored => "errored",
            AssetStatus::Deleted => "deleted",
        }
    }
    fn parse(s: &str) -> Result<Self, DbError> {
        Ok(match s {
            "waiting" => AssetStatus::Waiting,
            "uploading" => AssetStatus::Uploading,
            "processing" => AssetStatus::Processing,
            "ready" => AssetStatus::Ready,
            "errored" => AssetStatus::Errored,
            "deleted" => AssetStatus::Deleted,
            other => return Err(DbError::Corrupt(format!("asset status {other:?}"))),
        })
    }
}

/// The asset as `GET /v1/assets/{id}` and webhooks show it.
#[derive(Debug, Clone, Serialize)]
pub struct AssetView {
    pub id: String,
    pub status: AssetStatus,
    pub offset: u64,
    pub length: Option<u64>,
    pub share_url: String,
    pub metadata: serde_json::Map<String, serde_json::Value>,
    pub created_at: String,
    pub updated_at: String,
    /// Why an errored asset failed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<AssetError>,
    /// Known once the video is indexed (live) or processed.
    pub duration_ms: Option<u64>,
    pub width: Option<u32>,
    pub height: Option<u32>,
    /// It has a sound track (known once indexed or processed; false before).
    pub has_audio: bool,
    /// The HLS playlist: live while uploading with playable segments, ended
    /// once every byte is in. Absolute URLs under the public URL.
    pub playback_url: Option<String>,
    /// A progressive MP4 that seeks at once (init + `sidx` + the segments).
    pub mp4_url: Option<String>,
    /// The JPEG poster.
    pub thumbnail_url: Option<String>,
    /// True while uploading with playable segments.
    pub live: bool,
    /// 0–1 while processing (transcodes report as they go).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub progress: Option<f64>,
    /// The recording's title from its metadata (`title`, else `name`), if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub title: Option<String>,
    #[serde(skip)]
    pub upload_id: String,
}

/// An errored asset's reason, with a stable code.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct AssetError {
    pub code: String,
    pub message: String,
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

/// A new asset to insert beside its upload.
#[derive(Debug, Clone)]
pub struct NewAsset {
    pub id: String,
    pub metadata: serde_json::Map<String, serde_json::Value>,
}

/// The handle to the database.
#[derive(Clone)]
pub struct Db {
    conn: Arc<Mutex<Connection>>,
    /// Base of share and playback URLs, which asset views include (the
    /// share URL if configured, else the public URL).
    public_url: Arc<str>,
    /// Whether state changes enqueue webhooks at all.
    pub(crate) webhooks: bool,
}

pub(crate) fn ms_to_rfc3339(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .unwrap_or_default()
        .to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

/// Current time in Unix milliseconds.
pub fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

fn upload_from_row(
    row: &rusqlite::Row<'_>,
) -> rusqlite::Result<(UploadRow, String, Option<String>)> {
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

impl Db {
    /// Opens (creating if needed) the database at `path` and migrates it.
    pub fn open(path: &Path, public_url: &str, webhooks: bool) -> Result<Db, DbError> {
        let conn = Connection::open(path)?;
        // WAL + FULL: every commit is fsynced before it returns, so an
        // offset acknowledged to a client survives a power cut, not only a
        // killed process (NORMAL may roll the last commits back on power
        // loss). The uploaded bytes are fsynced by the store before that.
        conn.pragma_update(None, "journal_mode", "WAL")?;
        conn.pragma_update(None, "synchronous", "FULL")?;
        conn.pragma_update(None, "foreign_keys", "ON")?;
        conn.busy_timeout(std::time::Duration::from_secs(5))?;
        conn.execute_batch(SCHEMA)?;
        add_missing_columns(&conn, "uploads", ADDED_UPLOAD_COLUMNS)?;
        add_missing_columns(&conn, "assets", ADDED_ASSET_COLUMNS)?;
        max_size::migrate(&conn)?;
        crate::outbox::migrate(&conn)?;
        crate::jobs::migrate(&conn)?;
        Ok(Db {
            conn: Arc::new(Mutex::new(conn)),
            public_url: public_url.trim_end_matches('/').into(),
            webhooks,
        })
    }

    /// Runs `f` with the connection on the blocking pool.
    pub async fn call<F, R>(&self, f: F) -> Result<R, DbError>
    where
        F: FnOnce(&mut Ops<'_>) -> Result<R, DbError> + Send + 'static,
        R: Send + 'static,
    {
        let this = self.clone();
        tokio::task::spawn_blocking(move || {
            let mut conn = this
                .conn
                .lock()
                .map_err(|_| DbError::Task("connection mutex poisoned".into()))?;
            let tx = conn.transaction()?;
            let mut ops = Ops { tx: &tx, db: &this };
            let out = f(&mut ops)?;
            tx.commit()?;
            Ok(out)
        })
        .await
        .map_err(|e| DbError::Task(e.to_string()))?
    }

    /// The share URL of an asset.
    pub fn share_url(&self, asset_id: &str) -> String {
        format!("{}/v/{asset_id}", self.public_url)
    }
}

/// Operations inside one transaction.
pub struct Ops<'a> {
    pub(crate) tx: &'a Transaction<'a>,
    pub(crate) db: &'a Db,
}

impl Ops<'_> {
    pub fn setting(&self, key: &str) -> Result<Option<String>, DbError> {
        Ok(self
            .tx
            .query_row("SELECT value FROM settings WHERE key = ?1", [key], |r| {
                r.get(0)
            })
            .optional()?)
    }

    pub fn set_setting(&self, key: &str, value: &str) -> Result<(), DbError> {
        self.tx.execute("INSERT INTO settings(key, value) VALUES (?1, ?2) ON CONFLICT(key) DO UPDATE SET value = excluded.value", [key, value])?;
        Ok(())
    }

    /// Every signing key, oldest first.
    pub fn signing_keys(&self) -> Result<Vec<(String, Vec<u8>)>, DbError> {
        let mut stmt = self
            .tx
            .prepare("SELECT kid, secret FROM signing_keys ORDER BY created_at, kid")?;
        let rows = stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    pub fn insert_signing_key(&self, kid: &str, secret: &[u8]) -> Result<(), DbError> {
        self.tx.execute(
            "INSERT INTO signing_keys(kid, secret, created_at) VALUES (?1, ?2, ?3)",
            params![kid, secret, now_ms()],
        )?;
        Ok(())
    }

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
        self.tx
            .query_row("SELECT * FROM uploads WHERE id = ?1", [id], upload_from_row)
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
            .query_map([], upload_from_row)?
            .collect::<Result<Vec<_>, _>>()?;
        rows.into_iter().map(finish_upload_row).collect()
    }

    /// Complete uploads as (id, length), for the startup check that every
    /// ready asset still has its bytes.
    pub fn complete_uploads(&self) -> Result<Vec<(String, u64)>, DbError> {
        let mut stmt = self
            .tx
            .prepare(r#"SELECT id, "offset" FROM uploads WHERE state = 'complete'"#)?;
        let rows = stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?;
        Ok(rows.collect::<Result<_, _>>()?)
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
        Ok(rows.collect::<Result<_, _>>()?)
    }

    pub fn asset(&self, id: &str) -> Result<Option<AssetView>, DbError> {
        let row = self
            .tx
            .query_row(
                r#"SELECT a.id, a.upload_id, a.status, a.metadata, a.created_at, a.updated_at, u."offset", u.length,
                          COALESCE(a.error_code, u.error_code), COALESCE(a.error_message, u.error_message),
                          a.live, a.duration_ms, a.width, a.height, a.progress, a.poster, a.has_audio
                   FROM assets a JOIN uploads u ON u.id = a.upload_id WHERE a.id = ?1"#,
                [id],
                |r| {
                    Ok(AssetRow {
                        id: r.get(0)?,
                        upload_id: r.get(1)?,
                        status: r.get(2)?,
                        metadata: r.get(3)?,
                        created: r.get(4)?,
                        updated: r.get(5)?,
                        offset: r.get(6)?,
                        length: r.get(7)?,
                        error_code: r.get(8)?,
                        error_message: r.get(9)?,
                        live: r.get(10)?,
                        duration_ms: r.get(11)?,
                        width: r.get(12)?,
                        height: r.get(13)?,
                        progress: r.get(14)?,
                        poster: r.get(15)?,
                        has_audio: r.get(16)?,
                    })
                },
            )
            .optional()?;
        row.map(|r| r.into_view(self.db)).transpose()
    }

    pub(crate) fn set_asset_status(
        &self,
        asset_id: &str,
        status: AssetStatus,
        now: i64,
    ) -> Result<(), DbError> {
        self.tx.execute(
            "UPDATE assets SET status = ?2, updated_at = ?3 WHERE id = ?1",
            params![asset_id, status.as_str(), now],
        )?;
        Ok(())
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
            self.tx.execute(
                r#"UPDATE uploads SET "offset" = ?2, first_byte_at = COALESCE(first_byte_at, ?3), expires_at = ?4 WHERE id = ?1"#,
                params![id, offset, now, now + expiry_ms],
            )?;
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
                self.tx.execute(
                    "UPDATE assets SET updated_at = ?2 WHERE id = ?1",
                    params![asset_id, now],
                )?;
            }
        }
        self.upload(id)?
            .ok_or_else(|| DbError::Corrupt(format!("upload {id} vanished")))
    }

    /// Sets the offset found on disk at startup (never lower than recorded).
    pub fn reconcile_offset(&self, id: &str, offset: u64) -> Result<(), DbError> {
        self.tx.execute(
            r#"UPDATE uploads SET "offset" = MAX("offset", ?2) WHERE id = ?1"#,
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
