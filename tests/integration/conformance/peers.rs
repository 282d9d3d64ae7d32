//! The backends the suite runs against: fakes that speak the real wire protocols, moto's
//! servers (peers nobody here wrote), and the local backend with a fake spark-submit.
//! No peer nobody here wrote speaks Livy's API: what the Livy fake cannot show is said
//! at [`FakeLivyPeer`].

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use multiomix_aws_emr::backend::emr::ec2::EmrEc2Backend;
use multiomix_aws_emr::backend::emr::eks::EmrEksBackend;
use multiomix_aws_emr::backend::emr::serverless::EmrServerlessBackend;
use multiomix_aws_emr::backend::livy::LivyBackend;
use multiomix_aws_emr::backend::local::LocalBackend;
use multiomix_aws_emr::config::Config;
use multiomix_aws_emr::staging::Staging;
use multiomix_aws_emr::store::Store;
use multiomix_fakes::{
    BatchState, FakeEmr, FakeEmrEc2, FakeEmrServerless, FakeLivy, RunState, StepState,
};
use serde_json::Value;
use tokio::sync::mpsc::{self};

use crate::common::app::{local_vars, stand_in_scripts, Connected};
use crate::common::moto::{moto, s3_client, Moto};
use crate::common::{create_virtual_cluster, emr_client, sdk_config};
use crate::common::{wait_until, FAKE_SPARK_SUBMIT, PATIENCE};
use crate::conformance::harness::{driver_env, Abilities, Ending, Peer, Submitted, ROLE};

const BUCKET: &str = "multiomix-bucket";
const ALL_ENDINGS: &[Ending] = &[Ending::Completed, Ending::Failed];
/// What a fake (or the local backend) shows: every final state, runs held until
/// cancelled, one run per client token; the service sees the end itself.
const EVERYTHING: Abilities = Abilities {
    endings: ALL_ENDINGS,
    can_hold: true,
    honours_client_token: true,
    needs_callback: false,
    contract_parameters: false,
};

fn emr_vars(backend: &str) -> Vec<(String, String)> {
    vec![
        ("JOB_BACKEND".into(), backend.into()),
        ("EMR_EXECUTION_ROLE_ARN".into(), ROLE.into()),
        ("EMR_S3_BUCKET".into(), BUCKET.into()),
    ]
}

