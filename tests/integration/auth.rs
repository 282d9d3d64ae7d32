//! Bearer tokens on every route: `API_TOKEN` guards the job routes, `CALLBACK_TOKEN` the
//! sidecar's callback, neither opens the other's routes, and the operator routes stay open.

use std::process::Stdio;

use multiomix_aws_emr::job::JobId;
use multiomix_fakes::{FakeEmr, JobState, NewJob};
use reqwest::Method;
use serde_json::Value;

use crate::common::{multiomix_body, spawn_app, spawn_app_with, TestApp};

const API: &str = "api-token-0123456789abcdef";
const CALLBACK: &str = "callback-token-fedcba9876543210";

async fn spawn_with_tokens() -> TestApp {
    spawn_app_with(&[("API_TOKEN", API), ("CALLBACK_TOKEN", CALLBACK)]).await
}

/// Every way of presenting the wrong credentials for a route whose token is `right`.
fn refused_headers(right: &str, other: &str) -> Vec<(&'static str, Option<String>)> {
    vec![
        ("no header", None),
        ("empty header", Some(String::new())),
        ("scheme only", Some("Bearer".into())),
        ("empty token", Some("Bearer ".into())),
        ("basic scheme", Some(format!("Basic {right}"))),
        ("token scheme", Some(format!("Token {right}"))),
        ("bare token", Some(right.to_string())),
        ("wrong token", Some("Bearer not-the-token".into())),
        (
            "token prefix",
            Some(format!("Bearer {}", &right[..right.len() - 1])),
        ),
        ("token with extra", Some(format!("Bearer {right}x"))),
        ("token twice", Some(format!("Bearer {right} {right}"))),
        (
            "upper-cased token",
            Some(format!("Bearer {}", right.to_uppercase())),
        ),
        ("the other route's token", Some(format!("Bearer {other}"))),
    ]
}

async fn send(
    app: &TestApp,
    method: Method,
    path: &str,
    authorization: Option<&str>,
) -> reqwest::Response {
    let mut request = app.http.request(method.clone(), app.url(path));
    if let Some(value) = authorization {
        request = request.header("authorization", value);
    }
    if method == Method::POST {
        request = request.json(&multiomix_body());
    } else if method == Method::PATCH {
        request = request
            .header("content-type", "application/json")
            .body(r#"{"state":"Terminated"}"#);
    }
    request.send().await.expect("request")
}

async fn assert_unauthorized(r: reqwest::Response, what: &str) {
    assert_eq!(r.status(), 401, "{what}");
    assert_eq!(r.headers()["content-type"], "application/json", "{what}");
    assert_eq!(r.headers()["www-authenticate"], "Bearer", "{what}");
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["error"], "unauthorized", "{what}: {body}");
    let message = body["message"].as_str().unwrap();
    assert!(!message.contains(API) && !message.contains(CALLBACK));
}

/// Starts a job with the API token and returns its id.
async fn start_with_token(app: &TestApp) -> String {
    let r = send(app, Method::POST, "/job", Some(&format!("Bearer {API}"))).await;
    assert_eq!(r.status(), 201);
    let body: Value = r.json().await.unwrap();
    body["id"].as_str().unwrap().to_owned()
}

#[tokio::test]
async fn every_job_route_refuses_anything_but_the_api_token() {
    let app = spawn_with_tokens().await;
    // A job EMR knows and the store holds as already settled, so that no background work
    // of the service reads it: every EMR call below comes from a request.
    let id = app.emr().insert_job(NewJob {
        state: JobState::Running,
        ..NewJob::default()
    });
    // One statement, so that the reconciler never sees it unfinished.
    sqlx::query(
        "INSERT INTO jobs (id, name, algorithm, backend, created_at, adopted, final_state)
         VALUES (?, 'settled', 1, 'emr', 0, 0, 'COMPLETED')",
    )
    .bind(&id)
    .execute(&app.database().await)
    .await
    .unwrap();
    let job = format!("/job/{id}");
    let routes = [
        (Method::POST, "/job"),
        (Method::GET, "/jobs"),
        (Method::GET, job.as_str()),
        (Method::DELETE, job.as_str()),
    ];
    for (method, path) in &routes {
        for (what, header) in refused_headers(API, CALLBACK) {
            let r = send(&app, method.clone(), path, header.as_deref()).await;
            assert_unauthorized(r, &format!("{method} {path}: {what}")).await;
        }
    }
    // Nothing refused reached EMR.
    for op in ["StartJobRun", "DescribeJobRun", "CancelJobRun"] {
        assert_eq!(app.emr().calls(op), 0, "{op}");
    }

    // The API token opens each of them; the scheme name is case-insensitive.
    let token = format!("Bearer {API}");
    let lower = format!("bearer {API}");
    let expected = [201, 200, 200, 200];
    for ((method, path), status) in routes.iter().zip(expected) {
        let r = send(&app, method.clone(), path, Some(&token)).await;
        assert_eq!(r.status(), status, "{method} {path}");
    }
    let r = send(&app, Method::GET, &job, Some(&lower)).await;
    assert_eq!(r.status(), 200);
    assert_eq!(app.emr().calls("StartJobRun"), 1);
    assert_eq!(app.emr().calls("CancelJobRun"), 1);
}

