//! Builds the whole service from its configuration, binds its listener, and runs the
//! server and its background work until told to stop.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use tokio::net::TcpListener;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;
use tracing::{debug, error, info, warn};

use crate::api::ops::Readiness;
use crate::api::{self, AppState};
use crate::backend::finished::FinishedRuns;
use crate::backend::instrumented::InstrumentedBackend;
use crate::backend::{registry, JobBackend};
use crate::config::{Config, ProgressSource};
use crate::job::{BackendKind, JobId};
use crate::notify::Notifier;
use crate::progress::{Place, ProgressReader};
use crate::reconcile::Reconciler;
use crate::staging::Staging;
use crate::store::Store;
use crate::telemetry;

/// How long background work gets to reach a safe point after the server stopped.
const BACKGROUND_STOP_GRACE: Duration = Duration::from_secs(5);

/// The service, bound and ready to run.
pub struct Application {
    listener: TcpListener,
    state: AppState,
    reconciler: Reconciler,
    /// The ended jobs of a backend that reports them itself; see
    /// [`Application::forward_ended_jobs`].
    ended: Option<mpsc::UnboundedReceiver<JobId>>,
    /// The S3 client of the progress reports when they are in S3 without data staging
    /// (whose client serves otherwise).
    progress_s3: Option<aws_sdk_s3::Client>,
}

impl Application {
    /// Connects the store and the backend the configuration names, and binds the port.
    pub async fn build(config: Config) -> anyhow::Result<Self> {
        let store = connect_store(&config).await?;
        let built = registry::build(&config, &store).await?;
        let mut app = Self::assemble(config, built.backend, store).await?;
        if let Some(ended) = built.ended {
            app.forward_ended_jobs(ended);
        }
        Ok(app)
    }

    /// Like [`Application::build`] with a backend made elsewhere (tests use this).
    pub async fn build_with_backend(
        config: Config,
        backend: Arc<dyn JobBackend>,
    ) -> anyhow::Result<Self> {
        let store = connect_store(&config).await?;
        Self::assemble(config, backend, store).await
    }

    /// Opens the job-end notice of every job received on `ended`, at once: for a backend
    /// that knows itself when its jobs end (the local one), instead of a sidecar's
    /// callback. The forwarding runs, supervised like the outbox, from
    /// [`Application::run_until_stopped`] until the service stops; every sender gone
    /// before then is a failure (`/ready` fails). A notice that cannot be opened now
    /// (outbox full, store error) is left to the reconciler, which finds the job among
    /// the unfinished ones.
    pub fn forward_ended_jobs(&mut self, ended: mpsc::UnboundedReceiver<JobId>) {
        self.ended = Some(ended);
    }

    async fn assemble(
        config: Config,
        backend: Arc<dyn JobBackend>,
        store: Store,
    ) -> anyhow::Result<Self> {
        // Every backend call, from the API, the outbox or the reconciler, is counted and
        // timed; reads of finished runs are answered from memory and are not calls.
        let backend = FinishedRuns::wrap(
            InstrumentedBackend::wrap(backend),
            crate::backend::finished::CAPACITY,
        );
        let notifier = Notifier::new(
            store.clone(),
            backend.clone(),
            config.notify.clone(),
            config.server.max_pending_callbacks,
        )
        .await
        .context("cannot set up the notice outbox")?;
        let reconciler = Reconciler::new(
            store.clone(),
            backend.clone(),
            notifier.clone(),
            round_interval(backend.as_ref(), &config.notify),
            config.notify.recovery_window,
        );
        let address = SocketAddr::new(config.server.host, config.server.port);
        let listener = TcpListener::bind(address)
            .await
            .with_context(|| format!("cannot listen on {address}"))?;
        let staging = match &config.staging {
            Some(settings) => Some(Arc::new(Staging::connect(settings).await)),
            None => None,
        };
        notifier.set_staging(staging.clone());
        let progress_s3 = match (&config.progress.source, &config.staging) {
            (ProgressSource::S3(_), None) => Some(progress_client(&config).await),
            _ => None,
        };
        let progress = progress_reader(
            &config,
            &store,
            staging
                .as_deref()
                .map(Staging::client)
                .or(progress_s3.as_ref()),
        );
        let state = AppState {
            staging,
            backend,
            store,
            notifier,
            config: Arc::new(config),
            readiness: Arc::default(),
            metrics: telemetry::metrics_handle(),
            progress,
        };
        Ok(Application {
            listener,
            state,
            reconciler,
            ended: None,
            progress_s3,
        })
    }

