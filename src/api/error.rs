//! The API's one error type: every refusal is a status and a JSON body, never an HTML
//! page; internal causes are logged, not sent.

use axum::extract::rejection::{BytesRejection, JsonRejection};
use axum::extract::{FromRequest, Request};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Serialize;

use crate::backend::BackendError;
use crate::job::FieldError;
use crate::store::StoreError;

/// The JSON body of every error answer.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ErrorBody {
    /// A stable, machine-readable code.
    pub error: &'static str,
    /// What went wrong, for a person.
    pub message: String,
    /// The request field at fault, when there is one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
}

/// Every way a request can fail, each with its status and error code. Handlers return it
/// and it renders the JSON error body, so no failure becomes an HTML page or a bare 500:
/// backend errors are sorted into 404, 409, 502 and 503 (with `Retry-After`) by
/// [`ApiError::from_backend`].
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("{}", .0.message)]
    Invalid(FieldError),
    #[error("{0}")]
    BadRequest(String),
    #[error("the request body must be JSON with Content-Type: application/json")]
    UnsupportedMediaType,
    #[error("the request body is larger than the service accepts")]
    PayloadTooLarge,
    /// The body did not arrive within `BODY_READ_TIMEOUT`.
    #[error("the request body did not arrive within {} s", .0.as_secs_f64())]
    BodyTimeout(std::time::Duration),
    #[error("missing or wrong bearer token")]
    Unauthorized,
    #[error("job {0} not found")]
    NotFound(String),
    #[error("{0}")]
    Conflict(String),
    /// A field names something in use (the `app-name` of an open job): 409 naming it.
    #[error("{}", .0.message)]
    InUse(FieldError),
    #[error("{0}")]
    Unprocessable(String),
    /// A peer (the job backend, S3) refused. `detail` is for the log only: the cause's
    /// whole chain, where the answer carries its words.
    #[error("{message}")]
    BadGateway {
        message: String,
        detail: Option<String>,
    },
    #[error("{message}")]
    Unavailable {
        message: String,
        retry_after_secs: u64,
        /// For the log only, as for `BadGateway`.
        detail: Option<String>,
    },
    #[error("the request took too long")]
    Timeout,
    #[error("internal error")]
    Internal(#[from] anyhow::Error),
}

