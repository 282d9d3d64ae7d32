//! The local backend: every job is a `spark-submit` process on this machine, so the
//! service runs jobs with no AWS at all.
//!
//! A job is recorded PENDING and queued; at most `LOCAL_MAX_CONCURRENT` run at once. When
//! it gets a slot its process starts (RUNNING), in its own process group so that a cancel
//! reaches Spark's children too, with its output appended to `{LOCAL_LOG_DIR}/{id}.log`.
//! Its exit decides the final state. Every state lives in the store; when a run reaches a
//! final state its id goes to the `ended` channel, which the application forwards to the
//! notice outbox, so no sidecar is needed.
//!
//! At construction, the runs a previous process left behind are settled (`recovery`).

use std::collections::HashMap;
use std::io;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use nix::sys::signal::{killpg, Signal};
use nix::unistd::Pid;
use rand::Rng;
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use tokio::process::{Child, Command};
use tokio::sync::{mpsc, watch, Semaphore};
use tracing::{error, info, warn};

use super::spark::{entry_point, entry_point_arguments, py_files, SparkSubmit};
use super::{BackendError, JobBackend, JobPage, ListQuery};
use crate::config::{JobSettings, LocalSettings, SparkSettings};
use crate::job::{Algorithm, JobId, JobRun, JobSpec, JobState};
use crate::store::{now_millis, Inserted, LocalRunEnd, LocalRunRow, NewLocalRun, Store};

mod log;
mod recovery;

use recovery::process_start_time;

pub use log::{log_tail, LOG_TAIL_BYTES, LOG_TAIL_LINES};

/// Largest page of [`JobBackend::list`], as for EMR.
const MAX_PAGE_SIZE: u32 = 50;

/// Why the local backend cannot start.
#[derive(Debug, thiserror::Error)]
pub enum SetupError {
    #[error("SPARK_SUBMIT: {0}")]
    Program(String),
    #[error("LOCAL_SCRIPTS_DIR: {0}")]
    ScriptsDir(String),
    #[error("LOCAL_LOG_DIR: cannot create {path}: {source}")]
    LogDir { path: PathBuf, source: io::Error },
    #[error("cannot read the working directory: {0}")]
    WorkingDir(io::Error),
    #[error("store: {0}")]
    Store(#[from] sqlx::Error),
}

/// The process a run starts, as recorded with the run.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LocalCommand {
    pub program: String,
    pub args: Vec<String>,
    /// Set on top of the inherited environment.
    pub env: Vec<(String, String)>,
}

pub struct LocalBackend {
    inner: Arc<Inner>,
}

struct Inner {
    store: Store,
    settings: LocalSettings,
    /// The directory relative settings were resolved against.
    base_dir: PathBuf,
    /// `SPARK_SUBMIT`, found.
    program: PathBuf,
    scripts_dir: PathBuf,
    log_dir: PathBuf,
    spark: SparkSettings,
    job: JobSettings,
    slots: Arc<Semaphore>,
    ended: mpsc::UnboundedSender<JobId>,
    /// One cancel switch per run this process is watching (queued or running).
    controls: Mutex<HashMap<JobId, watch::Sender<bool>>>,
}

impl LocalBackend {
    /// Checks the settings (the program, the scripts folder, the log folder), settles the
    /// runs a previous process left unfinished, and queues those that never started.
    /// Every run that reaches a final state is sent on `ended`, including the ones
    /// settled here.
    pub async fn new(
        store: Store,
        settings: LocalSettings,
        spark: SparkSettings,
        job: JobSettings,
        ended: mpsc::UnboundedSender<JobId>,
    ) -> Result<Self, SetupError> {
        let base_dir = std::env::current_dir().map_err(SetupError::WorkingDir)?;
        let program =
            find_program(&settings.spark_submit, &base_dir).map_err(SetupError::Program)?;
        let scripts_dir = base_dir.join(&settings.scripts_dir);
        check_scripts_dir(&scripts_dir).map_err(SetupError::ScriptsDir)?;
        for algorithm in [Algorithm::BlindSearch, Algorithm::Bbha] {
            for (variable, file) in [
                ("ENTRYPOINT", entry_point(&job, algorithm)),
                ("PY_FILES", py_files(&job, algorithm)),
            ] {
                let path = scripts_dir.join(file);
                if !path.exists() {
                    warn!(
                        path = %path.display(),
                        "ALGO_{}_{variable} names a file that does not exist; its jobs will fail",
                        algorithm.env_name()
                    );
                }
            }
        }
        let log_dir = base_dir.join(&settings.log_dir);
        std::fs::create_dir_all(&log_dir).map_err(|source| SetupError::LogDir {
            path: log_dir.clone(),
            source,
        })?;
        let inner = Arc::new(Inner {
            store,
            slots: Arc::new(Semaphore::new(settings.max_concurrent.max(1))),
            settings,
            base_dir,
            program,
            scripts_dir,
            log_dir,
            spark,
            job,
            ended,
            controls: Mutex::new(HashMap::new()),
        });
        inner.recover().await?;
        Ok(LocalBackend { inner })
    }

