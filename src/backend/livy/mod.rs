//! The Livy backend: every job is one batch of Apache Livy's REST API (`POST /batches`),
//! on whatever cluster Livy submits to (an EMR cluster on EC2, an on-premises Hadoop
//! distribution, a Knox gateway in front of either).
//!
//! - `ids`: job ids made from the client token, and batch names that carry them;
//! - `request`: the batch's body, from the spark-submit options every cluster gets;
//! - `states`: Livy's states onto Multiomix's;
//! - `client`: the HTTP calls.
//!
//! Livy keeps little: its batch ids start again at 0 when it restarts without session
//! recovery, it drops a finished batch a while after its end, and it gives no times. So
//! the backend keeps a row per batch in the store (`livy_batches`): the batch id where the
//! job was made, the name that proves a batch id still means that job, the links and the
//! YARN application id once known, and the final state once read. A batch Livy no longer
//! holds (404, or its id now names another batch) is not taken as done: it ends FAILED
//! with details that say so, CANCELLED if a cancel was asked for, or COMPLETED if the
//! job's `result.json` is in S3 (with `DATA_STAGING=s3`), so that its notice still goes.
//! Livy's `success` means only that spark-submit exited 0; with staging on it is
//! COMPLETED only once `result.json` is found.
//!
//! There is no callback: the reconciler reads the jobs in flight every `POLL_INTERVAL`,
//! one page of `GET /batches` per round and a single read for each batch the page
//! missed.

mod client;
mod ids;
mod request;
mod states;

pub use client::{BatchView, REQUESTED_BY};
pub use ids::{is_livy_job_id, job_id_for, BatchName};
pub use request::batch_body;
pub use states::LIVY_STATES;

use std::collections::HashMap;

use async_trait::async_trait;
use time::OffsetDateTime;
use tracing::{info, warn};

use super::paging;
use super::{
    cancel_after_reading, BackendError, Described, JobBackend, JobPage, ListQuery, Submitted,
    APP_NAME_TAG,
};
use crate::config::{JobSettings, LivySettings, SparkSettings};
use crate::job::{BackendKind, JobId, JobRun, JobSpec, JobState, RunLinks};
use crate::staging::Staging;
use crate::store::{now_millis, LivyBatchRow, LivySeen, Store, StoreError};
use client::{CallError, LivyClient};
use states::Reading;

/// Batches read per `GET /batches` (Livy's own default page).
pub const PAGE_SIZE: i64 = 100;

/// Pages read at most when looking for a batch by its name (5,000 batches).
const LOOK_PAGES: i64 = 50;

/// The run tags that carry the batch's attributes (the API does not show tags).
pub const BATCH_ID_TAG: &str = "livy-batch-id";
pub const APPLICATION_ID_TAG: &str = "yarn-application-id";

/// Runs each job as a Livy batch.
pub struct LivyBackend {
    client: LivyClient,
    store: Store,
    settings: LivySettings,
    spark: SparkSettings,
    job: JobSettings,
    /// With `DATA_STAGING=s3`: where the job's `result.json` is looked for.
    results: Option<Staging>,
}

fn store_error(e: StoreError) -> BackendError {
    BackendError::Unavailable(format!("store: {e}").into())
}

fn from_millis(ms: i64) -> OffsetDateTime {
    OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000)
        .unwrap_or(OffsetDateTime::UNIX_EPOCH)
}

/// Whether `view` is still the batch `row` recorded: its name says so (Livy 0.7 and
/// later), or, from a Livy that gives no names, its YARN application id does not say
/// otherwise.
fn same_batch(row: &LivyBatchRow, view: &BatchView) -> bool {
    if view.id != row.batch_id {
        return false;
    }
    match &view.name {
        Some(name) => *name == row.batch_name,
        None => match (&row.app_id, &view.app_id) {
            (Some(recorded), Some(now)) => recorded == now,
            _ => true,
        },
    }
}

/// The last lines of Livy's log of a failed batch, for `stateDetails`.
fn failure_details(view: &BatchView) -> String {
    let tail: Vec<&str> = view
        .log
        .iter()
        .map(|l| l.trim())
        .filter(|l| !l.is_empty())
        .collect();
    let tail = &tail[tail.len().saturating_sub(5)..];
    let mut text = format!("Livy batch {} is {}", view.id, view.state);
    if !tail.is_empty() {
        text.push_str("; its log ends: ");
        text.push_str(&tail.join(" | "));
    }
    if text.chars().count() > 2000 {
        text = text.chars().take(2000).collect::<String>() + "…";
    }
    text
}

