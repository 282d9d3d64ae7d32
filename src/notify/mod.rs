//! Job-end notices: the outbox worker that reads a job until it is final, then delivers
//! its notice to Multiomix with retries until Multiomix takes it, refuses it for good, or
//! the give-up time passes.
//!
//! With data staging on, a COMPLETED job's results are first copied from S3 into the
//! shared results folder (the notice is `fetching` meanwhile): its notice is never sent
//! before its results are in place.
//!
//! Every step is recorded in the store before it is acted on, so a restart at any point
//! resumes where the previous process stopped (at-least-once delivery).

pub mod delivery;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use tokio::sync::{Notify, Semaphore};
use tokio::task::JoinSet;
use tracing::{debug, error, info, warn, Instrument};

use crate::backend::{BackendError, JobBackend};
use crate::config::NotifySettings;
use crate::job::{JobId, JobState, JobView};
use crate::retry::Backoff;
use crate::staging::Staging;
use crate::store::{
    now_millis, AttemptRecord, FetchRecord, FinalState, NoticeRow, NoticeStatus, Store, StoreError,
    StoreResult,
};
use delivery::{Deliverer, Outcome};

/// How many notices are worked on at once.
const CONCURRENCY: usize = 64;
/// How many due notices [`Notifier::run_once`] claims (and works on together).
const BATCH: i64 = 256;
/// What a claim's lease adds to the delivery timeout: time for one read of the job.
pub const LEASE_MARGIN: Duration = Duration::from_secs(40);
/// After this long without a final state, a job is read at the reconcile interval instead
/// of the (shorter) poll interval.
const FAST_POLL_FOR: Duration = Duration::from_secs(300);

/// Answer of [`Notifier::request`].
#[derive(Debug, PartialEq, Eq)]
pub enum Requested {
    /// A new notice was opened.
    Opened,
    /// The job already has a notice (open or closed); nothing changed.
    AlreadyKnown,
}

#[derive(Debug, thiserror::Error)]
pub enum RequestError {
    #[error("too many job-end notices are waiting ({0}); try again later")]
    Full(i64),
    #[error("store: {0}")]
    Store(#[from] StoreError),
}

struct Inner {
    store: Store,
    backend: Arc<dyn JobBackend>,
    deliverer: Deliverer,
    settings: NotifySettings,
    backoff: Backoff,
    max_open: i64,
    /// See [`Notifier::set_lease`]; milliseconds.
    lease_ms: AtomicU64,
    wake: Notify,
    /// Where completed jobs' results come from (`DATA_STAGING=s3`); see
    /// [`Notifier::set_staging`].
    staging: RwLock<Option<Arc<Staging>>>,
}

/// The job-end notice outbox: opens a job's notice, reads the job until it is final,
/// copies its results when staging is on, and delivers the notice with retries. Its work
/// lives in the store, so a restart loses nothing. Cheap to clone; all clones share one
/// outbox.
#[derive(Clone)]
pub struct Notifier {
    inner: Arc<Inner>,
}

impl Notifier {
    pub async fn new(
        store: Store,
        backend: Arc<dyn JobBackend>,
        settings: NotifySettings,
        max_open: usize,
    ) -> anyhow::Result<Self> {
        let released = store.release_leases().await?;
        if released > 0 {
            info!(
                released,
                "resuming notices left in flight by the previous process"
            );
        }
        let freed = store.release_settled_app_names().await?;
        if freed > 0 {
            info!(
                freed,
                "app names of jobs whose end work the previous process left half done freed"
            );
        }
        let open = store.open_notice_count().await?;
        metrics::gauge!("notices_open").set(open as f64);
        let deliverer = Deliverer::new(
            settings.multiomix_url.clone(),
            settings.timeout,
            settings.signing_key.clone(),
        )?;
        let lease = settings.timeout + LEASE_MARGIN;
        Ok(Notifier {
            inner: Arc::new(Inner {
                backoff: Backoff {
                    initial: settings.initial_backoff,
                    max: settings.max_backoff,
                },
                store,
                backend,
                deliverer,
                settings,
                max_open: max_open as i64,
                // Long enough for a read of the job plus a full delivery attempt.
                lease_ms: AtomicU64::new(lease.as_millis() as u64),
                wake: Notify::new(),
                staging: RwLock::new(None),
            }),
        })
    }

