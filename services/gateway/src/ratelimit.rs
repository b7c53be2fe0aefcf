//! Per-key rate limiting in Redis with the generic cell rate algorithm (GCRA),
//! a token bucket that stores one timestamp per key.
//!
//! `GATEWAY_RATE_LIMIT` requests per `GATEWAY_RATE_WINDOW_SECONDS` become a
//! bucket of that many tokens refilled evenly over the window: a client may
//! burst the whole quota, then gets one request per `window / limit`. The
//! check-and-update runs as one Lua script, so concurrent gateway replicas
//! never race, and it reads Redis' clock, so their clocks need not agree.
//!
//! A busy key reserves several tokens per call and spends them locally
//! ([`crate::lease`]); an idle one, or one near its limit, costs one call
//! per request.

use std::{
    future::Future,
    sync::{
        Arc,
        atomic::{AtomicBool, AtomicU64, Ordering},
    },
    time::Duration,
};

use axum::{
    extract::{Request, State},
    middleware::Next,
    response::Response,
};
use http::{HeaderMap, HeaderName, HeaderValue, StatusCode, header};
use redis::{
    Client, IntoConnectionInfo, RedisError, RedisResult, Script,
    aio::{ConnectionManager, ConnectionManagerConfig},
};

use tokio::time::{Instant, timeout_at};

use crate::{
    auth::KeyId,
    config::{Config, FailMode},
    errors::ApiError,
    lease::{Grant, LeaseConfig, Leases, Plan, Reservation, Spent},
    metrics::Metrics,
};

pub const LIMIT_HEADER: HeaderName = HeaderName::from_static("x-ratelimit-limit");
pub const REMAINING_HEADER: HeaderName = HeaderName::from_static("x-ratelimit-remaining");
pub const RESET_HEADER: HeaderName = HeaderName::from_static("x-ratelimit-reset");

const KEY_PREFIX: &str = "gateway:ratelimit:";

/// After Redis fails, requests skip it for this long: with Redis unreachable
/// (rather than refusing connections) every check would otherwise wait the
/// full Redis timeout.
const BACKOFF: Duration = Duration::from_millis(500);

/// KEYS[1]: bucket key. ARGV[1]: limit (bucket size). ARGV[2]: microseconds
/// per token. ARGV[3]: tokens wanted. Grants as many of them as the bucket
/// holds now and returns {granted, remaining, reset_us, retry_after_us}:
/// granted 0 means limited, reset is when the bucket is full again,
/// retry-after when the next request may pass. Times are whole microseconds
/// (below 2^53, exact in Lua's doubles).
const GCRA: &str = r"
local limit = tonumber(ARGV[1])
local interval = tonumber(ARGV[2])
local wanted = tonumber(ARGV[3])
local now_parts = redis.call('TIME')
local now = tonumber(now_parts[1]) * 1000000 + tonumber(now_parts[2])
local tat = tonumber(redis.call('GET', KEYS[1]) or now)
if tat < now then
  tat = now
end
local available = math.floor((now + interval * limit - tat) / interval)
local granted = math.min(wanted, available)
if granted < 1 then
  return {0, 0, tat - now, tat + interval - interval * limit - now}
