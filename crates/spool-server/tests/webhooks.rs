//! The webhook outbox against a real receiver over loopback (an axum
//! listener in the test) and the real server (`Server::bind` + `run`, real
//! SQLite): `Retry-After: 0` cannot make the worker retry in a tight loop,
//! an event still failing at `--webhook-max-age` is dead-lettered and the
//! asset's next event goes out, dead and pending events survive a restart,
//! and delivered and dead rows are pruned after `--webhook-retention`.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use spool_proto::webhook::WebhookSecret;
use spool_server::{Config, Credentials, Server, WebhookConfig};
use tokio_util::sync::CancellationToken;

const ID: &str = "test-id";
const SECRET: &str = "test-secret";
const HOOK_SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";

/// One request the receiver saw.
#[derive(Debug, Clone)]
struct Hit {
    at: Instant,
    webhook_id: String,
    kind: String,
    asset: String,
    answered: u16,
}

#[derive(Default)]
struct ReceiverState {
    hits: Vec<Hit>,
    /// Event types answered 503 with `Retry-After: 0`; "*" for all.
    failing: HashSet<String>,
}

#[derive(Clone)]
struct Receiver {
    url: String,
    state: Arc<Mutex<ReceiverState>>,
}

async fn receive(
    State(state): State<Arc<Mutex<ReceiverState>>>,
    headers: axum::http::HeaderMap,
    body: String,
) -> axum::response::Response {
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    let kind = v["type"].as_str().unwrap().to_owned();
    let mut s = state.lock().unwrap();
    let fail = s.failing.contains("*") || s.failing.contains(&kind);
    let answered = if fail { 503 } else { 200 };
    s.hits.push(Hit {
        at: Instant::now(),
        webhook_id: headers["webhook-id"].to_str().unwrap().to_owned(),
        kind,
        asset: v["data"]["id"].as_str().unwrap().to_owned(),
        answered,
    });
    if fail {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            [("retry-after", "0")],
            "busy",
        )
            .into_response()
    } else {
        StatusCode::OK.into_response()
    }
}

impl Receiver {
    async fn start(failing: &[&str]) -> Receiver {
        let state = Arc::new(Mutex::new(ReceiverState {
            hits: Vec::new(),
            failing: failing.iter().map(|s| s.to_string()).collect(),
        }));
        let app = axum::Router::new()
            .route("/hooks", axum::routing::post(receive))
            .with_state(state.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/hooks", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await });
        Receiver { url, state }
    }

    fn hits(&self) -> Vec<Hit> {
        self.state.lock().unwrap().hits.clone()
    }

    fn set_failing(&self, failing: &[&str]) {
        self.state.lock().unwrap().failing = failing.iter().map(|s| s.to_string()).collect();
    }

    fn attempts(&self, asset: &str, kind: &str) -> Vec<Hit> {
        self.hits()
            .into_iter()
            .filter(|h| h.asset == asset && h.kind == kind)
            .collect()
    }

    fn delivered(&self, asset: &str, kind: &str) -> bool {
        self.attempts(asset, kind).iter().any(|h| h.answered == 200)
    }
}

/// A `spool serve` running in this process.
struct Running {
    base: String,
    stop: CancellationToken,
    task: tokio::task::JoinHandle<Result<(), spool_server::Error>>,
}

impl Running {
    async fn start(data: &Path, hook: &Receiver, f: impl FnOnce(&mut Config)) -> Running {
        let mut cfg = Config::new(data);
        cfg.listen = "127.0.0.1:0".parse().unwrap();
        cfg.credentials = Some(Credentials {
            token_id: ID.into(),
            token_secret: SECRET.into(),
        });
        cfg.webhook = Some(WebhookConfig {
            url: hook.url.parse().unwrap(),
            secret: WebhookSecret::parse(HOOK_SECRET).unwrap(),
        });
        f(&mut cfg);
        let server = Server::bind(cfg).await.unwrap();
        let base = format!("http://{}", server.addr);
        let stop = CancellationToken::new();
        let token = stop.clone();
        let task = tokio::spawn(server.run(async move { token.cancelled().await }));
        Running { base, stop, task }
    }

    async fn stop(self) {
        self.stop.cancel();
        self.task.await.unwrap().unwrap();
    }

