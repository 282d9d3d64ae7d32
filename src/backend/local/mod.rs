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
//!
//! This file holds the backend type and its [`JobBackend`] answers, all read from the
//! store. Beside it:
//! - `command`: the spark-submit command a job becomes, recorded with its run;
//! - `runner`: the queue, the cancel switches, and the life of a run;
//! - `process`: the run's process, its clean environment and its process group;
//! - `ending`: a run's final state, written to the store and sent on `ended`;
//! - `recovery`: what a previous process left, settled at start-up;
//! - `log`: the run's log file and the tail quoted when it fails;
//! - `setup`: the start-up and readiness checks of the program and the scripts;
//! - `ids`, `paging`: run ids, and the pages of `list`.

use std::collections::HashMap;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use time::OffsetDateTime;
use tokio::sync::{mpsc, watch, Semaphore};
use tracing::info;

use super::{BackendError, JobBackend, JobPage, ListQuery};
use crate::config::{JobSettings, LocalSettings, SparkSettings};
use crate::job::{BackendKind, FieldError, JobId, JobRun, JobSpec, JobState, DATASET_ARGUMENTS};
use crate::store::{now_millis, Inserted, LocalRunRow, NewLocalRun, Store, StoreError};

mod command;
mod ending;
mod ids;
mod log;
mod process;
mod recovery;
mod runner;
mod setup;

pub use command::LocalCommand;
pub use log::{log_tail, LOG_TAIL_BYTES, LOG_TAIL_LINES};
pub use process::INHERITED_ENV;
pub use setup::find_program;

use crate::backend::paging;
use ids::new_id;
use setup::{check_deploy_mode, check_scripts_dir, spark_conf_dir, warn_of_missing_scripts};

/// Why the local backend cannot start.
#[derive(Debug, thiserror::Error)]
pub enum SetupError {
    #[error("SPARK_SUBMIT: {0}")]
    Program(String),
    #[error("LOCAL_SCRIPTS_DIR: {0}")]
    ScriptsDir(String),
    /// A `spark-defaults.conf` that puts the driver on the cluster.
    #[error("{0}")]
    DeployMode(String),
    #[error("LOCAL_LOG_DIR: cannot create {path}: {source}")]
    LogDir { path: PathBuf, source: io::Error },
    #[error("cannot read the working directory: {0}")]
    WorkingDir(io::Error),
    #[error("store: {0}")]
    Store(#[from] StoreError),
}

/// Runs jobs as `spark-submit` processes on this machine, for development, tests and a
/// single host without AWS.
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
        check_deploy_mode(spark_conf_dir().as_deref()).map_err(SetupError::DeployMode)?;
        warn_of_missing_scripts(&scripts_dir, &job);
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

fn from_millis(ms: i64) -> OffsetDateTime {
    OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000)
        .unwrap_or(OffsetDateTime::UNIX_EPOCH)
}

fn store_error(e: StoreError) -> BackendError {
    BackendError::Unavailable(format!("store: {e}").into())
}

fn to_run(row: LocalRunRow) -> JobRun {
    JobRun {
        tags: Default::default(),
        id: row.id,
        name: row.name,
        state: row.state,
        created_at: from_millis(row.created_at),
        finished_at: row.finished_at.map(from_millis),
        state_details: row.state_details,
        failure_reason: row.failure_reason,
        log_location: Some(row.log_path),
        // Local runs live in this service's own store.
        links: Default::default(),
        ours: true,
    }
}

#[async_trait]
impl JobBackend for LocalBackend {
    fn kind(&self) -> BackendKind {
        BackendKind::Local
    }

    /// It watches its spark-submit processes and reports each end on its channel.
    fn tells_when_jobs_end(&self) -> bool {
        true
    }

    /// The job reads each dataset argument under `DATASETS_PATH` on this machine: the
    /// request's own checks keep the path relative and without `..`, and this one keeps
    /// it there through symbolic links (the deepest part of the path that exists must
    /// resolve inside the folder; a file that does not exist is the job's to report).
    fn check_request(&self, spec: &JobSpec) -> Result<(), FieldError> {
        let Ok(root) = self
            .inner
            .base_dir
            .join(&self.inner.job.datasets_path)
            .canonicalize()
        else {
            // No datasets folder: the job finds no file and says so.
            return Ok(());
        };
        for (i, (name, value)) in spec.arguments.iter().enumerate() {
            if !DATASET_ARGUMENTS.contains(&name.as_str()) {
                continue;
            }
            let mut probe = root.join(value);
            let resolved = loop {
                if let Ok(real) = probe.canonicalize() {
                    break real;
                }
                if !probe.pop() {
                    break root.clone();
                }
            };
            if !resolved.starts_with(&root) {
                return Err(FieldError {
                    field: format!("entrypoint_arguments[{i}].value"),
                    message: format!(
                        "{name} '{value}' leads out of the datasets folder (DATASETS_PATH)"
                    ),
                });
            }
        }
        Ok(())
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
                id: &id,
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
            Inserted::Existing(row) => Ok(row.id),
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
            .local_run(id)
            .await
            .map_err(store_error)?
            .ok_or(BackendError::NotFound)?;
        Ok(to_run(row))
    }

    async fn cancel(&self, id: &JobId) -> Result<(), BackendError> {
        let inner = &self.inner;
        // A run moves on its own (PENDING → RUNNING → final) while this reads it; each
        // step below only applies to the state it was read in, and is read again if not.
        for _ in 0..3 {
            let run = inner
                .store
                .local_run(id)
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
                        .local_run_cancel_requested(id)
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
        Err(BackendError::Unavailable(
            format!("job {id} kept changing state while being cancelled; try again").into(),
        ))
    }

    async fn list(&self, query: &ListQuery) -> Result<JobPage, BackendError> {
        let after = paging::after(query)?;
        let size = paging::page_size(query);
        let created_after = paging::created_after_millis(query);
        let mut rows = self
            .inner
            .store
            .list_local_runs(
                &query.states,
                created_after,
                after.as_ref().map(|(at, id)| (*at, id)),
                size as i64 + 1,
            )
            .await
            .map_err(store_error)?;
        let next_token = paging::cut(&mut rows, size, |r| (r.created_at, r.id.as_str()));
        let jobs = rows.into_iter().map(to_run).collect();
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
            Some(row) => Ok(super::Submitted::Started(to_run(row))),
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
            Err(BackendError::Unavailable(problems.join("; ").into()))
        }
    }
}
