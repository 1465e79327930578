//! What processing leaves beside an asset's original, under
//! `DATA/media/<asset id>/`: `index.json` (the segments the playlist and the
//! indexed MP4 are made of, and which object they point into), `poster.jpg`,
//! and for uploads that were not already a fragmented MP4 the player can
//! use, `video.mp4` (the remuxed or transcoded fragmented MP4). All of it is
//! derived from the original, so a lost or half-written output is simply
//! made again: every file is written under a temporary name, fsynced and
//! renamed into place, so a reader (or a crash) sees the old file or the new
//! one, never a part.

use std::io::Write as _;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use spool_media::index::{InitInfo, Segment};

/// Which object an asset's segments are byte ranges of.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Source {
    /// The uploaded bytes themselves (a fragmented MP4: zero copies).
    Original,
    /// `video.mp4` beside the index (the processor's output).
    Processed,
}

/// The finished index of an asset, as `index.json` holds it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Index {
    pub source: Source,
    /// Bytes of the object the segments point into.
    pub object_len: u64,
    pub init: InitInfo,
    pub segments: Vec<Segment>,
    pub duration_ms: u64,
}

/// The outputs folder of one asset.
#[derive(Debug, Clone)]
pub struct Outputs {
    dir: PathBuf,
}

pub const POSTER: &str = "poster.jpg";
pub const PROCESSED: &str = "video.mp4";
const INDEX: &str = "index.json";

impl Outputs {
    pub fn new(data_dir: &Path, asset_id: &str) -> Outputs {
        debug_assert!(crate::ids::is_valid_id(asset_id));
        Outputs {
            dir: data_dir.join("media").join(asset_id),
        }
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }

    /// A temporary path beside `name` for a writer that renames it in with
    /// [`Outputs::commit`].
    pub fn temp(&self, name: &str) -> std::io::Result<PathBuf> {
        std::fs::create_dir_all(&self.dir)?;
        Ok(self.dir.join(format!(".{name}.tmp")))
    }

    /// Makes the temporary file durable and renames it to `name`.
    pub fn commit(&self, name: &str) -> std::io::Result<()> {
        let tmp = self.dir.join(format!(".{name}.tmp"));
        std::fs::File::open(&tmp)?.sync_all()?;
        std::fs::rename(&tmp, self.dir.join(name))?;
        std::fs::File::open(&self.dir)?.sync_all()
    }

    /// Writes `name` whole, atomically.
    pub fn write(&self, name: &str, bytes: &[u8]) -> std::io::Result<()> {
        let tmp = self.temp(name)?;
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(bytes)?;
        drop(f);
        self.commit(name)
    }

    pub fn save_index(&self, index: &Index) -> std::io::Result<()> {
        let json = serde_json::to_vec(index).map_err(std::io::Error::other)?;
        self.write(INDEX, &json)
    }

    /// The finished index, if processing wrote one (a corrupt one counts as
    /// missing: it is made again).
    pub fn load_index(&self) -> Option<Index> {
        let bytes = std::fs::read(self.path(INDEX)).ok()?;
        serde_json::from_slice(&bytes).ok()
    }

    /// Removes everything (the asset was deleted).
    pub fn remove(&self) -> std::io::Result<()> {
        match std::fs::remove_dir_all(&self.dir) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e),
            _ => Ok(()),
        }
    }
}