impl LivyBackend {
    /// A backend for the Livy at `settings.url`; its batches are kept in `store`.
    pub fn new(
        store: Store,
        settings: LivySettings,
        spark: SparkSettings,
        job: JobSettings,
    ) -> Self {
        LivyBackend {
            client: LivyClient::new(&settings),
            store,
            settings,
            spark,
            job,
            results: None,
        }
    }

    /// Looks for the job's `result.json` through `staging` before a `success` is taken
    /// as COMPLETED (`DATA_STAGING=s3`).
    pub fn with_results(mut self, staging: Staging) -> Self {
        self.results = Some(staging);
        self
    }

    /// The body `POST /batches` gets for this start.
    pub fn batch_request(&self, spec: &JobSpec, client_token: &str) -> serde_json::Value {
        let name = BatchName {
            job_id: job_id_for(client_token),
            app_name: spec.app_name().map(str::to_owned),
            name: spec.name.as_str().to_owned(),
        };
        batch_body(
            &self.settings,
            &self.spark,
            &self.job,
            spec,
            &name.format(&self.settings.name_prefix),
        )
    }

    fn run_of(&self, row: &LivyBatchRow) -> JobRun {
        let mut tags = std::collections::BTreeMap::new();
        tags.insert(BATCH_ID_TAG.to_owned(), row.batch_id.to_string());
        if let Some(app) = &row.app_name {
            tags.insert(APP_NAME_TAG.to_owned(), app.clone());
        }
        if let Some(app_id) = &row.app_id {
            tags.insert(APPLICATION_ID_TAG.to_owned(), app_id.clone());
        }
        let finished_at = row
            .state
            .is_final()
            .then(|| from_millis(row.finished_at.unwrap_or(row.created_at)));
        JobRun {
            id: row.job_id.clone(),
            name: row.name.clone(),
            state: row.state,
            created_at: from_millis(row.created_at),
            finished_at,
            state_details: row.state_details.clone(),
            failure_reason: row.failure_reason.clone(),
            log_location: row.driver_log_url.clone(),
            links: Some(Box::new(RunLinks {
                driver_log: row.driver_log_url.clone(),
                spark_ui: row.spark_ui_url.clone(),
            })),
            tags,
            // Only batches named with this deployment's prefix get a row.
            ours: true,
        }
    }

    /// Whether the job left its `result.json`: `None` when that cannot be looked at
    /// (no staging, or no app name), and the backend then trusts Livy.
    async fn results_found(&self, app: Option<&str>) -> Result<Option<bool>, BackendError> {
        let (Some(staging), Some(app)) = (&self.results, app) else {
            return Ok(None);
        };
        staging
            .has_result_json(app)
            .await
            .map(Some)
            .map_err(|e| BackendError::Unavailable(e.to_string().into()))
    }

    /// Fails unless Livy itself answers at `LIVY_URL`: a 404 for a batch is taken as
    /// Livy forgetting it only then, never when a gateway or a wrong URL answers 404 to
    /// everything.
    async fn livy_answers(&self) -> Result<(), BackendError> {
        match self.client.list(0, 1).await {
            Ok(_) => Ok(()),
            Err(CallError::Refused(r)) if r.status == reqwest::StatusCode::NOT_FOUND => {
                Err(BackendError::Unavailable(
                    format!(
                        "{}/batches answers 404: this is not Livy's batches API; check LIVY_URL",
                        self.settings.url
                    )
                    .into(),
                ))
            }
            Err(e) => Err(e.into_backend("GET /batches")),
        }
    }

