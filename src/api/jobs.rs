//! The job routes: start, read, list, cancel, and the driver sidecar's callback.

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{FromRequestParts, Path, RawQuery, State};
use axum::http::request::Parts;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use tracing::{info, warn};

use super::error::{from_bytes_rejection, ApiError, ApiJson, ErrorBody};
use super::schemas::{CallbackBody, StartJobRequest};
use super::AppState;
use crate::backend::{BackendError, ListQuery};
use crate::job::body::RequestBody;
use crate::job::{validate_request, FieldError, JobId, JobSpec, JobState, JobView, NoticeView};
use crate::notify::RequestError;
use crate::staging::StageError;
use crate::start::{Idempotency, StartError, Started, Starter};

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

/// A job this deployment did not start looks like no job at all.
fn not_ours(id: &JobId) -> ApiError {
    ApiError::from_backend(BackendError::NotFound, id.as_str())
}

fn bad_id() -> ApiError {
    ApiError::BadRequest("a job id is 1 to 64 characters of lowercase letters and digits, after an optional `s-` (EMR on EC2 steps)".into())
}

/// The `{id}` of a job route, checked before it reaches a backend or a URL. Any refusal,
/// including a path that is not valid UTF-8 once decoded, is a JSON 400.
pub struct JobIdPath(pub JobId);

impl<S: Send + Sync> FromRequestParts<S> for JobIdPath {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let Path(raw) = Path::<String>::from_request_parts(parts, state)
            .await
            .map_err(|_| bad_id())?;
        JobId::parse(&raw).map(JobIdPath).ok_or_else(bad_id)
    }
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

/// `POST /job`: validates, starts the job, records it, answers 201 with its id.
#[utoipa::path(
    post,
    path = "/job",
    tag = "jobs",
    operation_id = "start_job",
    summary = "Start a job",
    description = "Starts one job on the service's backend (an EMR on EKS job run, an EMR \
        Serverless job run, a step on an EMR cluster on EC2, a Livy batch, or a local spark-submit). Nothing from the body but the validated \
        job name reaches the spark-submit parameters; argument names and values only become \
        entry-point arguments. With an `Idempotency-Key`, a repeated request answers the \
        job the first one started.",
    request_body(content = StartJobRequest, content_type = "application/json"),
    params(
        ("Idempotency-Key" = Option<String>, Header, min_length = 1, max_length = 255,
         pattern = r"^[!-~]+$",
         description = "Makes a retried request start no second job"),
    ),
    responses(
        (status = 201, description = "The job started", body = JobCreated,
         headers(("Location" = String, description = "`/job/<id>`"))),
        (status = 400, description = "The body is not a valid job request", body = ErrorBody),
        (status = 401, description = "Missing or wrong API token", body = ErrorBody,
         headers(("WWW-Authenticate" = String))),
        (status = 408, description = "The body did not arrive within `BODY_READ_TIMEOUT` (10 s) of the headers", body = ErrorBody),
        (status = 413, description = "The body is larger than 64 KiB", body = ErrorBody),
        (status = 415, description = "The body is not declared as JSON", body = ErrorBody),
        (status = 409, description = "Another job with this `app-name` is open (not ended, or its \
            notice or clean-up not done); the body's `field` names `app-name`", body = ErrorBody),
        (status = 422, description = "The Idempotency-Key was used for a different request", body = ErrorBody),
        (status = 500, description = "Internal error", body = ErrorBody),
        (status = 502, description = "EMR refused the job", body = ErrorBody),
        (status = 503, description = "EMR is unavailable, or the service is at capacity", body = ErrorBody,
         headers(("Retry-After" = u64, description = "Seconds to wait"))),
    ),
    security(("api_token" = [])),
)]
pub async fn start_job(
    State(state): State<AppState>,
    headers: HeaderMap,
    ApiJson(RequestBody(body)): ApiJson<RequestBody>,
) -> Result<Response, ApiError> {
    let spec = validate_request(&body).map_err(ApiError::Invalid)?;
    state
        .backend
        .check_request(&spec)
        .map_err(ApiError::Invalid)?;
    let idempotency = idempotency_key(&headers)?.map(|key| Idempotency::new(key, &body));
    let starter = Starter {
        store: state.store.clone(),
        backend: state.backend.clone(),
        staging: state.staging.clone(),
    };
    let started = starter
        .start(spec.clone(), idempotency)
        .await
        .map_err(|e| start_error(e, &spec))?;
    if let Started::New(id) = &started {
        metrics::counter!("jobs_started_total", "algorithm" => spec.algorithm.slug()).increment(1);
        info!(
            job_id = %id,
            name = spec.name.as_str(),
            algorithm = spec.algorithm.env_name(),
            app_name = spec.app_name().unwrap_or_default(),
            "job started"
        );
    }
    Ok(created(started.id().as_str()))
}

