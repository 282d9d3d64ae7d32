//! The behaviour every backend owes the API, written once.

use std::sync::Arc;

use multiomix_aws_emr::backend::{BackendError, Submitted};
use multiomix_aws_emr::job::{validate_request, JobId};
use serde_json::json;

use crate::common::is_multiomix_date;
use crate::common::PATIENCE;
use crate::conformance::harness::{body, own_body, Peer, Suite};

const STATES: [&str; 7] = [
    "PENDING",
    "SUBMITTED",
    "RUNNING",
    "FAILED",
    "CANCELLED",
    "CANCEL_PENDING",
    "COMPLETED",
];

/// A start gives 201, `Location`, and the backend receives exactly the fields the
/// contract lists for it.
pub async fn start_sends_the_exact_fields(peer: Arc<dyn Peer>) {
    let suite = Suite::start(peer).await;
    let name = "ExactFields";
    suite.peer.plan(suite.dir.path(), name, None).await;
    let r = suite
        .http
        .post(suite.url("/job"))
        .json(&body(name))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    let location = r.headers()["location"].to_str().unwrap().to_owned();
    let id = r.json::<serde_json::Value>().await.unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(location, format!("/job/{id}"));
    assert!(id.len() <= 100 && !id.contains('/'), "{id}");

    let got = suite.peer.submitted(suite.dir.path(), &id, name).await;
    assert_eq!(got.name, name);
    assert!(
        got.entry_point.ends_with("scripts/main.py") || got.entry_point.ends_with("/main.py"),
        "{got:?}"
    );
    assert_eq!(
        got.arguments,
        [
            "--app-name",
            "exp-42-app",
            "--molecules-dataset",
            "exp-42-app/molecules.csv",
            "--n-stars",
            "15",
            "--cv-folds",
            "10"
        ]
    );
    assert!(
        got.parameters.starts_with("--py-files "),
        "{}",
        got.parameters
    );
    assert!(
        got.parameters.contains("--conf spark.driver.memory=4g"),
        "{}",
        got.parameters
    );
    // The Python workers' room, sized for TCGA data, on every backend but EMR on EKS,
    // whose parameters stay the contract's list unless the variable is set.
    assert_eq!(
        got.parameters
            .contains("--conf spark.executor.memoryOverhead=2g"),
        !suite.peer.abilities().contract_parameters,
        "{}",
        got.parameters
    );
    assert_eq!(
        got.driver_env.get("JOB_NAME").map(String::as_str),
        Some(name),
        "{got:?}"
    );
    assert!(got.driver_env.contains_key("DATASETS_PATH"), "{got:?}");
    assert!(got.driver_env.contains_key("RESULTS_PATH"), "{got:?}");
    // Every backend hands the driver the job's own progress token, 64 hex digits, never as
    // an entry-point argument.
    let token = got
        .driver_env
        .get("PROGRESS_TOKEN")
        .unwrap_or_else(|| panic!("no PROGRESS_TOKEN for the driver: {got:?}"));
    assert_eq!(token.len(), 64, "{got:?}");
    assert!(token.bytes().all(|b| b.is_ascii_hexdigit()), "{got:?}");
    assert!(!got.arguments.iter().any(|a| a.contains(token.as_str())));
    // What only the EMR flavours have: the log location, the role and the tags that mark
    // this deployment's runs.
    if let Some(log_uri) = &got.log_uri {
        assert_eq!(log_uri, "s3://multiomix-bucket/joblogs");
        assert_eq!(got.entry_point, "s3://multiomix-bucket/scripts/main.py");
        assert_eq!(
            got.execution_role.as_deref(),
            Some(crate::conformance::harness::ROLE)
        );
        assert_eq!(
            got.tags.get("managed-by").map(String::as_str),
            Some("multiomix-aws-emr"),
            "{got:?}"
        );
        assert_eq!(
            got.tags.get("callback-host").map(String::as_str),
            Some("multiomix-aws-emr"),
            "{got:?}"
        );
    }
}

