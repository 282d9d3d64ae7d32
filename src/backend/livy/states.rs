//! Livy's session states onto the ones Multiomix knows.
//!
//! | Livy | job state |
//! |---|---|
//! | `not_started` | PENDING |
//! | `starting` | SUBMITTED (spark-submit is running; YARN has not started the driver) |
//! | `recovering` | the state last read (Livy restarted with recovery on and is finding the application again) |
//! | `running`, `busy`, `idle` | RUNNING |
//! | `shutting_down` | CANCEL_PENDING after a cancel, RUNNING otherwise |
//! | `success` | COMPLETED, once the job's `result.json` is found (with `DATA_STAGING=s3`); FAILED without it |
//! | `dead`, `error` | FAILED, with the last lines of Livy's log |
//! | `killed` | CANCELLED |
//! | (404: Livy no longer holds it) | CANCELLED after a cancel; otherwise COMPLETED if its `result.json` is found, else FAILED, saying so |

use crate::job::JobState;

/// What Livy's state alone says, before the results are looked at.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Reading {
    Is(JobState),
    /// `success`: spark-submit exited 0, which Livy reports even for an application
    /// that failed; the results decide.
    Succeeded,
}

/// Every state Livy gives a session.
pub const LIVY_STATES: [&str; 11] = [
    "not_started",
    "starting",
    "recovering",
    "idle",
    "running",
    "busy",
    "shutting_down",
    "error",
    "dead",
    "killed",
    "success",
];

/// Reads Livy's `state` of a batch that was last read in `last`, with or without a
/// cancel asked for; `None` for a state Livy does not define.
pub fn read(state: &str, cancel_requested: bool, last: JobState) -> Option<Reading> {
    Some(Reading::Is(match state {
        "not_started" => JobState::Pending,
        "starting" => JobState::Submitted,
        "recovering" if !last.is_final() => last,
        "recovering" => JobState::Submitted,
        "running" | "busy" | "idle" => JobState::Running,
        "shutting_down" if cancel_requested => JobState::CancelPending,
        "shutting_down" => JobState::Running,
        "success" => return Some(Reading::Succeeded),
        "dead" | "error" => JobState::Failed,
        "killed" => JobState::Cancelled,
        _ => return None,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_livy_state_reads_as_one_multiomix_knows() {
        for state in LIVY_STATES {
            assert!(read(state, false, JobState::Running).is_some(), "{state}");
        }
        assert_eq!(read("exploded", false, JobState::Running), None);
        let is = |s, cancel, last| read(s, cancel, last);
        use JobState::*;
        assert_eq!(
            is("not_started", false, Pending),
            Some(Reading::Is(Pending))
        );
        assert_eq!(is("starting", false, Pending), Some(Reading::Is(Submitted)));
        assert_eq!(is("running", true, Running), Some(Reading::Is(Running)));
        assert_eq!(is("idle", false, Running), Some(Reading::Is(Running)));
        assert_eq!(is("busy", false, Running), Some(Reading::Is(Running)));
        assert_eq!(
            is("shutting_down", true, Running),
            Some(Reading::Is(CancelPending))
        );
        assert_eq!(
            is("shutting_down", false, Running),
            Some(Reading::Is(Running))
        );
        assert_eq!(is("success", false, Running), Some(Reading::Succeeded));
        assert_eq!(is("dead", false, Running), Some(Reading::Is(Failed)));
        assert_eq!(is("error", false, Running), Some(Reading::Is(Failed)));
        assert_eq!(is("killed", false, Running), Some(Reading::Is(Cancelled)));
        // Recovery keeps what was known before Livy restarted.
        assert_eq!(is("recovering", false, Running), Some(Reading::Is(Running)));
        assert_eq!(is("recovering", false, Pending), Some(Reading::Is(Pending)));
    }
}