    /// The bound port (useful when the configuration asked for port 0).
    /// Moves datasets and results with `stager` instead of the one built from the
    /// configuration (tests give one whose client has fixed credentials).
    pub fn with_staging(mut self, stager: Staging) -> Self {
        let stager = Arc::new(stager);
        self.state.notifier.set_staging(Some(stager.clone()));
        // The progress reports in S3 are read with the same client.
        self.state.progress = progress_reader(
            &self.state.config,
            &self.state.store,
            Some(stager.client()).or(self.progress_s3.as_ref()),
        );
        self.state.staging = Some(stager);
        self
    }

    /// The reader of the jobs' progress reports, where they can be read.
    pub fn progress_reader(&self) -> Option<ProgressReader> {
        self.state.progress.clone()
    }

    pub fn port(&self) -> u16 {
        self.local_addr().port()
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.listener
            .local_addr()
            .expect("a bound listener has an address")
    }

    pub fn notifier(&self) -> Notifier {
        self.state.notifier.clone()
    }

    pub fn reconciler(&self) -> Reconciler {
        self.reconciler.clone()
    }

    pub fn store(&self) -> Store {
        self.state.store.clone()
    }

    /// Serves until `shutdown` resolves: then stops accepting, lets requests in flight
    /// finish (each is bounded by the request timeout), and stops the background tasks
    /// (the outbox, the reconciler, the forwarding of ended jobs, the metrics upkeep) at
    /// a safe point.
    pub async fn run_until_stopped(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> anyhow::Result<()> {
        let (stop_tx, stop_rx) = watch::channel(false);
        let stopped = |mut rx: watch::Receiver<bool>| async move {
            let _ = rx.wait_for(|stop| *stop).await;
        };
        let config = self.state.config.clone();
        log_start(&config, self.local_addr(), self.state.backend.kind());
        if let Some(staging) = self.state.staging.clone() {
            // One process writes under the datasets prefix: the multipart uploads begun
            // there before now were left by a process that stopped half way.
            let now = std::time::SystemTime::now();
            tokio::spawn(async move {
                match staging.abort_abandoned_uploads(now).await {
                    Ok(0) => {}
                    Ok(aborted) => {
                        tracing::info!(
                            aborted,
                            "unfinished dataset uploads left by an earlier process aborted"
                        )
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "cannot list unfinished dataset uploads; the bucket's lifecycle rule removes them")
                    }
                }
            });
        }

        let readiness = self.state.readiness.clone();
        let supervised = |name, task| supervise(name, task, stop_rx.clone(), readiness.clone());
        let mut background = vec![
            supervised(
                "notice outbox",
                tokio::spawn(
                    self.state
                        .notifier
                        .clone()
                        .run_until_stopped(stopped(stop_rx.clone())),
                ),
            ),
            supervised(
                "reconciler",
                tokio::spawn(self.reconciler.run_until_stopped(stopped(stop_rx.clone()))),
            ),
        ];
        if let Some(ended) = self.ended {
            background.push(supervised(
                "ended-jobs forwarder",
                tokio::spawn(forward_ended(
                    self.state.notifier.clone(),
                    ended,
                    stopped(stop_rx.clone()),
                )),
            ));
        }
        if let Some(reader) = self.state.progress.clone() {
            background.push(supervised(
                "progress reader",
                tokio::spawn(reader.run_until_stopped(stopped(stop_rx.clone()))),
            ));
        }
        if let Some(handle) = self.state.metrics.clone() {
            background.push(supervised(
                "metrics upkeep",
                tokio::spawn(telemetry::run_upkeep(handle, stopped(stop_rx.clone()))),
            ));
        }

        let app = api::router(self.state);
        let result = serve(
            self.listener,
            app,
            config.server.header_read_timeout,
            config.server.max_connections,
            shutdown,
        )
        .await;
        info!("no longer accepting requests; stopping background work");
        let _ = stop_tx.send(true);
        let background = async {
            for task in background {
                let _ = task.await;
            }
        };
        if tokio::time::timeout(BACKGROUND_STOP_GRACE, background)
            .await
            .is_err()
        {
            warn!("background work did not stop in time; open notices resume after restart");
        }
        info!("stopped");
        result
    }
}

