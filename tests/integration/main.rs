//! The integration tests, in one binary: the service on real HTTP in front of each
//! backend's peer (fakes that speak the real wire protocols, moto's servers, a fake or a
//! real spark-submit, a Spark standalone cluster), the real binary as a process, the pod
//! scripts and the deployment files. One binary because the build links each test binary
//! on its own; `tests/body_memory.rs` stays apart, as it replaces the global allocator.
//!
//! Each module is one topic; `cargo nextest run -E 'test(/^livy::/)'` runs one of them.
//! [`common`] holds the harness every module starts the service with.

mod common;
mod conformance;
mod pod_scripts;

mod admin_pages;
mod api;
mod auth;
mod contract_edges;
mod deploy_manifests;
mod emr_ec2;
mod emr_serverless;
mod hostile;
mod idempotency;
mod init_script;
mod livy;
mod local_backend;
mod metrics;
mod moto;
mod notices;
mod openapi;
mod process;
mod properties;
mod results_handoff;
mod sidecar_script;
mod spark_jobs;
mod staging;
mod standalone_cluster;
