//! What only the EMR Serverless backend does; the behaviour every backend shares is in the
//! conformance suite (tests/integration/conformance), whose harness and peers this reuses.
//!
//! - a run stopped by its execution timeout is reported FAILED, saying why;
//! - with no sidecar, running runs are read in batches and the notice leaves without any
//!   `PATCH`;
//! - `GET /job/{id}` shows where the run's logs are;
//! - `/ready` asks GetApplication once per cache period and names a terminated
//!   application;
//! - the "done when", on moto's emr-serverless server.

use std::sync::Arc;

use multiomix_fakes::{FakeEmrServerless, RunState};
use serde_json::json;

use crate::common::{is_multiomix_date, TestApp};
use crate::common::{wait_until, PATIENCE};
use crate::conformance::harness;
use crate::conformance::harness::{Peer, Suite};
use crate::conformance::peers;
use crate::conformance::peers::FakeServerless;

async fn fake() -> (Arc<FakeServerless>, Arc<dyn Peer>) {
    let fake = Arc::new(FakeServerless(FakeEmrServerless::start().await));
    let peer: Arc<dyn Peer> = fake.clone();
    (fake, peer)
}

#[tokio::test]
async fn a_run_stopped_by_its_execution_timeout_is_reported_failed_and_says_it_timed_out() {
    let (fake, peer) = fake().await;
    let suite = Suite::start_with(peer, &[("EMR_SERVERLESS_EXECUTION_TIMEOUT", "30")]).await;
    let id = suite.submit("TimedOut", None).await;
    let request = fake.0.start_requests().pop().unwrap();
    assert_eq!(request["executionTimeoutMinutes"], 30);

    assert!(fake.0.time_out(&id));
    let notices = suite.multiomix.wait_for_notices(1, PATIENCE).await.unwrap();
    let body = &notices[0].body;
    assert_eq!(body["state"], "FAILED", "{body}");
    let details = body["stateDetails"].as_str().unwrap();
    assert!(details.starts_with("timed out"), "{details}");
    assert!(details.contains("30 minutes"), "{details}");
    assert!(is_multiomix_date(&body["finishedAt"]), "{body}");

    // A user's cancel stays CANCELLED.
    let id = suite.submit("UserCancel", None).await;
    assert_eq!(suite.delete(&format!("/job/{id}")).await.0, 200);
    suite.read_until(&id, &["CANCELLED"]).await;
}

#[tokio::test]
async fn running_runs_are_read_in_batches_and_the_notice_leaves_without_a_patch() {
    let (fake, peer) = fake().await;
    // No adoption: its first round may list a run started but not yet recorded, and
    // read it for its tags.
    let suite = Suite::start_with(peer, &[("RECOVERY_WINDOW", "0")]).await;
    let mut ids = Vec::new();
    for i in 0..5 {
        let id = suite.submit(&format!("Batch{i}"), None).await;
        assert!(fake.0.set_state(&id, RunState::Running, ""));
        ids.push(id);
    }
    // Several rounds (POLL_INTERVAL is 50 ms here) read the five runs by listing them.
    wait_until("four rounds of ListJobRuns", PATIENCE, || {
        fake.0.calls("ListJobRuns") >= 4
    })
    .await;
    assert_eq!(
        fake.0.calls("GetJobRun"),
        0,
        "no run is read alone while it runs"
    );

    assert!(fake.0.set_state(&ids[2], RunState::Success, ""));
    let notices = suite.multiomix.wait_for_notices(1, PATIENCE).await.unwrap();
    assert_eq!(notices[0].path, format!("/{}/", ids[2]));
    assert_eq!(notices[0].body["state"], "COMPLETED");
    // The run that ended is read once, by the round that missed it in the listing; the
    // outbox's read before the notice is answered from memory.
    assert_eq!(fake.0.calls("GetJobRun"), 1);
    assert_eq!(suite.multiomix.count(), 1, "the running runs get no notice");
}

#[tokio::test]
async fn get_job_shows_where_the_run_logs_are() {
    let (fake, peer) = fake().await;
    let suite = Suite::start(peer).await;
    let id = suite.submit("Logs", None).await;
    let (status, job) = suite.get(&format!("/job/{id}")).await;
    assert_eq!(status, 200);
    assert_eq!(
        job["logUri"],
        json!(format!(
            "s3://multiomix-bucket/joblogs/applications/{}/jobs/{id}/",
            fake.0.application_id()
        ))
    );
    assert_eq!(job["state"], "SUBMITTED");
}

