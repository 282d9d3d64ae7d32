//! `FakeEmrServerless`: the emr-serverless REST-JSON API, as aws-sdk-emrserverless 1.x
//! speaks it, served from memory on 127.0.0.1, with runs that can be driven through
//! every state.
//!
//! Wire format, as the SDK reads and writes it:
//! - `POST /applications/{app}/jobruns` (StartJobRun), `GET /applications/{app}/jobruns`
//!   (ListJobRuns), `GET|DELETE /applications/{app}/jobruns/{id}` (GetJobRun,
//!   CancelJobRun), `GET /applications/{app}` (GetApplication); SigV4 is accepted
//!   unchecked;
//! - timestamps in bodies are epoch seconds (JSON numbers); ListJobRuns' `createdAtAfter`
//!   and `createdAtBefore` come as RFC 3339 query parameters, `states` once per state;
//! - errors carry their type in `x-amzn-ErrorType` and `{"message": ...}` as the body.
//!
//! A client token already used in the application answers the run it started, as AWS
//! does. CancelJobRun of a run in a final state is a ValidationException.

use std::collections::{BTreeMap, HashMap};
use std::io;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::{Path, RawQuery, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::Response;
use axum::routing::get;
use axum::Router;
use serde_json::{json, Value};
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

use crate::server::{self, Server};

/// The states of an EMR Serverless job run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RunState {
    Submitted,
    Pending,
    Scheduled,
    Queued,
    Running,
    Success,
    Failed,
    Cancelling,
    Cancelled,
}

impl RunState {
    pub const ALL: [RunState; 9] = [
        RunState::Submitted,
        RunState::Pending,
        RunState::Scheduled,
        RunState::Queued,
        RunState::Running,
        RunState::Success,
        RunState::Failed,
        RunState::Cancelling,
        RunState::Cancelled,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            RunState::Submitted => "SUBMITTED",
            RunState::Pending => "PENDING",
            RunState::Scheduled => "SCHEDULED",
            RunState::Queued => "QUEUED",
            RunState::Running => "RUNNING",
            RunState::Success => "SUCCESS",
            RunState::Failed => "FAILED",
            RunState::Cancelling => "CANCELLING",
            RunState::Cancelled => "CANCELLED",
        }
    }

    pub fn is_final(self) -> bool {
        matches!(
            self,
            RunState::Success | RunState::Failed | RunState::Cancelled
        )
    }

    fn parse(s: &str) -> Option<Self> {
        RunState::ALL.into_iter().find(|r| r.as_str() == s)
    }
}

const OPERATIONS: [&str; 5] = [
    "StartJobRun",
    "GetJobRun",
    "CancelJobRun",
    "ListJobRuns",
    "GetApplication",
];

fn op_index(name: &str) -> usize {
    OPERATIONS
        .iter()
        .position(|o| *o == name)
        .unwrap_or_else(|| panic!("FakeEmrServerless serves no operation {name:?}"))
}

struct Run {
    id: String,
    name: Option<String>,
    client_token: Option<String>,
    request: Value,
    tags: BTreeMap<String, String>,
    timeout_minutes: Option<i64>,
    created: OffsetDateTime,
    /// When the lifecycle started counting (creation).
    born: tokio::time::Instant,
    /// Set by `set_state` or a cancel: stops the lifecycle.
    fixed: Option<(RunState, OffsetDateTime)>,
    details: String,
    started: Option<OffsetDateTime>,
    ended: Option<OffsetDateTime>,
    cancel_at: Option<tokio::time::Instant>,
}

struct Inner {
    application_state: String,
    runs: Vec<Run>,
    by_id: HashMap<String, usize>,
    start_requests: Vec<Value>,
}

struct Shared {
    application_id: String,
    account_id: String,
    lifecycle: Vec<(Duration, RunState)>,
    cancel_takes: Duration,
    calls: [AtomicUsize; 5],
    inner: Mutex<Inner>,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn count(&self, op: &str) {
        self.calls[op_index(op)].fetch_add(1, Ordering::Relaxed);
    }