/// A new job reads back with its name, a known state and Multiomix's date format.
pub async fn describe_shows_the_job(peer: Arc<dyn Peer>) {
    let suite = Suite::start(peer).await;
    let id = suite.submit("Described", None).await;
    let (status, job) = suite.get(&format!("/job/{id}")).await;
    assert_eq!(status, 200, "{job}");
    assert_eq!(job["id"], id.as_str());
    assert_eq!(job["name"], "Described");
    assert!(STATES.iter().any(|s| job["state"] == *s), "{job}");
    assert!(is_multiomix_date(&job["createdAt"]), "{job}");
    if !["COMPLETED", "FAILED", "CANCELLED"]
        .iter()
        .any(|s| job["state"] == *s)
    {
        assert_eq!(job["finishedAt"], serde_json::Value::Null, "{job}");
    }
}

/// Runs reach each final state the peer can lead them to, with a `finishedAt`.
pub async fn runs_reach_their_final_state(peer: Arc<dyn Peer>) {
    let endings = peer.abilities().endings;
    if endings.is_empty() {
        eprintln!("this peer cannot lead a run to COMPLETED or FAILED; cancel covers its end");
        return;
    }
    let suite = Suite::start(peer).await;
    for (i, ending) in endings.iter().enumerate() {
        let id = suite.submit(&format!("Final{i}"), Some(*ending)).await;
        suite.peer.end(&id, *ending).await;
        if suite.peer.abilities().needs_callback {
            assert_eq!(suite.patch(&id).await, 204);
        }
        let job = suite.read_until(&id, &[ending.state()]).await;
        assert!(
            is_multiomix_date(&job["finishedAt"]),
            "a final state has a finishedAt: {job}"
        );
        assert!(
            job["finishedAt"].as_str() >= job["createdAt"].as_str(),
            "{job}"
        );
    }
}

/// Cancelling a running job answers 200 and the job goes CANCEL_PENDING or CANCELLED;
/// cancelling a finished one answers 409.
pub async fn cancel_running_then_finished(peer: Arc<dyn Peer>) {
    let suite = Suite::start(peer).await;
    if suite.peer.abilities().can_hold {
        let id = suite.submit("Cancelled", None).await;
        let (status, answer) = suite.delete(&format!("/job/{id}")).await;
        assert_eq!(status, 200, "{answer}");
        assert_eq!(answer, json!({ "id": id }));
        suite
            .read_until(&id, &["CANCEL_PENDING", "CANCELLED"])
            .await;
        suite.read_until(&id, &["CANCELLED"]).await;
        let (status, answer) = suite.delete(&format!("/job/{id}")).await;
        assert_eq!(status, 409, "{answer}");
    } else {
        eprintln!("this peer cannot keep a run running; only the 409 of a finished one is shown");
    }
    if let Some(ending) = suite.peer.abilities().endings.first().copied() {
        let id = suite.submit("FinishedFirst", Some(ending)).await;
        suite.peer.end(&id, ending).await;
        suite.read_until(&id, &[ending.state()]).await;
        let (status, answer) = suite.delete(&format!("/job/{id}")).await;
        assert_eq!(status, 409, "{answer}");
    }
}

/// An id that names no run is a 404 for reading and for cancelling.
pub async fn unknown_is_404(peer: Arc<dyn Peer>) {
    let suite = Suite::start(peer).await;
    let unknown = suite.peer.unknown_id();
    assert_eq!(suite.get(&format!("/job/{unknown}")).await.0, 404);
    assert_eq!(suite.delete(&format!("/job/{unknown}")).await.0, 404);
    let unknown = JobId::parse(unknown).unwrap();
    assert!(matches!(
        suite.backend.describe(&unknown).await,
        Err(BackendError::NotFound)
    ));
    assert!(matches!(
        suite.backend.cancel(&unknown).await,
        Err(BackendError::NotFound)
    ));
}

