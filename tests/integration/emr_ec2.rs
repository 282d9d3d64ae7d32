//! What only the EMR on EC2 backend does; the behaviour every backend shares is in the
//! conformance suite (tests/integration/conformance), whose harness and peers this reuses.
//!
//! - every step state reads back as one Multiomix knows, a failure with its reason and
//!   log file;
//! - with no sidecar, running steps are read in batches and the notice leaves without
//!   any `PATCH`;
//! - a cancel EMR refuses is a 409 with EMR's reason;
//! - arguments over EMR's 10,240 characters are a 400 and no step;
//! - a start whose answer was lost is settled by finding the step through ListSteps;
//! - `/ready` names a cluster that is not WAITING or RUNNING;
//! - the "done when", on moto's EMR server with a cluster made by RunJobFlow.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use multiomix_aws_emr::backend::JobBackend;
use multiomix_aws_emr::config::Config;
use multiomix_aws_emr::job::{validate_request, JobId};
use multiomix_fakes::{FakeEmrEc2, StepState};
use serde_json::{json, Value};

use crate::common;
use crate::common::app::Connected;
use crate::common::is_multiomix_date;
use crate::common::moto::Moto;
use crate::common::PATIENCE;
use crate::conformance::harness::{body, Abilities, Ending, Peer, Submitted, Suite};
use crate::conformance::peers::{
    ec2_backend, ec2_client, ec2_submitted, ec2_vars, step_of, FakeEc2,
};

async fn fake() -> (Arc<FakeEc2>, Arc<dyn Peer>) {
    let fake = Arc::new(FakeEc2(FakeEmrEc2::start().await));
    let peer: Arc<dyn Peer> = fake.clone();
    (fake, peer)
}

#[tokio::test]
async fn every_step_state_reads_back_as_one_multiomix_knows_and_a_failure_says_why_and_where() {
    let (fake, peer) = fake().await;
    let suite = Suite::start(peer).await;
    let id = suite.submit("Moving", None).await;
    for (theirs, ours) in [
        (StepState::Pending, "PENDING"),
        (StepState::Running, "RUNNING"),
        (StepState::CancelPending, "CANCEL_PENDING"),
    ] {
        assert!(fake.0.set_state(&step_of(&id), theirs, ""));
        let (_, job) = suite.get(&format!("/job/{id}")).await;
        assert_eq!(job["state"], ours, "{theirs:?}: {job}");
        assert_eq!(job["finishedAt"], Value::Null, "{job}");
    }
    // Final states, each on a step of its own (a final job is never read again).
    for (theirs, ours) in [
        (StepState::Completed, "COMPLETED"),
        (StepState::Failed, "FAILED"),
        (StepState::Interrupted, "FAILED"),
        (StepState::Cancelled, "CANCELLED"),
    ] {
        let id = suite
            .submit(&format!("Final{}", theirs.as_str()), None)
            .await;
        assert!(fake.0.set_state(&step_of(&id), theirs, "Unknown error"));
        let job = suite.read_until(&id, &[ours]).await;
        assert!(is_multiomix_date(&job["finishedAt"]), "{job}");
        if theirs == StepState::Failed {
            let details = job["stateDetails"].as_str().unwrap();
            assert!(details.contains("Unknown error"), "{details}");
            assert!(
                details.contains(&format!(
                    "{}{}/steps/{}/stderr.gz",
                    fake.0.log_uri(),
                    fake.0.cluster_id(),
                    step_of(&id)
                )),
                "{details}"
            );
        }
        if theirs == StepState::Interrupted {
            let details = job["stateDetails"].as_str().unwrap();
            assert!(details.contains("interrupted"), "{details}");
        }
    }
    assert_eq!(fake.0.step_ids().len(), 5);
}

