//! Start-up recovery: settles the runs a previous process of the service left behind.
//!
//! A run that was RUNNING cannot be watched any more (its process was a child of the old
//! process), so it is stopped if still alive and marked FAILED (CANCELLED if a cancel was
//! pending); a run still PENDING never started, so it is queued again — it is exactly
//! what was asked and Multiomix is waiting for it. An old process is killed only if it
//! still leads its group and, where `/proc` tells, started when recorded: never a process
//! that reused its pid.

use std::path::PathBuf;
use std::sync::Arc;

use nix::sys::signal::{killpg, Signal};
use nix::unistd::{getpgid, Pid};
use tracing::{info, warn};

use super::{Inner, LocalCommand, SetupError};
use crate::job::JobState;
use crate::store::LocalRunRow;

impl Inner {
    /// Settles what a previous process left: see the module documentation.
    pub(super) async fn recover(self: &Arc<Self>) -> Result<(), SetupError> {
        let interrupted = self
            .store
            .local_runs_in(&[JobState::Running, JobState::CancelPending])
            .await?;
        for run in interrupted {
            let stopped = stop_orphan(&run);
            let (state, mut details, reason) = if run.state == JobState::CancelPending {
                (
                    JobState::Cancelled,
                    "cancelled by request; the service restarted before the job had stopped"
                        .to_owned(),
                    None,
                )
            } else {
                (
                    JobState::Failed,
                    "the service restarted while the job was running; its outcome is unknown"
                        .to_owned(),
                    Some("INTERNAL_ERROR"),
                )
            };
            if stopped {
                details.push_str(" (its process was still alive and has been killed)");
            }
            warn!(job_id = %run.id, pid = run.pid, stopped, state = %state, "{details}");
            self.end(&run.id, &[run.state], state, Some(&details), reason)
                .await;
        }

        let queued = self.store.local_runs_in(&[JobState::Pending]).await?;
        if !queued.is_empty() {
            info!(
                count = queued.len(),
                "queueing again the local jobs that had not started before the restart"
            );
        }
        for run in queued {
            let id = run.id;
            match serde_json::from_str::<LocalCommand>(&run.command) {
                Ok(mut command) => {
                    // The program is this start's: a fixed SPARK_SUBMIT applies to queued jobs.
                    command.program = self.program.to_string_lossy().into_owned();
                    self.enqueue(id, command, PathBuf::from(run.log_path));
                }
                Err(e) => {
                    let details = format!("the recorded command of this job is unreadable: {e}");
                    self.fail(&id, &[JobState::Pending], &details).await;
                }
            }
        }
        Ok(())
    }
}

/// Kills the process group of a run left RUNNING by a previous process, if it is still
/// there: its pid leads its own group and (where `/proc` tells) started when recorded,
/// so that a reused pid is never killed. Returns whether it signalled.
fn stop_orphan(run: &LocalRunRow) -> bool {
    let Some(pid) = run
        .pid
        .and_then(|p| i32::try_from(p).ok())
        .filter(|p| *p > 1)
    else {
        return false;
    };
    let pid = Pid::from_raw(pid);
    if getpgid(Some(pid)).ok() != Some(pid) {
        return false;
    }
    if let (Some(recorded), Some(now)) =
        (run.process_start, process_start_time(pid.as_raw() as u32))
    {
        if recorded != now {
            return false;
        }
    }
    killpg(pid, Signal::SIGKILL).is_ok()
}

/// When the process started, in clock ticks since boot (Linux `/proc/<pid>/stat`, field
/// 22); `None` elsewhere.
pub(super) fn process_start_time(pid: u32) -> Option<i64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) is in parentheses and may hold spaces.
    let after_name = &stat[stat.rfind(')')? + 1..];
    after_name.split_whitespace().nth(19)?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_start_time_of_this_process_is_readable_on_linux() {
        if cfg!(target_os = "linux") {
            let t = process_start_time(std::process::id());
            assert!(t.is_some_and(|t| t >= 0));
            assert_eq!(t, process_start_time(std::process::id()));
        }
    }
}
