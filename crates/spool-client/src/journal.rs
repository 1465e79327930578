//! The durable journal (SQLite, WAL, synchronous=FULL): for each upload its
//! URL, asset, the pieces of local bytes with their byte ranges and digests
//! (see `digest.rs`), the offset the server acknowledged, whether the length
//! is declared, and, once complete, the upload's SHA-256.
//! The rule it enforces: nothing is sent that is not already on local disk
//! and recorded here; the created URL is written before the first PATCH and
//! the acknowledged offset after every PATCH, so a crash or a reboot costs
//! nothing that was already on disk.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use rusqlite::{Connection, OptionalExtension, params};
use serde::{Deserialize, Serialize};

use crate::error::{ClientError, Result};

mod schema;
mod set_aside;

/// Where an upload is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum UploadState {
    /// Registered; the upload resource is being created.
    Creating,
    /// Bytes are flowing (or waiting for the producer).
    Uploading,
    /// Retrying after the per-chunk failure cap; nothing is lost.
    Stalled,
    /// The server acknowledged every byte and the length.
    Complete,
    /// Cannot go on without the user (see `last_error`).
    Failed,
    /// Deleted by the user; what is on the server is being deleted too (see
    /// `last_error` while that fails). Sticky: no upload worker's state
    /// change overwrites it, so a deletion is never forgotten.
    Deleting,
}

impl UploadState {
    pub fn as_str(self) -> &'static str {
        match self {
            UploadState::Creating => "creating",
            UploadState::Uploading => "uploading",
            UploadState::Stalled => "stalled",
            UploadState::Complete => "complete",
            UploadState::Failed => "failed",
            UploadState::Deleting => "deleting",
        }
    }
    fn parse(s: &str) -> Self {
        match s {
            "creating" => UploadState::Creating,
            "stalled" => UploadState::Stalled,
            "complete" => UploadState::Complete,
            "failed" => UploadState::Failed,
            "deleting" => UploadState::Deleting,
            _ => UploadState::Uploading,
        }
    }
}

/// How the upload resource is (re)created. Secrets are never stored: an
/// on-demand target keeps the server and token id, and the secret comes from
/// the caller when a new upload must be created.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum TargetRecord {
    OnDemand { server: String, token_id: String },
    Endpoint { url: String },
    Attached,
}

/// Where the bytes come from, so a resumed upload can go on producing.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum SourceRecord {
    /// A whole file, cut into pieces as it is read.
    File {
        path: PathBuf,
        size: u64,
        modified_ms: i64,
    },
    /// Bytes appended by a producer (a recorder); what is on disk is all there is.
    Stream { label: String },
}

impl SourceRecord {
    /// The local file the bytes come from: the file itself, or a stream's
    /// label, which recorders set to the recording's path.
    pub fn local_path(&self) -> &Path {
        match self {
            SourceRecord::File { path, .. } => path,
            SourceRecord::Stream { label } => Path::new(label),
        }
    }
}

/// Per-upload options that must survive a restart.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct OptionsRecord {
    /// `None` = adaptive.
    pub chunk_size: Option<u64>,
    pub min_chunk: u64,
    /// "sha1" or "sha256".
    pub checksum: Option<String>,
    /// The no-progress timeout for PATCH bodies, in seconds.
    #[serde(default)]
    pub stall_timeout_secs: Option<u64>,
    /// The protocol asked for ("tus", "ietf", "auto"; absent in journals
    /// older than the draft, meaning auto). The choice, not its outcome:
    /// `auto` is discovered again by every session.
    #[serde(default)]
    pub protocol: Option<String>,
}