    /// The run's state now, after its lifecycle and any cancel; settles the end time.
    fn settle(&self, run: &mut Run) -> RunState {
        let now = tokio::time::Instant::now();
        if let Some(at) = run.cancel_at {
            if now >= at {
                run.cancel_at = None;
                run.fixed = Some((RunState::Cancelled, OffsetDateTime::now_utc()));
                run.ended = Some(OffsetDateTime::now_utc());
                run.details = "Job run was cancelled by a user.".into();
            }
        }
        if let Some((state, _)) = run.fixed {
            return state;
        }
        let elapsed = now - run.born;
        let mut state = RunState::Submitted;
        for (after, next) in &self.lifecycle {
            if elapsed >= *after {
                state = *next;
            }
        }
        if state == RunState::Running && run.started.is_none() {
            run.started = Some(OffsetDateTime::now_utc());
        }
        if state.is_final() {
            let at = OffsetDateTime::now_utc();
            run.started.get_or_insert(at);
            run.ended = Some(at);
            run.fixed = Some((state, at));
        }
        state
    }

    fn arn(&self, id: &str) -> String {
        format!(
            "arn:aws:emr-serverless:us-east-1:{}:/applications/{}/jobruns/{id}",
            self.account_id, self.application_id
        )
    }

    fn summary(&self, run: &mut Run) -> Value {
        let state = self.settle(run);
        let updated = run.fixed.map(|(_, at)| at).unwrap_or(run.created);
        json!({
            "applicationId": self.application_id,
            "id": run.id,
            "name": run.name,
            "arn": self.arn(&run.id),
            "createdBy": format!("arn:aws:iam::{}:role/multiomix-aws-emr", self.account_id),
            "createdAt": run.created.unix_timestamp(),
            "updatedAt": updated.unix_timestamp(),
            "executionRole": run.request["executionRoleArn"],
            "state": state.as_str(),
            "stateDetails": run.details,
            "releaseLabel": "emr-6.9.0",
            "type": "Spark",
        })
    }

    fn full(&self, run: &mut Run) -> Value {
        let mut v = self.summary(run);
        let o = v.as_object_mut().expect("an object");
        let id = o.remove("id").expect("an id");
        o.insert("jobRunId".into(), id);
        o.remove("type");
        o.insert("jobDriver".into(), run.request["jobDriver"].clone());
        if let Some(c) = run.request.get("configurationOverrides") {
            o.insert("configurationOverrides".into(), c.clone());
        }
        o.insert("tags".into(), json!(run.tags));
        if let Some(m) = run.timeout_minutes {
            o.insert("executionTimeoutMinutes".into(), json!(m));
        }
        if let Some(at) = run.started {
            o.insert("startedAt".into(), json!(at.unix_timestamp()));
        }
        if let Some(at) = run.ended {
            o.insert("endedAt".into(), json!(at.unix_timestamp()));
        }
        v
    }
}

/// Configures a [`FakeEmrServerless`] before it starts.
#[derive(Debug, Clone, Default)]
pub struct FakeEmrServerlessBuilder {
    lifecycle: Vec<(Duration, RunState)>,
    cancel_takes: Duration,
}

impl FakeEmrServerlessBuilder {
    /// Runs take these states at these times after their creation (SUBMITTED before the
    /// first); by default they stay SUBMITTED until told.
    pub fn lifecycle(mut self, steps: impl IntoIterator<Item = (Duration, RunState)>) -> Self {
        let mut steps: Vec<_> = steps.into_iter().collect();
        steps.sort_by_key(|(after, _)| *after);
        self.lifecycle = steps;
        self
    }

    /// CancelJobRun leaves the run CANCELLING for this long before CANCELLED.
    pub fn cancel_takes(mut self, duration: Duration) -> Self {
        self.cancel_takes = duration;
        self
    }

    pub async fn start(self) -> FakeEmrServerless {
        self.try_start()
            .await
            .expect("FakeEmrServerless could not bind")
    }

    pub async fn try_start(self) -> io::Result<FakeEmrServerless> {
        let listener = server::bind(SocketAddr::from(([127, 0, 0, 1], 0)))?;
        let addr = listener.local_addr()?;
        let shared = Arc::new(Shared {
            application_id: random_id(),
            account_id: "123456789012".into(),
            lifecycle: self.lifecycle,
            cancel_takes: self.cancel_takes,
            calls: Default::default(),
            inner: Mutex::new(Inner {
                application_state: "STARTED".into(),
                runs: Vec::new(),
                by_id: HashMap::new(),
                start_requests: Vec::new(),
            }),
        });
        let server = Server::spawn(listener, router(shared.clone()));
        Ok(FakeEmrServerless {
            addr,
            shared,
            _server: server,
        })
    }
}

