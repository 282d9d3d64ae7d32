//! The HTTP API: routes, shared state, and the layers every request goes through.

pub mod auth;
pub mod body_deadline;
pub mod error;
pub mod jobs;
pub mod openapi;
pub mod ops;
pub mod schemas;
pub mod ui;

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::extract::{DefaultBodyLimit, MatchedPath, Request};
use axum::http::{HeaderName, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{BoxError, Router};
use tower::limit::GlobalConcurrencyLimitLayer;
use tower::ServiceBuilder;
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::compression::CompressionLayer;
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::sensitive_headers::SetSensitiveRequestHeadersLayer;
use tower_http::trace::TraceLayer;

use crate::backend::JobBackend;
use crate::config::Config;
use crate::notify::Notifier;
use crate::store::Store;
use error::ApiError;

/// Largest request body accepted (413 beyond); the argument limits are derived from it.
pub use crate::job::MAX_BODY_BYTES;
/// Largest body of the sidecar's callback, `{"state": "..."}`.
pub const MAX_CALLBACK_BODY_BYTES: usize = 4 * 1024;

/// What every handler can reach.
#[derive(Clone)]
pub struct AppState {
    pub backend: Arc<dyn JobBackend>,
    pub store: Store,
    pub notifier: Notifier,
    pub config: Arc<Config>,
    /// Uploads a job's datasets before it starts, when `DATA_STAGING=s3`.
    pub staging: Option<Arc<crate::staging::Staging>>,
    pub readiness: Arc<ops::Readiness>,
    pub metrics: Option<metrics_exporter_prometheus::PrometheusHandle>,
    /// Reads the running jobs' progress reports, where the service can read them.
    pub progress: Option<crate::progress::ProgressReader>,
}

static REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// The whole API as a `Router`, with its layers; tests call it in-process.
pub fn router(state: AppState) -> Router {
    let server = &state.config.server;
    let body_read_timeout = server.body_read_timeout;
    let api_auth = middleware::from_fn_with_state(server.api_token.clone(), auth::require_bearer);
    let callback_auth =
        middleware::from_fn_with_state(server.callback_token.clone(), auth::require_bearer);
    let page_auth =
        middleware::from_fn_with_state(server.api_token.clone(), auth::require_page_credentials);

    let job_routes = axum::routing::get(jobs::read_job)
        .delete(jobs::cancel_job)
        .route_layer(api_auth.clone())
        .merge(
            axum::routing::patch(jobs::job_callback)
                .route_layer(callback_auth)
                .layer(DefaultBodyLimit::max(MAX_CALLBACK_BODY_BYTES)),
        );

    // `POST /job` may upload its datasets first (with `DATA_STAGING=s3`): that has its own
    // bound, `STAGING_UPLOAD_TIMEOUT`, on top of the request's.
    let start_timeout = server.request_timeout
        + state
            .config
            .staging
            .as_ref()
            .map_or(std::time::Duration::ZERO, |s| s.upload_timeout);
    let start = Router::new()
        .route("/job", post(jobs::start_job).route_layer(api_auth.clone()))
        .layer(
            ServiceBuilder::new()
                .layer(axum::error_handling::HandleErrorLayer::new(overload_error))
                .timeout(start_timeout),
        );
    // Everything but liveness shares one bound on requests in flight; beyond it a request
    // is answered 503 at once instead of queuing. Liveness stays out of it so that a busy
    // service is not restarted for being busy.
    let limited = Router::new()
        .route("/jobs", get(jobs::list_jobs).route_layer(api_auth))
        .route("/job/{id}", job_routes)
        .route("/ui", get(ui::jobs_page).route_layer(page_auth.clone()))
        .route("/ui/jobs/{id}", get(ui::job_page).route_layer(page_auth))
        .route("/", get(ops::index))
        .route("/ready", get(ops::ready))
        .route("/metrics", get(ops::metrics))
        .route("/openapi.json", get(openapi::openapi_json))
        .layer(
            ServiceBuilder::new()
                .layer(axum::error_handling::HandleErrorLayer::new(overload_error))
                .timeout(server.request_timeout),
        )
        .merge(start)
        .layer(
            ServiceBuilder::new()
                .layer(axum::error_handling::HandleErrorLayer::new(overload_error))
                .load_shed()
                // `Router::layer` applies its layers to each route separately: a plain
                // concurrency limit would be one per route. This one shares its permits.
                .layer(GlobalConcurrencyLimitLayer::new(
                    server.max_concurrent_requests,
                )),
        );
    let api = limited
        .route("/health", get(ops::health))
        .fallback(ops::not_found)
        .method_not_allowed_fallback(ops::method_not_allowed);

    api.layer(
        ServiceBuilder::new()
            .layer(CatchPanicLayer::custom(ops::panic_response))
            .layer(SetSensitiveRequestHeadersLayer::new([
                axum::http::header::AUTHORIZATION,
            ]))
            .layer(SetRequestIdLayer::new(REQUEST_ID.clone(), MakeRequestUuid))
            .layer(
                TraceLayer::new_for_http()
                    .make_span_with(|req: &Request| {
                        let route = req
                            .extensions()
                            .get::<MatchedPath>()
                            .map(MatchedPath::as_str)
                            .unwrap_or("-");
                        let request_id = req
                            .headers()
                            .get("x-request-id")
                            .and_then(|v| v.to_str().ok())
                            .unwrap_or("-");
                        tracing::info_span!("request", method = %req.method(), route, uri = %req.uri().path(), request_id)
                    })
                    .on_request(())
                    .on_response(
                        tower_http::trace::DefaultOnResponse::new()
                            .level(tracing::Level::DEBUG),
                    ),
            )
            .layer(PropagateRequestIdLayer::new(REQUEST_ID.clone()))
            .layer(middleware::from_fn(record_metrics))
            .layer(CompressionLayer::new())
            .layer(middleware::from_fn_with_state(
                body_read_timeout,
                body_deadline::bound_body_time,
            ))
            .layer(DefaultBodyLimit::max(MAX_BODY_BYTES)),
    )
    .with_state(state)
}

/// Turns the load-shedding and timeout layers' errors into JSON answers.
async fn overload_error(err: BoxError) -> Response {
    if err.is::<tower::load_shed::error::Overloaded>() {
        metrics::counter!("requests_shed_total").increment(1);
        ApiError::overloaded().into_response()
    } else if err.is::<tower::timeout::error::Elapsed>() {
        ApiError::Timeout.into_response()
    } else {
        ApiError::Internal(anyhow::anyhow!("middleware error: {err}")).into_response()
    }
}

/// Requests by route and status, with their latency.
async fn record_metrics(req: Request, next: Next) -> Response {
    let start = Instant::now();
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map(|p| p.as_str().to_owned())
        .unwrap_or_else(|| "unmatched".to_owned());
    let method = method_label(req.method());
    let response = next.run(req).await;
    let status = response.status().as_u16().to_string();
    let elapsed = start.elapsed();
    metrics::counter!("http_requests_total", "method" => method, "route" => route.clone(), "status" => status).increment(1);
    metrics::histogram!("http_request_duration_seconds", "method" => method, "route" => route)
        .record(elapsed.as_secs_f64());
    response
}

/// The method as a metrics label. Methods are free text in HTTP: labelling each one a
/// client makes up would add series without bound, so only the standard ones are named.
fn method_label(method: &axum::http::Method) -> &'static str {
    use axum::http::Method;
    match *method {
        Method::GET => "GET",
        Method::HEAD => "HEAD",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::DELETE => "DELETE",
        Method::PATCH => "PATCH",
        Method::OPTIONS => "OPTIONS",
        Method::TRACE => "TRACE",
        Method::CONNECT => "CONNECT",
        _ => "other",
    }
}

/// How long `/ready` trusts its last check of the backend.
pub const READY_CACHE: Duration = Duration::from_secs(5);

pub(crate) fn status_json(status: StatusCode, body: serde_json::Value) -> Response {
    (status, axum::Json(body)).into_response()
}
