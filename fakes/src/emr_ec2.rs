//! `FakeEmrEc2`: the EMR (ElasticMapReduce) JSON API, as aws-sdk-emr 1.x speaks it,
//! served from memory on 127.0.0.1, with one cluster whose steps can be driven through
//! every state and whose cancels can be refused.
//!
//! Wire format, as the SDK reads and writes it (awsJson1_1):
//! - every call is `POST /` with `X-Amz-Target: ElasticMapReduce.<Operation>` and a JSON
//!   body of the operation's input; SigV4 is accepted unchecked;
//! - AddJobFlowSteps, DescribeStep, ListSteps, CancelSteps and DescribeCluster are served;
//! - timestamps are epoch seconds (JSON numbers);
//! - errors are status 400 with `{"__type": "<code>", "message": ...}`
//!   (`InvalidRequestException` for an unknown cluster or step).
//!
//! CancelSteps answers, for each step, SUBMITTED or FAILED with a reason, as EMR does: a
//! step in a final state is refused, and so is a running step when the fake is told to
//! refuse those (as releases before 5.28 do).
//!
//! AddJobFlowSteps can be told to answer late, after the step is added
//! ([`FakeEmrEc2::answer_adds_after`]): a client whose attempt timed out then did add a
//! step, as with EMR when an answer is lost.

use std::collections::{BTreeMap, HashMap};
use std::io;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::Response;
use axum::routing::post;
use axum::Router;
use serde_json::{json, Value};
use time::OffsetDateTime;

use crate::server::{self, Server};

/// The states of an EMR step.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum StepState {
    Pending,
    CancelPending,
    Running,
    Completed,
    Cancelled,
    Failed,
    Interrupted,
}

impl StepState {
    pub const ALL: [StepState; 7] = [
        StepState::Pending,
        StepState::CancelPending,
        StepState::Running,
        StepState::Completed,
        StepState::Cancelled,
        StepState::Failed,
        StepState::Interrupted,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            StepState::Pending => "PENDING",
            StepState::CancelPending => "CANCEL_PENDING",
            StepState::Running => "RUNNING",
            StepState::Completed => "COMPLETED",
            StepState::Cancelled => "CANCELLED",
            StepState::Failed => "FAILED",
            StepState::Interrupted => "INTERRUPTED",
        }
    }

    pub fn is_final(self) -> bool {
        matches!(
            self,
            StepState::Completed
                | StepState::Cancelled
                | StepState::Failed
                | StepState::Interrupted
        )
    }

    fn parse(s: &str) -> Option<Self> {
        StepState::ALL.into_iter().find(|r| r.as_str() == s)
    }
}

const OPERATIONS: [&str; 5] = [
    "AddJobFlowSteps",
    "DescribeStep",
    "ListSteps",
    "CancelSteps",
    "DescribeCluster",
];

fn op_index(name: &str) -> Option<usize> {
    OPERATIONS.iter().position(|o| *o == name)
}

struct Step {
    id: String,
    name: String,
    action_on_failure: String,
    jar: String,
    args: Vec<String>,
    state: StepState,
    /// `(reason, message, log file)` for FAILED; a state change message otherwise.
    failure: Option<(String, String, String)>,
    reason: String,
    created: OffsetDateTime,
    started: Option<OffsetDateTime>,
    ended: Option<OffsetDateTime>,
    cancel_at: Option<tokio::time::Instant>,
}

impl Step {
    fn settle(&mut self) {
        if let Some(at) = self.cancel_at {
            if tokio::time::Instant::now() >= at {
                self.cancel_at = None;
                self.state = StepState::Cancelled;
                self.ended = Some(OffsetDateTime::now_utc());
                self.reason = "Job terminated".into();
            }
        }
    }

