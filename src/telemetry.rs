//! Logs and metrics set up once per process.

use std::future::Future;
use std::io::IsTerminal;
use std::sync::OnceLock;
use std::time::Duration;

use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use tracing_subscriber::{fmt, prelude::*, EnvFilter};

use crate::config::LogFormat;

/// What `RUST_LOG` is when unset: the service at info, chatty dependencies at warn.
pub const DEFAULT_FILTER: &str =
    "info,sqlx=warn,aws_config=warn,aws_smithy_runtime=warn,hyper=warn";

/// Sets up logging to stderr, as text or one JSON object per line.
pub fn init_tracing(format: LogFormat) {
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(DEFAULT_FILTER));
    let registry = tracing_subscriber::registry().with(filter);
    let result = match format {
        LogFormat::Text => registry
            .with(
                fmt::layer()
                    .with_writer(std::io::stderr)
                    .with_ansi(std::io::stderr().is_terminal())
                    .with_target(false),
            )
            .try_init(),
        LogFormat::Json => registry
            .with(
                fmt::layer()
                    .json()
                    .flatten_event(true)
                    .with_current_span(true)
                    .with_span_list(false)
                    .with_writer(std::io::stderr),
            )
            .try_init(),
    };
    // A second call (several apps in one test process) keeps the first subscriber.
    let _ = result;
}

/// The process-wide Prometheus recorder. Installed on first use; every app in the
/// process shares it. `None` if another recorder was installed first.
pub fn metrics_handle() -> Option<PrometheusHandle> {
    static HANDLE: OnceLock<Option<PrometheusHandle>> = OnceLock::new();
    HANDLE
        .get_or_init(|| {
            let recorder = PrometheusBuilder::new()
                .set_buckets_for_metric(
                    Matcher::Suffix("duration_seconds".into()),
                    &[
                        0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
                        5.0, 10.0, 30.0,
                    ],
                )
                .expect("the bucket list is not empty")
                // An iteration takes seconds on a small dataset, up to an hour on TCGA's.
                .set_buckets_for_metric(
                    Matcher::Full("progress_seconds_per_iteration".into()),
                    &[
                        1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1800.0, 3600.0,
                        7200.0,
                    ],
                )
                .expect("the bucket list is not empty")
                .build_recorder();
            let handle = recorder.handle();
            metrics::set_global_recorder(recorder).ok()?;
            describe();
            Some(handle)
        })
        .clone()
}

/// How often histogram samples are folded into their buckets.
const UPKEEP_INTERVAL: Duration = Duration::from_secs(5);

/// Folds the samples recorded since the last run into the histograms' buckets, every
/// few seconds until `stop` resolves. A recorder built with `build_recorder` keeps every
/// histogram sample (a value and an `Instant`, 24 bytes) in memory until this runs or
/// `/metrics` is scraped: without it, a service nobody scrapes grows with every request.
pub async fn run_upkeep(handle: PrometheusHandle, stop: impl Future<Output = ()>) {
    tokio::pin!(stop);
    let mut tick = tokio::time::interval(UPKEEP_INTERVAL);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = tick.tick() => handle.run_upkeep(),
            _ = &mut stop => return,
        }
    }
}

fn describe() {
    use metrics::{describe_counter, describe_gauge, describe_histogram, Unit};
    describe_counter!(
        "http_requests_total",
        "HTTP requests by method, route and status"
    );
    describe_histogram!(
        "http_request_duration_seconds",
        Unit::Seconds,
        "HTTP request latency by method and route"
    );
    describe_counter!(
        "backend_calls_total",
        "Job backend calls by operation and outcome"
    );
    describe_histogram!(
        "backend_call_duration_seconds",
        Unit::Seconds,
        "Job backend call latency by operation"
    );
    describe_counter!("jobs_started_total", "Jobs started, by algorithm");
    describe_counter!("callbacks_total", "Driver-end callbacks received");
    describe_gauge!(
        "notices_open",
        "Job-end notices not yet delivered, refused or given up (the callback queue)"
    );
    describe_counter!("notices_opened_total", "Job-end notices opened");
    describe_counter!("notices_delivered_total", "Job-end notices Multiomix took");
    describe_counter!(
        "notices_refused_total",
        "Job-end notices Multiomix refused for good (mostly 404)"
    );
    describe_counter!(
        "notices_given_up_total",
        "Job-end notices given up after NOTIFY_GIVE_UP_AFTER"
    );
    describe_counter!(
        "notice_attempts_failed_total",
        "Failed delivery attempts that will be retried"
    );
    describe_counter!("reconciler_rounds_total", "Reconciler rounds run");
    describe_counter!(
        "requests_shed_total",
        "Requests refused with 503 because the service was at capacity"
    );
    describe_counter!(
        "requests_unauthorized_total",
        "Requests refused for a missing or wrong token"
    );
    describe_gauge!(
        "progress_running_jobs",
        "Jobs not known to have ended that have a progress report"
    );
    describe_gauge!(
        "progress_mean_fraction",
        "Mean fraction of planned evaluations done, over progress_running_jobs (0 when none)"
    );
    describe_histogram!(
        "progress_seconds_per_iteration",
        Unit::Seconds,
        "Seconds per iteration, from successive progress reports of a job"
    );
    describe_counter!(
        "progress_reports_refused_total",
        "Progress reports not taken, by reason"
    );
}
