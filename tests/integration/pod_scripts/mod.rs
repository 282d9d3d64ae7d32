//! What the tests of the EMR pods' scripts share: moto's S3 server (a peer nobody here
//! wrote) on 127.0.0.1 with its request log, and the real AWS CLI pointed at it.
//!
//! Both come from the test virtualenv (`dev/test.sh` creates it and sets `MOTO_SERVER`
//! and `AWS_CLI_PROGRAM`). Without them these tests are skipped with a message on a
//! developer's machine, and fail under CI.

use std::fs::{self, File};
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use crate::common::wait_blocking;

pub const BUCKET: &str = "multiomix-bucket";

fn tool(variable: &str, venv_name: &str) -> Option<PathBuf> {
    if let Ok(path) = std::env::var(variable) {
        return Some(PathBuf::from(path));
    }
    let venv = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join(".venv/bin")
        .join(venv_name);
    if venv.exists() {
        return Some(venv);
    }
    if std::env::var_os("CI").is_some() {
        panic!(
            "{venv_name} not found: CI must run these tests (set {variable} or run dev/test.sh)"
        );
    }
    eprintln!("skipping: {venv_name} not found (run dev/test.sh, or set {variable})");
    None
}

/// The real AWS CLI, or None (the test is skipped) outside CI when it is not installed.
pub fn aws_cli() -> Option<PathBuf> {
    tool("AWS_CLI_PROGRAM", "aws")
}

/// One request as moto's log shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    pub method: String,
    /// Without the query.
    pub path: String,
    /// After the `?`, percent-decoded where it matters here (`%2F` is `/`).
    pub query: String,
}

/// A moto server with its own bucket, and the real CLI set up to talk to it.
pub struct MotoS3 {
    pub endpoint: String,
    pub cli: PathBuf,
    child: Child,
    log: PathBuf,
    home: tempfile::TempDir,
}

impl MotoS3 {
    /// Starts moto on a free port and creates the bucket; None when a tool is missing.
    pub fn start() -> Option<MotoS3> {
        let cli = aws_cli()?;
        let bin = tool("MOTO_SERVER", "moto_server")?;
        let home = tempfile::tempdir().unwrap();
        let log = home.path().join("moto.log");
        // As in common::moto: only moto's own page, from a moto that still runs, counts;
        // a port another test took meanwhile makes it exit, and another port is tried.
        let mut tries = 0;
        let (port, child) = loop {
            tries += 1;
            let port = crate::common::free_port();
            let mut child = Command::new(&bin)
                .args(["-H", "127.0.0.1", "-p", &port.to_string()])
                .env("PYTHONUNBUFFERED", "1")
                .stdout(Stdio::null())
                .stderr(File::create(&log).unwrap())
                .spawn()
                .unwrap_or_else(|e| panic!("cannot start {}: {e}", bin.display()));
            let running = wait_blocking("moto_server to start", Duration::from_secs(30), || {
                if child.try_wait().unwrap().is_some() {
                    return Ok(false);
                }
                answers(port).then_some(true).ok_or("no answer")
            });
            if running {
                break (port, child);
            }
            assert!(
                tries < 5,
                "moto_server exited at start on five ports in a row"
            );
        };
        let moto = MotoS3 {
            endpoint: format!("http://127.0.0.1:{port}"),
            cli,
            child,
            log,
            home,
        };
        moto.aws(&["s3api", "create-bucket", "--bucket", BUCKET]);
        Some(moto)
    }

    /// The environment that points the AWS CLI at this server with fixed test
    /// credentials, and at nothing of the machine's own configuration.
    pub fn env(&self) -> Vec<(String, String)> {
        aws_env(&self.endpoint, self.home.path())
    }

    /// Runs the real CLI with `args` and returns its standard output; panics on failure.
    pub fn aws(&self, args: &[&str]) -> String {
        let output = Command::new(&self.cli)
            .args(args)
            .env_clear()
            .envs(self.env())
            .env("PATH", "/usr/bin:/bin")
            .output()
            .unwrap();
        assert!(
            output.status.success(),
            "aws {args:?}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8(output.stdout).unwrap()
    }

    /// Writes `files` (relative path, content) under `prefix` of the bucket, in one call.
    pub fn put_files(&self, prefix: &str, files: &[(&str, &str)]) {
        let dir = tempfile::tempdir().unwrap();
        write_tree(dir.path(), files);
        self.aws(&[
            "s3",
            "cp",
            "--recursive",
            "--only-show-errors",
            &format!("{}/", dir.path().display()),
            &format!("s3://{BUCKET}/{prefix}"),
        ]);
    }

    /// Every key of the bucket, sorted.
    pub fn keys(&self) -> Vec<String> {
        self.lister()()
    }

    /// A function that lists the bucket's keys like `keys`, for another thread.
    pub fn lister(&self) -> impl Fn() -> Vec<String> + Send + 'static {
        let cli = self.cli.clone();
        let env = self.env();
        move || list_keys(&cli, &env)
    }

    /// The content of one object.
    pub fn get(&self, key: &str) -> String {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("object");
        self.aws(&[
            "s3",
            "cp",
            "--only-show-errors",
            &format!("s3://{BUCKET}/{key}"),
            file.to_str().unwrap(),
        ]);
        fs::read_to_string(file).unwrap()
    }

