-- One open job per app-name. An app-name names the job's staged datasets
-- (`datasets/<app-name>/`), its results in S3 (`results/<app-name>/`) and its folder in
-- the shared results folder, so two jobs open at once under one name would delete or
-- read each other's files. A row here holds the name from the moment a submission is
-- written (before its datasets are uploaded) until the job's end work is over: its
-- notice delivered, refused or given up, and its staged datasets removed. The primary
-- key is what refuses a second holder, so two concurrent requests cannot both pass.
CREATE TABLE app_names_in_use (
    app_name     TEXT PRIMARY KEY NOT NULL,
    client_token TEXT NOT NULL,          -- the submission that took the name
    job_id       TEXT,                   -- the job, once the backend started it
    created_at   INTEGER NOT NULL        -- unix milliseconds
);
CREATE INDEX app_names_in_use_job ON app_names_in_use (job_id);
CREATE INDEX app_names_in_use_token ON app_names_in_use (client_token);

-- The jobs open when this table was made hold their names (the newest, should two share
-- one), and so do submissions in flight.
INSERT OR IGNORE INTO app_names_in_use (app_name, client_token, job_id, created_at)
    SELECT app_name, 'job:' || id, id, created_at FROM jobs
    WHERE app_name IS NOT NULL
      AND (final_state IS NULL
           OR EXISTS (SELECT 1 FROM notices n WHERE n.job_id = jobs.id
                        AND n.status IN ('waiting', 'fetching', 'pending')))
    ORDER BY created_at DESC;
INSERT OR IGNORE INTO app_names_in_use (app_name, client_token, job_id, created_at)
    SELECT app_name, client_token, NULL, created_at FROM submissions
    WHERE app_name IS NOT NULL;
