//! The recording's timeline: a monotonic clock that stands still while the
//! recording is paused. Every source stamps its samples from one [`Clock`]
//! (screen now, sound later), so pausing freezes all of them at the same
//! instant and the recording plays straight through a pause with no gap and
//! no frozen stretch. Capture threads block on the clock while paused instead
//! of polling it.

use std::sync::{Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

#[derive(Debug, Default)]
struct State {
    paused_since: Option<Instant>,
    /// Paused time before `paused_since` (the finished pauses).
    paused_total: Duration,
    /// Set once capture ends: wakes a paused capture thread for good.
    closed: bool,
    /// When it was closed: where the recording ends.
    closed_at: Option<Instant>,
    /// When the newest pause ended.
    resumed_at: Option<Instant>,
}

/// A recording's clock; share it with `Arc`.
#[derive(Debug)]
pub struct Clock {
    start: Instant,
    state: Mutex<State>,
    changed: Condvar,
}

impl Default for Clock {
    fn default() -> Self {
        Clock::new()
    }
}

impl Clock {
    /// A running clock starting now.
    pub fn new() -> Clock {
        Clock {
            start: Instant::now(),
            state: Mutex::new(State::default()),
            changed: Condvar::new(),
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // The state is a few plain values: usable even after a panic elsewhere.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// When the clock started.
    pub fn started(&self) -> Instant {
        self.start
    }

    /// Stops the clock's advance; false if it was already paused.
    pub fn pause(&self) -> bool {
        let mut s = self.lock();
        if s.paused_since.is_some() || s.closed {
            return false;
        }
        s.paused_since = Some(Instant::now());
        self.changed.notify_all();
        true
    }

    /// Lets the clock run again from where it stood; false if it was not
    /// paused.
    pub fn resume(&self) -> bool {
        let mut s = self.lock();
        let Some(since) = s.paused_since.take() else {
            return false;
        };
        let now = Instant::now();
        s.paused_total += now.saturating_duration_since(since);
        s.resumed_at = Some(now);
        self.changed.notify_all();
        true
    }

    /// Ends the clock's life as a pause control: a paused capture thread
    /// wakes up (to see that it must stop), and later pauses are refused.
    pub fn close(&self) {
        let mut s = self.lock();
        if s.closed {
            return;
        }
        let now = Instant::now();
        if let Some(since) = s.paused_since.take() {
            // The pause lasts until the end: the timeline stops where it stood.
            s.paused_total += now.saturating_duration_since(since);
        }
        s.closed = true;
        s.closed_at = Some(now);
        self.changed.notify_all();
    }

    /// Where the recording ended on the timeline, once closed.
    pub fn end(&self) -> Option<Duration> {
        let at = self.lock().closed_at?;
        Some(self.at(at))
    }

    pub fn is_paused(&self) -> bool {
        self.lock().paused_since.is_some()
    }

    /// Time spent paused so far, the current pause included.
    pub fn paused(&self) -> Duration {
        let s = self.lock();
        s.paused_total + s.paused_since.map_or(Duration::ZERO, |p| p.elapsed())
    }

    /// The timeline position now (frozen while paused).
    pub fn now(&self) -> Duration {
        self.at(Instant::now())
    }

    /// The timeline position at `instant`: the time since the start minus
    /// the pauses before it (an instant inside the current pause maps to
    /// where the clock stopped).
    pub fn at(&self, instant: Instant) -> Duration {
        let s = self.lock();
        let end = match s.paused_since {
            Some(p) if p < instant => p,
            _ => instant,
        };
        end.saturating_duration_since(self.start)
            .saturating_sub(s.paused_total)
    }

    /// When the current pause began, if paused.
    pub fn paused_since(&self) -> Option<Instant> {
        self.lock().paused_since
    }

    /// When the newest pause ended (a sound chunk that began before it was
    /// partly heard while paused).
    pub fn resumed_at(&self) -> Option<Instant> {
        self.lock().resumed_at
    }

    /// Whether a pause began at or before `instant` and still lasts: a frame
    /// grabbed then was taken after Pause and must not be kept.
    pub fn paused_by(&self, instant: Instant) -> bool {
        self.lock().paused_since.is_some_and(|p| p <= instant)
    }

    /// While paused (and not closed), blocks until resumed or closed.
    /// Returns the timeline position the pause froze at, or `None` when the
    /// clock was not paused.
    pub fn wait_while_paused(&self) -> Option<Duration> {
        let mut s = self.lock();
        let since = s.paused_since?;
        let at = since
            .saturating_duration_since(self.start)
            .saturating_sub(s.paused_total);
        while s.paused_since.is_some() && !s.closed {
            s = self.changed.wait(s).unwrap_or_else(|p| p.into_inner());
        }
        Some(at)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    #[test]
    fn stands_still_while_paused() {
        let c = Clock::new();
        std::thread::sleep(Duration::from_millis(30));
        assert!(c.pause());
        assert!(!c.pause());
        let frozen = c.now();
        assert!(frozen >= Duration::from_millis(30));
        std::thread::sleep(Duration::from_millis(50));
        assert_eq!(c.now(), frozen);
        assert!(c.paused() >= Duration::from_millis(50));
        assert!(c.resume());
        assert!(!c.resume());
        // Resumes from where it stood, not from the wall clock.
        let after = c.now();
        assert!(after >= frozen && after < frozen + Duration::from_millis(20));
    }

    #[test]
    fn a_paused_thread_wakes_at_resume_and_at_close() {
        let c = Arc::new(Clock::new());
        assert_eq!(c.wait_while_paused(), None);
        c.pause();
        let frozen = c.now();
        let c2 = c.clone();
        let t = std::thread::spawn(move || c2.wait_while_paused());
        std::thread::sleep(Duration::from_millis(30));
        c.resume();
        assert_eq!(t.join().unwrap(), Some(frozen));

        c.pause();
        let c2 = c.clone();
        let t = std::thread::spawn(move || c2.wait_while_paused());
        std::thread::sleep(Duration::from_millis(20));
        c.close();
        assert!(t.join().unwrap().is_some());
        assert!(!c.pause(), "no pause after close");
    }
}
