//! Behind a TLS-terminating proxy: a request that reached the proxy over plain
//! HTTP (`X-Forwarded-Proto: http`) is sent to the same URL over HTTPS.
//!
//! Only the proxy sets that header (Traefik and ingress-nginx replace what a
//! client sends), and callers inside the cluster send none, so they are
//! served as before.

use std::str::FromStr;

use axum::{
    extract::Request,
    middleware::Next,
    response::{IntoResponse, Response},
};
use http::{StatusCode, header, uri::Authority};

use crate::errors::ApiError;

const FORWARDED_PROTO: &str = "x-forwarded-proto";

pub async fn to_https(request: Request, next: Next) -> Response {
    let plain = request
        .headers()
        .get(FORWARDED_PROTO)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|proto| proto.trim().eq_ignore_ascii_case("http"));
    if !plain {
        return next.run(request).await;
    }
    let host = request
        .headers()
        .get(header::HOST)
        .and_then(|v| v.to_str().ok())
        .and_then(|h| Authority::from_str(h).ok());
    let Some(host) = host else {
        return ApiError::new(
            StatusCode::BAD_REQUEST,
            "a valid Host header is needed to redirect to HTTPS",
        )
        .into_response();
    };
    let path = request.uri().path_and_query().map_or("/", |p| p.as_str());
    // 308, not 301: the method and body are kept, so a POST stays a POST.
    (
        StatusCode::PERMANENT_REDIRECT,
        [(header::LOCATION, format!("https://{}{path}", host.host()))],
    )
        .into_response()
}
