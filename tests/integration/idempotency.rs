//! `POST /job` with an `Idempotency-Key`: a retried request gets the job of the first;
//! and a job started while the store fails is still answered and recorded later.

use serde_json::Value;

use crate::common;
use crate::common::{multiomix_body, spawn_app};

async fn post_with_key(app: &common::TestApp, key: &str, body: &Value) -> reqwest::Response {
    app.http
        .post(app.url("/job"))
        .header("Idempotency-Key", key)
        .json(body)
        .send()
        .await
        .expect("POST /job")
}

#[tokio::test]
async fn the_same_key_and_body_twice_start_one_job() {
    let app = spawn_app().await;
    let first = post_with_key(&app, "retry-1", &multiomix_body()).await;
    assert_eq!(first.status(), 201);
    let first: Value = first.json().await.unwrap();
    let again = post_with_key(&app, "retry-1", &multiomix_body()).await;
    assert_eq!(again.status(), 201);
    let again: Value = again.json().await.unwrap();
    assert_eq!(first["id"], again["id"]);
    assert_eq!(app.emr().job_ids().len(), 1);

    // Without a key, each request is a new job.
    let other = app.start_job().await;
    assert_ne!(first["id"].as_str().unwrap(), other);
}

#[tokio::test]
async fn the_same_key_with_another_body_is_refused() {
    let app = spawn_app().await;
    assert_eq!(
        post_with_key(&app, "k", &multiomix_body()).await.status(),
        201
    );
    let mut changed = multiomix_body();
    changed["name"] = "AnotherName".into();
    assert_eq!(post_with_key(&app, "k", &changed).await.status(), 422);
}

/// Makes every insert into `jobs` fail, as a full disk would, until the guard is dropped.
async fn break_job_records(app: &common::TestApp) {
    sqlx::query(
        "CREATE TRIGGER fail_job_records BEFORE INSERT ON jobs
         BEGIN SELECT RAISE(ABORT, 'disk I/O error'); END",
    )
    .execute(&app.database().await)
    .await
    .unwrap();
}

async fn mend_job_records(app: &common::TestApp) {
    sqlx::query("DROP TRIGGER fail_job_records")
        .execute(&app.database().await)
        .await
        .unwrap();
}

#[tokio::test]
async fn a_job_started_while_the_store_fails_is_answered_and_recorded_later() {
    let app = spawn_app().await;
    break_job_records(&app).await;
    let r = post_with_key(&app, "key-store-down", &multiomix_body()).await;
    assert_eq!(r.status(), 201, "the job started, so the client is told so");
    let id = r.json::<Value>().await.unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(app.emr().job(&id).is_some());
    let job_id = multiomix_aws_emr::job::JobId::parse(&id).unwrap();
    assert!(app.store.job(&job_id).await.unwrap().is_none());

    mend_job_records(&app).await;
    let now = multiomix_aws_emr::store::now_millis();
    let recorded = app.reconciler.settle_submissions(now + 1, 0).await.unwrap();
    assert_eq!(recorded, 1);
    let record = app.store.job(&job_id).await.unwrap().expect("recorded");
    assert_eq!(record.name, "BreastCancerBBHA");
    // Recorded with its key: the retry answers the same job and starts none.
    let again = post_with_key(&app, "key-store-down", &multiomix_body()).await;
    assert_eq!(again.status(), 201);
    assert_eq!(again.json::<Value>().await.unwrap()["id"], id.as_str());
    assert_eq!(app.emr().calls("StartJobRun"), 1);
    // And it is this service's job: its callback opens its notice.
    assert_eq!(app.patch_job(&id).await.status(), 204);
    assert_eq!(
        app.reconciler
            .settle_submissions(now + 1, now + 1)
            .await
            .unwrap(),
        0
    );
}

