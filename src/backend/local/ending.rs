//! How a run ends: its final state written to the store unless something else ended it
//! first (retried with backoff while the store fails), and its id sent on the `ended`
//! channel towards the notice outbox.

use std::time::Duration;

use tracing::{error, info, warn};

use super::Inner;
use crate::job::{JobId, JobState};
use crate::retry::Backoff;
use crate::store::{now_millis, LocalRunEnd};

/// How many times [`Inner::end`] tries to record a run's end before it leaves the run to
/// the next start.
const END_ATTEMPTS: u32 = 5;
/// The waits between those tries: 0.1 s, doubling each time (the ceilings of the crate's
/// backoff; no jitter, there are only a few writers, all in this process).
const END_RETRY: Backoff = Backoff {
    initial: Duration::from_millis(100),
    max: Duration::from_millis(1_600),
};

impl Inner {
    /// Records the run as FAILED through no fault of the job (`INTERNAL_ERROR`): the
    /// service could not start it, follow it or read it back. As [`Inner::end`].
    pub(super) async fn fail(&self, id: &JobId, from: &[JobState], details: &str) -> bool {
        self.end(
            id,
            from,
            JobState::Failed,
            Some(details),
            Some("INTERNAL_ERROR"),
        )
        .await
    }

    /// Records the run's end, unless it already left the `from` states, and reports it on
    /// the `ended` channel. A store error is retried a few times; if it persists, the run
    /// stays unfinished in the store and the next start settles it.
    pub(super) async fn end(
        &self,
        id: &JobId,
        from: &[JobState],
        state: JobState,
        details: Option<&str>,
        failure_reason: Option<&str>,
    ) -> bool {
        let end = LocalRunEnd {
            state,
            details,
            failure_reason,
            at: now_millis(),
        };
        for attempt in 1..=END_ATTEMPTS {
            match self.store.finish_local_run(id, from, &end).await {
                Ok(true) => {
                    info!(job_id = %id, state = %state, "local job ended");
                    metrics::counter!("local_jobs_ended_total", "state" => state.as_str())
                        .increment(1);
                    // The receiver is gone only when the application is stopping; the
                    // reconciler finds the run at the next start.
                    let _ = self.ended.send(id.clone());
                    return true;
                }
                Ok(false) => return false,
                Err(e) => {
                    warn!(job_id = %id, attempt, error = %e, "cannot record the end of a local job");
                    // No wait after the last try: nothing follows it.
                    if attempt < END_ATTEMPTS {
                        tokio::time::sleep(END_RETRY.ceiling(attempt)).await;
                    }
                }
            }
        }
        error!(job_id = %id, state = %state, "gave up recording the end of a local job; the next start will settle it");
        false
    }
}
