-- A job submission, written before the backend is asked to start the job and deleted
-- when the job is recorded in `jobs`. A row left behind means the process stopped (or
-- the store failed) between the two: the reconciler asks the backend, by client token,
-- whether the job started, and records it or drops the row.
CREATE TABLE submissions (
    client_token    TEXT PRIMARY KEY NOT NULL,
    name            TEXT NOT NULL,
    algorithm       INTEGER,
    backend         TEXT NOT NULL,
    idempotency_key TEXT,
    fingerprint     TEXT,
    created_at      INTEGER NOT NULL   -- unix milliseconds
);
