//! Cases of the contract that the defaults hide: driver and executor sizes that differ,
//! a `MULTIOMIX_URL` with a path (the production default has one), a cancel that stays
//! CANCEL_PENDING for a while, a sidecar callback with no body, and a request body right
//! at the size limit, or with the most arguments the limits allow.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use multiomix_aws_emr::api::MAX_BODY_BYTES;
use multiomix_aws_emr::job::{
    MAX_ARGUMENTS, MAX_ARGUMENTS_BYTES, MAX_ARGUMENT_NAME_CHARS, MAX_VALUE_CHARS,
};
use multiomix_fakes::{FakeEmr, FakeMultiomix, JobState};
use serde_json::Value;

use crate::common;
use crate::common::PATIENCE;
use crate::common::{is_multiomix_date, multiomix_body, spawn_app, TestApp};

/// The `--conf key=value` pairs of a spark-submit parameter string, by key.
fn confs(parameters: &str) -> BTreeMap<String, String> {
    let words: Vec<&str> = parameters.split(' ').collect();
    words
        .windows(2)
        .filter(|pair| pair[0] == "--conf")
        .map(|pair| {
            let (key, value) = pair[1].split_once('=').expect("key=value");
            (key.to_owned(), value.to_owned())
        })
        .collect()
}

#[tokio::test]
async fn driver_and_executor_sizes_each_reach_their_own_spark_option() {
    // Every value different from the others and from the defaults (1 core, 4g each, 3
    // executors), so that any two settings swapped show.
    let app = common::spawn_app_with(&[
        ("EMR_DRIVER_CORES", "2"),
        ("EMR_DRIVER_MEMORY", "7g"),
        ("EMR_EXECUTOR_CORES", "3"),
        ("EMR_EXECUTOR_MEMORY", "5g"),
        ("EMR_EXECUTOR_INSTANCES", "6"),
        ("EMR_DRIVER_MAX_RESULT_SIZE", "9g"),
        ("EMR_EXECUTOR_HEARTBEAT_INTERVAL", "123s"),
        ("EMR_EXECUTOR_MEMORY_OVERHEAD", "3g"),
        ("EMR_EXECUTOR_PYSPARK_MEMORY", "1g"),
    ])
    .await;
    app.start_job().await;
    let requests = app.emr().start_requests();
    let parameters = requests[0]["jobDriver"]["sparkSubmitJobDriver"]["sparkSubmitParameters"]
        .as_str()
        .expect("sparkSubmitParameters")
        .to_owned();
    let confs = confs(&parameters);
    for (key, value) in [
        ("spark.driver.cores", "2"),
        ("spark.driver.memory", "7g"),
        ("spark.executor.cores", "3"),
        ("spark.executor.memory", "5g"),
        ("spark.executor.instances", "6"),
        ("spark.driver.maxResultSize", "9g"),
        ("spark.executor.heartbeatInterval", "123s"),
        ("spark.executor.memoryOverhead", "3g"),
        ("spark.executor.pyspark.memory", "1g"),
    ] {
        assert_eq!(
            confs.get(key).map(String::as_str),
            Some(value),
            "{key} in {parameters}"
        );
    }
}

#[tokio::test]
async fn a_multiomix_url_with_a_path_gets_the_notice_under_that_path() {
    // As in production: http://multiomix/feature-selection/aws-notification/
    let multiomix = Arc::new(
        FakeMultiomix::builder()
            .base_path("/feature-selection/aws-notification")
            .start()
            .await,
    );
    // The fake's URL includes its base path.
    let url = format!("{}/", multiomix.url());
    assert!(
        url.ends_with("/feature-selection/aws-notification/"),
        "{url}"
    );
    let app = TestApp::builder()
        .multiomix(multiomix.clone())
        .var("MULTIOMIX_URL", &url)
        .start()
        .await;
    let id = app.start_job().await;
    app.emr().set_state(&id, JobState::Completed, None, None);
    assert_eq!(app.patch_job(&id).await.status(), 204);
    let closed = app.wait_notice_closed(&id, PATIENCE).await;
    let notices = multiomix.notices();
    assert_eq!(
        closed,
        "delivered",
        "misrouted: {:?}",
        multiomix.misrouted()
    );
    assert_eq!(notices.len(), 1, "{notices:?}");
    assert_eq!(
        notices[0].path,
        format!("/feature-selection/aws-notification/{id}/")
    );
    assert_eq!(notices[0].status, 200);
    assert_eq!(multiomix.misrouted(), Vec::<String>::new());
}

