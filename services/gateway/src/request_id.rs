//! `X-Request-Id`: kept from the client when well-formed, generated otherwise,
//! forwarded upstream and returned on every response.

use std::sync::Arc;

use axum::{
    extract::Request,
    middleware::Next,
    response::{IntoResponse, Response},
};
use http::{HeaderName, HeaderValue};
use uuid::Uuid;

use crate::errors::{self, ErrorMessage};

pub const REQUEST_ID_HEADER: HeaderName = HeaderName::from_static("x-request-id");

/// Longest client-supplied id accepted; longer ones are replaced rather than
/// letting callers push arbitrary payloads into logs and upstream headers.
const MAX_LEN: usize = 128;

#[derive(Clone, Debug)]
pub struct RequestId(Arc<str>);

impl RequestId {
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

fn acceptable(value: &HeaderValue) -> Option<&str> {
    let id = value.to_str().ok()?;
    let ok = !id.is_empty()
        && id.len() <= MAX_LEN
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b':'));
    ok.then_some(id)
}

pub async fn propagate(mut request: Request, next: Next) -> Response {
    let id: Arc<str> = match request
        .headers()
        .get(&REQUEST_ID_HEADER)
        .and_then(acceptable)
    {
        Some(id) => id.into(),
        None => Uuid::new_v4().to_string().into(),
    };
    let header = HeaderValue::from_str(&id).expect("validated or generated id is a valid header");
    request
        .headers_mut()
        .insert(REQUEST_ID_HEADER, header.clone());
    request.extensions_mut().insert(RequestId(id.clone()));

    let mut response = next.run(request).await;
    if let Some(ErrorMessage(message)) = response.extensions_mut().remove::<ErrorMessage>() {
        let (mut parts, _) = response.into_parts();
        let rendered = errors::render(parts.status, &message, Some(&id)).into_response();
        let (rendered_parts, body) = rendered.into_parts();
        parts.headers.extend(rendered_parts.headers);
        parts.headers.remove(http::header::CONTENT_LENGTH);
        response = Response::from_parts(parts, body);
    }
    response.headers_mut().insert(REQUEST_ID_HEADER, header);
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_only_short_token_like_ids() {
        let ok = HeaderValue::from_static("abc-123_x.y:z");
        assert_eq!(acceptable(&ok), Some("abc-123_x.y:z"));
        for bad in ["", "has space", "quote\"", "semi;colon"] {
            assert_eq!(
                acceptable(&HeaderValue::from_str(bad).unwrap()),
                None,
                "{bad}"
            );
        }
        let long = HeaderValue::from_str(&"a".repeat(MAX_LEN + 1)).unwrap();
        assert_eq!(acceptable(&long), None);
    }
}
