//! The EMR on EC2 backend: one step per job on the standing cluster `EMR_CLUSTER_ID`,
//! through AddJobFlowSteps, DescribeStep, ListSteps, CancelSteps and DescribeCluster.
//!
//! A step runs `command-runner.jar` with `spark-submit --deploy-mode cluster`, every
//! argument its own item. There is no sidecar: as for EMR Serverless, the reconciler
//! reads the steps in flight every `POLL_INTERVAL`, a page of ListSteps at a time.
//!
//! Ids: EMR step ids are `s-` and upper-case letters and digits; the job id is the same
//! id in lower case (`s-2v57yi7t5nf42`). The other backends' ids have no `-`, so they
//! cannot collide, and the step id comes back by upper-casing. The cluster id is the
//! service's own setting.
//!
//! Idempotency: AddJobFlowSteps takes no client token. Each step carries a YARN tag
//! derived from the client token (`--conf spark.yarn.tags=multiomix-aws-emr,token-…`),
//! and a start first looks among the cluster's recent steps of the same name for one with
//! that tag: a repeated start, or one settling an attempt whose answer was lost, finds
//! the step already added instead of adding another. Starts with the same token are
//! serialised, so two at once add one step. AddJobFlowSteps itself is sent at most once
//! per look: the SDK does not retry it (a try that timed out may have added the step), and
//! the start's own retry, after an outage only, comes after another look.
//!
//! Errors: EMR answers InvalidRequestException both for an unknown step and for an
//! unknown cluster. A step is taken as gone only when DescribeCluster finds the cluster;
//! any other refusal of a read is the backend being unusable (503, read again later), so
//! that a mistyped `EMR_CLUSTER_ID` never gives up the jobs in flight.

use std::collections::HashMap;
use std::sync::{Arc, Mutex as StdMutex};

use async_trait::async_trait;
use aws_config::retry::RetryConfig;
use aws_sdk_emr::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_emr::operation::describe_step::DescribeStepError;
use aws_sdk_emr::types::{
    ActionOnFailure, CancelStepsRequestStatus, ClusterState, HadoopJarStepConfig, HadoopStepConfig,
    StepCancellationOption, StepConfig, StepState, StepStatus,
};
use aws_sdk_emr::Client;
use aws_smithy_types::DateTime;
use sha2::{Digest, Sha256};
use time::OffsetDateTime;
use tokio::sync::{Mutex, OnceCell};

use super::aws::{classify, sdk_config};
use super::{to_offset, MANAGED_BY_VALUE};
use crate::backend::batch::describe_by_listing;
use crate::backend::cancel_after_reading;
use crate::backend::spark::{entry_point_arguments, DriverEnv, S3Package, SparkSubmit};
use crate::backend::APP_NAME_TAG;
use crate::backend::{BackendError, Described, JobBackend, JobPage, ListQuery, Submitted};
use crate::config::{Ec2Settings, JobSettings, SparkSettings};
use crate::job::{BackendKind, JobId, JobRun, JobSpec, JobState};

/// ListSteps answers at most 50 steps a page.
const PAGE_SIZE: u32 = 50;

/// EMR's limit on the total length of a step's arguments.
pub const MAX_ARGS_CHARS: usize = 10_240;

/// How far back a start looks for a step it may already have added: a retry comes
/// within minutes, and the API keeps an Idempotency-Key for a day.
const LOOK_BACK: i64 = 24 * 3600;

/// How many pages of ListSteps a start reads at most while looking.
const LOOK_PAGES: usize = 20;

/// Tries of AddJobFlowSteps in one start, each after a look for the step.
const ADD_ATTEMPTS: u32 = 2;

/// The wait before the next try (times the tries so far): the step a timed-out try added
/// has a moment to show in ListSteps.
const ADD_RETRY_WAIT: std::time::Duration = std::time::Duration::from_millis(500);

