//! The encoding thread and its drain loop. For each frame: convert
//! BGRA → YUV 4:2:0 (scaling if asked); when the frame's timestamp crosses
//! a fragment boundary, close the current fragment (flush the muxer's last
//! moof + mdat, fsync, announce) and force the frame to be a keyframe; when
//! it crosses a chunk boundary inside a fragment, close just the chunk; then
//! apply a changed bitrate cap, send the frame and receive its packets (x264
//! with zero latency hands each frame's packet back at once). At the end:
//! send EOF, receive the last packets, close the last fragment.

// Flushing one fragment of FFmpeg's mp4 muxer (frag_custom) has no safe
// wrapper in ffmpeg-next: av_write_frame(ctx, NULL) and avio_flush.
#![allow(unsafe_code)]

use std::sync::Arc;
use std::sync::mpsc::{Receiver, Sender};
use std::thread::JoinHandle;
use std::time::Duration;

use ff::format::Pixel;
use ff::{Dictionary, Rational, codec, encoder, picture, software::scaling};
use ffmpeg_next as ff;
use spool_capture::{Captured, Frame};

use crate::audio::AudioTrack;
use crate::{Chunk, Config, Cut, EncodeError, Event, Fragment, RateCap, Summary};

/// Milliseconds: the encoder's time base (capture timestamps are monotonic
/// milliseconds since the start, so drops keep the timing right).
const TIME_BASE: Rational = Rational(1, 1000);

/// How far behind a fragment's end its sound is taken at a cut in full
/// flow (more than the sources' hold and a chunk: nothing to wait for).
const AUDIO_LAG_MS: i64 = 100;

/// An open encoder writing one fragmented MP4.
pub struct Encoder {
    config: Config,
    octx: ff::format::context::Output,
    encoder: encoder::Video,
    scaler: scaling::Context,
    src: ff::frame::Video,
    dst: ff::frame::Video,
    ost_time_base: Rational,
    events: Sender<Event>,
    frame_ms: i64,
    // Fragment bookkeeping.
    written: u64,
    index: u64,
    next_boundary_ms: i64,
    fragment_first_ms: Option<i64>,
    fragment_frames: u64,
    /// Where the fragment being written starts in the file.
    fragment_offset: u64,
    // Chunk bookkeeping (inside the fragment being written).
    chunk_ms: Option<i64>,
    next_chunk_ms: i64,
    chunk_first_ms: Option<i64>,
    chunk_frames: u64,
    chunk_index: u32,
    /// The cap to follow, and the one x264 was last given (kbit/s).
    rate: Option<Arc<RateCap>>,
    applied_kbps: u32,
    last_pts_ms: i64,
    /// Where the last pause closed a fragment, until the next frame.
    paused_at_ms: Option<i64>,
    /// Where Stop was pressed: the last frame lasts until then.
    end_ms: Option<i64>,
    frames: u64,
    /// The newest packet, held back until the next one tells its duration
    /// (the muxer takes a fragment's last sample duration from the packet).
    held: Option<ff::Packet>,
    /// The sound track, when recording sound.
    audio: Option<AudioTrack>,
}

fn io_err(path: &std::path::Path) -> impl FnOnce(std::io::Error) -> EncodeError + '_ {
    move |source| EncodeError::Io {
        path: path.display().to_string(),
        source,
    }
}

