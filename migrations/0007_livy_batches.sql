-- Batches of the Livy backend. Livy's batch ids are small integers that start again at 0
-- when Livy restarts without session recovery, so a job's id is the service's own (made
-- from the submission's client token) and the batch id is only where the job was last
-- seen. Livy also drops a finished batch a while after it ends
-- (`livy.server.session.state-retain.sec`), so the final state is kept here once read.
CREATE TABLE livy_batches (
    job_id              TEXT PRIMARY KEY NOT NULL,
    batch_id            INTEGER NOT NULL,      -- Livy's id when the batch was made
    batch_name          TEXT NOT NULL,         -- <prefix>:<job id>:<app-name>:<job name>
    name                TEXT NOT NULL,         -- the job's name
    app_name            TEXT,
    app_id              TEXT,                  -- YARN's application id, once Livy knows it
    driver_log_url      TEXT,
    spark_ui_url        TEXT,
    livy_state          TEXT NOT NULL,         -- the state Livy last answered
    state               TEXT NOT NULL,         -- as the API shows it
    state_details       TEXT,
    failure_reason      TEXT,
    cancel_requested_at INTEGER,
    adopted             INTEGER NOT NULL DEFAULT 0,  -- found in Livy, not started by this store
    created_at          INTEGER NOT NULL,      -- unix milliseconds
    finished_at         INTEGER,
    updated_at          INTEGER NOT NULL
);
-- Newest first, for listing and its keyset pagination.
CREATE INDEX livy_batches_newest ON livy_batches (created_at DESC, job_id DESC);
-- The batches still to be read from Livy.
CREATE INDEX livy_batches_unfinished ON livy_batches (state)
    WHERE state NOT IN ('COMPLETED', 'FAILED', 'CANCELLED');
