//! `FakeMultiomix`: the endpoint that takes job-end notices (`POST {base}/{id}/`), recording
//! each one and answering as scripted, including not answering at all (`down()`).

use std::collections::VecDeque;
use std::io;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, SystemTime};

use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode, Uri};
use axum::response::Response;
use axum::Router;
use serde_json::Value;
use tokio::sync::Notify;

use crate::server::{self, Server};
use crate::TimedOut;

/// One job-end notice as it arrived, and what the fake answered.
#[derive(Debug, Clone)]
pub struct Notice {
    /// The `{id}` of `POST {base}/{id}/`.
    pub id: String,
    pub path: String,
    pub headers: HeaderMap,
    /// The body parsed as JSON; `Value::Null` when it is not JSON (see `raw_body`).
    pub body: Value,
    pub raw_body: Bytes,
    pub received_at: SystemTime,
    /// The status the fake answered (or was about to, if the connection died first).
    pub status: u16,
    /// What the builder's [`observe`](FakeMultiomixBuilder::observe) function saw when
    /// the notice arrived, before the answer (`Value::Null` without one).
    pub observed: Value,
}

/// Looks at the world when a notice arrives, as Multiomix would: given the notice's id
/// and body, returns what it saw.
pub type Observer = Arc<dyn Fn(&str, &Value) -> Value + Send + Sync>;

/// How the fake answers one notice.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    pub status: u16,
    /// Sent as the `Retry-After` header when set (seconds or an HTTP date).
    pub retry_after: Option<String>,
    /// How long the fake waits before answering.
    pub delay: Duration,
    /// The answer's body; `{}` when unset.
    pub body: Option<String>,
}

impl Reply {
    pub fn status(status: u16) -> Self {
        Self {
            status,
            retry_after: None,
            delay: Duration::ZERO,
            body: None,
        }
    }

    pub fn body(mut self, body: impl Into<String>) -> Self {
        self.body = Some(body.into());
        self
    }

    pub fn retry_after(mut self, value: impl Into<String>) -> Self {
        self.retry_after = Some(value.into());
        self
    }

    pub fn delay(mut self, delay: Duration) -> Self {
        self.delay = delay;
        self
    }
}

impl Default for Reply {
    fn default() -> Self {
        Reply::status(200)
    }
}

/// Configures a [`FakeMultiomix`] before it starts.
#[derive(Clone)]
pub struct FakeMultiomixBuilder {
    base_path: String,
    port: u16,
    reply: Reply,
    keep_notices: bool,
    observer: Option<Observer>,
}

impl Default for FakeMultiomixBuilder {
    fn default() -> Self {
        Self {
            base_path: String::new(),
            port: 0,
            reply: Reply::default(),
            keep_notices: true,
            observer: None,
        }
    }
}

impl FakeMultiomixBuilder {
    /// The path notices are posted under, such as `/feature-selection/aws-notification`
    /// (the root by default). Leading and trailing slashes do not matter.
    pub fn base_path(mut self, path: &str) -> Self {
        let trimmed = path.trim_matches('/');
        self.base_path = if trimmed.is_empty() {
            String::new()
        } else {
            format!("/{trimmed}")
        };
        self
    }

    /// Port 0 (the default) takes any free port.
    pub fn port(mut self, port: u16) -> Self {
        self.port = port;
        self
    }

    /// The answer to every notice no queued reply is left for (200 by default).
    pub fn reply(mut self, reply: Reply) -> Self {
        self.reply = reply;
        self
    }

    /// Keep every notice for [`FakeMultiomix::notices`] (on by default); off, only the
    /// count is kept, for long benchmarks.
    pub fn keep_notices(mut self, keep: bool) -> Self {
        self.keep_notices = keep;
        self
    }

    /// Calls `observer` as each notice arrives, before answering, and keeps what it
    /// returns in [`Notice::observed`]: for example the files Multiomix would read now.
    pub fn observe(
        mut self,
        observer: impl Fn(&str, &Value) -> Value + Send + Sync + 'static,
    ) -> Self {
        self.observer = Some(Arc::new(observer));
        self
    }

