//! What only the Livy backend does; the behaviour every backend shares is in the
//! conformance suite (tests/integration/conformance), whose harness and peers this reuses, and the
//! data path with `DATA_STAGING=s3` is in tests/integration/results_handoff.rs.
//!
//! - a Multiomix BBHA request becomes one batch with the expected body, is read back,
//!   listed, cancelled, and its notice sent;
//! - every Livy state reads back as one Multiomix knows, with the batch's links;
//! - a batch id Livy gives again after a restart is never taken for the old job, and a
//!   restart that forgets a batch does not lose its notice;
//! - the batches in flight are read one page a round;
//! - after a lost store the deployment's batches are adopted, and no one else's;
//! - a start whose answer was lost, or two starts with one token, make one batch;
//! - credentials Livy refuses, and a gateway that answers 404 to everything, leave the
//!   service not ready and lose no job.

use std::sync::Arc;
use std::time::Duration;

use multiomix_aws_emr::backend::livy::LivyBackend;
use multiomix_aws_emr::backend::JobBackend;
use multiomix_aws_emr::config::Config;
use multiomix_aws_emr::job::{validate_request, JobState};
use multiomix_aws_emr::store::Store;
use multiomix_fakes::{BatchState, FakeLivy};
use serde_json::{json, Value};

use crate::common;
use crate::common::PATIENCE;
use crate::conformance::harness;
use crate::conformance::harness::{Peer, Suite};
use crate::conformance::peers;
use crate::conformance::peers::{batch_of, livy_peer, livy_vars, FakeLivyPeer};

/// The Livy peer, as its own type and as the suite's.
async fn livy() -> (Arc<FakeLivyPeer>, Arc<dyn Peer>) {
    let fake = livy_peer().await;
    let peer: Arc<dyn Peer> = fake.clone();
    (fake, peer)
}

/// Waits until `done` holds, or fails saying `what`.
async fn until(what: &str, done: impl Fn() -> bool) {
    crate::common::wait_until(what, PATIENCE, done).await
}

/// A Livy backend of its own (no service, so no rounds read the batches meanwhile), its
/// store in `dir`.
async fn backend_alone(fake: &FakeLivy, dir: &std::path::Path) -> LivyBackend {
    let mut vars = livy_vars(&fake.url());
    vars.push((
        "DATABASE_URL".into(),
        format!("sqlite:{}/store.db", dir.display()),
    ));
    let config = Config::from_vars(vars).unwrap();
    let store = Store::connect(&config.database_url).await.unwrap();
    LivyBackend::new(
        store,
        config.backend.livy().cloned().unwrap(),
        config.spark.clone(),
        config.job.clone(),
    )
}