/// The answer to a job that was not started.
fn start_error(e: StartError, spec: &JobSpec) -> ApiError {
    match e {
        StartError::KeyReused => ApiError::Unprocessable(e.to_string()),
        StartError::Invalid(field) => ApiError::Invalid(field),
        StartError::DatasetsFolder(why) => ApiError::unavailable(why, 5),
        StartError::AppNameInUse { holder } => {
            app_name_in_use(spec, holder.as_ref().map(JobId::as_str))
        }
        StartError::Staging(e @ StageError::Unavailable { .. }) => {
            ApiError::unavailable(e.to_string(), 5)
        }
        StartError::Staging(e @ StageError::Refused { .. }) => ApiError::bad_gateway(e.to_string()),
        StartError::Backend(e) => ApiError::from_backend(e, ""),
        StartError::Store(e) => e.into(),
        StartError::Aborted(why) => {
            ApiError::Internal(anyhow::anyhow!("the start of a job failed: {why}"))
        }
    }
}

/// The 409 of a second open job for one app name, naming the field.
fn app_name_in_use(spec: &JobSpec, holder: Option<&str>) -> ApiError {
    let app = spec.app_name().unwrap_or_default();
    let by = match holder {
        Some(id) => format!("job {id}"),
        None => "a job being started".to_owned(),
    };
    ApiError::InUse(FieldError {
        field: spec.app_name_field(),
        message: format!(
            "app-name '{app}' is in use by {by}, which has not ended or whose notice and \
             clean-up are not done; one job per app-name is open at a time"
        ),
    })
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
#[utoipa::path(
    get,
    path = "/job/{id}",
    tag = "jobs",
    operation_id = "read_job",
    summary = "Read a job",
    params(JobIdParam),
    responses(
        (status = 200, description = "The job as EMR reports it, with its notice and, once \
            the job has reported it, its progress", body = JobView),
        (status = 400, description = "Malformed job id", body = ErrorBody),
        (status = 401, description = "Missing or wrong API token", body = ErrorBody,
         headers(("WWW-Authenticate" = String))),
        (status = 404, description = "Unknown job", body = ErrorBody),
        (status = 500, description = "Internal error", body = ErrorBody),
        (status = 502, description = "EMR refused the request", body = ErrorBody),
        (status = 503, description = "EMR is unavailable, or the service is at capacity", body = ErrorBody,
         headers(("Retry-After" = u64, description = "Seconds to wait"))),
    ),
    security(("api_token" = [])),
)]
pub async fn read_job(
    State(state): State<AppState>,
    JobIdPath(id): JobIdPath,
) -> Result<Json<JobView>, ApiError> {
    let run = state
        .backend
        .describe(&id)
        .await
        .map_err(|e| ApiError::from_backend(e, id.as_str()))?;
    if !run.ours && state.store.job_final_state(&id).await?.is_none() {
        return Err(not_ours(&id));
    }
    let mut view = JobView::from(&run);
    view.notice = state.store.notice(&id).await?.map(|n| NoticeView {
        status: n.status.as_str().to_owned(),
        attempts: n.attempts,
        results_fetch_attempts: n.fetch_attempts,
        last_error: n.last_error,
    });
    view.progress = state
        .store
        .progress(&id)
        .await?
        .map(|p| crate::progress::view(&p, run.state.is_final()));
    Ok(Json(view))
}

