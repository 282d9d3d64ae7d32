//! One delivery attempt of a job-end notice to Multiomix, and what its answer means.

use std::time::Duration;

use base64::Engine;
use hmac::{Hmac, Mac};
use http::StatusCode;
use sha2::Sha256;

use crate::config::SigningKey;

/// What one attempt came to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Multiomix took the notice (2xx).
    Delivered,
    /// Multiomix answered something final that is not success (404: the experiment is no
    /// longer in process; 410). Retrying would not change it.
    Refused { status: u16, error: String },
    /// Worth another try: network error, timeout, 5xx, any 4xx but 404 and 410, a
    /// redirect.
    Retry {
        error: String,
        retry_after: Option<Duration>,
    },
}

/// How an HTTP answer is treated. Only 404 and 410 are final refusals: Multiomix's
/// contract says 404 means the experiment is no longer in process. Any other 4xx can
/// pass (a 401 or 403 while a secret is rotated, a 400 from a proxy), so it is retried
/// with backoff until the give-up time, like a 5xx.
pub fn classify(status: StatusCode) -> Outcome {
    if status.is_success() {
        Outcome::Delivered
    } else if status == StatusCode::NOT_FOUND || status == StatusCode::GONE {
        Outcome::Refused {
            status: status.as_u16(),
            error: format!("Multiomix answered {status}"),
        }
    } else if status.is_client_error() || status.is_server_error() {
        Outcome::Retry {
            error: format!("Multiomix answered {status}"),
            retry_after: None,
        }
    } else {
        // 1xx/3xx: most likely MULTIOMIX_URL points at a redirect (http → https); keep
        // the notice and say so in the error until an operator fixes it.
        Outcome::Retry {
            error: format!("Multiomix answered {status}; check MULTIOMIX_URL"),
            retry_after: None,
        }
    }
}

/// How much of a refusal's body is kept in the notice's error and the log.
pub const MAX_REFUSAL_BODY_CHARS: usize = 300;

/// Sends notices. One HTTP client with its connection pool, built once.
#[derive(Clone)]
pub struct Deliverer {
    client: reqwest::Client,
    base_url: String,
    /// The HMAC key of `NOTIFY_SECRET`, decoded when the configuration was checked.
    key: Option<SigningKey>,
}

/// Why the notice sender cannot be built; start-up stops with it.
#[derive(Debug, thiserror::Error)]
pub enum DelivererError {
    #[error("cannot build the HTTP client for notices: {0}")]
    Client(#[from] reqwest::Error),
}

impl Deliverer {
    pub fn new(
        base_url: String,
        timeout: Duration,
        key: Option<SigningKey>,
    ) -> Result<Self, DelivererError> {
        let client = reqwest::Client::builder()
            .timeout(timeout)
            .connect_timeout(timeout.min(Duration::from_secs(10)))
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("multiomix-aws-emr/", env!("CARGO_PKG_VERSION")))
            .pool_max_idle_per_host(64)
            .build()?;
        Ok(Deliverer {
            client,
            base_url,
            key,
        })
    }

    /// `{MULTIOMIX_URL}/{id}/`.
    pub fn url_for(&self, job_id: &str) -> String {
        format!("{}/{job_id}/", self.base_url)
    }

    /// POSTs the notice once. `message_id` stays the same across retries of one notice so
    /// the receiver can drop duplicates (`Idempotency-Key`, `webhook-id`).
    pub async fn deliver(&self, job_id: &str, message_id: &str, body: &str) -> Outcome {
        let mut request = self
            .client
            .post(self.url_for(job_id))
            .header(http::header::CONTENT_TYPE, "application/json")
            .header("Idempotency-Key", message_id);
        if let Some(key) = &self.key {
            let timestamp = time::OffsetDateTime::now_utc().unix_timestamp();
            request = request
                .header("webhook-id", message_id)
                .header("webhook-timestamp", timestamp.to_string())
                .header("webhook-signature", sign(key, message_id, timestamp, body));
        }
        match request.body(body.to_owned()).send().await {
            Ok(response) => match classify(response.status()) {
                Outcome::Retry { error, .. } => {
                    let retry_after = retry_after(response.headers());
                    Outcome::Retry {
                        error: with_body(error, response).await,
                        retry_after,
                    }
                }
                Outcome::Refused { status, error } => Outcome::Refused {
                    status,
                    error: with_body(error, response).await,
                },
                Outcome::Delivered => Outcome::Delivered,
            },
            Err(e) => Outcome::Retry {
                error: describe_error(&e),
                retry_after: None,
            },
        }
    }
}

