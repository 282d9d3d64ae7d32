//! The environment variables: each defined once, in [`VARIABLES`], and the raw values
//! with their defaults.
//!
//! A variable's row gives its name, what applies when it is unset, whether it is secret,
//! who reads it, the backends it concerns and its meaning. The configuration tables of
//! `docs/configuration.md` are rendered from the rows ([`configuration_table`]) and the
//! deployment files are checked against them; the unit tests below check the rows against [`Raw`], so that the
//! documented defaults are the ones the service applies.

use std::path::PathBuf;

use serde::Deserialize;

use super::{BackendKind, LogFormat, Secret};
use BackendKind::{Emr, EmrEc2, EmrServerless, Livy, Local};
use ReadBy::{AwsSdk, LogFilter};
use WhenUnset::{Described, Empty, Required, Value};

/// One environment variable, as `docs/configuration.md` documents it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Variable {
    pub name: &'static str,
    pub when_unset: WhenUnset,
    /// Tokens, keys and secrets: never logged, taken from a Kubernetes Secret.
    pub secret: bool,
    pub read_by: ReadBy,
    /// The backends whose configuration uses it.
    pub backends: &'static [BackendKind],
    /// Which of the two configuration tables lists it.
    pub table: Table,
    /// The documented one-line meaning, in Markdown.
    pub meaning: &'static str,
}

/// What the service does when a variable is unset (or empty).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WhenUnset {
    /// Uses this value, spelled as the variable would be.
    Value(&'static str),
    /// Goes without: the feature is off, or the AWS SDK decides.
    Empty,
    /// Refuses to start when this holds (documented as "required with ...").
    Required(&'static str),
    /// A default that depends on other settings, in the documentation's words.
    Described(&'static str),
}

/// Who reads a variable: the service's own `Raw`, or a library on its own.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ReadBy {
    Config,
    /// The tracing filter, at start-up.
    LogFilter,
    /// The AWS SDK's credential chain.
    AwsSdk,
}

/// The two tables of `docs/configuration.md`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Table {
    /// "The variables inherited from the Python service keep their names and defaults".
    Inherited,
    /// "Added by this service".
    Added,
}

const ALL: &[BackendKind] = &[Emr, EmrServerless, EmrEc2, Livy, Local];
const EMR_ANY: &[BackendKind] = &[Emr, EmrServerless, EmrEc2];
/// The backends `DATA_STAGING=s3` applies to, and whose S3 client reads the AWS variables.
const STAGED: &[BackendKind] = &[Emr, EmrServerless, EmrEc2, Livy];

const fn inherited(
    name: &'static str,
    when_unset: WhenUnset,
    backends: &'static [BackendKind],
    meaning: &'static str,
) -> Variable {
    Variable {
        name,
        when_unset,
        secret: false,
        read_by: ReadBy::Config,
        backends,
        table: Table::Inherited,
        meaning,
    }
}

const fn added(
    name: &'static str,
    when_unset: WhenUnset,
    backends: &'static [BackendKind],
    meaning: &'static str,
) -> Variable {
    Variable {
        table: Table::Added,
        ..inherited(name, when_unset, backends, meaning)
    }
}

impl Variable {
    const fn secret(self) -> Self {
        Variable {
            secret: true,
            ..self
        }
    }

    const fn read_by(self, read_by: ReadBy) -> Self {
        Variable { read_by, ..self }
    }

    /// The "Default" column of the configuration tables.
    pub fn documented_default(&self) -> String {
        match self.when_unset {
            Value(value) => format!("`{value}`"),
            Empty => "(none)".to_owned(),
            Required(when) => format!("(required with {when})"),
            Described(text) => text.to_owned(),
        }
    }
}

