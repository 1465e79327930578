//! The router harness the server's integration tests share: a [`T`] is an
//! [`App`] on its own temporary data folder with the test credentials,
//! driven through the router with `oneshot` — no socket.

#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use axum::Router;
use axum::body::Body;
use axum::http::{HeaderMap, Method, Request, StatusCode};
use base64::Engine as _;
use bytes::Bytes;
use http_body_util::BodyExt;
use spool_server::{App, Config, Credentials};
use tower::ServiceExt;

pub const ID: &str = "test-id";
pub const SECRET: &str = "test-secret";

pub struct T {
    pub app: App,
    pub router: Router,
    pub dir: tempfile::TempDir,
    /// The bucket's store, when the suite runs on S3 ([`on_s3`]).
    pub garage: Option<spool_testkit::garage::Garage>,
    /// The metadata database, when the suite runs on PostgreSQL ([`on_postgres`]).
    pub postgres: Option<std::sync::Arc<spool_testkit::postgres::Postgres>>,
}

fn exe_name() -> String {
    std::env::current_exe()
        .ok()
        .and_then(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()))
        .unwrap_or_default()
}

/// Whether the suite runs with `--database-url postgres://…` (a private
/// PostgreSQL per test): the `*_pg` test targets.
pub fn on_postgres() -> bool {
    let n = exe_name();
    n.contains("_pg-") || n.ends_with("_pg")
}

/// Whether the suite runs with `--store s3` (a private Garage per test):
/// the `*_s3` test targets compile the same tests a second time (see the
/// crate's Cargo.toml), and their binaries are named so.
pub fn on_s3() -> bool {
    let n = exe_name();
    n.contains("_s3-") || n.contains("_s3_") || n.ends_with("_s3")
}

/// The S3 store configuration of `garage` (parts of the minimum size, so
/// that tests cross part boundaries with few bytes).
pub fn s3_config(g: &spool_testkit::garage::Garage) -> spool_server::store::S3Config {
    spool_server::store::S3Config {
        bucket: g.bucket.clone(),
        endpoint: Some(g.endpoint.clone()),
        region: g.region.clone(),
        path_style: true,
        prefix: String::new(),
        part_size: spool_server::store::MIN_PART,
        access_key: g.access_key.clone(),
        secret_key: g.secret_key.clone(),
        session_token: None,
    }
}

pub struct Resp {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl Resp {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).map(|v| v.to_str().unwrap())
    }
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {:?}", String::from_utf8_lossy(&self.body)))
    }
    pub fn text(&self) -> String {
        String::from_utf8(self.body.to_vec()).unwrap()
    }
    pub fn code(&self) -> String {
        self.json()["code"].as_str().unwrap().to_owned()
    }
}

pub fn basic() -> String {
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("{ID}:{SECRET}"))
    )
}

/// Path and query of an absolute URL.
pub fn local(url: &str) -> String {
    let u = url::Url::parse(url).unwrap();
    match u.query() {
        Some(q) => format!("{}?{q}", u.path()),
        None => u.path().to_owned(),
    }
}

pub fn id_of(url: &str) -> String {
    url.split('?')
        .next()
        .unwrap()
        .rsplit('/')
        .next()
        .unwrap()
        .to_owned()
}

impl T {
    pub async fn new() -> T {
        T::with(|_| {}).await
    }

    pub async fn with(f: impl FnOnce(&mut Config)) -> T {
        T::with_dir(tempfile::tempdir().unwrap(), f).await
    }

    /// A server on `dir` (a fresh one, or one a previous `T` used: a restart).
    pub async fn with_dir(dir: tempfile::TempDir, f: impl FnOnce(&mut Config)) -> T {
        let garage = on_s3().then(spool_testkit::garage::Garage::start_new);
        let postgres = on_postgres()
            .then(|| std::sync::Arc::new(spool_testkit::postgres::Postgres::start_new()));
        T::with_parts(dir, garage, postgres, f).await
    }

    async fn with_parts(
        dir: tempfile::TempDir,
        garage: Option<spool_testkit::garage::Garage>,
        postgres: Option<std::sync::Arc<spool_testkit::postgres::Postgres>>,
        f: impl FnOnce(&mut Config),
    ) -> T {
        let mut cfg = Config::new(dir.path().join("data"));
        if let Some(g) = &garage {
            cfg.store = spool_server::config::StoreConfig::S3(s3_config(g));
        }
        if let Some(pg) = &postgres {
            cfg.database = spool_server::DatabaseConfig::Postgres(pg.url.clone());
        }
        cfg.credentials = Some(Credentials {
            token_id: ID.into(),
            token_secret: SECRET.into(),
        });
        f(&mut cfg);
        let (app, _) = App::open(cfg, "http://spool.test").await.unwrap();
        let router = spool_server::router(app.clone());
        T {
            app,
            router,
            dir,
            garage,
            postgres,
        }
    }

