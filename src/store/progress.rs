//! The progress side of the store: each job's progress token, its last accepted report,
//! and the page of jobs the lab's admin page lists.

use std::collections::HashMap;

use sqlx::sqlite::SqliteRow;
use sqlx::Row;

use super::{FinalState, JobRecord, NoticeStatus, Store, StoreResult};
use crate::job::JobId;

/// A job the progress reader follows: it has a token and has not been read for the last
/// time since it ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProgressJob {
    pub id: JobId,
    pub app_name: String,
    pub token: String,
    /// Unix milliseconds.
    pub created_at: i64,
    /// The job has a final state recorded: the next read is its last.
    pub ended: bool,
}

/// A report the service accepted, as it keeps it (times in unix seconds).
#[derive(Clone, Debug, PartialEq)]
pub struct ProgressRecord {
    /// `bbha` or `blind_search`.
    pub algorithm: String,
    pub started_at: f64,
    pub updated_at: f64,
    pub iteration: i64,
    pub iterations: i64,
    pub best_fitness: Option<f64>,
    pub molecules: i64,
    pub evaluations_done: i64,
    pub evaluations_total: i64,
    /// The report's history points, as a JSON array.
    pub history: String,
}

impl ProgressRecord {
    /// The report's columns of a row (`PROGRESS_COLUMNS`). A value of the wrong type is
    /// an error, not a panic.
    fn from_row(r: &SqliteRow) -> Result<Self, sqlx::Error> {
        Ok(ProgressRecord {
            algorithm: r.try_get("algorithm")?,
            started_at: r.try_get("started_at")?,
            updated_at: r.try_get("updated_at")?,
            iteration: r.try_get("iteration")?,
            iterations: r.try_get("iterations")?,
            best_fitness: r.try_get("best_fitness")?,
            molecules: r.try_get("molecules")?,
            evaluations_done: r.try_get("evaluations_done")?,
            evaluations_total: r.try_get("evaluations_total")?,
            history: r.try_get("history")?,
        })
    }
}

/// One job of the admin page's list: its record, what the store knows of its end, its
/// last report and its notice.
#[derive(Clone, Debug, PartialEq)]
pub struct JobOverview {
    pub job: JobRecord,
    pub final_state: Option<FinalState>,
    pub progress: Option<ProgressRecord>,
    pub notice: Option<NoticeStatus>,
}

const PROGRESS_COLUMNS: &str = "p.algorithm, p.started_at, p.updated_at, p.iteration, \
     p.iterations, p.best_fitness, p.molecules, p.evaluations_done, p.evaluations_total, \
     p.history";

impl Store {
    /// The jobs whose reports are still to be read, oldest first: those with a progress
    /// token and an app name that were not read for the last time after their end.
    pub async fn progress_jobs(&self, limit: i64) -> StoreResult<Vec<ProgressJob>> {
        let rows = sqlx::query(
            "SELECT id, app_name, progress_token, created_at, final_state FROM jobs
             WHERE progress_token IS NOT NULL AND progress_done = 0 AND app_name IS NOT NULL
             ORDER BY created_at LIMIT ?",
        )
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        let jobs = rows
            .iter()
            .map(|r| {
                Ok(ProgressJob {
                    id: r.try_get("id")?,
                    app_name: r.try_get("app_name")?,
                    token: r.try_get("progress_token")?,
                    created_at: r.try_get("created_at")?,
                    ended: r.try_get::<Option<FinalState>, _>("final_state")?.is_some(),
                })
            })
            .collect::<Result<_, sqlx::Error>>()?;
        Ok(jobs)
    }

