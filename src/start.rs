//! Starting a job: what `POST /job` does once the request is read and checked, with no
//! HTTP in it. In order:
//!
//! 1. **Idempotency**: a request that repeats an `Idempotency-Key` gets the job the first
//!    one started (or is refused, when its body differs).
//! 2. **Staging**: with `DATA_STAGING=s3`, the datasets the request names are found in
//!    the shared folder (a path outside it is refused before anything is written).
//! 3. **Submission**: written to the store before anything else happens; it takes the
//!    app-name (one open job per app-name), keeps the client token that makes the
//!    backend's start idempotent, and the job's progress token.
//! 4. **Spawn**: the rest runs in a task of its own, so that a request cut off by its
//!    timeout or a dropped connection cannot stop it between the start and its record:
//!    the datasets go up (a dropped request stops the upload and starts nothing), the
//!    backend starts the job, and the job is recorded. A submission left incomplete (the
//!    process died, the store failed) is settled by the reconciler from the backend.

use std::sync::Arc;

use tracing::{error, info, warn};

use crate::backend::{BackendError, JobBackend};
use crate::job::{JobId, JobSpec, ProgressToken};
use crate::staging::{FilesError, StageError, Staging};
use crate::store::{now_millis, Begun, JobRecord, Store, StoreError, Submission};

/// What starting a job needs: where it is recorded, where it runs, and where its datasets
/// go first (when staging is on). Cheap to clone.
#[derive(Clone)]
pub struct Starter {
    pub store: Store,
    pub backend: Arc<dyn JobBackend>,
    pub staging: Option<Arc<Staging>>,
}

/// The request's `Idempotency-Key`, and the fingerprint of its body.
#[derive(Clone, Debug)]
pub struct Idempotency {
    pub key: String,
    pub fingerprint: String,
}

impl Idempotency {
    /// The key of a request with this body. serde_json sorts object keys, so equal
    /// requests give equal fingerprints.
    pub fn new(key: String, body: &serde_json::Value) -> Self {
        Idempotency {
            key,
            fingerprint: sha256_hex(body.to_string().as_bytes()),
        }
    }
}

fn sha256_hex(data: &[u8]) -> String {
    use sha2::{Digest, Sha256};
    use std::fmt::Write;
    Sha256::digest(data)
        .iter()
        .fold(String::with_capacity(64), |mut hex, b| {
            let _ = write!(hex, "{b:02x}");
            hex
        })
}

/// A job that runs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Started {
    /// This request started it.
    New(JobId),
    /// An earlier request with the same `Idempotency-Key` and body started it.
    Repeated(JobId),
}

impl Started {
    pub fn id(&self) -> &JobId {
        match self {
            Started::New(id) | Started::Repeated(id) => id,
        }
    }
}