#[tokio::test]
async fn a_submission_the_backend_refused_or_never_started_is_removed() {
    let app = spawn_app().await;
    // EMR refuses: nothing started, nothing to settle.
    app.emr()
        .fail_next("StartJobRun", 400, "ValidationException", "bad role");
    assert_eq!(app.post_job(&multiomix_body()).await.status(), 502);
    // EMR is down: the job may or may not have started; the submission stays.
    app.emr()
        .fail_times("StartJobRun", 10, 500, "InternalServerException", "boom");
    assert_eq!(app.post_job(&multiomix_body()).await.status(), 503);
    let now = multiomix_aws_emr::store::now_millis();
    let left = app.store.incomplete_submissions(now + 1, 10).await.unwrap();
    assert_eq!(left.len(), 1, "{left:?}");
    // EMR never started it: the reconciler removes it, once old enough.
    assert_eq!(
        app.reconciler.settle_submissions(now + 1, 0).await.unwrap(),
        0
    );
    assert_eq!(
        app.store
            .incomplete_submissions(now + 1, 10)
            .await
            .unwrap()
            .len(),
        1
    );
    assert_eq!(
        app.reconciler
            .settle_submissions(now + 1, now + 1)
            .await
            .unwrap(),
        0
    );
    assert!(app
        .store
        .incomplete_submissions(now + 1, 10)
        .await
        .unwrap()
        .is_empty());
    assert!(app.emr().job_ids().is_empty());
}

#[tokio::test]
async fn a_restart_records_the_job_a_failed_store_write_left_unrecorded() {
    let app = spawn_app().await;
    let emr = app.emr().clone();
    break_job_records(&app).await;
    let r = app.post_job(&multiomix_body()).await;
    assert_eq!(r.status(), 201);
    let id = r.json::<Value>().await.unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    mend_job_records(&app).await;
    let dir = app.stop().await;

    // The next process settles it in its first round, whatever its age.
    let app = common::TestApp::builder()
        .fake_emr(emr)
        .dir(dir)
        .start()
        .await;
    // (An empty store also adopts the job from its tags; the submission is settled
    // after that, in the same round.)
    let job_id = multiomix_aws_emr::job::JobId::parse(&id).unwrap();
    let settled = || async {
        let now = multiomix_aws_emr::store::now_millis();
        app.store.job(&job_id).await.unwrap().is_some()
            && app
                .store
                .incomplete_submissions(now + 1, 10)
                .await
                .unwrap()
                .is_empty()
    };
    let settle = std::time::Duration::from_secs(10);
    common::wait_for("the restart to settle the submission", settle, || async {
        settled()
            .await
            .then_some(())
            .ok_or("a submission is still open")
    })
    .await;
}

/// A job adopted from the backend's listing (a start with an empty store) before the
/// submission that started it was completed was recorded without its app name, which
/// the completion then could not add: the COMPLETED job's results were never copied.
#[tokio::test]
async fn a_job_adopted_before_its_submission_completed_gets_its_app_name() {
    use multiomix_aws_emr::job::JobId;
    use multiomix_aws_emr::store::{now_millis, JobRecord, Submission};
    let app = spawn_app().await;
    let now = now_millis();
    let submission = Submission {
        client_token: "token-adopted".into(),
        name: "Adopted".into(),
        algorithm: Some(1),
        backend: multiomix_aws_emr::job::BackendKind::Emr,
        idempotency: None,
        created_at: now,
        app_name: Some("BBHA_9".into()),
        progress_token: None,
    };
    let _ = app.store.begin_submission(&submission).await.unwrap();
    let record = |app_name: Option<&str>, adopted| JobRecord {
        id: multiomix_aws_emr::job::JobId::parse("adoptedjob1").unwrap(),
        name: "Adopted".into(),
        algorithm: None,
        backend: multiomix_aws_emr::job::BackendKind::Emr,
        created_at: now,
        adopted,
        app_name: app_name.map(str::to_owned),
    };
    // Adopted from a listing that carried no tags.
    app.store.record_job(&record(None, true)).await.unwrap();
    app.store
        .complete_submission("token-adopted", &record(Some("BBHA_9"), false), None)
        .await
        .unwrap();
    let job = app
        .store
        .job(&JobId::parse("adoptedjob1").unwrap())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(job.app_name.as_deref(), Some("BBHA_9"));
}