    /// The spark-submit program jobs run with.
    pub fn program(&self) -> &Path {
        &self.inner.program
    }

    /// The folder of the job logs, absolute.
    pub fn log_dir(&self) -> &Path {
        &self.inner.log_dir
    }

    /// The process a job becomes:
    /// `{SPARK_SUBMIT} --master {SPARK_MASTER} <options> {scripts}/{entry point} <arguments>`.
    pub fn command_for(&self, spec: &JobSpec) -> LocalCommand {
        self.inner.command_for(spec)
    }
}

impl Inner {
    fn command_for(&self, spec: &JobSpec) -> LocalCommand {
        let in_scripts = |file: &str| self.scripts_dir.join(file).to_string_lossy().into_owned();
        let options =
            SparkSubmit::for_local(&self.spark, in_scripts(py_files(&self.job, spec.algorithm)));
        let mut args = vec!["--master".to_owned(), self.settings.spark_master.clone()];
        args.extend(options.to_args());
        args.push(in_scripts(entry_point(&self.job, spec.algorithm)));
        args.extend(entry_point_arguments(spec, &self.job.args_key_prefix));
        LocalCommand {
            program: self.program.to_string_lossy().into_owned(),
            args,
            env: vec![
                ("JOB_NAME".into(), spec.name.as_str().to_owned()),
                ("DATASETS_PATH".into(), self.job.datasets_path.clone()),
                ("RESULTS_PATH".into(), self.job.results_path.clone()),
            ],
        }
    }

    /// The cancel switches. Each statement under the lock leaves the map consistent, so a
    /// panic elsewhere while it was held does not make it unusable: later requests go on
    /// with it instead of panicking in turn.
    fn controls(&self) -> std::sync::MutexGuard<'_, HashMap<JobId, watch::Sender<bool>>> {
        self.controls.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Gives the run its cancel switch and its task, which waits for a slot.
    fn enqueue(self: &Arc<Self>, id: JobId, command: LocalCommand, log_path: PathBuf) {
        let (cancel_tx, cancel_rx) = watch::channel(false);
        self.controls().insert(id.clone(), cancel_tx);
        let this = self.clone();
        tokio::spawn(async move {
            this.run(&id, &command, &log_path, cancel_rx).await;
            this.controls().remove(&id);
        });
    }

    /// Flips the run's cancel switch. False when no task of this process watches it.
    fn signal_cancel(&self, id: &JobId) -> bool {
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
                self.end(
                    id,
                    &[JobState::Pending],
                    JobState::Failed,
                    Some(&details),
                    Some("INTERNAL_ERROR"),
                )
                .await;
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
            .local_run_started(
                id.as_str(),
                i64::from(pid),
                process_start_time(pid),
                now_millis(),
            )
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
                self.end(
                    id,
                    &[JobState::Pending],
                    JobState::Failed,
                    Some(&details),
                    Some("INTERNAL_ERROR"),
                )
                .await;
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
                self.end(
                    id,
                    &from,
                    JobState::Failed,
                    Some(&details),
                    Some("INTERNAL_ERROR"),
                )
                .await;
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

    /// Records the run's end, unless it already left the `from` states, and reports it on
    /// the `ended` channel. A store error is retried a few times; if it persists, the run
    /// stays unfinished in the store and the next start settles it.
    async fn end(
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
        let mut wait = Duration::from_millis(100);
        for attempt in 1..=5 {
            match self.store.finish_local_run(id.as_str(), from, &end).await {
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
                    tokio::time::sleep(wait).await;
                    wait *= 2;
                }
            }
        }
        error!(job_id = %id, state = %state, "gave up recording the end of a local job; the next start will settle it");
        false
    }
}

