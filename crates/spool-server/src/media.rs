//! The playable media of an asset, public to anyone with its share link
//! (asset ids are unguessable) and gone once it is deleted:
//! - `/v/{id}/media`: the original bytes, with Range; while uploading, the
//!   acknowledged prefix, so the live playlist can point into it;
//! - `/v/{id}/playlist.m3u8`: the HLS playlist, live (no `EXT-X-ENDLIST`)
//!   while uploading, ended once every byte is in;
//! - `/v/{id}/stream.mp4`: the processed fragmented MP4 of an upload that was
//!   not already one the player takes (the playlist's object then);
//! - `/v/{id}/video.mp4`: the progressive MP4 that seeks at once — a header
//!   (init segment with durations + `sidx`) and the segments' bytes, no copy;
//! - `/v/{id}/poster.jpg`.

use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use spool_proto::ErrorCode;

use crate::app::App;
use crate::db::{AssetStatus, AssetView, UploadState};
use crate::error::{ApiError, ApiResult};
use crate::http_util::{Piece, bytes_etag, serve_bytes, serve_pieces, sniff_content_type};
use crate::outputs::{Index, Outputs, POSTER, PROCESSED, Source};
use crate::share::{load, protect};

/// The media routes.
pub fn routes() -> axum::Router<App> {
    use axum::routing::get;
    axum::Router::new()
        .route("/v/{id}/media", get(original))
        .route("/v/{id}/playlist.m3u8", get(playlist))
        .route("/v/{id}/stream.mp4", get(stream))
        .route("/v/{id}/video.mp4", get(video))
        .route("/v/{id}/poster.jpg", get(poster))
}

fn finish(result: ApiResult<Response>, app: &App) -> Response {
    let mut resp = result.into_response();
    protect(&mut resp, app, false);
    resp
}

async fn asset(app: &App, id: &str) -> ApiResult<AssetView> {
    match load(app, id).await? {
        Some(a) if a.status == AssetStatus::Deleted => Err(ApiError::new(
            ErrorCode::AssetNotFound,
            "the asset was deleted",
        )),
        Some(a) => Ok(a),
        None => Err(ApiError::new(
            ErrorCode::AssetNotFound,
            "no asset has this id",
        )),
    }
}

fn not_ready(what: &str) -> ApiError {
    ApiError::new(ErrorCode::AssetNotReady, format!("{what} is not ready yet"))
}

async fn upload_state(app: &App, upload_id: &str) -> ApiResult<Option<UploadState>> {
    let uid = upload_id.to_owned();
    Ok(app
        .db
        .call(move |ops| Ok(ops.upload(&uid)?.map(|u| u.state)))
        .await?)
}

/// The finished index written by the processor.
async fn finished_index(app: &App, asset_id: &str) -> Option<Index> {
    let outputs = Outputs::new(&app.config.data_dir, asset_id);
    tokio::task::spawn_blocking(move || outputs.load_index())
        .await
        .ok()
        .flatten()
}

/// `GET /v/{id}/media`.
async fn original(State(app): State<App>, Path(id): Path<String>, headers: HeaderMap) -> Response {
    let result = async {
        let a = asset(&app, &id).await?;
        match upload_state(&app, &a.upload_id).await? {
            Some(UploadState::Active) if a.live => {
                // The acknowledged prefix: a live playlist's byte ranges lie
                // inside it, and each prefix length has its own ETag.
                let ct = sniff_content_type(&app, &a.upload_id).await;
                serve_bytes(&app, &a.upload_id, a.offset, &headers, ct, false).await
            }
            _ => crate::api::ready_bytes(&app, &a, &headers).await,
        }
    }
    .await;
    finish(result, &app)
}

/// The segments behind the playlist and the indexed MP4, and the URL of
/// their object: the processor's index once ready, the live index before.
async fn segments(app: &App, a: &AssetView) -> ApiResult<(Index, bool)> {
    if a.status == AssetStatus::Ready
        && let Some(ix) = finished_index(app, &a.id).await
    {
        return Ok((ix, true));
    }
    let state = upload_state(app, &a.upload_id).await?;
    let complete = state == Some(UploadState::Complete);
    if !(complete || state == Some(UploadState::Active)) {
        return Err(not_ready("the video"));
    }
    let snap = crate::live::snapshot(app, &a.upload_id, &a.metadata, a.offset, complete)
        .await
        .ok_or_else(|| not_ready("the video"))?;
    let duration_ms = snap.playable().duration_ms;
    let ended = snap.ended;
    Ok((
        Index {
            source: Source::Original,
            object_len: a.offset,
            duration_ms,
            init: snap.init,
            segments: snap.segments,
        },
        ended,
    ))
}

