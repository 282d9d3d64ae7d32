//! The pages for the lab's admins: the jobs (`GET /ui`) and one job (`GET /ui/jobs/{id}`),
//! rendered here as plain HTML with inline CSS and inline SVG. Nothing is fetched from
//! anywhere (the Content-Security-Policy allows no source but the page's own style), and
//! every value from a job, a report or a log is escaped.

use std::collections::HashMap;
use std::fmt::Write;
use std::sync::OnceLock;

use axum::extract::rejection::PathRejection;
use axum::extract::{Path, RawQuery, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use sha2::{Digest, Sha256};
use time::OffsetDateTime;
use tracing::warn;

use super::AppState;
use crate::job::{format_date, Algorithm, JobId, JobRun};
use crate::progress::{eta_seconds, fraction, unix_seconds, HistoryPoint};
use crate::store::{FinalState, JobOverview, NoticeRow, ProgressRecord};

/// Jobs on one page of `/ui`.
pub const PAGE_SIZE: i64 = 25;
/// The most pages `?page=` may ask for (a bound for the offset, not for the jobs).
pub const MAX_PAGE: i64 = 100_000;
/// Lines of a local job's log its page shows.
const LOG_LINES: usize = 40;
const LOG_BYTES: usize = 16 * 1024;

const CSS: &str = "
:root{color-scheme:light;--fg:#1b1f24;--muted:#545d68;--line:#d0d7de;--bg:#fff;--head:#f6f8fa;--accent:#0b57d0;--warm:#9a3c00}
*{box-sizing:border-box}
body{margin:0;font:16px/1.5 system-ui,-apple-system,'Segoe UI',Roboto,sans-serif;color:var(--fg);background:var(--bg)}
header,main{max-width:72rem;margin:0 auto;padding:0 1rem}
header{border-bottom:1px solid var(--line);padding-top:.75rem;padding-bottom:.5rem}
header p{margin:.25rem 0;color:var(--muted)}
h1{font-size:1.4rem;margin:.25rem 0}
h2{font-size:1.15rem;margin:1.5rem 0 .5rem}
a{color:var(--accent)}
a:focus-visible{outline:3px solid var(--accent);outline-offset:2px}
.table{overflow-x:auto}
table{border-collapse:collapse;width:100%;font-size:.95rem}
caption{text-align:left;color:var(--muted);padding:.25rem 0}
th,td{border-bottom:1px solid var(--line);padding:.4rem .5rem;text-align:left;vertical-align:top}
thead th{background:var(--head);position:sticky;top:0}
td.num{font-variant-numeric:tabular-nums}
progress{width:7rem;height:1rem;vertical-align:middle}
.state{font-weight:600}
.muted{color:var(--muted)}
dl{display:grid;grid-template-columns:max-content 1fr;gap:.25rem 1rem;margin:0}
dt{color:var(--muted)}
dd{margin:0;overflow-wrap:anywhere}
pre{background:var(--head);border:1px solid var(--line);padding:.5rem;overflow-x:auto;font-size:.85rem;white-space:pre-wrap;overflow-wrap:anywhere}
.plot{width:100%;max-width:46rem;height:auto;border:1px solid var(--line)}
nav.pages{display:flex;gap:1rem;margin:1rem 0}
@media (max-width:40rem){
 thead{position:absolute;left:-9999px}
 table,caption,tbody,tr,td{display:block;width:100%}
 tr{border:1px solid var(--line);margin:0 0 .75rem;padding:.25rem}
 td{border:0;padding:.15rem .25rem}
 td::before{content:attr(data-label) ': ';color:var(--muted);font-weight:600}
 dl{grid-template-columns:1fr}
 dt{margin-top:.4rem}
}
";

/// The page's CSP: nothing may load, nothing may run; only the page's own style applies.
fn content_security_policy() -> &'static str {
    static CSP: OnceLock<String> = OnceLock::new();
    CSP.get_or_init(|| {
        let hash = base64::engine::general_purpose::STANDARD.encode(Sha256::digest(CSS));
        format!(
            "default-src 'none'; style-src 'sha256-{hash}'; img-src data:; base-uri 'none'; \
             form-action 'none'; frame-ancestors 'none'"
        )
    })
}

/// Escapes text for HTML content and attribute values.
pub fn esc(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// A whole page: its title, the seconds after which it reloads itself (a running job's),
/// and its body.
fn page(status: StatusCode, title: &str, refresh: Option<u64>, body: &str) -> Response {
    let refresh = refresh
        .map(|s| format!("<meta http-equiv=\"refresh\" content=\"{s}\">\n"))
        .unwrap_or_default();
    let html = format!(
        "<!doctype html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n\
         {refresh}<title>{} · multiomix-aws-emr</title>\n<link rel=\"icon\" href=\"data:,\">\n\
         <style>{CSS}</style>\n</head>\n<body>\n{body}\n</body>\n</html>\n",
        esc(title)
    );
    html_response(status, html)
}

/// The headers every page goes with.
pub fn html_response(status: StatusCode, html: String) -> Response {
    let mut response = (status, html).into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_str(content_security_policy()).expect("the policy is ASCII"),
    );
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    response
}

/// A page that says what went wrong.
fn error_page(status: StatusCode, message: &str) -> Response {
    let body = format!(
        "<header><h1>{}</h1></header>\n<main><p>{}</p>\n<p><a href=\"/ui\">All jobs</a></p></main>",
        esc(status.canonical_reason().unwrap_or("Error")),
        esc(message)
    );
    page(
        status,
        status.canonical_reason().unwrap_or("Error"),
        None,
        &body,
    )
}

/// The 401 of the pages: a browser asks for the token as the password of HTTP Basic.
pub fn unauthorized() -> Response {
    let mut response = error_page(
        StatusCode::UNAUTHORIZED,
        "These pages need the service's API token: give it as the password (any user name).",
    );
    response.headers_mut().insert(
        header::WWW_AUTHENTICATE,
        HeaderValue::from_static("Basic realm=\"multiomix-aws-emr\", charset=\"UTF-8\""),
    );
    response
}

fn now() -> OffsetDateTime {
    OffsetDateTime::now_utc()
}

fn millis(ms: i64) -> OffsetDateTime {
    OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000)
        .unwrap_or(OffsetDateTime::UNIX_EPOCH)
}

