//! The calls the backend makes to Livy's REST API for batches, and the answers it reads.
//!
//! Every request carries `X-Requested-By` (Livy's CSRF protection refuses a POST or a
//! DELETE without it, whatever its value, and it costs nothing where the protection is
//! off) and, when configured, HTTP Basic credentials. Each call is bounded by the
//! settings' call timeout; nothing is retried here: a start that may have reached Livy
//! is looked for by its name before anything is tried again, and reads are tried again
//! by the next round.

use std::time::Duration;

use reqwest::{Method, StatusCode};
use serde::Deserialize;
use serde_json::Value;

use crate::backend::{BackendError, Cause};
use crate::config::LivySettings;

/// The value of `X-Requested-By`.
pub const REQUESTED_BY: &str = "multiomix-aws-emr";

/// A batch as Livy shows it (`GET /batches/{id}`, the `sessions` of `GET /batches`, the
/// answer of `POST /batches`). `name` is there from Livy 0.7 on.
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct BatchView {
    pub id: i64,
    #[serde(default)]
    pub name: Option<String>,
    pub state: String,
    #[serde(default)]
    pub app_id: Option<String>,
    #[serde(default)]
    pub app_info: AppInfo,
    /// The last lines of spark-submit's output.
    #[serde(default, deserialize_with = "lines")]
    pub log: Vec<String>,
}

/// `appInfo`: the links YARN gives once the application is known.
#[derive(Clone, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct AppInfo {
    #[serde(default)]
    pub driver_log_url: Option<String>,
    #[serde(default)]
    pub spark_ui_url: Option<String>,
}

/// `GET /batches?from=&size=`: `total` is how many batches Livy holds, `sessions` the
/// page, oldest first (Livy keeps them in the order it made them).
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
pub struct BatchPage {
    #[serde(default)]
    pub from: i64,
    pub total: i64,
    pub sessions: Vec<BatchView>,
}

/// A `log` that is absent or null reads as no lines.
fn lines<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    Ok(Option::<Vec<String>>::deserialize(d)?.unwrap_or_default())
}

/// What a refused call said.
#[derive(Debug)]
pub struct Refusal {
    pub status: StatusCode,
    /// Livy's `msg`, or the start of the body when it is not Livy's JSON.
    pub message: String,
}

/// Why a call did not give its answer.
#[derive(Debug)]
pub enum CallError {
    /// Livy answered with an error status.
    Refused(Refusal),
    /// No answer, or one that is not what Livy sends.
    Unavailable(Cause),
}

impl CallError {
    /// The error as the service's callers take it: an outage, a 5xx or a 429 may pass;
    /// a refusal will not.
    pub fn into_backend(self, call: &str) -> BackendError {
        match self {
            CallError::Unavailable(cause) => BackendError::Unavailable(cause),
            CallError::Refused(r) if r.status.is_server_error() || r.status == 429 => {
                BackendError::Unavailable(
                    format!("Livy {call}: {} {}", r.status.as_u16(), r.message).into(),
                )
            }
            CallError::Refused(r) if matches!(r.status.as_u16(), 401 | 403) => {
                BackendError::Rejected(
                    format!(
                        "Livy {call}: {} {} (check LIVY_USERNAME and LIVY_PASSWORD)",
                        r.status.as_u16(),
                        r.message
                    )
                    .into(),
                )
            }
            CallError::Refused(r) => BackendError::Rejected(
                format!("Livy {call}: {} {}", r.status.as_u16(), r.message).into(),
            ),
        }
    }
}

/// Livy's batches API at `LIVY_URL`.
#[derive(Clone)]
pub struct LivyClient {
    http: reqwest::Client,
    base: String,
    credentials: Option<(String, String)>,
}

impl LivyClient {
    pub fn new(settings: &LivySettings) -> Self {
        let http = reqwest::Client::builder()
            .timeout(settings.call_timeout)
            .connect_timeout(Duration::from_secs(3).min(settings.call_timeout))
            .build()
            .expect("a TLS backend is compiled in");
        LivyClient {
            http,
            base: settings.url.clone(),
            credentials: settings
                .credentials
                .as_ref()
                .map(|c| (c.username.clone(), c.password.expose().to_owned())),
        }
    }

