//! The server's error policy. Handlers return [`ApiError`]: a stable
//! [`ErrorCode`] from spool-proto, a message safe to show a client, and any
//! protocol headers the answer needs (`Upload-Offset` on 409, `Tus-Version` on
//! 412). Internal failures (storage, database) are logged with their cause
//! and answered as `ERR_INTERNAL` without details. Error messages never
//! include credentials, signatures or filesystem paths. Starting and running
//! the server is the other boundary: [`crate::Server`] and
//! [`crate::App::open`] return [`Error`], whose variants let an embedding
//! caller tell a taken port from a failure that another port would not fix;
//! `anyhow` stays inside the background tasks and the binaries.

use axum::http::{HeaderName, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use spool_proto::{ErrorBody, ErrorCode};

/// An error answered to an HTTP client as `{"code","message"}`.
#[derive(Debug)]
pub struct ApiError {
    pub code: ErrorCode,
    pub message: String,
    pub headers: Vec<(HeaderName, HeaderValue)>,
    /// For an offset conflict: the upload's offset and the one the request
    /// named, which a draft answer's problem details carry as members.
    pub offsets: Option<(u64, u64)>,
}

impl ApiError {
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        ApiError {
            code,
            message: message.into(),
            headers: Vec::new(),
            offsets: None,
        }
    }

    /// Records the offsets of a conflict: the upload's, and the request's.
    pub fn with_offsets(mut self, expected: u64, provided: u64) -> Self {
        self.offsets = Some((expected, provided));
        self
    }

    /// Adds a header to the answer.
    pub fn with_header(mut self, name: &'static str, value: impl ToString) -> Self {
        if let Ok(v) = HeaderValue::from_str(&value.to_string()) {
            self.headers.push((HeaderName::from_static(name), v));
        }
        self
    }

    /// Logs `cause` and answers `ERR_INTERNAL`.
    pub fn internal(cause: impl std::fmt::Display) -> Self {
        tracing::error!(error = %cause, "internal error");
        ApiError::new(ErrorCode::Internal, ErrorCode::Internal.description())
    }

    pub fn status(&self) -> StatusCode {
        StatusCode::from_u16(self.code.status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
    }
}

impl From<crate::db::DbError> for ApiError {
    fn from(e: crate::db::DbError) -> Self {
        if e.is_unavailable() {
            // A database restart or outage: retried by clients, like an
            // unreachable store (nothing of the request was recorded).
            tracing::warn!(error = %e, "database unavailable");
            return ApiError::new(
                ErrorCode::StorageUnavailable,
                "the database cannot be reached; nothing of this request was recorded; retry later",
            )
            // Short: a restarting database is back in seconds.
            .with_header("retry-after", 2);
        }
        ApiError::internal(e)
    }
}

impl From<crate::store::StoreError> for ApiError {
    fn from(e: crate::store::StoreError) -> Self {
        match e {
            crate::store::StoreError::Unavailable(_) => crate::space::store_error(e, None),
            e => ApiError::internal(e),
        }
    }
}

impl From<crate::locks::LockError> for ApiError {
    fn from(e: crate::locks::LockError) -> Self {
        match e {
            crate::locks::LockError::Locked => ApiError::new(
                ErrorCode::UploadLocked,
                "another request is writing to this upload",
            )
            .with_header("retry-after", 1),
            crate::locks::LockError::Poisoned => {
                ApiError::internal("the upload lock table is poisoned")
            }
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = self.status();
        let mut resp =
            (status, axum::Json(ErrorBody::new(self.code, self.message))).into_response();
        for (k, v) in self.headers {
            resp.headers_mut().insert(k, v);
        }
        resp.headers_mut().insert(
            spool_proto::error::ERROR_CODE_HEADER,
            HeaderValue::from_static(self.code.as_str()),
        );
        resp
    }
}

pub type ApiResult<T> = Result<T, ApiError>;

/// Why the server could not start, or stopped on a failure: what
/// [`crate::Server::bind`], [`crate::Server::run`] and [`crate::App::open`]
/// return. A caller that can pick another port matches
/// [`Error::PortInUse`] (or asks [`Error::is_addr_in_use`]); every other
/// variant means the same port would fail again.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// Another socket holds the listen address (`EADDRINUSE`).
    #[error("binding {addr}: the address is already in use")]
    PortInUse {
        addr: std::net::SocketAddr,
        #[source]
        source: std::io::Error,
    },
    /// The listen address cannot be bound for another reason (not a local
    /// address, no permission for a low port).
    #[error("binding {addr}")]
    Bind {
        addr: std::net::SocketAddr,
        #[source]
        source: std::io::Error,
    },
    /// The data folder is in use by another server, or cannot be locked.
    #[error(transparent)]
    DataDir(#[from] crate::app::DataDirError),
    /// A file of the data folder cannot be read or written.
    #[error("{what}")]
    Io {
        what: String,
        #[source]
        source: std::io::Error,
    },
    /// The object store cannot be reached, or refuses the bucket.
    #[error("the object store: {0}")]
    Store(String),
    /// The credentials file exists but does not hold `id:secret`.
    #[error("{0} is not 'id:secret'")]
    Credentials(String),
    /// The database cannot be opened, migrated or read.
    #[error("the database")]
    Db(#[from] crate::db::DbError),
    /// Startup repair (reconciling the database with storage) failed.
    #[error("repairing the state after a restart")]
    Repair(#[source] Box<dyn std::error::Error + Send + Sync>),
    /// The accept loop ended abnormally.
    #[error("the accept loop")]
    Serve(#[source] tokio::task::JoinError),
}

impl Error {
    /// Whether the listen address was taken, so another port may work.
    pub fn is_addr_in_use(&self) -> bool {
        matches!(self, Error::PortInUse { .. })
    }

    /// The error for binding `addr` failing with `source`.
    pub(crate) fn bind(addr: std::net::SocketAddr, source: std::io::Error) -> Self {
        if source.kind() == std::io::ErrorKind::AddrInUse {
            Error::PortInUse { addr, source }
        } else {
            Error::Bind { addr, source }
        }
    }

    pub(crate) fn io(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> Self {
        let what = what.into();
        move |source| Error::Io { what, source }
    }
}
