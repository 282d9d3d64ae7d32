//! Job-end notices: the outbox worker that reads a job until it is final, then delivers
//! its notice to Multiomix with retries until Multiomix takes it, refuses it for good, or
//! the give-up time passes.
//!
//! Every step is recorded in the store before it is acted on, so a restart at any point
//! resumes where the previous process stopped (at-least-once delivery).

pub mod delivery;
pub mod retry;

use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{Notify, Semaphore};
use tokio::task::JoinSet;
use tracing::{debug, error, info, warn, Instrument};

use crate::backend::{BackendError, JobBackend};
use crate::config::NotifySettings;
use crate::job::{JobId, JobView};
use crate::store::{now_millis, AttemptRecord, NoticeRow, NoticeStatus, Store, StoreResult};
use delivery::{Deliverer, Outcome};
use retry::Backoff;

/// How many notices are worked on at once.
const CONCURRENCY: usize = 64;
/// How many due notices are claimed per round.
const BATCH: i64 = 256;
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
    Store(#[from] sqlx::Error),
}

struct Inner {
    store: Store,
    backend: Arc<dyn JobBackend>,
    deliverer: Deliverer,
    settings: NotifySettings,
    backoff: Backoff,
    max_open: i64,
    open: AtomicI64,
    wake: Notify,
}

