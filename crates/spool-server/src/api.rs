//! The upload API a backend calls with its credentials: `POST /v1/on-demand`
//! issues a short-lived signed upload URL for a new asset (optionally with a
//! size limit of its own, `max_size`), `GET
//! /v1/assets/{id}` reports the asset, `PATCH /v1/assets/{id}` changes its
//! metadata (a rename: `{"metadata":{"title":…}}`), `GET
//! /v1/assets/{id}/original` returns its exact bytes, `DELETE
//! /v1/assets/{id}` deletes it.

use axum::Json;
use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use spool_proto::ErrorCode;
use spool_proto::ondemand::OnDemandResponse;

use crate::app::App;
use crate::auth::require_basic;
use crate::db::{AssetStatus, AssetView, MetadataUpdate, NewAsset, UploadState, now_ms};
use crate::error::{ApiError, ApiResult};
use crate::http_util::{serve_bytes, sniff_content_type};
use crate::uploads::{create_upload, end_upload};

/// The largest on-demand request body accepted.
const MAX_JSON: usize = 64 * 1024;

#[derive(Debug, Default, Deserialize)]
struct OnDemandRequest {
    #[serde(default)]
    inputs: Vec<Input>,
    #[serde(default)]
    metadata: serde_json::Map<String, serde_json::Value>,
    #[serde(default)]
    cors_origin: Option<String>,
    /// The most bytes the upload may hold; validated by [`parse_max_size`].
    #[serde(default)]
    max_size: Option<serde_json::Value>,
}

#[derive(Debug, Deserialize)]
struct Input {
    #[serde(rename = "type")]
    kind: String,
}

fn invalid(message: impl Into<String>) -> ApiError {
    ApiError::new(ErrorCode::InvalidRequest, message)
}

/// A body that does not parse, or parses into the wrong shape (a missing
/// field, an array where an object belongs).
fn invalid_json(e: serde_json::Error) -> ApiError {
    ApiError::new(ErrorCode::InvalidJson, format!("invalid JSON body: {e}"))
}

/// A JSON request body of at most [`MAX_JSON`] bytes.
async fn read_json_body(body: Body) -> ApiResult<bytes::Bytes> {
    axum::body::to_bytes(body, MAX_JSON).await.map_err(|_| {
        ApiError::new(
            ErrorCode::BodyTooLarge,
            format!("the request body must be at most {MAX_JSON} bytes"),
        )
    })
}

/// The rules asset metadata follows on creation and on update alike: keys
/// of 1 to 128 bytes, string values. With `nulls` (an update) a value may
/// also be `null`, which removes its key.
fn check_metadata(
    metadata: &serde_json::Map<String, serde_json::Value>,
    nulls: bool,
) -> ApiResult<()> {
    if let Some((k, _)) = metadata
        .iter()
        .find(|(_, v)| !(v.is_string() || (nulls && v.is_null())))
    {
        let allowed = if nulls {
            "a string or null"
        } else {
            "a string"
        };
        return Err(invalid(format!(
            "metadata value of {k:?} must be {allowed}"
        )));
    }
    if let Some(k) = metadata
        .keys()
        .find(|k| !spool_proto::metadata::is_valid_asset_key(k))
    {
        return Err(invalid(format!(
            "metadata key {k:?} must be 1 to {} characters",
            spool_proto::metadata::MAX_ASSET_KEY_LEN
        )));
    }
    Ok(())
}

/// Accepts `scheme://host[:port]` (what browsers send as Origin) only.
fn validate_origin(origin: &str) -> ApiResult<String> {
    let bad = || invalid("cors_origin must be an origin such as https://app.example");
    let url = url::Url::parse(origin).map_err(|_| bad())?;
    let trimmed = origin.trim_end_matches('/');
    if !matches!(url.scheme(), "http" | "https")
        || url.host_str().is_none()
        || url.path() != "/"
        || url.query().is_some()
        || url.fragment().is_some()
        || url.username() != ""
    {
        return Err(bad());
    }
    if url.origin().ascii_serialization() != trimmed {
        return Err(bad());
    }
    Ok(trimmed.to_owned())
}

