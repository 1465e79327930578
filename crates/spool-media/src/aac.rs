//! AAC-LC at 48 kHz stereo with FFmpeg's native encoder, shared by the
//! recorder's sound track (spool-encode) and [`crate::normalize`]'s audio
//! re-encoding: [`open`] adds the stream and opens the encoder; [`Fifo`]
//! holds planar float samples as they come and hands them out in frames of
//! exactly the encoder's `frame_size` (the native encoder takes no other
//! size but a short last one), stamped by sample count so the track stays
//! gapless whatever the input's packetisation. Draining packets stays with
//! each caller: one writes fragments, the other interleaves a remux.

use ff::format::Sample;
use ff::format::sample::Type as SampleType;
use ff::{ChannelLayout, Rational, codec, encoder, format, frame};
use ffmpeg_next as ff;

/// The sample rate of every AAC track Spool writes.
pub const RATE: u32 = 48_000;
/// Channels (L, R).
pub const CHANNELS: usize = 2;
/// The encoder's input: planar 32-bit float.
pub const FORMAT: Sample = Sample::F32(SampleType::Planar);
/// The encoder's time base: one sample.
pub const TIME_BASE: Rational = Rational(1, RATE as i32);

/// Why the AAC stream could not be set up; each caller words it its way.
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    #[error("the AAC encoder is not available in this FFmpeg")]
    Missing,
    #[error("opening the AAC encoder: {0}")]
    Open(ff::Error),
    #[error("the audio stream vanished")]
    StreamVanished,
    #[error(transparent)]
    Ffmpeg(#[from] ff::Error),
}

/// Adds an AAC stream at `bit_rate` to `octx` (before its header is
/// written) and opens its encoder: the encoder, the stream's index and the
/// encoder's frame size.
pub fn open(
    octx: &mut format::context::Output,
    bit_rate: usize,
) -> Result<(encoder::Audio, usize, usize), OpenError> {
    let aac = encoder::find_by_name("aac").ok_or(OpenError::Missing)?;
    let global = octx.format().flags().contains(format::Flags::GLOBAL_HEADER);
    let stream = octx.add_stream(aac)?.index();
    let mut enc = codec::context::Context::new_with_codec(aac)
        .encoder()
        .audio()?;
    enc.set_rate(RATE as i32);
    enc.set_channel_layout(ChannelLayout::STEREO);
    enc.set_channels(CHANNELS as i32);
    enc.set_format(FORMAT);
    enc.set_bit_rate(bit_rate);
    enc.set_time_base(TIME_BASE);
    if global {
        enc.set_flags(codec::Flags::GLOBAL_HEADER);
    }
    let encoder = enc.open_as(aac).map_err(OpenError::Open)?;
    let frame_size = (encoder.frame_size() as usize).max(1);
    let mut ost = octx.stream_mut(stream).ok_or(OpenError::StreamVanished)?;
    ost.set_parameters(&encoder);
    ost.set_time_base(TIME_BASE);
    Ok((encoder, stream, frame_size))
}

/// Samples waiting for the encoder, one Vec per channel, and where the next
/// frame starts on the track's timeline (in samples).
pub struct Fifo {
    channels: [Vec<f32>; CHANNELS],
    frame_size: usize,
    next_pts: i64,
}

impl Fifo {
    /// An empty FIFO handing out frames of `frame_size` samples from pts 0.
    pub fn new(frame_size: usize) -> Fifo {
        Fifo {
            channels: [Vec::new(), Vec::new()],
            frame_size: frame_size.max(1),
            next_pts: 0,
        }
    }

    /// Where the next frame starts (samples).
    pub fn set_next_pts(&mut self, pts: i64) {
        self.next_pts = pts;
    }

    /// Appends interleaved stereo samples (L, R, L, R, …); a trailing odd
    /// sample is ignored.
    pub fn push_interleaved(&mut self, samples: &[f32]) {
        for f in samples.chunks_exact(CHANNELS) {
            self.channels[0].push(f[0]);
            self.channels[1].push(f[1]);
        }
    }

    /// Appends a planar float stereo frame's samples.
    pub fn push_planar(&mut self, frame: &frame::Audio) {
        for (ch, buf) in self.channels.iter_mut().enumerate() {
            buf.extend_from_slice(&frame.plane::<f32>(ch)[..frame.samples()]);
        }
    }

    /// The next whole frame, stamped; at the end (`last`) also the
    /// remainder, which the encoder accepts as a short final frame.
    pub fn pop(&mut self, last: bool) -> Option<frame::Audio> {
        let have = self.channels[0].len();
        let n = if have >= self.frame_size {
            self.frame_size
        } else if last && have > 0 {
            have
        } else {
            return None;
        };
        let mut f = frame::Audio::new(FORMAT, n, ChannelLayout::STEREO);
        f.set_channels(CHANNELS as u16);
        f.set_rate(RATE);
        for (ch, buf) in self.channels.iter_mut().enumerate() {
            f.plane_mut::<f32>(ch)[..n].copy_from_slice(&buf[..n]);
            buf.drain(..n);
        }
        f.set_pts(Some(self.next_pts));
        self.next_pts += n as i64;
        Some(f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hands_out_whole_frames_then_a_short_last_one_stamped_by_sample_count() {
        let mut fifo = Fifo::new(4);
        fifo.set_next_pts(100);
        fifo.push_interleaved(&[0.0, 1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0, 9.0, 10.0, 11.0]);
        let f = fifo.pop(false).expect("a whole frame");
        assert_eq!((f.samples(), f.pts()), (4, Some(100)));
        assert_eq!(f.plane::<f32>(0)[..4], [0.0, 2.0, 4.0, 6.0]);
        assert_eq!(f.plane::<f32>(1)[..4], [1.0, 3.0, 5.0, 7.0]);
        assert!(fifo.pop(false).is_none(), "two samples are not a frame");
        let f = fifo.pop(true).expect("the short last frame");
        assert_eq!((f.samples(), f.pts()), (2, Some(104)));
        assert_eq!(f.plane::<f32>(0)[..2], [8.0, 10.0]);
        assert!(fifo.pop(true).is_none());
    }
}
