//! How an asset's row becomes the view the API, the share page and the
//! webhooks show: the playback URLs exist only once they work, the title
//! comes from the metadata, and nothing of a deleted asset is linked.

use super::{AssetError, AssetStatus, AssetView, Db, DbError, ms_to_rfc3339};

/// An asset's row as [`super::Ops::asset`] reads it.
pub(super) struct AssetRow {
    pub(super) id: String,
    pub(super) upload_id: String,
    pub(super) status: String,
    pub(super) metadata: String,
    pub(super) created: i64,
    pub(super) updated: i64,
    pub(super) offset: u64,
    pub(super) length: Option<u64>,
    pub(super) error_code: Option<String>,
    pub(super) error_message: Option<String>,
    pub(super) live: bool,
    pub(super) duration_ms: Option<u64>,
    pub(super) width: Option<u32>,
    pub(super) height: Option<u32>,
    pub(super) progress: Option<f64>,
    pub(super) poster: bool,
    pub(super) has_audio: bool,
}

impl AssetRow {
    pub(super) fn into_view(self, db: &Db) -> Result<AssetView, DbError> {
        let status = AssetStatus::parse(&self.status)?;
        let error = match (status, self.error_code) {
            (AssetStatus::Errored, Some(code)) => Some(AssetError {
                code,
                message: self.error_message.unwrap_or_default(),
            }),
            _ => None,
        };
        let metadata: serde_json::Map<String, serde_json::Value> =
            serde_json::from_str(&self.metadata).map_err(|e| DbError::Corrupt(e.to_string()))?;
        let title = ["title", "name"]
            .iter()
            .find_map(|k| metadata.get(*k).and_then(|v| v.as_str()))
            .filter(|t| !t.trim().is_empty())
            .map(str::to_owned);
        let base = db.share_url(&self.id);
        let gone = status == AssetStatus::Deleted;
        // Live while uploading with a playable segment; the same playlist,
        // ended, once ready. Nothing of a deleted asset is linked.
        let playable = !gone && (status == AssetStatus::Ready || self.live);
        let live = self.live && matches!(status, AssetStatus::Uploading | AssetStatus::Waiting);
        Ok(AssetView {
            share_url: base.clone(),
            status,
            offset: self.offset,
            length: self.length,
            metadata,
            created_at: ms_to_rfc3339(self.created)?,
            updated_at: ms_to_rfc3339(self.updated)?,
            error,
            duration_ms: self.duration_ms,
            width: self.width,
            height: self.height,
            has_audio: self.has_audio,
            playback_url: playable.then(|| format!("{base}/playlist.m3u8")),
            mp4_url: (!gone && status == AssetStatus::Ready).then(|| format!("{base}/video.mp4")),
            thumbnail_url: (!gone && self.poster).then(|| format!("{base}/poster.jpg")),
            live,
            progress: (status == AssetStatus::Processing).then_some(self.progress.unwrap_or(0.0)),
            title,
            id: self.id,
            upload_id: self.upload_id,
        })
    }
}
