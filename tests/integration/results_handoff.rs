//! The whole data path with `DATA_STAGING=s3`, against moto's S3 server (a peer nobody
//! here wrote) and the fake EMR backends: a Multiomix-shaped experiment's datasets reach
//! `datasets/<app-name>/` before its job starts; "the job" (this test, playing the job
//! package or the pod's sidecar) reads them there and writes its results under
//! `results/<app-name>/`; the results are in the shared results folder **before** the
//! notice reaches the fake Multiomix, which looks at the folder the moment the notice
//! arrives; afterwards the datasets are deleted and nothing else was touched.
//!
//! moto's own EMR servers cannot end a run the way these cases need (emr-containers never
//! ends one, emr-serverless starts them already ended), so the EMR side is the fakes,
//! which speak the real wire protocols to the real SDKs; Livy's side is its fake.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use aws_sdk_s3::primitives::ByteStream;
use multiomix_aws_emr::job::JobId;
use multiomix_fakes::FakeMultiomix;
use serde_json::{json, Value};
use tempfile::TempDir;

use crate::common;
use crate::common::moto::{bucket_keys, moto, s3_client, Moto};
use crate::common::TestApp;
use crate::common::{wait_for, PATIENCE};
use crate::conformance::harness::{Ending, Peer, Suite};
use crate::conformance::peers;

const BUCKET: &str = "multiomix-bucket";
const APP: &str = "BBHA_42";

/// The service with staging on, in front of one backend peer, moto's S3 and a fake
/// Multiomix that lists the shared results folder of `APP` as each notice arrives.
struct Handoff {
    suite: Suite,
    s3: aws_sdk_s3::Client,
    datasets: PathBuf,
    results: PathBuf,
    _dir: TempDir,
    _moto: Moto,
}

impl std::ops::Deref for Handoff {
    type Target = Suite;

    fn deref(&self) -> &Suite {
        &self.suite
    }
}

/// Every file under `dir`, by its path below it, with its content; hidden entries too.
fn files_under(dir: &Path) -> BTreeMap<String, String> {
    let mut found = BTreeMap::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(at) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&at) else {
            continue;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            if path.is_dir() {
                stack.push(path);
            } else {
                let name = path.strip_prefix(dir).unwrap().display().to_string();
                let content = String::from_utf8_lossy(&std::fs::read(&path).unwrap()).into();
                found.insert(name, content);
            }
        }
    }
    found
}

