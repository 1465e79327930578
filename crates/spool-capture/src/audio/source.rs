//! One sound source's thread: read a chunk, find its span on the
//! recording's timeline (cutting away what was heard while paused or before
//! the recording began), let the [`Placer`] put it in place, hand it to the
//! mixer, and keep a level for the meters. A read that fails means the
//! device is gone: the track goes silent and the device is reopened every
//! [`REOPEN_EVERY`] until it answers again.

use std::collections::VecDeque;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::Sender;
use std::time::{Duration, Instant};

use super::{
    AudioEvent, AudioKind, AudioState, CHANNELS, CHUNK_FRAMES, DeviceClock, HOLD, Input, Mixer,
    Opener, Placer, REOPEN_EVERY, SAMPLE_RATE, TrackId, frames_in, peak,
};
use crate::Clock;

pub(crate) struct Run {
    pub(crate) kind: AudioKind,
    pub(crate) track: TrackId,
    pub(crate) gain: f32,
    pub(crate) opener: Opener,
    pub(crate) mixer: Arc<Mixer>,
    pub(crate) clock: Arc<Clock>,
    pub(crate) stop: Arc<AtomicBool>,
    pub(crate) events: Sender<AudioEvent>,
}

/// What a source reports at the end.
#[derive(Debug, Default)]
pub(crate) struct Report {
    pub(crate) offset_ms: f64,
    pub(crate) max_offset_ms: f64,
    pub(crate) corrected: i64,
}

fn chunk_duration(frames: usize) -> Duration {
    Duration::from_nanos(frames as u64 * 1_000_000_000 / SAMPLE_RATE as u64)
}

/// The part of a chunk heard at `start` that belongs on the timeline:
/// `(first frame kept, frames kept, timeline position of the first kept)`,
/// or `None` when all of it was heard while paused or before the start.
pub(crate) fn span(
    clock: &Clock,
    start: Instant,
    frames: usize,
) -> Option<(usize, usize, Duration)> {
    let end = start + chunk_duration(frames);
    let mut first = 0usize;
    let mut last = frames;
    // Heard before the recording began.
    if start < clock.started() {
        first = (frames_in(clock.started() - start) as usize).min(frames);
    }
    // A pause began during (or before) the chunk: keep what came before it.
    if let Some(p) = clock.paused_since() {
        if p <= start {
            return None;
        }
        if p < end {
            last = last.min(frames_in(p - start) as usize);
        }
    } else if let Some(r) = clock.resumed_at()
        && r > start
    {
        // Resumed during the chunk: what came before Resume was heard paused.
        first = first.max((frames_in(r - start) as usize).min(frames));
    }
    if first >= last {
        return None;
    }
    let at = clock.at(start + chunk_duration(first));
    Some((first, last - first, at))
}

impl Run {
    fn event(&self, state: AudioState, detail: Option<String>) {
        let _ = self.events.send(AudioEvent {
            kind: self.kind,
            state,
            detail,
        });
    }

