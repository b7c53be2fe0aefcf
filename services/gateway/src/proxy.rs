//! Forwarding to the inference service.
//!
//! Request bodies are read whole (bounded) before the key and the rate limit
//! are checked, and those of `POST /v1/predict` checked to be JSON before
//! anything is sent upstream, unless they declare the inference service's
//! binary type, which goes through as it came; response bodies are streamed back
//! as they arrive. Only idempotent calls are retried, and only when the
//! connection could not be established, so a request is never sent twice.

use std::{error::Error as StdError, io, sync::Arc, time::Duration};

use axum::{
    body::{Body, Bytes},
    extract::{Request, State},
    middleware::Next,
    response::Response,
};
use http::{HeaderMap, HeaderName, Method, StatusCode, Uri, header, request::Parts};
use http_body_util::{BodyExt, LengthLimitError, Limited};
use hyper_util::{
    client::legacy::{Client, Error as ClientError, connect::HttpConnector},
    rt::TokioExecutor,
};
use serde::de::IgnoredAny;
use tokio::time::{Instant, sleep, timeout_at};
use tower_http::timeout::TimeoutBody;

use crate::{auth::API_KEY_HEADER, config::Config, errors::ApiError, metrics::Metrics};

/// Attempts for an idempotent call whose connection failed.
const MAX_ATTEMPTS: u32 = 3;
const RETRY_BACKOFF: Duration = Duration::from_millis(25);

/// The inference service's binary prediction body (`docs/contracts.md`): a
/// shape header and float32 values, checked by the service itself.
const BINARY_BODY: &str = "application/x-dataplatform-f32";

/// Headers that describe one hop, not the message (RFC 9110 section 7.6.1).
const HOP_BY_HOP: [HeaderName; 7] = [
    header::CONNECTION,
    HeaderName::from_static("keep-alive"),
    HeaderName::from_static("proxy-connection"),
    header::TE,
    header::TRAILER,
    header::TRANSFER_ENCODING,
    header::UPGRADE,
];

#[derive(Clone)]
pub struct Upstream {
    inner: Arc<Inner>,
}

struct Inner {
    client: Client<HttpConnector, Body>,
    /// `http://host:port[/prefix]`, no trailing slash.
    base: String,
    timeout: Duration,
    max_body_bytes: usize,
    metrics: Metrics,
}

/// Why an upstream call failed, as reported to the client and the metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Failure {
    ConnectRefused,
    ConnectTimeout,
    Connect,
    Timeout,
    Transport,
}

impl Failure {
    const ALL: [Self; 5] = [
        Self::ConnectRefused,
        Self::ConnectTimeout,
        Self::Connect,
        Self::Timeout,
        Self::Transport,
    ];

    fn classify(error: &ClientError) -> Self {
        if !error.is_connect() {
            return Self::Transport;
        }
        let mut source = error.source();
        while let Some(cause) = source {
            if let Some(io) = cause.downcast_ref::<io::Error>() {
                return match io.kind() {
                    io::ErrorKind::ConnectionRefused => Self::ConnectRefused,
                    io::ErrorKind::TimedOut => Self::ConnectTimeout,
                    _ => Self::Connect,
                };
            }
            source = cause.source();
        }
        Self::Connect
    }

    fn label(self) -> &'static str {
        match self {
            Self::ConnectRefused => "connect_refused",
            Self::ConnectTimeout => "connect_timeout",
            Self::Connect => "connect",
            Self::Timeout => "timeout",
            Self::Transport => "transport",
        }
    }

    fn into_api_error(self) -> ApiError {
        match self {
            Self::ConnectRefused | Self::Connect => {
                ApiError::new(StatusCode::BAD_GATEWAY, "upstream unreachable")
            }
            Self::ConnectTimeout | Self::Timeout => {
                ApiError::new(StatusCode::GATEWAY_TIMEOUT, "upstream timed out")
            }
            Self::Transport => ApiError::new(StatusCode::BAD_GATEWAY, "upstream connection failed"),
        }
    }
}

impl Upstream {
    pub fn new(config: &Config, metrics: Metrics) -> Self {
        let mut connector = HttpConnector::new();
        connector.set_connect_timeout(Some(config.upstream_connect_timeout));
        connector.set_nodelay(true);
        connector.enforce_http(true);
        let client = Client::builder(TokioExecutor::new())
            .pool_idle_timeout(Duration::from_secs(60))
            .build(connector);
        for failure in Failure::ALL {
            metrics.declare_upstream_error(failure.label());
        }
        let url = &config.upstream_url;
        let base = format!(
            "{}://{}{}",
            url.scheme_str().unwrap_or("http"),
            url.authority().map_or("", |a| a.as_str()),
            url.path().trim_end_matches('/')
        );
        Self {
            inner: Arc::new(Inner {
                client,
                base,
                timeout: config.upstream_timeout,
                max_body_bytes: config.max_body_bytes,
                metrics,
            }),
        }
    }

