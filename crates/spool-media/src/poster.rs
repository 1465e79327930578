//! The poster: a representative frame (not a black or blank first frame)
//! as a JPEG at most `max_width` wide, turned upright as the player shows
//! it, chosen among a few candidate frames by how much there is to see in
//! them (the spread of their luma). Each candidate seeks to the keyframe at
//! or before it and takes that frame, decoding on (a bounded number of
//! frames) only when it is black or blank; where seeking fails or
//! overshoots, the frames are taken in one forward pass instead, and a
//! truncated tail (an upload in progress) just ends the search.

use std::path::Path;

use ff::format::Pixel;
use ff::software::scaling;
use ff::{Dictionary, Packet, Rational, codec, decoder, encoder, frame};
use ffmpeg_next as ff;

mod rotate;

use crate::MediaError;
use crate::normalize::fit;
use crate::probe::{best_video, duration_ms, open_input};

/// A JPEG poster.
#[derive(Debug, Clone)]
pub struct Poster {
    pub jpeg: Vec<u8>,
    pub width: u32,
    pub height: u32,
    /// Presentation time of the chosen frame in the source, in ms.
    pub at_ms: u64,
}

/// How many frames past the keyframe a seek may decode to reach its
/// candidate time: bounds the cost where keyframes are far apart (about a
/// second of video; the frame found is then "near" the candidate).
const MAX_FORWARD_FRAMES: usize = 30;

/// Candidates closer than this to the end move back by it, so they land on
/// a frame that exists.
const END_MARGIN_MS: u64 = 300;

/// An interest score below this (a near-black or near-uniform frame) sends
/// the search on past the keyframe. testsrc2 scores about 60, a dark but
/// real scene 15–30, black with encoder noise under 2.
const BORING: f64 = 8.0;

/// JPEG quantiser (FFmpeg's `-q:v` scale, 2 best … 31 worst).
const JPEG_Q: &str = "4";

/// Picks the poster of the video file at `path` (any container FFmpeg
/// reads, a fragmented MP4 included), looking at frames near each of
/// `candidates_ms` (seeking to the keyframe at or before each).
pub fn poster_from_file(
    path: &Path,
    candidates_ms: &[u64],
    max_width: u32,
) -> Result<Poster, MediaError> {
    pick(path, candidates_ms, max_width, true)
}

