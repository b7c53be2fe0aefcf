//! Test harness: a real `redis-server` per test, an in-process upstream that
//! records what reached it, and the gateway itself on a loopback port.

#![allow(dead_code)]

use std::{
    collections::HashMap,
    net::{SocketAddr, TcpListener as StdTcpListener, TcpStream as StdTcpStream},
    path::Path,
    process::{Child, Command, Stdio},
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use axum::{
    Json, Router,
    body::Bytes,
    extract::State,
    http::{HeaderMap, StatusCode},
    routing::{self, post},
};
use gateway::{AppState, config::Config};
use http::{Method, Request};
use http_body_util::{BodyExt, Full};
use hyper_util::{
    client::legacy::{Client, connect::HttpConnector},
    rt::TokioExecutor,
};
use serde_json::{Value, json};
use tokio::{net::TcpListener, sync::oneshot, task::JoinHandle};

pub const KEY: &str = "test-key-0123456789abcdef";
pub const OTHER_KEY: &str = "other-key-fedcba9876543210";
pub const REDIS_PASSWORD: &str = "redis-test-password";

/// A throwaway `redis-server` on a free loopback port, killed on drop.
pub struct RedisServer {
    child: Child,
    pub port: u16,
    _dir: tempfile::TempDir,
}

impl RedisServer {
    pub fn start() -> Self {
        Self::start_on(free_port())
    }

    pub fn start_on(port: u16) -> Self {
        let binary = which("redis-server").unwrap_or_else(|| {
            panic!(
                "redis-server not found on PATH: the gateway tests need a real Redis \
                 (Debian: apt-get install -y redis-server)"
            )
        });
        let dir = tempfile::tempdir().expect("temp dir for redis");
        let child = Command::new(binary)
            .args(["--port", &port.to_string()])
            .args(["--bind", "127.0.0.1"])
            .args(["--save", ""])
            .args(["--appendonly", "no"])
            .args(["--requirepass", REDIS_PASSWORD])
            .arg("--dir")
            .arg(dir.path())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start redis-server");
        let mut server = Self {
            child,
            port,
            _dir: dir,
        };
        server.wait_until_listening();
        server
    }

    fn wait_until_listening(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(10);
        let addr = SocketAddr::from(([127, 0, 0, 1], self.port));
        while StdTcpStream::connect_timeout(&addr, Duration::from_millis(100)).is_err() {
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!("redis-server exited early with {status}");
            }
            assert!(
                Instant::now() < deadline,
                "redis-server did not listen on {addr}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/1", self.port)
    }

    pub async fn connection(&self) -> redis::aio::MultiplexedConnection {
        let client = redis::Client::open(format!(
            "redis://:{REDIS_PASSWORD}@127.0.0.1:{}/1",
            self.port
        ))
        .unwrap();
        client.get_multiplexed_async_connection().await.unwrap()
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn which(name: &str) -> Option<std::path::PathBuf> {
    std::env::var_os("PATH")?
        .to_str()?
        .split(':')
        .map(|dir| Path::new(dir).join(name))
        .find(|path| path.is_file())
}

/// A port nothing listens on (bound, then released).
pub fn free_port() -> u16 {
    StdTcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port")
}

/// What the upstream saw of one request.
#[derive(Clone, Debug)]
pub struct Seen {
    pub path: String,
    pub headers: HeaderMap,
    pub body: Bytes,
}

#[derive(Clone, Default)]
pub struct Recorder(Arc<Mutex<Vec<Seen>>>);

impl Recorder {
    pub fn all(&self) -> Vec<Seen> {
        self.0.lock().unwrap().clone()
    }

    fn push(&self, seen: Seen) {
        self.0.lock().unwrap().push(seen);
    }
}

#[derive(Clone)]
struct UpstreamState {
    recorder: Recorder,
    delay: Duration,
}

async fn upstream_predict(
    State(state): State<UpstreamState>,
    headers: HeaderMap,
    body: Bytes,
) -> Json<Value> {
    state.recorder.push(Seen {
        path: "/v1/predict".into(),
        headers,
        body: body.clone(),
    });
    tokio::time::sleep(state.delay).await;
    let input: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    Json(json!({"scores": [0.25], "echo": input}))
}

async fn upstream_models(State(state): State<UpstreamState>, headers: HeaderMap) -> Json<Value> {
    state.recorder.push(Seen {
        path: "/v1/models".into(),
        headers,
        body: Bytes::new(),
    });
    tokio::time::sleep(state.delay).await;
    Json(json!({"models": [{"name": "churn", "version": "20250101T000000Z"}]}))
}

/// An inference stand-in answering after `delay`.
pub struct Upstream {
    pub addr: SocketAddr,
    pub recorder: Recorder,
    task: JoinHandle<()>,
}

impl Upstream {
    pub async fn start(delay: Duration) -> Self {
        let recorder = Recorder::default();
        let app = Router::new()
            .route("/v1/predict", post(upstream_predict))
            .route("/v1/models", routing::get(upstream_models))
            .route("/healthz", routing::get(|| async { "ok" }))
            .with_state(UpstreamState {
                recorder: recorder.clone(),
                delay,
            });
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let task = tokio::spawn(async move {
            axum::serve(listener, app).await.unwrap();
        });
        Self {
            addr,
            recorder,
            task,
        }
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }
}

impl Drop for Upstream {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// The gateway under test, stopped on drop.
pub struct Gateway {
    pub addr: SocketAddr,
    shutdown: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<std::io::Result<()>>>,
    _dir: tempfile::TempDir,
}

pub struct Settings {
    pub upstream_url: String,
    pub redis_url: String,
    pub vars: Vec<(&'static str, String)>,
}

impl Settings {
    pub fn new(upstream_url: String, redis_url: String) -> Self {
        Self {
            upstream_url,
            redis_url,
            vars: Vec::new(),
        }
    }

    pub fn set(mut self, var: &'static str, value: impl ToString) -> Self {
        self.vars.push((var, value.to_string()));
        self
    }
}

/// The gateway's configuration for `settings`, with both test keys and the
/// Redis password in files of the returned directory.
pub fn config(settings: Settings) -> (Config, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let keys = dir.path().join("api-keys");
    std::fs::write(&keys, format!("{KEY}\n{OTHER_KEY}\n")).unwrap();
    let password = dir.path().join("redis-password");
    std::fs::write(&password, format!("{REDIS_PASSWORD}\n")).unwrap();

    let mut vars: HashMap<&str, String> = HashMap::from([
        ("GATEWAY_LISTEN", "127.0.0.1:0".to_owned()),
        ("GATEWAY_UPSTREAM_URL", settings.upstream_url),
        ("GATEWAY_REDIS_URL", settings.redis_url),
        ("GATEWAY_REDIS_PASSWORD_FILE", path_string(&password)),
        ("GATEWAY_API_KEYS_FILE", path_string(&keys)),
        ("GATEWAY_RATE_LIMIT", "1000".to_owned()),
    ]);
    vars.extend(settings.vars);
    let config = Config::from_lookup(|name| vars.get(name).cloned()).expect("valid config");
    (config, dir)
}

impl Gateway {
    pub async fn start(settings: Settings) -> Self {
        let (config, dir) = config(settings);
        let state = AppState::new(&config).expect("gateway state");
        let listener = TcpListener::bind(config.listen).await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (tx, rx) = oneshot::channel::<()>();
        let task = tokio::spawn(gateway::serve(listener, state, async {
            let _ = rx.await;
        }));
        Self {
            addr,
            shutdown: Some(tx),
            task: Some(task),
            _dir: dir,
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// Signals shutdown and returns the server task, which ends once the
    /// requests in flight are done.
    pub fn shut_down(&mut self) -> JoinHandle<std::io::Result<()>> {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        self.task.take().expect("gateway still running")
    }
}

impl Drop for Gateway {
    fn drop(&mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }
}

fn path_string(path: &Path) -> String {
    path.to_str().expect("utf-8 temp path").to_owned()
}

pub struct Reply {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl Reply {
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {:?}", String::from_utf8_lossy(&self.body)))
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// Asserts the gateway's error shape and that it carries the response's
    /// request id.
    pub fn assert_error(&self, status: StatusCode) -> Value {
        assert_eq!(self.status, status, "body: {}", self.text());
        let body = self.json();
        assert!(body["error"].is_string(), "{body}");
        let id = self.header("x-request-id").expect("x-request-id header");
        assert_eq!(body["request_id"], id, "{body}");
        body
    }
}

pub async fn send(method: Method, url: &str, headers: &[(&str, &str)], body: &str) -> Reply {
    send_bytes(method, url, headers, body.as_bytes()).await
}

pub async fn send_bytes(method: Method, url: &str, headers: &[(&str, &str)], body: &[u8]) -> Reply {
    let client: Client<HttpConnector, Full<Bytes>> =
        Client::builder(TokioExecutor::new()).build_http();
    let mut request = Request::builder().method(method).uri(url);
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    let request = request
        .body(Full::new(Bytes::copy_from_slice(body)))
        .unwrap();
    let response = tokio::time::timeout(Duration::from_secs(10), client.request(request))
        .await
        .expect("gateway answered within 10 s")
        .expect("request sent");
    let (parts, body) = response.into_parts();
    let body = body.collect().await.expect("response body").to_bytes();
    Reply {
        status: parts.status,
        headers: parts.headers,
        body,
    }
}

pub async fn get(url: &str, headers: &[(&str, &str)]) -> Reply {
    send(Method::GET, url, headers, "").await
}

pub async fn predict(gateway: &Gateway, headers: &[(&str, &str)], body: &str) -> Reply {
    let mut all = vec![("content-type", "application/json")];
    all.extend_from_slice(headers);
    send(Method::POST, &gateway.url("/v1/predict"), &all, body).await
}

pub fn bearer() -> String {
    format!("Bearer {KEY}")
}

/// The value of an unlabelled or exactly labelled sample in Prometheus text.
pub fn metric(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .filter(|line| !line.starts_with('#'))
        .find_map(|line| {
            let (name, value) = line.rsplit_once(' ')?;
            (name == series).then(|| value.parse().ok())?
        })
}
