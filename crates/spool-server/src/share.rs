//! The public share page, `/v/{asset_id}`: anyone with the link (asset ids
//! are unguessable) sees the video once it is ready, or its upload progress
//! until then. Every value put into the page is HTML-escaped.

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{Html, IntoResponse, Response};

use crate::app::App;
use crate::db::{AssetStatus, AssetView};
use crate::error::ApiResult;

fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

fn title(asset: &AssetView) -> String {
    ["title", "name", "filename"]
        .iter()
        .find_map(|k| asset.metadata.get(*k).and_then(|v| v.as_str()))
        .unwrap_or("Spool recording")
        .to_owned()
}

fn page(title: &str, body: &str, refresh: bool) -> String {
    let refresh = if refresh {
        r#"<meta http-equiv="refresh" content="3">"#
    } else {
        ""
    };
    format!(
        r#"<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">{refresh}
<title>{title}</title>
<style>
body{{margin:0;font:16px/1.5 system-ui,sans-serif;background:#111;color:#eee;display:flex;flex-direction:column;align-items:center;min-height:100vh}}
main{{width:min(1100px,100% - 32px);margin:32px auto}} h1{{font-size:20px;font-weight:600;margin:0 0 16px}}
video{{width:100%;background:#000;border-radius:8px}} .status{{padding:48px;text-align:center;background:#1c1c1c;border-radius:8px}}
footer{{color:#888;font-size:13px;margin-top:12px}}
</style></head>
<body><main><h1>{title}</h1>{body}<footer>Shared with Spool</footer></main></body></html>"#
    )
}

async fn load(app: &App, id: &str) -> Option<AssetView> {
    if !crate::ids::is_valid_id(id) {
        return None;
    }
    let aid = id.to_owned();
    app.db.call(move |ops| ops.asset(&aid)).await.ok().flatten()
}

/// `GET /v/{id}`.
pub async fn share_page(State(app): State<App>, Path(id): Path<String>) -> Response {
    let Some(asset) = load(&app, &id).await else {
        return (
            StatusCode::NOT_FOUND,
            Html(page(
                "Not found",
                r#"<div class="status">This link does not lead to a recording.</div>"#,
                false,
            )),
        )
            .into_response();
    };
    let t = escape(&title(&asset));
    let (body, refresh) = match asset.status {
        AssetStatus::Ready => (
            format!(
                r#"<video data-testid="share-video" controls preload="metadata" src="/v/{}/media"></video>"#,
                escape(&asset.id)
            ),
            false,
        ),
        AssetStatus::Waiting => (
            r#"<div class="status">Waiting for the recording to start uploading…</div>"#.to_owned(),
            true,
        ),
        AssetStatus::Uploading => {
            let mb = asset.offset as f64 / 1e6;
            (
                format!(r#"<div class="status">Uploading… {mb:.1} MB received so far.</div>"#),
                true,
            )
        }
        AssetStatus::Errored => (
            r#"<div class="status">This recording's upload did not complete.</div>"#.to_owned(),
            false,
        ),
        AssetStatus::Deleted => (
            r#"<div class="status">This recording was deleted.</div>"#.to_owned(),
            false,
        ),
    };
    let mut resp = Html(page(&t, &body, refresh)).into_response();
    resp.headers_mut().insert(
        header::CACHE_CONTROL,
        header::HeaderValue::from_static("no-store"),
    );
    resp
}

/// `GET /v/{id}/media`: the bytes behind the share page, with Range.
pub async fn share_media(
    State(app): State<App>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> ApiResult<Response> {
    let asset = load(&app, &id).await.ok_or_else(|| {
        crate::error::ApiError::new(
            spool_proto::ErrorCode::AssetNotFound,
            "no asset has this id",
        )
    })?;
    crate::api::ready_bytes(&app, &asset, &headers).await
}

#[cfg(test)]
mod tests {
    #[test]
    fn escapes_html() {
        assert_eq!(
            super::escape(r#"<script>"x"&'y'</script>"#),
            "&lt;script&gt;&quot;x&quot;&amp;&#39;y&#39;&lt;/script&gt;"
        );
    }
}