/// `2 h 05 min`, `3 min 07 s`, `42 s`.
pub fn duration_text(seconds: i64) -> String {
    let s = seconds.max(0);
    match s {
        s if s >= 86_400 => format!("{} d {:02} h", s / 86_400, s % 86_400 / 3_600),
        s if s >= 3_600 => format!("{} h {:02} min", s / 3_600, s % 3_600 / 60),
        s if s >= 60 => format!("{} min {:02} s", s / 60, s % 60),
        s => format!("{s} s"),
    }
}

fn algorithm_name(code: Option<i64>) -> &'static str {
    match code.and_then(Algorithm::from_code) {
        Some(Algorithm::Bbha) => "BBHA",
        Some(Algorithm::BlindSearch) => "Blind Search",
        None => "unknown",
    }
}

fn fitness_text(fitness: Option<f64>) -> String {
    fitness.map_or_else(|| "—".to_owned(), |f| format!("{f:.4}"))
}

/// The `<progress>` bar of a report, labelled with what it measures.
fn progress_bar(p: &ProgressRecord) -> String {
    let percent = (fraction(p.evaluations_done, p.evaluations_total) * 100.0).round();
    let unit = if p.algorithm == "blind_search" {
        "chunks"
    } else {
        "iterations"
    };
    format!(
        "<progress max=\"{}\" value=\"{}\" aria-label=\"{percent}% of the planned evaluations\">{percent}%</progress> \
         <span>{percent}% · {}/{} {unit}</span>",
        p.evaluations_total.max(1),
        p.evaluations_done.clamp(0, p.evaluations_total.max(1)),
        p.iteration,
        p.iterations
    )
}

/// What is known of a job's state: the backend's reading, else the store's final state.
fn state_text(run: Option<&JobRun>, stored_final: Option<&str>) -> String {
    match (run, stored_final) {
        (Some(run), _) => run.state.as_str().to_owned(),
        (None, Some(state)) => state.to_owned(),
        (None, None) => "unknown".to_owned(),
    }
}

