//! Configuration: every environment variable the service reads, with its default, read
//! once at start-up and checked before the server listens.
//!
//! The names and defaults of the variables inherited from the Python service are part of
//! the contract with existing deployments and must not change.

use std::net::IpAddr;
use std::time::Duration;

mod backends;
mod settings;
mod variables;

pub use settings::*;
pub use variables::{
    configuration_table, variable, ReadBy, Table, Variable, WhenUnset, KNOWN_VARIABLES, VARIABLES,
};
use variables::{with_defaults, Raw};

/// Why the configuration cannot be used. Start-up stops with this message.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("missing required environment variable(s): {}", .0.join(", "))]
    Missing(Vec<&'static str>),
    #[error("invalid environment variable {name}: {reason}")]
    Invalid { name: &'static str, reason: String },
    #[error("cannot read the environment: {0}")]
    Unreadable(String),
}

fn invalid(name: &'static str, reason: impl Into<String>) -> ConfigError {
    ConfigError::Invalid {
        name,
        reason: reason.into(),
    }
}

#[derive(Clone, Debug)]
pub struct Config {
    /// The backend that runs the jobs, with its own settings.
    pub backend: BackendSettings,
    pub server: ServerSettings,
    pub spark: SparkSettings,
    pub job: JobSettings,
    pub notify: NotifySettings,
    /// Present exactly when `DATA_STAGING=s3` and an EMR backend or Livy runs: the local backend's
    /// jobs read the shared folders themselves.
    pub staging: Option<StagingSettings>,
    pub progress: ProgressSettings,
    pub database_url: String,
}

impl Config {
    /// Reads the process environment.
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_vars(std::env::vars())
    }

    /// Reads the given variables as if they were the environment; what tests use.
    pub fn from_vars<I>(vars: I) -> Result<Self, ConfigError>
    where
        I: IntoIterator<Item = (String, String)>,
    {
        // An empty variable (`EMR_IMAGE=` in a compose file) means "unset", as in a shell.
        let vars = vars.into_iter().filter(|(_, v)| !v.trim().is_empty());
        let raw: Raw = envy::from_iter(with_defaults(vars.collect())).map_err(|e| match e {
            envy::Error::MissingValue(name) => ConfigError::Unreadable(format!("{name} missing")),
            envy::Error::Custom(msg) => match msg.split_once(' ') {
                // envy says "<reason> while parsing value '<v>' provided by <NAME>".
                _ if msg.contains("provided by") => {
                    let name = msg.rsplit(' ').next().unwrap_or_default().to_uppercase();
                    let name = variable(&name).map_or("(unknown)", |v| v.name);
                    invalid(name, msg.clone())
                }
                _ => ConfigError::Unreadable(msg),
            },
        })?;
        Self::from_raw(raw)
    }

    fn from_raw(raw: Raw) -> Result<Self, ConfigError> {
        let kind = match raw.job_backend.as_deref() {
            Some(name) => BackendKind::parse(name).map_err(|why| invalid("JOB_BACKEND", why))?,
            None if raw.emr_virtual_cluster_id.is_some() => BackendKind::Emr,
            None => BackendKind::Local,
        };

        backends::required_first(kind, &raw)?;
        let staging = match raw.data_staging.to_ascii_lowercase().as_str() {
            "off" => None,
            "s3" if !kind.stages_data() => None,
            "s3" => Some(staging_settings(&raw, kind)?),
            other => {
                return Err(invalid(
                    "DATA_STAGING",
                    format!("'{other}' is neither 's3' nor 'off'"),
                ))
            }
        };
        let (datasets_path, results_path) = job_paths(&raw, kind, staging.as_ref())?;

        let backend = backends::settings(kind, &raw, staging.as_ref())?;

        let host: IpAddr = raw
            .host
            .parse()
            .map_err(|_| invalid("HOST", format!("'{}' is not an IP address", raw.host)))?;
        if raw.max_connections == 0 {
            return Err(invalid("MAX_CONNECTIONS", "must be at least 1"));
        }
        if raw.max_concurrent_requests == 0 {
            return Err(invalid("MAX_CONCURRENT_REQUESTS", "must be at least 1"));
        }
        if raw.max_pending_callbacks == 0 {
            return Err(invalid("MAX_PENDING_CALLBACKS", "must be at least 1"));
        }
        let url = raw.multiomix_url.trim_end_matches('/').to_string();
        if !(url.starts_with("http://") || url.starts_with("https://")) {
            return Err(invalid(
                "MULTIOMIX_URL",
                format!("'{url}' is not an http(s) URL"),
            ));
        }
        for (name, value) in [
            ("EMR_DRIVER_CORES", &raw.emr_driver_cores),
            ("EMR_DRIVER_MEMORY", &raw.emr_driver_memory),
            ("EMR_EXECUTOR_CORES", &raw.emr_executor_cores),
            ("EMR_EXECUTOR_MEMORY", &raw.emr_executor_memory),
            (
                "EMR_DRIVER_MAX_RESULT_SIZE",
                &raw.emr_driver_max_result_size,
            ),
            (
                "EMR_EXECUTOR_HEARTBEAT_INTERVAL",
                &raw.emr_executor_heartbeat_interval,
            ),
            ("EMR_NETWORK_TIMEOUT", &raw.emr_network_timeout),
            ("EMR_EXECUTOR_INSTANCES", &raw.emr_executor_instances),
            ("DATASETS_PATH", &datasets_path),
            ("RESULTS_PATH", &results_path),
            (
                "ALGO_BLIND_SEARCH_ENTRYPOINT",
                &raw.algo_blind_search_entrypoint,
            ),
            (
                "ALGO_BLIND_SEARCH_PY_FILES",
                &raw.algo_blind_search_py_files,
            ),
            ("ALGO_BBHA_ENTRYPOINT", &raw.algo_bbha_entrypoint),
            ("ALGO_BBHA_PY_FILES", &raw.algo_bbha_py_files),
        ] {
            // These end up inside the space-separated spark-submit string.
            if value.chars().any(char::is_whitespace) {
                return Err(invalid(name, "must not contain white space"));
            }
        }
        if let BackendSettings::EmrEks(emr) = &backend {
            for (name, value) in [
                ("EMR_IMAGE", &emr.image),
                ("EMR_DRIVER_TEMPLATE", &emr.driver_template),
                ("EMR_EXECUTOR_TEMPLATE", &emr.executor_template),
            ] {
                if value
                    .as_deref()
                    .is_some_and(|v| v.chars().any(char::is_whitespace))
                {
                    return Err(invalid(name, "must not contain white space"));
                }
            }
        }

        // Spark sizes: refused at start-up rather than by spark-submit, job after job.
        for (name, value) in [
            (
                "EMR_EXECUTOR_MEMORY_OVERHEAD",
                raw.emr_executor_memory_overhead.as_ref(),
            ),
            (
                "EMR_EXECUTOR_PYSPARK_MEMORY",
                raw.emr_executor_pyspark_memory.as_ref(),
            ),
        ] {
            if let Some(value) = value.filter(|v| !is_spark_size(v)) {
                return Err(invalid(
                    name,
                    format!("'{value}' is not a Spark memory size such as 512m or 2g"),
                ));
            }
        }

        let progress = progress_settings(&raw, kind, staging.as_ref(), &results_path)?;

        let signing_key = raw
            .notify_secret
            .as_ref()
            .map(SigningKey::from_secret)
            .transpose()
            .map_err(|why| invalid("NOTIFY_SECRET", why))?;

        Ok(Config {
            backend,
            server: ServerSettings {
                host,
                port: raw.port,
                log_format: raw.log_format,
                request_timeout: seconds("REQUEST_TIMEOUT", raw.request_timeout)?,
                max_concurrent_requests: raw.max_concurrent_requests,
                header_read_timeout: positive_seconds(
                    "HEADER_READ_TIMEOUT",
                    raw.header_read_timeout,
                )?,
                body_read_timeout: positive_seconds("BODY_READ_TIMEOUT", raw.body_read_timeout)?,
                max_connections: raw.max_connections,
                max_pending_callbacks: raw.max_pending_callbacks,
                api_token: raw.api_token,
                callback_token: raw.callback_token,
            },
            spark: SparkSettings {
                driver_cores: raw.emr_driver_cores,
                driver_memory: raw.emr_driver_memory,
                executor_cores: raw.emr_executor_cores,
                executor_memory: raw.emr_executor_memory,
                driver_max_result_size: raw.emr_driver_max_result_size,
                executor_heartbeat_interval: raw.emr_executor_heartbeat_interval,
                network_timeout: raw.emr_network_timeout,
                executor_instances: raw.emr_executor_instances,
                executor_memory_overhead: raw.emr_executor_memory_overhead,
                executor_pyspark_memory: raw.emr_executor_pyspark_memory,
            },
            job: JobSettings {
                datasets_path,
                results_path,
                blind_search_entrypoint: raw.algo_blind_search_entrypoint,
                blind_search_py_files: raw.algo_blind_search_py_files,
                bbha_entrypoint: raw.algo_bbha_entrypoint,
                bbha_py_files: raw.algo_bbha_py_files,
                args_key_prefix: raw.entrypoint_args_key_prefix,
            },
            notify: NotifySettings {
                multiomix_url: url,
                sleep_time: seconds("SLEEP_TIME", raw.sleep_time)?,
                poll_interval: positive_seconds("POLL_INTERVAL", raw.poll_interval)?,
                initial_backoff: positive_seconds(
                    "NOTIFY_INITIAL_BACKOFF",
                    raw.notify_initial_backoff,
                )?,
                max_backoff: positive_seconds("NOTIFY_MAX_BACKOFF", raw.notify_max_backoff)?,
                give_up_after: seconds("NOTIFY_GIVE_UP_AFTER", raw.notify_give_up_after)?,
                timeout: positive_seconds("NOTIFY_TIMEOUT", raw.notify_timeout)?,
                signing_key,
                reconcile_interval: positive_seconds("RECONCILE_INTERVAL", raw.reconcile_interval)?,
                recovery_window: seconds("RECOVERY_WINDOW", raw.recovery_window)?,
            },
            staging,
            progress,
            database_url: raw.database_url,
        })
    }
}

