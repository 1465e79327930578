//! A video file played as if it were the screen (`--source file:PATH`), so
//! benchmarks and demos get realistic, repeatable motion. The file is
//! demuxed and decoded with FFmpeg's software decoder and converted to BGRA
//! at the stream's size; tick `index` of a recording at `fps` shows the frame
//! on screen `index / fps` seconds into the file, so the video plays at its
//! own speed whatever the recording's rate (frames are skipped when it is
//! lower, repeated when it is higher). At the end the file starts over and
//! the timeline keeps growing, one file length (the end of its last frame)
//! per pass, so a recording can be as long as it likes.

use std::path::{Path, PathBuf};

use ff::codec::{self, threading};
use ff::format::{self, Pixel};
use ff::software::scaling;
use ff::util::frame;
use ff::{Packet, Rational, media};
use ffmpeg_next as ff;

use crate::{CaptureError, Source};

/// Decoder threads: two keep 1080p30 H.264 ahead of real time on a 2-core
/// machine without taking the core the encoder needs.
const DECODER_THREADS: usize = 2;

/// A video file as a [`Source`].
pub struct FileSource {
    path: PathBuf,
    reader: Reader,
    scaler: Scaler,
    width: u32,
    height: u32,
    time_base: Rational,
    /// The first frame's timestamp: file times count from it.
    origin: i64,
    /// One frame's length at the file's rate, in `time_base` units: the
    /// length of a last frame that does not state its own.
    nominal: i64,
    frame_rate: Option<f64>,
    tick_rate: u32,
    /// The file's length once the first pass reached its end.
    length: Option<i64>,
    /// The frame on show since `shown_start` (file time)…
    shown: frame::Video,
    shown_start: i64,
    /// …and the one decoded after it, shown from `ahead_start`; `None`: the
    /// file ends after `shown`.
    ahead: frame::Video,
    ahead_start: Option<i64>,
    /// `shown` in BGRA, converted only when a tick shows it, so frames that
    /// a low tick rate skips are decoded but never converted.
    bgra: frame::Video,
    converted: bool,
}

impl FileSource {
    /// Opens the video file at `path` for a recording ticking at `fps`, and
    /// decodes and converts its first frame, so that a missing file, one
    /// without a video stream or one that cannot be decoded fails here,
    /// before recording starts.
    pub fn open(path: &Path, fps: u32) -> Result<FileSource, CaptureError> {
        check_tick_rate(fps)?;
        init()?;
        let fail = |reason: String| CaptureError::File {
            path: path.to_owned(),
            reason,
        };
        let (mut reader, stream) = Reader::open(path).map_err(fail)?;
        let time_base = stream.time_base;
        if time_base.numerator() <= 0 || time_base.denominator() <= 0 {
            return Err(fail(format!(
                "the video stream's time base {time_base} is invalid"
            )));
        }

        let mut shown = frame::Video::empty();
        match reader.decode(&mut shown) {
            Ok(true) => {}
            Ok(false) => return Err(fail("no video frame could be decoded".into())),
            Err(e) => return Err(fail(format!("cannot decode the video: {e}"))),
        }
        let (width, height) = match (reader.decoder.width(), reader.decoder.height()) {
            (0, _) | (_, 0) => (shown.width(), shown.height()),
            size => size,
        };
        if width == 0 || height == 0 {
            return Err(fail("the video has no picture size".into()));
        }
        let scaler = Scaler::new(&shown, width, height).map_err(fail)?;
        let frame_rate = stream.frame_rate.map(f64::from);
        let mut source = FileSource {
            path: path.to_owned(),
            reader,
            scaler,
            width,
            height,
            time_base,
            origin: shown.timestamp().unwrap_or(0),
            nominal: 0,
            frame_rate,
            tick_rate: fps,
            length: None,
            shown,
            shown_start: 0,
            ahead: frame::Video::empty(),
            ahead_start: None,
            bgra: frame::Video::empty(),
            converted: false,
        };
        source.nominal = stream
            .frame_rate
            .map(|r| source.frame_ticks(r))
            .unwrap_or(0);
        source.ahead_start = source.decode_ahead()?;
        if source.nominal == 0 {
            // No rate in the container: the gap between the first two
            // frames, else a 30 fps frame.
            source.nominal = match source.ahead_start {
                Some(next) if next > 0 => next,
                _ => source.frame_ticks(Rational::new(30, 1)),
            };
        }
        source.convert()?;
        Ok(source)
    }