/// A running fake EMR Serverless endpoint with one application. Dropping it stops it.
pub struct FakeEmrServerless {
    addr: SocketAddr,
    shared: Arc<Shared>,
    _server: Server,
}

impl FakeEmrServerless {
    /// Runs stay SUBMITTED until [`set_state`](Self::set_state).
    pub async fn start() -> Self {
        Self::builder().start().await
    }

    pub fn builder() -> FakeEmrServerlessBuilder {
        FakeEmrServerlessBuilder::default()
    }

    /// `http://127.0.0.1:PORT`, for `AWS_ENDPOINT_URL`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn application_id(&self) -> &str {
        &self.shared.application_id
    }

    /// Puts a run in `state` with these details; a final state sets `endedAt` to now.
    /// Its lifecycle stops. False when there is no such run.
    pub fn set_state(&self, id: &str, state: RunState, details: &str) -> bool {
        let mut inner = self.shared.lock();
        let Some(&i) = inner.by_id.get(id) else {
            return false;
        };
        let run = &mut inner.runs[i];
        let now = OffsetDateTime::now_utc();
        run.fixed = Some((state, now));
        run.cancel_at = None;
        run.details = details.to_owned();
        if state != RunState::Submitted && state != RunState::Pending {
            run.started.get_or_insert(now);
        }
        run.ended = state.is_final().then_some(now);
        true
    }

    /// Ends a run the way its execution timeout does: CANCELLED after running for its
    /// whole `executionTimeoutMinutes`.
    pub fn time_out(&self, id: &str) -> bool {
        let mut inner = self.shared.lock();
        let Some(&i) = inner.by_id.get(id) else {
            return false;
        };
        let run = &mut inner.runs[i];
        let minutes = run.timeout_minutes.unwrap_or(720);
        let now = OffsetDateTime::now_utc();
        run.fixed = Some((RunState::Cancelled, now));
        run.started = Some(now - time::Duration::minutes(minutes));
        run.ended = Some(now);
        run.details = format!("Job run exceeded the execution timeout of {minutes} minutes.");
        true
    }

    /// Sets the application's state (CREATED, STARTED, STOPPED, TERMINATED, ...).
    pub fn set_application_state(&self, state: &str) {
        self.shared.lock().application_state = state.to_owned();
    }

    /// Places `n` runs in `state` without StartJobRun, tagged with `tags`; returns their ids.
    pub fn insert_runs(&self, n: usize, state: RunState, tags: &[(&str, &str)]) -> Vec<String> {
        let mut inner = self.shared.lock();
        (0..n)
            .map(|_| {
                let id = new_run(&mut inner, None, None, json!({}), tags_of(tags), None);
                let i = inner.by_id[&id];
                let now = OffsetDateTime::now_utc();
                inner.runs[i].fixed = Some((state, now));
                inner.runs[i].ended = state.is_final().then_some(now);
                id
            })
            .collect()
    }

    /// The run as GetJobRun shows it (the object under `jobRun`).
    pub fn run(&self, id: &str) -> Option<Value> {
        let mut inner = self.shared.lock();
        let i = *inner.by_id.get(id)?;
        Some(self.shared.full(&mut inner.runs[i]))
    }

    pub fn run_ids(&self) -> Vec<String> {
        self.shared
            .lock()
            .runs
            .iter()
            .map(|r| r.id.clone())
            .collect()
    }

    /// Every StartJobRun body received, in order.
    pub fn start_requests(&self) -> Vec<Value> {
        self.shared.lock().start_requests.clone()
    }

    /// How many calls of `op` (`"GetJobRun"`, `"ListJobRuns"`, ...) arrived.
    pub fn calls(&self, op: &str) -> usize {
        self.shared.calls[op_index(op)].load(Ordering::Relaxed)
    }

    /// Calls of every operation, by name.
    pub fn call_counts(&self) -> BTreeMap<&'static str, usize> {
        OPERATIONS.iter().map(|op| (*op, self.calls(op))).collect()
    }
}