#[tokio::test]
async fn a_multiomix_bbha_request_becomes_one_batch_read_listed_cancelled_and_notified() {
    let (livy, peer) = livy().await;
    let suite = Suite::start_with(
        peer,
        &[("LIVY_PROXY_USER", "multiomix"), ("LIVY_QUEUE", "research")],
    )
    .await;
    let id = common::submit_job(&suite.http, &suite.base, &common::multiomix_body()).await;

    let requests = livy.0.requests();
    assert_eq!(requests.len(), 1, "one batch: {requests:?}");
    let body = &requests[0];
    assert_eq!(
        body["name"],
        format!("multiomix-aws-emr:{id}:exp-42-app:BreastCancerBBHA")
    );
    assert_eq!(body["file"], "s3://multiomix-bucket/scripts/main.py");
    assert_eq!(
        body["pyFiles"],
        json!(["s3://multiomix-bucket/py-files/scripts.zip"])
    );
    assert_eq!(
        body["args"],
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
    for (field, value) in [
        ("driverMemory", json!("4g")),
        ("driverCores", json!(1)),
        ("executorMemory", json!("4g")),
        ("executorCores", json!(1)),
        ("numExecutors", json!(3)),
        ("proxyUser", json!("multiomix")),
        ("queue", json!("research")),
    ] {
        assert_eq!(body[field], value, "{field}: {body}");
    }
    let conf = body["conf"].as_object().unwrap();
    for (key, value) in [
        ("spark.yarn.appMasterEnv.DATASETS_PATH", "/var/data"),
        ("spark.yarn.appMasterEnv.RESULTS_PATH", "/var/results"),
        ("spark.yarn.appMasterEnv.JOB_NAME", "BreastCancerBBHA"),
        ("spark.driver.maxResultSize", "2g"),
        ("spark.executor.heartbeatInterval", "600s"),
        ("spark.network.timeout", "2400s"),
        ("spark.executor.memoryOverhead", "2g"),
    ] {
        assert_eq!(conf[key], value, "{key}: {body}");
    }
    // The job's own progress token, drawn at POST /job: 64 hex digits.
    let token = conf["spark.yarn.appMasterEnv.PROGRESS_TOKEN"]
        .as_str()
        .expect("the driver gets its progress token");
    assert!(
        token.len() == 64 && token.bytes().all(|b| b.is_ascii_hexdigit()),
        "{token}"
    );
    assert_eq!(conf.len(), 8, "nothing else in conf: {body}");

    // Read back, once Livy has the application, with its links.
    let job = suite.read_until(&id, &["RUNNING"]).await;
    assert_eq!(job["name"], "BreastCancerBBHA");
    assert_eq!(job["finishedAt"], Value::Null);
    let links = &job["links"];
    assert!(
        links["sparkUi"]
            .as_str()
            .unwrap()
            .contains("/proxy/application_"),
        "{job}"
    );
    assert_eq!(job["logUri"], links["driverLog"], "{job}");

    let (status, listed) = suite.get("/jobs").await;
    assert_eq!(status, 200);
    assert_eq!(listed["jobs"][0]["id"], id.as_str(), "{listed}");

    let batch = batch_of(&livy.0, &id);
    let (status, answer) = suite.delete(&format!("/job/{id}")).await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(livy.0.deleted(), [batch]);
    let job = suite.read_until(&id, &["CANCELLED"]).await;
    assert!(common::is_multiomix_date(&job["finishedAt"]), "{job}");
    let notices = suite.multiomix.wait_for_notices(1, PATIENCE).await.unwrap();
    assert_eq!(notices[0].path, format!("/{id}/"));
    assert_eq!(notices[0].body["state"], "CANCELLED");
    assert_eq!(notices[0].body["stateDetails"], "cancelled by request");
    assert!(livy.0.refused().is_empty(), "{:?}", livy.0.refused());
}

#[tokio::test]
async fn every_livy_state_reads_as_one_multiomix_knows() {
    let (livy, peer) = livy().await;
    let suite = Suite::start(peer).await;
    let id = suite.submit("Moving", None).await;
    let batch = batch_of(&livy.0, &id);
    for (theirs, ours) in [
        (BatchState::NotStarted, "PENDING"),
        (BatchState::Starting, "SUBMITTED"),
        (BatchState::Running, "RUNNING"),
        (BatchState::Busy, "RUNNING"),
        (BatchState::Idle, "RUNNING"),
        (BatchState::Recovering, "RUNNING"),
        (BatchState::ShuttingDown, "RUNNING"),
    ] {
        assert!(livy.0.set_state(batch, theirs));
        let (_, job) = suite.get(&format!("/job/{id}")).await;
        assert_eq!(job["state"], ours, "{theirs:?}: {job}");
        assert_eq!(job["finishedAt"], Value::Null, "{job}");
    }
    // Final states, each on a batch of its own.
    for (theirs, ours, said) in [
        (BatchState::Success, "COMPLETED", None),
        (BatchState::Dead, "FAILED", Some("SparkException")),
        (BatchState::Error, "FAILED", Some("is error")),
        (BatchState::Killed, "CANCELLED", Some("not by this service")),
    ] {
        let id = suite
            .submit(&format!("Final{}", theirs.as_str()), None)
            .await;
        assert!(livy.0.set_state(batch_of(&livy.0, &id), theirs));
        let job = suite.read_until(&id, &[ours]).await;
        assert!(common::is_multiomix_date(&job["finishedAt"]), "{job}");
        match said {
            Some(words) => assert!(
                job["stateDetails"].as_str().unwrap().contains(words),
                "{theirs:?}: {job}"
            ),
            None => assert_eq!(job["stateDetails"], Value::Null, "{job}"),
        }
    }
}

#[tokio::test]
async fn a_batch_id_livy_gives_again_after_a_restart_is_not_taken_for_the_old_job() {
    let fake = FakeLivy::builder()
        .basic_auth(peers::LIVY_USER, peers::LIVY_PASSWORD)
        .start()
        .await;
    let dir = tempfile::tempdir().unwrap();
    let backend = backend_alone(&fake, dir.path()).await;
    let first = validate_request(&harness::own_body("Before")).unwrap();
    let a = backend.start(&first, "token-a").await.unwrap();
    assert!(fake.set_state(0, BatchState::Running));
    assert_eq!(backend.describe(&a).await.unwrap().state, JobState::Running);

    fake.restart();
    let second = validate_request(&harness::own_body("After")).unwrap();
    let b = backend.start(&second, "token-b").await.unwrap();
    assert_ne!(a, b);
    assert_eq!(
        fake.batch_ids(),
        [0],
        "Livy gave the new batch the old one's id"
    );
    assert!(fake.set_state(0, BatchState::Running));

    let old = backend.describe(&a).await.unwrap();
    assert_eq!(old.state, JobState::Failed, "{old:?}");
    let details = old.state_details.as_deref().unwrap();
    assert!(
        details.contains("no longer holds batch 0") && details.contains("restarted"),
        "{details}"
    );
    assert_eq!(old.failure_reason.as_deref(), Some("INTERNAL_ERROR"));
    assert!(old.finished_at.is_some());
    let new = backend.describe(&b).await.unwrap();
    assert_eq!((new.state, new.name.as_str()), (JobState::Running, "After"));
    assert!(fake.deleted().is_empty(), "the new batch was left alone");

    // The old job's end is kept: reading it again asks Livy nothing.
    let reads = fake.calls("GET /batches/{id}") + fake.calls("GET /batches");
    assert_eq!(backend.describe(&a).await.unwrap(), old);
    assert_eq!(
        fake.calls("GET /batches/{id}") + fake.calls("GET /batches"),
        reads
    );
    // And cancelling it is refused, without touching the batch that now has its id.
    assert!(backend.cancel(&a).await.is_err());
    assert!(fake.deleted().is_empty());
}

#[tokio::test]
async fn a_livy_restart_that_forgets_the_batch_does_not_lose_the_notice() {
    let (livy, peer) = livy().await;
    let suite = Suite::start(peer).await;
    let id = suite.submit("Forgotten", None).await;
    suite.read_until(&id, &["RUNNING"]).await;
    livy.0.restart();
    let notices = suite.multiomix.wait_for_notices(1, PATIENCE).await.unwrap();
    assert_eq!(notices[0].path, format!("/{id}/"));
    let body = &notices[0].body;
    assert_eq!(body["state"], "FAILED", "{body}");
    assert!(
        body["stateDetails"]
            .as_str()
            .unwrap()
            .contains("Livy no longer holds batch 0"),
        "{body}"
    );
    assert!(common::is_multiomix_date(&body["finishedAt"]), "{body}");
    let (_, job) = suite.get(&format!("/job/{id}")).await;
    assert_eq!(job["state"], "FAILED");
}

#[tokio::test]
async fn running_batches_are_read_one_page_a_round_and_the_notice_leaves_without_a_patch() {
    let (livy, peer) = livy().await;
    let suite = Suite::start(peer).await;
    let mut ids = Vec::new();
    for i in 0..5 {
        let id = suite.submit(&format!("Batch{i}"), None).await;
        assert!(livy
            .0
            .set_state(batch_of(&livy.0, &id), BatchState::Running));
        ids.push(id);
    }
    let alone = livy.0.calls("GET /batches/{id}");
    let listed = livy.0.calls("GET /batches");
    until("several rounds", || {
        livy.0.calls("GET /batches") >= listed + 4
    })
    .await;
    assert_eq!(
        livy.0.calls("GET /batches/{id}"),
        alone,
        "no batch the page shows is read alone"
    );

    assert!(livy
        .0
        .set_state(batch_of(&livy.0, &ids[2]), BatchState::Success));
    let notices = suite.multiomix.wait_for_notices(1, PATIENCE).await.unwrap();
    assert_eq!(notices[0].path, format!("/{}/", ids[2]));
    assert_eq!(notices[0].body["state"], "COMPLETED");
    assert_eq!(livy.0.calls("GET /batches/{id}"), alone);

    // A batch the page does not show is read alone.
    assert!(livy.0.forget(batch_of(&livy.0, &ids[4])));
    let notices = suite.multiomix.wait_for_notices(2, PATIENCE).await.unwrap();
    assert_eq!(notices[1].path, format!("/{}/", ids[4]));
    assert!(livy.0.calls("GET /batches/{id}") > alone);
}

#[tokio::test]
async fn after_a_lost_store_the_deployments_batches_are_adopted_and_no_one_elses() {
    let (livy, peer) = livy().await;
    let (running, ended) = {
        let first = Suite::start(peer.clone()).await;
        let running = first.submit("StillRunning", None).await;
        let ended = first.submit("EndsMeanwhile", None).await;
        first.read_until(&running, &["RUNNING"]).await;
        first.read_until(&ended, &["RUNNING"]).await;
        (running, ended)
    };
    // While no service watches: one batch ends, and others' batches come and go.
    assert!(livy
        .0
        .set_state(batch_of(&livy.0, &ended), BatchState::Success));
    let other_lab = livy.0.insert_batch(
        Some("other-lab:lv0123456789abcdef0123456789abcdef:BBHA_1:Theirs"),
        BatchState::Running,
    );
    livy.0.insert_batch(None, BatchState::Running);
    livy.0
        .insert_batch(Some("PySparkShell"), BatchState::Running);

    // A new service with an empty store.
    let second = Suite::start(peer).await;
    let notices = second
        .multiomix
        .wait_for_notices(1, PATIENCE)
        .await
        .unwrap();
    assert_eq!(notices[0].path, format!("/{ended}/"));
    assert_eq!(notices[0].body["state"], "COMPLETED");
    assert_eq!(notices[0].body["name"], "EndsMeanwhile");
    let (_, listed) = second.get("/jobs").await;
    let mut ids: Vec<&str> = listed["jobs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|j| j["id"].as_str().unwrap())
        .collect();
    ids.sort();
    let mut ours = vec![running.as_str(), ended.as_str()];
    ours.sort();
    assert_eq!(ids, ours, "{listed}");
    let (status, job) = second.get(&format!("/job/{running}")).await;
    assert_eq!(status, 200);
    assert_eq!(
        (job["state"].as_str(), job["name"].as_str()),
        (Some("RUNNING"), Some("StillRunning"))
    );
    let run = second
        .backend
        .describe(&multiomix_aws_emr::job::JobId::parse(&running).unwrap())
        .await
        .unwrap();
    assert!(run.tags["app-name"].starts_with("exp-"), "{run:?}");
    // Another deployment's batch is not this one's to read or cancel.
    let theirs = "lv0123456789abcdef0123456789abcdef";
    assert_eq!(second.get(&format!("/job/{theirs}")).await.0, 404);
    assert_eq!(second.delete(&format!("/job/{theirs}")).await.0, 404);
    assert!(livy.0.batch(other_lab).is_some(), "left alone");
}

#[tokio::test]
async fn a_start_whose_answer_was_lost_finds_its_batch_and_makes_no_second() {
    let (livy, peer) = livy().await;
    // Livy calls may take 1.6 s; this one answers after 3 s, having made its batch.
    let suite = Suite::start_with(peer, &[("REQUEST_TIMEOUT", "2")]).await;
    livy.0.answer_posts_after(Duration::from_secs(3));
    let post = || async {
        let r = suite
            .http
            .post(suite.url("/job"))
            .header("Idempotency-Key", "lost-answer")
            .json(&common::multiomix_body())
            .send()
            .await
            .unwrap();
        let status = r.status().as_u16();
        (status, r.json::<Value>().await.unwrap())
    };
    let (status, first) = post().await;
    assert_eq!(status, 201, "{first}");
    let (status, again) = post().await;
    assert!(status == 201 || status == 200, "{status}: {again}");
    assert_eq!(first["id"], again["id"]);
    assert_eq!(livy.0.requests().len(), 1);
    assert_eq!(livy.0.batch_ids().len(), 1);
}

#[tokio::test]
async fn two_starts_with_one_client_token_make_one_batch() {
    let fake = FakeLivy::builder()
        .basic_auth(peers::LIVY_USER, peers::LIVY_PASSWORD)
        .start()
        .await;
    let dir = tempfile::tempdir().unwrap();
    let backend = backend_alone(&fake, dir.path()).await;
    let spec = validate_request(&harness::own_body("Twice")).unwrap();
    let (a, b) = tokio::join!(
        backend.start(&spec, "same-token"),
        backend.start(&spec, "same-token")
    );
    assert_eq!(a.unwrap(), b.unwrap());
    assert_eq!(fake.batch_ids().len(), 1);
    // A later start with that token asks Livy nothing.
    let posts = fake.calls("POST /batches");
    assert!(backend.start(&spec, "same-token").await.is_ok());
    assert_eq!(fake.calls("POST /batches"), posts);
}

#[tokio::test]
async fn credentials_livy_refuses_leave_the_service_not_ready() {
    let (livy, peer) = livy().await;
    let suite = Suite::start_with(peer, &[("LIVY_PASSWORD", "wrong")]).await;
    let (status, ready) = suite.get("/ready").await;
    assert_eq!(status, 503, "{ready}");
    let refused = livy.0.refused();
    assert!(
        !refused.is_empty() && refused.iter().all(|(_, status)| *status == 401),
        "{refused:?}"
    );
    let r = suite
        .http
        .post(suite.url("/job"))
        .json(&common::multiomix_body())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 502, "a refusal, not an outage");
    assert!(livy.0.batch_ids().is_empty());
}

#[tokio::test]
async fn a_gateway_that_answers_404_to_everything_loses_no_job() {
    let (livy, peer) = livy().await;
    let suite = Suite::start(peer).await;
    let id = suite.submit("BehindAGateway", None).await;
    suite.read_until(&id, &["RUNNING"]).await;

    livy.0.answer_not_found_everywhere(true);
    let listed = livy.0.calls("GET /batches");
    until("rounds during the outage", || {
        livy.0.calls("GET /batches") >= listed + 4
    })
    .await;
    let (status, answer) = suite.get(&format!("/job/{id}")).await;
    assert_eq!(status, 503, "{answer}");
    let (status, _) = suite.get("/ready").await;
    assert_eq!(status, 503);
    assert_eq!(
        suite.multiomix.count(),
        0,
        "no notice for a job that still runs"
    );

    livy.0.answer_not_found_everywhere(false);
    let job = suite.read_until(&id, &["RUNNING"]).await;
    assert_eq!(job["stateDetails"], Value::Null, "{job}");
    assert!(livy
        .0
        .set_state(batch_of(&livy.0, &id), BatchState::Success));
    let notices = suite.multiomix.wait_for_notices(1, PATIENCE).await.unwrap();
    assert_eq!(notices[0].body["state"], "COMPLETED");
}
