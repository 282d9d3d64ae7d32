//! The job routes: start, read, list, cancel, and the driver sidecar's callback.

use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use sha2::{Digest, Sha256};
use tracing::{info, warn};

use super::error::{ApiError, ApiJson};
use super::AppState;
use crate::backend::ListQuery;
use crate::job::{validate_request, JobId, JobState, JobView, NoticeView};
use crate::notify::RequestError;
use crate::store::{now_millis, JobRecord};

/// Longest `Idempotency-Key` accepted.
pub const MAX_IDEMPOTENCY_KEY_CHARS: usize = 255;
/// Largest page of `GET /jobs` (EMR's own maximum).
pub const MAX_PAGE_SIZE: u32 = 50;

#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct JobCreated {
    /// The job run id.
    pub id: String,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct JobList {
    pub jobs: Vec<JobView>,
    /// Pass as `next_token` for the next page; absent on the last page.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_token: Option<String>,
}

fn location(id: &str) -> HeaderValue {
    HeaderValue::from_str(&format!("/job/{id}")).expect("job ids are ASCII")
}

fn parse_id(raw: &str) -> Result<JobId, ApiError> {
    JobId::parse(raw).ok_or_else(|| {
        ApiError::BadRequest(
            "a job id is 1 to 64 characters of lowercase letters and digits".into(),
        )
    })
}

fn idempotency_key(headers: &HeaderMap) -> Result<Option<String>, ApiError> {
    let Some(value) = headers.get("idempotency-key") else {
        return Ok(None);
    };
    let key = value
        .to_str()
        .ok()
        .filter(|k| !k.is_empty() && k.len() <= MAX_IDEMPOTENCY_KEY_CHARS)
        .filter(|k| k.bytes().all(|b| b.is_ascii_graphic()))
        .ok_or_else(|| {
            ApiError::BadRequest(format!(
                "Idempotency-Key must be 1 to {MAX_IDEMPOTENCY_KEY_CHARS} visible ASCII characters"
            ))
        })?;
    Ok(Some(key.to_owned()))
}

fn sha256_hex(data: &[u8]) -> String {
    use std::fmt::Write;
    Sha256::digest(data)
        .iter()
        .fold(String::with_capacity(64), |mut hex, b| {
            let _ = write!(hex, "{b:02x}");
            hex
        })
}

/// `POST /job`: validates, starts the job, records it, answers 201 with its id.
pub async fn start_job(
    State(state): State<AppState>,
    headers: HeaderMap,
    ApiJson(body): ApiJson<Value>,
) -> Result<Response, ApiError> {
    let spec = validate_request(&body).map_err(ApiError::Invalid)?;
    let key = idempotency_key(&headers)?;
    // serde_json sorts object keys, so equal requests give equal fingerprints. Only a
    // request with an Idempotency-Key needs one.
    let fingerprint = key
        .as_ref()
        .map(|_| sha256_hex(body.to_string().as_bytes()));

    if let (Some(key), Some(fingerprint)) = (&key, &fingerprint) {
        if let Some((job_id, seen)) = state.store.idempotent_job(key).await? {
            if &seen != fingerprint {
                return Err(ApiError::Unprocessable(
                    "this Idempotency-Key was used for a different request".into(),
                ));
            }
            info!(job_id = %job_id, "repeated request with the same Idempotency-Key; same job");
            return Ok(created(&job_id));
        }
    }

    // EMR starts one job per client token: a retried request, even one whose first try
    // died before it was recorded here, cannot start a second job.
    let client_token = match &key {
        Some(k) => sha256_hex(k.as_bytes()),
        None => uuid::Uuid::new_v4().simple().to_string(),
    };
    let id = state
        .backend
        .start(&spec, &client_token)
        .await
        .map_err(|e| ApiError::from_backend(e, ""))?;
    let record = JobRecord {
        id: id.to_string(),
        name: spec.name.as_str().to_owned(),
        algorithm: Some(spec.algorithm.code()),
        backend: state.backend.kind().to_owned(),
        created_at: now_millis(),
        adopted: false,
    };
    state
        .store
        .record_submission(&record, key.as_deref().zip(fingerprint.as_deref()))
        .await?;
    metrics::counter!("jobs_started_total", "algorithm" => spec.algorithm.slug()).increment(1);
    info!(
        job_id = %id,
        name = spec.name.as_str(),
        algorithm = spec.algorithm.env_name(),
        app_name = spec.app_name().unwrap_or_default(),
        "job started"
    );
    Ok(created(id.as_str()))
}

fn created(id: &str) -> Response {
    let mut response =
        (StatusCode::CREATED, Json(JobCreated { id: id.to_owned() })).into_response();
    response
        .headers_mut()
        .insert(header::LOCATION, location(id));
    response
}

