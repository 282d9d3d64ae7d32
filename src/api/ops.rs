//! What the service owes its operators: an index page, liveness, readiness, metrics,
//! and JSON answers for unknown routes and panics.

use std::any::Any;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::extract::State;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use serde_json::json;

use super::error::{ApiError, ErrorBody};
use super::{status_json, AppState, READY_CACHE};
use crate::backend::{BackendError, JobBackend};
use crate::job::BackendKind;

/// The body of `GET /health`.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Health {
    /// Always `ok`.
    pub status: &'static str,
}

/// The body of `GET /ready`.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ReadyBody {
    /// `ready` or `not ready`.
    pub status: &'static str,
    /// Which job backend the service runs: `emr` (EMR on EKS), `emr-serverless`, `emr-ec2`,
    /// `livy` or `local`.
    pub backend: &'static str,
    /// What is wrong, when not ready: a short reason (`emr backend: rejected
    /// (AccessDeniedException)`), or, for a caller that presents `API_TOKEN`, the whole
    /// text the store or the backend gave (which can name accounts, roles and internal
    /// addresses). The whole text is logged either way.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub problems: Option<Vec<String>>,
}

/// One reason `/ready` fails, in the two forms it is shown in.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Problem {
    /// Safe for anyone: what failed and how, at most an error code.
    short: String,
    /// Everything known, for the log and for callers with the API token.
    full: String,
}

impl Problem {
    /// Text of this service's own making, which carries nothing to hide.
    fn own(text: String) -> Self {
        Problem {
            short: text.clone(),
            full: text,
        }
    }

    /// `outcome` is the error's `backend_calls_total` label (`rejected`, `unavailable`).
    fn backend(kind: BackendKind, outcome: &str, err: &BackendError) -> Self {
        let short = match error_code(&err.to_string()) {
            Some(code) => format!("{kind} backend: {outcome} ({code})"),
            None => format!("{kind} backend: {outcome}"),
        };
        Problem {
            short,
            full: format!("{kind} backend: {err}"),
        }
    }
}

/// The AWS error code in a message the backends write as `Operation: Code: message`
/// (`DescribeCluster: AccessDeniedException: User: arn:...`), when there is one.
fn error_code(message: &str) -> Option<&str> {
    let rest = message
        .strip_prefix("the job backend refused the request: ")
        .or_else(|| message.strip_prefix("the job backend is unavailable: "))
        .unwrap_or(message);
    let mut parts = rest.splitn(3, ": ");
    let (operation, code) = (parts.next()?, parts.next()?);
    parts.next()?;
    let word =
        |w: &str| !w.is_empty() && w.len() <= 64 && w.bytes().all(|b| b.is_ascii_alphabetic());
    (word(operation) && word(code)).then_some(code)
}

/// `GET /`: names the service, its version and its backend.
#[utoipa::path(
    get,
    path = "/",
    tag = "operations",
    operation_id = "index",
    summary = "Name and version of the service",
    responses(
        (status = 200, description = "A short text page", body = String, content_type = "text/plain"),
        (status = 503, description = "The service is at capacity", body = ErrorBody,
         headers(("Retry-After" = u64))),
    ),
)]
pub async fn index(State(state): State<AppState>) -> Response {
    let body = format!(
        "multiomix-aws-emr {}\nRuns Multiomix feature-selection jobs ({} backend).\n\
         Routes: POST /job, GET /jobs, GET|DELETE|PATCH /job/{{id}}, GET /health, GET /ready, \
         GET /metrics, GET /openapi.json\n",
        env!("CARGO_PKG_VERSION"),
        state.backend.kind()
    );
    ([(header::CONTENT_TYPE, "text/plain; charset=utf-8")], body).into_response()
}

/// `GET /health`: the process is serving.
#[utoipa::path(
    get,
    path = "/health",
    tag = "operations",
    operation_id = "health",
    summary = "Liveness",
    responses(
        (status = 200, description = "The process is serving; answered even when the \
            service is at capacity", body = Health),
    ),
)]
pub async fn health() -> Response {
    (StatusCode::OK, axum::Json(Health { status: "ok" })).into_response()
}

/// How long `/ready` waits for a check of the store or the backend: below the
/// readiness probe's 3 s timeout, so that a slow EMR makes the probe fail with a reason
/// instead of timing out.
pub const CHECK_BUDGET: Duration = Duration::from_secs(2);

/// What `/ready` knows beyond the check of the moment: the last check of the backend,
/// reused for [`READY_CACHE`] so that probes do not turn into a stream of EMR calls, and
/// the background tasks that stopped when they should not have.
#[derive(Default)]
pub struct Readiness {
    last: std::sync::Mutex<Option<(Instant, Result<(), Problem>)>>,
    /// A check of the backend is in flight; probes meanwhile answer from `last`.
    checking: AtomicBool,
    dead: std::sync::Mutex<Vec<(String, String)>>,
}

impl Readiness {
    /// A background task the service cannot do without has stopped: `/ready` fails from
    /// now on, naming it.
    pub fn task_died(&self, task: &str, why: &str) {
        self.dead
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push((task.to_owned(), why.to_owned()));
    }

