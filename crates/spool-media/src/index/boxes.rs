//! What the indexer does with each top-level box once it has it whole:
//! `moov` (the track and its codec), `moof` (a fragment's timing and
//! whether it starts with a keyframe), `mdat` (where the data ends), and
//! closing a segment.

use mp4_atom::{Decode, Moof, Moov, TrunSamples};

use super::*;

impl Indexer {
    pub(super) fn on_moov(&mut self, buf: &[u8], pos: u64) -> Result<(), MediaError> {
        if self.track.is_some() {
            return Err(MediaError::Malformed(format!("a second moov at {pos}")));
        }
        let moov = Moov::decode(&mut &buf[..])
            .map_err(|e| MediaError::Malformed(format!("moov at {pos}: {e}")))?;
        let Some(mvex) = &moov.mvex else {
            return Err(MediaError::Unsupported(
                "not a fragmented MP4 (moov has no mvex)".into(),
            ));
        };
        let video = moov
            .trak
            .iter()
            .find(|t| t.mdia.hdlr.handler == FourCC::new(b"vide"))
            .ok_or_else(|| MediaError::Unsupported("no video track".into()))?;
        let track_id = video.tkhd.track_id;
        let timescale = video.mdia.mdhd.timescale;
        if timescale == 0 {
            return Err(MediaError::Malformed("video mdhd timescale is 0".into()));
        }
        let entry = video.mdia.minf.stbl.stsd.codecs.first();
        let mut width = video.tkhd.width.integer() as u32;
        let mut height = video.tkhd.height.integer() as u32;
        if let Some(v) = entry
            .and_then(|c| c.visual())
            .filter(|_| width == 0 || height == 0)
        {
            width = v.width as u32;
            height = v.height as u32;
        }
        let mut codecs = Vec::new();
        match entry.and_then(|c| codec::video(c).or_else(|| codec::fourcc(c))) {
            Some(c) => codecs.push(c),
            None => {
                return Err(MediaError::Unsupported(
                    "the video track has no sample entry".into(),
                ));
            }
        }
        for t in moov
            .trak
            .iter()
            .filter(|t| t.mdia.hdlr.handler == FourCC::new(b"soun"))
        {
            if let Some(c) = t.mdia.minf.stbl.stsd.codecs.first().and_then(codec::audio) {
                if !codecs.contains(&c) {
                    codecs.push(c);
                }
                break;
            }
        }
        let trex = mvex.trex.iter().find(|t| t.track_id == track_id);
        self.track = Some(Track {
            info: InitInfo {
                len: 0,
                timescale,
                track_id,
                width,
                height,
                codecs: codecs.join(","),
            },
            default_duration: trex.map_or(0, |t| t.default_sample_duration),
            default_flags: trex.map_or(0, |t| t.default_sample_flags),
        });
        Ok(())
    }

    fn fragment(&self, moof: &Moof) -> Fragment {
        let mut f = Fragment {
            has_video: false,
            sync: false,
            base: None,
            duration: 0,
        };
        let Some(track) = self.track.as_ref() else {
            return f;
        };
        for traf in moof
            .traf
            .iter()
            .filter(|t| t.tfhd.track_id == track.info.track_id)
        {
            let dur = traf
                .tfhd
                .default_sample_duration
                .unwrap_or(track.default_duration);
            let flags = traf
                .tfhd
                .default_sample_flags
                .unwrap_or(track.default_flags);
            if f.base.is_none() && !f.has_video {
                f.base = traf.tfdt.as_ref().map(|t| t.base_media_decode_time);
            }
            for trun in &traf.trun {
                if let Some(first) = trun.samples.get(0).filter(|_| !f.has_video) {
                    f.has_video = true;
                    f.sync = is_sync(first.flags.unwrap_or(flags));
                }
                match &trun.samples {
                    // A count from the file: no loop over it.
                    TrunSamples::Inherited { count, .. } => {
                        f.duration = f
                            .duration
                            .saturating_add(u64::from(*count) * u64::from(dur));
                    }
                    TrunSamples::Explicit(entries) => {
                        for s in entries {
                            f.duration = f
                                .duration
                                .saturating_add(u64::from(s.duration.unwrap_or(dur)));
                        }
                    }
                }
            }
        }
        f
    }

    pub(super) fn on_moof(&mut self, buf: &[u8], pos: u64, end: u64) -> Result<(), MediaError> {
        let moof = Moof::decode(&mut &buf[..])
            .map_err(|e| MediaError::Malformed(format!("moof at {pos}: {e}")))?;
        let f = self.fragment(&moof);
        let start = f.base.unwrap_or(self.next_dts);
        self.next_dts = start.saturating_add(f.duration);
        let join = match &self.open {
            None => false,
            Some(o) => {
                !o.has_video || !f.has_video || (self.boundary == Boundary::NextKeyframe && !f.sync)
            }
        };
        if let Some(open) = self.open.as_mut().filter(|_| join) {
            if f.has_video && !open.has_video {
                if !f.sync {
                    tracing::warn!(
                        offset = pos,
                        "first video moof does not start with a keyframe"
                    );
                }
                open.has_video = true;
                open.start = start;
            }
            open.duration = open.duration.saturating_add(f.duration);
            open.data_end = end;
            open.awaiting_mdat = true;
            return Ok(());
        }
        if f.has_video && !f.sync {
            if self.boundary == Boundary::EveryMoof
                && (self.open.is_some() || !self.segments.is_empty())
            {
                tracing::warn!(
                    offset = pos,
                    "moof does not start with a keyframe; it becomes its own segment"
                );
            } else {
                tracing::warn!(offset = pos, "first moof does not start with a keyframe");
            }
        }
        if let Some(open) = self.open.take() {
            self.close(open, Some(pos));
        }
        self.open = Some(Open {
            offset: pos,
            start,
            duration: f.duration,
            data_end: end,
            awaiting_mdat: true,
            has_video: f.has_video,
        });
        Ok(())
    }

    pub(super) fn on_mdat(&mut self, end: u64) {
        let Some(open) = self.open.as_mut() else {
            return;
        };
        open.data_end = end;
        let first = std::mem::replace(&mut open.awaiting_mdat, false);
        let close = first && open.has_video && self.boundary == Boundary::EveryMoof;
        if close && let Some(open) = self.open.take() {
            self.close(open, None);
        }
    }

    /// Closes `open`, reaching to `next` (the next segment's offset) or to
    /// the end of its last mdat.
    pub(super) fn close(&mut self, open: Open, next: Option<u64>) {
        let end = next.unwrap_or(open.data_end);
        self.segments.push(Segment {
            offset: open.offset,
            len: end - open.offset,
            start: open.start,
            duration: open.duration,
        });
    }
}

/// Whether sample flags mark a sync sample: `sample_depends_on == 2` (does
/// not depend on others), or the non-sync bit clear and not marked as
/// depending on others.
pub(super) fn is_sync(flags: u32) -> bool {
    let depends_on = (flags >> 24) & 0b11;
    depends_on == 2 || (flags & NON_SYNC == 0 && depends_on != 1)
}