/// `GET /v/{id}/playlist.m3u8`.
async fn playlist(State(app): State<App>, Path(id): Path<String>) -> Response {
    let result = async {
        let a = asset(&app, &id).await?;
        let (ix, ended) = segments(&app, &a).await?;
        let uri = match ix.source {
            Source::Original => "media",
            Source::Processed => "stream.mp4",
        };
        let body = spool_media::hls::media_playlist(&ix.init, &ix.segments, uri, ended);
        let mut resp = (StatusCode::OK, body).into_response();
        let h = resp.headers_mut();
        h.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/vnd.apple.mpegurl"),
        );
        // A live playlist changes with every fragment; an ended one is
        // revalidated like the bytes (a deleted asset stops at once).
        h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
        Ok(resp)
    }
    .await;
    finish(result, &app)
}

/// `GET /v/{id}/stream.mp4`.
async fn stream(State(app): State<App>, Path(id): Path<String>, headers: HeaderMap) -> Response {
    let result = async {
        let a = asset(&app, &id).await?;
        let ix = finished_index(&app, &a.id)
            .await
            .filter(|ix| ix.source == Source::Processed)
            .ok_or_else(|| not_ready("the processed video"))?;
        let path = Outputs::new(&app.config.data_dir, &a.id).path(PROCESSED);
        let etag = bytes_etag(&format!("{}/stream", a.upload_id), ix.object_len);
        let pieces = vec![Piece::File {
            path,
            range: 0..ix.object_len,
        }];
        serve_pieces(&app, pieces, &etag, &headers, "video/mp4", false).await
    }
    .await;
    finish(result, &app)
}

/// Reads bytes `[0, n)` of the asset's object (the init segment).
async fn object_head(app: &App, a: &AssetView, ix: &Index, n: u64) -> ApiResult<Vec<u8>> {
    match ix.source {
        Source::Original => Ok(app.store.head_bytes(&a.upload_id, n as usize).await?),
        Source::Processed => {
            use tokio::io::AsyncReadExt as _;
            let path = Outputs::new(&app.config.data_dir, &a.id).path(PROCESSED);
            let f = tokio::fs::File::open(path)
                .await
                .map_err(ApiError::internal)?;
            let mut out = Vec::with_capacity(n as usize);
            f.take(n)
                .read_to_end(&mut out)
                .await
                .map_err(ApiError::internal)?;
            Ok(out)
        }
    }
}

/// `GET /v/{id}/video.mp4`.
async fn video(State(app): State<App>, Path(id): Path<String>, headers: HeaderMap) -> Response {
    let result = async {
        let a = asset(&app, &id).await?;
        if a.status != AssetStatus::Ready {
            return Err(not_ready("the MP4"));
        }
        let ix = finished_index(&app, &a.id)
            .await
            .ok_or_else(|| not_ready("the MP4"))?;
        let (Some(first), Some(last)) = (ix.segments.first(), ix.segments.last()) else {
            return Err(not_ready("the MP4"));
        };
        let init = object_head(&app, &a, &ix, ix.init.len).await?;
        let header = spool_media::indexed::header(&init, &ix.init, &ix.segments)
            .map_err(ApiError::internal)?;
        let body = first.offset..last.offset + last.len;
        let etag = bytes_etag(&format!("{}/indexed", a.upload_id), ix.object_len);
        let mut pieces = vec![Piece::Bytes(header.into())];
        pieces.push(match ix.source {
            Source::Original => Piece::Store {
                upload_id: a.upload_id.clone(),
                range: body,
            },
            Source::Processed => Piece::File {
                path: Outputs::new(&app.config.data_dir, &a.id).path(PROCESSED),
                range: body,
            },
        });
        let mut resp = serve_pieces(&app, pieces, &etag, &headers, "video/mp4", false).await?;
        let name = a
            .title
            .as_deref()
            .unwrap_or("recording")
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || " -_.".contains(c) {
                    c
                } else {
                    '_'
                }
            })
            .collect::<String>();
        if let Ok(v) = HeaderValue::from_str(&format!("inline; filename=\"{}.mp4\"", name.trim())) {
            resp.headers_mut().insert(header::CONTENT_DISPOSITION, v);
        }
        Ok(resp)
    }
    .await;
    finish(result, &app)
}

/// `GET /v/{id}/poster.jpg`.
async fn poster(State(app): State<App>, Path(id): Path<String>, headers: HeaderMap) -> Response {
    let result = async {
        let a = asset(&app, &id).await?;
        let path = Outputs::new(&app.config.data_dir, &a.id).path(POSTER);
        let len = tokio::fs::metadata(&path)
            .await
            .map_err(|_| not_ready("the poster"))?
            .len();
        // The poster is replaced as a live recording grows: the ETag names
        // this version (length and mtime).
        let mtime = tokio::fs::metadata(&path)
            .await
            .ok()
            .and_then(|m| m.modified().ok())
            .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
            .map(|d| d.as_nanos())
            .unwrap_or_default();
        let etag = bytes_etag(&format!("{}/poster/{mtime}", a.upload_id), len);
        let pieces = vec![Piece::File {
            path,
            range: 0..len,
        }];
        serve_pieces(&app, pieces, &etag, &headers, "image/jpeg", false).await
    }
    .await;
    finish(result, &app)
}
