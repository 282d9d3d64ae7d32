//! `FakeLivy`: Apache Livy's REST API for batches, as Livy 0.7 and later answer it,
//! served from memory on 127.0.0.1, with batches whose states can be scripted over time
//! or driven by hand, and a restart that forgets them all.
//!
//! Wire format, as Livy's documentation gives it:
//! - `POST /batches` with a JSON body (`file`, `pyFiles`, `args`, `name`, `driverMemory`,
//!   `driverCores`, `executorMemory`, `executorCores`, `numExecutors`, `queue`,
//!   `proxyUser`, `conf`, ...) answers 201, the batch, and `Location: /batches/{id}`;
//! - `GET /batches?from=&size=` answers `{"from", "total", "sessions": [...]}`, the
//!   batches in the order they were made (`size` defaults to 100);
//! - `GET /batches/{id}` answers the batch: `id`, `name`, `owner`, `proxyUser`, `state`,
//!   `appId`, `appInfo` (`driverLogUrl`, `sparkUiUrl`) and the last 10 lines of `log`;
//! - `GET /batches/{id}/state` answers `{"id", "state"}`; `GET /batches/{id}/log?from=&size=`
//!   answers `{"id", "from", "total", "log"}`;
//! - `DELETE /batches/{id}` kills the batch and forgets it at once: `{"msg": "deleted"}`;
//! - errors are `{"msg": ...}`: 404 for a batch Livy does not hold, 400 for a body it
//!   refuses, among them a second batch with the name of one it holds ("Duplicate
//!   session name").
//!
//! As Livy with `livy.server.csrf-protection.enabled`, a POST or DELETE without an
//! `X-Requested-By` header is refused with 400 and an HTML page (by default; see
//! [`FakeLivyBuilder::csrf_protection`]). With [`FakeLivyBuilder::basic_auth`], as behind
//! a Knox gateway, a request without those credentials gets 401 and `WWW-Authenticate`.
//!
//! [`FakeLivy::restart`] is a Livy restart without session recovery: every batch is
//! forgotten and ids start again at 0. [`FakeLivy::forget`] drops one batch, as Livy does
//! a while after a batch ends (`livy.server.session.state-retain.sec`).

use std::collections::{BTreeMap, VecDeque};
use std::io;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode};
use axum::response::Response;
use axum::routing::get;
use axum::Router;
use serde_json::{json, Value};
use tokio::time::Instant;

use crate::server::{self, Server};

/// The states Livy gives a batch session.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum BatchState {
    NotStarted,
    Starting,
    Recovering,
    Idle,
    Running,
    Busy,
    ShuttingDown,
    Error,
    Dead,
    Killed,
    Success,
}

impl BatchState {
    pub const ALL: [BatchState; 11] = [
        BatchState::NotStarted,
        BatchState::Starting,
        BatchState::Recovering,
        BatchState::Idle,
        BatchState::Running,
        BatchState::Busy,
        BatchState::ShuttingDown,
        BatchState::Error,
        BatchState::Dead,
        BatchState::Killed,
        BatchState::Success,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            BatchState::NotStarted => "not_started",
            BatchState::Starting => "starting",
            BatchState::Recovering => "recovering",
            BatchState::Idle => "idle",
            BatchState::Running => "running",
            BatchState::Busy => "busy",
            BatchState::ShuttingDown => "shutting_down",
            BatchState::Error => "error",
            BatchState::Dead => "dead",
            BatchState::Killed => "killed",
            BatchState::Success => "success",
        }
    }

    /// Whether the application is known to YARN by then (it has an id and links).
    fn has_application(self) -> bool {
        !matches!(
            self,
            BatchState::NotStarted | BatchState::Starting | BatchState::Recovering
        )
    }
}

/// The routes the fake serves, for [`FakeLivy::calls`].
const ROUTES: [&str; 6] = [
    "POST /batches",
    "GET /batches",
    "GET /batches/{id}",
    "GET /batches/{id}/state",
    "GET /batches/{id}/log",
    "DELETE /batches/{id}",
];

