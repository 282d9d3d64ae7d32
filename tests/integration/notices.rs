//! The job-end notice: from the sidecar's callback (or none) to Multiomix, through
//! Multiomix being down, refusing, and the service restarting.

use std::sync::Arc;
use std::time::Duration;

use multiomix_fakes::{FakeEmr, FakeMultiomix, JobState, NewJob, Reply};
use serde_json::Value;

use crate::common;
use crate::common::PATIENCE;
use crate::common::{is_multiomix_date, multiomix_body, spawn_app, spawn_app_with, TestApp};

/// Nothing can be sent any more: the job's notice is closed as `status` with every attempt
/// recorded (one a request Multiomix received), no notice is open, and a pass of the
/// outbox finds nothing due. What a fixed wait followed by "nothing arrived" meant to
/// show, without depending on how long the wait was.
async fn assert_nothing_more_to_send(app: &common::TestApp, id: &str, status: &str) {
    let notice = app
        .store
        .notice(&multiomix_aws_emr::job::JobId::parse(id).unwrap())
        .await
        .unwrap()
        .expect("the notice");
    assert_eq!(notice.status.as_str(), status);
    let received = app
        .multiomix
        .notices()
        .iter()
        .filter(|n| n.id == id)
        .count() as i64;
    assert!(
        notice.attempts >= received,
        "{received} requests received, {} attempts recorded",
        notice.attempts
    );
    assert_eq!(app.store.open_notice_count().await.unwrap(), 0);
    assert_eq!(app.notifier.run_once().await.unwrap(), 0, "nothing is due");
}

#[tokio::test]
async fn the_callback_answers_204_and_the_notice_waits_for_a_final_state() {
    let app = spawn_app().await;
    let id = app.start_job().await;
    app.emr().set_state(&id, JobState::Running, None, None);

    let started = std::time::Instant::now();
    let r = app.patch_job(&id).await;
    assert_eq!(r.status(), 204);
    assert!(started.elapsed() < Duration::from_secs(1));

    // Still running: the job is read again and again, nothing is sent.
    app.emr()
        .wait_for_calls("DescribeJobRun", 3, PATIENCE)
        .await
        .expect("the job is polled");
    assert_eq!(app.multiomix.count(), 0, "no notice for a RUNNING job");

    app.emr().set_state(&id, JobState::Completed, None, None);
    let notices = app.multiomix.wait_for_notices(1, PATIENCE).await.unwrap();
    let notice = &notices[0];
    assert_eq!(notice.path, format!("/{id}/"));
    assert_eq!(notice.headers["content-type"], "application/json");
    assert_eq!(
        notice.headers["idempotency-key"],
        format!("{id}-COMPLETED").as_str()
    );
    let body = &notice.body;
    assert_eq!(body["id"], id.as_str());
    assert_eq!(body["name"], "BreastCancerBBHA");
    assert_eq!(body["state"], "COMPLETED");
    assert!(is_multiomix_date(&body["createdAt"]), "{body}");
    assert!(is_multiomix_date(&body["finishedAt"]), "{body}");
    assert!(body.as_object().unwrap().contains_key("stateDetails"));

    // The notice carries what GET /job/{id} shows, once the delivery is recorded.
    assert_eq!(app.wait_notice_closed(&id, PATIENCE).await, "delivered");
    let mut shown: Value = app.get_json(&format!("/job/{id}")).await;
    assert_eq!(shown["notice"]["status"], "delivered");
    shown.as_object_mut().unwrap().remove("notice");
    assert_eq!(&shown, body);
}

#[tokio::test]
async fn many_callbacks_for_one_job_send_one_notice() {
    let app = spawn_app().await;
    let id = app.start_job().await;
    app.emr()
        .set_state(&id, JobState::Failed, Some("exit 1"), None);
    for _ in 0..20 {
        assert_eq!(app.patch_job(&id).await.status(), 204);
    }
    app.multiomix.wait_for_notices(1, PATIENCE).await.unwrap();
    app.wait_notice_closed(&id, PATIENCE).await;
    // Later callbacks change nothing either: the 204 comes after the store was written,
    // and it opened nothing that the outbox could send.
    assert_eq!(app.patch_job(&id).await.status(), 204);
    assert_nothing_more_to_send(&app, &id, "delivered").await;
    assert_eq!(app.multiomix.count(), 1);
    assert_eq!(app.multiomix.notices()[0].body["state"], "FAILED");
}

