//! What the integration tests share: the one way to start the service ([`app`]), the one
//! way to wait ([`wait`]), moto ([`moto`]), and Multiomix's requests.

pub mod app;
pub mod moto;
pub mod wait;

pub use app::{read_job_until, wait_healthy, TestApp, FAKE_SPARK_SUBMIT};
pub use wait::{wait_blocking, wait_for, wait_until, PATIENCE};

use aws_sdk_emrcontainers::config::{
    BehaviorVersion, Credentials, Region, SharedCredentialsProvider,
};
use serde_json::{json, Value};

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

/// The app in front of a fake EMR on EKS, with the harness's defaults.
pub async fn spawn_app() -> TestApp {
    TestApp::builder().start().await
}

/// [`spawn_app`] with variables of the test's own.
pub async fn spawn_app_with(vars: &[(&str, &str)]) -> TestApp {
    TestApp::builder().vars(vars).start().await
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

/// A loopback port nothing listens on now (for a service or server started as a
/// process, which must be told its port).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}
