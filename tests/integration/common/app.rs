//! The service under test, built one way for every test: [`TestApp::builder`] takes the
//! backend (a fake EMR on EKS by default, a conformance peer, a test double, or the one the
//! configuration names) and the test's variables, and starts the real app on port 0 with
//! every wait in milliseconds ([`FAST`]), its store in a fresh folder and its notices to a
//! fake Multiomix.

use std::collections::BTreeMap;
use std::future::Future;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use multiomix_aws_emr::app::Application;
use multiomix_aws_emr::backend::emr::eks::EmrEksBackend;
use multiomix_aws_emr::backend::JobBackend;
use multiomix_aws_emr::config::Config;
use multiomix_aws_emr::job::JobId;
use multiomix_aws_emr::notify::Notifier;
use multiomix_aws_emr::reconcile::Reconciler;
use multiomix_aws_emr::staging::Staging;
use multiomix_aws_emr::store::Store;
use multiomix_fakes::{FakeEmr, FakeMultiomix};
use serde_json::Value;
use tempfile::TempDir;
use tokio::sync::mpsc::UnboundedReceiver;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use super::moto::s3_client;
use super::wait::{wait_for, PATIENCE};
use super::{another_experiment, emr_client, submit_job};

/// The service's waits in milliseconds, so a job's end and its notice take no longer.
/// Every test app starts with these; a test's own variables win over them.
pub const FAST: &[(&str, &str)] = &[
    ("SLEEP_TIME", "0.05"),
    ("POLL_INTERVAL", "0.05"),
    ("NOTIFY_INITIAL_BACKOFF", "0.05"),
    ("NOTIFY_MAX_BACKOFF", "0.2"),
    ("NOTIFY_TIMEOUT", "2"),
    ("PROGRESS_INTERVAL", "0.05"),
    ("RECONCILE_INTERVAL", "3600"),
];

/// tests/fixtures/fake-spark-submit: records how it was started (in RESULTS_PATH) and
/// exits, fails or sleeps as the job's behaviour file there says.
pub const FAKE_SPARK_SUBMIT: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/fixtures/fake-spark-submit"
);

/// A backend and, for one that reports ended runs itself, the channel they come on.
pub type Connected = (Arc<dyn JobBackend>, Option<UnboundedReceiver<JobId>>);

type Connect = Box<dyn FnOnce(Config) -> Pin<Box<dyn Future<Output = Connected> + Send>> + Send>;

enum Backend {
    /// EMR on EKS in front of a fake EMR, started unless the test gives one.
    FakeEks(Option<Arc<FakeEmr>>),
    /// Made by the test from the service's configuration.
    Connect(Connect),
    /// The one the configuration names, built as the binary builds it.
    Configured,
}

/// How a [`TestApp`] is put together.
pub struct AppBuilder {
    backend: Backend,
    vars: Vec<(String, String)>,
    multiomix: Option<Arc<FakeMultiomix>>,
    dir: Option<Arc<TempDir>>,
    s3: Option<String>,
}

/// The variables of EMR on EKS in front of the fake EMR `emr`.
pub fn eks_vars(emr: &FakeEmr) -> Vec<(String, String)> {
    [
        ("JOB_BACKEND", "emr".to_owned()),
        (
            "EMR_VIRTUAL_CLUSTER_ID",
            emr.virtual_cluster_id().to_owned(),
        ),
        (
            "EMR_EXECUTION_ROLE_ARN",
            "arn:aws:iam::123456789012:role/emr-job".to_owned(),
        ),
        ("EMR_S3_BUCKET", "multiomix-bucket".to_owned()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v))
    .collect()
}

/// The variables of the local backend running `spark_submit` with the scripts in
/// `scripts`, its logs, datasets and results in `dir`.
pub fn local_vars(dir: &Path, spark_submit: &str, scripts: &Path) -> Vec<(String, String)> {
    let path = |p: &str| dir.join(p).display().to_string();
    [
        ("JOB_BACKEND", "local".to_owned()),
        ("SPARK_SUBMIT", spark_submit.to_owned()),
        ("SPARK_MASTER", "local[2]".to_owned()),
        ("LOCAL_SCRIPTS_DIR", scripts.display().to_string()),
        ("LOCAL_LOG_DIR", path("logs")),
        ("LOCAL_MAX_CONCURRENT", "4".to_owned()),
        ("DATASETS_PATH", path("data")),
        ("RESULTS_PATH", path("results")),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v))
    .collect()
}