#[tokio::test]
async fn running_steps_are_read_in_batches_and_the_notice_leaves_without_a_patch() {
    let (fake, peer) = fake().await;
    let suite = Suite::start(peer).await;
    let mut ids = Vec::new();
    for i in 0..5 {
        let id = suite.submit(&format!("Batch{i}"), None).await;
        assert!(fake.0.set_state(&step_of(&id), StepState::Running, ""));
        ids.push(id);
    }
    let before = fake.0.calls("DescribeStep");
    // Several rounds (POLL_INTERVAL is 50 ms here) read the five steps by listing them.
    let listed = fake.0.calls("ListSteps");
    common::wait_until("four rounds of ListSteps", PATIENCE, || {
        fake.0.calls("ListSteps") >= listed + 4
    })
    .await;
    assert_eq!(
        fake.0.calls("DescribeStep"),
        before,
        "no step is read alone while it runs"
    );
    assert!(fake
        .0
        .set_state(&step_of(&ids[2]), StepState::Completed, ""));
    let notices = suite.multiomix.wait_for_notices(1, PATIENCE).await.unwrap();
    assert_eq!(notices[0].path, format!("/{}/", ids[2]));
    assert_eq!(notices[0].body["state"], "COMPLETED");
    assert_eq!(
        suite.multiomix.count(),
        1,
        "the running steps get no notice"
    );
}

#[tokio::test]
async fn a_cancel_emr_refuses_is_a_409_with_emrs_reason_and_an_accepted_one_is_cancel_pending() {
    let fake = Arc::new(FakeEc2(
        FakeEmrEc2::builder()
            .cancel_takes(Duration::from_secs(3600))
            .start()
            .await,
    ));
    let suite = Suite::start(fake.clone()).await;
    let id = suite.submit("Refused", None).await;
    assert!(fake.0.set_state(&step_of(&id), StepState::Running, ""));
    let reason = "Steps can be cancelled while running only on EMR 5.28.0 and later.";
    fake.0.refuse_running_cancels(Some(reason));
    let (status, answer) = suite.delete(&format!("/job/{id}")).await;
    assert_eq!(status, 409, "{answer}");
    assert!(answer.to_string().contains("5.28.0"), "{answer}");
    assert_eq!(suite.get(&format!("/job/{id}")).await.1["state"], "RUNNING");

    fake.0.refuse_running_cancels(None);
    let (status, answer) = suite.delete(&format!("/job/{id}")).await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(
        suite.get(&format!("/job/{id}")).await.1["state"],
        "CANCEL_PENDING"
    );
    // Asking again while EMR works on it is no error.
    assert_eq!(suite.delete(&format!("/job/{id}")).await.0, 200);
}

#[tokio::test]
async fn arguments_over_emrs_limit_are_a_400_and_no_step() {
    let (fake, peer) = fake().await;
    let suite = Suite::start(peer).await;
    let mut request = body("TooLong");
    request["entrypoint_arguments"] = json!([
        {"name": "app-name", "value": "exp-42-app"},
        {"name": "a", "value": "x".repeat(6000)},
        {"name": "b", "value": "y".repeat(6000)},
    ]);
    let r = suite
        .http
        .post(suite.url("/job"))
        .json(&request)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    let answer: Value = r.json().await.unwrap();
    assert!(answer.to_string().contains("10240"), "{answer}");
    assert_eq!(fake.0.calls("AddJobFlowSteps"), 0);
}

#[tokio::test]
async fn a_start_whose_answer_was_lost_is_settled_by_finding_the_step_through_list_steps() {
    let (fake, peer) = fake().await;
    let suite = Suite::start(peer.clone()).await;
    let config = Config::from_vars(
        ec2_vars(fake.0.cluster_id())
            .into_iter()
            .chain([("MULTIOMIX_URL".to_owned(), "http://127.0.0.1:9/".to_owned())]),
    )
    .unwrap();
    let spec = validate_request(&body("Settled")).unwrap();
    let first = suite.backend.start(&spec, "key-lost-answer").await.unwrap();
    // Another process (a restart) starts the same submission again: no second step.
    let (again, _) = ec2_backend(&fake.0.url(), &config).await;
    let second = again.start(&spec, "key-lost-answer").await.unwrap();
    assert_eq!(first, second);
    assert_eq!(fake.0.calls("AddJobFlowSteps"), 1);
    // Among many other steps of the cluster, some of the same name.
    fake.0
        .insert_steps(120, "Settled", StepState::Completed, &["spark-submit"]);
    let third = again.start(&spec, "key-lost-answer").await.unwrap();
    assert_eq!(first, third);
    // Another key is another step.
    let other = again.start(&spec, "another-key").await.unwrap();
    assert_ne!(first, other);
    assert_eq!(fake.0.calls("AddJobFlowSteps"), 2);
    // Starts of one new key at the same time add one step.
    let mut at_once = tokio::task::JoinSet::new();
    for _ in 0..5 {
        let (backend, spec) = (again.clone(), spec.clone());
        at_once.spawn(async move { backend.start(&spec, "key-at-once").await.unwrap() });
    }
    let ids = at_once.join_all().await;
    assert!(ids.iter().all(|id| *id == ids[0]), "{ids:?}");
    assert_eq!(fake.0.calls("AddJobFlowSteps"), 3);
}