    /// Keeps `report` as the job's progress unless the one kept is newer. Returns the
    /// report it replaced, if any (for the time per iteration), and whether it was kept.
    pub async fn save_progress(
        &self,
        job_id: &JobId,
        report: &ProgressRecord,
        read_at: i64,
    ) -> StoreResult<(bool, Option<ProgressRecord>)> {
        let mut tx = self.pool.begin().await?;
        let before = sqlx::query(&format!(
            "SELECT {PROGRESS_COLUMNS} FROM progress p WHERE p.job_id = ?"
        ))
        .bind(job_id)
        .fetch_optional(&mut *tx)
        .await?
        .as_ref()
        .map(ProgressRecord::from_row)
        .transpose()?;
        let done = sqlx::query(
            "INSERT INTO progress (job_id, algorithm, started_at, updated_at, iteration,
                 iterations, best_fitness, molecules, evaluations_done, evaluations_total,
                 history, read_at)
             VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
             ON CONFLICT (job_id) DO UPDATE SET
                 algorithm = excluded.algorithm, started_at = excluded.started_at,
                 updated_at = excluded.updated_at, iteration = excluded.iteration,
                 iterations = excluded.iterations, best_fitness = excluded.best_fitness,
                 molecules = excluded.molecules, evaluations_done = excluded.evaluations_done,
                 evaluations_total = excluded.evaluations_total, history = excluded.history,
                 read_at = excluded.read_at
             WHERE excluded.updated_at >= progress.updated_at",
        )
        .bind(job_id)
        .bind(&report.algorithm)
        .bind(report.started_at)
        .bind(report.updated_at)
        .bind(report.iteration)
        .bind(report.iterations)
        .bind(report.best_fitness)
        .bind(report.molecules)
        .bind(report.evaluations_done)
        .bind(report.evaluations_total)
        .bind(&report.history)
        .bind(read_at)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok((done.rows_affected() == 1, before))
    }

    /// The job's last accepted report.
    pub async fn progress(&self, job_id: &JobId) -> StoreResult<Option<ProgressRecord>> {
        let row = sqlx::query(&format!(
            "SELECT {PROGRESS_COLUMNS} FROM progress p WHERE p.job_id = ?"
        ))
        .bind(job_id)
        .fetch_optional(&self.pool)
        .await?;
        Ok(row.as_ref().map(ProgressRecord::from_row).transpose()?)
    }

    /// The last accepted report of each of `job_ids` that has one, in one query (a page
    /// of `GET /jobs`).
    pub async fn progress_of(
        &self,
        job_ids: &[JobId],
    ) -> StoreResult<HashMap<JobId, ProgressRecord>> {
        if job_ids.is_empty() {
            return Ok(HashMap::new());
        }
        let marks = vec!["?"; job_ids.len()].join(", ");
        let sql = format!(
            "SELECT p.job_id AS progress_job, {PROGRESS_COLUMNS} FROM progress p
             WHERE p.job_id IN ({marks})"
        );
        let mut query = sqlx::query(&sql);
        for id in job_ids {
            query = query.bind(id);
        }
        let rows = query.fetch_all(&self.pool).await?;
        let reports = rows
            .iter()
            .map(|r| Ok((r.try_get("progress_job")?, ProgressRecord::from_row(r)?)))
            .collect::<Result<_, sqlx::Error>>()?;
        Ok(reports)
    }

    /// The job's report was read for the last time after its end: it is not read again.
    pub async fn progress_read_for_the_last_time(&self, job_id: &JobId) -> StoreResult<()> {
        sqlx::query("UPDATE jobs SET progress_done = 1 WHERE id = ?")
            .bind(job_id)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// `(evaluations done, evaluations planned)` of each job not known to have ended that
    /// has a report: what the progress gauges are made of.
    pub async fn unfinished_progress(&self) -> StoreResult<Vec<(i64, i64)>> {
        let rows = sqlx::query(
            "SELECT p.evaluations_done, p.evaluations_total FROM progress p
             JOIN jobs j ON j.id = p.job_id WHERE j.final_state IS NULL",
        )
        .fetch_all(&self.pool)
        .await?;
        let pairs = rows
            .iter()
            .map(|r| {
                Ok((
                    r.try_get("evaluations_done")?,
                    r.try_get("evaluations_total")?,
                ))
            })
            .collect::<Result<_, sqlx::Error>>()?;
        Ok(pairs)
    }

    /// How many jobs the store holds.
    pub async fn job_count(&self) -> StoreResult<i64> {
        let row = sqlx::query("SELECT COUNT(*) AS n FROM jobs")
            .fetch_one(&self.pool)
            .await?;
        Ok(row.try_get("n")?)
    }

    /// One page of the jobs, newest first, with their reports and notices.
    pub async fn jobs_page(&self, offset: i64, limit: i64) -> StoreResult<Vec<JobOverview>> {
        let rows = sqlx::query(&format!(
            "SELECT j.id, j.name, j.algorithm AS algorithm_code, j.backend, j.created_at,
                    j.adopted, j.app_name, j.final_state, n.status AS notice_status,
                    p.job_id AS progress_job, {PROGRESS_COLUMNS}
             FROM jobs j
             LEFT JOIN progress p ON p.job_id = j.id
             LEFT JOIN notices n ON n.job_id = j.id
             ORDER BY j.created_at DESC, j.id DESC LIMIT ? OFFSET ?"
        ))
        .bind(limit)
        .bind(offset)
        .fetch_all(&self.pool)
        .await?;
        let page = rows
            .iter()
            .map(|r| {
                Ok(JobOverview {
                    job: JobRecord::from_row(r, "algorithm_code")?,
                    final_state: r.try_get("final_state")?,
                    progress: r
                        .try_get::<Option<&str>, _>("progress_job")?
                        .map(|_| ProgressRecord::from_row(r))
                        .transpose()?,
                    notice: r.try_get::<Option<NoticeStatus>, _>("notice_status")?,
                })
            })
            .collect::<Result<_, sqlx::Error>>()?;
        Ok(page)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(raw: &str) -> JobId {
        JobId::parse(raw).unwrap()
    }
    use crate::job::JobState;
    use crate::store::{now_millis, Submission};

    use crate::store::temporary as store;

    fn record(raw: &str, app: &str, created_at: i64) -> JobRecord {
        JobRecord {
            id: id(raw),
            name: "n".into(),
            algorithm: Some(1),
            backend: crate::job::BackendKind::Local,
            created_at,
            adopted: false,
            app_name: Some(app.into()),
        }
    }

    fn report(iteration: i64, updated_at: f64) -> ProgressRecord {
        ProgressRecord {
            algorithm: "bbha".into(),
            started_at: 100.0,
            updated_at,
            iteration,
            iterations: 10,
            best_fitness: Some(0.5),
            molecules: 3,
            evaluations_done: 6 + 4 * iteration,
            evaluations_total: 46,
            history: "[]".into(),
        }
    }

    async fn submit(s: &Store, token: &str, app: &str, id: &str, progress: Option<&str>) {
        let submission = Submission {
            client_token: token.into(),
            name: "n".into(),
            algorithm: Some(1),
            backend: crate::job::BackendKind::Local,
            idempotency: None,
            created_at: now_millis(),
            app_name: Some(app.into()),
            progress_token: progress.map(str::to_owned),
        };
        s.begin_submission(&submission).await.unwrap();
        s.complete_submission(token, &record(id, app, submission.created_at), None)
            .await
            .unwrap();
    }

    #[tokio::test]
    async fn a_completed_submission_gives_its_job_the_progress_token_and_the_reader_follows_it() {
        let (s, _d) = store().await;
        submit(&s, "c1", "A1", "j1", Some("t1")).await;
        submit(&s, "c2", "A2", "j2", None).await;
        let jobs = s.progress_jobs(10).await.unwrap();
        assert_eq!(jobs.len(), 1, "{jobs:?}");
        assert_eq!(
            (
                jobs[0].id.as_str(),
                jobs[0].app_name.as_str(),
                jobs[0].token.as_str()
            ),
            ("j1", "A1", "t1")
        );
        assert!(!jobs[0].ended);

        s.mark_job_final(&id("j1"), FinalState::Ended(JobState::Completed))
            .await
            .unwrap();
        assert!(s.progress_jobs(10).await.unwrap()[0].ended);
        s.progress_read_for_the_last_time(&id("j1")).await.unwrap();
        assert!(s.progress_jobs(10).await.unwrap().is_empty());
    }

    #[tokio::test]
    async fn an_older_report_never_replaces_a_newer_one() {
        let (s, _d) = store().await;
        submit(&s, "c1", "A1", "j1", Some("t1")).await;
        assert_eq!(
            s.save_progress(&id("j1"), &report(1, 200.0), 1)
                .await
                .unwrap(),
            (true, None)
        );
        let (kept, before) = s
            .save_progress(&id("j1"), &report(2, 300.0), 2)
            .await
            .unwrap();
        assert!(kept);
        assert_eq!(before, Some(report(1, 200.0)));
        let (kept, _) = s
            .save_progress(&id("j1"), &report(1, 200.0), 3)
            .await
            .unwrap();
        assert!(!kept);
        assert_eq!(s.progress(&id("j1")).await.unwrap(), Some(report(2, 300.0)));
        assert_eq!(s.unfinished_progress().await.unwrap(), vec![(14, 46)]);
        s.mark_job_final(&id("j1"), FinalState::Ended(JobState::Completed))
            .await
            .unwrap();
        assert!(s.unfinished_progress().await.unwrap().is_empty());
    }

    #[tokio::test]
    async fn the_page_lists_jobs_newest_first_with_their_reports() {
        let (s, _d) = store().await;
        for (i, id) in ["j1", "j2", "j3"].iter().enumerate() {
            s.record_job(&record(id, &format!("A{i}"), 1_000 + i as i64))
                .await
                .unwrap();
        }
        s.save_progress(&id("j2"), &report(3, 50.0), 1)
            .await
            .unwrap();
        s.open_notice(&id("j1"), 0).await.unwrap();
        let page = s.jobs_page(0, 2).await.unwrap();
        let ids: Vec<&str> = page.iter().map(|o| o.job.id.as_str()).collect();
        assert_eq!(ids, ["j3", "j2"]);
        assert_eq!(page[1].progress.as_ref().unwrap().iteration, 3);
        assert!(page[0].progress.is_none());
        let rest = s.jobs_page(2, 2).await.unwrap();
        assert_eq!(rest.len(), 1);
        assert_eq!(rest[0].notice, Some(NoticeStatus::Waiting));
        assert_eq!(s.job_count().await.unwrap(), 3);
    }

    #[tokio::test]
    async fn the_reports_of_a_page_of_jobs_are_read_at_once_each_under_its_job() {
        let (s, _d) = store().await;
        for (i, id) in ["j1", "j2", "j3"].iter().enumerate() {
            s.record_job(&record(id, &format!("A{i}"), 1_000 + i as i64))
                .await
                .unwrap();
        }
        s.save_progress(&id("j1"), &report(1, 20.0), 1)
            .await
            .unwrap();
        s.save_progress(&id("j3"), &report(4, 90.0), 1)
            .await
            .unwrap();
        let asked = [id("j1"), id("j2"), id("j3"), id("unknown")];
        let reports = s.progress_of(&asked).await.unwrap();
        assert_eq!(reports.len(), 2, "{reports:?}");
        assert_eq!(reports[&id("j1")], report(1, 20.0));
        assert_eq!(reports[&id("j3")], report(4, 90.0));
        assert!(s.progress_of(&[]).await.unwrap().is_empty());
        assert!(s.progress_of(&[id("j2")]).await.unwrap().is_empty());
    }

    #[tokio::test]
    async fn a_report_with_a_value_of_the_wrong_type_fails_to_read_and_does_not_panic() {
        let (s, _d) = store().await;
        submit(&s, "c1", "A1", "j1", Some("t1")).await;
        s.save_progress(&id("j1"), &report(1, 200.0), 1)
            .await
            .unwrap();
        sqlx::query("UPDATE progress SET iteration = 'many'")
            .execute(s.pool())
            .await
            .unwrap();
        for result in [
            s.progress(&id("j1")).await.map(|_| ()),
            s.jobs_page(0, 10).await.map(|_| ()),
            s.save_progress(&id("j1"), &report(2, 300.0), 2)
                .await
                .map(|_| ()),
        ] {
            let text = result.unwrap_err().to_string();
            assert!(text.contains("iteration"), "{text}");
        }
    }
}
