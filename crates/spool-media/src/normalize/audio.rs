//! Audio re-encoding for [`super::normalize`]: decode, resample to planar
//! float 48 kHz stereo, and encode AAC-LC with FFmpeg's native encoder. The
//! encoder takes exactly `frame_size` samples per frame, so resampled
//! samples wait in a small FIFO and frames are stamped by sample count,
//! which also keeps the audio gapless whatever the input's packetisation.

use ff::format::Sample;
use ff::format::sample::Type as SampleType;
use ff::software::resampling;
use ff::{ChannelLayout, Packet, Rational, Rescale, codec, decoder, encoder, format, frame};
use ffmpeg_next as ff;

use crate::MediaError;

const RATE: u32 = 48_000;
const BIT_RATE: usize = 160_000;
const OUT_FORMAT: Sample = Sample::F32(SampleType::Planar);

/// A decoder → resampler → AAC chain writing to one output stream.
pub(super) struct AudioTranscoder {
    decoder: decoder::Audio,
    encoder: encoder::Audio,
    resampler: Option<resampling::Context>,
    /// Resampled samples not yet encoded, one Vec per channel (L, R).
    fifo: [Vec<f32>; 2],
    frame_size: usize,
    /// Where the next encoded frame starts, in 1/48000 s.
    next_pts: Option<i64>,
    in_tb: Rational,
    /// The input's start time in `in_tb`, taken off every timestamp.
    start: i64,
    ost_index: usize,
}

impl AudioTranscoder {
    /// Adds the AAC output stream to `octx` for input stream `ist`.
    pub(super) fn new(
        ist: &format::stream::Stream,
        octx: &mut format::context::Output,
        start: i64,
    ) -> Result<Self, MediaError> {
        let decoder = codec::context::Context::from_parameters(ist.parameters())?
            .decoder()
            .audio()?;
        let aac = encoder::find_by_name("aac")
            .ok_or_else(|| MediaError::Ffmpeg("the aac encoder is not available".into()))?;
        let global = octx.format().flags().contains(format::Flags::GLOBAL_HEADER);
        let ost_index = octx.add_stream(aac)?.index();
        let mut enc = codec::context::Context::new_with_codec(aac)
            .encoder()
            .audio()?;
        enc.set_rate(RATE as i32);
        enc.set_channel_layout(ChannelLayout::STEREO);
        enc.set_channels(2);
        enc.set_format(OUT_FORMAT);
        enc.set_bit_rate(BIT_RATE);
        enc.set_time_base(Rational(1, RATE as i32));
        if global {
            enc.set_flags(codec::Flags::GLOBAL_HEADER);
        }
        let encoder = enc
            .open_as(aac)
            .map_err(|e| MediaError::Ffmpeg(format!("opening the aac encoder: {e}")))?;
        let frame_size = (encoder.frame_size() as usize).max(1);
        let mut ost = octx
            .stream_mut(ost_index)
            .ok_or_else(|| MediaError::Ffmpeg("output stream vanished".into()))?;
        ost.set_parameters(&encoder);
        ost.set_time_base(Rational(1, RATE as i32));
        Ok(AudioTranscoder {
            in_tb: ist.time_base(),
            start,
            decoder,
            encoder,
            resampler: None,
            fifo: [Vec::new(), Vec::new()],
            frame_size,
            next_pts: None,
            ost_index,
        })
    }

    /// Decodes `packet` and encodes every whole frame now buffered.
    pub(super) fn push(
        &mut self,
        packet: &Packet,
        octx: &mut format::context::Output,
    ) -> Result<(), MediaError> {
        // A corrupt packet costs a few milliseconds of sound, not the upload.
        if self.decoder.send_packet(packet).is_err() {
            return Ok(());
        }
        self.receive_frames(octx)
    }

    /// Drains decoder, resampler, FIFO (a short last frame) and encoder.
    pub(super) fn finish(&mut self, octx: &mut format::context::Output) -> Result<(), MediaError> {
        let _ = self.decoder.send_eof();
        self.receive_frames(octx)?;
        if let Some(r) = self.resampler.as_mut() {
            let mut out = frame::Audio::new(OUT_FORMAT, 4096, ChannelLayout::STEREO);
            if r.flush(&mut out).is_ok() && out.samples() > 0 {
                self.append(&out);
            }
        }
        self.encode_fifo(octx, true)?;
        self.encoder.send_eof()?;
        self.receive_packets(octx)
    }

