//! The fake binaries as a benchmark runs them: start, read the address, use, SIGTERM.

use std::io::{BufRead, BufReader, Read};
use std::process::{Child, Command, Stdio};

struct Running {
    child: Child,
    stdout: BufReader<std::process::ChildStdout>,
    url: String,
}

fn spawn(program: &str, args: &[&str]) -> Running {
    let mut child = Command::new(program)
        .args(args)
        .stdout(Stdio::piped())
        .spawn()
        .expect("spawn");
    let mut stdout = BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    stdout.read_line(&mut line).unwrap();
    let url = line
        .trim_end()
        .strip_prefix("listening on ")
        .unwrap_or_else(|| panic!("unexpected first line {line:?}"))
        .to_owned();
    assert!(url.starts_with("http://127.0.0.1:"), "{url}");
    Running { child, stdout, url }
}

impl Running {
    /// SIGTERM, then everything the process printed after its first line.
    fn terminate(mut self) -> String {
        let status = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
        assert!(self.child.wait().unwrap().success());
        let mut rest = String::new();
        self.stdout.read_to_string(&mut rest).unwrap();
        rest
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[tokio::test]
async fn fake_emr_serves_the_given_cluster_and_completes_jobs() {
    let emr = spawn(
        env!("CARGO_BIN_EXE_fake-emr"),
        &[
            "--port",
            "0",
            "--virtual-cluster-id",
            "benchvc",
            "--complete-after-ms",
            "0",
        ],
    );
    let http = reqwest::Client::new();
    let started: serde_json::Value = http
        .post(format!("{}/virtualclusters/benchvc/jobruns", emr.url))
        .json(&serde_json::json!({
            "clientToken": "t-1", "name": "bench",
            "executionRoleArn": "arn:aws:iam::123456789012:role/emr-job",
            "releaseLabel": "emr-6.9.0-latest",
            "jobDriver": {"sparkSubmitJobDriver": {"entryPoint": "s3://b/scripts/main.py"}}}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let id = started["id"].as_str().unwrap();
    let described: serde_json::Value = http
        .get(format!("{}/virtualclusters/benchvc/jobruns/{id}", emr.url))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(described["jobRun"]["state"], "COMPLETED");
    let calls: serde_json::Value = http
        .get(format!("{}/_calls", emr.url))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(calls["StartJobRun"], 1);
    assert_eq!(calls["DescribeJobRun"], 1);

    let rest = emr.terminate();
    assert!(rest.contains(r#""StartJobRun":1"#), "{rest}");
}

#[tokio::test]
async fn fake_multiomix_counts_notices_and_reports_them_on_sigterm() {
    let multiomix = spawn(
        env!("CARGO_BIN_EXE_fake-multiomix"),
        &["--base-path", "/feature-selection/aws-notification/"],
    );
    let http = reqwest::Client::new();
    for id in ["a", "b", "c"] {
        let response = http
            .post(format!(
                "{}/feature-selection/aws-notification/{id}/",
                multiomix.url
            ))
            .json(&serde_json::json!({"id": id, "state": "COMPLETED"}))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
    }
    let count = http
        .get(format!("{}/_count", multiomix.url))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert_eq!(count, "3");
    let rest = multiomix.terminate();
    assert!(rest.lines().any(|line| line == "notices 3"), "{rest}");
}
