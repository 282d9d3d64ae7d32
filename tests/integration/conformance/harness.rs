//! The service under test, in front of one backend peer and a fake Multiomix.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use multiomix_aws_emr::app::Application;
use multiomix_aws_emr::backend::JobBackend;
use multiomix_aws_emr::config::Config;
use multiomix_aws_emr::job::JobId;
use multiomix_fakes::FakeMultiomix;
use serde_json::{json, Value};
use tokio::sync::mpsc::UnboundedReceiver;
use tokio::task::JoinHandle;

/// Longest a case waits for something that takes milliseconds on a fake.
pub const WAIT: Duration = Duration::from_secs(20);

/// How a run should end.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Ending {
    Completed,
    Failed,
}

impl Ending {
    pub fn state(self) -> &'static str {
        match self {
            Ending::Completed => "COMPLETED",
            Ending::Failed => "FAILED",
        }
    }
}

/// What a StartJobRun (or a spark-submit) received, in the terms every backend shares.
#[derive(Debug, Default)]
pub struct Submitted {
    pub name: String,
    pub entry_point: String,
    pub arguments: Vec<String>,
    /// spark-submit options, as one space-separated string.
    pub parameters: String,
    /// `DATASETS_PATH`, `RESULTS_PATH` and `JOB_NAME` as the driver gets them.
    pub driver_env: BTreeMap<String, String>,
    pub log_uri: Option<String>,
    pub execution_role: Option<String>,
    pub tags: BTreeMap<String, String>,
}

/// The execution role every EMR peer is configured with.
pub const ROLE: &str = "arn:aws:iam::123456789012:role/emr-job";

/// Reads the driver's environment out of the `--conf {prefix}NAME=value` options.
pub fn driver_env(parameters: &str, prefix: &str) -> BTreeMap<String, String> {
    parameters
        .split(' ')
        .filter_map(|word| word.strip_prefix(prefix))
        .filter_map(|kv| kv.split_once('='))
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect()
}

/// What a peer can show of a run's life.
#[derive(Clone, Copy, Debug)]
pub struct Abilities {
    /// The final states the peer can lead a run to. Empty: it cannot (moto's
    /// emr-containers keeps runs where they are; only a cancel ends them).
    pub endings: &'static [Ending],
    /// Whether a run can be kept running until cancelled (moto's emr-serverless creates
    /// runs already SUCCESS).
    pub can_hold: bool,
    /// Whether the backend itself gives one run for a repeated client token (moto's
    /// emr-serverless ignores the token; the service's Idempotency-Key still holds).
    pub honours_client_token: bool,
    /// Whether the end is announced by the sidecar's PATCH (EMR on EKS) rather than seen
    /// by the service itself.
    pub needs_callback: bool,
    /// Whether the submission's spark-submit parameters are exactly the contract's list
    /// (EMR on EKS), to which the service's own options are added only when set.
    pub contract_parameters: bool,
}

/// One backend the suite runs against, and what it can show.
#[async_trait]
pub trait Peer: Send + Sync {
    /// Variables for the service on top of the suite's own.
    fn vars(&self, dir: &Path) -> Vec<(String, String)>;

    /// The backend, built from the service's configuration; a channel of ended runs for
    /// a backend that reports them itself.
    async fn connect(
        &self,
        config: &Config,
    ) -> (Arc<dyn JobBackend>, Option<UnboundedReceiver<JobId>>);

    /// What the peer can show; a case skips, saying so, what it cannot.
    fn abilities(&self) -> Abilities;

    /// Called before a job of this name is submitted: how it should go. `None`: it should
    /// keep running until cancelled. Only a peer that runs jobs itself needs telling.
    async fn plan(&self, _dir: &Path, _name: &str, _ending: Option<Ending>) {}

    /// Leads a submitted run to its end, where the peer needs telling.
    async fn end(&self, id: &str, ending: Ending);

    /// What the backend received for this run.
    async fn submitted(&self, dir: &Path, id: &str, name: &str) -> Submitted;

    /// An id of this backend's format that names no run.
    fn unknown_id(&self) -> &'static str;
}

/// The service running against a peer.
pub struct Suite {
    pub peer: Arc<dyn Peer>,
    pub base: String,
    pub http: reqwest::Client,
    pub multiomix: FakeMultiomix,
    pub backend: Arc<dyn JobBackend>,
    pub dir: tempfile::TempDir,
    task: JoinHandle<anyhow::Result<()>>,
}