/// Opens the notice of each job received on `ended` (see
/// [`Application::forward_ended_jobs`]) until `stop` resolves. Returns early only if every
/// sender is gone, which the supervision reports: the backend can no longer say that its
/// jobs end.
async fn forward_ended(
    notifier: Notifier,
    mut ended: mpsc::UnboundedReceiver<JobId>,
    stop: impl Future<Output = ()>,
) {
    tokio::pin!(stop);
    loop {
        let id = tokio::select! {
            id = ended.recv() => match id {
                Some(id) => id,
                None => return,
            },
            _ = &mut stop => return,
        };
        match notifier.request(&id, Duration::ZERO).await {
            Ok(outcome) => debug!(job_id = %id, ?outcome, "job ended; notice requested"),
            Err(e) => {
                warn!(job_id = %id, error = %e, "cannot open the notice of an ended job now; the reconciler will")
            }
        }
    }
}

/// How often the reconciler reads the unfinished jobs. A backend that tells the service
/// when its jobs end (a sidecar's callback, the local backend's own report) has them read
/// every `RECONCILE_INTERVAL`, as a safety net; the others (EMR Serverless, EMR on EC2)
/// every `POLL_INTERVAL`, in batches, so that costs a few calls a round.
fn round_interval(backend: &dyn JobBackend, notify: &crate::config::NotifySettings) -> Duration {
    if backend.tells_when_jobs_end() {
        notify.reconcile_interval
    } else {
        notify.poll_interval.min(notify.reconcile_interval)
    }
}

/// Serves HTTP/1 on `listener` until `shutdown` resolves, then lets the requests in flight
/// finish. Unlike `axum::serve` it bounds what a client can hold: the headers of each
/// request must arrive within `header_read_timeout`, an idle keep-alive connection is
/// closed after the same time (hyper's header-read timer runs while it waits for the next
/// request), and beyond `max_connections` a new connection is closed at once.
async fn serve(
    listener: TcpListener,
    app: axum::Router,
    header_read_timeout: Duration,
    max_connections: usize,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    use hyper_util::rt::{TokioIo, TokioTimer};
    use hyper_util::service::TowerToHyperService;

    let slots = Arc::new(tokio::sync::Semaphore::new(max_connections));
    let (closing_tx, closing_rx) = watch::channel(false);
    tokio::pin!(shutdown);
    loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(pair) => pair,
                Err(e) => {
                    // Out of file descriptors and the like: wait a little, keep serving.
                    warn!(error = %e, "cannot accept a connection");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            _ = &mut shutdown => break,
        };
        let Ok(slot) = slots.clone().try_acquire_owned() else {
            metrics::counter!("connections_refused_total").increment(1);
            debug!(%peer, max_connections, "too many connections; closing a new one");
            drop(stream);
            continue;
        };
        let service = TowerToHyperService::new(app.clone());
        let mut closing = closing_rx.clone();
        tokio::spawn(async move {
            let connection = hyper::server::conn::http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(header_read_timeout)
                .keep_alive(true)
                .serve_connection(TokioIo::new(stream), service);
            tokio::pin!(connection);
            let result = tokio::select! {
                result = connection.as_mut() => result,
                _ = async { closing.wait_for(|closing| *closing).await.map(|_| ()) } => {
                    connection.as_mut().graceful_shutdown();
                    connection.await
                }
            };
            if let Err(e) = result {
                debug!(%peer, error = %e, "connection ended with an error");
            }
            drop(slot);
        });
    }
    let _ = closing_tx.send(true);
    // Every connection holds a slot until it ends: all slots back means all ended.
    let _ = slots.acquire_many(max_connections as u32).await;
    Ok(())
}