/// Runs each job as a step on one EMR cluster on EC2.
pub struct EmrEc2Backend {
    client: Client,
    package: S3Package,
    settings: Ec2Settings,
    spark: SparkSettings,
    job: JobSettings,
    /// The cluster's log URI, read once with DescribeCluster (`None`: it has none).
    log_uri: OnceCell<Option<String>>,
    /// One lock per client token being started, so that two starts with the same token
    /// add one step, while starts with different tokens go on side by side.
    starting: StdMutex<HashMap<String, Arc<Mutex<()>>>>,
}

impl EmrEc2Backend {
    /// Builds the SDK client from the standard AWS chain, in the configured region and,
    /// when `AWS_ENDPOINT_URL` is set, against that endpoint (as for the other EMRs).
    pub async fn connect(settings: Ec2Settings, spark: SparkSettings, job: JobSettings) -> Self {
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
        settings: Ec2Settings,
        spark: SparkSettings,
        job: JobSettings,
    ) -> Self {
        EmrEc2Backend {
            client,
            package: S3Package::new(&settings.s3_bucket),
            settings,
            spark,
            job,
            log_uri: OnceCell::new(),
            starting: StdMutex::new(HashMap::new()),
        }
    }

    /// The step's arguments for `command-runner.jar`: the whole spark-submit command
    /// line, one item per word. Over EMR's 10,240 characters is `Invalid`.
    pub fn step_args(
        &self,
        spec: &JobSpec,
        client_token: &str,
    ) -> Result<Vec<String>, BackendError> {
        let mut args = vec!["spark-submit".to_owned()];
        args.extend(
            spark_submit(&self.package, &self.spark, &self.job, spec)
                .deploy_mode("cluster")
                .yarn_tags(&token_tag(client_token))
                .command(
                    self.package.entry_point(&self.job, spec.algorithm),
                    entry_point_arguments(spec, &self.job.args_key_prefix),
                ),
        );
        let total: usize = args.iter().map(|a| a.chars().count()).sum();
        if total > MAX_ARGS_CHARS {
            return Err(BackendError::Invalid(format!(
                "the job's step arguments are {total} characters long; EMR accepts at most \
                 {MAX_ARGS_CHARS}: send fewer or shorter arguments"
            )));
        }
        Ok(args)
    }

    /// Where EMR writes the step's logs: `{cluster log URI}/{cluster}/steps/{step}/`.
    async fn log_location(&self, step_id: &str) -> Option<String> {
        let uri = self
            .log_uri
            .get_or_try_init(|| async {
                let out = self
                    .client
                    .describe_cluster()
                    .cluster_id(&self.settings.cluster_id)
                    .send()
                    .await
                    .map_err(|_| ())?;
                Ok::<_, ()>(
                    out.cluster()
                        .and_then(|c| c.log_uri())
                        .map(|u| u.trim_end_matches('/').to_owned()),
                )
            })
            .await
            .ok()?
            .as_ref()?;
        Some(format!(
            "{uri}/{}/steps/{step_id}/",
            self.settings.cluster_id
        ))
    }

    async fn to_run(&self, seen: Seen<'_>) -> Result<JobRun, BackendError> {
        let id = job_id(seen.id).ok_or_else(|| {
            BackendError::Rejected(format!("EMR returned an unusable step id {:?}", seen.id).into())
        })?;
        let (state, state_details) = map_state(seen.id, seen.status)?;
        let timeline = seen.status.and_then(|s| s.timeline());
        let created = timeline
            .and_then(|t| t.creation_date_time())
            .copied()
            .unwrap_or_else(|| DateTime::from_secs(0));
        let finished_at = state.is_final().then(|| {
            // A final state always carries a finishedAt: Multiomix computes the run time
            // from it.
            let end = timeline
                .and_then(|t| t.end_date_time().or(t.start_date_time()))
                .copied()
                .unwrap_or(created);
            to_offset(&end)
        });
        Ok(JobRun {
            log_location: self.log_location(seen.id).await,
            name: seen.name.unwrap_or_default().to_owned(),
            state,
            created_at: to_offset(&created),
            finished_at,
            state_details,
            failure_reason: None,
            // Steps carry no tags; the service marks its own in their arguments. The mark
            // names this service, not the deployment: give each deployment its own cluster
            // or accept that deployments sharing one can read each other's steps. The
            // app name, which the other backends keep in a tag, is read from the step's
            // own arguments, so that a step adopted after a lost store keeps it.
            links: Default::default(),
            ours: seen.ours,
            tags: seen
                .app_name
                .map(|app| [(APP_NAME_TAG.to_owned(), app)].into())
                .unwrap_or_default(),
            id,
        })
    }

