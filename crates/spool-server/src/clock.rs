//! The server's idea of the current time, injectable: upload expiry, the
//! expiry sweep, signed-URL lifetimes and the stalled-writer test of
//! [`crate::locks`] all ask [`Config::clock`](crate::Config::clock), which
//! is the system clock unless a test sets a [`ManualClock`] and moves it
//! forward instead of sleeping. Durations that guard real I/O (idle and
//! shutdown timeouts) stay on the runtime's timers.

use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Duration;

/// A source of wall-clock time in Unix milliseconds.
pub trait Clock: Send + Sync + std::fmt::Debug {
    fn now_ms(&self) -> i64;
}

/// The system's wall clock.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now_ms(&self) -> i64 {
        crate::db::now_ms()
    }
}

/// A clock that moves only when told to (tests).
#[derive(Debug)]
pub struct ManualClock {
    ms: AtomicI64,
}

impl ManualClock {
    /// A clock reading the system time now, standing still from then on.
    pub fn starting_now() -> Self {
        ManualClock {
            ms: AtomicI64::new(crate::db::now_ms()),
        }
    }

    /// Moves the clock forward by `by`.
    pub fn advance(&self, by: Duration) {
        let by = i64::try_from(by.as_millis()).unwrap_or(i64::MAX);
        self.ms.fetch_add(by, Ordering::SeqCst);
    }
}

impl Clock for ManualClock {
    fn now_ms(&self) -> i64 {
        self.ms.load(Ordering::SeqCst)
    }
}
