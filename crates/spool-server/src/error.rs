//! The server's error policy. Handlers return [`ApiError`]: a stable
//! [`ErrorCode`] from spool-proto, a message safe to show a client, and any
//! protocol headers the answer needs (`Upload-Offset` on 409, `Tus-Version` on
//! 412). Internal failures (storage, database) are logged with their cause
//! and answered as `ERR_INTERNAL` without details. Error messages never
//! include credentials, signatures or filesystem paths.

use axum::http::{HeaderName, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use spool_proto::{ErrorBody, ErrorCode};

/// An error answered to an HTTP client as `{"code","message"}`.
#[derive(Debug)]
pub struct ApiError {
    pub code: ErrorCode,
    pub message: String,
    pub headers: Vec<(HeaderName, HeaderValue)>,
}

impl ApiError {
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        ApiError {
            code,
            message: message.into(),
            headers: Vec::new(),
        }
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
        ApiError::internal(e)
    }
}

impl From<crate::store::StoreError> for ApiError {
    fn from(e: crate::store::StoreError) -> Self {
        ApiError::internal(e)
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
