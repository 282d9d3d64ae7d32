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
    // The port is free when picked, but another test may bind it before moto does: then
    // moto exits, and something else might answer there. Only moto's own page, from a
    // moto that still runs, counts; otherwise another port is tried.
    let http = reqwest::Client::new();
    for _ in 0..5 {
        let port = super::free_port();
        let child = Command::new(&bin)
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", bin.display()));
        let url = format!("http://127.0.0.1:{port}");
        let api = format!("{url}/moto-api/");
        let child = std::cell::RefCell::new(child);
        let running = wait_for("moto_server to start", PATIENCE, || async {
            if child.borrow_mut().try_wait().unwrap().is_some() {
                return Ok(false);
            }
            match http.get(&api).send().await {
                Ok(r) if r.status().is_success() => Ok(true),
                Ok(r) => Err(r.status().to_string()),
                Err(e) => Err(e.to_string()),
            }
        })
        .await;
        if running {
            return Some(Moto {
                url,
                _child: child.into_inner(),
            });
        }
        eprintln!("moto_server exited at start on port {port} (taken meanwhile?); another port");
    }
    panic!("moto_server exited at start on five ports in a row");
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
