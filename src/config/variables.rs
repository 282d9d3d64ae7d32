//! The environment variables: their names, and the raw values with their defaults.

use std::path::PathBuf;

use serde::Deserialize;

use super::{LogFormat, Secret};

/// Every variable the service reads. Kept in one list so that tests can check that the
/// README, the Dockerfile and the manifests name no variable the service ignores and
/// leave out none it reads.
pub const KNOWN_VARIABLES: &[&str] = &[
    // Server
    "PORT",
    "HOST",
    "LOG_FORMAT",
    "RUST_LOG",
    "REQUEST_TIMEOUT",
    "HEADER_READ_TIMEOUT",
    "MAX_CONNECTIONS",
    "MAX_CONCURRENT_REQUESTS",
    "MAX_PENDING_CALLBACKS",
    "API_TOKEN",
    "CALLBACK_TOKEN",
    // Backend choice
    "JOB_BACKEND",
    // EMR on EKS
    "EMR_VIRTUAL_CLUSTER_ID",
    "EMR_RELEASE_LABEL",
    "EMR_EXECUTION_ROLE_ARN",
    "EMR_S3_BUCKET",
    "EMR_IMAGE",
    "EMR_DRIVER_TEMPLATE",
    "EMR_DRIVER_CORES",
    "EMR_DRIVER_MEMORY",
    "EMR_EXECUTOR_TEMPLATE",
    "EMR_EXECUTOR_CORES",
    "EMR_EXECUTOR_MEMORY",
    "EMR_DRIVER_MAX_RESULT_SIZE",
    "EMR_EXECUTOR_HEARTBEAT_INTERVAL",
    "EMR_NETWORK_TIMEOUT",
    "EMR_EXECUTOR_INSTANCES",
    "EKS_EMR_SERVICE_URL",
    // EMR Serverless (with the role, bucket and Spark sizes above)
    "EMR_SERVERLESS_APPLICATION_ID",
    "EMR_SERVERLESS_EXECUTION_TIMEOUT",
    // EMR on EC2 (with the bucket and Spark sizes above)
    "EMR_CLUSTER_ID",
    "EMR_STEP_ACTION_ON_FAILURE",
    "AWS_DEFAULT_REGION",
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_ENDPOINT_URL",
    // The job itself
    "DATASETS_PATH",
    "RESULTS_PATH",
    "ALGO_BLIND_SEARCH_ENTRYPOINT",
    "ALGO_BLIND_SEARCH_PY_FILES",
    "ALGO_BBHA_ENTRYPOINT",
    "ALGO_BBHA_PY_FILES",
    "ENTRYPOINT_ARGS_KEY_PREFIX",
    // Data staging through S3 (EMR backends)
    "DATA_STAGING",
    "SHARED_DATASETS_DIR",
    "SHARED_RESULTS_DIR",
    "S3_DATASETS_PREFIX",
    "S3_RESULTS_PREFIX",
    "DATASETS_CLEANUP",
    "RESULTS_FETCH_TIMEOUT",
    // Local backend
    "SPARK_SUBMIT",
    "SPARK_MASTER",
    "LOCAL_SCRIPTS_DIR",
    "LOCAL_LOG_DIR",
    "LOCAL_MAX_CONCURRENT",
    "LOCAL_CANCEL_GRACE",
    // Job-end notices
    "MULTIOMIX_URL",
    "SLEEP_TIME",
    "POLL_INTERVAL",
    "NOTIFY_INITIAL_BACKOFF",
    "NOTIFY_MAX_BACKOFF",
    "NOTIFY_GIVE_UP_AFTER",
    "NOTIFY_TIMEOUT",
    "NOTIFY_SECRET",
    "RECONCILE_INTERVAL",
    "RECOVERY_WINDOW",
    // Store
    "DATABASE_URL",
];

