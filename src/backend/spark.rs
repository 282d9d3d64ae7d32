//! What every Spark backend submits, whatever runs it: the job package's layout in S3,
//! the spark-submit options and the entry-point arguments.
//!
//! Nothing the caller sends reaches the parameter string but the validated job name;
//! argument names and values only ever become entry-point arguments.

use crate::config::{JobSettings, SparkMaster, SparkSettings, DEFAULT_MEMORY_OVERHEAD};
use crate::job::{Algorithm, JobSpec};

/// Flattens the arguments as the job script reads them: `{prefix}{name}`, `{value}`, ...
pub fn entry_point_arguments(spec: &JobSpec, prefix: &str) -> Vec<String> {
    spec.arguments
        .iter()
        .flat_map(|(name, value)| [format!("{prefix}{name}"), value.clone()])
        .collect()
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

/// The job package in the `EMR_S3_BUCKET` bucket, laid out the same for every EMR
/// flavour: `scripts/`, `py-files/`, `templates/`, and `joblogs/` for the logs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct S3Package {
    bucket: String,
}

impl S3Package {
    pub fn new(bucket: impl Into<String>) -> Self {
        S3Package {
            bucket: bucket.into(),
        }
    }

    pub fn bucket(&self) -> &str {
        &self.bucket
    }

    /// `s3://{bucket}/scripts/{ALGO_<ALG>_ENTRYPOINT}`.
    pub fn entry_point(&self, job: &JobSettings, algorithm: Algorithm) -> String {
        format!(
            "s3://{}/scripts/{}",
            self.bucket,
            entry_point(job, algorithm)
        )
    }

    /// `s3://{bucket}/py-files/{ALGO_<ALG>_PY_FILES}`.
    pub fn py_files(&self, job: &JobSettings, algorithm: Algorithm) -> String {
        format!("s3://{}/py-files/{}", self.bucket, py_files(job, algorithm))
    }

    /// `s3://{bucket}/templates/{name}`.
    pub fn template(&self, name: &str) -> String {
        format!("s3://{}/templates/{name}", self.bucket)
    }

    /// `s3://{bucket}/joblogs`, where EMR writes the jobs' logs.
    pub fn log_uri(&self) -> String {
        format!("s3://{}/joblogs", self.bucket)
    }
}

/// How a cluster hands environment variables to the Spark driver.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DriverEnv {
    /// EMR on EKS: `spark.kubernetes.driverEnv.*`.
    Kubernetes,
    /// EMR Serverless: `spark.emr-serverless.driverEnv.*`.
    EmrServerless,
    /// YARN in cluster mode (EMR on EC2): `spark.yarn.appMasterEnv.*`.
    Yarn,
}

impl DriverEnv {
    pub fn prefix(self) -> &'static str {
        match self {
            DriverEnv::Kubernetes => "spark.kubernetes.driverEnv.",
            DriverEnv::EmrServerless => "spark.emr-serverless.driverEnv.",
            DriverEnv::Yarn => "spark.yarn.appMasterEnv.",
        }
    }
}

/// spark-submit options as `(option, value)` pairs, in the order they are passed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SparkSubmit {
    pub options: Vec<(&'static str, String)>,
}

impl SparkSubmit {
    /// Starts with `--py-files {py_files}`.
    pub fn with_py_files(py_files: String) -> Self {
        SparkSubmit {
            options: vec![("--py-files", py_files)],
        }
    }

    /// Adds `--conf {key}={value}`.
    pub fn conf(mut self, key: &str, value: &str) -> Self {
        self.options.push(("--conf", format!("{key}={value}")));
        self
    }

    /// The executor and driver sizes and timeouts every cluster job gets, in the
    /// contract's order.
    pub fn sizes(self, spark: &SparkSettings) -> Self {
        self.conf("spark.executor.cores", &spark.executor_cores)
            .conf("spark.executor.memory", &spark.executor_memory)
            .conf("spark.driver.cores", &spark.driver_cores)
            .conf("spark.driver.maxResultSize", &spark.driver_max_result_size)
            .conf("spark.driver.memory", &spark.driver_memory)
            .conf("spark.executor.instances", &spark.executor_instances)
            .conf(
                "spark.executor.heartbeatInterval",
                &spark.executor_heartbeat_interval,
            )
            .conf("spark.network.timeout", &spark.network_timeout)
    }

    /// `DATASETS_PATH`, `RESULTS_PATH` and `JOB_NAME` for the driver, the way `env`
    /// passes them.
    pub fn driver_env(self, env: DriverEnv, job: &JobSettings, spec: &JobSpec) -> Self {
        let p = env.prefix();
        self.conf(&format!("{p}DATASETS_PATH"), &job.datasets_path)
            .conf(&format!("{p}RESULTS_PATH"), &job.results_path)
            .conf(&format!("{p}JOB_NAME"), spec.name.as_str())
    }

