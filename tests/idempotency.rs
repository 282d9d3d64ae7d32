//! `POST /job` with an `Idempotency-Key`: a retried request gets the job of the first.

mod common;

use common::{multiomix_body, spawn_app};
use serde_json::Value;

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
    assert_eq!(app.emr.job_ids().len(), 1);

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