/// The EMR client exactly as the service configures it (retries, per-try and per-call
/// timeouts within `call_timeout`), with the fixed test credentials.
async fn service_ec2_client(url: &str, call_timeout: Duration) -> aws_sdk_emr::Client {
    let sdk =
        multiomix_aws_emr::backend::emr::aws::sdk_config("us-east-1", Some(url), call_timeout)
            .await;
    let test = common::sdk_config(url);
    let conf = aws_sdk_emr::config::Builder::from(&sdk)
        .credentials_provider(test.credentials_provider().unwrap())
        .build();
    aws_sdk_emr::Client::from_conf(conf)
}

/// AddJobFlowSteps takes no client token: a try that added the step but whose answer came
/// too late must not be followed by another AddJobFlowSteps, whether the SDK's or the
/// service's, before the step is looked for. moto cannot show this: its server answers at
/// once and cannot be told to add a step and then hold its answer; the fake can.
#[tokio::test]
async fn a_start_whose_answer_comes_after_the_timeout_adds_exactly_one_step_and_adopts_it() {
    let fake = FakeEmrEc2::start().await;
    let config = Config::from_vars(
        ec2_vars(fake.cluster_id())
            .into_iter()
            .chain([("MULTIOMIX_URL".to_owned(), "http://127.0.0.1:9/".to_owned())]),
    )
    .unwrap();
    let mut settings = config.backend.emr_ec2().cloned().unwrap();
    // Three tries of 1.5 s each, as the service splits its call timeout: the SDK's first
    // backoff (under a second) leaves room for a second try within the call.
    settings.call_timeout = Duration::from_millis(4_500);
    let backend = multiomix_aws_emr::backend::emr::ec2::EmrEc2Backend::with_client(
        service_ec2_client(&fake.url(), settings.call_timeout).await,
        settings,
        config.spark.clone(),
        config.job.clone(),
    );
    fake.answer_adds_after(Duration::from_secs(5));
    let spec = validate_request(&body("LateAnswer")).unwrap();
    let started = backend.start(&spec, "key-late-answer").await;
    assert_eq!(
        fake.calls("AddJobFlowSteps"),
        1,
        "one AddJobFlowSteps: {started:?}"
    );
    let steps = fake.step_ids();
    assert_eq!(steps.len(), 1, "exactly one step: {steps:?}");
    let id = started.expect("the step added by the late try is adopted");
    assert_eq!(step_of(id.as_str()), steps[0]);
    // A repeated start of the same submission finds it too.
    fake.answer_adds_after(Duration::ZERO);
    assert_eq!(backend.start(&spec, "key-late-answer").await.unwrap(), id);
    assert_eq!(fake.step_ids().len(), 1);
}