    fn target(&self, path_and_query: &str) -> Result<Uri, ApiError> {
        format!("{}{path_and_query}", self.inner.base)
            .parse()
            .map_err(|_| ApiError::new(StatusCode::BAD_REQUEST, "invalid request target"))
    }

    /// Sends a request built by `build` until the deadline, retrying only
    /// connection failures and only when `retry` is set.
    async fn send(
        &self,
        build: impl Fn() -> http::Request<Body>,
        retry: bool,
    ) -> Result<Response, ApiError> {
        let inner = &self.inner;
        let deadline = Instant::now() + inner.timeout;
        let attempts = if retry { MAX_ATTEMPTS } else { 1 };
        let mut attempt = 1;
        let failure = loop {
            match timeout_at(deadline, inner.client.request(build())).await {
                Err(_) => break Failure::Timeout,
                Ok(Ok(response)) => {
                    let (mut parts, body) = response.into_parts();
                    strip_hop_by_hop(&mut parts.headers);
                    // The deadline covered the headers; the body may stream
                    // for longer but never stall longer than the timeout.
                    let body = Body::new(TimeoutBody::new(inner.timeout, body));
                    return Ok(Response::from_parts(parts, body));
                }
                Ok(Err(error)) => {
                    let failure = Failure::classify(&error);
                    tracing::warn!(error = %error_chain(&error), kind = failure.label(), attempt, "upstream call failed");
                    let backoff = RETRY_BACKOFF * attempt;
                    if attempt >= attempts
                        || !error.is_connect()
                        || Instant::now() + backoff >= deadline
                    {
                        break failure;
                    }
                    inner.metrics.upstream_retries.inc();
                    sleep(backoff).await;
                    attempt += 1;
                }
            }
        };
        inner.metrics.upstream_error(failure.label());
        Err(failure.into_api_error())
    }

    /// `GET {base}/healthz` answered 2xx within `within`.
    pub async fn health(&self, within: Duration) -> Result<(), String> {
        let uri = self
            .target("/healthz")
            .map_err(|_| "invalid upstream URL".to_owned())?;
        let request = http::Request::get(uri)
            .body(Body::empty())
            .expect("static request is valid");
        match tokio::time::timeout(within, self.inner.client.request(request)).await {
            Err(_) => Err(format!("no answer within {within:?}")),
            Ok(Err(error)) => Err(error_chain(&error)),
            Ok(Ok(response)) if response.status().is_success() => Ok(()),
            Ok(Ok(response)) => Err(format!("status {}", response.status())),
        }
    }
}

fn error_chain(error: &dyn StdError) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

fn strip_hop_by_hop(headers: &mut HeaderMap) {
    // Headers listed in `Connection` are hop-by-hop too.
    let listed: Vec<HeaderName> = headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|name| HeaderName::try_from(name.trim()).ok())
        .collect();
    for name in HOP_BY_HOP.iter().chain(&listed) {
        headers.remove(name);
    }
}

/// The headers sent upstream: the client's, minus hop-by-hop headers, the
/// host, and the API key, which the inference service has no use for.
fn upstream_headers(parts: &Parts) -> HeaderMap {
    let mut headers = parts.headers.clone();
    strip_hop_by_hop(&mut headers);
    for name in [header::HOST, header::AUTHORIZATION, header::CONTENT_LENGTH] {
        headers.remove(name);
    }
    headers.remove(API_KEY_HEADER);
    headers
}

fn build_request(
    method: &Method,
    uri: &Uri,
    headers: &HeaderMap,
    body: Body,
) -> http::Request<Body> {
    let mut request = http::Request::new(body);
    *request.method_mut() = method.clone();
    *request.uri_mut() = uri.clone();
    *request.headers_mut() = headers.clone();
    request
}

fn path_and_query(parts: &Parts) -> &str {
    parts.uri.path_and_query().map_or("/", |pq| pq.as_str())
}

/// Reads the whole request body before authentication and rate limiting run.
///
/// hyper closes a connection whose request body is left unread when the
/// response goes out, without a `Connection: close` in that response. A
/// keep-alive client such as an ingress controller then sends its next
/// request on a connection being closed, and a POST it cannot retry comes
/// back to its caller as a 5xx. A 401 or 429 must leave the connection
/// usable, as nginx does by discarding the body of a request it refuses.
/// A body over the limit, or not received in time, is refused here.
pub async fn read_body(
    State(upstream): State<Upstream>,
    request: Request,
    next: Next,
) -> Result<Response, ApiError> {
    let (parts, body) = request.into_parts();
    let bytes = read_limited(&upstream, &parts, body).await?;
    Ok(next
        .run(Request::from_parts(parts, Body::from(bytes)))
        .await)
}

