//! The journal's schema, versioned with SQLite's `user_version`: each
//! migration in [`MIGRATIONS`] takes a journal from version `i` to `i + 1`
//! inside one transaction, so a journal is always at one known version.
//! Journals written before versioning report 0 and may already have some of
//! the later columns (they were added in place then), so every migration is
//! written to apply to those as well. A journal from a newer version is
//! opened as it is: newer columns are ignored, never dropped.

use rusqlite::Connection;

/// The first release's tables.
pub(super) const V1: &str = r#"
CREATE TABLE IF NOT EXISTS uploads (
    id TEXT PRIMARY KEY,
    state TEXT NOT NULL,
    target TEXT NOT NULL,
    source TEXT NOT NULL,
    options TEXT NOT NULL,
    upload_url TEXT,
    asset_id TEXT,
    share_url TEXT,
    acked INTEGER NOT NULL DEFAULT 0,
    produced INTEGER NOT NULL DEFAULT 0,
    finished INTEGER NOT NULL DEFAULT 0,
    length_declared INTEGER NOT NULL DEFAULT 0,
    sha256 TEXT,
    last_error TEXT,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS pieces (
    upload_id TEXT NOT NULL,
    seq INTEGER NOT NULL,
    path TEXT NOT NULL,
    file_offset INTEGER NOT NULL,
    len INTEGER NOT NULL,
    start INTEGER NOT NULL,
    sha256 TEXT NOT NULL,
    PRIMARY KEY (upload_id, seq)
);
"#;

type Migration = fn(&Connection) -> rusqlite::Result<()>;

/// Migration `i` takes version `i` to `i + 1`. Append only; never edit one
/// that was released.
const MIGRATIONS: &[Migration] = &[
    |c| c.execute_batch(V1),
    // The recording's title (renamed locally), added in place before
    // versioning: only where it is missing.
    |c| add_column(c, "uploads", "title", "TEXT"),
];

/// The version this code writes.
pub const VERSION: u32 = MIGRATIONS.len() as u32;

fn add_column(c: &Connection, table: &str, column: &str, decl: &str) -> rusqlite::Result<()> {
    let exists = c
        .prepare(&format!(
            "SELECT 1 FROM pragma_table_info('{table}') WHERE name = ?1"
        ))?
        .exists([column])?;
    if !exists {
        c.execute_batch(&format!("ALTER TABLE {table} ADD COLUMN {column} {decl}"))?;
    }
    Ok(())
}

/// The journal's version (0: written before versioning, or new).
pub fn version(c: &Connection) -> rusqlite::Result<u32> {
    c.query_row("PRAGMA user_version", [], |r| r.get(0))
}

/// Brings the journal to [`VERSION`], one transaction per migration.
pub fn migrate(c: &mut Connection) -> rusqlite::Result<()> {
    let from = version(c)?;
    if from > VERSION {
        tracing::warn!(
            journal = from,
            this = VERSION,
            "the journal was written by a newer Spool; opening it as it is"
        );
        return Ok(());
    }
    for (i, step) in MIGRATIONS.iter().enumerate().skip(from as usize) {
        let tx = c.transaction()?;
        step(&tx)?;
        tx.pragma_update(None, "user_version", i as u32 + 1)?;
        tx.commit()?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::journal::{Journal, SourceRecord, TargetRecord, UploadState};

    /// The DDL of the last release before versioning (V1 plus `title`, added
    /// in place; `user_version` 0), with one upload and its piece in it.
    const PREVIOUS_RELEASE: &str = include_str!("../../fixtures/journal-unversioned.sql");

    #[tokio::test]
    async fn a_journal_of_the_previous_release_opens_with_its_rows() {
        let dir = tempfile::tempdir().unwrap();
        {
            let c = Connection::open(dir.path().join("journal.db")).unwrap();
            c.execute_batch(PREVIOUS_RELEASE).unwrap();
            assert_eq!(version(&c).unwrap(), 0);
        }
        let j = Journal::open(dir.path()).unwrap();
        let rec = j.get("20260101T000000-00000001").await.unwrap().unwrap();
        assert_eq!(rec.state, UploadState::Uploading);
        assert_eq!(rec.title.as_deref(), Some("Demo"));
        assert_eq!((rec.acked, rec.produced), (5, 10));
        assert!(matches!(rec.target, TargetRecord::OnDemand { .. }));
        assert_eq!(
            rec.source,
            SourceRecord::Stream {
                label: "/tmp/rec.mp4".into()
            }
        );
        let pieces = j.pieces(&rec.id).await.unwrap();
        assert_eq!(pieces.len(), 1);
        assert_eq!(pieces[0].len, 10);
        let v = j.call(version).await.unwrap();
        assert_eq!(v, VERSION);
        drop(j);
        // Opening again changes nothing.
        let j = Journal::open(dir.path()).unwrap();
        assert_eq!(j.list().await.unwrap().len(), 1);
    }

    #[test]
    fn the_first_release_gains_the_title_column() {
        let mut c = Connection::open_in_memory().unwrap();
        c.execute_batch(V1).unwrap();
        migrate(&mut c).unwrap();
        assert_eq!(version(&c).unwrap(), VERSION);
        c.execute_batch("SELECT title FROM uploads").unwrap();
        // A new journal ends at the same version with the same columns.
        let mut fresh = Connection::open_in_memory().unwrap();
        migrate(&mut fresh).unwrap();
        assert_eq!(version(&fresh).unwrap(), VERSION);
        fresh.execute_batch("SELECT title FROM uploads").unwrap();
    }

    #[test]
    fn a_newer_journal_is_left_as_it_is() {
        let mut c = Connection::open_in_memory().unwrap();
        migrate(&mut c).unwrap();
        c.pragma_update(None, "user_version", VERSION + 5).unwrap();
        migrate(&mut c).unwrap();
        assert_eq!(version(&c).unwrap(), VERSION + 5);
    }
}
