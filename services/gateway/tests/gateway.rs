//! End-to-end tests: the gateway in-process against a real `redis-server` and
//! an in-process upstream, over real loopback sockets.

mod common;

use std::time::{Duration, Instant};

use common::{
    Gateway, KEY, OTHER_KEY, RedisServer, Settings, Upstream, bearer, free_port, get, metric,
    predict, send, send_bytes,
};
use http::{Method, StatusCode};
use redis::AsyncCommands;
use sha2::{Digest, Sha256};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const BODY: &str = r#"{"entity_ids": ["u1"]}"#;

struct Stack {
    redis: RedisServer,
    upstream: Upstream,
    gateway: Gateway,
}

async fn stack(configure: impl FnOnce(Settings) -> Settings) -> Stack {
    let redis = RedisServer::start();
    let upstream = Upstream::start(Duration::ZERO).await;
    let gateway = Gateway::start(configure(Settings::new(upstream.url(), redis.url()))).await;
    Stack {
        redis,
        upstream,
        gateway,
    }
}

async fn metrics_text(gateway: &Gateway) -> String {
    let reply = get(&gateway.url("/metrics"), &[]).await;
    assert_eq!(reply.status, StatusCode::OK);
    reply.text()
}

#[tokio::test]
async fn requests_without_a_valid_key_are_refused() {
    let s = stack(|c| c).await;

    let missing = predict(&s.gateway, &[], BODY).await;
    let body = missing.assert_error(StatusCode::UNAUTHORIZED);
    assert_eq!(body["error"], "missing API key");
    assert_eq!(missing.header("www-authenticate"), Some("Bearer"));

    for headers in [
        [("authorization", "Bearer not-a-key")],
        [("x-api-key", "not-a-key")],
        [("authorization", "Basic dGVzdA==")],
    ] {
        let reply = predict(&s.gateway, &headers, BODY).await;
        reply.assert_error(StatusCode::UNAUTHORIZED);
    }
    // A key must match exactly: no prefixes.
    let prefix = &KEY[..KEY.len() - 1];
    let reply = predict(&s.gateway, &[("x-api-key", prefix)], BODY).await;
    reply.assert_error(StatusCode::UNAUTHORIZED);

    let models = get(&s.gateway.url("/v1/models"), &[]).await;
    models.assert_error(StatusCode::UNAUTHORIZED);
    assert!(
        s.upstream.recorder.all().is_empty(),
        "nothing unauthenticated was forwarded"
    );
}

#[tokio::test]
async fn both_header_forms_authenticate_and_keys_stay_in_the_gateway() {
    let s = stack(|c| c).await;

    let bearer = bearer();
    let with_bearer = predict(&s.gateway, &[("authorization", &bearer)], BODY).await;
    assert_eq!(with_bearer.status, StatusCode::OK, "{}", with_bearer.text());
    assert_eq!(with_bearer.json()["echo"]["entity_ids"][0], "u1");

    let with_header = predict(&s.gateway, &[("x-api-key", OTHER_KEY)], BODY).await;
    assert_eq!(with_header.status, StatusCode::OK);

    let models = get(&s.gateway.url("/v1/models"), &[("x-api-key", KEY)]).await;
    assert_eq!(models.status, StatusCode::OK);
    assert_eq!(models.json()["models"][0]["name"], "churn");

    let seen = s.upstream.recorder.all();
    assert_eq!(seen.len(), 3);
    for request in seen {
        assert!(request.headers.get("authorization").is_none());
        assert!(request.headers.get("x-api-key").is_none());
    }
}