/// Empty stand-ins for the job scripts in `dir/scripts`, which the local backend checks
/// for at start-up and the fake spark-submit never reads; returns the folder.
pub fn stand_in_scripts(dir: &Path) -> PathBuf {
    let scripts = dir.join("scripts");
    std::fs::create_dir_all(&scripts).unwrap();
    for file in ["main.py", "scripts.zip", "bbha.py", "bbha.zip"] {
        std::fs::write(scripts.join(file), "").unwrap();
    }
    scripts
}

impl AppBuilder {
    /// A variable of the service; it wins over the harness's and the backend's.
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

    /// Variables made by a helper (a peer's), given as owned pairs.
    pub fn owned_vars(mut self, pairs: Vec<(String, String)>) -> Self {
        self.vars.extend(pairs);
        self
    }

    /// EMR on EKS in front of this fake EMR (one kept across a restart).
    pub fn fake_emr(mut self, emr: Arc<FakeEmr>) -> Self {
        self.backend = Backend::FakeEks(Some(emr));
        self
    }

    /// The backend `connect` makes from the service's configuration.
    pub fn backend<F>(mut self, connect: impl FnOnce(Config) -> F + Send + 'static) -> Self
    where
        F: Future<Output = Connected> + Send + 'static,
    {
        self.backend = Backend::Connect(Box::new(move |config| Box::pin(connect(config))));
        self
    }

    /// The backend the variables name, built as the binary builds it.
    pub fn configured_backend(mut self) -> Self {
        self.backend = Backend::Configured;
        self
    }

    /// The local backend with tests/fixtures/fake-spark-submit and stand-in scripts. Its
    /// folders are in the app's folder: a test that gives one says [`AppBuilder::dir`]
    /// first.
    pub fn local(mut self) -> Self {
        let dir = self.folder();
        let scripts = stand_in_scripts(dir.path());
        self.local_with(FAKE_SPARK_SUBMIT, &scripts)
    }

    /// The local backend running `spark_submit` with the scripts in `scripts` (after
    /// [`AppBuilder::dir`], as for [`AppBuilder::local`]).
    pub fn local_with(mut self, spark_submit: &str, scripts: &Path) -> Self {
        let dir = self.folder();
        let preset = local_vars(dir.path(), spark_submit, scripts);
        // The test's own variables, given before, still win.
        self.vars.splice(0..0, preset);
        self.backend = Backend::Configured;
        self
    }

    /// Notices go to this fake Multiomix (one kept across a restart, or built with
    /// replies or an observer of its own).
    pub fn multiomix(mut self, multiomix: Arc<FakeMultiomix>) -> Self {
        self.multiomix = Some(multiomix);
        self
    }

    /// The store and the local folders in `dir` (a restart reuses the last app's).
    pub fn dir(mut self, dir: Arc<TempDir>) -> Self {
        self.dir = Some(dir);
        self
    }

    /// Datasets and results move through the S3 at `endpoint` (moto), with fixed test
    /// credentials; the variables must turn staging on.
    pub fn s3(mut self, endpoint: &str) -> Self {
        self.s3 = Some(endpoint.to_owned());
        self
    }

    /// The folder of the store and the local backend's files, made on first use.
    fn folder(&mut self) -> Arc<TempDir> {
        self.dir
            .get_or_insert_with(|| Arc::new(tempfile::tempdir().expect("a temporary folder")))
            .clone()
    }

    /// Builds the app, not yet serving, and what the test app keeps of it.
    pub async fn build(mut self) -> (Application, Parts) {
        let dir = self.folder();
        let multiomix = match self.multiomix.take() {
            Some(m) => m,
            None => Arc::new(FakeMultiomix::start().await),
        };
        let mut vars: Vec<(String, String)> = vec![
            ("HOST".into(), "127.0.0.1".into()),
            ("PORT".into(), "0".into()),
            ("MULTIOMIX_URL".into(), format!("{}/", multiomix.url())),
            (
                "DATABASE_URL".into(),
                format!("sqlite:{}/store.db", dir.path().display()),
            ),
        ];
        vars.extend(FAST.iter().map(|(k, v)| (k.to_string(), v.to_string())));
        let emr = match &self.backend {
            Backend::FakeEks(given) => {
                let emr = match given {
                    Some(emr) => emr.clone(),
                    None => Arc::new(FakeEmr::start().await),
                };
                vars.extend(eks_vars(&emr));
                Some(emr)
            }
            _ => None,
        };
        // Later entries win: the test's own settings override the defaults above.
        vars.extend(self.vars);
        let vars: BTreeMap<String, String> = vars.into_iter().collect();
        let config = Config::from_vars(vars).expect("the test's configuration is valid");
        let staging = config.staging.clone();
        let (mut app, backend) = match self.backend {
            Backend::FakeEks(_) => {
                let emr = emr.as_ref().expect("a fake EMR");
                let backend: Arc<dyn JobBackend> = Arc::new(EmrEksBackend::with_client(
                    emr_client(&emr.url()),
                    config
                        .backend
                        .emr_eks()
                        .cloned()
                        .expect("EMR on EKS settings"),
                    config.spark.clone(),
                    config.job.clone(),
                ));
                let app = Application::build_with_backend(config, backend.clone()).await;
                (app.expect("the app builds"), Some(backend))
            }
            Backend::Connect(connect) => {
                let (backend, ended) = connect(config.clone()).await;
                let mut app = Application::build_with_backend(config, backend.clone())
                    .await
                    .expect("the app builds");
                if let Some(ended) = ended {
                    app.forward_ended_jobs(ended);
                }
                (app, Some(backend))
            }
            Backend::Configured => {
                let app = Application::build(config).await;
                (app.expect("the app and its backend build"), None)
            }
        };
        if let Some(endpoint) = &self.s3 {
            let settings = staging.expect("an S3 endpoint for a service without staging");
            app = app.with_staging(Staging::with_client(s3_client(endpoint), &settings));
        }
        let parts = Parts {
            emr,
            multiomix,
            dir,
            backend,
        };
        (app, parts)
    }

    /// Builds the app and serves it until the test app is stopped or dropped.
    pub async fn start(self) -> TestApp {
        let (app, parts) = self.build().await;
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
            emr: parts.emr,
            multiomix: parts.multiomix,
            backend: parts.backend,
            notifier,
            reconciler,
            store,
            dir: parts.dir,
            shutdown: Some(tx),
            task: Some(task),
        }
    }
}