    /// The job's progress token for the driver (`PROGRESS_TOKEN`), when it has one:
    /// after every other option, so that those keep their order (EMR on EKS's are the
    /// contract's list). Its value is 64 hex digits, safe in the parameter string.
    pub fn progress_token(self, env: DriverEnv, spec: &JobSpec) -> Self {
        match &spec.progress_token {
            Some(token) => self.conf(&format!("{}PROGRESS_TOKEN", env.prefix()), token.expose()),
            None => self,
        }
    }

    /// The room of an executor's Python workers: `spark.executor.memoryOverhead` (its
    /// default when unset), and `spark.executor.pyspark.memory` when set. After the other
    /// options, so that those keep their order.
    pub fn python_memory(self, spark: &SparkSettings) -> Self {
        let overhead = spark
            .executor_memory_overhead
            .as_deref()
            .unwrap_or(DEFAULT_MEMORY_OVERHEAD);
        self.conf("spark.executor.memoryOverhead", overhead)
            .pyspark_memory(spark)
    }

    /// The same settings, but only those set explicitly: EMR on EKS's parameters are the
    /// contract's list, and these are added to it only on request.
    pub fn python_memory_when_set(self, spark: &SparkSettings) -> Self {
        let s = match &spark.executor_memory_overhead {
            Some(overhead) => self.conf("spark.executor.memoryOverhead", overhead),
            None => self,
        };
        s.pyspark_memory(spark)
    }

    fn pyspark_memory(self, spark: &SparkSettings) -> Self {
        match &spark.executor_pyspark_memory {
            Some(limit) => self.conf("spark.executor.pyspark.memory", limit),
            None => self,
        }
    }

    /// The options of a job on a cluster that has no pod templates or image to set (EMR
    /// Serverless, EMR on EC2): py-files, sizes, driver environment, the Python workers'
    /// memory, and last the job's progress token.
    pub fn for_cluster(
        package: &S3Package,
        env: DriverEnv,
        spark: &SparkSettings,
        job: &JobSettings,
        spec: &JobSpec,
    ) -> Self {
        SparkSubmit::with_py_files(package.py_files(job, spec.algorithm))
            .sizes(spark)
            .driver_env(env, job, spec)
            .python_memory(spark)
            .progress_token(env, spec)
    }

    /// The options of a local backend's job. With a `local[...]` master: the driver
    /// settings that mean something outside a cluster (the executors live in the driver's
    /// JVM). With a cluster master (`spark://`, `yarn`): client mode, so that the driver
    /// stays beside the service and its shared folders, and the executors' sizes. Both
    /// end with the Python workers' memory.
    pub fn for_local(spark: &SparkSettings, master: &SparkMaster, py_files_path: String) -> Self {
        let mut options = vec![("--master", master.as_str().to_owned())];
        if master.is_cluster() {
            options.push(("--deploy-mode", "client".to_owned()));
        }
        options.push(("--py-files", py_files_path));
        let submit = SparkSubmit { options };
        if master.is_cluster() {
            return submit.sizes(spark).python_memory(spark);
        }
        submit
            .conf("spark.driver.memory", &spark.driver_memory)
            .conf("spark.driver.maxResultSize", &spark.driver_max_result_size)
            .conf(
                "spark.executor.heartbeatInterval",
                &spark.executor_heartbeat_interval,
            )
            .conf("spark.network.timeout", &spark.network_timeout)
            .python_memory(spark)
    }

    /// `--deploy-mode {mode}`, first: where the driver runs (EMR on EC2's steps run it
    /// on the cluster).
    pub fn deploy_mode(mut self, mode: &str) -> Self {
        self.options.insert(0, ("--deploy-mode", mode.to_owned()));
        self
    }

    /// The pod templates of a Kubernetes job, each when set.
    pub fn pod_templates(self, driver: Option<String>, executor: Option<String>) -> Self {
        let submit = match driver {
            Some(t) => self.conf("spark.kubernetes.driver.podTemplateFile", &t),
            None => self,
        };
        match executor {
            Some(t) => submit.conf("spark.kubernetes.executor.podTemplateFile", &t),
            None => submit,
        }
    }

    /// The container image of a Kubernetes job's driver and executors, when set.
    pub fn container_image(self, image: Option<&str>) -> Self {
        match image {
            Some(image) => self.conf("spark.kubernetes.container.image", image),
            None => self,
        }
    }

