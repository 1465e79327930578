//! Retry and chunking policy. Backoff is exponential with jitter — about
//! min(2^n × 500 ms, 16 s) plus up to 20 % — and honours `Retry-After`; a
//! chunk that keeps failing (6 failures or 90 s by default) makes the session
//! "stalled", which keeps retrying at the capped interval; a server out of
//! space (507) stalls it at once, retrying at that interval or its
//! `Retry-After`, whichever is longer. Chunk sizes adapt
//! to measured throughput so a PATCH takes a few seconds, within 256 KiB –
//! 64 MiB, never below the server's minimum (except the last) nor above its
//! maximum, shrink after a 413, and drop to the minimum after a 507.

use std::time::Duration;

use rand::Rng;

pub const MIN_CHUNK: u64 = 256 * 1024;
pub const MAX_CHUNK: u64 = 64 * 1024 * 1024;
/// The first chunk, before any throughput is measured.
pub const INITIAL_CHUNK: u64 = 4 * 1024 * 1024;
/// What a PATCH should take at the measured throughput.
pub const TARGET_PATCH: Duration = Duration::from_secs(3);

/// How retries back off and when a session counts as stalled.
#[derive(Debug, Clone)]
pub struct RetryPolicy {
    pub base: Duration,
    pub max_delay: Duration,
    /// Failures of one chunk before the session is reported stalled.
    pub stall_failures: u32,
    /// Time one chunk may keep failing before the session is reported stalled.
    pub stall_after: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            base: Duration::from_millis(500),
            max_delay: Duration::from_secs(16),
            stall_failures: 6,
            stall_after: Duration::from_secs(90),
        }
    }
}

impl RetryPolicy {
    /// The wait before retry `attempt` (1-based): the shared formula
    /// ([`spool_proto::backoff::delay`]) with a fresh random jitter.
    pub fn delay(&self, attempt: u32, retry_after: Option<Duration>) -> Duration {
        let unit = rand::thread_rng().gen_range(0.0..1.0);
        spool_proto::backoff::delay(self.base, self.max_delay, attempt, unit, retry_after)
    }

    /// The wait between retries once stalled by a condition that does not
    /// clear within seconds (507): the capped interval, or the server's
    /// `Retry-After` if longer (itself capped at 5 minutes).
    pub fn stalled_delay(&self, retry_after: Option<Duration>) -> Duration {
        spool_proto::backoff::stalled_delay(self.max_delay, retry_after)
    }
}

/// Picks the next chunk size.
#[derive(Debug, Clone)]
pub struct ChunkSizer {
    fixed: Option<u64>,
    current: u64,
    /// The server's smallest acceptable non-final PATCH.
    pub min_chunk: u64,
    /// The server's largest acceptable upload (`Tus-Max-Size`), if known.
    pub max_size: Option<u64>,
    /// Ceiling lowered by 413 answers.
    ceiling: u64,
}

impl ChunkSizer {
    pub fn new(fixed: Option<u64>, min_chunk: u64) -> Self {
        let current = fixed.unwrap_or(INITIAL_CHUNK).max(min_chunk);
        ChunkSizer {
            fixed,
            current,
            min_chunk,
            max_size: None,
            ceiling: MAX_CHUNK.max(min_chunk),
        }
    }

    /// The size to aim for now.
    pub fn target(&self) -> u64 {
        self.current
            .min(self.ceiling)
            .max(self.min_chunk.min(self.ceiling))
            .max(1)
    }

    /// Feeds back how long a successful PATCH of `bytes` took.
    pub fn record(&mut self, bytes: u64, took: Duration) {
        if self.fixed.is_some() || bytes < MIN_CHUNK / 4 {
            return;
        }
        let rate = bytes as f64 / took.as_secs_f64().max(0.001);
        let ideal = (rate * TARGET_PATCH.as_secs_f64()) as u64;
        // Move halfway, so one odd measurement does not swing it.
        let next = (self.current / 2 + ideal / 2).clamp(MIN_CHUNK, MAX_CHUNK);
        self.current = next.max(self.min_chunk);
    }

