//! Adaptive bitrate: while a recording uploads, the [`Adapter`] watches
//! the unsent backlog (bytes on disk not yet acknowledged) against the rate
//! at which the uplink takes bytes (handed to the socket: acknowledgements
//! come once per request, seconds apart on a slow link). When the backlog would take more
//! than a second to drain, the uplink is slower than the encoder: it lowers
//! the encoder's VBV cap, step by step, below the measured uplink rate (the
//! further the larger the backlog, so it drains), which keeps Stop → link
//! bounded on a slow link. Once the backlog stays small it raises the cap
//! again, cautiously up to the rate the link last carried, then probing
//! past it. A link that acknowledges nothing (offline) changes nothing:
//! quality is not traded for a tunnel; the backlog is sent when it returns.
//! "Handed to the socket" is coarse: the socket buffers take a whole PATCH
//! at once and then nothing moves for as long as the link needs to carry
//! it, so a pause only counts as a cut when the client says it is
//! reconnecting or nothing at all moved for [`CUT`].

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::{Duration, Instant};

use spool_encode::RateCap;

/// Why the cap changed (the event's `reason`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BitrateReason {
    /// The uplink is slower than the encoder: lowered.
    Backlog,
    /// The uplink keeps up again: raised.
    Recovered,
}

impl BitrateReason {
    pub fn as_str(self) -> &'static str {
        match self {
            BitrateReason::Backlog => "backlog",
            BitrateReason::Recovered => "recovered",
        }
    }
}

/// How far back the upload rate is measured.
const WINDOW: Duration = Duration::from_secs(3);
/// Nothing sent or acknowledged for this long, with bytes waiting: the
/// link is cut, not slow (a slow link acknowledges a PATCH every few
/// seconds; the client's own watchdog gives up on a connection after 15 s).
const CUT: Duration = Duration::from_secs(8);
/// Bytes sent within this long: the link is taking them now.
const FLOWING: Duration = Duration::from_millis(500);
/// Too little history to tell a rate from a burst.
const MIN_HISTORY: Duration = Duration::from_secs(1);
/// A backlog this small is a chunk or two in flight, whatever the link.
const MIN_BACKLOG: u64 = 128 << 10;
/// Lower the cap when the backlog takes longer than this to drain...
const DRAIN_HIGH: f64 = 1.0;
/// ...and count the link calm when it drains faster than this.
const DRAIN_LOW: f64 = 0.3;
/// Between two decreases: time for the last one to show.
const HOLD_DOWN: Duration = Duration::from_secs(1);
/// Calm needed before each increase.
const HOLD_UP: Duration = Duration::from_secs(4);
/// Calm needed before probing above the rate the link last carried.
const PROBE_AFTER: Duration = Duration::from_secs(15);
/// The backlog is to be drained in about this long, on top of new video.
const DRAIN_IN_SECS: f64 = 4.0;

/// Decides the encoder's cap from the upload's progress.
pub struct Adapter {
    cap: Arc<RateCap>,
    /// (when, produced, sent, confirmed), over the last [`WINDOW`].
    samples: VecDeque<(Instant, u64, u64, u64)>,
    /// When the bytes sent or acknowledged last grew, and how far.
    last_moved: (Instant, u64, u64),
    /// The client was reconnecting at the last look.
    was_offline: bool,
    /// When the acknowledged offset last grew, and to what.
    last_ack: (Instant, u64),
    /// The rate (bit/s) at which the last acknowledged stretch crossed the
    /// link: its bytes over the time since the acknowledgement before it.
    /// Acknowledgements come once per PATCH, so this, not a window's
    /// average, is what the link carries.
    ack_bps: Option<f64>,
    /// When the backlog was last down to a chunk or two: until it has
    /// stayed above that for a whole window, the link keeps up and the
    /// rate it took bytes at is the encoder's, not the link's capacity.
    caught_up: Instant,
    /// No decrease before this: the window still holds a stretch in which
    /// nothing moved (a cut), whose rate says nothing about the link.
    quiet_until: Option<Instant>,
    last_change: Option<Instant>,
    calm_since: Option<Instant>,
    /// The acknowledged rate (kbit/s) when the cap was last lowered.
    link_kbps: Option<u32>,
}

