//! What the integration tests share: the real app on port 0, in front of a fake EMR and a
//! fake Multiomix that speak the real wire protocols.
#![allow(dead_code)]

pub mod moto;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use aws_sdk_emrcontainers::config::{
    BehaviorVersion, Credentials, Region, SharedCredentialsProvider,
};
use multiomix_aws_emr::app::Application;
use multiomix_aws_emr::backend::emr::eks::EmrEksBackend;
use multiomix_aws_emr::config::Config;
use multiomix_aws_emr::notify::Notifier;
use multiomix_aws_emr::reconcile::Reconciler;
use multiomix_aws_emr::store::Store;
use multiomix_fakes::{FakeEmr, FakeMultiomix};
use serde_json::{json, Value};
use tempfile::TempDir;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

/// Exactly what Multiomix sends.
pub fn multiomix_body() -> Value {
    multiomix_body_for("exp-42-app")
}

/// What Multiomix sends for the experiment whose app name is `app`.
pub fn multiomix_body_for(app: &str) -> Value {
    json!({"name": "BreastCancerBBHA",
           "algorithm": 1,
           "entrypoint_arguments": [
             {"name": "app-name", "value": app},
             {"name": "molecules-dataset", "value": format!("{app}/molecules.csv")},
             {"name": "n-stars", "value": 15},
             {"name": "cv-folds", "value": "10"}]})
}

/// Multiomix's request for an experiment of its own: one app name is open in one job
/// at a time, so tests that start several jobs give each its own.
pub fn another_experiment() -> Value {
    use std::sync::atomic::{AtomicU64, Ordering};
    static NEXT: AtomicU64 = AtomicU64::new(1);
    multiomix_body_for(&format!("exp-{}-app", NEXT.fetch_add(1, Ordering::Relaxed)))
}

/// Fast durations so the job-end flow runs in milliseconds.
pub const FAST: &[(&str, &str)] = &[
    ("SLEEP_TIME", "0.05"),
    ("POLL_INTERVAL", "0.05"),
    ("NOTIFY_INITIAL_BACKOFF", "0.05"),
    ("NOTIFY_MAX_BACKOFF", "0.2"),
    ("NOTIFY_TIMEOUT", "2"),
    ("RECONCILE_INTERVAL", "3600"),
];

pub struct TestApp {
    pub addr: SocketAddr,
    pub base: String,
    pub http: reqwest::Client,
    pub emr: Arc<FakeEmr>,
    pub multiomix: Arc<FakeMultiomix>,
    pub notifier: Notifier,
    pub reconciler: Reconciler,
    pub store: Store,
    pub dir: Arc<TempDir>,
    shutdown: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<anyhow::Result<()>>>,
}

/// How a test app is put together; `Default` gives fresh fakes and a fresh store.
#[derive(Default)]
pub struct Setup {
    pub vars: Vec<(String, String)>,
    pub emr: Option<Arc<FakeEmr>>,
    pub multiomix: Option<Arc<FakeMultiomix>>,
    /// Reuse a store folder (a restart).
    pub dir: Option<Arc<TempDir>>,
}

impl Setup {
    pub fn var(mut self, key: &str, value: &str) -> Self {
        self.vars.push((key.into(), value.into()));
        self
    }

    pub fn vars(mut self, pairs: &[(&str, &str)]) -> Self {
        for (k, v) in pairs {
            self.vars.push((k.to_string(), v.to_string()));
        }
        self
    }
}

/// What every AWS SDK client of the tests is built from: a local endpoint (a fake or
/// moto), one region, fixed test credentials.
pub fn sdk_config(endpoint: &str) -> aws_config::SdkConfig {
    aws_config::SdkConfig::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new("us-east-1"))
        .credentials_provider(SharedCredentialsProvider::new(Credentials::new(
            "AKIDTEST",
            "test-secret",
            None,
            None,
            "tests",
        )))
        .endpoint_url(endpoint)
        .build()
}