impl Encoder {
    /// Opens the output and writes the init segment (announced as `Init`).
    pub fn open(config: Config, events: Sender<Event>) -> Result<Encoder, EncodeError> {
        if !(Duration::from_millis(500)..=Duration::from_secs(10)).contains(&config.fragment) {
            return Err(EncodeError::Invalid(
                "the fragment duration must be between 0.5 s and 10 s".into(),
            ));
        }
        if !(1..=240).contains(&config.fps) || config.width < 2 || config.height < 2 {
            return Err(EncodeError::Invalid("bad frame rate or frame size".into()));
        }
        ff::init()?;
        ff::log::set_level(ff::log::Level::Error);
        let (ow, oh) = config.output_size();
        let mut octx = ff::format::output_as(&config.path, "mp4")?;
        let codec = encoder::find_by_name("libx264").ok_or(EncodeError::NoEncoder)?;
        let global_header = octx
            .format()
            .flags()
            .contains(ff::format::Flags::GLOBAL_HEADER);
        let mut ost = octx.add_stream(codec)?;
        let mut enc = codec::context::Context::new_with_codec(codec)
            .encoder()
            .video()?;
        enc.set_width(ow);
        enc.set_height(oh);
        enc.set_format(Pixel::YUV420P);
        enc.set_time_base(TIME_BASE);
        enc.set_frame_rate(Some(Rational(config.fps as i32, 1)));
        let gop = (config.fps as f64 * config.fragment.as_secs_f64())
            .round()
            .max(1.0) as u32;
        // Keyframes come where fragments start (forced); none in between.
        enc.set_gop(gop.saturating_mul(4));
        enc.set_max_b_frames(0);
        if global_header {
            enc.set_flags(codec::Flags::GLOBAL_HEADER);
        }
        let applied_kbps = config.rate.as_ref().map_or(0, |r| r.get());
        if applied_kbps > 0 {
            // VBV must be on from the start for x264 to take new limits
            // between frames (x264_encoder_reconfig ignores VBV otherwise).
            set_vbv(unsafe_ctx(&mut enc), applied_kbps);
        }
        let mut opts = Dictionary::new();
        opts.set("preset", &config.preset);
        opts.set("tune", "zerolatency");
        opts.set("crf", &config.crf.to_string());
        opts.set("forced-idr", "1");
        opts.set("x264-params", "scenecut=0");
        let encoder = enc.open_with(opts).map_err(|e| {
            EncodeError::Invalid(format!("opening libx264 (preset {:?}): {e}", config.preset))
        })?;
        ost.set_parameters(&encoder);
        ost.set_time_base(TIME_BASE);
        let audio = match config.audio.clone() {
            Some(mixer) => Some(AudioTrack::add(&mut octx, mixer)?),
            None => None,
        };
        let mut mux = Dictionary::new();
        // frag_custom: fragments are cut exactly where we flush; skip_trailer:
        // nothing follows the last fragment, so the file is init + fragments
        // whether it ends cleanly or not.
        mux.set(
            "movflags",
            "frag_custom+empty_moov+default_base_moof+skip_trailer",
        );
        octx.write_header_with(mux)?;
        let ost_time_base = octx.stream(0).map(|s| s.time_base()).unwrap_or(TIME_BASE);
        let scaler = scaling::Context::get(
            Pixel::BGRA,
            config.width,
            config.height,
            Pixel::YUV420P,
            ow,
            oh,
            scaling::Flags::BILINEAR,
        )?;
        let src = ff::frame::Video::new(Pixel::BGRA, config.width, config.height);
        let dst = ff::frame::Video::new(Pixel::YUV420P, ow, oh);
        let frame_ms = (1000 / config.fps as i64).max(1);
        let mut this = Encoder {
            octx,
            encoder,
            scaler,
            src,
            dst,
            ost_time_base,
            events,
            frame_ms,
            written: 0,
            index: 0,
            next_boundary_ms: 0,
            fragment_first_ms: None,
            fragment_frames: 0,
            last_pts_ms: -1,
            paused_at_ms: None,
            end_ms: None,
            frames: 0,
            held: None,
            audio,
            fragment_offset: 0,
            chunk_ms: config
                .chunk
                .filter(|c| *c < config.fragment)
                .map(|c| c.max(Config::MIN_CHUNK).as_millis() as i64),
            next_chunk_ms: 0,
            chunk_first_ms: None,
            chunk_frames: 0,
            chunk_index: 0,
            rate: config.rate.clone(),
            applied_kbps,
            config,
        };
        let len = this.flush_to_disk()?;
        this.written = len;
        this.fragment_offset = len;
        let _ = this.events.send(Event::Init { len });
        Ok(this)
    }

