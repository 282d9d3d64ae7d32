//! FakeEmr driven by the real aws-sdk-emrcontainers client: if the SDK can parse what the
//! fake answers, the service's EMR backend can too.

use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, Instant};

use aws_sdk_emrcontainers::config::retry::RetryConfig;
use aws_sdk_emrcontainers::config::{BehaviorVersion, Credentials, Region};
use aws_sdk_emrcontainers::error::ProvideErrorMetadata;
use aws_sdk_emrcontainers::primitives::DateTime;
use aws_sdk_emrcontainers::types::{
    ConfigurationOverrides, FailureReason, JobDriver, JobRunState, MonitoringConfiguration,
    S3MonitoringConfiguration, SparkSubmitJobDriver,
};
use aws_sdk_emrcontainers::Client;
use multiomix_fakes::{FakeEmr, JobState, NewJob};
use serde_json::Value;

fn client_with_retries(fake: &FakeEmr, retry: RetryConfig) -> Client {
    let config = aws_sdk_emrcontainers::Config::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new("us-east-1"))
        .credentials_provider(Credentials::new(
            "AKIDFAKEFAKEFAKE",
            "fake-secret",
            None,
            None,
            "test",
        ))
        .endpoint_url(fake.url())
        .retry_config(retry)
        .build();
    Client::from_conf(config)
}

/// Without retries, so that one injected error is one error the test sees.
fn client(fake: &FakeEmr) -> Client {
    client_with_retries(fake, RetryConfig::disabled())
}

fn driver() -> JobDriver {
    JobDriver::builder()
        .spark_submit_job_driver(
            SparkSubmitJobDriver::builder()
                .entry_point("s3://bucket/scripts/main.py")
                .entry_point_arguments("--app-name")
                .entry_point_arguments("exp-42-app")
                .spark_submit_parameters("--conf spark.executor.cores=1")
                .build()
                .unwrap(),
        )
        .build()
}

async fn start(client: &Client, fake: &FakeEmr, name: &str) -> String {
    client
        .start_job_run()
        .virtual_cluster_id(fake.virtual_cluster_id())
        .name(name)
        .execution_role_arn("arn:aws:iam::123456789012:role/emr-job")
        .release_label("emr-6.9.0-latest")
        .job_driver(driver())
        .send()
        .await
        .expect("StartJobRun")
        .id
        .expect("an id")
}

