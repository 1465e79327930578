//! Audio re-encoding for [`super::normalize`]: decode, resample to planar
//! float 48 kHz stereo, and encode AAC-LC with FFmpeg's native encoder. The
//! encoder takes exactly `frame_size` samples per frame, so resampled
//! samples wait in [`aac::Fifo`] and frames are stamped by sample count,
//! which also keeps the audio gapless whatever the input's packetisation.

use ff::software::resampling;
use ff::{ChannelLayout, Packet, Rational, Rescale, codec, decoder, encoder, format, frame};
use ffmpeg_next as ff;

use crate::MediaError;
use crate::aac::{self, FORMAT as OUT_FORMAT, RATE};

const BIT_RATE: usize = 160_000;

/// A decoder → resampler → AAC chain writing to one output stream.
pub(super) struct AudioTranscoder {
    decoder: decoder::Audio,
    encoder: encoder::Audio,
    resampler: Option<resampling::Context>,
    /// Resampled samples not yet encoded.
    fifo: aac::Fifo,
    /// Whether the FIFO's timeline was set from the first decoded frame.
    timed: bool,
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
        let (encoder, ost_index, frame_size) = aac::open(octx, BIT_RATE).map_err(|e| match e {
            aac::OpenError::Missing => {
                MediaError::Ffmpeg("the aac encoder is not available".into())
            }
            aac::OpenError::Open(e) => MediaError::Ffmpeg(format!("opening the aac encoder: {e}")),
            aac::OpenError::StreamVanished => MediaError::Ffmpeg("output stream vanished".into()),
            aac::OpenError::Ffmpeg(e) => e.into(),
        })?;
        Ok(AudioTranscoder {
            in_tb: ist.time_base(),
            start,
            decoder,
            encoder,
            resampler: None,
            fifo: aac::Fifo::new(frame_size),
            timed: false,
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
                self.fifo.push_planar(&out);
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
            if !self.timed {
                let start = decoded.timestamp().map_or(0, |t| (t - self.start).max(0));
                self.fifo
                    .set_next_pts(start.rescale(self.in_tb, aac::TIME_BASE));
                self.timed = true;
            }
            let resampled = self.resample(&mut decoded)?;
            self.fifo.push_planar(&resampled);
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

    /// Encodes whole frames from the FIFO; at the end (`last`) also the
    /// remainder.
    fn encode_fifo(
        &mut self,
        octx: &mut format::context::Output,
        last: bool,
    ) -> Result<(), MediaError> {
        while let Some(f) = self.fifo.pop(last) {
            self.encoder.send_frame(&f)?;
            self.receive_packets(octx)?;
        }
        Ok(())
    }

    fn receive_packets(&mut self, octx: &mut format::context::Output) -> Result<(), MediaError> {
        let enc_tb = aac::TIME_BASE;
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