/// EMR Serverless ids: 16 characters of `[0-9a-z]`, starting `00f`.
fn random_id() -> String {
    use rand::Rng;
    const ALPHABET: &[u8] = b"0123456789abcdefghijklmnopqrstuvwxyz";
    let mut rng = rand::thread_rng();
    let tail: String = (0..13)
        .map(|_| char::from(ALPHABET[rng.gen_range(0..ALPHABET.len())]))
        .collect();
    format!("00f{tail}")
}

fn tags_of(tags: &[(&str, &str)]) -> BTreeMap<String, String> {
    tags.iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn new_run(
    inner: &mut Inner,
    name: Option<String>,
    client_token: Option<String>,
    request: Value,
    tags: BTreeMap<String, String>,
    timeout_minutes: Option<i64>,
) -> String {
    let id = random_id();
    inner.by_id.insert(id.clone(), inner.runs.len());
    inner.runs.push(Run {
        id: id.clone(),
        name,
        client_token,
        request,
        tags,
        timeout_minutes,
        created: OffsetDateTime::now_utc(),
        born: tokio::time::Instant::now(),
        fixed: None,
        details: String::new(),
        started: None,
        ended: None,
        cancel_at: None,
    });
    id
}

type S = State<Arc<Shared>>;

fn router(shared: Arc<Shared>) -> Router {
    Router::new()
        .route("/applications/{app}", get(get_application))
        .route(
            "/applications/{app}/jobruns",
            get(list_job_runs).post(start_job_run),
        )
        .route(
            "/applications/{app}/jobruns/{id}",
            get(get_job_run).delete(cancel_job_run),
        )
        .with_state(shared)
}

fn ok(body: Value) -> Response {
    let mut r = Response::new(Body::from(serde_json::to_vec(&body).expect("JSON")));
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    r.headers_mut().insert(
        "x-amzn-RequestId",
        HeaderValue::from_static("fa4e5e55-0000-4000-8000-000000000000"),
    );
    r
}

fn fault(status: StatusCode, kind: &'static str, message: String) -> Response {
    let mut r = ok(json!({ "message": message }));
    *r.status_mut() = status;
    r.headers_mut()
        .insert("x-amzn-ErrorType", HeaderValue::from_static(kind));
    r
}

fn not_found(what: &str) -> Response {
    fault(
        StatusCode::NOT_FOUND,
        "ResourceNotFoundException",
        format!("{what} does not exist"),
    )
}

fn validation(message: impl Into<String>) -> Response {
    fault(
        StatusCode::BAD_REQUEST,
        "ValidationException",
        message.into(),
    )
}

/// The answer to a request for another application than the fake's, if it is one.
fn other_app(shared: &Shared, app: &str) -> Option<Response> {
    (app != shared.application_id).then(|| not_found(&format!("Application {app}")))
}

async fn get_application(State(shared): S, Path(app): Path<String>) -> Response {
    shared.count("GetApplication");
    if let Some(r) = other_app(&shared, &app) {
        return r;
    }
    let state = shared.lock().application_state.clone();
    ok(json!({"application": {
        "applicationId": app,
        "name": "multiomix",
        "arn": format!("arn:aws:emr-serverless:us-east-1:{}:/applications/{app}", shared.account_id),
        "releaseLabel": "emr-6.9.0",
        "type": "Spark",
        "state": state,
        "createdAt": 1_700_000_000,
        "updatedAt": 1_700_000_000,
    }}))
}

async fn start_job_run(State(shared): S, Path(app): Path<String>, body: Bytes) -> Response {
    shared.count("StartJobRun");
    let Ok(request) = serde_json::from_slice::<Value>(&body) else {
        return validation("The request body is not valid JSON.");
    };
    let mut inner = shared.lock();
    inner.start_requests.push(request.clone());
    drop(inner);
    if let Some(r) = other_app(&shared, &app) {
        return r;
    }
    for field in ["executionRoleArn", "clientToken"] {
        if !request[field].is_string() {
            return validation(format!("{field} is required."));
        }
    }
    let mut inner = shared.lock();
    if inner.application_state == "TERMINATED" {
        return validation(format!("Application {app} is terminated."));
    }
    let token = request["clientToken"].as_str().map(str::to_owned);
    let id = match inner
        .runs
        .iter()
        .find(|r| r.client_token.is_some() && r.client_token == token)
    {
        Some(run) => run.id.clone(),
        None => {
            let tags = request["tags"]
                .as_object()
                .map(|t| {
                    t.iter()
                        .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_owned()))
                        .collect()
                })
                .unwrap_or_default();
            new_run(
                &mut inner,
                request["name"].as_str().map(str::to_owned),
                token,
                request.clone(),
                tags,
                request["executionTimeoutMinutes"].as_i64(),
            )
        }
    };
    ok(json!({"applicationId": app, "jobRunId": id, "arn": shared.arn(&id)}))
}