    /// Records what Livy says of the batch (`view`), or that it no longer holds it
    /// (`None`), and answers the job as it then stands. A row already final is answered
    /// as it is.
    async fn observe(
        &self,
        row: LivyBatchRow,
        view: Option<&BatchView>,
    ) -> Result<JobRun, BackendError> {
        if row.state.is_final() {
            return Ok(self.run_of(&row));
        }
        let cancel_requested = row.cancel_requested_at.is_some();
        let (livy_state, state, details, reason, app_id, driver_log, spark_ui);
        match view.filter(|v| same_batch(&row, v)) {
            Some(view) => {
                let reading =
                    states::read(&view.state, cancel_requested, row.state).ok_or_else(|| {
                        BackendError::Rejected(
                            format!(
                                "Livy gave batch {} an unknown state {:?}",
                                view.id, view.state
                            )
                            .into(),
                        )
                    })?;
                (state, details, reason) = match reading {
                    Reading::Is(JobState::Failed) => {
                        (JobState::Failed, Some(failure_details(view)), None)
                    }
                    Reading::Is(JobState::Cancelled) if cancel_requested => (
                        JobState::Cancelled,
                        Some("cancelled by request".to_owned()),
                        None,
                    ),
                    Reading::Is(JobState::Cancelled) => (
                        JobState::Cancelled,
                        Some(format!(
                            "Livy batch {} was killed, not by this service (a DELETE to Livy, or \
                             the application killed in YARN)",
                            view.id
                        )),
                        None,
                    ),
                    Reading::Is(state) => (state, None, None),
                    Reading::Succeeded => {
                        match self.results_found(row.app_name.as_deref()).await? {
                            Some(false) => (
                                JobState::Failed,
                                Some(format!(
                                    "Livy reports success (spark-submit exited 0), but the job \
                                     left no result.json under {}: the Spark application did \
                                     not finish its work; see its driver log",
                                    self.results_place(row.app_name.as_deref())
                                )),
                                Some("USER_ERROR".to_owned()),
                            ),
                            _ => (JobState::Completed, None, None),
                        }
                    }
                };
                livy_state = view.state.clone();
                app_id = view.app_id.clone();
                driver_log = view.app_info.driver_log_url.clone();
                spark_ui = view.app_info.spark_ui_url.clone();
            }
            None => {
                self.livy_answers().await?;
                let batch = row.batch_id;
                (state, details, reason) = if cancel_requested {
                    (
                        JobState::Cancelled,
                        Some(format!(
                            "cancelled by request; Livy no longer holds batch {batch}"
                        )),
                        None,
                    )
                } else {
                    let gone = format!(
                        "Livy no longer holds batch {batch} (last read as {}): Livy restarted \
                         without session recovery, or dropped the batch after it ended \
                         (livy.server.session.state-retain.sec) before the service read its end",
                        row.livy_state
                    );
                    match self.results_found(row.app_name.as_deref()).await? {
                        Some(true) => (
                            JobState::Completed,
                            Some(format!(
                                "{gone}; the job's result.json is in {}, so it completed",
                                self.results_place(row.app_name.as_deref())
                            )),
                            None,
                        ),
                        _ => (
                            JobState::Failed,
                            Some(format!("{gone}; its outcome is unknown")),
                            Some("INTERNAL_ERROR".to_owned()),
                        ),
                    }
                };
                warn!(job_id = %row.job_id, batch, state = %state, "Livy no longer holds the job's batch");
                livy_state = row.livy_state.clone();
                (app_id, driver_log, spark_ui) = (None, None, None);
            }
        }
        self.store
            .livy_batch_seen(
                &row.job_id,
                &LivySeen {
                    livy_state: &livy_state,
                    state,
                    state_details: details.as_deref(),
                    failure_reason: reason.as_deref(),
                    app_id: app_id.as_deref(),
                    driver_log_url: driver_log.as_deref(),
                    spark_ui_url: spark_ui.as_deref(),
                },
            )
            .await
            .map_err(store_error)?;
        let mut now = self
            .store
            .livy_batch(&row.job_id)
            .await
            .map_err(store_error)?
            .ok_or(BackendError::NotFound)?;
        // A final row stands, whoever wrote it. Otherwise the answer is this reading:
        // another reader (a round that asked Livy a moment before) may have written an
        // older state over it meanwhile, and the next read mends the row.
        if !now.state.is_final() {
            now.livy_state = livy_state;
            now.state = state;
            now.state_details = details;
            now.failure_reason = reason;
        }
        Ok(self.run_of(&now))
    }

    /// Where the job's `result.json` is looked for, in words.
    fn results_place(&self, app: Option<&str>) -> String {
        match (&self.results, app) {
            (Some(staging), Some(app)) => staging.results_source(app),
            _ => "the results folder".to_owned(),
        }
    }

