//! The EMR Serverless backend: StartJobRun, GetJobRun, CancelJobRun, ListJobRuns and
//! GetApplication through the AWS SDK, in the application `EMR_SERVERLESS_APPLICATION_ID`.
//!
//! There is no sidecar: the reconciler reads the runs in flight every `POLL_INTERVAL`, a
//! page of ListJobRuns at a time. EMR Serverless's states are mapped onto the ones
//! Multiomix knows, and a run cancelled by its execution timeout is reported as FAILED,
//! because Multiomix reads CANCELLED as "stopped by the user".

use std::collections::HashMap;

use async_trait::async_trait;
use aws_sdk_emrserverless::types::{
    ApplicationState, ConfigurationOverrides, JobDriver, JobRunState, MonitoringConfiguration,
    S3MonitoringConfiguration, SparkSubmit as SparkSubmitDriver,
};
use aws_sdk_emrserverless::Client;
use aws_smithy_types::DateTime;
use time::OffsetDateTime;

use super::aws::{classify, sdk_config};
use super::{
    is_own_tags, to_offset, CALLBACK_HOST_TAG, CLIENT_TOKEN_TAG, MANAGED_BY_TAG, MANAGED_BY_VALUE,
};
use crate::backend::batch::describe_by_listing;
use crate::backend::cancel_after_reading;
use crate::backend::spark::{entry_point_arguments, DriverEnv, S3Package, SparkSubmit};
use crate::backend::{
    app_name_tag, BackendError, Described, JobBackend, JobPage, ListQuery, Submitted, APP_NAME_TAG,
};
use crate::config::{JobSettings, ServerlessSettings, SparkSettings};
use crate::job::{BackendKind, JobId, JobRun, JobSpec, JobState};

/// ListJobRuns answers at most 50 runs a page.
const PAGE_SIZE: u32 = 50;

/// GetJobRun calls one page of `GET /jobs` may make, to tell a cancelled run stopped by
/// its execution timeout (FAILED) from one a user cancelled: a page of 50 cancelled runs
/// costs 10 calls, not 50. Beyond them a cancelled run shows as its summary says
/// (CANCELLED, or FAILED when its details name the timeout); `GET /job/{id}` always
/// reads the run.
pub const READS_PER_PAGE: usize = 10;

/// Runs each job as an EMR Serverless job run in one application.
pub struct EmrServerlessBackend {
    client: Client,
    package: S3Package,
    settings: ServerlessSettings,
    spark: SparkSettings,
    job: JobSettings,
}

impl EmrServerlessBackend {
    /// Builds the SDK client from the standard AWS chain, in the configured region and,
    /// when `AWS_ENDPOINT_URL` is set, against that endpoint (as for EMR on EKS).
    pub async fn connect(
        settings: ServerlessSettings,
        spark: SparkSettings,
        job: JobSettings,
    ) -> Self {
        let sdk = sdk_config(
            &settings.region,
            settings.endpoint_url.as_deref(),
            settings.call_timeout,
        )
        .await;
        Self::with_client(Client::new(&sdk), settings, spark, job)
    }

    /// Uses a client built elsewhere (tests give one with fixed credentials).
    pub fn with_client(
        client: Client,
        settings: ServerlessSettings,
        spark: SparkSettings,
        job: JobSettings,
    ) -> Self {
        EmrServerlessBackend {
            client,
            package: S3Package::new(&settings.s3_bucket),
            settings,
            spark,
            job,
        }
    }

    /// Where EMR Serverless writes a run's logs under the log URI.
    fn log_location(&self, id: &JobId) -> String {
        format!(
            "{}/applications/{}/jobs/{id}/",
            self.package.log_uri(),
            self.settings.application_id
        )
    }

