//! Incremental index of a fragmented MP4 (ISO BMFF with `mvex`, as Spool's
//! fragmenter and `movflags=frag_keyframe` write it): fed the bytes of an
//! upload as they become durable, it reads only box headers and the small
//! `moov`/`moof` boxes (never `mdat` payloads; parsed with the `mp4-atom`
//! crate) and reports the init segment and the keyframe-led segments, each a
//! byte range of the one object, with its exact start and duration in the
//! video track's timescale.
//!
//! CONTRACT (filled in by the index helper; keep these signatures).

use std::io::{Read, Seek};

use serde::{Deserialize, Serialize};

use crate::MediaError;

/// One HLS segment: a run of `moof`+`mdat` pairs that starts with a moof
/// whose first video sample is a sync sample, up to (not including) the next
/// such moof. Contiguous: `segments[i].offset + segments[i].len ==
/// segments[i+1].offset`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Segment {
    /// Byte offset of its first `moof` in the object.
    pub offset: u64,
    /// Bytes, up to the next segment (or the end of its last `mdat`).
    pub len: u64,
    /// Decode time of its first video sample (`tfdt`), in `timescale` units.
    pub start: u64,
    /// Sum of its video samples' durations, in `timescale` units.
    pub duration: u64,
}

/// What the init segment (everything before the first `moof`) says.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InitInfo {
    /// Bytes from 0 to the first `moof` (ftyp + moov + anything between).
    pub len: u64,
    /// The video track's `mdhd` timescale.
    pub timescale: u32,
    pub track_id: u32,
    pub width: u32,
    pub height: u32,
    /// RFC 6381 codec string of the video track (e.g. `avc1.64001f`,
    /// `vp09.00.31.08`, `av01.0.08M.08`), and of the audio track if any
    /// (`mp4a.40.2`, `opus`), comma-separated as HLS `CODECS` wants them.
    pub codecs: String,
}

/// When a segment is known to be closed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Boundary {
    /// When the next keyframe-led `moof` is seen (or at [`Indexer::finish`]):
    /// right for any producer, one fragment later.
    NextKeyframe,
    /// As soon as its `moof`+`mdat` are complete: the producer promises that
    /// every `moof` starts with a keyframe (Spool's fragmenter does). A moof
    /// that breaks the promise is logged and becomes its own segment.
    EveryMoof,
}

/// The incremental indexer. Feed it with [`Indexer::advance`] as bytes
/// become durable; it never reads past `available`.
#[derive(Debug, Clone)]
pub struct Indexer {
    _todo: (),
}

impl Indexer {
    pub fn new(boundary: Boundary) -> Self {
        let _ = boundary;
        unimplemented!("index helper")
    }

    /// Reads the structure of bytes `[where it stopped, available)` from
    /// `src` (positioned anywhere; the indexer seeks). Returns how many
    /// segments this call closed. Errors: [`MediaError::Unsupported`] when the
    /// object is not an MP4 or not fragmented (a regular MP4 with its samples
    /// in `moov`), [`MediaError::Malformed`] for a broken structure; after an
    /// error the indexer stays failed and returns it again.
    pub fn advance<R: Read + Seek>(
        &mut self,
        src: &mut R,
        available: u64,
    ) -> Result<usize, MediaError> {
        let _ = (src, available);
        unimplemented!("index helper")
    }

    /// The object is complete at `total` bytes: closes the open segment.
    /// Malformed if the bytes up to `total` do not end on a box boundary.
    pub fn finish<R: Read + Seek>(&mut self, src: &mut R, total: u64) -> Result<(), MediaError> {
        let _ = (src, total);
        unimplemented!("index helper")
    }

    pub fn init(&self) -> Option<&InitInfo> {
        unimplemented!("index helper")
    }

    /// The closed segments, in order.
    pub fn segments(&self) -> &[Segment] {
        unimplemented!("index helper")
    }

    /// Whether [`Indexer::finish`] has run.
    pub fn is_finished(&self) -> bool {
        unimplemented!("index helper")
    }

    /// Sum of the closed segments' durations, in milliseconds.
    pub fn duration_ms(&self) -> u64 {
        unimplemented!("index helper")
    }
}

/// Indexes a complete object in one go (a processed file, or an upload
/// after a restart).
pub fn index_all<R: Read + Seek>(
    src: &mut R,
    total: u64,
    boundary: Boundary,
) -> Result<Indexer, MediaError> {
    let mut ix = Indexer::new(boundary);
    ix.advance(src, total)?;
    ix.finish(src, total)?;
    Ok(ix)
}