/// Why no job was started for this request (or why it cannot be told).
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// The `Idempotency-Key` was used for a different request.
    #[error("this Idempotency-Key was used for a different request")]
    KeyReused,
    /// A path the request names is refused.
    #[error("{}", .0.message)]
    Invalid(crate::job::FieldError),
    /// The shared datasets folder cannot be read.
    #[error("{0}")]
    DatasetsFolder(String),
    /// Another open job holds the app-name: `holder` is its id, once it has one.
    #[error("app-name in use")]
    AppNameInUse { holder: Option<JobId> },
    /// The datasets could not be uploaded; nothing was started.
    #[error(transparent)]
    Staging(#[from] StageError),
    /// The backend refused the job or could not be asked.
    #[error(transparent)]
    Backend(#[from] BackendError),
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The task that starts the job stopped before it could tell.
    #[error("the start of a job failed: {0}")]
    Aborted(String),
}

impl Starter {
    /// Starts the job `spec` describes; see the module's documentation for the steps.
    /// The returned future may be dropped (a closed connection) at any point: before the
    /// submission is written nothing happened; after it, an upload in progress stops and
    /// nothing starts, and a start in progress completes and is recorded.
    pub async fn start(
        &self,
        mut spec: JobSpec,
        idempotency: Option<Idempotency>,
    ) -> Result<Started, StartError> {
        if let Some(idem) = &idempotency {
            if let Some((job_id, seen)) = self.store.idempotent_job(&idem.key).await? {
                if seen != idem.fingerprint {
                    return Err(StartError::KeyReused);
                }
                info!(job_id = %job_id, "repeated request with the same Idempotency-Key; same job");
                return Ok(Started::Repeated(job_id));
            }
        }

        // On EMR the job sees none of Multiomix's folders: the datasets it names go to S3
        // first, and a job whose datasets cannot be uploaded is not started. The paths are
        // checked here, before anything is written.
        let staged = match &self.staging {
            Some(stager) => Some(stager.files(&spec).map_err(|e| match e {
                FilesError::Invalid(field) => StartError::Invalid(field),
                FilesError::Folder(why) => StartError::DatasetsFolder(why),
            })?),
            None => None,
        };

        // The job's own token for its progress reports: kept with the submission, handed
        // to its driver, and required of every report read for it (see `crate::progress`).
        spec.progress_token = Some(ProgressToken::generate());

        // The backend starts one job per client token: a retried request, even one whose
        // first try died before it was recorded here, cannot start a second job.
        let client_token = match &idempotency {
            Some(idem) => sha256_hex(idem.key.as_bytes()),
            None => uuid::Uuid::new_v4().simple().to_string(),
        };
        let submission = Submission {
            client_token,
            name: spec.name.as_str().to_owned(),
            algorithm: Some(spec.algorithm.code()),
            backend: self.backend.kind(),
            idempotency: idempotency.map(|i| (i.key, i.fingerprint)),
            created_at: now_millis(),
            app_name: spec.app_name().map(str::to_owned),
            progress_token: spec.progress_token.as_ref().map(|t| t.expose().to_owned()),
        };
        // The submission is written before the datasets are uploaded and the backend is
        // asked, and it takes the app name: one open job per app name.
        if let Begun::AppNameInUse { job_id } = self.store.begin_submission(&submission).await? {
            return Err(StartError::AppNameInUse { holder: job_id });
        }

        // Until the datasets are up, a dropped request stops the upload and starts
        // nothing: `attached` lives as long as this future.
        let (attached, detached) = tokio::sync::oneshot::channel::<()>();
        let work = {
            let this = self.clone();
            tokio::spawn(async move {
                if let (Some(stager), Some(files)) = (&this.staging, staged) {
                    let app = spec.app_name().unwrap_or_default();
                    let caller_gone = async move {
                        let _ = detached.await;
                    };
                    if let Err(e) = stager.prepare_run(app, &files, caller_gone).await {
                        this.drop_submission(&submission, "whose datasets were not staged")
                            .await;
                        return Err(StartError::Staging(e));
                    }
                }
                this.submit(&spec, &submission).await
            })
        };
        let id = work
            .await
            .map_err(|e| StartError::Aborted(e.to_string()))??;
        drop(attached);
        Ok(Started::New(id))
    }

    /// Asks the backend to start the job, and records it.
    async fn submit(&self, spec: &JobSpec, submission: &Submission) -> Result<JobId, StartError> {
        let id = match self.backend.start(spec, &submission.client_token).await {
            Ok(id) => id,
            Err(e) => {
                // Only a clear refusal means nothing started; after a timeout or an
                // outage the reconciler finds out.
                if matches!(
                    e,
                    BackendError::Rejected(_) | BackendError::Conflict(_) | BackendError::NotFound
                ) {
                    self.drop_submission(submission, "the backend refused")
                        .await;
                }
                return Err(StartError::Backend(e));
            }
        };
        let record = JobRecord {
            id: id.clone(),
            name: submission.name.clone(),
            algorithm: submission.algorithm,
            backend: submission.backend,
            created_at: submission.created_at,
            adopted: false,
            app_name: submission.app_name.clone(),
        };
        let key = submission
            .idempotency
            .as_ref()
            .map(|(k, f)| (k.as_str(), f.as_str()));
        if let Err(e) = self
            .store
            .complete_submission(&submission.client_token, &record, key)
            .await
        {
            // The job runs: say so. Its submission stays, and the reconciler records the
            // job from the backend.
            error!(job_id = %id, error = %e, "the job started but cannot be recorded now; the reconciler will record it");
        }
        Ok(id)
    }

    async fn drop_submission(&self, submission: &Submission, why: &str) {
        if let Err(e) = self.store.drop_submission(&submission.client_token).await {
            warn!(error = %e, "cannot remove a submission {why}; the reconciler will");
        }
    }
}