/// `DELETE /job/{id}`.
#[utoipa::path(
    delete,
    path = "/job/{id}",
    tag = "jobs",
    operation_id = "cancel_job",
    summary = "Cancel a job",
    params(JobIdParam),
    responses(
        (status = 200, description = "Cancellation requested", body = JobCreated,
         headers(("Location" = String, description = "`/job/<id>`"))),
        (status = 400, description = "Malformed job id", body = ErrorBody),
        (status = 401, description = "Missing or wrong API token", body = ErrorBody,
         headers(("WWW-Authenticate" = String))),
        (status = 404, description = "Unknown job", body = ErrorBody),
        (status = 409, description = "The job can no longer be cancelled", body = ErrorBody),
        (status = 500, description = "Internal error", body = ErrorBody),
        (status = 502, description = "EMR refused the request", body = ErrorBody),
        (status = 503, description = "EMR is unavailable, or the service is at capacity", body = ErrorBody,
         headers(("Retry-After" = u64, description = "Seconds to wait"))),
    ),
    security(("api_token" = [])),
)]
pub async fn cancel_job(
    State(state): State<AppState>,
    JobIdPath(id): JobIdPath,
) -> Result<Response, ApiError> {
    // A job in the store is ours; any other is read first, and cancelled only when the
    // backend says this deployment started it.
    if state.store.job_final_state(&id).await?.is_none() {
        let run = state
            .backend
            .describe(&id)
            .await
            .map_err(|e| ApiError::from_backend(e, id.as_str()))?;
        if !run.ours {
            return Err(not_ours(&id));
        }
    }
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
#[utoipa::path(
    patch,
    path = "/job/{id}",
    tag = "callback",
    operation_id = "job_callback",
    summary = "The driver pod ended",
    description = "Called by the sidecar of the Spark driver pod when the driver ends. \
        The body is informational and may be missing or not JSON; the job's state is read \
        from EMR before Multiomix is told.",
    params(JobIdParam),
    request_body(content = Option<CallbackBody>, content_type = "application/json",
                 description = "Optional; anything that is not this object is ignored"),
    responses(
        (status = 204, description = "Taken; the job-end notice follows"),
        (status = 400, description = "Malformed job id", body = ErrorBody),
        (status = 401, description = "Missing or wrong callback token", body = ErrorBody,
         headers(("WWW-Authenticate" = String))),
        (status = 404, description = "A job this service did not start", body = ErrorBody),
        (status = 408, description = "The body did not arrive within `BODY_READ_TIMEOUT` (10 s) of the headers", body = ErrorBody),
        (status = 413, description = "The body is larger than 4 KiB", body = ErrorBody),
        (status = 500, description = "Internal error", body = ErrorBody),
        (status = 503, description = "Too many notices are waiting, or the service is at capacity",
         body = ErrorBody, headers(("Retry-After" = u64, description = "Seconds to wait"))),
    ),
    security(("callback_token" = [])),
)]
pub async fn job_callback(
    State(state): State<AppState>,
    JobIdPath(id): JobIdPath,
    body: Result<Bytes, BytesRejection>,
) -> Result<StatusCode, ApiError> {
    let body = body.map_err(from_bytes_rejection)?;
    // The reported state is informational only: the backend says what the job is.
    let reported = serde_json::from_slice::<Value>(&body)
        .ok()
        .and_then(|v| v.get("state").and_then(Value::as_str).map(str::to_owned));
    let reported = reported.as_deref().unwrap_or("-");
    let reported: String = reported.chars().take(64).collect();
    // Only jobs this service started get a notice: an unknown id costs no row and no
    // backend call. A job whose notice is closed (and perhaps pruned) is not opened again.
    match state.store.job_final_state(&id).await? {
        None => {
            info!(job_id = %id, reported = %reported, "callback for a job this service did not start; ignored");
            metrics::counter!("callbacks_unknown_total").increment(1);
            return Err(not_ours(&id));
        }
        Some(Some(final_state)) if state.store.notice(&id).await?.is_none() => {
            info!(job_id = %id, %final_state, "callback for a job already settled; nothing to do");
            return Ok(StatusCode::NO_CONTENT);
        }
        Some(_) => {}
    }
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
            Err(ApiError::unavailable(
                format!("too many job-end notices are waiting ({open}); try again later"),
                5,
            ))
        }
        Err(RequestError::Store(e)) => Err(e.into()),
    }
}

