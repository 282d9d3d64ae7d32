//! Live progress of running jobs: the reports the jobs write, read, checked and kept.
//!
//! A job (`scripts/src/feature_selection/progress.py`) replaces one JSON document after
//! its initial stars and after each BBHA iteration (or Blind Search chunk):
//! `RESULTS_PATH/.progress/<app-name>.json` on this machine for the local backend, the
//! object `S3_RESULTS_PREFIX.progress/<app-name>.json` on EMR (see
//! [`crate::config::ProgressSource`]). Every `PROGRESS_INTERVAL` the [`ProgressReader`]
//! reads the report of each job it follows, once more after the job ended (and then
//! removes the file or object), and keeps what it accepts in the store, where
//! `GET /job/{id}` and the admin pages find it after a restart too.
//!
//! A report is taken only when it is at most [`MAX_REPORT_BYTES`], JSON of version 1, for
//! the job's own app name, with the job's own token (drawn at `POST /job`, compared in
//! constant time) and a search start not well before the job was created. Anything else is
//! refused, counted in `progress_reports_refused_total{reason}` and logged once per job
//! and reason. A report lost or refused loses nothing but freshness.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::Value;
use tokio::io::AsyncReadExt;
use tracing::{debug, error, info, warn};

use crate::config::{ProgressSettings, ProgressSource, S3Location};
use crate::job::{format_date, JobId, ProgressToken, ProgressView};
use crate::store::{now_millis, ProgressJob, ProgressRecord, Store, StoreResult};

/// The largest report taken (the job keeps its own under the same bound).
pub const MAX_REPORT_BYTES: usize = 64 * 1024;
/// The most history points a report may carry (the job keeps 200).
pub const MAX_HISTORY_POINTS: usize = 200;
/// How far before the job's creation a report's `startedAt` may be (clocks of EMR nodes
/// and of this service differ a little): earlier, it is a report of an older run under
/// the same app name.
pub const STARTED_AT_SLACK_SECS: f64 = 300.0;
/// The folder, beside the result folders, that holds the reports.
pub const FOLDER: &str = ".progress";
/// Jobs read per round; the rest wait for the next round.
const ROUND_LIMIT: i64 = 1_000;
/// Reports read at once (S3 requests in flight).
const CONCURRENT_READS: usize = 8;

/// Why a report was not taken: the `reason` label of `progress_reports_refused_total`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Refusal {
    /// Over [`MAX_REPORT_BYTES`].
    TooLarge,
    /// Not JSON, not version 1, or not the document's shape.
    Invalid,
    /// For another app name than the job's.
    OtherApp,
    /// No `token`.
    NoToken,
    /// A `token` that is not the job's.
    WrongToken,
    /// `startedAt` well before the job was created: an older run's report.
    Stale,
}

impl Refusal {
    pub fn as_str(self) -> &'static str {
        match self {
            Refusal::TooLarge => "too_large",
            Refusal::Invalid => "invalid",
            Refusal::OtherApp => "other_app",
            Refusal::NoToken => "no_token",
            Refusal::WrongToken => "wrong_token",
            Refusal::Stale => "stale",
        }
    }
}

/// One point of a report's history: the figures of one earlier report.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct HistoryPoint {
    pub iteration: u64,
    pub best_fitness: Option<f64>,
    pub molecules: u64,
    pub evaluations_done: u64,
    /// Unix seconds.
    pub at: f64,
}

/// The document a job writes (version 1), as `progress.py` describes it.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Document {
    app_name: String,
    algorithm: String,
    started_at: f64,
    updated_at: f64,
    iteration: u64,
    iterations: u64,
    best_fitness: Option<f64>,
    molecules: u64,
    evaluations_done: u64,
    evaluations_total: u64,
    history: Vec<HistoryPoint>,
    token: Option<String>,
}