/// `GET /ui`: the jobs, newest first, a page at a time.
#[utoipa::path(
    get,
    path = "/ui",
    tag = "pages",
    operation_id = "jobs_page",
    summary = "The jobs, for the lab's admins (HTML)",
    params(
        ("page" = Option<i64>, Query, minimum = 1, maximum = 100000,
         description = "Page number, 25 jobs a page, newest first"),
    ),
    responses(
        (status = 200, description = "The page", content_type = "text/html"),
        (status = 400, description = "An unknown parameter or a page out of range", content_type = "text/html"),
        (status = 401, description = "Missing or wrong API token (Basic password or bearer)",
         content_type = "text/html", headers(("WWW-Authenticate" = String))),
        (status = 500, description = "Internal error", content_type = "text/html"),
        (status = 503, description = "The service is at capacity", body = super::error::ErrorBody,
         headers(("Retry-After" = u64, description = "Seconds to wait"))),
    ),
    security(("api_token" = []), ("api_token_basic" = [])),
)]
pub async fn jobs_page(State(state): State<AppState>, RawQuery(query): RawQuery) -> Response {
    let mut number = 1;
    for (key, value) in form_urlencoded::parse(query.unwrap_or_default().as_bytes()) {
        match key.as_ref() {
            "page" => match value.parse::<i64>() {
                Ok(n) if (1..=MAX_PAGE).contains(&n) => number = n,
                _ => {
                    return error_page(
                        StatusCode::BAD_REQUEST,
                        &format!("page must be a number from 1 to {MAX_PAGE}"),
                    )
                }
            },
            other => {
                return error_page(
                    StatusCode::BAD_REQUEST,
                    &format!("unknown parameter '{other}'; this page takes only page"),
                )
            }
        }
    }
    let listed = async {
        let total = state.store.job_count().await?;
        let rows = state
            .store
            .jobs_page((number - 1) * PAGE_SIZE, PAGE_SIZE)
            .await?;
        Ok::<_, crate::store::StoreError>((total, rows))
    };
    let (total, rows) = match listed.await {
        Ok(listed) => listed,
        Err(e) => {
            warn!(error = %e, "cannot read the jobs for the admin page");
            return error_page(
                StatusCode::INTERNAL_SERVER_ERROR,
                "The store cannot be read right now.",
            );
        }
    };
    let runs = read_runs(&state, &rows).await;
    let pages = ((total + PAGE_SIZE - 1) / PAGE_SIZE).max(1);
    let mut body = String::new();
    let _ = write!(
        body,
        "<header><h1>Feature-selection jobs</h1><p>{} job{} in all · {} backend · page {number} of {pages} · {}</p></header>\n<main>\n",
        total,
        if total == 1 { "" } else { "s" },
        esc(state.backend.kind().as_str()),
        esc(&format_date(now()))
    );
    if rows.is_empty() {
        body.push_str("<p>No jobs on this page.</p>\n");
    } else {
        body.push_str(
            "<div class=\"table\"><table>\n<caption>Newest first. Times in UTC.</caption>\n<thead><tr>\
             <th scope=\"col\">Name</th><th scope=\"col\">App name</th><th scope=\"col\">Backend</th>\
             <th scope=\"col\">State</th><th scope=\"col\">Progress</th><th scope=\"col\">Best fitness</th>\
             <th scope=\"col\">Started</th><th scope=\"col\">Elapsed</th><th scope=\"col\">Estimated end</th>\
             <th scope=\"col\">Notice</th></tr></thead>\n<tbody>\n",
        );
        for row in &rows {
            body.push_str(&job_row(row, runs.get(&row.job.id)));
        }
        body.push_str("</tbody>\n</table></div>\n");
    }
    body.push_str("<nav class=\"pages\" aria-label=\"Pages\">");
    if number > 1 {
        let _ = write!(
            body,
            "<a href=\"/ui?page={}\" rel=\"prev\">Newer jobs</a>",
            number - 1
        );
    }
    if number < pages {
        let _ = write!(
            body,
            "<a href=\"/ui?page={}\" rel=\"next\">Older jobs</a>",
            number + 1
        );
    }
    body.push_str("</nav>\n</main>");
    page(StatusCode::OK, "Jobs", None, &body)
}

/// The backend's reading of the listed jobs, in one batch; what cannot be read is left
/// out (the store's knowledge is shown instead).
async fn read_runs(state: &AppState, rows: &[JobOverview]) -> HashMap<JobId, JobRun> {
    let ids: Vec<JobId> = rows.iter().map(|r| r.job.id.clone()).collect();
    if ids.is_empty() {
        return HashMap::new();
    }
    match state.backend.describe_batch(&ids).await {
        Ok(described) => described
            .into_iter()
            .filter_map(|(id, run)| run.ok().map(|run| (id, run)))
            .collect(),
        Err(e) => {
            warn!(error = %crate::backend::error_chain(&e), "cannot read the listed jobs from the backend; the page shows what the store knows");
            HashMap::new()
        }
    }
}

