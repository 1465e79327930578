//! The retry backoff clients use: exponential from a base, doubling per
//! attempt up to a cap, plus a random jitter of up to [`JITTER`] of the
//! delay so that clients cut off together do not come back together; a
//! server's `Retry-After` is honoured when longer (cut to
//! [`crate::retry::MAX_RETRY_AFTER`]). The randomness is the caller's (a
//! sample in `[0, 1)`), so this stays deterministic and free of I/O.

use std::time::Duration;

use crate::retry::MAX_RETRY_AFTER;

/// The largest jitter, as a fraction of the delay.
pub const JITTER: f64 = 0.2;

/// The delay before retry `attempt` (1-based): `min(base × 2^(attempt−1),
/// cap)`, plus `unit × JITTER` of it, or `retry_after` if that is longer.
/// `unit` is a random sample in `[0, 1)`; values outside are clamped.
pub fn delay(
    base: Duration,
    cap: Duration,
    attempt: u32,
    unit: f64,
    retry_after: Option<Duration>,
) -> Duration {
    let exp = base
        .saturating_mul(1u32 << attempt.saturating_sub(1).min(16))
        .min(cap);
    let d = exp + exp.mul_f64(unit.clamp(0.0, 1.0) * JITTER);
    match retry_after {
        Some(ra) => d.max(ra.min(MAX_RETRY_AFTER)),
        None => d,
    }
}

/// The wait between retries once a condition will not clear within seconds
/// (a full disk): the cap, or `retry_after` if longer (cut as above).
pub fn stalled_delay(cap: Duration, retry_after: Option<Duration>) -> Duration {
    cap.max(retry_after.unwrap_or_default().min(MAX_RETRY_AFTER))
}

#[cfg(test)]
mod tests {
    use super::*;

    const BASE: Duration = Duration::from_millis(500);
    const CAP: Duration = Duration::from_secs(16);

    #[test]
    fn doubles_to_the_cap() {
        for (attempt, ms) in [
            (0, 500),
            (1, 500),
            (2, 1000),
            (3, 2000),
            (6, 16_000),
            (40, 16_000),
        ] {
            assert_eq!(
                delay(BASE, CAP, attempt, 0.0, None),
                Duration::from_millis(ms),
                "attempt {attempt}"
            );
        }
    }

    #[test]
    fn jitter_is_at_most_a_fifth() {
        assert_eq!(delay(BASE, CAP, 1, 0.5, None), Duration::from_millis(550));
        assert_eq!(delay(BASE, CAP, 1, 7.0, None), Duration::from_millis(600));
        assert_eq!(delay(BASE, CAP, 1, -1.0, None), Duration::from_millis(500));
    }

    #[test]
    fn retry_after_when_longer_and_capped() {
        let s = Duration::from_secs;
        assert_eq!(delay(BASE, CAP, 1, 0.0, Some(s(7))), s(7));
        assert_eq!(
            delay(BASE, CAP, 1, 0.0, Some(Duration::ZERO)),
            Duration::from_millis(500)
        );
        assert_eq!(delay(BASE, CAP, 1, 0.0, Some(s(86_400))), s(300));
        assert_eq!(stalled_delay(CAP, None), CAP);
        assert_eq!(stalled_delay(CAP, Some(s(40))), s(40));
        assert_eq!(stalled_delay(CAP, Some(s(86_400))), s(300));
    }
}
