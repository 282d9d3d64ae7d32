//! The one place a backend is built from its settings. Everything else asks the built
//! backend what differs between backends ([`JobBackend::tells_when_jobs_end`], its
//! [`kind`](JobBackend::kind), its checks) instead of matching on which one it is.
//!
//! A new backend is its own module under `backend/`, one variant of
//! [`BackendSettings`] (with its checks in `config/backends.rs`), one arm here, and one
//! peer in `tests/integration/conformance/`.

use std::sync::Arc;

use anyhow::Context;
use tokio::sync::mpsc;

use super::emr::ec2::EmrEc2Backend;
use super::emr::eks::EmrEksBackend;
use super::emr::serverless::EmrServerlessBackend;
use super::livy::LivyBackend;
use super::local::LocalBackend;
use super::JobBackend;
use crate::config::{BackendSettings, Config};
use crate::job::JobId;
use crate::staging::Staging;
use crate::store::Store;

/// A backend ready to take jobs.
pub struct Built {
    pub backend: Arc<dyn JobBackend>,
    /// The ids of jobs as they end, from a backend that knows it itself (the local one):
    /// the service opens their notices at once, without a sidecar's callback.
    pub ended: Option<mpsc::UnboundedReceiver<JobId>>,
}

/// Builds the backend `config.backend` names. The EMR backends and Livy make no call here
/// (their first is `/ready`'s check); the local one checks its program and scripts and
/// settles the runs a previous process left behind, in `store`.
pub async fn build(config: &Config, store: &Store) -> anyhow::Result<Built> {
    let (spark, job) = (config.spark.clone(), config.job.clone());
    let backend: Arc<dyn JobBackend> = match &config.backend {
        BackendSettings::EmrEks(settings) => {
            Arc::new(EmrEksBackend::connect(settings.clone(), spark, job).await)
        }
        BackendSettings::EmrServerless(settings) => {
            Arc::new(EmrServerlessBackend::connect(settings.clone(), spark, job).await)
        }
        BackendSettings::EmrEc2(settings) => {
            Arc::new(EmrEc2Backend::connect(settings.clone(), spark, job).await)
        }
        BackendSettings::Livy(settings) => {
            let backend = LivyBackend::new(store.clone(), settings.clone(), spark, job);
            // With staging, a `success` counts only with the job's result.json.
            Arc::new(match &config.staging {
                Some(staging) => backend.with_results(Staging::connect(staging).await),
                None => backend,
            })
        }
        BackendSettings::Local(settings) => {
            let (ended_tx, ended_rx) = mpsc::unbounded_channel();
            let backend = LocalBackend::new(store.clone(), settings.clone(), spark, job, ended_tx)
                .await
                .context("cannot set up the local backend")?;
            return Ok(Built {
                backend: Arc::new(backend),
                ended: Some(ended_rx),
            });
        }
    };
    Ok(Built {
        backend,
        ended: None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backend::finished::{FinishedRuns, CAPACITY};
    use crate::backend::instrumented::InstrumentedBackend;
    use crate::config::BackendKind;

    fn config(pairs: &[(&str, &str)]) -> Config {
        let mut vars: Vec<(String, String)> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        vars.push(("AWS_ENDPOINT_URL".into(), "http://127.0.0.1:9".into()));
        Config::from_vars(vars).unwrap()
    }

    /// Each JOB_BACKEND gives its own backend, and what the service asks of it (its kind,
    /// whether it tells when its jobs end) survives the wrappers every backend gets.
    #[tokio::test]
    async fn each_backend_is_built_from_its_settings_and_answers_through_the_wrappers() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::connect(&format!("sqlite:{}/s.db", dir.path().display()))
            .await
            .unwrap();
        let role = (
            "EMR_EXECUTION_ROLE_ARN",
            "arn:aws:iam::123456789012:role/job",
        );
        let bucket = ("EMR_S3_BUCKET", "bucket");
        // The variables, the backend's kind, whether it tells when its jobs end.
        type Case<'a> = (Vec<(&'a str, &'a str)>, &'a str, bool);
        let cases: [Case; 5] = [
            (
                vec![
                    ("JOB_BACKEND", "emr"),
                    ("EMR_VIRTUAL_CLUSTER_ID", "vc1"),
                    role,
                    bucket,
                ],
                "emr",
                true,
            ),
            (
                vec![
                    ("JOB_BACKEND", "emr-serverless"),
                    ("EMR_SERVERLESS_APPLICATION_ID", "00fabc123"),
                    role,
                    bucket,
                ],
                "emr-serverless",
                false,
            ),
            (
                vec![
                    ("JOB_BACKEND", "emr-ec2"),
                    ("EMR_CLUSTER_ID", "j-2AXXXXXXGAPLF"),
                    bucket,
                ],
                "emr-ec2",
                false,
            ),
            (
                vec![
                    ("JOB_BACKEND", "livy"),
                    ("LIVY_URL", "http://127.0.0.1:9"),
                    ("LIVY_PACKAGE_URL", "s3://bucket/"),
                ],
                "livy",
                false,
            ),
            (
                vec![
                    ("JOB_BACKEND", "local"),
                    ("SPARK_SUBMIT", "/bin/true"),
                    ("LOCAL_LOG_DIR", dir.path().to_str().unwrap()),
                ],
                "local",
                true,
            ),
        ];
        for (vars, kind, tells) in cases {
            let config = config(&vars);
            assert_eq!(config.backend.kind().to_string(), kind);
            let built = build(&config, &store).await.unwrap();
            assert_eq!(built.ended.is_some(), kind == "local", "{kind}");
            let wrapped = FinishedRuns::wrap(InstrumentedBackend::wrap(built.backend), CAPACITY);
            assert_eq!(wrapped.kind(), config.backend.kind(), "{kind}");
            assert_eq!(wrapped.tells_when_jobs_end(), tells, "{kind}");
        }
        assert_eq!(
            config(&[]).backend.kind(),
            BackendKind::Local,
            "the embedded default"
        );
    }
}