fn job_row(row: &JobOverview, run: Option<&JobRun>) -> String {
    let job = &row.job;
    let ended = run.map_or(row.final_state.is_some(), |r| r.state.is_final());
    let created = run.map_or_else(|| millis(job.created_at), |r| r.created_at);
    let elapsed = run.map(|r| {
        let end = r.finished_at.unwrap_or_else(now);
        duration_text((end - r.created_at).whole_seconds())
    });
    let (progress, fitness, eta) = match &row.progress {
        Some(p) => {
            let now_s = now().unix_timestamp() as f64;
            let eta = eta_seconds(p, now_s, ended)
                .map(|s| format_date(now() + time::Duration::seconds(s as i64)));
            (progress_bar(p), fitness_text(p.best_fitness), eta)
        }
        None => (
            "<span class=\"muted\">no report</span>".to_owned(),
            "—".to_owned(),
            None,
        ),
    };
    let notice = row
        .notice
        .map_or_else(|| "—".to_owned(), |n| n.as_str().replace('_', " "));
    format!(
        "<tr><td data-label=\"Name\"><a href=\"/ui/jobs/{id}\">{name}</a></td>\
         <td data-label=\"App name\">{app}</td><td data-label=\"Backend\">{backend}</td>\
         <td data-label=\"State\" class=\"state\">{state}</td><td data-label=\"Progress\">{progress}</td>\
         <td data-label=\"Best fitness\" class=\"num\">{fitness}</td>\
         <td data-label=\"Started\" class=\"num\">{created}</td><td data-label=\"Elapsed\" class=\"num\">{elapsed}</td>\
         <td data-label=\"Estimated end\" class=\"num\">{eta}</td><td data-label=\"Notice\">{notice}</td></tr>\n",
        id = esc(job.id.as_str()),
        name = esc(&job.name),
        app = esc(job.app_name.as_deref().unwrap_or("—")),
        backend = esc(job.backend.as_str()),
        state = esc(&state_text(run, row.final_state.map(FinalState::as_str))),
        created = esc(&format_date(created)),
        elapsed = esc(elapsed.as_deref().unwrap_or("—")),
        eta = esc(eta.as_deref().unwrap_or("—")),
        notice = esc(&notice),
    )
}