#[tokio::test]
async fn multiomix_down_when_the_job_ends_gets_the_notice_once_it_is_back() {
    let app = spawn_app().await;
    let id = app.start_job().await;
    app.emr().set_state(&id, JobState::Completed, None, None);
    app.multiomix.down().await;
    app.patch_job(&id).await;
    // Several failed attempts while it is down.
    let job = multiomix_aws_emr::job::JobId::parse(&id).unwrap();
    let n = common::wait_for("two failed attempts", PATIENCE, || async {
        let n = app.store.notice(&job).await.unwrap().unwrap();
        if n.attempts >= 2 {
            Ok(n)
        } else {
            Err(n.attempts)
        }
    })
    .await;
    assert!(
        n.last_error.unwrap().contains("connect"),
        "a connection error is recorded"
    );
    app.multiomix.up().await.unwrap();
    app.multiomix.wait_for_notices(1, PATIENCE).await.unwrap();
    assert_eq!(app.wait_notice_closed(&id, PATIENCE).await, "delivered");
    assert_nothing_more_to_send(&app, &id, "delivered").await;
    assert_eq!(app.multiomix.count(), 1, "delivered exactly once");
}

#[tokio::test]
async fn server_errors_are_retried_until_multiomix_takes_the_notice() {
    let app = spawn_app().await;
    let id = app.start_job().await;
    app.emr().set_state(&id, JobState::Cancelled, None, None);
    app.multiomix.queue_statuses([503, 500, 429]);
    app.patch_job(&id).await;
    app.multiomix.wait_for_notices(4, PATIENCE).await.unwrap();
    assert_eq!(app.wait_notice_closed(&id, PATIENCE).await, "delivered");
    let statuses: Vec<u16> = app.multiomix.notices().iter().map(|n| n.status).collect();
    assert_eq!(statuses, [503, 500, 429, 200]);
    // Every attempt of one notice carries the same idempotency key.
    let keys: Vec<String> = app
        .multiomix
        .notices()
        .iter()
        .map(|n| n.headers["idempotency-key"].to_str().unwrap().to_owned())
        .collect();
    assert!(keys.iter().all(|k| k == &format!("{id}-CANCELLED")));
    let job: Value = app.get_json(&format!("/job/{id}")).await;
    assert_eq!(job["notice"]["attempts"], 4);
}

#[tokio::test]
async fn a_404_from_multiomix_is_final_after_one_attempt() {
    let app = spawn_app().await;
    let id = app.start_job().await;
    app.emr().set_state(&id, JobState::Completed, None, None);
    app.multiomix.set_status(404);
    app.patch_job(&id).await;
    app.multiomix.wait_for_notices(1, PATIENCE).await.unwrap();
    assert_eq!(app.wait_notice_closed(&id, PATIENCE).await, "refused");
    assert_nothing_more_to_send(&app, &id, "refused").await;
    assert_eq!(app.multiomix.count(), 1, "a 404 is not retried");
}

#[tokio::test]
async fn a_410_from_multiomix_is_final_after_one_attempt_too() {
    let app = spawn_app().await;
    let id = app.start_job().await;
    app.emr().set_state(&id, JobState::Completed, None, None);
    app.multiomix.set_status(410);
    app.patch_job(&id).await;
    assert_eq!(app.wait_notice_closed(&id, PATIENCE).await, "refused");
    assert_eq!(app.multiomix.count(), 1, "a 410 is not retried");
}

#[tokio::test]
async fn other_4xx_answers_are_retried_until_multiomix_takes_the_notice() {
    let app = spawn_app().await;
    let id = app.start_job().await;
    app.emr().set_state(&id, JobState::Failed, None, None);
    // A secret being rotated, a proxy's refusals: none of them is Multiomix's final word.
    app.multiomix.queue_statuses([401, 403, 400, 422]);
    app.patch_job(&id).await;
    assert_eq!(app.wait_notice_closed(&id, PATIENCE).await, "delivered");
    let statuses: Vec<u16> = app.multiomix.notices().iter().map(|n| n.status).collect();
    assert_eq!(statuses, [401, 403, 400, 422, 200]);
}

