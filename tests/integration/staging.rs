//! Data staging (`DATA_STAGING=s3`) against moto's S3 server, a peer nobody here wrote,
//! with the fake EMR on EKS: the datasets a request names reach S3 before StartJobRun,
//! nothing else does, a path that escapes the shared folder is refused, a retried request
//! uploads nothing twice, and S3 down means no job.
//!
//! moto comes from the test virtualenv (`dev/test.sh` creates it). Without it these tests
//! are skipped with a message on a developer's machine, and fail under CI.

use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use aws_sdk_s3::types::ChecksumMode;
use multiomix_aws_emr::backend::emr::eks::EmrEksBackend;
use multiomix_aws_emr::backend::{BackendError, JobBackend, JobPage, ListQuery};
use multiomix_aws_emr::job::{JobId, JobRun, JobSpec};
use multiomix_aws_emr::staging::MULTIPART_PART_BYTES;
use multiomix_fakes::emr::FakeEmr;
use serde_json::{json, Value};
use tempfile::TempDir;

use crate::common::app::eks_vars;
use crate::common::moto::{bucket_keys, moto, s3_client, Moto};
use crate::common::{emr_client, free_port, wait_for, TestApp};

const BUCKET: &str = "multiomix-bucket";

async fn keys(s3: &aws_sdk_s3::Client) -> Vec<String> {
    bucket_keys(s3, BUCKET).await
}

/// The EMR on EKS backend, which also lists the bucket at the moment StartJobRun is
/// called: what the job would find there.
struct Watching {
    inner: EmrEksBackend,
    s3: aws_sdk_s3::Client,
    seen_at_start: Arc<Mutex<Vec<Vec<String>>>>,
}

#[async_trait]
impl JobBackend for Watching {
    fn kind(&self) -> multiomix_aws_emr::job::BackendKind {
        self.inner.kind()
    }
    fn tells_when_jobs_end(&self) -> bool {
        self.inner.tells_when_jobs_end()
    }
    async fn start(&self, spec: &JobSpec, client_token: &str) -> Result<JobId, BackendError> {
        let found = keys(&self.s3).await;
        self.seen_at_start.lock().unwrap().push(found);
        self.inner.start(spec, client_token).await
    }
    async fn describe(&self, id: &JobId) -> Result<JobRun, BackendError> {
        self.inner.describe(id).await
    }
    async fn cancel(&self, id: &JobId) -> Result<(), BackendError> {
        self.inner.cancel(id).await
    }
    async fn list(&self, query: &ListQuery) -> Result<JobPage, BackendError> {
        self.inner.list(query).await
    }
    async fn check(&self) -> Result<(), BackendError> {
        self.inner.check().await
    }
}

struct Staged {
    app: TestApp,
    emr: Arc<FakeEmr>,
    shared: TempDir,
    _results: TempDir,
    seen_at_start: Arc<Mutex<Vec<Vec<String>>>>,
}

impl Staged {
    fn emr(&self) -> &FakeEmr {
        &self.emr
    }

    async fn post(&self, body: &Value, key: Option<&str>) -> (u16, Value) {
        let mut request = self.app.http.post(self.app.url("/job")).json(body);
        if let Some(key) = key {
            request = request.header("Idempotency-Key", key);
        }
        let response = request.send().await.expect("POST /job");
        let status = response.status().as_u16();
        (status, response.json().await.unwrap_or(Value::Null))
    }

    /// Posts `body` and checks that it is a 400 naming `field`; returns the answer.
    async fn refused(&self, body: &Value, field: &str, case: &str) -> Value {
        let (status, answer) = self.post(body, None).await;
        assert_eq!(status, 400, "{case}: {answer}");
        assert_eq!(answer["field"], field, "{case}: {answer}");
        answer
    }

