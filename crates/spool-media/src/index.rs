//! Incremental index of a fragmented MP4 (ISO BMFF with `mvex`, as Spool's
//! fragmenter and `movflags=frag_keyframe` write it): fed the bytes of an
//! upload as they become durable, it reads only box headers and the small
//! `moov`/`moof` boxes (never `mdat` payloads; parsed with the `mp4-atom`
//! crate) and reports the init segment and the keyframe-led segments, each a
//! byte range of the one object, with its exact start and duration in the
//! video track's timescale.
//!
//! CONTRACT (filled in by the index helper; keep these signatures).

use std::io::{Read, Seek, SeekFrom};

use mp4_atom::FourCC;

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
    /// A video sample entry without a rule here gives its four-character
    /// code (e.g. `mp4v`); audio without one is left out.
    pub codecs: String,
}

impl InitInfo {
    /// Whether it has a sound track a browser plays (AAC or Opus).
    pub fn has_audio(&self) -> bool {
        self.codecs
            .split(',')
            .any(|c| c.starts_with("mp4a.") || c == "opus")
    }
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

mod boxes;
mod codec;

/// The largest `moov`/`moof` the indexer reads into memory.
const MAX_HEADER_BOX: u64 = 64 << 20;

/// `sample_is_non_sync_sample` in the sample flags (ISO/IEC 14496-12 §8.8.3.1).
const NON_SYNC: u32 = 0x0001_0000;

/// A failure the indexer keeps returning.
#[derive(Debug, Clone)]
enum Failure {
    Unsupported(String),
    Malformed(String),
}

impl Failure {
    fn to_error(&self) -> MediaError {
        match self {
            Failure::Unsupported(m) => MediaError::Unsupported(m.clone()),
            Failure::Malformed(m) => MediaError::Malformed(m.clone()),
        }
    }
}

/// What `moov` says about the video track, beyond [`InitInfo`].
#[derive(Debug, Clone)]
struct Track {
    info: InitInfo,
    /// trex defaults of the video track.
    default_duration: u32,
    default_flags: u32,
}

/// The segment being built.
#[derive(Debug, Clone)]
struct Open {
    offset: u64,
    start: u64,
    duration: u64,
    /// End of its last `mdat` (or of its last `moof` before one is seen).
    data_end: u64,
    /// Its last moof has not been followed by an mdat yet.
    awaiting_mdat: bool,
    /// It has video samples (a moof with only audio in it, as
    /// `frag_every_frame` writes them, waits for the video moof that follows).
    has_video: bool,
}

/// What one `moof` says about the video track.
struct Fragment {
    has_video: bool,
    sync: bool,
    base: Option<u64>,
    duration: u64,
}

/// The incremental indexer. Feed it with [`Indexer::advance`] as bytes
/// become durable; it never reads past `available`.
///
/// Only the video track decides: a segment starts at a moof whose first
/// video sample is a sync sample; a moof with no video samples (audio only)
/// joins the segment before it, or the one after it when it comes first.
/// With [`Boundary::EveryMoof`] a segment ends at the end of its mdat, so a
/// box between that mdat and the next moof (`free`, `emsg`, `prft`) is in no
/// segment; with [`Boundary::NextKeyframe`] it belongs to the segment before.
#[derive(Debug, Clone)]
pub struct Indexer {
    boundary: Boundary,
    /// Offset of the next top-level box to read.
    pos: u64,
    failed: Option<Failure>,
    track: Option<Track>,
    init: Option<InitInfo>,
    open: Option<Open>,
    segments: Vec<Segment>,
    /// Decode time after the last fragment, for moofs without `tfdt`.
    next_dts: u64,
    finished: bool,
}

impl Indexer {
    pub fn new(boundary: Boundary) -> Self {
        Indexer {
            boundary,
            pos: 0,
            failed: None,
            track: None,
            init: None,
            open: None,
            segments: Vec::new(),
            next_dts: 0,
            finished: false,
        }
    }

