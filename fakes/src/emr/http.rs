//! The emr-containers routes: request parsing and responses in the REST-JSON shapes.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use axum::body::{Body, Bytes};
use axum::extract::{Path, RawQuery, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use serde_json::Value;
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

use super::store::{ClusterFilter, Fault, JobFilter, StartRequest};
use super::{call_counts, JobState, Operation, Shared};

type SharedState = State<Arc<Shared>>;

pub(crate) fn router(shared: Arc<Shared>) -> Router {
    Router::new()
        .route(
            "/virtualclusters",
            get(list_virtual_clusters).post(create_virtual_cluster),
        )
        .route("/virtualclusters/{vc}", get(describe_virtual_cluster))
        .route(
            "/virtualclusters/{vc}/jobruns",
            get(list_job_runs).post(start_job_run),
        )
        .route(
            "/virtualclusters/{vc}/jobruns/{id}",
            get(describe_job_run).delete(cancel_job_run),
        )
        .route("/_calls", get(calls))
        .fallback(unknown_operation)
        .with_state(shared)
}

static REQUEST_SEQ: AtomicU64 = AtomicU64::new(1);

/// Every AWS answer carries a request id; the SDK reads it into its errors and outputs.
fn request_id() -> HeaderValue {
    let n = REQUEST_SEQ.fetch_add(1, Ordering::Relaxed);
    let id = format!(
        "fa4e0000-{:04x}-4{:03x}-8000-{:012x}",
        (n >> 48) & 0xffff,
        (n >> 36) & 0xfff,
        n & 0xffff_ffff_ffff
    );
    HeaderValue::try_from(id).expect("ASCII")
}

fn json(status: StatusCode, body: Vec<u8>) -> Response {
    let mut response = Response::new(Body::from(body));
    *response.status_mut() = status;
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    headers.insert("x-amzn-RequestId", request_id());
    response
}

impl IntoResponse for Fault {
    fn into_response(self) -> Response {
        let body =
            serde_json::to_vec(&serde_json::json!({ "message": self.message })).expect("JSON");
        let mut response = json(self.status, body);
        if let Ok(value) = HeaderValue::try_from(self.error_type) {
            response.headers_mut().insert("x-amzn-ErrorType", value);
        }
        response
    }
}

fn answer(result: Result<Vec<u8>, Fault>) -> Response {
    match result {
        Ok(body) => json(StatusCode::OK, body),
        Err(fault) => fault.into_response(),
    }
}

/// Counts the call, waits while it is held and then the scripted delay, and answers an
/// injected error if one is due.
async fn enter(shared: &Shared, op: Operation) -> Result<(), Response> {
    let (delay, fault) = shared.enter(op);
    shared.pass_hold(op).await;
    if !delay.is_zero() {
        tokio::time::sleep(delay).await;
    }
    match fault {
        Some(fault) => Err(fault.into_response()),
        None => Ok(()),
    }
}

fn parse_json(body: &[u8]) -> Result<Value, Fault> {
    if body.is_empty() {
        return Ok(Value::Object(Default::default()));
    }
    serde_json::from_slice(body)
        .map_err(|error| Fault::validation(format!("The request body is not valid JSON: {error}")))
}

async fn start_job_run(
    State(shared): SharedState,
    Path(vc): Path<String>,
    body: Bytes,
) -> Response {
    if let Err(response) = enter(&shared, Operation::StartJobRun).await {
        if shared.settings.record_start_requests {
            if let Ok(body) = parse_json(&body) {
                shared.lock().start_requests.push(body);
            }
        }
        return response;
    }
    let body = match parse_json(&body) {
        Ok(body) => body,
        Err(fault) => return fault.into_response(),
    };
    let request = StartRequest::parse(&body);
    let mut inner = shared.lock();
    if shared.settings.record_start_requests {
        inner.start_requests.push(body);
    }
    answer(request.and_then(|request| inner.start_job_run(&shared.settings, &vc, request)))
}

async fn describe_job_run(
    State(shared): SharedState,
    Path((vc, id)): Path<(String, String)>,
) -> Response {
    if let Err(response) = enter(&shared, Operation::DescribeJobRun).await {
        return response;
    }
    answer(shared.lock().describe_job_run(&vc, &id))
}

async fn cancel_job_run(
    State(shared): SharedState,
    Path((vc, id)): Path<(String, String)>,
) -> Response {
    if let Err(response) = enter(&shared, Operation::CancelJobRun).await {
        return response;
    }
    answer(shared.lock().cancel_job_run(&shared.settings, &vc, &id))
}

async fn list_job_runs(
    State(shared): SharedState,
    Path(vc): Path<String>,
    RawQuery(query): RawQuery,
) -> Response {
    if let Err(response) = enter(&shared, Operation::ListJobRuns).await {
        return response;
    }
    let filter = match job_filter(query.as_deref().unwrap_or("")) {
        Ok(filter) => filter,
        Err(fault) => return fault.into_response(),
    };
    answer(shared.lock().list_job_runs(&vc, &filter))
}

async fn describe_virtual_cluster(State(shared): SharedState, Path(vc): Path<String>) -> Response {
    if let Err(response) = enter(&shared, Operation::DescribeVirtualCluster).await {
        return response;
    }
    answer(shared.lock().describe_virtual_cluster(&vc))
}

async fn list_virtual_clusters(State(shared): SharedState, RawQuery(query): RawQuery) -> Response {
    if let Err(response) = enter(&shared, Operation::ListVirtualClusters).await {
        return response;
    }
    let filter = match cluster_filter(query.as_deref().unwrap_or("")) {
        Ok(filter) => filter,
        Err(fault) => return fault.into_response(),
    };
    answer(shared.lock().list_virtual_clusters(&filter))
}

async fn create_virtual_cluster(State(shared): SharedState, body: Bytes) -> Response {
    if let Err(response) = enter(&shared, Operation::CreateVirtualCluster).await {
        return response;
    }
    let result = parse_json(&body).and_then(|body| {
        shared
            .lock()
            .create_virtual_cluster(&shared.settings, &body)
    });
    answer(result)
}

/// Not an AWS route: the benchmark reads the call counts from here.
async fn calls(State(shared): SharedState) -> Response {
    json(
        StatusCode::OK,
        serde_json::to_vec(&call_counts(&shared)).expect("JSON"),
    )
}

async fn unknown_operation() -> Response {
    Fault {
        status: StatusCode::NOT_FOUND,
        error_type: "UnknownOperationException".to_owned(),
        message: "The requested operation is not supported by this endpoint.".to_owned(),
    }
    .into_response()
}

/// `createdAfter`/`createdBefore` arrive as RFC 3339 (the SDK writes UTC with a `Z`).
fn timestamp(field: &str, value: &str) -> Result<i128, Fault> {
    OffsetDateTime::parse(value, &Rfc3339)
        .map(OffsetDateTime::unix_timestamp_nanos)
        .map_err(|_| Fault::validation(format!("{field} {value:?} is not an ISO 8601 date-time.")))
}

fn max_results(value: &str) -> Result<usize, Fault> {
    value
        .parse::<usize>()
        .ok()
        .filter(|n| *n >= 1)
        .ok_or_else(|| {
            Fault::validation(format!("maxResults {value:?} must be a positive integer."))
        })
}

fn job_filter(query: &str) -> Result<JobFilter, Fault> {
    let mut filter = JobFilter::default();
    for (key, value) in form_urlencoded::parse(query.as_bytes()) {
        match &*key {
            "states" => {
                let state = value.parse::<JobState>().map_err(|_| {
                    Fault::validation(format!(
                        "1 validation error detected: Value '{value}' at 'states' failed to \
                         satisfy constraint: Member must satisfy enum value set: {:?}",
                        JobState::ALL.map(JobState::as_str)
                    ))
                })?;
                filter.states.push(state);
                if filter.states.len() > 10 {
                    return Err(Fault::validation("states may list at most 10 states."));
                }
            }
            "createdAfter" => filter.created_after = Some(timestamp(&key, &value)?),
            "createdBefore" => filter.created_before = Some(timestamp(&key, &value)?),
            "name" => filter.name = Some(value.into_owned()),
            "maxResults" => filter.max_results = Some(max_results(&value)?),
            "nextToken" => filter.next_token = Some(value.into_owned()),
            _ => {}
        }
    }
    Ok(filter)
}

fn cluster_filter(query: &str) -> Result<ClusterFilter, Fault> {
    let mut filter = ClusterFilter::default();
    for (key, value) in form_urlencoded::parse(query.as_bytes()) {
        match &*key {
            "states" => filter.states.push(value.into_owned()),
            "containerProviderId" => filter.container_provider_id = Some(value.into_owned()),
            "createdAfter" | "createdBefore" => {
                timestamp(&key, &value)?;
            }
            "maxResults" => filter.max_results = Some(max_results(&value)?),
            "nextToken" => filter.next_token = Some(value.into_owned()),
            _ => {}
        }
    }
    Ok(filter)
}
