//! The EMR on EKS backend: StartJobRun, DescribeJobRun, CancelJobRun, ListJobRuns and
//! DescribeVirtualCluster through the AWS SDK.

use std::collections::HashMap;

use async_trait::async_trait;
use aws_sdk_emrcontainers::types::{
    ConfigurationOverrides, JobDriver, JobRunState, MonitoringConfiguration,
    S3MonitoringConfiguration, SparkSubmitJobDriver,
};
use aws_sdk_emrcontainers::Client;
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
use crate::config::{EmrSettings, JobSettings, SparkSettings};
use crate::job::{BackendKind, JobId, JobRun, JobSpec, JobState};

/// The length of an EMR job run id, e.g. `000000031kd8aj0vtn3`.
pub const EMR_JOB_ID_CHARS: usize = 19;

/// Runs each job as an EMR on EKS job run in `EMR_VIRTUAL_CLUSTER_ID`; the driver pod's
/// sidecar calls back when it ends.
pub struct EmrEksBackend {
    client: Client,
    package: S3Package,
    emr: EmrSettings,
    spark: SparkSettings,
    job: JobSettings,
}

impl EmrEksBackend {
    /// Builds the SDK client from the standard AWS chain (environment, profile, IRSA web
    /// identity, instance metadata), in the configured region and, when
    /// `AWS_ENDPOINT_URL` is set, against that endpoint.
    pub async fn connect(emr: EmrSettings, spark: SparkSettings, job: JobSettings) -> Self {
        let sdk = sdk_config(&emr.region, emr.endpoint_url.as_deref(), emr.call_timeout).await;
        Self::with_client(Client::new(&sdk), emr, spark, job)
    }

    /// Uses a client built elsewhere (tests give one with fixed credentials).
    pub fn with_client(
        client: Client,
        emr: EmrSettings,
        spark: SparkSettings,
        job: JobSettings,
    ) -> Self {
        EmrEksBackend {
            client,
            package: S3Package::new(&emr.s3_bucket),
            emr,
            spark,
            job,
        }
    }

    fn is_own(&self, tags: Option<&HashMap<String, String>>) -> bool {
        is_own_tags(tags, &self.emr.service_url)
    }

    fn to_run(&self, run: &aws_sdk_emrcontainers::types::JobRun) -> Result<JobRun, BackendError> {
        let id = run
            .id()
            .and_then(JobId::parse)
            .ok_or_else(|| BackendError::Rejected("EMR returned a job run without an id".into()))?;
        let state = run
            .state()
            .and_then(|s| JobState::parse(s.as_str()))
            .ok_or_else(|| {
                BackendError::Rejected(
                    format!(
                        "EMR returned job {id} in an unknown state {:?}",
                        run.state()
                    )
                    .into(),
                )
            })?;
        let log_location = Some(format!(
            "{}/{}/jobs/{id}/",
            self.package.log_uri(),
            self.emr.virtual_cluster_id
        ));
        Ok(JobRun {
            name: run.name().unwrap_or_default().to_owned(),
            state,
            created_at: run
                .created_at()
                .map(to_offset)
                .unwrap_or(OffsetDateTime::UNIX_EPOCH),
            finished_at: run.finished_at().map(to_offset),
            state_details: run.state_details().map(str::to_owned),
            failure_reason: run.failure_reason().map(|r| r.as_str().to_owned()),
            log_location,
            tags: run
                .tags()
                .map(|t| t.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
                .unwrap_or_default(),
            links: Default::default(),
            ours: self.is_own(run.tags()),
            id,
        })
    }
}

/// The annotation of the driver pod that carries the job's app name with
/// `DATA_STAGING=s3`. Spark's `driverEnv` reaches only the driver container, so the pod
/// template's init container and sidecar read this instead, through the downward API
/// (`metadata.annotations['multiomix-aws-emr/app-name']`).
pub const APP_NAME_ANNOTATION: &str = "multiomix-aws-emr/app-name";

/// The spark-submit options of an EMR on EKS job: the contract's, in its order, then the
/// Python workers' memory only when `EMR_EXECUTOR_MEMORY_OVERHEAD` or
/// `EMR_EXECUTOR_PYSPARK_MEMORY` is set (so that by default the list is exactly the
/// contract's). A conf whose setting is unset (image, pod templates) is left out rather
/// than sent empty.
/// With `DATA_STAGING=s3` two confs follow them: the driver's `PROGRESS_PATH` (the S3
/// results prefix, where the job's progress reports go) and the driver pod's app-name
/// annotation. Last comes the job's `PROGRESS_TOKEN`.
pub fn spark_submit(
    emr: &EmrSettings,
    spark: &SparkSettings,
    job: &JobSettings,
    spec: &JobSpec,
) -> SparkSubmit {
    let package = S3Package::new(&emr.s3_bucket);
    let submit = SparkSubmit::with_py_files(package.py_files(job, spec.algorithm))
        .pod_templates(
            emr.driver_template.as_deref().map(|t| package.template(t)),
            emr.executor_template
                .as_deref()
                .map(|t| package.template(t)),
        )
        .container_image(emr.image.as_deref())
        .sizes(spark)
        .driver_env(DriverEnv::Kubernetes, job, spec)
        .python_memory_when_set(spark);
    let submit = match &emr.progress_path {
        // Checked at start-up: an s3:// URL, no spaces.
        Some(path) => submit.driver_env_var(DriverEnv::Kubernetes, "PROGRESS_PATH", path),
        None => submit,
    };
    let submit = match app_name_tag(spec) {
        // Staging checked the app name at POST: one plain folder name, nothing that could
        // end the space-separated parameter.
        Some(app) if emr.annotate_app_name => submit.driver_annotation(APP_NAME_ANNOTATION, &app),
        _ => submit,
    };
    submit.progress_token(DriverEnv::Kubernetes, spec)
}

#[async_trait]
impl JobBackend for EmrEksBackend {
    fn kind(&self) -> BackendKind {
        BackendKind::Emr
    }