    /// The file's own frame rate (its average, else its base rate), if the
    /// container states one.
    pub fn frame_rate(&self) -> Option<f64> {
        self.frame_rate
    }

    /// The file time (in `time_base` units from the first frame) of tick
    /// `index`: `index / tick_rate` seconds, rounded down.
    fn tick_time(&self, index: u64) -> i64 {
        let num = i128::from(index) * i128::from(self.time_base.denominator());
        let den = i128::from(self.tick_rate) * i128::from(self.time_base.numerator());
        i64::try_from(num / den).unwrap_or(i64::MAX)
    }

    /// One frame's length at `rate`, in `time_base` units (at least 1).
    fn frame_ticks(&self, rate: Rational) -> i64 {
        let num = i128::from(self.time_base.denominator()) * i128::from(rate.denominator());
        let den = i128::from(self.time_base.numerator()) * i128::from(rate.numerator());
        if den <= 0 {
            return 1;
        }
        i64::try_from(num / den).unwrap_or(i64::MAX).max(1)
    }

    /// Makes `shown` the frame on screen at file time `t` (not yet wrapped
    /// round the file's length).
    fn show_at(&mut self, t: i64) -> Result<(), CaptureError> {
        // Converges in at most three rounds: one rewind for a time before
        // the frame on show, and one more when the first pass runs off the
        // end, which measures the length to wrap `t` by.
        for _ in 0..3 {
            let local = match self.length {
                Some(len) => t.rem_euclid(len),
                None => t,
            };
            if local < self.shown_start {
                self.rewind()?;
            }
            // Decode forward; frames a low tick rate skips are never converted.
            while let Some(next) = self.ahead_start
                && next <= local
            {
                std::mem::swap(&mut self.shown, &mut self.ahead);
                self.shown_start = next;
                self.converted = false;
                self.ahead_start = self.decode_ahead()?;
            }
            if self.ahead_start.is_some() {
                return Ok(());
            }
            // The frame on show is the file's last: it lasts to the file's end.
            let len = match self.length {
                Some(len) => len,
                None => {
                    let stated = self.shown.packet().duration;
                    let last = if stated > 0 { stated } else { self.nominal };
                    let len = self.shown_start.saturating_add(last).max(1);
                    self.length = Some(len);
                    len
                }
            };
            if local < len {
                return Ok(());
            }
        }
        // Only a file whose timestamps go backwards gets here: keep showing
        // what is decoded rather than stopping the recording.
        tracing::debug!(path = %self.path.display(), t, "no frame covers this time");
        Ok(())
    }

    /// Starts the file over: seeks to its start, or, where the container
    /// cannot seek, opens it again.
    fn rewind(&mut self) -> Result<(), CaptureError> {
        if let Err(e) = self.reader.rewind(self.origin, self.time_base) {
            tracing::debug!(path = %self.path.display(), "seeking to the start failed ({e}): reopening");
            self.reader = Reader::open(&self.path).map_err(|r| self.fail(r))?.0;
        }
        match self.reader.decode(&mut self.shown) {
            Ok(true) => {}
            Ok(false) => return Err(self.fail("no frame after starting over".into())),
            Err(e) => return Err(self.fail(format!("cannot decode after starting over: {e}"))),
        }
        // The first frame shows from the start even if the seek landed a
        // little off, so a rewind always covers the time it was made for.
        self.shown_start = 0;
        self.converted = false;
        self.ahead_start = self.decode_ahead()?;
        Ok(())
    }

    /// Decodes the frame after `shown` into `ahead`; its file time, or
    /// `None` at the end of the file.
    fn decode_ahead(&mut self) -> Result<Option<i64>, CaptureError> {
        match self.reader.decode(&mut self.ahead) {
            Ok(true) => Ok(Some(match self.ahead.timestamp() {
                Some(ts) => ts.saturating_sub(self.origin),
                None => self.shown_start.saturating_add(self.nominal),
            })),
            Ok(false) => Ok(None),
            Err(e) => Err(self.fail(format!("cannot decode the video: {e}"))),
        }
    }

