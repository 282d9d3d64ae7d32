//! A small closed-loop HTTP/1.1 load generator: N keep-alive connections, each sending its
//! next request as soon as the previous answer is read, for a fixed time.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1;
use hyper::{Method, Request, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

/// What one request of a scenario looks like; `n` counts requests of one connection.
pub type MakeRequest = Arc<dyn Fn(u64) -> Request<Full<Bytes>> + Send + Sync>;

/// Every latency, in microseconds, plus what went wrong. Latencies are kept exactly
/// (a few hundred thousand `u32`s at most) and sorted once at the end, so the
/// percentiles are exact rather than bucketed.
#[derive(Default)]
pub struct LoadResult {
    pub latencies_us: Vec<u32>,
    pub errors: u64,
    pub elapsed: Duration,
    /// The first few error descriptions, to say what went wrong.
    pub error_samples: Vec<String>,
}

impl LoadResult {
    fn merge(&mut self, other: LoadResult) {
        self.latencies_us.extend(other.latencies_us);
        self.errors += other.errors;
        for e in other.error_samples {
            if self.error_samples.len() < 3 {
                self.error_samples.push(e);
            }
        }
    }

    pub fn requests(&self) -> u64 {
        self.latencies_us.len() as u64 + self.errors
    }

    /// Answered requests per second (errors included: they were answered too).
    pub fn throughput(&self) -> f64 {
        self.requests() as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }

    /// The latency at quantile `q` (0..=1) in milliseconds; call after [`finish`].
    pub fn percentile_ms(&self, q: f64) -> f64 {
        if self.latencies_us.is_empty() {
            return f64::NAN;
        }
        let rank = ((q * self.latencies_us.len() as f64).ceil() as usize).max(1);
        self.latencies_us[rank.min(self.latencies_us.len()) - 1] as f64 / 1000.0
    }

    fn finish(mut self, elapsed: Duration) -> Self {
        self.latencies_us.sort_unstable();
        self.elapsed = elapsed;
        self
    }
}

/// Sends `make(n)` over `connections` keep-alive connections for `duration`. An answer
/// whose status is not `expected` counts as an error, and so does a failed connection
/// (the connection is then opened again).
pub async fn run(
    addr: SocketAddr,
    connections: usize,
    duration: Duration,
    expected: StatusCode,
    make: MakeRequest,
) -> LoadResult {
    let start = Instant::now();
    let deadline = start + duration;
    let mut workers = tokio::task::JoinSet::new();
    for _ in 0..connections {
        let make = make.clone();
        workers.spawn(async move { worker(addr, deadline, expected, make).await });
    }
    let mut total = LoadResult::default();
    while let Some(result) = workers.join_next().await {
        total.merge(result.expect("a load worker panicked"));
    }
    total.finish(start.elapsed())
}

async fn worker(
    addr: SocketAddr,
    deadline: Instant,
    expected: StatusCode,
    make: MakeRequest,
) -> LoadResult {
    let mut result = LoadResult {
        latencies_us: Vec::with_capacity(64 * 1024),
        ..LoadResult::default()
    };
    let mut n = 0u64;
    let note = |result: &mut LoadResult, e: String| {
        result.errors += 1;
        if result.error_samples.len() < 3 {
            result.error_samples.push(e);
        }
    };
    'connect: while Instant::now() < deadline {
        let mut sender = match connect(addr).await {
            Ok(s) => s,
            Err(e) => {
                note(&mut result, format!("connect: {e}"));
                tokio::time::sleep(Duration::from_millis(10)).await;
                continue;
            }
        };
        while Instant::now() < deadline {
            let request = make(n);
            n += 1;
            let sent = Instant::now();
            if let Err(e) = sender.ready().await {
                note(&mut result, format!("connection: {e}"));
                continue 'connect;
            }
            match sender.send_request(request).await {
                Ok(response) => {
                    let status = response.status();
                    let body = response.into_body().collect().await;
                    let took = sent.elapsed().as_micros().min(u32::MAX as u128) as u32;
                    match body {
                        Ok(_) if status == expected => result.latencies_us.push(took),
                        Ok(body) => {
                            let text = String::from_utf8_lossy(&body.to_bytes()).into_owned();
                            note(&mut result, format!("{status}: {text}"));
                        }
                        Err(e) => {
                            note(&mut result, format!("body: {e}"));
                            continue 'connect;
                        }
                    }
                }
                Err(e) => {
                    note(&mut result, format!("request: {e}"));
                    continue 'connect;
                }
            }
        }
    }
    result
}

pub type Sender = http1::SendRequest<Full<Bytes>>;

/// Opens one HTTP/1.1 connection; its driver runs on its own task.
pub async fn connect(addr: SocketAddr) -> std::io::Result<Sender> {
    let stream = TcpStream::connect(addr).await?;
    stream.set_nodelay(true)?;
    let (sender, conn) = http1::handshake(TokioIo::new(stream))
        .await
        .map_err(std::io::Error::other)?;
    tokio::spawn(async move {
        let _ = conn.await;
    });
    Ok(sender)
}

/// A request with the headers every scenario sends.
pub fn request(method: Method, addr: SocketAddr, path: &str, body: Bytes) -> Request<Full<Bytes>> {
    let mut builder = Request::builder()
        .method(method)
        .uri(path)
        .header(hyper::header::HOST, addr.to_string());
    if !body.is_empty() {
        builder = builder.header(hyper::header::CONTENT_TYPE, "application/json");
    }
    builder.body(Full::new(body)).expect("a valid request")
}

/// One request on a connection of its own; returns the status and the body.
pub async fn once(
    addr: SocketAddr,
    request: Request<Full<Bytes>>,
) -> Result<(StatusCode, Bytes), String> {
    let mut sender = connect(addr).await.map_err(|e| format!("connect: {e}"))?;
    send(&mut sender, request).await
}

/// One request on an open connection; returns the status and the body.
pub async fn send(
    sender: &mut Sender,
    request: Request<Full<Bytes>>,
) -> Result<(StatusCode, Bytes), String> {
    sender.ready().await.map_err(|e| e.to_string())?;
    let response = sender
        .send_request(request)
        .await
        .map_err(|e| e.to_string())?;
    let status = response.status();
    let body = response
        .into_body()
        .collect()
        .await
        .map_err(|e| e.to_string())?
        .to_bytes();
    Ok((status, body))
}