/// Every variable the service or its libraries read, in the documentation's order. Adding
/// a variable is adding its row here and its field to `Raw` (a unit test checks that the
/// two agree), its line to docker-compose_dist.yml, and the rows of docs/configuration.md
/// that tests/integration/deploy_manifests.rs prints.
#[rustfmt::skip] // one line a variable
pub const VARIABLES: &[Variable] = &[
    // The first table: the variables inherited from the Python service.
    inherited("EMR_VIRTUAL_CLUSTER_ID", Required("the EMR backend"), &[Emr], "EMR on EKS virtual cluster the jobs run in"),
    inherited("EMR_RELEASE_LABEL", Value("emr-6.9.0-latest"), &[Emr], "EMR release; must match the image used by the pod templates"),
    inherited("EMR_EXECUTION_ROLE_ARN", Required("EMR on EKS and EMR Serverless"), &[Emr, EmrServerless], "IAM role the jobs run as"),
    inherited("EMR_S3_BUCKET", Required("every EMR backend"), EMR_ANY, "bucket holding `scripts/`, `py-files/`, `templates/` and `joblogs/`"),
    inherited("EMR_IMAGE", Empty, &[Emr], "container image for driver and executors (`spark.kubernetes.container.image`); unset: EMR's image"),
    inherited("EMR_DRIVER_TEMPLATE", Empty, &[Emr], "driver pod template file name under `templates/` in the bucket"),
    inherited("EMR_DRIVER_CORES", Value("1"), ALL, "`spark.driver.cores`"),
    inherited("EMR_DRIVER_MEMORY", Value("4g"), ALL, "`spark.driver.memory`"),
    inherited("EMR_EXECUTOR_TEMPLATE", Empty, &[Emr], "executor pod template file name under `templates/` in the bucket"),
    inherited("EMR_EXECUTOR_CORES", Value("1"), ALL, "`spark.executor.cores`"),
    inherited("EMR_EXECUTOR_MEMORY", Value("4g"), ALL, "`spark.executor.memory`"),
    inherited("EMR_DRIVER_MAX_RESULT_SIZE", Value("2g"), ALL, "`spark.driver.maxResultSize`"),
    inherited("EMR_EXECUTOR_HEARTBEAT_INTERVAL", Value("600s"), ALL, "`spark.executor.heartbeatInterval`"),
    inherited("EMR_NETWORK_TIMEOUT", Value("2400s"), ALL, "`spark.network.timeout`"),
    inherited("EMR_EXECUTOR_INSTANCES", Value("3"), ALL, "`spark.executor.instances`"),
    inherited("DATASETS_PATH", Described("`/var/data`"), ALL, "where the job script finds its datasets (driver environment); with `DATA_STAGING=s3` on EMR Serverless, EMR on EC2 and Livy, `S3_DATASETS_PREFIX`, and another value stops start-up"),
    inherited("RESULTS_PATH", Described("`/var/results`"), ALL, "where the job script writes its results (driver environment); with `DATA_STAGING=s3` on EMR Serverless, EMR on EC2 and Livy, `S3_RESULTS_PREFIX`, and another value stops start-up"),
    inherited("MULTIOMIX_URL", Value("http://multiomix/feature-selection/aws-notification/"), ALL, "where job-end notices are POSTed (`{url}/{id}/`)"),
    inherited("EKS_EMR_SERVICE_URL", Value("multiomix-aws-emr"), &[Emr, EmrServerless], "host name under which the driver pods' sidecar reaches this service"),
    inherited("AWS_DEFAULT_REGION", Value("us-east-1"), STAGED, "region of the virtual cluster (or of the EMR Serverless application, or of the EMR on EC2 cluster; with `livy`, of the staging bucket)"),
    inherited("AWS_ACCESS_KEY_ID", Empty, STAGED, "credentials; unset: the rest of the standard AWS chain (IRSA, profile, instance role)").secret().read_by(AwsSdk),
    inherited("AWS_SECRET_ACCESS_KEY", Empty, STAGED, "credentials; unset: the rest of the standard AWS chain (IRSA, profile, instance role)").secret().read_by(AwsSdk),
    inherited("AWS_SESSION_TOKEN", Empty, STAGED, "read by the AWS SDK, not by the service: the session token that goes with temporary access keys").secret().read_by(AwsSdk),
    inherited("ALGO_BLIND_SEARCH_ENTRYPOINT", Value("main.py"), ALL, "Blind Search entry script under `scripts/`; the Blind Search job is `blind_search.py`"),
    inherited("ALGO_BLIND_SEARCH_PY_FILES", Value("scripts.zip"), ALL, "Blind Search py-files under `py-files/`"),
    inherited("ALGO_BBHA_ENTRYPOINT", Value("main.py"), ALL, "BBHA entry script under `scripts/`"),
    inherited("ALGO_BBHA_PY_FILES", Value("scripts.zip"), ALL, "BBHA py-files under `py-files/`"),
    inherited("ENTRYPOINT_ARGS_KEY_PREFIX", Value("--"), ALL, "prefix of argument names in the job's entry-point arguments"),
    added("DATA_STAGING", Value("off"), STAGED, "`s3`: with an EMR backend or Livy, upload the files a request names (`molecules-dataset`, `clinical-dataset`) from `SHARED_DATASETS_DIR` to `S3_DATASETS_PREFIX` before the job starts, and copy a COMPLETED job's results from `S3_RESULTS_PREFIX` into `SHARED_RESULTS_DIR` before its notice; the local backend never stages (its jobs use the folders themselves)"),
    added("SHARED_DATASETS_DIR", Required("`DATA_STAGING=s3`"), STAGED, "the service's own mount of Multiomix's datasets folder; start-up stops if it is missing or unreadable"),
    added("SHARED_RESULTS_DIR", Required("`DATA_STAGING=s3`"), STAGED, "the service's own mount of Multiomix's results folder; start-up stops if it is missing or not writable"),
    added("S3_DATASETS_PREFIX", Described("`s3://{EMR_S3_BUCKET}/datasets/` (with `livy`, in the bucket of `LIVY_PACKAGE_URL`)"), STAGED, "where staged datasets go, under the same relative path they have in `SHARED_DATASETS_DIR`"),
    added("S3_RESULTS_PREFIX", Described("`s3://{EMR_S3_BUCKET}/results/` (with `livy`, in the bucket of `LIVY_PACKAGE_URL`)"), STAGED, "where jobs leave their results, under `<app-name>/`; must not overlap `S3_DATASETS_PREFIX`"),
    added("DATASETS_CLEANUP", Value("on"), STAGED, "`on`: delete `datasets/<app-name>/` from S3 once the job's notice is delivered (or Multiomix answered that the experiment is gone); `off`: keep it"),
    added("RESULTS_FETCH_TIMEOUT", Value("600"), STAGED, "seconds one copy of a job's results from S3 may take before it is tried again"),
    added("STAGING_UPLOAD_TIMEOUT", Value("900"), STAGED, "seconds `POST /job` may spend uploading its datasets (in parallel parts) and emptying the run's results folder in S3 before it answers 503 and starts nothing; `POST /job` may take this long beyond `REQUEST_TIMEOUT`"),
    inherited("SLEEP_TIME", Value("10"), ALL, "seconds to wait after the sidecar's callback before reading the job"),
    inherited("PORT", Value("8003"), ALL, "listening port"),
    // The second table: the variables this service added.
    added("HOST", Value("0.0.0.0"), ALL, "address to listen on"),
    added("LOG_FORMAT", Value("text"), ALL, "`text` or `json` log lines"),
    added("RUST_LOG", Value("info"), ALL, "log filter, in tracing's EnvFilter syntax (e.g. `info,multiomix_aws_emr=debug`)").read_by(LogFilter),
    added("REQUEST_TIMEOUT", Value("30"), ALL, "seconds a request may take before it is answered with an error"),
    added("HEADER_READ_TIMEOUT", Value("10"), ALL, "seconds a client has to send a request's headers; also how long an idle keep-alive connection stays open (then it is closed)"),
    added("BODY_READ_TIMEOUT", Value("10"), ALL, "seconds a client has to send a request's body, from the end of its headers; a body still arriving then is answered 408 (a Multiomix job request is under 1 KiB)"),
    added("MAX_CONNECTIONS", Value("2048"), ALL, "connections open at once; beyond this a new connection is closed at once"),
    added("MAX_CONCURRENT_REQUESTS", Value("1024"), ALL, "requests served at once; beyond this: 503 with `Retry-After` (load shedding)"),
    added("MAX_PENDING_CALLBACKS", Value("10000"), ALL, "job-end notices waiting at once; beyond this `PATCH /job/{id}` answers 503"),
    added("API_TOKEN", Empty, ALL, "when set, `/job` and `/jobs` need `Authorization: Bearer <API_TOKEN>`").secret(),
    added("CALLBACK_TOKEN", Empty, ALL, "when set, `PATCH /job/{id}` needs `Authorization: Bearer <CALLBACK_TOKEN>` (give the sidecar the same value)").secret(),
    added("JOB_BACKEND", Described("`emr` if `EMR_VIRTUAL_CLUSTER_ID` is set, else `local`"), ALL, "`emr` (EMR on EKS), `emr-serverless` (EMR Serverless), `emr-ec2` (steps on a standing EMR cluster on EC2), `livy` (batches through Apache Livy) or `local` (spark-submit on this machine)"),
    added("EMR_SERVERLESS_APPLICATION_ID", Required("`emr-serverless`"), &[EmrServerless], "EMR Serverless application the jobs run in; it holds the image and the release label"),
    added("EMR_SERVERLESS_EXECUTION_TIMEOUT", Described("(none: EMR Serverless's default)"), &[EmrServerless], "minutes a job run may take (`executionTimeoutMinutes`, 1 to 10080); a run stopped by it is reported FAILED, with a `stateDetails` that says it timed out"),
    added("EMR_CLUSTER_ID", Required("`emr-ec2`"), &[EmrEc2], "the EMR cluster on EC2 (`j-…`) whose steps run the jobs"),
    added("EMR_STEP_ACTION_ON_FAILURE", Value("CONTINUE"), &[EmrEc2], "with `emr-ec2`: each step's `ActionOnFailure`, `CONTINUE` or `CANCEL_AND_WAIT` (which also cancels the cluster's pending steps); the values that terminate the cluster are refused"),
    added("LIVY_URL", Required("`livy`"), &[Livy], "with `livy`: Livy's REST endpoint (`http://MASTER:8998` on EMR on EC2), or a gateway's path to it (Knox: `https://KNOX:8443/gateway/default/livy/v1`)"),
    added("LIVY_PACKAGE_URL", Required("`livy`"), &[Livy], "with `livy`: where the cluster reads the job package, `scripts/` and `py-files/` under it (`s3://BUCKET/`, `hdfs:///apps/multiomix/`)"),
    added("LIVY_USERNAME", Empty, &[Livy], "with `livy`: the HTTP Basic user (a Knox gateway, a Livy behind basic or LDAP authentication); needs `LIVY_PASSWORD`"),
    added("LIVY_PASSWORD", Empty, &[Livy], "with `livy`: the password of `LIVY_USERNAME`").secret(),
    added("LIVY_PROXY_USER", Empty, &[Livy], "with `livy`: each batch's `proxyUser`, the user its job runs as when Livy impersonates"),
    added("LIVY_QUEUE", Empty, &[Livy], "with `livy`: each batch's YARN `queue`"),
    added("LIVY_NAME_PREFIX", Value("multiomix-aws-emr"), &[Livy], "with `livy`: the first part of each batch's name (`<prefix>:<job id>:<app-name>:<job name>`), which marks this deployment's batches; deployments sharing one Livy need different prefixes (letters, digits, `.`, `_`, `-`)"),
    added("AWS_ENDPOINT_URL", Empty, STAGED, "standard AWS SDK variable: another EMR endpoint, such as a local emulator"),
    added("EMR_EXECUTOR_MEMORY_OVERHEAD", Described("`2g`; on EMR on EKS, none (the contract's spark-submit parameters)"), ALL, "`spark.executor.memoryOverhead`: an executor's memory beyond the JVM heap, where its Python workers live; on EMR on EKS it is sent only when set, so that the submission stays the contract's list unless you ask (set it there for TCGA-sized data, or size the executor pod template); YARN, Kubernetes and EMR Serverless size each executor's container as `EMR_EXECUTOR_MEMORY` plus this (see [Memory the service asks for the Python workers](jobs.md#memory-the-service-asks-for-the-python-workers)); a `local[...]` master and Spark standalone do not use it"),
    added("EMR_EXECUTOR_PYSPARK_MEMORY", Empty, ALL, "`spark.executor.pyspark.memory`: when set, a hard limit on the Python workers' address space (divided among an executor's cores), added to the container on YARN and Kubernetes; unset: no limit"),
    added("SPARK_SUBMIT", Value("spark-submit"), &[Local], "local backend: the spark-submit program"),
    added("SPARK_MASTER", Value("local[*]"), &[Local], "local backend: `--master`"),
    added("LOCAL_SCRIPTS_DIR", Value("scripts"), &[Local], "local backend: folder with the entry scripts and py-files"),
    added("LOCAL_LOG_DIR", Value("data/logs"), &[Local], "local backend: one log file per job"),
    added("LOCAL_MAX_CONCURRENT", Value("1"), &[Local], "local backend: jobs running at once; the others wait in PENDING"),
    added("LOCAL_CANCEL_GRACE", Value("10"), &[Local], "local backend: seconds between SIGTERM and SIGKILL when a job is cancelled"),
    added("POLL_INTERVAL", Value("10"), ALL, "seconds between reads of a job, after a callback, until it is in a final state; with EMR Serverless, EMR on EC2 and Livy (no callback), also the interval between batched reads of the unfinished jobs"),
    added("NOTIFY_INITIAL_BACKOFF", Value("5"), ALL, "seconds before the first retry of a job-end notice"),
    added("NOTIFY_MAX_BACKOFF", Value("600"), ALL, "longest wait between retries of a notice"),
    added("NOTIFY_GIVE_UP_AFTER", Value("259200"), ALL, "seconds after which an undelivered notice is given up (logged, and counted in `/metrics`)"),
    added("NOTIFY_TIMEOUT", Value("100"), ALL, "seconds one delivery attempt may take (Multiomix's proxy cuts at 120)"),
    added("NOTIFY_SECRET", Empty, ALL, "when set, notices are signed following Standard Webhooks (`webhook-id`, `webhook-timestamp`, `webhook-signature`)").secret(),
    added("PROGRESS_INTERVAL", Described("`5` on the local backend, `20` on the EMR backends"), ALL, "seconds between reads of the running jobs' progress reports (a file under `RESULTS_PATH/.progress/` locally, an object under `S3_RESULTS_PREFIX.progress/` on EMR); see [Job progress](job-progress.md)"),
    added("RECONCILE_INTERVAL", Value("60"), ALL, "seconds between checks of unfinished jobs against the backend (catches a missed callback)"),
    added("RECOVERY_WINDOW", Value("259200"), ALL, "on a start with an empty store, jobs of this service created this many seconds back are adopted"),
    added("DATABASE_URL", Value("sqlite:data/multiomix-aws-emr.db"), ALL, "the embedded SQLite store; its folder is created if missing (the container image uses `sqlite:/data/multiomix-aws-emr.db`)"),
];

