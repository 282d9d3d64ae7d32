//! Data staging through S3 (`DATA_STAGING=s3`). A job on EMR sees neither of Multiomix's
//! shared folders, so the service carries the files: the datasets a request names go up
//! to S3 before the job starts ([`datasets`]), and a completed job's results come down
//! into the shared results folder before its notice is sent ([`results`]).
//!
//! One S3 client serves both, built from the standard AWS chain like the EMR clients.

pub mod datasets;

pub mod results;

pub use datasets::{FilesError, StageError, StagedFile, MULTIPART_PART_BYTES, STAGED_ARGUMENTS};

pub use results::{FetchError, Fetched};

use aws_sdk_s3::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_s3::Client;

use crate::backend::emr::aws::sdk_config_with;
use crate::config::StagingSettings;

/// Moves a job's files between Multiomix's shared folders and S3.
#[derive(Clone, Debug)]
pub struct Staging {
    client: Client,
    settings: StagingSettings,
}

impl Staging {
    /// Builds the S3 client from the standard AWS chain like the EMR clients; against
    /// `AWS_ENDPOINT_URL` it uses path-style addressing, as emulators need.
    ///
    /// Each call is bounded as a whole, with no bound per try: a part of a large upload
    /// may take most of the call. A download's body, streamed after the answer's headers,
    /// is bounded by `RESULTS_FETCH_TIMEOUT` instead.
    pub async fn connect(settings: &StagingSettings) -> Self {
        let sdk = sdk_config_with(
            &settings.region,
            settings.endpoint_url.as_deref(),
            settings.call_timeout,
            None,
        )
        .await;
        let s3 = aws_sdk_s3::config::Builder::from(&sdk)
            .force_path_style(settings.endpoint_url.is_some())
            .build();
        Self::with_client(Client::from_conf(s3), settings)
    }

    /// Uses a client built elsewhere (tests give one with fixed credentials).
    pub fn with_client(client: Client, settings: &StagingSettings) -> Self {
        Staging {
            client,
            settings: settings.clone(),
        }
    }

    pub fn settings(&self) -> &StagingSettings {
        &self.settings
    }

    /// The S3 client, which the progress reader shares.
    pub fn client(&self) -> &Client {
        &self.client
    }
}

pub(crate) enum Failure {
    /// S3 was not reached, or did not answer in time.
    Unavailable(String),
    /// S3 answered with a refusal.
    Refused(String),
    Read(std::io::Error),
}

impl Failure {
    /// The failure in words, for an answer or a log line.
    pub(crate) fn describe(self) -> String {
        match self {
            Failure::Unavailable(why) | Failure::Refused(why) => why,
            Failure::Read(e) => format!("cannot read the file: {e}"),
        }
    }
}

pub(crate) fn failure<E, R>(e: SdkError<E, R>, call: &str) -> Failure
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
    R: std::fmt::Debug,
{
    match &e {
        SdkError::ServiceError(service) => Failure::Refused(format!(
            "{call}: {} {}",
            service.err().code().unwrap_or("error"),
            service.err().message().unwrap_or_default()
        )),
        _ => Failure::Unavailable(format!(
            "{call}: {}",
            aws_sdk_s3::error::DisplayErrorContext(&e)
        )),
    }
}

/// An S3 call's failure in words, for a log line.
pub(crate) fn describe_failure<E, R>(e: SdkError<E, R>, call: &str) -> String
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
    R: std::fmt::Debug,
{
    failure(e, call).describe()
}

pub(crate) fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