/// An emr-containers client for the fake (or any endpoint) with fixed test credentials.
pub fn emr_client(endpoint: &str) -> aws_sdk_emrcontainers::Client {
    aws_sdk_emrcontainers::Client::new(&sdk_config(endpoint))
}

/// Creates an EMR on EKS virtual cluster (on moto, which has none until asked) and
/// returns its id.
pub async fn create_virtual_cluster(client: &aws_sdk_emrcontainers::Client) -> String {
    use aws_sdk_emrcontainers::types::{
        ContainerInfo, ContainerProvider, ContainerProviderType, EksInfo,
    };
    let provider = ContainerProvider::builder()
        .r#type(ContainerProviderType::Eks)
        .id("multiomix-eks")
        .info(ContainerInfo::EksInfo(
            EksInfo::builder().namespace("emr-jobs").build(),
        ))
        .build()
        .unwrap();
    client
        .create_virtual_cluster()
        .name("multiomix")
        .container_provider(provider)
        .send()
        .await
        .expect("moto creates a virtual cluster")
        .id()
        .unwrap()
        .to_owned()
}

pub async fn spawn_app() -> TestApp {
    spawn(Setup::default()).await
}

pub async fn spawn_app_with(vars: &[(&str, &str)]) -> TestApp {
    spawn(Setup::default().vars(vars)).await
}

pub async fn spawn(setup: Setup) -> TestApp {
    let emr = match setup.emr {
        Some(e) => e,
        None => Arc::new(FakeEmr::start().await),
    };
    let multiomix = match setup.multiomix {
        Some(m) => m,
        None => Arc::new(FakeMultiomix::start().await),
    };
    let dir = setup
        .dir
        .unwrap_or_else(|| Arc::new(tempfile::tempdir().expect("temp dir")));
    let mut vars: Vec<(String, String)> = vec![
        ("JOB_BACKEND".into(), "emr".into()),
        (
            "EMR_VIRTUAL_CLUSTER_ID".into(),
            emr.virtual_cluster_id().into(),
        ),
        (
            "EMR_EXECUTION_ROLE_ARN".into(),
            "arn:aws:iam::123456789012:role/emr-job".into(),
        ),
        ("EMR_S3_BUCKET".into(), "multiomix-bucket".into()),
        ("HOST".into(), "127.0.0.1".into()),
        ("PORT".into(), "0".into()),
        ("MULTIOMIX_URL".into(), format!("{}/", multiomix.url())),
        (
            "DATABASE_URL".into(),
            format!("sqlite:{}/store.db", dir.path().display()),
        ),
    ];
    vars.extend(FAST.iter().map(|(k, v)| (k.to_string(), v.to_string())));
    // Later entries win: the test's own settings override the defaults above.
    vars.extend(setup.vars);
    let vars: std::collections::BTreeMap<String, String> = vars.into_iter().collect();
    let config = Config::from_vars(vars).expect("test configuration is valid");
    let emr_settings = config.backend.emr_eks().cloned().expect("EMR settings");
    let backend = Arc::new(EmrEksBackend::with_client(
        emr_client(&emr.url()),
        emr_settings,
        config.spark.clone(),
        config.job.clone(),
    ));
    let app = Application::build_with_backend(config, backend)
        .await
        .expect("the app builds");
    let addr = app.local_addr();
    let notifier = app.notifier();
    let reconciler = app.reconciler();
    let store = app.store();
    let (tx, rx) = oneshot::channel();
    let task = tokio::spawn(app.run_until_stopped(async {
        let _ = rx.await;
    }));
    TestApp {
        base: format!("http://{addr}"),
        addr,
        http: reqwest::Client::new(),
        emr,
        multiomix,
        notifier,
        reconciler,
        store,
        dir,
        shutdown: Some(tx),
        task: Some(task),
    }
}