/// The names of [`VARIABLES`], in the same order.
pub const KNOWN_VARIABLES: &[&str] = &names();

const fn names() -> [&'static str; VARIABLES.len()] {
    let mut out = [""; VARIABLES.len()];
    let mut i = 0;
    while i < out.len() {
        out[i] = VARIABLES[i].name;
        i += 1;
    }
    out
}

/// The row of `name`, if the service knows it.
pub fn variable(name: &str) -> Option<&'static Variable> {
    VARIABLES.iter().find(|v| v.name == name)
}

/// The configuration table `table`, header included. Variables next to each other with the
/// same default and meaning share a row (`AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY`).
pub fn configuration_table(table: Table) -> String {
    let mut out = String::from("| Variable | Default | Meaning |\n|---|---|---|\n");
    let rows: Vec<&Variable> = VARIABLES.iter().filter(|v| v.table == table).collect();
    let mut i = 0;
    while i < rows.len() {
        let first = rows[i];
        let mut names = vec![format!("`{}`", first.name)];
        i += 1;
        while i < rows.len()
            && rows[i].when_unset == first.when_unset
            && rows[i].meaning == first.meaning
        {
            names.push(format!("`{}`", rows[i].name));
            i += 1;
        }
        out.push_str(&format!(
            "| {} | {} | {} |\n",
            names.join(", "),
            first.documented_default(),
            first.meaning
        ));
    }
    out
}