/// [`poster_from_file`]; `seek: false` forces the forward pass (tests).
fn pick(
    path: &Path,
    candidates_ms: &[u64],
    max_width: u32,
    seek: bool,
) -> Result<Poster, MediaError> {
    crate::init_ffmpeg()?;
    let mut ictx = open_input(path)?;
    let vi = best_video(&ictx)
        .ok_or_else(|| MediaError::Unsupported("no decodable video stream".into()))?;
    let mut cands: Vec<u64> = candidates_ms.to_vec();
    if cands.is_empty() {
        cands.push(0);
    }
    if let Some(d) = duration_ms(&ictx, vi) {
        let last = d.saturating_sub(END_MARGIN_MS);
        cands.iter_mut().for_each(|c| *c = (*c).min(last));
    }
    cands.sort_unstable();
    cands.dedup();

    let turn = ictx.stream(vi).map_or(0, |st| rotate::rotation(&st));
    let mut picker = Picker::new(max_width, turn);
    let mut reader = Reader::open(&ictx, vi)?;
    let mut seek_failed = !seek;
    // Frames already scored (time, score): candidates that land on the
    // same keyframe are not scored twice.
    let mut seen: Vec<(u64, f64)> = Vec::new();
    for &c in cands.iter().filter(|_| seek) {
        // Seek times are absolute; candidates count from the first frame
        // (MPEG-TS clocks, for one, start well above zero).
        let ts = (reader.start_ms + c) as i64 * i64::from(ff::ffi::AV_TIME_BASE) / 1000;
        // ffmpeg-next passes the range end as avformat_seek_file's
        // inclusive max_ts: the keyframe at or before `ts`.
        if ictx.seek(ts, ..ts).is_err() {
            seek_failed = true;
            break;
        }
        reader.restart();
        // The keyframe itself is usually enough, and by far the cheapest
        // frame to get. Decode on towards the candidate only when it is
        // boring (black, blank): a later frame may not be.
        let mut forward = 0;
        let mut last = None;
        while let Some((f, at)) = reader.next_frame(&mut ictx) {
            forward += 1;
            if forward == 1 {
                let score = match seen.iter().find(|(t, _)| *t == at) {
                    // The keyframe an earlier candidate landed on.
                    Some((_, s)) => *s,
                    None => {
                        let s = picker.offer(&f, at)?;
                        seen.push((at, s));
                        s
                    }
                };
                if score >= BORING {
                    break;
                }
            }
            let stop = at + 1 >= c || forward >= MAX_FORWARD_FRAMES;
            last = Some((f, at));
            if stop {
                break;
            }
        }
        // Where the forward search stopped: the candidate, the bound, or
        // the end of the input.
        if let Some((f, at)) = last
            && !seen.iter().any(|(t, _)| *t == at)
        {
            let s = picker.offer(&f, at)?;
            seen.push((at, s));
        }
        // Nothing at all after the seek: the demuxer overshot (MPEG-TS
        // seeks by byte position and can land past the last keyframe).
        if forward == 0 {
            seek_failed = true;
            break;
        }
    }
    if seek_failed {
        // Start over: a failed seek can leave the demuxer anywhere. One
        // forward pass takes the first frame at or after each candidate.
        let mut ictx = open_input(path)?;
        let mut reader = Reader::open(&ictx, vi)?;
        let mut pending = cands.iter().peekable();
        let mut last: Option<(frame::Video, u64)> = None;
        while let Some(&&c) = pending.peek() {
            let Some((f, at)) = reader.next_frame(&mut ictx) else {
                // The input ended first: its last frame stands in.
                if let Some((f, at)) = last.take() {
                    picker.offer(&f, at)?;
                }
                break;
            };
            if at + 1 >= c {
                picker.offer(&f, at)?;
                while pending.next_if(|&&n| at + 1 >= n).is_some() {}
                last = None;
            } else {
                last = Some((f, at));
            }
        }
    }
    picker.finish()
}

/// Demuxes and decodes the chosen video stream.
struct Reader {
    decoder: decoder::Video,
    vi: usize,
    tb: Rational,
    /// The stream's start time, taken off frame times.
    start_ms: u64,
    /// The input (or what is complete of it) is exhausted.
    ended: bool,
    /// Packets are skipped up to the next keyframe: some demuxers (MPEG-TS)
    /// seek to any packet, and decoding from there yields broken frames.
    need_key: bool,
}

impl Reader {
    fn open(ictx: &ff::format::context::Input, vi: usize) -> Result<Self, MediaError> {
        let st = ictx
            .stream(vi)
            .ok_or_else(|| MediaError::Ffmpeg("video stream vanished".into()))?;
        // One decoding thread (FFmpeg's default): frame threads would hold
        // back the first frame until several more packets are decoded,
        // and the first frame after a seek is usually all that is needed.
        let ctx = codec::context::Context::from_parameters(st.parameters())?;
        let start = st.start_time();
        let start_ms = if start == ff::ffi::AV_NOPTS_VALUE {
            0
        } else {
            (start as f64 * f64::from(st.time_base()) * 1000.0).max(0.0) as u64
        };
        Ok(Reader {
            decoder: ctx.decoder().video()?,
            vi,
            tb: st.time_base(),
            start_ms,
            ended: false,
            need_key: true,
        })
    }

    /// After a seek: forget the frames of the old position.
    fn restart(&mut self) {
        self.decoder.flush();
        self.ended = false;
        self.need_key = true;
    }

