//! Real runs: Multiomix's own BBHA request bodies (svm, rf, k-means clustering with
//! log-likelihood) on new datasets with a planted signal go through the service on the
//! local backend, with the real spark-submit and the jobs of `scripts/`, to COMPLETED;
//! each job-end notice reaches Multiomix, and the results folder reads the way
//! Multiomix's view reads it (`scripts/tests/multiomix_reader.py`, run with the jobs'
//! pinned environment). Given the clinical file, the reader also rebuilds Multiomix's
//! estimator and checks with the libraries that `best_metric` is the selected subset's
//! fitness (same folds and seed), that model.pkl predicts as that estimator fitted on the
//! features in sorted order, and that the subset's times row has its optimizer iterations.
//! A longer BBHA is read through `GET /job/{id}` while it runs: its progress advances
//! iteration by iteration, as its log says, with an ETA that shrinks.
//!
//! spark-submit comes from the test virtualenv: `dev/test.sh` sets REAL_SPARK_SUBMIT and
//! PYSPARK_PYTHON (which a pip-installed spark-submit needs, and which runs the reader).
//! Without them the test is skipped with a message on a developer's machine, and fails
//! under CI.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::{json, Value};

use crate::common;
use crate::common::{is_multiomix_date, TestApp};

fn tools() -> Option<(String, String)> {
    match (
        std::env::var("REAL_SPARK_SUBMIT"),
        std::env::var("PYSPARK_PYTHON"),
    ) {
        (Ok(spark), Ok(python)) => Some((spark, python)),
        _ if std::env::var_os("CI").is_some() => {
            panic!("REAL_SPARK_SUBMIT and PYSPARK_PYTHON must be set under CI (run dev/test.sh)")
        }
        _ => {
            eprintln!(
                "skipping: REAL_SPARK_SUBMIT or PYSPARK_PYTHON is not set (dev/test.sh sets both)"
            );
            None
        }
    }
}

/// Multiomix's request for experiment `id`: its arguments in Multiomix's order and value
/// forms (n-stars and bbha-iterations as numbers, cv-folds and the other integers as
/// strings), with the model's own arguments.
fn multiomix_bbha_request(id: u32, model: &str, model_args: Value) -> Value {
    let app = format!("BBHA_{id}");
    let mut args = vec![
        json!({"name": "app-name", "value": app}),
        json!({"name": "molecules-dataset", "value": format!("{app}/molecules.csv")}),
        json!({"name": "clinical-dataset", "value": format!("{app}/clinical.csv")}),
        json!({"name": "model", "value": model}),
        json!({"name": "n-stars", "value": 5}),
        json!({"name": "bbha-iterations", "value": 2}),
        json!({"name": "cv-folds", "value": "3"}),
    ];
    args.extend(model_args.as_array().unwrap().iter().cloned());
    args.push(json!({"name": "random-state", "value": "7"}));
    json!({"name": format!("JobforFSExperiment{id}"), "algorithm": 1,
           "entrypoint_arguments": args})
}

/// A new dataset in Multiomix's format with a planted signal (3 of 40 molecules drive
/// survival), written by `examples/datasets/generate.py`: 150 samples, so the forest's
/// leaves of at least 15 samples still split on three folds.
fn planted_dataset(python: &str, datasets: &Path, app: &str, repo: &Path, seed: u32) {
    let out = std::process::Command::new(python)
        .arg(repo.join("examples/datasets/generate.py"))
        .args(["--molecules", "40", "--samples", "150", "--signal", "3"])
        .args(["--seed", &seed.to_string()])
        .arg("--out")
        .arg(datasets.join(app))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "generate.py: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn copy_example(datasets: &Path, app: &str, repo: &Path) {
    let dir = datasets.join(app);
    std::fs::create_dir_all(&dir).unwrap();
    for file in ["molecules.csv", "clinical.csv"] {
        std::fs::copy(
            repo.join("examples/datasets/example").join(file),
            dir.join(file),
        )
        .unwrap();
    }
}

/// The service on the local backend with the real spark-submit (`local[2]`), the repo's
/// scripts, empty datasets and results folders and a fake Multiomix; `extra` variables
/// on top.
struct LocalService {
    app: TestApp,
    repo: PathBuf,
    results: PathBuf,
    datasets: PathBuf,
}

impl LocalService {
    async fn start(spark_submit: String, extra: &[(&str, &str)]) -> Self {
        let repo = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
        let app = TestApp::builder()
            .local_with(&spark_submit, &repo.join("scripts"))
            .var("EMR_DRIVER_MEMORY", "1g")
            .vars(extra)
            .start()
            .await;
        let (results, datasets) = (app.path("results"), app.path("data"));
        std::fs::create_dir_all(&results).unwrap();
        LocalService {
            app,
            repo,
            results,
            datasets,
        }
    }
}