    /// Reads the structure of bytes `[where it stopped, available)` from
    /// `src` (positioned anywhere; the indexer seeks). Returns how many
    /// segments this call closed. Errors: [`MediaError::Unsupported`] when the
    /// object is not an MP4 or not fragmented (a regular MP4 with its samples
    /// in `moov`), [`MediaError::Malformed`] for a broken structure; after an
    /// error the indexer stays failed and returns it again.
    ///
    /// I/O errors are not sticky: the indexer stays where it was and the call
    /// can be repeated.
    pub fn advance<R: Read + Seek>(
        &mut self,
        src: &mut R,
        available: u64,
    ) -> Result<usize, MediaError> {
        if let Some(f) = &self.failed {
            return Err(f.to_error());
        }
        if self.finished {
            return Ok(0);
        }
        let before = self.segments.len();
        let r = self.run(src, available, false);
        self.settle(r)?;
        Ok(self.segments.len() - before)
    }

    /// The object is complete at `total` bytes: closes the open segment.
    /// Malformed if the bytes up to `total` do not end on a box boundary.
    pub fn finish<R: Read + Seek>(&mut self, src: &mut R, total: u64) -> Result<(), MediaError> {
        if let Some(f) = &self.failed {
            return Err(f.to_error());
        }
        if self.finished {
            return Ok(());
        }
        let r = self.run(src, total, true);
        self.settle(r)?;
        let r = self.close_at_end(total);
        self.settle(r)?;
        self.finished = true;
        Ok(())
    }

    pub fn init(&self) -> Option<&InitInfo> {
        self.init.as_ref()
    }

    /// The closed segments, in order.
    pub fn segments(&self) -> &[Segment] {
        &self.segments
    }

    /// Whether [`Indexer::finish`] has run.
    pub fn is_finished(&self) -> bool {
        self.finished
    }

    /// Sum of the closed segments' durations, in milliseconds.
    pub fn duration_ms(&self) -> u64 {
        let Some(init) = &self.init else { return 0 };
        if init.timescale == 0 {
            return 0;
        }
        let ticks: u128 = self.segments.iter().map(|s| s.duration as u128).sum();
        (ticks * 1000 / init.timescale as u128) as u64
    }

    /// Makes a structural failure sticky; passes I/O errors through.
    fn settle(&mut self, r: Result<(), MediaError>) -> Result<(), MediaError> {
        match r {
            Ok(()) => Ok(()),
            Err(MediaError::Unsupported(m)) => {
                self.failed = Some(Failure::Unsupported(m.clone()));
                Err(MediaError::Unsupported(m))
            }
            Err(MediaError::Malformed(m)) => {
                self.failed = Some(Failure::Malformed(m.clone()));
                Err(MediaError::Malformed(m))
            }
            Err(e) => Err(e),
        }
    }

    fn close_at_end(&mut self, total: u64) -> Result<(), MediaError> {
        if self.pos != total {
            return Err(MediaError::Malformed(format!(
                "the object ends at {total} inside a box that starts at {}",
                self.pos
            )));
        }
        if self.pos == 0 {
            return Err(MediaError::Unsupported("not an MP4 (empty)".into()));
        }
        if self.track.is_none() {
            return Err(MediaError::Unsupported(
                "not a fragmented MP4 (no moov)".into(),
            ));
        }
        if let Some(open) = self.open.take() {
            self.close(open, None);
        }
        if self.init.is_none()
            && let Some(track) = &self.track
        {
            // No fragment at all: everything is the init segment.
            let mut init = track.info.clone();
            init.len = total;
            self.init = Some(init);
        }
        Ok(())
    }

