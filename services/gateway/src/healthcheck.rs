//! `gateway --healthcheck`: the container's health probe. The runtime image
//! has no curl, so the binary checks its own `/healthz`.

use std::{
    net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr},
    time::Duration,
};

use axum::body::Body;
use hyper_util::{
    client::legacy::{Client, connect::HttpConnector},
    rt::TokioExecutor,
};

use crate::config::DEFAULT_LISTEN;

const TIMEOUT: Duration = Duration::from_secs(2);

/// The address to probe for a listen address: wildcard binds are reached on
/// loopback.
pub fn probe_address(listen: SocketAddr) -> SocketAddr {
    let ip = match listen.ip() {
        IpAddr::V4(ip) if ip.is_unspecified() => IpAddr::V4(Ipv4Addr::LOCALHOST),
        IpAddr::V6(ip) if ip.is_unspecified() => IpAddr::V6(Ipv6Addr::LOCALHOST),
        ip => ip,
    };
    SocketAddr::new(ip, listen.port())
}

/// Reads only `GATEWAY_LISTEN`, so the probe works whatever else is set.
pub async fn run() -> Result<(), String> {
    let listen = std::env::var("GATEWAY_LISTEN").unwrap_or_else(|_| DEFAULT_LISTEN.to_owned());
    let listen: SocketAddr = listen
        .trim()
        .parse()
        .map_err(|e| format!("GATEWAY_LISTEN is invalid: {e}"))?;
    let url = format!("http://{}/healthz", probe_address(listen));
    let client: Client<HttpConnector, Body> = Client::builder(TokioExecutor::new()).build_http();
    let request = http::Request::get(&url)
        .body(Body::empty())
        .map_err(|e| e.to_string())?;
    match tokio::time::timeout(TIMEOUT, client.request(request)).await {
        Err(_) => Err(format!("{url}: no answer within {TIMEOUT:?}")),
        Ok(Err(e)) => Err(format!("{url}: {e}")),
        Ok(Ok(response)) if response.status().is_success() => Ok(()),
        Ok(Ok(response)) => Err(format!("{url}: status {}", response.status())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wildcard_binds_are_probed_on_loopback() {
        assert_eq!(
            probe_address("0.0.0.0:8080".parse().unwrap()),
            "127.0.0.1:8080".parse().unwrap()
        );
        assert_eq!(
            probe_address("[::]:9000".parse().unwrap()),
            "[::1]:9000".parse().unwrap()
        );
        assert_eq!(
            probe_address("10.0.0.5:8080".parse().unwrap()),
            "10.0.0.5:8080".parse().unwrap()
        );
    }
}