/// Checks a report read for `job` and gives what the store keeps of it.
pub fn check(body: &[u8], job: &ProgressJob) -> Result<ProgressRecord, Refusal> {
    if body.len() > MAX_REPORT_BYTES {
        return Err(Refusal::TooLarge);
    }
    let value: Value = serde_json::from_slice(body).map_err(|_| Refusal::Invalid)?;
    if value.get("version").and_then(Value::as_u64) != Some(1) {
        return Err(Refusal::Invalid);
    }
    let doc: Document = serde_json::from_value(value).map_err(|_| Refusal::Invalid)?;
    let sane = matches!(doc.algorithm.as_str(), "bbha" | "blind_search")
        && doc.started_at.is_finite()
        && doc.updated_at.is_finite()
        && doc.started_at <= doc.updated_at
        && doc.iteration <= doc.iterations
        && doc.evaluations_done <= doc.evaluations_total
        && doc.best_fitness.map_or(true, f64::is_finite)
        && doc.history.len() <= MAX_HISTORY_POINTS
        && i64::try_from(doc.evaluations_total).is_ok()
        && i64::try_from(doc.iterations).is_ok()
        && i64::try_from(doc.molecules).is_ok()
        && doc
            .history
            .iter()
            .all(|p| p.at.is_finite() && p.best_fitness.map_or(true, f64::is_finite));
    if !sane {
        return Err(Refusal::Invalid);
    }
    if doc.app_name != job.app_name {
        return Err(Refusal::OtherApp);
    }
    let expected = ProgressToken::from_stored(job.token.clone());
    match &doc.token {
        None => return Err(Refusal::NoToken),
        Some(token) if !expected.matches(token) => return Err(Refusal::WrongToken),
        Some(_) => {}
    }
    let created = job.created_at as f64 / 1000.0;
    if doc.started_at < created - STARTED_AT_SLACK_SECS {
        return Err(Refusal::Stale);
    }
    Ok(ProgressRecord {
        algorithm: doc.algorithm,
        started_at: doc.started_at,
        updated_at: doc.updated_at,
        iteration: doc.iteration as i64,
        iterations: doc.iterations as i64,
        best_fitness: doc.best_fitness,
        molecules: doc.molecules as i64,
        evaluations_done: doc.evaluations_done as i64,
        evaluations_total: doc.evaluations_total as i64,
        history: serde_json::to_string(&doc.history).expect("history points serialise"),
    })
}

/// The seconds left, from the pace so far: the time per evaluation since the search
/// started times the evaluations left, less the time since the report. `None` when it
/// cannot be told (no evaluation done yet) or the job has ended.
pub fn eta_seconds(p: &ProgressRecord, now: f64, ended: bool) -> Option<u64> {
    if ended || p.evaluations_done <= 0 {
        return None;
    }
    let elapsed = p.updated_at - p.started_at;
    if !(elapsed.is_finite() && elapsed > 0.0) {
        return None;
    }
    let left = (p.evaluations_total - p.evaluations_done).max(0) as f64;
    let at_report = elapsed / p.evaluations_done as f64 * left;
    let eta = (at_report - (now - p.updated_at).max(0.0)).max(0.0);
    eta.is_finite().then(|| eta.round() as u64)
}

/// The fraction of the planned evaluations done, 0 to 1.
pub fn fraction(done: i64, total: i64) -> f64 {
    if total <= 0 {
        return 0.0;
    }
    (done as f64 / total as f64).clamp(0.0, 1.0)
}

/// The progress of a job as `GET /job/{id}` shows it, from its last accepted report.
pub fn view(p: &ProgressRecord, ended: bool) -> ProgressView {
    let now = now_millis() as f64 / 1000.0;
    ProgressView {
        iteration: p.iteration,
        iterations: p.iterations,
        best_fitness: p.best_fitness,
        molecules: p.molecules,
        evaluations_done: p.evaluations_done,
        evaluations_total: p.evaluations_total,
        updated_at: format_date(unix_seconds(p.updated_at)),
        eta_seconds: eta_seconds(p, now, ended),
    }
}

/// A moment given in unix seconds (out of range reads as the epoch).
pub fn unix_seconds(at: f64) -> time::OffsetDateTime {
    time::OffsetDateTime::from_unix_timestamp_nanos((at * 1e9) as i128)
        .unwrap_or(time::OffsetDateTime::UNIX_EPOCH)
}

/// What a read found at a job's report's place.
#[derive(Debug, PartialEq, Eq)]
pub enum Fetched {
    /// No report (yet).
    Missing,
    /// The same report as last read (same size and time, or same ETag).
    Unchanged,
    Report {
        /// At most `MAX_REPORT_BYTES + 1` bytes: more says it is too large.
        body: Vec<u8>,
        /// What tells this report from the next.
        fingerprint: String,
    },
}

/// Where the reports are read from.
#[derive(Clone, Debug)]
pub enum Place {
    Folder(PathBuf),
    S3 {
        client: aws_sdk_s3::Client,
        location: S3Location,
    },
}

