//! Delivers the webhook outbox ([`crate::outbox`]): at least once, in order
//! per asset, with exponential backoff and jitter (first retry after about a
//! second, capped at an hour) until the receiver answers 2xx or the event is
//! older than `--webhook-max-age`, when it is dead-lettered and the asset's
//! next event goes out. `Retry-After` can only lengthen a wait, never shorten
//! it, so a receiver answering `Retry-After: 0` cannot drive a tight loop.
//! The outbox lives in SQLite, so pending and dead events survive a restart;
//! the worker prunes delivered and dead rows after `--webhook-retention`.
//! Deliveries of different assets go out concurrently; one asset's next event
//! waits for its previous one.

use std::time::{Duration, SystemTime};

use rand::Rng;
use spool_proto::backoff;
use spool_proto::retry;
use spool_proto::webhook::{HEADER_ID, HEADER_SIGNATURE, HEADER_TIMESTAMP};

use crate::app::App;
use crate::config::WebhookConfig;
use crate::db::now_ms;
use crate::db::outbox::PendingEvent;

const MAX_DELAY: Duration = Duration::from_secs(3600);
const REQUEST_TIMEOUT: Duration = Duration::from_secs(15);
const BATCH: usize = 32;
/// How long the worker sleeps with nothing due, at most.
const IDLE_POLL: Duration = Duration::from_secs(30);

/// Pruning runs at most this often (and at least every `retention / 4`).
const MAX_PRUNE_PERIOD: Duration = Duration::from_secs(3600);
const MIN_PRUNE_PERIOD: Duration = Duration::from_secs(1);

/// The first retry's delay, before jitter; each later one doubles it.
const BASE_DELAY: Duration = Duration::from_secs(1);

/// The wait before retry number `failures` (1 = after the first failure):
/// the exponential backoff, raised to the receiver's `Retry-After` if that
/// is longer, and capped at [`MAX_DELAY`]. A `Retry-After` of 0 or in the
/// past leaves the backoff as it is. The receiver's `Retry-After` is applied
/// here rather than through [`backoff::delay`], whose client cut
/// ([`spool_proto::retry::MAX_RETRY_AFTER`]) is shorter than the hour a
/// webhook receiver may ask for.
pub fn retry_delay(failures: u32, retry_after: Option<Duration>) -> Duration {
    backoff(failures, rand::thread_rng().gen_range(0.0..1.0))
        .max(retry_after.unwrap_or_default())
        .min(MAX_DELAY)
}

/// The shared backoff formula for `failures`, with jitter `unit` in `[0, 1)`
/// (see [`backoff::delay`]), never past [`MAX_DELAY`] even with its jitter.
fn backoff(failures: u32, unit: f64) -> Duration {
    backoff::delay(BASE_DELAY, MAX_DELAY, failures, unit, None).min(MAX_DELAY)
}

/// What to do after a failed attempt at `now` (Unix ms) of an event
/// created at `created_at`: retry at the returned time, or (`None`) give up
/// because it is `max_age` old. The last retry is moved up to the moment the
/// event reaches `max_age`, so it gets one final attempt then rather than
/// an hour later.
pub fn next_attempt(now: i64, created_at: i64, max_age: Duration, delay: Duration) -> Option<i64> {
    let deadline = created_at.saturating_add(max_age.as_millis() as i64);
    if now >= deadline {
        return None;
    }
    Some(now.saturating_add(delay.as_millis() as i64).min(deadline))
}

fn prune_period(retention: Duration) -> Duration {
    (retention / 4).clamp(MIN_PRUNE_PERIOD, MAX_PRUNE_PERIOD)
}

enum Outcome {
    Delivered,
    Failed {
        error: String,
        retry_after: Option<Duration>,
    },
}

