//! Stand-ins for the two services multiomix-aws-emr talks to, speaking their real wire
//! protocols on 127.0.0.1, for integration tests and benchmarks:
//!
//! - [`emr`]: [`FakeEmr`], the emr-containers (EMR on EKS) REST-JSON API that
//!   aws-sdk-emrcontainers calls, with scriptable job states, errors and delays;
//! - [`emr_serverless`]: [`FakeEmrServerless`], the emr-serverless REST-JSON API that
//!   aws-sdk-emrserverless calls, with runs that can be driven through every state;
//! - [`emr_ec2`]: [`FakeEmrEc2`], the EMR JSON API (awsJson1_1) that aws-sdk-emr calls,
//!   with one cluster whose steps can be driven through every state and whose cancels
//!   can be refused;
//! - [`livy`]: [`FakeLivy`], Apache Livy's REST API for batches, with its CSRF check,
//!   optional Basic credentials, scripted states and a restart that forgets every batch;
//! - [`multiomix`]: [`FakeMultiomix`], Multiomix's job-end notice endpoint, which records
//!   what it receives and can answer errors, answer slowly, or go down and come back;
//! - `server` (private): the accept loop both use, which can really stop listening.
//!
//! The binaries `fake-emr` and `fake-multiomix` run the same fakes as processes.

pub mod emr;
pub mod emr_ec2;
pub mod emr_serverless;
pub mod livy;
pub mod multiomix;
mod server;

use std::fmt;

pub use emr::{FakeEmr, FakeEmrBuilder, Hold, JobState, NewJob};
pub use emr_ec2::{FakeEmrEc2, FakeEmrEc2Builder, StepState};
pub use emr_serverless::{FakeEmrServerless, FakeEmrServerlessBuilder, RunState};
pub use livy::{BatchState, FakeLivy, FakeLivyBuilder};
pub use multiomix::{FakeMultiomix, FakeMultiomixBuilder, Notice, Reply};

/// A wait for something to happen ran out of time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TimedOut {
    pub what: &'static str,
    pub wanted: usize,
    pub got: usize,
}

impl fmt::Display for TimedOut {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "timed out waiting for {} {}: got {}",
            self.wanted, self.what, self.got
        )
    }
}

impl std::error::Error for TimedOut {}

/// Resolves on SIGTERM or Ctrl-C: how the fakes' binaries know to stop.
pub async fn wait_for_stop() {
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .expect("SIGTERM handler");
    tokio::select! {
        _ = term.recv() => {}
        _ = tokio::signal::ctrl_c() => {}
    }
}