impl Place {
    /// The place of `settings`, with `s3` as the client for an S3 source; `None` where
    /// the jobs' reports cannot be read.
    pub fn new(settings: &ProgressSettings, s3: Option<aws_sdk_s3::Client>) -> Option<Self> {
        match (&settings.source, s3) {
            (ProgressSource::Folder(folder), _) => Some(Place::Folder(folder.clone())),
            (ProgressSource::S3(location), Some(client)) => Some(Place::S3 {
                client,
                location: location.clone(),
            }),
            (ProgressSource::S3(_), None) | (ProgressSource::Unreadable, _) => None,
        }
    }

    /// Where `app`'s report is, for a log line or the admin page.
    pub fn describe(&self, app: &str) -> String {
        match self {
            Place::Folder(folder) => report_path(folder, app).display().to_string(),
            Place::S3 { location, .. } => {
                format!("s3://{}/{}", location.bucket, report_key(location, app))
            }
        }
    }

    /// Reads `app`'s report unless it is still the one with `seen` as fingerprint.
    pub async fn fetch(&self, app: &str, seen: Option<&str>) -> Result<Fetched, String> {
        match self {
            Place::Folder(folder) => fetch_file(&report_path(folder, app), seen).await,
            Place::S3 { client, location } => {
                fetch_object(client, &location.bucket, &report_key(location, app), seen).await
            }
        }
    }

    /// Removes `app`'s report (nothing there is no error).
    pub async fn remove(&self, app: &str) -> Result<(), String> {
        match self {
            Place::Folder(folder) => match tokio::fs::remove_file(report_path(folder, app)).await {
                Ok(()) => Ok(()),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
                Err(e) => Err(e.to_string()),
            },
            Place::S3 { client, location } => client
                .delete_object()
                .bucket(&location.bucket)
                .key(report_key(location, app))
                .send()
                .await
                .map(|_| ())
                .map_err(|e| crate::staging::describe_failure(e, "DeleteObject")),
        }
    }
}

/// `<folder>/.progress/<app>.json`.
pub fn report_path(folder: &Path, app: &str) -> PathBuf {
    folder.join(FOLDER).join(format!("{app}.json"))
}

/// `<prefix>.progress/<app>.json`, as the job names it.
pub fn report_key(location: &S3Location, app: &str) -> String {
    format!("{}{FOLDER}/{app}.json", location.prefix)
}

async fn fetch_file(path: &Path, seen: Option<&str>) -> Result<Fetched, String> {
    let file = match tokio::fs::File::open(path).await {
        Ok(file) => file,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Fetched::Missing),
        Err(e) => return Err(format!("{}: {e}", path.display())),
    };
    let meta = file
        .metadata()
        .await
        .map_err(|e| format!("{}: {e}", path.display()))?;
    let modified = meta
        .modified()
        .ok()
        .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
        .map_or(0, |d| d.as_nanos());
    let fingerprint = format!("{}:{modified}", meta.len());
    if seen == Some(fingerprint.as_str()) {
        return Ok(Fetched::Unchanged);
    }
    let mut body = Vec::new();
    file.take(MAX_REPORT_BYTES as u64 + 1)
        .read_to_end(&mut body)
        .await
        .map_err(|e| format!("{}: {e}", path.display()))?;
    Ok(Fetched::Report { body, fingerprint })
}

async fn fetch_object(
    client: &aws_sdk_s3::Client,
    bucket: &str,
    key: &str,
    seen: Option<&str>,
) -> Result<Fetched, String> {
    let answer = client
        .get_object()
        .bucket(bucket)
        .key(key)
        .set_if_none_match(seen.map(str::to_owned))
        .send()
        .await;
    let answer = match answer {
        Ok(answer) => answer,
        Err(e) => {
            let status = e.raw_response().map(|r| r.status().as_u16());
            if status == Some(304) {
                return Ok(Fetched::Unchanged);
            }
            if status == Some(404) || e.as_service_error().is_some_and(|s| s.is_no_such_key()) {
                return Ok(Fetched::Missing);
            }
            return Err(crate::staging::describe_failure(e, "GetObject"));
        }
    };
    let fingerprint = answer.e_tag().unwrap_or_default().to_owned();
    if !fingerprint.is_empty() && seen == Some(fingerprint.as_str()) {
        return Ok(Fetched::Unchanged);
    }
    if answer
        .content_length()
        .is_some_and(|n| n > MAX_REPORT_BYTES as i64)
    {
        // Not read: its size alone refuses it.
        return Ok(Fetched::Report {
            body: vec![b' '; MAX_REPORT_BYTES + 1],
            fingerprint,
        });
    }
    let mut stream = answer.body;
    let mut body = Vec::new();
    while let Some(chunk) = stream
        .try_next()
        .await
        .map_err(|e| format!("GetObject s3://{bucket}/{key}: reading the body: {e}"))?
    {
        body.extend_from_slice(&chunk);
        if body.len() > MAX_REPORT_BYTES {
            break;
        }
    }
    Ok(Fetched::Report { body, fingerprint })
}