/// An upload's own limit: a positive JSON integer no larger than the
/// server's `--max-size` (kept as a JSON value so that a wrong type is
/// `ERR_INVALID_REQUEST`, not a JSON syntax error).
fn parse_max_size(v: &serde_json::Value, server_max: u64) -> ApiResult<u64> {
    match v.as_u64() {
        Some(n) if n > 0 && n <= server_max => Ok(n),
        _ => Err(invalid(format!(
            "max_size must be an integer number of bytes from 1 to {server_max}"
        ))),
    }
}

/// `POST /v1/on-demand`.
pub async fn on_demand(
    State(app): State<App>,
    headers: HeaderMap,
    body: Body,
) -> ApiResult<Response> {
    require_basic(&app, &headers)?;
    let bytes = read_json_body(body).await?;
    let req: OnDemandRequest = if bytes.iter().all(u8::is_ascii_whitespace) {
        OnDemandRequest::default()
    } else {
        serde_json::from_slice(&bytes).map_err(invalid_json)?
    };
    if let Some(input) = req.inputs.iter().find(|i| i.kind != "video") {
        return Err(invalid(format!(
            "unsupported input type {:?}; supported: video",
            input.kind
        )));
    }
    check_metadata(&req.metadata, false)?;
    let cors_origin = req
        .cors_origin
        .as_deref()
        .map(validate_origin)
        .transpose()?;
    let max_size = req
        .max_size
        .as_ref()
        .map(|v| parse_max_size(v, app.config.max_size))
        .transpose()?;
    // The asset's metadata also travels as TUS Upload-Metadata, so any TUS
    // client sees it on HEAD.
    let tus_metadata: Vec<(String, Vec<u8>)> = req
        .metadata
        .iter()
        .filter(|(k, _)| spool_proto::metadata::is_valid_key(k))
        .map(|(k, v)| {
            (
                k.clone(),
                v.as_str().unwrap_or_default().as_bytes().to_vec(),
            )
        })
        .collect();
    let asset = NewAsset {
        id: crate::ids::new_id(),
        metadata: req.metadata,
    };
    let row = create_upload(
        &app,
        None,
        spool_proto::metadata::encode(&tus_metadata),
        None,
        Vec::new(),
        cors_origin,
        Some(&asset),
    )
    .await?;
    if let Some(max) = max_size {
        // Before the URL is handed out, so no byte can arrive without it.
        let id = row.id.clone();
        app.db.call(move |ops| ops.set_max_size(&id, max)).await?;
    }
    app.events_enqueued();
    let expires_at = i64::try_from(row.sig_exp)
        .ok()
        .and_then(|s| chrono::DateTime::from_timestamp(s, 0))
        .ok_or_else(|| {
            ApiError::internal(format!("signature expiry {} is out of range", row.sig_exp))
        })?;
    let body = OnDemandResponse {
        asset_id: asset.id.clone(),
        expires_at: expires_at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        max_size,
        share_url: app.db.share_url(&asset.id),
        upload_url: app.signed_upload_url(&row.id, row.sig_exp),
    };
    Ok((StatusCode::CREATED, Json(body)).into_response())
}

async fn load_asset(app: &App, id: &str) -> ApiResult<AssetView> {
    let not_found = || ApiError::new(ErrorCode::AssetNotFound, "no asset has this id");
    if !crate::ids::is_valid_id(id) {
        return Err(not_found());
    }
    let aid = id.to_owned();
    app.db
        .call(move |ops| ops.asset(&aid))
        .await?
        .ok_or_else(not_found)
}