    /// Opens the job's notice, to be checked after `delay`. What the sidecar callback,
    /// the reconciler and the local backend call.
    pub async fn request(&self, job: &JobId, delay: Duration) -> Result<Requested, RequestError> {
        let due = now_millis() + delay.as_millis() as i64;
        // The bound is checked by the insert itself, against the count in the store.
        if self
            .inner
            .store
            .open_notice_within(job, due, self.inner.max_open)
            .await?
        {
            metrics::counter!("notices_opened_total").increment(1);
            debug!(job_id = %job, delay_ms = delay.as_millis() as u64, "job-end notice opened");
            self.inner.wake.notify_one();
            self.update_open_gauge().await;
            return Ok(Requested::Opened);
        }
        // A repeated callback for a job that already has its notice costs nothing.
        if self.inner.store.notice(job).await?.is_some() {
            return Ok(Requested::AlreadyKnown);
        }
        Err(RequestError::Full(
            self.inner.store.open_notice_count().await?,
        ))
    }

    async fn update_open_gauge(&self) {
        if let Ok(open) = self.inner.store.open_notice_count().await {
            metrics::gauge!("notices_open").set(open as f64);
        }
    }

    /// The number of notices still to be worked on.
    pub async fn open_count(&self) -> StoreResult<i64> {
        self.inner.store.open_notice_count().await
    }

    /// Sets how long a claimed notice stays with its worker before another may take it;
    /// by default the delivery timeout plus [`LEASE_MARGIN`] (one read of the job and one
    /// attempt). Tests shorten it.
    pub fn set_lease(&self, lease: Duration) {
        self.inner
            .lease_ms
            .store(lease.as_millis() as u64, Ordering::Relaxed);
    }

    /// With data staging on: the results of COMPLETED jobs are copied with `staging`
    /// before their notices, and their datasets removed after (when so configured).
    pub fn set_staging(&self, staging: Option<Arc<Staging>>) {
        *self
            .inner
            .staging
            .write()
            .unwrap_or_else(|poisoned| poisoned.into_inner()) = staging;
    }

    fn staging(&self) -> Option<Arc<Staging>> {
        self.inner
            .staging
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .clone()
    }

    /// Works on every notice due now and waits for them; returns how many it took.
    /// Tests drive the outbox with this.
    pub async fn run_once(&self) -> StoreResult<usize> {
        let now = now_millis();
        let rows = self.claim(now, BATCH).await?;
        let n = rows.len();
        let mut tasks = JoinSet::new();
        for row in rows {
            let this = self.clone();
            tasks.spawn(async move { this.process(row).await });
        }
        while tasks.join_next().await.is_some() {}
        Ok(n)
    }

    /// Runs the outbox until `shutdown` resolves. Notices being delivered when it does are
    /// left to their lease and taken again after restart.
    pub async fn run_until_stopped(self, shutdown: impl std::future::Future<Output = ()>) {
        tokio::pin!(shutdown);
        let permits = Arc::new(Semaphore::new(CONCURRENCY));
        let mut tasks = JoinSet::new();
        loop {
            while tasks.try_join_next().is_some() {}
            // Claim only what a free slot works on now: a claimed notice that waited for
            // a slot could outlive its lease and be claimed, and sent, a second time.
            let first = tokio::select! {
                p = permits.clone().acquire_owned() => p.expect("the semaphore is never closed"),
                _ = &mut shutdown => break,
            };
            let free = 1 + permits.available_permits();
            let claimed = match self.claim(now_millis(), free as i64).await {
                Ok(rows) => rows,
                Err(e) => {
                    error!(error = %e, "cannot read the notice outbox; retrying in 1 s");
                    Vec::new()
                }
            };
            let took_all_free = claimed.len() == free;
            let mut first = Some(first);
            for row in claimed {
                let permit = match first.take() {
                    Some(p) => p,
                    None => permits
                        .clone()
                        .try_acquire_owned()
                        .expect("only this loop takes permits, and it counted them"),
                };
                let this = self.clone();
                tasks.spawn(async move {
                    this.process(row).await;
                    drop(permit);
                });
            }
            drop(first);
            self.update_open_gauge().await;
            if took_all_free {
                // More may be due: claim again as soon as a slot frees.
                continue;
            }
            let wait = match self.inner.store.next_due().await {
                Ok(Some(due)) => Duration::from_millis((due - now_millis()).clamp(0, 1_000) as u64),
                Ok(None) => Duration::from_secs(1),
                Err(_) => Duration::from_secs(1),
            };
            tokio::select! {
                _ = tokio::time::sleep(wait) => {}
                _ = self.inner.wake.notified() => {}
                _ = &mut shutdown => break,
            }
        }
        info!(in_flight = tasks.len(), "notice outbox stopped");
    }

