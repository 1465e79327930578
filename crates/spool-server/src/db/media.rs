//! The asset state changes of playback and processing: live (the first
//! playable segment), what the index knows while uploading, progress, the
//! poster, and the end of processing (ready, or errored with a reason).
//! Each emits its webhook in the same transaction; each is idempotent, so a
//! job that runs again after a crash changes nothing twice.

use super::sql::{OptionalExtension, params};

use super::{AssetStatus, DbError, Ops};

/// What the index or the processor found about a video.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Playable {
    pub duration_ms: u64,
    pub width: u32,
    pub height: u32,
    /// It has a sound track.
    pub has_audio: bool,
}

impl Ops<'_> {
    fn asset_status(&self, asset_id: &str) -> Result<Option<AssetStatus>, DbError> {
        let s: Option<String> = self
            .tx
            .query_row("SELECT status FROM assets WHERE id = ?1", [asset_id], |r| {
                r.get(0)
            })
            .optional()?;
        s.map(|s| AssetStatus::parse(&s)).transpose()
    }

    /// The live index has grown: records what it knows; the first time,
    /// marks the asset live and emits `video.asset.live`. Returns whether
    /// this call made it live.
    pub fn set_live(&self, asset_id: &str, p: Playable, now: i64) -> Result<bool, DbError> {
        let first = self.tx.execute(
            "UPDATE assets SET live = 1, updated_at = ?2 WHERE id = ?1 AND live = 0 AND status IN ('waiting', 'uploading')",
            params![asset_id, now],
        )? == 1;
        self.tx.execute(
            "UPDATE assets SET duration_ms = ?2, width = ?3, height = ?4, has_audio = ?5 WHERE id = ?1",
            params![asset_id, p.duration_ms, p.width, p.height, p.has_audio],
        )?;
        if first {
            self.enqueue(asset_id, "video.asset.live", now)?;
        }
        Ok(first)
    }

    /// Processing progress, 0–1.
    pub fn set_progress(&self, asset_id: &str, progress: f64) -> Result<(), DbError> {
        self.tx.execute(
            "UPDATE assets SET progress = ?2 WHERE id = ?1 AND status = 'processing'",
            params![asset_id, progress.clamp(0.0, 1.0)],
        )?;
        Ok(())
    }

    /// The poster exists (or not).
    pub fn set_poster(&self, asset_id: &str, present: bool) -> Result<(), DbError> {
        self.tx.execute(
            "UPDATE assets SET poster = ?2 WHERE id = ?1",
            params![asset_id, present],
        )?;
        Ok(())
    }

    /// Processing finished: the asset is ready (emits `video.asset.ready`
    /// once; a repeat run of the job changes nothing). False if the asset is
    /// not processing (deleted meanwhile, or already ready).
    pub fn mark_ready(&self, asset_id: &str, p: Playable, now: i64) -> Result<bool, DbError> {
        if self.asset_status(asset_id)? != Some(AssetStatus::Processing) {
            return Ok(false);
        }
        self.tx.execute(
            "UPDATE assets SET status = 'ready', live = 0, progress = NULL, duration_ms = ?2, width = ?3, height = ?4,
                 has_audio = ?6, error_code = NULL, error_message = NULL, updated_at = ?5 WHERE id = ?1",
            params![asset_id, p.duration_ms, p.width, p.height, now, p.has_audio],
        )?;
        self.enqueue(asset_id, "video.asset.ready", now)?;
        Ok(true)
    }

    /// Processing failed for good: the asset errors with `code` (its
    /// original stays downloadable) and `video.asset.errored` goes out once.
    pub fn mark_processing_errored(
        &self,
        asset_id: &str,
        code: spool_proto::ErrorCode,
        message: &str,
        now: i64,
    ) -> Result<bool, DbError> {
        if self.asset_status(asset_id)? != Some(AssetStatus::Processing) {
            return Ok(false);
        }
        self.tx.execute(
            "UPDATE assets SET status = 'errored', live = 0, progress = NULL, error_code = ?2, error_message = ?3,
                 updated_at = ?4 WHERE id = ?1",
            params![asset_id, code.as_str(), message, now],
        )?;
        self.enqueue(asset_id, "video.asset.errored", now)?;
        Ok(true)
    }

    /// The asset of an upload, if it has one.
    pub fn asset_of_upload(&self, upload_id: &str) -> Result<Option<String>, DbError> {
        self.tx
            .query_row(
                "SELECT id FROM assets WHERE upload_id = ?1",
                [upload_id],
                |r| r.get(0),
            )
            .optional()
    }
}
