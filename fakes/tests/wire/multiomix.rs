//! FakeMultiomix as the service sees it: over HTTP, with a pooled reqwest client.

use std::time::Duration;

use multiomix_fakes::{FakeMultiomix, Reply};
use serde_json::json;

fn notice(id: &str) -> serde_json::Value {
    json!({"id": id, "name": "BreastCancerBBHA", "state": "COMPLETED",
           "createdAt": "2023-06-29 17:08:56+00:00", "finishedAt": "2023-06-29 17:21:03+00:00",
           "stateDetails": null})
}

#[tokio::test]
async fn a_notice_is_recorded_with_its_path_headers_and_body() {
    let fake = FakeMultiomix::builder()
        .base_path("/feature-selection/aws-notification/")
        .start()
        .await;
    assert!(fake.url().ends_with("/feature-selection/aws-notification"));
    let http = reqwest::Client::new();
    let response = http
        .post(format!("{}/000000031kd8aj0vtn3/", fake.url()))
        .json(&notice("000000031kd8aj0vtn3"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);

    let notices = fake
        .wait_for_notices(1, Duration::from_secs(5))
        .await
        .unwrap();
    assert_eq!(notices.len(), 1);
    let got = &notices[0];
    assert_eq!(got.id, "000000031kd8aj0vtn3");
    assert_eq!(
        got.path,
        "/feature-selection/aws-notification/000000031kd8aj0vtn3/"
    );
    assert_eq!(got.headers["content-type"], "application/json");
    assert_eq!(got.body, notice("000000031kd8aj0vtn3"));
    assert_eq!(got.status, 200);
    assert_eq!(fake.count(), 1);
}

#[tokio::test]
async fn a_post_to_another_path_is_not_a_notice() {
    let fake = FakeMultiomix::start().await;
    let http = reqwest::Client::new();
    // Without the trailing slash Django would not route it either.
    let response = http
        .post(format!("{}/000000031kd8aj0vtn3", fake.url()))
        .json(&notice("x"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 404);
    assert_eq!(fake.count(), 0);
    assert_eq!(fake.misrouted(), ["/000000031kd8aj0vtn3"]);
}

#[tokio::test]
async fn queued_replies_come_first_then_the_default() {
    let fake = FakeMultiomix::start().await;
    fake.queue_replies([Reply::status(503).retry_after("7"), Reply::status(503)]);
    fake.set_status(202);
    let http = reqwest::Client::new();
    let mut answers = Vec::new();
    for _ in 0..3 {
        let response = http
            .post(format!("{}/abc/", fake.url()))
            .json(&notice("abc"))
            .send()
            .await
            .unwrap();
        let retry_after = response
            .headers()
            .get("retry-after")
            .map(|v| v.to_str().unwrap().to_owned());
        answers.push((response.status().as_u16(), retry_after));
    }
    assert_eq!(
        answers,
        [(503, Some("7".to_owned())), (503, None), (202, None)]
    );
    let statuses: Vec<_> = fake.notices().iter().map(|n| n.status).collect();
    assert_eq!(statuses, [503, 503, 202]);

    fake.queue_statuses([404]);
    let response = http
        .post(format!("{}/abc/", fake.url()))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 404);
    assert_eq!(fake.count(), 4);
}

#[tokio::test]
async fn a_slow_answer_times_out_the_client_but_the_notice_arrived() {
    let fake = FakeMultiomix::start().await;
    fake.set_delay(Duration::from_millis(500));
    let http = reqwest::Client::builder()
        .timeout(Duration::from_millis(100))
        .build()
        .unwrap();
    let err = http
        .post(format!("{}/slow/", fake.url()))
        .json(&notice("slow"))
        .send()
        .await
        .unwrap_err();
    assert!(err.is_timeout(), "{err:?}");
    assert_eq!(fake.count(), 1);
}

#[tokio::test]
async fn down_refuses_connections_and_up_listens_again_on_the_same_port() {
    let fake = FakeMultiomix::start().await;
    let http = reqwest::Client::new();
    let post = || {
        http.post(format!("{}/abc/", fake.url()))
            .json(&notice("abc"))
            .send()
    };
    assert_eq!(post().await.unwrap().status(), 200);

    fake.down().await;
    assert!(!fake.is_up());
    let refused = tokio::net::TcpStream::connect(fake.addr())
        .await
        .unwrap_err();
    assert_eq!(refused.kind(), std::io::ErrorKind::ConnectionRefused);
    // The pooled keep-alive connection was closed too: nothing gets through.
    assert!(post().await.is_err());
    assert!(post().await.is_err());
    assert_eq!(fake.count(), 1);

    fake.up().await.unwrap();
    assert!(fake.is_up());
    assert_eq!(post().await.unwrap().status(), 200);
    assert_eq!(fake.count(), 2);
}

#[tokio::test]
async fn down_cuts_off_an_answer_in_progress() {
    let fake = FakeMultiomix::start().await;
    fake.set_delay(Duration::from_secs(30));
    let http = reqwest::Client::new();
    let request = http
        .post(format!("{}/abc/", fake.url()))
        .json(&notice("abc"))
        .send();
    let cut = async {
        fake.wait_for_notices(1, Duration::from_secs(5))
            .await
            .unwrap();
        fake.down().await;
    };
    let (answer, ()) = tokio::join!(request, cut);
    assert!(answer.is_err(), "{answer:?}");
}

#[tokio::test]
async fn waiting_for_notices_that_never_come_times_out() {
    let fake = FakeMultiomix::start().await;
    let err = fake
        .wait_for_notices(1, Duration::from_millis(30))
        .await
        .unwrap_err();
    assert_eq!((err.wanted, err.got), (1, 0));
}

#[tokio::test]
async fn the_count_is_served_for_benchmarks() {
    let fake = FakeMultiomix::builder().keep_notices(false).start().await;
    let http = reqwest::Client::new();
    for id in ["a", "b"] {
        http.post(format!("{}/{id}/", fake.url()))
            .json(&notice(id))
            .send()
            .await
            .unwrap();
    }
    let count = http
        .get(format!("http://{}/_count", fake.addr()))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert_eq!(count, "2");
    assert!(fake.notices().is_empty());
}
