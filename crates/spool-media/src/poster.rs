//! The poster: a representative frame (not a black or blank first frame)
//! as a JPEG at most `max_width` wide, chosen among a few candidate frames by
//! how much there is to see in them (the spread of their luma). Each
//! candidate is found by seeking to the keyframe at or before it and
//! decoding forward a bounded number of frames; where the file cannot seek
//! (a fragmented MP4 without an index, a file still being written) the
//! frames are taken in one forward pass instead, and a truncated tail just
//! ends the search.

use std::path::Path;

use ff::format::Pixel;
use ff::software::scaling;
use ff::{Dictionary, Packet, Rational, codec, decoder, encoder, frame};
use ffmpeg_next as ff;

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

    let mut picker = Picker::new(max_width);
    let mut reader = Reader::open(&ictx, vi)?;
    let mut seek_failed = false;
    for &c in &cands {
        let ts = c as i64 * i64::from(ff::ffi::AV_TIME_BASE) / 1000;
        // ffmpeg-next passes the range end as avformat_seek_file's inclusive max_ts.
        if ictx.seek(ts, ..ts).is_err() {
            seek_failed = true;
            break;
        }
        reader.decoder.flush();
        reader.ended = false;
        if let Some((f, at)) = reader.frame_near(&mut ictx, c, MAX_FORWARD_FRAMES) {
            picker.offer(&f, at)?;
        }
    }
    if seek_failed {
        // Start over: a failed seek can leave the demuxer anywhere.
        let mut ictx = open_input(path)?;
        let mut reader = Reader::open(&ictx, vi)?;
        for &c in &cands {
            match reader.frame_near(&mut ictx, c, usize::MAX) {
                Some((f, at)) => picker.offer(&f, at)?,
                None => break,
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
    /// The input (or what is complete of it) is exhausted.
    ended: bool,
}

impl Reader {
    fn open(ictx: &ff::format::context::Input, vi: usize) -> Result<Self, MediaError> {
        let st = ictx
            .stream(vi)
            .ok_or_else(|| MediaError::Ffmpeg("video stream vanished".into()))?;
        let mut ctx = codec::context::Context::from_parameters(st.parameters())?;
        ctx.set_threading(codec::threading::Config::count(0));
        Ok(Reader {
            decoder: ctx.decoder().video()?,
            vi,
            tb: st.time_base(),
            ended: false,
        })
    }

    /// Decodes forward to the first frame at or after `target_ms`, giving up
    /// after `max_frames` (or at the end of what can be read) with the last
    /// frame decoded. Read errors end the input rather than fail: on an
    /// upload in progress the last fragment is usually incomplete.
    fn frame_near(
        &mut self,
        ictx: &mut ff::format::context::Input,
        target_ms: u64,
        max_frames: usize,
    ) -> Option<(frame::Video, u64)> {
        let mut last: Option<(frame::Video, u64)> = None;
        let mut decoded = 0usize;
        let mut packet = Packet::empty();
        let mut frame = frame::Video::empty();
        loop {
            while self.decoder.receive_frame(&mut frame).is_ok() {
                let at = frame
                    .timestamp()
                    .map(|t| (t as f64 * f64::from(self.tb) * 1000.0).max(0.0) as u64)
                    .unwrap_or(0);
                decoded += 1;
                let done = at + 1 >= target_ms || decoded >= max_frames;
                last = Some((std::mem::replace(&mut frame, frame::Video::empty()), at));
                if done {
                    return last;
                }
            }
            if self.ended {
                return last;
            }
            match packet.read(ictx) {
                Ok(()) if packet.stream() == self.vi => {
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
    scaler: Option<((Pixel, u32, u32), scaling::Context)>,
    best: Option<(f64, frame::Video, u64)>,
}

impl Picker {
    fn new(max_width: u32) -> Self {
        Picker {
            max_width,
            scaler: None,
            best: None,
        }
    }

    fn offer(&mut self, src: &frame::Video, at_ms: u64) -> Result<(), MediaError> {
        let key = (src.format(), src.width(), src.height());
        let (w, h) = fit(src.width(), src.height(), self.max_width);
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
        Ok(())
    }

    fn finish(self) -> Result<Poster, MediaError> {
        let (_, frame, at_ms) = self
            .best
            .ok_or_else(|| MediaError::Ffmpeg("no video frame could be decoded".into()))?;
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
