//! The reconciler: the sidecar's callback is a fast path, this is the guarantee.
//!
//! Every `RECONCILE_INTERVAL` (every `POLL_INTERVAL` for a backend that has no sidecar to
//! call back, EMR Serverless) it reads, from the backend and in one batch, the jobs this
//! service started that have no notice yet, and opens the notice of any that ended — also
//! for jobs whose driver never started and so never called back. On a start with an empty store it
//! first adopts this service's recent jobs from the backend, so a pod rescheduled without
//! its disk still reports the jobs that were running.

use std::sync::Arc;
use std::time::Duration;

use time::OffsetDateTime;
use tracing::{debug, error, info, warn};

use crate::backend::{BackendError, JobBackend, ListQuery, Submitted, APP_NAME_TAG};
use crate::notify::{Notifier, RequestError};
use crate::store::{now_millis, FinalState, JobRecord, Store, StoreResult};

/// Idempotency keys are kept this long (at least the promised 24 hours).
pub const IDEMPOTENCY_KEY_LIFETIME: Duration = Duration::from_secs(48 * 3600);
/// Closed notices are kept this long, so `GET /job/{id}` can still say how delivery went.
pub const CLOSED_NOTICE_LIFETIME: Duration = Duration::from_secs(14 * 24 * 3600);
/// Jobs read per round; the rest wait for the next round.
const ROUND_LIMIT: i64 = 1_000;

/// A submission is settled by this reconciler once it is this old (or older than the
/// process): longer than any `POST /job` can take, so none in flight is touched, and long
/// enough for EMR's listing to show a job it started.
pub const SETTLE_AFTER: Duration = Duration::from_secs(120);
/// Submissions settled per round.
const SETTLE_LIMIT: i64 = 100;

/// The safety net under the sidecar's callback: every round it reads the unfinished jobs
/// from the backend (in batches) and opens the notice of each that ended, settles
/// submissions a stopped process left behind, adopts this deployment's jobs when the
/// store was lost, and prunes what has expired. [`Reconciler::run_once`] is one round,
/// for tests.
#[derive(Clone)]
pub struct Reconciler {
    /// When this process started: submissions written before it are nobody's.
    started_at: i64,
    store: Store,
    backend: Arc<dyn JobBackend>,
    notifier: Notifier,
    interval: Duration,
    recovery_window: Duration,
}

/// What one round found.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Round {
    pub checked: usize,
    pub ended: usize,
    pub unknown: usize,
}

impl Reconciler {
    pub fn new(
        store: Store,
        backend: Arc<dyn JobBackend>,
        notifier: Notifier,
        interval: Duration,
        recovery_window: Duration,
    ) -> Self {
        Reconciler {
            started_at: now_millis(),
            store,
            backend,
            notifier,
            interval,
            recovery_window,
        }
    }

    /// With an empty store, records this service's jobs of the recovery window as if it
    /// had started them. Returns how many were adopted.
    pub async fn recover_if_empty(&self) -> Result<usize, BackendError> {
        let empty = self
            .store
            .is_empty()
            .await
            .map_err(|e| BackendError::Unavailable(format!("store: {e}").into()))?;
        if !empty || self.recovery_window.is_zero() {
            return Ok(0);
        }
        let since = OffsetDateTime::now_utc() - self.recovery_window;
        let mut query = ListQuery {
            created_after: Some(since),
            page_size: Some(50),
            ..ListQuery::default()
        };
        let mut adopted = 0;
        loop {
            let page = self.backend.list(&query).await?;
            for run in &page.jobs {
                // A listing may carry no tags (EMR Serverless's never does): the run
                // itself tells its app name, without which a COMPLETED job's results
                // could not be copied before its notice.
                let app_name = match run.tags.get(APP_NAME_TAG) {
                    Some(app) => Some(app.clone()),
                    None => self
                        .backend
                        .describe(&run.id)
                        .await?
                        .tags
                        .get(APP_NAME_TAG)
                        .cloned(),
                };
                let record = JobRecord {
                    id: run.id.clone(),
                    name: run.name.clone(),
                    algorithm: None,
                    backend: self.backend.kind(),
                    created_at: (run.created_at.unix_timestamp_nanos() / 1_000_000) as i64,
                    adopted: true,
                    app_name,
                };
                self.store
                    .adopt_job(&record)
                    .await
                    .map_err(|e| BackendError::Unavailable(format!("store: {e}").into()))?;
                adopted += 1;
            }
            match page.next_token {
                Some(token) => query.next_token = Some(token),
                None => break,
            }
        }
        if adopted > 0 {
            info!(
                adopted,
                window_s = self.recovery_window.as_secs(),
                "empty store: adopted this service's recent jobs from the backend"
            );
        }
        Ok(adopted)
    }