#[tokio::test]
async fn the_body_of_a_refusal_is_kept_in_the_notices_error_cut_short() {
    let app = spawn_app().await;
    let id = app.start_job().await;
    app.emr().set_state(&id, JobState::Completed, None, None);
    let reason = format!("signature mismatch\n{}", "x".repeat(5_000));
    app.multiomix.set_reply(Reply::status(403).body(reason));
    app.patch_job(&id).await;
    let job = app
        .read_job_within(&id, PATIENCE, |job| {
            job["notice"]["attempts"].as_i64().unwrap_or(0) >= 2
        })
        .await;
    let notice = job["notice"].clone();
    assert_eq!(notice["status"], "pending", "a 403 is retried: {notice}");
    let error = notice["lastError"].as_str().unwrap();
    assert!(
        error.starts_with("Multiomix answered 403 Forbidden: signature mismatch x"),
        "{error}"
    );
    assert!(
        error.chars().count() < 400,
        "cut short: {} chars",
        error.chars().count()
    );
}

#[tokio::test]
async fn a_notice_is_given_up_after_the_configured_time_and_says_so() {
    let app = spawn_app_with(&[("NOTIFY_GIVE_UP_AFTER", "0.3")]).await;
    let id = app.start_job().await;
    app.emr().set_state(&id, JobState::Completed, None, None);
    app.multiomix.set_status(503);
    app.patch_job(&id).await;
    assert_eq!(app.wait_notice_closed(&id, PATIENCE).await, "given_up");
    let attempts = app.multiomix.count();
    assert!(attempts >= 2, "retried before giving up ({attempts})");
    let job: Value = app.get_json(&format!("/job/{id}")).await;
    assert_eq!(job["notice"]["status"], "given_up");
    assert!(job["notice"]["lastError"].as_str().unwrap().contains("503"));
    assert_nothing_more_to_send(&app, &id, "given_up").await;
    assert_eq!(
        app.multiomix.count(),
        attempts,
        "nothing is sent after giving up"
    );
}

#[tokio::test]
async fn without_any_callback_the_reconciler_reports_the_ended_job() {
    let app = spawn_app_with(&[("RECONCILE_INTERVAL", "0.1")]).await;
    let id = app.start_job().await;
    let running = app.start_job().await;
    app.emr().set_state(&running, JobState::Running, None, None);
    // The driver never started: no sidecar, no callback.
    app.emr().set_state(
        &id,
        JobState::Failed,
        Some("ImagePullBackOff"),
        Some("USER_ERROR"),
    );
    let notices = app.multiomix.wait_for_notices(1, PATIENCE).await.unwrap();
    assert_eq!(notices[0].id, id);
    assert_eq!(notices[0].body["state"], "FAILED");
    assert_eq!(notices[0].body["stateDetails"], "ImagePullBackOff");
    // A round that reads the running job opens no notice for it.
    let round = app.reconciler.run_once().await.unwrap();
    assert_eq!((round.checked, round.ended), (1, 0), "{round:?}");
    assert!(app
        .store
        .notice(&multiomix_aws_emr::job::JobId::parse(&running).unwrap())
        .await
        .unwrap()
        .is_none());
    app.wait_notice_closed(&id, PATIENCE).await;
    assert_nothing_more_to_send(&app, &id, "delivered").await;
    assert_eq!(app.multiomix.count(), 1, "the running job gets no notice");
}

#[tokio::test]
async fn a_restart_between_callback_and_delivery_still_delivers() {
    let emr = Arc::new(FakeEmr::start().await);
    let multiomix = Arc::new(FakeMultiomix::start().await);
    let setup = || {
        TestApp::builder()
            .fake_emr(emr.clone())
            .multiomix(multiomix.clone())
    };
    let app = setup().start().await;
    let id = app.start_job().await;
    app.emr().set_state(&id, JobState::Completed, None, None);
    multiomix.down().await;
    app.patch_job(&id).await;
    app.emr()
        .wait_for_calls("DescribeJobRun", 1, PATIENCE)
        .await
        .unwrap();
    let dir = app.stop().await;
    assert_eq!(multiomix.count(), 0);

    multiomix.up().await.unwrap();
    let app = setup().dir(dir).start().await;
    multiomix.wait_for_notices(1, PATIENCE).await.unwrap();
    assert_eq!(app.wait_notice_closed(&id, PATIENCE).await, "delivered");
    assert_eq!(multiomix.notices()[0].body["state"], "COMPLETED");
}