    /// A step this service added under this client token (with this name, when given)
    /// among the steps created since `since`.
    async fn find_started(
        &self,
        name: Option<&str>,
        client_token: &str,
        since: DateTime,
    ) -> Result<Option<String>, BackendError> {
        let tag = format!("spark.yarn.tags={}", token_tag(client_token));
        let mut marker = None;
        for _ in 0..LOOK_PAGES {
            let out = self
                .client
                .list_steps()
                .cluster_id(&self.settings.cluster_id)
                .set_marker(marker)
                .send()
                .await
                .map_err(|e| classify("ListSteps", e))?;
            let mut older = false;
            for step in out.steps() {
                let args = step
                    .config()
                    .map(HadoopStepConfig::args)
                    .unwrap_or_default();
                if name.map_or(true, |n| step.name() == Some(n)) && args.contains(&tag) {
                    return Ok(step.id().map(str::to_owned));
                }
                let created = step
                    .status()
                    .and_then(|s| s.timeline())
                    .and_then(|t| t.creation_date_time());
                older |= created.is_some_and(|c| c.secs() < since.secs());
            }
            match out.marker() {
                // Steps come newest first: past the look-back, stop.
                Some(m) if !older => marker = Some(m.to_owned()),
                _ => break,
            }
        }
        Ok(None)
    }
    /// What a failed DescribeStep means. EMR answers InvalidRequestException both for a
    /// step id it does not know and for a cluster id it does not know, so the step is gone
    /// (`NotFound`) only when the cluster is there: DescribeCluster of `EMR_CLUSTER_ID`
    /// answers. Anything else, that check's failure included, is [`unusable`].
    async fn step_error<R: std::fmt::Debug + Send + Sync + 'static>(
        &self,
        err: SdkError<DescribeStepError, R>,
    ) -> BackendError {
        let invalid_request = err.code() == Some("InvalidRequestException");
        let err = unusable("DescribeStep", classify("DescribeStep", err));
        if !invalid_request {
            return err;
        }
        match self
            .client
            .describe_cluster()
            .cluster_id(&self.settings.cluster_id)
            .send()
            .await
        {
            Ok(out)
                if out.cluster().and_then(|c| c.id())
                    == Some(self.settings.cluster_id.as_str()) =>
            {
                BackendError::NotFound
            }
            Ok(_) => err,
            Err(e) => unusable("DescribeCluster", classify("DescribeCluster", e)),
        }
    }

    /// CancelSteps with SEND_INTERRUPT: Ok when EMR took it, a `Conflict` with EMR's reason
    /// when it refused (a running step on releases before 5.28, for one).
    async fn cancel_step(&self, id: &JobId) -> Result<(), BackendError> {
        let step_id = step_id(id).ok_or(BackendError::NotFound)?;
        let out = self
            .client
            .cancel_steps()
            .cluster_id(&self.settings.cluster_id)
            .step_ids(&step_id)
            .step_cancellation_option(StepCancellationOption::SendInterrupt)
            .send()
            .await
            .map_err(|e| classify("CancelSteps", e))?;
        let info = out
            .cancel_steps_info_list()
            .iter()
            .find(|i| i.step_id() == Some(step_id.as_str()));
        match info.and_then(|i| i.status()) {
            Some(CancelStepsRequestStatus::Submitted) => Ok(()),
            Some(CancelStepsRequestStatus::Failed) => {
                let reason = info.and_then(|i| i.reason()).unwrap_or("no reason given");
                Err(BackendError::Conflict(format!(
                    "EMR refused to cancel job {id}: {reason}"
                )))
            }
            other => Err(BackendError::Rejected(
                format!("CancelSteps answered {other:?} for step {step_id}").into(),
            )),
        }
    }

    /// The step this client token started, found by ListSteps, or a new one, added at
    /// most once by this call. AddJobFlowSteps takes no client token, so a try that timed
    /// out may have added the step: the SDK does not retry it (the per-operation override
    /// below), and before each retry of this loop the step is looked for first.
    async fn add_step_once(
        &self,
        spec: &JobSpec,
        client_token: &str,
        args: Vec<String>,
    ) -> Result<JobId, BackendError> {
        let name = spec.name.as_str();
        let since = DateTime::from_secs(now_secs() - LOOK_BACK);
        let mut attempt = 1;
        let step = loop {
            if let Some(step) = self.find_started(Some(name), client_token, since).await? {
                break step;
            }
            match self.add_step(name, args.clone()).await {
                Ok(step) => break step,
                // A refusal added nothing; only an outage (a timeout, a lost connection,
                // throttling, a 5xx) is tried again, and only after the look above.
                Err(BackendError::Unavailable(why)) if attempt < ADD_ATTEMPTS => {
                    tracing::warn!(attempt, error = %why, "AddJobFlowSteps failed; looking for the step before trying again");
                    tokio::time::sleep(ADD_RETRY_WAIT * attempt).await;
                    attempt += 1;
                }
                Err(BackendError::Unavailable(why)) => {
                    // The last try may have added it all the same: one more look.
                    match self.find_started(Some(name), client_token, since).await {
                        Ok(Some(step)) => break step,
                        _ => return Err(BackendError::Unavailable(why)),
                    }
                }
                Err(other) => return Err(other),
            }
        };
        job_id(&step).ok_or_else(|| {
            BackendError::Rejected(
                format!("AddJobFlowSteps answered an unusable id {step:?}").into(),
            )
        })
    }

    /// One AddJobFlowSteps, one try: the SDK's own retries are off for this call.
    async fn add_step(&self, name: &str, args: Vec<String>) -> Result<String, BackendError> {
        let config = StepConfig::builder()
            .name(name)
            .action_on_failure(ActionOnFailure::from(
                self.settings.action_on_failure.as_str(),
            ))
            .hadoop_jar_step(
                HadoopJarStepConfig::builder()
                    .jar("command-runner.jar")
                    .set_args(Some(args))
                    .build(),
            )
            .build();
        let out = self
            .client
            .add_job_flow_steps()
            .job_flow_id(&self.settings.cluster_id)
            .steps(config)
            .customize()
            .config_override(
                aws_sdk_emr::config::Builder::default().retry_config(RetryConfig::disabled()),
            )
            .send()
            .await
            .map_err(|e| classify("AddJobFlowSteps", e))?;
        out.step_ids()
            .first()
            .cloned()
            .ok_or_else(|| BackendError::Rejected("AddJobFlowSteps answered no step id".into()))
    }
}

