//! Frame pacing: a capture thread ticks at the target rate on the
//! recording's [`Clock`] and offers each frame to a bounded channel without
//! waiting; while the clock is paused it hands over one pause marker and
//! sleeps until resume. A full
//! channel means the consumer (the encoder) fell behind: the frame is dropped
//! and counted. A grab slower than the tick skips the ticks it overran
//! (counted as missed) instead of drifting.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, SyncSender, TrySendError, sync_channel};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::{CaptureError, Clock, Frame, Source};

/// Counters of a running capture.
#[derive(Debug, Default)]
pub struct CaptureStats {
    /// Frames handed to the consumer.
    pub captured: AtomicU64,
    /// Frames dropped because the consumer fell behind.
    pub dropped: AtomicU64,
    /// Ticks skipped because a grab took longer than a tick.
    pub missed: AtomicU64,
}

/// A running capture; stop it with [`Capture::stop`].
pub struct Capture {
    pub stats: Arc<CaptureStats>,
    stop: Arc<AtomicBool>,
    clock: Arc<Clock>,
    thread: Option<JoinHandle<Result<(), CaptureError>>>,
    pub width: u32,
    pub height: u32,
}

impl Capture {
    /// Asks the capture thread to stop; frames already queued stay readable
    /// and the channel closes after them.
    pub fn stop(&self) {
        self.stop.store(true, Ordering::Relaxed);
        // A paused capture thread waits on the clock: wake it to stop.
        self.clock.close();
    }

    /// Waits for the capture thread; its error if it failed.
    pub fn join(&mut self) -> Result<(), CaptureError> {
        match self.thread.take() {
            Some(t) => t
                .join()
                .unwrap_or_else(|_| Err(CaptureError::X11("capture thread panicked".into()))),
            None => Ok(()),
        }
    }
}

/// What the capture thread hands its consumer, in order.
#[derive(Debug)]
pub enum Captured {
    Frame(Frame),
    /// Pause was pressed: no frame follows until resume, and the next one
    /// continues the timeline from `at` (where the clock stood still).
    Paused {
        at: Duration,
    },
    /// Stop was pressed at `at`: the last frame lasts until then. Nothing
    /// follows.
    End {
        at: Duration,
    },
}

/// Starts capturing `source` at `fps`, stamped by `clock`, into a channel of
/// `capacity` items; returns the handle and the receiving end.
pub fn start(
    mut source: Box<dyn Source>,
    fps: u32,
    capacity: usize,
    clock: Arc<Clock>,
) -> Result<(Capture, Receiver<Captured>), CaptureError> {
    if !(1..=240).contains(&fps) {
        return Err(CaptureError::Invalid(format!(
            "frame rate {fps} is outside 1..=240"
        )));
    }
    source.set_tick_rate(fps);
    let (width, height) = source.size();
    let (tx, rx) = sync_channel(capacity.max(1));
    let stats = Arc::new(CaptureStats::default());
    let stop = Arc::new(AtomicBool::new(false));
    let (s, st, c) = (stats.clone(), stop.clone(), clock.clone());
    let thread = std::thread::Builder::new()
        .name("spool-capture".into())
        .spawn(move || run(source.as_mut(), fps, tx, &s, &st, &c))
        .map_err(|e| CaptureError::Invalid(format!("cannot start the capture thread: {e}")))?;
    Ok((
        Capture {
            stats,
            stop,
            clock,
            thread: Some(thread),
            width,
            height,
        },
        rx,
    ))
}