#[tokio::test]
async fn multiomix_bbha_requests_for_every_model_complete_and_read_as_multiomix_reads_them() {
    let Some((spark_submit, python)) = tools() else {
        return;
    };
    // The folder and the fake Multiomix live as long as the test.
    let LocalService {
        app,
        repo,
        results,
        datasets,
    } = LocalService::start(spark_submit, &[("LOCAL_MAX_CONCURRENT", "4")]).await;

    let requests = [
        (
            41,
            "svm",
            "FastKernelSurvivalSVM",
            json!([
                {"name": "svm-kernel", "value": "linear"},
                {"name": "svm-optimizer", "value": "avltree"},
                {"name": "svm-max-iterations", "value": "1000"},
                {"name": "svm-is-regression", "value": "true"}]),
        ),
        (
            42,
            "rf",
            "RandomSurvivalForest",
            json!([{"name": "rf-n-estimators", "value": 10}]),
        ),
        (
            43,
            "clustering",
            "KMeans",
            json!([
                {"name": "clustering-algorithm", "value": "k_means"},
                {"name": "number-of-clusters", "value": "2"},
                {"name": "clustering-scoring-method", "value": "log_likelihood"}]),
        ),
    ];
    let mut ids = Vec::new();
    for (id, model, _, model_args) in &requests {
        planted_dataset(&python, &datasets, &format!("BBHA_{id}"), &repo, *id);
        let body = multiomix_bbha_request(*id, model, model_args.clone());
        ids.push(common::submit_job(&app.http, &app.base, &body).await);
    }

    // A request the job refuses (a misspelt argument) fails before Spark starts, and the
    // job's one-line reason is in stateDetails.
    copy_example(&datasets, "BBHA_44", &repo);
    let mut refused = multiomix_bbha_request(44, "svm", json!([]));
    refused["entrypoint_arguments"]
        .as_array_mut()
        .unwrap()
        .push(json!({"name": "n-star", "value": 15}));
    let refused_id = common::submit_job(&app.http, &app.base, &refused).await;

    for ((id, model, class, _), job_id) in requests.iter().zip(&ids) {
        let job = app
            .read_job_within(job_id, Duration::from_secs(300), |job| {
                job["state"] != "PENDING" && job["state"] != "RUNNING"
            })
            .await;
        let log = std::fs::read_to_string(job["logUri"].as_str().unwrap()).unwrap_or_default();
        assert_eq!(job["state"], "COMPLETED", "{job}\n--- log ---\n{log}");
        assert!(is_multiomix_date(&job["finishedAt"]), "{job}");

        let folder = results.join(format!("BBHA_{id}"));
        let out = std::process::Command::new(&python)
            .arg(repo.join("scripts/tests/multiomix_reader.py"))
            .arg(&folder)
            .arg(datasets.join(format!("BBHA_{id}/molecules.csv")))
            .arg(datasets.join(format!("BBHA_{id}/clinical.csv")))
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{model}: the reader failed: {}\n--- log ---\n{log}",
            String::from_utf8_lossy(&out.stderr)
        );
        let summary: Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(summary["model"], *model, "{summary}");
        assert_eq!(summary["model_class"], *class, "{summary}");
        // 5 stars and all molecules, then 4 moved stars in each of 2 iterations.
        assert_eq!(summary["times_rows"], 6 + 4 + 4, "{summary}");
        assert!(!summary["features"].as_array().unwrap().is_empty());
        // The reader failed had any of these disagreed; they are shown for the record.
        assert_eq!(summary["features_sorted"], true, "{summary}");
        assert_eq!(summary["model_order_checked"], true, "{summary}");
        let recomputed = summary["recomputed_fitness"].as_f64().unwrap();
        let best_metric = summary["best_metric"].as_f64().unwrap();
        assert!((recomputed - best_metric).abs() <= 1e-9, "{summary}");
        let iterations = summary["best_row"]["number_of_iterations"]
            .as_f64()
            .unwrap();
        if *model == "svm" {
            assert!(iterations > 1.0, "{summary}");
        } else {
            assert_eq!(iterations, 0.0, "{summary}");
        }
        if *model == "clustering" {
            // The mean partial log-likelihood per sample: a few units, not n times that.
            let metric = summary["best_metric"].as_f64().unwrap();
            assert!((-20.0..0.0).contains(&metric), "{summary}");
        }
    }

    let job = app
        .read_job_within(&refused_id, Duration::from_secs(300), |job| {
            job["state"] != "PENDING" && job["state"] != "RUNNING"
        })
        .await;
    assert_eq!(job["state"], "FAILED", "{job}");
    let details = job["stateDetails"].as_str().unwrap_or_default();
    assert!(details.contains("code 2"), "{job}");
    assert!(
        details.contains("[feature-selection] error: unknown argument --n-star"),
        "{job}"
    );
    assert!(!results.join("BBHA_44").exists());
    ids.push(refused_id);

    let notices = app
        .multiomix
        .wait_for_notices(ids.len(), Duration::from_secs(30))
        .await
        .unwrap();
    for (i, job_id) in ids.iter().enumerate() {
        let notice = notices
            .iter()
            .find(|n| &n.id == job_id)
            .unwrap_or_else(|| panic!("no notice for {job_id}: {notices:?}"));
        let want = if i < requests.len() {
            "COMPLETED"
        } else {
            "FAILED"
        };
        assert_eq!(notice.body["state"], want);
    }
}

