//! API key authentication.
//!
//! Only SHA-256 digests of the configured keys are kept in memory. A presented
//! key is hashed and compared against every digest in constant time, so
//! neither the comparison nor the position of a match leaks through timing.

use std::{fmt, sync::Arc};

use axum::{
    extract::{Request, State},
    middleware::Next,
    response::Response,
};
use http::{HeaderMap, StatusCode, header};
use sha2::{Digest, Sha256};
use subtle::{Choice, ConstantTimeEq};

use crate::errors::ApiError;

pub const API_KEY_HEADER: &str = "x-api-key";

type KeyDigest = [u8; 32];

fn digest(key: &str) -> KeyDigest {
    Sha256::digest(key.as_bytes()).into()
}

/// The configured API keys, as digests.
#[derive(Clone, Default)]
pub struct ApiKeys {
    digests: Arc<[KeyDigest]>,
}

impl ApiKeys {
    /// One key per line; surrounding whitespace and blank lines are ignored.
    pub fn from_lines(text: &str) -> Self {
        let mut digests: Vec<KeyDigest> = text
            .lines()
            .map(str::trim)
            .filter(|line| !line.is_empty())
            .map(digest)
            .collect();
        digests.sort_unstable();
        digests.dedup();
        Self {
            digests: digests.into(),
        }
    }

    pub fn len(&self) -> usize {
        self.digests.len()
    }

    pub fn is_empty(&self) -> bool {
        self.digests.is_empty()
    }

    /// The identity of `presented` if it is one of the configured keys.
    pub fn verify(&self, presented: &str) -> Option<KeyId> {
        let candidate = digest(presented);
        // Visit every digest whatever matches, so timing does not depend on
        // which key (if any) was presented.
        let found = self
            .digests
            .iter()
            .fold(Choice::from(0), |acc, known| acc | known.ct_eq(&candidate));
        bool::from(found).then(|| KeyId(hex::encode(candidate).into()))
    }
}

impl fmt::Debug for ApiKeys {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ApiKeys({} keys)", self.digests.len())
    }
}

/// An authenticated caller: the hex SHA-256 of its key, safe to use as a
/// Redis key or in logs where the raw key must never appear.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct KeyId(Arc<str>);

impl KeyId {
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// The key from `Authorization: Bearer <key>` or, failing that, `X-API-Key`.
pub fn presented_key(headers: &HeaderMap) -> Option<&str> {
    let bearer = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            let (scheme, token) = v.trim().split_once(' ')?;
            scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
        });
    bearer
        .or_else(|| {
            headers
                .get(API_KEY_HEADER)
                .and_then(|v| v.to_str().ok())
                .map(str::trim)
        })
        .filter(|key| !key.is_empty())
}

/// Rejects requests without a valid key and records the caller's [`KeyId`]
/// in the request extensions for the rate limiter.
pub async fn require_api_key(
    State(keys): State<ApiKeys>,
    mut request: Request,
    next: Next,
) -> Result<Response, ApiError> {
    let key_id = match presented_key(request.headers()) {
        None => return Err(ApiError::unauthorized("missing API key")),
        Some(key) => keys
            .verify(key)
            .ok_or_else(|| ApiError::unauthorized("invalid API key"))?,
    };
    request.extensions_mut().insert(key_id);
    Ok(next.run(request).await)
}

impl ApiError {
    fn unauthorized(message: &'static str) -> Self {
        ApiError::new(StatusCode::UNAUTHORIZED, message)
            .with_header(header::WWW_AUTHENTICATE, "Bearer".parse().expect("static"))
    }
}

#[cfg(test)]
mod tests {
    use http::HeaderValue;

    use super::*;

    #[test]
    fn verifies_only_configured_keys() {
        let keys = ApiKeys::from_lines("alpha\n beta \n\nalpha\n");
        assert_eq!(keys.len(), 2);
        let alpha = keys.verify("alpha").expect("alpha is configured");
        assert_eq!(alpha, keys.verify("alpha").unwrap());
        assert_ne!(Some(alpha.clone()), keys.verify("beta"));
        assert!(keys.verify("gamma").is_none());
        assert!(keys.verify("alph").is_none());
        assert!(keys.verify("").is_none());
        // The identity is a digest, never the key itself.
        assert_eq!(alpha.as_str().len(), 64);
        assert!(!alpha.as_str().contains("alpha"));
    }

    #[test]
    fn reads_both_header_forms() {
        let mut headers = HeaderMap::new();
        assert_eq!(presented_key(&headers), None);
        headers.insert(API_KEY_HEADER, HeaderValue::from_static(" k1 "));
        assert_eq!(presented_key(&headers), Some("k1"));
        headers.insert(header::AUTHORIZATION, HeaderValue::from_static("bearer k2"));
        assert_eq!(presented_key(&headers), Some("k2"));
        headers.insert(header::AUTHORIZATION, HeaderValue::from_static("Basic abc"));
        assert_eq!(presented_key(&headers), Some("k1"));
        headers.remove(API_KEY_HEADER);
        assert_eq!(presented_key(&headers), None);
    }

    #[test]
    fn debug_output_hides_keys() {
        let keys = ApiKeys::from_lines("topsecret\n");
        assert_eq!(format!("{keys:?}"), "ApiKeys(1 keys)");
    }
}