/// The variables exactly as they come from the environment. Defaults live here, in one
/// place; [`Config::from_raw`] checks them and gives them their final types.
#[derive(Debug, Deserialize)]
pub(super) struct Raw {
    #[serde(default = "defaults::port")]
    pub(super) port: u16,
    #[serde(default = "defaults::host")]
    pub(super) host: String,
    #[serde(default)]
    pub(super) log_format: LogFormat,
    #[serde(default = "defaults::request_timeout")]
    pub(super) request_timeout: f64,
    #[serde(default = "defaults::header_read_timeout")]
    pub(super) header_read_timeout: f64,
    #[serde(default = "defaults::max_connections")]
    pub(super) max_connections: usize,
    #[serde(default = "defaults::max_concurrent_requests")]
    pub(super) max_concurrent_requests: usize,
    #[serde(default = "defaults::max_pending_callbacks")]
    pub(super) max_pending_callbacks: usize,
    pub(super) api_token: Option<Secret>,
    pub(super) callback_token: Option<Secret>,

    pub(super) job_backend: Option<String>,

    pub(super) emr_virtual_cluster_id: Option<String>,
    #[serde(default = "defaults::emr_release_label")]
    pub(super) emr_release_label: String,
    pub(super) emr_execution_role_arn: Option<String>,
    pub(super) emr_s3_bucket: Option<String>,
    pub(super) emr_image: Option<String>,
    pub(super) emr_driver_template: Option<String>,
    #[serde(default = "defaults::one")]
    pub(super) emr_driver_cores: String,
    #[serde(default = "defaults::four_g")]
    pub(super) emr_driver_memory: String,
    pub(super) emr_executor_template: Option<String>,
    #[serde(default = "defaults::one")]
    pub(super) emr_executor_cores: String,
    #[serde(default = "defaults::four_g")]
    pub(super) emr_executor_memory: String,
    #[serde(default = "defaults::max_result_size")]
    pub(super) emr_driver_max_result_size: String,
    #[serde(default = "defaults::heartbeat_interval")]
    pub(super) emr_executor_heartbeat_interval: String,
    #[serde(default = "defaults::network_timeout")]
    pub(super) emr_network_timeout: String,
    #[serde(default = "defaults::executor_instances")]
    pub(super) emr_executor_instances: String,
    #[serde(default = "defaults::eks_emr_service_url")]
    pub(super) eks_emr_service_url: String,
    pub(super) emr_serverless_application_id: Option<String>,
    pub(super) emr_serverless_execution_timeout: Option<u32>,
    pub(super) emr_cluster_id: Option<String>,
    #[serde(default = "defaults::action_on_failure")]
    pub(super) emr_step_action_on_failure: String,
    #[serde(default = "defaults::region")]
    pub(super) aws_default_region: String,
    pub(super) aws_endpoint_url: Option<String>,

    /// Unset is told from set: with staging on EMR Serverless and EMR on EC2 the
    /// defaults are the S3 prefixes.
    pub(super) datasets_path: Option<String>,
    pub(super) results_path: Option<String>,
    #[serde(default = "defaults::entrypoint")]
    pub(super) algo_blind_search_entrypoint: String,
    #[serde(default = "defaults::py_files")]
    pub(super) algo_blind_search_py_files: String,
    #[serde(default = "defaults::entrypoint")]
    pub(super) algo_bbha_entrypoint: String,
    #[serde(default = "defaults::py_files")]
    pub(super) algo_bbha_py_files: String,
    #[serde(default = "defaults::args_prefix")]
    pub(super) entrypoint_args_key_prefix: String,

    #[serde(default = "defaults::data_staging")]
    pub(super) data_staging: String,
    pub(super) shared_datasets_dir: Option<PathBuf>,
    pub(super) shared_results_dir: Option<PathBuf>,
    pub(super) s3_datasets_prefix: Option<String>,
    pub(super) s3_results_prefix: Option<String>,
    #[serde(default = "defaults::datasets_cleanup")]
    pub(super) datasets_cleanup: String,
    #[serde(default = "defaults::results_fetch_timeout")]
    pub(super) results_fetch_timeout: f64,

    #[serde(default = "defaults::spark_submit")]
    pub(super) spark_submit: String,
    #[serde(default = "defaults::spark_master")]
    pub(super) spark_master: String,
    #[serde(default = "defaults::local_scripts_dir")]
    pub(super) local_scripts_dir: PathBuf,
    #[serde(default = "defaults::local_log_dir")]
    pub(super) local_log_dir: PathBuf,
    #[serde(default = "defaults::local_max_concurrent")]
    pub(super) local_max_concurrent: usize,
    #[serde(default = "defaults::local_cancel_grace")]
    pub(super) local_cancel_grace: f64,

