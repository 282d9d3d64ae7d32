//! multiomix-aws-emr: runs Multiomix feature-selection Spark jobs and tells Multiomix
//! when they end.
//!
//! - [`config`]: every environment variable, defined once in [`config::VARIABLES`], read
//!   and checked once at start-up.
//! - [`job`]: the job model — validation of Multiomix's requests, states, and the JSON
//!   the API and the notices carry.
//! - [`backend`]: where jobs run, behind the [`backend::JobBackend`] trait: EMR on EKS
//!   ([`backend::emr::eks`]), EMR Serverless ([`backend::emr::serverless`]), steps on an
//!   EMR cluster on EC2 ([`backend::emr::ec2`]) or local spark-submit processes
//!   ([`backend::local`]); what they share (the job package in S3, spark-submit options,
//!   reads in batches) is in [`backend::spark`] and [`backend::batch`].
//! - [`api`]: the HTTP routes and the layers every request passes.
//! - [`start`]: starting a job (idempotency, staging, the submission, the backend's
//!   start and its record), what `POST /job` calls.
//! - [`store`]: the embedded SQLite store of jobs, idempotency keys and the notice outbox.
//! - [`notify`]: the outbox worker that delivers job-end notices to Multiomix.
//! - [`staging`]: with `DATA_STAGING=s3`, datasets up to S3 before a job, results down
//!   into the shared folder before its notice.
//! - [`progress`]: the running jobs' progress reports, read, checked and kept for
//!   `GET /job/{id}` and the admin pages.
//! - [`retry`]: the backoff every retried step shares.
//! - [`reconcile`]: reads unfinished jobs from the backend so no notice depends on the
//!   sidecar's callback alone.
//! - [`app`]: builds the whole service, binds it, runs it until shutdown.
//! - [`telemetry`]: logs and Prometheus metrics.

pub mod api;
pub mod app;
pub mod backend;
pub mod config;
pub mod job;
pub mod notify;
pub mod progress;
pub mod reconcile;
pub mod retry;
pub mod staging;
pub mod start;
pub mod store;
pub mod telemetry;