#[tokio::test]
async fn the_same_idempotency_key_twice_starts_one_job() {
    let app = spawn_app().await;
    let post = |key: &'static str, body: Value| {
        let app = &app;
        async move {
            app.http
                .post(app.url("/job"))
                .header("Idempotency-Key", key)
                .json(&body)
                .send()
                .await
                .unwrap()
        }
    };
    let first = post("exp-42-try", multiomix_body()).await;
    assert_eq!(first.status(), 201);
    let first: Value = first.json().await.unwrap();
    let second = post("exp-42-try", multiomix_body()).await;
    assert_eq!(second.status(), 201);
    let second: Value = second.json().await.unwrap();
    assert_eq!(first["id"], second["id"]);
    assert_eq!(app.emr().job_ids().len(), 1, "one EMR job");

    let mut other = multiomix_body();
    other["name"] = "Different".into();
    let r = post("exp-42-try", other).await;
    assert_eq!(r.status(), 422, "the key was used for another request");

    // The key also reaches EMR as the client token, stable across tries.
    let tokens: Vec<Value> = app
        .emr()
        .start_requests()
        .iter()
        .map(|r| r["clientToken"].clone())
        .collect();
    assert_eq!(tokens.len(), 1);
    let plain = app.start_job().await;
    let again = app.start_job().await;
    assert_ne!(plain, again, "requests without a key are separate jobs");
    let tokens: Vec<Value> = app
        .emr()
        .start_requests()
        .iter()
        .map(|r| r["clientToken"].clone())
        .collect();
    assert_eq!(tokens.len(), 3);
    assert!(tokens.iter().all(Value::is_string), "{tokens:?}");
    assert_ne!(
        tokens[1], tokens[2],
        "without a key, a token of its own each time"
    );
    assert!(!tokens[1..].contains(&tokens[0]), "{tokens:?}");

    // The token comes from the key alone, not from anything this store remembers: a
    // service with an empty store (the first try's answer was lost before it was
    // recorded) sends EMR the same token for the same key, and EMR answers with the same
    // job; another key gives another token.
    let fresh = TestApp::builder().fake_emr(app.emr().clone()).start().await;
    let post_fresh = |key: &'static str| {
        let fresh = &fresh;
        async move {
            let r = fresh
                .http
                .post(fresh.url("/job"))
                .header("Idempotency-Key", key)
                .json(&common::another_experiment())
                .send()
                .await
                .unwrap();
            assert_eq!(r.status(), 201);
            r.json::<Value>().await.unwrap()["id"].clone()
        }
    };
    assert_eq!(
        post_fresh("exp-42-try").await,
        first["id"],
        "the same EMR job"
    );
    let other_job = post_fresh("exp-43-try").await;
    assert_ne!(other_job, first["id"]);
    let tokens: Vec<Value> = app
        .emr()
        .start_requests()
        .iter()
        .map(|r| r["clientToken"].clone())
        .collect();
    assert_eq!(tokens.len(), 5);
    assert_eq!(tokens[3], tokens[0], "the same key, the same token");
    assert!(!tokens[..4].contains(&tokens[4]), "another key: {tokens:?}");
}