    /// Nothing reached S3 and no job started.
    async fn nothing_staged_or_started(&self, s3: &aws_sdk_s3::Client) {
        assert!(keys(s3).await.is_empty(), "nothing was uploaded");
        assert_eq!(self.emr.calls("StartJobRun"), 0, "no job started");
    }
}

fn write(root: &Path, relative: &str, bytes: &[u8]) {
    let path = root.join(relative);
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, bytes).unwrap();
}

/// The service with staging on, its datasets uploaded to `s3_url` (moto, or a port where
/// nothing listens).
async fn staged(s3_url: &str, moto_s3: aws_sdk_s3::Client) -> Staged {
    staged_with(s3_url, moto_s3, &[]).await
}

/// [`staged`], with more variables, which win.
async fn staged_with(s3_url: &str, moto_s3: aws_sdk_s3::Client, extra: &[(&str, &str)]) -> Staged {
    let emr = Arc::new(FakeEmr::start().await);
    let shared = tempfile::tempdir().unwrap();
    let results = tempfile::tempdir().unwrap();
    let seen_at_start = Arc::new(Mutex::new(Vec::new()));
    let (watched, seen) = (emr.clone(), seen_at_start.clone());
    let app = TestApp::builder()
        .owned_vars(eks_vars(&emr))
        .vars(&[
            ("EMR_S3_BUCKET", BUCKET),
            ("REQUEST_TIMEOUT", "10"),
            ("DATA_STAGING", "s3"),
            ("SHARED_DATASETS_DIR", &shared.path().display().to_string()),
            ("SHARED_RESULTS_DIR", &results.path().display().to_string()),
        ])
        .vars(extra)
        .s3(s3_url)
        .backend(move |config| async move {
            let backend = Watching {
                inner: EmrEksBackend::with_client(
                    emr_client(&watched.url()),
                    config.backend.emr_eks().cloned().unwrap(),
                    config.spark.clone(),
                    config.job.clone(),
                ),
                s3: moto_s3,
                seen_at_start: seen,
            };
            let backend: Arc<dyn JobBackend> = Arc::new(backend);
            (backend, None)
        })
        .start()
        .await;
    Staged {
        app,
        emr,
        shared,
        _results: results,
        seen_at_start,
    }
}

async fn with_bucket(moto: &Moto) -> aws_sdk_s3::Client {
    let s3 = s3_client(&moto.url);
    s3.create_bucket()
        .bucket(BUCKET)
        .send()
        .await
        .expect("CreateBucket");
    s3
}

fn body(molecules: &str, clinical: &str) -> Value {
    json!({"name": "BreastCancerBBHA",
           "algorithm": 1,
           "entrypoint_arguments": [
             {"name": "app-name", "value": "BBHA_42"},
             {"name": "molecules-dataset", "value": molecules},
             {"name": "clinical-dataset", "value": clinical},
             {"name": "n-stars", "value": 15}]})
}

#[tokio::test]
async fn the_named_datasets_and_nothing_else_are_in_s3_before_start_job_run() {
    let Some(moto) = moto().await else { return };
    let s3 = with_bucket(&moto).await;
    let app = staged(&moto.url, s3.clone()).await;
    let root = app.shared.path();
    write(root, "BBHA_42/molecules.csv", b"gene,s1\nBRCA1,0.5\n");
    write(
        root,
        "BBHA_42/clinical.csv",
        b"sample,time,event\ns1,10,1\n",
    );
    write(root, "BBHA_42/unrelated.csv", b"not asked for");
    write(root, "BBHA_7/molecules.csv", b"another experiment");

    let (status, answer) = app
        .post(&body("BBHA_42/molecules.csv", "BBHA_42/clinical.csv"), None)
        .await;
    assert_eq!(status, 201, "{answer}");

    let expected = vec![
        "datasets/BBHA_42/clinical.csv".to_string(),
        "datasets/BBHA_42/molecules.csv".to_string(),
    ];
    assert_eq!(keys(&s3).await, expected);
    assert_eq!(
        *app.seen_at_start.lock().unwrap(),
        vec![expected],
        "StartJobRun was called once, with both datasets already in S3"
    );
    let object = s3
        .get_object()
        .bucket(BUCKET)
        .key("datasets/BBHA_42/molecules.csv")
        .checksum_mode(ChecksumMode::Enabled)
        .send()
        .await
        .expect("GetObject");
    let checksum = object.checksum_sha256().map(str::to_owned);
    let bytes = object.body.collect().await.unwrap().into_bytes();
    assert_eq!(&bytes[..], b"gene,s1\nBRCA1,0.5\n");
    use base64::Engine;
    use sha2::Digest;
    assert_eq!(
        checksum,
        Some(base64::engine::general_purpose::STANDARD.encode(sha2::Sha256::digest(&bytes))),
        "the object carries the SHA-256 of its content"
    );
}