/// The variables as they come from the environment, completed by [`with_defaults`] with
/// the defaults of their rows; [`Config::from_raw`] checks them and gives them their
/// final types. A field is an `Option` exactly when its row has no plain default.
#[derive(Debug, Deserialize)]
#[cfg_attr(test, derive(serde::Serialize))]
pub(super) struct Raw {
    pub(super) port: u16,
    pub(super) host: String,
    pub(super) log_format: LogFormat,
    pub(super) request_timeout: f64,
    pub(super) header_read_timeout: f64,
    pub(super) body_read_timeout: f64,
    pub(super) max_connections: usize,
    pub(super) max_concurrent_requests: usize,
    pub(super) max_pending_callbacks: usize,
    pub(super) api_token: Option<Secret>,
    pub(super) callback_token: Option<Secret>,

    pub(super) job_backend: Option<String>,

    pub(super) emr_virtual_cluster_id: Option<String>,
    pub(super) emr_release_label: String,
    pub(super) emr_execution_role_arn: Option<String>,
    pub(super) emr_s3_bucket: Option<String>,
    pub(super) emr_image: Option<String>,
    pub(super) emr_driver_template: Option<String>,
    pub(super) emr_driver_cores: String,
    pub(super) emr_driver_memory: String,
    pub(super) emr_executor_template: Option<String>,
    pub(super) emr_executor_cores: String,
    pub(super) emr_executor_memory: String,
    pub(super) emr_driver_max_result_size: String,
    pub(super) emr_executor_heartbeat_interval: String,
    pub(super) emr_network_timeout: String,
    pub(super) emr_executor_instances: String,
    pub(super) emr_executor_memory_overhead: Option<String>,
    pub(super) emr_executor_pyspark_memory: Option<String>,
    pub(super) eks_emr_service_url: String,
    pub(super) emr_serverless_application_id: Option<String>,
    pub(super) emr_serverless_execution_timeout: Option<u32>,
    pub(super) emr_cluster_id: Option<String>,
    pub(super) emr_step_action_on_failure: String,
    pub(super) aws_default_region: String,
    pub(super) aws_endpoint_url: Option<String>,