/// Cheap to clone; all clones share one outbox.
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
        let open = store.open_notice_count().await?;
        metrics::gauge!("notices_open").set(open as f64);
        let deliverer = Deliverer::new(
            settings.multiomix_url.clone(),
            settings.timeout,
            settings.secret.clone(),
        )?;
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
                open: AtomicI64::new(open),
                wake: Notify::new(),
            }),
        })
    }

    /// Opens the job's notice, to be checked after `delay`. What the sidecar callback,
    /// the reconciler and the local backend call.
    pub async fn request(&self, job: &JobId, delay: Duration) -> Result<Requested, RequestError> {
        let open = self.inner.open.load(Ordering::Relaxed);
        if open >= self.inner.max_open {
            // A repeated callback for a job that already has its notice costs nothing.
            if self.inner.store.notice(job.as_str()).await?.is_some() {
                return Ok(Requested::AlreadyKnown);
            }
            return Err(RequestError::Full(open));
        }
        let due = now_millis() + delay.as_millis() as i64;
        if self.inner.store.open_notice(job.as_str(), due).await? {
            let open = self.inner.open.fetch_add(1, Ordering::Relaxed) + 1;
            metrics::gauge!("notices_open").set(open as f64);
            metrics::counter!("notices_opened_total").increment(1);
            debug!(job_id = %job, delay_ms = delay.as_millis() as u64, "job-end notice opened");
            self.inner.wake.notify_one();
            Ok(Requested::Opened)
        } else {
            Ok(Requested::AlreadyKnown)
        }
    }

    /// The number of notices still to be worked on.
    pub fn open_count(&self) -> i64 {
        self.inner.open.load(Ordering::Relaxed)
    }

    /// Works on every notice due now and waits for them; returns how many it took.
    /// Tests drive the outbox with this.
    pub async fn run_once(&self) -> StoreResult<usize> {
        let now = now_millis();
        let rows = self.claim(now).await?;
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
            let claimed = match self.claim(now_millis()).await {
                Ok(rows) => rows,
                Err(e) => {
                    error!(error = %e, "cannot read the notice outbox; retrying in 1 s");
                    Vec::new()
                }
            };
            let full_batch = claimed.len() as i64 == BATCH;
            for row in claimed {
                let permit = tokio::select! {
                    p = permits.clone().acquire_owned() => p.expect("the semaphore is never closed"),
                    _ = &mut shutdown => return,
                };
                let this = self.clone();
                tasks.spawn(async move {
                    this.process(row).await;
                    drop(permit);
                });
            }
            if full_batch {
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

    async fn claim(&self, now: i64) -> StoreResult<Vec<NoticeRow>> {
        // Long enough for a read of the job plus a full delivery attempt.
        let lease = self.inner.settings.timeout + Duration::from_secs(40);
        self.inner
            .store
            .claim_due(now, now + lease.as_millis() as i64, BATCH)
            .await
    }

    async fn process(&self, row: NoticeRow) {
        let span = tracing::info_span!("notice", job_id = %row.job_id);
        async {
            let result = match row.status {
                NoticeStatus::Waiting => self.check_job(&row).await,
                NoticeStatus::Pending => self.deliver(&row).await,
                _ => Ok(()),
            };
            if let Err(e) = result {
                // The lease brings it back.
                error!(error = %e, "cannot record the notice's progress");
            }
        }
        .instrument(span)
        .await
    }

    /// Reads the job; once it is final, turns the notice into a deliverable one.
    async fn check_job(&self, row: &NoticeRow) -> StoreResult<()> {
        let Some(id) = JobId::parse(&row.job_id) else {
            self.inner
                .store
                .notice_abandoned(&row.job_id, "not a valid job id")
                .await?;
            self.closed();
            return Ok(());
        };
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
                self.inner
                    .store
                    .notice_ready(&row.job_id, run.state, &payload)
                    .await?;
                info!(state = %run.state, "job is final; delivering its notice");
                let ready = NoticeRow {
                    status: NoticeStatus::Pending,
                    payload: Some(payload),
                    final_state: Some(run.state.as_str().to_owned()),
                    ..row.clone()
                };
                self.deliver(&ready).await
            }
            Ok(run) => {
                debug!(state = %run.state, "job not final yet; reading it again later");
                self.inner
                    .store
                    .recheck_later(&row.job_id, next_read_at, None)
                    .await
            }
            Err(BackendError::NotFound) => {
                warn!("the job backend does not know this job; no notice can be sent");
                self.inner
                    .store
                    .notice_abandoned(&row.job_id, "the job backend does not know this job")
                    .await?;
                self.closed();
                Ok(())
            }
            Err(e) => {
                warn!(error = %e, "cannot read the job; trying again later");
                self.inner
                    .store
                    .recheck_later(&row.job_id, next_read_at, Some(&e.to_string()))
                    .await
            }
        }
    }

    async fn deliver(&self, row: &NoticeRow) -> StoreResult<()> {
        let Some(payload) = row.payload.as_deref() else {
            return Ok(());
        };
        let state = row.final_state.as_deref().unwrap_or("UNKNOWN");
        let message_id = format!("{}-{state}", row.job_id);
        let started = now_millis();
        let outcome = self
            .inner
            .deliverer
            .deliver(&row.job_id, &message_id, payload)
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
                let first = row.first_attempt_at.unwrap_or(started);
                let elapsed = Duration::from_millis((started - first).max(0) as u64);
                if elapsed >= self.inner.settings.give_up_after {
                    error!(
                        state, attempt, error = %error,
                        url = %self.inner.deliverer.url_for(&row.job_id),
                        "giving up on a job-end notice: Multiomix will not learn that this job ended"
                    );
                    metrics::counter!("notices_given_up_total").increment(1);
                    AttemptRecord::GivenUp { error }
                } else {
                    let wait = self
                        .inner
                        .backoff
                        .after_failure(attempt.clamp(1, u32::MAX as i64) as u32, retry_after);
                    warn!(state, attempt, error = %error, retry_in_ms = wait.as_millis() as u64, "job-end notice not delivered; will retry");
                    metrics::counter!("notice_attempts_failed_total").increment(1);
                    AttemptRecord::Retry {
                        due_at: now_millis() + wait.as_millis() as i64,
                        error,
                    }
                }
            }
        };
        let closes = !matches!(record, AttemptRecord::Retry { .. });
        self.inner
            .store
            .record_attempt(&row.job_id, started, &record)
            .await?;
        if closes {
            self.closed();
        }
        Ok(())
    }

    fn closed(&self) {
        let open = self.inner.open.fetch_sub(1, Ordering::Relaxed) - 1;
        metrics::gauge!("notices_open").set(open.max(0) as f64);
    }
}
