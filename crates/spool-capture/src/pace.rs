//! Frame pacing: a capture thread ticks at the target rate from a monotonic
//! clock and offers each frame to a bounded channel without waiting. A full
//! channel means the consumer (the encoder) fell behind: the frame is dropped
//! and counted. A grab slower than the tick skips the ticks it overran
//! (counted as missed) instead of drifting.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, SyncSender, TrySendError, sync_channel};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::{CaptureError, Frame, Source};

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
    thread: Option<JoinHandle<Result<(), CaptureError>>>,
    pub width: u32,
    pub height: u32,
}

impl Capture {
    /// Asks the capture thread to stop; frames already queued stay readable
    /// and the channel closes after them.
    pub fn stop(&self) {
        self.stop.store(true, Ordering::Relaxed);
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

/// Starts capturing `source` at `fps` into a channel of `capacity` frames;
/// returns the handle and the receiving end.
pub fn start(
    mut source: Box<dyn Source>,
    fps: u32,
    capacity: usize,
) -> Result<(Capture, Receiver<Frame>), CaptureError> {
    if !(1..=240).contains(&fps) {
        return Err(CaptureError::Invalid(format!(
            "frame rate {fps} is outside 1..=240"
        )));
    }
    let (width, height) = source.size();
    let (tx, rx) = sync_channel(capacity.max(1));
    let stats = Arc::new(CaptureStats::default());
    let stop = Arc::new(AtomicBool::new(false));
    let (s, st) = (stats.clone(), stop.clone());
    let thread = std::thread::Builder::new()
        .name("spool-capture".into())
        .spawn(move || run(source.as_mut(), fps, tx, &s, &st))
        .map_err(|e| CaptureError::Invalid(format!("cannot start the capture thread: {e}")))?;
    Ok((
        Capture {
            stats,
            stop,
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
    tx: SyncSender<Frame>,
    stats: &CaptureStats,
    stop: &AtomicBool,
) -> Result<(), CaptureError> {
    let period = Duration::from_secs_f64(1.0 / fps as f64);
    let (width, height) = source.size();
    let start = Instant::now();
    let mut tick: u64 = 0;
    let mut spare: Option<Vec<u8>> = None;
    while !stop.load(Ordering::Relaxed) {
        let due = start + period.mul_f64(tick as f64);
        let now = Instant::now();
        if due > now {
            std::thread::sleep(due - now);
        }
        let mut buf = spare.take().unwrap_or_default();
        let grabbed_at = Instant::now();
        source.grab(tick, &mut buf)?;
        let frame = Frame {
            data: buf,
            width,
            height,
            pts: grabbed_at - start,
            index: tick,
        };
        match tx.try_send(frame) {
            Ok(()) => {
                stats.captured.fetch_add(1, Ordering::Relaxed);
            }
            Err(TrySendError::Full(f)) => {
                stats.dropped.fetch_add(1, Ordering::Relaxed);
                spare = Some(f.data);
            }
            Err(TrySendError::Disconnected(_)) => break,
        }
        // Skip the ticks a slow grab overran rather than bursting to catch up.
        let elapsed = start.elapsed();
        let next = (elapsed.as_secs_f64() / period.as_secs_f64()).floor() as u64 + 1;
        let next = next.max(tick + 1);
        stats.missed.fetch_add(next - tick - 1, Ordering::Relaxed);
        tick = next;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Synthetic;

    #[test]
    fn paces_and_drops_instead_of_growing() {
        let (mut cap, rx) = start(Box::new(Synthetic::new(64, 32).unwrap()), 50, 2).unwrap();
        std::thread::sleep(Duration::from_millis(500));
        // Nobody reads: the channel holds 2, the rest are dropped.
        cap.stop();
        cap.join().unwrap();
        let frames: Vec<Frame> = rx.try_iter().collect();
        assert_eq!(frames.len(), 2);
        let dropped = cap.stats.dropped.load(Ordering::Relaxed);
        assert!(dropped >= 15, "dropped {dropped}");
        assert_eq!(frames[0].width, 64);
        assert_eq!(frames[0].data.len(), 64 * 32 * 4);
    }

    #[test]
    fn timestamps_follow_the_clock() {
        let (mut cap, rx) = start(Box::new(Synthetic::new(32, 32).unwrap()), 20, 64).unwrap();
        std::thread::sleep(Duration::from_millis(520));
        cap.stop();
        cap.join().unwrap();
        let frames: Vec<Frame> = rx.try_iter().collect();
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
}
