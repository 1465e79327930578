//! Assets: their status, the view the API, the share page and webhooks
//! show, and reading one back with what its upload knows.

use super::sql::{OptionalExtension, params};
use serde::Serialize;

use super::view::AssetRow;
use super::{DbError, Ops};

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
    pub(crate) fn parse(s: &str) -> Result<Self, DbError> {
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

/// A new asset to insert beside its upload.
#[derive(Debug, Clone)]
pub struct NewAsset {
    pub id: String,
    pub metadata: serde_json::Map<String, serde_json::Value>,
}

impl Ops<'_> {
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
}