#[tokio::test]
async fn a_path_out_of_the_shared_folder_or_absent_is_refused_naming_its_field() {
    let Some(moto) = moto().await else { return };
    let s3 = with_bucket(&moto).await;
    let app = staged(&moto.url, s3.clone()).await;
    let root = app.shared.path();
    write(root, "BBHA_42/clinical.csv", b"sample,time,event\n");
    let outside = tempfile::tempdir().unwrap();
    write(outside.path(), "secret.csv", b"not Multiomix's");
    std::os::unix::fs::symlink(
        outside.path().join("secret.csv"),
        root.join("BBHA_42/link.csv"),
    )
    .unwrap();

    let absolute = outside.path().join("secret.csv").display().to_string();
    for molecules in [
        "../secret.csv",
        "BBHA_42/../../secret.csv",
        absolute.as_str(),
        "BBHA_42/link.csv",
        "BBHA_42/absent.csv",
    ] {
        app.refused(
            &body(molecules, "BBHA_42/clinical.csv"),
            "entrypoint_arguments[1].value",
            molecules,
        )
        .await;
    }
    app.nothing_staged_or_started(&s3).await;
}

#[tokio::test]
async fn datasets_outside_the_app_folder_and_unusable_app_names_are_refused() {
    let Some(moto) = moto().await else { return };
    let s3 = with_bucket(&moto).await;
    let app = staged(&moto.url, s3.clone()).await;
    let root = app.shared.path();
    write(root, "BBHA_42/clinical.csv", b"sample,time,event\n");
    write(root, "BBHA_7/molecules.csv", b"another experiment's");
    write(root, "shared/molecules.csv", b"gene,s1\n");

    // The pods of BBHA_42 are given only datasets/BBHA_42/.
    for molecules in ["BBHA_7/molecules.csv", "shared/molecules.csv"] {
        let answer = app
            .refused(
                &body(molecules, "BBHA_42/clinical.csv"),
                "entrypoint_arguments[1].value",
                molecules,
            )
            .await;
        assert!(
            answer["message"].as_str().unwrap().contains("BBHA_42/"),
            "{answer}"
        );
    }
    // An app name must be one folder: it names an S3 prefix and a results folder.
    for app_name in ["BBHA 42", "a/b", ".", "BBHA_42$"] {
        let mut request = body("BBHA_42/molecules.csv", "BBHA_42/clinical.csv");
        request["entrypoint_arguments"][0]["value"] = json!(app_name);
        app.refused(&request, "entrypoint_arguments[app-name].value", app_name)
            .await;
    }
    app.nothing_staged_or_started(&s3).await;
}

