//! One real run: the example PySpark job of `scripts/` goes through the service on the
//! local backend, with the real spark-submit, to COMPLETED, writes its result, and its
//! job-end notice reaches Multiomix.
//!
//! spark-submit comes from the test virtualenv: `dev/test.sh` sets REAL_SPARK_SUBMIT (and
//! PYSPARK_PYTHON, which a pip-installed spark-submit needs). Without it the test is
//! skipped with a message on a developer's machine, and fails under CI.

mod common;

use std::path::PathBuf;
use std::time::Duration;

use common::is_multiomix_date;
use multiomix_aws_emr::app::Application;
use multiomix_aws_emr::config::Config;
use multiomix_fakes::FakeMultiomix;
use serde_json::json;

fn spark_submit() -> Option<String> {
    if let Ok(p) = std::env::var("REAL_SPARK_SUBMIT") {
        return Some(p);
    }
    if std::env::var_os("CI").is_some() {
        panic!("REAL_SPARK_SUBMIT is not set: CI must run the real example job (run dev/test.sh)");
    }
    eprintln!("skipping: REAL_SPARK_SUBMIT is not set (dev/test.sh sets it)");
    None
}

#[tokio::test]
async fn the_example_job_runs_through_the_service_to_completed_with_its_notice() {
    let Some(spark_submit) = spark_submit() else {
        return;
    };
    let repo = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let dir = tempfile::tempdir().unwrap();
    let results = dir.path().join("results");
    std::fs::create_dir_all(&results).unwrap();
    let multiomix = FakeMultiomix::start().await;
    let vars: Vec<(String, String)> = [
        ("JOB_BACKEND", "local".to_string()),
        ("SPARK_SUBMIT", spark_submit),
        ("SPARK_MASTER", "local[2]".to_string()),
        ("EMR_DRIVER_MEMORY", "1g".to_string()),
        (
            "LOCAL_SCRIPTS_DIR",
            repo.join("scripts").display().to_string(),
        ),
        (
            "LOCAL_LOG_DIR",
            dir.path().join("logs").display().to_string(),
        ),
        (
            "DATASETS_PATH",
            repo.join("examples/datasets").display().to_string(),
        ),
        ("RESULTS_PATH", results.display().to_string()),
        (
            "DATABASE_URL",
            format!("sqlite:{}/store.db", dir.path().display()),
        ),
        ("MULTIOMIX_URL", multiomix.url()),
        ("HOST", "127.0.0.1".to_string()),
        ("PORT", "0".to_string()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect();
    let app = Application::build(Config::from_vars(vars).unwrap())
        .await
        .expect("the local backend finds spark-submit and the scripts");
    let base = format!("http://{}", app.local_addr());
    let server = tokio::spawn(app.run_until_stopped(std::future::pending()));
    let http = reqwest::Client::new();

    let body = json!({"name": "example-blind-search", "algorithm": 0,
        "entrypoint_arguments": [
            {"name": "app-name", "value": "exp-1"},
            {"name": "molecules-dataset", "value": "molecules.csv"},
            {"name": "clinical-dataset", "value": "clinical.csv"},
            {"name": "top", "value": 5},
            {"name": "n-stars", "value": 15}]});
    let id = common::submit_job(&http, &base, &body).await;

    let job = common::read_job_until(&http, &base, &id, Duration::from_secs(300), |job| {
        job["state"] != "PENDING" && job["state"] != "RUNNING"
    })
    .await;
    let log = std::fs::read_to_string(job["logUri"].as_str().unwrap()).unwrap_or_default();
    assert_eq!(job["state"], "COMPLETED", "{job}\n--- log ---\n{log}");
    assert!(is_multiomix_date(&job["finishedAt"]), "{job}");

    let result = std::fs::read_to_string(results.join("exp-1/result.csv"))
        .expect("the job wrote its result under RESULTS_PATH/<app-name>/");
    // Five molecules kept; the two planted to follow survival time rank first.
    let lines: Vec<&str> = result.lines().collect();
    assert_eq!(lines.len(), 1 + 5, "{result}");
    let top2 = lines[1..3].join("\n");
    assert!(
        top2.contains("GENE_03") && top2.contains("GENE_11"),
        "{result}"
    );

    let notices = multiomix
        .wait_for_notices(1, Duration::from_secs(30))
        .await
        .unwrap();
    assert_eq!(notices[0].id, id);
    assert_eq!(notices[0].body["state"], "COMPLETED");
    server.abort();
}
