//! The checked settings each part of the service gets, and the types they are made of.

use std::fmt;
use std::net::IpAddr;
use std::path::PathBuf;
use std::time::Duration;

use base64::Engine;
use serde::Deserialize;

pub use crate::job::BackendKind;

/// A value that must never reach a log line. `Debug` and `Display` print a placeholder.
#[derive(Clone, Deserialize, PartialEq, Eq)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    /// The secret itself, for the one place that has to use it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

/// Tests serialise the raw configuration to read its fields; a secret shows as a marker.
#[cfg(test)]
impl serde::Serialize for Secret {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str("[redacted]")
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret([redacted])")
    }
}

/// The HMAC key notices are signed with, read from `NOTIFY_SECRET` when the configuration
/// is checked, so that a secret without a valid key stops start-up. A secret of the form
/// `whsec_<base64>` is decoded as Standard Webhooks secrets are, and one that does not
/// decode is an error: signing with its raw bytes instead would give signatures no
/// receiver can check. Any other secret is used as raw bytes. `Debug` prints a placeholder.
#[derive(Clone, PartialEq, Eq)]
pub struct SigningKey(Vec<u8>);

impl SigningKey {
    pub fn from_secret(secret: &Secret) -> Result<Self, String> {
        let raw = secret.expose();
        match raw.strip_prefix("whsec_") {
            Some(encoded) => base64::engine::general_purpose::STANDARD
                .decode(encoded)
                .ok()
                .filter(|key| !key.is_empty())
                .map(SigningKey)
                .ok_or_else(|| "a whsec_ secret must be followed by its key in base64".to_owned()),
            None => Ok(SigningKey(raw.as_bytes().to_vec())),
        }
    }

    /// The key itself, for the one place that signs with it.
    pub fn expose(&self) -> &[u8] {
        &self.0
    }
}

impl fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SigningKey([redacted])")
    }
}

/// The backend that runs the jobs (`JOB_BACKEND`), with the settings only it has. One
/// variant a backend: `backend::registry` builds the backend from it.
#[derive(Clone, Debug)]
pub enum BackendSettings {
    EmrEks(EmrSettings),
    EmrServerless(ServerlessSettings),
    EmrEc2(Ec2Settings),
    Livy(LivySettings),
    Local(LocalSettings),
}

impl BackendSettings {
    pub fn kind(&self) -> BackendKind {
        match self {
            BackendSettings::EmrEks(_) => BackendKind::Emr,
            BackendSettings::EmrServerless(_) => BackendKind::EmrServerless,
            BackendSettings::EmrEc2(_) => BackendKind::EmrEc2,
            BackendSettings::Livy(_) => BackendKind::Livy,
            BackendSettings::Local(_) => BackendKind::Local,
        }
    }

    /// Where the jobs go, in words for the start-up log line.
    pub fn target(&self) -> String {
        let endpoint = |e: &Option<String>| e.clone().unwrap_or_else(|| "AWS".to_owned());
        match self {
            BackendSettings::EmrEks(s) => format!(
                "virtual cluster {} in {} ({})",
                s.virtual_cluster_id,
                s.region,
                endpoint(&s.endpoint_url)
            ),
            BackendSettings::EmrServerless(s) => format!(
                "application {} in {} ({})",
                s.application_id,
                s.region,
                endpoint(&s.endpoint_url)
            ),
            BackendSettings::EmrEc2(s) => format!(
                "cluster {} in {} ({})",
                s.cluster_id,
                s.region,
                endpoint(&s.endpoint_url)
            ),
            BackendSettings::Livy(s) => format!("Livy at {}, package in {}", s.url, s.package_url),
            BackendSettings::Local(s) => format!(
                "{} on {}, scripts in {}",
                s.spark_submit,
                s.spark_master.as_str(),
                s.scripts_dir.display()
            ),
        }
    }

    /// The EMR on EKS settings, when that is the backend.
    pub fn emr_eks(&self) -> Option<&EmrSettings> {
        match self {
            BackendSettings::EmrEks(s) => Some(s),
            _ => None,
        }
    }

    /// The EMR Serverless settings, when that is the backend.
    pub fn emr_serverless(&self) -> Option<&ServerlessSettings> {
        match self {
            BackendSettings::EmrServerless(s) => Some(s),
            _ => None,
        }
    }

    /// The EMR on EC2 settings, when that is the backend.
    pub fn emr_ec2(&self) -> Option<&Ec2Settings> {
        match self {
            BackendSettings::EmrEc2(s) => Some(s),
            _ => None,
        }
    }

    /// The Livy settings, when that is the backend.
    pub fn livy(&self) -> Option<&LivySettings> {
        match self {
            BackendSettings::Livy(s) => Some(s),
            _ => None,
        }
    }