    fn summary(&self) -> Value {
        let mut status = json!({
            "State": self.state.as_str(),
            "StateChangeReason": {},
            "Timeline": {"CreationDateTime": self.created.unix_timestamp()},
        });
        if !self.reason.is_empty() {
            status["StateChangeReason"]["Message"] = json!(self.reason);
        }
        if let Some(at) = self.started {
            status["Timeline"]["StartDateTime"] = json!(at.unix_timestamp());
        }
        if let Some(at) = self.ended {
            status["Timeline"]["EndDateTime"] = json!(at.unix_timestamp());
        }
        if let Some((reason, message, log)) = &self.failure {
            status["FailureDetails"] =
                json!({"Reason": reason, "Message": message, "LogFile": log});
        }
        json!({
            "Id": self.id,
            "Name": self.name,
            "Config": {"Jar": self.jar, "Args": self.args, "Properties": {}},
            "ActionOnFailure": self.action_on_failure,
            "Status": status,
        })
    }
}

struct Inner {
    cluster_state: String,
    cluster_reason: Option<(String, String)>,
    steps: Vec<Step>,
    by_id: HashMap<String, usize>,
    requests: Vec<Value>,
    refuse_running_cancels: Option<String>,
}

struct Shared {
    cluster_id: String,
    /// How long AddJobFlowSteps waits, once its steps are added, before it answers.
    add_answer_delay: Mutex<Duration>,
    log_uri: String,
    cancel_takes: Duration,
    calls: [AtomicUsize; 5],
    inner: Mutex<Inner>,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// Configures a [`FakeEmrEc2`] before it starts.
#[derive(Debug, Clone, Default)]
pub struct FakeEmrEc2Builder {
    cancel_takes: Duration,
}

impl FakeEmrEc2Builder {
    /// CancelSteps leaves the step CANCEL_PENDING for this long before CANCELLED.
    pub fn cancel_takes(mut self, duration: Duration) -> Self {
        self.cancel_takes = duration;
        self
    }

    pub async fn start(self) -> FakeEmrEc2 {
        self.try_start().await.expect("FakeEmrEc2 could not bind")
    }

    pub async fn try_start(self) -> io::Result<FakeEmrEc2> {
        let listener = server::bind(SocketAddr::from(([127, 0, 0, 1], 0)))?;
        let addr = listener.local_addr()?;
        let cluster_id = format!("j-{}", random_upper(13));
        let shared = Arc::new(Shared {
            log_uri: "s3://lab-emr-logs/elasticmapreduce/".into(),
            cluster_id,
            add_answer_delay: Mutex::new(Duration::ZERO),
            cancel_takes: self.cancel_takes,
            calls: Default::default(),
            inner: Mutex::new(Inner {
                cluster_state: "WAITING".into(),
                cluster_reason: None,
                steps: Vec::new(),
                by_id: HashMap::new(),
                requests: Vec::new(),
                refuse_running_cancels: None,
            }),
        });
        let server = Server::spawn(listener, router(shared.clone()));
        Ok(FakeEmrEc2 {
            addr,
            shared,
            _server: server,
        })
    }
}

/// A running fake EMR endpoint with one cluster. Dropping it stops it.
pub struct FakeEmrEc2 {
    addr: SocketAddr,
    shared: Arc<Shared>,
    _server: Server,
}

impl FakeEmrEc2 {
    /// Steps stay PENDING until [`set_state`](Self::set_state); cancels are immediate.
    pub async fn start() -> Self {
        Self::builder().start().await
    }

    pub fn builder() -> FakeEmrEc2Builder {
        FakeEmrEc2Builder::default()
    }

    /// `http://127.0.0.1:PORT`, for `AWS_ENDPOINT_URL`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// `j-…`.
    pub fn cluster_id(&self) -> &str {
        &self.shared.cluster_id
    }

    /// The cluster's log URI, as DescribeCluster shows it.
    pub fn log_uri(&self) -> &str {
        &self.shared.log_uri
    }

    /// Puts a step in `state`. For FAILED, `details` is the failure's reason and the log
    /// file is under the cluster's log URI; otherwise it is the state change message.
    /// False when there is no such step.
    pub fn set_state(&self, id: &str, state: StepState, details: &str) -> bool {
        let mut inner = self.shared.lock();
        let Some(&i) = inner.by_id.get(id) else {
            return false;
        };
        let step = &mut inner.steps[i];
        let now = OffsetDateTime::now_utc();
        step.state = state;
        step.cancel_at = None;
        step.failure = None;
        step.reason = String::new();
        if state == StepState::Failed {
            step.failure = Some((
                details.to_owned(),
                String::new(),
                format!(
                    "{}{}/steps/{id}/stderr.gz",
                    self.shared.log_uri, self.shared.cluster_id
                ),
            ));
        } else {
            step.reason = details.to_owned();
        }
        if state != StepState::Pending {
            step.started.get_or_insert(now);
        }
        step.ended = state.is_final().then_some(now);
        true
    }