    /// Reads the batch alone (`GET /batches/{id}`) and records it.
    async fn read(&self, row: LivyBatchRow) -> Result<JobRun, BackendError> {
        let path = format!("GET /batches/{}", row.batch_id);
        let view = self
            .client
            .get(row.batch_id)
            .await
            .map_err(|e| e.into_backend(&path))?;
        self.observe(row, view.as_ref()).await
    }

    /// The batch of this deployment named with `job_id`, among the batches Livy holds.
    async fn find_by_name(&self, job_id: &JobId) -> Result<Option<BatchView>, BackendError> {
        let mut from = 0;
        for _ in 0..LOOK_PAGES {
            let page = self
                .client
                .list(from, PAGE_SIZE)
                .await
                .map_err(|e| e.into_backend("GET /batches"))?;
            let count = page.sessions.len() as i64;
            let found = page.sessions.into_iter().find(|v| {
                v.name
                    .as_deref()
                    .and_then(|n| BatchName::parse(&self.settings.name_prefix, n))
                    .is_some_and(|n| n.job_id == *job_id)
            });
            if found.is_some() {
                return Ok(found);
            }
            from += count;
            if count == 0 || from >= page.total {
                break;
            }
        }
        Ok(None)
    }

    /// Records a batch of this deployment (made by this process, or found in Livy),
    /// and reads it as Livy showed it.
    async fn record(
        &self,
        view: &BatchView,
        name: BatchName,
        adopted: bool,
    ) -> Result<JobRun, BackendError> {
        let row = LivyBatchRow {
            batch_name: name.format(&self.settings.name_prefix),
            job_id: name.job_id,
            batch_id: view.id,
            name: name.name,
            app_name: name.app_name,
            app_id: None,
            driver_log_url: None,
            spark_ui_url: None,
            livy_state: "not_started".to_owned(),
            state: JobState::Pending,
            state_details: None,
            failure_reason: None,
            cancel_requested_at: None,
            adopted,
            created_at: now_millis(),
            finished_at: None,
        };
        let row = self
            .store
            .insert_livy_batch(&row)
            .await
            .map_err(store_error)?;
        if adopted {
            info!(job_id = %row.job_id, batch = view.id, "a batch of this deployment found in Livy and recorded");
        }
        let view = (row.batch_id == view.id).then_some(view);
        match view {
            Some(view) => self.observe(row, Some(view)).await,
            None => Ok(self.run_of(&row)),
        }
    }

    /// Records the batches of this deployment that Livy holds and the store does not,
    /// and what Livy says of the unfinished ones it does: what a listing shows after a
    /// lost store, or while the rounds have not read a batch yet.
    async fn sync(&self) -> Result<(), BackendError> {
        let mut from = 0;
        for _ in 0..LOOK_PAGES {
            let page = self
                .client
                .list(from, PAGE_SIZE)
                .await
                .map_err(|e| e.into_backend("GET /batches"))?;
            let count = page.sessions.len() as i64;
            for view in &page.sessions {
                let Some(name) = view
                    .name
                    .as_deref()
                    .and_then(|n| BatchName::parse(&self.settings.name_prefix, n))
                else {
                    continue;
                };
                let row = self
                    .store
                    .livy_batch(&name.job_id)
                    .await
                    .map_err(store_error)?;
                match row {
                    None => {
                        self.record(view, name, true).await?;
                    }
                    Some(row) if !row.state.is_final() && same_batch(&row, view) => {
                        self.observe(row, Some(view)).await?;
                    }
                    Some(_) => {}
                }
            }
            from += count;
            if count == 0 || from >= page.total {
                break;
            }
        }
        Ok(())
    }
}

/// `next_token` of [`JobBackend::list`]: the `(created_at, job id)` of the page's last
/// job.
#[async_trait]
impl JobBackend for LivyBackend {
    fn kind(&self) -> BackendKind {
        BackendKind::Livy
    }

