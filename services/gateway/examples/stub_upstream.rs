//! A stand-in for the inference service: fixed JSON answers on the routes the
//! gateway forwards to, for benchmarks and manual runs without a model.
//!
//!     cargo run --release --example stub_upstream -- 127.0.0.1:3000

use std::net::SocketAddr;

use axum::{
    Json, Router,
    routing::{get, post},
};
use serde_json::{Value, json};

async fn predict(Json(_request): Json<Value>) -> Json<Value> {
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
    let addr: SocketAddr = std::env::args()
        .nth(1)
        .as_deref()
        .unwrap_or("127.0.0.1:3000")
        .parse()
        .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidInput, e))?;
    let app = Router::new()
        .route("/v1/predict", post(predict))
        .route("/v1/models", get(models))
        .route("/healthz", get(|| async { Json(json!({"status": "ok"})) }));
    let listener = tokio::net::TcpListener::bind(addr).await?;
    eprintln!("stub upstream on {}", listener.local_addr()?);
    axum::serve(listener, app).await
}