impl TestApp {
    /// A connection of the test's own to the service's database file, for what the
    /// store's API does not offer on purpose: making its writes fail as a full disk would,
    /// or writing a row behind the service's back.
    pub async fn database(&self) -> sqlx::SqlitePool {
        let url = format!("sqlite:{}/store.db", self.dir.path().display());
        sqlx::SqlitePool::connect(&url)
            .await
            .expect("the test opens the service's database")
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    pub async fn post_job(&self, body: &Value) -> reqwest::Response {
        self.http
            .post(self.url("/job"))
            .json(body)
            .send()
            .await
            .expect("POST /job")
    }

    /// Starts a job with Multiomix's body and returns its id.
    pub async fn start_job(&self) -> String {
        submit_job(&self.http, &self.base, &another_experiment()).await
    }

    pub async fn get_job(&self, id: &str) -> reqwest::Response {
        self.http
            .get(self.url(&format!("/job/{id}")))
            .send()
            .await
            .expect("GET /job")
    }

    pub async fn delete_job(&self, id: &str) -> reqwest::Response {
        self.http
            .delete(self.url(&format!("/job/{id}")))
            .send()
            .await
            .expect("DELETE /job")
    }

    /// GETs a path of the service and reads its JSON body, whatever the status.
    pub async fn get_json(&self, path: &str) -> Value {
        self.http
            .get(self.url(path))
            .send()
            .await
            .expect("GET")
            .json()
            .await
            .expect("a JSON body")
    }

    pub async fn patch_job(&self, id: &str) -> reqwest::Response {
        self.http
            .patch(self.url(&format!("/job/{id}")))
            .header("Content-Type", "application/json")
            .body(r#"{"state":"Terminated"}"#)
            .send()
            .await
            .expect("PATCH /job")
    }

    /// Stops the app the way SIGTERM would and waits for it.
    pub async fn stop(mut self) -> Arc<TempDir> {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(task) = self.task.take() {
            task.await.expect("app task").expect("app stopped cleanly");
        }
        self.dir.clone()
    }

    /// Waits until the notice of `id` is no longer open.
    pub async fn wait_notice_closed(&self, id: &str, timeout: Duration) -> String {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let job = multiomix_aws_emr::job::JobId::parse(id).expect("a job id");
            if let Some(n) = self.store.notice(&job).await.unwrap() {
                if !n.status.is_open() {
                    return n.status.as_str().to_owned();
                }
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "the notice of {id} did not close in {timeout:?}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
    }
}

/// `YYYY-MM-DD HH:MM:SS+00:00`, as Multiomix's strptime needs.
pub fn is_multiomix_date(value: &Value) -> bool {
    let Some(s) = value.as_str() else {
        return false;
    };
    let b = s.as_bytes();
    b.len() == 25
        && s.ends_with("+00:00")
        && b[4] == b'-'
        && b[7] == b'-'
        && b[10] == b' '
        && b[13] == b':'
        && b[16] == b':'
        && b.iter()
            .enumerate()
            .filter(|(i, _)| ![4, 7, 10, 13, 16, 19, 22].contains(i))
            .all(|(_, c)| c.is_ascii_digit())
}

/// POSTs a job to the service at `base`, as Multiomix does, asserts the 201 and returns
/// the job's id.
pub async fn submit_job(http: &reqwest::Client, base: &str, body: &Value) -> String {
    let r = http
        .post(format!("{base}/job"))
        .json(body)
        .send()
        .await
        .expect("POST /job");
    assert_eq!(r.status(), 201);
    let answer: Value = r.json().await.expect("a JSON body");
    answer["id"].as_str().expect("an id").to_owned()
}

/// Reads `GET {base}/job/{id}` until `done` holds for it, and returns that reading.
pub async fn read_job_until(
    http: &reqwest::Client,
    base: &str,
    id: &str,
    timeout: Duration,
    done: impl Fn(&Value) -> bool,
) -> Value {
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        let job: Value = http
            .get(format!("{base}/job/{id}"))
            .send()
            .await
            .expect("GET /job")
            .json()
            .await
            .expect("a JSON body");
        if done(&job) {
            return job;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the job did not get there in {timeout:?}: {job}"
        );
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}