async fn get_job_run(State(shared): S, Path((app, id)): Path<(String, String)>) -> Response {
    shared.count("GetJobRun");
    if let Some(r) = other_app(&shared, &app) {
        return r;
    }
    let mut inner = shared.lock();
    let Some(&i) = inner.by_id.get(&id) else {
        return not_found(&format!("JobRun {id}"));
    };
    let run = shared.full(&mut inner.runs[i]);
    ok(json!({ "jobRun": run }))
}

async fn cancel_job_run(State(shared): S, Path((app, id)): Path<(String, String)>) -> Response {
    shared.count("CancelJobRun");
    if let Some(r) = other_app(&shared, &app) {
        return r;
    }
    let mut inner = shared.lock();
    let Some(&i) = inner.by_id.get(&id) else {
        return not_found(&format!("JobRun {id}"));
    };
    let run = &mut inner.runs[i];
    let state = shared.settle(run);
    if state.is_final() {
        return validation(format!(
            "Job run {id} is in a terminal state {} and cannot be cancelled.",
            state.as_str()
        ));
    }
    let now = OffsetDateTime::now_utc();
    if shared.cancel_takes.is_zero() {
        run.fixed = Some((RunState::Cancelled, now));
        run.ended = Some(now);
        run.details = "Job run was cancelled by a user.".into();
    } else if state != RunState::Cancelling {
        run.fixed = Some((RunState::Cancelling, now));
        run.cancel_at = Some(tokio::time::Instant::now() + shared.cancel_takes);
    }
    ok(json!({"applicationId": app, "jobRunId": id}))
}

async fn list_job_runs(
    State(shared): S,
    Path(app): Path<String>,
    RawQuery(query): RawQuery,
) -> Response {
    shared.count("ListJobRuns");
    if let Some(r) = other_app(&shared, &app) {
        return r;
    }
    let mut states = Vec::new();
    let mut after = None;
    let mut before = None;
    let mut max = 50usize;
    let mut start = 0usize;
    for (k, v) in form_urlencoded::parse(query.as_deref().unwrap_or("").as_bytes()) {
        match &*k {
            "states" => match RunState::parse(&v) {
                Some(s) => states.push(s),
                None => {
                    return validation(format!("Value '{v}' at 'states' is not a job run state."))
                }
            },
            "createdAtAfter" | "createdAtBefore" => match OffsetDateTime::parse(&v, &Rfc3339) {
                Ok(t) if &*k == "createdAtAfter" => after = Some(t),
                Ok(t) => before = Some(t),
                Err(_) => return validation(format!("{k} {v:?} is not a date-time.")),
            },
            "maxResults" => match v.parse::<usize>() {
                Ok(n) if (1..=50).contains(&n) => max = n,
                _ => return validation("maxResults must be between 1 and 50."),
            },
            "nextToken" => match v.parse::<usize>() {
                Ok(n) => start = n,
                Err(_) => return validation("The nextToken is not valid."),
            },
            _ => {}
        }
    }
    let mut inner = shared.lock();
    let mut matching = Vec::new();
    // Newest first, as AWS lists them.
    for run in inner.runs.iter_mut().rev() {
        let state = shared.settle(run);
        if (!states.is_empty() && !states.contains(&state))
            || after.is_some_and(|t| run.created < t)
            || before.is_some_and(|t| run.created > t)
        {
            continue;
        }
        matching.push(shared.summary(run));
    }
    let end = (start + max).min(matching.len());
    let page: Vec<Value> = matching.get(start..end).unwrap_or_default().to_vec();
    let mut body = json!({ "jobRuns": page });
    if end < matching.len() {
        body["nextToken"] = json!(end.to_string());
    }
    ok(body)
}