    #[serde(default = "defaults::multiomix_url")]
    pub(super) multiomix_url: String,
    #[serde(default = "defaults::sleep_time")]
    pub(super) sleep_time: f64,
    #[serde(default = "defaults::poll_interval")]
    pub(super) poll_interval: f64,
    #[serde(default = "defaults::notify_initial_backoff")]
    pub(super) notify_initial_backoff: f64,
    #[serde(default = "defaults::notify_max_backoff")]
    pub(super) notify_max_backoff: f64,
    #[serde(default = "defaults::notify_give_up_after")]
    pub(super) notify_give_up_after: f64,
    #[serde(default = "defaults::notify_timeout")]
    pub(super) notify_timeout: f64,
    pub(super) notify_secret: Option<Secret>,
    #[serde(default = "defaults::reconcile_interval")]
    pub(super) reconcile_interval: f64,
    #[serde(default = "defaults::recovery_window")]
    pub(super) recovery_window: f64,

    #[serde(default = "defaults::database_url")]
    pub(super) database_url: String,
}

pub(super) mod defaults {
    use std::path::PathBuf;

    pub fn port() -> u16 {
        8003
    }
    pub fn action_on_failure() -> String {
        "CONTINUE".into()
    }
    pub fn host() -> String {
        "0.0.0.0".into()
    }
    pub fn request_timeout() -> f64 {
        30.0
    }
    pub fn max_concurrent_requests() -> usize {
        1024
    }
    pub fn header_read_timeout() -> f64 {
        10.0
    }
    pub fn max_connections() -> usize {
        2048
    }
    pub fn max_pending_callbacks() -> usize {
        10_000
    }
    pub fn emr_release_label() -> String {
        "emr-6.9.0-latest".into()
    }
    pub fn one() -> String {
        "1".into()
    }
    pub fn four_g() -> String {
        "4g".into()
    }
    pub fn max_result_size() -> String {
        "2g".into()
    }
    pub fn heartbeat_interval() -> String {
        "600s".into()
    }
    pub fn network_timeout() -> String {
        "2400s".into()
    }
    pub fn executor_instances() -> String {
        "3".into()
    }
    pub fn eks_emr_service_url() -> String {
        "multiomix-aws-emr".into()
    }
    pub fn region() -> String {
        "us-east-1".into()
    }
    pub fn datasets_path() -> String {
        "/var/data".into()
    }
    pub fn results_path() -> String {
        "/var/results".into()
    }
    pub fn entrypoint() -> String {
        "main.py".into()
    }
    pub fn py_files() -> String {
        "scripts.zip".into()
    }
    pub fn args_prefix() -> String {
        "--".into()
    }
    pub fn data_staging() -> String {
        "off".into()
    }
    pub fn datasets_cleanup() -> String {
        "on".into()
    }
    pub fn results_fetch_timeout() -> f64 {
        600.0
    }
    pub fn spark_submit() -> String {
        "spark-submit".into()
    }
    pub fn spark_master() -> String {
        "local[*]".into()
    }
    pub fn local_scripts_dir() -> PathBuf {
        "scripts".into()
    }
    pub fn local_log_dir() -> PathBuf {
        "data/logs".into()
    }
    pub fn local_max_concurrent() -> usize {
        1
    }
    pub fn local_cancel_grace() -> f64 {
        10.0
    }
    pub fn multiomix_url() -> String {
        "http://multiomix/feature-selection/aws-notification/".into()
    }
    pub fn sleep_time() -> f64 {
        10.0
    }
    pub fn poll_interval() -> f64 {
        10.0
    }
    pub fn notify_initial_backoff() -> f64 {
        5.0
    }
    pub fn notify_max_backoff() -> f64 {
        600.0
    }
    pub fn notify_give_up_after() -> f64 {
        259_200.0
    }
    pub fn notify_timeout() -> f64 {
        100.0
    }
    pub fn reconcile_interval() -> f64 {
        60.0
    }
    pub fn recovery_window() -> f64 {
        259_200.0
    }
    pub fn database_url() -> String {
        "sqlite:data/multiomix-aws-emr.db".into()
    }
}