#[tokio::test]
async fn a_cancel_pending_job_is_reported_only_once_emr_says_cancelled() {
    // EMR takes its time to cancel: the job stays CANCEL_PENDING until the test ends it.
    let emr = Arc::new(
        FakeEmr::builder()
            .cancel_takes(Duration::from_secs(3600))
            .start()
            .await,
    );
    let app = TestApp::builder().fake_emr(emr.clone()).start().await;
    let id = app.start_job().await;
    emr.set_state(&id, JobState::Running, None, None);
    let r = app.delete_job(&id).await;
    assert_eq!(r.status(), 200);
    assert_eq!(emr.job(&id).unwrap()["state"], "CANCEL_PENDING");
    assert_eq!(app.patch_job(&id).await.status(), 204);

    // CANCEL_PENDING is not final: the job is read again and again, nothing is sent.
    let seen = emr.calls("DescribeJobRun");
    emr.wait_for_calls("DescribeJobRun", seen + 3, PATIENCE)
        .await
        .expect("the job is polled");
    assert_eq!(app.multiomix.count(), 0, "no notice while CANCEL_PENDING");

    emr.set_state(
        &id,
        JobState::Cancelled,
        Some("cancelled by the user"),
        None,
    );
    let notices = app.multiomix.wait_for_notices(1, PATIENCE).await.unwrap();
    let body = &notices[0].body;
    assert_eq!(body["id"], id.as_str());
    assert_eq!(body["state"], "CANCELLED");
    assert!(is_multiomix_date(&body["createdAt"]), "{body}");
    assert!(is_multiomix_date(&body["finishedAt"]), "{body}");
    assert_eq!(app.wait_notice_closed(&id, PATIENCE).await, "delivered");
    assert_eq!(app.multiomix.count(), 1);
}

#[tokio::test]
async fn a_callback_without_a_body_opens_the_notice() {
    // The contract: the body is informational and may be missing.
    let app = spawn_app().await;
    let id = app.start_job().await;
    app.emr().set_state(&id, JobState::Completed, None, None);
    let r = app
        .http
        .patch(app.url(&format!("/job/{id}")))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 204);
    let notices = app.multiomix.wait_for_notices(1, PATIENCE).await.unwrap();
    assert_eq!(notices[0].body["state"], "COMPLETED");
    assert_eq!(app.wait_notice_closed(&id, PATIENCE).await, "delivered");
}

#[tokio::test]
async fn a_valid_body_of_exactly_the_limit_starts_a_job_and_one_byte_more_does_not() {
    let app = spawn_app().await;
    // Multiomix's request, padded with JSON whitespace to the limit.
    let mut body = serde_json::to_vec(&multiomix_body()).unwrap();
    assert!(body.len() < MAX_BODY_BYTES);
    body.resize(MAX_BODY_BYTES, b' ');
    let post = |body: Vec<u8>| {
        app.http
            .post(app.url("/job"))
            .header("content-type", "application/json")
            .body(body)
            .send()
    };
    let r = post(body.clone()).await.unwrap();
    assert_eq!(r.status(), 201, "{}", r.text().await.unwrap());
    assert_eq!(app.emr().calls("StartJobRun"), 1);

    body.push(b' ');
    let r = post(body).await.unwrap();
    assert_eq!(r.status(), 413);
    let error: Value = r.json().await.unwrap();
    assert_eq!(error["error"], "payload_too_large");
    assert_eq!(app.emr().calls("StartJobRun"), 1);
}

