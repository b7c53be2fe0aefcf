//! A stand-in for the inference service: fixed JSON answers on the routes the
//! gateway forwards to, for benchmarks and manual runs without a model.
//!
//!     cargo run --release --example stub_upstream -- 127.0.0.1:3000 [DELAY_MS]
//!
//! `DELAY_MS` (default 0) holds every prediction that long before answering,
//! like a model that takes time to score, without using CPU.

use std::{net::SocketAddr, time::Duration};

use axum::{
    Json, Router,
    extract::State,
    routing::{get, post},
};
use serde_json::{Value, json};

async fn predict(State(delay): State<Duration>, Json(_request): Json<Value>) -> Json<Value> {
    if !delay.is_zero() {
        tokio::time::sleep(delay).await;
    }
    Json(json!({
        "model": {"name": "churn", "version": "20250101T000000Z"},
        "predictions": [{"entity_id": "u1", "score": 0.42}]
    }))
}

async fn models() -> Json<Value> {
    Json(json!({"models": [{"name": "churn", "version": "20250101T000000Z"}]}))
}

#[tokio::main]
async fn main() -> std::io::Result<()> {
    let invalid = |e: String| std::io::Error::new(std::io::ErrorKind::InvalidInput, e);
    let mut args = std::env::args().skip(1);
    let addr: SocketAddr = args
        .next()
        .as_deref()
        .unwrap_or("127.0.0.1:3000")
        .parse()
        .map_err(|e| invalid(format!("listen address: {e}")))?;
    let delay_ms: u64 = args
        .next()
        .as_deref()
        .unwrap_or("0")
        .parse()
        .map_err(|e| invalid(format!("delay in ms: {e}")))?;
    let app = Router::new()
        .route("/v1/predict", post(predict))
        .route("/v1/models", get(models))
        .route("/healthz", get(|| async { Json(json!({"status": "ok"})) }))
        .with_state(Duration::from_millis(delay_ms));
    let listener = tokio::net::TcpListener::bind(addr).await?;
    eprintln!("stub upstream on {}", listener.local_addr()?);
    axum::serve(listener, app).await
}
