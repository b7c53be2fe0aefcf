//! Rate-limit tokens reserved ahead for busy keys: exact at the limit, shared
//! correctly between replicas, nothing lost for idle keys. Against a real
//! `redis-server`.

mod common;

use std::time::Duration;

use common::{Gateway, KEY, RedisServer, Settings, Upstream, get, metric, predict};
use gateway::{
    metrics::Metrics,
    ratelimit::{Decision, RateLimiter, redis_connection},
};
use http::StatusCode;

const BODY: &str = r#"{"entity_ids": ["u1"]}"#;

/// Sends `count` requests one after another with `KEY`; returns each status
/// and `X-RateLimit-Remaining`, and the gateway's leased-token counter.
async fn sequential(lease_max: u64, count: usize) -> (Vec<(StatusCode, Option<u64>)>, f64) {
    let redis = RedisServer::start();
    let upstream = Upstream::start(Duration::ZERO).await;
    // One token per 3 minutes comes back: none during the test.
    let gateway = Gateway::start(
        Settings::new(upstream.url(), redis.url())
            .set("GATEWAY_RATE_LIMIT", 20)
            .set("GATEWAY_RATE_WINDOW_SECONDS", 3600)
            .set("GATEWAY_RATE_LEASE_MAX", lease_max)
            // Long enough that a loaded machine still counts the key busy.
            .set("GATEWAY_RATE_LEASE_MS", 1000),
    )
    .await;
    let mut replies = Vec::new();
    for _ in 0..count {
        let reply = predict(&gateway, &[("x-api-key", KEY)], BODY).await;
        let remaining = reply
            .header("x-ratelimit-remaining")
            .map(|v| v.parse().unwrap());
        replies.push((reply.status, remaining));
    }
    assert_eq!(
        upstream.recorder.all().len(),
        replies.iter().filter(|(s, _)| *s == StatusCode::OK).count()
    );
    let text = get(&gateway.url("/metrics"), &[]).await.text();
    let leased = metric(&text, "gateway_ratelimit_leased_total").unwrap();
    (replies, leased)
}

/// What a limit of 20 must answer to 40 requests in a row, leasing or not.
fn exact_answers() -> Vec<(StatusCode, Option<u64>)> {
    let allowed = (0..20).rev().map(|r| (StatusCode::OK, Some(r)));
    let limited = (0..20).map(|_| (StatusCode::TOO_MANY_REQUESTS, Some(0)));
    allowed.chain(limited).collect()
}

#[tokio::test]
async fn a_busy_key_gets_exactly_its_quota_with_leasing() {
    let (replies, leased) = sequential(8, 40).await;
    assert_eq!(replies, exact_answers());
    assert!(leased > 0.0, "some requests spent reserved tokens");
}

#[tokio::test]
async fn a_lease_of_one_token_is_one_call_per_request() {
    let (replies, leased) = sequential(1, 40).await;
    assert_eq!(replies, exact_answers());
    assert_eq!(leased, 0.0);
}

#[tokio::test]
async fn an_idle_key_loses_nothing() {
    let redis = RedisServer::start();
    let upstream = Upstream::start(Duration::ZERO).await;
    let gateway = Gateway::start(
        Settings::new(upstream.url(), redis.url())
            .set("GATEWAY_RATE_LIMIT", 20)
            .set("GATEWAY_RATE_WINDOW_SECONDS", 3600)
            .set("GATEWAY_RATE_LEASE_MS", 100),
    )
    .await;
    for expected in [19, 18, 17] {
        let reply = predict(&gateway, &[("x-api-key", KEY)], BODY).await;
        assert_eq!(reply.status, StatusCode::OK);
        assert_eq!(
            reply.header("x-ratelimit-remaining"),
            Some(expected.to_string().as_str())
        );
        // Longer than the lease TTL: the key is idle again.
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    let text = get(&gateway.url("/metrics"), &[]).await.text();
    assert_eq!(metric(&text, "gateway_ratelimit_leased_total"), Some(0.0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replicas_sharing_redis_never_admit_more_than_the_limit() {
    const LIMIT: u64 = 50;
    const LEASE_MAX: u64 = 8;
    let redis = RedisServer::start();
    let (config, _dir) = common::config(
        Settings::new("http://127.0.0.1:9".to_owned(), redis.url())
            .set("GATEWAY_RATE_LIMIT", LIMIT)
            .set("GATEWAY_RATE_WINDOW_SECONDS", 3600)
            .set("GATEWAY_RATE_LEASE_MAX", LEASE_MAX)
            .set("GATEWAY_RATE_LEASE_MS", 1000)
            .set("GATEWAY_REDIS_TIMEOUT_MS", 2000)
            .set("GATEWAY_RATE_LIMIT_FAIL_MODE", "closed"),
    );
    let key = config.api_keys.verify(KEY).unwrap();
    let replicas: Vec<(RateLimiter, Metrics)> = (0..2)
        .map(|_| {
            let metrics = Metrics::new(config.fail_mode);
            let redis = redis_connection(&config).unwrap();
            (RateLimiter::new(redis, &config, metrics.clone()), metrics)
        })
        .collect();

    // Four concurrent clients per replica, 30 requests each: 240 in all.
    let mut tasks = Vec::new();
    for (limiter, _) in &replicas {
        for _ in 0..4 {
            let (limiter, key) = (limiter.clone(), key.clone());
            tasks.push(tokio::spawn(async move {
                let mut allowed = 0u64;
                for _ in 0..30 {
                    match limiter.check(&key).await {
                        Decision::Allowed(_) => allowed += 1,
                        Decision::Limited { .. } => {}
                        other => panic!("Redis is up: {other:?}"),
                    }
                }
                allowed
            }));
        }
    }
    let mut allowed = 0;
    for task in tasks {
        allowed += task.await.unwrap();
    }
    assert!(
        allowed <= LIMIT,
        "{allowed} admitted over a limit of {LIMIT}"
    );
    // Each replica holds at most LEASE_MAX - 1 reserved tokens unspent.
    let floor = LIMIT - 2 * (LEASE_MAX - 1);
    assert!(allowed >= floor, "{allowed} admitted, fewer than {floor}");
    let leased: u64 = replicas
        .iter()
        .map(|(_, metrics)| metrics.ratelimit_leased.get())
        .sum();
    assert!(leased > 0, "the replicas spent reserved tokens");
}