/// `GET /ui/jobs/{id}`: one job, its progress plotted, its notice and its logs.
#[utoipa::path(
    get,
    path = "/ui/jobs/{id}",
    tag = "pages",
    operation_id = "job_page",
    summary = "One job, for the lab's admins (HTML)",
    params(super::jobs::JobIdParam),
    responses(
        (status = 200, description = "The page; a running job's reloads itself", content_type = "text/html"),
        (status = 400, description = "Malformed job id", content_type = "text/html"),
        (status = 401, description = "Missing or wrong API token (Basic password or bearer)",
         content_type = "text/html", headers(("WWW-Authenticate" = String))),
        (status = 404, description = "A job this service did not start", content_type = "text/html"),
        (status = 500, description = "Internal error", content_type = "text/html"),
        (status = 503, description = "The service is at capacity", body = super::error::ErrorBody,
         headers(("Retry-After" = u64, description = "Seconds to wait"))),
    ),
    security(("api_token" = []), ("api_token_basic" = [])),
)]
pub async fn job_page(
    State(state): State<AppState>,
    path: Result<Path<String>, PathRejection>,
) -> Response {
    let Some(id) = path.ok().and_then(|Path(raw)| JobId::parse(&raw)) else {
        return error_page(
            StatusCode::BAD_REQUEST,
            "A job id is 1 to 64 lowercase letters and digits.",
        );
    };
    let stored = async {
        let Some(job) = state.store.job(&id).await? else {
            return Ok(None);
        };
        let final_state = state.store.job_final_state(&id).await?.flatten();
        let progress = state.store.progress(&id).await?;
        let notice = state.store.notice(&id).await?;
        Ok::<_, crate::store::StoreError>(Some((job, final_state, progress, notice)))
    };
    let (job, final_state, progress, notice) = match stored.await {
        Ok(Some(found)) => found,
        Ok(None) => {
            return error_page(
                StatusCode::NOT_FOUND,
                &format!("This service started no job {id}."),
            )
        }
        Err(e) => {
            warn!(job_id = %id, error = %e, "cannot read the job for its admin page");
            return error_page(
                StatusCode::INTERNAL_SERVER_ERROR,
                "The store cannot be read right now.",
            );
        }
    };
    let run = match state.backend.describe(&id).await {
        Ok(run) => Some(run),
        Err(e) => {
            warn!(job_id = %id, error = %crate::backend::error_chain(&e), "cannot read the job from the backend for its admin page");
            None
        }
    };
    let ended = run
        .as_ref()
        .map_or(final_state.is_some(), |r| r.state.is_final());
    let state_now = state_text(run.as_ref(), final_state.map(FinalState::as_str));
    let mut body = String::new();
    let _ = write!(
        body,
        "<header><p><a href=\"/ui\">All jobs</a></p><h1>{}</h1><p>State: <span class=\"state\">{}</span> · job {} · {}</p></header>\n<main>\n",
        esc(&job.name),
        esc(&state_now),
        esc(job.id.as_str()),
        esc(&format_date(now()))
    );

    // What it was asked to do.
    body.push_str("<h2 id=\"arguments\">Arguments</h2>\n<dl>\n");
    for (term, value) in [
        ("Name", job.name.clone()),
        ("Algorithm", algorithm_name(job.algorithm).to_owned()),
        (
            "App name",
            job.app_name.clone().unwrap_or_else(|| "unknown".into()),
        ),
        ("Backend", job.backend.to_string()),
        ("Job id", job.id.to_string()),
        (
            "Recorded",
            if job.adopted {
                "adopted from the backend after the store was lost".into()
            } else {
                "started by this service".into()
            },
        ),
    ] {
        let _ = writeln!(body, "<dt>{term}</dt><dd>{}</dd>", esc(&value));
    }
    body.push_str("</dl>\n");

    // Its states, with their times.
    body.push_str("<h2 id=\"states\">States</h2>\n<div class=\"table\"><table>\n<thead><tr><th scope=\"col\">What</th><th scope=\"col\">When (UTC)</th></tr></thead>\n<tbody>\n");
    let created = run
        .as_ref()
        .map_or_else(|| millis(job.created_at), |r| r.created_at);
    let mut moments = vec![("Submitted".to_owned(), Some(created))];
    if let Some(p) = &progress {
        moments.push(("Search started".into(), Some(unix_seconds(p.started_at))));
        moments.push((
            format!("Last progress report (iteration {})", p.iteration),
            Some(unix_seconds(p.updated_at)),
        ));
    }
    if let Some(run) = &run {
        if let Some(finished) = run.finished_at {
            moments.push((format!("Ended {}", run.state), Some(finished)));
        }
    }
    for (what, when) in moments {
        let _ = writeln!(
            body,
            "<tr><td data-label=\"What\">{}</td><td data-label=\"When\" class=\"num\">{}</td></tr>",
            esc(&what),
            esc(&when.map(format_date).unwrap_or_default())
        );
    }
    body.push_str("</tbody></table></div>\n");
    if let Some(run) = &run {
        let mut details = String::new();
        for (term, value) in [
            ("State details", &run.state_details),
            ("Failure reason", &run.failure_reason),
        ] {
            if let Some(value) = value {
                let _ = writeln!(details, "<dt>{term}</dt><dd>{}</dd>", esc(value));
            }
        }
        if !details.is_empty() {
            let _ = write!(body, "<dl>\n{details}</dl>\n");
        }
    }

    // How far it has come.
    body.push_str("<h2 id=\"progress\">Progress</h2>\n");
    match &progress {
        Some(p) => {
            let now_s = now().unix_timestamp() as f64;
            let eta = eta_seconds(p, now_s, ended);
            let _ = write!(
                body,
                "<p>{}</p>\n<dl>\n<dt>Best fitness</dt><dd>{}</dd>\n<dt>Molecules in the best subset</dt><dd>{}</dd>\n\
                 <dt>Evaluations</dt><dd>{} of {}</dd>\n<dt>Time left at this pace</dt><dd>{}</dd>\n</dl>\n",
                progress_bar(p),
                esc(&fitness_text(p.best_fitness)),
                p.molecules,
                p.evaluations_done,
                p.evaluations_total,
                esc(&eta.map_or_else(
                    || if ended { "ended".to_owned() } else { "unknown".to_owned() },
                    |s| format!(
                        "{} (about {})",
                        duration_text(s as i64),
                        format_date(now() + time::Duration::seconds(s as i64))
                    )
                )),
            );
            let history: Vec<HistoryPoint> = serde_json::from_str(&p.history).unwrap_or_default();
            body.push_str(&plot(&history));
        }
        None => {
            let why = match &state.progress {
                Some(_) if job.app_name.is_some() => {
                    "No progress report read yet: the job writes its first after its initial stars."
                }
                Some(_) => "This job has no app name on record, so its reports cannot be found.",
                None => "The service cannot read this backend's progress reports (see the documentation's job progress page).",
            };
            let _ = writeln!(body, "<p class=\"muted\">{}</p>", esc(why));
        }
    }
    if let (Some(reader), Some(app)) = (&state.progress, &job.app_name) {
        let _ = writeln!(
            body,
            "<p class=\"muted\">Reports are read from {} every {} s.</p>",
            esc(&reader.place().describe(app)),
            state.config.progress.interval.as_secs_f64()
        );
    }

    // The notice to Multiomix.
    body.push_str("<h2 id=\"notice\">Notice to Multiomix</h2>\n");
    body.push_str(&notice_section(notice.as_ref()));

    // Its logs.
    body.push_str("<h2 id=\"logs\">Logs</h2>\n");
    body.push_str(&logs_section(&state, run.as_ref()).await);
    body.push_str("</main>");

    let refresh = (!ended).then(|| state.config.progress.interval.as_secs().clamp(5, 60));
    page(StatusCode::OK, &job.name, refresh, &body)
}

