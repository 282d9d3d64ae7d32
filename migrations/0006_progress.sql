-- Progress of a running job, as the job itself reports it (see src/progress.rs).
--
-- The service draws a random token per job at submission and hands it to the job's
-- driver (PROGRESS_TOKEN); a report is accepted only with its job's token, so a job
-- cannot report for another. The submission keeps it until the job is recorded.
ALTER TABLE submissions ADD COLUMN progress_token TEXT;
ALTER TABLE jobs ADD COLUMN progress_token TEXT;
-- 1 once the service has read the job's last report after its end (and removed the
-- report's file or object): the job is not read again.
ALTER TABLE jobs ADD COLUMN progress_done INTEGER NOT NULL DEFAULT 0;

-- The last accepted report of each job, so progress survives a restart.
CREATE TABLE progress (
    job_id            TEXT PRIMARY KEY NOT NULL,
    algorithm         TEXT NOT NULL,       -- `bbha` or `blind_search`, as the job says
    started_at        REAL NOT NULL,       -- unix seconds: the search's start
    updated_at        REAL NOT NULL,       -- unix seconds: the report's time
    iteration         INTEGER NOT NULL,
    iterations        INTEGER NOT NULL,
    best_fitness      REAL,                -- NULL when the job had no finite fitness
    molecules         INTEGER NOT NULL,
    evaluations_done  INTEGER NOT NULL,
    evaluations_total INTEGER NOT NULL,
    history           TEXT NOT NULL,       -- JSON array of the report's history points
    read_at           INTEGER NOT NULL     -- unix milliseconds: when it was accepted
);

-- What the progress reader goes through: the jobs with a token not read for the last time.
CREATE INDEX jobs_progress_open ON jobs (created_at)
    WHERE progress_token IS NOT NULL AND progress_done = 0;