    /// Binds 127.0.0.1 and starts serving. Panics if the port cannot be bound.
    pub async fn start(self) -> FakeMultiomix {
        self.try_start()
            .await
            .expect("FakeMultiomix could not bind")
    }

    pub async fn try_start(self) -> io::Result<FakeMultiomix> {
        let listener = server::bind(SocketAddr::from(([127, 0, 0, 1], self.port)))?;
        let addr = listener.local_addr()?;
        let shared = Arc::new(Shared {
            base_path: self.base_path,
            keep_notices: self.keep_notices,
            observer: self.observer,
            count: AtomicUsize::new(0),
            arrived: Notify::new(),
            inner: Mutex::new(Inner {
                default_reply: self.reply,
                queued: VecDeque::new(),
                notices: Vec::new(),
                misrouted: Vec::new(),
            }),
        });
        let server = Server::spawn(listener, router(shared.clone()));
        Ok(FakeMultiomix {
            addr,
            shared,
            server: Mutex::new(Some(server)),
        })
    }
}

struct Inner {
    default_reply: Reply,
    queued: VecDeque<Reply>,
    notices: Vec<Notice>,
    misrouted: Vec<String>,
}

struct Shared {
    base_path: String,
    keep_notices: bool,
    observer: Option<Observer>,
    count: AtomicUsize,
    arrived: Notify,
    inner: Mutex<Inner>,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// `{base}/{id}/` → `id`; anything else is not a notice.
    fn notice_id<'a>(&self, path: &'a str) -> Option<&'a str> {
        let id = path
            .strip_prefix(self.base_path.as_str())?
            .strip_prefix('/')?
            .strip_suffix('/')?;
        (!id.is_empty() && !id.contains('/')).then_some(id)
    }
}

/// A running fake Multiomix and the handle to script and inspect it. Dropping the handle
/// stops the server.
pub struct FakeMultiomix {
    addr: SocketAddr,
    shared: Arc<Shared>,
    server: Mutex<Option<Server>>,
}

impl FakeMultiomix {
    /// A fake at the root path that answers 200 to every notice.
    pub async fn start() -> FakeMultiomix {
        FakeMultiomixBuilder::default().start().await
    }

    pub fn builder() -> FakeMultiomixBuilder {
        FakeMultiomixBuilder::default()
    }