    /// The next decoded frame and its time in ms, `None` at the end of what
    /// can be read. Read errors end the input rather than fail: on an upload
    /// in progress the last fragment is usually incomplete.
    fn next_frame(&mut self, ictx: &mut ff::format::context::Input) -> Option<(frame::Video, u64)> {
        let mut packet = Packet::empty();
        let mut frame = frame::Video::empty();
        loop {
            if self.decoder.receive_frame(&mut frame).is_ok() {
                let at = frame
                    .timestamp()
                    .map(|t| (t as f64 * f64::from(self.tb) * 1000.0).max(0.0) as u64)
                    .unwrap_or(0)
                    .saturating_sub(self.start_ms);
                return Some((frame, at));
            }
            if self.ended {
                return None;
            }
            match packet.read(ictx) {
                Ok(()) if packet.stream() == self.vi && (packet.is_key() || !self.need_key) => {
                    self.need_key = false;
                    // A corrupt (or cut-off) packet is skipped.
                    let _ = self.decoder.send_packet(&packet);
                }
                Ok(()) | Err(ff::Error::InvalidData) => {}
                Err(_) => {
                    self.ended = true;
                    let _ = self.decoder.send_eof();
                }
            }
        }
    }
}

/// Scales candidate frames down, scores them, keeps the best.
struct Picker {
    max_width: u32,
    /// Clockwise degrees the player turns the video by.
    turn: u32,
    scaler: Option<((Pixel, u32, u32), scaling::Context)>,
    best: Option<(f64, frame::Video, u64)>,
}

impl Picker {
    fn new(max_width: u32, turn: u32) -> Self {
        Picker {
            max_width,
            turn,
            scaler: None,
            best: None,
        }
    }

    /// Scores `src` (shown at `at_ms`), keeping it if it is the best yet.
    fn offer(&mut self, src: &frame::Video, at_ms: u64) -> Result<f64, MediaError> {
        let key = (src.format(), src.width(), src.height());
        // `max_width` bounds the width as displayed, after turning.
        let (w, h) = if self.turn % 180 == 90 {
            let (dw, dh) = fit(src.height(), src.width(), self.max_width);
            (dh, dw)
        } else {
            fit(src.width(), src.height(), self.max_width)
        };
        if self.scaler.as_ref().is_none_or(|(k, _)| *k != key) {
            // Full-range YUV is what JPEG means; swscale expands the range.
            let ctx = scaling::Context::get(
                key.0,
                key.1,
                key.2,
                Pixel::YUVJ420P,
                w,
                h,
                scaling::Flags::BILINEAR,
            )?;
            self.scaler = Some((key, ctx));
        }
        let mut scaled = frame::Video::new(Pixel::YUVJ420P, w, h);
        if let Some((_, ctx)) = self.scaler.as_mut() {
            ctx.run(src, &mut scaled)?;
        }
        let s = interest(&scaled);
        if self.best.as_ref().is_none_or(|(b, _, _)| s > *b) {
            self.best = Some((s, scaled, at_ms));
        }
        Ok(s)
    }

    fn finish(self) -> Result<Poster, MediaError> {
        let (_, frame, at_ms) = self
            .best
            .ok_or_else(|| MediaError::Ffmpeg("no video frame could be decoded".into()))?;
        let frame = rotate::rotate(&frame, self.turn);
        Ok(Poster {
            jpeg: encode_jpeg(&frame)?,
            width: frame.width(),
            height: frame.height(),
            at_ms,
        })
    }
}