    pub(super) livy_url: Option<String>,
    pub(super) livy_package_url: Option<String>,
    pub(super) livy_username: Option<String>,
    pub(super) livy_password: Option<Secret>,
    pub(super) livy_proxy_user: Option<String>,
    pub(super) livy_queue: Option<String>,
    pub(super) livy_name_prefix: String,

    /// Unset is told from set: with staging on EMR Serverless and EMR on EC2 the
    /// defaults are the S3 prefixes.
    pub(super) datasets_path: Option<String>,
    pub(super) results_path: Option<String>,
    pub(super) algo_blind_search_entrypoint: String,
    pub(super) algo_blind_search_py_files: String,
    pub(super) algo_bbha_entrypoint: String,
    pub(super) algo_bbha_py_files: String,
    pub(super) entrypoint_args_key_prefix: String,

    pub(super) data_staging: String,
    pub(super) shared_datasets_dir: Option<PathBuf>,
    pub(super) shared_results_dir: Option<PathBuf>,
    pub(super) s3_datasets_prefix: Option<String>,
    pub(super) s3_results_prefix: Option<String>,
    pub(super) datasets_cleanup: String,
    pub(super) results_fetch_timeout: f64,
    pub(super) staging_upload_timeout: f64,

    pub(super) spark_submit: String,
    pub(super) spark_master: String,
    pub(super) local_scripts_dir: PathBuf,
    pub(super) local_log_dir: PathBuf,
    pub(super) local_max_concurrent: usize,
    pub(super) local_cancel_grace: f64,

