//! The batches of the Livy backend: which Livy batch a job is, and what was last read of
//! it. Livy forgets batches (a restart without recovery, or a while after they end), so
//! the final state is kept here once read, and a batch id is checked against the batch's
//! name before it is trusted again.

use sqlx::sqlite::SqliteRow;
use sqlx::{QueryBuilder, Row, Sqlite};

use super::{now_millis, Store, StoreResult};
use crate::job::{JobId, JobState};

/// One row of `livy_batches`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LivyBatchRow {
    pub job_id: JobId,
    pub batch_id: i64,
    pub batch_name: String,
    /// The job's name.
    pub name: String,
    pub app_name: Option<String>,
    pub app_id: Option<String>,
    pub driver_log_url: Option<String>,
    pub spark_ui_url: Option<String>,
    pub livy_state: String,
    pub state: JobState,
    pub state_details: Option<String>,
    pub failure_reason: Option<String>,
    pub cancel_requested_at: Option<i64>,
    /// Found in Livy's listing rather than started through this store.
    pub adopted: bool,
    pub created_at: i64,
    pub finished_at: Option<i64>,
}

impl LivyBatchRow {
    fn from_row(row: &SqliteRow) -> StoreResult<Self> {
        let state: JobState = row.try_get("state")?;
        Ok(LivyBatchRow {
            job_id: row.try_get("job_id")?,
            batch_id: row.try_get("batch_id")?,
            batch_name: row.try_get("batch_name")?,
            name: row.try_get("name")?,
            app_name: row.try_get("app_name")?,
            app_id: row.try_get("app_id")?,
            driver_log_url: row.try_get("driver_log_url")?,
            spark_ui_url: row.try_get("spark_ui_url")?,
            livy_state: row.try_get("livy_state")?,
            state,
            state_details: row.try_get("state_details")?,
            failure_reason: row.try_get("failure_reason")?,
            cancel_requested_at: row.try_get("cancel_requested_at")?,
            adopted: row.try_get("adopted")?,
            created_at: row.try_get("created_at")?,
            finished_at: row.try_get("finished_at")?,
        })
    }
}

/// What one read of a batch from Livy says, for [`Store::livy_batch_seen`]. The links
/// and the application id only ever fill in: a later answer without them keeps them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LivySeen<'a> {
    pub livy_state: &'a str,
    pub state: JobState,
    pub state_details: Option<&'a str>,
    pub failure_reason: Option<&'a str>,
    pub app_id: Option<&'a str>,
    pub driver_log_url: Option<&'a str>,
    pub spark_ui_url: Option<&'a str>,
}

const NOT_FINAL: &str = "state NOT IN ('COMPLETED', 'FAILED', 'CANCELLED')";

