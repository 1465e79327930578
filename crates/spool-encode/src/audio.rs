//! The recording's sound track: the mix from spool-capture's [`Mixer`]
//! encoded as AAC-LC 48 kHz stereo (FFmpeg's native encoder) into the same
//! fragmented MP4 as the video. Before a fragment is closed the encoder
//! takes the mix up to the fragment's end, so each fragment carries the
//! sound of its own time span (less the encoder's ~43 ms of look-ahead,
//! which goes into the next) and uploads, plays live and survives a crash
//! exactly like the video. Timestamps are sample counts on the recording's
//! timeline, so sound and picture share one clock.

use std::sync::Arc;
use std::time::{Duration, Instant};

use ff::format::Sample;
use ff::format::sample::Type as SampleType;
use ff::{ChannelLayout, Packet, Rational, codec, encoder, format, frame};
use ffmpeg_next as ff;
use spool_capture::audio::{CHANNELS, Mixer, SAMPLE_RATE, frames_in};

use crate::EncodeError;

const BIT_RATE: usize = 128_000;
const FORMAT: Sample = Sample::F32(SampleType::Planar);
const TIME_BASE: Rational = Rational(1, SAMPLE_RATE as i32);
/// How long a fragment's close waits for the sources to deliver its last
/// milliseconds (they run a read's latency behind real time).
const WAIT: Duration = Duration::from_millis(250);

/// The AAC track of an open encoder.
pub(crate) struct AudioTrack {
    mixer: Arc<Mixer>,
    encoder: encoder::Audio,
    stream: usize,
    frame_size: usize,
    /// Mixed samples not yet encoded, one Vec per channel.
    fifo: [Vec<f32>; 2],
    /// Where the next encoded frame starts (samples).
    next_pts: i64,
    /// Samples encoded or queued: the track's length.
    samples: u64,
    /// Packets written since the last fragment was closed.
    pub(crate) pending: u64,
}

impl AudioTrack {
    /// Adds the AAC stream to `octx` (before its header is written).
    pub(crate) fn add(
        octx: &mut format::context::Output,
        mixer: Arc<Mixer>,
    ) -> Result<AudioTrack, EncodeError> {
        let aac = encoder::find_by_name("aac").ok_or_else(|| {
            EncodeError::Invalid("the AAC encoder is not available in this FFmpeg".into())
        })?;
        let global = octx.format().flags().contains(format::Flags::GLOBAL_HEADER);
        let stream = octx.add_stream(aac)?.index();
        let mut enc = codec::context::Context::new_with_codec(aac)
            .encoder()
            .audio()?;
        enc.set_rate(SAMPLE_RATE as i32);
        enc.set_channel_layout(ChannelLayout::STEREO);
        enc.set_channels(CHANNELS as i32);
        enc.set_format(FORMAT);
        enc.set_bit_rate(BIT_RATE);
        enc.set_time_base(TIME_BASE);
        if global {
            enc.set_flags(codec::Flags::GLOBAL_HEADER);
        }
        let encoder = enc
            .open_as(aac)
            .map_err(|e| EncodeError::Invalid(format!("opening the AAC encoder: {e}")))?;
        let frame_size = (encoder.frame_size() as usize).max(1);
        let mut ost = octx
            .stream_mut(stream)
            .ok_or_else(|| EncodeError::Invalid("the audio stream vanished".into()))?;
        ost.set_parameters(&encoder);
        ost.set_time_base(TIME_BASE);
        Ok(AudioTrack {
            mixer,
            encoder,
            stream,
            frame_size,
            fifo: [Vec::new(), Vec::new()],
            next_pts: 0,
            samples: 0,
            pending: 0,
        })
    }

    /// The track's length so far.
    pub(crate) fn duration(&self) -> Duration {
        Duration::from_nanos(self.samples * 1_000_000_000 / SAMPLE_RATE as u64)
    }

    /// Takes the mix up to `until` on the timeline and encodes every whole
    /// frame of it into the fragment being written.
    pub(crate) fn feed_until(
        &mut self,
        octx: &mut format::context::Output,
        until: Duration,
    ) -> Result<(), EncodeError> {
        let mixed = self.mixer.take(frames_in(until), Instant::now() + WAIT);
        for f in mixed.chunks_exact(CHANNELS) {
            self.fifo[0].push(f[0]);
            self.fifo[1].push(f[1]);
        }
        self.samples += (mixed.len() / CHANNELS) as u64;
        self.encode_fifo(octx, false)
    }

    /// The end: everything up to `until`, the short last frame, and what the
    /// encoder still holds.
    pub(crate) fn finish(
        &mut self,
        octx: &mut format::context::Output,
        until: Duration,
    ) -> Result<(), EncodeError> {
        self.mixer.drain();
        let t = Instant::now();
        self.feed_until(octx, until)?;
        let fed = t.elapsed();
        self.encode_fifo(octx, true)?;
        self.encoder.send_eof()?;
        self.receive_packets(octx)?;
        tracing::debug!(?fed, total = ?t.elapsed(), "the last of the sound is in");
        Ok(())
    }

    fn encode_fifo(
        &mut self,
        octx: &mut format::context::Output,
        last: bool,
    ) -> Result<(), EncodeError> {
        loop {
            let have = self.fifo[0].len();
            let n = if have >= self.frame_size {
                self.frame_size
            } else if last && have > 0 {
                have
            } else {
                return Ok(());
            };
            let mut f = frame::Audio::new(FORMAT, n, ChannelLayout::STEREO);
            f.set_channels(CHANNELS as u16);
            f.set_rate(SAMPLE_RATE);
            for (ch, buf) in self.fifo.iter_mut().enumerate() {
                f.plane_mut::<f32>(ch)[..n].copy_from_slice(&buf[..n]);
                buf.drain(..n);
            }
            f.set_pts(Some(self.next_pts));
            self.next_pts += n as i64;
            self.encoder.send_frame(&f)?;
            self.receive_packets(octx)?;
        }
    }

    fn receive_packets(&mut self, octx: &mut format::context::Output) -> Result<(), EncodeError> {
        let ost_tb = octx
            .stream(self.stream)
            .map(|s| s.time_base())
            .unwrap_or(TIME_BASE);
        let mut packet = Packet::empty();
        while self.encoder.receive_packet(&mut packet).is_ok() {
            // The encoder's priming frame sits before the timeline's start
            // (pts −1024); an empty_moov fragmented MP4 has no edit list to
            // hide it, and keeping it would shift the sound 21 ms late.
            if packet.pts().is_some_and(|p| p < 0) {
                continue;
            }
            packet.set_stream(self.stream);
            packet.rescale_ts(TIME_BASE, ost_tb);
            packet.write(octx)?;
            self.pending += 1;
        }
        Ok(())
    }
}