async fn read_limited(upstream: &Upstream, parts: &Parts, body: Body) -> Result<Bytes, ApiError> {
    let limit = upstream.inner.max_body_bytes;
    let too_large = || {
        ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!("request body exceeds {limit} bytes"),
        )
    };

    let declared = parts
        .headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|len| len > limit as u64) {
        return Err(too_large());
    }

    let deadline = Instant::now() + upstream.inner.timeout;
    match timeout_at(deadline, Limited::new(body, limit).collect()).await {
        Err(_) => Err(ApiError::new(
            StatusCode::REQUEST_TIMEOUT,
            "request body not received in time",
        )),
        Ok(Err(error)) if error.is::<LengthLimitError>() => Err(too_large()),
        Ok(Err(_)) => Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "could not read request body",
        )),
        Ok(Ok(collected)) => Ok(collected.to_bytes()),
    }
}

/// Whether the request declares the binary body: the media type of
/// `Content-Type`, parameters aside, compared without regard to case.
fn is_binary_body(headers: &HeaderMap) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.split(';').next())
        .is_some_and(|media| media.trim().eq_ignore_ascii_case(BINARY_BODY))
}

/// `POST /v1/predict`: forwarded once, after a body that is not the binary
/// type is known to be JSON.
pub async fn predict(
    State(upstream): State<Upstream>,
    request: Request,
) -> Result<Response, ApiError> {
    let (parts, body) = request.into_parts();
    // `read_body`, the route's outermost layer, has bounded the body and holds
    // it in memory: collecting it here neither waits nor can overrun.
    let bytes = body
        .collect()
        .await
        .map_err(|_| ApiError::new(StatusCode::BAD_REQUEST, "could not read request body"))?
        .to_bytes();
    // The binary body's layout is checked by the service, against the live
    // model's shape, which the gateway does not know.
    if !is_binary_body(&parts.headers)
        && let Err(error) = serde_json::from_slice::<IgnoredAny>(&bytes)
    {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            format!("request body is not valid JSON: {error}"),
        ));
    }

    let uri = upstream.target(path_and_query(&parts))?;
    let headers = upstream_headers(&parts);
    // `Bytes` clones share the buffer; the closure runs once (no retry).
    upstream
        .send(
            || build_request(&parts.method, &uri, &headers, Body::from(bytes.clone())),
            false,
        )
        .await
}

/// `GET /v1/models`: idempotent, so connection failures are retried.
pub async fn models(
    State(upstream): State<Upstream>,
    request: Request,
) -> Result<Response, ApiError> {
    let (parts, _) = request.into_parts();
    let uri = upstream.target(path_and_query(&parts))?;
    let headers = upstream_headers(&parts);
    upstream
        .send(
            || build_request(&parts.method, &uri, &headers, Body::empty()),
            true,
        )
        .await
}

#[cfg(test)]
mod tests {
    use http::HeaderValue;

    use super::*;

    #[test]
    fn drops_hop_by_hop_and_credentials() {
        let request = http::Request::post("/v1/predict")
            .header(header::CONNECTION, "keep-alive, x-custom-hop")
            .header("x-custom-hop", "1")
            .header(header::TRANSFER_ENCODING, "chunked")
            .header(header::AUTHORIZATION, "Bearer secret")
            .header(API_KEY_HEADER, "secret")
            .header(header::HOST, "gateway")
            .header(header::CONTENT_TYPE, "application/json")
            .header("x-request-id", "abc")
            .body(())
            .unwrap();
        let (parts, ()) = request.into_parts();
        let headers = upstream_headers(&parts);
        let mut names: Vec<&str> = headers.keys().map(HeaderName::as_str).collect();
        names.sort_unstable();
        assert_eq!(names, ["content-type", "x-request-id"]);
        assert_eq!(headers["x-request-id"], HeaderValue::from_static("abc"));
    }

    #[test]
    fn the_binary_body_is_known_by_its_media_type() {
        let with = |value: &str| {
            let mut headers = HeaderMap::new();
            headers.insert(header::CONTENT_TYPE, HeaderValue::from_str(value).unwrap());
            is_binary_body(&headers)
        };
        assert!(with("application/x-dataplatform-f32"));
        assert!(with("Application/X-Dataplatform-F32; charset=binary"));
        assert!(with(" application/x-dataplatform-f32 "));
        assert!(!with("application/json"));
        assert!(!with("application/x-dataplatform-f32x"));
        assert!(!with("application/octet-stream"));
        assert!(!is_binary_body(&HeaderMap::new()));
    }

    #[test]
    fn failures_map_to_gateway_statuses() {
        assert_eq!(
            Failure::ConnectRefused.into_api_error().status(),
            StatusCode::BAD_GATEWAY
        );
        assert_eq!(
            Failure::ConnectTimeout.into_api_error().status(),
            StatusCode::GATEWAY_TIMEOUT
        );
        assert_eq!(
            Failure::Timeout.into_api_error().status(),
            StatusCode::GATEWAY_TIMEOUT
        );
        assert_eq!(
            Failure::Transport.into_api_error().status(),
            StatusCode::BAD_GATEWAY
        );
    }
}