    /// Opens the source (here, so that no backlog builds up between the
    /// check before recording and the first read) and reads until stopped.
    pub(crate) fn run(self) -> Report {
        let mut input: Option<Box<dyn Input>> = match self.opener.open() {
            Ok(i) => {
                self.mixer.set_live(self.track, true);
                self.event(AudioState::Active, None);
                Some(i)
            }
            Err(e) => {
                self.event(AudioState::Lost, Some(e));
                None
            }
        };
        let mut place = Placing {
            placer: Placer::new(),
            device: DeviceClock::new(),
            pending: VecDeque::new(),
        };
        let mut buf = vec![0.0f32; CHUNK_FRAMES * CHANNELS];
        let mut level = 0.0f32;
        let cell = self.mixer.level_cell(self.track);
        while !self.stop.load(Ordering::Relaxed) {
            let Some(dev) = input.as_mut() else {
                // In small steps, so Stop is not held up by a lost device.
                let until = Instant::now() + REOPEN_EVERY;
                while Instant::now() < until && !self.stop.load(Ordering::Relaxed) {
                    std::thread::sleep(Duration::from_millis(20));
                }
                if self.stop.load(Ordering::Relaxed) {
                    break;
                }
                if let Ok(i) = self.opener.open() {
                    tracing::info!(source = self.kind.as_str(), "audio source is back");
                    input = Some(i);
                    place.placer.reanchor();
                    place.device = DeviceClock::new();
                    self.mixer.set_live(self.track, true);
                    self.event(AudioState::Restored, None);
                }
                continue;
            };
            let arrived = match dev.read(&mut buf) {
                Ok(s) => s,
                Err(e) => {
                    tracing::warn!(source = self.kind.as_str(), error = %e, "audio source lost; recording silence in its place");
                    input = None;
                    self.flush(&mut place, None);
                    self.mixer.set_live(self.track, false);
                    self.event(AudioState::Lost, Some(e));
                    continue;
                }
            };
            let before = place.device.arrive(arrived, CHUNK_FRAMES);
            place.pending.push_back((arrived, before, buf.clone()));
            // At the end, what is held goes at once: Stop is not kept waiting.
            let hold = (!self.mixer.is_draining()).then_some(arrived);
            self.flush(&mut place, hold);
            // A meter that rises at once and falls over ~150 ms.
            level = (peak(&buf) * self.gain).max(level * 0.85).min(1.0);
            if let Some(c) = &cell {
                c.store(level.to_bits(), Ordering::Relaxed);
            }
        }
        self.flush(&mut place, None);
        self.mixer.set_live(self.track, false);
        Report {
            offset_ms: place.placer.offset_ms(),
            max_offset_ms: place.placer.max_offset_ms(),
            corrected: place.placer.corrected,
        }
    }

    /// Places the held chunks that arrived [`HOLD`] before `now` (all of
    /// them without `now`).
    fn flush(&self, place: &mut Placing, now: Option<Instant>) {
        while let Some((arrived, _, _)) = place.pending.front() {
            if now.is_some_and(|n| n.saturating_duration_since(*arrived) < HOLD) {
                break;
            }
            let Some((_, before, chunk)) = place.pending.pop_front() else {
                break;
            };
            let heard = place.device.heard(before);
            let Some((first, n, at)) = span(&self.clock, heard, CHUNK_FRAMES) else {
                continue;
            };
            let kept = &chunk[first * CHANNELS..(first + n) * CHANNELS];
            let (pos, out) = place.placer.place(at, kept);
            self.mixer.write(self.track, pos, &out);
        }
    }
}

/// A source's placing state: the chunks held until their stamp is sure.
struct Placing {
    placer: Placer,
    device: DeviceClock,
    pending: VecDeque<(Instant, u64, Vec<f32>)>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_chunk_heard_across_pause_and_resume_keeps_only_its_recorded_part() {
        let clock = Clock::new();
        let t0 = clock.started();
        // Before the start: only the part after it.
        let (first, n, at) = span(&clock, t0 - Duration::from_millis(5), 480).unwrap();
        assert_eq!((first, n, at), (240, 240, Duration::ZERO));
        std::thread::sleep(Duration::from_millis(30));
        let before = Instant::now() - Duration::from_millis(15);
        assert!(clock.pause());
        let p = clock.paused_since().unwrap();
        // Began 15 ms before Pause: its first ~15 ms are kept.
        let (first, n, _) = span(&clock, before, 960).unwrap();
        assert_eq!(first, 0);
        assert_eq!(n as u64, frames_in(p - before));
        // Heard entirely while paused.
        assert!(span(&clock, p + Duration::from_millis(1), 480).is_none());
        std::thread::sleep(Duration::from_millis(20));
        let heard = Instant::now();
        assert!(clock.resume());
        let r = clock.resumed_at().unwrap();
        let (first, n, at) = span(&clock, heard, 960).unwrap();
        assert_eq!(first as u64, frames_in(r - heard));
        assert_eq!(first + n, 960);
        // It continues the timeline exactly where the pause froze it.
        let frozen = p.duration_since(t0);
        assert!(
            at.abs_diff(frozen) < Duration::from_micros(100),
            "{at:?} vs {frozen:?}"
        );
    }
}