fn notice_section(notice: Option<&NoticeRow>) -> String {
    let Some(n) = notice else {
        return "<p class=\"muted\">No notice yet: it opens when the job ends.</p>\n".to_owned();
    };
    let mut out = String::from("<dl>\n");
    let mut item = |term: &str, value: String| {
        let _ = writeln!(out, "<dt>{term}</dt><dd>{}</dd>", esc(&value));
    };
    item("Status", n.status.as_str().replace('_', " "));
    item("Delivery attempts", n.attempts.to_string());
    item("Copies of the results tried", n.fetch_attempts.to_string());
    if let Some(first) = n.first_attempt_at {
        item("First attempt", format_date(millis(first)));
    }
    if let Some(state) = &n.final_state {
        item("Final state sent", state.to_string());
    }
    if let Some(error) = &n.last_error {
        item("Last error", error.clone());
    }
    out.push_str("</dl>\n");
    out
}

/// Where the job's logs are; for a local job, the last lines of its log, escaped.
async fn logs_section(state: &AppState, run: Option<&JobRun>) -> String {
    let Some(location) = run.and_then(|r| r.log_location.clone()) else {
        return "<p class=\"muted\">The backend gives no log location for this job.</p>\n"
            .to_owned();
    };
    if !state.backend.kind().runs_here() {
        // EMR writes them under a prefix, Livy links its driver log: not this machine's.
        return format!(
            "<p>The job's logs are kept by the {} backend at <code>{}</code> (the driver's \
             stdout and stderr are there once the job has run).</p>\n",
            esc(state.backend.kind().as_str()),
            esc(&location)
        );
    }
    let path = std::path::PathBuf::from(&location);
    let tail = tokio::task::spawn_blocking(move || {
        crate::backend::local::log_tail(&path, LOG_LINES, LOG_BYTES)
    })
    .await
    .unwrap_or_default();
    format!(
        "<p>The log is <code>{}</code>; its last lines:</p>\n<pre>{}</pre>\n",
        esc(&location),
        if tail.is_empty() {
            "(empty)".to_owned()
        } else {
            esc(&tail)
        }
    )
}

