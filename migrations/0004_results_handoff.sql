-- The `app-name` argument of a job: the folder its results go to, and the prefix of its
-- staged datasets. Kept so that, with DATA_STAGING=s3, the results of a completed job can
-- be copied into the shared results folder before its notice is sent.
ALTER TABLE jobs ADD COLUMN app_name TEXT;
ALTER TABLE submissions ADD COLUMN app_name TEXT;

-- A notice gains one status, between 'waiting' and 'pending':
--   fetching  the job is COMPLETED and its results are being copied from S3 into the
--             shared results folder; the notice becomes 'pending' once they are there.
-- Its tries are counted apart from the deliveries.
ALTER TABLE notices ADD COLUMN fetch_attempts INTEGER NOT NULL DEFAULT 0;
ALTER TABLE notices ADD COLUMN first_fetch_at INTEGER;
ALTER TABLE notices ADD COLUMN results_fetched_at INTEGER;

DROP INDEX notices_due;
CREATE INDEX notices_due ON notices (due_at) WHERE status IN ('waiting', 'fetching', 'pending');
