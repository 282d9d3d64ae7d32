//! `FakeEmr`: the emr-containers REST-JSON API (EMR on EKS), as aws-sdk-emrcontainers 1.x
//! speaks it, served from memory on 127.0.0.1.
//!
//! Wire format, as the SDK reads and writes it:
//! - paths `/virtualclusters[/{id}[/jobruns[/{jobRunId}]]]`; SigV4 is accepted unchecked;
//! - timestamps in bodies are RFC 3339 strings (the model's `Date` shape is `date-time`),
//!   written here as `2023-06-29T17:08:56+00:00`, whole seconds;
//! - ListJobRuns filters come as query parameters: `states` repeated once per state,
//!   `createdAfter`/`createdBefore` as RFC 3339 in UTC with a `Z` (and a fraction only when
//!   the instant has one), `name`, `maxResults`, `nextToken`;
//! - errors carry their type in the `x-amzn-ErrorType` header and `{"message": ...}` as the
//!   body; the SDK maps the type to an error variant where the operation models it.

mod http;
mod store;

use std::collections::BTreeMap;
use std::fmt;
use std::io;
use std::net::SocketAddr;
use std::str::FromStr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use serde_json::Value;
use time::OffsetDateTime;
use tokio::sync::{watch, Notify};

use crate::server::{self, Server};
use crate::TimedOut;
use store::{Fault, Inner};

/// The states of a job run, as emr-containers names them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum JobState {
    #[default]
    Pending,
    Submitted,
    Running,
    Failed,
    Cancelled,
    CancelPending,
    Completed,
}

impl JobState {
    pub const ALL: [JobState; 7] = [
        JobState::Pending,
        JobState::Submitted,
        JobState::Running,
        JobState::Failed,
        JobState::Cancelled,
        JobState::CancelPending,
        JobState::Completed,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            JobState::Pending => "PENDING",
            JobState::Submitted => "SUBMITTED",
            JobState::Running => "RUNNING",
            JobState::Failed => "FAILED",
            JobState::Cancelled => "CANCELLED",
            JobState::CancelPending => "CANCEL_PENDING",
            JobState::Completed => "COMPLETED",
        }
    }

    /// A job in a final state never changes again and has a `finishedAt`.
    pub fn is_final(self) -> bool {
        matches!(
            self,
            JobState::Failed | JobState::Cancelled | JobState::Completed
        )
    }
}

impl fmt::Display for JobState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for JobState {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        JobState::ALL
            .into_iter()
            .find(|state| state.as_str() == s)
            .ok_or_else(|| format!("unknown job run state {s:?}"))
    }
}

impl serde::Serialize for JobState {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

/// The emr-containers operations the fake serves; their names are the API's.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Operation {
    StartJobRun,
    DescribeJobRun,
    CancelJobRun,
    ListJobRuns,
    DescribeVirtualCluster,
    ListVirtualClusters,
    CreateVirtualCluster,
}

impl Operation {
    const COUNT: usize = 7;
    const ALL: [Operation; Operation::COUNT] = [
        Operation::StartJobRun,
        Operation::DescribeJobRun,
        Operation::CancelJobRun,
        Operation::ListJobRuns,
        Operation::DescribeVirtualCluster,
        Operation::ListVirtualClusters,
        Operation::CreateVirtualCluster,
    ];

    fn name(self) -> &'static str {
        match self {
            Operation::StartJobRun => "StartJobRun",
            Operation::DescribeJobRun => "DescribeJobRun",
            Operation::CancelJobRun => "CancelJobRun",
            Operation::ListJobRuns => "ListJobRuns",
            Operation::DescribeVirtualCluster => "DescribeVirtualCluster",
            Operation::ListVirtualClusters => "ListVirtualClusters",
            Operation::CreateVirtualCluster => "CreateVirtualCluster",
        }
    }

    fn index(self) -> usize {
        self as usize
    }

    /// Test code names operations by string; a typo must fail loudly, not count zero calls.
    fn named(name: &str) -> Operation {
        Operation::ALL
            .into_iter()
            .find(|op| op.name() == name)
            .unwrap_or_else(|| {
                let known: Vec<_> = Operation::ALL.iter().map(|op| op.name()).collect();
                panic!("FakeEmr serves no operation {name:?}; it serves {known:?}")
            })
    }
}