/// How much there is to see: the standard deviation of luma, cut down for
/// near-black frames (fades, a title card's dark background) whose little
/// spread is mostly noise.
fn interest(f: &frame::Video) -> f64 {
    let (w, h, stride) = (f.width() as usize, f.height() as usize, f.stride(0));
    let data = f.data(0);
    let (mut sum, mut sq) = (0u64, 0u64);
    for row in data.chunks(stride).take(h) {
        for &y in &row[..w] {
            sum += u64::from(y);
            sq += u64::from(y) * u64::from(y);
        }
    }
    let n = (w * h).max(1) as f64;
    let mean = sum as f64 / n;
    let sd = (sq as f64 / n - mean * mean).max(0.0).sqrt();
    if !(24.0..=240.0).contains(&mean) {
        sd * 0.25
    } else {
        sd
    }
}

/// Encodes one yuvj420p frame with FFmpeg's `mjpeg` encoder.
fn encode_jpeg(f: &frame::Video) -> Result<Vec<u8>, MediaError> {
    let mjpeg = encoder::find(codec::Id::MJPEG)
        .ok_or_else(|| MediaError::Ffmpeg("the mjpeg encoder is not available".into()))?;
    let mut enc = codec::context::Context::new_with_codec(mjpeg)
        .encoder()
        .video()?;
    enc.set_width(f.width());
    enc.set_height(f.height());
    enc.set_format(Pixel::YUVJ420P);
    enc.set_time_base(Rational(1, 25));
    enc.set_flags(codec::Flags::QSCALE);
    let mut opts = Dictionary::new();
    // A fixed quantiser: qmin = qmax pins it whatever rate control wants.
    opts.set("qmin", JPEG_Q);
    opts.set("qmax", JPEG_Q);
    let mut enc = enc.open_with(opts)?;
    let mut f = f.clone();
    f.set_pts(Some(0));
    enc.send_frame(&f)?;
    enc.send_eof()?;
    let mut packet = Packet::empty();
    enc.receive_packet(&mut packet)?;
    Ok(packet.data().map(<[u8]>::to_vec).unwrap_or_default())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The forward pass (for files that cannot seek) on a file whose first
    /// two seconds are black.
    #[test]
    fn forward_pass_without_seeking() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("b.mp4");
        let ok = std::process::Command::new("ffmpeg")
            .args(["-y", "-v", "error", "-nostdin", "-f", "lavfi", "-i"])
            .arg("color=black:size=320x180:rate=25:duration=2")
            .args([
                "-f",
                "lavfi",
                "-i",
                "testsrc2=size=320x180:rate=25:duration=2",
            ])
            .args([
                "-filter_complex",
                "[0:v][1:v]concat=n=2:v=1:a=0[v]",
                "-map",
                "[v]",
            ])
            .args(["-c:v", "libx264", "-movflags", "frag_keyframe+empty_moov"])
            .arg(&path)
            .status()
            .unwrap()
            .success();
        assert!(ok);
        let p = pick(&path, &[0, 1000, 3000, 60_000], 160, false).unwrap();
        assert!((2000..4000).contains(&p.at_ms), "{}", p.at_ms);
        assert_eq!((p.width, p.height), (160, 90));
        // Only black before the end of the candidates: still a poster.
        let p = pick(&path, &[0, 1000], 160, false).unwrap();
        assert!(p.at_ms <= 1000, "{}", p.at_ms);
    }

    #[test]
    fn interest_prefers_detail() {
        let mut flat = frame::Video::new(Pixel::YUVJ420P, 64, 64);
        flat.data_mut(0).fill(128);
        let mut busy = frame::Video::new(Pixel::YUVJ420P, 64, 64);
        busy.data_mut(0)
            .iter_mut()
            .enumerate()
            .for_each(|(i, y)| *y = if i % 2 == 0 { 40 } else { 200 });
        let mut black = frame::Video::new(Pixel::YUVJ420P, 64, 64);
        black
            .data_mut(0)
            .iter_mut()
            .enumerate()
            .for_each(|(i, y)| *y = (i % 7) as u8);
        assert!(interest(&flat) < 1.0);
        assert!(interest(&busy) > 50.0);
        assert!(interest(&black) < BORING);
    }
}