struct Batch {
    id: i64,
    name: Option<String>,
    proxy_user: Option<String>,
    state: BatchState,
    app_id: Option<String>,
    app_number: usize,
    log: Vec<String>,
    /// States still to come, each at its time.
    script: VecDeque<(Instant, BatchState)>,
}

impl Batch {
    fn settle(&mut self) {
        while let Some((at, state)) = self.script.front().copied() {
            if Instant::now() < at {
                break;
            }
            self.script.pop_front();
            self.enter(state);
        }
    }

    fn enter(&mut self, state: BatchState) {
        self.state = state;
        if state.has_application() && self.app_id.is_none() {
            let app = format!("application_1700000000000_{:04}", self.app_number);
            self.log.push(format!(
                "INFO Client: Submitted application {app} to ResourceManager"
            ));
            self.app_id = Some(app);
        }
        match state {
            BatchState::Dead | BatchState::Error => {
                let app = self.app_id.clone().unwrap_or_default();
                self.log.push(
                    "Exception in thread \"main\" org.apache.spark.SparkException: \
                     Application finished with failed status"
                        .into(),
                );
                self.log.push(format!(
                    "INFO ShutdownHookManager: Shutdown hook called ({app})"
                ));
            }
            BatchState::Success => self.log.push("INFO Client: final status: SUCCEEDED".into()),
            _ => {}
        }
    }

    fn app_info(&self) -> Value {
        match &self.app_id {
            Some(app) => json!({
                "driverLogUrl": format!(
                    "http://ip-10-0-0-12.ec2.internal:8042/node/containerlogs/container_{}_01_000001/livy",
                    &app["application_".len()..]
                ),
                "sparkUiUrl": format!("http://ip-10-0-0-10.ec2.internal:20888/proxy/{app}/"),
            }),
            None => json!({"driverLogUrl": null, "sparkUiUrl": null}),
        }
    }

    fn view(&self) -> Value {
        let from = self.log.len().saturating_sub(10);
        json!({
            "id": self.id,
            "name": self.name,
            "owner": null,
            "proxyUser": self.proxy_user,
            "state": self.state.as_str(),
            "appId": self.app_id,
            "appInfo": self.app_info(),
            "log": self.log[from..],
        })
    }
}

struct Inner {
    next_id: i64,
    /// By id: ids only grow between restarts, so this is the order they were made in.
    batches: BTreeMap<i64, Batch>,
    requests: Vec<Value>,
    deleted: Vec<i64>,
    not_found_everywhere: bool,
    refused: Vec<(String, u16)>,
}

struct Shared {
    csrf: bool,
    credentials: Option<(String, String)>,
    script: Vec<(Duration, BatchState)>,
    post_answer_delay: Mutex<Duration>,
    applications: AtomicUsize,
    calls: [AtomicUsize; 6],
    inner: Mutex<Inner>,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// Configures a [`FakeLivy`] before it starts.
#[derive(Debug, Clone)]
pub struct FakeLivyBuilder {
    csrf: bool,
    credentials: Option<(String, String)>,
    script: Vec<(Duration, BatchState)>,
}

impl Default for FakeLivyBuilder {
    fn default() -> Self {
        FakeLivyBuilder {
            csrf: true,
            credentials: None,
            script: Vec::new(),
        }
    }
}

impl FakeLivyBuilder {
    /// Whether a POST or DELETE without `X-Requested-By` is refused (on by default, as
    /// `livy.server.csrf-protection.enabled=true`).
    pub fn csrf_protection(mut self, on: bool) -> Self {
        self.csrf = on;
        self
    }

    /// Every request needs these HTTP Basic credentials (a Knox gateway, Livy behind
    /// basic authentication).
    pub fn basic_auth(mut self, user: &str, password: &str) -> Self {
        self.credentials = Some((user.to_owned(), password.to_owned()));
        self
    }

    /// What every new batch goes through: each state at its time after the batch is
    /// made. Without a script a batch stays `starting` until [`FakeLivy::set_state`].
    pub fn script(mut self, steps: &[(Duration, BatchState)]) -> Self {
        self.script = steps.to_vec();
        self
    }

    pub async fn start(self) -> FakeLivy {
        self.try_start().await.expect("FakeLivy could not bind")
    }