/// An SVG plot of the best fitness (left axis) and the molecules in the best subset
/// (right axis) by iteration, with a table of the same points for screen readers and
/// for copying.
pub fn plot(points: &[HistoryPoint]) -> String {
    if points.is_empty() {
        return String::new();
    }
    const W: f64 = 640.0;
    const H: f64 = 280.0;
    const LEFT: f64 = 64.0;
    const RIGHT: f64 = 64.0;
    const TOP: f64 = 16.0;
    const BOTTOM: f64 = 48.0;
    let plot_w = W - LEFT - RIGHT;
    let plot_h = H - TOP - BOTTOM;
    let first = points.first().map_or(0, |p| p.iteration) as f64;
    let last = points.last().map_or(0, |p| p.iteration) as f64;
    let (x_min, x_max) = if last > first {
        (first, last)
    } else {
        (first, first + 1.0)
    };
    let fitness: Vec<f64> = points.iter().filter_map(|p| p.best_fitness).collect();
    let (f_min, f_max) = match (
        fitness.iter().copied().reduce(f64::min),
        fitness.iter().copied().reduce(f64::max),
    ) {
        (Some(lo), Some(hi)) if hi > lo => {
            let pad = (hi - lo) * 0.05;
            (lo - pad, hi + pad)
        }
        (Some(v), _) => (v - 0.05, v + 0.05),
        _ => (0.0, 1.0),
    };
    let m_max = points.iter().map(|p| p.molecules).max().unwrap_or(1).max(1) as f64;
    let x = |i: f64| LEFT + (i - x_min) / (x_max - x_min) * plot_w;
    let y_f = |f: f64| TOP + (1.0 - (f - f_min) / (f_max - f_min)) * plot_h;
    let y_m = |m: f64| TOP + (1.0 - m / m_max) * plot_h;

    let mut svg = String::new();
    let _ = write!(
        svg,
        "<figure>\n<svg class=\"plot\" viewBox=\"0 0 {W} {H}\" role=\"img\" aria-labelledby=\"plot-title plot-desc\" xmlns=\"http://www.w3.org/2000/svg\">\n\
         <title id=\"plot-title\">Best fitness and molecules per iteration</title>\n\
         <desc id=\"plot-desc\">{} reports from iteration {} to {}: best fitness from {} to {} (solid line, left axis); molecules in the best subset from {} to {} (dashed line, right axis).</desc>\n",
        points.len(),
        points[0].iteration,
        points[points.len() - 1].iteration,
        fitness_text(points.iter().find_map(|p| p.best_fitness)),
        fitness_text(points.iter().rev().find_map(|p| p.best_fitness)),
        points[0].molecules,
        points[points.len() - 1].molecules,
    );
    // Frame and grid.
    let _ = writeln!(
        svg,
        "<rect x=\"{LEFT}\" y=\"{TOP}\" width=\"{plot_w}\" height=\"{plot_h}\" fill=\"#ffffff\" stroke=\"#8c959f\"/>"
    );
    for k in 0..=4 {
        let t = f64::from(k) / 4.0;
        let y = TOP + t * plot_h;
        let _ = writeln!(
            svg,
            "<line x1=\"{LEFT}\" x2=\"{}\" y1=\"{y:.1}\" y2=\"{y:.1}\" stroke=\"#d0d7de\" stroke-width=\"1\"/>\
             <text x=\"{}\" y=\"{:.1}\" font-size=\"12\" text-anchor=\"end\" fill=\"#0b57d0\">{:.3}</text>\
             <text x=\"{}\" y=\"{:.1}\" font-size=\"12\" text-anchor=\"start\" fill=\"#9a3c00\">{:.0}</text>",
            LEFT + plot_w,
            LEFT - 6.0,
            y + 4.0,
            f_max - t * (f_max - f_min),
            LEFT + plot_w + 6.0,
            y + 4.0,
            m_max * (1.0 - t)
        );
    }
    // Iteration ticks: at most 10, on whole iterations.
    let span = (x_max - x_min).max(1.0);
    let step = (span / 10.0).ceil().max(1.0);
    let mut tick = x_min;
    while tick <= x_max + 1e-9 {
        let _ = writeln!(
            svg,
            "<text x=\"{:.1}\" y=\"{}\" font-size=\"12\" text-anchor=\"middle\" fill=\"#1b1f24\">{}</text>",
            x(tick),
            TOP + plot_h + 16.0,
            tick as i64
        );
        tick += step;
    }
    // Axis titles.
    let _ = writeln!(
        svg,
        "<text x=\"{}\" y=\"{}\" font-size=\"13\" text-anchor=\"middle\" fill=\"#1b1f24\">Iteration</text>\
         <text transform=\"translate(16 {}) rotate(-90)\" font-size=\"13\" text-anchor=\"middle\" fill=\"#0b57d0\">Best fitness</text>\
         <text transform=\"translate({} {}) rotate(90)\" font-size=\"13\" text-anchor=\"middle\" fill=\"#9a3c00\">Molecules</text>",
        LEFT + plot_w / 2.0,
        H - 8.0,
        TOP + plot_h / 2.0,
        W - 14.0,
        TOP + plot_h / 2.0
    );
    // The two series.
    let fitness_points: Vec<String> = points
        .iter()
        .filter_map(|p| {
            p.best_fitness
                .map(|f| format!("{:.1},{:.1}", x(p.iteration as f64), y_f(f)))
        })
        .collect();
    let molecule_points: Vec<String> = points
        .iter()
        .map(|p| {
            format!(
                "{:.1},{:.1}",
                x(p.iteration as f64),
                y_m(p.molecules as f64)
            )
        })
        .collect();
    let _ = writeln!(
        svg,
        "<polyline class=\"series-molecules\" points=\"{}\" fill=\"none\" stroke=\"#9a3c00\" stroke-width=\"2\" stroke-dasharray=\"6 4\"/>",
        molecule_points.join(" ")
    );
    let _ = writeln!(
        svg,
        "<polyline class=\"series-fitness\" points=\"{}\" fill=\"none\" stroke=\"#0b57d0\" stroke-width=\"2.5\"/>",
        fitness_points.join(" ")
    );
    for point in &fitness_points {
        let (cx, cy) = point.split_once(',').unwrap_or(("0", "0"));
        let _ = writeln!(
            svg,
            "<circle cx=\"{cx}\" cy=\"{cy}\" r=\"3\" fill=\"#0b57d0\"/>"
        );
    }
    svg.push_str("</svg>\n<figcaption>Solid: best fitness (left axis). Dashed: molecules in the best subset (right axis).</figcaption>\n</figure>\n");

    // The same points as a table.
    svg.push_str("<details><summary>The points as a table</summary>\n<div class=\"table\"><table>\n<thead><tr><th scope=\"col\">Iteration</th><th scope=\"col\">Best fitness</th><th scope=\"col\">Molecules</th><th scope=\"col\">Evaluations done</th><th scope=\"col\">At (UTC)</th></tr></thead>\n<tbody>\n");
    for p in points {
        let _ = writeln!(
            svg,
            "<tr><td data-label=\"Iteration\" class=\"num\">{}</td><td data-label=\"Best fitness\" class=\"num\">{}</td>\
             <td data-label=\"Molecules\" class=\"num\">{}</td><td data-label=\"Evaluations done\" class=\"num\">{}</td>\
             <td data-label=\"At\" class=\"num\">{}</td></tr>",
            p.iteration,
            esc(&fitness_text(p.best_fitness)),
            p.molecules,
            p.evaluations_done,
            esc(&format_date(unix_seconds(p.at)))
        );
    }
    svg.push_str("</tbody></table></div></details>\n");
    svg
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escaping_covers_markup_and_both_quotes() {
        assert_eq!(
            esc(r#"<script>alert("x")</script> & 'y'"#),
            "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt; &amp; &#39;y&#39;"
        );
    }

    #[test]
    fn durations_read_in_the_largest_units() {
        assert_eq!(duration_text(42), "42 s");
        assert_eq!(duration_text(187), "3 min 07 s");
        assert_eq!(duration_text(7_500), "2 h 05 min");
        assert_eq!(duration_text(90_000), "1 d 01 h");
        assert_eq!(duration_text(-5), "0 s");
    }

    #[test]
    fn the_policy_allows_exactly_the_pages_own_style() {
        let csp = content_security_policy();
        assert!(
            csp.starts_with("default-src 'none'; style-src 'sha256-"),
            "{csp}"
        );
        let hash = base64::engine::general_purpose::STANDARD.encode(Sha256::digest(CSS));
        assert!(csp.contains(&hash));
        assert!(!csp.contains("unsafe"));
    }

    #[test]
    fn the_plot_has_both_series_labelled_axes_and_a_title() {
        let points: Vec<HistoryPoint> = (0..5)
            .map(|i| HistoryPoint {
                iteration: i,
                best_fitness: (i > 0).then(|| 0.5 + i as f64 / 100.0),
                molecules: 20 - i,
                evaluations_done: 6 + 4 * i,
                at: 1_700_000_000.0 + i as f64,
            })
            .collect();
        let svg = plot(&points);
        assert!(svg.contains("<title id=\"plot-title\">"));
        for label in [">Iteration<", ">Best fitness<", ">Molecules<"] {
            assert!(svg.contains(label), "{label}");
        }
        let fitness = svg.split("series-fitness\" points=\"").nth(1).unwrap();
        let fitness = fitness.split('"').next().unwrap();
        assert_eq!(
            fitness.split(' ').count(),
            4,
            "the point without a fitness is left out"
        );
        let molecules = svg.split("series-molecules\" points=\"").nth(1).unwrap();
        assert_eq!(molecules.split('"').next().unwrap().split(' ').count(), 5);
        assert_eq!(svg.matches("<tr><td data-label=\"Iteration\"").count(), 5);
        assert_eq!(plot(&[]), "");
    }
}