fn entries(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

impl Handoff {
    async fn start(peer: Arc<dyn Peer>, extra: &[(&str, &str)]) -> Option<Handoff> {
        let moto = moto().await?;
        let s3 = s3_client(&moto.url);
        s3.create_bucket()
            .bucket(BUCKET)
            .send()
            .await
            .expect("CreateBucket");
        let dir = tempfile::tempdir().unwrap();
        let datasets = dir.path().join("data-spark");
        let results = dir.path().join("results-spark");
        std::fs::create_dir_all(&datasets).unwrap();
        std::fs::create_dir_all(&results).unwrap();

        let observed_folder = results.join(APP);
        let multiomix = FakeMultiomix::builder()
            .observe(move |_, _| json!(files_under(&observed_folder)))
            .start()
            .await;
        let staging = [
            ("DATA_STAGING", "s3"),
            ("SHARED_DATASETS_DIR", &datasets.display().to_string()),
            ("SHARED_RESULTS_DIR", &results.display().to_string()),
            // For a backend that reads S3 itself (Livy's look for result.json).
            ("AWS_ENDPOINT_URL", &moto.url),
        ];
        let builder = TestApp::builder()
            .multiomix(Arc::new(multiomix))
            .vars(&staging)
            .s3(&moto.url);
        let suite = Suite::start_from(peer, builder, extra).await;
        Some(Handoff {
            suite,
            s3,
            datasets,
            results,
            _dir: dir,
            _moto: moto,
        })
    }

    /// Multiomix's request for `APP`, its datasets written to the shared folder first.
    async fn submit(&self) -> String {
        let write = |relative: &str, content: &str| {
            let path = self.datasets.join(relative);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(path, content).unwrap();
        };
        write(
            &format!("{APP}/molecules.csv"),
            "molecule,s1,s2\nBRCA1,0.5,0.7\n",
        );
        write(
            &format!("{APP}/clinical.csv"),
            "sample,time,event\ns1,10,1\ns2,4,0\n",
        );
        write(&format!("{APP}/notes.txt"), "not asked for");
        common::submit_job(&self.http, &self.base, &request()).await
    }

    /// Posts Multiomix's request for `APP` (its datasets already written); the status
    /// and the body of the answer.
    async fn post(&self) -> (u16, Value) {
        let r = self
            .http
            .post(format!("{}/job", self.base))
            .json(&request())
            .send()
            .await
            .expect("POST /job");
        (r.status().as_u16(), r.json().await.unwrap_or(Value::Null))
    }

    async fn put(&self, key: &str, body: &str) {
        self.s3
            .put_object()
            .bucket(BUCKET)
            .key(key)
            .body(ByteStream::from(body.as_bytes().to_vec()))
            .send()
            .await
            .unwrap_or_else(|e| panic!("PutObject {key}: {e:?}"));
    }

    async fn get(&self, key: &str) -> String {
        let object = self
            .s3
            .get_object()
            .bucket(BUCKET)
            .key(key)
            .send()
            .await
            .unwrap_or_else(|e| panic!("GetObject {key}: {e:?}"));
        String::from_utf8(object.body.collect().await.unwrap().to_vec()).unwrap()
    }

    async fn keys(&self) -> Vec<String> {
        bucket_keys(&self.s3, BUCKET).await
    }

    /// Lists the bucket until its keys are as `done` wants them.
    async fn keys_until(&self, what: &str, done: impl Fn(&[String]) -> bool) {
        wait_for(what, PATIENCE, || async {
            let keys = self.keys().await;
            if done(&keys) {
                Ok(())
            } else {
                Err(keys)
            }
        })
        .await
    }

    /// GETs a path of the service as text.
    async fn get_text(&self, path: &str) -> String {
        let response = self.http.get(self.url(path)).send().await.unwrap();
        response.text().await.unwrap()
    }

    /// Ends the run as the backend would, and calls the service as the EMR on EKS
    /// sidecar does where the peer needs it.
    async fn end(&self, id: &str, ending: Ending) {
        self.peer.end(id, ending).await;
        if self.peer.abilities().needs_callback {
            let status = self
                .http
                .patch(format!("{}/job/{id}", self.base))
                .json(&json!({"state": "Terminated"}))
                .send()
                .await
                .unwrap()
                .status();
            assert_eq!(status, 204);
        }
    }

    /// Reads the job until its notice matches `wanted`.
    async fn notice_until(&self, id: &str, wanted: impl Fn(&Value) -> bool) -> Value {
        let job = self.read_job_until(id, |job| wanted(&job["notice"])).await;
        job["notice"].clone()
    }

    /// Waits until the copy of the job's results has failed at least twice, and checks
    /// that its error says each of `why`, that no notice left, and that no half folder
    /// is in the shared results folder.
    async fn waits_for_its_results(&self, id: &str, why: &[&str]) {
        let notice = self
            .notice_until(id, |n| {
                n["status"] == "fetching" && n["resultsFetchAttempts"].as_i64() >= Some(2)
            })
            .await;
        let error = notice["lastError"].as_str().unwrap();
        for part in why {
            assert!(error.contains(part), "{part} not in: {error}");
        }
        assert_eq!(self.multiomix.count(), 0, "no notice without its results");
        assert!(
            !self.results.join(APP).exists(),
            "no half folder: {:?}",
            entries(&self.results)
        );
    }

    /// Plays the job: reads its datasets from S3, then writes its results under
    /// `results/<app>/`, `result.json` last as the job package and the sidecar do.
    async fn run_the_job(&self, with_result: bool) -> BTreeMap<String, String> {
        let molecules = self.get(&format!("datasets/{APP}/molecules.csv")).await;
        let first_molecule = molecules.lines().nth(1).unwrap().split(',').next().unwrap();
        let results = BTreeMap::from([
            ("times.json".to_owned(), "[[1, 0.61, 2.5]]".to_owned()),
            (
                "model/model.pkl".to_owned(),
                "\u{80}\u{4}pickled model".to_owned(),
            ),
            (
                "result.json".to_owned(),
                format!(r#"{{"features": ["{first_molecule}"], "fitness": 0.61}}"#),
            ),
        ]);
        for (name, content) in &results {
            if name != "result.json" {
                self.put(&format!("results/{APP}/{name}"), content).await;
            }
        }
        if with_result {
            self.put(
                &format!("results/{APP}/result.json"),
                &results["result.json"],
            )
            .await;
        }
        results
    }
}

/// Multiomix's request for `APP`, with no Idempotency-Key, as Multiomix sends it.
fn request() -> Value {
    json!({"name": "JobforFSExperiment42", "algorithm": 1,
        "entrypoint_arguments": [
            {"name": "app-name", "value": APP},
            {"name": "molecules-dataset", "value": format!("{APP}/molecules.csv")},
            {"name": "clinical-dataset", "value": format!("{APP}/clinical.csv")},
            {"name": "model", "value": "svm"},
            {"name": "n-stars", "value": 15}]})
}

/// The case every staged backend passes: datasets in, job, results in the shared folder,
/// notice, datasets gone; nothing else read or written.
async fn the_data_path(peer: Arc<dyn Peer>) {
    let Some(h) = Handoff::start(peer, &[]).await else {
        return;
    };
    // Another experiment's files, which must stay untouched.
    h.put("datasets/BBHA_7/molecules.csv", "theirs").await;
    h.put("results/BBHA_7/result.json", "theirs").await;
    // An older copy of this experiment's results, to be replaced whole.
    std::fs::create_dir_all(h.results.join(APP)).unwrap();
    std::fs::write(h.results.join(APP).join("stale.json"), "old").unwrap();

    let id = h.submit().await;
    let submitted = h
        .peer
        .submitted(h._dir.path(), &id, "JobforFSExperiment42")
        .await;
    let staged = h.keys().await;
    assert!(
        staged.contains(&format!("datasets/{APP}/molecules.csv"))
            && staged.contains(&format!("datasets/{APP}/clinical.csv"))
            && !staged.contains(&format!("datasets/{APP}/notes.txt")),
        "{staged:?}"
    );
    if h.peer.abilities().needs_callback {
        // EMR on EKS: the pods find the app name on the driver pod.
        assert!(
            submitted.parameters.contains(&format!(
                "--conf spark.kubernetes.driver.annotation.multiomix-aws-emr/app-name={APP}"
            )),
            "{}",
            submitted.parameters
        );
    } else {
        // The job itself reads and writes S3.
        assert_eq!(
            submitted
                .driver_env
                .get("DATASETS_PATH")
                .map(String::as_str),
            Some("s3://multiomix-bucket/datasets/"),
            "{:?}",
            submitted.driver_env
        );
        assert_eq!(
            submitted.driver_env.get("RESULTS_PATH").map(String::as_str),
            Some("s3://multiomix-bucket/results/")
        );
    }

    // The backend keeps the app name with the run (a tag, or the step's arguments), so a
    // job adopted after a lost store still has its results copied.
    let run = h
        .backend
        .describe(&JobId::parse(&id).unwrap())
        .await
        .unwrap();
    assert_eq!(run.tags.get("app-name").map(String::as_str), Some(APP));

    let written = h.run_the_job(true).await;
    h.end(&id, Ending::Completed).await;
    let notices = h.multiomix.wait_for_notices(1, PATIENCE).await.unwrap();
    assert_eq!(notices[0].body["state"], "COMPLETED");
    assert_eq!(
        notices[0].observed,
        json!(written),
        "when the notice arrived, the shared folder held exactly the job's results"
    );
    assert_eq!(
        written["result.json"], r#"{"features": ["BRCA1"], "fitness": 0.61}"#,
        "the job read the staged dataset"
    );

    let notice = h.notice_until(&id, |n| n["status"] == "delivered").await;
    assert_eq!(notice["resultsFetchAttempts"], 1, "{notice}");
    // The staged datasets go once Multiomix has its notice; the rest stays.
    h.keys_until("the datasets to be deleted", |keys| {
        !keys.iter().any(|k| k.starts_with("datasets/BBHA_42/"))
    })
    .await;
    let mut expected: Vec<String> = written
        .keys()
        .map(|name| format!("results/{APP}/{name}"))
        .chain([
            "datasets/BBHA_7/molecules.csv".to_owned(),
            "results/BBHA_7/result.json".to_owned(),
        ])
        .collect();
    expected.sort();
    assert_eq!(h.keys().await, expected);
    assert_eq!(
        entries(&h.results),
        [APP],
        "no other folder, and no hidden download left in the results folder"
    );
    assert_eq!(files_under(&h.results.join(APP)), written);
    assert_eq!(h.multiomix.count(), 1);
}

#[tokio::test]
async fn emr_on_eks_results_are_in_the_shared_folder_before_the_notice() {
    the_data_path(peers::fake_eks().await.unwrap()).await;
}

#[tokio::test]
async fn emr_serverless_results_are_in_the_shared_folder_before_the_notice() {
    the_data_path(peers::fake_serverless().await.unwrap()).await;
}

#[tokio::test]
async fn emr_on_ec2_results_are_in_the_shared_folder_before_the_notice() {
    the_data_path(peers::fake_ec2().await.unwrap()).await;
}

#[tokio::test]
async fn livy_results_are_in_the_shared_folder_before_the_notice() {
    the_data_path(peers::fake_livy().await.unwrap()).await;
}

/// Livy says `success` whenever spark-submit exits 0, even when the Spark application
/// failed: without `result.json` the job is FAILED at once, saying why, and its notice
/// goes without waiting for files that will not come.
#[tokio::test]
async fn a_livy_success_without_result_json_is_failed_and_notified_at_once() {
    let Some(h) = Handoff::start(peers::fake_livy().await.unwrap(), &[]).await else {
        return;
    };
    let id = h.submit().await;
    let written = h.run_the_job(false).await;
    assert!(written.contains_key("result.json"));
    h.end(&id, Ending::Completed).await;
    let notices = h.multiomix.wait_for_notices(1, PATIENCE).await.unwrap();
    let body = &notices[0].body;
    assert_eq!(body["state"], "FAILED", "{body}");
    let details = body["stateDetails"].as_str().unwrap();
    assert!(
        details.contains("success")
            && details.contains("result.json")
            && details.contains("s3://multiomix-bucket/results/BBHA_42/"),
        "{details}"
    );
    let notice = h.notice_until(&id, |n| n["status"] == "delivered").await;
    assert_eq!(notice["resultsFetchAttempts"], 0, "{notice}");
    assert!(!h.results.join(APP).exists(), "nothing copied");
}

/// A batch Livy dropped before the service read its end, whose job wrote its results:
/// COMPLETED, its results copied, and the notice says what happened.
#[tokio::test]
async fn a_batch_livy_forgot_after_the_job_wrote_its_results_is_completed() {
    let livy = peers::livy_peer().await;
    let Some(h) = Handoff::start(livy.clone(), &[]).await else {
        return;
    };
    let id = h.submit().await;
    let written = h.run_the_job(true).await;
    let batch = peers::batch_of(&livy.0, &id);
    assert!(livy.0.forget(batch));
    let notices = h.multiomix.wait_for_notices(1, PATIENCE).await.unwrap();
    let body = &notices[0].body;
    assert_eq!(body["state"], "COMPLETED", "{body}");
    let details = body["stateDetails"].as_str().unwrap();
    assert!(
        details.contains(&format!("no longer holds batch {batch}"))
            && details.contains("result.json"),
        "{details}"
    );
    assert_eq!(notices[0].observed, json!(written));
}

#[tokio::test]
async fn results_not_there_yet_are_fetched_again_and_the_notice_waits_for_them() {
    let Some(h) = Handoff::start(peers::fake_eks().await.unwrap(), &[]).await else {
        return;
    };
    let id = h.submit().await;
    // The driver ended, but its sidecar has not uploaded `result.json` yet.
    let written = h.run_the_job(false).await;
    h.end(&id, Ending::Completed).await;
    h.waits_for_its_results(
        &id,
        &["result.json", "s3://multiomix-bucket/results/BBHA_42/"],
    )
    .await;

    h.put(
        &format!("results/{APP}/result.json"),
        &written["result.json"],
    )
    .await;
    let notices = h.multiomix.wait_for_notices(1, PATIENCE).await.unwrap();
    assert_eq!(notices[0].observed, json!(written));
    let notice = h.notice_until(&id, |n| n["status"] == "delivered").await;
    assert!(
        notice["resultsFetchAttempts"].as_i64() >= Some(3),
        "{notice}"
    );
    assert_eq!(notice["attempts"], 1, "{notice}");
}

#[tokio::test]
async fn failed_jobs_are_notified_without_waiting_for_files() {
    let Some(h) = Handoff::start(peers::fake_eks().await.unwrap(), &[]).await else {
        return;
    };
    let id = h.submit().await;
    h.end(&id, Ending::Failed).await;
    let notices = h.multiomix.wait_for_notices(1, PATIENCE).await.unwrap();
    assert_eq!(notices[0].body["state"], "FAILED");
    assert_eq!(notices[0].observed, json!({}), "nothing to read");
    let notice = h.notice_until(&id, |n| n["status"] == "delivered").await;
    assert_eq!(notice["resultsFetchAttempts"], 0, "{notice}");
    // Multiomix is done with the experiment: its datasets go too.
    h.keys_until("the datasets to be deleted", |keys| keys.is_empty())
        .await;
}

#[tokio::test]
async fn with_clean_up_off_the_datasets_stay() {
    let Some(h) = Handoff::start(
        peers::fake_eks().await.unwrap(),
        &[("DATASETS_CLEANUP", "off")],
    )
    .await
    else {
        return;
    };
    let id = h.submit().await;
    let written = h.run_the_job(true).await;
    h.end(&id, Ending::Completed).await;
    h.notice_until(&id, |n| n["status"] == "delivered").await;
    assert_eq!(files_under(&h.results.join(APP)), written);
    // The clean-up would run after the delivery is recorded, in the same piece of the
    // outbox's work, which sets the `notices_open` gauge last: once that reads 0 the
    // work is over, deletion included.
    wait_for("notices_open to be 0", PATIENCE, || async {
        let metrics = h.get_text("/metrics").await;
        if metrics.lines().any(|l| l == "notices_open 0") {
            Ok(())
        } else {
            Err(metrics)
        }
    })
    .await;
    let keys = h.keys().await;
    assert!(
        keys.contains(&format!("datasets/{APP}/molecules.csv"))
            && keys.contains(&format!("datasets/{APP}/clinical.csv")),
        "{keys:?}"
    );
}

#[tokio::test]
async fn an_s3_refusal_while_copying_is_retried_and_the_notice_waits_for_the_copy() {
    // The results bucket is gone once the job started: S3 refuses the listing
    // (NoSuchBucket), as it would refuse a service without s3:ListBucket. (It must be
    // there at the start, which empties the run's results folder.)
    let Some(h) = Handoff::start(
        peers::fake_eks().await.unwrap(),
        &[("S3_RESULTS_PREFIX", "s3://results-bucket/out/")],
    )
    .await
    else {
        return;
    };
    h.s3.create_bucket()
        .bucket("results-bucket")
        .send()
        .await
        .expect("CreateBucket");
    let id = h.submit().await;
    h.s3.delete_bucket()
        .bucket("results-bucket")
        .send()
        .await
        .expect("DeleteBucket");
    h.end(&id, Ending::Completed).await;
    h.waits_for_its_results(&id, &["NoSuchBucket", "s3://results-bucket/out/BBHA_42/"])
        .await;

    h.s3.create_bucket()
        .bucket("results-bucket")
        .send()
        .await
        .expect("CreateBucket");
    for (name, content) in [("times.json", "[]"), ("result.json", "{}")] {
        h.s3.put_object()
            .bucket("results-bucket")
            .key(format!("out/{APP}/{name}"))
            .body(ByteStream::from(content.as_bytes().to_vec()))
            .send()
            .await
            .expect("PutObject");
    }
    let notices = h.multiomix.wait_for_notices(1, PATIENCE).await.unwrap();
    assert_eq!(
        notices[0].observed,
        json!({"result.json": "{}", "times.json": "[]"})
    );
}

#[tokio::test]
async fn results_that_never_come_close_the_notice_as_given_up_without_sending_it() {
    let Some(h) = Handoff::start(
        peers::fake_eks().await.unwrap(),
        &[("NOTIFY_GIVE_UP_AFTER", "0.5")],
    )
    .await
    else {
        return;
    };
    let id = h.submit().await;
    // The job "completed" but its results never reach S3.
    h.end(&id, Ending::Completed).await;
    let notice = h.notice_until(&id, |n| n["status"] == "given_up").await;
    assert!(
        notice["resultsFetchAttempts"].as_i64() >= Some(2),
        "{notice}"
    );
    assert!(
        notice["lastError"]
            .as_str()
            .unwrap()
            .contains("result.json"),
        "{notice}"
    );
    assert_eq!(notice["attempts"], 0, "no delivery was attempted: {notice}");
    assert_eq!(h.multiomix.count(), 0, "never sent without its results");
    assert!(!h.results.join(APP).exists());
}

/// A 409 that names the `app-name` argument, in the service's error body.
fn assert_app_name_in_use(status: u16, body: &Value) {
    assert_eq!(status, 409, "{body}");
    assert_eq!(body["error"], "conflict", "{body}");
    assert_eq!(body["field"], "entrypoint_arguments[0].value", "{body}");
    assert!(
        body["message"].as_str().unwrap().contains("app-name"),
        "{body}"
    );
}

/// Multiomix posts without an Idempotency-Key: a worker that restarts mid-task posts the
/// same app name again. The second job would lose its datasets when the first one's
/// notice deletes them, so it is refused (409 naming `app-name`) until the first job's
/// end work is over; then the name is free again, to exactly one of two racing posts.
#[tokio::test]
async fn a_second_open_job_for_an_app_name_is_refused_until_the_first_is_done() {
    let Some(h) = Handoff::start(peers::fake_eks().await.unwrap(), &[]).await else {
        return;
    };
    let first = h.submit().await;
    let (status, body) = h.post().await;
    assert_app_name_in_use(status, &body);
    assert!(
        body["message"].as_str().unwrap().contains(&first),
        "names the job that holds it: {body}"
    );

    // The first job runs on with its datasets.
    let written = h.run_the_job(true).await;
    h.end(&first, Ending::Completed).await;
    let notices = h.multiomix.wait_for_notices(1, PATIENCE).await.unwrap();
    assert_eq!(notices[0].observed, json!(written));

    // Free again once the notice is delivered and the datasets removed: of two posts at
    // once, one starts a job and the other is refused.
    let (a, b) = wait_for("the app name to be freed", PATIENCE, || async {
        let (a, b) = tokio::join!(h.post(), h.post());
        if a.0 != 409 || b.0 != 409 {
            Ok((a, b))
        } else {
            Err(a)
        }
    })
    .await;
    let (started, refused) = if a.0 == 201 { (a, b) } else { (b, a) };
    assert_eq!(started.0, 201, "{started:?}");
    assert_app_name_in_use(refused.0, &refused.1);
    let second = started.1["id"].as_str().unwrap();
    assert_ne!(second, first);
    // The second job's datasets are there, and stay while it runs.
    let keys = h.keys().await;
    assert!(
        keys.contains(&format!("datasets/{APP}/molecules.csv")),
        "{keys:?}"
    );
}

/// Run 2 of an app must never be delivered with run 1's files: results left in S3 by
/// run 1 are removed before run 2 starts, so a run 2 that uploads no `result.json`
/// waits for its own, and what is delivered then is run 2's alone.
#[tokio::test]
async fn a_rerun_is_never_delivered_with_the_results_of_the_run_before() {
    let Some(h) = Handoff::start(peers::fake_eks().await.unwrap(), &[]).await else {
        return;
    };
    let first = h.submit().await;
    h.run_the_job(true).await;
    h.end(&first, Ending::Completed).await;
    h.notice_until(&first, |n| n["status"] == "delivered").await;

    let second = wait_for("the app name to be freed", PATIENCE, || async {
        let (status, body) = h.post().await;
        if status == 201 {
            return Ok(body["id"].as_str().unwrap().to_owned());
        }
        assert_app_name_in_use(status, &body);
        Err(body)
    })
    .await;
    let left: Vec<String> = h
        .keys()
        .await
        .into_iter()
        .filter(|k| k.starts_with(&format!("results/{APP}/")))
        .collect();
    assert!(
        left.is_empty(),
        "run 1's results are gone before run 2: {left:?}"
    );

    // Run 2 ends COMPLETED without a result.json: its notice waits.
    h.end(&second, Ending::Completed).await;
    let notice = h
        .notice_until(&second, |n| {
            n["status"] == "fetching" && n["resultsFetchAttempts"].as_i64() >= Some(2)
        })
        .await;
    assert!(
        notice["lastError"]
            .as_str()
            .unwrap()
            .contains("result.json"),
        "{notice}"
    );
    assert_eq!(h.multiomix.count(), 1, "only run 1's notice left");

    // Run 2's own result arrives: the shared folder holds it alone.
    h.put(&format!("results/{APP}/result.json"), r#"{"run": 2}"#)
        .await;
    let notices = h.multiomix.wait_for_notices(2, PATIENCE).await.unwrap();
    assert_eq!(notices[1].observed, json!({"result.json": r#"{"run": 2}"#}));
}

/// The hidden folders a stopped download leaves are removed by the next download of the
/// same app, and only of that app: `BBHA_42.incoming-1` is another app's name.
#[tokio::test]
async fn leftovers_are_removed_for_their_own_app_only() {
    let Some(h) = Handoff::start(peers::fake_eks().await.unwrap(), &[]).await else {
        return;
    };
    let uuid = "0123456789abcdef0123456789abcdef";
    let ours = format!(".{APP}.incoming-{uuid}");
    let theirs = format!(".{APP}.incoming-1.incoming-{uuid}");
    for folder in [&ours, &theirs] {
        std::fs::create_dir_all(h.results.join(folder)).unwrap();
        std::fs::write(h.results.join(folder).join("part.json"), "half").unwrap();
    }
    let id = h.submit().await;
    h.run_the_job(true).await;
    h.end(&id, Ending::Completed).await;
    h.multiomix.wait_for_notices(1, PATIENCE).await.unwrap();
    assert_eq!(entries(&h.results), [theirs, APP.to_owned()]);
}

/// The job's progress report as the job writes it (progress.py), for `APP`.
fn report(token: Option<&str>, iteration: u64, app: &str) -> Value {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64();
    let mut doc = json!({
        "version": 1, "appName": app, "algorithm": "bbha",
        "startedAt": now - 60.0, "updatedAt": now, "iteration": iteration, "iterations": 10,
        "bestFitness": 0.6 + iteration as f64 / 100.0, "molecules": 12,
        "evaluationsDone": 16 + 15 * iteration, "evaluationsTotal": 166,
        "history": [{"iteration": iteration, "bestFitness": 0.6, "molecules": 12,
                     "evaluationsDone": 16 + 15 * iteration, "at": now}],
    });
    if let Some(token) = token {
        doc["token"] = token.into();
    }
    doc
}

/// The value of the sample `series` in `/metrics` (0 when absent).
async fn sample(h: &Handoff, series: &str) -> f64 {
    let text = h
        .http
        .get(format!("{}/metrics", h.base))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    text.lines()
        .filter_map(|l| {
            l.strip_prefix(series)?
                .strip_prefix(' ')?
                .trim()
                .parse()
                .ok()
        })
        .next()
        .unwrap_or(0.0)
}

#[tokio::test]
async fn progress_reports_in_s3_show_in_get_job_and_bad_ones_are_refused_and_counted() {
    let fake = Arc::new(peers::FakeServerless(
        multiomix_fakes::FakeEmrServerless::start().await,
    ));
    let peer: Arc<dyn Peer> = fake.clone();
    let Some(h) = Handoff::start(peer, &[]).await else {
        return;
    };
    let id = h.submit().await;
    assert!(fake
        .0
        .set_state(&id, multiomix_fakes::RunState::Running, ""));
    // The job's token, as its driver gets it: the last of the run's parameters.
    let parameters = fake.0.start_requests()[0]["jobDriver"]["sparkSubmit"]
        ["sparkSubmitParameters"]
        .as_str()
        .unwrap()
        .to_owned();
    let (_, token) = parameters
        .rsplit_once(" --conf spark.emr-serverless.driverEnv.PROGRESS_TOKEN=")
        .unwrap_or_else(|| panic!("no token in {parameters}"));
    assert_eq!(token.len(), 64, "{parameters}");
    let key = format!("results/.progress/{APP}.json");
    let job = || async {
        let body: Value = h
            .http
            .get(format!("{}/job/{id}", h.base))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        body
    };
    assert!(
        job().await.get("progress").is_none(),
        "absent before a report"
    );

    // A report of the job itself, where the job puts it.
    h.put(&key, &report(Some(token), 1, APP).to_string()).await;
    let shown = h
        .read_job_until(&id, |body| body["progress"]["iteration"] == 1)
        .await;
    let progress = &shown["progress"];
    assert_eq!(progress["evaluationsDone"], 31);
    assert_eq!(progress["evaluationsTotal"], 166);
    assert_eq!(progress["bestFitness"], 0.61);
    assert!(common::is_multiomix_date(&progress["updatedAt"]), "{shown}");
    // 60 s for 31 evaluations, 135 left: about 261 s.
    let eta = progress["etaSeconds"].as_u64().unwrap();
    assert!((250..=262).contains(&eta), "{shown}");

    // Each bad report is refused, counted by its reason, and changes nothing.
    let too_large = {
        let mut doc = report(Some(token), 2, APP);
        doc["padding"] = "x".repeat(64 * 1024).into();
        doc
    };
    let wrong = "0".repeat(64);
    for (reason, doc) in [
        ("other_app", report(Some(token), 2, "BBHA_7")),
        ("wrong_token", report(Some(&wrong), 2, APP)),
        ("no_token", report(None, 2, APP)),
        ("too_large", too_large),
    ] {
        let series = format!(r#"progress_reports_refused_total{{reason="{reason}"}}"#);
        let before = sample(&h, &series).await;
        h.put(&key, &doc.to_string()).await;
        wait_for(&format!("{reason} to be counted"), PATIENCE, || async {
            match sample(&h, &series).await {
                now if now >= before + 1.0 => Ok(()),
                now => Err(now),
            }
        })
        .await;
        assert_eq!(job().await["progress"]["iteration"], 1, "{reason}");
    }

    // The run ends: its last report is read once more, and its object removed.
    h.put(&key, &report(Some(token), 3, APP).to_string()).await;
    h.end(&id, Ending::Failed).await;
    h.keys_until("the report to be removed", |keys| !keys.contains(&key))
        .await;
    let ended = job().await;
    assert_eq!(ended["state"], "FAILED");
    assert_eq!(ended["progress"]["iteration"], 3, "{ended}");
    assert!(ended["progress"]["etaSeconds"].is_null(), "{ended}");
}