    /// `http://127.0.0.1:PORT{base}`, without a trailing slash: the value for `MULTIOMIX_URL`.
    pub fn url(&self) -> String {
        format!("http://{}{}", self.addr, self.shared.base_path)
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Every notice received so far, in order of arrival (empty if `keep_notices(false)`).
    pub fn notices(&self) -> Vec<Notice> {
        self.shared.lock().notices.clone()
    }

    /// How many notices arrived, whatever they were answered.
    pub fn count(&self) -> usize {
        self.shared.count.load(Ordering::Relaxed)
    }

    /// Paths of POSTs that were not of the form `{base}/{id}/`; they were answered 404.
    pub fn misrouted(&self) -> Vec<String> {
        self.shared.lock().misrouted.clone()
    }

    /// Waits until at least `n` notices have arrived, and returns them all.
    pub async fn wait_for_notices(
        &self,
        n: usize,
        timeout: Duration,
    ) -> Result<Vec<Notice>, TimedOut> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let arrived = self.shared.arrived.notified();
            tokio::pin!(arrived);
            arrived.as_mut().enable();
            if self.count() >= n {
                return Ok(self.notices());
            }
            if tokio::time::timeout_at(deadline, arrived).await.is_err() {
                return Err(TimedOut {
                    what: "job-end notices",
                    wanted: n,
                    got: self.count(),
                });
            }
        }
    }

    /// The answer to every notice from now on (once the queued replies are used up).
    pub fn set_reply(&self, reply: Reply) {
        self.shared.lock().default_reply = reply;
    }

    /// Answers every notice from now on with `status`, keeping the delay and Retry-After.
    pub fn set_status(&self, status: u16) {
        self.shared.lock().default_reply.status = status;
    }

    pub fn set_delay(&self, delay: Duration) {
        self.shared.lock().default_reply.delay = delay;
    }

    pub fn set_retry_after(&self, value: Option<&str>) {
        self.shared.lock().default_reply.retry_after = value.map(str::to_owned);
    }

    /// Answers the next notices with these replies, one each, before the default applies.
    pub fn queue_replies(&self, replies: impl IntoIterator<Item = Reply>) {
        self.shared.lock().queued.extend(replies);
    }

    /// [`queue_replies`](Self::queue_replies) for plain statuses, e.g. `[503, 503]`.
    pub fn queue_statuses(&self, statuses: impl IntoIterator<Item = u16>) {
        self.queue_replies(statuses.into_iter().map(Reply::status));
    }

    /// Stops listening and closes every open connection, as a crashed Multiomix would:
    /// new connections are refused until [`up`](Self::up).
    pub async fn down(&self) {
        let server = self
            .server
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .take();
        if let Some(server) = server {
            server.stop().await;
        }
    }

    /// Listens again on the same port after [`down`](Self::down).
    pub async fn up(&self) -> io::Result<()> {
        let mut server = self
            .server
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if server.is_none() {
            let listener = server::bind(self.addr)?;
            *server = Some(Server::spawn(listener, router(self.shared.clone())));
        }
        Ok(())
    }

    pub fn is_up(&self) -> bool {
        self.server
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .is_some()
    }

    /// Stops the server and waits until its listener and connections are closed.
    pub async fn shutdown(self) {
        self.down().await;
    }
}

fn router(shared: Arc<Shared>) -> Router {
    Router::new().fallback(receive).with_state(shared)
}

fn respond(status: StatusCode, content_type: &'static str, body: impl Into<Body>) -> Response {
    let mut response = Response::new(body.into());
    *response.status_mut() = status;
    response
        .headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    response
}

async fn receive(
    State(shared): State<Arc<Shared>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let path = uri.path();
    if method == Method::GET && path == "/_count" {
        let count = shared.count.load(Ordering::Relaxed).to_string();
        return respond(StatusCode::OK, "text/plain", count);
    }
    if method != Method::POST {
        return respond(StatusCode::METHOD_NOT_ALLOWED, "text/plain", "POST only");
    }
    let Some(id) = shared.notice_id(path) else {
        shared.lock().misrouted.push(path.to_owned());
        return respond(
            StatusCode::NOT_FOUND,
            "text/plain",
            "no such notification path",
        );
    };

    let parsed: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let observed = match &shared.observer {
        Some(observe) => observe(id, &parsed),
        None => Value::Null,
    };
    let reply = {
        let mut inner = shared.lock();
        let reply = inner
            .queued
            .pop_front()
            .unwrap_or_else(|| inner.default_reply.clone());
        if shared.keep_notices {
            inner.notices.push(Notice {
                id: id.to_owned(),
                path: path.to_owned(),
                headers,
                body: parsed,
                raw_body: body,
                received_at: SystemTime::now(),
                status: reply.status,
                observed,
            });
        }
        shared.count.fetch_add(1, Ordering::Relaxed);
        reply
    };
    shared.arrived.notify_waiters();

    if !reply.delay.is_zero() {
        tokio::time::sleep(reply.delay).await;
    }
    let status = StatusCode::from_u16(reply.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let mut response = match reply.body {
        Some(body) => respond(status, "text/plain", body),
        None => respond(status, "application/json", "{}"),
    };
    if let Some(value) = reply
        .retry_after
        .and_then(|value| HeaderValue::try_from(value).ok())
    {
        response.headers_mut().insert(header::RETRY_AFTER, value);
    }
    response
}
