//! The real binary as a process: start-up checks, SIGTERM, and surviving SIGKILL.

use std::path::Path;
use std::process::Stdio;

use multiomix_fakes::{FakeEmr, FakeMultiomix, JobState};
use serde_json::json;
use tokio::process::{Child, Command};

use crate::common;
use crate::common::app::FAST;
use crate::common::PATIENCE;

const BIN: &str = env!("CARGO_BIN_EXE_multiomix-aws-emr");

/// The service as Kubernetes would run it, against the fakes, with the AWS SDK's own
/// environment variables (credentials, endpoint).
fn service(emr: &FakeEmr, multiomix: &FakeMultiomix, db: &Path, port: u16) -> Child {
    Command::new(BIN)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("EMR_VIRTUAL_CLUSTER_ID", emr.virtual_cluster_id())
        .env(
            "EMR_EXECUTION_ROLE_ARN",
            "arn:aws:iam::123456789012:role/emr-job",
        )
        .env("EMR_S3_BUCKET", "multiomix-bucket")
        .env("AWS_ENDPOINT_URL", emr.url())
        .env("AWS_ACCESS_KEY_ID", "AKIDTEST")
        .env("AWS_SECRET_ACCESS_KEY", "test-secret-not-logged")
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .env("MULTIOMIX_URL", multiomix.url())
        .env("DATABASE_URL", format!("sqlite:{}", db.display()))
        .env("HOST", "127.0.0.1")
        .env("PORT", port.to_string())
        .envs(FAST.iter().copied())
        .env("RUST_LOG", "info")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("the binary starts")
}

async fn wait_healthy(http: &reqwest::Client, port: u16) {
    common::wait_healthy(http, &format!("http://127.0.0.1:{port}"), PATIENCE).await
}

#[tokio::test]
async fn missing_required_variables_stop_start_up_and_are_all_named() {
    let out = Command::new(BIN)
        .env_clear()
        .env("JOB_BACKEND", "emr")
        .env("PORT", common::free_port().to_string())
        .output()
        .await
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    for name in [
        "EMR_VIRTUAL_CLUSTER_ID",
        "EMR_EXECUTION_ROLE_ARN",
        "EMR_S3_BUCKET",
    ] {
        assert!(stderr.contains(name), "{stderr}");
    }
}

#[tokio::test]
async fn sigterm_stops_the_service_cleanly_and_secrets_stay_out_of_the_logs() {
    let emr = FakeEmr::start().await;
    let multiomix = FakeMultiomix::start().await;
    let dir = tempfile::tempdir().unwrap();
    let port = common::free_port();
    let mut child = service(&emr, &multiomix, &dir.path().join("db.sqlite"), port);
    let http = reqwest::Client::new();
    wait_healthy(&http, port).await;
    let pid = nix::unistd::Pid::from_raw(child.id().unwrap() as i32);
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM).unwrap();
    let status = tokio::time::timeout(PATIENCE, child.wait())
        .await
        .expect("stops within the grace period")
        .unwrap();
    assert!(status.success(), "{status:?}");
    let mut stderr = String::new();
    use tokio::io::AsyncReadExt;
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut stderr)
        .await
        .unwrap();
    assert!(stderr.contains("listening"), "{stderr}");
    assert!(stderr.contains("SIGTERM"), "{stderr}");
    assert!(!stderr.contains("test-secret-not-logged"), "{stderr}");
}

#[tokio::test]
async fn a_service_killed_before_delivery_delivers_after_restart() {
    let emr = FakeEmr::start().await;
    let multiomix = FakeMultiomix::start().await;
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("db.sqlite");
    let port = common::free_port();
    let http = reqwest::Client::new();

    let mut first = service(&emr, &multiomix, &db, port);
    wait_healthy(&http, port).await;
    let body = json!({"name": "BreastCancerBBHA", "algorithm": 1,
                      "entrypoint_arguments": [{"name": "app-name", "value": "exp-42-app"},
                                               {"name": "n-stars", "value": 15}]});
    let id = common::submit_job(&http, &format!("http://127.0.0.1:{port}"), &body).await;
    emr.set_state(&id, JobState::Completed, None, None);

    multiomix.down().await;
    let r = http
        .patch(format!("http://127.0.0.1:{port}/job/{id}"))
        .header("content-type", "application/json")
        .body(r#"{"state":"Terminated"}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 204);
    // Killed once the notice is due and an attempt to deliver it has failed.
    let base = format!("http://127.0.0.1:{port}");
    common::read_job_until(&http, &base, &id, PATIENCE, |job| {
        job["notice"]["attempts"].as_i64().unwrap_or(0) >= 1
    })
    .await;
    first.kill().await.unwrap(); // SIGKILL: no chance to clean up
    assert_eq!(multiomix.count(), 0);

    multiomix.up().await.unwrap();
    let mut second = service(&emr, &multiomix, &db, port);
    wait_healthy(&http, port).await;
    let notices = multiomix.wait_for_notices(1, PATIENCE).await.unwrap();
    assert_eq!(notices[0].id, id);
    assert_eq!(notices[0].body["state"], "COMPLETED");
    // The delivery is recorded right after Multiomix answers.
    common::read_job_until(&http, &base, &id, PATIENCE, |job| {
        job["notice"]["status"] == "delivered"
    })
    .await;
    second.kill().await.unwrap();
}
