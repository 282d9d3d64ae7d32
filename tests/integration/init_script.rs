//! The driver pod's init script (`fetch-inputs.sh`), run with `sh`: against moto's S3
//! with the real AWS CLI (the `moto` tests), and with a stand-in CLI that records how it
//! was called for what moto cannot show (a copy that hangs, arguments refused before any
//! call).

use std::fs;
use std::path::Path;
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use crate::pod_scripts::{read_tree, script, MotoS3, BUCKET};

const SCRIPT: &str = "templates/dockerfiles/init/fetch-inputs.sh";

/// A fake `aws` that writes its arguments, one a line, to `$RECORD`, then exits
/// `$STATUS`, or with `$HANG` set becomes a `sleep` that outlives any test.
fn fake_aws(dir: &Path) -> std::path::PathBuf {
    script(
        dir,
        "aws",
        "for a in \"$@\"; do printf '%s\\n' \"$a\"; done > \"$RECORD\"\n\
         [ -z \"${HANG:-}\" ] || exec sleep 600\n\
         exit \"${STATUS:-0}\"\n",
    )
}

fn command(env: &[(&str, &str)]) -> Command {
    let mut command = Command::new("sh");
    command
        .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join(SCRIPT))
        .env_clear()
        .env("PATH", "/usr/bin:/bin");
    for (key, value) in env {
        command.env(key, value);
    }
    command
}