    fn to_run(&self, seen: Seen<'_>) -> Result<JobRun, BackendError> {
        let id = JobId::parse(seen.id).ok_or_else(|| {
            BackendError::Rejected(
                format!(
                    "EMR Serverless returned an unusable job run id {:?}",
                    seen.id
                )
                .into(),
            )
        })?;
        let (state, state_details) = map_state(&seen)?;
        let finished_at = if state.is_final() {
            // A final state always carries a finishedAt: Multiomix computes the run time
            // from it. ListJobRuns and some peers give no endedAt; updatedAt is when the
            // run took its final state.
            Some(to_offset(seen.ended_at.unwrap_or(seen.updated_at)))
        } else {
            None
        };
        Ok(JobRun {
            log_location: Some(self.log_location(&id)),
            name: seen.name.unwrap_or_default().to_owned(),
            state,
            created_at: to_offset(seen.created_at),
            finished_at,
            state_details,
            failure_reason: None,
            // Only GetJobRun shows tags: a run seen in a list is not vouched for here (the
            // API still finds the runs it recorded in its store).
            links: Default::default(),
            ours: is_own_tags(seen.tags, &self.settings.service_url),
            tags: seen
                .tags
                .map(|t| t.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
                .unwrap_or_default(),
            id,
        })
    }

    fn start_request(
        &self,
        spec: &JobSpec,
        client_token: &str,
    ) -> Result<StartRequest, BackendError> {
        let parameters = spark_submit(&self.package, &self.spark, &self.job, spec);
        let driver = SparkSubmitDriver::builder()
            .entry_point(self.package.entry_point(&self.job, spec.algorithm))
            .set_entry_point_arguments(Some(entry_point_arguments(spec, &self.job.args_key_prefix)))
            .spark_submit_parameters(parameters.to_parameter_string())
            .build()
            .map_err(|e| BackendError::Rejected(e.to_string().into()))?;
        let monitoring = MonitoringConfiguration::builder()
            .s3_monitoring_configuration(
                S3MonitoringConfiguration::builder()
                    .log_uri(self.package.log_uri())
                    .build(),
            )
            .build();
        Ok(StartRequest {
            driver: JobDriver::SparkSubmit(driver),
            overrides: ConfigurationOverrides::builder()
                .monitoring_configuration(monitoring)
                .build(),
            client_token: client_token.to_owned(),
        })
    }
}

struct StartRequest {
    driver: JobDriver,
    overrides: ConfigurationOverrides,
    client_token: String,
}

/// The spark-submit options of an EMR Serverless job: py-files, the sizes and timeouts
/// as for EMR on EKS, and the driver's environment through
/// `spark.emr-serverless.driverEnv.*`. The image belongs to the application.
pub fn spark_submit(
    package: &S3Package,
    spark: &SparkSettings,
    job: &JobSettings,
    spec: &JobSpec,
) -> SparkSubmit {
    SparkSubmit::for_cluster(package, DriverEnv::EmrServerless, spark, job, spec)
}

/// What GetJobRun and ListJobRuns both tell about a run.
struct Seen<'a> {
    id: &'a str,
    name: Option<&'a str>,
    state: &'a JobRunState,
    state_details: &'a str,
    created_at: &'a DateTime,
    updated_at: &'a DateTime,
    ended_at: Option<&'a DateTime>,
    started_at: Option<&'a DateTime>,
    execution_timeout_minutes: Option<i64>,
    tags: Option<&'a HashMap<String, String>>,
}

impl<'a> From<&'a aws_sdk_emrserverless::types::JobRun> for Seen<'a> {
    fn from(run: &'a aws_sdk_emrserverless::types::JobRun) -> Self {
        Seen {
            id: run.job_run_id(),
            name: run.name(),
            state: run.state(),
            state_details: run.state_details(),
            created_at: run.created_at(),
            updated_at: run.updated_at(),
            ended_at: run.ended_at(),
            started_at: run.started_at(),
            execution_timeout_minutes: run.execution_timeout_minutes(),
            tags: run.tags(),
        }
    }
}

impl<'a> From<&'a aws_sdk_emrserverless::types::JobRunSummary> for Seen<'a> {
    fn from(run: &'a aws_sdk_emrserverless::types::JobRunSummary) -> Self {
        Seen {
            id: run.id(),
            name: run.name(),
            state: run.state(),
            state_details: run.state_details(),
            created_at: run.created_at(),
            updated_at: run.updated_at(),
            ended_at: None,
            started_at: None,
            execution_timeout_minutes: None,
            tags: None,
        }
    }
}