    async fn call(
        &self,
        method: Method,
        path: &str,
        body: Option<&Value>,
    ) -> Result<Value, CallError> {
        let what = format!("{method} {path}");
        let mut request = self
            .http
            .request(method, format!("{}{path}", self.base))
            .header("X-Requested-By", REQUESTED_BY)
            .header(reqwest::header::ACCEPT, "application/json");
        if let Some((user, password)) = &self.credentials {
            request = request.basic_auth(user, Some(password));
        }
        if let Some(body) = body {
            request = request.json(body);
        }
        let unavailable = |e: reqwest::Error| {
            CallError::Unavailable(Cause::with_source(format!("Livy {what}"), e))
        };
        let answer = request.send().await.map_err(unavailable)?;
        let status = answer.status();
        let text = answer.text().await.map_err(unavailable)?;
        if !status.is_success() {
            let message = serde_json::from_str::<Value>(&text)
                .ok()
                .and_then(|v| v["msg"].as_str().map(str::to_owned))
                .unwrap_or_else(|| text.chars().take(300).collect::<String>().trim().to_owned());
            return Err(CallError::Refused(Refusal { status, message }));
        }
        serde_json::from_str(&text).map_err(|e| {
            CallError::Unavailable(Cause::with_source(
                format!("Livy {what} answered {status} with a body that is not JSON"),
                e,
            ))
        })
    }

    fn parse<T: serde::de::DeserializeOwned>(what: &str, value: Value) -> Result<T, CallError> {
        serde_json::from_value(value).map_err(|e| {
            CallError::Unavailable(Cause::with_source(
                format!("Livy {what} answered with JSON that is not Livy's"),
                e,
            ))
        })
    }

    /// `POST /batches`.
    pub async fn create(&self, body: &Value) -> Result<BatchView, CallError> {
        let answer = self.call(Method::POST, "/batches", Some(body)).await?;
        Self::parse("POST /batches", answer)
    }

    /// `GET /batches/{id}`; `None` when Livy answers 404 (it does not hold that batch).
    pub async fn get(&self, id: i64) -> Result<Option<BatchView>, CallError> {
        let path = format!("/batches/{id}");
        match self.call(Method::GET, &path, None).await {
            Ok(answer) => Self::parse(&format!("GET {path}"), answer).map(Some),
            Err(CallError::Refused(r)) if r.status == StatusCode::NOT_FOUND => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// `GET /batches?from=&size=`.
    pub async fn list(&self, from: i64, size: i64) -> Result<BatchPage, CallError> {
        let path = format!("/batches?from={from}&size={size}");
        let answer = self.call(Method::GET, &path, None).await?;
        Self::parse(&format!("GET {path}"), answer)
    }

    /// `DELETE /batches/{id}`: Livy kills the application and forgets the batch. False
    /// when Livy answers 404 (it does not hold that batch).
    pub async fn delete(&self, id: i64) -> Result<bool, CallError> {
        match self
            .call(Method::DELETE, &format!("/batches/{id}"), None)
            .await
        {
            Ok(_) => Ok(true),
            Err(CallError::Refused(r)) if r.status == StatusCode::NOT_FOUND => Ok(false),
            Err(e) => Err(e),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_batch_reads_from_livy_0_7_and_from_older_answers_without_a_name() {
        let v: BatchView = serde_json::from_value(serde_json::json!({
            "id": 3, "name": "p:lv1:app:job", "owner": null, "proxyUser": "lab",
            "state": "running", "appId": "application_1_0003",
            "appInfo": {"driverLogUrl": "http://nm/logs", "sparkUiUrl": "http://rm/proxy"},
            "log": ["a", "b"]
        }))
        .unwrap();
        assert_eq!(v.name.as_deref(), Some("p:lv1:app:job"));
        assert_eq!(v.app_info.spark_ui_url.as_deref(), Some("http://rm/proxy"));
        let old: BatchView = serde_json::from_value(serde_json::json!({
            "id": 0, "state": "starting", "appId": null,
            "appInfo": {"driverLogUrl": null, "sparkUiUrl": null}, "log": null
        }))
        .unwrap();
        assert_eq!((old.name, old.app_id, old.log.len()), (None, None, 0));
    }

    #[test]
    fn errors_sort_into_what_the_caller_can_do() {
        let refused = |status: u16| {
            CallError::Refused(Refusal {
                status: StatusCode::from_u16(status).unwrap(),
                message: "m".into(),
            })
            .into_backend("GET /batches")
        };
        assert!(matches!(refused(503), BackendError::Unavailable(_)));
        assert!(matches!(refused(429), BackendError::Unavailable(_)));
        assert!(matches!(refused(400), BackendError::Rejected(_)));
        let text = refused(401).to_string();
        assert!(text.contains("LIVY_USERNAME"), "{text}");
    }
}
