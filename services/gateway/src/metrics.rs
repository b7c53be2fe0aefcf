//! Prometheus metrics and the per-request access log.

use std::time::Instant;

use axum::{
    extract::{MatchedPath, Request, State},
    middleware::Next,
    response::{IntoResponse, Response},
};
use http::{Method, StatusCode, header};
use prometheus::{
    Encoder, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGaugeVec, Opts, Registry,
    TextEncoder,
};

use crate::{config::FailMode, request_id::RequestId};

/// Label for requests no route matched, so scanners probing random paths
/// cannot blow up the number of series.
const UNMATCHED: &str = "unmatched";

#[derive(Clone)]
pub struct Metrics {
    registry: Registry,
    requests: IntCounterVec,
    latency: HistogramVec,
    upstream_errors: IntCounterVec,
    pub upstream_retries: IntCounter,
    pub ratelimit_rejected: IntCounter,
    pub ratelimit_backend_errors: IntCounter,
    /// Requests let through unchecked because Redis failed in fail-open mode.
    pub ratelimit_bypassed: IntCounter,
    /// Requests admitted on a token reserved by another request's Redis call.
    pub ratelimit_leased: IntCounter,
}

impl Metrics {
    pub fn new(fail_mode: FailMode) -> Self {
        let registry = Registry::new_custom(Some("gateway".into()), None)
            .expect("static registry settings are valid");
        let requests = IntCounterVec::new(
            Opts::new(
                "http_requests_total",
                "HTTP requests by route, method and status",
            ),
            &["route", "method", "status"],
        )
        .expect("valid metric");
        let latency = HistogramVec::new(
            HistogramOpts::new(
                "http_request_duration_seconds",
                "Time from request to response headers, by route",
            )
            .buckets(vec![
                0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
                10.0,
            ]),
            &["route"],
        )
        .expect("valid metric");
        let upstream_errors = IntCounterVec::new(
            Opts::new(
                "upstream_errors_total",
                "Failed calls to the inference service, by kind",
            ),
            &["kind"],
        )
        .expect("valid metric");
        let upstream_retries = IntCounter::new(
            "upstream_retries_total",
            "Idempotent upstream calls retried after a connection error",
        )
        .expect("valid metric");
        let ratelimit_rejected = IntCounter::new(
            "ratelimit_rejected_total",
            "Requests refused with 429 by the rate limiter",
        )
        .expect("valid metric");
        let ratelimit_backend_errors = IntCounter::new(
            "ratelimit_backend_errors_total",
            "Rate-limit checks that failed because Redis did not answer",
        )
        .expect("valid metric");
        let ratelimit_bypassed = IntCounter::new(
            "ratelimit_bypassed_total",
            "Requests let through without a rate-limit check (fail-open with Redis down)",
        )
        .expect("valid metric");
        let ratelimit_leased = IntCounter::new(
            "ratelimit_leased_total",
            "Requests admitted on a rate-limit token reserved by another request's Redis call",
        )
        .expect("valid metric");
        let fail_mode_gauge = IntGaugeVec::new(
            Opts::new(
                "ratelimit_fail_mode",
                "Configured behaviour when Redis is down (1 = active mode)",
            ),
            &["mode"],
        )
        .expect("valid metric");
        for mode in [FailMode::Open, FailMode::Closed] {
            fail_mode_gauge
                .with_label_values(&[mode.as_str()])
                .set(i64::from(mode == fail_mode));
        }

        for collector in [
            Box::new(requests.clone()) as Box<dyn prometheus::core::Collector>,
            Box::new(latency.clone()),
            Box::new(upstream_errors.clone()),
            Box::new(upstream_retries.clone()),
            Box::new(ratelimit_rejected.clone()),
            Box::new(ratelimit_backend_errors.clone()),
            Box::new(ratelimit_bypassed.clone()),
            Box::new(ratelimit_leased.clone()),
            Box::new(fail_mode_gauge),
        ] {
            registry
                .register(collector)
                .expect("metric names are unique");
        }

        Self {
            registry,
            requests,
            latency,
            upstream_errors,
            upstream_retries,
            ratelimit_rejected,
            ratelimit_backend_errors,
            ratelimit_bypassed,
            ratelimit_leased,
        }
    }

    /// Exports the series for `kind` at zero, so rates work from the start.
    pub fn declare_upstream_error(&self, kind: &str) {
        self.upstream_errors.with_label_values(&[kind]);
    }

    pub fn upstream_error(&self, kind: &str) {
        self.upstream_errors.with_label_values(&[kind]).inc();
    }

    fn observe(&self, route: &str, method: &Method, status: StatusCode, seconds: f64) {
        let method = match *method {
            Method::GET => "GET",
            Method::POST => "POST",
            Method::HEAD => "HEAD",
            Method::PUT => "PUT",
            Method::DELETE => "DELETE",
            Method::PATCH => "PATCH",
            Method::OPTIONS => "OPTIONS",
            _ => "other",
        };
        self.requests
            .with_label_values(&[route, method, status.as_str()])
            .inc();
        self.latency.with_label_values(&[route]).observe(seconds);
    }

    /// The registry in the Prometheus text exposition format.
    pub fn render(&self) -> Vec<u8> {
        let mut out = Vec::new();
        TextEncoder::new()
            .encode(&self.registry.gather(), &mut out)
            .expect("writing to a Vec cannot fail");
        out
    }
}

pub async fn handler(State(metrics): State<Metrics>) -> impl IntoResponse {
    (
        [(
            header::CONTENT_TYPE,
            TextEncoder::new().format_type().to_owned(),
        )],
        metrics.render(),
    )
}

/// Counts and times every request and writes one access-log line for it.
/// Headers are never logged: they may carry API keys.
pub async fn track(State(metrics): State<Metrics>, request: Request, next: Next) -> Response {
    let started = Instant::now();
    let method = request.method().clone();
    let path = request.uri().path().to_owned();
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or(UNMATCHED, MatchedPath::as_str)
        .to_owned();
    let request_id = request.extensions().get::<RequestId>().cloned();

    let response = next.run(request).await;

    let elapsed = started.elapsed();
    let status = response.status();
    metrics.observe(&route, &method, status, elapsed.as_secs_f64());
    macro_rules! access_log {
        ($level:expr) => {
            tracing::event!(
                $level,
                request_id = request_id.as_ref().map(RequestId::as_str),
                method = %method,
                path = %path,
                route = %route,
                status = status.as_u16(),
                latency_ms = elapsed.as_secs_f64() * 1000.0,
                "request"
            )
        };
    }
    // Probes and scrapes arrive every few seconds and say nothing new.
    if matches!(route.as_str(), "/healthz" | "/readyz" | "/metrics") && status.is_success() {
        access_log!(tracing::Level::DEBUG);
    } else {
        access_log!(tracing::Level::INFO);
    }
    response
}