/// What the reader remembers of a job between rounds (lost on restart: the next read
/// then checks the report again).
#[derive(Default)]
struct Followed {
    /// The fingerprint of the last report read, and whether it was taken.
    last: Option<(String, bool)>,
    /// The reasons already logged for this job.
    logged: HashSet<&'static str>,
}

/// Reads the reports of the jobs it follows every `PROGRESS_INTERVAL`; see the module.
/// [`ProgressReader::run_once`] is one round, for tests.
#[derive(Clone)]
pub struct ProgressReader {
    store: Store,
    place: Arc<Place>,
    interval: Duration,
    followed: Arc<Mutex<HashMap<JobId, Followed>>>,
}

/// What one round did.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Round {
    pub read: usize,
    pub accepted: usize,
    pub refused: usize,
    /// Jobs read for the last time (they ended).
    pub finished: usize,
}

enum Outcome {
    Nothing,
    Accepted,
    Refused,
}

impl ProgressReader {
    pub fn new(store: Store, place: Place, interval: Duration) -> Self {
        ProgressReader {
            store,
            place: Arc::new(place),
            interval,
            followed: Arc::default(),
        }
    }

    pub fn place(&self) -> &Place {
        &self.place
    }

    /// Reads every followed job's report once, then sets the progress gauges.
    pub async fn run_once(&self) -> StoreResult<Round> {
        let jobs = self.store.progress_jobs(ROUND_LIMIT).await?;
        let mut round = Round::default();
        let slots = Arc::new(tokio::sync::Semaphore::new(CONCURRENT_READS));
        let mut reads = tokio::task::JoinSet::new();
        for job in jobs {
            let reader = self.clone();
            let slots = slots.clone();
            reads.spawn(async move {
                let _slot = slots.acquire_owned().await;
                let ended = job.ended;
                let outcome = reader.read(&job).await;
                (ended, outcome)
            });
        }
        let mut failure = None;
        while let Some(done) = reads.join_next().await {
            let Ok((ended, outcome)) = done else { continue };
            round.read += 1;
            match outcome {
                Ok((outcome, last)) => {
                    match outcome {
                        Outcome::Accepted => round.accepted += 1,
                        Outcome::Refused => round.refused += 1,
                        Outcome::Nothing => {}
                    }
                    if ended && last {
                        round.finished += 1;
                    }
                }
                Err(e) => failure = Some(e),
            }
        }
        if let Some(e) = failure {
            return Err(e);
        }
        self.set_gauges().await?;
        Ok(round)
    }