/// `GET /jobs` lists the job, and a state filter keeps or drops it.
pub async fn list_and_filter(peer: Arc<dyn Peer>) {
    let suite = Suite::start(peer).await;
    let id = suite.submit("Listed", None).await;
    let listed = |jobs: &serde_json::Value| {
        jobs["jobs"]
            .as_array()
            .unwrap()
            .iter()
            .any(|j| j["id"] == id.as_str())
    };
    let (status, all) = suite.get("/jobs").await;
    assert_eq!(status, 200, "{all}");
    assert!(listed(&all), "{all}");
    // A run may move on by itself (the local one goes from PENDING to RUNNING to an end in
    // moments): filter by a state read before and after the listing, so the run was in it
    // while it was listed.
    let state_of = |job: serde_json::Value| job["state"].as_str().unwrap().to_owned();
    let mut steady = None;
    for _ in 0..50 {
        let before = state_of(suite.get(&format!("/job/{id}")).await.1);
        let (_, same) = suite.get(&format!("/jobs?state={before}")).await;
        let after = state_of(suite.get(&format!("/job/{id}")).await.1);
        if before == after {
            steady = Some((before, same));
            break;
        }
    }
    let (state, same) = steady.expect("the run kept changing state while it was listed");
    assert!(listed(&same), "filtered by its own state {state}: {same}");
    let other = if state == "COMPLETED" {
        "FAILED"
    } else {
        "COMPLETED"
    };
    let (_, others) = suite.get(&format!("/jobs?state={other}")).await;
    assert!(!listed(&others), "filtered by {other}: {others}");
}

/// One rule for `app-name` on every backend, the job script's: what it would refuse is a
/// 400 naming `app-name` before anything is staged or started.
pub async fn an_app_name_the_job_refuses_is_a_400_and_starts_nothing(peer: Arc<dyn Peer>) {
    let suite = Suite::start(peer).await;
    // The longest name the rule allows is one every backend takes.
    let mut request = body("LongestAppName");
    request["entrypoint_arguments"][0]["value"] = json!("B".repeat(128));
    suite
        .peer
        .plan(suite.dir.path(), "LongestAppName", None)
        .await;
    crate::common::submit_job(&suite.http, &suite.base, &request).await;
    let name = "RefusedAppName";
    let too_long = "a".repeat(129);
    for app in ["_BBHA_1", ".hidden", "BBHA/1", too_long.as_str()] {
        let mut request = body(name);
        request["entrypoint_arguments"][0]["value"] = json!(app);
        let r = suite
            .http
            .post(suite.url("/job"))
            .json(&request)
            .send()
            .await
            .unwrap();
        let status = r.status().as_u16();
        let answer: serde_json::Value = r.json().await.unwrap();
        assert_eq!(status, 400, "{app}: {answer}");
        assert_eq!(
            answer["field"], "entrypoint_arguments[app-name].value",
            "{app}: {answer}"
        );
        assert!(
            answer["message"].as_str().unwrap().contains("app-name"),
            "{answer}"
        );
    }
    let (status, all) = suite.get("/jobs").await;
    assert_eq!(status, 200, "{all}");
    assert!(
        !all["jobs"]
            .as_array()
            .unwrap()
            .iter()
            .any(|j| j["name"] == name),
        "nothing started: {all}"
    );
}

/// A repeated Idempotency-Key gives one job; so does a repeated client token at the
/// backend, where the peer honours it.
pub async fn a_repeated_key_gives_one_job(peer: Arc<dyn Peer>) {
    let suite = Suite::start(peer).await;
    suite.peer.plan(suite.dir.path(), "Once", None).await;
    let mut ids = Vec::new();
    for _ in 0..2 {
        let r = suite
            .http
            .post(suite.url("/job"))
            .header("Idempotency-Key", "conformance-key-1")
            .json(&body("Once"))
            .send()
            .await
            .unwrap();
        assert!(r.status() == 201 || r.status() == 200, "{}", r.status());
        ids.push(r.json::<serde_json::Value>().await.unwrap()["id"].clone());
    }
    assert_eq!(ids[0], ids[1]);
    if suite.peer.abilities().honours_client_token {
        suite.peer.plan(suite.dir.path(), "Token", None).await;
        let spec = validate_request(&body("Token")).unwrap();
        let a = suite
            .backend
            .start(&spec, "conformance-token")
            .await
            .unwrap();
        let b = suite
            .backend
            .start(&spec, "conformance-token")
            .await
            .unwrap();
        assert_eq!(a, b);
        suite.peer.plan(suite.dir.path(), "OtherToken", None).await;
        let other = validate_request(&body("OtherToken")).unwrap();
        let c = suite
            .backend
            .start(&other, "conformance-token-2")
            .await
            .unwrap();
        assert_ne!(a, c, "another token is another job");
    } else {
        eprintln!("this peer ignores client tokens; only the service's Idempotency-Key is shown");
    }
}