    pub async fn try_start(self) -> io::Result<FakeLivy> {
        let listener = server::bind(SocketAddr::from(([127, 0, 0, 1], 0)))?;
        let addr = listener.local_addr()?;
        let shared = Arc::new(Shared {
            csrf: self.csrf,
            credentials: self.credentials,
            script: self.script,
            post_answer_delay: Mutex::new(Duration::ZERO),
            applications: AtomicUsize::new(0),
            calls: Default::default(),
            inner: Mutex::new(Inner {
                next_id: 0,
                batches: BTreeMap::new(),
                requests: Vec::new(),
                deleted: Vec::new(),
                not_found_everywhere: false,
                refused: Vec::new(),
            }),
        });
        let server = Server::spawn(listener, router(shared.clone()));
        Ok(FakeLivy {
            addr,
            shared,
            _server: server,
        })
    }
}

/// A running fake Livy server. Dropping it stops it.
pub struct FakeLivy {
    addr: SocketAddr,
    shared: Arc<Shared>,
    _server: Server,
}

impl FakeLivy {
    /// CSRF protection on, no credentials, batches `starting` until told otherwise.
    pub async fn start() -> Self {
        Self::builder().start().await
    }

    pub fn builder() -> FakeLivyBuilder {
        FakeLivyBuilder::default()
    }

    /// `http://127.0.0.1:PORT`, for `LIVY_URL`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Puts a batch in `state` (its script, if any, is dropped). A state past `starting`
    /// gives it a YARN application and links; `dead` and `error` add a failure to its
    /// log. False when Livy holds no such batch.
    pub fn set_state(&self, id: i64, state: BatchState) -> bool {
        let mut inner = self.shared.lock();
        let Some(batch) = inner.batches.get_mut(&id) else {
            return false;
        };
        batch.script.clear();
        batch.enter(state);
        true
    }

    /// The id of the batch named `name`, if Livy holds one.
    pub fn batch_named(&self, name: &str) -> Option<i64> {
        self.shared
            .lock()
            .batches
            .values()
            .find(|b| b.name.as_deref() == Some(name))
            .map(|b| b.id)
    }

    /// The id of the batch whose name contains `part`, if Livy holds one.
    pub fn batch_named_with(&self, part: &str) -> Option<i64> {
        self.shared
            .lock()
            .batches
            .values()
            .find(|b| b.name.as_deref().is_some_and(|n| n.contains(part)))
            .map(|b| b.id)
    }

    /// The batch as `GET /batches/{id}` shows it.
    pub fn batch(&self, id: i64) -> Option<Value> {
        let mut inner = self.shared.lock();
        let batch = inner.batches.get_mut(&id)?;
        batch.settle();
        Some(batch.view())
    }

    /// The ids of the batches Livy holds, in the order they were made.
    pub fn batch_ids(&self) -> Vec<i64> {
        self.shared.lock().batches.keys().copied().collect()
    }

    /// Adds a batch as another client would (`POST /batches` with this name and no
    /// script), in `state`; returns its id.
    pub fn insert_batch(&self, name: Option<&str>, state: BatchState) -> i64 {
        let mut inner = self.shared.lock();
        let id = new_batch(&self.shared, &mut inner, name.map(str::to_owned), None);
        let batch = inner.batches.get_mut(&id).expect("just made");
        batch.script.clear();
        batch.enter(state);
        id
    }

    /// A Livy restart without session recovery: every batch is forgotten and ids start
    /// again at 0.
    pub fn restart(&self) {
        let mut inner = self.shared.lock();
        inner.batches.clear();
        inner.next_id = 0;
    }

    /// Livy drops one batch, as it does a while after a batch ended. False when it holds
    /// no such batch.
    pub fn forget(&self, id: i64) -> bool {
        self.shared.lock().batches.remove(&id).is_some()
    }

    /// While on, every path answers 404, as a gateway whose route to Livy is gone.
    pub fn answer_not_found_everywhere(&self, on: bool) {
        self.shared.lock().not_found_everywhere = on;
    }

