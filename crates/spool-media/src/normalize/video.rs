//! Video re-encoding for [`super::normalize`]: decode, scale to yuv420p at
//! even dimensions (at most 3840 wide), encode with libx264 with a keyframe
//! every two seconds so the fragments stay short and keyframe-led.

use ff::format::Pixel;
use ff::software::scaling;
use ff::{Dictionary, Packet, Rational, codec, decoder, encoder, format, frame};
use ffmpeg_next as ff;

use crate::MediaError;

/// Widest output: beyond 4K, libx264 at veryfast on a server CPU is too slow
/// for an upload to become playable in reasonable time.
const MAX_WIDTH: u32 = 3840;

/// A decoder → scaler → libx264 chain writing to one output stream.
pub(super) struct VideoTranscoder {
    decoder: decoder::Video,
    encoder: encoder::Video,
    scaler: Option<(Pixel, u32, u32, scaling::Context)>,
    scaled: frame::Video,
    enc_tb: Rational,
    /// The input's start time (in `enc_tb`), taken off every timestamp.
    start: i64,
    ost_index: usize,
    last_pts: Option<i64>,
    frame_step: i64,
    /// Frames encoded, for the throughput figure.
    pub(super) frames: u64,
}

impl VideoTranscoder {
    /// Adds the H.264 output stream to `octx` for input stream `ist`.
    pub(super) fn new(
        ist: &format::stream::Stream,
        octx: &mut format::context::Output,
        start: i64,
    ) -> Result<Self, MediaError> {
        let mut dctx = codec::context::Context::from_parameters(ist.parameters())?;
        // Frame threads, as many as FFmpeg sees cores (count 0): decoding a
        // 4K HEVC upload single-threaded would starve the encoder.
        dctx.set_threading(codec::threading::Config {
            kind: codec::threading::Type::Frame,
            ..Default::default()
        });
        let decoder = dctx.decoder().video()?;
        let (w, h) = output_size(decoder.width(), decoder.height());
        let fps = frame_rate(ist);
        let in_tb = ist.time_base();
        let x264 = encoder::find_by_name("libx264")
            .ok_or_else(|| MediaError::Ffmpeg("libx264 is not available".into()))?;
        let global = octx.format().flags().contains(format::Flags::GLOBAL_HEADER);
        let ost_index = octx.add_stream(x264)?.index();
        let mut enc = codec::context::Context::new_with_codec(x264)
            .encoder()
            .video()?;
        enc.set_width(w);
        enc.set_height(h);
        enc.set_format(Pixel::YUV420P);
        // Anamorphic sources (DV, some broadcast) keep their shape.
        enc.set_aspect_ratio(decoder.aspect_ratio());
        enc.set_time_base(in_tb);
        enc.set_frame_rate(Some(fps));
        let gop = (2.0 * f64::from(fps)).round().clamp(1.0, 600.0) as u32;
        enc.set_gop(gop);
        // No B-frames: decode order is presentation order, so the first
        // packet of every fragment is the keyframe and timestamps start at 0.
        enc.set_max_b_frames(0);
        if global {
            enc.set_flags(codec::Flags::GLOBAL_HEADER);
        }
        let mut opts = Dictionary::new();
        opts.set("preset", "veryfast");
        opts.set("crf", "23");
        // A fixed keyframe interval (no scene-cut keyframes in between)
        // gives evenly sized fragments for HLS.
        opts.set(
            "x264-params",
            &format!("keyint={gop}:min-keyint={gop}:scenecut=0"),
        );
        let encoder = enc
            .open_with(opts)
            .map_err(|e| MediaError::Ffmpeg(format!("opening libx264: {e}")))?;
        let mut ost = octx
            .stream_mut(ost_index)
            .ok_or_else(|| MediaError::Ffmpeg("output stream vanished".into()))?;
        ost.set_parameters(&encoder);
        ost.set_time_base(in_tb);
        super::copy_display_matrix(ist, &mut ost);
        let step = (f64::from(in_tb.invert()) / f64::from(fps))
            .round()
            .max(1.0) as i64;
        Ok(VideoTranscoder {
            decoder,
            encoder,
            scaler: None,
            scaled: frame::Video::new(Pixel::YUV420P, w, h),
            enc_tb: in_tb,
            start,
            ost_index,
            last_pts: None,
            frame_step: step,
            frames: 0,
        })
    }

