//! Optional bearer tokens: `API_TOKEN` for the job routes, `CALLBACK_TOKEN` for the
//! sidecar callback. Each route layer gets its own token, so one never opens the other.

use axum::extract::{Request, State};
use axum::http::header::AUTHORIZATION;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use super::error::ApiError;
use crate::config::Secret;

/// Lets the request through when no token is configured, or when it carries
/// `Authorization: Bearer <token>`; otherwise 401.
pub async fn require_bearer(
    State(expected): State<Option<Secret>>,
    req: Request,
    next: Next,
) -> Response {
    let presented = |value: &str| bearer_token(value).map(str::to_owned);
    gate(expected, req, next, presented, || {
        let mut response = ApiError::Unauthorized.into_response();
        response.headers_mut().insert(
            axum::http::header::WWW_AUTHENTICATE,
            axum::http::HeaderValue::from_static("Bearer"),
        );
        response
    })
    .await
}

/// The pages' gate: with a token configured, the request must carry it as the password
/// of HTTP Basic authentication (any user name: what a browser asks for) or as a bearer
/// token; otherwise an HTML 401 that makes a browser ask for it. The token is never put
/// in a URL or a page.
pub async fn require_page_credentials(
    State(expected): State<Option<Secret>>,
    req: Request,
    next: Next,
) -> Response {
    let presented = |value: &str| {
        bearer_token(value)
            .map(str::to_owned)
            .or_else(|| basic_password(value))
    };
    gate(expected, req, next, presented, super::ui::unauthorized).await
}

/// What both gates do: no token configured lets everything through; otherwise the token
/// `presented` reads from the `Authorization` header must match, or the request gets
/// `refusal` (and is counted).
async fn gate(
    expected: Option<Secret>,
    req: Request,
    next: Next,
    presented: impl Fn(&str) -> Option<String>,
    refusal: impl Fn() -> Response,
) -> Response {
    let Some(expected) = expected else {
        return next.run(req).await;
    };
    let token = req
        .headers()
        .get(AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(presented);
    match token {
        Some(token) if token_matches(&token, expected.expose()) => next.run(req).await,
        _ => {
            metrics::counter!("requests_unauthorized_total").increment(1);
            refusal()
        }
    }
}

/// The password of an `Authorization: Basic <base64(user:password)>` value.
fn basic_password(value: &str) -> Option<String> {
    use base64::Engine;
    let (scheme, encoded) = value.trim().split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(encoded.trim())
        .ok()?;
    let text = String::from_utf8(decoded).ok()?;
    let (_user, password) = text.split_once(':')?;
    (!password.is_empty()).then(|| password.to_owned())
}

/// Whether the request carries the configured token. With none configured, no request
/// does: what only an authenticated caller may read (the backend's own error text on
/// `/ready`) then goes to the log alone.
pub fn carries_token(headers: &axum::http::HeaderMap, expected: Option<&Secret>) -> bool {
    let Some(expected) = expected else {
        return false;
    };
    headers
        .get(AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(bearer_token)
        .is_some_and(|token| token_matches(token, expected.expose()))
}

/// The credentials of an `Authorization: Bearer <token>` value. The scheme name is
/// case-insensitive (RFC 9110); an empty token is no token.
fn bearer_token(value: &str) -> Option<&str> {
    let (scheme, token) = value.trim().split_once(' ')?;
    let token = token.trim();
    (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty()).then_some(token)
}

/// Compares SHA-256 digests in constant time, so that neither the position of the first
/// wrong byte nor the length of the expected token shows in the answer time.
fn token_matches(presented: &str, expected: &str) -> bool {
    let presented = Sha256::digest(presented.as_bytes());
    let expected = Sha256::digest(expected.trim().as_bytes());
    bool::from(presented.ct_eq(&expected))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_bearer_scheme_is_case_insensitive_and_needs_a_token() {
        assert_eq!(bearer_token("Bearer abc"), Some("abc"));
        assert_eq!(bearer_token("bearer abc"), Some("abc"));
        assert_eq!(bearer_token("BEARER  abc "), Some("abc"));
        assert_eq!(bearer_token("Basic abc"), None);
        assert_eq!(bearer_token("Bearer "), None);
        assert_eq!(bearer_token("Bearer"), None);
        assert_eq!(bearer_token("abc"), None);
        assert_eq!(bearer_token("Bearerabc"), None);
    }

    #[test]
    fn the_basic_password_is_the_token_whatever_the_user_name() {
        use base64::Engine;
        let basic = |pair: &str| {
            format!(
                "Basic {}",
                base64::engine::general_purpose::STANDARD.encode(pair)
            )
        };
        assert_eq!(
            basic_password(&basic("admin:s3cret")).as_deref(),
            Some("s3cret")
        );
        assert_eq!(basic_password(&basic(":s3cret")).as_deref(), Some("s3cret"));
        assert_eq!(basic_password(&basic("a:b:c")).as_deref(), Some("b:c"));
        assert_eq!(basic_password(&basic("admin:")), None);
        assert_eq!(basic_password(&basic("no-colon")), None);
        assert_eq!(basic_password("Basic !!!"), None);
        assert_eq!(basic_password("Bearer s3cret"), None);
    }

    #[test]
    fn only_the_exact_token_matches() {
        assert!(token_matches("s3cret", "s3cret"));
        assert!(token_matches("s3cret", " s3cret\n"));
        for wrong in ["", "s3cre", "s3cret!", "S3cret", "s3cret s3cret"] {
            assert!(!token_matches(wrong, "s3cret"), "{wrong:?}");
        }
    }
}