    /// From now on `POST /batches` makes its batch at once and answers only `delay`
    /// later, so that a client that gives up sooner has made it all the same.
    pub fn answer_posts_after(&self, delay: Duration) {
        *self
            .shared
            .post_answer_delay
            .lock()
            .unwrap_or_else(|p| p.into_inner()) = delay;
    }

    /// Every `POST /batches` body received (refused ones included), in order.
    pub fn requests(&self) -> Vec<Value> {
        self.shared.lock().requests.clone()
    }

    /// The batches deleted with `DELETE /batches/{id}`, in order.
    pub fn deleted(&self) -> Vec<i64> {
        self.shared.lock().deleted.clone()
    }

    /// The requests refused for their headers (CSRF, credentials): route and status.
    pub fn refused(&self) -> Vec<(String, u16)> {
        self.shared.lock().refused.clone()
    }

    /// How many requests of `route` (`"GET /batches"`, `"GET /batches/{id}"`, ...)
    /// arrived, refused ones included.
    pub fn calls(&self, route: &str) -> usize {
        let i = ROUTES
            .iter()
            .position(|r| *r == route)
            .unwrap_or_else(|| panic!("FakeLivy serves no route {route:?}"));
        self.shared.calls[i].load(Ordering::Relaxed)
    }
}

fn new_batch(
    shared: &Shared,
    inner: &mut Inner,
    name: Option<String>,
    proxy_user: Option<String>,
) -> i64 {
    let id = inner.next_id;
    inner.next_id += 1;
    let now = Instant::now();
    let mut batch = Batch {
        id,
        name,
        proxy_user,
        state: BatchState::Starting,
        app_id: None,
        app_number: shared.applications.fetch_add(1, Ordering::Relaxed) + 1,
        log: vec!["stdout: ".into(), "\nstderr: ".into()],
        script: shared
            .script
            .iter()
            .map(|(after, state)| (now + *after, *state))
            .collect(),
    };
    batch.settle();
    inner.batches.insert(id, batch);
    id
}

fn router(shared: Arc<Shared>) -> Router {
    Router::new()
        .route("/batches", get(list_batches).post(create_batch))
        .route("/batches/{id}", get(get_batch).delete(delete_batch))
        .route("/batches/{id}/state", get(get_state))
        .route("/batches/{id}/log", get(get_log))
        .fallback(|| async { message(StatusCode::NOT_FOUND, "Not Found") })
        .with_state(shared)
}

fn answer(status: StatusCode, body: Value) -> Response {
    let mut r = Response::new(Body::from(serde_json::to_vec(&body).expect("JSON")));
    *r.status_mut() = status;
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json;charset=utf-8"),
    );
    r
}

fn message(status: StatusCode, msg: impl Into<String>) -> Response {
    answer(status, json!({ "msg": msg.into() }))
}

/// What Livy's filters answer before a route sees the request, if anything: a gateway's
/// 404, the authentication filter's 401, the CSRF filter's 400 (a Jetty HTML page).
fn filtered(
    shared: &Shared,
    route: usize,
    method: &Method,
    headers: &HeaderMap,
) -> Option<Response> {
    shared.calls[route].fetch_add(1, Ordering::Relaxed);
    let refuse = |status: u16| {
        shared
            .lock()
            .refused
            .push((ROUTES[route].to_owned(), status));
    };
    if shared.lock().not_found_everywhere {
        return Some(message(StatusCode::NOT_FOUND, "Not Found"));
    }
    if let Some((user, password)) = &shared.credentials {
        let expected = format!("Basic {}", base64_encode(&format!("{user}:{password}")));
        let given = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok());
        if given != Some(expected.as_str()) {
            refuse(401);
            let mut r = Response::new(Body::from("Authentication required"));
            *r.status_mut() = StatusCode::UNAUTHORIZED;
            r.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Basic realm=\"livy\""),
            );
            return Some(r);
        }
    }
    let changes = !matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS);
    if shared.csrf && changes && !headers.contains_key("x-requested-by") {
        refuse(400);
        let mut r = Response::new(Body::from(
            "<html><body><h2>HTTP ERROR 400</h2><p>Missing Required Header for CSRF \
             protection.</p></body></html>",
        ));
        *r.status_mut() = StatusCode::BAD_REQUEST;
        r.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/html;charset=iso-8859-1"),
        );
        return Some(r);
    }
    None
}