    /// The same client token gives the same job id, and so the same batch name: a start
    /// the store already holds answers its job; a batch Livy already holds under that
    /// name (Livy refuses a second one, "Duplicate session name") is found and recorded;
    /// and after a call whose answer was lost the batch is looked for before answering.
    async fn start(&self, spec: &JobSpec, client_token: &str) -> Result<JobId, BackendError> {
        let id = job_id_for(client_token);
        if self
            .store
            .livy_batch(&id)
            .await
            .map_err(store_error)?
            .is_some()
        {
            return Ok(id);
        }
        let name = BatchName {
            job_id: id.clone(),
            app_name: spec.app_name().map(str::to_owned),
            name: spec.name.as_str().to_owned(),
        };
        let body = self.batch_request(spec, client_token);
        let made = match self.client.create(&body).await {
            Ok(view) => view,
            Err(CallError::Refused(r))
                if r.status == reqwest::StatusCode::BAD_REQUEST
                    && r.message.contains("Duplicate session name") =>
            {
                match self.find_by_name(&id).await? {
                    Some(view) => view,
                    None => {
                        return Err(BackendError::Unavailable(
                            format!(
                                "Livy refused a second batch named for job {id} but lists none; \
                                 try again"
                            )
                            .into(),
                        ))
                    }
                }
            }
            Err(CallError::Refused(r))
                if r.status == reqwest::StatusCode::BAD_REQUEST
                    && r.message.contains("too many sessions") =>
            {
                return Err(BackendError::Unavailable(
                    format!("Livy POST /batches: {}", r.message).into(),
                ))
            }
            Err(CallError::Unavailable(cause)) => {
                // The batch may have been made all the same.
                match self.find_by_name(&id).await {
                    Ok(Some(view)) => view,
                    _ => return Err(BackendError::Unavailable(cause)),
                }
            }
            Err(e) => return Err(e.into_backend("POST /batches")),
        };
        self.record(&made, name, false).await?;
        info!(job_id = %id, batch = made.id, "Livy batch created");
        Ok(id)
    }

    async fn describe(&self, id: &JobId) -> Result<JobRun, BackendError> {
        if !is_livy_job_id(id) {
            return Err(BackendError::NotFound);
        }
        match self.store.livy_batch(id).await.map_err(store_error)? {
            Some(row) if row.state.is_final() => Ok(self.run_of(&row)),
            Some(row) => self.read(row).await,
            None => match self.find_by_name(id).await? {
                Some(view) => {
                    let name = view
                        .name
                        .as_deref()
                        .and_then(|n| BatchName::parse(&self.settings.name_prefix, n))
                        .ok_or(BackendError::NotFound)?;
                    self.record(&view, name, true).await
                }
                None => Err(BackendError::NotFound),
            },
        }
    }

    /// `DELETE /batches/{id}`: Livy kills the application and forgets the batch at once,
    /// so an accepted cancel is CANCELLED. A final batch is a `Conflict`, read first.
    async fn cancel(&self, id: &JobId) -> Result<(), BackendError> {
        cancel_after_reading(self, id, || async {
            let row = self
                .store
                .livy_batch(id)
                .await
                .map_err(store_error)?
                .ok_or(BackendError::NotFound)?;
            self.store
                .livy_cancel_requested(id)
                .await
                .map_err(store_error)?;
            let path = format!("DELETE /batches/{}", row.batch_id);
            if self
                .client
                .delete(row.batch_id)
                .await
                .map_err(|e| e.into_backend(&path))?
            {
                self.store
                    .livy_batch_seen(
                        id,
                        &LivySeen {
                            livy_state: "killed",
                            state: JobState::Cancelled,
                            state_details: Some("cancelled by request"),
                            failure_reason: None,
                            app_id: None,
                            driver_log_url: None,
                            spark_ui_url: None,
                        },
                    )
                    .await
                    .map_err(store_error)?;
            }
            // A 404: Livy dropped it meanwhile; the next read says how it stands.
            Ok(())
        })
        .await
    }

    /// This deployment's batches, newest first, from the store, once the first page has
    /// recorded what Livy holds that the store does not.
    async fn list(&self, query: &ListQuery) -> Result<JobPage, BackendError> {
        let after = paging::after(query)?;
        if after.is_none() {
            self.sync().await?;
        }
        let size = paging::page_size(query);
        let created_after = paging::created_after_millis(query);
        let mut rows = self
            .store
            .list_livy_batches(
                &query.states,
                created_after,
                after.as_ref().map(|(at, id)| (*at, id)),
                size as i64 + 1,
            )
            .await
            .map_err(store_error)?;
        let next_token = paging::cut(&mut rows, size, |r| (r.created_at, r.job_id.as_str()));
        let jobs = rows.iter().map(|r| self.run_of(r)).collect();
        Ok(JobPage { jobs, next_token })
    }