    /// Flushes FFmpeg's buffers to the file and fsyncs it; returns its size.
    fn flush_to_disk(&mut self) -> Result<u64, EncodeError> {
        // SAFETY: the output context is open; pb is its I/O context.
        unsafe {
            let ctx = self.octx.as_mut_ptr();
            if !(*ctx).pb.is_null() {
                ff::ffi::avio_flush((*ctx).pb);
            }
        }
        let path = &self.config.path;
        let f = std::fs::File::open(path).map_err(io_err(path))?;
        f.sync_data().map_err(io_err(path))?;
        Ok(f.metadata().map_err(io_err(path))?.len())
    }

    /// Encodes one captured frame.
    pub fn push(&mut self, frame: &Frame) -> Result<(), EncodeError> {
        let mut pts = frame.pts.as_millis() as i64;
        // Timestamps strictly increase even if two grabs share a millisecond.
        if pts <= self.last_pts_ms {
            pts = self.last_pts_ms + 1;
        }
        // The first frame after a pause is taken at once on resume, a grab's
        // latency after the pause point: place it exactly there, so the
        // timeline has neither a gap nor an overlap.
        if let Some(p) = self.paused_at_ms.take() {
            pts = p;
        }
        let starts_fragment = self.fragment_first_ms.is_none() || pts >= self.next_boundary_ms;
        if starts_fragment {
            let frag_ms = self.config.fragment.as_millis() as i64;
            if self.fragment_frames > 0 {
                self.close_fragment(Some(pts), Cut::Duration)?;
            }
            if self.fragment_first_ms.is_none() {
                // The first fragment, or the first after a pause: a full one.
                self.next_boundary_ms = pts + frag_ms;
            }
            while self.next_boundary_ms <= pts {
                self.next_boundary_ms += frag_ms;
            }
            self.fragment_first_ms = Some(pts);
            self.next_chunk_ms = pts + self.chunk_ms.unwrap_or(frag_ms);
        } else if let Some(chunk_ms) = self.chunk_ms
            && pts >= self.next_chunk_ms
            && self.chunk_frames > 0
        {
            // A chunk inside the fragment: no keyframe, just a moof + mdat
            // the uploader can send now.
            self.flush_chunk(Some(pts), AUDIO_LAG_MS, false)?;
            while self.next_chunk_ms <= pts {
                self.next_chunk_ms += chunk_ms;
            }
        }
        if self.chunk_first_ms.is_none() {
            self.chunk_first_ms = Some(pts);
        }
        self.apply_rate();
        self.convert(frame)?;
        self.dst.set_pts(Some(pts));
        self.dst.set_kind(if starts_fragment {
            picture::Type::I
        } else {
            picture::Type::None
        });
        self.send_frame()?;
        self.receive_packets()?;
        self.last_pts_ms = pts;
        self.fragment_frames += 1;
        self.chunk_frames += 1;
        self.frames += 1;
        Ok(())
    }

    /// Hands x264 a cap that changed since the last frame (libx264's
    /// wrapper reconfigures VBV when `rc_max_rate`/`rc_buffer_size` differ
    /// from what it runs with).
    fn apply_rate(&mut self) {
        let Some(kbps) = self.rate.as_ref().map(|r| r.get()) else {
            return;
        };
        if kbps != self.applied_kbps && self.applied_kbps > 0 {
            // SAFETY: the encoder context is open and owned by this thread;
            // libx264 reads these fields at the next frame.
            set_vbv(unsafe { &mut *self.encoder.as_mut_ptr() }, kbps);
            self.applied_kbps = kbps;
        }
    }

    fn convert(&mut self, frame: &Frame) -> Result<(), EncodeError> {
        if frame.width != self.config.width || frame.height != self.config.height {
            return Err(EncodeError::Invalid(format!(
                "frame of {}x{} in a {}x{} recording",
                frame.width, frame.height, self.config.width, self.config.height
            )));
        }
        let row = frame.width as usize * 4;
        let stride = self.src.stride(0);
        let plane = self.src.data_mut(0);
        for (y, src_row) in frame.data.chunks_exact(row).enumerate() {
            plane[y * stride..y * stride + row].copy_from_slice(src_row);
        }
        self.scaler.run(&self.src, &mut self.dst)?;
        Ok(())
    }

    fn send_frame(&mut self) -> Result<(), EncodeError> {
        self.encoder.send_frame(&self.dst)?;
        Ok(())
    }