/// One journaled upload.
#[derive(Debug, Clone)]
pub struct UploadRecord {
    pub id: String,
    pub state: UploadState,
    pub target: TargetRecord,
    pub source: SourceRecord,
    pub options: OptionsRecord,
    pub upload_url: Option<String>,
    pub asset_id: Option<String>,
    pub share_url: Option<String>,
    pub acked: u64,
    pub produced: u64,
    pub finished: bool,
    pub length_declared: bool,
    /// The SHA-256 (hex) of every byte of the upload, set when it completes
    /// (earlier versions set it when the producer finished; a resumed
    /// session computes it again either way).
    pub sha256: Option<String>,
    pub last_error: Option<String>,
    pub created_at: i64,
    pub updated_at: i64,
    /// The recording's title (sent as `title` metadata; renamed locally).
    pub title: Option<String>,
}

/// A range of local bytes queued for upload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Piece {
    pub seq: u64,
    pub path: PathBuf,
    pub file_offset: u64,
    pub len: u64,
    /// Offset of its first byte in the upload.
    pub start: u64,
    /// What its bytes must still hash to, with its algorithm:
    /// `xxh3-128:<hex>`, or bare SHA-256 hex from earlier versions (see
    /// `digest.rs`). Journaled in the `sha256` column.
    pub digest: String,
}

impl Piece {
    pub fn end(&self) -> u64 {
        self.start + self.len
    }
}

/// The journal handle.
#[derive(Clone)]
pub struct Journal {
    conn: Arc<Mutex<Connection>>,
    dir: PathBuf,
}

fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

/// A record's JSON column. A value that cannot be serialised is an error,
/// never an empty column that would fail to load on resume.
fn json<T: Serialize>(v: &T) -> Result<String> {
    serde_json::to_string(v)
        .map_err(|e| ClientError::Internal(format!("journal record not serialisable: {e}")))
}

fn from_json<T: for<'de> Deserialize<'de>>(s: &str) -> rusqlite::Result<T> {
    serde_json::from_str(s).map_err(|e| {
        rusqlite::Error::FromSqlConversionFailure(0, rusqlite::types::Type::Text, Box::new(e))
    })
}

fn record_from_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<UploadRecord> {
    Ok(UploadRecord {
        id: r.get("id")?,
        state: UploadState::parse(&r.get::<_, String>("state")?),
        target: from_json(&r.get::<_, String>("target")?)?,
        source: from_json(&r.get::<_, String>("source")?)?,
        options: from_json(&r.get::<_, String>("options")?)?,
        upload_url: r.get("upload_url")?,
        asset_id: r.get("asset_id")?,
        share_url: r.get("share_url")?,
        acked: r.get("acked")?,
        produced: r.get("produced")?,
        finished: r.get("finished")?,
        length_declared: r.get("length_declared")?,
        sha256: r.get("sha256")?,
        last_error: r.get("last_error")?,
        created_at: r.get("created_at")?,
        updated_at: r.get("updated_at")?,
        title: r.get("title")?,
    })
}