    async fn check(&self) -> Result<(), BackendError> {
        self.livy_answers().await
    }

    /// One page of `GET /batches` for the batches in flight, and a single read of each
    /// one the page did not show as the batch recorded.
    async fn describe_batch(&self, ids: &[JobId]) -> Result<Described, BackendError> {
        let rows: HashMap<JobId, LivyBatchRow> = self
            .store
            .livy_batches(ids)
            .await
            .map_err(store_error)?
            .into_iter()
            .map(|r| (r.job_id.clone(), r))
            .collect();
        let in_flight = rows.values().any(|r| !r.state.is_final());
        let page: HashMap<i64, BatchView> = if in_flight {
            self.client
                .list(0, PAGE_SIZE)
                .await
                .map_err(|e| e.into_backend("GET /batches"))?
                .sessions
                .into_iter()
                .map(|v| (v.id, v))
                .collect()
        } else {
            HashMap::new()
        };
        let mut out = Vec::with_capacity(ids.len());
        for id in ids {
            let result = match rows.get(id).cloned() {
                Some(row) if row.state.is_final() => Ok(self.run_of(&row)),
                Some(row) => match page.get(&row.batch_id).filter(|v| same_batch(&row, v)) {
                    Some(view) => self.observe(row, Some(view)).await,
                    None => self.read(row).await,
                },
                None => self.describe(id).await,
            };
            out.push((id.clone(), result));
        }
        Ok(out)
    }

    /// The batch named with the job id of this client token: in the store, or among
    /// those Livy holds (a start whose record was lost).
    async fn find_submission(
        &self,
        client_token: &str,
        _since: OffsetDateTime,
    ) -> Result<Submitted, BackendError> {
        let id = job_id_for(client_token);
        match self.describe(&id).await {
            Ok(run) => Ok(Submitted::Started(run)),
            Err(BackendError::NotFound) => Ok(Submitted::NotStarted),
            Err(e) => Err(e),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(batch_name: &str, app_id: Option<&str>) -> LivyBatchRow {
        LivyBatchRow {
            job_id: JobId::parse("lv0").unwrap(),
            batch_id: 4,
            batch_name: batch_name.into(),
            name: "n".into(),
            app_name: None,
            app_id: app_id.map(str::to_owned),
            driver_log_url: None,
            spark_ui_url: None,
            livy_state: "running".into(),
            state: JobState::Running,
            state_details: None,
            failure_reason: None,
            cancel_requested_at: None,
            adopted: false,
            created_at: 0,
            finished_at: None,
        }
    }

    fn view(id: i64, name: Option<&str>, app_id: Option<&str>) -> BatchView {
        BatchView {
            id,
            name: name.map(str::to_owned),
            state: "running".into(),
            app_id: app_id.map(str::to_owned),
            app_info: Default::default(),
            log: Vec::new(),
        }
    }

    #[test]
    fn a_batch_id_means_the_recorded_batch_only_while_its_name_says_so() {
        let r = row("p:lv0:a:n", Some("application_1_0004"));
        assert!(same_batch(&r, &view(4, Some("p:lv0:a:n"), None)));
        assert!(
            !same_batch(&r, &view(4, Some("p:lv9:a:n"), None)),
            "reused id"
        );
        assert!(!same_batch(&r, &view(5, Some("p:lv0:a:n"), None)));
        // A Livy that gives no names: the application id, when both are known.
        assert!(same_batch(&r, &view(4, None, Some("application_1_0004"))));
        assert!(!same_batch(&r, &view(4, None, Some("application_2_0001"))));
        assert!(same_batch(&r, &view(4, None, None)));
    }

    #[test]
    fn a_failure_quotes_the_end_of_livys_log_within_bounds() {
        let mut v = view(4, None, None);
        v.state = "dead".into();
        v.log = (0..12).map(|i| format!("line {i}")).collect();
        v.log.push("   ".into());
        let details = failure_details(&v);
        assert!(details.starts_with("Livy batch 4 is dead"), "{details}");
        assert!(details.ends_with("line 11"), "{details}");
        assert!(
            details.contains("line 7") && !details.contains("line 6"),
            "{details}"
        );
        v.log = vec!["x".repeat(5000)];
        assert!(failure_details(&v).chars().count() <= 2001);
    }
}