impl Adapter {
    pub fn new(cap: Arc<RateCap>) -> Adapter {
        Adapter {
            cap,
            samples: VecDeque::new(),
            last_moved: (Instant::now(), 0, 0),
            was_offline: false,
            last_ack: (Instant::now(), 0),
            ack_bps: None,
            caught_up: Instant::now(),
            quiet_until: None,
            last_change: None,
            calm_since: None,
            link_kbps: None,
        }
    }

    pub fn cap(&self) -> &Arc<RateCap> {
        &self.cap
    }

    /// One observation: `produced` bytes queued for upload, `sent` handed
    /// to the network, `confirmed` acknowledged, `online` unless the client
    /// is reconnecting. Returns the new cap when it changed.
    pub fn observe(
        &mut self,
        now: Instant,
        produced: u64,
        sent: u64,
        confirmed: u64,
        online: bool,
    ) -> Option<(u32, BitrateReason)> {
        if !online {
            // A cut: nothing to learn about the link's rate until it is
            // back, and then not from a window that holds the cut.
            self.was_offline = true;
            self.calm_since = None;
            return None;
        }
        if std::mem::take(&mut self.was_offline) {
            self.quiet_until = Some(now + WINDOW);
        }
        let (moved_at, sent0, confirmed0) = self.last_moved;
        if sent > sent0 || confirmed > confirmed0 {
            if now.duration_since(moved_at) > CUT {
                self.quiet_until = Some(now + WINDOW);
            }
            self.last_moved = (now, sent, confirmed);
        } else if produced.saturating_sub(confirmed) <= MIN_BACKLOG {
            // Nothing to send is not a stall.
            self.last_moved.0 = now;
        }
        let acked_now = confirmed > self.last_ack.1;
        if acked_now {
            let took = now.duration_since(self.last_ack.0).as_secs_f64();
            if took > 0.0 {
                self.ack_bps = Some((confirmed - self.last_ack.1) as f64 * 8.0 / took);
            }
            self.last_ack = (now, confirmed);
        } else if produced.saturating_sub(confirmed) <= MIN_BACKLOG {
            // Idle, not slow: the next stretch is timed from now.
            self.last_ack.0 = now;
        }
        self.samples.push_back((now, produced, sent, confirmed));
        while self.samples.len() > 2
            && self
                .samples
                .get(1)
                .is_some_and(|(t, ..)| now.duration_since(*t) >= WINDOW)
        {
            self.samples.pop_front();
        }
        let (t0, p0, s0, c0) = *self.samples.front()?;
        let dt = now.duration_since(t0).as_secs_f64();
        if dt < MIN_HISTORY.as_secs_f64() {
            return None;
        }
        // What the link carries: the last acknowledged stretch's rate, else
        // (nothing acknowledged yet) what the socket took.
        let sent_bps = sent.saturating_sub(s0) as f64 * 8.0 / dt;
        let up_bps = self.ack_bps.unwrap_or(sent_bps);
        let backlog = produced.saturating_sub(confirmed);
        if backlog <= MIN_BACKLOG {
            self.caught_up = now;
        }
        let busy = now.duration_since(self.caught_up) >= WINDOW;
        let enc_bps = produced.saturating_sub(p0) as f64 * 8.0 / dt;
        // A shrinking backlog (catching up after a cut) needs no help,
        // unless it is large and barely shrinking (the last cut was too
        // shallow: the socket buffers took bytes faster than the link).
        let before = p0.saturating_sub(c0);
        // Or the encoder outpaces the link (the backlog can look as if it
        // shrank when a whole PATCH was acknowledged at once).
        let growing = backlog > before || (acked_now && enc_bps > up_bps);
        let stuck = backlog.saturating_mul(10) > before.saturating_mul(9);
        let backlog_bits = backlog as f64 * 8.0;
        let drain = (up_bps > 0.0).then(|| backlog_bits / up_bps);
        let since = |t: Option<Instant>| t.map_or(Duration::MAX, |t| now.duration_since(t));
        let cur = self.cap.get();

        // Bytes are moving now (not a cut that has just begun).
        let flowing = now.duration_since(self.last_moved.0) < FLOWING;
        if busy
            && (growing || (stuck && drain.is_some_and(|d| d > 2.0 * DRAIN_HIGH)))
            && flowing
            && self.quiet_until.is_none_or(|q| now >= q)
            && drain.is_some_and(|d| d > DRAIN_HIGH)
            && since(self.last_change) >= HOLD_DOWN
        {
            // Below what the link carries, minus what drains the backlog;
            // from what the encoder makes now, at most to a third per step.
            let making = (enc_bps / 1000.0).min(f64::from(cur));
            let target = (up_bps * 0.85 - backlog_bits / DRAIN_IN_SECS) / 1000.0;
            let next = target.min(making * 0.85).max(making * 0.35) as u32;
            let set = self.cap.set(next);
            self.calm_since = None;
            if set < cur {
                self.last_change = Some(now);
                self.link_kbps = Some((up_bps / 1000.0) as u32);
                return Some((set, BitrateReason::Backlog));
            }
            return None;
        }
        let calm = backlog <= MIN_BACKLOG || drain.is_some_and(|d| d < DRAIN_LOW);
        if !calm {
            self.calm_since = None;
            return None;
        }
        let calm_since = *self.calm_since.get_or_insert(now);
        let calm_for = now.duration_since(calm_since);
        if cur >= self.cap.ceiling_kbps() || calm_for < HOLD_UP || since(self.last_change) < HOLD_UP
        {
            return None;
        }
        let mut next = (f64::from(cur) * 1.25) as u32;
        if let Some(link) = self.link_kbps {
            let near = link.saturating_mul(9) / 10;
            if cur < near {
                next = next.min(near);
            } else if calm_for < PROBE_AFTER {
                return None;
            } else {
                // Calm at the old link rate for a while: the link is
                // better now; probe past it.
                self.link_kbps = None;
            }
        }
        let set = self.cap.set(next);
        if set > cur {
            self.last_change = Some(now);
            self.calm_since = Some(now);
            return Some((set, BitrateReason::Recovered));
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A simulated recording: the encoder makes min(cap, `content_kbps`),
    /// the link carries `link_kbps(t)`; observed every 250 ms. Returns the
    /// changes and the worst backlog (in seconds of link time) after `settle`.
    struct Sim {
        adapter: Adapter,
        t0: Instant,
        now: Duration,
        produced: f64,
        confirmed: f64,
        /// Sent in PATCHes (the real client: the socket takes a PATCH of
        /// what is queued, up to ~3 s of the link, at once; its
        /// acknowledgement comes once the link carried it) instead of byte
        /// by byte: (sent, end of the
        /// PATCH in flight, bits of it still on the link).
        patches: Option<(f64, f64, f64)>,
        changes: Vec<(Duration, u32, BitrateReason)>,
    }

    impl Sim {
        fn new(ceiling: u32) -> Sim {
            Sim {
                adapter: Adapter::new(Arc::new(RateCap::new(ceiling))),
                t0: Instant::now(),
                now: Duration::ZERO,
                produced: 0.0,
                confirmed: 0.0,
                patches: None,
                changes: Vec::new(),
            }
        }

        /// Runs for `secs`; returns the largest drain time seen (s).
        fn run(&mut self, secs: f64, content_kbps: f64, link_kbps: f64) -> f64 {
            let step = 0.25;
            let mut worst: f64 = 0.0;
            for _ in 0..(secs / step) as usize {
                self.now += Duration::from_millis(250);
                let rate = content_kbps.min(f64::from(self.adapter.cap.get()));
                self.produced += rate * 1000.0 / 8.0 * step;
                let mut sent = self.confirmed;
                if let Some((s, end, left)) = self.patches.as_mut() {
                    *left -= link_kbps * 1000.0 * step;
                    if *left <= 0.0 {
                        self.confirmed = *end;
                        // The next PATCH: everything queued, at most what
                        // the link carries in 3 s (the client's target).
                        *end = self
                            .produced
                            .min(self.confirmed + link_kbps * 1000.0 / 8.0 * 3.0);
                        *left = (*end - self.confirmed) * 8.0;
                        *s = *end;
                    }
                    sent = *s;
                } else {
                    self.confirmed =
                        (self.confirmed + link_kbps * 1000.0 / 8.0 * step).min(self.produced);
                }
                let backlog = self.produced - self.confirmed;
                if link_kbps > 0.0 {
                    worst = worst.max(backlog * 8.0 / (link_kbps * 1000.0));
                }
                if let Some((k, r)) = self.adapter.observe(
                    self.t0 + self.now,
                    self.produced as u64,
                    sent as u64,
                    self.confirmed as u64,
                    true,
                ) {
                    self.changes.push((self.now, k, r));
                }
            }
            worst
        }
    }

    #[test]
    fn a_fast_link_changes_nothing() {
        let mut sim = Sim::new(13_824);
        sim.run(60.0, 5400.0, 20_000.0);
        assert!(sim.changes.is_empty(), "{:?}", sim.changes);
    }

    #[test]
    fn a_slow_link_lowers_the_cap_below_it_and_bounds_the_backlog() {
        let mut sim = Sim::new(13_824);
        sim.run(10.0, 5400.0, 3000.0);
        let (_, first, reason) = sim.changes[0];
        assert_eq!(reason, BitrateReason::Backlog);
        assert!(first < 5400, "{:?}", sim.changes);
        // After settling, the backlog never takes more than ~2 s to send.
        let worst = sim.run(120.0, 5400.0, 3000.0);
        assert!(worst < 2.5, "backlog of {worst:.2} s; {:?}", sim.changes);
        // Steps, not a jump to the floor.
        assert!(sim.changes.iter().all(|c| c.1 >= 1000), "{:?}", sim.changes);
    }

    #[test]
    fn a_slow_link_seen_a_patch_at_a_time_still_lowers_the_cap() {
        let mut sim = Sim::new(13_824);
        sim.patches = Some((0.0, 0.0, 0.0));
        sim.run(20.0, 5400.0, 2000.0);
        let first = sim.changes.first().copied();
        assert!(
            first.is_some_and(|(t, k, r)| r == BitrateReason::Backlog
                && k < 5400
                && t < Duration::from_secs(15)),
            "{:?}",
            sim.changes
        );
        sim.run(60.0, 5400.0, 2000.0);
        assert!(sim.adapter.cap.get() < 2000, "{:?}", sim.changes);
    }

    #[test]
    fn catching_up_after_a_cut_changes_nothing() {
        let mut sim = Sim::new(13_824);
        sim.run(5.0, 5400.0, 50_000.0);
        sim.run(20.0, 5400.0, 0.0);
        // The link is back, far faster than the encoder: the backlog of
        // 20 s drains in a few seconds without lowering the cap.
        sim.run(20.0, 5400.0, 50_000.0);
        assert!(sim.changes.is_empty(), "{:?}", sim.changes);
    }

    #[test]
    fn offline_holds_the_cap() {
        let mut sim = Sim::new(13_824);
        sim.run(5.0, 5400.0, 20_000.0);
        sim.run(30.0, 5400.0, 0.0);
        assert!(sim.changes.is_empty(), "{:?}", sim.changes);
    }

    #[test]
    fn a_recovered_link_raises_the_cap_back_to_the_ceiling() {
        let mut sim = Sim::new(13_824);
        sim.run(30.0, 20_000.0, 2000.0);
        let low = sim.adapter.cap.get();
        assert!(low < 2000, "{low}");
        sim.run(120.0, 20_000.0, 100_000.0);
        assert_eq!(sim.adapter.cap.get(), 13_824, "{:?}", sim.changes);
        let last = sim.changes.last().unwrap();
        assert_eq!(last.2, BitrateReason::Recovered);
        // Raised step by step: each at most 25 % higher.
        let ups: Vec<_> = sim
            .changes
            .windows(2)
            .filter(|w| w[1].2 == BitrateReason::Recovered)
            .collect();
        assert!(ups.len() >= 3);
        assert!(
            ups.iter()
                .all(|w| f64::from(w[1].1) <= f64::from(w[0].1) * 1.26)
        );
    }
}