#[tokio::test]
async fn a_burst_over_the_limit_gets_429_with_headers() {
    let s = stack(|c| {
        c.set("GATEWAY_RATE_LIMIT", 5)
            .set("GATEWAY_RATE_WINDOW_SECONDS", 60)
    })
    .await;
    let bearer = bearer();

    for expected_remaining in (0..5).rev() {
        let reply = predict(&s.gateway, &[("authorization", &bearer)], BODY).await;
        assert_eq!(reply.status, StatusCode::OK);
        assert_eq!(reply.header("x-ratelimit-limit"), Some("5"));
        assert_eq!(
            reply.header("x-ratelimit-remaining"),
            Some(expected_remaining.to_string().as_str())
        );
        let reset: u64 = reply.header("x-ratelimit-reset").unwrap().parse().unwrap();
        assert!((1..=60).contains(&reset), "reset {reset}");
    }

    let limited = predict(&s.gateway, &[("authorization", &bearer)], BODY).await;
    let body = limited.assert_error(StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(body["error"], "rate limit exceeded");
    assert_eq!(limited.header("x-ratelimit-limit"), Some("5"));
    assert_eq!(limited.header("x-ratelimit-remaining"), Some("0"));
    // One token comes back every 60 s / 5 = 12 s.
    let retry: u64 = limited.header("retry-after").unwrap().parse().unwrap();
    assert!((11..=12).contains(&retry), "retry-after {retry}");
    let reset: u64 = limited
        .header("x-ratelimit-reset")
        .unwrap()
        .parse()
        .unwrap();
    assert!((59..=60).contains(&reset), "reset {reset}");
    assert_eq!(
        s.upstream.recorder.all().len(),
        5,
        "the 6th request was not forwarded"
    );

    // Buckets are per key.
    let other = predict(&s.gateway, &[("x-api-key", OTHER_KEY)], BODY).await;
    assert_eq!(other.status, StatusCode::OK);
    assert_eq!(other.header("x-ratelimit-remaining"), Some("4"));

    // Redis holds digests of the keys, never the keys.
    let mut redis = s.redis.connection().await;
    let mut stored: Vec<String> = redis.keys("gateway:ratelimit:*").await.unwrap();
    stored.sort();
    let mut expected: Vec<String> = [KEY, OTHER_KEY]
        .iter()
        .map(|k| format!("gateway:ratelimit:{}", hex::encode(Sha256::digest(k))))
        .collect();
    expected.sort();
    assert_eq!(stored, expected);
    let ttl: i64 = redis.pttl(&expected[0]).await.unwrap();
    assert!(
        ttl > 0 && ttl <= 60_000,
        "bucket expires with the window: {ttl}"
    );

    let text = metrics_text(&s.gateway).await;
    assert_eq!(metric(&text, "gateway_ratelimit_rejected_total"), Some(1.0));
    assert_eq!(
        metric(
            &text,
            r#"gateway_http_requests_total{method="POST",route="/v1/predict",status="429"}"#
        ),
        Some(1.0)
    );
}

#[tokio::test]
async fn tokens_come_back_evenly_over_the_window() {
    // 4 per 4 seconds: a burst of 4, then one token a second. A second
    // wide refill step leaves room for a loaded machine's scheduling delays.
    let s = stack(|c| {
        c.set("GATEWAY_RATE_LIMIT", 4)
            .set("GATEWAY_RATE_WINDOW_SECONDS", 4)
    })
    .await;
    let key = [("x-api-key", KEY)];
    for _ in 0..4 {
        assert_eq!(predict(&s.gateway, &key, BODY).await.status, StatusCode::OK);
    }
    let limited = predict(&s.gateway, &key, BODY).await;
    limited.assert_error(StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(
        limited.header("retry-after"),
        Some("1"),
        "at least a second, rounded up"
    );

    tokio::time::sleep(Duration::from_millis(1100)).await;
    let refilled = predict(&s.gateway, &key, BODY).await;
    assert_eq!(refilled.status, StatusCode::OK);
    assert_eq!(refilled.header("x-ratelimit-remaining"), Some("0"));
    let again = predict(&s.gateway, &key, BODY).await;
    again.assert_error(StatusCode::TOO_MANY_REQUESTS);
}

#[tokio::test]
async fn fail_open_lets_requests_through_when_redis_is_down() {
    let upstream = Upstream::start(Duration::ZERO).await;
    let closed_port = format!("redis://127.0.0.1:{}/1", free_port());
    let gateway = Gateway::start(
        Settings::new(upstream.url(), closed_port).set("GATEWAY_RATE_LIMIT_FAIL_MODE", "open"),
    )
    .await;

    for _ in 0..3 {
        let started = Instant::now();
        let reply = predict(&gateway, &[("x-api-key", KEY)], BODY).await;
        assert_eq!(reply.status, StatusCode::OK, "{}", reply.text());
        assert!(started.elapsed() < Duration::from_secs(1));
        assert!(
            reply.header("x-ratelimit-limit").is_none(),
            "no quota is known"
        );
    }

    let text = metrics_text(&gateway).await;
    assert_eq!(
        metric(&text, "gateway_ratelimit_backend_errors_total"),
        Some(3.0)
    );
    assert_eq!(metric(&text, "gateway_ratelimit_bypassed_total"), Some(3.0));
    assert_eq!(
        metric(&text, r#"gateway_ratelimit_fail_mode{mode="open"}"#),
        Some(1.0)
    );
    assert_eq!(
        metric(&text, r#"gateway_ratelimit_fail_mode{mode="closed"}"#),
        Some(0.0)
    );

    // Redis is reported, but a fail-open gateway stays in service.
    let ready = get(&gateway.url("/readyz"), &[]).await;
    assert_eq!(ready.status, StatusCode::OK, "{}", ready.text());
    assert_ne!(ready.json()["checks"]["redis"], "ok");
}

#[tokio::test]
async fn fail_closed_refuses_requests_when_redis_is_down() {
    let upstream = Upstream::start(Duration::ZERO).await;
    let closed_port = format!("redis://127.0.0.1:{}/1", free_port());
    let gateway = Gateway::start(
        Settings::new(upstream.url(), closed_port).set("GATEWAY_RATE_LIMIT_FAIL_MODE", "closed"),
    )
    .await;

    let started = Instant::now();
    let reply = predict(&gateway, &[("x-api-key", KEY)], BODY).await;
    reply.assert_error(StatusCode::SERVICE_UNAVAILABLE);
    assert!(started.elapsed() < Duration::from_secs(1));
    assert_eq!(reply.header("retry-after"), Some("1"));
    assert!(upstream.recorder.all().is_empty());

    let text = metrics_text(&gateway).await;
    assert_eq!(
        metric(&text, "gateway_ratelimit_backend_errors_total"),
        Some(1.0)
    );
    assert_eq!(
        metric(&text, r#"gateway_ratelimit_fail_mode{mode="closed"}"#),
        Some(1.0)
    );

    let ready = get(&gateway.url("/readyz"), &[]).await;
    assert_eq!(ready.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(ready.json()["checks"]["upstream"], "ok");
}

#[tokio::test]
async fn rate_limiting_resumes_when_redis_comes_back() {
    let upstream = Upstream::start(Duration::ZERO).await;
    let port = free_port();
    let gateway = Gateway::start(
        Settings::new(upstream.url(), format!("redis://127.0.0.1:{port}/1"))
            .set("GATEWAY_RATE_LIMIT_FAIL_MODE", "closed"),
    )
    .await;
    let down = predict(&gateway, &[("x-api-key", KEY)], BODY).await;
    down.assert_error(StatusCode::SERVICE_UNAVAILABLE);

    let _redis = RedisServer::start_on(port);
    // Past the back-off after the failure, the next check reconnects.
    tokio::time::sleep(Duration::from_millis(600)).await;
    let up = predict(&gateway, &[("x-api-key", KEY)], BODY).await;
    assert_eq!(up.status, StatusCode::OK, "{}", up.text());
    assert_eq!(up.header("x-ratelimit-remaining"), Some("999"));
}

#[tokio::test]
async fn a_wrong_redis_password_counts_as_backend_failure() {
    let redis = RedisServer::start();
    let upstream = Upstream::start(Duration::ZERO).await;
    let dir = tempfile::tempdir().unwrap();
    let wrong = dir.path().join("pw");
    std::fs::write(&wrong, "wrong\n").unwrap();
    let gateway = Gateway::start(
        Settings::new(upstream.url(), redis.url())
            .set("GATEWAY_RATE_LIMIT_FAIL_MODE", "closed")
            .set("GATEWAY_REDIS_PASSWORD_FILE", wrong.to_str().unwrap()),
    )
    .await;
    let reply = predict(&gateway, &[("x-api-key", KEY)], BODY).await;
    reply.assert_error(StatusCode::SERVICE_UNAVAILABLE);
}

#[tokio::test]
async fn a_slow_upstream_gets_504_at_the_timeout() {
    let redis = RedisServer::start();
    let slow = Upstream::start(Duration::from_secs(5)).await;
    let gateway = Gateway::start(
        Settings::new(slow.url(), redis.url()).set("GATEWAY_UPSTREAM_TIMEOUT_MS", 300),
    )
    .await;

    for (method, path, body) in [
        (Method::POST, "/v1/predict", BODY),
        (Method::GET, "/v1/models", ""),
    ] {
        let started = Instant::now();
        let headers = [("x-api-key", KEY), ("content-type", "application/json")];
        let reply = send(method, &gateway.url(path), &headers, body).await;
        let elapsed = started.elapsed();
        let body = reply.assert_error(StatusCode::GATEWAY_TIMEOUT);
        assert_eq!(body["error"], "upstream timed out");
        assert!(elapsed >= Duration::from_millis(290), "{elapsed:?}");
        assert!(elapsed < Duration::from_millis(1500), "{elapsed:?}");
    }
    let text = metrics_text(&gateway).await;
    assert_eq!(
        metric(&text, r#"gateway_upstream_errors_total{kind="timeout"}"#),
        Some(2.0)
    );
}

#[tokio::test]
async fn a_refused_connection_gets_502_fast_and_only_get_is_retried() {
    let redis = RedisServer::start();
    let nowhere = format!("http://127.0.0.1:{}", free_port());
    let gateway = Gateway::start(Settings::new(nowhere, redis.url())).await;

    let started = Instant::now();
    let reply = predict(&gateway, &[("x-api-key", KEY)], BODY).await;
    let body = reply.assert_error(StatusCode::BAD_GATEWAY);
    assert_eq!(body["error"], "upstream unreachable");
    assert!(started.elapsed() < Duration::from_millis(500));

    let started = Instant::now();
    let reply = get(&gateway.url("/v1/models"), &[("x-api-key", KEY)]).await;
    reply.assert_error(StatusCode::BAD_GATEWAY);
    assert!(started.elapsed() < Duration::from_secs(1));

    let text = metrics_text(&gateway).await;
    // POST: one attempt. GET: three attempts, two of them retries.
    assert_eq!(metric(&text, "gateway_upstream_retries_total"), Some(2.0));
    assert_eq!(
        metric(
            &text,
            r#"gateway_upstream_errors_total{kind="connect_refused"}"#
        ),
        Some(2.0)
    );

    let ready = get(&gateway.url("/readyz"), &[]).await;
    assert_eq!(ready.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(ready.json()["checks"]["redis"], "ok");
}

#[tokio::test]
async fn oversized_bodies_get_413_with_or_without_a_length() {
    let s = stack(|c| c.set("GATEWAY_MAX_BODY_BYTES", 64)).await;
    let big = format!(r#"{{"pad": "{}"}}"#, "x".repeat(100));

    let reply = predict(&s.gateway, &[("x-api-key", KEY)], &big).await;
    let body = reply.assert_error(StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(body["error"], "request body exceeds 64 bytes");

    // Chunked, so the gateway only finds out while reading.
    let mut stream = tokio::net::TcpStream::connect(s.gateway.addr)
        .await
        .unwrap();
    let request = format!(
        "POST /v1/predict HTTP/1.1\r\nhost: gw\r\nx-api-key: {KEY}\r\n\
         content-type: application/json\r\ntransfer-encoding: chunked\r\n\
         connection: close\r\n\r\n{:x}\r\n{big}\r\n0\r\n\r\n",
        big.len()
    );
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut raw = String::new();
    stream.read_to_string(&mut raw).await.unwrap();
    assert!(raw.starts_with("HTTP/1.1 413"), "{raw}");
    assert!(
        raw.contains(r#""error":"request body exceeds 64 bytes""#),
        "{raw}"
    );

    let fits = predict(&s.gateway, &[("x-api-key", KEY)], BODY).await;
    assert_eq!(fits.status, StatusCode::OK);
    assert_eq!(s.upstream.recorder.all().len(), 1);
}

/// Reads one HTTP/1.1 response with a `content-length` from a kept-alive
/// connection: its status and its body.
async fn read_response(stream: &mut tokio::net::TcpStream) -> (u16, String) {
    let mut raw = Vec::new();
    let mut byte = [0u8; 1];
    while !raw.ends_with(b"\r\n\r\n") {
        let n = stream.read(&mut byte).await.unwrap();
        assert_eq!(
            n,
            1,
            "connection closed after {:?}",
            String::from_utf8_lossy(&raw)
        );
        raw.push(byte[0]);
    }
    let head = String::from_utf8(raw).unwrap();
    let status = head[9..12].parse().unwrap();
    let length: usize = head
        .lines()
        .find_map(|l| {
            l.to_ascii_lowercase()
                .strip_prefix("content-length: ")
                .map(str::to_owned)
        })
        .expect("content-length")
        .trim()
        .parse()
        .unwrap();
    let mut body = vec![0u8; length];
    stream.read_exact(&mut body).await.unwrap();
    (status, String::from_utf8(body).unwrap())
}

#[tokio::test]
async fn refused_requests_leave_the_connection_usable() {
    // A proxy in front (an ingress controller) keeps connections alive and
    // may write a request's body after its head: a 401 or a 429 must not
    // close the connection under the next request.
    let s = stack(|c| {
        c.set("GATEWAY_RATE_LIMIT", 1)
            .set("GATEWAY_RATE_WINDOW_SECONDS", 60)
    })
    .await;
    let mut stream = tokio::net::TcpStream::connect(s.gateway.addr)
        .await
        .unwrap();
    let mut exchange = async |key: &str| {
        let head = format!(
            "POST /v1/predict HTTP/1.1\r\nhost: gw\r\nx-api-key: {key}\r\n\
             content-type: application/json\r\ncontent-length: {}\r\n\r\n",
            BODY.len()
        );
        stream.write_all(head.as_bytes()).await.unwrap();
        stream.flush().await.unwrap();
        tokio::time::sleep(Duration::from_millis(20)).await;
        stream.write_all(BODY.as_bytes()).await.unwrap();
        read_response(&mut stream).await.0
    };
    assert_eq!(exchange("wrong").await, 401);
    assert_eq!(exchange(KEY).await, 200);
    assert_eq!(exchange(KEY).await, 429);
    assert_eq!(exchange("wrong").await, 401);
    assert_eq!(s.upstream.recorder.all().len(), 1);
}

#[tokio::test]
async fn malformed_json_is_rejected_before_forwarding() {
    let s = stack(|c| c).await;
    for bad in ["", "{", "not json", r#"{"a": 1} trailing"#] {
        let reply = predict(&s.gateway, &[("x-api-key", KEY)], bad).await;
        let body = reply.assert_error(StatusCode::BAD_REQUEST);
        assert!(
            body["error"]
                .as_str()
                .unwrap()
                .starts_with("request body is not valid JSON"),
            "{body}"
        );
    }
    assert!(s.upstream.recorder.all().is_empty());
}

#[tokio::test]
async fn binary_bodies_reach_the_upstream_byte_for_byte() {
    let s = stack(|c| c).await;
    // The inference service's layout: 2 rows by 3 columns as little-endian
    // uint32, then float32 values; neither UTF-8 nor JSON, and holding the
    // bytes of a NaN and of an infinity, which only the service may judge.
    let mut body: Vec<u8> = [2u32, 3].iter().flat_map(|v| v.to_le_bytes()).collect();
    for value in [1.5f32, f32::NAN, -0.0, f32::INFINITY, 3.4e38, 7.0] {
        body.extend_from_slice(&value.to_le_bytes());
    }
    body.extend_from_slice(&[0xff, 0xfe]);
    let content_type = "application/x-dataplatform-f32; charset=binary";
    let headers = [
        ("x-api-key", KEY),
        ("content-type", content_type),
        ("accept", "application/x-dataplatform-f32"),
        ("x-feature-names", "a,b,c"),
    ];
    let reply = send_bytes(Method::POST, &s.gateway.url("/v1/predict"), &headers, &body).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text());

    let seen = s.upstream.recorder.all();
    assert_eq!(seen.len(), 1);
    assert_eq!(seen[0].body.as_ref(), body.as_slice());
    assert_eq!(seen[0].headers["content-type"], content_type);
    assert_eq!(seen[0].headers["accept"], "application/x-dataplatform-f32");
    assert_eq!(seen[0].headers["x-feature-names"], "a,b,c");

    // Other types are still held to JSON, whatever their bytes.
    let octets = [
        ("x-api-key", KEY),
        ("content-type", "application/octet-stream"),
    ];
    let refused = send_bytes(Method::POST, &s.gateway.url("/v1/predict"), &octets, &body).await;
    refused.assert_error(StatusCode::BAD_REQUEST);
    assert_eq!(s.upstream.recorder.all().len(), 1);
}

#[tokio::test]
async fn request_ids_are_kept_or_generated_and_reach_the_upstream() {
    let s = stack(|c| c).await;

    let given = predict(
        &s.gateway,
        &[("x-api-key", KEY), ("x-request-id", "req-42")],
        BODY,
    )
    .await;
    assert_eq!(given.header("x-request-id"), Some("req-42"));

    let generated = predict(&s.gateway, &[("x-api-key", KEY)], BODY).await;
    let generated_id = generated.header("x-request-id").unwrap().to_owned();
    assert_eq!(generated_id.len(), 36, "a UUID: {generated_id}");

    let unsafe_id = predict(
        &s.gateway,
        &[("x-api-key", KEY), ("x-request-id", "has spaces; and more")],
        BODY,
    )
    .await;
    let replaced = unsafe_id.header("x-request-id").unwrap().to_owned();
    assert_ne!(replaced, "has spaces; and more");

    let upstream_ids: Vec<String> = s
        .upstream
        .recorder
        .all()
        .iter()
        .map(|seen| seen.headers["x-request-id"].to_str().unwrap().to_owned())
        .collect();
    assert_eq!(upstream_ids, ["req-42".to_owned(), generated_id, replaced]);

    // Errors carry it too, in header and body.
    let error = predict(&s.gateway, &[("x-request-id", "req-err")], BODY).await;
    let body = error.assert_error(StatusCode::UNAUTHORIZED);
    assert_eq!(body["request_id"], "req-err");
}

#[tokio::test]
async fn unknown_routes_and_wrong_methods_get_json_errors() {
    let s = stack(|c| c).await;

    let missing = get(&s.gateway.url("/v2/nothing"), &[("x-api-key", KEY)]).await;
    let body = missing.assert_error(StatusCode::NOT_FOUND);
    assert_eq!(body["error"], "not found");

    let wrong = get(&s.gateway.url("/v1/predict"), &[("x-api-key", KEY)]).await;
    let body = wrong.assert_error(StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(body["error"], "method not allowed");

    let wrong = send(Method::DELETE, &s.gateway.url("/healthz"), &[], "").await;
    wrong.assert_error(StatusCode::METHOD_NOT_ALLOWED);
    assert!(s.upstream.recorder.all().is_empty());
}

#[tokio::test]
async fn health_readiness_and_metrics() {
    // Readiness must not depend on how busy the test machine is.
    let s = stack(|c| c.set("GATEWAY_REDIS_TIMEOUT_MS", 2000)).await;

    let health = get(&s.gateway.url("/healthz"), &[]).await;
    assert_eq!(health.status, StatusCode::OK);
    assert_eq!(health.json()["status"], "ok");

    let ready = get(&s.gateway.url("/readyz"), &[]).await;
    assert_eq!(ready.status, StatusCode::OK, "{}", ready.text());
    assert_eq!(ready.json()["checks"]["redis"], "ok");
    assert_eq!(ready.json()["checks"]["upstream"], "ok");

    predict(&s.gateway, &[("x-api-key", KEY)], BODY).await;
    predict(&s.gateway, &[("x-api-key", KEY)], BODY).await;
    get(&s.gateway.url("/nope"), &[]).await;

    let reply = get(&s.gateway.url("/metrics"), &[]).await;
    assert!(
        reply
            .header("content-type")
            .unwrap()
            .starts_with("text/plain")
    );
    let text = reply.text();
    assert_eq!(
        metric(
            &text,
            r#"gateway_http_requests_total{method="POST",route="/v1/predict",status="200"}"#
        ),
        Some(2.0)
    );
    assert_eq!(
        metric(
            &text,
            r#"gateway_http_requests_total{method="GET",route="unmatched",status="404"}"#
        ),
        Some(1.0)
    );
    assert_eq!(
        metric(
            &text,
            r#"gateway_http_request_duration_seconds_count{route="/v1/predict"}"#
        ),
        Some(2.0)
    );
    assert!(text.contains(
        r#"gateway_http_request_duration_seconds_bucket{route="/v1/predict",le="0.005"}"#
    ));
    assert_eq!(
        metric(&text, r#"gateway_upstream_errors_total{kind="timeout"}"#),
        Some(0.0)
    );
    assert_eq!(
        metric(&text, "gateway_ratelimit_backend_errors_total"),
        Some(0.0)
    );
    assert!(!text.contains(KEY), "no key in metrics");
}

#[tokio::test]
async fn shutdown_finishes_requests_in_flight() {
    let redis = RedisServer::start();
    let upstream = Upstream::start(Duration::from_millis(300)).await;
    let mut gateway = Gateway::start(Settings::new(upstream.url(), redis.url())).await;

    let url = gateway.url("/v1/predict");
    let in_flight = tokio::spawn(async move {
        send(
            Method::POST,
            &url,
            &[("x-api-key", KEY), ("content-type", "application/json")],
            BODY,
        )
        .await
    });
    // Shut down once the request has reached the upstream, so it is in flight
    // however slowly a loaded machine got it there.
    let waited = tokio::time::timeout(Duration::from_secs(10), async {
        while upstream.recorder.all().is_empty() {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
    .await;
    assert!(waited.is_ok(), "the request never reached the upstream");
    let server = gateway.shut_down();

    let reply = in_flight.await.unwrap();
    assert_eq!(reply.status, StatusCode::OK);
    tokio::time::timeout(Duration::from_secs(5), server)
        .await
        .expect("server stopped after draining")
        .unwrap()
        .unwrap();
    assert!(
        tokio::net::TcpStream::connect(gateway.addr).await.is_err(),
        "listener closed"
    );
}

#[tokio::test]
async fn plain_http_through_a_tls_proxy_is_redirected_to_https() {
    let s = stack(|c| c.set("GATEWAY_HTTPS_REDIRECT", "true")).await;
    let bearer = bearer();
    let auth = ("authorization", bearer.as_str());
    let json = ("content-type", "application/json");
    let plain = [
        auth,
        json,
        ("x-forwarded-proto", "http"),
        ("host", "api.example.test"),
    ];
    let url = s.gateway.url("/v1/predict?explain=1");
    let reply = send(Method::POST, &url, &plain, BODY).await;
    assert_eq!(reply.status, StatusCode::PERMANENT_REDIRECT);
    assert_eq!(
        reply.header("location"),
        Some("https://api.example.test/v1/predict?explain=1")
    );
    assert!(
        s.upstream.recorder.all().is_empty(),
        "a redirect reaches no upstream"
    );

    // Forwarded over TLS, or sent from inside the cluster with no proxy: served.
    let secure = [auth, json, ("x-forwarded-proto", "https")];
    assert_eq!(
        send(Method::POST, &url, &secure, BODY).await.status,
        StatusCode::OK
    );
    assert_eq!(
        predict(&s.gateway, &[auth], BODY).await.status,
        StatusCode::OK
    );
    assert_eq!(
        get(&s.gateway.url("/healthz"), &[]).await.status,
        StatusCode::OK
    );

    // A Host that is no authority gets a 400 with a reason, not a redirect to it.
    let bad = [auth, json, ("x-forwarded-proto", "http"), ("host", "a b")];
    let reply = send(Method::POST, &url, &bad, BODY).await;
    let body = reply.assert_error(StatusCode::BAD_REQUEST);
    assert!(body["error"].as_str().unwrap().contains("Host"));
}

#[tokio::test]
async fn without_the_setting_forwarded_plain_http_is_served() {
    let s = stack(|c| c).await;
    let bearer = bearer();
    let headers = [
        ("authorization", bearer.as_str()),
        ("x-forwarded-proto", "http"),
    ];
    let reply = predict(&s.gateway, &headers, BODY).await;
    assert_eq!(reply.status, StatusCode::OK);
}