/// `PROGRESS_INTERVAL` when unset: a local job's file is cheap to read; an EMR job's
/// report is one S3 request per job and read.
const LOCAL_PROGRESS_INTERVAL: f64 = 5.0;
const EMR_PROGRESS_INTERVAL: f64 = 20.0;

/// Where the jobs' progress reports can be read, and how often. The job writes them
/// beside `RESULTS_PATH` as it receives it (or `PROGRESS_PATH`, which EMR on EKS gets
/// with staging: the results prefix).
fn progress_settings(
    raw: &Raw,
    backend: BackendKind,
    staging: Option<&StagingSettings>,
    results_path: &str,
) -> Result<ProgressSettings, ConfigError> {
    // A file on this machine is cheap to read; a report in S3 is a request per job.
    let default = if backend.runs_here() {
        LOCAL_PROGRESS_INTERVAL
    } else {
        EMR_PROGRESS_INTERVAL
    };
    let interval = positive_seconds(
        "PROGRESS_INTERVAL",
        raw.progress_interval.unwrap_or(default),
    )?;
    let source = match staging {
        Some(staging) => ProgressSource::S3(staging.results.clone()),
        None if results_path.starts_with("s3://") => match S3Location::parse(results_path) {
            Ok(location) => ProgressSource::S3(location),
            Err(why) => return Err(invalid("RESULTS_PATH", why)),
        },
        None if backend.runs_here() => {
            ProgressSource::Folder(std::path::PathBuf::from(results_path))
        }
        None => ProgressSource::Unreadable,
    };
    Ok(ProgressSettings {
        interval,
        source,
        region: raw.aws_default_region.clone(),
        endpoint_url: raw.aws_endpoint_url.clone(),
    })
}

/// Four fifths of the request timeout (24 s of the default 30 s), leaving the rest for
/// the store writes around a `StartJobRun`.
pub fn emr_call_timeout(request_timeout: Duration) -> Duration {
    request_timeout.mul_f64(0.8)
}