    /// Settles the submissions written before `older_than` that were never completed: a
    /// job the backend started for one is recorded (and then followed like any other);
    /// one the backend did not start is removed, once it was written before
    /// `absent_before` (a listing may lag a start by a little). Returns how many were
    /// recorded.
    pub async fn settle_submissions(
        &self,
        older_than: i64,
        absent_before: i64,
    ) -> StoreResult<usize> {
        let mut recorded = 0;
        for s in self
            .store
            .incomplete_submissions(older_than, SETTLE_LIMIT)
            .await?
        {
            // A minute of slack for clocks.
            let since = OffsetDateTime::from_unix_timestamp((s.created_at / 1_000) - 60)
                .unwrap_or(OffsetDateTime::UNIX_EPOCH);
            match self.backend.find_submission(&s.client_token, since).await {
                Ok(Submitted::Started(run)) => {
                    let record = JobRecord {
                        id: run.id.clone(),
                        name: s.name.clone(),
                        algorithm: s.algorithm,
                        backend: s.backend,
                        created_at: s.created_at,
                        adopted: false,
                        app_name: s.app_name.clone(),
                    };
                    let key = s
                        .idempotency
                        .as_ref()
                        .map(|(k, f)| (k.as_str(), f.as_str()));
                    self.store
                        .complete_submission(&s.client_token, &record, key)
                        .await?;
                    recorded += 1;
                    warn!(job_id = %run.id, name = %s.name, "a job started without being recorded; recorded now");
                }
                Ok(Submitted::NotStarted) if s.created_at < absent_before => {
                    self.store.drop_submission(&s.client_token).await?;
                    info!(name = %s.name, "a submission that started no job removed");
                }
                Ok(Submitted::NotStarted) => {}
                Ok(Submitted::Unknown) => {
                    warn!(name = %s.name, backend = %s.backend, "an unfinished submission the backend cannot look up; check the backend for a job of this name");
                }
                Err(e) => {
                    warn!(name = %s.name, error = %crate::backend::error_chain(&e), "cannot look up an unfinished submission; will try next round");
                }
            }
        }
        Ok(recorded)
    }

    /// One pass over the unfinished jobs.
    pub async fn run_once(&self) -> StoreResult<Round> {
        let settle_before = self
            .started_at
            .max(now_millis() - SETTLE_AFTER.as_millis() as i64);
        let absent_before = now_millis() - SETTLE_AFTER.as_millis() as i64;
        self.settle_submissions(settle_before, absent_before)
            .await?;
        let cutoff = now_millis() - IDEMPOTENCY_KEY_LIFETIME.as_millis() as i64;
        let purged = self.store.purge_idempotency_keys(cutoff).await?;
        if purged > 0 {
            debug!(purged, "expired idempotency keys removed");
        }
        let cutoff = now_millis() - CLOSED_NOTICE_LIFETIME.as_millis() as i64;
        let pruned = self.store.purge_closed_notices(cutoff).await?;
        if pruned > 0 {
            debug!(pruned, "closed notices past their retention removed");
        }
        let mut round = Round::default();
        let mut tracked = Vec::new();
        for id in self.store.unfinished_jobs(ROUND_LIMIT).await? {
            round.checked += 1;
            tracked.push(id);
        }
        // One batch: a backend that can list runs by state reads a page per call.
        let described = match self.backend.describe_batch(&tracked).await {
            Ok(described) => described,
            Err(e) => {
                warn!(error = %crate::backend::error_chain(&e), tracked = tracked.len(), "cannot read the unfinished jobs; will try next round");
                Vec::new()
            }
        };
        for (job, result) in described {
            match result {
                Ok(run) if run.state.is_final() => {
                    match self.notifier.request(&job, Duration::ZERO).await {
                        Ok(_) => {
                            round.ended += 1;
                            info!(job_id = %job, state = %run.state, "reconciler found the job ended; notice opened");
                        }
                        Err(RequestError::Full(n)) => {
                            warn!(job_id = %job, open = n, "notice outbox full; will try next round");
                        }
                        Err(RequestError::Store(e)) => return Err(e),
                    }
                }
                Ok(_) => {}
                Err(BackendError::NotFound) => {
                    round.unknown += 1;
                    warn!(job_id = %job, "the backend no longer knows this job; it will not be reported");
                    self.store.mark_job_final(&job, FinalState::Unknown).await?;
                }
                Err(e) => {
                    warn!(job_id = %job, error = %crate::backend::error_chain(&e), "cannot read the job; will try next round");
                }
            }
        }
        metrics::counter!("reconciler_rounds_total").increment(1);
        Ok(round)
    }

    /// Adopts jobs if the store is empty, then runs a round every interval until
    /// `shutdown` resolves.
    pub async fn run_until_stopped(self, shutdown: impl std::future::Future<Output = ()>) {
        tokio::pin!(shutdown);
        let mut recovered = false;
        let mut ticker = tokio::time::interval(self.interval);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = ticker.tick() => {}
                _ = &mut shutdown => break,
            }
            if !recovered {
                match self.recover_if_empty().await {
                    Ok(_) => recovered = true,
                    Err(e) => {
                        warn!(error = %e, "cannot adopt jobs from the backend yet; will retry")
                    }
                }
            }
            if let Err(e) = self.run_once().await {
                error!(error = %e, "reconciler round failed");
            }
        }
    }
}