/// Standard base64 with padding, for the expected `Authorization` header.
fn base64_encode(text: &str) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let bytes = text.as_bytes();
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let n = (u32::from(chunk[0]) << 16)
            | (u32::from(*chunk.get(1).unwrap_or(&0)) << 8)
            | u32::from(*chunk.get(2).unwrap_or(&0));
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(char::from(ALPHABET[((n >> (18 - 6 * i)) & 63) as usize]));
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// Livy reads ids as integers; anything else names no batch it holds.
fn batch_id(raw: &str) -> Option<i64> {
    raw.parse().ok()
}

fn not_found(id: &str) -> Response {
    message(StatusCode::NOT_FOUND, format!("Session '{id}' not found."))
}

/// Checks the body as Livy's `CreateBatchRequest` would read it.
fn check_body(body: &Value) -> Result<(), String> {
    let Some(fields) = body.as_object() else {
        return Err("the body is not a JSON object".into());
    };
    for (key, value) in fields {
        let ok = match key.as_str() {
            "file" | "className" | "name" | "proxyUser" | "queue" | "driverMemory"
            | "executorMemory" => value.is_string(),
            "driverCores" | "executorCores" | "numExecutors" => {
                value.is_u64() || value.as_str().is_some_and(|s| s.parse::<u32>().is_ok())
            }
            "args" | "jars" | "pyFiles" | "files" | "archives" => value
                .as_array()
                .is_some_and(|a| a.iter().all(Value::is_string)),
            "conf" => value
                .as_object()
                .is_some_and(|m| m.values().all(|v| v.is_string())),
            other => return Err(format!("Unrecognized field \"{other}\"")),
        };
        if !ok {
            return Err(format!("Cannot deserialize the value of \"{key}\""));
        }
    }
    match fields.get("file") {
        Some(Value::String(file)) if !file.is_empty() => Ok(()),
        _ => Err("requirement failed: File is required.".into()),
    }
}

async fn create_batch(
    State(shared): State<Arc<Shared>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    if let Some(r) = filtered(&shared, 0, &Method::POST, &headers) {
        return r;
    }
    let Ok(body) = serde_json::from_slice::<Value>(&body) else {
        return message(StatusCode::BAD_REQUEST, "the body is not JSON");
    };
    let made = {
        let mut inner = shared.lock();
        inner.requests.push(body.clone());
        if let Err(why) = check_body(&body) {
            return message(StatusCode::BAD_REQUEST, why);
        }
        let name = body["name"].as_str().map(str::to_owned);
        if let Some(name) = &name {
            if inner
                .batches
                .values()
                .any(|b| b.name.as_deref() == Some(name))
            {
                return message(
                    StatusCode::BAD_REQUEST,
                    format!("Duplicate session name: Some({name})"),
                );
            }
        }
        let proxy_user = body["proxyUser"].as_str().map(str::to_owned);
        let id = new_batch(&shared, &mut inner, name, proxy_user);
        inner.batches[&id].view()
    };
    let delay = *shared
        .post_answer_delay
        .lock()
        .unwrap_or_else(|p| p.into_inner());
    tokio::time::sleep(delay).await;
    let mut r = answer(StatusCode::CREATED, made.clone());
    r.headers_mut().insert(
        header::LOCATION,
        HeaderValue::from_str(&format!("/batches/{}", made["id"])).expect("ASCII"),
    );
    r
}

async fn list_batches(
    State(shared): State<Arc<Shared>>,
    headers: HeaderMap,
    Query(query): Query<BTreeMap<String, String>>,
) -> Response {
    if let Some(r) = filtered(&shared, 1, &Method::GET, &headers) {
        return r;
    }
    let number = |key: &str, default: usize| match query.get(key) {
        None => Ok(default),
        Some(v) => v
            .parse::<usize>()
            .map_err(|_| format!("'{v}' is not a number for {key}")),
    };
    let (from, size) = match (number("from", 0), number("size", 100)) {
        (Ok(from), Ok(size)) => (from, size),
        (Err(why), _) | (_, Err(why)) => return message(StatusCode::BAD_REQUEST, why),
    };
    let mut inner = shared.lock();
    let total = inner.batches.len();
    let sessions: Vec<Value> = inner
        .batches
        .values_mut()
        .skip(from)
        .take(size)
        .map(|b| {
            b.settle();
            b.view()
        })
        .collect();
    answer(
        StatusCode::OK,
        json!({"from": from, "total": total, "sessions": sessions}),
    )
}