#[tokio::test]
async fn the_callback_refuses_anything_but_the_callback_token() {
    let app = spawn_with_tokens().await;
    let id = start_with_token(&app).await;
    let job = format!("/job/{id}");
    let job_id = JobId::parse(&id).unwrap();
    for (what, header) in refused_headers(CALLBACK, API) {
        let r = send(&app, Method::PATCH, &job, header.as_deref()).await;
        assert_unauthorized(r, &format!("PATCH: {what}")).await;
    }
    assert!(
        app.store
            .notice(&multiomix_aws_emr::job::JobId::parse(job_id.as_str()).unwrap())
            .await
            .unwrap()
            .is_none(),
        "a refused callback opens no notice"
    );

    let r = send(
        &app,
        Method::PATCH,
        &job,
        Some(&format!("Bearer {CALLBACK}")),
    )
    .await;
    assert_eq!(r.status(), 204);
    assert!(app
        .store
        .notice(&multiomix_aws_emr::job::JobId::parse(job_id.as_str()).unwrap())
        .await
        .unwrap()
        .is_some());
}

#[tokio::test]
async fn tokens_are_checked_before_the_request_is() {
    let app = spawn_with_tokens().await;
    // Malformed bodies and ids still get 401, not 400: nothing about the request is
    // looked at before the caller is known.
    let r = app
        .http
        .post(app.url("/job"))
        .header("content-type", "application/json")
        .body("{not json")
        .send()
        .await
        .unwrap();
    assert_unauthorized(r, "POST /job with a broken body").await;
    for method in [Method::GET, Method::DELETE, Method::PATCH] {
        let r = send(&app, method.clone(), "/job/NOT-AN-ID", None).await;
        assert_unauthorized(r, &format!("{method} with a malformed id")).await;
    }
    let r = send(&app, Method::GET, "/jobs?page_size=0", None).await;
    assert_unauthorized(r, "GET /jobs with a bad query").await;
    let r = app
        .http
        .post(app.url("/job"))
        .header("content-type", "application/json")
        .body(vec![b' '; 400 * 1024])
        .send()
        .await
        .unwrap();
    assert_unauthorized(r, "POST /job with a huge body").await;
}

#[tokio::test]
async fn operator_routes_stay_open_when_tokens_are_set() {
    let app = spawn_with_tokens().await;
    for path in ["/", "/health", "/ready", "/metrics", "/openapi.json"] {
        let r = app.http.get(app.url(path)).send().await.unwrap();
        assert_eq!(r.status(), 200, "{path}");
        // A wrong token on an open route does not close it either.
        let r = app
            .http
            .get(app.url(path))
            .header("authorization", "Bearer wrong")
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200, "{path} with a wrong token");
    }
}

#[tokio::test]
async fn without_tokens_every_route_works_without_a_header() {
    let app = spawn_app().await;
    let r = app.post_job(&multiomix_body()).await;
    assert_eq!(r.status(), 201);
    let id = r.json::<Value>().await.unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let job = format!("/job/{id}");
    for (method, path, status) in [
        (Method::GET, "/jobs", 200),
        (Method::GET, job.as_str(), 200),
        (Method::PATCH, job.as_str(), 204),
        (Method::DELETE, job.as_str(), 200),
        (Method::GET, "/", 200),
        (Method::GET, "/health", 200),
        (Method::GET, "/ready", 200),
        (Method::GET, "/metrics", 200),
        (Method::GET, "/openapi.json", 200),
    ] {
        let r = send(&app, method.clone(), path, None).await;
        assert_eq!(r.status(), status, "{method} {path}");
    }
    // A header that would be wrong if a token were set changes nothing.
    let r = send(&app, Method::GET, &job, Some("Bearer anything")).await;
    assert_eq!(r.status(), 200);
}

#[tokio::test]
async fn only_one_token_set_guards_only_its_own_routes() {
    let app = spawn_app_with(&[("API_TOKEN", API)]).await;
    let id = start_with_token(&app).await;
    let job = format!("/job/{id}");
    assert_unauthorized(send(&app, Method::GET, &job, None).await, "GET").await;
    assert_eq!(send(&app, Method::PATCH, &job, None).await.status(), 204);
    drop(app);

    let app = spawn_app_with(&[("CALLBACK_TOKEN", CALLBACK)]).await;
    let id = app.start_job().await;
    let job = format!("/job/{id}");
    assert_eq!(send(&app, Method::GET, &job, None).await.status(), 200);
    assert_unauthorized(send(&app, Method::PATCH, &job, None).await, "PATCH").await;
}