#[tokio::test]
async fn ready_asks_get_application_once_per_cache_period_and_names_a_terminated_application() {
    let (fake, peer) = fake().await;
    fake.0.set_application_state("TERMINATED");
    let suite = Suite::start_with(peer, &[("API_TOKEN", "ops-token")]).await;
    let (status, body) = suite.get("/ready").await;
    assert_eq!(status, 503, "{body}");
    assert_eq!(
        body["problems"],
        serde_json::json!(["emr-serverless backend: unavailable"]),
        "without the token, a short reason"
    );
    let (status, body) = suite.get_with_token("/ready", "ops-token").await;
    assert_eq!(status, 503);
    let problems = body["problems"].to_string();
    assert!(problems.contains("TERMINATED"), "{problems}");
    assert!(problems.contains(fake.0.application_id()), "{problems}");
    assert_eq!(fake.0.calls("GetApplication"), 1, "the answer is cached");
}

#[tokio::test]
async fn a_started_application_is_ready() {
    let (_fake, peer) = fake().await;
    let suite = Suite::start(peer).await;
    let (status, body) = suite.get("/ready").await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["backend"], "emr-serverless");
}

/// The "done when", in order, on a peer nobody here wrote. moto creates runs
/// already SUCCESS, with no endedAt (the finishedAt is the updatedAt) and a createdAt
/// truncated to the day.
#[tokio::test]
async fn done_when_on_moto_multiomix_submits_reads_lists_and_gets_the_notice_without_a_patch() {
    let Some(peer) = peers::moto_serverless().await else {
        return;
    };
    let suite = Suite::start(peer).await;
    // Multiomix's BBHA request gives 201.
    let id = suite.submit("BreastCancerBBHA", None).await;
    // The run carries the fields.
    let got = suite
        .peer
        .submitted(suite.dir.path(), &id, "BreastCancerBBHA")
        .await;
    assert_eq!(got.entry_point, "s3://multiomix-bucket/scripts/main.py");
    assert_eq!(
        got.log_uri.as_deref(),
        Some("s3://multiomix-bucket/joblogs")
    );
    assert_eq!(got.execution_role.as_deref(), Some(harness::ROLE));
    assert_eq!(got.driver_env["JOB_NAME"], "BreastCancerBBHA");
    assert_eq!(got.tags["managed-by"], "multiomix-aws-emr");
    // GET /job/{id} shows COMPLETED with dates Multiomix parses.
    let job = suite.read_until(&id, &["COMPLETED"]).await;
    assert!(is_multiomix_date(&job["createdAt"]), "{job}");
    assert!(is_multiomix_date(&job["finishedAt"]), "{job}");
    // The notice arrives without any PATCH.
    let notices = suite.multiomix.wait_for_notices(1, PATIENCE).await.unwrap();
    assert_eq!(notices[0].path, format!("/{id}/"));
    assert_eq!(notices[0].body["state"], "COMPLETED");
    // DELETE: 409 for the finished run, 404 for an unknown one.
    assert_eq!(suite.delete(&format!("/job/{id}")).await.0, 409);
    assert_eq!(suite.delete("/job/00f0000000000000").await.0, 404);
    // GET /jobs lists it.
    let (_, listed) = suite.get("/jobs").await;
    assert!(
        listed["jobs"]
            .as_array()
            .unwrap()
            .iter()
            .any(|j| j["id"] == id.as_str()),
        "{listed}"
    );
}

#[tokio::test]
async fn every_emr_serverless_state_reads_back_as_one_multiomix_knows() {
    let (fake, peer) = fake().await;
    let suite = Suite::start(peer).await;
    let id = suite.submit("Moving", None).await;
    for (theirs, ours) in [
        (RunState::Submitted, "SUBMITTED"),
        (RunState::Pending, "PENDING"),
        (RunState::Scheduled, "PENDING"),
        (RunState::Queued, "PENDING"),
        (RunState::Running, "RUNNING"),
        (RunState::Cancelling, "CANCEL_PENDING"),
    ] {
        assert!(fake.0.set_state(&id, theirs, ""));
        let (_, job) = suite.get(&format!("/job/{id}")).await;
        assert_eq!(job["state"], ours, "{theirs:?}: {job}");
        assert_eq!(job["finishedAt"], serde_json::Value::Null, "{job}");
    }
    // Final states, each on a run of its own (a final run is never read again).
    for (theirs, ours) in [
        (RunState::Success, "COMPLETED"),
        (RunState::Failed, "FAILED"),
        (RunState::Cancelled, "CANCELLED"),
    ] {
        let id = suite.submit(&format!("Final{ours}"), None).await;
        assert!(fake.0.set_state(&id, theirs, "details"));
        let job = suite.read_until(&id, &[ours]).await;
        assert!(is_multiomix_date(&job["finishedAt"]), "{job}");
        assert_eq!(job["stateDetails"], "details");
    }
}