fn now_secs() -> i64 {
    time::OffsetDateTime::now_utc().unix_timestamp()
}

/// The YARN tags of a step: this service's name and a digest of the client token.
pub fn token_tag(client_token: &str) -> String {
    let digest = Sha256::digest(client_token.as_bytes());
    let hex: String = digest[..16].iter().map(|b| format!("{b:02x}")).collect();
    format!("{MANAGED_BY_VALUE},token-{hex}")
}

/// `s-ABC123` → `s-abc123`; anything else is no step id.
pub fn job_id(step_id: &str) -> Option<JobId> {
    let rest = step_id.strip_prefix("s-")?;
    let ok = !rest.is_empty()
        && rest
            .bytes()
            .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit());
    if !ok {
        return None;
    }
    JobId::parse(&step_id.to_ascii_lowercase())
}

/// `s-abc123` → `s-ABC123`; an id of another backend is no step of ours.
pub fn step_id(id: &JobId) -> Option<String> {
    let rest = id.as_str().strip_prefix("s-")?;
    let ok = !rest.is_empty()
        && rest
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit());
    ok.then(|| format!("s-{}", rest.to_ascii_uppercase()))
}

/// The spark-submit options of a step: py-files, the sizes and timeouts as for the
/// other clusters, and the driver's environment through `spark.yarn.appMasterEnv.*`.
pub fn spark_submit(
    package: &S3Package,
    spark: &SparkSettings,
    job: &JobSettings,
    spec: &JobSpec,
) -> SparkSubmit {
    SparkSubmit::for_cluster(package, DriverEnv::Yarn, spark, job, spec)
}