    /// How many requests moto has logged so far: a mark for `requests_since`.
    pub fn mark(&self) -> usize {
        self.requests().len()
    }

    /// A function that reads `mark` like this server does, for another thread.
    pub fn marker(&self) -> impl Fn() -> usize + Send + 'static {
        let log = self.log.clone();
        move || read_requests(&log).len()
    }

    /// The requests moto logged after `mark`, in the order it answered them.
    pub fn requests_since(&self, mark: usize) -> Vec<Request> {
        self.requests().split_off(mark)
    }

    fn requests(&self) -> Vec<Request> {
        read_requests(&self.log)
    }
}

fn read_requests(log: &Path) -> Vec<Request> {
    // werkzeug's access log: `127.0.0.1 - - [date] "PUT /bucket/key HTTP/1.1" 200 -`
    fs::read_to_string(log)
        .unwrap()
        .lines()
        .filter_map(|line| {
            let quoted = line.split('"').nth(1)?;
            let mut parts = quoted.split(' ');
            let method = parts.next()?.to_owned();
            let target = parts.next()?;
            parts.next()?.starts_with("HTTP/").then_some(())?;
            let (path, query) = target.split_once('?').unwrap_or((target, ""));
            Some(Request {
                method,
                path: path.to_owned(),
                query: query.replace("%2F", "/").replace("%2f", "/"),
            })
        })
        .collect()
}

impl Drop for MotoS3 {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn list_keys(cli: &Path, env: &[(String, String)]) -> Vec<String> {
    let output = Command::new(cli)
        .args([
            "s3api",
            "list-objects-v2",
            "--bucket",
            BUCKET,
            "--output",
            "json",
        ])
        .env_clear()
        .envs(env.iter().cloned())
        .env("PATH", "/usr/bin:/bin")
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "list-objects-v2: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let listed = String::from_utf8(output.stdout).unwrap();
    // An empty bucket: the CLI prints nothing at all.
    let listed: serde_json::Value = if listed.trim().is_empty() {
        serde_json::json!({})
    } else {
        serde_json::from_str(&listed).unwrap()
    };
    let mut keys: Vec<String> = listed["Contents"]
        .as_array()
        .map(|objects| {
            objects
                .iter()
                .map(|o| o["Key"].as_str().unwrap().to_owned())
                .collect()
        })
        .unwrap_or_default();
    keys.sort();
    keys
}

/// The CLI's environment for `endpoint`: fixed credentials, no configuration files of
/// the machine, one try per request so that a failure shows at once.
pub fn aws_env(endpoint: &str, home: &Path) -> Vec<(String, String)> {
    [
        ("AWS_ENDPOINT_URL", endpoint),
        ("AWS_ACCESS_KEY_ID", "AKIDTEST"),
        ("AWS_SECRET_ACCESS_KEY", "test-secret"),
        ("AWS_DEFAULT_REGION", "us-east-1"),
        ("AWS_MAX_ATTEMPTS", "1"),
        ("AWS_EC2_METADATA_DISABLED", "true"),
        ("AWS_CONFIG_FILE", "/nonexistent/aws-config"),
        (
            "AWS_SHARED_CREDENTIALS_FILE",
            "/nonexistent/aws-credentials",
        ),
        ("HOME", home.to_str().unwrap()),
    ]
    .iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect()
}

/// Whether something answers HTTP on 127.0.0.1:`port`.
fn answers(port: u16) -> bool {
    let Ok(mut stream) = TcpStream::connect(("127.0.0.1", port)) else {
        return false;
    };
    let _ = stream.set_read_timeout(Some(Duration::from_secs(2)));
    if stream
        .write_all(b"GET /moto-api/ HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n")
        .is_err()
    {
        return false;
    }
    // `HTTP/1.1 200`: moto's page, not any answer of whatever listens there.
    let mut start = [0u8; 12];
    stream.read_exact(&mut start).is_ok()
        && start.starts_with(b"HTTP/1.")
        && start.ends_with(b" 200")
}

/// Writes `files` (relative path, content) under `root`, creating folders.
pub fn write_tree(root: &Path, files: &[(&str, &str)]) {
    for (relative, content) in files {
        let path = root.join(relative);
        fs::create_dir_all(path.parent().unwrap()).unwrap();
        fs::write(path, content).unwrap();
    }
}

/// Every file under `root` as (relative path, content), sorted.
pub fn read_tree(root: &Path) -> Vec<(String, String)> {
    fn walk(root: &Path, dir: &Path, out: &mut Vec<(String, String)>) {
        for entry in fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                walk(root, &path, out);
            } else {
                let relative = path
                    .strip_prefix(root)
                    .unwrap()
                    .to_str()
                    .unwrap()
                    .to_owned();
                out.push((relative, fs::read_to_string(&path).unwrap()));
            }
        }
    }
    let mut out = Vec::new();
    if root.exists() {
        walk(root, root, &mut out);
    }
    out.sort();
    out
}

/// An executable shell script `name` in `dir` with `body` (after the `#!/bin/sh` line).
pub fn script(dir: &Path, name: &str, body: &str) -> PathBuf {
    use std::os::unix::fs::PermissionsExt;
    let path = dir.join(name);
    fs::write(&path, format!("#!/bin/sh\n{body}")).unwrap();
    fs::set_permissions(&path, fs::Permissions::from_mode(0o755)).unwrap();
    path
}