#[tokio::test]
async fn a_started_job_is_described_with_every_field_it_was_started_with() {
    let fake = FakeEmr::start().await;
    let client = client(&fake);
    let before = DateTime::from_secs(time::OffsetDateTime::now_utc().unix_timestamp());

    let out = client
        .start_job_run()
        .virtual_cluster_id(fake.virtual_cluster_id())
        .name("BreastCancerBBHA")
        .execution_role_arn("arn:aws:iam::123456789012:role/emr-job")
        .release_label("emr-6.9.0-latest")
        .job_driver(driver())
        .configuration_overrides(
            ConfigurationOverrides::builder()
                .monitoring_configuration(
                    MonitoringConfiguration::builder()
                        .s3_monitoring_configuration(
                            S3MonitoringConfiguration::builder()
                                .log_uri("s3://bucket/joblogs")
                                .build()
                                .unwrap(),
                        )
                        .build(),
                )
                .build(),
        )
        .tags("service", "multiomix-aws-emr")
        .send()
        .await
        .expect("StartJobRun");
    let id = out.id().expect("id").to_owned();
    assert_eq!(id.len(), 19, "{id}");
    assert!(id
        .chars()
        .all(|c| c.is_ascii_digit() || c.is_ascii_lowercase()));
    assert_eq!(out.name(), Some("BreastCancerBBHA"));
    assert_eq!(out.virtual_cluster_id(), Some(fake.virtual_cluster_id()));
    assert!(out.arn().unwrap().ends_with(&format!("/jobruns/{id}")));

    let run = client
        .describe_job_run()
        .virtual_cluster_id(fake.virtual_cluster_id())
        .id(&id)
        .send()
        .await
        .expect("DescribeJobRun")
        .job_run
        .expect("jobRun");
    assert_eq!(run.id(), Some(id.as_str()));
    assert_eq!(run.name(), Some("BreastCancerBBHA"));
    assert_eq!(run.state(), Some(&JobRunState::Pending));
    assert_eq!(run.release_label(), Some("emr-6.9.0-latest"));
    assert!(run.client_token().is_some_and(|t| !t.is_empty()));
    assert!(run.created_at().unwrap() >= &before);
    assert_eq!(run.finished_at(), None);
    let submit = run.job_driver().unwrap().spark_submit_job_driver().unwrap();
    assert_eq!(submit.entry_point(), "s3://bucket/scripts/main.py");
    assert_eq!(submit.entry_point_arguments(), ["--app-name", "exp-42-app"]);
    let log_uri = run
        .configuration_overrides()
        .and_then(|o| o.monitoring_configuration())
        .and_then(|m| m.s3_monitoring_configuration())
        .map(|s3| s3.log_uri().to_owned());
    assert_eq!(log_uri.as_deref(), Some("s3://bucket/joblogs"));
    assert_eq!(
        run.tags().unwrap().get("service").map(String::as_str),
        Some("multiomix-aws-emr")
    );

    // The raw request is kept exactly as the SDK sent it.
    let requests = fake.start_requests();
    assert_eq!(requests.len(), 1);
    assert_eq!(
        requests[0]["jobDriver"]["sparkSubmitJobDriver"]["entryPointArguments"][1],
        "exp-42-app"
    );
    assert_eq!(
        requests[0]["configurationOverrides"]["monitoringConfiguration"]
            ["s3MonitoringConfiguration"]["logUri"],
        "s3://bucket/joblogs"
    );
    assert_eq!(fake.calls("StartJobRun"), 1);
    assert_eq!(fake.calls("DescribeJobRun"), 1);
}

#[tokio::test]
async fn dates_are_written_as_rfc3339_strings_in_whole_seconds() {
    let fake = FakeEmr::start().await;
    let id = start(&client(&fake), &fake, "dates").await;
    fake.set_state(&id, JobState::Completed, None, None);
    let job = fake.job(&id).unwrap();
    for field in ["createdAt", "finishedAt"] {
        let text = job[field].as_str().expect("a string");
        let parsed =
            time::OffsetDateTime::parse(text, &time::format_description::well_known::Rfc3339)
                .expect("RFC 3339");
        assert_eq!(parsed.nanosecond(), 0, "{text}");
        assert!(text.ends_with("+00:00"), "{text}");
    }
}

#[tokio::test]
async fn the_same_client_token_gives_the_same_job() {
    let fake = FakeEmr::start().await;
    let client = client(&fake);
    let mut ids = Vec::new();
    for token in ["token-a", "token-a", "token-b"] {
        let out = client
            .start_job_run()
            .virtual_cluster_id(fake.virtual_cluster_id())
            .client_token(token)
            .name("same")
            .execution_role_arn("arn:aws:iam::123456789012:role/emr-job")
            .release_label("emr-6.9.0-latest")
            .job_driver(driver())
            .send()
            .await
            .expect("StartJobRun");
        ids.push(out.id.unwrap());
    }
    assert_eq!(ids[0], ids[1]);
    assert_ne!(ids[0], ids[2]);
    assert_eq!(fake.job_ids(), vec![ids[0].clone(), ids[2].clone()]);
    assert_eq!(fake.start_requests().len(), 3);
    assert_eq!(fake.start_requests()[1]["clientToken"], "token-a");
}