    /// The driver pod's sidecar calls `PATCH /job/{id}` when the job ends.
    fn tells_when_jobs_end(&self) -> bool {
        true
    }

    async fn start(&self, spec: &JobSpec, client_token: &str) -> Result<JobId, BackendError> {
        let parameters = spark_submit(&self.emr, &self.spark, &self.job, spec);
        let driver = SparkSubmitJobDriver::builder()
            .entry_point(self.package.entry_point(&self.job, spec.algorithm))
            .set_entry_point_arguments(Some(entry_point_arguments(spec, &self.job.args_key_prefix)))
            .spark_submit_parameters(parameters.to_parameter_string())
            .build()
            .map_err(|e| BackendError::Rejected(e.to_string().into()))?;
        let monitoring = S3MonitoringConfiguration::builder()
            .log_uri(self.package.log_uri())
            .build()
            .map_err(|e| BackendError::Rejected(e.to_string().into()))?;
        let mut call = self
            .client
            .start_job_run()
            .name(spec.name.as_str())
            .virtual_cluster_id(&self.emr.virtual_cluster_id)
            .execution_role_arn(&self.emr.execution_role_arn)
            .release_label(&self.emr.release_label)
            .client_token(client_token)
            .job_driver(JobDriver::builder().spark_submit_job_driver(driver).build())
            .configuration_overrides(
                ConfigurationOverrides::builder()
                    .monitoring_configuration(
                        MonitoringConfiguration::builder()
                            .s3_monitoring_configuration(monitoring)
                            .build(),
                    )
                    .build(),
            )
            .tags(MANAGED_BY_TAG, MANAGED_BY_VALUE)
            .tags(CALLBACK_HOST_TAG, &self.emr.service_url)
            .tags("algorithm", spec.algorithm.slug())
            .tags(CLIENT_TOKEN_TAG, client_token);
        if let Some(app) = app_name_tag(spec) {
            call = call.tags(APP_NAME_TAG, app);
        }
        let out = call.send().await.map_err(|e| classify("StartJobRun", e))?;
        out.id().and_then(JobId::parse).ok_or_else(|| {
            BackendError::Rejected(
                format!("StartJobRun answered with an unusable id {:?}", out.id()).into(),
            )
        })
    }

    async fn describe(&self, id: &JobId) -> Result<JobRun, BackendError> {
        // Every EMR job run id has this length; EMR answers others with a validation
        // error, but for the API they are simply unknown jobs.
        if id.as_str().len() != EMR_JOB_ID_CHARS {
            return Err(BackendError::NotFound);
        }
        let out = self
            .client
            .describe_job_run()
            .virtual_cluster_id(&self.emr.virtual_cluster_id)
            .id(id.as_str())
            .send()
            .await
            .map_err(|e| classify("DescribeJobRun", e))?;
        let run = out
            .job_run()
            .ok_or_else(|| BackendError::Rejected("DescribeJobRun answered no job run".into()))?;
        self.to_run(run)
    }