/// A request with [`MAX_ARGUMENTS`] arguments of the longest names, whose names and values
/// add up to `total` bytes (each value at least one character and at most
/// [`MAX_VALUE_CHARS`]; the app name at most 128), under a job name of 64 characters, written as Python's
/// `json.dumps` writes it (what Multiomix sends): a space after each `:` and `,`.
fn widest_request(total: usize) -> String {
    let names: Vec<String> = std::iter::once("app-name".to_owned())
        .chain((1..MAX_ARGUMENTS).map(|i| format!("{i:0>MAX_ARGUMENT_NAME_CHARS$}")))
        .collect();
    let mut left = total - names.iter().map(String::len).sum::<usize>() - names.len();
    let arguments: Vec<String> = names
        .iter()
        .map(|name| {
            // An app name is one folder name of at most 128 characters.
            let most = if name == "app-name" {
                128
            } else {
                MAX_VALUE_CHARS
            };
            let more = left.min(most - 1);
            left -= more;
            let value = "v".repeat(1 + more);
            format!(r#"{{"name": "{name}", "value": "{value}"}}"#)
        })
        .collect();
    assert_eq!(left, 0, "{total} bytes do not fit in the arguments");
    format!(
        r#"{{"name": "{}", "algorithm": 1, "entrypoint_arguments": [{}]}}"#,
        "n".repeat(64),
        arguments.join(", ")
    )
}

#[tokio::test]
async fn the_most_arguments_the_limits_allow_fit_in_the_body_and_more_is_a_400_naming_the_field() {
    let app = spawn_app().await;
    let post = |body: String| {
        app.http
            .post(app.url("/job"))
            .header("content-type", "application/json")
            .body(body)
            .send()
    };
    let widest = widest_request(MAX_ARGUMENTS_BYTES);
    assert!(
        widest.len() <= MAX_BODY_BYTES,
        "{} bytes, over the body limit",
        widest.len()
    );
    let r = post(widest).await.unwrap();
    assert_eq!(r.status(), 201, "{}", r.text().await.unwrap());
    let started = app.emr().start_requests();
    let arguments = started[0]["jobDriver"]["sparkSubmitJobDriver"]["entryPointArguments"]
        .as_array()
        .unwrap()
        .len();
    assert_eq!(arguments, 2 * MAX_ARGUMENTS);

    // One byte more: the body is still within its limit, and the refusal says which
    // field is too large rather than a 413.
    let over = widest_request(MAX_ARGUMENTS_BYTES + 1);
    assert!(over.len() <= MAX_BODY_BYTES, "{}", over.len());
    let r = post(over).await.unwrap();
    assert_eq!(r.status(), 400);
    let error: Value = r.json().await.unwrap();
    assert_eq!(error["field"], "entrypoint_arguments", "{error}");
    assert_eq!(app.emr().calls("StartJobRun"), 1);
}

#[test]
fn the_security_page_states_the_argument_limits_the_code_enforces() {
    let page = include_str!("../../docs/security.md");
    let limits = &page[page.find("## Limits").expect("a Limits section")..];
    let thousands = |n: usize| {
        let digits = n.to_string();
        let mut out = String::new();
        for (i, c) in digits.chars().enumerate() {
            if i > 0 && (digits.len() - i) % 3 == 0 {
                out.push(',');
            }
            out.push(c);
        }
        out
    };
    for (what, n) in [
        ("arguments", MAX_ARGUMENTS),
        ("argument name", MAX_ARGUMENT_NAME_CHARS),
        ("argument value", MAX_VALUE_CHARS),
        ("names and values together", MAX_ARGUMENTS_BYTES),
    ] {
        assert!(
            limits.contains(&format!("| {} ", thousands(n))),
            "the Limits table does not give {what} as {}",
            thousands(n)
        );
    }
}