/// Resolves when the switch is on; never, if the switch is gone.
async fn cancelled(rx: &mut watch::Receiver<bool>) {
    if rx.wait_for(|on| *on).await.is_err() {
        std::future::pending::<()>().await;
    }
}

/// Kills a process group when dropped, unless disarmed: a run's processes never outlive
/// the task that watches them (e.g. when the runtime stops).
struct GroupGuard(Option<Pid>);

impl GroupGuard {
    fn disarm(&mut self) {
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
fn spawn(id: &JobId, command: &LocalCommand, log_path: &Path) -> io::Result<Child> {
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

fn describe_exit(status: ExitStatus) -> String {
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

/// Finds the program: a name is looked up in `PATH`, anything with a `/` is a path
/// (relative to `base`). Says what is missing when it cannot.
pub fn find_program(program: &str, base: &Path) -> Result<PathBuf, String> {
    if program.contains('/') {
        let path = base.join(program);
        return match std::fs::metadata(&path) {
            Ok(m) if m.is_file() && m.permissions().mode() & 0o111 != 0 => Ok(path),
            Ok(m) if m.is_file() => Err(format!("{} is not executable", path.display())),
            Ok(_) => Err(format!("{} is not a file", path.display())),
            Err(e) => Err(format!("{} cannot be used: {e}", path.display())),
        };
    }
    let search = std::env::var_os("PATH").unwrap_or_default();
    for dir in std::env::split_paths(&search).filter(|d| !d.as_os_str().is_empty()) {
        let candidate = base.join(dir).join(program);
        if std::fs::metadata(&candidate)
            .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        {
            return Ok(candidate);
        }
    }
    Err(format!(
        "'{program}' is not found in PATH ({}); install Spark or set SPARK_SUBMIT to the path of spark-submit",
        search.to_string_lossy()
    ))
}

fn check_scripts_dir(dir: &Path) -> Result<(), String> {
    match std::fs::metadata(dir) {
        Ok(m) if m.is_dir() => Ok(()),
        Ok(_) => Err(format!("{} is not a folder", dir.display())),
        Err(e) => Err(format!(
            "{} cannot be used ({e}); it must hold the entry scripts and py-files named by ALGO_*_ENTRYPOINT and ALGO_*_PY_FILES",
            dir.display()
        )),
    }
}

/// 19 characters of `[0-9a-z]`, like EMR's: the creation time in milliseconds (9
/// base-36 digits, so ids sort by creation) and 10 random characters.
fn new_id() -> JobId {
    const DIGITS: &[u8; 36] = b"0123456789abcdefghijklmnopqrstuvwxyz";
    let mut time = now_millis().max(0) as u64;
    let mut id = [b'0'; 19];
    for slot in id[..9].iter_mut().rev() {
        *slot = DIGITS[(time % 36) as usize];
        time /= 36;
    }
    let mut rng = rand::thread_rng();
    for slot in id[9..].iter_mut() {
        *slot = DIGITS[rng.gen_range(0..36)];
    }
    JobId::parse(std::str::from_utf8(&id).expect("ASCII")).expect("a well-formed id")
}

fn from_millis(ms: i64) -> OffsetDateTime {
    OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000)
        .unwrap_or(OffsetDateTime::UNIX_EPOCH)
}

fn store_error(e: sqlx::Error) -> BackendError {
    BackendError::Unavailable(format!("store: {e}"))
}

fn to_run(row: LocalRunRow) -> Result<JobRun, BackendError> {
    let id = JobId::parse(&row.id).ok_or_else(|| {
        BackendError::Rejected(format!("a local run has an unusable id {:?}", row.id))
    })?;
    Ok(JobRun {
        tags: Default::default(),
        id,
        name: row.name,
        state: row.state,
        created_at: from_millis(row.created_at),
        finished_at: row.finished_at.map(from_millis),
        state_details: row.state_details,
        failure_reason: row.failure_reason,
        log_location: Some(row.log_path),
        // Local runs live in this service's own store.
        ours: true,
    })
}

/// `next_token` is the `(created_at, id)` of the last run of the page.
fn encode_token(row: &LocalRunRow) -> String {
    format!("{}.{}", row.created_at, row.id)
}

fn decode_token(token: &str) -> Option<(i64, JobId)> {
    let (created_at, id) = token.split_once('.')?;
    Some((created_at.parse().ok()?, JobId::parse(id)?))
}

#[async_trait]
impl JobBackend for LocalBackend {
    fn kind(&self) -> &'static str {
        "local"
    }

    async fn start(&self, spec: &JobSpec, client_token: &str) -> Result<JobId, BackendError> {
        let inner = &self.inner;
        let id = new_id();
        let command = inner.command_for(spec);
        let log_path = inner.log_dir.join(format!("{id}.log"));
        let recorded = serde_json::to_string(&command).expect("a command always serialises");
        let log_text = log_path.to_string_lossy();
        let inserted = inner
            .store
            .insert_local_run(&NewLocalRun {
                id: id.as_str(),
                name: spec.name.as_str(),
                algorithm: spec.algorithm.code(),
                client_token,
                command: &recorded,
                log_path: &log_text,
                created_at: now_millis(),
            })
            .await
            .map_err(store_error)?;
        match inserted {
            Inserted::Existing(row) => JobId::parse(&row.id).ok_or_else(|| {
                BackendError::Rejected(format!("a local run has an unusable id {:?}", row.id))
            }),
            Inserted::New(_) => {
                info!(job_id = %id, name = spec.name.as_str(), "local job queued");
                inner.enqueue(id.clone(), command, log_path);
                Ok(id)
            }
        }
    }

    async fn describe(&self, id: &JobId) -> Result<JobRun, BackendError> {
        let row = self
            .inner
            .store
            .local_run(id.as_str())
            .await
            .map_err(store_error)?
            .ok_or(BackendError::NotFound)?;
        to_run(row)
    }

    async fn cancel(&self, id: &JobId) -> Result<(), BackendError> {
        let inner = &self.inner;
        // A run moves on its own (PENDING → RUNNING → final) while this reads it; each
        // step below only applies to the state it was read in, and is read again if not.
        for _ in 0..3 {
            let run = inner
                .store
                .local_run(id.as_str())
                .await
                .map_err(store_error)?
                .ok_or(BackendError::NotFound)?;
            match run.state {
                s if s.is_final() => {
                    return Err(BackendError::Conflict(format!(
                        "job {id} is already {s} and can no longer be cancelled"
                    )))
                }
                JobState::CancelPending => return Ok(()),
                JobState::Running => {
                    if inner
                        .store
                        .local_run_cancel_requested(id.as_str())
                        .await
                        .map_err(store_error)?
                    {
                        if !inner.signal_cancel(id) {
                            // No task of this process watches it (it cannot be running).
                            inner
                                .end(
                                    id,
                                    &[JobState::CancelPending],
                                    JobState::Cancelled,
                                    Some("cancelled by request"),
                                    None,
                                )
                                .await;
                        }
                        return Ok(());
                    }
                }
                _ => {
                    let ended = inner
                        .end(
                            id,
                            &[JobState::Pending],
                            JobState::Cancelled,
                            Some("cancelled by request before it started"),
                            None,
                        )
                        .await;
                    if ended {
                        inner.signal_cancel(id);
                        return Ok(());
                    }
                }
            }
        }
        Err(BackendError::Unavailable(format!(
            "job {id} kept changing state while being cancelled; try again"
        )))
    }

    async fn list(&self, query: &ListQuery) -> Result<JobPage, BackendError> {
        let after = match &query.next_token {
            Some(token) => Some(decode_token(token).ok_or_else(|| {
                BackendError::Rejected("next_token is not one this service gave out".into())
            })?),
            None => None,
        };
        let size = query
            .page_size
            .unwrap_or(MAX_PAGE_SIZE)
            .clamp(1, MAX_PAGE_SIZE) as usize;
        let created_after = query
            .created_after
            .map(|t| (t.unix_timestamp_nanos() / 1_000_000) as i64);
        let mut rows = self
            .inner
            .store
            .list_local_runs(
                &query.states,
                created_after,
                after.as_ref().map(|(at, id)| (*at, id.as_str())),
                size as i64 + 1,
            )
            .await
            .map_err(store_error)?;
        let next_token = if rows.len() > size {
            rows.truncate(size);
            rows.last().map(encode_token)
        } else {
            None
        };
        let jobs = rows.into_iter().map(to_run).collect::<Result<_, _>>()?;
        Ok(JobPage { jobs, next_token })
    }

    /// A local start records its run in the store before it answers, so a client token
    /// the store does not know never started anything.
    async fn find_submission(
        &self,
        client_token: &str,
        _since: OffsetDateTime,
    ) -> Result<super::Submitted, BackendError> {
        match self
            .inner
            .store
            .local_run_by_token(client_token)
            .await
            .map_err(store_error)?
        {
            Some(row) => Ok(super::Submitted::Started(to_run(row)?)),
            None => Ok(super::Submitted::NotStarted),
        }
    }

    async fn check(&self) -> Result<(), BackendError> {
        let inner = &self.inner;
        let mut problems = Vec::new();
        if let Err(e) = find_program(&inner.settings.spark_submit, &inner.base_dir) {
            problems.push(format!("SPARK_SUBMIT: {e}"));
        }
        if let Err(e) = check_scripts_dir(&inner.scripts_dir) {
            problems.push(format!("LOCAL_SCRIPTS_DIR: {e}"));
        }
        if problems.is_empty() {
            Ok(())
        } else {
            Err(BackendError::Unavailable(problems.join("; ")))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
        let backend = LocalBackend::new(store, config.local, config.spark, config.job, tx)
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

    #[test]
    fn ids_are_19_lowercase_alphanumerics_and_sort_by_creation() {
        let a = new_id();
        std::thread::sleep(Duration::from_millis(2));
        let b = new_id();
        for id in [&a, &b] {
            assert_eq!(id.as_str().len(), 19, "{id}");
            assert!(id
                .as_str()
                .bytes()
                .all(|c| c.is_ascii_digit() || c.is_ascii_lowercase()));
        }
        assert!(a.as_str()[..9] < b.as_str()[..9], "{a} {b}");
        assert_ne!(a, new_id());
    }

    #[test]
    fn programs_are_found_by_path_or_in_path_and_missing_ones_are_named() {
        let dir = tempfile::tempdir().unwrap();
        let exe = dir.path().join("tool");
        std::fs::write(&exe, "#!/bin/sh\n").unwrap();
        std::fs::set_permissions(&exe, std::fs::Permissions::from_mode(0o755)).unwrap();
        let plain = dir.path().join("plain");
        std::fs::write(&plain, "").unwrap();
        assert_eq!(
            find_program("./tool", dir.path()).unwrap(),
            dir.path().join("./tool")
        );
        assert_eq!(
            find_program(exe.to_str().unwrap(), Path::new("/")).unwrap(),
            exe
        );
        let err = find_program("./plain", dir.path()).unwrap_err();
        assert!(err.contains("not executable"), "{err}");
        let err = find_program("./absent", dir.path()).unwrap_err();
        assert!(err.contains("absent"), "{err}");
        assert!(find_program("sh", dir.path()).unwrap().is_absolute());
        let err = find_program("no-such-program-anywhere", dir.path()).unwrap_err();
        assert!(
            err.contains("not found in PATH") && err.contains("SPARK_SUBMIT"),
            "{err}"
        );
    }

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

    #[test]
    fn page_tokens_round_trip_and_foreign_ones_are_refused() {
        let row = LocalRunRow {
            id: "abc123".into(),
            name: "n".into(),
            client_token: "t".into(),
            state: JobState::Pending,
            command: "{}".into(),
            log_path: "/x".into(),
            pid: None,
            process_start: None,
            state_details: None,
            failure_reason: None,
            created_at: 1700000000123,
            started_at: None,
            finished_at: None,
        };
        let (at, id) = decode_token(&encode_token(&row)).unwrap();
        assert_eq!((at, id.as_str()), (1700000000123, "abc123"));
        for bad in ["", "x", "12", "12.", "a.b", "1.ABC", "1.../etc"] {
            assert!(decode_token(bad).is_none(), "{bad}");
        }
    }
}