    fn send_eof(&mut self) -> Result<(), EncodeError> {
        self.encoder.send_eof()?;
        Ok(())
    }

    fn receive_packets(&mut self) -> Result<(), EncodeError> {
        let mut packet = ff::Packet::empty();
        while self.encoder.receive_packet(&mut packet).is_ok() {
            let next_dts = packet.dts().or(packet.pts());
            self.write_held(next_dts)?;
            self.held = Some(std::mem::replace(&mut packet, ff::Packet::empty()));
        }
        Ok(())
    }

    /// Writes the held packet, lasting until `until_ms` (or one frame).
    fn write_held(&mut self, until_ms: Option<i64>) -> Result<(), EncodeError> {
        let Some(mut packet) = self.held.take() else {
            return Ok(());
        };
        let start = packet.dts().or(packet.pts()).unwrap_or(0);
        let duration = until_ms
            .map(|u| u - start)
            .filter(|d| *d > 0)
            .unwrap_or(self.frame_ms);
        packet.set_stream(0);
        packet.set_duration(duration);
        packet.rescale_ts(TIME_BASE, self.ost_time_base);
        packet.write(&mut self.octx)?;
        Ok(())
    }

    /// The recording was paused at `at` on its timeline: the fragment being
    /// written ends there (its last frame lasts until the pause), and the
    /// first frame after resume starts a new one with a keyframe.
    pub fn pause(&mut self, at: Duration) -> Result<(), EncodeError> {
        if self.fragment_frames == 0 {
            return Ok(());
        }
        // x264 (zerolatency, no B-frames) has handed back every packet but
        // the held one; the pause point is after the last frame.
        let at_ms = (at.as_millis() as i64).max(self.last_pts_ms + 1);
        self.close_fragment(Some(at_ms), Cut::Pause)?;
        self.fragment_first_ms = None;
        self.paused_at_ms = Some(at_ms);
        Ok(())
    }

    /// Stop was pressed at `at` on the recording's timeline: the last frame
    /// lasts until then, so the video is exactly as long as the recording.
    pub fn end_at(&mut self, at: Duration) {
        self.end_ms = Some(at.as_millis() as i64);
    }

    /// Closes the chunk being written: `next_first_ms` is where it ends (the
    /// next frame's timestamp, or the pause point; `None`: one frame after
    /// its last). Its sound is taken up to `audio_lag_ms` before its end.
    /// Returns where it ends.
    fn flush_chunk(
        &mut self,
        next_first_ms: Option<i64>,
        audio_lag_ms: i64,
        last: bool,
    ) -> Result<i64, EncodeError> {
        self.write_held(next_first_ms)?;
        let end = next_first_ms.unwrap_or(self.last_pts_ms + self.frame_ms);
        if let Some(a) = self.audio.as_mut() {
            // The chunk carries the sound of its own span; in full flow, up
            // to a little before its end (the sources run a few tens of ms
            // behind real time, and waiting for them would hold up the
            // video), the rest riding in the next chunk. A pause and the end
            // take it exactly.
            let until = (end - audio_lag_ms).max(0) as u64;
            a.feed_until(&mut self.octx, Duration::from_millis(until))?;
            a.pending = 0;
        }
        // SAFETY: a NULL packet asks the mp4 muxer (frag_custom) to write
        // out the fragment it has buffered: one moof + mdat.
        let ret = unsafe { ff::ffi::av_write_frame(self.octx.as_mut_ptr(), std::ptr::null_mut()) };
        if ret < 0 {
            return Err(EncodeError::Ffmpeg(ff::Error::from(ret)));
        }
        let size = self.flush_to_disk()?;
        let first = self
            .chunk_first_ms
            .or(self.fragment_first_ms)
            .unwrap_or(0)
            .max(0);
        let chunk = Chunk {
            fragment: self.index,
            index: self.chunk_index,
            offset: self.written,
            len: size - self.written,
            first_pts: Duration::from_millis(first as u64),
            duration: Duration::from_millis((end - first).max(0) as u64),
            frames: self.chunk_frames,
            last,
        };
        self.written = size;
        self.chunk_index += 1;
        self.chunk_frames = 0;
        self.chunk_first_ms = None;
        let _ = self.events.send(Event::Chunk(chunk));
        Ok(end)
    }