    /// Reads one job's report; says what came of it and whether it was the job's last
    /// read.
    async fn read(&self, job: &ProgressJob) -> StoreResult<(Outcome, bool)> {
        let seen = self.last_seen(&job.id);
        let fetched = match self
            .place
            .fetch(&job.app_name, seen.as_ref().map(|s| s.0.as_str()))
            .await
        {
            Ok(fetched) => fetched,
            Err(why) => {
                // Tried again next round; a job that ended is not let go until read.
                if self.first_time(&job.id, "unreadable") {
                    warn!(job_id = %job.id, error = %why, "cannot read the job's progress report; tried again every PROGRESS_INTERVAL");
                } else {
                    debug!(job_id = %job.id, error = %why, "cannot read the job's progress report");
                }
                return Ok((Outcome::Nothing, false));
            }
        };
        let (outcome, ours) = match fetched {
            Fetched::Missing => (Outcome::Nothing, false),
            Fetched::Unchanged => (Outcome::Nothing, seen.is_some_and(|s| s.1)),
            Fetched::Report { body, fingerprint } => match check(&body, job) {
                Ok(record) => {
                    self.keep(job, &record).await?;
                    self.remember(&job.id, fingerprint, true);
                    (Outcome::Accepted, true)
                }
                Err(reason) => {
                    metrics::counter!("progress_reports_refused_total", "reason" => reason.as_str())
                        .increment(1);
                    if self.first_time(&job.id, reason.as_str()) {
                        warn!(job_id = %job.id, reason = reason.as_str(), place = %self.place.describe(&job.app_name), "progress report refused; the job's progress is not updated from it");
                    }
                    self.remember(&job.id, fingerprint, false);
                    (Outcome::Refused, false)
                }
            },
        };
        if !job.ended {
            return Ok((outcome, false));
        }
        // The job ended: this was its last read. Only its own report is removed (a
        // refused one may be another run's under the same app name).
        if ours {
            if let Err(why) = self.place.remove(&job.app_name).await {
                warn!(job_id = %job.id, error = %why, place = %self.place.describe(&job.app_name), "cannot remove the progress report of an ended job");
            }
        }
        self.store.progress_read_for_the_last_time(&job.id).await?;
        self.followed
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&job.id);
        debug!(job_id = %job.id, "progress read for the last time");
        Ok((outcome, true))
    }

    /// Stores an accepted report and times the iterations since the one it replaces.
    async fn keep(&self, job: &ProgressJob, record: &ProgressRecord) -> StoreResult<()> {
        let (kept, before) = self
            .store
            .save_progress(&job.id, record, now_millis())
            .await?;
        if !kept {
            return Ok(());
        }
        if let Some(before) = before {
            let iterations = record.iteration - before.iteration;
            let seconds = record.updated_at - before.updated_at;
            if iterations > 0 && seconds > 0.0 && before.started_at == record.started_at {
                let per_iteration = seconds / iterations as f64;
                for _ in 0..iterations.min(1_000) {
                    metrics::histogram!("progress_seconds_per_iteration").record(per_iteration);
                }
            }
        } else {
            info!(job_id = %job.id, iteration = record.iteration, iterations = record.iterations, "first progress report of the job");
        }
        Ok(())
    }

    async fn set_gauges(&self) -> StoreResult<()> {
        let running = self.store.unfinished_progress().await?;
        let mean = if running.is_empty() {
            0.0
        } else {
            running.iter().map(|(d, t)| fraction(*d, *t)).sum::<f64>() / running.len() as f64
        };
        metrics::gauge!("progress_running_jobs").set(running.len() as f64);
        metrics::gauge!("progress_mean_fraction").set(mean);
        Ok(())
    }

    fn last_seen(&self, id: &JobId) -> Option<(String, bool)> {
        self.followed
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(id)
            .and_then(|f| f.last.clone())
    }

    fn remember(&self, id: &JobId, fingerprint: String, taken: bool) {
        self.followed
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .entry(id.clone())
            .or_default()
            .last = Some((fingerprint, taken));
    }

    fn first_time(&self, id: &JobId, reason: &'static str) -> bool {
        self.followed
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .entry(id.clone())
            .or_default()
            .logged
            .insert(reason)
    }

    /// A round every `PROGRESS_INTERVAL` until `stop` resolves.
    pub async fn run_until_stopped(self, stop: impl std::future::Future<Output = ()>) {
        tokio::pin!(stop);
        let mut ticker = tokio::time::interval(self.interval);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = ticker.tick() => {}
                _ = &mut stop => return,
            }
            if let Err(e) = self.run_once().await {
                error!(error = %e, "progress round failed; tried again next round");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TOKEN: &str = "5f0c0ffee5f0c0ffee5f0c0ffee5f0c0ffee5f0c0ffee5f0c0ffee5f0c0ffee0";

    fn job() -> ProgressJob {
        ProgressJob {
            id: JobId::parse("j1").unwrap(),
            app_name: "BBHA_7".into(),
            token: TOKEN.into(),
            created_at: 1_000_000,
            ended: false,
        }
    }

    fn document() -> Value {
        serde_json::json!({
            "version": 1, "appName": "BBHA_7", "algorithm": "bbha",
            "startedAt": 1_010.5, "updatedAt": 1_040.25, "iteration": 2, "iterations": 10,
            "bestFitness": 0.71, "molecules": 4, "evaluationsDone": 14, "evaluationsTotal": 46,
            "history": [
                {"iteration": 0, "bestFitness": 0.5, "molecules": 6, "evaluationsDone": 6, "at": 1_020.0},
                {"iteration": 2, "bestFitness": 0.71, "molecules": 4, "evaluationsDone": 14, "at": 1_040.25}
            ],
            "token": TOKEN,
        })
    }

    fn checked(doc: &Value) -> Result<ProgressRecord, Refusal> {
        check(&serde_json::to_vec(doc).unwrap(), &job())
    }

    #[test]
    fn a_report_of_the_job_itself_is_taken_with_its_figures_and_history() {
        let record = checked(&document()).unwrap();
        assert_eq!(
            (record.iteration, record.iterations, record.molecules),
            (2, 10, 4)
        );
        assert_eq!(
            (record.evaluations_done, record.evaluations_total),
            (14, 46)
        );
        assert_eq!(record.best_fitness, Some(0.71));
        let history: Vec<HistoryPoint> = serde_json::from_str(&record.history).unwrap();
        assert_eq!(history.len(), 2);
        assert_eq!(history[1].evaluations_done, 14);
        assert!(!record.history.contains(TOKEN));
        let mut none = document();
        none["bestFitness"] = Value::Null;
        assert_eq!(checked(&none).unwrap().best_fitness, None);
    }

    #[test]
    fn each_kind_of_bad_report_is_refused_for_its_reason() {
        let with = |key: &str, value: Value| {
            let mut d = document();
            d[key] = value;
            d
        };
        let mut no_token = document();
        no_token.as_object_mut().unwrap().remove("token");
        let cases = [
            (with("version", 2.into()), Refusal::Invalid),
            (with("iteration", 11.into()), Refusal::Invalid),
            (with("evaluationsDone", 47.into()), Refusal::Invalid),
            (with("algorithm", "ga".into()), Refusal::Invalid),
            (with("history", "[]".into()), Refusal::Invalid),
            (with("appName", "BBHA_8".into()), Refusal::OtherApp),
            (no_token, Refusal::NoToken),
            (with("token", Value::Null), Refusal::NoToken),
            (
                with("token", TOKEN.replace('5', "6").into()),
                Refusal::WrongToken,
            ),
            (with("token", TOKEN[1..].into()), Refusal::WrongToken),
            (with("startedAt", 600.0.into()), Refusal::Stale),
        ];
        for (doc, reason) in cases {
            assert_eq!(checked(&doc), Err(reason), "{doc}");
        }
        assert_eq!(check(b"{not json", &job()), Err(Refusal::Invalid));
        assert_eq!(check(b"[1]", &job()), Err(Refusal::Invalid));
        // A start a little before the job's creation (clocks) is taken.
        assert!(checked(&with("startedAt", 990.0.into())).is_ok());
    }

    #[test]
    fn a_report_over_64_kib_is_refused_before_it_is_parsed() {
        let mut doc = document();
        doc["padding"] = "x".repeat(MAX_REPORT_BYTES).into();
        assert_eq!(checked(&doc), Err(Refusal::TooLarge));
        let mut body = serde_json::to_vec(&document()).unwrap();
        body.resize(MAX_REPORT_BYTES, b' ');
        assert!(check(&body, &job()).is_ok(), "exactly the bound is taken");
    }

    #[test]
    fn the_eta_is_the_pace_so_far_times_what_is_left_and_unknown_when_it_cannot_be_told() {
        let p = checked(&document()).unwrap();
        // 29.75 s for 14 evaluations, 32 left: 68 s at the report.
        assert_eq!(eta_seconds(&p, p.updated_at, false), Some(68));
        assert_eq!(eta_seconds(&p, p.updated_at + 8.0, false), Some(60));
        assert_eq!(eta_seconds(&p, p.updated_at + 1e6, false), Some(0));
        assert_eq!(eta_seconds(&p, p.updated_at, true), None);
        let none = ProgressRecord {
            evaluations_done: 0,
            ..p.clone()
        };
        assert_eq!(eta_seconds(&none, p.updated_at, false), None);
        let instant = ProgressRecord {
            started_at: p.updated_at,
            ..p
        };
        assert_eq!(eta_seconds(&instant, instant.updated_at, false), None);
        assert_eq!(fraction(14, 46), 14.0 / 46.0);
        assert_eq!(fraction(3, 0), 0.0);
    }

    #[test]
    fn reports_are_named_as_the_job_names_them() {
        let location = S3Location::parse("s3://bkt/results/").unwrap();
        assert_eq!(
            report_key(&location, "BBHA_7"),
            "results/.progress/BBHA_7.json"
        );
        let root = S3Location::parse("s3://bkt").unwrap();
        assert_eq!(report_key(&root, "A"), ".progress/A.json");
        assert_eq!(
            report_path(Path::new("/r"), "A"),
            PathBuf::from("/r/.progress/A.json")
        );
    }
}
