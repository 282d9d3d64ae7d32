//! Metrics for any backend: every call counted by operation and outcome, and timed.
//! A decorator, so EMR, the local runner and test doubles are measured the same way and
//! none of them has to know about metrics.

use std::future::Future;
use std::sync::Arc;
use std::time::Instant;

use async_trait::async_trait;

use super::{BackendError, Described, JobBackend, JobPage, ListQuery};
use crate::job::{BackendKind, JobId, JobRun, JobSpec};

/// Wraps a backend; see the module documentation.
pub struct InstrumentedBackend {
    inner: Arc<dyn JobBackend>,
}

impl InstrumentedBackend {
    pub fn wrap(inner: Arc<dyn JobBackend>) -> Arc<dyn JobBackend> {
        Arc::new(InstrumentedBackend { inner })
    }
}

/// The `outcome` label of `backend_calls_total`.
pub fn outcome<T>(result: &Result<T, BackendError>) -> &'static str {
    match result {
        Ok(_) => "ok",
        Err(BackendError::NotFound) => "not_found",
        Err(BackendError::Conflict(_)) => "conflict",
        Err(BackendError::Rejected(_)) => "rejected",
        Err(BackendError::Invalid(_)) => "invalid",
        Err(BackendError::Unavailable(_)) => "unavailable",
    }
}

/// Runs one call and records it. The labels are static strings, so recording allocates
/// nothing.
async fn observe<T>(
    operation: &'static str,
    call: impl Future<Output = Result<T, BackendError>>,
) -> Result<T, BackendError> {
    let started = Instant::now();
    let result = call.await;
    metrics::histogram!("backend_call_duration_seconds", "operation" => operation)
        .record(started.elapsed().as_secs_f64());
    metrics::counter!("backend_calls_total", "operation" => operation, "outcome" => outcome(&result))
        .increment(1);
    result
}

#[async_trait]
impl JobBackend for InstrumentedBackend {
    fn kind(&self) -> BackendKind {
        self.inner.kind()
    }

    fn tells_when_jobs_end(&self) -> bool {
        self.inner.tells_when_jobs_end()
    }

    fn check_request(&self, spec: &JobSpec) -> Result<(), crate::job::FieldError> {
        self.inner.check_request(spec)
    }

    async fn start(&self, spec: &JobSpec, client_token: &str) -> Result<JobId, BackendError> {
        observe("start", self.inner.start(spec, client_token)).await
    }

    async fn describe(&self, id: &JobId) -> Result<JobRun, BackendError> {
        observe("describe", self.inner.describe(id)).await
    }

    async fn cancel(&self, id: &JobId) -> Result<(), BackendError> {
        observe("cancel", self.inner.cancel(id)).await
    }

    async fn list(&self, query: &ListQuery) -> Result<JobPage, BackendError> {
        observe("list", self.inner.list(query)).await
    }

    async fn check(&self) -> Result<(), BackendError> {
        observe("check", self.inner.check()).await
    }

    async fn describe_batch(&self, ids: &[JobId]) -> Result<Described, BackendError> {
        observe("describe_batch", self.inner.describe_batch(ids)).await
    }

    async fn find_submission(
        &self,
        client_token: &str,
        since: time::OffsetDateTime,
    ) -> Result<super::Submitted, BackendError> {
        observe(
            "find_submission",
            self.inner.find_submission(client_token, since),
        )
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_error_kind_has_its_own_outcome_label() {
        let labels = [
            outcome::<()>(&Ok(())),
            outcome::<()>(&Err(BackendError::NotFound)),
            outcome::<()>(&Err(BackendError::Conflict("c".into()))),
            outcome::<()>(&Err(BackendError::Rejected("r".into()))),
            outcome::<()>(&Err(BackendError::Unavailable("u".into()))),
        ];
        assert_eq!(
            labels,
            ["ok", "not_found", "conflict", "rejected", "unavailable"]
        );
    }
}