/// The settings of `DATA_STAGING=s3` on an EMR backend or Livy.
fn staging_settings(raw: &Raw, kind: BackendKind) -> Result<StagingSettings, ConfigError> {
    let missing: Vec<&'static str> = [
        ("SHARED_DATASETS_DIR", raw.shared_datasets_dir.is_none()),
        ("SHARED_RESULTS_DIR", raw.shared_results_dir.is_none()),
    ]
    .into_iter()
    .filter_map(|(name, absent)| absent.then_some(name))
    .collect();
    if !missing.is_empty() {
        return Err(ConfigError::Missing(missing));
    }
    let datasets_dir = raw.shared_datasets_dir.clone().unwrap_or_default();
    let results_dir = raw.shared_results_dir.clone().unwrap_or_default();
    readable_dir("SHARED_DATASETS_DIR", &datasets_dir)?;
    writable_dir("SHARED_RESULTS_DIR", &results_dir)?;
    // The EMR backends' bucket; Livy has none of its own but that of its package, when
    // the package is in S3.
    let bucket = match kind {
        BackendKind::Livy => raw
            .livy_package_url
            .as_deref()
            .and_then(backends::s3_bucket_of)
            .map(str::to_owned),
        // Unset, it stops start-up with the backend's own variables, named.
        _ => Some(raw.emr_s3_bucket.clone().unwrap_or_default()),
    };
    let prefix = |name: &'static str, given: &Option<String>, default: &str| match given {
        Some(url) => S3Location::parse(url).map_err(|why| invalid(name, why)),
        None => match &bucket {
            Some(bucket) => Ok(S3Location {
                bucket: bucket.clone(),
                prefix: default.into(),
            }),
            None => Err(invalid(
                name,
                "has no default here: LIVY_PACKAGE_URL is not in S3, so set \
                 S3_DATASETS_PREFIX and S3_RESULTS_PREFIX",
            )),
        },
    };
    let datasets = prefix("S3_DATASETS_PREFIX", &raw.s3_datasets_prefix, "datasets/")?;
    let results = prefix("S3_RESULTS_PREFIX", &raw.s3_results_prefix, "results/")?;
    if datasets.bucket == results.bucket
        && (datasets.prefix.starts_with(&results.prefix)
            || results.prefix.starts_with(&datasets.prefix))
    {
        return Err(invalid(
            "S3_RESULTS_PREFIX",
            format!(
                "'{results}' and S3_DATASETS_PREFIX '{datasets}' overlap: the clean-up of \
                 datasets could delete results"
            ),
        ));
    }
    let cleanup_datasets = match raw.datasets_cleanup.to_ascii_lowercase().as_str() {
        "on" => true,
        "off" => false,
        other => {
            return Err(invalid(
                "DATASETS_CLEANUP",
                format!("'{other}' is neither 'on' nor 'off'"),
            ))
        }
    };
    Ok(StagingSettings {
        datasets_dir,
        results_dir,
        datasets,
        results,
        cleanup_datasets,
        fetch_timeout: positive_seconds("RESULTS_FETCH_TIMEOUT", raw.results_fetch_timeout)?,
        upload_timeout: positive_seconds("STAGING_UPLOAD_TIMEOUT", raw.staging_upload_timeout)?,
        region: raw.aws_default_region.clone(),
        endpoint_url: raw.aws_endpoint_url.clone(),
        call_timeout: emr_call_timeout(seconds("REQUEST_TIMEOUT", raw.request_timeout)?),
    })
}

/// `DATASETS_PATH` and `RESULTS_PATH` without staging (their rows say so too).
const DEFAULT_DATASETS_PATH: &str = "/var/data";
const DEFAULT_RESULTS_PATH: &str = "/var/results";

/// `DATASETS_PATH` and `RESULTS_PATH` as the job gets them. On EMR on EKS they are the
/// pod's volumes whatever staging does. With staging on EMR Serverless and EMR on EC2 the
/// job reads and writes the S3 prefixes themselves, so those are the defaults, and a
/// different value (a job looking where nothing was uploaded) stops start-up.
fn job_paths(
    raw: &Raw,
    backend: BackendKind,
    staging: Option<&StagingSettings>,
) -> Result<(String, String), ConfigError> {
    let staged = staging.filter(|_| backend.job_reads_s3());
    let Some(staging) = staged else {
        return Ok((
            raw.datasets_path
                .clone()
                .unwrap_or_else(|| DEFAULT_DATASETS_PATH.to_owned()),
            raw.results_path
                .clone()
                .unwrap_or_else(|| DEFAULT_RESULTS_PATH.to_owned()),
        ));
    };
    let path = |name: &'static str, given: &Option<String>, location: &S3Location, prefix_name| {
        let expected = location.to_string();
        match given {
            None => Ok(expected),
            Some(v) if v.trim_end_matches('/') == expected.trim_end_matches('/') => Ok(expected),
            Some(v) => Err(invalid(
                name,
                format!(
                    "is '{v}', but with DATA_STAGING=s3 the job must use {prefix_name} \
                     ('{expected}'): leave {name} unset or set it to that"
                ),
            )),
        }
    };
    Ok((
        path(
            "DATASETS_PATH",
            &raw.datasets_path,
            &staging.datasets,
            "S3_DATASETS_PREFIX",
        )?,
        path(
            "RESULTS_PATH",
            &raw.results_path,
            &staging.results,
            "S3_RESULTS_PREFIX",
        )?,
    ))
}

/// Start-up stops on a results folder the service cannot write: a file is created and
/// removed in it.
fn writable_dir(name: &'static str, dir: &std::path::Path) -> Result<(), ConfigError> {
    readable_dir(name, dir)?;
    let probe = dir.join(format!(".multiomix-aws-emr-probe-{}", std::process::id()));
    std::fs::write(&probe, b"")
        .and_then(|()| std::fs::remove_file(&probe))
        .map_err(|e| invalid(name, format!("cannot write in '{}': {e}", dir.display())))
}

/// Start-up stops on a shared folder that is missing or that the service cannot list.
fn readable_dir(name: &'static str, dir: &std::path::Path) -> Result<(), ConfigError> {
    if !dir.is_dir() {
        return Err(invalid(
            name,
            format!("'{}' is not a folder", dir.display()),
        ));
    }
    std::fs::read_dir(dir)
        .map(drop)
        .map_err(|e| invalid(name, format!("cannot read '{}': {e}", dir.display())))
}

