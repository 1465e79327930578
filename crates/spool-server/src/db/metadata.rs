//! Changing an asset's metadata after it was created (`PATCH
//! /v1/assets/{id}`, e.g. a rename): the changes are merged into the stored
//! object key by key, a `None` removing its key, and `video.asset.updated`
//! is enqueued in the same transaction, so the webhook carries exactly the
//! metadata that was committed and keeps its place among the asset's other
//! events.

use super::sql::{OptionalExtension as _, params};

use super::{AssetStatus, AssetView, DbError, Ops};

/// How a metadata update ended.
#[derive(Debug)]
pub enum MetadataUpdate {
    /// No asset has this id.
    NotFound,
    /// The asset was deleted; a deleted asset's metadata is frozen, so no
    /// `video.asset.updated` can follow its `video.asset.deleted`.
    Deleted,
    /// The merged metadata would grow past the limit (bytes of JSON);
    /// nothing was changed.
    TooLarge,
    /// The asset as it is now. `changed` is false when the changes left
    /// the metadata as it was (a retried request): then no event is sent
    /// and `updated_at` stays.
    Done { view: Box<AssetView>, changed: bool },
}

impl Ops<'_> {
    /// Merges `changes` into the metadata of asset `asset_id` (a `None`
    /// value removes its key) unless the result would grow past `max_json`
    /// bytes of JSON, and emits `video.asset.updated` when anything changed.
    pub fn update_metadata(
        &self,
        asset_id: &str,
        changes: &[(String, Option<String>)],
        max_json: usize,
        now: i64,
    ) -> Result<MetadataUpdate, DbError> {
        let row: Option<(String, String)> = self
            .tx
            .query_row(
                "SELECT status, metadata FROM assets WHERE id = ?1",
                [asset_id],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .optional()?;
        let Some((status, stored)) = row else {
            return Ok(MetadataUpdate::NotFound);
        };
        // Checked in the same transaction as the write, so a deletion racing
        // this request is either seen here or happens after the update.
        if AssetStatus::parse(&status)? == AssetStatus::Deleted {
            return Ok(MetadataUpdate::Deleted);
        }
        let before: serde_json::Map<String, serde_json::Value> =
            serde_json::from_str(&stored).map_err(|e| DbError::Corrupt(e.to_string()))?;
        let mut after = before.clone();
        for (key, value) in changes {
            match value {
                Some(v) => after.insert(key.clone(), serde_json::Value::String(v.clone())),
                None => after.remove(key),
            };
        }
        let changed = after != before;
        if changed {
            let json =
                serde_json::to_string(&after).map_err(|e| DbError::Corrupt(e.to_string()))?;
            // Only growth is refused, so metadata already past the limit
            // (TUS creation has none of its own) can still be trimmed.
            if json.len() > max_json && json.len() > stored.len() {
                return Ok(MetadataUpdate::TooLarge);
            }
            self.tx.execute(
                "UPDATE assets SET metadata = ?2, updated_at = ?3 WHERE id = ?1",
                params![asset_id, json, now],
            )?;
            self.enqueue(asset_id, "video.asset.updated", now)?;
        }
        let view = self
            .asset(asset_id)?
            .ok_or_else(|| DbError::Corrupt(format!("asset {asset_id} vanished")))?;
        Ok(MetadataUpdate::Done {
            view: Box::new(view),
            changed,
        })
    }
}