/// EMR Serverless's states onto the ones Multiomix knows; the details say why a timed-out
/// run is FAILED.
fn map_state(seen: &Seen<'_>) -> Result<(JobState, Option<String>), BackendError> {
    let details = (!seen.state_details.is_empty()).then(|| seen.state_details.to_owned());
    let state = match seen.state {
        JobRunState::Submitted => JobState::Submitted,
        JobRunState::Pending | JobRunState::Scheduled | JobRunState::Queued => JobState::Pending,
        JobRunState::Running => JobState::Running,
        JobRunState::Success => JobState::Completed,
        JobRunState::Failed => JobState::Failed,
        JobRunState::Cancelling => JobState::CancelPending,
        JobRunState::Cancelled if timed_out(seen) => {
            let limit = seen
                .execution_timeout_minutes
                .map(|m| format!(" of {m} minutes"))
                .unwrap_or_default();
            let said = details
                .map(|d| format!(" (EMR Serverless: {d})"))
                .unwrap_or_default();
            return Ok((
                JobState::Failed,
                Some(format!(
                    "timed out: the job run exceeded its execution timeout{limit} and was stopped{said}"
                )),
            ));
        }
        JobRunState::Cancelled => JobState::Cancelled,
        other => {
            return Err(BackendError::Rejected(
                format!(
                    "EMR Serverless returned job run {} in an unknown state {other:?}",
                    seen.id
                )
                .into(),
            ))
        }
    };
    Ok((state, details))
}

/// Whether a cancelled run was stopped by its execution timeout rather than by a user:
/// EMR Serverless says so in the details, and the run lasted its whole timeout.
fn timed_out(seen: &Seen<'_>) -> bool {
    let details = seen.state_details.to_ascii_lowercase();
    if details.contains("timeout") || details.contains("timed out") {
        return true;
    }
    match (
        seen.execution_timeout_minutes,
        seen.started_at,
        seen.ended_at,
    ) {
        (Some(minutes), Some(started), Some(ended)) if minutes > 0 => {
            ended.secs() - started.secs() >= minutes * 60
        }
        _ => false,
    }
}

/// The EMR Serverless states a [`JobState`] stands for, for ListJobRuns' filter.
fn serverless_states(state: JobState) -> &'static [JobRunState] {
    match state {
        JobState::Submitted => &[JobRunState::Submitted],
        JobState::Pending => &[
            JobRunState::Pending,
            JobRunState::Scheduled,
            JobRunState::Queued,
        ],
        JobState::Running => &[JobRunState::Running],
        JobState::Completed => &[JobRunState::Success],
        // Timed-out runs are CANCELLED there.
        JobState::Failed => &[JobRunState::Failed, JobRunState::Cancelled],
        JobState::CancelPending => &[JobRunState::Cancelling],
        JobState::Cancelled => &[JobRunState::Cancelled],
    }
}

#[async_trait]
impl JobBackend for EmrServerlessBackend {
    fn kind(&self) -> BackendKind {
        BackendKind::EmrServerless
    }

    async fn start(&self, spec: &JobSpec, client_token: &str) -> Result<JobId, BackendError> {
        let request = self.start_request(spec, client_token)?;
        let mut call = self
            .client
            .start_job_run()
            .application_id(&self.settings.application_id)
            .execution_role_arn(&self.settings.execution_role_arn)
            .name(spec.name.as_str())
            .client_token(request.client_token)
            .job_driver(request.driver)
            .configuration_overrides(request.overrides)
            .set_execution_timeout_minutes(self.settings.execution_timeout_minutes.map(i64::from))
            .tags(MANAGED_BY_TAG, MANAGED_BY_VALUE)
            .tags(CALLBACK_HOST_TAG, &self.settings.service_url)
            .tags("algorithm", spec.algorithm.slug())
            .tags(CLIENT_TOKEN_TAG, client_token);
        if let Some(app) = app_name_tag(spec) {
            call = call.tags(APP_NAME_TAG, app);
        }
        let out = call.send().await.map_err(|e| classify("StartJobRun", e))?;
        JobId::parse(out.job_run_id()).ok_or_else(|| {
            BackendError::Rejected(
                format!(
                    "StartJobRun answered with an unusable id {:?}",
                    out.job_run_id()
                )
                .into(),
            )
        })
    }