async fn deliver(client: &reqwest::Client, cfg: &WebhookConfig, event: &PendingEvent) -> Outcome {
    let ts = chrono::Utc::now().timestamp();
    let signature = cfg.secret.sign(&event.id, ts, event.body.as_bytes());
    let result = client
        .post(cfg.url.clone())
        .header(reqwest::header::CONTENT_TYPE, "application/json")
        .header(HEADER_ID, &event.id)
        .header(HEADER_TIMESTAMP, ts.to_string())
        .header(HEADER_SIGNATURE, signature)
        .body(event.body.clone())
        .send()
        .await;
    match result {
        Ok(resp) if resp.status().is_success() => Outcome::Delivered,
        Ok(resp) => Outcome::Failed {
            error: format!("receiver answered {}", resp.status()),
            retry_after: resp
                .headers()
                .get(reqwest::header::RETRY_AFTER)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| retry::parse_retry_after(v, SystemTime::now())),
        },
        // The URL may carry a secret of the receiver's: never in the error.
        Err(e) => Outcome::Failed {
            error: e.without_url().to_string(),
            retry_after: None,
        },
    }
}

/// The worker loop; returns when the server shuts down.
pub async fn run(app: App) {
    let Some(cfg) = app.config.webhook.clone() else {
        return;
    };
    let client = match reqwest::Client::builder()
        .timeout(REQUEST_TIMEOUT)
        .user_agent(concat!("Spool-Webhooks/", env!("CARGO_PKG_VERSION")))
        .build()
    {
        Ok(c) => c,
        Err(e) => {
            tracing::error!(error = %e, "cannot build the webhook HTTP client; webhooks stay queued");
            return;
        }
    };
    let max_age = app.config.webhook_max_age;
    // A claim outlasts the deliveries it covers, so one node sends each.
    let lease_ms = (REQUEST_TIMEOUT * 2).as_millis() as i64;
    let idle_poll = if app.db.is_shared() {
        crate::process::SHARED_POLL
    } else {
        IDLE_POLL
    };
    let retention = app.config.webhook_retention;
    let mut next_prune = tokio::time::Instant::now();
    loop {
        if app.shutdown.is_cancelled() {
            return;
        }
        if tokio::time::Instant::now() >= next_prune {
            prune(&app, retention).await;
            next_prune = tokio::time::Instant::now() + prune_period(retention);
        }
        let now = now_ms();
        let node = app.node.clone();
        // Both in one transaction: "next due" is only asked when nothing is.
        let batch = app
            .db
            .call(move |ops| {
                let due = ops.due_events(now, BATCH, &node, now + lease_ms)?;
                let next = if due.is_empty() {
                    ops.next_event_due(now)?
                } else {
                    None
                };
                Ok((due, next))
            })
            .await;
        let (due, next) = match batch {
            Ok(b) => b,
            Err(e) => {
                tracing::error!(error = %e, "reading the webhook outbox");
                (Vec::new(), None)
            }
        };
        if due.is_empty() {
            let wait = next
                .map(|t| Duration::from_millis((t - now_ms()).max(0) as u64))
                .unwrap_or(idle_poll)
                .min(idle_poll);
            let wake = (tokio::time::Instant::now() + wait).min(next_prune);
            tokio::select! {
                _ = app.shutdown.cancelled() => return,
                _ = app.webhook_wake.notified() => {}
                _ = tokio::time::sleep_until(wake) => {}
            }
            continue;
        }
        let results =
            futures_util::future::join_all(due.iter().map(|e| deliver(&client, &cfg, e))).await;
        for (event, outcome) in due.into_iter().zip(results) {
            if let Err(e) = record(&app, &event, outcome, max_age).await {
                tracing::error!(error = %e, "recording a webhook delivery");
            }
        }
    }
}

async fn record(
    app: &App,
    event: &PendingEvent,
    outcome: Outcome,
    max_age: Duration,
) -> Result<(), crate::db::DbError> {
    let seq = event.seq;
    let attempt = event.attempts + 1;
    match outcome {
        Outcome::Delivered => {
            tracing::debug!(webhook = %event.id, attempt, "webhook delivered");
            app.db
                .call(move |ops| ops.event_delivered(seq, now_ms()))
                .await
        }
        Outcome::Failed { error, retry_after } => {
            let now = now_ms();
            let delay = retry_delay(attempt, retry_after);
            match next_attempt(now, event.created_at, max_age, delay) {
                Some(next) => {
                    tracing::warn!(webhook = %event.id, attempt, retry_in_ms = next - now, %error, "webhook delivery failed");
                    app.db
                        .call(move |ops| ops.event_failed(seq, next, &error))
                        .await
                }
                None => {
                    tracing::error!(
                        webhook = %event.id,
                        event = %event.kind,
                        asset = %event.asset_id,
                        attempts = attempt,
                        age_s = (now - event.created_at) / 1000,
                        %error,
                        "webhook dead-lettered: still failing after --webhook-max-age; kept in the outbox, the asset's later events go on"
                    );
                    app.db
                        .call(move |ops| ops.event_dead(seq, now, &error))
                        .await
                }
            }
        }
    }
}

