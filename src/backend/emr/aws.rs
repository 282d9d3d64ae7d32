//! What the AWS clients share (the EMR backends, and the S3 client of data staging): how
//! their SDK clients are configured and how an SDK error is sorted into a [`BackendError`].

use std::time::Duration;

use aws_config::{retry::RetryConfig, timeout::TimeoutConfig, BehaviorVersion, Region, SdkConfig};
// The same smithy types back every aws-sdk-* crate; emr-containers' re-export serves all.
use aws_sdk_emrcontainers::error::{ProvideErrorMetadata, SdkError};

use crate::backend::{BackendError, Cause};

/// The SDK configuration of a backend's client: the standard AWS chain (environment,
/// profile, IRSA web identity, instance metadata), the region, `AWS_ENDPOINT_URL` when
/// set, and timeouts within `call_timeout`, so that a call, retries included, ends before
/// the request that made it is cut off (see `config::emr_call_timeout`). Each of the three
/// tries gets a third of it.
pub async fn sdk_config(
    region: &str,
    endpoint_url: Option<&str>,
    call_timeout: Duration,
) -> SdkConfig {
    sdk_config_with(region, endpoint_url, call_timeout, Some(call_timeout / 3)).await
}

/// [`sdk_config`], with each try bounded by `attempt_timeout` when given. The S3 client
/// of data staging gives none: a part of a large upload may take most of the call.
pub async fn sdk_config_with(
    region: &str,
    endpoint_url: Option<&str>,
    call_timeout: Duration,
    attempt_timeout: Option<Duration>,
) -> SdkConfig {
    let mut timeouts = TimeoutConfig::builder()
        .connect_timeout(Duration::from_secs(3).min(call_timeout))
        .operation_timeout(call_timeout);
    if let Some(attempt) = attempt_timeout {
        timeouts = timeouts.operation_attempt_timeout(attempt);
    }
    let mut loader = aws_config::defaults(BehaviorVersion::latest())
        .region(Region::new(region.to_owned()))
        .retry_config(RetryConfig::standard().with_max_attempts(3))
        .timeout_config(timeouts.build());
    if let Some(url) = endpoint_url {
        loader = loader.endpoint_url(url);
    }
    loader.load().await
}

/// Sorts an SDK error into what the caller can do about it. The SDK has already retried
/// throttling and 5xx answers by the time this sees them. The codes are those of
/// emr-containers, emr-serverless and emr (EMR on EC2 answers `InternalServerError` and
/// `ServiceUnavailable` where the others add `Exception`).
pub fn classify<E, R>(operation: &str, err: SdkError<E, R>) -> BackendError
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
    R: std::fmt::Debug + Send + Sync + 'static,
{
    let (unavailable, message) = match &err {
        SdkError::ServiceError(service) => {
            let e = service.err();
            let code = e.code().unwrap_or("Unknown");
            let message = e.message().unwrap_or("no message").to_owned();
            match code {
                "ResourceNotFoundException" => return BackendError::NotFound,
                "ThrottlingException"
                | "TooManyRequestsException"
                | "InternalServerException"
                | "InternalServerError"
                | "ServiceUnavailableException"
                | "ServiceUnavailable"
                | "RequestTimeout" => (true, format!("{operation}: {code}: {message}")),
                _ => (false, format!("{operation}: {code}: {message}")),
            }
        }
        SdkError::ConstructionFailure(_) => (
            false,
            format!("{operation}: request could not be built: {err:?}"),
        ),
        _ => (
            true,
            format!(
                "{operation}: {}",
                aws_smithy_types::error::display::DisplayErrorContext(&err)
            ),
        ),
    };
    // The SDK error stays as the cause, for the log.
    let cause = Cause::with_source(message, err);
    if unavailable {
        BackendError::Unavailable(cause)
    } else {
        BackendError::Rejected(cause)
    }
}
