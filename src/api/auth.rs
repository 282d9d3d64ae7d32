//! Optional bearer tokens: `API_TOKEN` for the job routes, `CALLBACK_TOKEN` for the
//! sidecar callback. Each route layer gets its own token, so one never opens the other.

use axum::extract::{Request, State};
use axum::http::header::AUTHORIZATION;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use subtle::ConstantTimeEq;

use super::error::ApiError;
use crate::config::Secret;

/// Lets the request through when no token is configured, or when it carries
/// `Authorization: Bearer <token>`; otherwise 401. The comparison takes the same time
/// wherever the first wrong byte is.
pub async fn require_bearer(
    State(expected): State<Option<Secret>>,
    req: Request,
    next: Next,
) -> Response {
    let Some(expected) = expected else {
        return next.run(req).await;
    };
    let presented = req
        .headers()
        .get(AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            v.strip_prefix("Bearer ")
                .or_else(|| v.strip_prefix("bearer "))
        })
        .map(str::trim);
    match presented {
        Some(token) if bool::from(token.as_bytes().ct_eq(expected.expose().as_bytes())) => {
            next.run(req).await
        }
        _ => {
            metrics::counter!("requests_unauthorized_total").increment(1);
            let mut response = ApiError::Unauthorized.into_response();
            response.headers_mut().insert(
                axum::http::header::WWW_AUTHENTICATE,
                axum::http::HeaderValue::from_static("Bearer"),
            );
            response
        }
    }
}