/// Runs the real binary until it is healthy and returns what it logged.
async fn start_up_log(tokens: &[(&str, &str)]) -> String {
    use tokio::io::AsyncReadExt;
    let emr = FakeEmr::start().await;
    let dir = tempfile::tempdir().unwrap();
    let port = crate::common::free_port();
    let mut command = tokio::process::Command::new(env!("CARGO_BIN_EXE_multiomix-aws-emr"));
    command
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("EMR_VIRTUAL_CLUSTER_ID", emr.virtual_cluster_id())
        .env("EMR_EXECUTION_ROLE_ARN", "arn:aws:iam::1:role/r")
        .env("EMR_S3_BUCKET", "bucket")
        .env("AWS_ENDPOINT_URL", emr.url())
        .env("AWS_ACCESS_KEY_ID", "AKIDTEST")
        .env("AWS_SECRET_ACCESS_KEY", "test-secret")
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .env(
            "DATABASE_URL",
            format!("sqlite:{}/store.db", dir.path().display()),
        )
        .env("HOST", "127.0.0.1")
        .env("PORT", port.to_string())
        .env("RUST_LOG", "info")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    for (k, v) in tokens {
        command.env(k, v);
    }
    let mut child = command.spawn().expect("the binary starts");
    let http = reqwest::Client::new();
    let base = format!("http://127.0.0.1:{port}");
    crate::common::wait_healthy(&http, &base, crate::common::PATIENCE).await;
    // The start-up lines are written before the server accepts its first request.
    child.start_kill().unwrap();
    let mut log = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut log)
        .await
        .unwrap();
    let _ = child.wait().await;
    log
}

#[tokio::test]
async fn start_up_warns_about_each_token_that_is_not_set() {
    let log = start_up_log(&[]).await;
    assert!(log.contains("API_TOKEN is not set"), "{log}");
    assert!(log.contains("CALLBACK_TOKEN is not set"), "{log}");

    let log = start_up_log(&[("API_TOKEN", API), ("CALLBACK_TOKEN", CALLBACK)]).await;
    assert!(log.contains("listening"), "{log}");
    assert!(!log.contains("is not set"), "{log}");
    assert!(
        !log.contains(API) && !log.contains(CALLBACK),
        "tokens are never logged"
    );
}

/// AWS's own words when it refuses: an account id, a role ARN, an instance.
const ACCESS_DENIED: &str =
    "User: arn:aws:sts::123456789012:assumed-role/multiomix-emr/i-0abc1234 \
     is not authorized to perform: emr-containers:DescribeVirtualCluster";

/// From now on the fake EMR refuses the readiness check as AWS does, in its own words.
fn deny_access(app: &TestApp) {
    app.emr().fail_times(
        "DescribeVirtualCluster",
        1_000,
        403,
        "AccessDeniedException",
        ACCESS_DENIED,
    );
}

/// `/ready` with this `Authorization` header, as status and body text.
async fn ready_text(app: &TestApp, authorization: Option<String>) -> (u16, String) {
    let mut request = app.http.get(app.url("/ready"));
    if let Some(value) = authorization {
        request = request.header("authorization", value);
    }
    let r = request.send().await.unwrap();
    (r.status().as_u16(), r.text().await.unwrap())
}

#[tokio::test]
async fn ready_gives_anyone_a_short_reason_and_the_backends_words_only_with_the_api_token() {
    let app = spawn_with_tokens().await;
    deny_access(&app);
    let short = |body: &str| {
        let body: Value = serde_json::from_str(body).unwrap();
        body["problems"].clone()
    };
    for (case, header) in [
        ("no header", None),
        ("wrong token", Some("Bearer not-the-token".to_owned())),
        ("the callback token", Some(format!("Bearer {CALLBACK}"))),
    ] {
        let (status, body) = ready_text(&app, header).await;
        assert_eq!(status, 503, "{case}: {body}");
        for secret in ["123456789012", "arn:", "not authorized", "i-0abc1234"] {
            assert!(!body.contains(secret), "{case}: {secret} shown in {body}");
        }
        assert_eq!(
            short(&body),
            serde_json::json!(["emr backend: rejected (AccessDeniedException)"]),
            "{case}"
        );
    }
    let (status, body) = ready_text(&app, Some(format!("Bearer {API}"))).await;
    assert_eq!(status, 503, "{body}");
    assert!(body.contains(ACCESS_DENIED), "{body}");
}

#[tokio::test]
async fn without_an_api_token_ready_shows_no_caller_the_backends_words() {
    let app = spawn_app().await;
    deny_access(&app);
    let (status, body) = ready_text(&app, Some("Bearer anything".into())).await;
    assert_eq!(status, 503, "{body}");
    assert!(!body.contains("123456789012"), "{body}");
    assert!(body.contains("AccessDeniedException"), "{body}");
}