    /// A new asset (`video.asset.created`); with `bytes`, uploaded whole
    /// (`video.asset.uploaded`). Returns its id.
    async fn asset(&self, bytes: Option<&[u8]>) -> String {
        let http = reqwest::Client::new();
        let r: serde_json::Value = http
            .post(format!("{}/v1/on-demand", self.base))
            .basic_auth(ID, Some(SECRET))
            .json(&serde_json::json!({}))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        if let Some(bytes) = bytes {
            let resp = http
                .patch(r["upload_url"].as_str().unwrap())
                .header("tus-resumable", "1.0.0")
                .header("content-type", "application/offset+octet-stream")
                .header("upload-offset", "0")
                .header("upload-length", bytes.len().to_string())
                .body(bytes.to_vec())
                .send()
                .await
                .unwrap();
            assert_eq!(resp.status(), 204);
        }
        r["asset_id"].as_str().unwrap().to_owned()
    }
}

/// One outbox row, read straight from the database file.
#[derive(Debug)]
struct Row {
    id: String,
    kind: String,
    asset: String,
    attempts: u32,
    delivered_at: Option<i64>,
    dead_at: Option<i64>,
    last_error: Option<String>,
}

fn outbox(data: &Path) -> Vec<Row> {
    let conn = rusqlite::Connection::open(data.join("spool.db")).unwrap();
    let mut stmt = conn
        .prepare("SELECT id, type, asset_id, attempts, delivered_at, dead_at, last_error FROM outbox ORDER BY seq")
        .unwrap();
    stmt.query_map([], |r| {
        Ok(Row {
            id: r.get(0)?,
            kind: r.get(1)?,
            asset: r.get(2)?,
            attempts: r.get(3)?,
            delivered_at: r.get(4)?,
            dead_at: r.get(5)?,
            last_error: r.get(6)?,
        })
    })
    .unwrap()
    .collect::<Result<_, _>>()
    .unwrap()
}

fn row<'a>(rows: &'a [Row], asset: &str, kind: &str) -> Option<&'a Row> {
    rows.iter().find(|r| r.asset == asset && r.kind == kind)
}

