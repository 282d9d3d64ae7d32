//! The embedded durable store (SQLite through sqlx): the jobs this service started, the
//! idempotency keys of job submissions, the outbox of job-end notices, the runs of the
//! local spark-submit backend and the batches of the Livy backend.
//!
//! Everything that must survive a restart lives here; nothing of it is held only in
//! memory. Times are unix milliseconds.

mod livy_batches;
mod local_runs;
mod progress;
mod types;

pub use livy_batches::{LivyBatchRow, LivySeen};
pub use local_runs::{Inserted, LocalRunEnd, LocalRunRow, NewLocalRun};
pub use progress::{JobOverview, ProgressJob, ProgressRecord};
pub use types::FinalState;

use std::path::Path;
use std::str::FromStr;
use std::time::Duration;

use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteRow, SqliteSynchronous,
};
use sqlx::{Row, SqlitePool};

use crate::job::{BackendKind, JobId, JobState};

/// Everything that must outlive the process, in one SQLite file: the jobs this service
/// started, idempotency keys, submissions in flight, the notice outbox and the local
/// backend's runs. Every state change is one conditional statement (or transaction) that
/// says whether it changed anything, so two workers can never both act on one notice.
/// Cheap to clone: clones share one connection pool.
#[derive(Clone)]
pub struct Store {
    pool: SqlitePool,
}

/// A job as recorded when it was started.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct JobRecord {
    pub id: JobId,
    pub name: String,
    pub algorithm: Option<i64>,
    pub backend: BackendKind,
    pub created_at: i64,
    pub adopted: bool,
    /// The `app-name` argument, when known (not for a job adopted from the backend).
    pub app_name: Option<String>,
}

impl JobRecord {
    /// A row of `jobs`, with the algorithm's code in the column `algorithm` names (a join
    /// can have another table's `algorithm` beside it). A value that is no id or no
    /// backend is an error, not a panic.
    fn from_row(r: &SqliteRow, algorithm: &str) -> Result<Self, sqlx::Error> {
        Ok(JobRecord {
            id: r.try_get("id")?,
            name: r.try_get("name")?,
            algorithm: r.try_get(algorithm)?,
            backend: r.try_get("backend")?,
            created_at: r.try_get("created_at")?,
            adopted: r.try_get("adopted")?,
            app_name: r.try_get("app_name")?,
        })
    }
}

/// Where a notice stands; see the `notices` table.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NoticeStatus {
    Waiting,
    Fetching,
    Pending,
    Delivered,
    Refused,
    GivenUp,
    Abandoned,
}

impl NoticeStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            NoticeStatus::Waiting => "waiting",
            NoticeStatus::Fetching => "fetching",
            NoticeStatus::Pending => "pending",
            NoticeStatus::Delivered => "delivered",
            NoticeStatus::Refused => "refused",
            NoticeStatus::GivenUp => "given_up",
            NoticeStatus::Abandoned => "abandoned",
        }
    }

    pub const ALL: [NoticeStatus; 7] = [
        NoticeStatus::Waiting,
        NoticeStatus::Fetching,
        NoticeStatus::Pending,
        NoticeStatus::Delivered,
        NoticeStatus::Refused,
        NoticeStatus::GivenUp,
        NoticeStatus::Abandoned,
    ];

    /// The status `raw` names, or `None` for a name the store never writes.
    pub fn parse(raw: &str) -> Option<Self> {
        NoticeStatus::ALL.into_iter().find(|s| s.as_str() == raw)
    }

    /// Whether the notifier still has work to do for it.
    pub fn is_open(self) -> bool {
        matches!(
            self,
            NoticeStatus::Waiting | NoticeStatus::Fetching | NoticeStatus::Pending
        )
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NoticeRow {
    pub job_id: JobId,
    pub status: NoticeStatus,
    pub due_at: i64,
    pub payload: Option<String>,
    pub final_state: Option<FinalState>,
    pub attempts: i64,
    pub first_attempt_at: Option<i64>,
    pub last_error: Option<String>,
    pub created_at: i64,
    /// Tries to copy the job's results into the shared folder, and when the first began.
    pub fetch_attempts: i64,
    pub first_fetch_at: Option<i64>,
}

impl NoticeRow {
    /// A row of `notices`. A value that is no id, status or state is an error, not a
    /// panic.
    fn from_row(row: &SqliteRow) -> Result<Self, sqlx::Error> {
        Ok(NoticeRow {
            job_id: row.try_get("job_id")?,
            status: row.try_get("status")?,
            due_at: row.try_get("due_at")?,
            payload: row.try_get("payload")?,
            final_state: row.try_get("final_state")?,
            attempts: row.try_get("attempts")?,
            first_attempt_at: row.try_get("first_attempt_at")?,
            last_error: row.try_get("last_error")?,
            created_at: row.try_get("created_at")?,
            fetch_attempts: row.try_get("fetch_attempts")?,
            first_fetch_at: row.try_get("first_fetch_at")?,
        })
    }
}

/// A job submission written before the backend is asked to start it; see the
/// `submissions` table.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Submission {
    pub client_token: String,
    pub name: String,
    pub algorithm: Option<i64>,
    pub backend: BackendKind,
    /// The `Idempotency-Key` and the request's fingerprint, when it had one.
    pub idempotency: Option<(String, String)>,
    pub created_at: i64,
    pub app_name: Option<String>,
    /// The job's progress token, drawn before the backend is asked and carried into the
    /// job's record when it is completed.
    pub progress_token: Option<String>,
}

/// What [`Store::begin_submission`] did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Begun {
    /// The submission is written, and holds its app name (if it has one).
    Written,
    /// Another submission or job holds the app name: nothing was written.
    AppNameInUse {
        /// The job that holds it, once its backend started it.
        job_id: Option<JobId>,
    },
}

/// What happened to one delivery attempt, as the store records it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AttemptRecord {
    Delivered,
    Refused { error: String },
    Retry { due_at: i64, error: String },
    GivenUp { error: String },
}

/// What happened to one try to copy a job's results, as the store records it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum FetchRecord {
    /// The results are in place: the notice is delivered next.
    Fetched,
    Retry {
        due_at: i64,
        error: String,
    },
    GivenUp {
        error: String,
    },
}

