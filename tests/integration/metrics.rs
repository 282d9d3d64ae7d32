//! `GET /metrics` as Prometheus scrapes it: requests, backend calls and notices show up
//! after the traffic that causes them.

use multiomix_fakes::JobState;

use crate::common;
use crate::common::spawn_app;
use crate::common::PATIENCE;

/// The value of the sample whose name and labels are exactly `series` (labels in the
/// order the exporter writes them), or `None` when it is absent.
fn sample(text: &str, series: &str) -> Option<f64> {
    text.lines().filter(|l| !l.starts_with('#')).find_map(|l| {
        l.strip_prefix(series)?
            .strip_prefix(' ')?
            .trim()
            .parse()
            .ok()
    })
}

/// Sums every sample of `name` whose labels contain all of `labels`.
fn sum_where(text: &str, name: &str, labels: &[&str]) -> f64 {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| {
            let rest = l.strip_prefix(name)?;
            let (labelset, value) = rest.rsplit_once(' ')?;
            if !labelset.is_empty() && !labelset.starts_with('{') {
                return None; // another metric whose name starts the same
            }
            labels
                .iter()
                .all(|want| labelset.contains(want))
                .then(|| value.parse::<f64>().ok())
                .flatten()
        })
        .sum()
}

async fn scrape(app: &common::TestApp) -> String {
    let r = app.http.get(app.url("/metrics")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    let content_type = r.headers()["content-type"].to_str().unwrap().to_owned();
    assert!(content_type.starts_with("text/plain"), "{content_type}");
    r.text().await.unwrap()
}

#[tokio::test]
async fn backend_calls_and_notices_are_scraped_after_a_job_and_its_notice() {
    let app = spawn_app().await;
    let id = app.start_job().await;
    app.emr().set_state(&id, JobState::Completed, None, None);
    assert_eq!(app.get_job("0000000unknownjob").await.status(), 404);
    assert_eq!(app.patch_job(&id).await.status(), 204);
    app.multiomix.wait_for_notices(1, PATIENCE).await.unwrap();
    assert_eq!(app.wait_notice_closed(&id, PATIENCE).await, "delivered");
    wait_for_sample(&app, "notices_open", 0.0).await;

    let text = scrape(&app).await;

    // EMR calls by operation and outcome, with their latency.
    let started = r#"backend_calls_total{operation="start",outcome="ok"}"#;
    assert!(sample(&text, started).unwrap_or(0.0) >= 1.0, "{text}");
    // The job's end is read alone (describe) or in a round of the reconciler
    // (describe_batch), whichever comes first.
    let read = r#"backend_calls_total{operation="describe",outcome="ok"}"#;
    let read_in_batch = r#"backend_calls_total{operation="describe_batch",outcome="ok"}"#;
    assert!(
        sample(&text, read).unwrap_or(0.0) + sample(&text, read_in_batch).unwrap_or(0.0) >= 1.0,
        "{text}"
    );
    let unknown = r#"backend_calls_total{operation="describe",outcome="not_found"}"#;
    assert!(sample(&text, unknown).unwrap_or(0.0) >= 1.0, "{text}");
    let timed = sum_where(
        &text,
        "backend_call_duration_seconds_count",
        &[r#"operation="start""#],
    );
    assert!(timed >= 1.0, "{text}");
    assert!(
        text.contains(r#"backend_call_duration_seconds_bucket{operation="describe",le="0.01"}"#),
        "the latency histogram has buckets: {text}"
    );

    // The notice: opened, delivered, and no longer in the queue.
    assert!(
        sum_where(&text, "notices_opened_total", &[]) >= 1.0,
        "{text}"
    );
    assert!(
        sum_where(&text, "notices_delivered_total", &[]) >= 1.0,
        "{text}"
    );
    assert_eq!(sample(&text, "notices_open"), Some(0.0), "{text}");
    assert!(sum_where(&text, "callbacks_total", &[]) >= 1.0, "{text}");

    // Requests by route and status, and jobs started.
    let posted = sum_where(
        &text,
        "http_requests_total",
        &[r#"method="POST""#, r#"route="/job""#, r#"status="201""#],
    );
    assert!(posted >= 1.0, "{text}");
    let missing = sum_where(
        &text,
        "http_requests_total",
        &[r#"method="GET""#, r#"route="/job/{id}""#, r#"status="404""#],
    );
    assert!(missing >= 1.0, "{text}");
    assert!(sum_where(&text, "jobs_started_total", &[]) >= 1.0, "{text}");
}

/// Scrapes until the sample `series` has `value`: a gauge may be set just after the store
/// change a test waits for.
async fn wait_for_sample(app: &common::TestApp, series: &str, value: f64) {
    common::wait_for(&format!("{series} to be {value}"), PATIENCE, || async {
        let text = scrape(app).await;
        match sample(&text, series) {
            Some(found) if found == value => Ok(()),
            _ => Err(text),
        }
    })
    .await
}

#[tokio::test]
async fn notices_open_counts_a_notice_from_its_opening_until_its_delivery() {
    let app = spawn_app().await;
    // Multiomix refuses the notice for now: it stays open, and is retried.
    app.multiomix.set_status(503);
    let id = app.start_job().await;
    app.emr().set_state(&id, JobState::Completed, None, None);
    assert_eq!(app.patch_job(&id).await.status(), 204);
    app.multiomix.wait_for_notices(1, PATIENCE).await.unwrap();
    let text = scrape(&app).await;
    assert_eq!(sample(&text, "notices_open"), Some(1.0), "{text}");

    app.multiomix.set_status(200);
    assert_eq!(app.wait_notice_closed(&id, PATIENCE).await, "delivered");
    wait_for_sample(&app, "notices_open", 0.0).await;
}

#[tokio::test]
async fn a_backend_outage_is_counted_as_unavailable() {
    let app = spawn_app().await;
    // More failures than the SDK's attempts, so the call fails for good.
    app.emr()
        .fail_times("DescribeJobRun", 10, 500, "InternalServerException", "boom");
    assert_eq!(app.get_job("000000031kd8aj0vtn3").await.status(), 503);

    let text = scrape(&app).await;
    let down = r#"backend_calls_total{operation="describe",outcome="unavailable"}"#;
    assert!(sample(&text, down).unwrap_or(0.0) >= 1.0, "{text}");
}

#[tokio::test]
async fn made_up_methods_add_no_series_of_their_own() {
    let app = spawn_app().await;
    for i in 0..20 {
        let method = reqwest::Method::from_bytes(format!("MADEUP{i}").as_bytes()).unwrap();
        for path in ["/job", "/nowhere", "/health"] {
            let r = app
                .http
                .request(method.clone(), app.url(path))
                .send()
                .await
                .unwrap();
            assert!(
                r.status().is_client_error(),
                "{method} {path}: {}",
                r.status()
            );
        }
    }

    let text = scrape(&app).await;
    assert!(!text.contains("MADEUP"), "{text}");
    let labelled = text
        .lines()
        .filter(|l| l.starts_with("http_requests_total{"))
        .filter_map(|l| l.split("method=\"").nth(1)?.split('"').next())
        .collect::<std::collections::BTreeSet<_>>();
    assert!(labelled.contains("other"), "{labelled:?}");
    let other = sum_where(&text, "http_requests_total", &[r#"method="other""#]);
    assert!(other >= 60.0, "{text}");
}