#[tokio::test]
async fn an_unrecorded_submission_is_found_by_its_client_token_tag_and_an_unstarted_one_is_not() {
    let (fake, peer) = fake().await;
    let suite = Suite::start(peer).await;
    let since = time::OffsetDateTime::now_utc() - time::Duration::minutes(1);
    let spec = multiomix_aws_emr::job::validate_request(&harness::body("Unrecorded")).unwrap();
    let started = suite.backend.start(&spec, "key-unrecorded").await.unwrap();
    // Other runs of the application, some with another deployment's client token.
    fake.0
        .insert_runs(5, RunState::Running, &[("client-token", "key-other")]);
    fake.0.insert_runs(
        3,
        RunState::Running,
        &[
            ("client-token", "key-unrecorded"),
            ("managed-by", "someone-else"),
        ],
    );
    match suite
        .backend
        .find_submission("key-unrecorded", since)
        .await
        .unwrap()
    {
        multiomix_aws_emr::backend::Submitted::Started(run) => {
            assert_eq!(run.id, started);
            assert!(run.ours, "a run this deployment tagged is its own");
        }
        other => panic!("the started submission was not found: {other:?}"),
    }
    assert_eq!(
        suite
            .backend
            .find_submission("key-never-started", since)
            .await
            .unwrap(),
        multiomix_aws_emr::backend::Submitted::NotStarted
    );
    assert_eq!(fake.0.calls("StartJobRun"), 1);
}

/// After a lost store, runs are adopted from ListJobRuns, whose summaries carry no tags;
/// each adopted run's `app-name` is read from the run itself (GetJobRun), or a COMPLETED
/// one would be notified without its results. Shown on moto, which, like AWS, answers
/// GetJobRun with the run's tags and ListJobRuns without them.
#[tokio::test]
async fn a_run_adopted_after_a_lost_store_keeps_its_app_name() {
    let Some(peer) = peers::moto_serverless().await else {
        return;
    };
    // Built, not yet serving: it adopts nothing before the test asks it to.
    let dir = Arc::new(tempfile::tempdir().unwrap());
    let connecting = peer.clone();
    let (app, parts) = TestApp::builder()
        .dir(dir.clone())
        .owned_vars(peer.vars(dir.path()))
        .backend(move |config| async move { connecting.connect(&config).await })
        .build()
        .await;
    let backend = parts.backend.expect("the peer's backend");
    // Started by a process whose store is gone.
    let spec = multiomix_aws_emr::job::validate_request(&harness::body("Adopted")).unwrap();
    let id = backend.start(&spec, "token-of-a-lost-store").await.unwrap();
    let listed = backend
        .list(&multiomix_aws_emr::backend::ListQuery::default())
        .await
        .unwrap();
    let summary = listed.jobs.iter().find(|j| j.id == id).unwrap();
    assert!(
        !summary.tags.contains_key("app-name"),
        "the listing carries no tags: {:?}",
        summary.tags
    );

    assert!(app.reconciler().recover_if_empty().await.unwrap() >= 1);
    let job = app.store().job(&id).await.unwrap().unwrap();
    assert!(job.adopted);
    assert_eq!(job.app_name.as_deref(), Some("exp-42-app"));
}

/// A page of `GET /jobs` full of cancelled runs makes at most READS_PER_PAGE GetJobRun
/// calls (one per run before), and still lists every run.
#[tokio::test]
async fn a_page_of_cancelled_runs_costs_a_bounded_number_of_reads() {
    let (fake, peer) = fake().await;
    // No adoption at start-up, which reads runs too.
    let suite = Suite::start_with(peer, &[("RECOVERY_WINDOW", "0")]).await;
    fake.0.insert_runs(
        40,
        RunState::Cancelled,
        &[("managed-by", "multiomix-aws-emr")],
    );
    let before = fake.0.calls("GetJobRun");
    let (status, page) = suite.get("/jobs?page_size=50").await;
    assert_eq!(status, 200, "{page}");
    assert_eq!(page["jobs"].as_array().unwrap().len(), 40, "{page}");
    let reads = fake.0.calls("GetJobRun") - before;
    assert!(
        reads <= multiomix_aws_emr::backend::emr::serverless::READS_PER_PAGE,
        "{reads} GetJobRun calls for one page"
    );
}