    /// From now on CancelSteps refuses running steps with this reason, as EMR releases
    /// before 5.28 do; `None` accepts them again.
    pub fn refuse_running_cancels(&self, reason: Option<&str>) {
        self.shared.lock().refuse_running_cancels = reason.map(str::to_owned);
    }

    /// Sets the cluster's state (STARTING, WAITING, RUNNING, TERMINATED, ...) and the
    /// reason DescribeCluster gives.
    pub fn set_cluster_state(&self, state: &str, code: &str, message: &str) {
        let mut inner = self.shared.lock();
        inner.cluster_state = state.to_owned();
        inner.cluster_reason = (!code.is_empty()).then(|| (code.to_owned(), message.to_owned()));
    }

    /// Places `n` steps named `name` in `state` without AddJobFlowSteps, with these
    /// arguments; returns their ids.
    pub fn insert_steps(
        &self,
        n: usize,
        name: &str,
        state: StepState,
        args: &[&str],
    ) -> Vec<String> {
        let mut inner = self.shared.lock();
        (0..n)
            .map(|_| {
                let id = new_step(
                    &mut inner,
                    name.to_owned(),
                    "CONTINUE".into(),
                    "command-runner.jar".into(),
                    args.iter().map(|a| a.to_string()).collect(),
                );
                let i = inner.by_id[&id];
                inner.steps[i].state = state;
                inner.steps[i].ended = state.is_final().then(OffsetDateTime::now_utc);
                id
            })
            .collect()
    }

    /// The step as DescribeStep shows it (the object under `Step`).
    pub fn step(&self, id: &str) -> Option<Value> {
        let mut inner = self.shared.lock();
        let i = *inner.by_id.get(id)?;
        inner.steps[i].settle();
        Some(inner.steps[i].summary())
    }

    pub fn step_ids(&self) -> Vec<String> {
        self.shared
            .lock()
            .steps
            .iter()
            .map(|s| s.id.clone())
            .collect()
    }

    /// From now on AddJobFlowSteps adds its steps at once and answers only `delay` later,
    /// so that a client that gives up sooner has added them all the same.
    pub fn answer_adds_after(&self, delay: Duration) {
        *self
            .shared
            .add_answer_delay
            .lock()
            .unwrap_or_else(|p| p.into_inner()) = delay;
    }

    /// Every AddJobFlowSteps body received, in order.
    pub fn add_requests(&self) -> Vec<Value> {
        self.shared.lock().requests.clone()
    }

    /// How many calls of `op` (`"DescribeStep"`, `"ListSteps"`, ...) arrived.
    pub fn calls(&self, op: &str) -> usize {
        let i = op_index(op).unwrap_or_else(|| panic!("FakeEmrEc2 serves no operation {op:?}"));
        self.shared.calls[i].load(Ordering::Relaxed)
    }

    /// Calls of every operation, by name.
    pub fn call_counts(&self) -> BTreeMap<&'static str, usize> {
        OPERATIONS.iter().map(|op| (*op, self.calls(op))).collect()
    }
}

fn random_upper(n: usize) -> String {
    use rand::Rng;
    const ALPHABET: &[u8] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ";
    let mut rng = rand::thread_rng();
    (0..n)
        .map(|_| char::from(ALPHABET[rng.gen_range(0..ALPHABET.len())]))
        .collect()
}

fn new_step(
    inner: &mut Inner,
    name: String,
    action_on_failure: String,
    jar: String,
    args: Vec<String>,
) -> String {
    let id = format!("s-{}", random_upper(13));
    inner.by_id.insert(id.clone(), inner.steps.len());
    inner.steps.push(Step {
        id: id.clone(),
        name,
        action_on_failure,
        jar,
        args,
        state: StepState::Pending,
        failure: None,
        reason: String::new(),
        created: OffsetDateTime::now_utc(),
        started: None,
        ended: None,
        cancel_at: None,
    });
    id
}

