//! The process a job becomes: spark-submit with the job's options, entry script and
//! arguments, and the few variables the job reads. It is recorded with the run, so a run
//! queued again after a restart starts exactly what was asked.

use serde::{Deserialize, Serialize};

use super::Inner;
use crate::backend::spark::{entry_point, entry_point_arguments, py_files, SparkSubmit};
use crate::job::JobSpec;

/// The process a run starts, as recorded with the run.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LocalCommand {
    pub program: String,
    pub args: Vec<String>,
    /// Set on top of the inherited environment.
    pub env: Vec<(String, String)>,
}

impl Inner {
    pub(super) fn command_for(&self, spec: &JobSpec) -> LocalCommand {
        let in_scripts = |file: &str| self.scripts_dir.join(file).to_string_lossy().into_owned();
        let options = SparkSubmit::for_local(
            &self.spark,
            &self.settings.spark_master,
            in_scripts(py_files(&self.job, spec.algorithm)),
        );
        let args = options.command(
            in_scripts(entry_point(&self.job, spec.algorithm)),
            entry_point_arguments(spec, &self.job.args_key_prefix),
        );
        LocalCommand {
            program: self.program.to_string_lossy().into_owned(),
            args,
            env: [
                ("JOB_NAME".into(), spec.name.as_str().to_owned()),
                ("DATASETS_PATH".into(), self.job.datasets_path.clone()),
                ("RESULTS_PATH".into(), self.job.results_path.clone()),
            ]
            .into_iter()
            // The job's progress token: in the process's environment, never in its
            // arguments (which its log's first line shows).
            .chain(
                spec.progress_token
                    .as_ref()
                    .map(|t| ("PROGRESS_TOKEN".into(), t.expose().to_owned())),
            )
            .collect(),
        }
    }
}