    /// Decodes `packet` and writes whatever the encoder has ready.
    pub(super) fn push(
        &mut self,
        packet: &Packet,
        octx: &mut format::context::Output,
    ) -> Result<(), MediaError> {
        // A corrupt packet costs a frame, not the whole upload.
        if self.decoder.send_packet(packet).is_err() {
            return Ok(());
        }
        self.receive_frames(octx)
    }

    /// Drains decoder and encoder at the end of the input.
    pub(super) fn finish(&mut self, octx: &mut format::context::Output) -> Result<(), MediaError> {
        let _ = self.decoder.send_eof();
        self.receive_frames(octx)?;
        self.encoder.send_eof()?;
        self.receive_packets(octx)
    }

    fn receive_frames(&mut self, octx: &mut format::context::Output) -> Result<(), MediaError> {
        let mut decoded = frame::Video::empty();
        while self.decoder.receive_frame(&mut decoded).is_ok() {
            self.scale(&decoded)?;
            // Encoder timestamps must increase; gaps and missing ones are
            // filled from the frame rate.
            let pts = match (decoded.timestamp().map(|t| t - self.start), self.last_pts) {
                (Some(t), Some(last)) if t > last => t,
                (Some(t), None) => t,
                (_, Some(last)) => last + self.frame_step,
                (None, None) => 0,
            };
            self.last_pts = Some(pts);
            self.scaled.set_pts(Some(pts));
            self.scaled.set_kind(ff::picture::Type::None);
            self.encoder.send_frame(&self.scaled)?;
            self.frames += 1;
            self.receive_packets(octx)?;
        }
        Ok(())
    }

    /// Converts `src` into `self.scaled`, (re)building the scaler when the
    /// decoded format or size changes mid-stream.
    fn scale(&mut self, src: &frame::Video) -> Result<(), MediaError> {
        let key = (src.format(), src.width(), src.height());
        if self
            .scaler
            .as_ref()
            .is_none_or(|(f, w, h, _)| (*f, *w, *h) != key)
        {
            let ctx = scaling::Context::get(
                key.0,
                key.1,
                key.2,
                Pixel::YUV420P,
                self.scaled.width(),
                self.scaled.height(),
                scaling::Flags::BILINEAR,
            )?;
            self.scaler = Some((key.0, key.1, key.2, ctx));
        }
        if let Some((_, _, _, ctx)) = self.scaler.as_mut() {
            ctx.run(src, &mut self.scaled)?;
        }
        Ok(())
    }

    fn receive_packets(&mut self, octx: &mut format::context::Output) -> Result<(), MediaError> {
        let ost_tb = octx
            .stream(self.ost_index)
            .map(|s| s.time_base())
            .unwrap_or(self.enc_tb);
        let mut encoded = Packet::empty();
        while self.encoder.receive_packet(&mut encoded).is_ok() {
            encoded.set_stream(self.ost_index);
            encoded.rescale_ts(self.enc_tb, ost_tb);
            encoded.write_interleaved(octx)?;
        }
        Ok(())
    }
}

/// Even dimensions no wider than [`MAX_WIDTH`], aspect kept.
pub(crate) fn output_size(w: u32, h: u32) -> (u32, u32) {
    fit(w, h, MAX_WIDTH)
}

/// Scales `w`×`h` down (never up) to at most `max_w` wide, both even and at
/// least 2, keeping the aspect ratio.
pub(crate) fn fit(w: u32, h: u32, max_w: u32) -> (u32, u32) {
    let tw = w.min(max_w.max(2));
    let th = (u64::from(h) * u64::from(tw) / u64::from(w.max(1))) as u32;
    ((tw & !1).max(2), (th & !1).max(2))
}

/// The stream's frame rate, 30 fps when the container does not say.
fn frame_rate(ist: &format::stream::Stream) -> Rational {
    [ist.avg_frame_rate(), ist.rate()]
        .into_iter()
        .find(|r| r.numerator() > 0 && r.denominator() > 0 && f64::from(*r) <= 240.0)
        .unwrap_or(Rational(30, 1))
}

#[cfg(test)]
mod tests {
    use super::fit;

    #[test]
    fn fit_keeps_aspect_and_evenness() {
        assert_eq!(fit(1920, 1080, 640), (640, 360));
        assert_eq!(fit(641, 361, 3840), (640, 360));
        assert_eq!(fit(7680, 4320, 3840), (3840, 2160));
        assert_eq!(fit(320, 240, 640), (320, 240));
    }
}
