//! The runs of the local spark-submit backend: what was asked, which process runs it,
//! and how it stands. The backend keeps no job state only in memory, so that a restart
//! can tell which runs were interrupted and which had not started yet.

use sqlx::sqlite::SqliteRow;
use sqlx::{QueryBuilder, Row, Sqlite};

use super::{Store, StoreResult};
use crate::job::{BackendKind, JobId, JobState};

/// One row of `local_runs`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LocalRunRow {
    pub id: JobId,
    pub name: String,
    pub client_token: String,
    pub state: JobState,
    /// JSON, as the backend wrote it.
    pub command: String,
    pub log_path: String,
    pub pid: Option<i64>,
    pub process_start: Option<i64>,
    pub state_details: Option<String>,
    pub failure_reason: Option<String>,
    pub created_at: i64,
    pub started_at: Option<i64>,
    pub finished_at: Option<i64>,
}

impl LocalRunRow {
    fn from_row(row: &SqliteRow) -> StoreResult<Self> {
        let state: JobState = row.try_get("state")?;
        Ok(LocalRunRow {
            id: row.try_get("id")?,
            name: row.try_get("name")?,
            client_token: row.try_get("client_token")?,
            state,
            command: row.try_get("command")?,
            log_path: row.try_get("log_path")?,
            pid: row.try_get("pid")?,
            process_start: row.try_get("process_start")?,
            state_details: row.try_get("state_details")?,
            failure_reason: row.try_get("failure_reason")?,
            created_at: row.try_get("created_at")?,
            started_at: row.try_get("started_at")?,
            finished_at: row.try_get("finished_at")?,
        })
    }
}

/// A run to record, queued.
#[derive(Clone, Debug)]
pub struct NewLocalRun<'a> {
    pub id: &'a JobId,
    pub name: &'a str,
    pub algorithm: i64,
    pub client_token: &'a str,
    pub command: &'a str,
    pub log_path: &'a str,
    pub created_at: i64,
}

/// How a run ends, for [`Store::finish_local_run`].
#[derive(Clone, Debug)]
pub struct LocalRunEnd<'a> {
    pub state: JobState,
    pub details: Option<&'a str>,
    pub failure_reason: Option<&'a str>,
    pub at: i64,
}

/// What [`Store::insert_local_run`] did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Inserted {
    /// The run was recorded as new.
    New(LocalRunRow),
    /// A run with the same client token already existed; it is returned unchanged.
    Existing(LocalRunRow),
}

fn push_states(q: &mut QueryBuilder<'_, Sqlite>, states: &[JobState]) {
    q.push("(");
    let mut list = q.separated(", ");
    for s in states {
        list.push_bind(s.as_str());
    }
    list.push_unseparated(")");
}

impl Store {
    /// Records a queued run, unless its client token was seen before. The run is also
    /// entered in `jobs`, in the same transaction, so the reconciler and the notice
    /// outbox know it even if the caller never gets to record it.
    pub async fn insert_local_run(&self, run: &NewLocalRun<'_>) -> StoreResult<Inserted> {
        let mut tx = self.pool.begin().await?;
        let done = sqlx::query(
            "INSERT INTO local_runs (id, name, client_token, state, command, log_path, created_at)
             VALUES (?, ?, ?, 'PENDING', ?, ?, ?) ON CONFLICT (client_token) DO NOTHING",
        )
        .bind(run.id)
        .bind(run.name)
        .bind(run.client_token)
        .bind(run.command)
        .bind(run.log_path)
        .bind(run.created_at)
        .execute(&mut *tx)
        .await?;
        let created = done.rows_affected() == 1;
        if created {
            let job = super::JobRecord {
                id: run.id.clone(),
                name: run.name.to_owned(),
                algorithm: Some(run.algorithm),
                backend: BackendKind::Local,
                created_at: run.created_at,
                adopted: false,
                app_name: None,
            };
            super::insert_job(&mut *tx, &job).await?;
        }
        let row = sqlx::query("SELECT * FROM local_runs WHERE client_token = ?")
            .bind(run.client_token)
            .fetch_one(&mut *tx)
            .await?;
        let row = LocalRunRow::from_row(&row)?;
        tx.commit().await?;
        Ok(if created {
            Inserted::New(row)
        } else {
            Inserted::Existing(row)
        })
    }

    /// The run a start with this client token made, if any.
    pub async fn local_run_by_token(&self, client_token: &str) -> StoreResult<Option<LocalRunRow>> {
        let row = sqlx::query("SELECT * FROM local_runs WHERE client_token = ?")
            .bind(client_token)
            .fetch_optional(self.pool())
            .await?;
        row.as_ref().map(LocalRunRow::from_row).transpose()
    }