    /// After a 507 (the server has no space): the next chunks are the
    /// smallest allowed, so that retries while stalled cost little (a
    /// refused chunk is still sent whole); successes grow it back at the
    /// measured throughput. A fixed size stays as it is.
    pub fn no_space(&mut self) {
        if self.fixed.is_none() {
            self.current = MIN_CHUNK.max(self.min_chunk);
        }
    }

    /// After a 413 for a chunk of `bytes`: halve below it. Returns false when
    /// it cannot shrink further (the server refuses even the minimum).
    pub fn shrink(&mut self, bytes: u64) -> bool {
        let floor = self.min_chunk.max(MIN_CHUNK);
        if bytes <= floor {
            return false;
        }
        self.ceiling = (bytes / 2).max(floor);
        self.current = self.current.min(self.ceiling);
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_to_a_cap_with_jitter() {
        let p = RetryPolicy::default();
        for (attempt, base) in [(1, 500), (2, 1000), (3, 2000), (6, 16_000), (20, 16_000)] {
            let d = p.delay(attempt, None).as_millis() as u64;
            assert!(d >= base && d <= base * 12 / 10, "attempt {attempt}: {d}");
        }
        assert!(p.delay(1, Some(Duration::from_secs(7))) >= Duration::from_secs(7));
    }

    #[test]
    fn a_stall_waits_the_cap_or_retry_after() {
        let p = RetryPolicy::default();
        assert_eq!(p.stalled_delay(None), p.max_delay);
        assert_eq!(p.stalled_delay(Some(Duration::from_secs(1))), p.max_delay);
        assert_eq!(
            p.stalled_delay(Some(Duration::from_secs(40))),
            Duration::from_secs(40)
        );
        assert_eq!(
            p.stalled_delay(Some(Duration::from_secs(86_400))),
            Duration::from_secs(300)
        );
    }

    #[test]
    fn chunks_adapt_within_bounds() {
        let mut c = ChunkSizer::new(None, 0);
        assert_eq!(c.target(), INITIAL_CHUNK);
        // 100 MB/s → aim for ~300 MB, capped.
        for _ in 0..10 {
            c.record(INITIAL_CHUNK, Duration::from_millis(40));
        }
        assert_eq!(c.target(), MAX_CHUNK);
        // 100 KB/s → floor.
        for _ in 0..30 {
            c.record(MIN_CHUNK, Duration::from_secs(3));
        }
        assert!(c.target() < MIN_CHUNK + 1024, "{}", c.target());
    }

    #[test]
    fn min_chunk_and_413() {
        let mut c = ChunkSizer::new(None, 5 * 1024 * 1024);
        c.record(1 << 20, Duration::from_secs(10));
        assert_eq!(c.target(), 5 * 1024 * 1024);
        let mut c = ChunkSizer::new(Some(8 << 20), 0);
        assert!(c.shrink(8 << 20));
        assert_eq!(c.target(), 4 << 20);
        while c.shrink(c.target()) {}
        assert_eq!(c.target(), MIN_CHUNK);
    }

    #[test]
    fn no_space_sends_little_until_accepted_then_grows_back() {
        let mut c = ChunkSizer::new(None, 0);
        c.no_space();
        assert_eq!(c.target(), MIN_CHUNK);
        // 100 MB/s measured again: back to large chunks within a few PATCHes.
        for _ in 0..8 {
            c.record(c.target(), Duration::from_millis(c.target() / 100_000));
        }
        assert!(c.target() > 32 * 1024 * 1024, "{}", c.target());
        let mut c = ChunkSizer::new(None, 5 << 20);
        c.no_space();
        assert_eq!(c.target(), 5 << 20);
        let mut c = ChunkSizer::new(Some(8 << 20), 0);
        c.no_space();
        assert_eq!(c.target(), 8 << 20);
    }
}