/// Once the job ends, its notice reaches Multiomix with the final state and dates. Where
/// the peer cannot end a run, a cancel ends it.
pub async fn the_notice_follows_the_end(peer: Arc<dyn Peer>) {
    let suite = Suite::start(peer).await;
    let (id, state) = match suite.peer.abilities().endings.first().copied() {
        Some(ending) => {
            let id = suite.submit("Noticed", Some(ending)).await;
            suite.peer.end(&id, ending).await;
            (id, ending.state())
        }
        None => {
            let id = suite.submit("Noticed", None).await;
            assert_eq!(suite.delete(&format!("/job/{id}")).await.0, 200);
            (id, "CANCELLED")
        }
    };
    if suite.peer.abilities().needs_callback {
        assert_eq!(suite.patch(&id).await, 204);
    }
    let notices = suite.multiomix.wait_for_notices(1, PATIENCE).await.unwrap();
    assert_eq!(notices[0].path, format!("/{id}/"));
    let body = &notices[0].body;
    assert_eq!(body["state"], state, "{body}");
    assert!(is_multiomix_date(&body["createdAt"]), "{body}");
    assert!(is_multiomix_date(&body["finishedAt"]), "{body}");
}

/// A start whose record was lost (the process stopped, or the store failed, between the
/// backend's answer and the service's write) is found by its client token, as the
/// reconciler looks for it; a token nothing was started with is not found.
pub async fn an_unrecorded_start_is_found_by_its_client_token(peer: Arc<dyn Peer>) {
    let suite = Suite::start(peer).await;
    // The reconciler looks from the submission's time. moto records every run as created
    // at midnight (UTC) of its day, so the window here opens just before that: for the
    // other peers it still holds the run, and nothing else of theirs.
    let now = time::OffsetDateTime::now_utc();
    let since = now.replace_time(time::Time::MIDNIGHT) - time::Duration::seconds(1);
    suite.peer.plan(suite.dir.path(), "Unrecorded", None).await;
    let spec = validate_request(&own_body("Unrecorded")).unwrap();
    let started = suite.backend.start(&spec, "key-unrecorded").await.unwrap();
    match suite.backend.find_submission("key-unrecorded", since).await {
        Ok(Submitted::Started(run)) => {
            assert_eq!(run.id, started);
            assert!(run.ours, "a job this service started is its own");
        }
        other => panic!("the started submission was not found: {other:?}"),
    }
    assert_eq!(
        suite
            .backend
            .find_submission("key-never-started", since)
            .await
            .unwrap(),
        Submitted::NotStarted
    );
}

/// Used by every peer's module: one test per case.
#[macro_export]
macro_rules! conformance {
    ($peer:expr) => {
        $crate::conformance!(@cases $peer;
            start_sends_the_exact_fields,
            describe_shows_the_job,
            runs_reach_their_final_state,
            cancel_running_then_finished,
            unknown_is_404,
            list_and_filter,
            a_repeated_key_gives_one_job,
            an_app_name_the_job_refuses_is_a_400_and_starts_nothing,
            an_unrecorded_start_is_found_by_its_client_token,
            the_notice_follows_the_end
        );
    };
    (@cases $peer:expr; $($case:ident),*) => {
        $(
            #[tokio::test]
            async fn $case() {
                let Some(peer) = $peer.await else { return };
                $crate::conformance::cases::$case(peer).await;
            }
        )*
    };
}

#[allow(unused_imports)]
pub(crate) use conformance;