/// A job run to place in the fake directly, as if someone else had started it.
#[derive(Debug, Clone, Default)]
pub struct NewJob {
    /// The fake's own virtual cluster when `None`.
    pub virtual_cluster_id: Option<String>,
    /// A fresh id when `None`.
    pub id: Option<String>,
    pub name: Option<String>,
    pub state: JobState,
    pub state_details: Option<String>,
    pub failure_reason: Option<String>,
    pub tags: BTreeMap<String, String>,
    /// Now when `None`.
    pub created_at: Option<OffsetDateTime>,
    /// Now when `None` and `state` is final.
    pub finished_at: Option<OffsetDateTime>,
    pub client_token: Option<String>,
    pub execution_role_arn: Option<String>,
    pub release_label: Option<String>,
    pub job_driver: Option<Value>,
    pub configuration_overrides: Option<Value>,
}

/// How new job runs move through their states without anyone calling `set_state`.
#[derive(Debug, Clone)]
pub(crate) struct Settings {
    pub(crate) region: String,
    pub(crate) account_id: String,
    pub(crate) initial_state: JobState,
    /// Offsets from creation, ascending, each with the state the job takes then.
    pub(crate) lifecycle: Vec<(Duration, JobState)>,
    /// How long a cancelled job stays CANCEL_PENDING; zero means CANCELLED at once.
    pub(crate) cancel_takes: Duration,
    pub(crate) record_start_requests: bool,
}

/// Configures a [`FakeEmr`] before it starts.
#[derive(Debug, Clone)]
pub struct FakeEmrBuilder {
    settings: Settings,
    virtual_cluster_id: Option<String>,
    port: u16,
}

impl Default for FakeEmrBuilder {
    fn default() -> Self {
        Self {
            settings: Settings {
                region: "us-east-1".to_owned(),
                account_id: "123456789012".to_owned(),
                initial_state: JobState::Pending,
                lifecycle: Vec::new(),
                cancel_takes: Duration::ZERO,
                record_start_requests: true,
            },
            virtual_cluster_id: None,
            port: 0,
        }
    }
}

impl FakeEmrBuilder {
    /// The id of the virtual cluster the fake starts with (random when not given).
    pub fn virtual_cluster_id(mut self, id: impl Into<String>) -> Self {
        self.virtual_cluster_id = Some(id.into());
        self
    }

    /// The region and account that appear in ARNs.
    pub fn region(mut self, region: impl Into<String>) -> Self {
        self.settings.region = region.into();
        self
    }

    pub fn account_id(mut self, account_id: impl Into<String>) -> Self {
        self.settings.account_id = account_id.into();
        self
    }

    /// Port 0 (the default) takes any free port.
    pub fn port(mut self, port: u16) -> Self {
        self.port = port;
        self
    }

    /// The state a job run has right after StartJobRun (PENDING, as on AWS).
    pub fn initial_state(mut self, state: JobState) -> Self {
        self.settings.initial_state = state;
        self
    }

    /// Job runs take these states at these times after their creation.
    pub fn lifecycle(mut self, steps: impl IntoIterator<Item = (Duration, JobState)>) -> Self {
        let mut steps: Vec<_> = steps.into_iter().collect();
        steps.sort_by_key(|(after, _)| *after);
        self.settings.lifecycle = steps;
        self
    }

    /// Job runs are in `state` (a final one, normally) from their first read on.
    pub fn jobs_finish_immediately(self, state: JobState) -> Self {
        self.lifecycle([(Duration::ZERO, state)])
    }

    /// Job runs are RUNNING at once and COMPLETED after `after`.
    pub fn complete_after(self, after: Duration) -> Self {
        self.finish_after(after, JobState::Completed)
    }

    /// Job runs are RUNNING at once and end in `state` after `after`.
    pub fn finish_after(self, after: Duration, state: JobState) -> Self {
        if after.is_zero() {
            return self.jobs_finish_immediately(state);
        }
        self.lifecycle([(Duration::ZERO, JobState::Running), (after, state)])
    }

    /// CancelJobRun leaves the job CANCEL_PENDING for this long before CANCELLED.
    pub fn cancel_takes(mut self, duration: Duration) -> Self {
        self.settings.cancel_takes = duration;
        self
    }

    /// Keep every StartJobRun body for [`FakeEmr::start_requests`] (on by default; a
    /// long benchmark turns it off to keep memory flat).
    pub fn record_start_requests(mut self, record: bool) -> Self {
        self.settings.record_start_requests = record;
        self
    }

    /// Binds 127.0.0.1 and starts serving. Panics if the port cannot be bound.
    pub async fn start(self) -> FakeEmr {
        self.try_start().await.expect("FakeEmr could not bind")
    }