    async fn cancel(&self, id: &JobId) -> Result<(), BackendError> {
        cancel_after_reading(self, id, || async {
            self.client
                .cancel_job_run()
                .virtual_cluster_id(&self.emr.virtual_cluster_id)
                .id(id.as_str())
                .send()
                .await
                .map(|_| ())
                .map_err(|e| classify("CancelJobRun", e))
        })
        .await
    }

    async fn list(&self, query: &ListQuery) -> Result<JobPage, BackendError> {
        let states = (!query.states.is_empty()).then(|| {
            query
                .states
                .iter()
                .map(|s| JobRunState::from(s.as_str()))
                .collect()
        });
        let out = self
            .client
            .list_job_runs()
            .virtual_cluster_id(&self.emr.virtual_cluster_id)
            .set_states(states)
            .set_created_after(
                query
                    .created_after
                    .map(|t| DateTime::from_secs(t.unix_timestamp())),
            )
            .set_max_results(query.page_size.map(|n| n.min(50) as i32))
            .set_next_token(query.next_token.clone())
            .send()
            .await
            .map_err(|e| classify("ListJobRuns", e))?;
        let jobs = out
            .job_runs()
            .iter()
            .filter(|run| self.is_own(run.tags()))
            .filter_map(|run| self.to_run(run).ok())
            .collect();
        Ok(JobPage {
            jobs,
            next_token: out.next_token().map(str::to_owned),
        })
    }

