-- Runs of the local spark-submit backend. The `jobs` table holds every job of every
-- backend; this one holds what only the local backend knows: the command, the process
-- and the state, which for EMR live in EMR.
CREATE TABLE local_runs (
    id             TEXT PRIMARY KEY NOT NULL,
    name           TEXT NOT NULL,
    client_token   TEXT NOT NULL,
    state          TEXT NOT NULL,         -- PENDING, RUNNING, CANCEL_PENDING, COMPLETED, FAILED, CANCELLED
    command        TEXT NOT NULL,         -- JSON: program, args, env
    log_path       TEXT NOT NULL,
    pid            INTEGER,               -- also the process group id
    process_start  INTEGER,               -- start time of pid (Linux /proc), to tell it from a reused pid
    state_details  TEXT,
    failure_reason TEXT,
    created_at     INTEGER NOT NULL,      -- unix milliseconds
    started_at     INTEGER,
    finished_at    INTEGER
);
-- The same client token twice is the same job.
CREATE UNIQUE INDEX local_runs_client_token ON local_runs (client_token);
-- Newest first, for listing and its keyset pagination.
CREATE INDEX local_runs_newest ON local_runs (created_at DESC, id DESC);
-- What is left to do at start-up.
CREATE INDEX local_runs_unfinished ON local_runs (state)
    WHERE state IN ('PENDING', 'RUNNING', 'CANCEL_PENDING');