    /// The local backend's settings, when that is the backend.
    pub fn local(&self) -> Option<&LocalSettings> {
        match self {
            BackendSettings::Local(s) => Some(s),
            _ => None,
        }
    }
}

#[derive(Clone, Copy, Debug, Deserialize, PartialEq, Eq, Default)]
#[cfg_attr(test, derive(serde::Serialize))]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    #[default]
    Text,
    Json,
}

/// What the HTTP server needs.
#[derive(Clone, Debug)]
pub struct ServerSettings {
    pub host: IpAddr,
    pub port: u16,
    pub log_format: LogFormat,
    pub request_timeout: Duration,
    pub max_concurrent_requests: usize,
    /// How long a client has to send a request's headers, and how long an idle
    /// keep-alive connection stays open: a slow or silent client cannot hold a
    /// connection.
    pub header_read_timeout: Duration,
    /// How long a client has to send a request's body once its headers are in: the
    /// header timeout does not cover bodies, and a trickled body would hold a request
    /// slot until `request_timeout`.
    pub body_read_timeout: Duration,
    /// Connections open at once; beyond this new ones are closed at once.
    pub max_connections: usize,
    pub max_pending_callbacks: usize,
    pub api_token: Option<Secret>,
    pub callback_token: Option<Secret>,
}

/// EMR on EKS: where jobs run and the Spark settings every job gets.
#[derive(Clone, Debug)]
pub struct EmrSettings {
    pub virtual_cluster_id: String,
    pub execution_role_arn: String,
    pub s3_bucket: String,
    pub release_label: String,
    pub region: String,
    pub endpoint_url: Option<String>,
    /// Names this deployment in the tags of its jobs, so that two deployments sharing a
    /// virtual cluster never adopt each other's jobs.
    pub service_url: String,
    pub image: Option<String>,
    pub driver_template: Option<String>,
    pub executor_template: Option<String>,
    /// The longest one EMR call may take, retries included: below `REQUEST_TIMEOUT`, so
    /// that a `POST /job` learns whether its job started before the request is cut off.
    pub call_timeout: Duration,
    /// `DATA_STAGING=s3`: the driver pod is annotated with the job's app name, which its
    /// init container and sidecar read to copy only that app's datasets and results.
    pub annotate_app_name: bool,
    /// With `DATA_STAGING=s3`, the S3 results prefix, given to the driver as
    /// `PROGRESS_PATH`: its own `RESULTS_PATH` is a folder of its pod, which the service
    /// cannot read, so the job's progress reports go to S3 directly.
    pub progress_path: Option<String>,
}

/// EMR Serverless: the application jobs run in. The image and the release label belong to
/// the application, so there is neither here.
#[derive(Clone, Debug)]
pub struct ServerlessSettings {
    pub application_id: String,
    pub execution_role_arn: String,
    pub s3_bucket: String,
    pub region: String,
    pub endpoint_url: Option<String>,
    /// Names this deployment in the tags of its runs, as for EMR on EKS.
    pub service_url: String,
    /// EMR Serverless `executionTimeoutMinutes`; `None` leaves EMR's default.
    pub execution_timeout_minutes: Option<u32>,
    /// How long one EMR Serverless call may take, retries included (as for EMR on EKS).
    pub call_timeout: Duration,
}

/// EMR on EC2: one step per job on the standing cluster `cluster_id`.
#[derive(Clone, Debug)]
pub struct Ec2Settings {
    /// `j-…`.
    pub cluster_id: String,
    pub s3_bucket: String,
    pub region: String,
    pub endpoint_url: Option<String>,
    /// The step's `ActionOnFailure`: `CONTINUE` or `CANCEL_AND_WAIT`, never one that
    /// terminates the cluster.
    pub action_on_failure: String,
    /// How long one EMR call may take, retries included (as for EMR on EKS).
    pub call_timeout: Duration,
}

/// Apache Livy: one batch (`POST /batches`) per job, on whatever cluster Livy submits to.
#[derive(Clone, Debug)]
pub struct LivySettings {
    /// `LIVY_URL` without its trailing `/`: Livy itself (`http://master:8998`) or a
    /// gateway's path to it (Knox: `https://knox:8443/gateway/default/livy/v1`).
    pub url: String,
    /// `LIVY_PACKAGE_URL`, ending with `/`: where the cluster reads `scripts/` and
    /// `py-files/` (`s3://bucket/`, `hdfs:///apps/multiomix/`).
    pub package_url: String,
    /// HTTP Basic credentials, as Knox and most gateways take them.
    pub credentials: Option<LivyCredentials>,
    /// The batch's `proxyUser`: the user the job runs as, when Livy impersonates.
    pub proxy_user: Option<String>,
    /// The batch's YARN `queue`.
    pub queue: Option<String>,
    /// The first part of every batch name, which marks this deployment's batches.
    pub name_prefix: String,
    /// How long one Livy call may take: below `REQUEST_TIMEOUT`, as for an EMR call.
    pub call_timeout: Duration,
}

