//! Opening a journal that may be damaged: a `journal.db` that is not a
//! SQLite database, is corrupt, or does not hold the journal's schema (or
//! rows it can read) is moved aside — kept, with its `-wal` and `-shm`, as
//! `journal.db.corrupt-<UTC timestamp>` — and an empty journal is opened in
//! its place, so the program starts instead of failing on every launch and
//! nothing is destroyed. Any other failure (permissions, a full disk,
//! another process's lock) is returned as it is and touches nothing: those
//! are not the journal's fault and moving it would lose live entries.

use std::path::{Path, PathBuf};

use rusqlite::ErrorCode as SqliteCode;

use super::{Journal, record_from_row};
use crate::error::{ClientError, Result};

const DB: &str = "journal.db";

/// Why opening failed: damage (set it aside) or anything else (report it).
enum Failure {
    Damaged(String),
    Other(ClientError),
}

fn classify(e: ClientError) -> Failure {
    match &e {
        ClientError::Journal(rusqlite::Error::SqliteFailure(f, _))
            if matches!(
                f.code,
                SqliteCode::NotADatabase | SqliteCode::DatabaseCorrupt
            ) =>
        {
            Failure::Damaged(e.to_string())
        }
        _ => Failure::Other(e),
    }
}

impl Journal {
    /// Opens the journal under `dir`, first moving a damaged `journal.db`
    /// aside (see the module docs). The second value is where the damaged
    /// file now is, when that happened, so the caller can say so once.
    pub fn open_or_set_aside(dir: &Path) -> Result<(Journal, Option<PathBuf>)> {
        // Not opened at all when it is not SQLite: SQLite would take its
        // `-wal` for its own and delete it on closing.
        let why = if let Some(why) = not_sqlite(&dir.join(DB)) {
            why
        } else {
            match Journal::open(dir).map_err(classify) {
                Ok(j) => match j.check() {
                    Ok(()) => return Ok((j, None)),
                    Err(why) => {
                        // Closed before its files are renamed.
                        drop(j);
                        why
                    }
                },
                Err(Failure::Damaged(why)) => why,
                Err(Failure::Other(e)) => return Err(e),
            }
        };
        let aside = set_aside(dir)?;
        tracing::warn!(
            reason = %why,
            kept_as = %aside.display(),
            "the journal was unreadable; it was moved aside and a new one started"
        );
        Ok((Journal::open(dir)?, Some(aside)))
    }

    /// Checks the open journal: SQLite's own integrity check, the schema
    /// this version reads, and every row readable. Ok, or why it is damaged.
    fn check(&self) -> std::result::Result<(), String> {
        let conn = self
            .conn
            .lock()
            .map_err(|_| "journal mutex poisoned".to_owned())?;
        let check = || -> rusqlite::Result<Option<String>> {
            let verdict: String = conn.query_row("PRAGMA quick_check", [], |r| r.get(0))?;
            if verdict != "ok" {
                return Ok(Some(format!("integrity check: {verdict}")));
            }
            conn.prepare(
                "SELECT upload_id, seq, path, file_offset, len, start, sha256 FROM pieces LIMIT 0",
            )?;
            let mut stmt = conn.prepare("SELECT * FROM uploads")?;
            let rows = stmt.query_map([], record_from_row)?;
            for row in rows {
                row?;
            }
            Ok(None)
        };
        match check() {
            Ok(None) => Ok(()),
            Ok(Some(why)) => Err(why),
            Err(e) => Err(format!("journal: {e}")),
        }
    }
}

/// Why the file at `path` is not a SQLite database, if it is not: a file
/// that exists, is not empty (an empty file is a new database) and lacks
/// SQLite's 16-byte header.
fn not_sqlite(path: &Path) -> Option<String> {
    use std::io::Read as _;
    const HEADER: &[u8; 16] = b"SQLite format 3\0";
    let mut file = std::fs::File::open(path).ok()?;
    if !file.metadata().ok()?.is_file() {
        return None;
    }
    let mut head = Vec::with_capacity(16);
    file.by_ref().take(16).read_to_end(&mut head).ok()?;
    (!head.is_empty() && head != HEADER).then(|| "not a SQLite database".to_owned())
}