/// The store could not do what it was asked: the database file could not be opened, read
/// or written (a full disk, a locked or damaged file, a failed migration). For a caller it
/// is the service's own failure, never the request's: an answer of 500 or 503, or the
/// work tried again later. The database's own error is kept as the cause, for the log.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("the database failed: {0}")]
    Database(#[from] sqlx::Error),
    #[error("the database schema could not be brought up to date: {0}")]
    Migration(#[from] sqlx::migrate::MigrateError),
}

pub type StoreResult<T> = Result<T, StoreError>;

/// Records a job once; a second record of the same id changes nothing, except that it
/// fills in an app name the first did not know (a job adopted from a backend listing
/// before the submission that started it was completed).
pub(crate) async fn insert_job<'e, E>(executor: E, job: &JobRecord) -> StoreResult<()>
where
    E: sqlx::Executor<'e, Database = sqlx::Sqlite>,
{
    sqlx::query(
        "INSERT INTO jobs (id, name, algorithm, backend, created_at, adopted, app_name)
         VALUES (?, ?, ?, ?, ?, ?, ?)
         ON CONFLICT (id) DO UPDATE SET app_name = COALESCE(jobs.app_name, excluded.app_name),
                                        algorithm = COALESCE(jobs.algorithm, excluded.algorithm)",
    )
    .bind(&job.id)
    .bind(&job.name)
    .bind(job.algorithm)
    .bind(job.backend)
    .bind(job.created_at)
    .bind(job.adopted)
    .bind(&job.app_name)
    .execute(executor)
    .await?;
    Ok(())
}

/// A page of a backend's own rows (`table`, keyed by `id_column`), newest first: those in
/// `states` (all when empty), created at or after `created_after`, after the row
/// `after` (`(created_at, id)`, the last of the previous page), at most `limit`. Shared by
/// the local backend's runs and Livy's batches, which list alike.
pub(crate) fn page_query<'q>(
    table: &str,
    id_column: &str,
    states: &'q [JobState],
    created_after: Option<i64>,
    after: Option<(i64, &'q JobId)>,
    limit: i64,
) -> sqlx::QueryBuilder<'q, sqlx::Sqlite> {
    let mut q = sqlx::QueryBuilder::new(format!("SELECT * FROM {table} WHERE 1 = 1"));
    if !states.is_empty() {
        q.push(" AND state IN (");
        let mut list = q.separated(", ");
        for s in states {
            list.push_bind(s.as_str());
        }
        list.push_unseparated(")");
    }
    if let Some(t) = created_after {
        q.push(" AND created_at >= ").push_bind(t);
    }
    if let Some((created_at, id)) = after {
        q.push(" AND (created_at < ")
            .push_bind(created_at)
            .push(" OR (created_at = ")
            .push_bind(created_at)
            .push(format!(" AND {id_column} < "))
            .push_bind(id)
            .push("))");
    }
    q.push(format!(
        " ORDER BY created_at DESC, {id_column} DESC LIMIT "
    ))
    .push_bind(limit);
    q
}

pub fn now_millis() -> i64 {
    time::OffsetDateTime::now_utc().unix_timestamp_nanos() as i64 / 1_000_000
}