/// What DescribeStep and ListSteps both tell about a step.
struct Seen<'a> {
    id: &'a str,
    name: Option<&'a str>,
    status: Option<&'a StepStatus>,
    /// Whether the step's arguments carry this service's `spark.yarn.tags`.
    ours: bool,
    /// The job's `app-name` argument, read back from the step's arguments.
    app_name: Option<String>,
}

/// The value that follows `{prefix}app-name` in a step's arguments, when it can name a
/// folder.
fn app_name_in(args: &[String], prefix: &str) -> Option<String> {
    let flag = format!("{prefix}app-name");
    args.windows(2)
        .find(|pair| pair[0] == flag)
        .map(|pair| pair[1].clone())
        .filter(|app| crate::job::is_valid_app_name(app))
}

/// Whether a step's arguments mark it as added by this service.
fn added_by_us(args: &[String]) -> bool {
    let mark = format!("spark.yarn.tags={MANAGED_BY_VALUE},token-");
    args.iter().any(|a| a.starts_with(&mark))
}

/// EMR's step states onto the ones Multiomix knows; a failure says why and where its
/// log is.
fn map_state(
    id: &str,
    status: Option<&StepStatus>,
) -> Result<(JobState, Option<String>), BackendError> {
    let Some(state) = status.and_then(|s| s.state()) else {
        return Err(BackendError::Rejected(
            format!("EMR returned step {id} without a state").into(),
        ));
    };
    let reason = status
        .and_then(|s| s.state_change_reason())
        .and_then(|r| r.message())
        .filter(|m| !m.is_empty())
        .map(str::to_owned);
    Ok(match state {
        StepState::Pending => (JobState::Pending, None),
        StepState::Running => (JobState::Running, None),
        StepState::Completed => (JobState::Completed, None),
        StepState::CancelPending => (JobState::CancelPending, reason),
        StepState::Cancelled => (JobState::Cancelled, reason),
        StepState::Failed | StepState::Interrupted => {
            let failure = status.and_then(|s| s.failure_details());
            let mut parts = Vec::new();
            if let Some(r) = failure.and_then(|f| f.reason()).filter(|r| !r.is_empty()) {
                parts.push(r.to_owned());
            }
            if let Some(m) = failure.and_then(|f| f.message()).filter(|m| !m.is_empty()) {
                parts.push(m.to_owned());
            }
            if let Some(l) = failure.and_then(|f| f.log_file()).filter(|l| !l.is_empty()) {
                parts.push(format!("log: {l}"));
            }
            if parts.is_empty() {
                parts.extend(reason);
            }
            if *state == StepState::Interrupted {
                parts.insert(0, "the step was interrupted".into());
            }
            let details = (!parts.is_empty()).then(|| parts.join("; "));
            (JobState::Failed, details)
        }
        other => {
            return Err(BackendError::Rejected(
                format!("EMR returned step {id} in an unknown state {other:?}").into(),
            ))
        }
    })
}

/// The EMR step states a [`JobState`] stands for, for ListSteps' filter.
fn step_states(state: JobState) -> &'static [StepState] {
    match state {
        JobState::Submitted => &[],
        JobState::Pending => &[StepState::Pending],
        JobState::Running => &[StepState::Running],
        JobState::Completed => &[StepState::Completed],
        JobState::Failed => &[StepState::Failed, StepState::Interrupted],
        JobState::CancelPending => &[StepState::CancelPending],
        JobState::Cancelled => &[StepState::Cancelled],
    }
}

