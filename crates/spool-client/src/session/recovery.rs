//! What the worker does after a failed request. The decision is taken on
//! the error's `ERR_*` code ([`ClientError::code`]) wherever there is one —
//! recreate a vanished upload, ask the server where it stands, send the
//! chunk again, stall on a full disk, or give up when the code says the
//! request will never succeed ([`ErrorCode::is_retryable`]) — and on the
//! HTTP status only for answers without a code; failures are counted into
//! "reconnecting" and then "stalled" per [`crate::policy::RetryPolicy`].

use std::time::{Duration, Instant};

use spool_proto::ErrorCode;

use super::worker::{Failures, Worker};
use super::{Event, State, Target};
use crate::error::{ClientError, Result};
use crate::policy::RetryPolicy;
use crate::wire::Discovery;

/// What to do after a failure.
pub(super) enum Recovery {
    /// Ask the server where it stands, after `delay`.
    Head {
        delay: Duration,
        error: String,
        counts: bool,
    },
    /// Send the same chunk again after `delay` (e.g. checksum mismatch).
    Retry { delay: Duration, error: String },
    /// The server cannot take bytes for a while (507, its disk is full):
    /// report stalled now, and ask again (HEAD) after `delay`.
    Stall { delay: Duration, error: String },
    /// The upload is gone from the server.
    Gone(String),
    /// Cannot go on.
    Fatal(ClientError),
}

/// Whether a refused PATCH may succeed as a smaller one: a body-size limit
/// (a proxy's bare 413, `ERR_BODY_TOO_LARGE`), not the upload's own size
/// limit (`ERR_MAX_SIZE_EXCEEDED`, `ERR_UPLOAD_SIZE_EXCEEDED`), which no
/// chunk size gets under.
pub(super) fn chunk_too_large(e: &ClientError) -> bool {
    e.status() == Some(413) && matches!(e.code(), None | Some(ErrorCode::BodyTooLarge))
}

/// Whether a failed creation may be sent again without risking a second
/// upload: the request never reached the server, or the server says it did
/// nothing (by its code; by 429/502/503/504 from a server without codes).
pub(super) fn creation_may_retry(e: &ClientError) -> bool {
    match e.code() {
        Some(code) => matches!(
            code,
            ErrorCode::Internal
                | ErrorCode::ShuttingDown
                | ErrorCode::ServerBusy
                | ErrorCode::InsufficientStorage
        ),
        None => {
            matches!(e, ClientError::Unreachable(_))
                || matches!(e.status(), Some(429 | 502 | 503 | 504))
        }
    }
}

/// The recovery from `e` for a request that failed `failures.count` times before.
pub(super) fn recovery_for(e: ClientError, failures: &Failures, policy: &RetryPolicy) -> Recovery {
    let attempt = failures.count + 1;
    let backoff = |ra: Option<Duration>| {
        if failures.stalled {
            policy.max_delay
        } else {
            policy.delay(attempt, ra)
        }
    };
    let retry_after = e.retry_after();
    let head = |delay: Duration, e: &ClientError| Recovery::Head {
        delay,
        error: e.to_string(),
        counts: true,
    };
    let Some(code) = e.code() else {
        return match &e {
            ClientError::Server {
                status: 404 | 410, ..
            } => Recovery::Gone(e.to_string()),
            ClientError::Server { status: 409, .. } => head(Duration::ZERO, &e),
            ClientError::Server {
                status: 408 | 429, ..
            } => head(backoff(retry_after), &e),
            ClientError::Server { status, .. } if *status >= 500 => head(backoff(retry_after), &e),
            ClientError::Network(_) | ClientError::Unreachable(_) => head(backoff(None), &e),
            _ => Recovery::Fatal(e),
        };
    };
    match code {
        // Terminated on purpose (a TUS DELETE, or its asset deleted):
        // re-creating it would resurrect what someone deleted.
        ErrorCode::UploadTerminated => Recovery::Fatal(match e {
            ClientError::Server { message, .. } => ClientError::Terminated(message),
            e => e,
        }),
        ErrorCode::UploadNotFound
        | ErrorCode::UploadExpired
        | ErrorCode::UploadDamaged
        | ErrorCode::SignatureExpired
        | ErrorCode::AssetNotFound
        | ErrorCode::NotFound => Recovery::Gone(e.to_string()),
        ErrorCode::MismatchedOffset | ErrorCode::UploadInterrupted => head(Duration::ZERO, &e),
        ErrorCode::UploadLocked => head(
            retry_after
                .unwrap_or(Duration::from_secs(1))
                .min(Duration::from_secs(10)),
            &e,
        ),
        ErrorCode::ChecksumMismatch => Recovery::Retry {
            delay: Duration::ZERO,
            error: e.to_string(),
        },
        ErrorCode::InsufficientStorage => Recovery::Stall {
            delay: policy.stalled_delay(retry_after),
            error: e.to_string(),
        },
        // Timeouts, a server shutting down, busy or failing: later.
        code if code.is_retryable() => head(backoff(retry_after), &e),
        _ => Recovery::Fatal(e),
    }
}