fn router(shared: Arc<Shared>) -> Router {
    Router::new().route("/", post(dispatch)).with_state(shared)
}

fn ok(body: Value) -> Response {
    let mut r = Response::new(Body::from(serde_json::to_vec(&body).expect("JSON")));
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/x-amz-json-1.1"),
    );
    r.headers_mut().insert(
        "x-amzn-RequestId",
        HeaderValue::from_static("fa4e5e55-0000-4000-8000-000000000001"),
    );
    r
}

fn fault(kind: &str, message: impl Into<String>) -> Response {
    let mut r = ok(json!({"__type": kind, "message": message.into()}));
    *r.status_mut() = StatusCode::BAD_REQUEST;
    r
}

fn invalid(message: impl Into<String>) -> Response {
    fault("InvalidRequestException", message)
}

async fn dispatch(State(shared): State<Arc<Shared>>, headers: HeaderMap, body: Bytes) -> Response {
    let target = headers
        .get("x-amz-target")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    let Some(op) = target.strip_prefix("ElasticMapReduce.") else {
        return fault("UnknownOperationException", format!("no target {target:?}"));
    };
    let Some(i) = op_index(op) else {
        return fault(
            "UnknownOperationException",
            format!("{op} is not served here"),
        );
    };
    shared.calls[i].fetch_add(1, Ordering::Relaxed);
    let Ok(input) = serde_json::from_slice::<Value>(&body) else {
        return fault("ValidationException", "The request body is not valid JSON.");
    };
    if op == "AddJobFlowSteps" {
        shared.lock().requests.push(input.clone());
    }
    let cluster_field = if op == "AddJobFlowSteps" {
        "JobFlowId"
    } else {
        "ClusterId"
    };
    let cluster = input[cluster_field].as_str().unwrap_or_default();
    if cluster != shared.cluster_id {
        return invalid(format!("Cluster id '{cluster}' is not valid."));
    }
    match op {
        "AddJobFlowSteps" => {
            let answer = add_job_flow_steps(&shared, &input);
            let delay = *shared
                .add_answer_delay
                .lock()
                .unwrap_or_else(|p| p.into_inner());
            tokio::time::sleep(delay).await;
            answer
        }
        "DescribeStep" => describe_step(&shared, &input),
        "ListSteps" => list_steps(&shared, &input),
        "CancelSteps" => cancel_steps(&shared, &input),
        _ => describe_cluster(&shared),
    }
}

fn add_job_flow_steps(shared: &Shared, input: &Value) -> Response {
    let mut inner = shared.lock();
    if ["TERMINATING", "TERMINATED", "TERMINATED_WITH_ERRORS"]
        .contains(&inner.cluster_state.as_str())
    {
        return invalid(format!(
            "A job flow that is shutting down, terminated, or finished may not be modified: {}",
            shared.cluster_id
        ));
    }
    let Some(steps) = input["Steps"].as_array() else {
        return fault("ValidationException", "Steps is required.");
    };
    let mut ids = Vec::new();
    for step in steps {
        let args: Vec<String> = step["HadoopJarStep"]["Args"]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|s| s.as_str().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default();
        let total: usize = args.iter().map(|a| a.chars().count()).sum();
        if total > 10_240 {
            return fault(
                "ValidationException",
                "The step's arguments exceed 10240 characters.",
            );
        }
        let Some(name) = step["Name"].as_str() else {
            return fault("ValidationException", "Name is required.");
        };
        ids.push(new_step(
            &mut inner,
            name.to_owned(),
            step["ActionOnFailure"]
                .as_str()
                .unwrap_or("CONTINUE")
                .to_owned(),
            step["HadoopJarStep"]["Jar"]
                .as_str()
                .unwrap_or_default()
                .to_owned(),
            args,
        ));
    }
    ok(json!({ "StepIds": ids }))
}