async fn prune(app: &App, retention: Duration) {
    let cutoff = now_ms().saturating_sub(retention.as_millis() as i64);
    match app.db.call(move |ops| ops.prune_events(cutoff)).await {
        Ok(p) if p.delivered + p.dead > 0 => {
            tracing::info!(
                delivered = p.delivered,
                dead = p.dead,
                "pruned old webhooks from the outbox"
            );
        }
        Ok(_) => {}
        Err(e) => tracing::error!(error = %e, "pruning the webhook outbox"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_with_jitter_and_is_capped() {
        let first = retry_delay(1, None);
        assert!(
            first >= Duration::from_millis(800) && first <= Duration::from_millis(1200),
            "{first:?}"
        );
        let fifth = retry_delay(5, None);
        assert!(
            fifth >= Duration::from_millis(12_800) && fifth <= Duration::from_millis(19_200),
            "{fifth:?}"
        );
        assert!(retry_delay(40, None) <= MAX_DELAY);
        assert_eq!(backoff(1, 0.0), Duration::from_secs(1));
        assert_eq!(backoff(3, 0.0), Duration::from_secs(4));
        assert_eq!(backoff(40, 1.0), MAX_DELAY);
    }

    fn parse_retry_after(value: &str) -> Option<Duration> {
        retry::parse_retry_after(value, SystemTime::now())
    }

    #[test]
    fn retry_after_is_a_floor_never_a_shortcut() {
        // 0, or a date in the past: the backoff still applies.
        for ra in [
            Some(Duration::ZERO),
            parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT"),
        ] {
            let d = retry_delay(1, ra);
            assert!(d >= Duration::from_millis(800), "{ra:?} gave {d:?}");
            let d = retry_delay(5, ra);
            assert!(d >= Duration::from_millis(12_800), "{ra:?} gave {d:?}");
        }
        // Shorter than the backoff: the backoff.
        let d = retry_delay(5, Some(Duration::from_secs(2)));
        assert!(d >= Duration::from_millis(12_800), "{d:?}");
        // Longer: raises the wait, up to the cap.
        assert_eq!(
            retry_delay(1, Some(Duration::from_secs(7))),
            Duration::from_secs(7)
        );
        assert_eq!(retry_delay(1, Some(Duration::from_secs(99_999))), MAX_DELAY);
        assert_eq!(
            retry_delay(20, Some(Duration::from_secs(99_999))),
            MAX_DELAY
        );
    }

    #[test]
    fn attempts_stop_at_max_age_with_a_last_one_at_the_deadline() {
        let age = Duration::from_secs(10);
        // Young: the delay as computed.
        assert_eq!(
            next_attempt(1_000, 0, age, Duration::from_secs(2)),
            Some(3_000)
        );
        // The delay would overshoot: the last attempt lands on the deadline.
        assert_eq!(
            next_attempt(9_000, 0, age, Duration::from_secs(4)),
            Some(10_000)
        );
        // At or past the deadline: give up.
        assert_eq!(next_attempt(10_000, 0, age, Duration::from_secs(1)), None);
        assert_eq!(next_attempt(99_000, 0, age, Duration::ZERO), None);
    }

    #[test]
    fn pruning_runs_often_enough_for_the_retention() {
        assert_eq!(prune_period(Duration::from_secs(2)), MIN_PRUNE_PERIOD);
        assert_eq!(
            prune_period(Duration::from_secs(40)),
            Duration::from_secs(10)
        );
        assert_eq!(
            prune_period(crate::config::defaults::WEBHOOK_RETENTION),
            MAX_PRUNE_PERIOD
        );
    }

    #[test]
    fn retry_after_forms() {
        assert_eq!(parse_retry_after("5"), Some(Duration::from_secs(5)));
        assert_eq!(
            parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT"),
            Some(Duration::ZERO)
        );
        assert_eq!(parse_retry_after("soon"), None);
    }
}
