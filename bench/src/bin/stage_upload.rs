//! How long `POST /job` spends staging one large dataset: the service's own staging code
//! (hash, then parts sent 8 at a time, then the run's results folder emptied) against an
//! S3 endpoint, moto's server by default. Prints figures; it checks nothing.
//!
//!     moto_server -p 5055 &      # from the test virtualenv (.ci/python-env.sh)
//!     cargo run --release -p multiomix-bench --bin stage_upload -- http://127.0.0.1:5055 2048
//!
//! The arguments are the S3 endpoint and the file's size in MiB (default 2048). The file
//! is written to a temporary folder first; the second run of the same file finds it in
//! S3 by its SHA-256 and only hashes it.

use std::time::Instant;

use aws_sdk_s3::config::{BehaviorVersion, Credentials, Region};
use multiomix_aws_emr::config::Config;
use multiomix_aws_emr::job::validate_request;
use multiomix_aws_emr::staging::Staging;

const BUCKET: &str = "multiomix-bench";
const APP: &str = "BBHA_bench";

#[tokio::main]
async fn main() {
    let mut args = std::env::args().skip(1);
    let endpoint = args
        .next()
        .unwrap_or_else(|| "http://127.0.0.1:5055".into());
    let mib: u64 = args
        .next()
        .map_or(2048, |a| a.parse().expect("a size in MiB"));
    let dir = tempfile::tempdir().expect("a temporary folder");
    let shared = dir.path().join("datasets");
    let results = dir.path().join("results");
    std::fs::create_dir_all(shared.join(APP)).unwrap();
    std::fs::create_dir_all(&results).unwrap();
    write_file(&shared.join(APP).join("molecules.csv"), mib << 20);

    let vars: Vec<(String, String)> = [
        ("JOB_BACKEND", "emr"),
        ("EMR_VIRTUAL_CLUSTER_ID", "bench"),
        (
            "EMR_EXECUTION_ROLE_ARN",
            "arn:aws:iam::123456789012:role/bench",
        ),
        ("EMR_S3_BUCKET", BUCKET),
        ("DATA_STAGING", "s3"),
        ("STAGING_UPLOAD_TIMEOUT", "3600"),
        ("REQUEST_TIMEOUT", "120"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v.to_owned()))
    .chain([
        (
            "SHARED_DATASETS_DIR".to_owned(),
            shared.display().to_string(),
        ),
        (
            "SHARED_RESULTS_DIR".to_owned(),
            results.display().to_string(),
        ),
    ])
    .collect();
    let config = Config::from_vars(vars).expect("a valid configuration");
    let client = aws_sdk_s3::Client::from_conf(
        aws_sdk_s3::Config::builder()
            .behavior_version(BehaviorVersion::latest())
            .region(Region::new("us-east-1"))
            .endpoint_url(&endpoint)
            .credentials_provider(Credentials::new("bench", "bench", None, None, "bench"))
            .force_path_style(true)
            .build(),
    );
    let _ = client.create_bucket().bucket(BUCKET).send().await;
    let staging = Staging::with_client(client, config.staging.as_ref().unwrap());
    let spec = validate_request(&serde_json::json!({
        "name": "StageBench", "algorithm": 1,
        "entrypoint_arguments": [
            {"name": "app-name", "value": APP},
            {"name": "molecules-dataset", "value": format!("{APP}/molecules.csv")}]}))
    .expect("a valid request");
    let files = staging
        .files(&spec)
        .unwrap_or_else(|e| panic!("the file is not usable: {e:?}"));
    println!("staging a {mib} MiB file to {endpoint}");
    for run in ["first upload", "again (already staged: hash only)"] {
        let started = Instant::now();
        staging
            .prepare_run(APP, &files, std::future::pending())
            .await
            .expect("staged");
        let secs = started.elapsed().as_secs_f64();
        println!(
            "{run}: {secs:.1} s, {:.0} MiB/s",
            mib as f64 / secs.max(f64::EPSILON)
        );
    }
}

/// A file of `bytes` bytes that is not all one value, written in 1 MiB blocks.
fn write_file(path: &std::path::Path, bytes: u64) {
    use std::io::Write;
    let mut file = std::io::BufWriter::new(std::fs::File::create(path).unwrap());
    let block: Vec<u8> = (0..1u32 << 20).map(|i| (i % 251) as u8).collect();
    let mut left = bytes;
    while left > 0 {
        let n = left.min(block.len() as u64) as usize;
        file.write_all(&block[..n]).unwrap();
        left -= n as u64;
    }
}