    /// One more variable of the driver's environment, the way `env` passes them.
    pub fn driver_env_var(self, env: DriverEnv, name: &str, value: &str) -> Self {
        self.conf(&format!("{}{name}", env.prefix()), value)
    }

    /// An annotation of a Kubernetes job's driver pod.
    pub fn driver_annotation(self, key: &str, value: &str) -> Self {
        self.conf(&format!("spark.kubernetes.driver.annotation.{key}"), value)
    }

    /// `spark.yarn.tags`: the tags of the YARN application (EMR on EC2 marks its steps
    /// with them).
    pub fn yarn_tags(self, tags: &str) -> Self {
        self.conf("spark.yarn.tags", tags)
    }

    /// The whole command line after `spark-submit`: the options, the entry point, then
    /// its arguments, one item each.
    pub fn command(&self, entry_point: String, arguments: Vec<String>) -> Vec<String> {
        let mut args = self.to_args();
        args.push(entry_point);
        args.extend(arguments);
        args
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;
    use crate::job::{JobName, JobSpec};

    fn config(extra: &[(&str, &str)]) -> Config {
        let vars: Vec<(String, String)> = extra
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
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
            progress_token: None,
        }
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
    fn entry_point_and_py_files_follow_the_algorithm() {
        let c = config(&[
            ("ALGO_BLIND_SEARCH_ENTRYPOINT", "bs.py"),
            ("ALGO_BBHA_ENTRYPOINT", "bbha.py"),
        ]);
        assert_eq!(entry_point(&c.job, Algorithm::BlindSearch), "bs.py");
        assert_eq!(entry_point(&c.job, Algorithm::Bbha), "bbha.py");
        assert_eq!(py_files(&c.job, Algorithm::Bbha), "scripts.zip");
        let package = S3Package::new("bkt");
        assert_eq!(
            package.entry_point(&c.job, Algorithm::Bbha),
            "s3://bkt/scripts/bbha.py"
        );
        assert_eq!(
            package.py_files(&c.job, Algorithm::BlindSearch),
            "s3://bkt/py-files/scripts.zip"
        );
        assert_eq!(package.template("d.yaml"), "s3://bkt/templates/d.yaml");
        assert_eq!(package.log_uri(), "s3://bkt/joblogs");
    }

    #[test]
    fn each_cluster_passes_the_driver_environment_its_own_way() {
        let c = config(&[]);
        let s = spec(Algorithm::Bbha);
        for (env, prefix) in [
            (DriverEnv::Kubernetes, "spark.kubernetes.driverEnv."),
            (DriverEnv::EmrServerless, "spark.emr-serverless.driverEnv."),
            (DriverEnv::Yarn, "spark.yarn.appMasterEnv."),
        ] {
            let params =
                SparkSubmit::for_cluster(&S3Package::new("bkt"), env, &c.spark, &c.job, &s)
                    .to_parameter_string();
            assert!(
                params.ends_with(&format!(
                    "--conf {prefix}DATASETS_PATH=/var/data --conf {prefix}RESULTS_PATH=/var/results \
                     --conf {prefix}JOB_NAME=BreastCancerBBHA --conf spark.executor.memoryOverhead=2g"
                )),
                "{params}"
            );
            assert!(params.starts_with(
                "--py-files s3://bkt/py-files/scripts.zip --conf spark.executor.cores=1"
            ));
            assert_eq!(params.matches("--conf").count(), 12, "{params}");
        }
    }

    /// The whole command line: the deploy mode first, the options in the order they were
    /// added, then the entry point and its arguments.
    #[test]
    fn a_command_is_the_options_then_the_entry_point_then_its_arguments() {
        let args = SparkSubmit::with_py_files("s3://b/py-files/scripts.zip".into())
            .yarn_tags("multiomix-aws-emr,token-1")
            .deploy_mode("cluster")
            .command(
                "s3://b/scripts/main.py".into(),
                vec!["--app-name".into(), "BBHA_1".into()],
            );
        assert_eq!(
            args,
            [
                "--deploy-mode",
                "cluster",
                "--py-files",
                "s3://b/py-files/scripts.zip",
                "--conf",
                "spark.yarn.tags=multiomix-aws-emr,token-1",
                "s3://b/scripts/main.py",
                "--app-name",
                "BBHA_1",
            ]
        );
    }

    #[test]
    fn the_progress_token_comes_last_in_the_driver_environment_of_each_cluster() {
        let c = config(&[]);
        let mut s = spec(Algorithm::Bbha);
        let without = |env| {
            SparkSubmit::for_cluster(&S3Package::new("bkt"), env, &c.spark, &c.job, &s)
                .to_parameter_string()
        };
        let plain: Vec<String> = [DriverEnv::EmrServerless, DriverEnv::Yarn]
            .into_iter()
            .map(without)
            .collect();
        let token = crate::job::ProgressToken::generate();
        s.progress_token = Some(token.clone());
        for (env, plain) in [DriverEnv::EmrServerless, DriverEnv::Yarn]
            .into_iter()
            .zip(plain)
        {
            let params =
                SparkSubmit::for_cluster(&S3Package::new("bkt"), env, &c.spark, &c.job, &s)
                    .to_parameter_string();
            assert_eq!(
                params,
                format!(
                    "{plain} --conf {}PROGRESS_TOKEN={}",
                    env.prefix(),
                    token.expose()
                )
            );
        }
    }

    #[test]
    fn argument_values_never_reach_the_parameter_string() {
        let c = config(&[]);
        let mut s = spec(Algorithm::Bbha);
        s.arguments.push((
            "x".into(),
            "--conf spark.driver.extraJavaOptions=-Dpwn".into(),
        ));
        let params = SparkSubmit::for_cluster(
            &S3Package::new("bkt"),
            DriverEnv::EmrServerless,
            &c.spark,
            &c.job,
            &s,
        )
        .to_parameter_string();
        assert!(!params.contains("extraJavaOptions"), "{params}");
    }

    #[test]
    fn the_python_workers_memory_follows_the_driver_environment_when_set() {
        let c = config(&[("EMR_EXECUTOR_MEMORY_OVERHEAD", "3g")]);
        let s = spec(Algorithm::Bbha);
        let package = S3Package::new("bkt");
        let params = SparkSubmit::for_cluster(&package, DriverEnv::Yarn, &c.spark, &c.job, &s)
            .to_parameter_string();
        assert!(
            params.ends_with("JOB_NAME=BreastCancerBBHA --conf spark.executor.memoryOverhead=3g"),
            "{params}"
        );
        assert!(!params.contains("pyspark.memory"), "{params}");

        let c = config(&[("EMR_EXECUTOR_PYSPARK_MEMORY", "1500m")]);
        let params = SparkSubmit::for_cluster(&package, DriverEnv::Yarn, &c.spark, &c.job, &s)
            .to_parameter_string();
        assert!(
            params.ends_with(
                "--conf spark.executor.memoryOverhead=2g --conf spark.executor.pyspark.memory=1500m"
            ),
            "{params}"
        );
        let local = SparkSubmit::for_local(
            &c.spark,
            &c.backend.local().unwrap().spark_master,
            "/s/scripts.zip".into(),
        )
        .to_args();
        assert!(
            local.ends_with(&[
                "--conf".into(),
                "spark.executor.memoryOverhead=2g".into(),
                "--conf".into(),
                "spark.executor.pyspark.memory=1500m".into(),
            ]),
            "{local:?}"
        );
    }

    #[test]
    fn local_options_are_one_argv_item_each() {
        let c = config(&[("SPARK_MASTER", "local[2]")]);
        let args = SparkSubmit::for_local(
            &c.spark,
            &c.backend.local().unwrap().spark_master,
            "/s/scripts.zip".into(),
        )
        .to_args();
        assert_eq!(
            &args[..5],
            [
                "--master",
                "local[2]",
                "--py-files",
                "/s/scripts.zip",
                "--conf"
            ]
        );
        assert_eq!(args[5], "spark.driver.memory=4g");
        assert!(!args.iter().any(|a| a.starts_with("spark.executor.memory=")));
    }

    #[test]
    fn a_cluster_master_keeps_the_driver_here_in_client_mode_and_sizes_the_executors() {
        for master in ["spark://10.0.0.5:7077", "yarn"] {
            let c = config(&[
                ("SPARK_MASTER", master),
                ("EMR_EXECUTOR_MEMORY", "6g"),
                ("EMR_EXECUTOR_CORES", "2"),
            ]);
            let params = SparkSubmit::for_local(
                &c.spark,
                &c.backend.local().unwrap().spark_master,
                "/s/scripts.zip".into(),
            )
            .to_parameter_string();
            assert!(
                params.starts_with(&format!(
                    "--master {master} --deploy-mode client --py-files /s/scripts.zip \
                     --conf spark.executor.cores=2 --conf spark.executor.memory=6g"
                )),
                "{params}"
            );
            assert!(
                params.contains("--conf spark.executor.instances=3"),
                "{params}"
            );
            assert!(params.contains("--conf spark.driver.memory=4g"), "{params}");
            assert!(
                params.ends_with("--conf spark.executor.memoryOverhead=2g"),
                "{params}"
            );
        }
    }
}
