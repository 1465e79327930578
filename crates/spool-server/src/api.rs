//! The upload API a backend calls with its credentials: `POST /v1/on-demand`
//! issues a short-lived signed upload URL for a new asset (optionally with a
//! size limit of its own, `max_size`), `GET
//! /v1/assets/{id}` reports the asset, `GET /v1/assets/{id}/original` returns
//! its exact bytes, `DELETE /v1/assets/{id}` deletes it.

use axum::Json;
use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use spool_proto::ErrorCode;

use crate::app::App;
use crate::auth::require_basic;
use crate::db::{AssetStatus, AssetView, NewAsset, UploadState};
use crate::error::{ApiError, ApiResult};
use crate::http_util::{serve_bytes, sniff_content_type};
use crate::tus::{create_upload, end_upload};

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
    let bytes = axum::body::to_bytes(body, MAX_JSON).await.map_err(|_| {
        ApiError::new(
            ErrorCode::BodyTooLarge,
            format!("the request body must be at most {MAX_JSON} bytes"),
        )
    })?;
    let req: OnDemandRequest = if bytes.iter().all(u8::is_ascii_whitespace) {
        OnDemandRequest::default()
    } else {
        serde_json::from_slice(&bytes)
            .map_err(|e| ApiError::new(ErrorCode::InvalidJson, format!("invalid JSON body: {e}")))?
    };
    if let Some(input) = req.inputs.iter().find(|i| i.kind != "video") {
        return Err(invalid(format!(
            "unsupported input type {:?}; supported: video",
            input.kind
        )));
    }
    if let Some((k, _)) = req.metadata.iter().find(|(_, v)| !v.is_string()) {
        return Err(invalid(format!("metadata value of {k:?} must be a string")));
    }
    if let Some(k) = req.metadata.keys().find(|k| k.is_empty() || k.len() > 128) {
        return Err(invalid(format!(
            "metadata key {k:?} must be 1 to 128 characters"
        )));
    }
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
        .filter(|(k, _)| k.bytes().all(|b| b.is_ascii_graphic() && b != b','))
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
    let expires_at = chrono::DateTime::from_timestamp(row.sig_exp as i64, 0).unwrap_or_default();
    let mut body = serde_json::json!({
        "asset_id": asset.id,
        "upload_url": app.signed_upload_url(&row.id, row.sig_exp),
        "expires_at": expires_at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        "share_url": app.db.share_url(&asset.id),
    });
    if let (Some(max), Some(o)) = (max_size, body.as_object_mut()) {
        o.insert("max_size".into(), max.into());
    }
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
