//! Live playback while an upload is in progress: after each chunk becomes
//! durable, the upload's [`spool_media::index::Indexer`] reads the box
//! structure of the new bytes (moof/moov only) and finds the segments that
//! closed, so the playlist grows as fragments are acknowledged and the
//! asset goes live with its first segment. The index is in memory and
//! derived from the bytes: after a restart it is rebuilt from the stored
//! prefix on first use. An upload that is not a fragmented MP4 simply has no
//! live index (it is processed once complete).
//!
//! A producer that promises every `moof` starts with a keyframe (metadata
//! `fragments: keyframe`, which Spool's recorder sends when it does not
//! chunk) gets each fragment published as soon as it is complete; any other
//! producer's segment is published when the next keyframe-led fragment
//! begins. Spool's recorder, sending CMAF chunks (`fragments: chunks`: a
//! fragment is a keyframe-led group of ~250 ms moofs), is in the second
//! case, which for it means one chunk after the fragment closed.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use spool_media::index::{Boundary, Indexer, InitInfo, Segment};

use crate::app::App;
use crate::db::{Playable, UploadRow, now_ms};

/// The metadata key and value by which a producer promises keyframe-led
/// fragments.
pub const FRAGMENTS_KEY: &str = "fragments";
pub const FRAGMENTS_KEYFRAME: &str = "keyframe";
/// The value by which a producer says its fragments are keyframe-led
/// groups of CMAF chunks (segmented at the next keyframe, like any other).
pub const FRAGMENTS_CHUNKS: &str = "chunks";

struct Entry {
    ix: Indexer,
    /// The index failed (not a fragmented MP4): nothing is live.
    failed: bool,
    /// How far the index has read.
    read_to: u64,
    /// Durations (ms) at which the provisional poster was last made.
    poster_at: Option<u64>,
}

/// The live indexes of uploads in progress, by upload id.
#[derive(Default)]
pub struct LiveIndexes {
    map: Mutex<HashMap<String, Arc<Mutex<Entry>>>>,
}

/// What the live index holds now.
#[derive(Debug, Clone)]
pub struct Snapshot {
    pub init: InitInfo,
    pub segments: Vec<Segment>,
    /// The upload is complete and the index finished: the playlist ends.
    pub ended: bool,
}

impl Snapshot {
    pub fn playable(&self) -> Playable {
        Playable {
            duration_ms: self
                .segments
                .iter()
                .map(|s| s.duration)
                .sum::<u64>()
                .saturating_mul(1000)
                / u64::from(self.init.timescale.max(1)),
            width: self.init.width,
            height: self.init.height,
            has_audio: self.init.has_audio(),
        }
    }
}

/// When an upload's segments close, by what its producer promised.
pub(crate) fn boundary(metadata: &serde_json::Map<String, serde_json::Value>) -> Boundary {
    match metadata.get(FRAGMENTS_KEY).and_then(|v| v.as_str()) {
        Some(FRAGMENTS_KEYFRAME) => Boundary::EveryMoof,
        // FRAGMENTS_CHUNKS, any other producer, or none said.
        _ => Boundary::NextKeyframe,
    }
}

impl LiveIndexes {
    fn entry(&self, upload_id: &str, boundary: Boundary) -> Arc<Mutex<Entry>> {
        let mut map = self.map.lock().unwrap_or_else(|e| e.into_inner());
        map.entry(upload_id.to_owned())
            .or_insert_with(|| {
                Arc::new(Mutex::new(Entry {
                    ix: Indexer::new(boundary),
                    failed: false,
                    read_to: 0,
                    poster_at: None,
                }))
            })
            .clone()
    }

    /// Forgets an upload's index (it ended, or its asset was deleted).
    pub fn forget(&self, upload_id: &str) {
        self.map
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(upload_id);
    }
}

