//! What the conformance suite runs against: a backend's peer, and the service in front of
//! it (the harness's [`TestApp`], built with the peer's backend).

use std::collections::BTreeMap;
use std::ops::Deref;
use std::path::Path;
use std::sync::Arc;

use async_trait::async_trait;
use multiomix_aws_emr::backend::JobBackend;
use multiomix_aws_emr::config::Config;
use serde_json::{json, Value};

use crate::common::app::{AppBuilder, Connected};
use crate::common::{another_experiment, multiomix_body, submit_job, TestApp};

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
    async fn connect(&self, config: &Config) -> Connected;

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

/// The service running against a peer: the harness's [`TestApp`] with the peer's
/// backend, and what the cases need of the peer.
pub struct Suite {
    pub peer: Arc<dyn Peer>,
    /// The backend as the peer made it.
    pub backend: Arc<dyn JobBackend>,
    app: TestApp,
}

impl Deref for Suite {
    type Target = TestApp;

    fn deref(&self) -> &TestApp {
        &self.app
    }
}

impl Suite {
    pub async fn start(peer: Arc<dyn Peer>) -> Suite {
        Self::start_with(peer, &[]).await
    }

    /// With more variables, which win over the harness's and the peer's.
    pub async fn start_with(peer: Arc<dyn Peer>, extra: &[(&str, &str)]) -> Suite {
        Self::start_from(peer, TestApp::builder(), extra).await
    }

    /// From a builder the test began (its own fake Multiomix, S3 for staging).
    pub async fn start_from(
        peer: Arc<dyn Peer>,
        builder: AppBuilder,
        extra: &[(&str, &str)],
    ) -> Suite {
        let dir = Arc::new(tempfile::tempdir().unwrap());
        let connecting = peer.clone();
        let app = builder
            .dir(dir.clone())
            .owned_vars(peer.vars(dir.path()))
            .vars(extra)
            .backend(move |config| async move { connecting.connect(&config).await })
            .start()
            .await;
        let backend = app.backend.clone().expect("the peer's backend");
        Suite { peer, backend, app }
    }

    /// Multiomix's BBHA request under this name, planned to go as told; returns its id.
    pub async fn submit(&self, name: &str, ending: Option<Ending>) -> String {
        self.peer.plan(self.dir.path(), name, ending).await;
        submit_job(&self.http, &self.base, &own_body(name)).await
    }

    /// The sidecar's `PATCH /job/{id}`; its status.
    pub async fn patch(&self, id: &str) -> u16 {
        self.patch_job(id).await.status().as_u16()
    }

    /// Reads the job until its state is one of `states`.
    pub async fn read_until(&self, id: &str, states: &[&str]) -> Value {
        self.read_until_state(id, states).await
    }
}

/// Exactly what Multiomix sends, under `name`.
pub fn body(name: &str) -> Value {
    let mut body = multiomix_body();
    body["name"] = json!(name);
    body
}

/// [`body`], for an experiment of its own (its own app name): what a test that starts
/// several jobs at once posts.
pub fn own_body(name: &str) -> Value {
    let mut body = another_experiment();
    body["name"] = json!(name);
    body
}