async fn get_batch(
    State(shared): State<Arc<Shared>>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Response {
    if let Some(r) = filtered(&shared, 2, &Method::GET, &headers) {
        return r;
    }
    let mut inner = shared.lock();
    match batch_id(&id).and_then(|n| inner.batches.get_mut(&n)) {
        Some(batch) => {
            batch.settle();
            answer(StatusCode::OK, batch.view())
        }
        None => not_found(&id),
    }
}

async fn get_state(
    State(shared): State<Arc<Shared>>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Response {
    if let Some(r) = filtered(&shared, 3, &Method::GET, &headers) {
        return r;
    }
    let mut inner = shared.lock();
    match batch_id(&id).and_then(|n| inner.batches.get_mut(&n)) {
        Some(batch) => {
            batch.settle();
            answer(
                StatusCode::OK,
                json!({"id": batch.id, "state": batch.state.as_str()}),
            )
        }
        None => not_found(&id),
    }
}

async fn get_log(
    State(shared): State<Arc<Shared>>,
    headers: HeaderMap,
    Path(id): Path<String>,
    Query(query): Query<BTreeMap<String, String>>,
) -> Response {
    if let Some(r) = filtered(&shared, 4, &Method::GET, &headers) {
        return r;
    }
    let mut inner = shared.lock();
    let Some(batch) = batch_id(&id).and_then(|n| inner.batches.get_mut(&n)) else {
        return not_found(&id);
    };
    batch.settle();
    let total = batch.log.len();
    let size = query
        .get("size")
        .and_then(|s| s.parse::<i64>().ok())
        .map_or(100, |s| if s < 0 { total } else { s as usize });
    let from = query
        .get("from")
        .and_then(|s| s.parse::<i64>().ok())
        .filter(|f| *f >= 0)
        .map_or(total.saturating_sub(size), |f| f as usize);
    let lines: Vec<&String> = batch.log.iter().skip(from).take(size).collect();
    answer(
        StatusCode::OK,
        json!({"id": batch.id, "from": from, "total": total, "log": lines}),
    )
}

async fn delete_batch(
    State(shared): State<Arc<Shared>>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Response {
    if let Some(r) = filtered(&shared, 5, &Method::DELETE, &headers) {
        return r;
    }
    let mut inner = shared.lock();
    match batch_id(&id).and_then(|n| inner.batches.remove(&n)) {
        Some(batch) => {
            inner.deleted.push(batch.id);
            message(StatusCode::OK, "deleted")
        }
        None => not_found(&id),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn client() -> reqwest::Client {
        reqwest::Client::new()
    }

    async fn post(fake: &FakeLivy, body: Value, csrf: bool) -> (u16, Value) {
        let mut r = client().post(format!("{}/batches", fake.url())).json(&body);
        if csrf {
            r = r.header("X-Requested-By", "test");
        }
        let r = r.send().await.unwrap();
        let status = r.status().as_u16();
        (status, r.json().await.unwrap_or(Value::Null))
    }

    async fn get(fake: &FakeLivy, path: &str) -> (u16, Value) {
        let r = client()
            .get(format!("{}{path}", fake.url()))
            .send()
            .await
            .unwrap();
        let status = r.status().as_u16();
        (status, r.json().await.unwrap_or(Value::Null))
    }

    #[tokio::test]
    async fn a_post_without_the_csrf_header_is_refused_and_makes_nothing() {
        let fake = FakeLivy::start().await;
        let (status, _) = post(&fake, json!({"file": "s3://b/main.py"}), false).await;
        assert_eq!(status, 400);
        assert!(fake.batch_ids().is_empty());
        assert_eq!(fake.refused(), [("POST /batches".to_owned(), 400)]);
        let (status, batch) = post(&fake, json!({"file": "s3://b/main.py"}), true).await;
        assert_eq!(status, 201, "{batch}");
        assert_eq!(
            (batch["id"].as_i64(), batch["state"].as_str()),
            (Some(0), Some("starting"))
        );
        let open = FakeLivy::builder().csrf_protection(false).start().await;
        assert_eq!(post(&open, json!({"file": "f"}), false).await.0, 201);
    }

    #[tokio::test]
    async fn basic_credentials_are_asked_for_and_checked() {
        let fake = FakeLivy::builder()
            .basic_auth("lab", "s3cret")
            .start()
            .await;
        assert_eq!(get(&fake, "/batches").await.0, 401);
        let wrong = client()
            .get(format!("{}/batches", fake.url()))
            .basic_auth("lab", Some("nope"))
            .send()
            .await
            .unwrap();
        assert_eq!(wrong.status(), 401);
        assert!(wrong.headers().contains_key("www-authenticate"));
        let right = client()
            .get(format!("{}/batches", fake.url()))
            .basic_auth("lab", Some("s3cret"))
            .send()
            .await
            .unwrap();
        assert_eq!(right.status(), 200);
        assert_eq!(base64_encode("lab:s3cret"), "bGFiOnMzY3JldA==");
        assert_eq!(base64_encode("ab"), "YWI=");
    }

    #[tokio::test]
    async fn pages_list_batches_in_the_order_made_and_a_restart_starts_ids_again() {
        let fake = FakeLivy::start().await;
        for i in 0..3 {
            let (status, _) =
                post(&fake, json!({"file": "f", "name": format!("b{i}")}), true).await;
            assert_eq!(status, 201);
        }
        let (_, page) = get(&fake, "/batches?from=1&size=1").await;
        assert_eq!(
            (page["from"].as_i64(), page["total"].as_i64()),
            (Some(1), Some(3))
        );
        assert_eq!(page["sessions"][0]["name"], "b1");
        let (status, refused) = post(&fake, json!({"file": "f", "name": "b1"}), true).await;
        assert_eq!(status, 400);
        assert!(refused["msg"]
            .as_str()
            .unwrap()
            .contains("Duplicate session name"));
        fake.restart();
        assert_eq!(get(&fake, "/batches/1").await.0, 404);
        let (_, again) = post(&fake, json!({"file": "f", "name": "b1"}), true).await;
        assert_eq!(again["id"], 0, "ids start again at 0");
    }

    #[tokio::test]
    async fn scripted_states_come_in_time_and_a_delete_forgets_the_batch() {
        let fake = FakeLivy::builder()
            .script(&[
                (Duration::ZERO, BatchState::Starting),
                (Duration::from_millis(30), BatchState::Running),
            ])
            .start()
            .await;
        let (_, made) = post(&fake, json!({"file": "f"}), true).await;
        assert_eq!(made["appId"], Value::Null);
        tokio::time::sleep(Duration::from_millis(60)).await;
        let (_, state) = get(&fake, "/batches/0/state").await;
        assert_eq!(state, json!({"id": 0, "state": "running"}));
        let (_, batch) = get(&fake, "/batches/0").await;
        assert!(batch["appId"].as_str().unwrap().starts_with("application_"));
        assert!(batch["appInfo"]["sparkUiUrl"]
            .as_str()
            .unwrap()
            .contains("/proxy/"));
        assert!(fake.set_state(0, BatchState::Dead));
        let (_, log) = get(&fake, "/batches/0/log?size=2").await;
        assert_eq!(log["log"].as_array().unwrap().len(), 2);
        assert!(log["log"][0].as_str().unwrap().contains("SparkException"));
        let deleted = client()
            .delete(format!("{}/batches/0", fake.url()))
            .header("X-Requested-By", "t")
            .send()
            .await
            .unwrap();
        assert_eq!(deleted.status(), 200);
        assert_eq!(get(&fake, "/batches/0").await.0, 404);
        assert_eq!(fake.deleted(), [0]);
        assert_eq!(fake.calls("GET /batches/{id}"), 2);
    }
}