/// Reads the index of `upload_id` forward to `offset` (and finishes it when
/// `complete`), on the blocking pool. `None` when the upload has no
/// playable index.
async fn advance(
    app: &App,
    upload_id: &str,
    boundary: Boundary,
    offset: u64,
    complete: bool,
) -> Option<(Snapshot, usize, Option<u64>)> {
    let path: PathBuf = match app.store.local_copy(upload_id, offset).await {
        Ok(p) => p?,
        Err(e) => {
            tracing::warn!(upload = %upload_id, error = %e, "no local copy for the live index");
            return None;
        }
    };
    let entry = app.live.entry(upload_id, boundary);
    let id = upload_id.to_owned();
    tokio::task::spawn_blocking(move || {
        let mut e = entry.lock().unwrap_or_else(|e| e.into_inner());
        if e.failed {
            return None;
        }
        let mut closed = 0;
        if offset > e.read_to || (complete && !e.ix.is_finished()) {
            let mut file = match std::fs::File::open(&path) {
                Ok(f) => f,
                Err(err) => {
                    tracing::warn!(upload = %id, error = %err, "opening an upload to index it");
                    return None;
                }
            };
            let result = e.ix.advance(&mut file, offset).and_then(|n| {
                if complete && !e.ix.is_finished() {
                    e.ix.finish(&mut file, offset).map(|()| n + 1)
                } else {
                    Ok(n)
                }
            });
            match result {
                Ok(n) => closed = n,
                Err(err) => {
                    tracing::debug!(upload = %id, error = %err, "no live index");
                    e.failed = true;
                    return None;
                }
            }
            e.read_to = offset;
        }
        let init = e.ix.init()?.clone();
        let snapshot = Snapshot {
            init,
            segments: e.ix.segments().to_vec(),
            ended: e.ix.is_finished(),
        };
        if snapshot.segments.is_empty() {
            return None;
        }
        // A provisional poster at the first segment and when the recording
        // has grown several-fold since the last one; the final one is picked
        // by the processor over the whole video.
        let ms = snapshot.playable().duration_ms;
        let poster = match e.poster_at {
            None => Some(ms),
            Some(at) if !snapshot.ended && ms >= at.saturating_mul(4).max(8_000) => Some(ms),
            _ => None,
        };
        if poster.is_some() {
            e.poster_at = poster;
        }
        Some((snapshot, closed, poster))
    })
    .await
    .ok()
    .flatten()
}

/// After the bytes of `row` (up to its offset) became durable: grows the
/// live index and, the first time it has a segment, makes the asset live.
/// Never fails the request: a video that cannot be indexed live is
/// processed once complete.
pub async fn on_progress(app: &App, row: &UploadRow) {
    let Some(asset_id) = row.asset_id.clone() else {
        return;
    };
    if row.offset == 0 {
        return;
    }
    let aid = asset_id.clone();
    let metadata = match app.db.call(move |ops| ops.asset(&aid)).await {
        Ok(Some(a)) => a.metadata,
        _ => return,
    };
    let complete = row.is_complete();
    let Some((snapshot, closed, poster)) =
        advance(app, &row.id, boundary(&metadata), row.offset, complete).await
    else {
        return;
    };
    if closed > 0 || complete {
        let p = snapshot.playable();
        let aid = asset_id.clone();
        let result = app
            .db
            .call(move |ops| ops.set_live(&aid, p, now_ms()))
            .await;
        match result {
            Ok(true) => app.events_enqueued(),
            Ok(false) => {}
            Err(e) => tracing::error!(asset = %asset_id, error = %e, "recording the live index"),
        }
    }
    if let Some(at_ms) = poster {
        crate::process::provisional_poster(app, &asset_id, &row.id, row.offset, at_ms);
    }
}

/// The live index of an upload in progress (or just completed), read
/// forward to `offset`; rebuilt from the stored bytes after a restart.
pub async fn snapshot(
    app: &App,
    upload_id: &str,
    metadata: &serde_json::Map<String, serde_json::Value>,
    offset: u64,
    complete: bool,
) -> Option<Snapshot> {
    advance(app, upload_id, boundary(metadata), offset, complete)
        .await
        .map(|(s, _, _)| s)
}