/// An error of a call that reads this service's steps, as the callers must take it: only
/// [`EmrEc2Backend::step_error`] may say that a step is gone. Anything else EMR refuses
/// (an unknown or replaced cluster, a validation error, access denied) is the backend
/// being unusable for now: a 503 to callers, read again by the reconciler, and the jobs
/// left as they were.
fn unusable(operation: &str, err: BackendError) -> BackendError {
    match err {
        BackendError::NotFound => BackendError::Unavailable(
            format!("{operation}: EMR answered 'not found' for the cluster; check EMR_CLUSTER_ID")
                .into(),
        ),
        // The cause, with its source, stays for the log.
        BackendError::Rejected(cause) => BackendError::Unavailable(cause),
        BackendError::Invalid(m) | BackendError::Conflict(m) => BackendError::Unavailable(m.into()),
        unavailable @ BackendError::Unavailable(_) => unavailable,
    }
}

#[async_trait]
impl JobBackend for EmrEc2Backend {
    fn kind(&self) -> BackendKind {
        BackendKind::EmrEc2
    }

    async fn start(&self, spec: &JobSpec, client_token: &str) -> Result<JobId, BackendError> {
        let args = self.step_args(spec, client_token)?;
        let lock = self
            .starting
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .entry(client_token.to_owned())
            .or_default()
            .clone();
        let result = {
            let _same_token_one_at_a_time = lock.lock().await;
            self.add_step_once(spec, client_token, args).await
        };
        // The last start of this token forgets its lock.
        let mut locks = self.starting.lock().unwrap_or_else(|p| p.into_inner());
        if Arc::strong_count(&lock) == 2 {
            locks.remove(client_token);
        }
        drop(locks);
        result
    }

    async fn describe(&self, id: &JobId) -> Result<JobRun, BackendError> {
        let step_id = step_id(id).ok_or(BackendError::NotFound)?;
        let out = self
            .client
            .describe_step()
            .cluster_id(&self.settings.cluster_id)
            .step_id(&step_id)
            .send()
            .await;
        let out = match out {
            Ok(out) => out,
            Err(e) => return Err(self.step_error(e).await),
        };
        let step = out.step().ok_or(BackendError::NotFound)?;
        if step.id() != Some(step_id.as_str()) {
            return Err(BackendError::NotFound);
        }
        let args = step
            .config()
            .map(HadoopStepConfig::args)
            .unwrap_or_default();
        self.to_run(Seen {
            id: &step_id,
            name: step.name(),
            status: step.status(),
            ours: added_by_us(args),
            app_name: app_name_in(args, &self.job.args_key_prefix),
        })
        .await
    }

    async fn cancel(&self, id: &JobId) -> Result<(), BackendError> {
        cancel_after_reading(self, id, || self.cancel_step(id)).await
    }