    pub(super) multiomix_url: String,
    pub(super) sleep_time: f64,
    pub(super) poll_interval: f64,
    pub(super) notify_initial_backoff: f64,
    pub(super) notify_max_backoff: f64,
    pub(super) notify_give_up_after: f64,
    pub(super) notify_timeout: f64,
    pub(super) notify_secret: Option<Secret>,
    pub(super) reconcile_interval: f64,
    pub(super) recovery_window: f64,
    /// Its default depends on the backend.
    pub(super) progress_interval: Option<f64>,

    pub(super) database_url: String,
}

/// `vars` completed with the default of each variable the service reads that is not
/// among them, so that [`Raw`] takes its defaults from the rows and has none of its own.
pub(super) fn with_defaults(mut vars: Vec<(String, String)>) -> Vec<(String, String)> {
    for v in VARIABLES.iter().filter(|v| v.read_by == ReadBy::Config) {
        if let Value(default) = v.when_unset {
            // envy matches names whatever their case.
            if !vars
                .iter()
                .any(|(name, _)| name.eq_ignore_ascii_case(v.name))
            {
                vars.push((v.name.to_owned(), default.to_owned()));
            }
        }
    }
    vars
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use serde_json::Value as Json;

    use super::*;
    use crate::config::{Config, ConfigError};

    /// `Raw` read from `vars` and the defaults, as JSON: one key per field, secrets as a
    /// marker.
    fn raw(vars: &[(&str, &str)]) -> serde_json::Map<String, Json> {
        let vars = vars.iter().map(|(k, v)| (k.to_string(), v.to_string()));
        let raw: Raw = envy::from_iter(with_defaults(vars.collect())).unwrap();
        match serde_json::to_value(raw).unwrap() {
            Json::Object(fields) => fields,
            other => panic!("Raw is not a struct: {other}"),
        }
    }

    fn field(name: &str) -> String {
        name.to_ascii_lowercase()
    }

    fn read_by_config() -> impl Iterator<Item = &'static Variable> {
        VARIABLES.iter().filter(|v| v.read_by == ReadBy::Config)
    }

    #[test]
    fn every_field_of_raw_has_exactly_one_row_and_every_row_read_by_the_config_a_field() {
        let names: Vec<&str> = VARIABLES.iter().map(|v| v.name).collect();
        let unique: BTreeSet<&str> = names.iter().copied().collect();
        assert_eq!(unique.len(), names.len(), "a name has two rows: {names:?}");
        assert_eq!(KNOWN_VARIABLES, names.as_slice());

        let fields: BTreeSet<String> = raw(&[]).keys().cloned().collect();
        let rows: BTreeSet<String> = read_by_config().map(|v| field(v.name)).collect();
        assert_eq!(fields, rows, "fields of Raw / rows read by the config");
        for v in VARIABLES.iter().filter(|v| v.read_by != ReadBy::Config) {
            assert!(!fields.contains(&field(v.name)), "{} is a field", v.name);
        }
    }

    #[test]
    fn a_field_has_a_default_exactly_when_its_row_has_a_plain_one() {
        let unset = raw(&[]);
        let defaults = with_defaults(Vec::new());
        let mut plain = 0;
        for v in read_by_config() {
            let applied = &unset[&field(v.name)];
            match v.when_unset {
                Value(_) => {
                    // Without its default the field is missing: Raw has none of its own.
                    let without = defaults.iter().filter(|(k, _)| k != v.name).cloned();
                    match envy::from_iter::<_, Raw>(without) {
                        Err(envy::Error::MissingValue(missing)) => {
                            assert_eq!(missing, field(v.name))
                        }
                        other => panic!("{} without its default: {other:?}", v.name),
                    }
                    assert!(!applied.is_null(), "{}", v.name);
                    plain += 1;
                }
                Empty | Required(_) | Described(_) => {
                    assert!(applied.is_null(), "{} unset is {applied}", v.name)
                }
            }
        }
        assert_eq!(defaults.len(), plain);
        assert!(plain > 40, "{plain}");
    }

    #[test]
    fn the_job_paths_default_to_the_folders_their_rows_name() {
        let c = Config::from_vars(Vec::new()).unwrap();
        for (name, path) in [
            ("DATASETS_PATH", &c.job.datasets_path),
            ("RESULTS_PATH", &c.job.results_path),
        ] {
            let row = variable(name).unwrap();
            assert_eq!(row.documented_default(), format!("`{path}`"));
        }
    }

    #[test]
    fn a_variable_is_secret_exactly_when_the_config_keeps_it_as_a_secret() {
        for v in read_by_config() {
            let probe = match v.when_unset {
                Value(value) => value,
                _ => "7",
            };
            let read = &raw(&[(v.name, probe)])[&field(v.name)];
            assert_eq!(
                read == "[redacted]",
                v.secret,
                "{} reads as {read} but its row says secret: {}",
                v.name,
                v.secret
            );
        }
    }

    /// The required variables start-up names, with only `vars` set.
    fn missing(vars: &[(&str, &str)]) -> BTreeSet<&'static str> {
        let vars = vars.iter().map(|(k, v)| (k.to_string(), v.to_string()));
        match Config::from_vars(vars) {
            Err(ConfigError::Missing(names)) => names.into_iter().collect(),
            Err(other) => panic!("{other}"),
            Ok(_) => BTreeSet::new(),
        }
    }

    fn required_rows(staging: bool, backend: BackendKind) -> BTreeSet<&'static str> {
        VARIABLES
            .iter()
            .filter(|v| v.backends.contains(&backend))
            .filter(|v| matches!(v.when_unset, Required(when) if when.contains("DATA_STAGING") == staging))
            .map(|v| v.name)
            .collect()
    }

    #[test]
    fn the_required_rows_are_the_variables_start_up_asks_for() {
        let dirs = tempfile::tempdir().unwrap();
        let dir = dirs.path().to_str().unwrap();
        // A value of the form start-up checks, for the variables that have one.
        let value = |name: &str| match name {
            "EMR_CLUSTER_ID" => "j-ABC",
            "LIVY_URL" => "http://livy:8998",
            "LIVY_PACKAGE_URL" => "s3://bucket/multiomix/",
            _ => "x",
        };
        for backend in BackendKind::ALL {
            let name = backend.to_string();
            let asked = missing(&[("JOB_BACKEND", &name)]);
            assert_eq!(asked, required_rows(false, backend), "{name}");

            let mut vars: Vec<(&str, &str)> = vec![("JOB_BACKEND", &name), ("DATA_STAGING", "s3")];
            vars.extend(asked.iter().map(|n| (*n, value(n))));
            assert_eq!(
                missing(&vars),
                required_rows(true, backend),
                "{name} staged"
            );
            vars.extend([("SHARED_DATASETS_DIR", dir), ("SHARED_RESULTS_DIR", dir)]);
            assert!(missing(&vars).is_empty(), "{name}");
        }
    }
}