fn strings(v: &Value) -> Vec<String> {
    v.as_array()
        .map(|a| {
            a.iter()
                .filter_map(|s| s.as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}

/// An emr-serverless client for a local endpoint, with fixed test credentials.
pub fn serverless_client(endpoint: &str) -> aws_sdk_emrserverless::Client {
    aws_sdk_emrserverless::Client::new(&sdk_config(endpoint))
}

// ---- EMR on EKS --------------------------------------------------------------------

async fn eks_backend(url: &str, config: &Config) -> Connected {
    let backend = EmrEksBackend::with_client(
        emr_client(url),
        config.backend.emr_eks().cloned().unwrap(),
        config.spark.clone(),
        config.job.clone(),
    );
    (Arc::new(backend), None)
}

fn eks_submitted(request: &Value) -> Submitted {
    let driver = &request["jobDriver"]["sparkSubmitJobDriver"];
    let parameters = driver["sparkSubmitParameters"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    Submitted {
        name: request["name"].as_str().unwrap_or_default().to_owned(),
        entry_point: driver["entryPoint"].as_str().unwrap_or_default().to_owned(),
        arguments: strings(&driver["entryPointArguments"]),
        driver_env: driver_env(&parameters, "spark.kubernetes.driverEnv."),
        parameters,
        log_uri: request["configurationOverrides"]["monitoringConfiguration"]
            ["s3MonitoringConfiguration"]["logUri"]
            .as_str()
            .map(str::to_owned),
        execution_role: request["executionRoleArn"].as_str().map(str::to_owned),
        tags: serde_json::from_value(request["tags"].clone()).unwrap_or_default(),
    }
}

/// The fake EMR on EKS: every state, the sidecar's callback announces the end.
pub struct FakeEks(FakeEmr);

pub async fn fake_eks() -> Option<Arc<dyn Peer>> {
    Some(Arc::new(FakeEks(FakeEmr::start().await)))
}

#[async_trait]
impl Peer for FakeEks {
    fn vars(&self, _: &Path) -> Vec<(String, String)> {
        let mut v = emr_vars("emr");
        v.push((
            "EMR_VIRTUAL_CLUSTER_ID".into(),
            self.0.virtual_cluster_id().into(),
        ));
        v
    }
    async fn connect(&self, config: &Config) -> Connected {
        eks_backend(&self.0.url(), config).await
    }
    fn abilities(&self) -> Abilities {
        Abilities {
            needs_callback: true,
            contract_parameters: true,
            ..EVERYTHING
        }
    }
    async fn end(&self, id: &str, ending: Ending) {
        let state = match ending {
            Ending::Completed => multiomix_fakes::JobState::Completed,
            Ending::Failed => multiomix_fakes::JobState::Failed,
        };
        assert!(self.0.set_state(id, state, None, None));
    }
    async fn submitted(&self, _: &Path, _: &str, name: &str) -> Submitted {
        let requests = self.0.start_requests();
        let request = requests
            .iter()
            .rev()
            .find(|r| r["name"] == name)
            .expect("a StartJobRun of this name");
        eks_submitted(request)
    }
    fn unknown_id(&self) -> &'static str {
        "0000000000000000000"
    }
}

/// moto's emr-containers: runs stay RUNNING (only a cancel ends them) and client tokens
/// are not honoured.
pub struct MotoEks {
    moto: Moto,
    vc: String,
}

pub async fn moto_eks() -> Option<Arc<dyn Peer>> {
    let moto = moto().await?;
    let vc = create_virtual_cluster(&emr_client(&moto.url)).await;
    Some(Arc::new(MotoEks { moto, vc }))
}

#[async_trait]
impl Peer for MotoEks {
    fn vars(&self, _: &Path) -> Vec<(String, String)> {
        let mut v = emr_vars("emr");
        v.push(("EMR_VIRTUAL_CLUSTER_ID".into(), self.vc.clone()));
        v
    }
    async fn connect(&self, config: &Config) -> Connected {
        eks_backend(&self.moto.url, config).await
    }
    fn abilities(&self) -> Abilities {
        Abilities {
            endings: &[],
            can_hold: true,
            honours_client_token: false,
            needs_callback: true,
            contract_parameters: true,
        }
    }
    async fn end(&self, _: &str, _: Ending) {
        unreachable!("moto's emr-containers cannot end a run")
    }
    async fn submitted(&self, _: &Path, id: &str, _: &str) -> Submitted {
        let out = emr_client(&self.moto.url)
            .describe_job_run()
            .virtual_cluster_id(&self.vc)
            .id(id)
            .send()
            .await
            .unwrap();
        let run = out.job_run().unwrap();
        let driver = run.job_driver().unwrap().spark_submit_job_driver().unwrap();
        let parameters = driver
            .spark_submit_parameters()
            .unwrap_or_default()
            .to_owned();
        Submitted {
            name: run.name().unwrap_or_default().to_owned(),
            entry_point: driver.entry_point().to_owned(),
            arguments: driver.entry_point_arguments().to_vec(),
            driver_env: driver_env(&parameters, "spark.kubernetes.driverEnv."),
            parameters,
            log_uri: run
                .configuration_overrides()
                .and_then(|c| c.monitoring_configuration())
                .and_then(|m| m.s3_monitoring_configuration())
                .map(|s| s.log_uri().to_owned()),
            execution_role: run.execution_role_arn().map(str::to_owned),
            tags: run
                .tags()
                .map(|t| t.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
                .unwrap_or_default(),
        }
    }
    fn unknown_id(&self) -> &'static str {
        "0000000000000000000"
    }
}

// ---- EMR Serverless ----------------------------------------------------------------

async fn serverless_backend(url: &str, config: &Config) -> Connected {
    let backend = EmrServerlessBackend::with_client(
        serverless_client(url),
        config.backend.emr_serverless().cloned().unwrap(),
        config.spark.clone(),
        config.job.clone(),
    );
    (Arc::new(backend), None)
}

fn serverless_vars(application: &str) -> Vec<(String, String)> {
    let mut v = emr_vars("emr-serverless");
    v.push(("EMR_SERVERLESS_APPLICATION_ID".into(), application.into()));
    v
}

/// What GetJobRun shows of a run's request, read with the real SDK.
async fn serverless_submitted(url: &str, application: &str, id: &str) -> Submitted {
    let out = serverless_client(url)
        .get_job_run()
        .application_id(application)
        .job_run_id(id)
        .send()
        .await
        .unwrap();
    let run = out.job_run().unwrap();
    let aws_sdk_emrserverless::types::JobDriver::SparkSubmit(driver) = run.job_driver().unwrap()
    else {
        panic!("not a Spark job: {run:?}")
    };
    let parameters = driver
        .spark_submit_parameters()
        .unwrap_or_default()
        .to_owned();
    Submitted {
        name: run.name().unwrap_or_default().to_owned(),
        entry_point: driver.entry_point().to_owned(),
        arguments: driver.entry_point_arguments().to_vec(),
        driver_env: driver_env(&parameters, "spark.emr-serverless.driverEnv."),
        parameters,
        log_uri: run
            .configuration_overrides()
            .and_then(|c| c.monitoring_configuration())
            .and_then(|m| m.s3_monitoring_configuration())
            .and_then(|s| s.log_uri())
            .map(str::to_owned),
        execution_role: Some(run.execution_role().to_owned()),
        tags: run
            .tags()
            .map(|t| t.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
            .unwrap_or_default(),
    }
}

/// The fake EMR Serverless: every state, cancels that take a moment, no callback.
pub struct FakeServerless(pub FakeEmrServerless);

pub async fn fake_serverless() -> Option<Arc<dyn Peer>> {
    let fake = FakeEmrServerless::builder()
        .cancel_takes(Duration::from_millis(300))
        .start()
        .await;
    Some(Arc::new(FakeServerless(fake)))
}

#[async_trait]
impl Peer for FakeServerless {
    fn vars(&self, _: &Path) -> Vec<(String, String)> {
        serverless_vars(self.0.application_id())
    }
    async fn connect(&self, config: &Config) -> Connected {
        serverless_backend(&self.0.url(), config).await
    }
    fn abilities(&self) -> Abilities {
        EVERYTHING
    }
    async fn end(&self, id: &str, ending: Ending) {
        let (state, details) = match ending {
            Ending::Completed => (RunState::Success, ""),
            Ending::Failed => (RunState::Failed, "Job failed, ExitCode: 1"),
        };
        assert!(self.0.set_state(id, state, details));
    }
    async fn submitted(&self, _: &Path, id: &str, _: &str) -> Submitted {
        let submitted = serverless_submitted(&self.0.url(), self.0.application_id(), id).await;
        // GetJobRun does not show the client token; the request does.
        let request = self
            .0
            .start_requests()
            .into_iter()
            .rev()
            .find(|r| r["name"] == submitted.name.as_str())
            .unwrap();
        assert!(
            request["clientToken"]
                .as_str()
                .is_some_and(|t| !t.is_empty()),
            "{request}"
        );
        submitted
    }
    fn unknown_id(&self) -> &'static str {
        "00f0000000000000"
    }
}

/// moto's emr-serverless: runs are created already SUCCESS, with no `endedAt` and a
/// `createdAt` truncated to the day; client tokens are not honoured; CancelJobRun does
/// not refuse a finished run. So it cannot show a run RUNNING, FAILED or cancelled, nor
/// the backend's own idempotency: the fake EMR Serverless shows those.
pub struct MotoServerless {
    moto: Moto,
    application: String,
}

pub async fn moto_serverless() -> Option<Arc<dyn Peer>> {
    let moto = moto().await?;
    let application = serverless_client(&moto.url)
        .create_application()
        .name("multiomix")
        .release_label("emr-6.9.0")
        .r#type("SPARK")
        .send()
        .await
        .expect("moto creates an application")
        .application_id()
        .to_owned();
    Some(Arc::new(MotoServerless { moto, application }))
}

#[async_trait]
impl Peer for MotoServerless {
    fn vars(&self, _: &Path) -> Vec<(String, String)> {
        serverless_vars(&self.application)
    }
    async fn connect(&self, config: &Config) -> Connected {
        serverless_backend(&self.moto.url, config).await
    }
    fn abilities(&self) -> Abilities {
        Abilities {
            endings: &[Ending::Completed],
            can_hold: false,
            honours_client_token: false,
            needs_callback: false,
            contract_parameters: false,
        }
    }
    async fn end(&self, _: &str, _: Ending) {}
    async fn submitted(&self, _: &Path, id: &str, _: &str) -> Submitted {
        serverless_submitted(&self.moto.url, &self.application, id).await
    }
    fn unknown_id(&self) -> &'static str {
        "00f0000000000000"
    }
}

// ---- EMR on EC2 --------------------------------------------------------------------

/// An EMR client for a local endpoint, with fixed test credentials.
pub fn ec2_client(endpoint: &str) -> aws_sdk_emr::Client {
    aws_sdk_emr::Client::new(&sdk_config(endpoint))
}

pub async fn ec2_backend(url: &str, config: &Config) -> Connected {
    let backend = EmrEc2Backend::with_client(
        ec2_client(url),
        config.backend.emr_ec2().cloned().unwrap(),
        config.spark.clone(),
        config.job.clone(),
    );
    (Arc::new(backend), None)
}

pub fn ec2_vars(cluster: &str) -> Vec<(String, String)> {
    vec![
        ("JOB_BACKEND".into(), "emr-ec2".into()),
        ("EMR_CLUSTER_ID".into(), cluster.into()),
        ("EMR_S3_BUCKET".into(), BUCKET.into()),
    ]
}

/// The step id behind a job id: the same id in upper case after `s-`.
pub fn step_of(id: &str) -> String {
    let rest = id.strip_prefix("s-").expect("an EMR on EC2 job id");
    format!("s-{}", rest.to_ascii_uppercase())
}

/// What DescribeStep shows of a step, read with the real SDK, in the suite's terms. The
/// step itself is checked here: `command-runner.jar`, `spark-submit --deploy-mode
/// cluster` with each argument its own item, and a failure that leaves the cluster be.
pub async fn ec2_submitted(url: &str, cluster: &str, id: &str) -> Submitted {
    let out = ec2_client(url)
        .describe_step()
        .cluster_id(cluster)
        .step_id(step_of(id))
        .send()
        .await
        .unwrap();
    let step = out.step().unwrap();
    assert_eq!(step.id(), Some(step_of(id).as_str()));
    assert_eq!(
        step.action_on_failure().map(|a| a.as_str()),
        Some("CONTINUE")
    );
    let config = step.config().unwrap();
    assert_eq!(config.jar(), Some("command-runner.jar"));
    let args = config.args();
    assert_eq!(
        &args[..3],
        ["spark-submit", "--deploy-mode", "cluster"],
        "{args:?}"
    );
    assert!(
        args.iter().all(|a| !a.contains(' ')),
        "one item per argument: {args:?}"
    );
    let mut options = Vec::new();
    let mut rest = args[3..].iter();
    let entry_point = loop {
        let word = rest.next().expect("an entry point after the options");
        if word.starts_with("--") {
            options.push(format!(
                "{word} {}",
                rest.next().expect("an option's value")
            ));
        } else {
            break word.clone();
        }
    };
    assert_eq!(entry_point, "s3://multiomix-bucket/scripts/main.py");
    let parameters = options.join(" ");
    assert!(
        parameters.contains("--conf spark.yarn.tags=multiomix-aws-emr,token-"),
        "{parameters}"
    );
    Submitted {
        name: step.name().unwrap_or_default().to_owned(),
        entry_point,
        arguments: rest.cloned().collect(),
        driver_env: driver_env(&parameters, "spark.yarn.appMasterEnv."),
        parameters,
        log_uri: None,
        execution_role: None,
        tags: Default::default(),
    }
}

/// The fake EMR on EC2 cluster: every step state, cancels that take a moment, no
/// callback; steps are found again by their client token through ListSteps.
pub struct FakeEc2(pub FakeEmrEc2);

pub async fn fake_ec2() -> Option<Arc<dyn Peer>> {
    let fake = FakeEmrEc2::builder()
        .cancel_takes(Duration::from_millis(300))
        .start()
        .await;
    Some(Arc::new(FakeEc2(fake)))
}

#[async_trait]
impl Peer for FakeEc2 {
    fn vars(&self, _: &Path) -> Vec<(String, String)> {
        ec2_vars(self.0.cluster_id())
    }
    async fn connect(&self, config: &Config) -> Connected {
        ec2_backend(&self.0.url(), config).await
    }
    fn abilities(&self) -> Abilities {
        EVERYTHING
    }
    async fn end(&self, id: &str, ending: Ending) {
        let (state, details) = match ending {
            Ending::Completed => (StepState::Completed, ""),
            Ending::Failed => (StepState::Failed, "Unknown error"),
        };
        assert!(self.0.set_state(&step_of(id), state, details));
    }
    async fn submitted(&self, _: &Path, id: &str, _: &str) -> Submitted {
        ec2_submitted(&self.0.url(), self.0.cluster_id(), id).await
    }
    fn unknown_id(&self) -> &'static str {
        "s-0000000000000"
    }
}

// ---- Livy --------------------------------------------------------------------------

/// The credentials the Livy peers ask for, as a Knox gateway would.
pub const LIVY_USER: &str = "multiomix";
pub const LIVY_PASSWORD: &str = "livy-secret";

pub fn livy_vars(url: &str) -> Vec<(String, String)> {
    vec![
        ("JOB_BACKEND".into(), "livy".into()),
        ("LIVY_URL".into(), url.into()),
        ("LIVY_PACKAGE_URL".into(), format!("s3://{BUCKET}/")),
        ("LIVY_USERNAME".into(), LIVY_USER.into()),
        ("LIVY_PASSWORD".into(), LIVY_PASSWORD.into()),
    ]
}

/// The Livy backend of `config`, its batches kept in the service's store. With staging,
/// it looks for `result.json` in moto's S3 at `AWS_ENDPOINT_URL`, as the registry does
/// in the bucket (a client with the tests' fixed credentials).
pub async fn livy_backend(config: &Config) -> Connected {
    let store = Store::connect(&config.database_url).await.unwrap();
    let backend = LivyBackend::new(
        store,
        config.backend.livy().cloned().unwrap(),
        config.spark.clone(),
        config.job.clone(),
    );
    let backend = match &config.staging {
        Some(staging) => {
            let endpoint = staging
                .endpoint_url
                .as_deref()
                .expect("the Livy peer stages through moto: AWS_ENDPOINT_URL");
            backend.with_results(Staging::with_client(s3_client(endpoint), staging))
        }
        None => backend,
    };
    (Arc::new(backend), None)
}

/// The batch Livy made for a job: the one whose name carries its id.
pub fn batch_of(fake: &FakeLivy, id: &str) -> i64 {
    fake.batch_named_with(&format!(":{id}:"))
        .unwrap_or_else(|| panic!("Livy holds no batch of job {id}"))
}

/// A `POST /batches` body in the suite's terms: what spark-submit gets from it, as Livy
/// passes it on (its size fields become the same `spark.*` settings as `conf`).
pub fn livy_submitted(request: &Value) -> Submitted {
    let mut options = vec![format!(
        "--py-files {}",
        strings(&request["pyFiles"]).join(",")
    )];
    for (field, key) in [
        ("driverMemory", "spark.driver.memory"),
        ("driverCores", "spark.driver.cores"),
        ("executorMemory", "spark.executor.memory"),
        ("executorCores", "spark.executor.cores"),
        ("numExecutors", "spark.executor.instances"),
    ] {
        match &request[field] {
            Value::Null => {}
            Value::String(v) => options.push(format!("--conf {key}={v}")),
            other => options.push(format!("--conf {key}={other}")),
        }
    }
    for (key, value) in request["conf"].as_object().into_iter().flatten() {
        options.push(format!(
            "--conf {key}={}",
            value.as_str().unwrap_or_default()
        ));
    }
    let parameters = options.join(" ");
    let batch_name = request["name"].as_str().unwrap_or_default();
    Submitted {
        // `<prefix>:<job id>:<app-name>:<job name>`.
        name: batch_name
            .splitn(4, ':')
            .nth(3)
            .unwrap_or_default()
            .to_owned(),
        entry_point: request["file"].as_str().unwrap_or_default().to_owned(),
        arguments: strings(&request["args"]),
        driver_env: driver_env(&parameters, "spark.yarn.appMasterEnv."),
        parameters,
        log_uri: None,
        execution_role: None,
        tags: Default::default(),
    }
}

/// The fake Livy, behind Basic credentials and with its CSRF check on: batches start
/// `starting` and are `running`, with a YARN application and its links, 50 ms later.
///
/// What a fake cannot show, and no test here does: YARN running the application (the
/// driver's environment reaching it through `spark.yarn.appMasterEnv.*` in cluster mode,
/// the queue, the executors' sizes), Livy's impersonation rules for `proxyUser`, the
/// `conf` keys a Livy's `spark-blacklist.conf` refuses, session recovery after a restart
/// with `livy.server.recovery.mode=recovery`, the timing of Livy dropping ended batches
/// (`livy.server.session.state-retain.sec`), a real Knox gateway, and Livy versions
/// before 0.7, which give batches no `name`.
pub struct FakeLivyPeer(pub FakeLivy);

pub async fn fake_livy() -> Option<Arc<dyn Peer>> {
    Some(livy_peer().await)
}

/// [`fake_livy`], as its own type, for the tests that drive the fake themselves.
pub async fn livy_peer() -> Arc<FakeLivyPeer> {
    let fake = FakeLivy::builder()
        .basic_auth(LIVY_USER, LIVY_PASSWORD)
        .script(&[(Duration::from_millis(50), BatchState::Running)])
        .start()
        .await;
    Arc::new(FakeLivyPeer(fake))
}

#[async_trait]
impl Peer for FakeLivyPeer {
    fn vars(&self, _: &Path) -> Vec<(String, String)> {
        livy_vars(&self.0.url())
    }
    async fn connect(&self, config: &Config) -> Connected {
        livy_backend(config).await
    }
    fn abilities(&self) -> Abilities {
        EVERYTHING
    }
    async fn end(&self, id: &str, ending: Ending) {
        let state = match ending {
            Ending::Completed => BatchState::Success,
            Ending::Failed => BatchState::Dead,
        };
        assert!(self.0.set_state(batch_of(&self.0, id), state));
    }
    async fn submitted(&self, _: &Path, id: &str, _: &str) -> Submitted {
        let request = self
            .0
            .requests()
            .into_iter()
            .rev()
            .find(|r| {
                r["name"]
                    .as_str()
                    .is_some_and(|n| n.contains(&format!(":{id}:")))
            })
            .expect("a POST /batches of this job");
        assert!(
            self.0.refused().is_empty(),
            "every call carries the credentials and X-Requested-By: {:?}",
            self.0.refused()
        );
        livy_submitted(&request)
    }
    fn unknown_id(&self) -> &'static str {
        "lv00000000000000000000000000000000"
    }
}