/// What a built app leaves the test besides the app itself.
pub struct Parts {
    pub emr: Option<Arc<FakeEmr>>,
    pub multiomix: Arc<FakeMultiomix>,
    pub dir: Arc<TempDir>,
    pub backend: Option<Arc<dyn JobBackend>>,
}

/// The real app, serving on a loopback port, and what it runs against.
pub struct TestApp {
    pub addr: SocketAddr,
    pub base: String,
    pub http: reqwest::Client,
    emr: Option<Arc<FakeEmr>>,
    pub multiomix: Arc<FakeMultiomix>,
    /// The backend as the test made it (not for [`AppBuilder::configured_backend`]).
    pub backend: Option<Arc<dyn JobBackend>>,
    pub notifier: Notifier,
    pub reconciler: Reconciler,
    pub store: Store,
    pub dir: Arc<TempDir>,
    shutdown: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<anyhow::Result<()>>>,
}

impl TestApp {
    pub fn builder() -> AppBuilder {
        AppBuilder {
            backend: Backend::FakeEks(None),
            vars: Vec::new(),
            multiomix: None,
            dir: None,
            s3: None,
        }
    }

    /// The fake EMR of an app on the default backend.
    pub fn emr(&self) -> &Arc<FakeEmr> {
        self.emr
            .as_ref()
            .expect("this test app runs in front of a fake EMR")
    }

    /// A folder of the app's (the local backend's `results`, `logs`, `data`).
    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// Tells tests/fixtures/fake-spark-submit what the job of this name does
    /// (`exit 3`, `sleep 60`, ...).
    pub fn behave(&self, job_name: &str, behaviour: &str) {
        let results = self.path("results");
        std::fs::create_dir_all(&results).unwrap();
        std::fs::write(results.join(format!("{job_name}.behaviour")), behaviour).unwrap();
    }

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