end
local new_tat = tat + interval * granted
local ttl_ms = math.ceil((new_tat - now) / 1000)
redis.call('SET', KEYS[1], string.format('%d', new_tat), 'PX', ttl_ms)
return {granted, math.floor((now + interval * limit - new_tat) / interval), new_tat - now, 0}
";

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Quota {
    pub limit: u64,
    pub remaining: u64,
    /// Until the whole quota is available again.
    pub reset: Duration,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Decision {
    Allowed(Quota),
    Limited {
        quota: Quota,
        retry_after: Duration,
    },
    /// Redis failed and the fail mode is `open`.
    Bypassed,
    /// Redis failed and the fail mode is `closed`.
    Unavailable,
}

#[derive(Clone)]
pub struct RateLimiter {
    inner: Arc<Inner>,
}

struct Inner {
    redis: ConnectionManager,
    script: Script,
    limit: u64,
    interval_us: u64,
    fail_mode: FailMode,
    timeout: Duration,
    metrics: Metrics,
    /// Whether the last call to Redis worked; lets failures be logged once
    /// per outage instead of once per request.
    healthy: AtomicBool,
    /// Reference point for `skip_until_ms`.
    started: Instant,
    /// Milliseconds after `started` before which Redis is not asked.
    skip_until_ms: AtomicU64,
    /// `None` when leasing is off: one call per request.
    leases: Option<Leases>,
}

/// Connects lazily: the gateway starts (and, failing open, serves) while
/// Redis is still down, and the connection manager reconnects on its own.
pub fn redis_connection(config: &Config) -> Result<ConnectionManager, RedisError> {
    let mut info = config.redis_url.as_str().into_connection_info()?;
    let mut settings = info.redis_settings().clone();
    if let Some(username) = &config.redis_username {
        settings = settings.set_username(username);
    }
    if let Some(password) = &config.redis_password {
        settings = settings.set_password(password.expose());
    }
    // One small command per request, and concurrent requests share the
    // connection: with Nagle's algorithm on (the crate's default), a command
    // written while the previous one is unacknowledged waits for that ACK,
    // which the kernel may delay by up to 40 ms.
    let tcp = info.tcp_settings().clone().set_nodelay(true);
    info = info.set_redis_settings(settings).set_tcp_settings(tcp);
    let client = Client::open(info)?;
    // No retries inside a call: a request waits at most `redis_timeout`, and
    // the next call after a failure starts a fresh connection attempt.
    let manager_config = ConnectionManagerConfig::new()
        .set_number_of_retries(0)
        .set_connection_timeout(Some(config.redis_timeout))
        .set_response_timeout(Some(config.redis_timeout));
    ConnectionManager::new_lazy_with_config(client, manager_config)
}

impl RateLimiter {
    pub fn new(redis: ConnectionManager, config: &Config, metrics: Metrics) -> Self {
        let window_us = u64::try_from(config.rate_window.as_micros()).unwrap_or(u64::MAX);
        Self {
            inner: Arc::new(Inner {
                redis,
                script: Script::new(GCRA),
                limit: config.rate_limit,
                // Limits above one request per microsecond are not limits.
                interval_us: (window_us / config.rate_limit).max(1),
                fail_mode: config.fail_mode,
                timeout: config.redis_timeout,
                metrics,
                healthy: AtomicBool::new(true),
                started: Instant::now(),
                skip_until_ms: AtomicU64::new(0),
                leases: Leases::new(LeaseConfig {
                    max: config.rate_lease_max,
                    ttl: config.rate_lease_ttl,
                }),
            }),
        }
    }

    pub async fn check(&self, key: &KeyId) -> Decision {
        let inner = &self.inner;
        let Some(leases) = &inner.leases else {
            return self.call(key, 1, None).await;
        };
        let plan = leases.plan(key, std::time::Instant::now(), !inner.backing_off());
        match plan {
            Plan::Local(spent) => inner.leased(spent),
            Plan::Skip => inner.backend_failed(None),
            Plan::Wait(claim) => match claim.wait().await {
                Some(spent) => inner.leased(spent),
                None => self.call(key, 1, None).await,
            },
            Plan::Call { n, reservation } => self.call(key, n, reservation).await,
        }
    }

    /// Asks Redis for `n` tokens for `key`, and decides on the first.
    async fn call(&self, key: &KeyId, n: u64, reservation: Option<Reservation>) -> Decision {
        let inner = &self.inner;
        if inner.backing_off() {
            return inner.backend_failed(None);
        }
        let mut invocation = inner.script.key(format!("{KEY_PREFIX}{}", key.as_str()));
        invocation.arg(inner.limit).arg(inner.interval_us).arg(n);
        let invocation = &invocation;
        let result = inner
            .call(|mut conn| async move {
                invocation
                    .invoke_async::<(u64, u64, u64, u64)>(&mut conn)
                    .await
            })
            .await;
        match result {
            Ok((granted, remaining, reset_us, retry_us)) => {
                if !inner.healthy.swap(true, Ordering::Relaxed) {
                    tracing::info!("rate-limit backend recovered");
                }
                let reset = Duration::from_micros(reset_us);
                if let Some(leases) = &inner.leases {
                    let grant = Grant {
                        granted,
                        remaining,
                        reset,
                        at: std::time::Instant::now(),
                    };
                    leases.record(key, grant, reservation);
                }
                if granted >= 1 {
                    // The tokens reserved beyond this request's count as
                    // left: its client may still spend them.
                    Decision::Allowed(Quota {
                        limit: inner.limit,
                        remaining: remaining + (granted - 1),
                        reset,
                    })
                } else {
                    Decision::Limited {
                        quota: Quota {
                            limit: inner.limit,
                            remaining,
                            reset,
                        },
                        retry_after: Duration::from_micros(retry_us),
                    }
                }
            }
            Err(error) => {
                let backoff_ms = u64::try_from(BACKOFF.as_millis()).unwrap_or(u64::MAX);
                inner
                    .skip_until_ms
                    .store(inner.elapsed_ms() + backoff_ms, Ordering::Relaxed);
                // Only now: the claimants it releases find Redis skipped.
                drop(reservation);
                inner.backend_failed(Some(error))
            }
        }
    }

    /// Round trip to Redis for readiness.
    pub async fn ping(&self) -> Result<(), String> {
        let ping = &redis::cmd("PING");
        self.inner
            .call(|mut conn| async move { ping.query_async::<String>(&mut conn).await })
            .await
            .map(drop)
    }
}

impl Inner {
    /// Runs `command` within the Redis timeout. A command that fails on a
    /// refused or broken connection is sent once more: the manager reports
    /// the failure of its last connection attempt to the first caller after
    /// an outage and reconnects only then, so without the second try every
    /// recovery would cost one more failed request (and back-off period).
    async fn call<T, F, Fut>(&self, command: F) -> Result<T, String>
    where
        F: Fn(ConnectionManager) -> Fut,
        Fut: Future<Output = RedisResult<T>>,
    {
        let deadline = Instant::now() + self.timeout;
        let timed_out = || format!("no answer within {:?}", self.timeout);
        match timeout_at(deadline, command(self.redis.clone())).await {
            Ok(Ok(value)) => Ok(value),
            Ok(Err(error)) if error.is_io_error() || error.is_unrecoverable_error() => {
                match timeout_at(deadline, command(self.redis.clone())).await {
                    Ok(result) => result.map_err(|e| e.to_string()),
                    Err(_) => Err(timed_out()),
                }
            }
            Ok(Err(error)) => Err(error.to_string()),
            Err(_) => Err(timed_out()),
        }
    }

    fn elapsed_ms(&self) -> u64 {
        u64::try_from(self.started.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    /// Whether Redis is being skipped after a failure.
    fn backing_off(&self) -> bool {
        self.elapsed_ms() < self.skip_until_ms.load(Ordering::Relaxed)
    }

    /// The decision for a request admitted on a reserved token.
    fn leased(&self, spent: Spent) -> Decision {
        self.metrics.ratelimit_leased.inc();
        Decision::Allowed(Quota {
            limit: self.limit,
            remaining: spent.remaining,
            reset: spent.reset,
        })
    }

    /// The decision when Redis failed (`error`) or is being skipped (`None`).
    fn backend_failed(&self, error: Option<String>) -> Decision {
        self.metrics.ratelimit_backend_errors.inc();
        if let Some(error) = error
            && self.healthy.swap(false, Ordering::Relaxed)
        {
            tracing::warn!(%error, fail_mode = %self.fail_mode, "rate-limit backend failed");
        }
        match self.fail_mode {
            FailMode::Open => {
                self.metrics.ratelimit_bypassed.inc();
                Decision::Bypassed
            }
            FailMode::Closed => Decision::Unavailable,
        }
    }
}

/// Whole seconds, rounded up: a client told `0` would retry at once.
fn ceil_secs(d: Duration) -> u64 {
    d.as_micros()
        .div_ceil(1_000_000)
        .try_into()
        .unwrap_or(u64::MAX)
}

fn quota_headers(quota: &Quota) -> HeaderMap {
    let mut headers = HeaderMap::with_capacity(3);
    headers.insert(LIMIT_HEADER, HeaderValue::from(quota.limit));
    headers.insert(REMAINING_HEADER, HeaderValue::from(quota.remaining));
    headers.insert(RESET_HEADER, HeaderValue::from(ceil_secs(quota.reset)));
    headers
}

/// Applies the limit to an authenticated request (after [`crate::auth`]).
pub async fn enforce(
    State(limiter): State<RateLimiter>,
    request: Request,
    next: Next,
) -> Result<Response, ApiError> {
    let key = request
        .extensions()
        .get::<KeyId>()
        .cloned()
        .expect("rate limiting runs after authentication");
    match limiter.check(&key).await {
        Decision::Allowed(quota) => {
            let mut response = next.run(request).await;
            response.headers_mut().extend(quota_headers(&quota));
            Ok(response)
        }
        Decision::Bypassed => Ok(next.run(request).await),
        Decision::Limited { quota, retry_after } => {
            limiter.inner.metrics.ratelimit_rejected.inc();
            let retry = ceil_secs(retry_after).max(1);
            Err(
                ApiError::new(StatusCode::TOO_MANY_REQUESTS, "rate limit exceeded")
                    .with_headers(quota_headers(&quota))
                    .with_header(header::RETRY_AFTER, HeaderValue::from(retry)),
            )
        }
        Decision::Unavailable => Err(ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "rate limiting unavailable",
        )
        .with_header(header::RETRY_AFTER, HeaderValue::from(1u64))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rounds_seconds_up() {
        assert_eq!(ceil_secs(Duration::ZERO), 0);
        assert_eq!(ceil_secs(Duration::from_micros(1)), 1);
        assert_eq!(ceil_secs(Duration::from_secs(2)), 2);
        assert_eq!(ceil_secs(Duration::from_millis(2001)), 3);
    }

    #[test]
    fn headers_carry_the_quota() {
        let headers = quota_headers(&Quota {
            limit: 10,
            remaining: 3,
            reset: Duration::from_millis(1500),
        });
        assert_eq!(headers[LIMIT_HEADER], "10");
        assert_eq!(headers[REMAINING_HEADER], "3");
        assert_eq!(headers[RESET_HEADER], "2");
    }
}
