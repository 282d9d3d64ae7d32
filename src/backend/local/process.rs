//! The operating-system side of a run: its process, started with a clean environment in a
//! group of its own, the guard that kills that group, and how its exit reads.

use std::io;
use std::os::unix::process::ExitStatusExt;
use std::path::Path;
use std::process::{ExitStatus, Stdio};

use nix::sys::signal::{killpg, Signal};
use nix::unistd::Pid;
use tokio::process::{Child, Command};

use super::log;
use super::LocalCommand;
use crate::job::JobId;

/// Kills a process group when dropped, unless disarmed: a run's processes never outlive
/// the task that watches them (e.g. when the runtime stops).
pub(super) struct GroupGuard(pub(super) Option<Pid>);

impl GroupGuard {
    pub(super) fn disarm(&mut self) {
        self.0 = None;
    }
}

impl Drop for GroupGuard {
    fn drop(&mut self) {
        if let Some(group) = self.0 {
            let _ = killpg(group, Signal::SIGKILL);
        }
    }
}

/// Starts the process: no shell, its own process group, stdin closed, stdout and stderr
/// appended to the log.
pub(super) fn spawn(id: &JobId, command: &LocalCommand, log_path: &Path) -> io::Result<Child> {
    let log = log::open(id, command, log_path)?;
    let stderr = log.try_clone()?;
    Command::new(&command.program)
        .args(&command.args)
        .env_clear()
        .envs(inherited_env())
        .envs(command.env.iter().map(|(k, v)| (k, v)))
        .stdin(Stdio::null())
        .stdout(Stdio::from(log))
        .stderr(Stdio::from(stderr))
        .process_group(0)
        .spawn()
}

/// What a job keeps of the service's environment: what spark-submit, the JVM and Python
/// need to start. Nothing else, so that the API and callback tokens, the notice secret
/// and AWS credentials never reach a job's code.
pub const INHERITED_ENV: &[&str] = &[
    "PATH",
    "HOME",
    "USER",
    "LOGNAME",
    "LANG",
    "LC_ALL",
    "LC_CTYPE",
    "TZ",
    "TMPDIR",
    "LD_LIBRARY_PATH",
    "JAVA_HOME",
    "SPARK_HOME",
    "SPARK_CONF_DIR",
    "SPARK_LOCAL_IP",
    "SPARK_LOCAL_DIRS",
    "HADOOP_HOME",
    "HADOOP_CONF_DIR",
    "PYSPARK_PYTHON",
    "PYSPARK_DRIVER_PYTHON",
    "PYTHONPATH",
    "VIRTUAL_ENV",
];

fn inherited_env() -> impl Iterator<Item = (&'static str, std::ffi::OsString)> {
    INHERITED_ENV
        .iter()
        .filter_map(|name| std::env::var_os(name).map(|value| (*name, value)))
}

pub(super) fn describe_exit(status: ExitStatus) -> String {
    match (status.code(), status.signal()) {
        (Some(code), _) => format!("spark-submit exited with code {code}"),
        (None, Some(signal)) => {
            let name = Signal::try_from(signal)
                .map(Signal::as_str)
                .unwrap_or("unknown");
            format!("spark-submit was killed by signal {signal} ({name})")
        }
        (None, None) => format!("spark-submit ended abnormally ({status})"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exits_are_described_by_code_or_signal() {
        assert_eq!(
            describe_exit(ExitStatus::from_raw(3 << 8)),
            "spark-submit exited with code 3"
        );
        assert_eq!(
            describe_exit(ExitStatus::from_raw(9)),
            "spark-submit was killed by signal 9 (SIGKILL)"
        );
    }
}
