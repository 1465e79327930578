//! Spool's upload server. A backend holding API credentials calls
//! [`api::on_demand`] to get a short-lived signed upload URL for a new asset;
//! the recorder appends bytes to it over TUS 1.0.0 ([`tus`]), which streams
//! them into a [`store::Store`] and acknowledges only what is durable; the
//! asset's life is recorded in SQLite ([`db`]) and announced through signed
//! webhooks from a durable outbox ([`webhooks`]); anyone with the share link
//! watches it on [`share`]'s page. [`uploads`] is the upload lifecycle the
//! TUS endpoint and the API share. [`Server`] binds, reconciles state with
//! the disk after a crash, runs the background tasks, and serves until
//! shutdown through [`listener`], which bounds what each connection may
//! hold; it fails with [`Error`] (e.g. [`Error::PortInUse`]).

pub mod api;
pub mod app;
pub mod auth;
pub mod clock;
pub mod config;
pub mod db;
pub mod error;
pub mod fault;
pub mod http_util;
pub mod ids;
pub mod ietf;
pub mod jobs;
pub mod lease;
pub mod listener;
pub mod live;
pub mod locks;
pub mod media;

pub mod outputs;
pub mod process;
pub mod repair;
pub mod share;
pub mod space;
pub mod store;
pub mod tus;
pub mod uploads;
pub mod webhooks;

use std::future::Future;
use std::net::SocketAddr;
use std::time::Duration;

use axum::Router;
use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get};
use tokio_util::task::TaskTracker;

pub use app::{App, CredentialSource};
pub use config::{Config, Credentials, DatabaseConfig, WebhookConfig};
pub use error::Error;

async fn not_found() -> error::ApiError {
    error::ApiError::new(spool_proto::ErrorCode::NotFound, "no such route")
}

/// Logs each request by method and path only: query strings carry upload
/// signatures and never reach the log.
async fn log_requests(req: Request, next: Next) -> Response {
    let method = req.method().clone();
    let path = req.uri().path().to_owned();
    let start = std::time::Instant::now();
    let resp = next.run(req).await;
    let status = resp.status().as_u16();
    let ms = start.elapsed().as_millis() as u64;
    if status >= 500 {
        tracing::warn!(%method, %path, status, ms, "request");
    } else {
        tracing::debug!(%method, %path, status, ms, "request");
    }
    resp
}

async fn health(State(_app): State<App>) -> &'static str {
    "ok\n"
}

/// The HTTP routes over `app`; usable without a socket (router tests).
pub fn router(app: App) -> Router {
    Router::new()
        .route("/v1/on-demand", axum::routing::post(api::on_demand))
        .route(
            "/v1/assets/{id}",
            get(api::get_asset)
                .patch(api::update_asset)
                .delete(api::delete_asset),
        )
        .route("/v1/assets/{id}/original", get(api::get_original))
        .route("/v1/uploads", any(tus::creation_endpoint))
        .route("/v1/uploads/{id}", any(tus::upload_endpoint))
        .merge(share::routes())
        .merge(media::routes())
        .route("/healthz", get(health))
        .fallback(|| async { not_found().await.into_response() })
        .layer(axum::middleware::from_fn(log_requests))
        .with_state(app)
}

/// A bound server, ready to run.
pub struct Server {
    pub addr: SocketAddr,
    pub app: App,
    pub credential_source: CredentialSource,
    /// What each connection may hold, the connection limit already fitted
    /// to the open-file limit.
    pub limits: listener::Limits,
    listener: tokio::net::TcpListener,
}

fn default_public_url(addr: SocketAddr) -> String {
    let host = if addr.ip().is_unspecified() {
        "localhost".to_owned()
    } else {
        addr.ip().to_string()
    };
    match addr {
        SocketAddr::V6(_) if !addr.ip().is_unspecified() => {
            format!("http://[{host}]:{}", addr.port())
        }
        _ => format!("http://{host}:{}", addr.port()),
    }
}