    /// Converts `shown` into `bgra` unless it already is.
    fn convert(&mut self) -> Result<(), CaptureError> {
        if self.converted {
            return Ok(());
        }
        let def = self.scaler.0.input();
        if (def.format, def.width, def.height)
            != (self.shown.format(), self.shown.width(), self.shown.height())
        {
            // The stream changed size or format mid-file: same output size.
            self.scaler =
                Scaler::new(&self.shown, self.width, self.height).map_err(|r| self.fail(r))?;
        }
        self.scaler
            .0
            .run(&self.shown, &mut self.bgra)
            .map_err(|e| self.fail(format!("cannot convert a frame to BGRA: {e}")))?;
        self.converted = true;
        Ok(())
    }

    fn fail(&self, reason: String) -> CaptureError {
        CaptureError::File {
            path: self.path.clone(),
            reason,
        }
    }
}

impl Source for FileSource {
    fn size(&self) -> (u32, u32) {
        (self.width, self.height)
    }

    fn describe(&self) -> String {
        let rate = match self.frame_rate {
            Some(r) if (r - r.round()).abs() < 0.005 => format!(" @ {r:.0} fps"),
            Some(r) => format!(" @ {r:.2} fps"),
            None => String::new(),
        };
        format!(
            "file {} {}x{}{rate}",
            self.path.display(),
            self.width,
            self.height
        )
    }

    fn grab(&mut self, index: u64, buf: &mut Vec<u8>) -> Result<(), CaptureError> {
        self.show_at(self.tick_time(index))?;
        self.convert()?;
        // swscale pads its rows; the frame handed on is tightly packed.
        let row = self.width as usize * 4;
        let stride = self.bgra.stride(0);
        let data = self.bgra.data(0);
        let len = row * self.height as usize;
        buf.resize(len, 0);
        if stride == row {
            buf.copy_from_slice(&data[..len]);
        } else {
            for (dst, src) in buf.chunks_exact_mut(row).zip(data.chunks(stride)) {
                dst.copy_from_slice(&src[..row]);
            }
        }
        Ok(())
    }

    fn set_tick_rate(&mut self, fps: u32) {
        // `start` has checked the rate; a bad one elsewhere keeps the old.
        if check_tick_rate(fps).is_ok() {
            self.tick_rate = fps;
        }
    }
}

fn check_tick_rate(fps: u32) -> Result<(), CaptureError> {
    if (1..=240).contains(&fps) {
        Ok(())
    } else {
        Err(CaptureError::Invalid(format!(
            "frame rate {fps} is outside 1..=240"
        )))
    }
}

/// Initialises FFmpeg once, with its log kept to errors (its warnings about
/// a file's quirks would otherwise land on the CLI's terminal).
fn init() -> Result<(), CaptureError> {
    static INIT: std::sync::OnceLock<Result<(), String>> = std::sync::OnceLock::new();
    INIT.get_or_init(|| {
        ff::init().map_err(|e| e.to_string())?;
        ff::util::log::set_level(ff::util::log::Level::Error);
        Ok(())
    })
    .clone()
    .map_err(|e| CaptureError::Unsupported(format!("FFmpeg: {e}")))
}

/// What the source keeps of the video stream it plays.
struct StreamInfo {
    time_base: Rational,
    frame_rate: Option<Rational>,
}

/// The demuxer and decoder: packets of the one video stream in, frames out.
struct Reader {
    input: format::context::Input,
    decoder: codec::decoder::Video,
    stream: usize,
    /// The demuxer ran out and the decoder was told: what it still holds
    /// comes out, then the end.
    draining: bool,
}