    /// This service's steps on the cluster (the cluster may run others' steps too: only
    /// those tagged by this service are listed).
    async fn list(&self, query: &ListQuery) -> Result<JobPage, BackendError> {
        let mut states: Vec<StepState> = Vec::new();
        for s in &query.states {
            for state in step_states(*s) {
                if !states.contains(state) {
                    states.push(state.clone());
                }
            }
        }
        if !query.states.is_empty() && states.is_empty() {
            return Ok(JobPage::default());
        }
        let out = self
            .client
            .list_steps()
            .cluster_id(&self.settings.cluster_id)
            .set_step_states((!states.is_empty()).then_some(states))
            .set_marker(query.next_token.clone())
            .send()
            .await
            .map_err(|e| unusable("ListSteps", classify("ListSteps", e)))?;
        let mut jobs = Vec::with_capacity(out.steps().len());
        let mut past_the_window = false;
        for step in out.steps() {
            let created = step
                .status()
                .and_then(|s| s.timeline())
                .and_then(|t| t.creation_date_time());
            if let (Some(after), Some(created)) = (query.created_after, created) {
                past_the_window |= created.secs() < after.unix_timestamp();
            }
            let args = step
                .config()
                .map(HadoopStepConfig::args)
                .unwrap_or_default();
            if !added_by_us(args) {
                continue;
            }
            let Some(id) = step.id() else { continue };
            let Ok(run) = self
                .to_run(Seen {
                    id,
                    name: step.name(),
                    status: step.status(),
                    ours: true,
                    app_name: app_name_in(args, &self.job.args_key_prefix),
                })
                .await
            else {
                continue;
            };
            if query.created_after.is_some_and(|t| run.created_at < t) {
                continue;
            }
            if query.states.is_empty() || query.states.contains(&run.state) {
                jobs.push(run);
            }
        }
        Ok(JobPage {
            jobs,
            // Steps come newest first: once one is older than asked for, so are the rest.
            next_token: out.marker().filter(|_| !past_the_window).map(str::to_owned),
        })
    }

    async fn check(&self) -> Result<(), BackendError> {
        let out = self
            .client
            .describe_cluster()
            .cluster_id(&self.settings.cluster_id)
            .send()
            .await
            .map_err(|e| classify("DescribeCluster", e))?;
        let status = out.cluster().and_then(|c| c.status());
        match status.and_then(|s| s.state()) {
            Some(ClusterState::Waiting | ClusterState::Running) => Ok(()),
            state => {
                let reason = status
                    .and_then(|s| s.state_change_reason())
                    .map(|r| {
                        format!(
                            " ({}: {})",
                            r.code().map(|c| c.as_str()).unwrap_or("no code"),
                            r.message().unwrap_or("no message")
                        )
                    })
                    .unwrap_or_default();
                Err(BackendError::Unavailable(
                    format!(
                    "EMR cluster {} is {}{reason}: steps run only on a WAITING or RUNNING cluster",
                    self.settings.cluster_id,
                    state.map(|s| s.as_str()).unwrap_or("in no known state"),
                )
                    .into(),
                ))
            }
        }
    }

    async fn describe_batch(&self, ids: &[JobId]) -> Result<Described, BackendError> {
        describe_by_listing(self, ids, PAGE_SIZE).await
    }

