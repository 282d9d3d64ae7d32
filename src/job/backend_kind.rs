//! Which backend runs a job: one of the five the service knows, named as `JOB_BACKEND`
//! names it and as the store records it.

use std::fmt;

/// Which implementation runs the jobs. Its name (`Display`, [`BackendKind::as_str`]) is
/// what `JOB_BACKEND` takes, what `/ready` and the logs show, and what the store keeps in
/// the `backend` column of `jobs` and `submissions`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum BackendKind {
    /// EMR on EKS (`JOB_BACKEND=emr`).
    Emr,
    /// EMR Serverless (`JOB_BACKEND=emr-serverless`).
    EmrServerless,
    /// Steps on a standing EMR cluster on EC2 (`JOB_BACKEND=emr-ec2`).
    EmrEc2,
    /// Batches on any Spark cluster through Apache Livy's REST API (`JOB_BACKEND=livy`).
    Livy,
    /// `spark-submit` on this machine (`JOB_BACKEND=local`).
    Local,
}

impl BackendKind {
    /// Every backend, in the order `JOB_BACKEND`'s message lists them.
    pub const ALL: [BackendKind; 5] = [
        BackendKind::Emr,
        BackendKind::EmrServerless,
        BackendKind::EmrEc2,
        BackendKind::Livy,
        BackendKind::Local,
    ];

    /// The backend's name. Stored in SQLite: changing one would leave existing rows
    /// unreadable.
    pub fn as_str(self) -> &'static str {
        match self {
            BackendKind::Emr => "emr",
            BackendKind::EmrServerless => "emr-serverless",
            BackendKind::EmrEc2 => "emr-ec2",
            BackendKind::Livy => "livy",
            BackendKind::Local => "local",
        }
    }

    /// The backend named exactly `name`, as [`BackendKind::as_str`] writes it: how the
    /// store reads its rows back.
    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|kind| kind.as_str() == name)
    }

    /// Reads `JOB_BACKEND` (in any case); the error lists the names there are.
    pub fn parse(name: &str) -> Result<Self, String> {
        Self::ALL
            .into_iter()
            .find(|kind| kind.as_str().eq_ignore_ascii_case(name))
            .ok_or_else(|| {
                let names: Vec<String> = Self::ALL.iter().map(|k| format!("'{k}'")).collect();
                format!("'{name}' is none of {}", names.join(", "))
            })
    }

    /// Whether the job's driver runs on this machine (the local backend), so that the
    /// folders it reads and writes are the service's own.
    pub fn runs_here(self) -> bool {
        matches!(self, BackendKind::Local)
    }

    /// Whether `DATA_STAGING=s3` applies: the EMR backends' and Livy's jobs cannot read
    /// Multiomix's shared folders, the local backend's read them in place.
    pub fn stages_data(self) -> bool {
        !self.runs_here()
    }

    /// Whether, with staging on, the job itself reads and writes the S3 prefixes (EMR
    /// Serverless, EMR on EC2, a cluster behind Livy). On EMR on EKS the pod's init
    /// container and sidecar copy them to and from the pod's volumes, so the job keeps its
    /// folder paths.
    pub fn job_reads_s3(self) -> bool {
        matches!(
            self,
            BackendKind::EmrServerless | BackendKind::EmrEc2 | BackendKind::Livy
        )
    }
}

impl fmt::Display for BackendKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_kind_is_found_by_its_name_and_only_by_its_exact_name() {
        for kind in BackendKind::ALL {
            assert_eq!(BackendKind::from_name(kind.as_str()), Some(kind));
            assert_eq!(kind.to_string(), kind.as_str());
        }
        for other in ["", "EMR", "emr-eks", "emrserverless", " local"] {
            assert_eq!(BackendKind::from_name(other), None, "{other:?}");
        }
    }
}
