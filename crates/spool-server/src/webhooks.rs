//! Delivers the webhook outbox: at least once, in order per asset, with
//! exponential backoff and jitter (first retry after about a second, capped at
//! an hour, `Retry-After` honoured) until the receiver answers 2xx. The
//! outbox lives in SQLite, so pending events survive a restart. Deliveries of
//! different assets go out concurrently; one asset's next event waits for its
//! previous one.

use std::time::Duration;

use rand::Rng;
use spool_proto::webhook::{HEADER_ID, HEADER_SIGNATURE, HEADER_TIMESTAMP};

use crate::app::App;
use crate::config::WebhookConfig;
use crate::db::{PendingEvent, now_ms};

const MAX_DELAY: Duration = Duration::from_secs(3600);
const REQUEST_TIMEOUT: Duration = Duration::from_secs(15);
const BATCH: usize = 32;
/// How long the worker sleeps with nothing due, at most.
const IDLE_POLL: Duration = Duration::from_secs(30);

/// The wait before retry number `failures` (1 = after the first failure).
pub fn retry_delay(failures: u32, retry_after: Option<Duration>) -> Duration {
    if let Some(ra) = retry_after {
        return ra.min(MAX_DELAY);
    }
    let base = Duration::from_secs(1).saturating_mul(1u32 << failures.saturating_sub(1).min(12));
    let jitter = rand::thread_rng().gen_range(0.8..1.2);
    base.mul_f64(jitter).min(MAX_DELAY)
}

fn parse_retry_after(value: &str) -> Option<Duration> {
    if let Ok(secs) = value.trim().parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let when = httpdate::parse_http_date(value.trim()).ok()?;
    Some(
        when.duration_since(std::time::SystemTime::now())
            .unwrap_or_default(),
    )
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
                .and_then(parse_retry_after),
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
    loop {
        if app.shutdown.is_cancelled() {
            return;
        }
        let now = now_ms();
        let due = match app.db.call(move |ops| ops.due_events(now, BATCH)).await {
            Ok(d) => d,
            Err(e) => {
                tracing::error!(error = %e, "reading the webhook outbox");
                Vec::new()
            }
        };
        if due.is_empty() {
            let next = app.db.call(|ops| ops.next_event_due()).await.ok().flatten();
            let wait = next
                .map(|t| Duration::from_millis((t - now_ms()).max(0) as u64))
                .unwrap_or(IDLE_POLL)
                .min(IDLE_POLL);
            tokio::select! {
                _ = app.shutdown.cancelled() => return,
                _ = app.webhook_wake.notified() => {}
                _ = tokio::time::sleep(wait) => {}
            }
            continue;
        }
        let results =
            futures_util::future::join_all(due.iter().map(|e| deliver(&client, &cfg, e))).await;
        for (event, outcome) in due.into_iter().zip(results) {
            let seq = event.seq;
            let update = match outcome {
                Outcome::Delivered => {
                    tracing::debug!(webhook = %event.id, "webhook delivered");
                    app.db
                        .call(move |ops| ops.event_delivered(seq, now_ms()))
                        .await
                }
                Outcome::Failed { error, retry_after } => {
                    let delay = retry_delay(event.attempts + 1, retry_after);
                    tracing::warn!(webhook = %event.id, attempt = event.attempts + 1, retry_in_ms = delay.as_millis() as u64, %error, "webhook delivery failed");
                    let next = now_ms() + delay.as_millis() as i64;
                    app.db
                        .call(move |ops| ops.event_failed(seq, next, &error))
                        .await
                }
            };
            if let Err(e) = update {
                tracing::error!(error = %e, "recording a webhook delivery");
            }
        }
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
        assert_eq!(
            retry_delay(1, Some(Duration::from_secs(7))),
            Duration::from_secs(7)
        );
        assert_eq!(retry_delay(1, Some(Duration::from_secs(99_999))), MAX_DELAY);
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
