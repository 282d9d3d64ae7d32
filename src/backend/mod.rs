//! Job backends: where jobs actually run. The HTTP layer and the notifier only know this
//! trait, so EMR on EKS, the local spark-submit runner and test doubles are interchangeable.

pub mod batch;
pub mod emr;
pub mod finished;
pub mod instrumented;
pub mod livy;
pub mod local;
pub mod paging;
pub mod registry;
pub mod spark;

use std::sync::Arc;

use async_trait::async_trait;
use time::OffsetDateTime;

use crate::job::{BackendKind, JobId, JobRun, JobSpec, JobState};

/// Why a backend call failed: the words an answer or a log line shows, and the error that
/// said so (an SDK error with its whole chain: the dispatch failure, the I/O error under
/// it), kept as the `source` so that the log can show all of it. Reads as its words.
#[derive(Clone, Debug)]
pub struct Cause {
    message: String,
    source: Option<Arc<dyn std::error::Error + Send + Sync>>,
}

impl Cause {
    pub fn with_source(
        message: impl Into<String>,
        source: impl std::error::Error + Send + Sync + 'static,
    ) -> Self {
        Cause {
            message: message.into(),
            source: Some(Arc::new(source)),
        }
    }
}

impl std::fmt::Display for Cause {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for Cause {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.source
            .as_deref()
            .map(|e| e as &(dyn std::error::Error + 'static))
    }
}

impl std::ops::Deref for Cause {
    type Target = str;
    fn deref(&self) -> &str {
        &self.message
    }
}

impl From<String> for Cause {
    fn from(message: String) -> Self {
        Cause {
            message,
            source: None,
        }
    }
}

impl From<&str> for Cause {
    fn from(message: &str) -> Self {
        message.to_owned().into()
    }
}

impl From<Cause> for String {
    fn from(cause: Cause) -> String {
        cause.message
    }
}

/// An error and every cause under it, one after the other, for a log line: what a
/// `BackendError`'s words leave out (the SDK's chain down to the I/O error). A cause that
/// only repeats the one above it is left out.
pub fn error_chain(err: &(dyn std::error::Error + 'static)) -> String {
    let mut out = err.to_string();
    let mut last = out.clone();
    let mut next = err.source();
    while let Some(e) = next {
        let text = e.to_string();
        if !last.ends_with(&text) {
            out.push_str(": ");
            out.push_str(&text);
        }
        last = text;
        next = e.source();
    }
    out
}

/// What can go wrong when talking to a backend, sorted by what the caller should do.
#[derive(Debug, thiserror::Error)]
pub enum BackendError {
    /// The job does not exist (or is not visible to this service).
    #[error("job run not found")]
    NotFound,
    /// The job is in a state where the operation makes no sense (e.g. cancelling a
    /// finished job).
    #[error("{0}")]
    Conflict(String),
    /// The backend understood the request and refused it; retrying will not help.
    #[error("the job backend refused the request: {0}")]
    Rejected(#[source] Cause),
    /// The request cannot be submitted as it is (too long for the backend, say); the
    /// caller must change it.
    #[error("{0}")]
    Invalid(String),
    /// The backend could not be reached, throttled us or failed; retrying later may help.
    #[error("the job backend is unavailable: {0}")]
    Unavailable(#[source] Cause),
}

/// One page of [`JobBackend::list`].
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ListQuery {
    /// Only jobs in one of these states; empty means all.
    pub states: Vec<JobState>,
    pub created_after: Option<OffsetDateTime>,
    pub page_size: Option<u32>,
    pub next_token: Option<String>,
}

#[derive(Clone, Debug, Default, PartialEq)]
pub struct JobPage {
    pub jobs: Vec<JobRun>,
    pub next_token: Option<String>,
}

/// What [`JobBackend::describe_batch`] read: each id asked for, with its run or why it
/// could not be read.
pub type Described = Vec<(JobId, Result<JobRun, BackendError>)>;

/// Cancels `id` the way the EMR backends must, since EMR answers a cancel of a finished run
/// with a generic refusal: the run is read first (a final run is a `Conflict`, one already
/// cancelling needs nothing), then `send` asks the service, and a refusal is read again in
/// case the run ended between the two calls.
pub async fn cancel_after_reading<B, F, Fut>(
    backend: &B,
    id: &JobId,
    send: F,
) -> Result<(), BackendError>
where
    B: JobBackend + ?Sized,
    F: FnOnce() -> Fut,
    Fut: std::future::Future<Output = Result<(), BackendError>>,
{
    let run = backend.describe(id).await?;
    match run.state {
        s if s.is_final() => return Err(no_longer_cancellable(id, s)),
        JobState::CancelPending => return Ok(()),
        _ => {}
    }
    match send().await {
        Err(BackendError::Rejected(msg)) => match backend.describe(id).await {
            Ok(run) if run.state.is_final() => Err(no_longer_cancellable(id, run.state)),
            _ => Err(BackendError::Rejected(msg)),
        },
        other => other,
    }
}

fn no_longer_cancellable(id: &JobId, state: JobState) -> BackendError {
    BackendError::Conflict(format!(
        "job {id} is already {state} and can no longer be cancelled"
    ))
}

/// The run tag (or, on EMR on EC2, the step argument read back as one) that carries the
/// job's `app-name`, so that a job adopted after the store was lost still has its results
/// copied before its notice. Every backend that keeps tags sets it.
pub const APP_NAME_TAG: &str = "app-name";

/// The value of a job's `app-name` tag: its app name when that is a plain folder name,
/// which is also a valid tag value everywhere.
pub(crate) fn app_name_tag(spec: &JobSpec) -> Option<String> {
    spec.app_name()
        .filter(|app| crate::job::is_valid_app_name(app))
        .map(str::to_owned)
}

/// What a backend knows of a `start` it may or may not have received: see
/// [`JobBackend::find_submission`].
#[derive(Clone, Debug, PartialEq)]
pub enum Submitted {
    /// The start with this client token made this job.
    Started(JobRun),
    /// No job was made with this client token.
    NotStarted,
    /// The backend cannot tell.
    Unknown,
}

/// What the API, the outbox and the reconciler ask of wherever Spark runs: start a job,
/// read it, cancel it, list this deployment's jobs, and say whether the backend is
/// reachable. Each backend (EMR on EKS, EMR Serverless, EMR on EC2, Livy, local spark-submit)
/// owns its SDK, its id format and the mapping of its states onto the ones Multiomix
/// knows, so the API never changes between them; `tests/integration/conformance/` holds every
/// backend to the same behaviour.
#[async_trait]
pub trait JobBackend: Send + Sync + 'static {
    /// Which backend this is; its name is what logs, metrics, `/ready` and the store show.
    fn kind(&self) -> BackendKind;

    /// Whether the service learns of a job's end without asking: a sidecar's callback
    /// (EMR on EKS) or the backend's own report (local). Then the reconciler's reads,
    /// every `RECONCILE_INTERVAL`, are only a safety net. A backend that keeps this
    /// default (`false`) has its unfinished jobs read every `POLL_INTERVAL`.
    fn tells_when_jobs_end(&self) -> bool {
        false
    }

    /// Checks, before anything is staged or started, what only this backend can: that
    /// the files a request names are where its jobs may read them. A refusal is a 400
    /// naming the field. The default has nothing to add to the request's own checks.
    fn check_request(&self, spec: &JobSpec) -> Result<(), crate::job::FieldError> {
        let _ = spec;
        Ok(())
    }

    /// Starts a job. The same `client_token` twice starts one job and returns its id twice.
    async fn start(&self, spec: &JobSpec, client_token: &str) -> Result<JobId, BackendError>;

    async fn describe(&self, id: &JobId) -> Result<JobRun, BackendError>;

    /// Asks the job to stop. A job already in a final state is a `Conflict`.
    async fn cancel(&self, id: &JobId) -> Result<(), BackendError>;

    /// This service's own jobs, newest first.
    async fn list(&self, query: &ListQuery) -> Result<JobPage, BackendError>;

    /// Whether the backend can do its work right now (credentials, cluster, program).
    async fn check(&self) -> Result<(), BackendError>;

    /// Reads many tracked runs at once, for the rounds that look for ended jobs. Every id
    /// asked for is in the answer. This default reads them one by one; a backend that can
    /// list its runs by state overrides it with [`batch::describe_by_listing`], which
    /// costs a page of active runs per call instead of one call per run.
    async fn describe_batch(&self, ids: &[JobId]) -> Result<Described, BackendError> {
        let mut out = Vec::with_capacity(ids.len());
        for id in ids {
            out.push((id.clone(), self.describe(id).await));
        }
        Ok(out)
    }

    /// Finds the job that a [`start`](Self::start) with `client_token`, made at or after
    /// `since`, started, if any. The reconciler uses it for submissions that were not
    /// recorded as complete (the process stopped, or the store failed, between the start
    /// and its record). A backend that cannot tell keeps this default: such submissions
    /// stay until an operator looks (they are logged).
    async fn find_submission(
        &self,
        client_token: &str,
        since: OffsetDateTime,
    ) -> Result<Submitted, BackendError> {
        let _ = (client_token, since);
        Ok(Submitted::Unknown)
    }
}