/// Renames `journal.db` (and its `-wal`, `-shm`) to an unused
/// `journal.db.corrupt-<timestamp>[-n]`; the new path of `journal.db`.
fn set_aside(dir: &Path) -> Result<PathBuf> {
    let stamp = chrono::Utc::now().format("%Y%m%dT%H%M%S").to_string();
    let free = |name: &str| {
        !["", "-wal", "-shm"]
            .iter()
            .any(|s| dir.join(format!("{name}{s}")).exists())
    };
    let mut name = format!("{DB}.corrupt-{stamp}");
    let mut n = 1;
    while !free(&name) {
        n += 1;
        name = format!("{DB}.corrupt-{stamp}-{n}");
    }
    for suffix in ["-wal", "-shm", ""] {
        let from = dir.join(format!("{DB}{suffix}"));
        let to = dir.join(format!("{name}{suffix}"));
        match std::fs::rename(&from, &to) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(ClientError::io(&from, e)),
        }
    }
    // The renames are durable before a new journal.db is created.
    if let Ok(d) = std::fs::File::open(dir) {
        let _ = d.sync_all();
    }
    Ok(dir.join(name))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;
    use crate::journal::{OptionsRecord, SourceRecord, TargetRecord};

    async fn add(j: &Journal, id: &str) {
        j.insert(
            id,
            &TargetRecord::Endpoint {
                url: "http://t/files".into(),
            },
            &SourceRecord::Stream { label: id.into() },
            &OptionsRecord::default(),
            None,
        )
        .await
        .unwrap();
    }

    fn aside_files(dir: &Path) -> Vec<String> {
        let mut v: Vec<String> = std::fs::read_dir(dir)
            .unwrap()
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|n| n.contains(".corrupt-"))
            .collect();
        v.sort();
        v
    }

    #[tokio::test]
    async fn a_file_that_is_not_a_database_is_kept_aside_and_a_new_journal_starts() {
        let dir = tempfile::tempdir().unwrap();
        let garbage = b"this is not a SQLite database, just bytes that got here".repeat(100);
        std::fs::write(dir.path().join(DB), &garbage).unwrap();
        std::fs::write(dir.path().join("journal.db-wal"), b"stale wal").unwrap();
        // Plain open fails on such a file, every time.
        let plain = tempfile::tempdir().unwrap();
        std::fs::write(plain.path().join(DB), &garbage).unwrap();
        assert!(Journal::open(plain.path()).is_err());

        let (j, aside) = Journal::open_or_set_aside(dir.path()).unwrap();
        let aside = aside.expect("set aside");
        let name = aside.file_name().unwrap().to_string_lossy().into_owned();
        assert!(name.starts_with("journal.db.corrupt-2"), "{name}");
        assert_eq!(
            std::fs::read(&aside).unwrap(),
            garbage,
            "kept, byte for byte"
        );
        assert_eq!(
            std::fs::read(dir.path().join(format!("{name}-wal"))).unwrap(),
            b"stale wal"
        );
        // The new journal works and survives reopening, which is quiet.
        add(&j, "u1").await;
        drop(j);
        let (j, aside_again) = Journal::open_or_set_aside(dir.path()).unwrap();
        assert_eq!(aside_again, None);
        assert_eq!(j.list().await.unwrap().len(), 1);
        assert_eq!(
            aside_files(dir.path()),
            vec![name.clone(), format!("{name}-wal")]
        );
    }

    #[tokio::test]
    async fn a_database_without_the_journal_schema_is_set_aside() {
        let dir = tempfile::tempdir().unwrap();
        {
            let c = rusqlite::Connection::open(dir.path().join(DB)).unwrap();
            c.execute_batch("CREATE TABLE uploads (id TEXT PRIMARY KEY, other TEXT); INSERT INTO uploads VALUES ('x', 'y');")
                .unwrap();
        }
        let (j, aside) = Journal::open_or_set_aside(dir.path()).unwrap();
        assert!(aside.is_some());
        assert!(j.list().await.unwrap().is_empty());
        // The old database is intact under its new name.
        let c = rusqlite::Connection::open(aside.unwrap()).unwrap();
        let other: String = c
            .query_row("SELECT other FROM uploads", [], |r| r.get(0))
            .unwrap();
        assert_eq!(other, "y");
    }

    #[tokio::test]
    async fn a_row_this_version_cannot_read_sets_the_journal_aside() {
        let dir = tempfile::tempdir().unwrap();
        let j = Journal::open(dir.path()).unwrap();
        add(&j, "u1").await;
        j.call(|c| c.execute("UPDATE uploads SET target = 'not json'", []))
            .await
            .unwrap();
        drop(j);
        let (_, aside) = Journal::open_or_set_aside(dir.path()).unwrap();
        assert!(aside.is_some());
    }

    #[tokio::test]
    async fn a_healthy_journal_is_opened_as_it_is() {
        let dir = tempfile::tempdir().unwrap();
        let j = Journal::open(dir.path()).unwrap();
        add(&j, "u1").await;
        add(&j, "u2").await;
        drop(j);
        let (j, aside) = Journal::open_or_set_aside(dir.path()).unwrap();
        assert_eq!(aside, None);
        assert_eq!(j.list().await.unwrap().len(), 2);
        assert!(aside_files(dir.path()).is_empty());
    }

    #[test]
    fn other_failures_are_reported_and_move_nothing() {
        let dir = tempfile::tempdir().unwrap();
        // journal.db is a directory: not damage, nothing to set aside.
        std::fs::create_dir(dir.path().join(DB)).unwrap();
        assert!(Journal::open_or_set_aside(dir.path()).is_err());
        assert!(dir.path().join(DB).is_dir());
        assert!(aside_files(dir.path()).is_empty());
    }

    #[test]
    fn two_set_asides_in_the_same_second_keep_both() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join(DB), b"first").unwrap();
        let a = set_aside(dir.path()).unwrap();
        std::fs::write(dir.path().join(DB), b"second").unwrap();
        let b = set_aside(dir.path()).unwrap();
        assert_ne!(a, b);
        assert_eq!(std::fs::read(a).unwrap(), b"first");
        assert_eq!(std::fs::read(b).unwrap(), b"second");
    }
}
