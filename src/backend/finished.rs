//! Remembers job runs that reached a final state. EMR never changes a run once it is
//! COMPLETED, FAILED or CANCELLED, so reading it again is a DescribeJobRun (a signed
//! AWS call, subject to EMR's rate limits) that cannot tell anything new: Multiomix's
//! reads of a finished job and the outbox's read before a notice are answered from here.
//! Runs that are not final are always read from the backend.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};

use async_trait::async_trait;

use super::{BackendError, Described, JobBackend, JobPage, ListQuery};
use crate::job::{BackendKind, JobId, JobRun, JobSpec};

/// How many finished runs are kept (a few hundred bytes each); the oldest go first.
pub const CAPACITY: usize = 1024;

pub struct FinishedRuns {
    inner: Arc<dyn JobBackend>,
    capacity: usize,
    runs: Mutex<Runs>,
}

#[derive(Default)]
struct Runs {
    by_id: HashMap<JobId, JobRun>,
    order: VecDeque<JobId>,
}

impl FinishedRuns {
    pub fn wrap(inner: Arc<dyn JobBackend>, capacity: usize) -> Arc<dyn JobBackend> {
        Arc::new(FinishedRuns {
            inner,
            capacity,
            runs: Mutex::default(),
        })
    }

    fn get(&self, id: &JobId) -> Option<JobRun> {
        self.lock().by_id.get(id).cloned()
    }

    /// Keeps a final run, as long as it was read whole: a run from a listing that
    /// carries no tags (EMR Serverless's ListJobRuns) is not, and answering a later read
    /// with it would lose its tags, the `app-name` among them.
    fn remember(&self, run: &JobRun) {
        if self.capacity == 0 || !run.state.is_final() || run.tags.is_empty() {
            return;
        }
        let mut runs = self.lock();
        if runs.by_id.contains_key(&run.id) {
            return;
        }
        while runs.order.len() >= self.capacity {
            if let Some(oldest) = runs.order.pop_front() {
                runs.by_id.remove(&oldest);
            }
        }
        runs.order.push_back(run.id.clone());
        runs.by_id.insert(run.id.clone(), run.clone());
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Runs> {
        // The map is always consistent between statements; a panic elsewhere cannot
        // leave it half-updated.
        self.runs.lock().unwrap_or_else(|e| e.into_inner())
    }
}

#[async_trait]
impl JobBackend for FinishedRuns {
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
        self.inner.start(spec, client_token).await
    }

    async fn describe(&self, id: &JobId) -> Result<JobRun, BackendError> {
        if let Some(run) = self.get(id) {
            return Ok(run);
        }
        let run = self.inner.describe(id).await?;
        self.remember(&run);
        Ok(run)
    }

    async fn cancel(&self, id: &JobId) -> Result<(), BackendError> {
        if let Some(run) = self.get(id) {
            return Err(BackendError::Conflict(format!(
                "job {id} is already {} and can no longer be cancelled",
                run.state
            )));
        }
        self.inner.cancel(id).await
    }

    async fn list(&self, query: &ListQuery) -> Result<JobPage, BackendError> {
        let page = self.inner.list(query).await?;
        for run in &page.jobs {
            self.remember(run);
        }
        Ok(page)
    }

    async fn check(&self) -> Result<(), BackendError> {
        self.inner.check().await
    }

    async fn describe_batch(&self, ids: &[JobId]) -> Result<Described, BackendError> {
        let mut out = Vec::with_capacity(ids.len());
        let mut unknown = Vec::new();
        for id in ids {
            match self.get(id) {
                Some(run) => out.push((id.clone(), Ok(run))),
                None => unknown.push(id.clone()),
            }
        }
        if !unknown.is_empty() {
            for (id, result) in self.inner.describe_batch(&unknown).await? {
                if let Ok(run) = &result {
                    self.remember(run);
                }
                out.push((id, result));
            }
        }
        Ok(out)
    }

    async fn find_submission(
        &self,
        client_token: &str,
        since: time::OffsetDateTime,
    ) -> Result<super::Submitted, BackendError> {
        self.inner.find_submission(client_token, since).await
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use time::OffsetDateTime;

    use super::*;
    use crate::job::JobState;

    /// A backend whose runs are in whatever state the test sets, counting reads.
    struct Scripted {
        state: Mutex<JobState>,
        reads: AtomicUsize,
    }

    #[async_trait]
    impl JobBackend for Scripted {
        fn kind(&self) -> BackendKind {
            BackendKind::Local
        }
        async fn start(&self, _: &JobSpec, _: &str) -> Result<JobId, BackendError> {
            Err(BackendError::Rejected("not in this test".into()))
        }
        async fn describe(&self, id: &JobId) -> Result<JobRun, BackendError> {
            self.reads.fetch_add(1, Ordering::SeqCst);
            Ok(JobRun {
                id: id.clone(),
                name: "n".into(),
                state: *self.state.lock().unwrap(),
                created_at: OffsetDateTime::UNIX_EPOCH,
                finished_at: None,
                state_details: None,
                failure_reason: None,
                log_location: None,
                tags: [("managed-by".to_owned(), "multiomix-aws-emr".to_owned())].into(),
                links: Default::default(),
                ours: true,
            })
        }
        async fn cancel(&self, _: &JobId) -> Result<(), BackendError> {
            Ok(())
        }
        async fn list(&self, _: &ListQuery) -> Result<JobPage, BackendError> {
            Ok(JobPage::default())
        }
        async fn check(&self) -> Result<(), BackendError> {
            Ok(())
        }
    }

    fn scripted(state: JobState) -> Arc<Scripted> {
        Arc::new(Scripted {
            state: Mutex::new(state),
            reads: AtomicUsize::new(0),
        })
    }

    fn id(s: &str) -> JobId {
        JobId::parse(s).unwrap()
    }

    #[tokio::test]
    async fn a_running_job_is_read_from_the_backend_every_time() {
        let inner = scripted(JobState::Running);
        let backend = FinishedRuns::wrap(inner.clone(), 8);
        for _ in 0..3 {
            assert_eq!(
                backend.describe(&id("j1")).await.unwrap().state,
                JobState::Running
            );
        }
        assert_eq!(inner.reads.load(Ordering::SeqCst), 3);

        // Once it is final, it is read once more and then remembered.
        *inner.state.lock().unwrap() = JobState::Completed;
        for _ in 0..3 {
            assert_eq!(
                backend.describe(&id("j1")).await.unwrap().state,
                JobState::Completed
            );
        }
        assert_eq!(inner.reads.load(Ordering::SeqCst), 4);
        assert!(matches!(
            backend.cancel(&id("j1")).await,
            Err(BackendError::Conflict(_))
        ));
    }

    #[tokio::test]
    async fn the_oldest_finished_runs_are_forgotten_beyond_the_capacity() {
        let inner = scripted(JobState::Failed);
        let backend = FinishedRuns::wrap(inner.clone(), 2);
        for job in ["a1", "a2", "a3"] {
            backend.describe(&id(job)).await.unwrap();
        }
        assert_eq!(inner.reads.load(Ordering::SeqCst), 3);
        backend.describe(&id("a3")).await.unwrap();
        backend.describe(&id("a2")).await.unwrap();
        assert_eq!(inner.reads.load(Ordering::SeqCst), 3, "a2 and a3 are kept");
        backend.describe(&id("a1")).await.unwrap();
        assert_eq!(inner.reads.load(Ordering::SeqCst), 4, "a1 was the oldest");
    }
}