#[tokio::test]
async fn a_retried_request_uploads_nothing_twice() {
    let Some(moto) = moto().await else { return };
    let s3 = with_bucket(&moto).await;
    let app = staged(&moto.url, s3.clone()).await;
    let root = app.shared.path();
    write(root, "BBHA_42/molecules.csv", b"gene,s1\n");
    write(root, "BBHA_42/clinical.csv", b"sample,time,event\n");
    let body = body("BBHA_42/molecules.csv", "BBHA_42/clinical.csv");

    let (first, _) = app.post(&body, Some("retry-1")).await;
    assert_eq!(first, 201);
    let head = |s3: aws_sdk_s3::Client| async move {
        s3.head_object()
            .bucket(BUCKET)
            .key("datasets/BBHA_42/molecules.csv")
            .send()
            .await
            .expect("HeadObject")
            .last_modified()
            .copied()
    };
    let before = head(s3.clone()).await;
    // moto's timestamps have a one-second resolution: wait until a new upload would show.
    let later = aws_sdk_s3::primitives::DateTime::from_secs(before.unwrap().secs() + 1);
    while std::time::SystemTime::now() < std::time::SystemTime::try_from(later).unwrap() {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let (second, _) = app.post(&body, Some("retry-1")).await;
    assert_eq!(second, 201);
    // A new request for the same app name, while its job is open, is refused before
    // anything is uploaded: one open job per app name.
    let (third, answer) = app.post(&body, Some("retry-2")).await;
    assert_eq!(third, 409, "{answer}");
    assert_eq!(answer["field"], "entrypoint_arguments[0].value", "{answer}");
    assert_eq!(head(s3.clone()).await, before, "not uploaded again");
}

#[tokio::test]
async fn a_large_dataset_goes_up_in_parts_with_its_checksum() {
    let Some(moto) = moto().await else { return };
    let s3 = with_bucket(&moto).await;
    let app = staged(&moto.url, s3.clone()).await;
    let root = app.shared.path();
    let size = MULTIPART_PART_BYTES as usize * 2 + 1234;
    let large: Vec<u8> = (0..size).map(|i| (i % 251) as u8).collect();
    write(root, "BBHA_42/molecules.csv", &large);
    write(root, "BBHA_42/clinical.csv", b"sample,time,event\n");

    let (status, answer) = app
        .post(&body("BBHA_42/molecules.csv", "BBHA_42/clinical.csv"), None)
        .await;
    assert_eq!(status, 201, "{answer}");
    let object = s3
        .get_object()
        .bucket(BUCKET)
        .key("datasets/BBHA_42/molecules.csv")
        .send()
        .await
        .expect("GetObject");
    let etag = object.e_tag().unwrap_or_default().to_string();
    assert!(etag.ends_with("-3\""), "a three-part upload: {etag}");
    let bytes = object.body.collect().await.unwrap().into_bytes();
    assert!(bytes[..] == large[..], "the object is the file");
}

#[tokio::test]
async fn s3_down_during_the_upload_means_an_error_naming_the_file_and_no_job() {
    let Some(moto) = moto().await else { return };
    let s3 = with_bucket(&moto).await;
    // Nothing listens on this port.
    let down = format!("http://127.0.0.1:{}", free_port());
    let app = staged(&down, s3.clone()).await;
    let root = app.shared.path();
    write(root, "BBHA_42/molecules.csv", b"gene,s1\n");
    write(root, "BBHA_42/clinical.csv", b"sample,time,event\n");

    let (status, answer) = app
        .post(&body("BBHA_42/molecules.csv", "BBHA_42/clinical.csv"), None)
        .await;
    assert_eq!(status, 503, "{answer}");
    let message = answer["message"].as_str().unwrap_or_default();
    assert!(
        message.contains("molecules-dataset") && message.contains("BBHA_42/molecules.csv"),
        "{message}"
    );
    assert_eq!(app.emr().calls("StartJobRun"), 0, "no job started");
    assert!(app.seen_at_start.lock().unwrap().is_empty());
}

#[tokio::test]
async fn a_missing_bucket_is_a_refusal_naming_the_file() {
    let Some(moto) = moto().await else { return };
    // No bucket created.
    let s3 = s3_client(&moto.url);
    let app = staged(&moto.url, s3).await;
    let root = app.shared.path();
    write(root, "BBHA_42/molecules.csv", b"gene,s1\n");
    write(root, "BBHA_42/clinical.csv", b"sample,time,event\n");

    let (status, answer) = app
        .post(&body("BBHA_42/molecules.csv", "BBHA_42/clinical.csv"), None)
        .await;
    assert_eq!(status, 502, "{answer}");
    let message = answer["message"].as_str().unwrap_or_default();
    assert!(message.contains("BBHA_42/molecules.csv"), "{message}");
    assert_eq!(app.emr().calls("StartJobRun"), 0, "no job started");
}

/// The multipart uploads under `prefix` that are neither completed nor aborted.
async fn unfinished_uploads(s3: &aws_sdk_s3::Client, prefix: &str) -> Vec<String> {
    let page = s3
        .list_multipart_uploads()
        .bucket(BUCKET)
        .prefix(prefix)
        .send()
        .await
        .expect("ListMultipartUploads");
    page.uploads()
        .iter()
        .filter_map(|u| u.key().map(str::to_owned))
        .collect()
}

/// Waits until `prefix` has no unfinished multipart upload.
async fn until_no_unfinished_uploads(s3: &aws_sdk_s3::Client, prefix: &str) {
    let what = format!("no unfinished upload under {prefix}");
    wait_for(&what, Duration::from_secs(10), || async {
        let left = unfinished_uploads(s3, prefix).await;
        if left.is_empty() {
            Ok(())
        } else {
            Err(left)
        }
    })
    .await
}

/// Parts of an upload a stopped process left are billed until aborted: at start-up the
/// service aborts those under its datasets prefix, and no other.
#[tokio::test]
async fn uploads_a_stopped_process_left_are_aborted_at_start_up() {
    let Some(moto) = moto().await else { return };
    let s3 = with_bucket(&moto).await;
    for key in ["datasets/BBHA_1/molecules.csv", "elsewhere/big.bin"] {
        s3.create_multipart_upload()
            .bucket(BUCKET)
            .key(key)
            .send()
            .await
            .expect("CreateMultipartUpload");
    }
    // moto's timestamps have a one-second resolution: the service starts after them.
    tokio::time::sleep(Duration::from_millis(1_100)).await;
    let _app = staged(&moto.url, s3.clone()).await;
    until_no_unfinished_uploads(&s3, "datasets/").await;
    assert_eq!(
        unfinished_uploads(&s3, "").await,
        ["elsewhere/big.bin"],
        "not the service's: left alone"
    );
}

/// An upload that outlasts `STAGING_UPLOAD_TIMEOUT` is answered 503 naming the bound,
/// starts nothing, leaves no parts behind, and frees the app name.
#[tokio::test]
async fn an_upload_beyond_its_bound_is_503_starts_nothing_and_leaves_no_parts() {
    let Some(moto) = moto().await else { return };
    let s3 = with_bucket(&moto).await;
    let app = staged_with(&moto.url, s3.clone(), &[("STAGING_UPLOAD_TIMEOUT", "0.05")]).await;
    let root = app.shared.path();
    // Large enough that hashing and sending it take longer than the bound.
    let size = MULTIPART_PART_BYTES as usize * 4;
    write(root, "BBHA_42/molecules.csv", &vec![7u8; size]);
    write(root, "BBHA_42/clinical.csv", b"sample,time,event\n");
    let request = body("BBHA_42/molecules.csv", "BBHA_42/clinical.csv");
    let (status, answer) = app.post(&request, None).await;
    assert_eq!(status, 503, "{answer}");
    assert!(
        answer["message"]
            .as_str()
            .unwrap()
            .contains("STAGING_UPLOAD_TIMEOUT"),
        "{answer}"
    );
    assert_eq!(app.emr().calls("StartJobRun"), 0, "no job started");
    until_no_unfinished_uploads(&s3, "datasets/").await;
    // The app name is free: the next try is not refused as a second job.
    let (again, answer) = app.post(&request, None).await;
    assert_eq!(again, 503, "{answer}");
}