impl Server {
    /// Raises the open-file limit, binds the listener and opens the data
    /// directory.
    pub async fn bind(config: Config) -> Result<Server, Error> {
        let fd_limit = listener::raise_nofile_limit();
        let limits = listener::Limits {
            header_timeout: config.header_timeout,
            keepalive_timeout: config.keepalive_timeout,
            write_timeout: config.idle_timeout,
            max_connections: listener::fit_to_fd_limit(config.max_connections, fd_limit),
        };
        let listener = listener::bind(config.listen, listener::backlog_for(limits.max_connections))
            .map_err(|e| Error::bind(config.listen, e))?;
        let addr = listener
            .local_addr()
            .map_err(|e| Error::bind(config.listen, e))?;
        let public_url = config
            .public_url
            .as_ref()
            .map(|u| u.as_str().trim_end_matches('/').to_owned())
            .unwrap_or_else(|| default_public_url(addr));
        let (app, credential_source) = App::open(config, &public_url).await?;
        Ok(Server {
            addr,
            app,
            credential_source,
            limits,
            listener,
        })
    }

    /// Serves until `shutdown` resolves; then stops taking connections, lets
    /// in-flight PATCHes save what arrived, and waits for them (bounded by
    /// the shutdown timeout, after which the rest are closed).
    pub async fn run(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> Result<(), Error> {
        let Server {
            app,
            listener,
            limits,
            ..
        } = self;
        let tasks = TaskTracker::new();
        let worker_app = app.clone();
        tasks.spawn(async move { webhooks::run(worker_app).await });
        let process_app = app.clone();
        tasks.spawn(async move { process::run(process_app).await });
        let sweep_app = app.clone();
        tasks.spawn(async move {
            let period = Duration::from_secs(5)
                .min(sweep_app.config.upload_ttl.max(Duration::from_millis(500)));
            loop {
                tokio::select! {
                    _ = sweep_app.shutdown.cancelled() => return,
                    _ = tokio::time::sleep(period) => {}
                }
                if let Err(e) = uploads::sweep_expired(&sweep_app).await {
                    tracing::error!(code = %e.code, "expiry sweep failed");
                }
            }
        });
        tasks.close();

        let token = app.shutdown.clone();
        tokio::spawn(async move {
            shutdown.await;
            tracing::info!("shutting down: saving in-flight uploads");
            token.cancel();
        });
        tracing::info!(
            header_timeout_s = limits.header_timeout.as_secs(),
            keepalive_timeout_s = limits.keepalive_timeout.as_secs(),
            max_connections = limits.max_connections,
            "connection limits"
        );
        let grace = app.config.shutdown_timeout;
        let connections = TaskTracker::new();
        let force = tokio_util::sync::CancellationToken::new();
        let accept = tokio::spawn(listener::serve(
            listener,
            router(app.clone()),
            limits,
            app.shutdown.clone(),
            force.clone(),
            connections.clone(),
        ));
        app.shutdown.cancelled().await;
        accept.await.map_err(Error::Serve)?;
        connections.close();
        if tokio::time::timeout(grace, connections.wait())
            .await
            .is_err()
        {
            tracing::warn!("connections still open after {grace:?}; closing them");
            force.cancel();
            let _ = tokio::time::timeout(Duration::from_secs(2), connections.wait()).await;
        }
        let _ = tokio::time::timeout(Duration::from_secs(2), tasks.wait()).await;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A taken port is told apart from other failures, so an embedding
    /// caller can retry on another port.
    #[tokio::test]
    async fn a_taken_port_is_port_in_use() {
        let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let dir = tempfile::tempdir().unwrap();
        let mut config = Config::new(dir.path().join("data"));
        config.listen = taken.local_addr().unwrap();
        let Err(e) = Server::bind(config).await else {
            panic!("bound a port that is taken");
        };
        assert!(e.is_addr_in_use(), "{e:?}");
        assert!(matches!(e, Error::PortInUse { addr, .. } if addr == taken.local_addr().unwrap()));
    }
}
