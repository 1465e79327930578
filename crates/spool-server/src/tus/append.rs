//! The append path shared by PATCH and creation-with-upload: stream the
//! body into a store writer (hashing it when an `Upload-Checksum` came
//! with it), stop on a stall, an interruption or shutdown, and commit
//! durably before recording the new offset; a chunk that would cross the
//! free-space reserve ([`crate::space`]) is refused with 507, none of it kept.

use axum::body::Body;
use futures_util::StreamExt;
use spool_proto::ErrorCode;
use spool_proto::checksum::{Checksum, Hasher};

use crate::app::App;
use crate::db::UploadRow;
use crate::error::{ApiError, ApiResult};
use crate::locks::WriteGuard;
use crate::space;
use crate::store::WriteMode;

/// How reading a body ended.
enum BodyEnd {
    Complete,
    ClientGone,
    Stalled,
    Interrupted,
    ShuttingDown,
    TooLarge,
    /// Storing more would cross the free-space reserve.
    NoSpace,
}

/// Streams `body` into the upload at its current offset and records the
/// result. Bytes that arrived are kept when the body is cut off (unless the
/// chunk had to be verified by checksum, which a partial chunk cannot be).
pub(crate) async fn append(
    app: &App,
    row: &UploadRow,
    guard: &WriteGuard,
    body: Body,
    checksum: Option<Checksum>,
    content_length: Option<u64>,
) -> ApiResult<UploadRow> {
    let (limit, limit_error) = match row.length {
        Some(len) => (len - row.offset, ErrorCode::UploadSizeExceeded),
        None => (
            row.size_limit(app.config.max_size)
                .saturating_sub(row.offset),
            ErrorCode::MaxSizeExceeded,
        ),
    };
    let too_large = || {
        ApiError::new(
            limit_error,
            format!("the body exceeds the {limit} bytes this upload can still take"),
        )
    };
    if content_length.is_some_and(|n| n > limit) {
        return Err(too_large());
    }
    // The free-space reserve: what is still to come must fit (a body of
    // unknown length: its next window), checked before any of it is read.
    let still_to_come =
        |received: u64| content_length.map_or(space::CHECK_EVERY, |n| n.saturating_sub(received));
    let idle = app.config.idle_timeout;
    let stop = async {
        tokio::select! {
            _ = guard.interrupted() => {},
            _ = app.shutdown.cancelled() => {},
        }
    };
    if let Err(e) = app.space.check(still_to_come(0), Some(row.offset)).await {
        space::discard(&mut body.into_data_stream(), idle, stop).await;
        return Err(e);
    }
    let mut space_counted: u64 = 0;
    let mode = if checksum.is_some() {
        WriteMode::Staged
    } else {
        WriteMode::Direct
    };
    let mut writer = app
        .store
        .writer(&row.id, row.offset, mode)
        .await
        .map_err(|e| space::store_error(e, Some(row.offset)))?;
    let mut hasher = checksum.as_ref().map(|c| Hasher::new(c.algorithm));
    let mut received: u64 = 0;
    let mut stream = body.into_data_stream();
    let end = loop {
        let frame = tokio::select! {
            biased;
            _ = guard.interrupted() => break BodyEnd::Interrupted,
            _ = app.shutdown.cancelled() => break BodyEnd::ShuttingDown,
            frame = tokio::time::timeout(idle, stream.next()) => frame,
        };
        match frame {
            Err(_) => break BodyEnd::Stalled,
            Ok(None) => break BodyEnd::Complete,
            Ok(Some(Err(_))) => break BodyEnd::ClientGone,
            Ok(Some(Ok(data))) => {
                received += data.len() as u64;
                if received > limit {
                    break BodyEnd::TooLarge;
                }
                // Other uploads fill the volume too: look again as bytes
                // arrive, and stop before this chunk crosses the reserve.
                if received - space_counted >= space::CHECK_EVERY {
                    let (arrived, need) = (received - space_counted, still_to_come(received));
                    space_counted = received;
                    let check = app.space.check_streaming(arrived, need, Some(row.offset));
                    if check.await.is_err() {
                        break BodyEnd::NoSpace;
                    }
                }
                guard.touch();
                if let Some(h) = hasher.as_mut() {
                    h.update(&data);
                }
                if let Err(e) = writer.write(data).await {
                    let _ = writer.abort().await;
                    return Err(space::store_error(e, Some(row.offset)));
                }
            }
        }
    };

    let outcome: Result<(), ApiError> = match end {
        BodyEnd::Complete => {
            let verified = match (checksum, hasher) {
                (Some(expected), Some(h)) => h.finish() == expected.digest,
                _ => true,
            };
            if !verified {
                writer.abort().await?;
                return Err(ApiError::new(
                    ErrorCode::ChecksumMismatch,
                    "the body's checksum does not match Upload-Checksum; nothing was stored",
                ));
            }
            Ok(())
        }
        BodyEnd::TooLarge => {
            writer.abort().await?;
            return Err(too_large());
        }
        // A 507 promises that nothing of the chunk was stored.
        BodyEnd::NoSpace => {
            writer.abort().await?;
            tracing::info!(upload = %row.id, received, "free-space reserve reached mid-body; the partial chunk is discarded");
            space::discard(&mut stream, idle, stop).await;
            return Err(space::insufficient(Some(row.offset)));
        }
        BodyEnd::ClientGone => Err(ApiError::new(
            ErrorCode::InvalidRequest,
            "the request body ended early; what arrived was saved",
        )),
        BodyEnd::Stalled => Err(ApiError::new(
            ErrorCode::RequestTimeout,
            format!(
                "no bytes arrived for {} s; what arrived was saved",
                idle.as_secs()
            ),
        )
        .with_header("connection", "close")),
        BodyEnd::Interrupted => Err(ApiError::new(
            ErrorCode::UploadInterrupted,
            ErrorCode::UploadInterrupted.description(),
        )
        .with_header("connection", "close")),
        BodyEnd::ShuttingDown => Err(ApiError::new(
            ErrorCode::ShuttingDown,
            ErrorCode::ShuttingDown.description(),
        )
        .with_header("connection", "close")),
    };
    if let Err(e) = outcome {
        if mode == WriteMode::Staged {
            // A partial chunk cannot be verified against its checksum.
            writer.abort().await?;
            return Err(e);
        }
        let added = writer
            .commit()
            .await
            .map_err(|e| space::store_error(e, Some(row.offset)))?;
        record(app, row, added).await?;
        tracing::info!(upload = %row.id, saved = added, code = %e.code, "body ended early");
        app.events_enqueued();
        return Err(e);
    }
    crate::fault::point("written-before-commit");
    let added = writer
        .commit()
        .await
        .map_err(|e| space::store_error(e, Some(row.offset)))?;
    crate::fault::point("committed-before-record");
    record(app, row, added).await
}

async fn record(app: &App, row: &UploadRow, added: u64) -> ApiResult<UploadRow> {
    let new_offset = row.offset + added;
    let (id, expiry, now) = (row.id.clone(), app.expiry_ms(), app.now_ms());
    // Committed with the offsets of the other PATCHes finishing now, and
    // durable when this returns.
    let row = app.db.record_progress(&id, new_offset, now, expiry).await?;
    crate::uploads::assemble(app, &row).await;
    // Before the client hears the new offset, so a fragment it was told is
    // stored is already in the live playlist.
    crate::live::on_progress(app, &row).await;
    Ok(row)
}