/// `GET /jobs?state=RUNNING&state=FAILED&page_size=20&next_token=...`: this service's
/// jobs, newest first.
#[utoipa::path(
    get,
    path = "/jobs",
    tag = "jobs",
    operation_id = "list_jobs",
    summary = "List this service's jobs",
    params(
        ("state" = Option<Vec<JobState>>, Query, style = Form, explode,
         description = "Only jobs in these states; repeat it or separate states with commas"),
        ("page_size" = Option<u32>, Query, minimum = 1, maximum = 50,
         description = "Jobs per page (EMR's maximum is 50)"),
        ("next_token" = Option<String>, Query, max_length = 1024,
         description = "`nextToken` of the previous page"),
    ),
    responses(
        (status = 200, description = "One page of jobs, newest first, each with its progress \
            as `GET /job/{id}` shows it", body = JobList),
        (status = 400, description = "Unknown parameter or state, page size out of range, or a \
            continuation token the backend does not accept", body = ErrorBody),
        (status = 401, description = "Missing or wrong API token", body = ErrorBody,
         headers(("WWW-Authenticate" = String))),
        (status = 502, description = "EMR refused the request", body = ErrorBody),
        (status = 503, description = "EMR is unavailable, or the service is at capacity", body = ErrorBody,
         headers(("Retry-After" = u64, description = "Seconds to wait"))),
    ),
    security(("api_token" = [])),
)]
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
    let page = state.backend.list(&q).await.map_err(|e| match e {
        // The only caller-supplied thing EMR can refuse is the continuation token.
        BackendError::Rejected(msg) if q.next_token.is_some() => ApiError::BadRequest(format!(
            "next_token was not accepted by the job backend: {msg}"
        )),
        e => ApiError::from_backend(e, ""),
    })?;
    // Each job's last progress report, as `GET /job/{id}` shows it: one read for the page.
    let ids: Vec<JobId> = page.jobs.iter().map(|run| run.id.clone()).collect();
    let reports = state.store.progress_of(&ids).await?;
    let jobs = page
        .jobs
        .iter()
        .map(|run| {
            let mut view = JobView::from(run);
            view.progress = reports
                .get(&run.id)
                .map(|p| crate::progress::view(p, run.state.is_final()));
            view
        })
        .collect();
    Ok(Json(JobList {
        jobs,
        next_token: page.next_token,
    }))
}

/// The `{id}` path parameter, for the OpenAPI document.
#[derive(utoipa::IntoParams)]
#[into_params(parameter_in = Path)]
pub struct JobIdParam {
    /// The job run id: 1 to 64 lowercase letters and digits (a Livy job's is `lv` and 32
    /// hex digits), or an EMR on EC2 step id in lower case (`s-` and lowercase letters
    /// and digits).
    #[param(
        min_length = 1,
        max_length = 64,
        pattern = "^(s-)?[0-9a-z]{1,64}$",
        example = "000000031kd8aj0vtn3"
    )]
    pub id: String,
}
