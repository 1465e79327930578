//! `PATCH /v1/assets/{id}` (renaming a recording) against the real server
//! over loopback (`Server::bind` + `run`, real SQLite) with a webhook
//! receiver in the test: the changes merge into the metadata, `null` removes
//! a key, the answer is the asset view, the share page and its
//! `status.json` show the new title, `video.asset.updated` carries it, and
//! what is refused is refused with its stable code. Also: a title sent as
//! TUS `Upload-Metadata` on creation is the asset's title.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::State;
use base64::Engine as _;
use serde_json::{Value, json};
use spool_proto::webhook::WebhookSecret;
use spool_server::{Config, Credentials, Server, WebhookConfig};
use tokio_util::sync::CancellationToken;

const ID: &str = "test-id";
const SECRET: &str = "test-secret";
const HOOK_SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";

/// Every webhook body the receiver was sent, in arrival order.
type Hooks = Arc<Mutex<Vec<Value>>>;

async fn receive(State(hooks): State<Hooks>, body: String) -> &'static str {
    hooks
        .lock()
        .unwrap()
        .push(serde_json::from_str(&body).unwrap());
    "ok"
}

/// A webhook receiver on a loopback port; returns its URL and what it got.
async fn receiver() -> (String, Hooks) {
    let hooks = Hooks::default();
    let app = axum::Router::new()
        .route("/hooks", axum::routing::post(receive))
        .with_state(hooks.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hooks", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    (url, hooks)
}

/// A `spool serve` running in this process, stopped when dropped.
struct Running {
    base: String,
    http: reqwest::Client,
    stop: CancellationToken,
    dir: tempfile::TempDir,
}

impl Drop for Running {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

impl Running {
    async fn start(webhook_url: Option<&str>) -> Running {
        let dir = tempfile::tempdir().unwrap();
        let mut cfg = Config::new(dir.path().join("data"));
        cfg.listen = "127.0.0.1:0".parse().unwrap();
        cfg.credentials = Some(Credentials {
            token_id: ID.into(),
            token_secret: SECRET.into(),
        });
        cfg.webhook = webhook_url.map(|url| WebhookConfig {
            url: url.parse().unwrap(),
            secret: WebhookSecret::parse(HOOK_SECRET).unwrap(),
        });
        let server = Server::bind(cfg).await.unwrap();
        let base = format!("http://{}", server.addr);
        let stop = CancellationToken::new();
        let token = stop.clone();
        tokio::spawn(server.run(async move { token.cancelled().await }));
        Running {
            base,
            http: reqwest::Client::new(),
            stop,
            dir,
        }
    }

    /// A new asset with `metadata`, through `POST /v1/on-demand`.
    async fn asset(&self, metadata: Value) -> String {
        let resp = self
            .http
            .post(format!("{}/v1/on-demand", self.base))
            .basic_auth(ID, Some(SECRET))
            .json(&json!({ "metadata": metadata }))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 201);
        let v: Value = resp.json().await.unwrap();
        v["asset_id"].as_str().unwrap().to_owned()
    }

    /// `PATCH /v1/assets/{id}` with `body`, as (status, JSON answer).
    async fn patch_with(
        &self,
        asset: &str,
        auth: Option<(&str, &str)>,
        body: impl Into<reqwest::Body>,
    ) -> (u16, Value) {
        let mut req = self
            .http
            .patch(format!("{}/v1/assets/{asset}", self.base))
            .header("content-type", "application/json")
            .body(body);
        if let Some((id, secret)) = auth {
            req = req.basic_auth(id, Some(secret));
        }
        let resp = req.send().await.unwrap();
        let status = resp.status().as_u16();
        (status, resp.json().await.unwrap_or(Value::Null))
    }

    async fn patch(&self, asset: &str, metadata: Value) -> (u16, Value) {
        let body = json!({ "metadata": metadata }).to_string();
        self.patch_with(asset, Some((ID, SECRET)), body).await
    }

    async fn get(&self, path: &str) -> (u16, String) {
        let resp = self
            .http
            .get(format!("{}{path}", self.base))
            .basic_auth(ID, Some(SECRET))
            .send()
            .await
            .unwrap();
        (resp.status().as_u16(), resp.text().await.unwrap())
    }

    /// The types of `asset`'s outbox rows in order, read from the database
    /// file: a handler's events are committed before it answers, so this
    /// sees at once what no receiver could prove absent.
    fn outbox(&self, asset: &str) -> Vec<String> {
        let conn = rusqlite::Connection::open(self.dir.path().join("data/spool.db")).unwrap();
        let mut stmt = conn
            .prepare("SELECT type FROM outbox WHERE asset_id = ?1 ORDER BY seq")
            .unwrap();
        stmt.query_map([asset], |r| r.get(0))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap()
    }

    async fn view(&self, asset: &str) -> Value {
        let (status, body) = self.get(&format!("/v1/assets/{asset}")).await;
        assert_eq!(status, 200, "{body}");
        serde_json::from_str(&body).unwrap()
    }
}

async fn wait_for(what: &str, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while !f() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn events_of(hooks: &Hooks, asset: &str) -> Vec<Value> {
    hooks
        .lock()
        .unwrap()
        .iter()
        .filter(|h| h["data"]["id"] == asset)
        .cloned()
        .collect()
}

fn kinds(events: &[Value]) -> Vec<&str> {
    events.iter().map(|e| e["type"].as_str().unwrap()).collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn patch_merges_removes_and_answers_the_view() {
    let server = Running::start(None).await;
    let asset = server
        .asset(json!({"title": "Old", "keep": "k", "drop": "d"}))
        .await;
    assert_eq!(server.view(&asset).await["title"], "Old");

    let (status, view) = server
        .patch(&asset, json!({"title": "New", "drop": null, "added": "a"}))
        .await;
    assert_eq!(status, 200, "{view}");
    assert_eq!(view["id"], asset.as_str());
    assert_eq!(view["title"], "New");
    assert_eq!(
        view["metadata"],
        json!({"title": "New", "keep": "k", "added": "a"})
    );
    // The answer is the view GET gives.
    assert_eq!(server.view(&asset).await, view);

    // Removing the title falls back to `name`, then to none at all.
    let (_, view) = server
        .patch(&asset, json!({"title": null, "name": "Named"}))
        .await;
    assert_eq!(view["title"], "Named");
    let (_, view) = server.patch(&asset, json!({"name": null})).await;
    assert!(view.get("title").is_none(), "{view}");
    assert_eq!(view["metadata"], json!({"keep": "k", "added": "a"}));

    // Removing a key that is not there, or changing nothing, is fine.
    let (status, again) = server.patch(&asset, json!({"absent": null})).await;
    assert_eq!((status, &again), (200, &view));
    let (status, again) = server.patch(&asset, json!({})).await;
    assert_eq!((status, &again), (200, &view));
}

#[tokio::test(flavor = "multi_thread")]
async fn the_share_page_shows_the_new_title() {
    let server = Running::start(None).await;
    let asset = server.asset(json!({"title": "Before rename"})).await;
    let (_, status_json) = server.get(&format!("/v/{asset}/status.json")).await;
    let before: Value = serde_json::from_str(&status_json).unwrap();
    assert_eq!(before["title"], "Before rename");

    let (status, _) = server.patch(&asset, json!({"title": "After rename"})).await;
    assert_eq!(status, 200);
    let (code, status_json) = server.get(&format!("/v/{asset}/status.json")).await;
    assert_eq!(code, 200);
    let after: Value = serde_json::from_str(&status_json).unwrap();
    assert_eq!(after["title"], "After rename");
    let (code, page) = server.get(&format!("/v/{asset}")).await;
    assert_eq!(code, 200);
    assert!(page.contains("After rename"), "{page}");
    assert!(!page.contains("Before rename"), "{page}");
}

#[tokio::test(flavor = "multi_thread")]
async fn patch_needs_the_api_credentials() {
    let server = Running::start(None).await;
    let asset = server.asset(json!({"title": "Mine"})).await;
    let body = json!({"metadata": {"title": "Theirs"}}).to_string();
    for auth in [None, Some((ID, "wrong")), Some(("nobody", SECRET))] {
        let (status, err) = server.patch_with(&asset, auth, body.clone()).await;
        assert_eq!(
            (status, err["code"].as_str()),
            (401, Some("ERR_UNAUTHORIZED")),
            "{auth:?}"
        );
    }
    assert_eq!(server.view(&asset).await["title"], "Mine");
}

#[tokio::test(flavor = "multi_thread")]
async fn bad_bodies_are_refused_with_their_codes() {
    let server = Running::start(None).await;
    let asset = server.asset(json!({"title": "Kept"})).await;
    let long_key = "k".repeat(129);
    let long_value = "v".repeat(4 * 1024 + 1);
    let cases: Vec<(String, u16, &str)> = vec![
        ("not json".into(), 400, "ERR_INVALID_JSON"),
        (String::new(), 400, "ERR_INVALID_JSON"),
        ("{}".into(), 400, "ERR_INVALID_JSON"),
        (r#"{"title":"x"}"#.into(), 400, "ERR_INVALID_JSON"),
        (r#"{"metadata":["title"]}"#.into(), 400, "ERR_INVALID_JSON"),
        (r#"{"metadata":null}"#.into(), 400, "ERR_INVALID_JSON"),
        (
            r#"{"metadata":{"title":5}}"#.into(),
            400,
            "ERR_INVALID_REQUEST",
        ),
        (
            r#"{"metadata":{"title":{"a":"b"}}}"#.into(),
            400,
            "ERR_INVALID_REQUEST",
        ),
        (
            r#"{"metadata":{"":"x"}}"#.into(),
            400,
            "ERR_INVALID_REQUEST",
        ),
        (
            json!({"metadata": {long_key.clone(): "x"}}).to_string(),
            400,
            "ERR_INVALID_REQUEST",
        ),
        (
            json!({"metadata": {"title": long_value}}).to_string(),
            400,
            "ERR_INVALID_REQUEST",
        ),
        (
            json!({"metadata": {"title": "x".repeat(70 * 1024)}}).to_string(),
            413,
            "ERR_BODY_TOO_LARGE",
        ),
    ];
    for (body, status, code) in cases {
        let shown = body.chars().take(60).collect::<String>();
        let (got, err) = server.patch_with(&asset, Some((ID, SECRET)), body).await;
        assert_eq!((got, err["code"].as_str()), (status, Some(code)), "{shown}");
    }
    // A value of exactly the limit is taken.
    let (status, _) = server
        .patch(&asset, json!({"description": "d".repeat(4 * 1024)}))
        .await;
    assert_eq!(status, 200);
    assert_eq!(server.view(&asset).await["title"], "Kept");
}

#[tokio::test(flavor = "multi_thread")]
async fn metadata_cannot_grow_past_the_limit_but_can_shrink() {
    let server = Running::start(None).await;
    let asset = server.asset(json!({})).await;
    // 16 values of 4000 bytes fit in 64 KiB of JSON; a 17th does not.
    for i in 0..16 {
        let (status, err) = server
            .patch(&asset, json!({ format!("k{i}"): "v".repeat(4000) }))
            .await;
        assert_eq!(status, 200, "{i}: {err}");
    }
    let (status, err) = server.patch(&asset, json!({"k16": "v".repeat(4000)})).await;
    assert_eq!(
        (status, err["code"].as_str()),
        (400, Some("ERR_INVALID_REQUEST"))
    );
    assert!(server.view(&asset).await["metadata"].get("k16").is_none());
    let (status, view) = server.patch(&asset, json!({"k0": null})).await;
    assert_eq!(status, 200);
    assert!(view["metadata"].get("k0").is_none());
}

#[tokio::test(flavor = "multi_thread")]
async fn unknown_and_deleted_assets_are_not_found() {
    let (url, hooks) = receiver().await;
    let server = Running::start(Some(&url)).await;
    for id in ["00000000000000000000000000000000", "not-an-id"] {
        let (status, err) = server.patch(id, json!({"title": "x"})).await;
        assert_eq!(
            (status, err["code"].as_str()),
            (404, Some("ERR_ASSET_NOT_FOUND")),
            "{id}"
        );
    }

    let asset = server.asset(json!({"title": "Doomed"})).await;
    let resp = server
        .http
        .delete(format!("{}/v1/assets/{asset}", server.base))
        .basic_auth(ID, Some(SECRET))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 204);
    let (status, err) = server.patch(&asset, json!({"title": "Revived"})).await;
    assert_eq!(
        (status, err["code"].as_str()),
        (404, Some("ERR_ASSET_NOT_FOUND"))
    );
    let view = server.view(&asset).await;
    assert_eq!(
        (view["status"].as_str(), view["title"].as_str()),
        (Some("deleted"), Some("Doomed"))
    );
    // Nothing follows video.asset.deleted.
    assert_eq!(
        server.outbox(&asset),
        ["video.asset.created", "video.asset.deleted"]
    );
    wait_for("video.asset.deleted", || {
        kinds(&events_of(&hooks, &asset)).contains(&"video.asset.deleted")
    })
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_rename_is_announced_as_video_asset_updated() {
    let (url, hooks) = receiver().await;
    let server = Running::start(Some(&url)).await;
    let asset = server.asset(json!({"title": "First"})).await;
    let (status, _) = server.patch(&asset, json!({"title": "Second"})).await;
    assert_eq!(status, 200);
    // Changing nothing announces nothing ...
    let (status, _) = server.patch(&asset, json!({"title": "Second"})).await;
    assert_eq!(status, 200);
    assert_eq!(
        server.outbox(&asset),
        ["video.asset.created", "video.asset.updated"]
    );
    let (status, _) = server.patch(&asset, json!({"title": "Third"})).await;
    assert_eq!(status, 200);

    // ... which shows once the last rename is in: one asset's events are
    // delivered in order, so a spurious event would have come before it.
    wait_for("the second video.asset.updated", || {
        events_of(&hooks, &asset)
            .iter()
            .any(|e| e["type"] == "video.asset.updated" && e["data"]["title"] == "Third")
    })
    .await;
    let events = events_of(&hooks, &asset);
    assert_eq!(
        kinds(&events),
        [
            "video.asset.created",
            "video.asset.updated",
            "video.asset.updated"
        ]
    );
    // Each carries the asset view as it was committed.
    assert_eq!(events[0]["data"]["title"], "First");
    assert_eq!(events[1]["data"]["title"], "Second");
    assert_eq!(events[1]["data"]["metadata"], json!({"title": "Second"}));
    assert_eq!(events[2]["data"]["title"], "Third");
    assert_eq!(events[2]["data"], server.view(&asset).await);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_title_sent_as_tus_upload_metadata_is_the_asset_title() {
    let server = Running::start(None).await;
    let b64 = |s: &str| base64::engine::general_purpose::STANDARD.encode(s);
    let metadata = format!(
        "title {},filename {}",
        b64("Standup — 1 Dec"),
        b64("rec.mp4")
    );
    let resp = server
        .http
        .post(format!("{}/v1/uploads", server.base))
        .basic_auth(ID, Some(SECRET))
        .header("tus-resumable", "1.0.0")
        .header("upload-defer-length", "1")
        .header("upload-metadata", metadata)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 201);
    let asset = resp.headers()["spool-asset-id"]
        .to_str()
        .unwrap()
        .to_owned();
    let view = server.view(&asset).await;
    assert_eq!(view["title"], "Standup — 1 Dec");
    assert_eq!(
        view["metadata"],
        json!({"title": "Standup — 1 Dec", "filename": "rec.mp4"})
    );

    // And it can be renamed like any other.
    let (status, view) = server.patch(&asset, json!({"title": "Standup"})).await;
    assert_eq!((status, view["title"].as_str()), (200, Some("Standup")));
    assert_eq!(view["metadata"]["filename"], "rec.mp4");
}