/// A real BBHA of 8 iterations, read through `GET /job/{id}` while it runs: the progress
/// advances iteration by iteration as the job's log says, evaluations grow, and the ETA
/// shrinks as the run proceeds and is gone once it ended.
#[tokio::test]
async fn a_real_bbha_reports_its_progress_iteration_by_iteration_with_a_shrinking_eta() {
    let Some((spark_submit, python)) = tools() else {
        return;
    };
    // The folder and the fake Multiomix live as long as the test.
    let LocalService {
        app,
        repo,
        results,
        datasets,
    } = LocalService::start(spark_submit, &[("PROGRESS_INTERVAL", "0.1")]).await;

    planted_dataset(&python, &datasets, "BBHA_51", &repo, 51);
    let mut body =
        multiomix_bbha_request(51, "rf", json!([{"name": "rf-n-estimators", "value": 10}]));
    for argument in body["entrypoint_arguments"].as_array_mut().unwrap() {
        if argument["name"] == "bbha-iterations" {
            argument["value"] = json!(8);
        }
    }
    let id = common::submit_job(&app.http, &app.base, &body).await;

    // Every reading while it runs: (iteration, evaluations done, ETA).
    let readings = std::cell::RefCell::new(Vec::new());
    let ended = common::wait_for("the BBHA to end", Duration::from_secs(300), || async {
        let (_, job) = app.get(&format!("/job/{id}")).await;
        if job["state"] != "PENDING" && job["state"] != "RUNNING" {
            return Ok(job);
        }
        let p = &job["progress"];
        if !p.is_null() {
            assert_eq!(p["iterations"], 8, "{job}");
            // 5 stars and all molecules, then 4 moved stars in each of 8 iterations.
            assert_eq!(p["evaluationsTotal"], 6 + 4 * 8, "{job}");
            assert!(is_multiomix_date(&p["updatedAt"]), "{job}");
            let eta = match &p["etaSeconds"] {
                Value::Null => None,
                // A JSON integer: finite and not negative.
                eta => Some(eta.as_u64().unwrap_or_else(|| panic!("{job}"))),
            };
            readings.borrow_mut().push((
                p["iteration"].as_u64().unwrap(),
                p["evaluationsDone"].as_u64().unwrap(),
                eta,
            ));
        }
        Err(job)
    })
    .await;
    let readings: Vec<(u64, u64, Option<u64>)> = readings.into_inner();
    let log = std::fs::read_to_string(ended["logUri"].as_str().unwrap()).unwrap_or_default();
    assert_eq!(ended["state"], "COMPLETED", "{ended}\n--- log ---\n{log}");

    // The job logs one line per report: iterations 0 to 8.
    let reported: Vec<u64> = log
        .lines()
        .filter_map(|l| l.split("progress: iteration ").nth(1))
        .filter_map(|rest| rest.split('/').next()?.parse().ok())
        .collect();
    assert_eq!(reported, (0..=8).collect::<Vec<u64>>(), "{log}");

    // What GET /job showed: iterations only moving forward, each one the job reported,
    // several of them while it ran, and evaluations growing with them.
    let mut distinct: Vec<(u64, u64)> = readings.iter().map(|r| (r.0, r.1)).collect();
    distinct.dedup();
    assert!(distinct.len() >= 3, "too few iterations seen: {readings:?}");
    assert!(
        distinct
            .windows(2)
            .all(|w| w[0].0 < w[1].0 && w[0].1 < w[1].1),
        "{readings:?}"
    );
    // The ETA of the last iteration seen running is below that of the first.
    let etas: Vec<(u64, u64)> = readings
        .iter()
        .filter_map(|r| r.2.map(|eta| (r.0, eta)))
        .collect();
    let (first, last) = (etas.first().unwrap(), etas.last().unwrap());
    assert!(last.0 > first.0, "{readings:?}");
    assert!(last.1 < first.1, "the ETA did not shrink: {readings:?}");

    // Ended: the last report, without an ETA; its file is gone.
    let job = app
        .read_job_within(&id, Duration::from_secs(30), |job| {
            job["progress"]["iteration"] == 8
        })
        .await;
    assert_eq!(job["progress"]["evaluationsDone"], 38, "{job}");
    assert!(job["progress"]["etaSeconds"].is_null(), "{job}");
    let report = results.join(".progress/BBHA_51.json");
    common::wait_until("the report to be removed", Duration::from_secs(30), || {
        !report.exists()
    })
    .await;
}