    /// A node of its own data folder on `postgres`, a database other `T`s
    /// may share (several nodes), with the filesystem store.
    pub async fn on_database(
        postgres: std::sync::Arc<spool_testkit::postgres::Postgres>,
        f: impl FnOnce(&mut Config),
    ) -> T {
        T::with_parts(tempfile::tempdir().unwrap(), None, Some(postgres), f).await
    }

    /// The same data folder served afresh, as after a restart.
    pub async fn reopen(self, f: impl FnOnce(&mut Config)) -> T {
        let T {
            app,
            router,
            dir,
            garage,
            postgres,
        } = self;
        drop(router);
        drop(app);
        T::with_parts(dir, garage, postgres, f).await
    }

    pub async fn send(&self, req: Request<Body>) -> Resp {
        let resp = self.router.clone().oneshot(req).await.unwrap();
        let status = resp.status();
        let headers = resp.headers().clone();
        let body = resp.into_body().collect().await.unwrap().to_bytes();
        Resp {
            status,
            headers,
            body,
        }
    }

    pub async fn req(
        &self,
        method: &str,
        uri: &str,
        headers: &[(&str, &str)],
        body: impl Into<Body>,
    ) -> Resp {
        let mut b = Request::builder()
            .method(Method::from_bytes(method.as_bytes()).unwrap())
            .uri(uri);
        for (k, v) in headers {
            b = b.header(*k, *v);
        }
        self.send(b.body(body.into()).unwrap()).await
    }

    /// `POST /v1/on-demand`; returns (asset id, local upload URL).
    pub async fn on_demand(&self, json: &str) -> (String, String) {
        let r = self
            .req(
                "POST",
                "/v1/on-demand",
                &[
                    ("authorization", &basic()),
                    ("content-type", "application/json"),
                ],
                json.to_owned(),
            )
            .await;
        assert_eq!(r.status, StatusCode::CREATED, "{:?}", r.body);
        let j = r.json();
        (
            j["asset_id"].as_str().unwrap().to_owned(),
            local(j["upload_url"].as_str().unwrap()),
        )
    }

    /// TUS creation; returns the local, signed Location.
    pub async fn create(&self, headers: &[(&str, &str)]) -> String {
        let b = basic();
        let mut h = vec![("tus-resumable", "1.0.0"), ("authorization", b.as_str())];
        h.extend_from_slice(headers);
        let r = self.req("POST", "/v1/uploads", &h, Body::empty()).await;
        assert_eq!(
            r.status,
            StatusCode::CREATED,
            "{:?}",
            String::from_utf8_lossy(&r.body)
        );
        local(r.header("location").unwrap())
    }

    pub async fn patch(
        &self,
        url: &str,
        offset: u64,
        extra: &[(&str, &str)],
        data: &'static [u8],
    ) -> Resp {
        let off = offset.to_string();
        let mut h = vec![
            ("tus-resumable", "1.0.0"),
            ("content-type", "application/offset+octet-stream"),
            ("upload-offset", off.as_str()),
        ];
        h.extend_from_slice(extra);
        self.req("PATCH", url, &h, data).await
    }

    /// GET with the API credentials (an upload URL alone no longer reads bytes).
    pub async fn get_basic(&self, url: &str) -> Resp {
        self.req("GET", url, &[("authorization", &basic())], Body::empty())
            .await
    }

    pub async fn head(&self, url: &str) -> Resp {
        self.req("HEAD", url, &[("tus-resumable", "1.0.0")], Body::empty())
            .await
    }

    pub async fn asset(&self, id: &str) -> serde_json::Value {
        let r = self
            .req(
                "GET",
                &format!("/v1/assets/{id}"),
                &[("authorization", &basic())],
                Body::empty(),
            )
            .await;
        assert_eq!(r.status, StatusCode::OK);
        r.json()
    }
}

/// A request body fed by the test, chunk by chunk; dropping the sender with
/// `Err` simulates a cut connection.
pub fn channel_body() -> (
    tokio::sync::mpsc::Sender<Result<Bytes, std::io::Error>>,
    Body,
) {
    let (tx, rx) = tokio::sync::mpsc::channel::<Result<Bytes, std::io::Error>>(8);
    let stream = futures_util::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|item| (item, rx))
    });
    (tx, Body::from_stream(stream))
}

pub fn streaming_patch(url: &str, offset: u64, body: Body) -> Request<Body> {
    Request::builder()
        .method("PATCH")
        .uri(url)
        .header("tus-resumable", "1.0.0")
        .header("content-type", "application/offset+octet-stream")
        .header("upload-offset", offset.to_string())
        .body(body)
        .unwrap()
}