#[tokio::test]
async fn a_final_state_set_by_the_test_is_seen_with_its_finish_time_and_reason() {
    let fake = FakeEmr::start().await;
    let client = client(&fake);
    let id = start(&client, &fake, "failing").await;
    assert!(fake.set_state(
        &id,
        JobState::Failed,
        Some("Driver pod OOMKilled"),
        Some("USER_ERROR")
    ));
    assert!(!fake.set_state("0000000nosuchjob00", JobState::Failed, None, None));

    let run = client
        .describe_job_run()
        .virtual_cluster_id(fake.virtual_cluster_id())
        .id(&id)
        .send()
        .await
        .unwrap()
        .job_run
        .unwrap();
    assert_eq!(run.state(), Some(&JobRunState::Failed));
    assert_eq!(run.failure_reason(), Some(&FailureReason::UserError));
    assert_eq!(run.state_details(), Some("Driver pod OOMKilled"));
    assert!(run.finished_at().unwrap() >= run.created_at().unwrap());

    // Back to a running state: no finish time any more.
    fake.set_state(&id, JobState::Running, None, None);
    assert!(fake.job(&id).unwrap().get("finishedAt").is_none());
}

#[tokio::test]
async fn list_filters_by_state_and_pages_newest_first() {
    let fake = FakeEmr::start().await;
    let client = client(&fake);
    let mut ids = Vec::new();
    for n in 0..5 {
        ids.push(start(&client, &fake, &format!("job-{n}")).await);
    }
    fake.set_state(&ids[1], JobState::Completed, None, None);
    fake.set_state(&ids[3], JobState::Completed, None, None);

    let mut names = Vec::new();
    let mut pages = 0;
    let mut token = None;
    loop {
        let out = client
            .list_job_runs()
            .virtual_cluster_id(fake.virtual_cluster_id())
            .states(JobRunState::Pending)
            .states(JobRunState::Running)
            .max_results(2)
            .set_next_token(token)
            .send()
            .await
            .expect("ListJobRuns");
        pages += 1;
        names.extend(out.job_runs().iter().map(|r| r.name().unwrap().to_owned()));
        token = out.next_token;
        if token.is_none() {
            break;
        }
    }
    assert_eq!(names, ["job-4", "job-2", "job-0"]);
    assert_eq!(pages, 2);

    // The SDK's own paginator follows nextToken the same way.
    let completed: Vec<_> = client
        .list_job_runs()
        .virtual_cluster_id(fake.virtual_cluster_id())
        .states(JobRunState::Completed)
        .max_results(1)
        .into_paginator()
        .items()
        .send()
        .collect::<Result<Vec<_>, _>>()
        .await
        .expect("pages");
    let completed: Vec<_> = completed.iter().map(|r| r.id().unwrap()).collect();
    assert_eq!(completed, [ids[3].as_str(), ids[1].as_str()]);
}

#[tokio::test]
async fn list_filters_by_creation_time_and_name() {
    let fake = FakeEmr::start().await;
    let client = client(&fake);
    let old = fake.insert_job(NewJob {
        name: Some("old".into()),
        state: JobState::Completed,
        created_at: Some(time::macros::datetime!(2023-06-29 17:08:56 UTC)),
        finished_at: Some(time::macros::datetime!(2023-06-29 17:21:03 UTC)),
        ..NewJob::default()
    });
    let new = start(&client, &fake, "new").await;

    let list = |after: Option<DateTime>, before: Option<DateTime>, name: Option<&str>| {
        client
            .list_job_runs()
            .virtual_cluster_id(fake.virtual_cluster_id())
            .set_created_after(after)
            .set_created_before(before)
            .set_name(name.map(str::to_owned))
            .send()
    };
    let ids = |out: aws_sdk_emrcontainers::operation::list_job_runs::ListJobRunsOutput| {
        out.job_runs()
            .iter()
            .map(|r| r.id().unwrap().to_owned())
            .collect::<Vec<_>>()
    };
    // A fraction of a second, as the SDK writes it (`...T00:00:00.5Z`), is understood.
    let year_2024 = DateTime::from_secs_f64(1_704_067_200.5);
    assert_eq!(
        ids(list(Some(year_2024), None, None).await.unwrap()),
        [new.as_str()]
    );
    assert_eq!(
        ids(list(None, Some(year_2024), None).await.unwrap()),
        [old.as_str()]
    );
    assert_eq!(
        ids(list(None, None, None).await.unwrap()),
        [new.as_str(), old.as_str()]
    );
    assert_eq!(
        ids(list(None, None, Some("old")).await.unwrap()),
        [old.as_str()]
    );

    let run = client
        .describe_job_run()
        .virtual_cluster_id(fake.virtual_cluster_id())
        .id(&old)
        .send()
        .await
        .unwrap()
        .job_run
        .unwrap();
    assert_eq!(run.created_at(), Some(&DateTime::from_secs(1_688_058_536)));
    assert_eq!(run.finished_at(), Some(&DateTime::from_secs(1_688_059_263)));
}