/// Durations are given in seconds; fractions are allowed so tests can run in milliseconds.
/// A size as Spark reads it: digits and an optional unit (`k`, `m`, `g`, `t`, `p`, with
/// or without `b`), such as `512m` or `2g`. Digits alone are mebibytes for the settings
/// it is used on.
fn is_spark_size(value: &str) -> bool {
    let lower = value.to_ascii_lowercase();
    let digits = lower.trim_end_matches(|c: char| c.is_ascii_alphabetic());
    let unit = &lower[digits.len()..];
    !digits.is_empty()
        && digits.bytes().all(|b| b.is_ascii_digit())
        && [
            "", "b", "k", "kb", "m", "mb", "g", "gb", "t", "tb", "p", "pb",
        ]
        .contains(&unit)
}

fn seconds(name: &'static str, value: f64) -> Result<Duration, ConfigError> {
    Duration::try_from_secs_f64(value)
        .map_err(|_| invalid(name, format!("{value} is not a number of seconds")))
}

fn positive_seconds(name: &'static str, value: f64) -> Result<Duration, ConfigError> {
    let d = seconds(name, value)?;
    if d.is_zero() {
        return Err(invalid(name, "must be more than 0"));
    }
    Ok(d)
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use super::*;

    fn vars(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    const EMR_REQUIRED: &[(&str, &str)] = &[
        ("EMR_VIRTUAL_CLUSTER_ID", "vc123"),
        (
            "EMR_EXECUTION_ROLE_ARN",
            "arn:aws:iam::123456789012:role/job",
        ),
        ("EMR_S3_BUCKET", "bucket"),
    ];

    #[test]
    fn progress_is_read_where_the_jobs_write_it_and_as_often_as_the_backend_affords() {
        let c = Config::from_vars(vars(&[("RESULTS_PATH", "data/results")])).unwrap();
        assert_eq!(c.progress.interval, Duration::from_secs(5));
        assert_eq!(
            c.progress.source,
            ProgressSource::Folder(PathBuf::from("data/results"))
        );
        let c = Config::from_vars(vars(&[("RESULTS_PATH", "s3://b/out")])).unwrap();
        assert_eq!(
            c.progress.source,
            ProgressSource::S3(S3Location::parse("s3://b/out/").unwrap())
        );

        let c = Config::from_vars(vars(EMR_REQUIRED)).unwrap();
        assert_eq!(c.progress.interval, Duration::from_secs(20));
        assert_eq!(c.progress.source, ProgressSource::Unreadable);

        let dir = tempfile::tempdir().unwrap();
        let folder = dir.path().to_str().unwrap();
        let mut staged = vars(EMR_REQUIRED);
        staged.extend(vars(&[
            ("DATA_STAGING", "s3"),
            ("SHARED_DATASETS_DIR", folder),
            ("SHARED_RESULTS_DIR", folder),
            ("PROGRESS_INTERVAL", "2.5"),
        ]));
        let c = Config::from_vars(staged).unwrap();
        assert_eq!(c.progress.interval, Duration::from_millis(2500));
        assert_eq!(
            c.progress.source,
            ProgressSource::S3(S3Location::parse("s3://bucket/results/").unwrap())
        );

        let err = Config::from_vars(vars(&[("PROGRESS_INTERVAL", "0")])).unwrap_err();
        assert!(err.to_string().contains("PROGRESS_INTERVAL"), "{err}");
    }

    #[test]
    fn python_memory_sizes_default_for_tcga_data_and_bad_sizes_stop_start_up() {
        // Unset: the backends apply DEFAULT_MEMORY_OVERHEAD, except EMR on EKS.
        let c = Config::from_vars(Vec::new()).unwrap();
        assert_eq!(c.spark.executor_memory_overhead, None);
        assert_eq!(c.spark.executor_pyspark_memory, None);
        let c = Config::from_vars(vars(&[
            ("EMR_EXECUTOR_MEMORY_OVERHEAD", "3072m"),
            ("EMR_EXECUTOR_PYSPARK_MEMORY", "1G"),
        ]))
        .unwrap();
        assert_eq!(c.spark.executor_memory_overhead.as_deref(), Some("3072m"));
        assert_eq!(c.spark.executor_pyspark_memory.as_deref(), Some("1G"));
        for (name, value) in [
            ("EMR_EXECUTOR_MEMORY_OVERHEAD", "2 g"),
            ("EMR_EXECUTOR_MEMORY_OVERHEAD", "lots"),
            ("EMR_EXECUTOR_PYSPARK_MEMORY", "1.5g"),
            ("EMR_EXECUTOR_PYSPARK_MEMORY", "g"),
        ] {
            match Config::from_vars(vars(&[(name, value)])) {
                Err(e) => assert!(e.to_string().contains(name), "{e}"),
                Ok(_) => panic!("{name}={value} was accepted"),
            }
        }
    }

    #[test]
    fn spark_masters_of_every_kind_the_local_backend_runs_are_read_and_cluster_mode_is_refused() {
        let master = |value: &str| {
            Config::from_vars(vars(&[("SPARK_MASTER", value)]))
                .map(|c| c.backend.local().unwrap().spark_master.clone())
        };
        for local in [
            "local",
            "local[2]",
            "local[*]",
            "local[4,3]",
            "local-cluster[2,1,1024]",
        ] {
            assert_eq!(master(local).unwrap(), SparkMaster::Local(local.into()));
        }
        for standalone in ["spark://10.0.0.5:7077", "spark://m1:7077,m2:7077"] {
            let m = master(standalone).unwrap();
            assert_eq!(m, SparkMaster::Standalone(standalone.into()));
            assert!(m.is_cluster());
        }
        assert_eq!(master("yarn").unwrap(), SparkMaster::Yarn);
        for (refused, why) in [
            ("yarn-cluster", "cluster mode"),
            ("k8s://https://api:6443", "JOB_BACKEND=emr"),
            ("spark://nohost", "spark://host:port"),
            ("spark://h:7077/", "spark://host:port"),
            ("mesos://m:5050", "local[...], spark://host:port or yarn"),
            ("127.0.0.1:7077", "local[...], spark://host:port or yarn"),
        ] {
            let e = master(refused).unwrap_err().to_string();
            assert!(
                e.contains("SPARK_MASTER") && e.contains(why),
                "{refused}: {e}"
            );
        }
    }

    #[test]
    fn defaults_match_the_contract() {
        let c = Config::from_vars(vars(EMR_REQUIRED)).unwrap();
        assert_eq!(c.backend.kind(), BackendKind::Emr);
        assert_eq!(c.server.port, 8003);
        let emr = c.backend.emr_eks().unwrap();
        assert_eq!(emr.release_label, "emr-6.9.0-latest");
        assert_eq!(emr.region, "us-east-1");
        assert_eq!(emr.service_url, "multiomix-aws-emr");
        assert_eq!(emr.image, None);
        assert_eq!(c.spark.driver_cores, "1");
        assert_eq!(c.spark.driver_memory, "4g");
        assert_eq!(c.spark.executor_cores, "1");
        assert_eq!(c.spark.executor_memory, "4g");
        assert_eq!(c.spark.driver_max_result_size, "2g");
        assert_eq!(c.spark.executor_heartbeat_interval, "600s");
        assert_eq!(c.spark.network_timeout, "2400s");
        assert_eq!(c.spark.executor_instances, "3");
        assert_eq!(c.job.datasets_path, "/var/data");
        assert_eq!(c.job.results_path, "/var/results");
        assert_eq!(c.job.blind_search_entrypoint, "main.py");
        assert_eq!(c.job.bbha_py_files, "scripts.zip");
        assert_eq!(c.job.args_key_prefix, "--");
        assert_eq!(
            c.notify.multiomix_url,
            "http://multiomix/feature-selection/aws-notification"
        );
        assert_eq!(c.notify.sleep_time, Duration::from_secs(10));
        assert_eq!(c.notify.poll_interval, Duration::from_secs(10));
        assert_eq!(c.notify.initial_backoff, Duration::from_secs(5));
        assert_eq!(c.notify.max_backoff, Duration::from_secs(600));
        assert_eq!(c.notify.give_up_after, Duration::from_secs(259_200));
        assert_eq!(c.notify.timeout, Duration::from_secs(100));
        assert_eq!(c.notify.reconcile_interval, Duration::from_secs(60));
        assert_eq!(c.database_url, "sqlite:data/multiomix-aws-emr.db");
    }

    #[test]
    fn every_missing_required_variable_is_named() {
        let err = Config::from_vars(vars(&[("JOB_BACKEND", "emr")])).unwrap_err();
        let msg = err.to_string();
        for name in [
            "EMR_VIRTUAL_CLUSTER_ID",
            "EMR_EXECUTION_ROLE_ARN",
            "EMR_S3_BUCKET",
        ] {
            assert!(msg.contains(name), "{msg} should name {name}");
        }
    }

    #[test]
    fn a_virtual_cluster_alone_chooses_emr_and_asks_for_the_rest() {
        let err = Config::from_vars(vars(&[("EMR_VIRTUAL_CLUSTER_ID", "vc")])).unwrap_err();
        match err {
            ConfigError::Missing(names) => {
                assert_eq!(names, vec!["EMR_EXECUTION_ROLE_ARN", "EMR_S3_BUCKET"])
            }
            other => panic!("unexpected {other}"),
        }
    }

    #[test]
    fn nothing_set_means_the_local_backend() {
        let c = Config::from_vars(vars(&[])).unwrap();
        assert_eq!(c.backend.kind(), BackendKind::Local);
        assert!(c.backend.emr_eks().is_none());
        assert_eq!(c.backend.local().unwrap().spark_submit, "spark-submit");
        assert_eq!(
            c.backend.local().unwrap().spark_master,
            SparkMaster::Local("local[*]".into())
        );
        assert_eq!(
            c.backend.local().unwrap().scripts_dir,
            PathBuf::from("scripts")
        );
        assert_eq!(
            c.backend.local().unwrap().log_dir,
            PathBuf::from("data/logs")
        );
        assert_eq!(c.backend.local().unwrap().max_concurrent, 1);
    }

    #[test]
    fn empty_variables_count_as_unset() {
        let mut v = vars(EMR_REQUIRED);
        v.extend(vars(&[("EMR_IMAGE", ""), ("PORT", "")]));
        let c = Config::from_vars(v).unwrap();
        assert_eq!(c.backend.emr_eks().unwrap().image, None);
        assert_eq!(c.server.port, 8003);
    }

    #[test]
    fn a_malformed_number_names_its_variable() {
        let err = Config::from_vars(vars(&[("PORT", "eighty")])).unwrap_err();
        assert!(err.to_string().contains("PORT"), "{err}");
    }

    #[test]
    fn fractional_seconds_are_accepted_for_durations() {
        let c =
            Config::from_vars(vars(&[("SLEEP_TIME", "0.05"), ("POLL_INTERVAL", "0.2")])).unwrap();
        assert_eq!(c.notify.sleep_time, Duration::from_millis(50));
        assert_eq!(c.notify.poll_interval, Duration::from_millis(200));
    }

    #[test]
    fn job_backend_is_one_of_the_backends_in_any_case_and_the_error_lists_them() {
        let err = Config::from_vars(vars(&[("JOB_BACKEND", "dataproc")])).unwrap_err();
        let text = err.to_string();
        assert!(
            text.contains("JOB_BACKEND") && text.contains("'dataproc'"),
            "{text}"
        );
        for kind in BackendKind::ALL {
            assert!(
                text.contains(&format!("'{kind}'")),
                "{kind} missing: {text}"
            );
        }
        let mut v = vars(EMR_REQUIRED);
        v.push(("JOB_BACKEND".into(), "EMR".into()));
        assert_eq!(
            Config::from_vars(v).unwrap().backend.kind(),
            BackendKind::Emr
        );
    }

    #[test]
    fn emr_on_ec2_needs_its_cluster_and_never_terminates_it_on_failure() {
        let err = Config::from_vars(vars(&[("JOB_BACKEND", "emr-ec2")])).unwrap_err();
        match err {
            ConfigError::Missing(names) => {
                assert_eq!(names, vec!["EMR_CLUSTER_ID", "EMR_S3_BUCKET"])
            }
            other => panic!("unexpected {other}"),
        }
        let base = [
            ("JOB_BACKEND", "emr-ec2"),
            ("EMR_CLUSTER_ID", "j-2AXXXXXXGAPLF"),
            ("EMR_S3_BUCKET", "bkt"),
        ];
        let c = Config::from_vars(vars(&base)).unwrap();
        assert_eq!(c.backend.kind(), BackendKind::EmrEc2);
        let s = c.backend.emr_ec2().unwrap();
        assert_eq!(s.cluster_id, "j-2AXXXXXXGAPLF");
        assert_eq!(s.action_on_failure, "CONTINUE");
        for refused in ["TERMINATE_CLUSTER", "TERMINATE_JOB_FLOW", "whatever"] {
            let mut v = vars(&base);
            v.extend(vars(&[("EMR_STEP_ACTION_ON_FAILURE", refused)]));
            let err = Config::from_vars(v).unwrap_err();
            assert!(
                err.to_string().contains("EMR_STEP_ACTION_ON_FAILURE"),
                "{err}"
            );
        }
        let mut v = vars(&base);
        v.extend(vars(&[("EMR_STEP_ACTION_ON_FAILURE", "cancel_and_wait")]));
        assert_eq!(
            Config::from_vars(v)
                .unwrap()
                .backend
                .emr_ec2()
                .unwrap()
                .action_on_failure,
            "CANCEL_AND_WAIT"
        );
        let mut v = vars(&base);
        v.extend(vars(&[("EMR_CLUSTER_ID", "cluster-1")]));
        assert!(Config::from_vars(v).is_err());
    }

    const LIVY_REQUIRED: &[(&str, &str)] = &[
        ("JOB_BACKEND", "livy"),
        ("LIVY_URL", "http://master:8998/"),
        ("LIVY_PACKAGE_URL", "s3://lab-bucket/multiomix"),
    ];

    #[test]
    fn livy_needs_its_url_and_package_and_names_what_is_missing() {
        match Config::from_vars(vars(&[("JOB_BACKEND", "livy")])).unwrap_err() {
            ConfigError::Missing(names) => assert_eq!(names, ["LIVY_URL", "LIVY_PACKAGE_URL"]),
            other => panic!("unexpected {other}"),
        }
        let c = Config::from_vars(vars(LIVY_REQUIRED)).unwrap();
        assert_eq!(c.backend.kind(), BackendKind::Livy);
        let s = c.backend.livy().unwrap();
        assert_eq!(s.url, "http://master:8998", "without its trailing /");
        assert_eq!(s.package_url, "s3://lab-bucket/multiomix/");
        assert_eq!(s.name_prefix, "multiomix-aws-emr");
        assert!(s.credentials.is_none() && s.proxy_user.is_none() && s.queue.is_none());
        assert!(s.call_timeout < c.server.request_timeout);
        assert!(c.staging.is_none(), "staging is off by default");
    }

    #[test]
    fn livy_settings_that_cannot_work_stop_start_up_naming_the_variable() {
        for (name, value) in [
            ("LIVY_URL", "master:8998"),
            ("LIVY_URL", "ftp://master"),
            ("LIVY_URL", "http://"),
            ("LIVY_URL", "http://master:8998?x=1"),
            (
                "LIVY_URL",
                "https://admin:hunter2@knox:8443/gateway/default/livy/v1",
            ),
            ("LIVY_PACKAGE_URL", "bucket/multiomix"),
            ("LIVY_PACKAGE_URL", "s3://b/a,b"),
            ("LIVY_NAME_PREFIX", "lab:a"),
            ("LIVY_NAME_PREFIX", "lab a"),
            ("EMR_DRIVER_CORES", "1.5"),
            ("EMR_EXECUTOR_CORES", "0"),
            ("EMR_EXECUTOR_INSTANCES", "three"),
        ] {
            let mut v = vars(LIVY_REQUIRED);
            v.retain(|(k, _)| k != name);
            v.push((name.into(), value.into()));
            let err = Config::from_vars(v).unwrap_err().to_string();
            assert!(err.contains(name), "{name}={value}: {err}");
            assert!(!err.contains("hunter2"), "{err}");
        }
        for (name, value) in [
            ("LIVY_PACKAGE_URL", "hdfs:///apps/multiomix"),
            ("LIVY_PACKAGE_URL", "/opt/multiomix/"),
            ("LIVY_URL", "https://knox:8443/gateway/default/livy/v1"),
            ("EMR_EXECUTOR_INSTANCES", "0"),
        ] {
            let mut v = vars(LIVY_REQUIRED);
            v.retain(|(k, _)| k != name);
            v.push((name.into(), value.into()));
            assert!(Config::from_vars(v).is_ok(), "{name}={value}");
        }
    }

    #[test]
    fn livy_credentials_come_in_pairs_and_the_password_is_never_printed() {
        for (given, named) in [
            (("LIVY_USERNAME", "lab"), "LIVY_PASSWORD"),
            (("LIVY_PASSWORD", "hunter2"), "LIVY_USERNAME"),
        ] {
            let mut v = vars(LIVY_REQUIRED);
            v.push((given.0.into(), given.1.into()));
            let err = Config::from_vars(v).unwrap_err().to_string();
            assert!(err.contains(named), "{err}");
        }
        let mut v = vars(LIVY_REQUIRED);
        v.extend(vars(&[
            ("LIVY_USERNAME", "lab"),
            ("LIVY_PASSWORD", "hunter2"),
            ("LIVY_PROXY_USER", "multiomix"),
            ("LIVY_QUEUE", "research"),
        ]));
        let c = Config::from_vars(v).unwrap();
        assert!(!format!("{c:?}").contains("hunter2"));
        let s = c.backend.livy().unwrap();
        let credentials = s.credentials.as_ref().unwrap();
        assert_eq!(
            (credentials.username.as_str(), credentials.password.expose()),
            ("lab", "hunter2")
        );
        assert_eq!(s.proxy_user.as_deref(), Some("multiomix"));
        assert_eq!(s.queue.as_deref(), Some("research"));
    }

    #[test]
    fn staging_on_livy_defaults_to_the_packages_bucket_and_the_job_reads_s3() {
        let dirs = tempfile::tempdir().unwrap();
        let dir = dirs.path().to_str().unwrap();
        let mut v = vars(LIVY_REQUIRED);
        v.extend(vars(&[
            ("DATA_STAGING", "s3"),
            ("SHARED_DATASETS_DIR", dir),
            ("SHARED_RESULTS_DIR", dir),
        ]));
        let c = Config::from_vars(v.clone()).unwrap();
        let staging = c.staging.unwrap();
        assert_eq!(staging.datasets.to_string(), "s3://lab-bucket/datasets/");
        assert_eq!(staging.results.to_string(), "s3://lab-bucket/results/");
        assert_eq!(c.job.datasets_path, "s3://lab-bucket/datasets/");
        assert_eq!(c.job.results_path, "s3://lab-bucket/results/");

        // A package outside S3 leaves no bucket to default to: the prefixes are named.
        v.retain(|(k, _)| k != "LIVY_PACKAGE_URL");
        v.push(("LIVY_PACKAGE_URL".into(), "hdfs:///apps/multiomix/".into()));
        let err = Config::from_vars(v.clone()).unwrap_err().to_string();
        assert!(err.contains("S3_DATASETS_PREFIX"), "{err}");
        v.extend(vars(&[
            ("S3_DATASETS_PREFIX", "s3://stage/in/"),
            ("S3_RESULTS_PREFIX", "s3://stage/out/"),
        ]));
        let c = Config::from_vars(v).unwrap();
        assert_eq!(c.job.results_path, "s3://stage/out/");
    }

    #[test]
    fn emr_serverless_needs_its_application_and_names_what_is_missing() {
        let err = Config::from_vars(vars(&[("JOB_BACKEND", "emr-serverless")])).unwrap_err();
        match err {
            ConfigError::Missing(names) => assert_eq!(
                names,
                vec![
                    "EMR_SERVERLESS_APPLICATION_ID",
                    "EMR_EXECUTION_ROLE_ARN",
                    "EMR_S3_BUCKET"
                ]
            ),
            other => panic!("unexpected {other}"),
        }
        let c = Config::from_vars(vars(&[
            ("JOB_BACKEND", "emr-serverless"),
            ("EMR_SERVERLESS_APPLICATION_ID", "00fabc123"),
            ("EMR_EXECUTION_ROLE_ARN", "arn:aws:iam::1:role/job"),
            ("EMR_S3_BUCKET", "bucket"),
            ("EMR_SERVERLESS_EXECUTION_TIMEOUT", "90"),
        ]))
        .unwrap();
        assert_eq!(c.backend.kind(), BackendKind::EmrServerless);
        assert!(c.backend.emr_eks().is_none());
        let s = c.backend.emr_serverless().unwrap();
        assert_eq!(s.application_id, "00fabc123");
        assert_eq!(s.execution_timeout_minutes, Some(90));
        assert_eq!(s.service_url, "multiomix-aws-emr");
    }

    #[test]
    fn an_execution_timeout_outside_what_emr_serverless_accepts_is_refused() {
        for bad in ["0", "10081", "-5", "soon"] {
            let err = Config::from_vars(vars(&[
                ("JOB_BACKEND", "emr-serverless"),
                ("EMR_SERVERLESS_APPLICATION_ID", "00fabc123"),
                ("EMR_EXECUTION_ROLE_ARN", "arn:aws:iam::1:role/job"),
                ("EMR_S3_BUCKET", "bucket"),
                ("EMR_SERVERLESS_EXECUTION_TIMEOUT", bad),
            ]))
            .unwrap_err();
            assert!(
                err.to_string().contains("EMR_SERVERLESS_EXECUTION_TIMEOUT"),
                "{bad}: {err}"
            );
        }
    }

    #[test]
    fn an_unknown_backend_is_refused() {
        let err = Config::from_vars(vars(&[("JOB_BACKEND", "yarn")])).unwrap_err();
        assert!(err.to_string().contains("JOB_BACKEND"));
    }

    #[test]
    fn white_space_in_a_spark_setting_is_refused() {
        let mut v = vars(EMR_REQUIRED);
        v.push(("EMR_DRIVER_MEMORY".into(), "4g --conf x=y".into()));
        let err = Config::from_vars(v).unwrap_err();
        assert!(err.to_string().contains("EMR_DRIVER_MEMORY"));
    }

    #[test]
    fn an_emr_call_ends_before_the_request_that_made_it_is_cut_off() {
        for timeout in ["30", "5", "0.3"] {
            let mut v = vars(EMR_REQUIRED);
            v.push(("REQUEST_TIMEOUT".into(), timeout.into()));
            let c = Config::from_vars(v).unwrap();
            let call = c.backend.emr_eks().unwrap().call_timeout;
            assert!(call < c.server.request_timeout, "{timeout}: {call:?}");
            assert!(call >= c.server.request_timeout / 2, "{timeout}: {call:?}");
        }
    }

    #[test]
    fn a_whsec_notify_secret_that_is_not_base64_stops_start_up() {
        for bad in ["whsec_not base64!", "whsec_"] {
            let mut v = vars(EMR_REQUIRED);
            v.push(("NOTIFY_SECRET".into(), bad.into()));
            let err = Config::from_vars(v).unwrap_err();
            assert!(err.to_string().contains("NOTIFY_SECRET"), "{err}");
            assert!(
                !err.to_string().contains("base64!"),
                "the secret is not shown: {err}"
            );
        }
        for good in ["whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", "a plain secret"] {
            let mut v = vars(EMR_REQUIRED);
            v.push(("NOTIFY_SECRET".into(), good.into()));
            assert!(Config::from_vars(v).is_ok(), "{good}");
        }
    }

    #[test]
    fn secrets_never_show_in_debug_output() {
        let c = Config::from_vars(vars(&[
            ("API_TOKEN", "hunter2-api"),
            ("CALLBACK_TOKEN", "hunter2-cb"),
            ("NOTIFY_SECRET", "hunter2-notify"),
        ]))
        .unwrap();
        let printed = format!("{c:?}");
        assert!(!printed.contains("hunter2"), "{printed}");
        assert_eq!(c.server.api_token.unwrap().expose(), "hunter2-api");
    }

    #[test]
    fn staging_is_off_by_default_and_on_the_local_backend() {
        let c = Config::from_vars(vars(EMR_REQUIRED)).unwrap();
        assert!(c.staging.is_none());
        let local = Config::from_vars(vars(&[
            ("JOB_BACKEND", "local"),
            ("DATA_STAGING", "s3"),
            ("SHARED_DATASETS_DIR", "/no/such/folder"),
        ]))
        .unwrap();
        assert!(local.staging.is_none());
    }

    /// The variables of staging on EMR on EKS, with both shared folders in `dirs`.
    fn staged(dirs: &tempfile::TempDir) -> Vec<(String, String)> {
        std::fs::create_dir_all(dirs.path().join("data")).unwrap();
        std::fs::create_dir_all(dirs.path().join("results")).unwrap();
        let mut v = vars(EMR_REQUIRED);
        v.extend(vars(&[
            ("DATA_STAGING", "s3"),
            (
                "SHARED_DATASETS_DIR",
                dirs.path().join("data").to_str().unwrap(),
            ),
            (
                "SHARED_RESULTS_DIR",
                dirs.path().join("results").to_str().unwrap(),
            ),
        ]));
        v
    }

    #[test]
    fn staging_defaults_to_the_datasets_and_results_prefixes_of_the_bucket() {
        let dirs = tempfile::tempdir().unwrap();
        let mut v = staged(&dirs);
        let staging = Config::from_vars(v.clone()).unwrap().staging.unwrap();
        assert_eq!(staging.datasets.to_string(), "s3://bucket/datasets/");
        assert_eq!(staging.results.to_string(), "s3://bucket/results/");
        assert_eq!(staging.datasets_dir, dirs.path().join("data"));
        assert_eq!(staging.results_dir, dirs.path().join("results"));
        assert!(staging.cleanup_datasets, "clean-up is on by default");

        v.extend(vars(&[
            ("S3_DATASETS_PREFIX", "s3://other/in/put"),
            ("S3_RESULTS_PREFIX", "s3://other/out"),
            ("DATASETS_CLEANUP", "off"),
        ]));
        let staging = Config::from_vars(v).unwrap().staging.unwrap();
        assert_eq!(
            staging.datasets,
            S3Location {
                bucket: "other".into(),
                prefix: "in/put/".into()
            }
        );
        assert_eq!(staging.results.to_string(), "s3://other/out/");
        assert!(!staging.cleanup_datasets);
    }

    #[test]
    fn prefixes_that_overlap_and_unknown_clean_up_values_stop_start_up() {
        let dirs = tempfile::tempdir().unwrap();
        for (name, value, named) in [
            (
                "S3_RESULTS_PREFIX",
                "s3://bucket/datasets/out/",
                "S3_RESULTS_PREFIX",
            ),
            ("S3_RESULTS_PREFIX", "s3://bucket/", "S3_RESULTS_PREFIX"),
            ("DATASETS_CLEANUP", "sometimes", "DATASETS_CLEANUP"),
        ] {
            let mut v = staged(&dirs);
            v.push((name.into(), value.into()));
            let err = Config::from_vars(v).unwrap_err().to_string();
            assert!(err.contains(named), "{name}={value}: {err}");
        }
        // The same key in another bucket is no overlap.
        let mut v = staged(&dirs);
        v.push((
            "S3_RESULTS_PREFIX".into(),
            "s3://elsewhere/datasets/".into(),
        ));
        assert!(Config::from_vars(v).is_ok());
    }

    #[test]
    fn start_up_names_a_missing_shared_folder() {
        let mut v = vars(EMR_REQUIRED);
        v.push(("DATA_STAGING".into(), "s3".into()));
        let err = Config::from_vars(v.clone()).unwrap_err().to_string();
        assert!(
            err.contains("SHARED_DATASETS_DIR") && err.contains("SHARED_RESULTS_DIR"),
            "{err}"
        );
        let dirs = tempfile::tempdir().unwrap();
        for name in ["SHARED_DATASETS_DIR", "SHARED_RESULTS_DIR"] {
            let mut v = staged(&dirs);
            v.retain(|(k, _)| k != name);
            v.push((name.into(), "/no/such/folder".into()));
            let err = Config::from_vars(v).unwrap_err().to_string();
            assert!(
                err.contains(name) && err.contains("/no/such/folder"),
                "{err}"
            );
        }
    }

    #[test]
    fn a_results_folder_the_service_cannot_write_stops_start_up() {
        use std::os::unix::fs::PermissionsExt;
        let dirs = tempfile::tempdir().unwrap();
        let v = staged(&dirs);
        let results = dirs.path().join("results");
        std::fs::set_permissions(&results, std::fs::Permissions::from_mode(0o555)).unwrap();
        // root writes anyway: then there is nothing to show.
        let writable_anyway = std::fs::write(results.join("x"), b"").is_ok();
        let outcome = Config::from_vars(v);
        std::fs::set_permissions(&results, std::fs::Permissions::from_mode(0o755)).unwrap();
        if writable_anyway {
            eprintln!("skipping: this user writes in read-only folders");
            return;
        }
        let err = outcome.unwrap_err().to_string();
        assert!(
            err.contains("SHARED_RESULTS_DIR") && err.contains("cannot write"),
            "{err}"
        );
    }

    #[test]
    fn with_staging_the_job_paths_are_the_s3_prefixes_except_on_eks() {
        let dirs = tempfile::tempdir().unwrap();
        // EMR on EKS keeps the pod's folders.
        let c = Config::from_vars(staged(&dirs)).unwrap();
        assert_eq!(
            (c.job.datasets_path.as_str(), c.job.results_path.as_str()),
            ("/var/data", "/var/results")
        );
        for backend in [
            vec![
                ("JOB_BACKEND", "emr-serverless"),
                ("EMR_SERVERLESS_APPLICATION_ID", "00fabcdef"),
            ],
            vec![("JOB_BACKEND", "emr-ec2"), ("EMR_CLUSTER_ID", "j-ABC")],
        ] {
            let mut v = staged(&dirs);
            v.extend(vars(&backend));
            let c = Config::from_vars(v.clone()).unwrap();
            assert_eq!(c.job.datasets_path, "s3://bucket/datasets/", "{backend:?}");
            assert_eq!(c.job.results_path, "s3://bucket/results/", "{backend:?}");
            // The same prefix, with or without its `/`, is accepted.
            v.push(("RESULTS_PATH".into(), "s3://bucket/results".into()));
            assert!(Config::from_vars(v.clone()).is_ok());
            // A job told to read elsewhere would find nothing.
            v.push(("DATASETS_PATH".into(), "/var/data".into()));
            let err = Config::from_vars(v).unwrap_err().to_string();
            assert!(
                err.contains("DATASETS_PATH") && err.contains("S3_DATASETS_PREFIX"),
                "{err}"
            );
        }
    }

    #[test]
    fn data_staging_accepts_only_s3_and_off() {
        let mut v = vars(EMR_REQUIRED);
        v.push(("DATA_STAGING".into(), "nfs".into()));
        let err = Config::from_vars(v).unwrap_err().to_string();
        assert!(err.contains("DATA_STAGING"), "{err}");
        assert!(S3Location::parse("bucket/x").is_err());
        assert!(S3Location::parse("s3:///x").is_err());
    }
}
