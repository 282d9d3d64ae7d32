//! The queue and the life of a run: waiting for a slot, starting its process, waiting for
//! its exit or a cancel, and recording how it ended.

use std::collections::HashMap;
use std::io;
use std::path::{Path, PathBuf};
use std::process::ExitStatus;
use std::sync::Arc;

use nix::sys::signal::{killpg, Signal};
use nix::unistd::Pid;
use tokio::process::Child;
use tokio::sync::watch;
use tracing::{error, info, warn};

use super::log::{log_tail, LOG_TAIL_BYTES, LOG_TAIL_LINES};
use super::process::{describe_exit, spawn, GroupGuard};
use super::recovery::process_start_time;
use super::{Inner, LocalCommand};
use crate::job::{JobId, JobState};
use crate::store::now_millis;

impl Inner {
    /// The cancel switches. Each statement under the lock leaves the map consistent, so a
    /// panic elsewhere while it was held does not make it unusable: later requests go on
    /// with it instead of panicking in turn.
    fn controls(&self) -> std::sync::MutexGuard<'_, HashMap<JobId, watch::Sender<bool>>> {
        self.controls.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Gives the run its cancel switch and its task, which waits for a slot.
    pub(super) fn enqueue(self: &Arc<Self>, id: JobId, command: LocalCommand, log_path: PathBuf) {
        let (cancel_tx, cancel_rx) = watch::channel(false);
        self.controls().insert(id.clone(), cancel_tx);
        let this = self.clone();
        tokio::spawn(async move {
            this.run(&id, &command, &log_path, cancel_rx).await;
            this.controls().remove(&id);
        });
    }

    /// Flips the run's cancel switch. False when no task of this process watches it.
    pub(super) fn signal_cancel(&self, id: &JobId) -> bool {
        let controls = self.controls();
        match controls.get(id) {
            Some(tx) => {
                tx.send_replace(true);
                true
            }
            None => false,
        }
    }

    /// One run, from the queue to its final state.
    async fn run(
        &self,
        id: &JobId,
        command: &LocalCommand,
        log_path: &Path,
        mut cancel: watch::Receiver<bool>,
    ) {
        let _slot = tokio::select! {
            biased;
            // cancel() has already recorded the run as CANCELLED.
            _ = cancelled(&mut cancel) => return,
            slot = self.slots.clone().acquire_owned() => match slot {
                Ok(slot) => slot,
                Err(_) => return,
            },
        };
        if *cancel.borrow() {
            return;
        }

        let mut child = match spawn(id, command, log_path) {
            Ok(child) => child,
            Err(e) => {
                let details = format!(
                    "spark-submit could not be started ({}): {e}",
                    command.program
                );
                error!(job_id = %id, error = %e, program = %command.program, "cannot start a local job");
                self.fail(id, &[JobState::Pending], &details).await;
                return;
            }
        };
        let pid = child
            .id()
            .expect("a process just spawned has not been waited for");
        let group = Pid::from_raw(pid as i32);
        let mut guard = GroupGuard(Some(group));
        let marked = self
            .store
            .local_run_started(id, i64::from(pid), process_start_time(pid), now_millis())
            .await;
        match marked {
            Ok(true) => {
                info!(job_id = %id, pid, log = %log_path.display(), "local job running");
            }
            Ok(false) => {
                // Cancelled between the slot and the start: it never ran as far as anyone
                // was told; stop it and leave its CANCELLED state alone.
                let _ = killpg(group, Signal::SIGKILL);
                let _ = child.wait().await;
                guard.disarm();
                return;
            }
            Err(e) => {
                let _ = killpg(group, Signal::SIGKILL);
                let _ = child.wait().await;
                guard.disarm();
                let details = format!("the job could not be recorded as running: {e}");
                self.fail(id, &[JobState::Pending], &details).await;
                return;
            }
        }

        let (status, cancel_outcome) = tokio::select! {
            status = child.wait() => (status, None),
            _ = cancelled(&mut cancel) => {
                info!(job_id = %id, pid, "cancelling: SIGTERM to the job's process group");
                let (status, killed) = self.terminate(&mut child, group).await;
                (status, Some(killed))
            }
        };
        // Nothing of the job outlives it: its leader is gone, stop what it left behind.
        let _ = killpg(group, Signal::SIGKILL);
        guard.disarm();

        let from = [JobState::Running, JobState::CancelPending];
        match (status, cancel_outcome) {
            (_, Some(killed)) => {
                let details = if killed {
                    format!(
                        "cancelled by request; the job did not stop within {} s of SIGTERM and was killed",
                        self.settings.cancel_grace.as_secs_f64()
                    )
                } else {
                    "cancelled by request".to_owned()
                };
                self.end(id, &from, JobState::Cancelled, Some(&details), None)
                    .await;
            }
            (Ok(status), None) if status.success() => {
                self.end(id, &from, JobState::Completed, None, None).await;
            }
            (Ok(status), None) => {
                let tail = log_tail(log_path, LOG_TAIL_LINES, LOG_TAIL_BYTES);
                let details = if tail.is_empty() {
                    format!(
                        "{}; its log ({}) is empty",
                        describe_exit(status),
                        log_path.display()
                    )
                } else {
                    format!(
                        "{}; last lines of its log ({}):\n{tail}",
                        describe_exit(status),
                        log_path.display()
                    )
                };
                self.end(
                    id,
                    &from,
                    JobState::Failed,
                    Some(&details),
                    Some("USER_ERROR"),
                )
                .await;
            }
            (Err(e), None) => {
                let details = format!("the end of spark-submit could not be read: {e}");
                self.fail(id, &from, &details).await;
            }
        }
    }