    /// The step whose arguments carry this client token's tag, among the steps created
    /// since `since` (the same look-up `start` makes before adding a step).
    async fn find_submission(
        &self,
        client_token: &str,
        since: OffsetDateTime,
    ) -> Result<Submitted, BackendError> {
        let since = DateTime::from_secs(since.unix_timestamp());
        match self.find_started(None, client_token, since).await? {
            Some(step) => {
                let id = job_id(&step).ok_or_else(|| {
                    BackendError::Rejected(
                        format!("EMR returned an unusable step id {step:?}").into(),
                    )
                })?;
                Ok(Submitted::Started(self.describe(&id).await?))
            }
            None => Ok(Submitted::NotStarted),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_sdk_emr::types::{FailureDetails, StepStateChangeReason};

    #[test]
    fn step_ids_and_job_ids_round_trip_and_nothing_else_is_a_step() {
        let id = job_id("s-2V57YI7T5NF42").unwrap();
        assert_eq!(id.as_str(), "s-2v57yi7t5nf42");
        assert_eq!(step_id(&id).as_deref(), Some("s-2V57YI7T5NF42"));
        assert!(job_id("j-2V57YI7T5NF42").is_none());
        assert!(job_id("s-").is_none());
        assert!(job_id("s-abc").is_none());
        // EMR on EKS and EMR Serverless ids have no '-': never a step.
        for other in ["0000000000000000000", "00fabcdefghijklm", "s2v57yi7t5nf42"] {
            assert!(step_id(&JobId::parse(other).unwrap()).is_none(), "{other}");
        }
    }

    proptest::proptest! {
        /// Any step id EMR can give becomes a job id that needs no escaping in a URL path
        /// or in the notice's path, and comes back as the same step id.
        #[test]
        fn any_step_id_round_trips_through_a_url_safe_job_id(suffix in "[A-Z0-9]{1,62}") {
            let step = format!("s-{suffix}");
            let id = job_id(&step).unwrap();
            proptest::prop_assert!(id.as_str().len() <= 64);
            proptest::prop_assert!(id
                .as_str()
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-'));
            let parsed = JobId::parse(id.as_str());
            proptest::prop_assert_eq!(parsed.as_ref(), Some(&id));
            proptest::prop_assert_eq!(step_id(&id), Some(step));
        }
    }

    #[test]
    fn every_step_state_maps_onto_one_multiomix_knows() {
        for (theirs, ours) in [
            (StepState::Pending, JobState::Pending),
            (StepState::Running, JobState::Running),
            (StepState::Completed, JobState::Completed),
            (StepState::CancelPending, JobState::CancelPending),
            (StepState::Cancelled, JobState::Cancelled),
            (StepState::Failed, JobState::Failed),
            (StepState::Interrupted, JobState::Failed),
        ] {
            let status = StepStatus::builder().state(theirs.clone()).build();
            let (state, _) = map_state("s-1", Some(&status)).unwrap();
            assert_eq!(state, ours, "{theirs:?}");
            assert!(
                step_states(ours).contains(&theirs),
                "{ours} lists {theirs:?}"
            );
        }
        let odd = StepStatus::builder()
            .state(StepState::from("EXPLODED"))
            .build();
        assert!(map_state("s-1", Some(&odd)).is_err());
    }

    #[test]
    fn a_failure_gives_its_reason_and_log_file() {
        let status = StepStatus::builder()
            .state(StepState::Failed)
            .failure_details(
                FailureDetails::builder()
                    .reason("Unknown error")
                    .log_file("s3://bkt/logs/j-1/steps/s-1/stderr.gz")
                    .build(),
            )
            .build();
        let (state, details) = map_state("s-1", Some(&status)).unwrap();
        assert_eq!(state, JobState::Failed);
        let details = details.unwrap();
        assert!(details.contains("Unknown error"), "{details}");
        assert!(
            details.contains("s3://bkt/logs/j-1/steps/s-1/stderr.gz"),
            "{details}"
        );

        let status = StepStatus::builder()
            .state(StepState::Interrupted)
            .state_change_reason(
                StepStateChangeReason::builder()
                    .message("node lost")
                    .build(),
            )
            .build();
        let details = map_state("s-1", Some(&status)).unwrap().1.unwrap();
        assert!(
            details.contains("interrupted") && details.contains("node lost"),
            "{details}"
        );
    }

    #[test]
    fn the_app_name_is_read_back_from_the_steps_arguments() {
        let args: Vec<String> = ["spark-submit", "--conf", "x=1", "s3://b/scripts/main.py"]
            .into_iter()
            .chain(["--app-name", "BBHA_42", "--n-stars", "15"])
            .map(str::to_owned)
            .collect();
        assert_eq!(app_name_in(&args, "--").as_deref(), Some("BBHA_42"));
        assert_eq!(
            app_name_in(&args, "-"),
            None,
            "another prefix, another flag"
        );
        let unsafe_name: Vec<String> = ["--app-name", "../x"].map(str::to_owned).into();
        assert_eq!(app_name_in(&unsafe_name, "--"), None);
        let last: Vec<String> = ["--app-name"].map(str::to_owned).into();
        assert_eq!(app_name_in(&last, "--"), None, "a flag without its value");
    }

    #[test]
    fn the_token_tag_is_stable_and_tells_tokens_apart() {
        assert_eq!(token_tag("k1"), token_tag("k1"));
        assert_ne!(token_tag("k1"), token_tag("k2"));
        assert!(token_tag("k1").starts_with("multiomix-aws-emr,token-"));
        assert!(!token_tag("secret-key").contains("secret"));
    }
}