impl Store {
    /// Records a batch, unless its job already has one; returns the row as stored (the
    /// earlier one, when there was).
    pub async fn insert_livy_batch(&self, row: &LivyBatchRow) -> StoreResult<LivyBatchRow> {
        sqlx::query(
            "INSERT INTO livy_batches (job_id, batch_id, batch_name, name, app_name, app_id,
                 driver_log_url, spark_ui_url, livy_state, state, state_details,
                 failure_reason, cancel_requested_at, adopted, created_at, finished_at,
                 updated_at)
             VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
             ON CONFLICT (job_id) DO NOTHING",
        )
        .bind(&row.job_id)
        .bind(row.batch_id)
        .bind(&row.batch_name)
        .bind(&row.name)
        .bind(&row.app_name)
        .bind(&row.app_id)
        .bind(&row.driver_log_url)
        .bind(&row.spark_ui_url)
        .bind(&row.livy_state)
        .bind(row.state.as_str())
        .bind(&row.state_details)
        .bind(&row.failure_reason)
        .bind(row.cancel_requested_at)
        .bind(row.adopted)
        .bind(row.created_at)
        .bind(row.finished_at)
        .bind(now_millis())
        .execute(&self.pool)
        .await?;
        let stored = sqlx::query("SELECT * FROM livy_batches WHERE job_id = ?")
            .bind(&row.job_id)
            .fetch_one(&self.pool)
            .await?;
        LivyBatchRow::from_row(&stored)
    }

    pub async fn livy_batch(&self, job_id: &JobId) -> StoreResult<Option<LivyBatchRow>> {
        let row = sqlx::query("SELECT * FROM livy_batches WHERE job_id = ?")
            .bind(job_id)
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(LivyBatchRow::from_row).transpose()
    }

    /// The rows of these jobs (those that have one), in one query.
    pub async fn livy_batches(&self, job_ids: &[JobId]) -> StoreResult<Vec<LivyBatchRow>> {
        let mut out = Vec::with_capacity(job_ids.len());
        // SQLite takes at most 32,766 parameters; a round reads at most 1,000 jobs.
        for chunk in job_ids.chunks(500) {
            let mut q = QueryBuilder::<Sqlite>::new("SELECT * FROM livy_batches WHERE job_id IN (");
            let mut list = q.separated(", ");
            for id in chunk {
                list.push_bind(id);
            }
            list.push_unseparated(")");
            for row in q.build().fetch_all(&self.pool).await? {
                out.push(LivyBatchRow::from_row(&row)?);
            }
        }
        Ok(out)
    }

    /// Records what Livy said of a batch that is not final here yet; a final state also
    /// records when it was seen (`finished_at`). False when the row was already final (or
    /// is not there): a batch ends once, with what was first read of its end.
    pub async fn livy_batch_seen(&self, job_id: &JobId, seen: &LivySeen<'_>) -> StoreResult<bool> {
        let now = now_millis();
        let finished_at = seen.state.is_final().then_some(now);
        let done = sqlx::query(&format!(
            "UPDATE livy_batches SET livy_state = ?, state = ?, state_details = ?,
                 failure_reason = ?, app_id = COALESCE(?, app_id),
                 driver_log_url = COALESCE(?, driver_log_url),
                 spark_ui_url = COALESCE(?, spark_ui_url), finished_at = ?, updated_at = ?
             WHERE job_id = ? AND {NOT_FINAL}"
        ))
        .bind(seen.livy_state)
        .bind(seen.state.as_str())
        .bind(seen.state_details)
        .bind(seen.failure_reason)
        .bind(seen.app_id)
        .bind(seen.driver_log_url)
        .bind(seen.spark_ui_url)
        .bind(finished_at)
        .bind(now)
        .bind(job_id)
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    /// Notes that a cancel was asked for (the first time only). False when the row is
    /// final or not there.
    pub async fn livy_cancel_requested(&self, job_id: &JobId) -> StoreResult<bool> {
        let now = now_millis();
        let done = sqlx::query(&format!(
            "UPDATE livy_batches SET cancel_requested_at = COALESCE(cancel_requested_at, ?),
                 updated_at = ?
             WHERE job_id = ? AND {NOT_FINAL}"
        ))
        .bind(now)
        .bind(now)
        .bind(job_id)
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    /// One page of batches, newest first. `after` is the `(created_at, job_id)` of the
    /// last batch of the previous page.
    pub async fn list_livy_batches(
        &self,
        states: &[JobState],
        created_after: Option<i64>,
        after: Option<(i64, &JobId)>,
        limit: i64,
    ) -> StoreResult<Vec<LivyBatchRow>> {
        let mut q = super::page_query(
            "livy_batches",
            "job_id",
            states,
            created_after,
            after,
            limit,
        );
        let rows = q.build().fetch_all(&self.pool).await?;
        rows.iter().map(LivyBatchRow::from_row).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::store::temporary as store;

    fn id(raw: &str) -> JobId {
        JobId::parse(raw).unwrap()
    }

    fn row(job_id: &str, batch_id: i64, created_at: i64) -> LivyBatchRow {
        LivyBatchRow {
            job_id: id(job_id),
            batch_id,
            batch_name: format!("p:{job_id}:app:job"),
            name: "job".into(),
            app_name: Some("app".into()),
            app_id: None,
            driver_log_url: None,
            spark_ui_url: None,
            livy_state: "starting".into(),
            state: JobState::Submitted,
            state_details: None,
            failure_reason: None,
            cancel_requested_at: None,
            adopted: false,
            created_at,
            finished_at: None,
        }
    }

    fn seen(livy_state: &str, state: JobState) -> LivySeen<'_> {
        LivySeen {
            livy_state,
            state,
            state_details: None,
            failure_reason: None,
            app_id: None,
            driver_log_url: None,
            spark_ui_url: None,
        }
    }

    #[tokio::test]
    async fn a_job_has_one_batch_and_a_second_insert_returns_the_first() {
        let (s, _d) = store().await;
        let first = s.insert_livy_batch(&row("lva", 0, 1)).await.unwrap();
        assert_eq!(first.batch_id, 0);
        let again = s.insert_livy_batch(&row("lva", 7, 2)).await.unwrap();
        assert_eq!((again.batch_id, again.created_at), (0, 1));
        assert!(s.livy_batch(&id("lvb")).await.unwrap().is_none());
    }

    #[tokio::test]
    async fn links_fill_in_and_a_batch_ends_once_with_its_first_end() {
        let (s, _d) = store().await;
        s.insert_livy_batch(&row("lva", 0, 1)).await.unwrap();
        let running = LivySeen {
            app_id: Some("application_1_0001"),
            driver_log_url: Some("http://nm:8042/logs"),
            spark_ui_url: Some("http://rm:8088/proxy/application_1_0001/"),
            ..seen("running", JobState::Running)
        };
        assert!(s.livy_batch_seen(&id("lva"), &running).await.unwrap());
        // A later answer without links keeps them.
        assert!(s
            .livy_batch_seen(&id("lva"), &seen("running", JobState::Running))
            .await
            .unwrap());
        let r = s.livy_batch(&id("lva")).await.unwrap().unwrap();
        assert_eq!(r.app_id.as_deref(), Some("application_1_0001"));
        assert_eq!(r.driver_log_url.as_deref(), Some("http://nm:8042/logs"));
        assert_eq!(r.finished_at, None);

        let dead = LivySeen {
            state_details: Some("exit 1"),
            ..seen("dead", JobState::Failed)
        };
        assert!(s.livy_batch_seen(&id("lva"), &dead).await.unwrap());
        assert!(!s
            .livy_batch_seen(&id("lva"), &seen("success", JobState::Completed))
            .await
            .unwrap());
        assert!(!s.livy_cancel_requested(&id("lva")).await.unwrap());
        let r = s.livy_batch(&id("lva")).await.unwrap().unwrap();
        assert_eq!(
            (r.state, r.livy_state.as_str(), r.state_details.as_deref()),
            (JobState::Failed, "dead", Some("exit 1"))
        );
        assert!(r.finished_at.is_some_and(|at| at >= r.created_at));
    }

    #[tokio::test]
    async fn a_cancel_request_is_noted_once_and_listing_pages_newest_first() {
        let (s, _d) = store().await;
        for (id, at) in [("lva", 10), ("lvb", 20), ("lvc", 20), ("lvd", 30)] {
            s.insert_livy_batch(&row(id, 0, at)).await.unwrap();
        }
        assert!(s.livy_cancel_requested(&id("lvb")).await.unwrap());
        let at = s
            .livy_batch(&id("lvb"))
            .await
            .unwrap()
            .unwrap()
            .cancel_requested_at;
        assert!(s.livy_cancel_requested(&id("lvb")).await.unwrap());
        assert_eq!(
            s.livy_batch(&id("lvb"))
                .await
                .unwrap()
                .unwrap()
                .cancel_requested_at,
            at
        );
        s.livy_batch_seen(&id("lva"), &seen("success", JobState::Completed))
            .await
            .unwrap();
        let ids = |rows: Vec<LivyBatchRow>| rows.into_iter().map(|r| r.job_id).collect::<Vec<_>>();
        let first = s.list_livy_batches(&[], None, None, 2).await.unwrap();
        assert_eq!(ids(first.clone()), ["lvd", "lvc"]);
        let last = first.last().unwrap();
        assert_eq!(
            ids(s
                .list_livy_batches(&[], None, Some((last.created_at, &last.job_id)), 2)
                .await
                .unwrap()),
            ["lvb", "lva"]
        );
        assert_eq!(
            ids(s
                .list_livy_batches(&[JobState::Submitted], Some(20), None, 10)
                .await
                .unwrap()),
            ["lvd", "lvc", "lvb"]
        );
        let mut some = ids(s
            .livy_batches(&[id("lvd"), id("lva"), id("nope")])
            .await
            .unwrap());
        some.sort();
        assert_eq!(some, ["lva", "lvd"]);
    }

    #[tokio::test]
    async fn a_batches_job_id_is_kept_as_plain_text_and_a_row_with_no_job_id_fails_to_read() {
        let (s, _d) = store().await;
        s.insert_livy_batch(&row("lva", 0, 1)).await.unwrap();
        let stored: String = sqlx::query_scalar("SELECT job_id FROM livy_batches")
            .fetch_one(s.pool())
            .await
            .unwrap();
        assert_eq!(stored, "lva");

        sqlx::query("UPDATE livy_batches SET job_id = 'LVA'")
            .execute(s.pool())
            .await
            .unwrap();
        let text = s
            .list_livy_batches(&[], None, None, 10)
            .await
            .unwrap_err()
            .to_string();
        assert!(text.contains(r#""LVA" is not a job id"#), "{text}");
    }
}
