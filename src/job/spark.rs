//! The spark-submit side of a job: its parameters and its entry-point arguments.
//!
//! Nothing the caller sends reaches the parameter string but the validated job name;
//! argument names and values only ever become entry-point arguments.

use crate::config::{EmrSettings, JobSettings, SparkSettings};

use super::{Algorithm, JobSpec};

/// Flattens the arguments as the job script reads them: `{prefix}{name}`, `{value}`, ...
pub fn entry_point_arguments(spec: &JobSpec, prefix: &str) -> Vec<String> {
    spec.arguments
        .iter()
        .flat_map(|(name, value)| [format!("{prefix}{name}"), value.clone()])
        .collect()
}

/// spark-submit options as `(option, value)` pairs, in the order they are passed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SparkSubmit {
    pub options: Vec<(&'static str, String)>,
}

impl SparkSubmit {
    /// The options of an EMR on EKS job, exactly as the contract lists them. A conf whose
    /// setting is unset (image, pod templates) is left out rather than sent empty.
    pub fn for_emr(
        emr: &EmrSettings,
        spark: &SparkSettings,
        job: &JobSettings,
        spec: &JobSpec,
    ) -> Self {
        let bucket = &emr.s3_bucket;
        let mut options = vec![(
            "--py-files",
            format!("s3://{bucket}/py-files/{}", py_files(job, spec.algorithm)),
        )];
        let mut conf = |key: &str, value: &str| options.push(("--conf", format!("{key}={value}")));
        if let Some(t) = &emr.driver_template {
            conf(
                "spark.kubernetes.driver.podTemplateFile",
                &format!("s3://{bucket}/templates/{t}"),
            );
        }
        if let Some(t) = &emr.executor_template {
            conf(
                "spark.kubernetes.executor.podTemplateFile",
                &format!("s3://{bucket}/templates/{t}"),
            );
        }
        if let Some(image) = &emr.image {
            conf("spark.kubernetes.container.image", image);
        }
        conf("spark.executor.cores", &spark.executor_cores);
        conf("spark.executor.memory", &spark.executor_memory);
        conf("spark.driver.cores", &spark.driver_cores);
        conf("spark.driver.maxResultSize", &spark.driver_max_result_size);
        conf("spark.driver.memory", &spark.driver_memory);
        conf("spark.executor.instances", &spark.executor_instances);
        conf(
            "spark.executor.heartbeatInterval",
            &spark.executor_heartbeat_interval,
        );
        conf("spark.network.timeout", &spark.network_timeout);
        conf(
            "spark.kubernetes.driverEnv.DATASETS_PATH",
            &job.datasets_path,
        );
        conf("spark.kubernetes.driverEnv.RESULTS_PATH", &job.results_path);
        conf("spark.kubernetes.driverEnv.JOB_NAME", spec.name.as_str());
        SparkSubmit { options }
    }

    /// The options of a local job: the driver settings that mean something outside a
    /// cluster; executors live inside the driver in local mode.
    pub fn for_local(spark: &SparkSettings, py_files_path: String) -> Self {
        let conf = |key: &str, value: &str| ("--conf", format!("{key}={value}"));
        SparkSubmit {
            options: vec![
                ("--py-files", py_files_path),
                conf("spark.driver.memory", &spark.driver_memory),
                conf("spark.driver.maxResultSize", &spark.driver_max_result_size),
                conf(
                    "spark.executor.heartbeatInterval",
                    &spark.executor_heartbeat_interval,
                ),
                conf("spark.network.timeout", &spark.network_timeout),
            ],
        }
    }

    /// The space-separated form EMR's `sparkSubmitParameters` takes.
    pub fn to_parameter_string(&self) -> String {
        self.options
            .iter()
            .map(|(option, value)| format!("{option} {value}"))
            .collect::<Vec<_>>()
            .join(" ")
    }

    /// The form a process takes: one argv item per option and value.
    pub fn to_args(&self) -> Vec<String> {
        self.options
            .iter()
            .flat_map(|(option, value)| [option.to_string(), value.clone()])
            .collect()
    }
}

/// `ALGO_<ALG>_ENTRYPOINT`.
pub fn entry_point(job: &JobSettings, algorithm: Algorithm) -> &str {
    match algorithm {
        Algorithm::BlindSearch => &job.blind_search_entrypoint,
        Algorithm::Bbha => &job.bbha_entrypoint,
    }
}

/// `ALGO_<ALG>_PY_FILES`.
pub fn py_files(job: &JobSettings, algorithm: Algorithm) -> &str {
    match algorithm {
        Algorithm::BlindSearch => &job.blind_search_py_files,
        Algorithm::Bbha => &job.bbha_py_files,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;
    use crate::job::{JobName, JobSpec};

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
            arguments: vec![
                ("app-name".into(), "exp-42-app".into()),
                ("n-stars".into(), "15".into()),
            ],
        }
    }

    #[test]
    fn emr_parameters_with_every_setting_match_the_contract_line_for_line() {
        let c = config(&[
            ("EMR_IMAGE", "123.dkr.ecr/img:1"),
            ("EMR_DRIVER_TEMPLATE", "driver.yaml"),
            ("EMR_EXECUTOR_TEMPLATE", "executor.yaml"),
            ("ALGO_BBHA_PY_FILES", "bbha.zip"),
        ]);
        let s = SparkSubmit::for_emr(
            c.emr.as_ref().unwrap(),
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
        let s = SparkSubmit::for_emr(
            c.emr.as_ref().unwrap(),
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
    fn arguments_flatten_in_request_order_with_the_prefix() {
        assert_eq!(
            entry_point_arguments(&spec(Algorithm::Bbha), "--"),
            vec!["--app-name", "exp-42-app", "--n-stars", "15"]
        );
        assert_eq!(
            entry_point_arguments(&spec(Algorithm::Bbha), "-"),
            vec!["-app-name", "exp-42-app", "-n-stars", "15"]
        );
    }

    #[test]
    fn argument_values_never_reach_the_parameter_string() {
        let c = config(&[]);
        let mut s = spec(Algorithm::Bbha);
        s.arguments.push((
            "x".into(),
            "--conf spark.driver.extraJavaOptions=-Dpwn".into(),
        ));
        let params = SparkSubmit::for_emr(c.emr.as_ref().unwrap(), &c.spark, &c.job, &s)
            .to_parameter_string();
        assert!(!params.contains("extraJavaOptions"), "{params}");
    }

    #[test]
    fn entry_point_and_py_files_follow_the_algorithm() {
        let c = config(&[
            ("ALGO_BLIND_SEARCH_ENTRYPOINT", "bs.py"),
            ("ALGO_BBHA_ENTRYPOINT", "bbha.py"),
        ]);
        assert_eq!(entry_point(&c.job, Algorithm::BlindSearch), "bs.py");
        assert_eq!(entry_point(&c.job, Algorithm::Bbha), "bbha.py");
        assert_eq!(py_files(&c.job, Algorithm::Bbha), "scripts.zip");
    }
}