    fn receive_frames(&mut self, octx: &mut format::context::Output) -> Result<(), MediaError> {
        let mut decoded = frame::Audio::empty();
        while self.decoder.receive_frame(&mut decoded).is_ok() {
            if decoded.samples() == 0 {
                continue;
            }
            if self.next_pts.is_none() {
                let start = decoded.timestamp().map_or(0, |t| (t - self.start).max(0));
                self.next_pts = Some(start.rescale(self.in_tb, Rational(1, RATE as i32)));
            }
            let resampled = self.resample(&mut decoded)?;
            self.append(&resampled);
            self.encode_fifo(octx, false)?;
        }
        Ok(())
    }

    /// Converts one decoded frame, (re)building the resampler when the
    /// input's format, layout or rate changes mid-stream (MP3 and AC-3
    /// streams can).
    fn resample(&mut self, src: &mut frame::Audio) -> Result<frame::Audio, MediaError> {
        // Some decoders (PCM in WAV, mono files) leave the layout unset.
        if src.channel_layout().is_empty() {
            src.set_channel_layout(ChannelLayout::default(i32::from(src.channels().max(1))));
        }
        let matches = self.resampler.as_ref().is_some_and(|r| {
            let i = r.input();
            i.format == src.format()
                && i.channel_layout == src.channel_layout()
                && i.rate == src.rate()
        });
        if !matches {
            self.resampler = Some(resampling::Context::get(
                src.format(),
                src.channel_layout(),
                src.rate(),
                OUT_FORMAT,
                ChannelLayout::STEREO,
                RATE,
            )?);
        }
        // Room for every sample this frame can yield plus the resampler's
        // own delay, so nothing is left behind inside it between frames.
        let room = src.samples() * RATE as usize / src.rate().max(1) as usize + 256;
        let mut out = frame::Audio::new(OUT_FORMAT, room, ChannelLayout::STEREO);
        if let Some(r) = self.resampler.as_mut() {
            r.run(src, &mut out)?;
        }
        Ok(out)
    }

    fn append(&mut self, resampled: &frame::Audio) {
        for (ch, buf) in self.fifo.iter_mut().enumerate() {
            buf.extend_from_slice(&resampled.plane::<f32>(ch)[..resampled.samples()]);
        }
    }

    /// Encodes whole frames from the FIFO; at the end (`last`) also the
    /// remainder, which the encoder accepts as a short final frame.
    fn encode_fifo(
        &mut self,
        octx: &mut format::context::Output,
        last: bool,
    ) -> Result<(), MediaError> {
        loop {
            let have = self.fifo[0].len();
            let n = if have >= self.frame_size {
                self.frame_size
            } else if last && have > 0 {
                have
            } else {
                return Ok(());
            };
            let mut f = frame::Audio::new(OUT_FORMAT, n, ChannelLayout::STEREO);
            f.set_channels(2);
            f.set_rate(RATE);
            for (ch, buf) in self.fifo.iter_mut().enumerate() {
                f.plane_mut::<f32>(ch)[..n].copy_from_slice(&buf[..n]);
                buf.drain(..n);
            }
            let pts = self.next_pts.unwrap_or(0);
            f.set_pts(Some(pts));
            self.next_pts = Some(pts + n as i64);
            self.encoder.send_frame(&f)?;
            self.receive_packets(octx)?;
        }
    }

    fn receive_packets(&mut self, octx: &mut format::context::Output) -> Result<(), MediaError> {
        let enc_tb = Rational(1, RATE as i32);
        let ost_tb = octx
            .stream(self.ost_index)
            .map(|s| s.time_base())
            .unwrap_or(enc_tb);
        let mut encoded = Packet::empty();
        while self.encoder.receive_packet(&mut encoded).is_ok() {
            encoded.set_stream(self.ost_index);
            encoded.rescale_ts(enc_tb, ost_tb);
            encoded.write_interleaved(octx)?;
        }
        Ok(())
    }
}
