//! The body of `POST /batches`: the same spark-submit options as on EMR on EC2 (one
//! builder, [`SparkSubmit`]), in the fields Livy has for them.
//!
//! Livy turns `driverMemory`, `driverCores`, `executorMemory`, `executorCores` and
//! `numExecutors` into the matching `spark.*` settings and passes `conf` through, so
//! the sizes go in the fields and everything else in `conf`; the driver's environment is
//! `spark.yarn.appMasterEnv.*`, which reaches the driver in YARN's cluster mode.

use serde_json::{json, Map, Value};

use crate::backend::spark::{entry_point, entry_point_arguments, py_files, DriverEnv, SparkSubmit};
use crate::config::{JobSettings, LivySettings, SparkSettings};
use crate::job::JobSpec;

/// The `spark.*` settings Livy has a field of its own for, and whether the field is a
/// number.
const FIELDS: [(&str, &str, bool); 5] = [
    ("spark.driver.memory", "driverMemory", false),
    ("spark.driver.cores", "driverCores", true),
    ("spark.executor.memory", "executorMemory", false),
    ("spark.executor.cores", "executorCores", true),
    ("spark.executor.instances", "numExecutors", true),
];

/// `{LIVY_PACKAGE_URL}scripts/{ALGO_<ALG>_ENTRYPOINT}`.
pub fn file(settings: &LivySettings, job: &JobSettings, spec: &JobSpec) -> String {
    format!(
        "{}scripts/{}",
        settings.package_url,
        entry_point(job, spec.algorithm)
    )
}

/// The batch that runs `spec`, named `batch_name`.
pub fn batch_body(
    settings: &LivySettings,
    spark: &SparkSettings,
    job: &JobSettings,
    spec: &JobSpec,
    batch_name: &str,
) -> Value {
    let py_files = format!(
        "{}py-files/{}",
        settings.package_url,
        py_files(job, spec.algorithm)
    );
    let submit = SparkSubmit::with_py_files(py_files)
        .sizes(spark)
        .driver_env(DriverEnv::Yarn, job, spec)
        .python_memory(spark)
        .progress_token(DriverEnv::Yarn, spec);
    let mut body = Map::new();
    body.insert("file".into(), json!(file(settings, job, spec)));
    body.insert("name".into(), json!(batch_name));
    body.insert(
        "args".into(),
        json!(entry_point_arguments(spec, &job.args_key_prefix)),
    );
    let mut conf = Map::new();
    for (option, value) in submit.options {
        if option == "--py-files" {
            body.insert("pyFiles".into(), json!([value]));
            continue;
        }
        let Some((key, value)) = value.split_once('=') else {
            continue;
        };
        let field = FIELDS.iter().find(|(k, _, _)| *k == key);
        match field {
            Some((_, field, true)) => match value.parse::<u32>() {
                Ok(n) => {
                    body.insert((*field).into(), json!(n));
                }
                // Checked at start-up; were it not a number, Spark reads it from conf.
                Err(_) => {
                    conf.insert(key.into(), json!(value));
                }
            },
            Some((_, field, false)) => {
                body.insert((*field).into(), json!(value));
            }
            None => {
                conf.insert(key.into(), json!(value));
            }
        }
    }
    body.insert("conf".into(), Value::Object(conf));
    if let Some(user) = &settings.proxy_user {
        body.insert("proxyUser".into(), json!(user));
    }
    if let Some(queue) = &settings.queue {
        body.insert("queue".into(), json!(queue));
    }
    Value::Object(body)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;
    use crate::job::validate_request;

    fn config(extra: &[(&str, &str)]) -> Config {
        let mut vars = vec![
            ("JOB_BACKEND", "livy"),
            ("LIVY_URL", "http://livy:8998"),
            ("LIVY_PACKAGE_URL", "hdfs:///apps/multiomix"),
        ];
        vars.extend_from_slice(extra);
        Config::from_vars(vars.iter().map(|(k, v)| (k.to_string(), v.to_string()))).unwrap()
    }

    fn spec() -> JobSpec {
        validate_request(&json!({"name": "BreastCancerBBHA", "algorithm": 1,
            "entrypoint_arguments": [{"name": "app-name", "value": "BBHA_42"},
                                     {"name": "n-stars", "value": 15}]}))
        .unwrap()
    }

    #[test]
    fn the_sizes_go_in_livys_fields_and_the_rest_in_conf() {
        let c = config(&[
            ("EMR_EXECUTOR_MEMORY", "6g"),
            ("EMR_EXECUTOR_INSTANCES", "5"),
            ("LIVY_QUEUE", "research"),
        ]);
        let body = batch_body(
            c.backend.livy().unwrap(),
            &c.spark,
            &c.job,
            &spec(),
            "p:lv1:BBHA_42:BreastCancerBBHA",
        );
        assert_eq!(body["file"], "hdfs:///apps/multiomix/scripts/main.py");
        assert_eq!(
            body["pyFiles"],
            json!(["hdfs:///apps/multiomix/py-files/scripts.zip"])
        );
        assert_eq!(
            body["args"],
            json!(["--app-name", "BBHA_42", "--n-stars", "15"])
        );
        assert_eq!(body["driverMemory"], "4g");
        assert_eq!(body["driverCores"], 1);
        assert_eq!(body["executorMemory"], "6g");
        assert_eq!(body["executorCores"], 1);
        assert_eq!(body["numExecutors"], 5);
        assert_eq!(body["queue"], "research");
        assert!(body.get("proxyUser").is_none(), "{body}");
        let conf = body["conf"].as_object().unwrap();
        assert_eq!(conf["spark.driver.maxResultSize"], "2g");
        assert_eq!(conf["spark.executor.memoryOverhead"], "2g");
        assert_eq!(conf["spark.yarn.appMasterEnv.JOB_NAME"], "BreastCancerBBHA");
        assert_eq!(conf["spark.yarn.appMasterEnv.DATASETS_PATH"], "/var/data");
        for (key, _, _) in FIELDS {
            assert!(!conf.contains_key(key), "{key} is a field, not conf");
        }
        assert!(
            !conf.contains_key("spark.yarn.appMasterEnv.PROGRESS_TOKEN"),
            "a spec without a token sends none"
        );
    }

    /// The job's progress token reaches the driver like its other variables, so that the
    /// service accepts its progress reports.
    #[test]
    fn the_progress_token_reaches_the_driver() {
        let c = config(&[]);
        let mut spec = spec();
        let token = crate::job::ProgressToken::generate();
        spec.progress_token = Some(token.clone());
        let body = batch_body(
            c.backend.livy().unwrap(),
            &c.spark,
            &c.job,
            &spec,
            "p:lv1:a:b",
        );
        assert_eq!(
            body["conf"]["spark.yarn.appMasterEnv.PROGRESS_TOKEN"],
            token.expose()
        );
    }
}