/// The error of a refusal followed by the start of its body, which often says why (a
/// proxy's page, a signature check). Read in chunks and cut short, so a large answer costs
/// nothing; control characters are replaced so it stays one log line.
async fn with_body(error: String, mut response: reqwest::Response) -> String {
    let mut body = Vec::new();
    let limit = MAX_REFUSAL_BODY_CHARS * 4;
    while body.len() < limit {
        match response.chunk().await {
            Ok(Some(chunk)) => {
                body.extend_from_slice(&chunk[..chunk.len().min(limit - body.len())])
            }
            Ok(None) | Err(_) => break,
        }
    }
    let text: String = String::from_utf8_lossy(&body)
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    let text = text.trim();
    if text.is_empty() {
        return error;
    }
    let mut excerpt: String = text.chars().take(MAX_REFUSAL_BODY_CHARS).collect();
    if text.chars().count() > MAX_REFUSAL_BODY_CHARS {
        excerpt.push('…');
    }
    format!("{error}: {excerpt}")
}

fn describe_error(e: &reqwest::Error) -> String {
    let kind = if e.is_timeout() {
        "timed out"
    } else if e.is_connect() {
        "could not connect"
    } else {
        "failed"
    };
    let mut detail = String::new();
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        detail = s.to_string();
        source = s.source();
    }
    if detail.is_empty() {
        format!("request to Multiomix {kind}")
    } else {
        format!("request to Multiomix {kind}: {detail}")
    }
}

/// `Retry-After` in seconds (the HTTP-date form is rare for these answers and ignored).
fn retry_after(headers: &http::HeaderMap) -> Option<Duration> {
    headers
        .get(http::header::RETRY_AFTER)?
        .to_str()
        .ok()?
        .trim()
        .parse::<u64>()
        .ok()
        .map(Duration::from_secs)
}

/// The Standard Webhooks signature: `v1,` + base64(HMAC-SHA256(key, "id.timestamp.body")).
pub fn sign(key: &SigningKey, message_id: &str, timestamp: i64, body: &str) -> String {
    let mut mac =
        Hmac::<Sha256>::new_from_slice(key.expose()).expect("HMAC takes keys of any length");
    mac.update(format!("{message_id}.{timestamp}.{body}").as_bytes());
    let b64 = base64::engine::general_purpose::STANDARD;
    format!("v1,{}", b64.encode(mac.finalize().into_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Secret;

    #[test]
    fn answers_are_sorted_into_delivered_refused_and_retry() {
        let retry = |s: u16| {
            matches!(
                classify(StatusCode::from_u16(s).unwrap()),
                Outcome::Retry { .. }
            )
        };
        assert_eq!(classify(StatusCode::OK), Outcome::Delivered);
        assert_eq!(classify(StatusCode::NO_CONTENT), Outcome::Delivered);
        for s in [404, 410] {
            assert!(
                matches!(
                    classify(StatusCode::from_u16(s).unwrap()),
                    Outcome::Refused { status, .. } if status == s
                ),
                "{s} is final"
            );
        }
        for s in [
            400, 401, 403, 408, 409, 413, 422, 429, 500, 502, 503, 504, 301, 302,
        ] {
            assert!(retry(s), "{s} should be retried");
        }
    }

    #[test]
    fn signatures_follow_the_standard_webhooks_test_vector() {
        // The example from the Standard Webhooks specification.
        let key = SigningKey::from_secret(&Secret::new("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"))
            .unwrap();
        let sig = sign(
            &key,
            "msg_p5jXN8AQM9LWM0D4loKWxJek",
            1614265330,
            r#"{"test": 2432232314}"#,
        );
        assert_eq!(sig, "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=");
    }

    #[test]
    fn a_whsec_secret_that_is_not_base64_gives_no_key() {
        for bad in ["whsec_", "whsec_not base64!", "whsec_%%%%"] {
            assert!(SigningKey::from_secret(&Secret::new(bad)).is_err(), "{bad}");
        }
        let plain = SigningKey::from_secret(&Secret::new("plain")).unwrap();
        assert_eq!(plain.expose(), b"plain");
        assert_eq!(format!("{plain:?}"), "SigningKey([redacted])");
    }

    #[test]
    fn retry_after_in_seconds_is_read() {
        let mut h = http::HeaderMap::new();
        assert_eq!(retry_after(&h), None);
        h.insert(http::header::RETRY_AFTER, "120".parse().unwrap());
        assert_eq!(retry_after(&h), Some(Duration::from_secs(120)));
    }
}
