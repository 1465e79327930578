//! The playable media of an asset, public to anyone with its share link
//! (asset ids are unguessable) and gone once it is deleted: the original
//! bytes (`/v/{id}/media`, with Range; acknowledged byte ranges while
//! uploading, so a live playlist can point into them), the HLS playlist,
//! the indexed MP4 and the poster.

use axum::extract::{Path, State};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};

use crate::app::App;
use crate::share::{load, protect};

/// The media routes.
pub fn routes() -> axum::Router<App> {
    axum::Router::new().route("/v/{id}/media", axum::routing::get(share_media))
}

/// `GET /v/{id}/media`: the bytes behind the share page, with Range and
/// revalidation (see [`crate::http_util::serve_bytes`]).
pub async fn share_media(
    State(app): State<App>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Response {
    let result = match load(&app, &id).await {
        Some(asset) => crate::api::ready_bytes(&app, &asset, &headers).await,
        None => Err(crate::error::ApiError::new(
            spool_proto::ErrorCode::AssetNotFound,
            "no asset has this id",
        )),
    };
    let mut resp = result.into_response();
    protect(&mut resp, &app, false);
    resp
}