fn run(
    source: &mut dyn Source,
    fps: u32,
    tx: SyncSender<Captured>,
    stats: &CaptureStats,
    stop: &AtomicBool,
    clock: &Clock,
) -> Result<(), CaptureError> {
    let period = Duration::from_secs_f64(1.0 / fps as f64);
    let (width, height) = source.size();
    // Ticks are due at anchor + period × (tick − anchor_tick) on the
    // timeline; a resume re-anchors so its first frame is taken at once.
    let mut anchor = clock.now();
    let mut anchor_tick: u64 = 0;
    let mut tick: u64 = 0;
    let mut spare: Option<Vec<u8>> = None;
    while !stop.load(Ordering::Relaxed) {
        if clock.is_paused() {
            let at = clock.now();
            // The marker must not be dropped like a frame: the encoder closes
            // the fragment at it.
            if tx.send(Captured::Paused { at }).is_err() {
                break;
            }
            clock.wait_while_paused();
            anchor = clock.now();
            anchor_tick = tick;
            continue;
        }
        let due = anchor + period.mul_f64((tick - anchor_tick) as f64);
        let now = clock.now();
        if due > now {
            std::thread::sleep(due - now);
            // A pause (or stop) during the wait is seen before grabbing.
            if clock.is_paused() || stop.load(Ordering::Relaxed) {
                continue;
            }
        }
        let mut buf = spare.take().unwrap_or_default();
        let grabbed_at = Instant::now();
        source.grab(tick, &mut buf)?;
        if clock.paused_by(grabbed_at) {
            // Taken after Pause was pressed: not part of the recording.
            spare = Some(buf);
            continue;
        }
        let frame = Frame {
            data: buf,
            width,
            height,
            pts: clock.at(grabbed_at),
            index: tick,
        };
        match tx.try_send(Captured::Frame(frame)) {
            Ok(()) => {
                stats.captured.fetch_add(1, Ordering::Relaxed);
            }
            Err(TrySendError::Full(Captured::Frame(f))) => {
                stats.dropped.fetch_add(1, Ordering::Relaxed);
                spare = Some(f.data);
            }
            Err(TrySendError::Full(_)) => {}
            Err(TrySendError::Disconnected(_)) => break,
        }
        // Skip the ticks a slow grab overran rather than bursting to catch up.
        let elapsed = clock.now().saturating_sub(anchor);
        let next = anchor_tick + (elapsed.as_secs_f64() / period.as_secs_f64()).floor() as u64 + 1;
        let next = next.max(tick + 1);
        stats.missed.fetch_add(next - tick - 1, Ordering::Relaxed);
        tick = next;
    }
    let at = clock.end().unwrap_or_else(|| clock.now());
    let _ = tx.send(Captured::End { at });
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Synthetic;

    fn frame(c: Captured) -> Option<Frame> {
        match c {
            Captured::Frame(f) => Some(f),
            Captured::Paused { .. } | Captured::End { .. } => None,
        }
    }

    #[test]
    fn paces_and_drops_instead_of_growing() {
        let (mut cap, rx) = start(
            Box::new(Synthetic::new(64, 32).unwrap()),
            50,
            2,
            Arc::new(Clock::new()),
        )
        .unwrap();
        // Nobody reads: the channel holds 2, the rest are dropped. Wait for
        // the drops themselves rather than for a time that should cause them.
        let deadline = Instant::now() + Duration::from_secs(10);
        while cap.stats.dropped.load(Ordering::Relaxed) < 15 {
            assert!(
                Instant::now() < deadline,
                "fewer than 15 frames were dropped"
            );
            std::thread::sleep(Duration::from_millis(10));
        }
        cap.stop();
        // Read to the end: the thread hands over its End marker, then closes.
        let items: Vec<Captured> = rx.iter().collect();
        cap.join().unwrap();
        assert!(matches!(items.last(), Some(Captured::End { .. })));
        let frames: Vec<Frame> = items.into_iter().filter_map(frame).collect();
        assert_eq!(frames.len(), 2);
        let dropped = cap.stats.dropped.load(Ordering::Relaxed);
        assert!(dropped >= 15, "dropped {dropped}");
        assert_eq!(frames[0].width, 64);
        assert_eq!(frames[0].data.len(), 64 * 32 * 4);
    }

    #[test]
    fn timestamps_follow_the_clock() {
        let (mut cap, rx) = start(
            Box::new(Synthetic::new(32, 32).unwrap()),
            20,
            64,
            Arc::new(Clock::new()),
        )
        .unwrap();
        std::thread::sleep(Duration::from_millis(520));
        cap.stop();
        // Read to the end: the thread hands over its End marker, then closes.
        let items: Vec<Captured> = rx.iter().collect();
        cap.join().unwrap();
        assert!(matches!(items.last(), Some(Captured::End { .. })));
        let frames: Vec<Frame> = items.into_iter().filter_map(frame).collect();
        assert!((9..=12).contains(&frames.len()), "{} frames", frames.len());
        for (i, f) in frames.iter().enumerate() {
            let expected = Duration::from_millis(50 * f.index);
            assert!(
                f.pts >= expected && f.pts < expected + Duration::from_millis(40),
                "frame {i}: {:?} vs {:?}",
                f.pts,
                expected
            );
        }
    }

    #[test]
    fn a_pause_leaves_no_gap_in_the_timeline() {
        let clock = Arc::new(Clock::new());
        let (mut cap, rx) = start(
            Box::new(Synthetic::new(32, 32).unwrap()),
            20,
            256,
            clock.clone(),
        )
        .unwrap();
        std::thread::sleep(Duration::from_millis(300));
        clock.pause();
        std::thread::sleep(Duration::from_millis(400));
        clock.resume();
        std::thread::sleep(Duration::from_millis(300));
        cap.stop();
        let items: Vec<Captured> = rx.iter().collect();
        cap.join().unwrap();
        let at = items
            .iter()
            .position(|c| matches!(c, Captured::Paused { .. }))
            .expect("a pause marker");
        assert_eq!(
            items
                .iter()
                .filter(|c| matches!(c, Captured::Paused { .. }))
                .count(),
            1
        );
        let Captured::Paused { at: paused_at } = items[at] else {
            unreachable!()
        };
        let before: Vec<&Frame> = items[..at]
            .iter()
            .filter_map(|c| match c {
                Captured::Frame(f) => Some(f),
                _ => None,
            })
            .collect();
        let after: Vec<&Frame> = items[at + 1..]
            .iter()
            .filter_map(|c| match c {
                Captured::Frame(f) => Some(f),
                _ => None,
            })
            .collect();
        let last = before.last().unwrap().pts;
        let first = after.first().unwrap().pts;
        assert!(
            last < paused_at,
            "{last:?} before the pause at {paused_at:?}"
        );
        // The first frame after resume is taken at once and continues the
        // timeline where it stood: no 400 ms hole.
        assert!(
            first >= paused_at && first < paused_at + Duration::from_millis(15),
            "{first:?} after a pause at {paused_at:?}"
        );
        let total = after.last().unwrap().pts;
        assert!(
            total > Duration::from_millis(500) && total < Duration::from_millis(700),
            "{total:?}: 600 ms recorded, 400 ms paused"
        );
        for w in after.windows(2) {
            let step = w[1].pts - w[0].pts;
            assert!(step < Duration::from_millis(80), "step {step:?}");
        }
    }
}
