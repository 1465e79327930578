//! An upload's own size limit: the optional `max_size` a backend gives
//! `POST /v1/on-demand`, kept in the nullable `uploads.max_size` column. The
//! column is added to a database created before it existed by [`migrate`],
//! which runs on every open and does nothing once the column is there.

use rusqlite::Connection;

use super::sql::params;

use super::{DbError, Ops, UploadRow};

/// Adds `uploads.max_size` (NULL: only the server's `--max-size` applies) to
/// a database that lacks it.
pub(super) fn migrate(conn: &Connection) -> Result<(), DbError> {
    let has: bool = conn.query_row(
        "SELECT EXISTS (SELECT 1 FROM pragma_table_info('uploads') WHERE name = 'max_size')",
        [],
        |r| r.get(0),
    )?;
    if !has {
        conn.execute("ALTER TABLE uploads ADD COLUMN max_size INTEGER", [])?;
    }
    Ok(())
}

impl Ops<'_> {
    /// Sets an upload's own size limit.
    pub fn set_max_size(&self, id: &str, max_size: u64) -> Result<(), DbError> {
        self.tx.execute(
            "UPDATE uploads SET max_size = ?2 WHERE id = ?1",
            params![id, max_size],
        )?;
        Ok(())
    }
}

impl UploadRow {
    /// The most bytes this upload may hold: its own limit if it has one,
    /// never above the server's `server_max` (which may have been lowered
    /// since the upload was created).
    pub fn size_limit(&self, server_max: u64) -> u64 {
        self.max_size.map_or(server_max, |m| m.min(server_max))
    }
}

#[cfg(test)]
mod tests {
    use super::super::Db;
    use super::*;

    /// A database made by a build without the column gains it on open, and
    /// its existing uploads read back with no limit of their own.
    #[tokio::test]
    async fn an_old_database_gains_the_column() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("spool.db");
        {
            let conn = Connection::open(&path).unwrap();
            conn.execute_batch(
                r#"CREATE TABLE uploads (
                    id TEXT PRIMARY KEY, asset_id TEXT, "offset" INTEGER NOT NULL, length INTEGER,
                    metadata TEXT NOT NULL, concat TEXT, parts TEXT, cors_origin TEXT,
                    state TEXT NOT NULL, created_at INTEGER NOT NULL, first_byte_at INTEGER,
                    expires_at INTEGER NOT NULL, sig_exp INTEGER NOT NULL);
                INSERT INTO uploads VALUES ('old', NULL, 5, NULL, '', NULL, NULL, NULL, 'active', 0, NULL, 9, 9);"#,
            )
            .unwrap();
        }
        let db = Db::open(&path, "http://spool.test", false).unwrap();
        let old = db.call(|ops| ops.upload("old")).await.unwrap().unwrap();
        assert_eq!((old.offset, old.max_size), (5, None));
        assert_eq!(old.size_limit(100), 100);
        let set = db
            .call(|ops| {
                ops.set_max_size("old", 40)?;
                ops.upload("old")
            })
            .await
            .unwrap()
            .unwrap();
        assert_eq!(set.max_size, Some(40));
        assert_eq!((set.size_limit(100), set.size_limit(30)), (40, 30));
        drop(db);
        // Opening again finds the column and leaves the data alone.
        let db = Db::open(&path, "http://spool.test", false).unwrap();
        let again = db.call(|ops| ops.upload("old")).await.unwrap().unwrap();
        assert_eq!(again.max_size, Some(40));
    }
}