impl Drop for Suite {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// The service's variables in the suite: loopback on any port, its store in `dir`, its
/// notices to `multiomix`, and every wait in milliseconds.
pub fn service_vars(multiomix: &FakeMultiomix, dir: &Path) -> BTreeMap<String, String> {
    [
        ("HOST", "127.0.0.1".to_owned()),
        ("PORT", "0".to_owned()),
        ("MULTIOMIX_URL", format!("{}/", multiomix.url())),
        ("DATABASE_URL", format!("sqlite:{}/store.db", dir.display())),
        ("SLEEP_TIME", "0.05".to_owned()),
        ("POLL_INTERVAL", "0.05".to_owned()),
        ("NOTIFY_INITIAL_BACKOFF", "0.05".to_owned()),
        ("NOTIFY_TIMEOUT", "2".to_owned()),
        ("RECONCILE_INTERVAL", "3600".to_owned()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v))
    .collect()
}

impl Suite {
    pub async fn start(peer: Arc<dyn Peer>) -> Suite {
        Self::start_with(peer, &[]).await
    }

    /// With more variables, which win over the suite's and the peer's.
    pub async fn start_with(peer: Arc<dyn Peer>, extra: &[(&str, &str)]) -> Suite {
        let multiomix = FakeMultiomix::start().await;
        let dir = tempfile::tempdir().unwrap();
        let mut vars = service_vars(&multiomix, dir.path());
        vars.extend(peer.vars(dir.path()));
        vars.extend(extra.iter().map(|(k, v)| (k.to_string(), v.to_string())));
        let config = Config::from_vars(vars).expect("a valid configuration");
        let (backend, ended) = peer.connect(&config).await;
        let mut app = Application::build_with_backend(config, backend.clone())
            .await
            .expect("the app builds");
        if let Some(ended) = ended {
            app.forward_ended_jobs(ended);
        }
        let base = format!("http://{}", app.local_addr());
        let task = tokio::spawn(app.run_until_stopped(std::future::pending()));
        Suite {
            peer,
            base,
            http: reqwest::Client::new(),
            multiomix,
            backend,
            dir,
            task,
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// Multiomix's BBHA request under this name, planned to go as told; returns its id.
    pub async fn submit(&self, name: &str, ending: Option<Ending>) -> String {
        self.peer.plan(self.dir.path(), name, ending).await;
        crate::common::submit_job(&self.http, &self.base, &own_body(name)).await
    }

    pub async fn get(&self, path: &str) -> (u16, Value) {
        let r = self.http.get(self.url(path)).send().await.unwrap();
        let status = r.status().as_u16();
        (status, r.json().await.unwrap_or(Value::Null))
    }

    /// `get` with `Authorization: Bearer <token>` (for the backends' own tests; the
    /// conformance cases need no token).
    #[allow(dead_code)]
    pub async fn get_with_token(&self, path: &str, token: &str) -> (u16, Value) {
        let r = self
            .http
            .get(self.url(path))
            .bearer_auth(token)
            .send()
            .await
            .unwrap();
        let status = r.status().as_u16();
        (status, r.json().await.unwrap_or(Value::Null))
    }

    pub async fn delete(&self, path: &str) -> (u16, Value) {
        let r = self.http.delete(self.url(path)).send().await.unwrap();
        let status = r.status().as_u16();
        (status, r.json().await.unwrap_or(Value::Null))
    }

    pub async fn patch(&self, id: &str) -> u16 {
        self.http
            .patch(self.url(&format!("/job/{id}")))
            .header("Content-Type", "application/json")
            .body(r#"{"state":"Terminated"}"#)
            .send()
            .await
            .unwrap()
            .status()
            .as_u16()
    }

    /// Reads the job until its state is one of `states`.
    pub async fn read_until(&self, id: &str, states: &[&str]) -> Value {
        crate::common::read_job_until(&self.http, &self.base, id, WAIT, |job| {
            states.iter().any(|s| job["state"] == *s)
        })
        .await
    }
}

/// Exactly what Multiomix sends, under `name`.
pub fn body(name: &str) -> Value {
    let mut body = crate::common::multiomix_body();
    body["name"] = json!(name);
    body
}

/// [`body`], for an experiment of its own (its own app name): what a test that starts
/// several jobs at once posts.
pub fn own_body(name: &str) -> Value {
    let mut body = crate::common::another_experiment();
    body["name"] = json!(name);
    body
}