impl Journal {
    /// Opens (creating) the journal under `dir`.
    pub fn open(dir: &Path) -> Result<Journal> {
        std::fs::create_dir_all(dir).map_err(|e| ClientError::io(dir, e))?;
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            // Upload URLs are capabilities: keep the journal private.
            let _ = std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700));
        }
        let mut conn = Connection::open(dir.join("journal.db"))?;
        conn.pragma_update(None, "journal_mode", "WAL")?;
        conn.pragma_update(None, "synchronous", "FULL")?;
        conn.busy_timeout(std::time::Duration::from_secs(10))?;
        schema::migrate(&mut conn)?;
        Ok(Journal {
            conn: Arc::new(Mutex::new(conn)),
            dir: dir.to_path_buf(),
        })
    }

    /// The journal's directory (spooled bytes live under it).
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Runs `f` on the connection on the blocking pool.
    pub async fn call<R: Send + 'static>(
        &self,
        f: impl FnOnce(&Connection) -> rusqlite::Result<R> + Send + 'static,
    ) -> Result<R> {
        let conn = self.conn.clone();
        tokio::task::spawn_blocking(move || {
            let conn = conn
                .lock()
                .map_err(|_| ClientError::Internal("journal mutex poisoned".into()))?;
            f(&conn).map_err(ClientError::from)
        })
        .await
        .map_err(|e| ClientError::Internal(e.to_string()))?
    }

    pub async fn insert(
        &self,
        id: &str,
        target: &TargetRecord,
        source: &SourceRecord,
        options: &OptionsRecord,
        title: Option<&str>,
    ) -> Result<()> {
        let (id, target, source, options) =
            (id.to_owned(), json(target)?, json(source)?, json(options)?);
        let title = title.map(str::to_owned);
        self.call(move |c| {
            let now = now_ms();
            c.execute(
                "INSERT INTO uploads(id, state, target, source, options, created_at, updated_at, title) VALUES (?1, 'creating', ?2, ?3, ?4, ?5, ?5, ?6)",
                params![id, target, source, options, now, title],
            )
            .map(|_| ())
        })
        .await
    }

    /// Renames a recording locally (`None` clears the title).
    pub async fn set_title(&self, id: &str, title: Option<&str>) -> Result<()> {
        let (key, title) = (id.to_owned(), title.map(str::to_owned));
        let changed = self
            .call(move |c| {
                c.execute(
                    "UPDATE uploads SET title = ?2 WHERE id = ?1",
                    params![key, title],
                )
            })
            .await?;
        if changed == 0 {
            return Err(ClientError::Invalid(format!(
                "upload {id} is not in the journal"
            )));
        }
        Ok(())
    }

    pub async fn get(&self, id: &str) -> Result<Option<UploadRecord>> {
        let id = id.to_owned();
        self.call(move |c| {
            c.query_row("SELECT * FROM uploads WHERE id = ?1", [id], record_from_row)
                .optional()
        })
        .await
    }

    /// Every upload, newest first.
    pub async fn list(&self) -> Result<Vec<UploadRecord>> {
        self.call(|c| {
            let mut stmt = c.prepare("SELECT * FROM uploads ORDER BY created_at DESC")?;
            let rows = stmt.query_map([], record_from_row)?;
            rows.collect()
        })
        .await
    }

    pub async fn pieces(&self, id: &str) -> Result<Vec<Piece>> {
        let id = id.to_owned();
        self.call(move |c| {
            let mut stmt = c.prepare("SELECT seq, path, file_offset, len, start, sha256 FROM pieces WHERE upload_id = ?1 ORDER BY seq")?;
            let rows = stmt.query_map([id], |r| {
                Ok(Piece {
                    seq: r.get(0)?,
                    path: PathBuf::from(r.get::<_, String>(1)?),
                    file_offset: r.get(2)?,
                    len: r.get(3)?,
                    start: r.get(4)?,
                    digest: r.get(5)?,
                })
            })?;
            rows.collect()
        })
        .await
    }

    /// Records the created upload resource, before any byte is sent to it.
    pub async fn set_created(
        &self,
        id: &str,
        url: &str,
        asset_id: Option<&str>,
        share_url: Option<&str>,
    ) -> Result<()> {
        let (id, url, asset_id, share_url) = (
            id.to_owned(),
            url.to_owned(),
            asset_id.map(str::to_owned),
            share_url.map(str::to_owned),
        );
        self.call(move |c| {
            c.execute(
                "UPDATE uploads SET upload_url = ?2, asset_id = ?3, share_url = ?4, acked = 0, length_declared = 0, state = CASE state WHEN 'deleting' THEN 'deleting' ELSE 'uploading' END, updated_at = ?5 WHERE id = ?1",
                params![id, url, asset_id, share_url, now_ms()],
            )
            .map(|_| ())
        })
        .await
    }

    /// Records a piece (its bytes already durable on disk).
    pub async fn add_piece(&self, id: &str, piece: &Piece) -> Result<()> {
        let (id, p) = (id.to_owned(), piece.clone());
        self.call(move |c| {
            let tx = c.unchecked_transaction()?;
            tx.execute(
                "INSERT INTO pieces(upload_id, seq, path, file_offset, len, start, sha256) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
                params![id, p.seq, p.path.to_string_lossy(), p.file_offset, p.len, p.start, p.digest],
            )?;
            tx.execute("UPDATE uploads SET produced = ?2, updated_at = ?3 WHERE id = ?1", params![id, p.end(), now_ms()])?;
            tx.commit()
        })
        .await
    }

    /// The producer is done: the total length is `produced`.
    pub async fn set_finished(&self, id: &str) -> Result<()> {
        let id = id.to_owned();
        self.call(move |c| {
            c.execute(
                "UPDATE uploads SET finished = 1, updated_at = ?2 WHERE id = ?1",
                params![id, now_ms()],
            )
            .map(|_| ())
        })
        .await
    }

    /// The server has every byte: the state is complete (unless the upload
    /// is being deleted) and `sha256` the hash of all its bytes.
    pub async fn set_complete(&self, id: &str, sha256: &str) -> Result<()> {
        let (id, sha) = (id.to_owned(), sha256.to_owned());
        self.call(move |c| {
            c.execute(
                "UPDATE uploads SET state = CASE state WHEN 'deleting' THEN 'deleting' ELSE 'complete' END, sha256 = ?2, last_error = CASE state WHEN 'deleting' THEN last_error ELSE NULL END, updated_at = ?3 WHERE id = ?1",
                params![id, sha, now_ms()],
            )
            .map(|_| ())
        })
        .await
    }

    /// Records the server's acknowledged offset (and whether it now knows
    /// the length), with the digests of pieces taken as they were read for
    /// sending (`(seq, digest)`; see `digest::UNREAD`), in one transaction.
    pub async fn set_acked(
        &self,
        id: &str,
        acked: u64,
        length_declared: bool,
        digests: Vec<(u64, String)>,
    ) -> Result<()> {
        let id = id.to_owned();
        self.call(move |c| {
            let tx = c.unchecked_transaction()?;
            tx.execute(
                "UPDATE uploads SET acked = ?2, length_declared = ?3, updated_at = ?4 WHERE id = ?1",
                params![id, acked, length_declared, now_ms()],
            )?;
            for (seq, digest) in &digests {
                tx.prepare_cached(
                    "UPDATE pieces SET sha256 = ?3 WHERE upload_id = ?1 AND seq = ?2",
                )?
                .execute(params![id, seq, digest])?;
            }
            tx.commit()
        })
        .await
    }

    /// Sets the state; an upload being deleted stays `Deleting`.
    pub async fn set_state(&self, id: &str, state: UploadState, error: Option<&str>) -> Result<()> {
        let (id, error) = (id.to_owned(), error.map(str::to_owned));
        self.call(move |c| {
            c.execute(
                "UPDATE uploads SET state = ?2, last_error = ?3, updated_at = ?4 WHERE id = ?1 AND (state != 'deleting' OR ?2 = 'deleting')",
                params![id, state.as_str(), error, now_ms()],
            )
            .map(|_| ())
        })
        .await
    }

    /// Forgets an upload and its pieces.
    pub async fn delete(&self, id: &str) -> Result<()> {
        let owned = id.to_owned();
        self.call(move |c| {
            c.execute("DELETE FROM pieces WHERE upload_id = ?1", [&owned])?;
            c.execute("DELETE FROM uploads WHERE id = ?1", [&owned])
                .map(|_| ())
        })
        .await?;
        crate::owner::remove(&self.dir, id);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn records_survive_reopening() {
        let dir = tempfile::tempdir().unwrap();
        let j = Journal::open(dir.path()).unwrap();
        let target = TargetRecord::OnDemand {
            server: "http://s".into(),
            token_id: "t".into(),
        };
        let source = SourceRecord::Stream {
            label: "rec".into(),
        };
        j.insert("u1", &target, &source, &OptionsRecord::default(), None)
            .await
            .unwrap();
        j.set_created("u1", "http://s/v1/uploads/x?sig=1", Some("a"), None)
            .await
            .unwrap();
        let p = Piece {
            seq: 0,
            path: "/tmp/x".into(),
            file_offset: 0,
            len: 10,
            start: 0,
            digest: "xxh3-128:00".into(),
        };
        j.add_piece("u1", &p).await.unwrap();
        j.set_acked("u1", 7, false, Vec::new()).await.unwrap();
        drop(j);
        let j = Journal::open(dir.path()).unwrap();
        let r = j.get("u1").await.unwrap().unwrap();
        assert_eq!(
            (r.acked, r.produced, r.finished, r.state),
            (7, 10, false, UploadState::Uploading)
        );
        assert_eq!(r.target, target);
        assert_eq!(j.pieces("u1").await.unwrap(), vec![p]);
        assert_eq!(j.list().await.unwrap().len(), 1);
    }

    #[tokio::test]
    async fn deleting_is_sticky_against_upload_state_changes() {
        let dir = tempfile::tempdir().unwrap();
        let j = Journal::open(dir.path()).unwrap();
        let source = SourceRecord::Stream { label: "r".into() };
        let target = TargetRecord::Endpoint {
            url: "http://t".into(),
        };
        j.insert("u1", &target, &source, &OptionsRecord::default(), None)
            .await
            .unwrap();
        j.set_state("u1", UploadState::Deleting, None)
            .await
            .unwrap();
        // A worker still winding down (creating, stalling, failing) cannot
        // turn a deletion back into an upload.
        j.set_created("u1", "http://t/files/1", None, None)
            .await
            .unwrap();
        j.set_state("u1", UploadState::Stalled, Some("x"))
            .await
            .unwrap();
        j.set_state("u1", UploadState::Failed, Some("y"))
            .await
            .unwrap();
        let r = j.get("u1").await.unwrap().unwrap();
        assert_eq!(r.state, UploadState::Deleting);
        assert_eq!(r.upload_url.as_deref(), Some("http://t/files/1"));
        j.set_state("u1", UploadState::Deleting, Some("server down"))
            .await
            .unwrap();
        let r = j.get("u1").await.unwrap().unwrap();
        assert_eq!(
            (r.state, r.last_error.as_deref()),
            (UploadState::Deleting, Some("server down"))
        );
        drop(j);
        let j = Journal::open(dir.path()).unwrap();
        assert_eq!(
            j.get("u1").await.unwrap().unwrap().state,
            UploadState::Deleting
        );
    }

    #[tokio::test]
    async fn titles_are_kept_renamed_and_added_to_older_journals() {
        let dir = tempfile::tempdir().unwrap();
        // A journal from before titles: the table without the column.
        {
            let c = Connection::open(dir.path().join("journal.db")).unwrap();
            c.execute_batch(schema::V1).unwrap();
            c.execute_batch("INSERT INTO uploads(id, state, target, source, options, created_at, updated_at) VALUES ('old', 'complete', '{\"kind\":\"endpoint\",\"url\":\"http://t\"}', '{\"kind\":\"stream\",\"label\":\"x\"}', '{\"chunk_size\":null,\"min_chunk\":0,\"checksum\":null}', 1, 1)")
                .unwrap();
        }
        let j = Journal::open(dir.path()).unwrap();
        let old = j.get("old").await.unwrap().unwrap();
        assert_eq!(old.title, None);
        let target = TargetRecord::Endpoint {
            url: "http://t".into(),
        };
        let source = SourceRecord::Stream { label: "r".into() };
        j.insert(
            "new",
            &target,
            &source,
            &OptionsRecord::default(),
            Some("Demo"),
        )
        .await
        .unwrap();
        assert_eq!(
            j.get("new").await.unwrap().unwrap().title.as_deref(),
            Some("Demo")
        );
        j.set_title("old", Some("Renamed")).await.unwrap();
        drop(j);
        let j = Journal::open(dir.path()).unwrap();
        assert_eq!(
            j.get("old").await.unwrap().unwrap().title.as_deref(),
            Some("Renamed")
        );
        assert!(j.set_title("missing", Some("x")).await.is_err());
    }
}