    fn dead_tasks(&self) -> Vec<(String, String)> {
        self.dead.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    fn last(&self) -> Option<(Instant, Result<(), Problem>)> {
        self.last.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// The backend's state: the last result while it is fresh or while a new check is in
    /// flight; otherwise a new check, bounded by [`CHECK_BUDGET`], that goes on in the
    /// background (and answers later probes) if it takes longer.
    async fn backend(self: &Arc<Self>, backend: &Arc<dyn JobBackend>) -> Result<(), Problem> {
        let kind = backend.kind();
        let last = self.last();
        if let Some((at, result)) = &last {
            if at.elapsed() < READY_CACHE {
                return result.clone();
            }
        }
        if self
            .checking
            .compare_exchange(false, true, Ordering::AcqRel, Ordering::Acquire)
            .is_err()
        {
            return match last {
                Some((_, result)) => result,
                None => Err(Problem::own(format!(
                    "{kind} backend: the first check is still running"
                ))),
            };
        }
        let this = self.clone();
        let backend = backend.clone();
        let check = tokio::spawn(async move {
            let result = backend.check().await;
            let outcome = crate::backend::instrumented::outcome(&result);
            let result = result.map_err(|e| Problem::backend(kind, outcome, &e));
            *this.last.lock().unwrap_or_else(|e| e.into_inner()) =
                Some((Instant::now(), result.clone()));
            this.checking.store(false, Ordering::Release);
            result
        });
        match tokio::time::timeout(CHECK_BUDGET, check).await {
            Ok(Ok(result)) => result,
            Ok(Err(e)) => {
                self.checking.store(false, Ordering::Release);
                tracing::error!(error = %e, "the check of the backend failed");
                Err(Problem::own(format!("{kind} backend: the check failed")))
            }
            Err(_) => Err(Problem::own(format!(
                "{kind} backend: no answer within {} s",
                CHECK_BUDGET.as_secs_f64()
            ))),
        }
    }
}

/// `GET /ready`: the store answers, the backend can be reached, and no background task
/// has stopped.
#[utoipa::path(
    get,
    path = "/ready",
    tag = "operations",
    operation_id = "ready",
    summary = "Readiness",
    responses(
        (status = 200, description = "The store and the job backend answer", body = ReadyBody),
        (status = 503, description = "The store or the job backend does not answer, a \
            background task (the notice outbox, the reconciler, the forwarding of ended jobs, \
            the metrics upkeep) has stopped, or the service is at capacity", body = ReadyBody),
    ),
)]
pub async fn ready(State(state): State<AppState>, headers: HeaderMap) -> Response {
    let mut problems: Vec<Problem> = state
        .readiness
        .dead_tasks()
        .into_iter()
        .map(|(task, why)| Problem {
            short: format!("{task} stopped"),
            full: format!("{task} stopped: {why}"),
        })
        .collect();
    match tokio::time::timeout(CHECK_BUDGET, state.store.ping()).await {
        Ok(Ok(())) => {}
        Ok(Err(e)) => problems.push(Problem {
            short: "store: unavailable".into(),
            full: format!("store: {e}"),
        }),
        Err(_) => problems.push(Problem::own(format!(
            "store: no answer within {} s",
            CHECK_BUDGET.as_secs_f64()
        ))),
    }
    if let Err(problem) = state.readiness.backend(&state.backend).await {
        problems.push(problem);
    }
    let backend = state.backend.kind().as_str();
    if problems.is_empty() {
        let body = ReadyBody {
            status: "ready",
            backend,
            problems: None,
        };
        (StatusCode::OK, axum::Json(body)).into_response()
    } else {
        let full: Vec<&str> = problems.iter().map(|p| p.full.as_str()).collect();
        tracing::warn!(problems = ?full, "not ready");
        let authenticated =
            super::auth::carries_token(&headers, state.config.server.api_token.as_ref());
        let shown = problems
            .into_iter()
            .map(|p| if authenticated { p.full } else { p.short })
            .collect();
        let body = ReadyBody {
            status: "not ready",
            backend,
            problems: Some(shown),
        };
        (StatusCode::SERVICE_UNAVAILABLE, axum::Json(body)).into_response()
    }
}

/// `GET /metrics`: Prometheus text format.
#[utoipa::path(
    get,
    path = "/metrics",
    tag = "operations",
    operation_id = "metrics",
    summary = "Prometheus metrics",
    responses(
        (status = 200, description = "Prometheus text exposition format", body = String,
         content_type = "text/plain"),
        (status = 404, description = "Metrics are not enabled in this process", body = ErrorBody),
        (status = 503, description = "The service is at capacity", body = ErrorBody,
         headers(("Retry-After" = u64))),
    ),
)]
pub async fn metrics(State(state): State<AppState>) -> Response {
    match &state.metrics {
        Some(handle) => (
            [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
            handle.render(),
        )
            .into_response(),
        None => status_json(
            StatusCode::NOT_FOUND,
            json!({"error": "not_found", "message": "metrics are not enabled"}),
        ),
    }
}

pub async fn not_found() -> Response {
    status_json(
        StatusCode::NOT_FOUND,
        json!({"error": "not_found", "message": "no such route"}),
    )
}

pub async fn method_not_allowed() -> Response {
    status_json(
        StatusCode::METHOD_NOT_ALLOWED,
        json!({"error": "method_not_allowed", "message": "this route does not take that method"}),
    )
}

/// A panicking handler answers 500 in JSON like every other error; the panic is logged.
pub fn panic_response(panic: Box<dyn Any + Send + 'static>) -> Response {
    let detail = panic
        .downcast_ref::<String>()
        .cloned()
        .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
        .unwrap_or_else(|| "unknown panic".into());
    ApiError::Internal(anyhow::anyhow!("handler panicked: {detail}")).into_response()
}