    async fn describe_batch(&self, ids: &[JobId]) -> Result<Described, BackendError> {
        // ListJobRuns answers at most 50 runs a page.
        describe_by_listing(self, ids, 50).await
    }

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
                .virtual_cluster_id(&self.emr.virtual_cluster_id)
                .created_after(DateTime::from_secs(since.unix_timestamp()))
                .set_next_token(next_token.take())
                .send()
                .await
                .map_err(|e| classify("ListJobRuns", e))?;
            for run in out.job_runs() {
                let token = run.tags().and_then(|t| t.get(CLIENT_TOKEN_TAG));
                if token.map(String::as_str) == Some(client_token) && self.is_own(run.tags()) {
                    return Ok(Submitted::Started(self.to_run(run)?));
                }
            }
            match out.next_token() {
                Some(t) => next_token = Some(t.to_owned()),
                None => return Ok(Submitted::NotStarted),
            }
        }
    }

    async fn check(&self) -> Result<(), BackendError> {
        self.client
            .describe_virtual_cluster()
            .id(&self.emr.virtual_cluster_id)
            .send()
            .await
            .map_err(|e| classify("DescribeVirtualCluster", e))?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;
    use crate::job::{Algorithm, JobName};

    fn config(extra: &[(&str, &str)]) -> Config {
        let mut vars: Vec<(String, String)> = [
            ("EMR_VIRTUAL_CLUSTER_ID", "vc1"),
            ("EMR_EXECUTION_ROLE_ARN", "arn:aws:iam::1:role/r"),
            ("EMR_S3_BUCKET", "bkt"),
        ]
        .iter()
        .chain(extra)
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        vars.sort();
        Config::from_vars(vars).unwrap()
    }

    fn spec(algorithm: Algorithm) -> JobSpec {
        JobSpec {
            name: JobName::parse("BreastCancerBBHA").unwrap(),
            algorithm,
            arguments: vec![("app-name".into(), "exp-42-app".into())],
            progress_token: None,
        }
    }

    #[test]
    fn parameters_with_every_setting_match_the_contract_line_for_line() {
        let c = config(&[
            ("EMR_IMAGE", "123.dkr.ecr/img:1"),
            ("EMR_DRIVER_TEMPLATE", "driver.yaml"),
            ("EMR_EXECUTOR_TEMPLATE", "executor.yaml"),
            ("ALGO_BBHA_PY_FILES", "bbha.zip"),
        ]);
        let s = spark_submit(
            c.backend.emr_eks().unwrap(),
            &c.spark,
            &c.job,
            &spec(Algorithm::Bbha),
        );
        let expected = [
            "--py-files s3://bkt/py-files/bbha.zip",
            "--conf spark.kubernetes.driver.podTemplateFile=s3://bkt/templates/driver.yaml",
            "--conf spark.kubernetes.executor.podTemplateFile=s3://bkt/templates/executor.yaml",
            "--conf spark.kubernetes.container.image=123.dkr.ecr/img:1",
            "--conf spark.executor.cores=1",
            "--conf spark.executor.memory=4g",
            "--conf spark.driver.cores=1",
            "--conf spark.driver.maxResultSize=2g",
            "--conf spark.driver.memory=4g",
            "--conf spark.executor.instances=3",
            "--conf spark.executor.heartbeatInterval=600s",
            "--conf spark.network.timeout=2400s",
            "--conf spark.kubernetes.driverEnv.DATASETS_PATH=/var/data",
            "--conf spark.kubernetes.driverEnv.RESULTS_PATH=/var/results",
            "--conf spark.kubernetes.driverEnv.JOB_NAME=BreastCancerBBHA",
        ]
        .join(" ");
        assert_eq!(s.to_parameter_string(), expected);
    }

    #[test]
    fn unset_image_and_templates_are_left_out_not_sent_empty() {
        let c = config(&[]);
        let s = spark_submit(
            c.backend.emr_eks().unwrap(),
            &c.spark,
            &c.job,
            &spec(Algorithm::BlindSearch),
        )
        .to_parameter_string();
        assert!(!s.contains("podTemplateFile"), "{s}");
        assert!(!s.contains("container.image"), "{s}");
        assert!(!s.contains("None") && !s.contains("=/templates") && !s.contains("= "));
        assert!(
            s.starts_with("--py-files s3://bkt/py-files/scripts.zip --conf spark.executor.cores=1")
        );
        assert_eq!(s.matches("--conf").count(), 11);
    }

    #[test]
    fn with_staging_the_driver_pod_is_annotated_with_the_app_name_and_only_then() {
        let dirs = tempfile::tempdir().unwrap();
        for d in ["data", "results"] {
            std::fs::create_dir(dirs.path().join(d)).unwrap();
        }
        let data = dirs.path().join("data").display().to_string();
        let results = dirs.path().join("results").display().to_string();
        let staged = config(&[
            ("DATA_STAGING", "s3"),
            ("SHARED_DATASETS_DIR", &data),
            ("SHARED_RESULTS_DIR", &results),
        ]);
        let plain = config(&[]);
        let with = spark_submit(
            staged.backend.emr_eks().unwrap(),
            &staged.spark,
            &staged.job,
            &spec(Algorithm::Bbha),
        )
        .to_parameter_string();
        let without = spark_submit(
            plain.backend.emr_eks().unwrap(),
            &plain.spark,
            &plain.job,
            &spec(Algorithm::Bbha),
        )
        .to_parameter_string();
        assert_eq!(
            with,
            format!(
                "{without} --conf spark.kubernetes.driverEnv.PROGRESS_PATH=s3://bkt/results/ \
                 --conf spark.kubernetes.driver.annotation.multiomix-aws-emr/app-name=exp-42-app"
            )
        );
        assert!(!without.contains("PROGRESS_PATH"), "{without}");

        // The job's progress token follows everything else, the contract's list unchanged.
        let mut tokened = spec(Algorithm::Bbha);
        let token = crate::job::ProgressToken::generate();
        tokened.progress_token = Some(token.clone());
        let with_token = spark_submit(
            staged.backend.emr_eks().unwrap(),
            &staged.spark,
            &staged.job,
            &tokened,
        )
        .to_parameter_string();
        assert_eq!(
            with_token,
            format!(
                "{with} --conf spark.kubernetes.driverEnv.PROGRESS_TOKEN={}",
                token.expose()
            )
        );
    }

    #[test]
    fn a_staged_results_prefix_with_whitespace_stops_start_up_on_eks() {
        let dirs = tempfile::tempdir().unwrap();
        for d in ["data", "results"] {
            std::fs::create_dir(dirs.path().join(d)).unwrap();
        }
        let data = dirs.path().join("data").display().to_string();
        let results = dirs.path().join("results").display().to_string();
        let vars = [
            ("EMR_VIRTUAL_CLUSTER_ID", "vc1"),
            ("EMR_EXECUTION_ROLE_ARN", "arn:aws:iam::1:role/r"),
            ("EMR_S3_BUCKET", "bkt"),
            ("DATA_STAGING", "s3"),
            ("SHARED_DATASETS_DIR", data.as_str()),
            ("SHARED_RESULTS_DIR", results.as_str()),
            ("S3_RESULTS_PREFIX", "s3://bkt/my results/"),
        ]
        .map(|(k, v)| (k.to_owned(), v.to_owned()));
        let err = Config::from_vars(vars.to_vec()).unwrap_err().to_string();
        assert!(err.contains("S3_RESULTS_PREFIX"), "{err}");
    }
}
