//! The Spark pods' init script, run with `sh` and a stand-in for the AWS CLI that
//! records how it was called.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Command, Output};

const SCRIPT: &str = "templates/dockerfiles/init/fetch-inputs.sh";

/// A fake `aws` that writes its arguments, one a line, to `$RECORD`, and exits `$STATUS`.
fn fake_aws(dir: &Path) -> std::path::PathBuf {
    let path = dir.join("aws");
    fs::write(
        &path,
        "#!/bin/sh\nfor a in \"$@\"; do printf '%s\\n' \"$a\"; done > \"$RECORD\"\nexit \"${STATUS:-0}\"\n",
    )
    .unwrap();
    fs::set_permissions(&path, fs::Permissions::from_mode(0o755)).unwrap();
    path
}

fn run(dir: &Path, env: &[(&str, &str)]) -> Output {
    let mut command = Command::new("sh");
    command
        .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join(SCRIPT))
        .env_clear()
        .env("PATH", "/usr/bin:/bin")
        .env("AWS_CLI", fake_aws(dir))
        .env("RECORD", dir.join("record"));
    for (key, value) in env {
        command.env(key, value);
    }
    command.output().unwrap()
}

#[test]
fn the_inputs_are_synced_from_the_prefix_into_the_datasets_folder() {
    let dir = tempfile::tempdir().unwrap();
    let target = dir.path().join("data");
    let output = run(
        dir.path(),
        &[
            ("INPUT_S3_URI", "s3://bucket/datasets/"),
            ("DATASETS_PATH", target.to_str().unwrap()),
        ],
    );

    assert!(output.status.success(), "{output:?}");
    assert!(target.is_dir(), "the folder is created");
    let record = fs::read_to_string(dir.path().join("record")).unwrap();
    let args: Vec<&str> = record.lines().collect();
    assert_eq!(&args[..2], ["s3", "sync"]);
    assert_eq!(
        &args[args.len() - 2..],
        ["s3://bucket/datasets/", target.to_str().unwrap()]
    );
}

#[test]
fn a_failed_copy_fails_the_init_container() {
    let dir = tempfile::tempdir().unwrap();
    let target = dir.path().join("data");
    let output = run(
        dir.path(),
        &[
            ("INPUT_S3_URI", "s3://bucket/datasets/"),
            ("DATASETS_PATH", target.to_str().unwrap()),
            ("STATUS", "1"),
        ],
    );
    assert!(!output.status.success());
}

#[test]
fn a_missing_or_non_s3_source_is_refused_without_calling_the_cli() {
    for source in [None, Some("/var/data"), Some("s3://")] {
        let dir = tempfile::tempdir().unwrap();
        let mut env = vec![("DATASETS_PATH", "/nonexistent/never")];
        if let Some(source) = source {
            env.push(("INPUT_S3_URI", source));
        }
        let output = run(dir.path(), &env);
        assert!(!output.status.success(), "{source:?}");
        assert!(!dir.path().join("record").exists(), "{source:?}");
    }
}
