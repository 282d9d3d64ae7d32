//! Job ids and batch names.
//!
//! Livy's batch ids are small integers that start again at 0 when Livy restarts without
//! session recovery, so they cannot be job ids: a job id is made from the submission's
//! client token instead (`lv` and 32 hex digits of a digest of it), the same token always
//! giving the same id. The batch's name carries the deployment's prefix, that id, the
//! job's app name and its name (`<prefix>:<job id>:<app-name>:<job name>`), so that the
//! service can tell its batches from others' and find one again by its token, after a
//! lost answer or a lost store, and so that the batch id it recorded is checked against
//! the batch that has it now.

use sha2::{Digest, Sha256};

use crate::job::{is_valid_app_name, JobId, JobName};

const ID_PREFIX: &str = "lv";
const ID_HEX_DIGITS: usize = 32;

/// The job id of the start with this client token.
pub fn job_id_for(client_token: &str) -> JobId {
    let digest = Sha256::digest(format!("livy-batch:{client_token}").as_bytes());
    let hex: String = digest[..ID_HEX_DIGITS / 2]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    JobId::parse(&format!("{ID_PREFIX}{hex}")).expect("lowercase letters and digits")
}

/// Whether `id` has the form of a Livy job id (others cannot be this backend's).
pub fn is_livy_job_id(id: &JobId) -> bool {
    id.as_str().strip_prefix(ID_PREFIX).is_some_and(|hex| {
        hex.len() == ID_HEX_DIGITS
            && hex
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    })
}

/// What a batch's name says.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BatchName {
    pub job_id: JobId,
    pub app_name: Option<String>,
    /// The job's name.
    pub name: String,
}

impl BatchName {
    /// `<prefix>:<job id>:<app-name>:<job name>`. None of the parts can hold a `:`: the
    /// prefix is checked at start-up, app names and job names when a request comes in.
    pub fn format(&self, prefix: &str) -> String {
        format!(
            "{prefix}:{}:{}:{}",
            self.job_id,
            self.app_name.as_deref().unwrap_or_default(),
            self.name
        )
    }

    /// The parts of a batch name of this deployment (`prefix`); `None` for any other.
    pub fn parse(prefix: &str, name: &str) -> Option<Self> {
        let rest = name.strip_prefix(prefix)?.strip_prefix(':')?;
        let mut parts = rest.splitn(3, ':');
        let job_id = JobId::parse(parts.next()?).filter(is_livy_job_id)?;
        let app_name = match parts.next()? {
            "" => None,
            app if is_valid_app_name(app) => Some(app.to_owned()),
            _ => return None,
        };
        let name = JobName::parse(parts.next()?)?;
        Some(BatchName {
            job_id,
            app_name,
            name: name.as_str().to_owned(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_client_token_always_gives_the_same_livy_id_and_another_token_another() {
        let a = job_id_for("token-1");
        assert_eq!(a, job_id_for("token-1"));
        assert_ne!(a, job_id_for("token-2"));
        assert!(is_livy_job_id(&a), "{a}");
        assert_eq!(a.as_str().len(), 34);
        // Other backends' ids are never taken for a batch.
        for other in [
            "000000031kd8aj0vtn3",
            "s-2v57yi7t5nf42",
            "00fabcdefghijklm",
            "lv12",
        ] {
            assert!(!is_livy_job_id(&JobId::parse(other).unwrap()), "{other}");
        }
    }

    #[test]
    fn batch_names_round_trip_and_other_deployments_names_are_not_ours() {
        let name = BatchName {
            job_id: job_id_for("t"),
            app_name: Some("BBHA_42.v2".into()),
            name: "JobforFSExperiment42/#.x".into(),
        };
        let text = name.format("lab-a");
        assert_eq!(BatchName::parse("lab-a", &text), Some(name.clone()));
        assert_eq!(BatchName::parse("lab", &text), None, "a prefix of a prefix");
        assert_eq!(BatchName::parse("lab-b", &text), None);
        let without_app = BatchName {
            app_name: None,
            ..name
        };
        assert_eq!(
            BatchName::parse("lab-a", &without_app.format("lab-a")),
            Some(without_app)
        );
        for foreign in [
            "lab-a",
            "lab-a:",
            "lab-a:lv12:app:job",
            "lab-a:notanid:app:job",
            "PySparkShell",
            &format!("lab-a:{}:../x:job", job_id_for("t")),
            &format!("lab-a:{}:app:bad name", job_id_for("t")),
            &format!("lab-a:{}:app", job_id_for("t")),
        ] {
            assert_eq!(BatchName::parse("lab-a", foreign), None, "{foreign}");
        }
    }
}