    /// Closes the fragment being written with its last chunk; `next_first_ms`
    /// as for [`Self::flush_chunk`].
    fn close_fragment(
        &mut self,
        next_first_ms: Option<i64>,
        reason: Cut,
    ) -> Result<(), EncodeError> {
        let lag = if reason == Cut::Duration {
            AUDIO_LAG_MS
        } else {
            0
        };
        let end = self.flush_chunk(next_first_ms, lag, true)?;
        let first = self.fragment_first_ms.unwrap_or(0);
        let fragment = Fragment {
            index: self.index,
            offset: self.fragment_offset,
            len: self.written - self.fragment_offset,
            first_pts: Duration::from_millis(first.max(0) as u64),
            duration: Duration::from_millis((end - first).max(0) as u64),
            frames: self.fragment_frames,
            chunks: self.chunk_index,
            reason,
        };
        self.fragment_offset = self.written;
        self.index += 1;
        self.fragment_frames = 0;
        self.chunk_index = 0;
        let _ = self.events.send(Event::Fragment(fragment));
        Ok(())
    }

    /// Ends the stream: the remaining frames become the last fragment.
    pub fn finish(mut self) -> Result<Summary, EncodeError> {
        self.send_eof()?;
        self.receive_packets()?;
        // Never before the last frame has begun (nor ending at it).
        let end = self.end_ms.map(|e| e.max(self.last_pts_ms + 1));
        // Stopped while paused: the recording ends at the pause.
        let audio_end = self
            .paused_at_ms
            .or(end)
            .unwrap_or(self.last_pts_ms + self.frame_ms);
        if let Some(a) = self.audio.as_mut() {
            a.finish(
                &mut self.octx,
                Duration::from_millis(audio_end.max(0) as u64),
            )?;
        }
        let audio_pending = self.audio.as_ref().is_some_and(|a| a.pending > 0);
        if self.fragment_frames > 0 || audio_pending {
            // (Only the encoder's last sound frames when stopped while
            // paused: a fragment of sound alone.)
            self.close_fragment(end.or(Some(audio_end)), Cut::End)?;
        }
        self.octx.write_trailer()?;
        let bytes = self.flush_to_disk()?;
        // Stopped while paused: the recording ends at the pause.
        let end_ms = self
            .paused_at_ms
            .or(end)
            .unwrap_or(self.last_pts_ms + self.frame_ms);
        let duration = Duration::from_millis(end_ms.max(0) as u64);
        Ok(Summary {
            frames: self.frames,
            fragments: self.index,
            bytes,
            duration,
            audio: self.audio.as_ref().map(AudioTrack::duration),
        })
    }
}

/// Runs an encoder on its own thread over what capture hands it until the
/// channel closes (the capture stopped), announcing init and fragments on
/// `events`.
pub fn spawn(
    config: Config,
    frames: Receiver<Captured>,
    events: Sender<Event>,
) -> std::io::Result<JoinHandle<Result<Summary, EncodeError>>> {
    std::thread::Builder::new()
        .name("spool-encode".into())
        .spawn(move || {
            let mut enc = Encoder::open(config, events)?;
            for item in frames {
                match item {
                    Captured::Frame(frame) => enc.push(&frame)?,
                    Captured::Paused { at } => enc.pause(at)?,
                    Captured::End { at } => enc.end_at(at),
                }
            }
            enc.finish()
        })
}

/// The encoder context of an encoder being set up.
fn unsafe_ctx(enc: &mut encoder::video::Video) -> &mut ff::ffi::AVCodecContext {
    // SAFETY: the context is allocated and not yet shared with any thread.
    unsafe { &mut *enc.as_mut_ptr() }
}

/// A VBV cap of `kbps` with a one-second buffer: bounded bytes per second
/// of video, so an uplink of that rate keeps up.
fn set_vbv(ctx: &mut ff::ffi::AVCodecContext, kbps: u32) {
    let bps = i64::from(kbps) * 1000;
    ctx.rc_max_rate = bps;
    ctx.rc_buffer_size = i32::try_from(bps).unwrap_or(i32::MAX);
}