    /// Starts a job with Multiomix's body, for an experiment of its own, and returns its id.
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

    /// The sidecar's call at a job's end.
    pub async fn patch_job(&self, id: &str) -> reqwest::Response {
        self.http
            .patch(self.url(&format!("/job/{id}")))
            .header("Content-Type", "application/json")
            .body(r#"{"state":"Terminated"}"#)
            .send()
            .await
            .expect("PATCH /job")
    }

    /// GETs a path of the service and reads its JSON body, whatever the status.
    pub async fn get_json(&self, path: &str) -> Value {
        self.get(path).await.1
    }

    /// GETs a path: its status and its JSON body (`null` when it has none).
    pub async fn get(&self, path: &str) -> (u16, Value) {
        status_and_json(self.http.get(self.url(path)).send().await.expect("GET")).await
    }

    /// [`TestApp::get`] with `Authorization: Bearer <token>`.
    pub async fn get_with_token(&self, path: &str, token: &str) -> (u16, Value) {
        let sent = self.http.get(self.url(path)).bearer_auth(token).send();
        status_and_json(sent.await.expect("GET")).await
    }

    pub async fn delete(&self, path: &str) -> (u16, Value) {
        status_and_json(
            self.http
                .delete(self.url(path))
                .send()
                .await
                .expect("DELETE"),
        )
        .await
    }

    /// Reads `GET /job/{id}` until `done` holds for it, and returns that reading.
    pub async fn read_job_until(&self, id: &str, done: impl Fn(&Value) -> bool) -> Value {
        self.read_job_within(id, PATIENCE, done).await
    }

    /// [`TestApp::read_job_until`] with a wait of its own (a real Spark job's minutes).
    pub async fn read_job_within(
        &self,
        id: &str,
        timeout: Duration,
        done: impl Fn(&Value) -> bool,
    ) -> Value {
        read_job_until(&self.http, &self.base, id, timeout, done).await
    }

    /// Reads the job until its state is one of `states`.
    pub async fn read_until_state(&self, id: &str, states: &[&str]) -> Value {
        self.read_job_until(id, |job| states.iter().any(|s| job["state"] == *s))
            .await
    }

    /// Waits until the notice of `id` is no longer open, and returns how it ended.
    pub async fn wait_notice_closed(&self, id: &str, timeout: Duration) -> String {
        let job = JobId::parse(id).expect("a job id");
        wait_for(&format!("the notice of {id} to close"), timeout, || async {
            match self.store.notice(&job).await.unwrap() {
                Some(n) if !n.status.is_open() => Ok(n.status.as_str().to_owned()),
                other => Err(other.map(|n| n.status)),
            }
        })
        .await
    }

    /// Stops the app the way SIGTERM would, waits for it, and gives back its folder.
    pub async fn stop(mut self) -> Arc<TempDir> {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(task) = self.task.take() {
            task.await.expect("app task").expect("app stopped cleanly");
        }
        self.dir.clone()
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
    }
}

async fn status_and_json(response: reqwest::Response) -> (u16, Value) {
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

/// Reads `GET {base}/job/{id}` until `done` holds for it, and returns that reading (for a
/// service the test did not start itself: the binary as a process).
pub async fn read_job_until(
    http: &reqwest::Client,
    base: &str,
    id: &str,
    timeout: Duration,
    done: impl Fn(&Value) -> bool,
) -> Value {
    wait_for(&format!("job {id} to get there"), timeout, || async {
        let response = http
            .get(format!("{base}/job/{id}"))
            .send()
            .await
            .expect("GET /job");
        let job: Value = response.json().await.expect("a JSON body");
        if done(&job) {
            Ok(job)
        } else {
            Err(job)
        }
    })
    .await
}

/// Waits until the service at `base` answers `GET /health` with 200: for the binary
/// started as a process.
pub async fn wait_healthy(http: &reqwest::Client, base: &str, timeout: Duration) {
    let health = format!("{base}/health");
    wait_for("the service to be healthy", timeout, || async {
        match http.get(&health).send().await {
            Ok(r) if r.status() == 200 => Ok(()),
            Ok(r) => Err(r.status().to_string()),
            Err(e) => Err(e.to_string()),
        }
    })
    .await
}
