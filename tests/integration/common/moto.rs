//! moto's server, the reference peer for the AWS APIs it covers, started on a free port
//! for one test. It comes from the test virtualenv (`dev/test.sh` creates it). Without
//! it the tests that need it are skipped with a message on a developer's machine, and
//! fail under CI.

use std::path::PathBuf;
use std::process::Stdio;

use tokio::process::{Child, Command};

use super::wait::{wait_for, PATIENCE};

pub fn moto_server_path() -> Option<PathBuf> {
    if let Ok(p) = std::env::var("MOTO_SERVER") {
        return Some(PathBuf::from(p));
    }
    let venv = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(".venv/bin/moto_server");
    venv.exists().then_some(venv)
}

/// A moto server on a free loopback port, stopped when dropped.
pub struct Moto {
    pub url: String,
    _child: Child,
}

/// Starts moto on a free loopback port; `None`, and the test is skipped with a message,
/// on a machine without it; a failure under CI.
pub async fn moto() -> Option<Moto> {
    let Some(bin) = moto_server_path() else {
        if std::env::var_os("CI").is_some() {
            panic!("moto_server not found: CI must run these tests (set MOTO_SERVER or run dev/test.sh)");
        }
        eprintln!("skipping: moto_server not found (run dev/test.sh, or set MOTO_SERVER)");
        return None;
    };
    let port = free_port();
    let child = Command::new(&bin)
        .args(["-H", "127.0.0.1", "-p", &port.to_string()])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {}: {e}", bin.display()));
    let url = format!("http://127.0.0.1:{port}");
    let http = reqwest::Client::new();
    let api = format!("{url}/moto-api/");
    wait_for("moto_server to start", PATIENCE, || async {
        http.get(&api)
            .send()
            .await
            .map(drop)
            .map_err(|e| e.to_string())
    })
    .await;
    Some(Moto { url, _child: child })
}

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// An S3 client for moto, path-style (moto serves every bucket at one address).
pub fn s3_client(endpoint: &str) -> aws_sdk_s3::Client {
    let conf = aws_sdk_s3::config::Builder::from(&super::sdk_config(endpoint))
        .force_path_style(true)
        .build();
    aws_sdk_s3::Client::from_conf(conf)
}

/// Every key in `bucket`, sorted.
pub async fn bucket_keys(s3: &aws_sdk_s3::Client, bucket: &str) -> Vec<String> {
    let listed = s3
        .list_objects_v2()
        .bucket(bucket)
        .send()
        .await
        .expect("ListObjectsV2");
    let mut keys: Vec<String> = listed
        .contents()
        .iter()
        .filter_map(|o| o.key().map(str::to_owned))
        .collect();
    keys.sort();
    keys
}