#[tokio::test]
async fn an_empty_store_adopts_this_services_jobs_and_reports_those_that_ended() {
    let emr = Arc::new(FakeEmr::start().await);
    let own_tags = || {
        [
            ("managed-by".to_string(), "multiomix-aws-emr".to_string()),
            ("callback-host".to_string(), "multiomix-aws-emr".to_string()),
        ]
        .into_iter()
        .collect()
    };
    let ended = emr.insert_job(NewJob {
        name: Some("ended-while-down".into()),
        state: JobState::Completed,
        tags: own_tags(),
        ..NewJob::default()
    });
    let running = emr.insert_job(NewJob {
        name: Some("still-running".into()),
        state: JobState::Running,
        tags: own_tags(),
        ..NewJob::default()
    });
    let other = emr.insert_job(NewJob {
        name: Some("other-deployment".into()),
        state: JobState::Completed,
        tags: [
            ("managed-by".to_string(), "multiomix-aws-emr".to_string()),
            ("callback-host".to_string(), "staging".to_string()),
        ]
        .into_iter()
        .collect(),
        ..NewJob::default()
    });
    let app = TestApp::builder()
        .fake_emr(emr.clone())
        .var("RECONCILE_INTERVAL", "0.1")
        .start()
        .await;
    let notices = app.multiomix.wait_for_notices(1, PATIENCE).await.unwrap();
    assert_eq!(notices[0].id, ended);
    let running_id = multiomix_aws_emr::job::JobId::parse(&running).unwrap();
    let adopted = app.store.job(&running_id).await.unwrap().expect("adopted");
    assert!(adopted.adopted);

    emr.set_state(&running, JobState::Completed, None, None);
    let notices = app.multiomix.wait_for_notices(2, PATIENCE).await.unwrap();
    assert_eq!(notices[1].id, running);
    // Another round finds nothing left to follow: the other deployment's job was never
    // adopted, so no round reads it and no notice of it is opened.
    let round = app.reconciler.run_once().await.unwrap();
    assert_eq!(round.checked, 0, "{round:?}");
    let other_id = multiomix_aws_emr::job::JobId::parse(&other).unwrap();
    assert!(app.store.job(&other_id).await.unwrap().is_none());
    assert!(app
        .store
        .notice(&multiomix_aws_emr::job::JobId::parse(&other).unwrap())
        .await
        .unwrap()
        .is_none());
    app.wait_notice_closed(&running, PATIENCE).await;
    assert_nothing_more_to_send(&app, &running, "delivered").await;
    assert_eq!(
        app.multiomix.count(),
        2,
        "the other deployment's job is not ours"
    );
}

