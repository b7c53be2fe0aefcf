//! Liveness and readiness.

use std::time::Duration;

use axum::{Json, extract::State, http::StatusCode, response::IntoResponse};
use serde_json::json;

use crate::{AppState, config::FailMode};

/// Bound on each readiness probe, well inside a kubelet's default 1 s.
const PROBE_TIMEOUT: Duration = Duration::from_millis(800);

/// The process is up and serving HTTP.
pub async fn healthz() -> impl IntoResponse {
    Json(json!({"status": "ok"}))
}

/// Ready when the inference service answers its `/healthz` and Redis answers
/// PING. With `GATEWAY_RATE_LIMIT_FAIL_MODE=open` a Redis outage is reported
/// but does not take the gateway out of service: failing open exists so that
/// traffic keeps flowing while Redis is down.
pub async fn readyz(State(state): State<AppState>) -> impl IntoResponse {
    let (upstream, redis) =
        tokio::join!(state.upstream.health(PROBE_TIMEOUT), state.limiter.ping());
    let redis_blocks = state.fail_mode == FailMode::Closed;
    let ready = upstream.is_ok() && (redis.is_ok() || !redis_blocks);
    let describe = |result: &Result<(), String>| match result {
        Ok(()) => "ok".to_owned(),
        Err(error) => error.clone(),
    };
    let status = if ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    let body = json!({
        "status": if ready { "ready" } else { "not ready" },
        "checks": {
            "upstream": describe(&upstream),
            "redis": describe(&redis),
        },
        "rate_limit_fail_mode": state.fail_mode.as_str(),
    });
    (status, Json(body))
}