    async fn claim(&self, now: i64, limit: i64) -> StoreResult<Vec<NoticeRow>> {
        let lease = Duration::from_millis(self.inner.lease_ms.load(Ordering::Relaxed));
        self.inner
            .store
            .claim_due(now, now + lease.as_millis() as i64, limit)
            .await
    }

    async fn process(&self, row: NoticeRow) {
        let span = tracing::info_span!("notice", job_id = %row.job_id);
        async {
            let result = match row.status {
                NoticeStatus::Waiting => self.check_job(&row).await,
                NoticeStatus::Fetching => self.fetch_results(&row).await,
                NoticeStatus::Pending => self.deliver(&row).await,
                _ => Ok(()),
            };
            if let Err(e) = result {
                // The lease brings it back.
                error!(error = %e, "cannot record the notice's progress");
            }
            // The notice may have closed: the gauge follows at once, not at the loop's
            // next turn, so a scrape right after a burst reads what the store holds.
            self.update_open_gauge().await;
        }
        .instrument(span)
        .await
    }

    /// Reads the job; once it is final, turns the notice into a deliverable one.
    async fn check_job(&self, row: &NoticeRow) -> StoreResult<()> {
        let id = row.job_id.clone();
        let s = &self.inner.settings;
        let waited = Duration::from_millis((now_millis() - row.created_at).max(0) as u64);
        let next_read = if waited < FAST_POLL_FOR {
            s.poll_interval
        } else {
            s.poll_interval.max(s.reconcile_interval)
        };
        let next_read_at = now_millis() + next_read.as_millis() as i64;
        match self.inner.backend.describe(&id).await {
            Ok(run) if run.state.is_final() => {
                let payload = serde_json::to_string(&JobView::from(&run))
                    .expect("a job view always serialises");
                let fetch_first = self.results_to_fetch(&id, run.state).await?;
                if !self
                    .inner
                    .store
                    .notice_ready(&row.job_id, run.state, &payload, fetch_first.is_some())
                    .await?
                {
                    // Someone else moved it on: delivering now could send it twice.
                    self.changed_elsewhere("deliver it");
                    return Ok(());
                }
                let ready = NoticeRow {
                    status: if fetch_first.is_some() {
                        NoticeStatus::Fetching
                    } else {
                        NoticeStatus::Pending
                    },
                    payload: Some(payload),
                    final_state: Some(FinalState::Ended(run.state)),
                    ..row.clone()
                };
                if let Some(app) = fetch_first {
                    info!(state = %run.state, app_name = %app, "job is final; copying its results before its notice");
                    self.fetch_results(&ready).await
                } else {
                    info!(state = %run.state, "job is final; delivering its notice");
                    self.deliver(&ready).await
                }
            }
            Ok(run) => {
                debug!(state = %run.state, "job not final yet; reading it again later");
                if !self
                    .inner
                    .store
                    .recheck_later(&row.job_id, next_read_at, None)
                    .await?
                {
                    self.changed_elsewhere("read it again later");
                }
                Ok(())
            }
            Err(BackendError::NotFound) => {
                warn!("the job backend does not know this job; no notice can be sent");
                if !self
                    .inner
                    .store
                    .notice_abandoned(&row.job_id, "the job backend does not know this job")
                    .await?
                {
                    self.changed_elsewhere("abandon it");
                }
                Ok(())
            }
            Err(e) => {
                warn!(error = %crate::backend::error_chain(&e), "cannot read the job; trying again later");
                if !self
                    .inner
                    .store
                    .recheck_later(&row.job_id, next_read_at, Some(&e.to_string()))
                    .await?
                {
                    self.changed_elsewhere("read it again later");
                }
                Ok(())
            }
        }
    }

    /// When to try a failed step of a notice again (a copy of results, a delivery):
    /// `None` once `NOTIFY_GIVE_UP_AFTER` has passed since its first try, otherwise the
    /// backoff's wait for this attempt, at least `retry_after`.
    fn next_try(
        &self,
        first_try: Option<i64>,
        started: i64,
        attempt: i64,
        retry_after: Option<Duration>,
    ) -> Option<Duration> {
        let elapsed = Duration::from_millis((started - first_try.unwrap_or(started)).max(0) as u64);
        (elapsed < self.inner.settings.give_up_after).then(|| {
            self.inner
                .backoff
                .after_failure(attempt.clamp(1, u32::MAX as i64) as u32, retry_after)
        })
    }