/// `GET /job/{id}`.
pub async fn read_job(
    State(state): State<AppState>,
    Path(raw): Path<String>,
) -> Result<Json<JobView>, ApiError> {
    let id = parse_id(&raw)?;
    let run = state
        .backend
        .describe(&id)
        .await
        .map_err(|e| ApiError::from_backend(e, id.as_str()))?;
    let mut view = JobView::from(&run);
    view.notice = state.store.notice(id.as_str()).await?.map(|n| NoticeView {
        status: n.status.as_str().to_owned(),
        attempts: n.attempts,
        last_error: n.last_error,
    });
    Ok(Json(view))
}

/// `DELETE /job/{id}`.
pub async fn cancel_job(
    State(state): State<AppState>,
    Path(raw): Path<String>,
) -> Result<Response, ApiError> {
    let id = parse_id(&raw)?;
    state
        .backend
        .cancel(&id)
        .await
        .map_err(|e| ApiError::from_backend(e, id.as_str()))?;
    info!(job_id = %id, "job cancellation requested");
    let mut response = Json(JobCreated { id: id.to_string() }).into_response();
    response
        .headers_mut()
        .insert(header::LOCATION, location(id.as_str()));
    Ok(response)
}

/// `PATCH /job/{id}`: the driver pod's sidecar says the driver ended. Answers at once;
/// the notice is worked on in the background from the durable outbox.
pub async fn job_callback(
    State(state): State<AppState>,
    Path(raw): Path<String>,
    body: Bytes,
) -> Result<StatusCode, ApiError> {
    let id = parse_id(&raw)?;
    // The reported state is informational only: the backend says what the job is.
    let reported = serde_json::from_slice::<Value>(&body)
        .ok()
        .and_then(|v| v.get("state").and_then(Value::as_str).map(str::to_owned));
    let reported = reported.as_deref().unwrap_or("-");
    let reported: String = reported.chars().take(64).collect();
    match state
        .notifier
        .request(&id, state.config.notify.sleep_time)
        .await
    {
        Ok(outcome) => {
            info!(job_id = %id, reported = %reported, ?outcome, "driver-end callback");
            metrics::counter!("callbacks_total").increment(1);
            Ok(StatusCode::NO_CONTENT)
        }
        Err(RequestError::Full(open)) => {
            warn!(job_id = %id, open, "callback refused: too many notices waiting");
            Err(ApiError::Unavailable {
                message: format!("too many job-end notices are waiting ({open}); try again later"),
                retry_after_secs: 5,
            })
        }
        Err(RequestError::Store(e)) => Err(e.into()),
    }
}

/// `GET /jobs?state=RUNNING&state=FAILED&page_size=20&next_token=...`: this service's
/// jobs, newest first.
pub async fn list_jobs(
    State(state): State<AppState>,
    RawQuery(query): RawQuery,
) -> Result<Json<JobList>, ApiError> {
    let mut q = ListQuery::default();
    for (key, value) in form_urlencoded::parse(query.unwrap_or_default().as_bytes()) {
        match key.as_ref() {
            "state" | "states" => {
                for s in value.split(',').filter(|s| !s.is_empty()) {
                    let parsed = JobState::parse(&s.to_ascii_uppercase()).ok_or_else(|| {
                        ApiError::BadRequest(format!(
                            "unknown state '{s}'; one of PENDING, SUBMITTED, RUNNING, FAILED, CANCELLED, CANCEL_PENDING, COMPLETED"
                        ))
                    })?;
                    if !q.states.contains(&parsed) {
                        q.states.push(parsed);
                    }
                }
            }
            "page_size" | "pageSize" => {
                let n: u32 = value
                    .parse()
                    .ok()
                    .filter(|n| (1..=MAX_PAGE_SIZE).contains(n))
                    .ok_or_else(|| {
                        ApiError::BadRequest(format!("page_size must be 1 to {MAX_PAGE_SIZE}"))
                    })?;
                q.page_size = Some(n);
            }
            "next_token" | "nextToken" => {
                if value.len() > 1024 {
                    return Err(ApiError::BadRequest("next_token is too long".into()));
                }
                q.next_token = Some(value.into_owned());
            }
            other => {
                return Err(ApiError::BadRequest(format!(
                    "unknown query parameter '{other}'; use state, page_size, next_token"
                )))
            }
        }
    }
    let page = state
        .backend
        .list(&q)
        .await
        .map_err(|e| ApiError::from_backend(e, ""))?;
    Ok(Json(JobList {
        jobs: page.jobs.iter().map(JobView::from).collect(),
        next_token: page.next_token,
    }))
}