fn describe_step(shared: &Shared, input: &Value) -> Response {
    let id = input["StepId"].as_str().unwrap_or_default();
    let mut inner = shared.lock();
    let Some(&i) = inner.by_id.get(id) else {
        return invalid(format!("Step id '{id}' is not valid."));
    };
    inner.steps[i].settle();
    ok(json!({ "Step": inner.steps[i].summary() }))
}

fn list_steps(shared: &Shared, input: &Value) -> Response {
    let mut states = Vec::new();
    for s in input["StepStates"].as_array().into_iter().flatten() {
        match s.as_str().and_then(StepState::parse) {
            Some(state) => states.push(state),
            None => return fault("ValidationException", format!("{s} is not a step state.")),
        }
    }
    let ids: Vec<&str> = input["StepIds"]
        .as_array()
        .map(|a| a.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    let start = match input["Marker"].as_str() {
        None => 0,
        Some(m) => match m.parse::<usize>() {
            Ok(n) => n,
            Err(_) => return invalid("The marker is not valid."),
        },
    };
    let mut inner = shared.lock();
    let mut matching = Vec::new();
    // Newest first, as EMR lists them.
    for step in inner.steps.iter_mut().rev() {
        step.settle();
        if (!states.is_empty() && !states.contains(&step.state))
            || (!ids.is_empty() && !ids.contains(&step.id.as_str()))
        {
            continue;
        }
        matching.push(step.summary());
    }
    let end = (start + 50).min(matching.len());
    let page: Vec<Value> = matching.get(start..end).unwrap_or_default().to_vec();
    let mut body = json!({ "Steps": page });
    if end < matching.len() {
        body["Marker"] = json!(end.to_string());
    }
    ok(body)
}

fn cancel_steps(shared: &Shared, input: &Value) -> Response {
    if input["StepCancellationOption"].as_str() != Some("SEND_INTERRUPT")
        && input["StepCancellationOption"].as_str() != Some("TERMINATE_PROCESS")
        && !input["StepCancellationOption"].is_null()
    {
        return fault("ValidationException", "Unknown StepCancellationOption.");
    }
    let mut inner = shared.lock();
    let refuse_running = inner.refuse_running_cancels.clone();
    let mut infos = Vec::new();
    for id in input["StepIds"].as_array().into_iter().flatten() {
        let id = id.as_str().unwrap_or_default();
        let Some(&i) = inner.by_id.get(id) else {
            infos.push(json!({"StepId": id, "Status": "FAILED",
                "Reason": format!("Step id '{id}' is not valid.")}));
            continue;
        };
        let step = &mut inner.steps[i];
        step.settle();
        let refusal = match step.state {
            s if s.is_final() => Some(format!(
                "Step {id} is in a terminal state {} and cannot be cancelled.",
                s.as_str()
            )),
            StepState::Running => refuse_running.clone(),
            _ => None,
        };
        if let Some(reason) = refusal {
            infos.push(json!({"StepId": id, "Status": "FAILED", "Reason": reason}));
            continue;
        }
        if shared.cancel_takes.is_zero() {
            step.state = StepState::Cancelled;
            step.ended = Some(OffsetDateTime::now_utc());
            step.reason = "Job terminated".into();
        } else if step.state != StepState::CancelPending {
            step.state = StepState::CancelPending;
            step.cancel_at = Some(tokio::time::Instant::now() + shared.cancel_takes);
        }
        infos.push(json!({"StepId": id, "Status": "SUBMITTED", "Reason": ""}));
    }
    ok(json!({ "CancelStepsInfoList": infos }))
}

fn describe_cluster(shared: &Shared) -> Response {
    let inner = shared.lock();
    let mut status = json!({
        "State": inner.cluster_state,
        "StateChangeReason": {},
        "Timeline": {"CreationDateTime": 1_700_000_000},
    });
    if let Some((code, message)) = &inner.cluster_reason {
        status["StateChangeReason"] = json!({"Code": code, "Message": message});
    }
    ok(json!({"Cluster": {
        "Id": shared.cluster_id,
        "Name": "lab-cluster",
        "Status": status,
        "LogUri": shared.log_uri,
        "ReleaseLabel": "emr-6.15.0",
        "StepConcurrencyLevel": 1,
        "Applications": [{"Name": "Spark", "Version": "3.4.1"}],
    }}))
}
