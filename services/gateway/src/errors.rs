//! The one error shape every gateway-made error response has:
//! `{"error": "...", "request_id": "..."}`.
//!
//! Handlers and middleware return [`ApiError`] without knowing the request id;
//! the outermost middleware ([`crate::request_id`]) fills it in, so errors
//! raised anywhere (including 404/405 fallbacks) carry the same id as the
//! `X-Request-Id` response header.

use std::borrow::Cow;

use axum::{
    Json,
    response::{IntoResponse, Response},
};
use http::{HeaderMap, HeaderName, HeaderValue, StatusCode};
use serde::Serialize;

/// Boxed, so `Result<_, ApiError>` stays small on the happy path.
#[derive(Debug)]
pub struct ApiError(Box<Inner>);

#[derive(Debug)]
struct Inner {
    status: StatusCode,
    message: Cow<'static, str>,
    headers: HeaderMap,
}

/// Marks a response as a gateway error, for the request-id middleware.
#[derive(Clone, Debug)]
pub struct ErrorMessage(pub Cow<'static, str>);

#[derive(Serialize)]
struct ErrorBody<'a> {
    error: &'a str,
    request_id: Option<&'a str>,
}

impl ApiError {
    pub fn new(status: StatusCode, message: impl Into<Cow<'static, str>>) -> Self {
        Self(Box::new(Inner {
            status,
            message: message.into(),
            headers: HeaderMap::new(),
        }))
    }

    pub fn with_header(mut self, name: HeaderName, value: HeaderValue) -> Self {
        self.0.headers.insert(name, value);
        self
    }

    pub fn with_headers(mut self, headers: HeaderMap) -> Self {
        self.0.headers.extend(headers);
        self
    }

    pub fn status(&self) -> StatusCode {
        self.0.status
    }

    pub fn not_found() -> Self {
        Self::new(StatusCode::NOT_FOUND, "not found")
    }

    pub fn method_not_allowed() -> Self {
        Self::new(StatusCode::METHOD_NOT_ALLOWED, "method not allowed")
    }
}

/// Builds the JSON body of an error response.
pub fn render(status: StatusCode, message: &str, request_id: Option<&str>) -> Response {
    let body = ErrorBody {
        error: message,
        request_id,
    };
    (status, Json(body)).into_response()
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let Inner {
            status,
            message,
            headers,
        } = *self.0;
        let mut response = render(status, &message, None);
        response.headers_mut().extend(headers);
        response.extensions_mut().insert(ErrorMessage(message));
        response
    }
}

pub async fn fallback() -> ApiError {
    ApiError::not_found()
}

pub async fn method_not_allowed() -> ApiError {
    ApiError::method_not_allowed()
}