    pub async fn try_start(self) -> io::Result<FakeEmr> {
        let listener = server::bind(SocketAddr::from(([127, 0, 0, 1], self.port)))?;
        let addr = listener.local_addr()?;
        let virtual_cluster_id = self
            .virtual_cluster_id
            .unwrap_or_else(|| store::random_id(25));
        let inner = Inner::new(&self.settings, &virtual_cluster_id);
        let shared = Arc::new(Shared {
            settings: self.settings,
            calls: Default::default(),
            held: std::array::from_fn(|_| watch::Sender::new(false)),
            called: Notify::new(),
            inner: Mutex::new(inner),
        });
        let server = Server::spawn(listener, http::router(shared.clone()));
        Ok(FakeEmr {
            addr,
            virtual_cluster_id,
            shared,
            server: Some(server),
        })
    }
}

/// What the HTTP handlers and the control handle share.
pub(crate) struct Shared {
    pub(crate) settings: Settings,
    calls: [AtomicUsize; Operation::COUNT],
    /// Per operation: true while a [`Hold`] keeps its calls from being answered.
    held: [watch::Sender<bool>; Operation::COUNT],
    called: Notify,
    inner: Mutex<Inner>,
}

impl Shared {
    pub(crate) fn lock(&self) -> MutexGuard<'_, Inner> {
        // A panicking test thread must not take every later request down with it.
        self.inner
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Counts the call and takes what was scripted for it: a delay and maybe an error.
    pub(crate) fn enter(&self, op: Operation) -> (Duration, Option<Fault>) {
        self.calls[op.index()].fetch_add(1, Ordering::Relaxed);
        self.called.notify_waiters();
        let mut inner = self.lock();
        inner.scripted(op)
    }

    /// Returns once no [`Hold`] on `op` is in force (at once when none is).
    pub(crate) async fn pass_hold(&self, op: Operation) {
        let mut held = self.held[op.index()].subscribe();
        // The sender lives as long as `self`, so this cannot fail.
        let _ = held.wait_for(|held| !*held).await;
    }
}

/// Keeps every call of one operation from being answered until it is released or
/// dropped; the calls are counted when they arrive, as usual. From
/// [`FakeEmr::hold`]: a test can keep a request in flight for exactly as long as it needs,
/// with no guess at how long that is.
#[must_use = "the hold ends when this is dropped"]
pub struct Hold {
    shared: Arc<Shared>,
    op: Operation,
}

impl Hold {
    /// Lets the held calls, and every later one, be answered.
    pub fn release(self) {}
}

impl Drop for Hold {
    fn drop(&mut self) {
        self.shared.held[self.op.index()].send_replace(false);
    }
}

/// A running fake EMR on EKS endpoint and the handle to script and inspect it. Dropping
/// the handle stops the server.
pub struct FakeEmr {
    addr: SocketAddr,
    virtual_cluster_id: String,
    shared: Arc<Shared>,
    server: Option<Server>,
}

impl FakeEmr {
    /// A fake with defaults: one RUNNING virtual cluster, jobs that stay PENDING until told.
    pub async fn start() -> FakeEmr {
        FakeEmrBuilder::default().start().await
    }

    pub fn builder() -> FakeEmrBuilder {
        FakeEmrBuilder::default()
    }

    /// `http://127.0.0.1:PORT`, the value for `AWS_ENDPOINT_URL` or `endpoint_url`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The virtual cluster the fake was started with.
    pub fn virtual_cluster_id(&self) -> &str {
        &self.virtual_cluster_id
    }

    pub fn region(&self) -> &str {
        &self.shared.settings.region
    }

    pub fn account_id(&self) -> &str {
        &self.shared.settings.account_id
    }

    /// Puts a job run in `state`, as EMR would. A final state sets `finishedAt` to now, a
    /// non-final one clears it; details and reason replace the old ones. Any scheduled
    /// lifecycle of the job stops. Returns false when no such job exists.
    pub fn set_state(
        &self,
        id: &str,
        state: JobState,
        state_details: Option<&str>,
        failure_reason: Option<&str>,
    ) -> bool {
        self.shared
            .lock()
            .set_state(id, state, state_details, failure_reason)
    }

    /// The job run as DescribeJobRun would show it (the object under `jobRun`).
    pub fn job(&self, id: &str) -> Option<Value> {
        self.shared.lock().job_json(id)
    }

    /// Ids of all job runs, in the order they were created.
    pub fn job_ids(&self) -> Vec<String> {
        self.shared.lock().job_ids()
    }