// ---- local -------------------------------------------------------------------------

/// The local backend, running tests/fixtures/fake-spark-submit, which exits or sleeps as
/// each job's behaviour file says and records how it was started.
pub struct Local;

pub async fn local() -> Option<Arc<dyn Peer>> {
    Some(Arc::new(Local))
}

#[async_trait]
impl Peer for Local {
    fn vars(&self, dir: &Path) -> Vec<(String, String)> {
        let scripts = stand_in_scripts(dir);
        let mut vars = local_vars(dir, FAKE_SPARK_SUBMIT, &scripts);
        vars.push(("RECONCILE_INTERVAL".into(), "0.2".into()));
        vars
    }
    async fn connect(&self, config: &Config) -> Connected {
        let store = Store::connect(&config.database_url).await.unwrap();
        let (tx, rx) = mpsc::unbounded_channel();
        let backend = LocalBackend::new(
            store,
            config.backend.local().unwrap().clone(),
            config.spark.clone(),
            config.job.clone(),
            tx,
        )
        .await
        .unwrap();
        (Arc::new(backend), Some(rx))
    }
    fn abilities(&self) -> Abilities {
        EVERYTHING
    }
    async fn plan(&self, dir: &Path, name: &str, ending: Option<Ending>) {
        let results = dir.join("results");
        std::fs::create_dir_all(&results).unwrap();
        let behaviour = match ending {
            Some(Ending::Completed) => "exit 0",
            Some(Ending::Failed) => "exit 3",
            None => "sleep 60",
        };
        std::fs::write(results.join(format!("{name}.behaviour")), behaviour).unwrap();
    }
    async fn end(&self, _: &str, _: Ending) {}
    async fn submitted(&self, dir: &Path, _: &str, name: &str) -> Submitted {
        let record = dir.join("results").join(format!("{name}.record"));
        wait_until("the fake spark-submit to start", PATIENCE, || {
            record.exists()
        })
        .await;
        let text = std::fs::read_to_string(record).unwrap();
        let mut args = Vec::new();
        let mut env = std::collections::BTreeMap::new();
        for line in text.lines() {
            let (k, v) = line.split_once('=').unwrap();
            match k {
                "arg" => args.push(v.to_owned()),
                "pid" => {}
                _ => {
                    env.insert(k.to_owned(), v.to_owned());
                }
            }
        }
        let entry = args
            .iter()
            .position(|a| a.ends_with("/main.py"))
            .expect("an entry point");
        let options_from = args
            .iter()
            .position(|a| a == "--py-files")
            .expect("--py-files");
        Submitted {
            name: env.get("JOB_NAME").cloned().unwrap_or_default(),
            entry_point: args[entry].clone(),
            arguments: args[entry + 1..].to_vec(),
            parameters: args[options_from..entry].join(" "),
            driver_env: env,
            log_uri: None,
            execution_role: None,
            tags: Default::default(),
        }
    }
    fn unknown_id(&self) -> &'static str {
        "0000000000unknown00"
    }
}
