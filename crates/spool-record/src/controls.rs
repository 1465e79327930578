//! Pause and resume for a running recording.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use tokio::sync::mpsc;

use crate::{Event, Shared};

/// Pauses and resumes a recording. While paused nothing is captured; the
/// fragment being written is closed at the pause, so everything before it
/// uploads meanwhile; on resume the timeline continues where it stood.
#[derive(Clone)]
pub struct Controls {
    pub(crate) shared: Arc<Shared>,
    pub(crate) events: mpsc::Sender<Event>,
}

impl Controls {
    /// Pauses; false when already paused or no longer capturing.
    pub fn pause(&self) -> bool {
        if !self.shared.capturing.load(Ordering::Acquire) || !self.shared.clock.pause() {
            return false;
        }
        tracing::info!("paused");
        let _ = self.events.try_send(Event::Paused);
        true
    }

    /// Resumes; false when not paused.
    pub fn resume(&self) -> bool {
        if !self.shared.clock.resume() {
            return false;
        }
        tracing::info!(
            paused_ms = self.shared.clock.paused().as_millis() as u64,
            "resumed"
        );
        let _ = self.events.try_send(Event::Resumed);
        true
    }

    /// Pauses or resumes; whether it is paused now.
    /// Mutes (or unmutes) the sound: muted spans are recorded as silence,
    /// the timing kept. False when the recording has no sound.
    pub fn set_muted(&self, muted: bool) -> bool {
        let Some(a) = &self.shared.audio else {
            return false;
        };
        if a.mixer.is_muted() != muted {
            let at = spool_capture::audio::frames_in(self.shared.clock.now());
            a.mixer.set_muted(muted, at);
            tracing::info!(muted, "mute");
            let _ = self.events.try_send(Event::Muted(muted));
        }
        true
    }

    /// Mutes or unmutes; returns whether it is now muted.
    pub fn toggle_mute(&self) -> bool {
        let muted = !self.is_muted();
        self.set_muted(muted);
        self.is_muted()
    }

    pub fn is_muted(&self) -> bool {
        self.shared
            .audio
            .as_ref()
            .is_some_and(|a| a.mixer.is_muted())
    }

    pub fn toggle(&self) -> bool {
        if self.is_paused() {
            self.resume();
        } else {
            self.pause();
        }
        self.is_paused()
    }

    pub fn is_paused(&self) -> bool {
        self.shared.clock.is_paused()
    }
}

/// Counts `secs` seconds down before a recording starts: `tick(left)` is
/// called with `secs`, `secs − 1`, …, `1`, each on its second, from one
/// schedule (so the whole countdown lasts `secs` seconds, not `secs` sleeps).
/// False when `cancel` fired first.
pub async fn countdown(
    secs: u32,
    cancel: &tokio_util::sync::CancellationToken,
    mut tick: impl FnMut(u32),
) -> bool {
    let start = tokio::time::Instant::now();
    for left in (1..=secs).rev() {
        tick(left);
        let due = start + std::time::Duration::from_secs(u64::from(secs - left + 1));
        tokio::select! {
            _ = cancel.cancelled() => return false,
            _ = tokio::time::sleep_until(due) => {}
        }
    }
    !cancel.is_cancelled()
}