impl Store {
    /// Opens (creating if needed) the database and brings its schema up to date.
    pub async fn connect(url: &str) -> StoreResult<Self> {
        let options = SqliteConnectOptions::from_str(url)?
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Full)
            .busy_timeout(Duration::from_secs(5))
            .foreign_keys(true);
        let filename = options.get_filename();
        if filename != Path::new(":memory:") {
            if let Some(dir) = filename.parent().filter(|d| !d.as_os_str().is_empty()) {
                std::fs::create_dir_all(dir).map_err(sqlx::Error::Io)?;
            }
        }
        let pool = SqlitePoolOptions::new()
            .max_connections(4)
            .min_connections(1)
            .connect_with(options)
            .await?;
        sqlx::migrate!("./migrations").run(&pool).await?;
        Ok(Store { pool })
    }

    pub async fn ping(&self) -> StoreResult<()> {
        sqlx::query("SELECT 1").execute(&self.pool).await?;
        Ok(())
    }

    /// True when the store holds no job and no notice: a fresh disk, or a lost one.
    pub async fn is_empty(&self) -> StoreResult<bool> {
        let row =
            sqlx::query("SELECT (SELECT COUNT(*) FROM jobs) + (SELECT COUNT(*) FROM notices) AS n")
                .fetch_one(&self.pool)
                .await?;
        Ok(row.try_get::<i64, _>("n")? == 0)
    }

    pub async fn record_job(&self, job: &JobRecord) -> StoreResult<()> {
        insert_job(&self.pool, job).await
    }

    pub async fn job(&self, id: &JobId) -> StoreResult<Option<JobRecord>> {
        let row = sqlx::query(
            "SELECT id, name, algorithm, backend, created_at, adopted, app_name
             FROM jobs WHERE id = ?",
        )
        .bind(id)
        .fetch_optional(&self.pool)
        .await?;
        Ok(row
            .map(|r| JobRecord::from_row(&r, "algorithm"))
            .transpose()?)
    }

    /// Whether the job is in the store and, if so, the final state recorded for it (once
    /// its notice was made ready, or the backend stopped knowing it).
    pub async fn job_final_state(&self, id: &JobId) -> StoreResult<Option<Option<FinalState>>> {
        let row = sqlx::query("SELECT final_state FROM jobs WHERE id = ?")
            .bind(id)
            .fetch_optional(&self.pool)
            .await?;
        Ok(row.map(|r| r.try_get("final_state")).transpose()?)
    }

    /// Jobs this service started that are not known to be final and have no notice yet:
    /// what the reconciler reads from the backend.
    pub async fn unfinished_jobs(&self, limit: i64) -> StoreResult<Vec<JobId>> {
        let rows = sqlx::query(
            "SELECT id FROM jobs WHERE final_state IS NULL
               AND NOT EXISTS (SELECT 1 FROM notices n WHERE n.job_id = jobs.id)
             ORDER BY created_at LIMIT ?",
        )
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        Ok(rows
            .iter()
            .map(|r| r.try_get("id"))
            .collect::<Result<_, _>>()?)
    }

    /// Marks a job the backend no longer knows, so the reconciler stops asking; no notice
    /// will follow, so its app name is freed.
    pub async fn mark_job_final(&self, id: &JobId, state: FinalState) -> StoreResult<()> {
        let mut tx = self.pool.begin().await?;
        sqlx::query("UPDATE jobs SET final_state = ? WHERE id = ?")
            .bind(state)
            .bind(id)
            .execute(&mut *tx)
            .await?;
        sqlx::query("DELETE FROM app_names_in_use WHERE job_id = ?")
            .bind(id)
            .execute(&mut *tx)
            .await?;
        Ok(tx.commit().await?)
    }

    /// Records a job adopted from the backend after the store was lost. One that carries
    /// its app name takes it when the name is free, so that no new job starts under the
    /// name of one still running; of two adopted under one name, the first (the newest,
    /// as backends list them) keeps it.
    pub async fn adopt_job(&self, job: &JobRecord) -> StoreResult<()> {
        let mut tx = self.pool.begin().await?;
        insert_job(&mut *tx, job).await?;
        if let Some(app) = &job.app_name {
            sqlx::query(
                "INSERT OR IGNORE INTO app_names_in_use (app_name, client_token, job_id, created_at)
                 VALUES (?, 'adopted:' || ?, ?, ?)",
            )
            .bind(app)
            .bind(&job.id)
            .bind(&job.id)
            .bind(job.created_at)
            .execute(&mut *tx)
            .await?;
        }
        Ok(tx.commit().await?)
    }

    /// The job an `Idempotency-Key` started, and the fingerprint of the request that
    /// started it.
    pub async fn idempotent_job(&self, key: &str) -> StoreResult<Option<(JobId, String)>> {
        let row = sqlx::query("SELECT job_id, fingerprint FROM idempotency_keys WHERE key = ?")
            .bind(key)
            .fetch_optional(&self.pool)
            .await?;
        let read = |r: SqliteRow| -> Result<_, sqlx::Error> {
            Ok((r.try_get("job_id")?, r.try_get("fingerprint")?))
        };
        Ok(row.map(read).transpose()?)
    }

    /// Deletes closed notices last changed before `older_than`. Their job keeps its final
    /// state, so neither the reconciler nor a late callback opens them again.
    pub async fn purge_closed_notices(&self, older_than: i64) -> StoreResult<u64> {
        let done = sqlx::query(
            "DELETE FROM notices WHERE status NOT IN ('waiting', 'fetching', 'pending') AND updated_at < ?",
        )
        .bind(older_than)
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected())
    }

    /// Writes a submission before its datasets are uploaded and its backend is asked,
    /// and takes its app name (see `app_names_in_use`), in one transaction: of two
    /// concurrent submissions for one app name, one is written and the other is told
    /// who holds the name. A second one with the same client token (a retry with the
    /// same `Idempotency-Key`) changes nothing and is `Written`: it is the same job.
    pub async fn begin_submission(&self, s: &Submission) -> StoreResult<Begun> {
        let (key, fingerprint) = match &s.idempotency {
            Some((k, f)) => (Some(k.as_str()), Some(f.as_str())),
            None => (None, None),
        };
        let mut tx = self.pool.begin().await?;
        if let Some(app) = &s.app_name {
            sqlx::query(
                "INSERT INTO app_names_in_use (app_name, client_token, job_id, created_at)
                 VALUES (?, ?, NULL, ?) ON CONFLICT (app_name) DO NOTHING",
            )
            .bind(app)
            .bind(&s.client_token)
            .bind(s.created_at)
            .execute(&mut *tx)
            .await?;
            let holder =
                sqlx::query("SELECT client_token, job_id FROM app_names_in_use WHERE app_name = ?")
                    .bind(app)
                    .fetch_one(&mut *tx)
                    .await?;
            if holder.try_get::<&str, _>("client_token")? != s.client_token {
                let job_id = holder.try_get("job_id")?;
                tx.rollback().await?;
                return Ok(Begun::AppNameInUse { job_id });
            }
        }
        sqlx::query(
            "INSERT INTO submissions
                (client_token, name, algorithm, backend, idempotency_key, fingerprint, created_at,
                 app_name, progress_token)
             VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (client_token) DO NOTHING",
        )
        .bind(&s.client_token)
        .bind(&s.name)
        .bind(s.algorithm)
        .bind(s.backend)
        .bind(key)
        .bind(fingerprint)
        .bind(s.created_at)
        .bind(&s.app_name)
        .bind(&s.progress_token)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(Begun::Written)
    }

    /// The backend started the job: records it (and its idempotency key), gives it the
    /// submission's progress token, and removes the submission, in one transaction.
    pub async fn complete_submission(
        &self,
        client_token: &str,
        job: &JobRecord,
        key: Option<(&str, &str)>,
    ) -> StoreResult<()> {
        let mut tx = self.pool.begin().await?;
        insert_job(&mut *tx, job).await?;
        if let Some((key, fingerprint)) = key {
            sqlx::query(
                "INSERT INTO idempotency_keys (key, fingerprint, job_id, created_at)
                 VALUES (?, ?, ?, ?) ON CONFLICT (key) DO NOTHING",
            )
            .bind(key)
            .bind(fingerprint)
            .bind(&job.id)
            .bind(job.created_at)
            .execute(&mut *tx)
            .await?;
        }
        sqlx::query("UPDATE app_names_in_use SET job_id = ? WHERE client_token = ?")
            .bind(&job.id)
            .bind(client_token)
            .execute(&mut *tx)
            .await?;
        sqlx::query(
            "UPDATE jobs SET progress_token =
                 (SELECT progress_token FROM submissions WHERE client_token = ?)
             WHERE id = ? AND progress_token IS NULL",
        )
        .bind(client_token)
        .bind(&job.id)
        .execute(&mut *tx)
        .await?;
        sqlx::query("DELETE FROM submissions WHERE client_token = ?")
            .bind(client_token)
            .execute(&mut *tx)
            .await?;
        Ok(tx.commit().await?)
    }

    /// The backend started nothing for this submission: it goes, and frees its app name.
    pub async fn drop_submission(&self, client_token: &str) -> StoreResult<()> {
        let mut tx = self.pool.begin().await?;
        sqlx::query("DELETE FROM submissions WHERE client_token = ?")
            .bind(client_token)
            .execute(&mut *tx)
            .await?;
        sqlx::query("DELETE FROM app_names_in_use WHERE client_token = ? AND job_id IS NULL")
            .bind(client_token)
            .execute(&mut *tx)
            .await?;
        Ok(tx.commit().await?)
    }

    /// The job's end work is over (its notice closed, its datasets removed or left to
    /// the bucket's lifecycle rule): its app name is free for the next job.
    pub async fn release_app_name(&self, job_id: &JobId) -> StoreResult<bool> {
        let done = sqlx::query("DELETE FROM app_names_in_use WHERE job_id = ?")
            .bind(job_id)
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected() > 0)
    }

    /// The app names held by jobs whose end work a stopped process left half done: the
    /// job is final and its notice is closed (or pruned), but the name was not freed.
    /// Only for start-up, when no worker is between the two.
    pub async fn release_settled_app_names(&self) -> StoreResult<u64> {
        let done = sqlx::query(
            "DELETE FROM app_names_in_use WHERE job_id IN (
                SELECT id FROM jobs WHERE final_state IS NOT NULL
                  AND NOT EXISTS (SELECT 1 FROM notices n WHERE n.job_id = jobs.id
                                    AND n.status IN ('waiting', 'fetching', 'pending')))",
        )
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected())
    }

    /// Who holds `app_name`: the job's id (or `None` while its submission is in flight),
    /// or nothing when the name is free.
    pub async fn app_name_holder(&self, app_name: &str) -> StoreResult<Option<Option<JobId>>> {
        let row = sqlx::query("SELECT job_id FROM app_names_in_use WHERE app_name = ?")
            .bind(app_name)
            .fetch_optional(&self.pool)
            .await?;
        Ok(row.map(|r| r.try_get("job_id")).transpose()?)
    }

    /// Submissions written before `older_than` and not completed: what the reconciler
    /// settles.
    pub async fn incomplete_submissions(
        &self,
        older_than: i64,
        limit: i64,
    ) -> StoreResult<Vec<Submission>> {
        let rows = sqlx::query(
            "SELECT * FROM submissions WHERE created_at < ? ORDER BY created_at LIMIT ?",
        )
        .bind(older_than)
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        let submissions = rows
            .iter()
            .map(|r| {
                Ok(Submission {
                    client_token: r.try_get("client_token")?,
                    name: r.try_get("name")?,
                    algorithm: r.try_get("algorithm")?,
                    backend: r.try_get("backend")?,
                    idempotency: r
                        .try_get::<Option<String>, _>("idempotency_key")?
                        .zip(r.try_get::<Option<String>, _>("fingerprint")?),
                    created_at: r.try_get("created_at")?,
                    app_name: r.try_get("app_name")?,
                    progress_token: r.try_get("progress_token")?,
                })
            })
            .collect::<Result<_, sqlx::Error>>()?;
        Ok(submissions)
    }

    pub async fn purge_idempotency_keys(&self, older_than: i64) -> StoreResult<u64> {
        let done = sqlx::query("DELETE FROM idempotency_keys WHERE created_at < ?")
            .bind(older_than)
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected())
    }

    /// Opens a notice for a job, to be checked at `due_at`. A job has at most one notice:
    /// returns false when it already had one (in whatever status).
    pub async fn open_notice(&self, job_id: &JobId, due_at: i64) -> StoreResult<bool> {
        let now = now_millis();
        let done = sqlx::query(
            "INSERT INTO notices (job_id, status, due_at, created_at, updated_at)
             VALUES (?, 'waiting', ?, ?, ?) ON CONFLICT (job_id) DO NOTHING",
        )
        .bind(job_id)
        .bind(due_at)
        .bind(now)
        .bind(now)
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    /// Like [`Store::open_notice`], but only while fewer than `max_open` notices are open:
    /// the count and the insert are one statement, so concurrent callers cannot pass the
    /// bound together. False when the job already had a notice or the bound is reached.
    pub async fn open_notice_within(
        &self,
        job_id: &JobId,
        due_at: i64,
        max_open: i64,
    ) -> StoreResult<bool> {
        let now = now_millis();
        let done = sqlx::query(
            "INSERT INTO notices (job_id, status, due_at, created_at, updated_at)
             SELECT ?, 'waiting', ?, ?, ?
             WHERE (SELECT COUNT(*) FROM notices WHERE status IN ('waiting', 'fetching', 'pending')) < ?
             ON CONFLICT (job_id) DO NOTHING",
        )
        .bind(job_id)
        .bind(due_at)
        .bind(now)
        .bind(now)
        .bind(max_open)
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    pub async fn notice(&self, job_id: &JobId) -> StoreResult<Option<NoticeRow>> {
        let row = sqlx::query("SELECT * FROM notices WHERE job_id = ?")
            .bind(job_id)
            .fetch_optional(&self.pool)
            .await?;
        Ok(row.as_ref().map(NoticeRow::from_row).transpose()?)
    }

    /// Takes the open notices due by `now` and leases them until `lease_until`, so that a
    /// notice being worked on is not taken again while its work is in flight.
    pub async fn claim_due(
        &self,
        now: i64,
        lease_until: i64,
        limit: i64,
    ) -> StoreResult<Vec<NoticeRow>> {
        let rows = sqlx::query(
            "UPDATE notices SET lease_until = ?
             WHERE job_id IN (SELECT job_id FROM notices
                              WHERE status IN ('waiting', 'fetching', 'pending') AND due_at <= ?
                                AND (lease_until IS NULL OR lease_until <= ?)
                              ORDER BY due_at LIMIT ?)
             RETURNING *",
        )
        .bind(lease_until)
        .bind(now)
        .bind(now)
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        Ok(rows
            .iter()
            .map(NoticeRow::from_row)
            .collect::<Result<_, _>>()?)
    }

    /// Frees every lease. Only one process uses the store, so at start-up any lease is
    /// left over from a process that died mid-work: its notices are due again at once.
    pub async fn release_leases(&self) -> StoreResult<u64> {
        let done =
            sqlx::query("UPDATE notices SET lease_until = NULL WHERE lease_until IS NOT NULL")
                .execute(&self.pool)
                .await?;
        Ok(done.rows_affected())
    }

    /// The earliest due time of an open notice.
    pub async fn next_due(&self) -> StoreResult<Option<i64>> {
        let row = sqlx::query(
            "SELECT MIN(MAX(due_at, COALESCE(lease_until, 0))) AS due FROM notices
             WHERE status IN ('waiting', 'fetching', 'pending')",
        )
        .fetch_one(&self.pool)
        .await?;
        Ok(row.try_get("due")?)
    }

    pub async fn open_notice_count(&self) -> StoreResult<i64> {
        let row = sqlx::query(
            "SELECT COUNT(*) AS n FROM notices WHERE status IN ('waiting', 'fetching', 'pending')",
        )
        .fetch_one(&self.pool)
        .await?;
        Ok(row.try_get("n")?)
    }

    /// The job was read and is not final yet: read it again at `due_at`. False when the
    /// notice was no longer waiting (nothing changed).
    pub async fn recheck_later(
        &self,
        job_id: &JobId,
        due_at: i64,
        error: Option<&str>,
    ) -> StoreResult<bool> {
        let done = sqlx::query(
            "UPDATE notices SET due_at = ?, last_error = ?, updated_at = ?, lease_until = NULL
             WHERE job_id = ? AND status = 'waiting'",
        )
        .bind(due_at)
        .bind(error)
        .bind(now_millis())
        .bind(job_id)
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    /// The job is final: keep the notice body and mark the job, in one transaction.
    /// The lease stays: the worker that read the job delivers the notice next, and
    /// [`Store::record_attempt`] frees it. Freeing it here let the outbox claim the same
    /// notice again while it was being delivered, and Multiomix got it twice.
    ///
    /// With `fetch_first` the notice is `fetching`: the job's results are to be copied
    /// into the shared folder before it is delivered (see [`Store::record_fetch`]).
    pub async fn notice_ready(
        &self,
        job_id: &JobId,
        state: JobState,
        payload: &str,
        fetch_first: bool,
    ) -> StoreResult<bool> {
        let now = now_millis();
        let mut tx = self.pool.begin().await?;
        let done = sqlx::query(
            "UPDATE notices SET status = ?, payload = ?, final_state = ?, due_at = ?,
                    last_error = NULL, updated_at = ?
             WHERE job_id = ? AND status = 'waiting'",
        )
        .bind(if fetch_first { "fetching" } else { "pending" })
        .bind(payload)
        .bind(state.as_str())
        .bind(now)
        .bind(now)
        .bind(job_id)
        .execute(&mut *tx)
        .await?;
        if done.rows_affected() != 1 {
            return Ok(false);
        }
        sqlx::query("UPDATE jobs SET final_state = ? WHERE id = ?")
            .bind(state.as_str())
            .bind(job_id)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(true)
    }

    /// The backend does not know the job: nothing can ever be reported for it.
    pub async fn notice_abandoned(&self, job_id: &JobId, reason: &str) -> StoreResult<bool> {
        let now = now_millis();
        let mut tx = self.pool.begin().await?;
        let done = sqlx::query(
            "UPDATE notices SET status = 'abandoned', last_error = ?, updated_at = ?,
                    lease_until = NULL
             WHERE job_id = ? AND status = 'waiting'",
        )
        .bind(reason)
        .bind(now)
        .bind(job_id)
        .execute(&mut *tx)
        .await?;
        if done.rows_affected() != 1 {
            return Ok(false);
        }
        sqlx::query("UPDATE jobs SET final_state = 'UNKNOWN' WHERE id = ? AND final_state IS NULL")
            .bind(job_id)
            .execute(&mut *tx)
            .await?;
        sqlx::query("DELETE FROM app_names_in_use WHERE job_id = ?")
            .bind(job_id)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(true)
    }

    /// Records one delivery attempt of a pending notice. False when the notice was no
    /// longer pending (nothing changed).
    pub async fn record_attempt(
        &self,
        job_id: &JobId,
        attempt_started: i64,
        outcome: &AttemptRecord,
    ) -> StoreResult<bool> {
        let now = now_millis();
        let (status, due_at, error) = match outcome {
            AttemptRecord::Delivered => ("delivered", now, None),
            AttemptRecord::Refused { error } => ("refused", now, Some(error.as_str())),
            AttemptRecord::Retry { due_at, error } => ("pending", *due_at, Some(error.as_str())),
            AttemptRecord::GivenUp { error } => ("given_up", now, Some(error.as_str())),
        };
        let done = sqlx::query(
            "UPDATE notices SET status = ?, due_at = ?, last_error = ?,
                    attempts = attempts + 1,
                    first_attempt_at = COALESCE(first_attempt_at, ?),
                    updated_at = ?, lease_until = NULL
             WHERE job_id = ? AND status = 'pending'",
        )
        .bind(status)
        .bind(due_at)
        .bind(error)
        .bind(attempt_started)
        .bind(now)
        .bind(job_id)
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    /// Records one try to copy a job's results. `Fetched` makes the notice pending and
    /// due now, and keeps the lease: the worker that copied the results delivers the
    /// notice next. False when the notice was no longer fetching (nothing changed).
    pub async fn record_fetch(
        &self,
        job_id: &JobId,
        fetch_started: i64,
        outcome: &FetchRecord,
    ) -> StoreResult<bool> {
        let now = now_millis();
        let done = match outcome {
            FetchRecord::Fetched => {
                sqlx::query(
                    "UPDATE notices SET status = 'pending', due_at = ?, last_error = NULL,
                            fetch_attempts = fetch_attempts + 1,
                            first_fetch_at = COALESCE(first_fetch_at, ?),
                            results_fetched_at = ?, updated_at = ?
                     WHERE job_id = ? AND status = 'fetching'",
                )
                .bind(now)
                .bind(fetch_started)
                .bind(now)
                .bind(now)
                .bind(job_id)
                .execute(&self.pool)
                .await?
            }
            FetchRecord::Retry { error, .. } | FetchRecord::GivenUp { error } => {
                let (status, due_at) = match outcome {
                    FetchRecord::Retry { due_at, .. } => ("fetching", *due_at),
                    _ => ("given_up", now),
                };
                sqlx::query(
                    "UPDATE notices SET status = ?, due_at = ?, last_error = ?,
                            fetch_attempts = fetch_attempts + 1,
                            first_fetch_at = COALESCE(first_fetch_at, ?),
                            updated_at = ?, lease_until = NULL
                     WHERE job_id = ? AND status = 'fetching'",
                )
                .bind(status)
                .bind(due_at)
                .bind(error)
                .bind(fetch_started)
                .bind(now)
                .bind(job_id)
                .execute(&self.pool)
                .await?
            }
        };
        Ok(done.rows_affected() == 1)
    }

    /// Keeps a claimed notice with its worker until `lease_until`: a download of results
    /// may take longer than the lease a claim gives.
    pub async fn extend_lease(&self, job_id: &JobId, lease_until: i64) -> StoreResult<bool> {
        let done = sqlx::query(
            "UPDATE notices SET lease_until = MAX(COALESCE(lease_until, 0), ?)
             WHERE job_id = ? AND status IN ('waiting', 'fetching', 'pending')",
        )
        .bind(lease_until)
        .bind(job_id)
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    /// Closes every connection, waiting for those in use to be given back. The store is
    /// unusable afterwards; another `connect` opens the same file again.
    pub async fn close(&self) {
        self.pool.close().await;
    }

    fn pool(&self) -> &SqlitePool {
        &self.pool
    }
}

/// A store in a folder of its own (inside one that does not exist yet), for the store's
/// tests; the folder goes with the returned guard.
#[cfg(test)]
pub(crate) async fn temporary() -> (Store, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite:{}/nested/db.sqlite", dir.path().display());
    (Store::connect(&url).await.unwrap(), dir)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(raw: &str) -> JobId {
        JobId::parse(raw).unwrap()
    }

    use super::temporary as store;

    fn job(raw: &str) -> JobRecord {
        JobRecord {
            id: id(raw),
            name: "n".into(),
            algorithm: Some(1),
            backend: BackendKind::Emr,
            created_at: 1,
            adopted: false,
            app_name: Some("BBHA_1".into()),
        }
    }

    #[tokio::test]
    async fn the_database_and_its_folder_are_created_and_survive_reopening() {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite:{}/a/b/db.sqlite", dir.path().display());
        let s = Store::connect(&url).await.unwrap();
        assert!(s.is_empty().await.unwrap());
        s.record_job(&job("j1")).await.unwrap();
        s.open_notice(&id("j1"), 5).await.unwrap();
        s.close().await;
        let s = Store::connect(&url).await.unwrap();
        assert!(!s.is_empty().await.unwrap());
        assert_eq!(s.notice(&id("j1")).await.unwrap().unwrap().due_at, 5);
    }

    /// A 201 or a 204 is sent once the job or its notice is committed: every connection
    /// of the pool, not only the first, must wait for the disk on commit (WAL with
    /// `synchronous=FULL` syncs the log at each commit; `NORMAL` only at checkpoints).
    #[tokio::test]
    async fn every_connection_of_the_pool_commits_durably_in_wal() {
        let (s, _d) = store().await;
        let mut held = Vec::new();
        for _ in 0..4 {
            held.push(s.pool().acquire().await.unwrap());
        }
        for conn in &mut held {
            let synchronous: i64 = sqlx::query_scalar("PRAGMA synchronous")
                .fetch_one(&mut **conn)
                .await
                .unwrap();
            assert_eq!(synchronous, 2, "PRAGMA synchronous: 2 is FULL");
            let journal: String = sqlx::query_scalar("PRAGMA journal_mode")
                .fetch_one(&mut **conn)
                .await
                .unwrap();
            assert_eq!(journal, "wal");
        }
    }

    #[tokio::test]
    async fn a_job_gets_at_most_one_notice() {
        let (s, _d) = store().await;
        assert!(s.open_notice(&id("j1"), 10).await.unwrap());
        assert!(!s.open_notice(&id("j1"), 20).await.unwrap());
        assert_eq!(s.notice(&id("j1")).await.unwrap().unwrap().due_at, 10);
    }

    #[tokio::test]
    async fn claimed_notices_are_not_claimed_again_until_their_lease_ends() {
        let (s, _d) = store().await;
        s.open_notice(&id("j1"), 100).await.unwrap();
        s.open_notice(&id("j2"), 300).await.unwrap();
        let first = s.claim_due(200, 1_000, 10).await.unwrap();
        assert_eq!(first.len(), 1);
        assert_eq!(first[0].job_id, "j1");
        assert!(s.claim_due(200, 1_000, 10).await.unwrap().is_empty());
        let after_lease = s.claim_due(1_000, 2_000, 10).await.unwrap();
        let mut ids: Vec<_> = after_lease.iter().map(|n| n.job_id.as_str()).collect();
        ids.sort();
        assert_eq!(ids, ["j1", "j2"]);
        // A process that died mid-work leaves leases behind; start-up frees them.
        assert!(s.claim_due(1_500, 3_000, 10).await.unwrap().is_empty());
        assert_eq!(s.release_leases().await.unwrap(), 2);
        assert_eq!(s.claim_due(1_500, 3_000, 10).await.unwrap().len(), 2);
    }

    #[tokio::test]
    async fn a_ready_notice_marks_the_job_final_and_leaves_the_reconcilers_list() {
        let (s, _d) = store().await;
        s.record_job(&job("j1")).await.unwrap();
        s.record_job(&job("j2")).await.unwrap();
        assert_eq!(s.unfinished_jobs(10).await.unwrap(), ["j1", "j2"]);
        s.open_notice(&id("j1"), 0).await.unwrap();
        assert_eq!(s.unfinished_jobs(10).await.unwrap(), ["j2"]);
        s.notice_ready(&id("j1"), JobState::Completed, "{}", false)
            .await
            .unwrap();
        let n = s.notice(&id("j1")).await.unwrap().unwrap();
        assert_eq!(n.status, NoticeStatus::Pending);
        assert_eq!(n.final_state.map(FinalState::as_str), Some("COMPLETED"));
    }

    #[tokio::test]
    async fn a_notice_made_ready_stays_with_the_worker_that_delivers_it() {
        let (s, _d) = store().await;
        let t = now_millis();
        let lease = t + 60_000;
        s.open_notice(&id("j1"), t).await.unwrap();
        assert_eq!(s.claim_due(t, lease, 10).await.unwrap().len(), 1);
        s.notice_ready(&id("j1"), JobState::Completed, "{}", false)
            .await
            .unwrap();
        // Due at once now, but still leased: another claim must not take it.
        let later = now_millis() + 1_000;
        assert!(s
            .claim_due(later, later + 60_000, 10)
            .await
            .unwrap()
            .is_empty());
        let retry = AttemptRecord::Retry {
            due_at: later,
            error: "503".into(),
        };
        s.record_attempt(&id("j1"), t, &retry).await.unwrap();
        // The attempt frees the lease.
        assert_eq!(
            s.claim_due(later, later + 60_000, 10).await.unwrap().len(),
            1
        );
    }

    #[tokio::test]
    async fn attempts_are_counted_and_the_first_attempt_time_is_kept() {
        let (s, _d) = store().await;
        s.open_notice(&id("j1"), 0).await.unwrap();
        s.notice_ready(&id("j1"), JobState::Failed, "{}", false)
            .await
            .unwrap();
        let retry = AttemptRecord::Retry {
            due_at: 50,
            error: "503".into(),
        };
        s.record_attempt(&id("j1"), 7, &retry).await.unwrap();
        s.record_attempt(&id("j1"), 9, &retry).await.unwrap();
        let n = s.notice(&id("j1")).await.unwrap().unwrap();
        assert_eq!((n.attempts, n.first_attempt_at, n.due_at), (2, Some(7), 50));
        s.record_attempt(&id("j1"), 11, &AttemptRecord::Delivered)
            .await
            .unwrap();
        let n = s.notice(&id("j1")).await.unwrap().unwrap();
        assert_eq!(n.status, NoticeStatus::Delivered);
        assert_eq!(n.attempts, 3);
        assert_eq!(s.open_notice_count().await.unwrap(), 0);
        // A delivered notice is closed: later attempts do not change it, and say so.
        assert!(!s.record_attempt(&id("j1"), 12, &retry).await.unwrap());
        assert_eq!(
            s.notice(&id("j1")).await.unwrap().unwrap().status,
            NoticeStatus::Delivered
        );
    }

    #[tokio::test]
    async fn state_changes_say_whether_they_changed_the_notice() {
        let (s, _d) = store().await;
        s.open_notice(&id("j1"), 0).await.unwrap();
        assert!(s.recheck_later(&id("j1"), 5, None).await.unwrap());
        assert!(s
            .notice_ready(&id("j1"), JobState::Failed, "{}", false)
            .await
            .unwrap());
        // Another worker's copy, still 'waiting', changes nothing any more.
        assert!(!s
            .notice_ready(&id("j1"), JobState::Failed, "{}", false)
            .await
            .unwrap());
        assert!(!s.recheck_later(&id("j1"), 5, None).await.unwrap());
        assert!(!s.notice_abandoned(&id("j1"), "x").await.unwrap());
        assert!(s
            .record_attempt(&id("j1"), 1, &AttemptRecord::Delivered)
            .await
            .unwrap());
        assert!(!s
            .record_attempt(&id("j1"), 2, &AttemptRecord::Delivered)
            .await
            .unwrap());
        assert!(!s
            .record_attempt(&id("nobody"), 2, &AttemptRecord::Delivered)
            .await
            .unwrap());
    }

    #[tokio::test]
    async fn a_notice_opens_only_while_fewer_than_the_bound_are_open() {
        let (s, _d) = store().await;
        assert!(s.open_notice_within(&id("j1"), 0, 2).await.unwrap());
        assert!(s.open_notice_within(&id("j2"), 0, 2).await.unwrap());
        assert!(!s.open_notice_within(&id("j3"), 0, 2).await.unwrap());
        assert!(
            !s.open_notice_within(&id("j1"), 0, 10).await.unwrap(),
            "one per job"
        );
        s.notice_ready(&id("j1"), JobState::Completed, "{}", false)
            .await
            .unwrap();
        s.record_attempt(&id("j1"), 1, &AttemptRecord::Delivered)
            .await
            .unwrap();
        assert!(s.open_notice_within(&id("j3"), 0, 2).await.unwrap());
        assert_eq!(s.open_notice_count().await.unwrap(), 2);
    }

    #[tokio::test]
    async fn closed_notices_are_pruned_after_their_retention_and_open_ones_never() {
        let (s, _d) = store().await;
        s.record_job(&job("j1")).await.unwrap();
        s.open_notice(&id("j1"), 0).await.unwrap();
        s.open_notice(&id("j2"), 0).await.unwrap();
        s.notice_ready(&id("j1"), JobState::Completed, "{}", false)
            .await
            .unwrap();
        s.record_attempt(&id("j1"), 1, &AttemptRecord::Delivered)
            .await
            .unwrap();
        assert_eq!(s.purge_closed_notices(0).await.unwrap(), 0);
        assert_eq!(
            s.purge_closed_notices(now_millis() + 1_000).await.unwrap(),
            1
        );
        assert!(s.notice(&id("j1")).await.unwrap().is_none());
        assert!(
            s.notice(&id("j2")).await.unwrap().is_some(),
            "open notices stay"
        );
        let id = JobId::parse("j1").unwrap();
        assert_eq!(
            s.job_final_state(&id).await.unwrap(),
            Some(Some(FinalState::Ended(JobState::Completed)))
        );
        assert_eq!(
            s.job_final_state(&JobId::parse("j9").unwrap())
                .await
                .unwrap(),
            None
        );
    }

    #[tokio::test]
    async fn idempotency_keys_map_to_their_job_and_expire() {
        let (s, _d) = store().await;
        s.begin_submission(&submission("t1", "BBHA_1"))
            .await
            .unwrap();
        s.complete_submission("t1", &job("j1"), Some(("k1", "fp")))
            .await
            .unwrap();
        assert_eq!(
            s.idempotent_job("k1").await.unwrap(),
            Some((id("j1"), "fp".to_string()))
        );
        assert_eq!(s.purge_idempotency_keys(0).await.unwrap(), 0);
        assert_eq!(s.purge_idempotency_keys(2).await.unwrap(), 1);
        assert_eq!(s.idempotent_job("k1").await.unwrap(), None);
    }

    #[tokio::test]
    async fn a_notice_made_ready_stays_leased_until_its_delivery_attempt_is_recorded() {
        let (s, _d) = store().await;
        s.open_notice(&id("j1"), 0).await.unwrap();
        let now = now_millis();
        assert_eq!(s.claim_due(now, now + 60_000, 10).await.unwrap().len(), 1);
        s.notice_ready(&id("j1"), JobState::Completed, "{}", false)
            .await
            .unwrap();
        // Due now, but its worker is delivering it: no second worker takes it.
        assert!(s
            .claim_due(now_millis(), now + 60_000, 10)
            .await
            .unwrap()
            .is_empty());
        let retry = AttemptRecord::Retry {
            due_at: 0,
            error: "503".into(),
        };
        s.record_attempt(&id("j1"), now, &retry).await.unwrap();
        assert_eq!(
            s.claim_due(now_millis(), now + 60_000, 10)
                .await
                .unwrap()
                .len(),
            1
        );
    }

    #[tokio::test]
    async fn a_fetching_notice_is_open_and_becomes_pending_only_through_a_fetched_record() {
        let (s, _d) = store().await;
        s.record_job(&job("j1")).await.unwrap();
        assert_eq!(
            s.job(&JobId::parse("j1").unwrap())
                .await
                .unwrap()
                .unwrap()
                .app_name
                .as_deref(),
            Some("BBHA_1")
        );
        let now = now_millis();
        s.open_notice(&id("j1"), now).await.unwrap();
        assert_eq!(s.claim_due(now, now + 60_000, 10).await.unwrap().len(), 1);
        assert!(s
            .notice_ready(&id("j1"), JobState::Completed, "{}", true)
            .await
            .unwrap());
        let n = s.notice(&id("j1")).await.unwrap().unwrap();
        assert_eq!(n.status, NoticeStatus::Fetching);
        assert!(n.status.is_open());
        assert_eq!(s.open_notice_count().await.unwrap(), 1);
        // A delivery attempt cannot close a notice whose results are not in place.
        assert!(!s
            .record_attempt(&id("j1"), now, &AttemptRecord::Delivered)
            .await
            .unwrap());
        let retry = FetchRecord::Retry {
            due_at: now + 5,
            error: "no result.json".into(),
        };
        assert!(s.record_fetch(&id("j1"), now, &retry).await.unwrap());
        // The failed try frees the lease; the notice is claimed again when due.
        let n = s.notice(&id("j1")).await.unwrap().unwrap();
        assert_eq!(
            (n.status, n.fetch_attempts, n.first_fetch_at, n.attempts),
            (NoticeStatus::Fetching, 1, Some(now), 0)
        );
        assert_eq!(n.last_error.as_deref(), Some("no result.json"));
        assert_eq!(
            s.claim_due(now + 5, now + 60_000, 10).await.unwrap().len(),
            1
        );
        assert!(s
            .record_fetch(&id("j1"), now + 7, &FetchRecord::Fetched)
            .await
            .unwrap());
        let n = s.notice(&id("j1")).await.unwrap().unwrap();
        assert_eq!(
            (n.status, n.fetch_attempts, n.first_fetch_at, n.last_error),
            (NoticeStatus::Pending, 2, Some(now), None)
        );
        // Still leased by the worker that fetched: it delivers next.
        assert!(s
            .claim_due(now_millis(), now + 60_000, 10)
            .await
            .unwrap()
            .is_empty());
        assert!(!s
            .record_fetch(&id("j1"), now, &FetchRecord::Fetched)
            .await
            .unwrap());
        assert!(s
            .record_attempt(&id("j1"), now, &AttemptRecord::Delivered)
            .await
            .unwrap());
    }

    #[tokio::test]
    async fn a_fetch_given_up_closes_the_notice() {
        let (s, _d) = store().await;
        s.open_notice(&id("j1"), 0).await.unwrap();
        s.notice_ready(&id("j1"), JobState::Completed, "{}", true)
            .await
            .unwrap();
        let given_up = FetchRecord::GivenUp {
            error: "AccessDenied".into(),
        };
        assert!(s.record_fetch(&id("j1"), 1, &given_up).await.unwrap());
        let n = s.notice(&id("j1")).await.unwrap().unwrap();
        assert_eq!(n.status, NoticeStatus::GivenUp);
        assert_eq!(s.open_notice_count().await.unwrap(), 0);
    }

    fn submission(token: &str, app: &str) -> Submission {
        Submission {
            client_token: token.into(),
            name: "n".into(),
            algorithm: Some(1),
            backend: BackendKind::Emr,
            idempotency: None,
            created_at: 1,
            app_name: Some(app.into()),
            progress_token: None,
        }
    }

    #[tokio::test]
    async fn of_concurrent_submissions_for_one_app_name_exactly_one_is_written() {
        let (s, _d) = store().await;
        let tries = (0..8).map(|i| {
            let s = s.clone();
            tokio::spawn(async move {
                s.begin_submission(&submission(&format!("t{i}"), "BBHA_1"))
                    .await
            })
        });
        let mut written = 0;
        for t in tries {
            if t.await.unwrap().unwrap() == Begun::Written {
                written += 1;
            }
        }
        assert_eq!(written, 1);
        assert_eq!(s.incomplete_submissions(10, 10).await.unwrap().len(), 1);
    }

    #[tokio::test]
    async fn an_app_name_is_held_from_the_submission_until_the_jobs_end_work_is_over() {
        let (s, _d) = store().await;
        assert_eq!(
            s.begin_submission(&submission("t1", "BBHA_1"))
                .await
                .unwrap(),
            Begun::Written
        );
        // The same client token again (an Idempotency-Key replay) is the same job.
        assert_eq!(
            s.begin_submission(&submission("t1", "BBHA_1"))
                .await
                .unwrap(),
            Begun::Written
        );
        assert_eq!(
            s.begin_submission(&submission("t2", "BBHA_1"))
                .await
                .unwrap(),
            Begun::AppNameInUse { job_id: None }
        );
        // Nothing started: the name is free.
        s.drop_submission("t1").await.unwrap();
        assert_eq!(s.app_name_holder("BBHA_1").await.unwrap(), None);

        s.begin_submission(&submission("t2", "BBHA_1"))
            .await
            .unwrap();
        s.complete_submission("t2", &job("j2"), None).await.unwrap();
        assert_eq!(
            s.begin_submission(&submission("t3", "BBHA_1"))
                .await
                .unwrap(),
            Begun::AppNameInUse {
                job_id: Some(id("j2"))
            }
        );
        // Ended and notified, but the clean-up not done (a stopped process): held until
        // start-up frees it.
        s.open_notice(&id("j2"), 0).await.unwrap();
        s.notice_ready(&id("j2"), JobState::Completed, "{}", false)
            .await
            .unwrap();
        assert_eq!(
            s.release_settled_app_names().await.unwrap(),
            0,
            "the notice is open"
        );
        s.record_attempt(&id("j2"), 1, &AttemptRecord::Delivered)
            .await
            .unwrap();
        assert_eq!(
            s.app_name_holder("BBHA_1").await.unwrap(),
            Some(Some(id("j2")))
        );
        assert_eq!(s.release_settled_app_names().await.unwrap(), 1);
        assert_eq!(
            s.begin_submission(&submission("t3", "BBHA_1"))
                .await
                .unwrap(),
            Begun::Written
        );

        // A job the backend no longer knows frees its name at once.
        s.complete_submission("t3", &job("j3"), None).await.unwrap();
        s.mark_job_final(&id("j3"), FinalState::Unknown)
            .await
            .unwrap();
        assert_eq!(s.app_name_holder("BBHA_1").await.unwrap(), None);
    }

    /// The names the store has always written: rows of earlier versions read unchanged.
    const STORED_NAMES: [(&str, BackendKind); 5] = [
        ("emr", BackendKind::Emr),
        ("emr-serverless", BackendKind::EmrServerless),
        ("emr-ec2", BackendKind::EmrEc2),
        ("livy", BackendKind::Livy),
        ("local", BackendKind::Local),
    ];

    #[tokio::test]
    async fn every_backend_kind_is_kept_under_its_name_and_read_back_as_itself() {
        let (s, _d) = store().await;
        assert_eq!(STORED_NAMES.len(), BackendKind::ALL.len());
        for (i, (name, kind)) in STORED_NAMES.into_iter().enumerate() {
            let job_id = id(&format!("j{i}"));
            let token = format!("t{i}");
            s.record_job(&JobRecord {
                backend: kind,
                ..job(job_id.as_str())
            })
            .await
            .unwrap();
            s.begin_submission(&Submission {
                backend: kind,
                ..submission(&token, &format!("BBHA_{i}"))
            })
            .await
            .unwrap();

            let stored: (String, String) = sqlx::query_as(
                "SELECT j.backend, s.backend FROM jobs j, submissions s
                 WHERE j.id = ? AND s.client_token = ?",
            )
            .bind(job_id.as_str())
            .bind(&token)
            .fetch_one(s.pool())
            .await
            .unwrap();
            assert_eq!(stored, (name.to_owned(), name.to_owned()), "{kind:?}");

            let read = s.job(&job_id).await.unwrap().unwrap();
            assert_eq!(read.backend, kind);
            let submissions = s.incomplete_submissions(i64::MAX, 10).await.unwrap();
            let read = submissions
                .iter()
                .find(|r| r.client_token == token)
                .unwrap();
            assert_eq!(read.backend, kind);
        }
        let page = s.jobs_page(0, 10).await.unwrap();
        let mut kinds: Vec<BackendKind> = page.iter().map(|o| o.job.backend).collect();
        kinds.sort_by_key(|k| k.as_str());
        let mut expected = BackendKind::ALL.to_vec();
        expected.sort_by_key(|k| k.as_str());
        assert_eq!(kinds, expected);
    }

    #[tokio::test]
    async fn a_row_naming_no_backend_fails_to_read_with_an_error_naming_the_value() {
        let (s, _d) = store().await;
        s.record_job(&job("j1")).await.unwrap();
        s.begin_submission(&submission("t1", "BBHA_1"))
            .await
            .unwrap();
        sqlx::query("UPDATE jobs SET backend = 'emr-eks'")
            .execute(s.pool())
            .await
            .unwrap();
        sqlx::query("UPDATE submissions SET backend = 'dataproc'")
            .execute(s.pool())
            .await
            .unwrap();

        let errors = [
            s.job(&id("j1")).await.unwrap_err().to_string(),
            s.jobs_page(0, 10).await.unwrap_err().to_string(),
        ];
        for text in errors {
            assert!(
                text.contains(r#""emr-eks" is not the name of a backend"#),
                "{text}"
            );
        }
        let text = s
            .incomplete_submissions(i64::MAX, 10)
            .await
            .unwrap_err()
            .to_string();
        assert!(
            text.contains(r#""dataproc" is not the name of a backend"#),
            "{text}"
        );
    }

    #[tokio::test]
    async fn a_notice_or_key_with_a_value_the_store_never_writes_fails_to_read() {
        let (s, _d) = store().await;
        s.open_notice(&id("j1"), 0).await.unwrap();
        s.begin_submission(&submission("t1", "BBHA_1"))
            .await
            .unwrap();
        s.complete_submission("t1", &job("j1"), Some(("k1", "fp")))
            .await
            .unwrap();
        sqlx::query("UPDATE notices SET status = 'lost'")
            .execute(s.pool())
            .await
            .unwrap();
        sqlx::query("UPDATE idempotency_keys SET job_id = ''")
            .execute(s.pool())
            .await
            .unwrap();

        let errors = [
            s.notice(&id("j1")).await.unwrap_err().to_string(),
            s.jobs_page(0, 10).await.unwrap_err().to_string(),
        ];
        for text in errors {
            assert!(text.contains(r#""lost" is not a notice status"#), "{text}");
        }
        let text = s.idempotent_job("k1").await.unwrap_err().to_string();
        assert!(text.contains(r#""" is not a job id"#), "{text}");
    }

    #[test]
    fn every_notice_status_reads_back_as_itself() {
        for status in NoticeStatus::ALL {
            assert_eq!(NoticeStatus::parse(status.as_str()), Some(status));
        }
        assert_eq!(NoticeStatus::parse("done"), None);
    }
}
