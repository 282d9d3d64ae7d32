//! What the local backend checks before it runs anything, and again when asked if it is
//! ready: the spark-submit program and the folder of the job scripts.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use tracing::warn;

use crate::backend::spark::{entry_point, py_files};
use crate::config::JobSettings;
use crate::job::Algorithm;

/// Finds the program: a name is looked up in `PATH`, anything with a `/` is a path
/// (relative to `base`). Says what is missing when it cannot.
pub fn find_program(program: &str, base: &Path) -> Result<PathBuf, String> {
    if program.contains('/') {
        let path = base.join(program);
        return match std::fs::metadata(&path) {
            Ok(m) if m.is_file() && m.permissions().mode() & 0o111 != 0 => Ok(path),
            Ok(m) if m.is_file() => Err(format!("{} is not executable", path.display())),
            Ok(_) => Err(format!("{} is not a file", path.display())),
            Err(e) => Err(format!("{} cannot be used: {e}", path.display())),
        };
    }
    let search = std::env::var_os("PATH").unwrap_or_default();
    for dir in std::env::split_paths(&search).filter(|d| !d.as_os_str().is_empty()) {
        let candidate = base.join(dir).join(program);
        if std::fs::metadata(&candidate)
            .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        {
            return Ok(candidate);
        }
    }
    Err(format!(
        "'{program}' is not found in PATH ({}); install Spark or set SPARK_SUBMIT to the path of spark-submit",
        search.to_string_lossy()
    ))
}

/// The folder of `spark-defaults.conf` spark-submit reads: `SPARK_CONF_DIR`, else
/// `SPARK_HOME/conf`.
pub(super) fn spark_conf_dir() -> Option<PathBuf> {
    let var = |name| std::env::var_os(name).filter(|v| !v.is_empty());
    var("SPARK_CONF_DIR")
        .map(PathBuf::from)
        .or_else(|| var("SPARK_HOME").map(|home| PathBuf::from(home).join("conf")))
}

/// Refuses a `spark-defaults.conf` that puts the driver on the cluster: the driver reads
/// `DATASETS_PATH` and writes `RESULTS_PATH`, the folders beside the service, so it must
/// run here (client mode). The service passes `--deploy-mode client` with a cluster
/// master, but a `local[...]` master has none to pass, and such a file says the operator
/// expects something the service will not do.
pub(super) fn check_deploy_mode(conf_dir: Option<&Path>) -> Result<(), String> {
    let Some(dir) = conf_dir else { return Ok(()) };
    let path = dir.join("spark-defaults.conf");
    let Ok(text) = std::fs::read_to_string(&path) else {
        return Ok(());
    };
    for line in text.lines() {
        let line = line.trim();
        if line.starts_with('#') {
            continue;
        }
        // `key value`, `key=value` or `key = value`, as Spark reads a properties file.
        let Some(rest) = line.strip_prefix("spark.submit.deployMode") else {
            continue;
        };
        let value = rest.trim_start_matches([' ', '\t', '=', ':']).trim();
        if value.eq_ignore_ascii_case("cluster") {
            return Err(format!(
                "{} sets spark.submit.deployMode to cluster: the driver would run on the \
                 cluster, away from DATASETS_PATH and RESULTS_PATH, the folders it reads and \
                 writes; the local backend runs the driver beside the service (client mode). \
                 Remove that line",
                path.display()
            ));
        }
    }
    Ok(())
}

pub(super) fn check_scripts_dir(dir: &Path) -> Result<(), String> {
    match std::fs::metadata(dir) {
        Ok(m) if m.is_dir() => Ok(()),
        Ok(_) => Err(format!("{} is not a folder", dir.display())),
        Err(e) => Err(format!(
            "{} cannot be used ({e}); it must hold the entry scripts and py-files named by ALGO_*_ENTRYPOINT and ALGO_*_PY_FILES",
            dir.display()
        )),
    }
}

/// Warns of each entry script or py-files archive the settings name that is not in the
/// scripts folder: the service still starts, but the jobs of that algorithm will fail.
pub(super) fn warn_of_missing_scripts(scripts_dir: &Path, job: &JobSettings) {
    for algorithm in [Algorithm::BlindSearch, Algorithm::Bbha] {
        for (variable, file) in [
            ("ENTRYPOINT", entry_point(job, algorithm)),
            ("PY_FILES", py_files(job, algorithm)),
        ] {
            let path = scripts_dir.join(file);
            if !path.exists() {
                warn!(
                    path = %path.display(),
                    "ALGO_{}_{variable} names a file that does not exist; its jobs will fail",
                    algorithm.env_name()
                );
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spark_defaults_in_cluster_deploy_mode_are_refused_and_client_mode_is_not() {
        let dir = tempfile::tempdir().unwrap();
        assert!(check_deploy_mode(None).is_ok());
        assert!(check_deploy_mode(Some(dir.path())).is_ok(), "no file");
        let file = dir.path().join("spark-defaults.conf");
        for cluster in [
            "spark.submit.deployMode cluster",
            "spark.submit.deployMode=cluster",
            "spark.master yarn\n  spark.submit.deployMode \t Cluster  ",
        ] {
            std::fs::write(&file, cluster).unwrap();
            let e = check_deploy_mode(Some(dir.path())).unwrap_err();
            assert!(
                e.contains("spark-defaults.conf") && e.contains("client mode"),
                "{e}"
            );
        }
        for fine in [
            "spark.submit.deployMode client",
            "# spark.submit.deployMode cluster",
            "spark.eventLog.enabled true",
        ] {
            std::fs::write(&file, fine).unwrap();
            assert!(check_deploy_mode(Some(dir.path())).is_ok(), "{fine}");
        }
    }

    #[test]
    fn programs_are_found_by_path_or_in_path_and_missing_ones_are_named() {
        let dir = tempfile::tempdir().unwrap();
        let exe = dir.path().join("tool");
        std::fs::write(&exe, "#!/bin/sh\n").unwrap();
        std::fs::set_permissions(&exe, std::fs::Permissions::from_mode(0o755)).unwrap();
        let plain = dir.path().join("plain");
        std::fs::write(&plain, "").unwrap();
        assert_eq!(
            find_program("./tool", dir.path()).unwrap(),
            dir.path().join("./tool")
        );
        assert_eq!(
            find_program(exe.to_str().unwrap(), Path::new("/")).unwrap(),
            exe
        );
        let err = find_program("./plain", dir.path()).unwrap_err();
        assert!(err.contains("not executable"), "{err}");
        let err = find_program("./absent", dir.path()).unwrap_err();
        assert!(err.contains("absent"), "{err}");
        assert!(find_program("sh", dir.path()).unwrap().is_absolute());
        let err = find_program("no-such-program-anywhere", dir.path()).unwrap_err();
        assert!(
            err.contains("not found in PATH") && err.contains("SPARK_SUBMIT"),
            "{err}"
        );
    }
}