#[tokio::test]
async fn signed_notices_carry_standard_webhooks_headers() {
    let app = spawn_app_with(&[("NOTIFY_SECRET", "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw")]).await;
    let id = app.start_job().await;
    app.emr().set_state(&id, JobState::Completed, None, None);
    app.patch_job(&id).await;
    let n = &app.multiomix.wait_for_notices(1, PATIENCE).await.unwrap()[0];
    let msg_id = n.headers["webhook-id"].to_str().unwrap();
    let ts: i64 = n.headers["webhook-timestamp"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    let sig = n.headers["webhook-signature"].to_str().unwrap();
    let body = std::str::from_utf8(&n.raw_body).unwrap();
    let key = multiomix_aws_emr::config::SigningKey::from_secret(
        &multiomix_aws_emr::config::Secret::new("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"),
    )
    .expect("a valid whsec_ secret");
    let expected = multiomix_aws_emr::notify::delivery::sign(&key, msg_id, ts, body);
    assert_eq!(sig, expected);
    assert!((time::OffsetDateTime::now_utc().unix_timestamp() - ts).abs() < 60);
}

#[tokio::test]
async fn a_flood_of_callbacks_beyond_the_bound_is_refused_with_503() {
    let app = spawn_app_with(&[("MAX_PENDING_CALLBACKS", "3"), ("SLEEP_TIME", "60")]).await;
    // Jobs of this service: a callback for any other is refused before the bound.
    let mut ids = Vec::new();
    for _ in 0..4 {
        ids.push(app.start_job().await);
    }
    for id in &ids[..3] {
        assert_eq!(app.patch_job(id).await.status(), 204);
    }
    // A repeat for a known job is still fine; a new one is not.
    assert_eq!(app.patch_job(&ids[0]).await.status(), 204);
    let r = app.patch_job(&ids[3]).await;
    assert_eq!(r.status(), 503);
    assert!(r.headers().contains_key("retry-after"));
}

/// A backend whose every job is COMPLETED: the outbox test needs nothing else of it.
struct AllCompleted;

#[async_trait::async_trait]
impl multiomix_aws_emr::backend::JobBackend for AllCompleted {
    fn kind(&self) -> multiomix_aws_emr::job::BackendKind {
        multiomix_aws_emr::job::BackendKind::Local
    }
    async fn start(
        &self,
        _: &multiomix_aws_emr::job::JobSpec,
        _: &str,
    ) -> Result<multiomix_aws_emr::job::JobId, multiomix_aws_emr::backend::BackendError> {
        unreachable!("the outbox never starts jobs")
    }
    async fn describe(
        &self,
        id: &multiomix_aws_emr::job::JobId,
    ) -> Result<multiomix_aws_emr::job::JobRun, multiomix_aws_emr::backend::BackendError> {
        let now = time::OffsetDateTime::now_utc();
        Ok(multiomix_aws_emr::job::JobRun {
            id: id.clone(),
            name: "job".into(),
            state: multiomix_aws_emr::job::JobState::Completed,
            created_at: now,
            finished_at: Some(now),
            state_details: None,
            failure_reason: None,
            log_location: None,
            links: Default::default(),
            ours: true,
            tags: Default::default(),
        })
    }
    async fn cancel(
        &self,
        _: &multiomix_aws_emr::job::JobId,
    ) -> Result<(), multiomix_aws_emr::backend::BackendError> {
        unreachable!("the outbox never cancels jobs")
    }
    async fn list(
        &self,
        _: &multiomix_aws_emr::backend::ListQuery,
    ) -> Result<multiomix_aws_emr::backend::JobPage, multiomix_aws_emr::backend::BackendError> {
        Ok(Default::default())
    }
    async fn check(&self) -> Result<(), multiomix_aws_emr::backend::BackendError> {
        Ok(())
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_a_slow_multiomix_no_notice_waits_past_its_lease_and_none_is_sent_twice() {
    use multiomix_aws_emr::config::Config;
    use multiomix_aws_emr::job::JobId;
    use multiomix_aws_emr::notify::Notifier;
    use multiomix_aws_emr::store::Store;

    // Each notice takes Multiomix 200 ms; the lease is twice that. Nearly five times the
    // outbox's concurrency (64) of notices are due at once, so most of them wait for a
    // slot: a notice claimed before it has a slot waits up to three rounds, past its lease.
    const NOTICES: usize = 300;
    let multiomix = FakeMultiomix::builder()
        .reply(Reply::status(200).delay(Duration::from_millis(200)))
        .start()
        .await;
    // The store waits for the disk at each commit (synchronous=FULL); on a busy disk a
    // few of those take longer than this test's compressed lease. What it checks is the
    // outbox's claiming, so its store lives in memory-backed files where there are some
    // (the cost of the disk is the benchmark's to measure).
    let shm = std::path::Path::new("/dev/shm");
    let dir = if shm.is_dir() {
        tempfile::tempdir_in(shm).unwrap()
    } else {
        tempfile::tempdir().unwrap()
    };
    let config = Config::from_vars([
        ("JOB_BACKEND".to_owned(), "local".to_owned()),
        ("MULTIOMIX_URL".to_owned(), multiomix.url()),
        ("NOTIFY_TIMEOUT".to_owned(), "5".to_owned()),
        ("POLL_INTERVAL".to_owned(), "0.05".to_owned()),
    ])
    .unwrap();
    let store = Store::connect(&format!("sqlite:{}/store.db", dir.path().display()))
        .await
        .unwrap();
    let notifier = Notifier::new(store.clone(), Arc::new(AllCompleted), config.notify, 10_000)
        .await
        .unwrap();
    notifier.set_lease(Duration::from_millis(400));
    let ids: Vec<String> = (0..NOTICES).map(|i| format!("job{i:05}")).collect();
    for id in &ids {
        notifier
            .request(&JobId::parse(id).unwrap(), Duration::ZERO)
            .await
            .unwrap();
    }
    assert_eq!(notifier.open_count().await.unwrap(), NOTICES as i64);

    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let outbox = tokio::spawn(notifier.clone().run_until_stopped(async {
        let _ = stop_rx.await;
    }));
    common::wait_for("the outbox to drain", Duration::from_secs(60), || async {
        match store.open_notice_count().await.unwrap() {
            0 => Ok(()),
            open => Err(open),
        }
    })
    .await;
    let _ = stop_tx.send(());
    outbox.await.unwrap();

    let mut sent: std::collections::HashMap<String, usize> = Default::default();
    for n in multiomix.notices() {
        *sent.entry(n.id).or_default() += 1;
    }
    let twice: Vec<_> = sent.iter().filter(|(_, n)| **n > 1).collect();
    assert!(
        twice.is_empty(),
        "{} notices sent more than once",
        twice.len()
    );
    assert_eq!(sent.len(), NOTICES);
    assert_eq!(notifier.open_count().await.unwrap(), 0);
}