    async fn describe(&self, id: &JobId) -> Result<JobRun, BackendError> {
        let out = self
            .client
            .get_job_run()
            .application_id(&self.settings.application_id)
            .job_run_id(id.as_str())
            .send()
            .await
            .map_err(|e| match classify("GetJobRun", e) {
                // A malformed id is an unknown job for the API.
                BackendError::Rejected(msg) if msg.contains("ValidationException") => {
                    BackendError::NotFound
                }
                other => other,
            })?;
        let run = out
            .job_run()
            .ok_or_else(|| BackendError::Rejected("GetJobRun answered no job run".into()))?;
        self.to_run(Seen::from(run))
    }

    async fn cancel(&self, id: &JobId) -> Result<(), BackendError> {
        cancel_after_reading(self, id, || async {
            self.client
                .cancel_job_run()
                .application_id(&self.settings.application_id)
                .job_run_id(id.as_str())
                .send()
                .await
                .map(|_| ())
                .map_err(|e| classify("CancelJobRun", e))
        })
        .await
    }

    /// The application's runs. ListJobRuns shows no tags, so a deployment should have an
    /// application of its own (docs/backend-emr-serverless.md says so); reads by id check
    /// the tags.
    async fn list(&self, query: &ListQuery) -> Result<JobPage, BackendError> {
        let mut states: Vec<JobRunState> = Vec::new();
        for s in &query.states {
            for state in serverless_states(*s) {
                if !states.contains(state) {
                    states.push(state.clone());
                }
            }
        }
        let out = self
            .client
            .list_job_runs()
            .application_id(&self.settings.application_id)
            .set_states((!states.is_empty()).then_some(states))
            .set_created_at_after(
                query
                    .created_after
                    .map(|t| DateTime::from_secs(t.unix_timestamp())),
            )
            .set_max_results(query.page_size.map(|n| n.min(PAGE_SIZE) as i32))
            .set_next_token(query.next_token.clone())
            .send()
            .await
            .map_err(|e| classify("ListJobRuns", e))?;
        let mut jobs = Vec::with_capacity(out.job_runs().len());
        let mut reads = 0;
        for summary in out.job_runs() {
            let Ok(run) = self.to_run(Seen::from(summary)) else {
                continue;
            };
            // A summary cannot tell a timed-out run from one a user cancelled (unless its
            // details say so); the run itself can. At most READS_PER_PAGE runs of a page
            // are read; the others show as their summary says.
            let run = if run.state == JobState::Cancelled && reads < READS_PER_PAGE {
                reads += 1;
                self.describe(&run.id).await.unwrap_or(run)
            } else {
                run
            };
            if query.states.is_empty() || query.states.contains(&run.state) {
                jobs.push(run);
            }
        }
        Ok(JobPage {
            jobs,
            next_token: out.next_token().map(str::to_owned),
        })
    }

    async fn check(&self) -> Result<(), BackendError> {
        let out = self
            .client
            .get_application()
            .application_id(&self.settings.application_id)
            .send()
            .await
            .map_err(|e| classify("GetApplication", e))?;
        let Some(application) = out.application() else {
            return Err(BackendError::Unavailable(
                "GetApplication answered no application".into(),
            ));
        };
        match application.state() {
            ApplicationState::Terminated | ApplicationState::Creating => {
                Err(BackendError::Unavailable(
                    format!(
                        "EMR Serverless application {} is {}: it cannot run jobs",
                        self.settings.application_id,
                        application.state().as_str()
                    )
                    .into(),
                ))
            }
            _ => Ok(()),
        }
    }

    async fn describe_batch(&self, ids: &[JobId]) -> Result<Described, BackendError> {
        describe_by_listing(self, ids, PAGE_SIZE).await
    }