#[tokio::test]
async fn an_unrecorded_submission_is_found_by_its_client_token_and_an_unstarted_one_is_not() {
    let (fake, peer) = fake().await;
    let suite = Suite::start(peer.clone()).await;
    let since = time::OffsetDateTime::now_utc() - time::Duration::minutes(1);
    let spec = validate_request(&body("Unrecorded")).unwrap();
    let started = suite.backend.start(&spec, "key-unrecorded").await.unwrap();
    // Other steps of the cluster, some of the same name, do not confuse it.
    fake.0
        .insert_steps(60, "Unrecorded", StepState::Running, &["spark-submit"]);
    match suite
        .backend
        .find_submission("key-unrecorded", since)
        .await
        .unwrap()
    {
        multiomix_aws_emr::backend::Submitted::Started(run) => {
            assert_eq!(run.id, started);
            assert!(run.ours, "a step this service added is its own");
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
    assert_eq!(fake.0.calls("AddJobFlowSteps"), 1);
}

/// Only EMR's "this step id is not valid" for a cluster that exists means that a step is
/// gone. A mistyped or replaced `EMR_CLUSTER_ID` is the backend being unusable: the jobs
/// read 503, and their state and notices stay as they were until the id is right again.
/// moto cannot show it: DescribeStep on a cluster it does not know fails inside moto (a
/// 500), and of a step it does not know answers an empty step, where EMR answers
/// InvalidRequestException for both; the fake answers as EMR does.
#[tokio::test]
async fn a_mistyped_cluster_id_leaves_running_jobs_running_with_their_notices_open() {
    let fake = Arc::new(FakeEc2(FakeEmrEc2::start().await));
    let store_dir = tempfile::tempdir().unwrap();
    let db = format!("sqlite:{}/store.db", store_dir.path().display());
    let ids = {
        let suite = Suite::start_with(fake.clone(), &[("DATABASE_URL", &db)]).await;
        let mut ids = Vec::new();
        for i in 0..3 {
            let id = suite.submit(&format!("Kept{i}"), None).await;
            assert!(fake.0.set_state(&step_of(&id), StepState::Running, ""));
            ids.push(id);
        }
        ids
    };

    // Restarted with a cluster id that names no cluster.
    let suite = Suite::start_with(
        fake.clone(),
        &[("DATABASE_URL", &db), ("EMR_CLUSTER_ID", "j-MISTYPED00000")],
    )
    .await;
    // The outbox reads the first two, whose notices open now; the reconciler lists the
    // third, still running.
    let (described, listed) = (fake.0.calls("DescribeStep"), fake.0.calls("ListSteps"));
    let (patched, listed_only) = ids.split_at(2);
    for id in patched {
        assert_eq!(suite.patch(id).await, 204, "the notice opens");
    }
    let read_again = |times: usize| {
        let fake = fake.clone();
        async move {
            common::wait_for("the jobs to be read again", PATIENCE, || {
                let calls = (fake.0.calls("DescribeStep"), fake.0.calls("ListSteps"));
                let read = calls.0 >= described + times && calls.1 >= listed + times;
                std::future::ready(read.then_some(()).ok_or_else(|| fake.0.call_counts()))
            })
            .await
        }
    };
    read_again(2).await;
    let store = multiomix_aws_emr::store::Store::connect(&db).await.unwrap();
    let nothing_given_up = || async {
        for id in &ids {
            let job = JobId::parse(id).unwrap();
            assert_eq!(
                store.job_final_state(&job).await.unwrap(),
                Some(None),
                "job {id} is not given up as UNKNOWN"
            );
        }
        for id in patched {
            let notice = store
                .notice(&multiomix_aws_emr::job::JobId::parse(id).unwrap())
                .await
                .unwrap()
                .unwrap();
            assert!(notice.status.is_open(), "{notice:?}");
        }
        for id in listed_only {
            assert_eq!(
                store
                    .notice(&multiomix_aws_emr::job::JobId::parse(id).unwrap())
                    .await
                    .unwrap(),
                None,
                "{id}"
            );
        }
    };
    nothing_given_up().await;
    // Read again and again, and still nothing given up.
    read_again(6).await;
    nothing_given_up().await;
    for id in &ids {
        let (status, job) = suite.get(&format!("/job/{id}")).await;
        assert_eq!(status, 503, "{job}");
        assert_eq!(job["error"], "unavailable", "{job}");
    }
    let (status, jobs) = suite.get("/jobs").await;
    assert_eq!(status, 503, "{jobs}");
    drop(suite);

    // With the right id again the jobs read RUNNING, and an ending is notified.
    let suite = Suite::start_with(fake.clone(), &[("DATABASE_URL", &db)]).await;
    for id in &ids {
        let (status, job) = suite.get(&format!("/job/{id}")).await;
        assert_eq!(
            (status, job["state"].as_str()),
            (200, Some("RUNNING")),
            "{job}"
        );
    }
    assert!(fake
        .0
        .set_state(&step_of(&ids[0]), StepState::Completed, ""));
    let notices = suite.multiomix.wait_for_notices(1, PATIENCE).await.unwrap();
    assert_eq!(notices[0].path, format!("/{}/", ids[0]));
    assert_eq!(notices[0].body["state"], "COMPLETED");
}

#[tokio::test]
async fn get_job_shows_where_the_step_logs_are() {
    let (fake, peer) = fake().await;
    let suite = Suite::start(peer).await;
    let id = suite.submit("Logs", None).await;
    let (status, job) = suite.get(&format!("/job/{id}")).await;
    assert_eq!(status, 200);
    assert_eq!(
        job["logUri"],
        json!(format!(
            "s3://lab-emr-logs/elasticmapreduce/{}/steps/{}/",
            fake.0.cluster_id(),
            step_of(&id)
        ))
    );
}

#[tokio::test]
async fn a_terminated_cluster_is_not_ready_and_says_why() {
    let (fake, peer) = fake().await;
    fake.0
        .set_cluster_state("TERMINATED", "USER_REQUEST", "Terminated by user request");
    let suite = Suite::start_with(peer, &[("API_TOKEN", "ops-token")]).await;
    let (status, body) = suite.get("/ready").await;
    assert_eq!(status, 503, "{body}");
    assert_eq!(
        body["problems"],
        json!(["emr-ec2 backend: unavailable"]),
        "without the token, a short reason"
    );
    let (status, body) = suite.get_with_token("/ready", "ops-token").await;
    assert_eq!(status, 503);
    let problems = body["problems"].to_string();
    assert!(problems.contains("TERMINATED"), "{problems}");
    assert!(
        problems.contains("Terminated by user request"),
        "{problems}"
    );
    assert!(problems.contains(fake.0.cluster_id()), "{problems}");
}

#[tokio::test]
async fn a_waiting_cluster_is_ready() {
    let (_fake, peer) = fake().await;
    let suite = Suite::start(peer).await;
    let (status, body) = suite.get("/ready").await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["backend"], "emr-ec2");
}

#[tokio::test]
async fn an_unknown_id_of_another_backends_format_is_404_without_asking_emr() {
    let (fake, peer) = fake().await;
    let suite = Suite::start(peer).await;
    for id in ["0000000000000000000", "00f0000000000000"] {
        assert_eq!(suite.get(&format!("/job/{id}")).await.0, 404);
        assert!(suite
            .backend
            .describe(&JobId::parse(id).unwrap())
            .await
            .is_err());
    }
    assert_eq!(fake.0.calls("DescribeStep"), 0);
}

// ---- moto ----------------------------------------------------------------------------

/// moto's EMR server with a cluster made by RunJobFlow. moto never completes a step (the
/// first is RUNNING, the others PENDING, for ever), answers DescribeStep of an unknown
/// step with an empty answer, and has no CancelSteps (it answers an error). So it cannot
/// show an end, a notice or a cancel: the fake shows those.
struct MotoEc2 {
    moto: Moto,
    cluster: String,
}

async fn moto_ec2() -> Option<Arc<MotoEc2>> {
    let moto = common::moto::moto().await?;
    let out = ec2_client(&moto.url)
        .run_job_flow()
        .name("lab-cluster")
        .release_label("emr-6.15.0")
        .log_uri("s3://lab-emr-logs/elasticmapreduce/")
        .job_flow_role("EMR_EC2_DefaultRole")
        .service_role("EMR_DefaultRole")
        .instances(
            aws_sdk_emr::types::JobFlowInstancesConfig::builder()
                .master_instance_type("m5.xlarge")
                .instance_count(1)
                .keep_job_flow_alive_when_no_steps(true)
                .build(),
        )
        .send()
        .await
        .expect("moto makes a cluster");
    let cluster = out.job_flow_id().unwrap().to_owned();
    Some(Arc::new(MotoEc2 { moto, cluster }))
}

#[async_trait]
impl Peer for MotoEc2 {
    fn vars(&self, _: &Path) -> Vec<(String, String)> {
        ec2_vars(&self.cluster)
    }
    async fn connect(&self, config: &Config) -> Connected {
        ec2_backend(&self.moto.url, config).await
    }
    fn abilities(&self) -> Abilities {
        Abilities {
            endings: &[],
            can_hold: true,
            honours_client_token: true,
            needs_callback: false,
            contract_parameters: false,
        }
    }
    async fn end(&self, _: &str, _: Ending) {}
    async fn submitted(&self, _: &Path, id: &str, _: &str) -> Submitted {
        ec2_submitted(&self.moto.url, &self.cluster, id).await
    }
    fn unknown_id(&self) -> &'static str {
        "s-0000000000000"
    }
}