    /// The job's `app-name`, as recorded when it started (or adopted).
    async fn app_name(&self, job_id: &JobId) -> StoreResult<Option<String>> {
        Ok(self
            .inner
            .store
            .job(job_id)
            .await?
            .and_then(|job| job.app_name))
    }

    /// The app name whose results must be in the shared folder before this job's notice
    /// is sent: with staging on, for a COMPLETED job. FAILED and CANCELLED jobs are
    /// notified without waiting for files.
    async fn results_to_fetch(&self, id: &JobId, state: JobState) -> StoreResult<Option<String>> {
        if state != JobState::Completed || self.staging().is_none() {
            return Ok(None);
        }
        let app = self.app_name(id).await?;
        if app.is_none() {
            // Only a job started before app names were kept (and adopted since) lacks it.
            error!("the job's app-name is not known, so its results cannot be copied; sending its notice without them");
            metrics::counter!("results_fetch_skipped_total").increment(1);
        }
        Ok(app)
    }

    /// Copies a COMPLETED job's results into the shared results folder, then delivers
    /// its notice. A failed copy is retried with the delivery's backoff, and given up
    /// after `NOTIFY_GIVE_UP_AFTER` like a delivery: the notice never goes without them.
    async fn fetch_results(&self, row: &NoticeRow) -> StoreResult<()> {
        let started = now_millis();
        let app = self.app_name(&row.job_id).await?;
        let outcome = match (self.staging(), app) {
            (Some(staging), Some(app)) => {
                // A large download may outlast the lease a claim gives.
                let s = &self.inner.settings;
                let until = started
                    + (staging.settings().fetch_timeout + s.timeout + LEASE_MARGIN).as_millis()
                        as i64;
                self.inner.store.extend_lease(&row.job_id, until).await?;
                let outcome = staging.fetch_results(&app).await;
                if let Ok(fetched) = &outcome {
                    info!(
                        app_name = %app,
                        files = fetched.files,
                        bytes = fetched.bytes,
                        target = %staging.results_target(&app).display(),
                        "results copied into the shared results folder"
                    );
                    metrics::counter!("results_fetched_total").increment(1);
                    metrics::counter!("results_fetched_bytes_total").increment(fetched.bytes);
                }
                outcome.map(drop).map_err(|e| (e.kind(), e.to_string()))
            }
            // Staging was turned off since the job ended, or the job's app name is gone:
            // there is nothing to copy from.
            (staging, _) => {
                warn!(
                    staging = staging.is_some(),
                    "results cannot be copied (staging off, or the job's app name unknown); delivering the notice without them"
                );
                Ok(())
            }
        };
        let record = match outcome {
            Ok(()) => FetchRecord::Fetched,
            Err((kind, error)) => {
                metrics::counter!("results_fetch_failures_total", "kind" => kind).increment(1);
                let attempt = row.fetch_attempts + 1;
                match self.next_try(row.first_fetch_at, started, attempt, None) {
                    Some(wait) => {
                        warn!(attempt, error = %error, retry_in_ms = wait.as_millis() as u64, "results not copied yet; the notice waits for them");
                        FetchRecord::Retry {
                            due_at: now_millis() + wait.as_millis() as i64,
                            error,
                        }
                    }
                    None => {
                        error!(
                            attempt, error = %error,
                            "giving up on copying a completed job's results: its notice is not sent, and Multiomix will not learn that this job ended"
                        );
                        metrics::counter!("notices_given_up_total").increment(1);
                        FetchRecord::GivenUp { error }
                    }
                }
            }
        };
        if !self
            .inner
            .store
            .record_fetch(&row.job_id, started, &record)
            .await?
        {
            self.changed_elsewhere("record its results' copy");
            return Ok(());
        }
        if let FetchRecord::GivenUp { .. } = record {
            // The notice is closed: nothing more is done for this job.
            self.release_app_name(&row.job_id).await;
        }
        if record != FetchRecord::Fetched {
            return Ok(());
        }
        let ready = NoticeRow {
            status: NoticeStatus::Pending,
            ..row.clone()
        };
        self.deliver(&ready).await
    }