    /// ListJobRuns shows no tags, so each run created since the submission is read with
    /// GetJobRun for its `client-token` tag. The window is the few runs started around one
    /// lost record, not the application's history.
    async fn find_submission(
        &self,
        client_token: &str,
        since: OffsetDateTime,
    ) -> Result<Submitted, BackendError> {
        let mut next_token: Option<String> = None;
        loop {
            let out = self
                .client
                .list_job_runs()
                .application_id(&self.settings.application_id)
                .created_at_after(DateTime::from_secs(since.unix_timestamp()))
                .set_next_token(next_token.take())
                .send()
                .await
                .map_err(|e| classify("ListJobRuns", e))?;
            for summary in out.job_runs() {
                let run = self
                    .client
                    .get_job_run()
                    .application_id(&self.settings.application_id)
                    .job_run_id(summary.id())
                    .send()
                    .await
                    .map_err(|e| classify("GetJobRun", e))?;
                let Some(run) = run.job_run() else { continue };
                let token = run.tags().and_then(|t| t.get(CLIENT_TOKEN_TAG));
                if token.map(String::as_str) == Some(client_token)
                    && is_own_tags(run.tags(), &self.settings.service_url)
                {
                    return Ok(Submitted::Started(self.to_run(Seen::from(run))?));
                }
            }
            match out.next_token() {
                Some(t) => next_token = Some(t.to_owned()),
                None => return Ok(Submitted::NotStarted),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn seen<'a>(
        state: &'a JobRunState,
        details: &'a str,
        at: &'a DateTime,
        timeout: Option<i64>,
        ended: Option<&'a DateTime>,
    ) -> Seen<'a> {
        Seen {
            id: "00fabc",
            name: None,
            state,
            state_details: details,
            created_at: at,
            updated_at: at,
            ended_at: ended,
            started_at: Some(at),
            execution_timeout_minutes: timeout,
            tags: None,
        }
    }

    #[test]
    fn every_emr_serverless_state_maps_onto_one_multiomix_knows() {
        let at = DateTime::from_secs(1_700_000_000);
        for (theirs, ours) in [
            (JobRunState::Submitted, JobState::Submitted),
            (JobRunState::Pending, JobState::Pending),
            (JobRunState::Scheduled, JobState::Pending),
            (JobRunState::Queued, JobState::Pending),
            (JobRunState::Running, JobState::Running),
            (JobRunState::Success, JobState::Completed),
            (JobRunState::Failed, JobState::Failed),
            (JobRunState::Cancelling, JobState::CancelPending),
            (JobRunState::Cancelled, JobState::Cancelled),
        ] {
            let (state, _) = map_state(&seen(&theirs, "", &at, None, None)).unwrap();
            assert_eq!(state, ours, "{theirs:?}");
            assert!(
                serverless_states(ours).contains(&theirs),
                "{ours} lists {theirs:?}"
            );
        }
        assert!(map_state(&seen(&JobRunState::from("EXPLODED"), "", &at, None, None)).is_err());
    }

    #[test]
    fn a_run_stopped_by_its_execution_timeout_is_failed_and_says_so() {
        let start = DateTime::from_secs(1_700_000_000);
        let end = DateTime::from_secs(1_700_000_000 + 30 * 60);
        let (state, details) = map_state(&seen(
            &JobRunState::Cancelled,
            "",
            &start,
            Some(30),
            Some(&end),
        ))
        .unwrap();
        assert_eq!(state, JobState::Failed);
        let details = details.unwrap();
        assert!(details.starts_with("timed out"), "{details}");
        assert!(details.contains("30 minutes"), "{details}");

        let (state, details) = map_state(&seen(
            &JobRunState::Cancelled,
            "Job run cancelled because it exceeded the execution timeout",
            &start,
            None,
            None,
        ))
        .unwrap();
        assert_eq!(state, JobState::Failed);
        assert!(details.unwrap().contains("exceeded the execution timeout"));

        // Cancelled by a user before its timeout: CANCELLED.
        let early = DateTime::from_secs(1_700_000_000 + 60);
        let (state, _) = map_state(&seen(
            &JobRunState::Cancelled,
            "Job run was cancelled by user",
            &start,
            Some(30),
            Some(&early),
        ))
        .unwrap();
        assert_eq!(state, JobState::Cancelled);
    }

    #[test]
    fn the_parameters_pass_the_driver_environment_the_emr_serverless_way() {
        let c = crate::config::Config::from_vars(Vec::<(String, String)>::new()).unwrap();
        let spec = JobSpec {
            name: crate::job::JobName::parse("BreastCancerBBHA").unwrap(),
            algorithm: crate::job::Algorithm::Bbha,
            arguments: vec![("app-name".into(), "exp-42-app".into())],
            progress_token: None,
        };
        let s = spark_submit(&S3Package::new("bkt"), &c.spark, &c.job, &spec).to_parameter_string();
        assert!(
            s.contains("--conf spark.emr-serverless.driverEnv.JOB_NAME=BreastCancerBBHA"),
            "{s}"
        );
        assert!(!s.contains("kubernetes"), "{s}");
    }
}