impl Worker {
    pub(super) fn classify(&self, e: ClientError, failures: &Failures) -> Recovery {
        recovery_for(e, failures, &self.options.retry)
    }

    pub(super) async fn note_failure(
        &mut self,
        failures: &mut Failures,
        error: &str,
        delay: Duration,
    ) {
        failures.count += 1;
        let since = *failures.since.get_or_insert_with(Instant::now);
        let policy = &self.options.retry;
        if !failures.stalled
            && (failures.count >= policy.stall_failures || since.elapsed() >= policy.stall_after)
        {
            failures.stalled = true;
            tracing::warn!(%error, "upload stalled; retrying at the capped interval");
            // State first, then the event: whoever reacts to the event sees it.
            self.set_state(State::Stalled, Some(error.to_owned())).await;
            self.emit(Event::Stalled {
                error: error.to_owned(),
            });
        } else if !failures.stalled {
            self.set_state(State::Reconnecting, Some(error.to_owned()))
                .await;
        }
        self.emit(Event::Reconnecting {
            attempt: failures.count,
            retry_in_ms: delay.as_millis() as u64,
            error: error.to_owned(),
        });
        self.status.send_modify(|s| {
            s.attempt = failures.count;
            s.next_retry_in_ms = Some(delay.as_millis() as u64);
        });
    }

    /// A failure that will not clear within seconds (507: the server's disk
    /// is full): stalled at once, not after the failure cap; then counted
    /// like any failure, and reset by the next success.
    pub(super) async fn note_stall(
        &mut self,
        failures: &mut Failures,
        error: &str,
        delay: Duration,
    ) {
        failures.since.get_or_insert_with(Instant::now);
        if !failures.stalled {
            failures.stalled = true;
            tracing::warn!(%error, "upload stalled: the server has no space; retrying at the capped interval");
            self.set_state(State::Stalled, Some(error.to_owned())).await;
            self.emit(Event::Stalled {
                error: error.to_owned(),
            });
        }
        self.note_failure(failures, error, delay).await;
    }

    /// Whether every byte is still on local disk as queued. A check that
    /// could not run (its task died) counts as "no": re-sending from bytes
    /// not verified would upload something else.
    async fn all_bytes_on_disk(&self) -> bool {
        let pieces = self.shared.produced.lock().await.pieces.clone();
        let checked = tokio::task::spawn_blocking(move || {
            pieces.iter().all(|p| crate::digest::check_piece(p).is_ok())
        })
        .await;
        match checked {
            Ok(all) => all,
            Err(e) => {
                tracing::warn!(error = %e, "checking the local bytes failed");
                false
            }
        }
    }