    /// Once Multiomix has the notice (or answered that the experiment is gone), the job's
    /// staged datasets are deleted from S3, as Multiomix deletes its own copy. A failure
    /// is only logged: the lifecycle rule of docs/data-path.md removes what is left.
    async fn remove_datasets(&self, job_id: &JobId) {
        let Some(staging) = self.staging() else {
            return;
        };
        if !staging.settings().cleanup_datasets {
            return;
        }
        let app = match self.app_name(job_id).await {
            Ok(app) => app,
            Err(e) => {
                warn!(error = %e, "cannot read the job's app name; its staged datasets stay");
                return;
            }
        };
        let Some(app) = app else { return };
        match staging.remove_datasets(&app).await {
            Ok(removed) => {
                info!(app_name = %app, removed, "staged datasets deleted");
                metrics::counter!("datasets_removed_total").increment(removed as u64);
            }
            Err(e) => {
                warn!(app_name = %app, error = %e, "cannot delete the staged datasets; the bucket's lifecycle rule will");
                metrics::counter!("datasets_removal_failures_total").increment(1);
            }
        }
    }

    async fn deliver(&self, row: &NoticeRow) -> StoreResult<()> {
        let Some(payload) = row.payload.as_deref() else {
            return Ok(());
        };
        let state = row.final_state.map_or("UNKNOWN", FinalState::as_str);
        let message_id = format!("{}-{state}", row.job_id);
        let started = now_millis();
        let outcome = self
            .inner
            .deliverer
            .deliver(row.job_id.as_str(), &message_id, payload)
            .await;
        let attempt = row.attempts + 1;
        let record = match outcome {
            Outcome::Delivered => {
                info!(state, attempt, "job-end notice delivered");
                metrics::counter!("notices_delivered_total").increment(1);
                AttemptRecord::Delivered
            }
            Outcome::Refused { status, error } => {
                if status == 404 {
                    info!(state, attempt, error = %error, "Multiomix answered 404: the experiment is no longer in process; notice closed");
                } else {
                    warn!(state, attempt, status, error = %error, "Multiomix refused the job-end notice for good; not retrying");
                }
                metrics::counter!("notices_refused_total").increment(1);
                AttemptRecord::Refused { error }
            }
            Outcome::Retry { error, retry_after } => {
                match self.next_try(row.first_attempt_at, started, attempt, retry_after) {
                    Some(wait) => {
                        warn!(state, attempt, error = %error, retry_in_ms = wait.as_millis() as u64, "job-end notice not delivered; will retry");
                        metrics::counter!("notice_attempts_failed_total").increment(1);
                        AttemptRecord::Retry {
                            due_at: now_millis() + wait.as_millis() as i64,
                            error,
                        }
                    }
                    None => {
                        error!(
                            state, attempt, error = %error,
                            url = %self.inner.deliverer.url_for(row.job_id.as_str()),
                            "giving up on a job-end notice: Multiomix will not learn that this job ended"
                        );
                        metrics::counter!("notices_given_up_total").increment(1);
                        AttemptRecord::GivenUp { error }
                    }
                }
            }
        };
        if !self
            .inner
            .store
            .record_attempt(&row.job_id, started, &record)
            .await?
        {
            self.changed_elsewhere("record its delivery attempt");
            return Ok(());
        }
        match record {
            AttemptRecord::Delivered | AttemptRecord::Refused { .. } => {
                self.remove_datasets(&row.job_id).await;
                self.release_app_name(&row.job_id).await;
            }
            AttemptRecord::GivenUp { .. } => self.release_app_name(&row.job_id).await,
            AttemptRecord::Retry { .. } => {}
        }
        Ok(())
    }

    /// The job's end work is over: the next job may use its app name. A failure only
    /// delays that until the next start-up, which frees the names of closed notices.
    async fn release_app_name(&self, job_id: &JobId) {
        if let Err(e) = self.inner.store.release_app_name(job_id).await {
            warn!(error = %e, "cannot free the job's app name; it is freed at the next start-up");
        }
    }

    /// A state change found the notice no longer as this worker read it: another worker
    /// took it after its lease ended. Nothing was changed; say so loudly, since it means
    /// the lease was too short for the work.
    fn changed_elsewhere(&self, what: &str) {
        metrics::counter!("notice_lease_conflicts_total").increment(1);
        warn!(
            "the notice changed while this worker had it; did not {what} (a lease shorter than the work?)"
        );
    }
}
