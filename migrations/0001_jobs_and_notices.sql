-- Jobs this service started (or adopted after losing its store).
CREATE TABLE jobs (
    id          TEXT PRIMARY KEY NOT NULL,
    name        TEXT NOT NULL,
    algorithm   INTEGER,
    backend     TEXT NOT NULL,
    created_at  INTEGER NOT NULL,          -- unix milliseconds
    final_state TEXT,                      -- set once the job-end notice is due
    adopted     INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX jobs_unfinished ON jobs (final_state) WHERE final_state IS NULL;

-- Idempotency-Key of POST /job -> the job it started.
CREATE TABLE idempotency_keys (
    key         TEXT PRIMARY KEY NOT NULL,
    fingerprint TEXT NOT NULL,             -- hash of the request body
    job_id      TEXT NOT NULL,
    created_at  INTEGER NOT NULL
);
CREATE INDEX idempotency_keys_age ON idempotency_keys (created_at);

-- The outbox of job-end notices: one row per job, kept after delivery as a record.
--   waiting   the job was not final when last read; read again at due_at
--   pending   the job is final; the notice (payload) is to be delivered at due_at
--   delivered Multiomix answered 2xx
--   refused   Multiomix answered a final 4xx (404: experiment no longer in process)
--   given_up  not delivered within NOTIFY_GIVE_UP_AFTER
--   abandoned the backend does not know the job
CREATE TABLE notices (
    job_id           TEXT PRIMARY KEY NOT NULL,
    status           TEXT NOT NULL,
    due_at           INTEGER NOT NULL,     -- unix milliseconds
    lease_until      INTEGER,              -- being worked on until then
    payload          TEXT,                 -- JSON body, once the job is final
    final_state      TEXT,
    attempts         INTEGER NOT NULL DEFAULT 0,
    first_attempt_at INTEGER,
    last_error       TEXT,
    created_at       INTEGER NOT NULL,
    updated_at       INTEGER NOT NULL
);
CREATE INDEX notices_due ON notices (due_at) WHERE status IN ('waiting', 'pending');