    /// The upload vanished (expired, deleted): start a new one from local
    /// bytes if every byte is still here, or fail clearly.
    pub(super) async fn recreate(&mut self, why: &str) -> Result<(String, Discovery)> {
        if matches!(self.target, Target::UploadUrl(_)) {
            return Err(ClientError::Gone(format!(
                "it was attached by URL, so no new upload can be created ({why}); give --server or --endpoint"
            )));
        }
        if !self.all_bytes_on_disk().await {
            return Err(ClientError::Gone(format!(
                "some queued bytes are no longer on local disk, so it cannot be sent again ({why})"
            )));
        }
        let reason = format!(
            "the upload is gone from the server ({why}); creating a new one and sending every byte again from local disk"
        );
        tracing::warn!("{reason}");
        self.emit(Event::Recreated { reason });
        self.create().await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::error::answer as server;

    fn recovery(e: ClientError) -> &'static str {
        match recovery_for(e, &Failures::default(), &RetryPolicy::default()) {
            Recovery::Head { .. } => "head",
            Recovery::Retry { .. } => "retry",
            Recovery::Stall { .. } => "stall",
            Recovery::Gone(_) => "gone",
            Recovery::Fatal(ClientError::Terminated(_)) => "terminated",
            Recovery::Fatal(_) => "fatal",
        }
    }

    #[test]
    fn recovery_follows_the_code_then_the_status() {
        let cases = [
            // (status, code, recovery)
            (410, Some(ErrorCode::UploadTerminated), "terminated"),
            (410, Some(ErrorCode::UploadExpired), "gone"),
            (404, Some(ErrorCode::UploadNotFound), "gone"),
            (403, Some(ErrorCode::SignatureExpired), "gone"),
            (409, Some(ErrorCode::MismatchedOffset), "head"),
            (400, Some(ErrorCode::UploadInterrupted), "head"),
            (423, Some(ErrorCode::UploadLocked), "head"),
            (460, Some(ErrorCode::ChecksumMismatch), "retry"),
            (507, Some(ErrorCode::InsufficientStorage), "stall"),
            (503, Some(ErrorCode::ShuttingDown), "head"),
            (503, Some(ErrorCode::ServerBusy), "head"),
            (408, Some(ErrorCode::RequestTimeout), "head"),
            (500, Some(ErrorCode::Internal), "head"),
            // A 5xx whose code says retrying cannot help is not retried.
            (500, Some(ErrorCode::ProcessingFailed), "fatal"),
            (403, Some(ErrorCode::Forbidden), "fatal"),
            (401, Some(ErrorCode::Unauthorized), "fatal"),
            (400, Some(ErrorCode::UploadComplete), "fatal"),
            // Other TUS servers: the status alone.
            (404, None, "gone"),
            (410, None, "gone"),
            (409, None, "head"),
            (423, None, "head"),
            (460, None, "retry"),
            (507, None, "stall"),
            (502, None, "head"),
            (429, None, "head"),
            (408, None, "head"),
            (400, None, "fatal"),
            (403, None, "fatal"),
        ];
        for (status, code, want) in cases {
            assert_eq!(recovery(server(status, code)), want, "{status} {code:?}");
        }
        assert_eq!(recovery(ClientError::Network("reset".into())), "head");
        assert_eq!(recovery(ClientError::Unreachable("refused".into())), "head");
        assert_eq!(recovery(ClientError::Invalid("x".into())), "fatal");
    }

    #[test]
    fn only_a_body_limit_shrinks_the_chunk() {
        assert!(chunk_too_large(&server(413, None)));
        assert!(chunk_too_large(&server(413, Some(ErrorCode::BodyTooLarge))));
        assert!(!chunk_too_large(&server(
            413,
            Some(ErrorCode::MaxSizeExceeded)
        )));
        assert!(!chunk_too_large(&server(400, None)));
    }

    #[test]
    fn creation_is_retried_only_where_nothing_was_created() {
        assert!(creation_may_retry(&ClientError::Unreachable("x".into())));
        assert!(!creation_may_retry(&ClientError::Network("reset".into())));
        for status in [429, 500, 502, 503, 504, 507] {
            assert!(creation_may_retry(&server(status, None)), "{status}");
        }
        assert!(creation_may_retry(&server(
            503,
            Some(ErrorCode::ServerBusy)
        )));
        assert!(!creation_may_retry(&server(400, None)));
        // The code decides: a 500 that names a bad request is not retried.
        assert!(!creation_may_retry(&server(
            500,
            Some(ErrorCode::InvalidRequest)
        )));
        assert!(!creation_may_retry(&server(
            408,
            Some(ErrorCode::RequestTimeout)
        )));
    }
}