impl ApiError {
    pub fn status(&self) -> StatusCode {
        match self {
            ApiError::Invalid(_) | ApiError::BadRequest(_) => StatusCode::BAD_REQUEST,
            ApiError::UnsupportedMediaType => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            ApiError::PayloadTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::BodyTimeout(_) => StatusCode::REQUEST_TIMEOUT,
            ApiError::Unauthorized => StatusCode::UNAUTHORIZED,
            ApiError::NotFound(_) => StatusCode::NOT_FOUND,
            ApiError::Conflict(_) | ApiError::InUse(_) => StatusCode::CONFLICT,
            ApiError::Unprocessable(_) => StatusCode::UNPROCESSABLE_ENTITY,
            ApiError::BadGateway { .. } => StatusCode::BAD_GATEWAY,
            ApiError::Unavailable { .. } => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::Timeout => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn code(&self) -> &'static str {
        match self {
            ApiError::Invalid(_) | ApiError::BadRequest(_) => "invalid_request",
            ApiError::UnsupportedMediaType => "unsupported_media_type",
            ApiError::PayloadTooLarge => "payload_too_large",
            ApiError::BodyTimeout(_) => "body_timeout",
            ApiError::Unauthorized => "unauthorized",
            ApiError::NotFound(_) => "not_found",
            ApiError::Conflict(_) | ApiError::InUse(_) => "conflict",
            ApiError::Unprocessable(_) => "unprocessable",
            ApiError::BadGateway { .. } => "backend_refused",
            ApiError::Unavailable { .. } => "unavailable",
            ApiError::Timeout => "timeout",
            ApiError::Internal(_) => "internal",
        }
    }

    /// A backend error about a given job (empty for no particular job), sorted into the answer the contract asks for.
    pub fn from_backend(err: BackendError, job_id: &str) -> Self {
        match err {
            BackendError::NotFound if job_id.is_empty() => ApiError::bad_gateway(
                "the job backend answered 'not found' for no particular job; check where the \
                 backend runs its jobs (EMR_VIRTUAL_CLUSTER_ID, EMR_SERVERLESS_APPLICATION_ID \
                 or EMR_CLUSTER_ID)",
            ),
            BackendError::NotFound => ApiError::NotFound(job_id.to_owned()),
            BackendError::Conflict(msg) => ApiError::Conflict(msg),
            // The answer carries the words; the log line, written once when the answer
            // is, the whole chain.
            BackendError::Rejected(cause) => ApiError::BadGateway {
                detail: Some(crate::backend::error_chain(&cause)),
                message: cause.to_string(),
            },
            BackendError::Invalid(msg) => ApiError::BadRequest(msg),
            BackendError::Unavailable(cause) => ApiError::Unavailable {
                detail: Some(crate::backend::error_chain(&cause)),
                message: cause.to_string(),
                retry_after_secs: 5,
            },
        }
    }

    pub fn overloaded() -> Self {
        ApiError::unavailable("the service is at capacity; try again shortly", 1)
    }

    /// A 502 whose message says all there is to log.
    pub fn bad_gateway(message: impl Into<String>) -> Self {
        ApiError::BadGateway {
            message: message.into(),
            detail: None,
        }
    }

    /// A 503 with `Retry-After`, whose message says all there is to log.
    pub fn unavailable(message: impl Into<String>, retry_after_secs: u64) -> Self {
        ApiError::Unavailable {
            message: message.into(),
            retry_after_secs,
            detail: None,
        }
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        ApiError::Internal(anyhow::Error::new(e).context("store"))
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = self.status();
        match &self {
            ApiError::Internal(cause) => {
                tracing::error!(error = format!("{cause:#}"), "request failed")
            }
            ApiError::BadGateway { message, detail } => {
                let error = detail.as_deref().unwrap_or(message);
                tracing::warn!(error, "answering 502: a peer refused")
            }
            ApiError::Unavailable {
                message, detail, ..
            } => {
                let error = detail.as_deref().unwrap_or(message);
                tracing::warn!(error, "answering 503")
            }
            _ => {}
        }
        let body = ErrorBody {
            error: self.code(),
            message: self.to_string(),
            field: match &self {
                ApiError::Invalid(f) | ApiError::InUse(f) => Some(f.field.clone()),
                _ => None,
            },
        };
        let mut response = (status, axum::Json(body)).into_response();
        if let ApiError::Unavailable {
            retry_after_secs, ..
        } = self
        {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(retry_after_secs));
        }
        response
    }
}

impl From<JsonRejection> for ApiError {
    fn from(rejection: JsonRejection) -> Self {
        match rejection {
            JsonRejection::MissingJsonContentType(_) => ApiError::UnsupportedMediaType,
            JsonRejection::BytesRejection(b) => from_bytes_rejection(b),
            JsonRejection::JsonSyntaxError(e) => {
                ApiError::BadRequest(format!("the body is not valid JSON: {}", e.body_text()))
            }
            JsonRejection::JsonDataError(e) => ApiError::BadRequest(e.body_text()),
            other => ApiError::BadRequest(other.body_text()),
        }
    }
}

pub fn from_bytes_rejection(rejection: BytesRejection) -> ApiError {
    let mut source = std::error::Error::source(&rejection);
    while let Some(e) = source {
        if let Some(timed_out) = e.downcast_ref::<super::body_deadline::BodyTimedOut>() {
            return ApiError::BodyTimeout(timed_out.0);
        }
        source = e.source();
    }
    if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
        ApiError::PayloadTooLarge
    } else {
        ApiError::BadRequest(rejection.body_text())
    }
}

/// `axum::Json` whose refusals are [`ApiError`]s, so a malformed body gets the same JSON
/// error shape as everything else.
#[derive(Debug, Clone, Copy, Default)]
pub struct ApiJson<T>(pub T);

impl<S, T> FromRequest<S> for ApiJson<T>
where
    axum::Json<T>: FromRequest<S, Rejection = JsonRejection>,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let axum::Json(value) = axum::Json::<T>::from_request(req, state).await?;
        Ok(ApiJson(value))
    }
}