fn run(dir: &Path, env: &[(&str, &str)]) -> Output {
    command(env)
        .env("AWS_CLI", fake_aws(dir))
        .env("RECORD", dir.join("record"))
        .output()
        .unwrap()
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

#[test]
fn only_the_apps_folder_is_synced_into_the_same_folder_under_the_datasets_path() {
    // With and without the trailing `/` on the prefix.
    for prefix in ["s3://bucket/datasets/", "s3://bucket/datasets"] {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("data");
        let output = run(
            dir.path(),
            &[
                ("INPUT_S3_URI", prefix),
                ("APP_NAME", "BBHA_42"),
                ("DATASETS_PATH", target.to_str().unwrap()),
            ],
        );

        // The stand-in copies nothing, which the script reports as an error; what it
        // was asked to copy is the point here.
        assert_eq!(output.status.code(), Some(1), "{}", stderr(&output));
        assert!(target.join("BBHA_42").is_dir(), "the folder is created");
        let record = fs::read_to_string(dir.path().join("record")).unwrap();
        let args: Vec<&str> = record.lines().collect();
        assert_eq!(&args[..2], ["s3", "sync"]);
        assert_eq!(
            &args[args.len() - 2..],
            [
                "s3://bucket/datasets/BBHA_42/",
                target.join("BBHA_42").to_str().unwrap()
            ]
        );
        assert!(stderr(&output).contains("nothing under"), "{output:?}");
    }
}

#[test]
fn a_failed_copy_fails_the_init_container() {
    let dir = tempfile::tempdir().unwrap();
    let target = dir.path().join("data");
    let output = run(
        dir.path(),
        &[
            ("INPUT_S3_URI", "s3://bucket/datasets/"),
            ("APP_NAME", "BBHA_42"),
            ("DATASETS_PATH", target.to_str().unwrap()),
            ("STATUS", "1"),
        ],
    );
    assert_eq!(output.status.code(), Some(1));
    assert!(stderr(&output).contains("failed"), "{output:?}");
}

#[test]
fn a_copy_that_hangs_is_given_up_after_the_copy_timeout() {
    let dir = tempfile::tempdir().unwrap();
    let target = dir.path().join("data");
    let started = Instant::now();
    let output = run(
        dir.path(),
        &[
            ("INPUT_S3_URI", "s3://bucket/datasets/"),
            ("APP_NAME", "BBHA_42"),
            ("DATASETS_PATH", target.to_str().unwrap()),
            ("COPY_TIMEOUT", "1"),
            ("HANG", "1"),
        ],
    );
    // The stand-in sleeps for ten minutes: returning at all shows the timeout worked.
    assert!(started.elapsed() < Duration::from_secs(60));
    assert_eq!(output.status.code(), Some(1), "{}", stderr(&output));
    assert!(
        stderr(&output).contains("did not finish in 1s"),
        "{}",
        stderr(&output)
    );
}

#[test]
fn a_missing_or_non_s3_source_is_refused_without_calling_the_cli() {
    for source in [None, Some("/var/data"), Some("s3://")] {
        let dir = tempfile::tempdir().unwrap();
        let mut env = vec![
            ("DATASETS_PATH", "/nonexistent/never"),
            ("APP_NAME", "BBHA_42"),
        ];
        if let Some(source) = source {
            env.push(("INPUT_S3_URI", source));
        }
        let output = run(dir.path(), &env);
        assert_eq!(output.status.code(), Some(2), "{source:?}");
        assert!(!dir.path().join("record").exists(), "{source:?}");
    }
}

#[test]
fn an_empty_app_name_is_a_configuration_error_that_names_the_likely_cause() {
    for app_name in [None, Some("")] {
        let dir = tempfile::tempdir().unwrap();
        let mut env = vec![
            ("DATASETS_PATH", "/nonexistent/never"),
            ("INPUT_S3_URI", "s3://bucket/datasets/"),
        ];
        if let Some(app_name) = app_name {
            env.push(("APP_NAME", app_name));
        }
        let output = run(dir.path(), &env);
        assert_eq!(output.status.code(), Some(2), "{app_name:?}");
        let message = stderr(&output);
        assert_eq!(message.lines().count(), 1, "one line: {message}");
        assert!(
            message.contains("multiomix-aws-emr/app-name") && message.contains("DATA_STAGING=s3"),
            "{message}"
        );
        assert!(!dir.path().join("record").exists());
    }
}

#[test]
fn an_app_name_that_is_not_one_safe_folder_name_is_refused_without_calling_the_cli() {
    for app_name in [
        "/",
        ".",
        "..",
        "../BBHA_7",
        "BBHA_42/..",
        "a b",
        "BBHA;rm",
        "*",
        "BBHA_é",
    ] {
        let dir = tempfile::tempdir().unwrap();
        let output = run(
            dir.path(),
            &[
                ("DATASETS_PATH", "/nonexistent/never"),
                ("INPUT_S3_URI", "s3://bucket/datasets/"),
                ("APP_NAME", app_name),
            ],
        );
        assert_eq!(output.status.code(), Some(2), "{app_name:?}");
        assert!(stderr(&output).contains("not one safe folder name"));
        assert!(!dir.path().join("record").exists(), "{app_name:?}");
    }
}

#[test]
fn with_moto_the_init_copies_exactly_its_apps_datasets_and_reads_nothing_else() {
    let Some(moto) = MotoS3::start() else { return };
    moto.put_files(
        "datasets/",
        &[
            ("BBHA_42/molecules.csv", "gene\ts1\nBRCA1_1\t0.5\n"),
            ("BBHA_42/clinical.csv", "sample\tevent\ttime\ns1\t1\t10\n"),
            ("BBHA_42/nested/extra.csv", "kept with its folder\n"),
            // Another app, one whose name starts with this one's, and a loose file.
            ("BBHA_7/molecules.csv", "other app\n"),
            ("BBHA_420/molecules.csv", "other app with a longer name\n"),
            ("README", "not a job's\n"),
        ],
    );
    moto.put_files("results/", &[("BBHA_42/result.json", "{}")]);
    let before = moto.keys();
    let dir = tempfile::tempdir().unwrap();
    let target = dir.path().join("data");
    let mark = moto.mark();

    let source = format!("s3://{BUCKET}/datasets/");
    let output = command(&[
        ("INPUT_S3_URI", source.as_str()),
        ("APP_NAME", "BBHA_42"),
        ("DATASETS_PATH", target.to_str().unwrap()),
    ])
    .envs(moto.env())
    .env("AWS_CLI", &moto.cli)
    .output()
    .unwrap();

    assert!(output.status.success(), "{}", stderr(&output));
    assert!(stderr(&output).contains("done: 3 file(s)"), "{output:?}");
    let copied: Vec<(String, String)> = read_tree(&target);
    let expected: Vec<(String, String)> = [
        ("BBHA_42/clinical.csv", "sample\tevent\ttime\ns1\t1\t10\n"),
        ("BBHA_42/molecules.csv", "gene\ts1\nBRCA1_1\t0.5\n"),
        ("BBHA_42/nested/extra.csv", "kept with its folder\n"),
    ]
    .iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    assert_eq!(copied, expected);

    // What reached S3: reads only, each inside the app's prefix (a listing of that
    // prefix, then its objects): what GetObject and ListBucket on datasets/ allow.
    let requests = moto.requests_since(mark);
    assert!(!requests.is_empty());
    let app = format!("/{BUCKET}/datasets/BBHA_42/");
    for request in &requests {
        assert_eq!(request.method, "GET", "{request:?}");
        if request.path == format!("/{BUCKET}") {
            assert!(
                request.query.contains("prefix=datasets/BBHA_42/&")
                    || request.query.ends_with("prefix=datasets/BBHA_42/"),
                "a listing outside the app's prefix: {request:?}"
            );
        } else {
            assert!(request.path.starts_with(&app), "{request:?}");
        }
    }
    assert_eq!(moto.keys(), before, "the bucket is as it was");
}

#[test]
fn with_moto_an_app_without_datasets_fails_the_init_container() {
    let Some(moto) = MotoS3::start() else { return };
    moto.put_files("datasets/", &[("BBHA_7/molecules.csv", "other app\n")]);
    let dir = tempfile::tempdir().unwrap();
    let target = dir.path().join("data");

    let source = format!("s3://{BUCKET}/datasets/");
    let output = command(&[
        ("INPUT_S3_URI", source.as_str()),
        ("APP_NAME", "BBHA_42"),
        ("DATASETS_PATH", target.to_str().unwrap()),
    ])
    .envs(moto.env())
    .env("AWS_CLI", &moto.cli)
    .output()
    .unwrap();

    assert_eq!(output.status.code(), Some(1), "{}", stderr(&output));
    assert!(stderr(&output).contains("nothing under"), "{output:?}");
    assert!(read_tree(&target).is_empty());
}
