//! The HTTP API as the contract describes it, against a fake EMR that speaks the
//! emr-containers REST protocol.

use multiomix_fakes::{JobState, NewJob};
use serde_json::{json, Value};

use crate::common;
use crate::common::{is_multiomix_date, multiomix_body, spawn_app, spawn_app_with, TestApp};

#[tokio::test]
async fn the_index_page_names_the_service_and_its_version() {
    let app = spawn_app().await;
    let r = app.http.get(app.url("/")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    let text = r.text().await.unwrap();
    assert!(text.contains("multiomix-aws-emr"), "{text}");
    assert!(text.contains(env!("CARGO_PKG_VERSION")), "{text}");
}

#[tokio::test]
async fn multiomix_body_starts_one_emr_job_built_as_the_contract_says() {
    let app = spawn_app().await;
    let r = app.post_job(&multiomix_body()).await;
    assert_eq!(r.status(), 201);
    let location = r.headers()["location"].to_str().unwrap().to_owned();
    let body: Value = r.json().await.unwrap();
    let id = body["id"].as_str().unwrap();
    assert_eq!(location, format!("/job/{id}"));
    assert_eq!(body, json!({ "id": id }));

    let requests = app.emr().start_requests();
    assert_eq!(requests.len(), 1);
    let req = &requests[0];
    assert_eq!(req["name"], "BreastCancerBBHA");
    assert_eq!(
        req["executionRoleArn"],
        "arn:aws:iam::123456789012:role/emr-job"
    );
    assert_eq!(req["releaseLabel"], "emr-6.9.0-latest");
    let driver = &req["jobDriver"]["sparkSubmitJobDriver"];
    assert_eq!(
        driver["entryPoint"],
        "s3://multiomix-bucket/scripts/main.py"
    );
    assert_eq!(
        driver["entryPointArguments"],
        json!([
            "--app-name",
            "exp-42-app",
            "--molecules-dataset",
            "exp-42-app/molecules.csv",
            "--n-stars",
            "15",
            "--cv-folds",
            "10"
        ])
    );
    // The contract's list, unchanged, then the job's own progress token for its driver.
    let parameters = driver["sparkSubmitParameters"].as_str().unwrap();
    let (contract, token) = parameters
        .split_once(" --conf spark.kubernetes.driverEnv.PROGRESS_TOKEN=")
        .unwrap_or_else(|| panic!("no progress token: {parameters}"));
    assert_eq!(
        contract,
        "--py-files s3://multiomix-bucket/py-files/scripts.zip \
         --conf spark.executor.cores=1 --conf spark.executor.memory=4g \
         --conf spark.driver.cores=1 --conf spark.driver.maxResultSize=2g \
         --conf spark.driver.memory=4g --conf spark.executor.instances=3 \
         --conf spark.executor.heartbeatInterval=600s --conf spark.network.timeout=2400s \
         --conf spark.kubernetes.driverEnv.DATASETS_PATH=/var/data \
         --conf spark.kubernetes.driverEnv.RESULTS_PATH=/var/results \
         --conf spark.kubernetes.driverEnv.JOB_NAME=BreastCancerBBHA"
    );
    assert_eq!(token.len(), 64, "{parameters}");
    assert!(token.bytes().all(|b| b.is_ascii_hexdigit()), "{parameters}");
    let followed = app.store.progress_jobs(10).await.unwrap();
    assert_eq!(followed.len(), 1);
    assert_eq!(
        (followed[0].id.as_str(), followed[0].token.as_str()),
        (id, token),
        "the token the driver gets is the one kept with the job"
    );
    assert_eq!(
        req["configurationOverrides"]["monitoringConfiguration"]["s3MonitoringConfiguration"]
            ["logUri"],
        "s3://multiomix-bucket/joblogs"
    );
    assert_eq!(req["tags"]["managed-by"], "multiomix-aws-emr");
    assert_eq!(req["tags"]["callback-host"], "multiomix-aws-emr");
    assert!(req["clientToken"].as_str().is_some_and(|t| !t.is_empty()));
    // Recorded before the 201.
    assert!(app
        .store
        .job(&multiomix_aws_emr::job::JobId::parse(id).unwrap())
        .await
        .unwrap()
        .is_some());
}

#[tokio::test]
async fn each_algorithm_gets_its_own_entry_point_and_py_files() {
    let app = spawn_app_with(&[
        ("ALGO_BLIND_SEARCH_ENTRYPOINT", "blind.py"),
        ("ALGO_BLIND_SEARCH_PY_FILES", "blind.zip"),
        ("ALGO_BBHA_ENTRYPOINT", "bbha.py"),
        ("ALGO_BBHA_PY_FILES", "bbha.zip"),
        ("EMR_IMAGE", "123.dkr.ecr.us-east-1.amazonaws.com/spark:1"),
    ])
    .await;
    let mut body = multiomix_body();
    body["algorithm"] = json!(0);
    assert_eq!(app.post_job(&body).await.status(), 201);
    // Another experiment: one app name is open in one job at a time.
    let mut body = common::another_experiment();
    body["algorithm"] = json!(1);
    assert_eq!(app.post_job(&body).await.status(), 201);
    let reqs = app.emr().start_requests();
    let driver = |i: usize| reqs[i]["jobDriver"]["sparkSubmitJobDriver"].clone();
    assert_eq!(
        driver(0)["entryPoint"],
        "s3://multiomix-bucket/scripts/blind.py"
    );
    assert!(driver(0)["sparkSubmitParameters"]
        .as_str()
        .unwrap()
        .starts_with("--py-files s3://multiomix-bucket/py-files/blind.zip "));
    assert_eq!(
        driver(1)["entryPoint"],
        "s3://multiomix-bucket/scripts/bbha.py"
    );
    let params = driver(1)["sparkSubmitParameters"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(params.starts_with("--py-files s3://multiomix-bucket/py-files/bbha.zip "));
    assert!(params.contains(
        " --conf spark.kubernetes.container.image=123.dkr.ecr.us-east-1.amazonaws.com/spark:1 "
    ));
}

#[tokio::test]
async fn a_job_without_a_name_gets_a_generated_one() {
    let app = spawn_app().await;
    let mut body = multiomix_body();
    body.as_object_mut().unwrap().remove("name");
    assert_eq!(app.post_job(&body).await.status(), 201);
    let name = app.emr().start_requests()[0]["name"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(name.starts_with("multiomix-bbha-"), "{name}");
    assert_eq!(name.len(), "multiomix-bbha-abcdef-123456".len());
}

#[tokio::test]
async fn malformed_requests_get_a_json_400_and_start_nothing() {
    let app = spawn_app().await;
    let long_value = "x".repeat(10_281);
    let cases: Vec<(&str, Value)> = vec![
        (
            "name with a space",
            json!({"name": "a b", "entrypoint_arguments": [{"name": "app-name", "value": "a"}]}),
        ),
        (
            "option injection in the name",
            json!({"name": "x --conf spark.driver.extraJavaOptions=-Dx", "entrypoint_arguments": [{"name": "app-name", "value": "a"}]}),
        ),
        (
            "name too long",
            json!({"name": "n".repeat(65), "entrypoint_arguments": [{"name": "app-name", "value": "a"}]}),
        ),
        (
            "unknown algorithm",
            json!({"algorithm": 7, "entrypoint_arguments": [{"name": "app-name", "value": "a"}]}),
        ),
        (
            "no app-name",
            json!({"entrypoint_arguments": [{"name": "n-stars", "value": 1}]}),
        ),
        (
            "null value",
            json!({"entrypoint_arguments": [{"name": "app-name", "value": null}]}),
        ),
        (
            "object value",
            json!({"entrypoint_arguments": [{"name": "app-name", "value": {"a": 1}}]}),
        ),
        (
            "value too long",
            json!({"entrypoint_arguments": [{"name": "app-name", "value": long_value}]}),
        ),
        (
            "argument name with a dash first",
            json!({"entrypoint_arguments": [{"name": "app-name", "value": "a"}, {"name": "-x", "value": "1"}]}),
        ),
        ("not an object", json!(["app-name"])),
    ];
    for (what, body) in cases {
        let r = app.post_job(&body).await;
        assert_eq!(r.status(), 400, "{what}");
        assert_eq!(r.headers()["content-type"], "application/json", "{what}");
        let err: Value = r.json().await.unwrap();
        assert_eq!(err["error"], "invalid_request", "{what}: {err}");
        assert!(
            err["message"].as_str().is_some_and(|m| !m.is_empty()),
            "{what}"
        );
    }
    // Bodies that are not JSON at all.
    for (content_type, body, status) in [
        ("application/json", "{not json", 400),
        ("application/json", "", 400),
        ("text/plain", "{}", 415),
    ] {
        let r = app
            .http
            .post(app.url("/job"))
            .header("content-type", content_type)
            .body(body)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), status, "{content_type} {body:?}");
        let err: Value = r.json().await.unwrap();
        assert!(err["error"].is_string());
    }
    assert_eq!(app.emr().calls("StartJobRun"), 0);
}

#[tokio::test]
async fn a_job_reads_back_in_the_contract_shape_with_multiomix_dates() {
    let app = spawn_app().await;
    let id = app.start_job().await;
    let r = app.get_job(&id).await;
    assert_eq!(r.status(), 200);
    let job: Value = r.json().await.unwrap();
    assert_eq!(job["id"], id.as_str());
    assert_eq!(job["name"], "BreastCancerBBHA");
    assert!(is_multiomix_date(&job["createdAt"]), "{}", job["createdAt"]);
    assert_eq!(job["finishedAt"], Value::Null);
    assert_eq!(job["stateDetails"], Value::Null);
    assert!(job.as_object().unwrap().contains_key("stateDetails"));
    assert_eq!(
        job["logUri"],
        format!(
            "s3://multiomix-bucket/joblogs/{}/jobs/{id}/",
            app.emr().virtual_cluster_id()
        )
    );

    app.emr().set_state(
        &id,
        JobState::Failed,
        Some("OOM in driver"),
        Some("USER_ERROR"),
    );
    let job: Value = app.get_json(&format!("/job/{id}")).await;
    assert_eq!(job["state"], "FAILED");
    assert!(
        is_multiomix_date(&job["finishedAt"]),
        "{}",
        job["finishedAt"]
    );
    assert_eq!(job["stateDetails"], "OOM in driver");
    assert_eq!(job["failureReason"], "USER_ERROR");
}

#[tokio::test]
async fn unknown_and_malformed_job_ids_are_refused() {
    let app = spawn_app().await;
    let r = app.get_job("000000031kd8aj0vtn3").await;
    assert_eq!(r.status(), 404);
    let err: Value = r.json().await.unwrap();
    assert_eq!(err["error"], "not_found");
    assert_eq!(
        app.http
            .delete(app.url("/job/000000031kd8aj0vtn3"))
            .send()
            .await
            .unwrap()
            .status(),
        404
    );
    for bad in ["ABC", "a.b", "x%20y", "a%2Fb", "a%00b", &"a".repeat(65)] {
        let r = app.get_job(bad).await;
        assert_eq!(r.status(), 400, "{bad}");
        let r = app.patch_job(bad).await;
        assert_eq!(r.status(), 400, "{bad}");
    }
    // One read for the GET and one for the DELETE of the unknown id; none for the
    // malformed ones, which never reach EMR.
    assert_eq!(app.emr().calls("DescribeJobRun"), 2);
}

#[tokio::test]
async fn cancelling_a_running_job_answers_200_with_its_id() {
    let app = spawn_app().await;
    let id = app.start_job().await;
    app.emr().set_state(&id, JobState::Running, None, None);
    let r = app.delete_job(&id).await;
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["location"], format!("/job/{id}").as_str());
    let body: Value = r.json().await.unwrap();
    assert_eq!(body, json!({ "id": id }));
    assert_eq!(app.emr().calls("CancelJobRun"), 1);
    let state = app.emr().job(&id).unwrap()["state"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(state == "CANCELLED" || state == "CANCEL_PENDING", "{state}");
}

#[tokio::test]
async fn cancelling_a_finished_job_is_a_conflict() {
    let app = spawn_app().await;
    let id = app.start_job().await;
    app.emr().set_state(&id, JobState::Completed, None, None);
    let r = app.delete_job(&id).await;
    assert_eq!(r.status(), 409);
    let err: Value = r.json().await.unwrap();
    assert_eq!(err["error"], "conflict");
    assert!(err["message"].as_str().unwrap().contains("COMPLETED"));
}

#[tokio::test]
async fn emr_refusing_a_start_is_a_502_with_emrs_message() {
    let logs = CapturedLogs::start();
    let app = spawn_app().await;
    app.emr().fail_next(
        "StartJobRun",
        400,
        "ValidationException",
        "release label not found",
    );
    let r = app.post_job(&multiomix_body()).await;
    assert_eq!(r.status(), 502);
    let err: Value = r.json().await.unwrap();
    assert!(
        err["message"]
            .as_str()
            .unwrap()
            .contains("release label not found"),
        "{err}"
    );
    // One line says it, with what the answer leaves out: the SDK's error and its code.
    let logged = logs.text();
    let lines: Vec<&str> = logged
        .lines()
        .filter(|l| l.contains("release label not found"))
        .collect();
    assert_eq!(lines.len(), 1, "{logged}");
    assert!(
        lines[0].contains("WARN") && lines[0].contains("answering 502"),
        "{logged}"
    );
    assert!(lines[0].contains("ValidationException"), "{logged}");
}

#[tokio::test]
async fn emr_failing_after_the_sdks_retries_is_a_503_with_retry_after() {
    let app = spawn_app().await;
    app.emr()
        .fail_times("DescribeJobRun", 10, 500, "InternalServerException", "boom");
    let r = app.get_job("000000031kd8aj0vtn3").await;
    assert_eq!(r.status(), 503);
    assert!(r.headers().contains_key("retry-after"));
    let err: Value = r.json().await.unwrap();
    assert_eq!(err["error"], "unavailable");
    assert!(
        app.emr().calls("DescribeJobRun") >= 2,
        "the SDK retries before giving up"
    );
}

#[tokio::test]
async fn a_throttled_emr_is_a_503() {
    let app = spawn_app().await;
    app.emr().fail_times(
        "DescribeJobRun",
        10,
        400,
        "ThrottlingException",
        "Rate exceeded",
    );
    let r = app.get_job("000000031kd8aj0vtn3").await;
    assert_eq!(r.status(), 503);
}

#[tokio::test]
async fn an_unreachable_emr_is_unavailable_not_an_internal_error() {
    use multiomix_aws_emr::backend::{emr::eks::EmrEksBackend, BackendError, JobBackend};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let closed = listener.local_addr().unwrap();
    drop(listener);
    let config = multiomix_aws_emr::config::Config::from_vars(vec![
        ("EMR_VIRTUAL_CLUSTER_ID".to_string(), "vc".to_string()),
        (
            "EMR_EXECUTION_ROLE_ARN".to_string(),
            "arn:aws:iam::1:role/r".to_string(),
        ),
        ("EMR_S3_BUCKET".to_string(), "b".to_string()),
    ])
    .unwrap();
    let backend = EmrEksBackend::with_client(
        common::emr_client(&format!("http://{closed}")),
        config.backend.emr_eks().cloned().unwrap(),
        config.spark,
        config.job,
    );
    let id = multiomix_aws_emr::job::JobId::parse("000000031kd8aj0vtn3").unwrap();
    match backend.describe(&id).await {
        Err(e @ BackendError::Unavailable(_)) => {
            assert!(e.to_string().contains("DescribeJobRun"), "{e}");
            // The SDK's error is kept as the cause, for the log: not only its words.
            let cause = std::error::Error::source(&e).expect("a cause");
            let sdk = std::error::Error::source(cause).expect("the SDK's error under it");
            assert!(sdk.to_string().contains("dispatch failure"), "{sdk}");
            let chain = multiomix_aws_emr::backend::error_chain(&e);
            assert!(chain.contains("DescribeJobRun"), "{chain}");
        }
        other => panic!("expected Unavailable, got {other:?}"),
    }
}

#[tokio::test]
async fn the_job_list_shows_only_this_services_jobs_filtered_by_state() {
    let app = spawn_app().await;
    let a = app.start_job().await;
    let b = app.start_job().await;
    app.emr().set_state(&b, JobState::Completed, None, None);
    app.emr().insert_job(NewJob {
        name: Some("someone-elses".into()),
        state: JobState::Running,
        ..NewJob::default()
    });
    let all: Value = app.get_json("/jobs").await;
    let ids: Vec<&str> = all["jobs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|j| j["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids.len(), 2, "{all}");
    assert!(ids.contains(&a.as_str()) && ids.contains(&b.as_str()));
    for job in all["jobs"].as_array().unwrap() {
        assert!(is_multiomix_date(&job["createdAt"]));
    }

    let done: Value = app.get_json("/jobs?state=COMPLETED").await;
    let jobs = done["jobs"].as_array().unwrap();
    assert_eq!(jobs.len(), 1);
    assert_eq!(jobs[0]["id"], b.as_str());
    assert_eq!(jobs[0]["state"], "COMPLETED");

    let r = app
        .http
        .get(app.url("/jobs?state=DONE"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    let r = app
        .http
        .get(app.url("/jobs?page_size=0"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
}

#[tokio::test]
async fn the_job_list_pages_with_a_continuation_token() {
    let app = spawn_app().await;
    for _ in 0..3 {
        app.start_job().await;
    }
    let first: Value = app.get_json("/jobs?page_size=2").await;
    assert_eq!(first["jobs"].as_array().unwrap().len(), 2);
    let token = first["nextToken"]
        .as_str()
        .expect("a next token")
        .to_owned();
    let url = format!("/jobs?page_size=2&next_token={}", urlencode(&token));
    let second: Value = app.get_json(&url).await;
    assert_eq!(second["jobs"].as_array().unwrap().len(), 1);
    assert!(second.get("nextToken").is_none());
}

fn urlencode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

#[tokio::test]
async fn health_ready_and_metrics_answer() {
    let app = spawn_app().await;
    let r = app.http.get(app.url("/health")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    let r = app.http.get(app.url("/ready")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["backend"], "emr");

    app.start_job().await;
    let text = app
        .http
        .get(app.url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(text.contains("http_requests_total"), "{text}");
    assert!(text.contains(r#"route="/job""#), "{text}");
    assert!(text.contains("jobs_started_total"), "{text}");
    assert!(
        text.contains("http_request_duration_seconds_bucket"),
        "{text}"
    );
}

#[tokio::test]
async fn ready_is_503_when_the_virtual_cluster_is_unknown() {
    let app = spawn_app_with(&[("EMR_VIRTUAL_CLUSTER_ID", "doesnotexist0000000000000")]).await;
    let r = app.http.get(app.url("/ready")).send().await.unwrap();
    assert_eq!(r.status(), 503);
    let body: Value = r.json().await.unwrap();
    assert!(
        body["problems"][0].as_str().unwrap().contains("emr"),
        "{body}"
    );
    // Liveness does not depend on EMR.
    assert_eq!(
        app.http
            .get(app.url("/health"))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
}

#[tokio::test]
async fn unknown_routes_and_methods_answer_json() {
    let app = spawn_app().await;
    let r = app.http.get(app.url("/nope")).send().await.unwrap();
    assert_eq!(r.status(), 404);
    assert_eq!(r.headers()["content-type"], "application/json");
    let r = app.http.put(app.url("/job")).send().await.unwrap();
    assert_eq!(r.status(), 405);
    assert_eq!(r.headers()["content-type"], "application/json");
}

#[tokio::test]
async fn a_huge_body_is_refused_with_413() {
    let app = spawn_app().await;
    let body = format!("{{\"name\": \"{}\"}}", "x".repeat(300 * 1024));
    let r = app
        .http
        .post(app.url("/job"))
        .header("content-type", "application/json")
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 413);
    let err: Value = r.json().await.unwrap();
    assert_eq!(err["error"], "payload_too_large");
}

#[tokio::test]
async fn every_response_carries_a_request_id() {
    let app = spawn_app().await;
    let r = app.http.get(app.url("/health")).send().await.unwrap();
    assert!(r.headers().contains_key("x-request-id"));
    let r = app
        .http
        .get(app.url("/health"))
        .header("x-request-id", "abc-123")
        .send()
        .await
        .unwrap();
    assert_eq!(r.headers()["x-request-id"], "abc-123");
}

/// A job in the same virtual cluster that another deployment (or someone by hand) started.
fn foreign_job(app: &common::TestApp, tags: &[(&str, &str)]) -> String {
    app.emr().insert_job(NewJob {
        name: Some("someone-elses".into()),
        state: JobState::Running,
        tags: tags
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
        ..NewJob::default()
    })
}

#[tokio::test]
async fn jobs_this_deployment_did_not_start_can_be_neither_read_nor_cancelled() {
    let app = spawn_app().await;
    let untagged = foreign_job(&app, &[]);
    let other_deployment = foreign_job(
        &app,
        &[
            ("managed-by", "multiomix-aws-emr"),
            ("callback-host", "staging"),
        ],
    );
    for id in [&untagged, &other_deployment] {
        let r = app.get_job(id).await;
        assert_eq!(r.status(), 404, "GET {id}");
        let r = app.delete_job(id).await;
        assert_eq!(r.status(), 404, "DELETE {id}");
        assert_eq!(
            app.emr().job(id).unwrap()["state"],
            "RUNNING",
            "{id} still runs"
        );
    }
    assert_eq!(app.emr().calls("CancelJobRun"), 0);

    // A job tagged as this deployment's is readable even when the store lost it.
    let tagged = foreign_job(
        &app,
        &[
            ("managed-by", "multiomix-aws-emr"),
            ("callback-host", "multiomix-aws-emr"),
        ],
    );
    assert_eq!(app.get_job(&tagged).await.status(), 200);
    // And one this service started is, of course.
    let own = app.start_job().await;
    assert_eq!(app.get_job(&own).await.status(), 200);
    assert_eq!(app.delete_job(&own).await.status(), 200);
}

#[tokio::test]
async fn a_callback_for_a_job_this_service_did_not_start_costs_no_row_and_no_emr_call() {
    let app = spawn_app().await;
    let foreign = foreign_job(&app, &[]);
    for id in [foreign.as_str(), "000000031kd8aj0vtn3", "0000000unknownjob"] {
        let r = app.patch_job(id).await;
        assert_eq!(r.status(), 404, "PATCH {id}");
        assert!(
            app.store
                .notice(&multiomix_aws_emr::job::JobId::parse(id).unwrap())
                .await
                .unwrap()
                .is_none(),
            "{id}"
        );
    }
    assert_eq!(app.emr().calls("DescribeJobRun"), 0);
    assert_eq!(app.store.open_notice_count().await.unwrap(), 0);
    // The service's own job still gets its notice.
    let own = app.start_job().await;
    assert_eq!(app.patch_job(&own).await.status(), 204);
    assert!(app
        .store
        .notice(&multiomix_aws_emr::job::JobId::parse(&own).unwrap())
        .await
        .unwrap()
        .is_some());
}

#[tokio::test]
async fn ready_answers_within_the_probe_timeout_while_emr_hangs() {
    let app = spawn_app().await;
    app.emr()
        .set_delay("DescribeVirtualCluster", std::time::Duration::from_secs(20));
    // Two probes at once: neither waits for the other, and neither waits for EMR.
    let probe = || async {
        let started = std::time::Instant::now();
        let r = app.http.get(app.url("/ready")).send().await.unwrap();
        (
            r.status(),
            r.json::<Value>().await.unwrap(),
            started.elapsed(),
        )
    };
    let ((s1, b1, t1), (s2, b2, t2)) = tokio::join!(probe(), probe());
    for (status, body, took) in [(s1, b1, t1), (s2, b2, t2)] {
        assert_eq!(status, 503, "{body}");
        assert!(
            took < std::time::Duration::from_millis(2_900),
            "the probe times out after 3 s; /ready took {took:?}"
        );
        assert!(
            body["problems"][0].as_str().unwrap().contains("emr"),
            "{body}"
        );
    }
}

/// A backend that knows no jobs and, when told to, panics when asked to list: the
/// reconciler asks on its first round.
struct Stub {
    panics_on_list: bool,
}

#[async_trait::async_trait]
impl multiomix_aws_emr::backend::JobBackend for Stub {
    fn kind(&self) -> multiomix_aws_emr::job::BackendKind {
        multiomix_aws_emr::job::BackendKind::Local
    }
    async fn start(
        &self,
        _: &multiomix_aws_emr::job::JobSpec,
        _: &str,
    ) -> Result<multiomix_aws_emr::job::JobId, multiomix_aws_emr::backend::BackendError> {
        Err(multiomix_aws_emr::backend::BackendError::Rejected(
            "no".into(),
        ))
    }
    async fn describe(
        &self,
        _: &multiomix_aws_emr::job::JobId,
    ) -> Result<multiomix_aws_emr::job::JobRun, multiomix_aws_emr::backend::BackendError> {
        Err(multiomix_aws_emr::backend::BackendError::NotFound)
    }
    async fn cancel(
        &self,
        _: &multiomix_aws_emr::job::JobId,
    ) -> Result<(), multiomix_aws_emr::backend::BackendError> {
        Err(multiomix_aws_emr::backend::BackendError::NotFound)
    }
    async fn list(
        &self,
        _: &multiomix_aws_emr::backend::ListQuery,
    ) -> Result<multiomix_aws_emr::backend::JobPage, multiomix_aws_emr::backend::BackendError> {
        if self.panics_on_list {
            panic!("a bug in the backend")
        }
        Ok(Default::default())
    }
    async fn check(&self) -> Result<(), multiomix_aws_emr::backend::BackendError> {
        Ok(())
    }
}

/// The app in front of `stub`, serving; `ended` as the local backend's channel of ended
/// jobs, when the test holds its sender.
async fn stub_app(
    stub: Stub,
    ended: Option<tokio::sync::mpsc::UnboundedReceiver<multiomix_aws_emr::job::JobId>>,
) -> TestApp {
    TestApp::builder()
        .var("JOB_BACKEND", "local")
        .backend(move |_| async move {
            let backend: std::sync::Arc<dyn multiomix_aws_emr::backend::JobBackend> =
                std::sync::Arc::new(stub);
            (backend, ended)
        })
        .start()
        .await
}

/// Reads `/ready` until it answers `status`, and returns its body.
async fn ready_until(app: &TestApp, status: u16) -> Value {
    common::wait_for(
        &format!("/ready to answer {status}"),
        common::PATIENCE,
        || async {
            match app.get("/ready").await {
                (answer, body) if answer == status => Ok(body),
                seen => Err(seen),
            }
        },
    )
    .await
}

#[tokio::test]
async fn a_dead_reconciler_makes_ready_fail_and_says_why() {
    let app = stub_app(
        Stub {
            panics_on_list: true,
        },
        None,
    )
    .await;
    let body = ready_until(&app, 503).await;
    let problems = body["problems"].to_string();
    assert!(problems.contains("reconciler stopped"), "{body}");
    // Why (the panic's message) is in the log; with no API_TOKEN, no caller reads it.
    assert!(!problems.contains("a bug in the backend"), "{body}");
    // Liveness is not readiness: the process still serves.
    assert_eq!(app.get("/health").await.0, 200);
    app.stop().await;
}

/// Log lines written while it is alive, on this thread (the runtime of a
/// `#[tokio::test]` runs every task on the test's thread).
struct CapturedLogs {
    lines: std::sync::Arc<std::sync::Mutex<Vec<u8>>>,
    _guard: tracing::subscriber::DefaultGuard,
}

struct LogSink(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);

impl std::io::Write for LogSink {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl CapturedLogs {
    fn start() -> Self {
        let lines = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let sink = lines.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_ansi(false)
            .with_writer(move || LogSink(sink.clone()))
            .finish();
        CapturedLogs {
            lines,
            _guard: tracing::subscriber::set_default(subscriber),
        }
    }

    fn text(&self) -> String {
        String::from_utf8_lossy(&self.lines.lock().unwrap()).into_owned()
    }
}

#[tokio::test]
async fn a_dead_ended_jobs_forwarder_makes_ready_fail_and_is_logged_and_counted() {
    let logs = CapturedLogs::start();
    // What the local backend does with its channel; the test holds the sender instead.
    let (ended_tx, ended_rx) = tokio::sync::mpsc::unbounded_channel();
    let stub = Stub {
        panics_on_list: false,
    };
    let app = stub_app(stub, Some(ended_rx)).await;
    ready_until(&app, 200).await;

    // Every sender gone while the service runs: no ended job would reach the outbox again.
    drop(ended_tx);
    let body = ready_until(&app, 503).await;
    let problems = body["problems"].to_string();
    assert!(problems.contains("ended-jobs forwarder stopped"), "{body}");
    assert!(
        logs.text().contains("it returned"),
        "the log says why: {}",
        logs.text()
    );
    let metrics = app
        .http
        .get(app.url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics
            .lines()
            .any(|l| l == r#"background_tasks_stopped_total{task="ended-jobs forwarder"} 1"#),
        "{metrics}"
    );
    let logged = logs.text();
    let line = logged
        .lines()
        .find(|l| l.contains("a background task stopped while the service runs"))
        .unwrap_or_else(|| panic!("no error line in the log:\n{logged}"));
    assert!(line.contains("ERROR"), "{line}");
    assert!(line.contains("ended-jobs forwarder"), "{line}");
    app.stop().await;
}