/// `LIVY_USERNAME` and `LIVY_PASSWORD`.
#[derive(Clone, Debug)]
pub struct LivyCredentials {
    pub username: String,
    pub password: Secret,
}

/// Spark resources, shared by every backend.
#[derive(Clone, Debug)]
pub struct SparkSettings {
    pub driver_cores: String,
    pub driver_memory: String,
    pub executor_cores: String,
    pub executor_memory: String,
    pub driver_max_result_size: String,
    pub executor_heartbeat_interval: String,
    pub network_timeout: String,
    pub executor_instances: String,
    /// `spark.executor.memoryOverhead`: room for the Python workers beside the JVM heap.
    /// `None` when unset: the backends that may add options use
    /// [`DEFAULT_MEMORY_OVERHEAD`]; EMR on EKS, whose parameters are the contract's, sends none.
    pub executor_memory_overhead: Option<String>,
    /// `spark.executor.pyspark.memory`, passed only when set.
    pub executor_pyspark_memory: Option<String>,
}

/// The Python workers' room when `EMR_EXECUTOR_MEMORY_OVERHEAD` is unset: sized for a
/// 20,000 x 1,100 dataset (docs/jobs.md, "Memory the service asks for the Python workers").
pub const DEFAULT_MEMORY_OVERHEAD: &str = "2g";

/// What a job script needs: where its files are and how its arguments are spelled.
#[derive(Clone, Debug)]
pub struct JobSettings {
    pub datasets_path: String,
    pub results_path: String,
    pub blind_search_entrypoint: String,
    pub blind_search_py_files: String,
    pub bbha_entrypoint: String,
    pub bbha_py_files: String,
    pub args_key_prefix: String,
}

/// A place in S3: a bucket and a key prefix that is empty or ends with `/`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct S3Location {
    pub bucket: String,
    pub prefix: String,
}

impl S3Location {
    /// Reads `s3://bucket/some/prefix/` (the trailing `/` is added when missing).
    pub fn parse(url: &str) -> Result<Self, String> {
        let rest = url
            .strip_prefix("s3://")
            .ok_or_else(|| format!("'{url}' does not start with s3://"))?;
        let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
        if bucket.is_empty() {
            return Err(format!("'{url}' names no bucket"));
        }
        let mut prefix = prefix.trim_start_matches('/').to_string();
        if !prefix.is_empty() && !prefix.ends_with('/') {
            prefix.push('/');
        }
        Ok(S3Location {
            bucket: bucket.to_string(),
            prefix,
        })
    }
}

impl fmt::Display for S3Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "s3://{}/{}", self.bucket, self.prefix)
    }
}

/// Data staging (`DATA_STAGING=s3`, EMR backends and Livy): the datasets a request names are
/// copied from the service's mount of Multiomix's datasets folder to S3 before the job
/// starts, and a completed job's results are copied from S3 into the service's mount of
/// Multiomix's results folder before its notice is sent.
#[derive(Clone, Debug)]
pub struct StagingSettings {
    /// `SHARED_DATASETS_DIR`: the service's own mount of Multiomix's datasets folder.
    pub datasets_dir: PathBuf,
    /// `SHARED_RESULTS_DIR`: the service's own mount of Multiomix's results folder.
    pub results_dir: PathBuf,
    /// `S3_DATASETS_PREFIX`, by default `s3://{EMR_S3_BUCKET}/datasets/`.
    pub datasets: S3Location,
    /// `S3_RESULTS_PREFIX`, by default `s3://{EMR_S3_BUCKET}/results/`.
    pub results: S3Location,
    /// `DATASETS_CLEANUP`: delete `datasets/<app-name>/` once the notice is delivered.
    pub cleanup_datasets: bool,
    /// `RESULTS_FETCH_TIMEOUT`: the longest one download of a job's results may take.
    pub fetch_timeout: Duration,
    /// `STAGING_UPLOAD_TIMEOUT`: the longest a `POST /job` may spend getting S3 ready for
    /// its run (datasets up, the results folder emptied), beyond `REQUEST_TIMEOUT`.
    pub upload_timeout: Duration,
    pub region: String,
    pub endpoint_url: Option<String>,
    /// The longest one upload may take: below `REQUEST_TIMEOUT`, like an EMR call.
    pub call_timeout: Duration,
}