#[tokio::test]
async fn cancelling_a_job_cancels_it_and_a_finished_job_cannot_be_cancelled() {
    let fake = FakeEmr::start().await;
    let client = client(&fake);
    let id = start(&client, &fake, "to-cancel").await;

    let out = client
        .cancel_job_run()
        .virtual_cluster_id(fake.virtual_cluster_id())
        .id(&id)
        .send()
        .await
        .expect("CancelJobRun");
    assert_eq!(out.id(), Some(id.as_str()));
    assert_eq!(out.virtual_cluster_id(), Some(fake.virtual_cluster_id()));
    let job = fake.job(&id).unwrap();
    assert_eq!(job["state"], "CANCELLED");
    assert!(job["finishedAt"].is_string());

    let err = client
        .cancel_job_run()
        .virtual_cluster_id(fake.virtual_cluster_id())
        .id(&id)
        .send()
        .await
        .expect_err("a cancelled job cannot be cancelled again")
        .into_service_error();
    assert!(err.is_validation_exception(), "{err:?}");
    assert_eq!(fake.calls("CancelJobRun"), 2);
}

/// Reads the job through the fake until `done` holds for its state, or fails after a
/// generous deadline: the fake's timers fire when they fire on a loaded machine.
async fn wait_for_state(fake: &FakeEmr, id: &str, state: &str) -> Value {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let job = fake.job(id).expect("the job exists");
        if job["state"] == state {
            return job;
        }
        assert!(Instant::now() < deadline, "never {state}: {job}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

async fn cancel(client: &Client, fake: &FakeEmr, id: &str) {
    client
        .cancel_job_run()
        .virtual_cluster_id(fake.virtual_cluster_id())
        .id(id)
        .send()
        .await
        .unwrap();
}

#[tokio::test]
async fn a_cancel_can_stay_pending_for_a_while() {
    // Long enough that the test always sees CANCEL_PENDING, however slow the machine.
    let fake = FakeEmr::builder()
        .cancel_takes(Duration::from_secs(3600))
        .start()
        .await;
    let client = client(&fake);
    let id = start(&client, &fake, "slow-cancel").await;
    cancel(&client, &fake, &id).await;
    assert_eq!(fake.job(&id).unwrap()["state"], "CANCEL_PENDING");
    assert_eq!(fake.job(&id).unwrap()["finishedAt"], Value::Null);

    // And a short one does end in CANCELLED by itself.
    let fake = FakeEmr::builder()
        .cancel_takes(Duration::from_millis(50))
        .start()
        .await;
    let client = self::client(&fake);
    let id = start(&client, &fake, "quick-cancel").await;
    cancel(&client, &fake, &id).await;
    let job = wait_for_state(&fake, &id, "CANCELLED").await;
    assert!(job["finishedAt"].is_string(), "{job}");
}

#[tokio::test]
async fn unknown_jobs_and_clusters_are_resource_not_found() {
    let fake = FakeEmr::start().await;
    let client = client(&fake);

    let err = client
        .describe_job_run()
        .virtual_cluster_id(fake.virtual_cluster_id())
        .id("0000000nosuchjob000")
        .send()
        .await
        .unwrap_err()
        .into_service_error();
    assert!(err.is_resource_not_found_exception(), "{err:?}");
    assert!(err.message().unwrap().contains("0000000nosuchjob000"));

    let err = client
        .start_job_run()
        .virtual_cluster_id("nosuchcluster")
        .name("x")
        .execution_role_arn("arn:aws:iam::123456789012:role/emr-job")
        .release_label("emr-6.9.0-latest")
        .job_driver(driver())
        .send()
        .await
        .unwrap_err()
        .into_service_error();
    assert!(err.is_resource_not_found_exception(), "{err:?}");

    let err = client
        .describe_virtual_cluster()
        .id("nosuchcluster")
        .send()
        .await
        .unwrap_err()
        .into_service_error();
    assert!(err.is_resource_not_found_exception(), "{err:?}");

    // CancelJobRun does not model ResourceNotFoundException: the SDK gives an unmodeled
    // error that still carries the code.
    let err = client
        .cancel_job_run()
        .virtual_cluster_id(fake.virtual_cluster_id())
        .id("0000000nosuchjob000")
        .send()
        .await
        .unwrap_err()
        .into_service_error();
    assert!(!err.is_validation_exception());
    assert_eq!(err.code(), Some("ResourceNotFoundException"));
}

#[tokio::test]
async fn a_job_in_another_cluster_is_not_found_through_this_one() {
    let fake = FakeEmr::start().await;
    let client = client(&fake);
    let other = fake.add_virtual_cluster("other");
    let foreign = fake.insert_job(NewJob {
        virtual_cluster_id: Some(other.clone()),
        ..NewJob::default()
    });
    let err = client
        .describe_job_run()
        .virtual_cluster_id(fake.virtual_cluster_id())
        .id(&foreign)
        .send()
        .await
        .unwrap_err()
        .into_service_error();
    assert!(err.is_resource_not_found_exception());
    let found = client
        .describe_job_run()
        .virtual_cluster_id(&other)
        .id(&foreign)
        .send()
        .await
        .unwrap();
    assert_eq!(found.job_run().unwrap().id(), Some(foreign.as_str()));
}

#[tokio::test]
async fn a_name_emr_would_refuse_is_a_validation_exception() {
    let fake = FakeEmr::start().await;
    let err = client(&fake)
        .start_job_run()
        .virtual_cluster_id(fake.virtual_cluster_id())
        .name("has spaces")
        .execution_role_arn("arn:aws:iam::123456789012:role/emr-job")
        .release_label("emr-6.9.0-latest")
        .job_driver(driver())
        .send()
        .await
        .unwrap_err()
        .into_service_error();
    assert!(err.is_validation_exception(), "{err:?}");
    assert!(fake.job_ids().is_empty());
    assert_eq!(fake.start_requests().len(), 1);
}

#[tokio::test]
async fn injected_errors_reach_the_sdk_as_their_variants_once() {
    let fake = FakeEmr::start().await;
    let client = client(&fake);
    let id = start(&client, &fake, "flaky").await;
    let describe = || {
        client
            .describe_job_run()
            .virtual_cluster_id(fake.virtual_cluster_id())
            .id(&id)
            .send()
    };

    fake.fail_next("DescribeJobRun", 500, "InternalServerException", "boom");
    let err = describe().await.unwrap_err().into_service_error();
    assert!(err.is_internal_server_exception(), "{err:?}");
    assert_eq!(err.message(), Some("boom"));

    fake.fail_next("DescribeJobRun", 400, "ValidationException", "bad input");
    let err = describe().await.unwrap_err().into_service_error();
    assert!(err.is_validation_exception(), "{err:?}");

    fake.fail_next(
        "DescribeJobRun",
        400,
        "ThrottlingException",
        "Rate exceeded",
    );
    let err = describe().await.unwrap_err().into_service_error();
    assert_eq!(err.code(), Some("ThrottlingException"));

    describe().await.expect("errors are used up");
    assert_eq!(fake.calls("DescribeJobRun"), 4);
}

#[tokio::test]
async fn the_sdk_retries_injected_server_errors_and_throttling_by_itself() {
    let fake = FakeEmr::start().await;
    let retrying = client_with_retries(
        &fake,
        RetryConfig::standard()
            .with_max_attempts(3)
            .with_initial_backoff(Duration::from_millis(1)),
    );
    fake.fail_next("StartJobRun", 500, "InternalServerException", "boom");
    fake.fail_next("StartJobRun", 400, "ThrottlingException", "Rate exceeded");
    let id = start(&retrying, &fake, "retried").await;
    assert_eq!(fake.calls("StartJobRun"), 3);
    // All three attempts carried the same client token: one job.
    let requests = fake.start_requests();
    assert_eq!(requests.len(), 3);
    assert!(requests
        .iter()
        .all(|r| r["clientToken"] == requests[0]["clientToken"]));
    assert_eq!(fake.job_ids(), [id]);

    fake.fail_times("ListJobRuns", 3, 503, "InternalServerException", "down");
    let err = retrying
        .list_job_runs()
        .virtual_cluster_id(fake.virtual_cluster_id())
        .send()
        .await
        .unwrap_err()
        .into_service_error();
    assert!(err.is_internal_server_exception());
    assert_eq!(fake.calls("ListJobRuns"), 3);
}

#[tokio::test]
async fn jobs_can_finish_on_their_own() {
    // Long enough that the test always sees it RUNNING first.
    let fake = FakeEmr::builder()
        .complete_after(Duration::from_secs(3600))
        .start()
        .await;
    let id = start(&client(&fake), &fake, "auto").await;
    assert_eq!(fake.job(&id).unwrap()["state"], "RUNNING");

    let fake = FakeEmr::builder()
        .complete_after(Duration::from_millis(50))
        .start()
        .await;
    let client = client(&fake);
    let id = start(&client, &fake, "auto").await;
    wait_for_state(&fake, &id, "COMPLETED").await;
    let run = client
        .describe_job_run()
        .virtual_cluster_id(fake.virtual_cluster_id())
        .id(&id)
        .send()
        .await
        .unwrap()
        .job_run
        .unwrap();
    assert_eq!(run.state(), Some(&JobRunState::Completed));
    assert!(run.finished_at().is_some());

    let failing = FakeEmr::builder()
        .jobs_finish_immediately(JobState::Failed)
        .start()
        .await;
    let id = start(&self::client(&failing), &failing, "doomed").await;
    let job = failing.job(&id).unwrap();
    assert_eq!(job["state"], "FAILED");
    assert_eq!(job["failureReason"], "USER_ERROR");
}

#[tokio::test]
async fn inserted_jobs_keep_their_tags_and_show_in_lists() {
    let fake = FakeEmr::start().await;
    let client = client(&fake);
    let theirs = fake.insert_job(NewJob {
        name: Some("someone-elses".into()),
        state: JobState::Running,
        tags: BTreeMap::from([("service".to_owned(), "other".to_owned())]),
        ..NewJob::default()
    });
    let ours = start(&client, &fake, "ours").await;
    let runs = client
        .list_job_runs()
        .virtual_cluster_id(fake.virtual_cluster_id())
        .send()
        .await
        .unwrap();
    let tags: HashMap<_, _> = runs
        .job_runs()
        .iter()
        .map(|r| {
            let service = r.tags().and_then(|t| t.get("service")).cloned();
            (r.id().unwrap().to_owned(), service)
        })
        .collect();
    assert_eq!(tags[&theirs].as_deref(), Some("other"));
    assert_eq!(tags[&ours], None);
}

#[tokio::test]
async fn the_virtual_cluster_is_described_listed_and_can_stop_taking_jobs() {
    let fake = FakeEmr::builder()
        .virtual_cluster_id("vc0123456789abcdefghijklm")
        .start()
        .await;
    let client = client(&fake);
    let cluster = client
        .describe_virtual_cluster()
        .id(fake.virtual_cluster_id())
        .send()
        .await
        .unwrap()
        .virtual_cluster
        .unwrap();
    assert_eq!(cluster.id(), Some("vc0123456789abcdefghijklm"));
    assert_eq!(cluster.state().map(|s| s.as_str()), Some("RUNNING"));
    assert!(cluster.created_at().is_some());
    assert_eq!(
        cluster
            .container_provider()
            .unwrap()
            .info()
            .unwrap()
            .as_eks_info()
            .unwrap()
            .namespace(),
        Some("emr")
    );

    let listed = client.list_virtual_clusters().send().await.unwrap();
    assert_eq!(listed.virtual_clusters().len(), 1);

    assert!(fake.set_virtual_cluster_state(fake.virtual_cluster_id(), "TERMINATED"));
    let err = client
        .start_job_run()
        .virtual_cluster_id(fake.virtual_cluster_id())
        .name("late")
        .execution_role_arn("arn:aws:iam::123456789012:role/emr-job")
        .release_label("emr-6.9.0-latest")
        .job_driver(driver())
        .send()
        .await
        .unwrap_err()
        .into_service_error();
    assert!(err.is_validation_exception(), "{err:?}");
}

#[tokio::test]
async fn a_delayed_operation_answers_late_and_waits_can_be_awaited() {
    let fake = FakeEmr::start().await;
    let client = client(&fake);
    fake.set_delay("DescribeVirtualCluster", Duration::from_millis(200));
    let started = Instant::now();
    let waiting = fake.wait_for_calls("DescribeVirtualCluster", 1, Duration::from_secs(5));
    let call = client
        .describe_virtual_cluster()
        .id(fake.virtual_cluster_id())
        .send();
    let (waited, answered) = tokio::join!(waiting, call);
    assert_eq!(waited, Ok(1));
    answered.unwrap();
    assert!(started.elapsed() >= Duration::from_millis(200));

    let timed_out = fake
        .wait_for_calls("CancelJobRun", 1, Duration::from_millis(20))
        .await
        .unwrap_err();
    assert_eq!((timed_out.wanted, timed_out.got), (1, 0));
}

#[tokio::test]
async fn a_held_operation_is_answered_only_once_released() {
    let fake = FakeEmr::start().await;
    let client = client(&fake);
    let hold = fake.hold("DescribeVirtualCluster");
    let call = {
        let client = client.clone();
        let id = fake.virtual_cluster_id().to_owned();
        tokio::spawn(async move { client.describe_virtual_cluster().id(id).send().await })
    };
    fake.wait_for_calls("DescribeVirtualCluster", 1, Duration::from_secs(10))
        .await
        .unwrap();
    // Other operations are not held.
    start(&client, &fake, "not-held").await;
    assert!(!call.is_finished(), "answered while held");
    hold.release();
    let answered = tokio::time::timeout(Duration::from_secs(10), call)
        .await
        .expect("answered once released")
        .unwrap()
        .unwrap();
    assert_eq!(
        answered.virtual_cluster().unwrap().id(),
        Some(fake.virtual_cluster_id())
    );
    // Released for good: the next call is answered at once.
    client
        .describe_virtual_cluster()
        .id(fake.virtual_cluster_id())
        .send()
        .await
        .unwrap();
}

#[tokio::test]
#[should_panic(expected = "serves no operation")]
async fn a_misspelt_operation_name_panics() {
    let fake = FakeEmr::start().await;
    fake.calls("DescribeJobRuns");
}
