//! The platform's API gateway: authenticates callers by API key, rate-limits
//! them per key in Redis, and forwards `/v1/*` to the inference service.

pub mod auth;
pub mod config;
pub mod errors;
pub mod health;
pub mod healthcheck;
pub mod lease;
pub mod logging;
pub mod metrics;
pub mod proxy;
pub mod ratelimit;
pub mod redirect;
pub mod request_id;

use std::{future::Future, io};

use axum::{
    Router,
    extract::FromRef,
    middleware::{from_fn, from_fn_with_state},
    routing::{get, post},
    serve::ListenerExt,
};
use tokio::net::TcpListener;

use crate::{
    auth::ApiKeys,
    config::{Config, FailMode},
    metrics::Metrics,
    proxy::Upstream,
    ratelimit::RateLimiter,
};

#[derive(Clone)]
pub struct AppState {
    pub keys: ApiKeys,
    pub limiter: RateLimiter,
    pub metrics: Metrics,
    pub upstream: Upstream,
    pub fail_mode: FailMode,
    pub https_redirect: bool,
}

impl AppState {
    /// Must run inside a Tokio runtime (the Redis connection is driven by it).
    pub fn new(config: &Config) -> Result<Self, redis::RedisError> {
        let metrics = Metrics::new(config.fail_mode);
        let redis = ratelimit::redis_connection(config)?;
        Ok(Self {
            keys: config.api_keys.clone(),
            limiter: RateLimiter::new(redis, config, metrics.clone()),
            upstream: Upstream::new(config, metrics.clone()),
            metrics,
            fail_mode: config.fail_mode,
            https_redirect: config.https_redirect,
        })
    }
}

macro_rules! substate {
    ($($field:ident: $ty:ty),* $(,)?) => {$(
        impl FromRef<AppState> for $ty {
            fn from_ref(state: &AppState) -> Self {
                state.$field.clone()
            }
        }
    )*};
}

substate!(keys: ApiKeys, limiter: RateLimiter, metrics: Metrics, upstream: Upstream);

pub fn router(state: AppState) -> Router {
    // Layers added last run first: the body read whole, authentication, then
    // rate limiting.
    let api = Router::new()
        .route("/v1/predict", post(proxy::predict))
        .route("/v1/models", get(proxy::models))
        .route_layer(from_fn_with_state(
            state.limiter.clone(),
            ratelimit::enforce,
        ))
        .route_layer(from_fn_with_state(
            state.keys.clone(),
            auth::require_api_key,
        ))
        .route_layer(from_fn_with_state(state.upstream.clone(), proxy::read_body));

    let mut app = Router::new()
        .merge(api)
        .route("/healthz", get(health::healthz))
        .route("/readyz", get(health::readyz))
        .route("/metrics", get(metrics::handler))
        .fallback(errors::fallback)
        .method_not_allowed_fallback(errors::method_not_allowed);
    if state.https_redirect {
        app = app.layer(from_fn(redirect::to_https));
    }
    app.layer(from_fn_with_state(state.metrics.clone(), metrics::track))
        .layer(from_fn(request_id::propagate))
        .with_state(state)
}

/// Serves on an already bound listener until `shutdown` resolves, then
/// finishes the requests in flight.
pub async fn serve(
    listener: TcpListener,
    state: AppState,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> io::Result<()> {
    // Small request/response exchanges: don't let Nagle hold them back.
    let listener = listener.tap_io(|tcp| {
        if let Err(error) = tcp.set_nodelay(true) {
            tracing::debug!(%error, "cannot set TCP_NODELAY");
        }
    });
    axum::serve(listener, router(state))
        .with_graceful_shutdown(shutdown)
        .await
}