/// `SPARK_MASTER`, checked: where the local backend's executors run. The driver always
/// runs beside the service (client mode), because it reads `DATASETS_PATH` and writes
/// `RESULTS_PATH`, the folders the service shares with Multiomix.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SparkMaster {
    /// `local`, `local[N]`, `local[*]`, `local[N,F]`, `local-cluster[...]`: executors
    /// inside the driver's JVM (or beside it, on this machine).
    Local(String),
    /// `spark://host:port` (or `spark://h1:p1,h2:p2` with standby masters): a Spark
    /// standalone cluster.
    Standalone(String),
    /// `yarn`: the Hadoop cluster `HADOOP_CONF_DIR` describes.
    Yarn,
}

impl SparkMaster {
    /// Reads `SPARK_MASTER`; the error says why a value cannot run the jobs.
    pub fn parse(value: &str) -> Result<Self, String> {
        let lower = value.to_ascii_lowercase();
        let cluster_mode = "the driver would run on the cluster, away from DATASETS_PATH \
                            and RESULTS_PATH (the folders it reads and writes)";
        if lower == "local"
            || (lower.starts_with("local[") && lower.ends_with(']'))
            || (lower.starts_with("local-cluster[") && lower.ends_with(']'))
        {
            return Ok(SparkMaster::Local(value.to_owned()));
        }
        if lower == "yarn" {
            return Ok(SparkMaster::Yarn);
        }
        if lower == "yarn-cluster" {
            return Err(format!(
                "'{value}' is cluster mode: {cluster_mode}; use 'yarn' (the service runs \
                 the driver here, in client mode)"
            ));
        }
        if let Some(hosts) = lower.strip_prefix("spark://") {
            let well_formed = hosts.split(',').all(|host_port| {
                host_port.rsplit_once(':').is_some_and(|(host, port)| {
                    !host.is_empty() && !host.contains('/') && port.parse::<u16>().is_ok()
                })
            });
            return if well_formed {
                Ok(SparkMaster::Standalone(value.to_owned()))
            } else {
                Err(format!(
                    "'{value}' is not a standalone master: spark://host:port (several \
                     host:port separated by commas for standby masters)"
                ))
            };
        }
        if lower.starts_with("k8s://") {
            return Err(format!(
                "'{value}': Spark on Kubernetes is the emr backend's (JOB_BACKEND=emr); the \
                 local backend runs local[...], spark://host:port or yarn"
            ));
        }
        Err(format!(
            "'{value}' is not a master the local backend runs: local[...], spark://host:port \
             or yarn"
        ))
    }

    pub fn as_str(&self) -> &str {
        match self {
            SparkMaster::Local(master) | SparkMaster::Standalone(master) => master,
            SparkMaster::Yarn => "yarn",
        }
    }

    /// Executors on other machines: they need their sizes, and the driver its deploy mode.
    pub fn is_cluster(&self) -> bool {
        !matches!(self, SparkMaster::Local(_))
    }
}

/// The local spark-submit backend.
#[derive(Clone, Debug)]
pub struct LocalSettings {
    pub spark_submit: String,
    pub spark_master: SparkMaster,
    pub scripts_dir: PathBuf,
    pub log_dir: PathBuf,
    pub max_concurrent: usize,
    pub cancel_grace: Duration,
}

/// Where the service reads the progress reports of running jobs (see `crate::progress`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ProgressSource {
    /// `<folder>/.progress/<app-name>.json` on this machine: the local backend, whose
    /// jobs write under `RESULTS_PATH` here.
    Folder(PathBuf),
    /// `s3://{bucket}/{prefix}.progress/<app-name>.json`: `S3_RESULTS_PREFIX` with
    /// `DATA_STAGING=s3`, or a `RESULTS_PATH` in S3.
    S3(S3Location),
    /// The jobs write where the service cannot read (a folder of an EMR driver's pod or
    /// node): no progress is shown.
    Unreadable,
}

/// The reading of the jobs' progress reports.
#[derive(Clone, Debug)]
pub struct ProgressSettings {
    /// `PROGRESS_INTERVAL`: the time between two reads of the running jobs' reports.
    pub interval: Duration,
    pub source: ProgressSource,
    /// For an S3 source without data staging (whose client serves otherwise).
    pub region: String,
    pub endpoint_url: Option<String>,
}

/// Job-end notices and the work that makes sure none is lost.
#[derive(Clone, Debug)]
pub struct NotifySettings {
    /// Multiomix's notification endpoint, without its trailing `/`.
    pub multiomix_url: String,
    pub sleep_time: Duration,
    pub poll_interval: Duration,
    pub initial_backoff: Duration,
    pub max_backoff: Duration,
    pub give_up_after: Duration,
    pub timeout: Duration,
    /// From `NOTIFY_SECRET`: notices are signed when it is set.
    pub signing_key: Option<SigningKey>,
    pub reconcile_interval: Duration,
    pub recovery_window: Duration,
}