/// `GET /v1/assets/{id}`.
pub async fn get_asset(
    State(app): State<App>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> ApiResult<Json<AssetView>> {
    require_basic(&app, &headers)?;
    Ok(Json(load_asset(&app, &id).await?))
}

/// The longest metadata value `PATCH /v1/assets/{id}` sets, in bytes: room
/// for a title or a description, not for a document.
const MAX_METADATA_VALUE: usize = 4 * 1024;

/// The largest an asset's metadata may grow through `PATCH` (bytes of
/// JSON): what one on-demand body could have carried.
const MAX_METADATA_JSON: usize = MAX_JSON;

#[derive(Debug, Deserialize)]
struct UpdateRequest {
    metadata: serde_json::Map<String, serde_json::Value>,
}

/// `PATCH /v1/assets/{id}`: merges `{"metadata":{…}}` into the asset's
/// metadata key by key (`null` removes a key) and answers the asset as `GET`
/// does, emitting `video.asset.updated` when anything changed. A body that
/// is not JSON of that shape is `ERR_INVALID_JSON`, a key or value outside
/// the metadata rules `ERR_INVALID_REQUEST` (both 400). A deleted asset
/// answers 404 `ERR_ASSET_NOT_FOUND`, as its original does: what remains of
/// it is a tombstone, and no event may follow its `video.asset.deleted`.
pub async fn update_asset(
    State(app): State<App>,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> ApiResult<Json<AssetView>> {
    require_basic(&app, &headers)?;
    let not_found = || ApiError::new(ErrorCode::AssetNotFound, "no asset has this id");
    if !crate::ids::is_valid_id(&id) {
        return Err(not_found());
    }
    let bytes = read_json_body(body).await?;
    let req: UpdateRequest = serde_json::from_slice(&bytes).map_err(invalid_json)?;
    check_metadata(&req.metadata, true)?;
    if let Some((k, _)) = req
        .metadata
        .iter()
        .find(|(_, v)| v.as_str().is_some_and(|s| s.len() > MAX_METADATA_VALUE))
    {
        return Err(invalid(format!(
            "metadata value of {k:?} must be at most {MAX_METADATA_VALUE} bytes"
        )));
    }
    let changes: Vec<(String, Option<String>)> = req
        .metadata
        .into_iter()
        .map(|(k, v)| (k, v.as_str().map(str::to_owned)))
        .collect();
    let outcome = app
        .db
        .call(move |ops| ops.update_metadata(&id, &changes, MAX_METADATA_JSON, now_ms()))
        .await?;
    match outcome {
        MetadataUpdate::NotFound => Err(not_found()),
        MetadataUpdate::Deleted => Err(ApiError::new(
            ErrorCode::AssetNotFound,
            "the asset was deleted",
        )),
        MetadataUpdate::TooLarge => Err(invalid(format!(
            "the asset's metadata would be larger than {MAX_METADATA_JSON} bytes of JSON"
        ))),
        MetadataUpdate::Done { view, changed } => {
            if changed {
                app.events_enqueued();
            }
            Ok(Json(*view))
        }
    }
}

/// `GET /v1/assets/{id}/original`.
pub async fn get_original(
    State(app): State<App>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> ApiResult<Response> {
    require_basic(&app, &headers)?;
    let asset = load_asset(&app, &id).await?;
    ready_bytes(&app, &asset, &headers).await
}

/// The original bytes of an asset, with Range: served once its upload is
/// complete, whatever processing makes of them (an upload that is not a
/// video stays downloadable).
pub async fn ready_bytes(app: &App, asset: &AssetView, headers: &HeaderMap) -> ApiResult<Response> {
    if asset.status == AssetStatus::Deleted {
        return Err(ApiError::new(
            ErrorCode::AssetNotFound,
            "the asset was deleted",
        ));
    }
    let upload_id = asset.upload_id.clone();
    let state = app
        .db
        .call(move |ops| Ok(ops.upload(&upload_id)?.map(|u| u.state)))
        .await?;
    match state {
        Some(UploadState::Complete) => {}
        Some(UploadState::Active) | None => {
            return Err(ApiError::new(
                ErrorCode::AssetNotReady,
                format!(
                    "the asset has {} bytes so far and is not complete",
                    asset.offset
                ),
            ));
        }
        Some(_) => {
            return Err(ApiError::new(
                ErrorCode::AssetNotReady,
                "the asset's upload failed",
            ));
        }
    }
    let ct = sniff_content_type(app, &asset.upload_id).await;
    serve_bytes(app, &asset.upload_id, asset.offset, headers, ct, false).await
}

/// `DELETE /v1/assets/{id}`.
pub async fn delete_asset(
    State(app): State<App>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> ApiResult<Response> {
    require_basic(&app, &headers)?;
    let asset = load_asset(&app, &id).await?;
    if asset.status != AssetStatus::Deleted {
        end_upload(&app, &asset.upload_id, UploadState::Terminated).await?;
    }
    Ok(StatusCode::NO_CONTENT.into_response())
}