/// Watches a background task the service cannot do without. If it ends while the service
/// runs (a panic, or a return it should never make), that is logged loudly, counted in
/// `background_tasks_stopped_total`, and `/ready` fails from then on, so that the pod is
/// taken out of service and looked at rather than silently not reporting jobs (the
/// outbox, the reconciler, the forwarding of ended jobs) or slowly running out of memory
/// (the metrics upkeep, without which every histogram sample is kept).
fn supervise(
    name: &'static str,
    task: JoinHandle<()>,
    stop: watch::Receiver<bool>,
    readiness: Arc<Readiness>,
) -> JoinHandle<()> {
    tokio::spawn(async move {
        let outcome = task.await;
        if *stop.borrow() {
            return;
        }
        let why = match outcome {
            Ok(()) => "it returned".to_owned(),
            Err(e) if e.is_panic() => {
                let payload = e.into_panic();
                let message = payload
                    .downcast_ref::<&str>()
                    .map(|s| s.to_string())
                    .or_else(|| payload.downcast_ref::<String>().cloned())
                    .unwrap_or_else(|| "no message".to_owned());
                format!("it panicked: {message}")
            }
            Err(e) => e.to_string(),
        };
        error!(
            task = name,
            why = %why,
            "a background task stopped while the service runs; job-end notices are at risk and /ready fails until restart"
        );
        metrics::counter!("background_tasks_stopped_total", "task" => name).increment(1);
        readiness.task_died(name, &why);
    })
}

/// The progress reader of `config`, reading S3 with `s3`; `None` where the jobs' reports
/// cannot be read.
fn progress_reader(
    config: &Config,
    store: &Store,
    s3: Option<&aws_sdk_s3::Client>,
) -> Option<ProgressReader> {
    let place = Place::new(&config.progress, s3.cloned())?;
    Some(ProgressReader::new(
        store.clone(),
        place,
        config.progress.interval,
    ))
}

/// An S3 client for reports in S3 without data staging: the standard AWS chain, like the
/// EMR clients; path-style against `AWS_ENDPOINT_URL`.
async fn progress_client(config: &Config) -> aws_sdk_s3::Client {
    let settings = &config.progress;
    let sdk = crate::backend::emr::aws::sdk_config(
        &settings.region,
        settings.endpoint_url.as_deref(),
        crate::config::emr_call_timeout(config.server.request_timeout),
    )
    .await;
    let s3 = aws_sdk_s3::config::Builder::from(&sdk)
        .force_path_style(settings.endpoint_url.is_some())
        .build();
    aws_sdk_s3::Client::from_conf(s3)
}

async fn connect_store(config: &Config) -> anyhow::Result<Store> {
    Store::connect(&config.database_url)
        .await
        .with_context(|| format!("cannot open the store at {}", config.database_url))
}

fn log_start(config: &Config, address: SocketAddr, backend: BackendKind) {
    info!(
        %address,
        %backend,
        target = %config.backend.target(),
        multiomix = %config.notify.multiomix_url,
        store = %config.database_url,
        "multiomix-aws-emr {} listening",
        env!("CARGO_PKG_VERSION")
    );
    if config.server.api_token.is_none() {
        warn!("API_TOKEN is not set: anyone who can reach this port can start jobs");
    }
    if config.server.callback_token.is_none() {
        warn!(
            "CALLBACK_TOKEN is not set: anyone who can reach this port can trigger job-end checks"
        );
    }
}

/// Resolves on SIGTERM (Kubernetes) or Ctrl-C.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => info!("Ctrl-C received; shutting down"),
        _ = terminate => info!("SIGTERM received; shutting down"),
    }
}