    /// Every StartJobRun body received, in order, as parsed JSON; this includes bodies
    /// answered with an injected error or a validation error, and repeated client tokens.
    pub fn start_requests(&self) -> Vec<Value> {
        self.shared.lock().start_requests.clone()
    }

    /// How many requests of an operation (`"StartJobRun"`, `"DescribeJobRun"`, ...) arrived,
    /// whatever they were answered. Panics on an operation name the fake does not serve.
    pub fn calls(&self, op: &str) -> usize {
        self.shared.calls[Operation::named(op).index()].load(Ordering::Relaxed)
    }

    /// Waits until `op` has been called at least `n` times in all.
    pub async fn wait_for_calls(
        &self,
        op: &str,
        n: usize,
        timeout: Duration,
    ) -> Result<usize, TimedOut> {
        let op = Operation::named(op);
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let called = self.shared.called.notified();
            tokio::pin!(called);
            called.as_mut().enable();
            let seen = self.shared.calls[op.index()].load(Ordering::Relaxed);
            if seen >= n {
                return Ok(seen);
            }
            if tokio::time::timeout_at(deadline, called).await.is_err() {
                return Err(TimedOut {
                    what: op.name(),
                    wanted: n,
                    got: self.shared.calls[op.index()].load(Ordering::Relaxed),
                });
            }
        }
    }

    /// The next call of `op` is answered with this error instead of being carried out:
    /// `status`, header `x-amzn-ErrorType: {error_type}`, body `{"message": message}`.
    /// The SDK retries 5xx and throttling errors on its own, so inject those with
    /// [`fail_times`](Self::fail_times) to get past its retries.
    pub fn fail_next(&self, op: &str, status: u16, error_type: &str, message: &str) {
        self.fail_times(op, 1, status, error_type, message);
    }

    /// The next `times` calls of `op` fail as in [`fail_next`](Self::fail_next).
    pub fn fail_times(&self, op: &str, times: usize, status: u16, error_type: &str, message: &str) {
        let op = Operation::named(op);
        let fault = Fault::new(status, error_type, message);
        let mut inner = self.shared.lock();
        for _ in 0..times {
            inner.push_fault(op, fault.clone());
        }
    }

    /// Forgets every injected error not yet served.
    pub fn clear_faults(&self) {
        self.shared.lock().clear_faults();
    }

    /// Every call of `op` from now on waits this long before it is answered (zero: none).
    pub fn set_delay(&self, op: &str, delay: Duration) {
        let op = Operation::named(op);
        self.shared.lock().set_delay(op, delay);
    }

    /// Holds every call of `op` from now on until the returned [`Hold`] is released or
    /// dropped: such calls are counted (see [`wait_for_calls`](Self::wait_for_calls)) and
    /// then wait, unanswered. Panics if `op` is already held.
    pub fn hold(&self, op: &str) -> Hold {
        let op = Operation::named(op);
        let was_held = self.shared.held[op.index()].send_replace(true);
        assert!(!was_held, "{} is already held", op.name());
        Hold {
            shared: self.shared.clone(),
            op,
        }
    }

    /// Places a job run in the fake without a StartJobRun call and returns its id.
    /// Panics if its virtual cluster does not exist or its id is taken.
    pub fn insert_job(&self, job: NewJob) -> String {
        let settings = &self.shared.settings;
        self.shared
            .lock()
            .insert_job(settings, &self.virtual_cluster_id, job)
    }

    /// Adds a RUNNING virtual cluster and returns its id.
    pub fn add_virtual_cluster(&self, name: &str) -> String {
        let id = store::random_id(25);
        self.shared
            .lock()
            .add_cluster(&self.shared.settings, &id, name, None, None);
        id
    }

    /// Sets a virtual cluster's state (RUNNING, TERMINATING, TERMINATED, ARRESTED);
    /// StartJobRun refuses clusters that are not RUNNING. False when no such cluster exists.
    pub fn set_virtual_cluster_state(&self, id: &str, state: &str) -> bool {
        self.shared.lock().set_cluster_state(id, state)
    }

    /// Stops the server and waits until its listener and connections are closed.
    pub async fn shutdown(mut self) {
        if let Some(server) = self.server.take() {
            server.stop().await;
        }
    }

    /// The number of calls of every operation, by name.
    pub fn call_counts(&self) -> BTreeMap<&'static str, usize> {
        call_counts(&self.shared)
    }
}

pub(crate) fn call_counts(shared: &Shared) -> BTreeMap<&'static str, usize> {
    Operation::ALL
        .into_iter()
        .map(|op| (op.name(), shared.calls[op.index()].load(Ordering::Relaxed)))
        .collect()
}