/// The "done when", in order, on a peer nobody here wrote.
#[tokio::test]
async fn done_when_on_moto_a_bbha_request_is_one_step_with_the_right_arguments_read_and_listed() {
    let Some(moto) = moto_ec2().await else {
        return;
    };
    let suite = Suite::start(moto.clone()).await;
    // Multiomix's BBHA request gives 201.
    let id = suite.submit("BreastCancerBBHA", None).await;
    assert!(id.starts_with("s-") && id.len() <= 100, "{id}");
    // The step is there with the right arguments, read back with DescribeStep.
    let got = suite
        .peer
        .submitted(suite.dir.path(), &id, "BreastCancerBBHA")
        .await;
    assert_eq!(got.name, "BreastCancerBBHA");
    let app = got.arguments[1].clone();
    assert_eq!(
        got.arguments,
        [
            "--app-name",
            &app,
            "--molecules-dataset",
            &format!("{app}/molecules.csv"),
            "--n-stars",
            "15",
            "--cv-folds",
            "10"
        ]
    );
    assert!(
        got.parameters
            .starts_with("--py-files s3://multiomix-bucket/py-files/scripts.zip --conf "),
        "{}",
        got.parameters
    );
    assert_eq!(got.driver_env["JOB_NAME"], "BreastCancerBBHA");
    assert_eq!(got.driver_env["DATASETS_PATH"], "/var/data");
    assert_eq!(got.driver_env["RESULTS_PATH"], "/var/results");
    // GET /job/{id} reads it (moto holds it RUNNING).
    let (status, job) = suite.get(&format!("/job/{id}")).await;
    assert_eq!(status, 200, "{job}");
    assert_eq!(job["id"], id.as_str());
    assert_eq!(job["name"], "BreastCancerBBHA");
    assert!(
        job["state"] == "RUNNING" || job["state"] == "PENDING",
        "{job}"
    );
    assert!(is_multiomix_date(&job["createdAt"]), "{job}");
    assert_eq!(
        job["logUri"],
        json!(format!(
            "s3://lab-emr-logs/elasticmapreduce/{}/steps/{}/",
            moto.cluster,
            step_of(&id)
        ))
    );
    // GET /jobs lists it, and a second job.
    let second = suite.submit("BreastCancerBBHA2", None).await;
    let (status, listed) = suite.get("/jobs").await;
    assert_eq!(status, 200, "{listed}");
    let ids: Vec<&str> = listed["jobs"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|j| j["id"].as_str())
        .collect();
    assert!(
        ids.contains(&id.as_str()) && ids.contains(&second.as_str()),
        "{listed}"
    );
    // An unknown id gives 404.
    assert_eq!(suite.get("/job/s-0000000000000").await.0, 404);
    // /ready: moto's cluster is WAITING.
    assert_eq!(suite.get("/ready").await.0, 200);
    // The same client token finds the step again through moto's ListSteps.
    let spec = validate_request(&body("BreastCancerBBHA")).unwrap();
    let a = suite.backend.start(&spec, "moto-token").await.unwrap();
    let b = suite.backend.start(&spec, "moto-token").await.unwrap();
    assert_eq!(a, b);
    // moto has no CancelSteps and answers it with an error: the service passes EMR's
    // refusal on as a 502 rather than answering 200. The fake shows accepted cancels
    // and EMR's own refusals (409).
    let (status, answer) = suite.delete(&format!("/job/{id}")).await;
    assert_eq!(status, 502, "{answer}");
    assert!(
        answer["message"]
            .as_str()
            .unwrap()
            .starts_with("CancelSteps"),
        "{answer}"
    );
}