    /// Reads whole top-level boxes in `[pos, limit)`; stops at the first one
    /// that is not complete. Only advances `pos` past a box once it is
    /// handled, so an I/O error leaves the state as it was.
    fn run<R: Read + Seek>(
        &mut self,
        src: &mut R,
        limit: u64,
        at_end: bool,
    ) -> Result<(), MediaError> {
        loop {
            let pos = self.pos;
            if pos >= limit {
                return Ok(());
            }
            let avail = limit - pos;
            if avail < 8 {
                if pos == 0 && at_end {
                    return Err(MediaError::Unsupported(
                        "not an MP4 (too short for a box)".into(),
                    ));
                }
                return Ok(());
            }
            src.seek(SeekFrom::Start(pos))?;
            let mut h = [0u8; 16];
            src.read_exact(&mut h[..8])?;
            let size32 = be(&h[0..4]) as u32;
            let kind = [h[4], h[5], h[6], h[7]];
            if pos == 0 && !matches!(&kind, b"ftyp" | b"styp" | b"moov") {
                return Err(MediaError::Unsupported(format!(
                    "not an MP4 (starts with {})",
                    fourcc(&kind)
                )));
            }
            let (header_len, size) = match size32 {
                0 => {
                    if !at_end {
                        // Extends to the end of the file: wait for finish.
                        return Ok(());
                    }
                    (8u64, avail)
                }
                1 => {
                    if avail < 16 {
                        return Ok(());
                    }
                    src.read_exact(&mut h[8..16])?;
                    let large = be(&h[8..16]);
                    if large < 16 {
                        return Err(MediaError::Malformed(format!(
                            "box {} at {pos} has largesize {large}",
                            fourcc(&kind)
                        )));
                    }
                    (16, large)
                }
                n if n < 8 => {
                    return Err(MediaError::Malformed(format!(
                        "box {} at {pos} has size {n}",
                        fourcc(&kind)
                    )));
                }
                n => (8, n as u64),
            };
            if kind == *b"moof" && self.init.is_none() {
                // Everything before the first moof is the init segment.
                let Some(track) = &self.track else {
                    return Err(MediaError::Malformed(format!("moof at {pos} before moov")));
                };
                let mut init = track.info.clone();
                init.len = pos;
                self.init = Some(init);
            }
            if kind == *b"mdat" && self.init.is_none() && size != header_len {
                // A regular MP4 (moov last), or ffmpeg's frag_keyframe without
                // empty_moov: the first samples are in moov's tables, outside
                // any fragment.
                return Err(MediaError::Unsupported(if self.track.is_none() {
                    "not a fragmented MP4 (mdat before moov)".into()
                } else {
                    "not a fragmented MP4 (samples before the first moof; write it with empty_moov)"
                        .into()
                }));
            }
            if size > avail {
                return Ok(());
            }
            let end = pos + size;
            match &kind {
                b"moov" | b"moof" => {
                    if size > MAX_HEADER_BOX && kind == *b"moov" {
                        // Only sample tables make a moov this big.
                        return Err(MediaError::Unsupported(format!(
                            "not a fragmented MP4 (moov of {size} bytes)"
                        )));
                    }
                    if size > MAX_HEADER_BOX {
                        return Err(MediaError::Malformed(format!(
                            "{} at {pos} is {size} bytes",
                            fourcc(&kind)
                        )));
                    }
                    // mp4-atom decodes from a complete box (header included);
                    // rebuild a plain header for a largesize or size-0 box.
                    let body_len = size - header_len;
                    let mut buf = Vec::with_capacity(size as usize);
                    if header_len == 8 && size32 != 0 {
                        buf.extend_from_slice(&h[..8]);
                    } else if body_len + 8 <= u32::MAX as u64 {
                        buf.extend_from_slice(&((body_len + 8) as u32).to_be_bytes());
                        buf.extend_from_slice(&kind);
                    } else {
                        buf.extend_from_slice(&h[..16]);
                    }
                    let at = buf.len();
                    buf.resize(at + body_len as usize, 0);
                    src.read_exact(&mut buf[at..])?;
                    if kind == *b"moov" {
                        self.on_moov(&buf, pos)?;
                    } else {
                        self.on_moof(&buf, pos, end)?;
                    }
                }
                b"mdat" => self.on_mdat(end),
                _ => {}
            }
            self.pos = end;
        }
    }
}

/// A big-endian unsigned integer of up to 8 bytes.
pub(crate) fn be(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0, |a, b| (a << 8) | u64::from(*b))
}

fn fourcc(kind: &[u8; 4]) -> String {
    if kind.iter().all(|b| b.is_ascii_graphic() || *b == b' ') {
        format!("'{}'", String::from_utf8_lossy(kind))
    } else {
        format!(
            "0x{}",
            kind.iter().map(|b| format!("{b:02x}")).collect::<String>()
        )
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

#[cfg(test)]
mod tests;