impl Reader {
    /// Opens `path` and a software decoder for its best video stream; the
    /// reason why not.
    fn open(path: &Path) -> Result<(Reader, StreamInfo), String> {
        let input = format::input(path).map_err(|e| format!("cannot open: {e}"))?;
        let stream = input
            .streams()
            .best(media::Type::Video)
            .ok_or_else(|| "no video stream".to_owned())?;
        let valid = |r: Rational| r.numerator() > 0 && r.denominator() > 0;
        let info = StreamInfo {
            time_base: stream.time_base(),
            frame_rate: [stream.avg_frame_rate(), stream.rate()]
                .into_iter()
                .find(|r| valid(*r)),
        };
        let index = stream.index();
        let id = stream.parameters().id();
        let mut ctx = codec::context::Context::from_parameters(stream.parameters())
            .map_err(|e| format!("cannot read the video stream's parameters: {e}"))?;
        ctx.set_threading(threading::Config {
            kind: threading::Type::Frame,
            count: DECODER_THREADS,
            ..Default::default()
        });
        let decoder = ctx
            .decoder()
            .video()
            .map_err(|e| format!("cannot decode its {id:?} video: {e}"))?;
        Ok((
            Reader {
                input,
                decoder,
                stream: index,
                draining: false,
            },
            info,
        ))
    }

    /// Decodes the next frame into `frame`: `false` at the end of the file.
    fn decode(&mut self, frame: &mut frame::Video) -> Result<bool, ff::Error> {
        loop {
            match self.decoder.receive_frame(frame) {
                Ok(()) => return Ok(true),
                Err(ff::Error::Eof) => return Ok(false),
                Err(ff::Error::Other { errno }) if errno == ff::util::error::EAGAIN => {}
                Err(e) => return Err(e),
            }
            if self.draining {
                // Nothing more to feed: a decoder still asking is done.
                return Ok(false);
            }
            self.feed()?;
        }
    }

    /// Sends the decoder the stream's next packet, or the end of the file.
    fn feed(&mut self) -> Result<(), ff::Error> {
        loop {
            // A fresh packet each time costs no allocation (the struct is
            // on the stack, FFmpeg owns the data); dropping it unrefs.
            let mut packet = Packet::empty();
            match packet.read(&mut self.input) {
                Ok(()) if packet.stream() == self.stream => {
                    return match self.decoder.send_packet(&packet) {
                        // One damaged packet: the decoder conceals it in the
                        // frames that follow, so play on.
                        Err(ff::Error::InvalidData) => {
                            tracing::debug!("skipping a damaged video packet");
                            Ok(())
                        }
                        other => other,
                    };
                }
                Ok(()) => {}
                Err(ff::Error::Eof) => {
                    self.draining = true;
                    return self.decoder.send_eof();
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// Seeks back to the first frame (`origin`, in `time_base` units) and
    /// empties the decoder.
    fn rewind(&mut self, origin: i64, time_base: Rational) -> Result<(), ff::Error> {
        // avformat_seek_file without a stream counts in AV_TIME_BASE units.
        let ts = i128::from(origin) * i128::from(time_base.numerator()) * 1_000_000
            / i128::from(time_base.denominator());
        let ts = i64::try_from(ts).unwrap_or(0);
        self.input.seek(ts, ..ts)?;
        self.decoder.flush();
        self.draining = false;
        Ok(())
    }
}

/// The BGRA converter. ffmpeg-next leaves its swscale context `!Send` (it
/// holds a raw pointer), which would keep a `FileSource` off the capture
/// thread it is opened for.
struct Scaler(scaling::Context);

// SAFETY: an SwsContext has no thread affinity: libswscale keeps no
// thread-local state tied to it, and, like every FFmpeg context, it may be
// used from any thread as long as only one uses it at a time. A `Scaler` is
// owned by one `FileSource` and only reached through `&mut`, so it is never
// used from two threads at once; it only moves, once, to the capture thread.
#[allow(unsafe_code)]
unsafe impl Send for Scaler {}

impl Scaler {
    /// A converter from `input`'s format and size to BGRA at `width`×`height`.
    fn new(input: &frame::Video, width: u32, height: u32) -> Result<Scaler, String> {
        scaling::Context::get(
            input.format(),
            input.width(),
            input.height(),
            Pixel::BGRA,
            width,
            height,
            scaling::Flags::BILINEAR,
        )
        .map(Scaler)
        .map_err(|e| format!("cannot convert {:?} video to BGRA: {e}", input.format()))
    }
}
