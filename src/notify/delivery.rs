//! One delivery attempt of a job-end notice to Multiomix, and what its answer means.

use std::time::Duration;

use base64::Engine;
use hmac::{Hmac, Mac};
use http::StatusCode;
use sha2::Sha256;

use crate::config::Secret;

/// What one attempt came to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Multiomix took the notice (2xx).
    Delivered,
    /// Multiomix answered something final that is not success (404: the experiment is no
    /// longer in process). Retrying would not change it.
    Refused { status: u16 },
    /// Worth another try: network error, timeout, 5xx, 408, 429, a redirect.
    Retry {
        error: String,
        retry_after: Option<Duration>,
    },
}

/// How an HTTP answer is treated.
pub fn classify(status: StatusCode) -> Outcome {
    if status.is_success() {
        Outcome::Delivered
    } else if status == StatusCode::REQUEST_TIMEOUT
        || status == StatusCode::TOO_MANY_REQUESTS
        || status.is_server_error()
    {
        Outcome::Retry {
            error: format!("Multiomix answered {status}"),
            retry_after: None,
        }
    } else if status.is_client_error() {
        Outcome::Refused {
            status: status.as_u16(),
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

/// Sends notices. One HTTP client with its connection pool, built once.
#[derive(Clone)]
pub struct Deliverer {
    client: reqwest::Client,
    base_url: String,
    secret: Option<Secret>,
}

impl Deliverer {
    pub fn new(base_url: String, timeout: Duration, secret: Option<Secret>) -> Self {
        let client = reqwest::Client::builder()
            .timeout(timeout)
            .connect_timeout(timeout.min(Duration::from_secs(10)))
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("multiomix-aws-emr/", env!("CARGO_PKG_VERSION")))
            .pool_max_idle_per_host(64)
            .build()
            .expect("the TLS backend is compiled in");
        Deliverer {
            client,
            base_url,
            secret,
        }
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
        if let Some(secret) = &self.secret {
            let timestamp = time::OffsetDateTime::now_utc().unix_timestamp();
            request = request
                .header("webhook-id", message_id)
                .header("webhook-timestamp", timestamp.to_string())
                .header(
                    "webhook-signature",
                    sign(secret, message_id, timestamp, body),
                );
        }
        match request.body(body.to_owned()).send().await {
            Ok(response) => match classify(response.status()) {
                Outcome::Retry { error, .. } => Outcome::Retry {
                    error,
                    retry_after: retry_after(response.headers()),
                },
                other => other,
            },
            Err(e) => Outcome::Retry {
                error: describe_error(&e),
                retry_after: None,
            },
        }
    }
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
/// A secret of the form `whsec_<base64>` is decoded as that scheme's secrets are; any
/// other secret is used as raw bytes.
pub fn sign(secret: &Secret, message_id: &str, timestamp: i64, body: &str) -> String {
    let b64 = base64::engine::general_purpose::STANDARD;
    let raw = secret.expose();
    let key = raw
        .strip_prefix("whsec_")
        .and_then(|k| b64.decode(k).ok())
        .unwrap_or_else(|| raw.as_bytes().to_vec());
    let mut mac = Hmac::<Sha256>::new_from_slice(&key).expect("HMAC takes keys of any length");
    mac.update(format!("{message_id}.{timestamp}.{body}").as_bytes());
    format!("v1,{}", b64.encode(mac.finalize().into_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

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
        for s in [400, 401, 403, 404, 410, 422] {
            assert_eq!(
                classify(StatusCode::from_u16(s).unwrap()),
                Outcome::Refused { status: s }
            );
        }
        for s in [408, 429, 500, 502, 503, 504, 301, 302] {
            assert!(retry(s), "{s} should be retried");
        }
    }

    #[test]
    fn signatures_follow_the_standard_webhooks_test_vector() {
        // The example from the Standard Webhooks specification.
        let secret = Secret::new("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw");
        let sig = sign(
            &secret,
            "msg_p5jXN8AQM9LWM0D4loKWxJek",
            1614265330,
            r#"{"test": 2432232314}"#,
        );
        assert_eq!(sig, "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=");
    }

    #[test]
    fn retry_after_in_seconds_is_read() {
        let mut h = http::HeaderMap::new();
        assert_eq!(retry_after(&h), None);
        h.insert(http::header::RETRY_AFTER, "120".parse().unwrap());
        assert_eq!(retry_after(&h), Some(Duration::from_secs(120)));
    }
}
