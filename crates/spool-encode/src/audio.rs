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

use ff::{Packet, encoder, format};
use ffmpeg_next as ff;
use spool_capture::audio::{CHANNELS, Mixer, SAMPLE_RATE, frames_in};
use spool_media::aac::{self, TIME_BASE};

use crate::EncodeError;

// The mix is what the AAC track takes, as it comes.
const _: () = assert!(SAMPLE_RATE == aac::RATE && CHANNELS == aac::CHANNELS);

const BIT_RATE: usize = 128_000;
/// How long a fragment's close waits for the sources to deliver its last
/// milliseconds (they run a read's latency behind real time).
const WAIT: Duration = Duration::from_millis(250);

/// The AAC track of an open encoder.
pub(crate) struct AudioTrack {
    mixer: Arc<Mixer>,
    encoder: encoder::Audio,
    stream: usize,
    /// Mixed samples not yet encoded, and where the next frame starts.
    fifo: aac::Fifo,
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
        let (encoder, stream, frame_size) = aac::open(octx, BIT_RATE).map_err(|e| match e {
            aac::OpenError::Ffmpeg(e) => EncodeError::Ffmpeg(e),
            e => EncodeError::Invalid(e.to_string()),
        })?;
        Ok(AudioTrack {
            mixer,
            encoder,
            stream,
            fifo: aac::Fifo::new(frame_size),
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
        self.fifo.push_interleaved(&mixed);
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
        while let Some(f) = self.fifo.pop(last) {
            self.encoder.send_frame(&f)?;
            self.receive_packets(octx)?;
        }
        Ok(())
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