async fn wait_for(what: &str, timeout: Duration, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !f() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn data_dir(dir: &tempfile::TempDir) -> PathBuf {
    dir.path().join("data")
}

#[tokio::test(flavor = "multi_thread")]
async fn retry_after_zero_backs_off_then_the_event_is_dead_lettered_and_the_next_goes_out() {
    let dir = tempfile::tempdir().unwrap();
    let data = data_dir(&dir);
    let hook = Receiver::start(&["video.asset.created"]).await;
    let max_age = Duration::from_secs(3);
    let server = Running::start(&data, &hook, |c| c.webhook_max_age = max_age).await;
    let asset = server.asset(Some(b"0123456789")).await;

    wait_for("video.asset.uploaded", Duration::from_secs(20), || {
        hook.delivered(&asset, "video.asset.uploaded")
            && row(&outbox(&data), &asset, "video.asset.uploaded")
                .is_some_and(|r| r.delivered_at.is_some())
    })
    .await;
    let created = hook.attempts(&asset, "video.asset.created");
    let ready = hook.attempts(&asset, "video.asset.uploaded");
    let first = created[0].at;
    let times: Vec<f64> = created
        .iter()
        .map(|h| h.at.duration_since(first).as_secs_f64())
        .collect();
    println!(
        "video.asset.created attempts at {times:.2?} s (Retry-After: 0 each time); \
         video.asset.uploaded delivered at {:.2} s",
        ready[0].at.duration_since(first).as_secs_f64()
    );
    // Backoff 1 s, 2 s (±20 %), the last attempt moved up to the 3 s
    // deadline: a tight loop would have made hundreds.
    assert!(
        (2..=5).contains(&created.len()),
        "{} attempts: {times:?}",
        created.len()
    );
    for pair in times.windows(2).take(times.len().saturating_sub(2)) {
        assert!(pair[1] - pair[0] >= 0.75, "retried too soon: {times:?}");
    }
    let span = *times.last().unwrap();
    assert!((2.3..=4.5).contains(&span), "tried for {span} s: {times:?}");
    assert!(created.iter().all(|h| h.answered == 503));
    assert!(
        created
            .iter()
            .all(|h| h.webhook_id == created[0].webhook_id)
    );
    // The next event of the same asset went out only after its head died.
    assert_eq!(ready.len(), 1);
    assert!(ready[0].at >= created.last().unwrap().at);

    let rows = outbox(&data);
    let dead = row(&rows, &asset, "video.asset.created").unwrap();
    assert!(dead.dead_at.is_some(), "{dead:?}");
    assert_eq!(dead.delivered_at, None);
    assert_eq!(dead.attempts as usize, created.len());
    assert!(
        dead.last_error
            .as_deref()
            .unwrap_or_default()
            .contains("503"),
        "{dead:?}"
    );
    assert_eq!(dead.id, created[0].webhook_id);
    let sent = row(&rows, &asset, "video.asset.uploaded").unwrap();
    assert!(
        sent.delivered_at.is_some() && sent.dead_at.is_none(),
        "{sent:?}"
    );
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn dead_and_pending_events_survive_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let data = data_dir(&dir);
    let hook = Receiver::start(&["*"]).await;
    let server = Running::start(&data, &hook, |c| c.webhook_max_age = Duration::from_secs(2)).await;
    let gone = server.asset(None).await;
    wait_for("the dead letter", Duration::from_secs(20), || {
        row(&outbox(&data), &gone, "video.asset.created").is_some_and(|r| r.dead_at.is_some())
    })
    .await;
    let pending = server.asset(None).await;
    wait_for("a first attempt", Duration::from_secs(20), || {
        !hook.attempts(&pending, "video.asset.created").is_empty()
    })
    .await;
    server.stop().await;
    let dead_attempts = hook.attempts(&gone, "video.asset.created").len();

    // The receiver recovers; the server comes back with a long max age.
    hook.set_failing(&[]);
    let server = Running::start(&data, &hook, |c| {
        c.webhook_max_age = Duration::from_secs(3600)
    })
    .await;
    // Delivered as the receiver saw it and as the outbox recorded it (the
    // server records the 2xx just after the receiver answered it).
    wait_for("the pending event", Duration::from_secs(20), || {
        hook.delivered(&pending, "video.asset.created")
            && row(&outbox(&data), &pending, "video.asset.created")
                .is_some_and(|r| r.delivered_at.is_some())
    })
    .await;
    // Both were due at startup, so the dead one would have gone out in the
    // same batch had it still been pending.
    assert_eq!(
        hook.attempts(&gone, "video.asset.created").len(),
        dead_attempts,
        "a dead-lettered event was sent again after the restart"
    );
    let rows = outbox(&data);
    let dead = row(&rows, &gone, "video.asset.created").unwrap();
    assert!(
        dead.dead_at.is_some() && dead.delivered_at.is_none(),
        "{dead:?}"
    );
    assert!(dead.last_error.is_some());
    let sent = row(&rows, &pending, "video.asset.created").unwrap();
    assert!(sent.delivered_at.is_some(), "{sent:?}");
    assert!(sent.attempts >= 2, "{sent:?}");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn delivered_and_dead_events_are_pruned_after_the_retention() {
    let dir = tempfile::tempdir().unwrap();
    let data = data_dir(&dir);
    let hook = Receiver::start(&["video.asset.created"]).await;
    let retention = Duration::from_secs(2);
    let server = Running::start(&data, &hook, |c| {
        c.webhook_max_age = Duration::from_secs(1);
        c.webhook_retention = retention;
    })
    .await;
    let asset = server.asset(Some(b"abc")).await;
    // created (dead-lettered), uploaded and errored (three bytes are not a
    // video), delivered.
    wait_for("every event settled", Duration::from_secs(20), || {
        let rows = outbox(&data);
        row(&rows, &asset, "video.asset.created").is_some_and(|r| r.dead_at.is_some())
            && rows.len() == 3
            && rows
                .iter()
                .all(|r| r.dead_at.is_some() || r.delivered_at.is_some())
    })
    .await;
    let rows = outbox(&data);
    let settled: Vec<i64> = rows
        .iter()
        .map(|r| r.dead_at.or(r.delivered_at).unwrap())
        .collect();
    assert_eq!(rows.len(), 3, "{rows:?}");
    let mut gone_at = Vec::new();
    wait_for("pruning", Duration::from_secs(20), || {
        let left = outbox(&data);
        for (r, at) in rows.iter().zip(&settled) {
            if !left.iter().any(|l| l.id == r.id) && !gone_at.iter().any(|(id, _)| id == &r.id) {
                gone_at.push((r.id.clone(), chrono::Utc::now().timestamp_millis() - at));
            }
        }
        left.is_empty()
    })
    .await;
    println!("pruned this long after delivery / dead-lettering (ms): {gone_at:?}");
    for (id, after) in &gone_at {
        assert!(
            *after >= retention.as_millis() as i64,
            "{id} was pruned {after} ms after it settled, before the retention"
        );
    }
    server.stop().await;
}