    /// SIGTERM to the group, SIGKILL after the grace period. Returns the exit and whether
    /// SIGKILL was needed.
    async fn terminate(&self, child: &mut Child, group: Pid) -> (io::Result<ExitStatus>, bool) {
        let _ = killpg(group, Signal::SIGTERM);
        match tokio::time::timeout(self.settings.cancel_grace, child.wait()).await {
            Ok(status) => (status, false),
            Err(_) => {
                warn!(pid = %group, "the job ignored SIGTERM; sending SIGKILL");
                let _ = killpg(group, Signal::SIGKILL);
                (child.wait().await, true)
            }
        }
    }
}

/// Resolves when the switch is on; never, if the switch is gone.
async fn cancelled(rx: &mut watch::Receiver<bool>) {
    if rx.wait_for(|on| *on).await.is_err() {
        std::future::pending::<()>().await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backend::local::LocalBackend;
    use crate::store::Store;

    #[tokio::test]
    async fn a_panic_while_the_controls_are_held_does_not_break_later_cancels() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::connect(&format!("sqlite:{}/db.sqlite", dir.path().display()))
            .await
            .unwrap();
        let config = crate::config::Config::from_vars([
            ("JOB_BACKEND".to_owned(), "local".to_owned()),
            ("SPARK_SUBMIT".to_owned(), "/bin/true".to_owned()),
            (
                "LOCAL_SCRIPTS_DIR".to_owned(),
                dir.path().display().to_string(),
            ),
        ])
        .unwrap();
        let (tx, _rx) = tokio::sync::mpsc::unbounded_channel();
        let backend = LocalBackend::new(
            store,
            config.backend.local().unwrap().clone(),
            config.spark,
            config.job,
            tx,
        )
        .await
        .unwrap();
        let inner = backend.inner.clone();
        let poisoner = std::thread::spawn(move || {
            let _held = inner.controls.lock().unwrap();
            panic!("a panic while the lock is held");
        });
        assert!(poisoner.join().is_err());
        assert!(backend.inner.controls.is_poisoned());
        // Later requests still work.
        assert!(!backend
            .inner
            .signal_cancel(&JobId::parse("nosuchrun").unwrap()));
    }
}