    pub async fn local_run(&self, id: &JobId) -> StoreResult<Option<LocalRunRow>> {
        let row = sqlx::query("SELECT * FROM local_runs WHERE id = ?")
            .bind(id)
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(LocalRunRow::from_row).transpose()
    }

    /// PENDING → RUNNING with its process. False when the run was no longer PENDING
    /// (it was cancelled meanwhile).
    pub async fn local_run_started(
        &self,
        id: &JobId,
        pid: i64,
        process_start: Option<i64>,
        at: i64,
    ) -> StoreResult<bool> {
        let done = sqlx::query(
            "UPDATE local_runs SET state = 'RUNNING', pid = ?, process_start = ?, started_at = ?
             WHERE id = ? AND state = 'PENDING'",
        )
        .bind(pid)
        .bind(process_start)
        .bind(at)
        .bind(id)
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    /// RUNNING → CANCEL_PENDING. False when the run was not RUNNING.
    pub async fn local_run_cancel_requested(&self, id: &JobId) -> StoreResult<bool> {
        let done = sqlx::query(
            "UPDATE local_runs SET state = 'CANCEL_PENDING' WHERE id = ? AND state = 'RUNNING'",
        )
        .bind(id)
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    /// Moves a run from one of the `from` states to its end. False when it was in none of
    /// them, so that a run is ended once, by whoever gets there first.
    pub async fn finish_local_run(
        &self,
        id: &JobId,
        from: &[JobState],
        end: &LocalRunEnd<'_>,
    ) -> StoreResult<bool> {
        if from.is_empty() {
            return Ok(false);
        }
        let mut q = QueryBuilder::<Sqlite>::new("UPDATE local_runs SET state = ");
        q.push_bind(end.state.as_str())
            .push(", state_details = ")
            .push_bind(end.details)
            .push(", failure_reason = ")
            .push_bind(end.failure_reason)
            .push(", finished_at = ")
            .push_bind(end.at)
            .push(" WHERE id = ")
            .push_bind(id)
            .push(" AND state IN ");
        push_states(&mut q, from);
        let done = q.build().execute(&self.pool).await?;
        Ok(done.rows_affected() == 1)
    }

    /// Runs in one of `states`, oldest first: what start-up has to deal with.
    pub async fn local_runs_in(&self, states: &[JobState]) -> StoreResult<Vec<LocalRunRow>> {
        if states.is_empty() {
            return Ok(Vec::new());
        }
        let mut q = QueryBuilder::<Sqlite>::new("SELECT * FROM local_runs WHERE state IN ");
        push_states(&mut q, states);
        q.push(" ORDER BY created_at, id");
        let rows = q.build().fetch_all(&self.pool).await?;
        rows.iter().map(LocalRunRow::from_row).collect()
    }

    /// One page of runs, newest first. `after` is the `(created_at, id)` of the last run
    /// of the previous page.
    pub async fn list_local_runs(
        &self,
        states: &[JobState],
        created_after: Option<i64>,
        after: Option<(i64, &JobId)>,
        limit: i64,
    ) -> StoreResult<Vec<LocalRunRow>> {
        let mut q = super::page_query("local_runs", "id", states, created_after, after, limit);
        let rows = q.build().fetch_all(&self.pool).await?;
        rows.iter().map(LocalRunRow::from_row).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::store::temporary as store;

    fn id(raw: &str) -> JobId {
        JobId::parse(raw).unwrap()
    }

    fn run<'a>(id: &'a JobId, token: &'a str, created_at: i64) -> NewLocalRun<'a> {
        NewLocalRun {
            id,
            name: "job",
            algorithm: 1,
            client_token: token,
            command: "{}",
            log_path: "/tmp/x.log",
            created_at,
        }
    }

    fn end(state: JobState) -> LocalRunEnd<'static> {
        LocalRunEnd {
            state,
            details: Some("why"),
            failure_reason: None,
            at: 99,
        }
    }

    #[tokio::test]
    async fn a_repeated_client_token_returns_the_first_run_and_records_nothing_new() {
        let (s, _d) = store().await;
        let first = s.insert_local_run(&run(&id("a1"), "tok", 1)).await.unwrap();
        assert!(
            matches!(first, Inserted::New(ref r) if r.id == "a1" && r.state == JobState::Pending)
        );
        let again = s.insert_local_run(&run(&id("b2"), "tok", 2)).await.unwrap();
        assert!(matches!(again, Inserted::Existing(ref r) if r.id == "a1"));
        assert!(s.local_run(&id("b2")).await.unwrap().is_none());
        let job = s.job(&id("a1")).await.unwrap().unwrap();
        assert_eq!((job.backend, job.algorithm), (BackendKind::Local, Some(1)));
        assert!(s.job(&id("b2")).await.unwrap().is_none());
    }

    #[tokio::test]
    async fn a_run_is_started_and_ended_once_and_only_from_the_expected_states() {
        let (s, _d) = store().await;
        s.insert_local_run(&run(&id("a1"), "t1", 1)).await.unwrap();
        assert!(!s.local_run_cancel_requested(&id("a1")).await.unwrap());
        assert!(s
            .local_run_started(&id("a1"), 42, Some(7), 5)
            .await
            .unwrap());
        assert!(!s.local_run_started(&id("a1"), 43, None, 6).await.unwrap());
        assert!(!s
            .finish_local_run(&id("a1"), &[JobState::Pending], &end(JobState::Cancelled))
            .await
            .unwrap());
        assert!(s.local_run_cancel_requested(&id("a1")).await.unwrap());
        let from = [JobState::Running, JobState::CancelPending];
        assert!(s
            .finish_local_run(&id("a1"), &from, &end(JobState::Cancelled))
            .await
            .unwrap());
        assert!(!s
            .finish_local_run(&id("a1"), &from, &end(JobState::Failed))
            .await
            .unwrap());
        let r = s.local_run(&id("a1")).await.unwrap().unwrap();
        assert_eq!(r.state, JobState::Cancelled);
        assert_eq!(
            (r.pid, r.process_start, r.started_at),
            (Some(42), Some(7), Some(5))
        );
        assert_eq!(
            (r.finished_at, r.state_details.as_deref()),
            (Some(99), Some("why"))
        );
    }

    #[tokio::test]
    async fn listing_is_newest_first_filtered_and_pages_without_gaps_or_repeats() {
        let (s, _d) = store().await;
        // Two runs share a creation time: the id breaks the tie.
        for (raw, token, at) in [
            ("a", "1", 10),
            ("b", "2", 20),
            ("c", "3", 20),
            ("d", "4", 30),
        ] {
            s.insert_local_run(&run(&id(raw), token, at)).await.unwrap();
        }
        s.finish_local_run(&id("b"), &[JobState::Pending], &end(JobState::Failed))
            .await
            .unwrap();
        let ids = |rows: Vec<LocalRunRow>| rows.into_iter().map(|r| r.id).collect::<Vec<_>>();
        assert_eq!(
            ids(s.list_local_runs(&[], None, None, 10).await.unwrap()),
            ["d", "c", "b", "a"]
        );
        let first = s.list_local_runs(&[], None, None, 2).await.unwrap();
        let last = first.last().unwrap().clone();
        assert_eq!(ids(first), ["d", "c"]);
        let second = s
            .list_local_runs(&[], None, Some((last.created_at, &last.id)), 2)
            .await
            .unwrap();
        assert_eq!(ids(second), ["b", "a"]);
        assert_eq!(
            ids(s
                .list_local_runs(&[JobState::Pending], Some(20), None, 10)
                .await
                .unwrap()),
            ["d", "c"]
        );
        assert_eq!(
            ids(s.local_runs_in(&[JobState::Pending]).await.unwrap()),
            ["a", "c", "d"]
        );
    }

    #[tokio::test]
    async fn a_runs_id_is_kept_as_plain_text_and_a_row_with_no_job_id_fails_to_read() {
        let (s, _d) = store().await;
        s.insert_local_run(&run(&id("a1"), "t1", 1)).await.unwrap();
        let stored: String = sqlx::query_scalar("SELECT id FROM local_runs")
            .fetch_one(s.pool())
            .await
            .unwrap();
        assert_eq!(stored, "a1");

        sqlx::query("UPDATE local_runs SET id = 'Not/An Id'")
            .execute(s.pool())
            .await
            .unwrap();
        let errors = [
            s.local_runs_in(&[JobState::Pending])
                .await
                .unwrap_err()
                .to_string(),
            s.local_run_by_token("t1").await.unwrap_err().to_string(),
            s.list_local_runs(&[], None, None, 10)
                .await
                .unwrap_err()
                .to_string(),
        ];
        for text in errors {
            assert!(text.contains(r#""Not/An Id" is not a job id"#), "{text}");
        }
    }
}
