//! The driver pod's sidecar script, run for real with `sh` and `curl` against a fake
//! multiomix-aws-emr on 127.0.0.1 that records every request; its upload of the results
//! with the real AWS CLI against moto's S3 (the `moto` tests), and with stand-in CLIs for
//! what moto cannot show (a call that hangs, a stop signal in the middle of a call).

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant, SystemTime};

use crate::common::{wait_blocking, PATIENCE};
use crate::pod_scripts;
use crate::pod_scripts::{script, write_tree, MotoS3, BUCKET};

const SCRIPT: &str = "templates/dockerfiles/sidecar/sidecar.sh";
const DRIVER_HOSTNAME: &str = "spark-000000031kd8aj0vtn3-driver";
const JOB_ID: &str = "000000031kd8aj0vtn3";

#[derive(Debug, Clone)]
struct Recorded {
    method: String,
    path: String,
    headers: BTreeMap<String, String>,
    body: String,
    /// What the service's hook saw while the request was being answered.
    seen: Vec<String>,
}

/// Run by the fake service on each request before it answers.
type Hook = Box<dyn Fn() -> Vec<String> + Send>;

/// A fake service answering every request with one status, recording what it got before
/// it answers: once the script has its answer, the request is in `requests()`.
struct FakeService {
    port: u16,
    requests: Arc<Mutex<Vec<Recorded>>>,
}

impl FakeService {
    fn start(status: u16) -> Self {
        Self::start_with(status, Box::new(Vec::new))
    }

    /// A service that runs `hook` on each request, before it answers.
    fn start_with(status: u16, hook: Hook) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let requests = Arc::new(Mutex::new(Vec::new()));
        let record = Arc::clone(&requests);
        thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(stream) = stream else { return };
                serve(stream, status, &record, &hook);
            }
        });
        FakeService { port, requests }
    }

    fn requests(&self) -> Vec<Recorded> {
        self.requests.lock().unwrap().clone()
    }
}

fn serve(stream: TcpStream, status: u16, record: &Mutex<Vec<Recorded>>, hook: &Hook) -> Option<()> {
    stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    let mut reader = BufReader::new(stream.try_clone().ok()?);
    let mut line = String::new();
    reader.read_line(&mut line).ok()?;
    let mut parts = line.split_whitespace();
    let method = parts.next()?.to_string();
    let path = parts.next()?.to_string();
    let mut headers = BTreeMap::new();
    loop {
        let mut header = String::new();
        reader.read_line(&mut header).ok()?;
        let header = header.trim_end();
        if header.is_empty() {
            break;
        }
        let (name, value) = header.split_once(':')?;
        headers.insert(name.trim().to_ascii_lowercase(), value.trim().to_string());
    }
    let length: usize = headers
        .get("content-length")
        .and_then(|l| l.parse().ok())
        .unwrap_or(0);
    let mut body = vec![0; length];
    reader.read_exact(&mut body).ok()?;
    record.lock().unwrap().push(Recorded {
        method,
        path,
        headers,
        body: String::from_utf8_lossy(&body).into_owned(),
        seen: hook(),
    });
    let reason = if status < 300 { "OK" } else { "Error" };
    let mut stream = stream;
    write!(
        stream,
        "HTTP/1.1 {status} {reason}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
    )
    .ok()
}

/// A port on which nothing listens (bound, then released).
fn closed_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap().port()
}

/// A heartbeat file whose last beat was a minute ago: the driver has ended.
fn ended_driver(dir: &Path) -> PathBuf {
    let file = dir.join("main-container-terminated");
    let handle = File::create(&file).unwrap();
    handle
        .set_modified(SystemTime::now() - Duration::from_secs(60))
        .unwrap();
    file
}

struct Run {
    status: ExitStatus,
    stderr: String,
    stdout: String,
    took: Duration,
}

fn sidecar(port: u16, heartbeat: &Path, extra: &[(&str, &str)]) -> Command {
    let mut command = Command::new("sh");
    command
        .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join(SCRIPT))
        .env_clear()
        .env("PATH", "/usr/bin:/bin")
        .env("EKS_EMR_SERVICE_URL", "127.0.0.1")
        .env("EKS_EMR_SERVICE_PORT", port.to_string())
        .env("POD_HOSTNAME", DRIVER_HOSTNAME)
        .env("HEARTBEAT_FILE", heartbeat)
        .env("CHECK_INTERVAL", "0.05")
        .env("RETRY_DELAY", "0.05")
        .env("ATTEMPT_TIMEOUT", "2")
        .env("ATTEMPTS", "3")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    for (key, value) in extra {
        command.env(key, value);
    }
    command
}

/// Waits for the script, killing it if it runs past `limit`.
fn finish(mut child: Child, started: Instant, limit: Duration) -> Run {
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            // A stream sent elsewhere than a pipe reads as empty here.
            let mut stderr = String::new();
            let mut stdout = String::new();
            if let Some(mut pipe) = child.stderr.take() {
                pipe.read_to_string(&mut stderr).unwrap();
            }
            if let Some(mut pipe) = child.stdout.take() {
                pipe.read_to_string(&mut stdout).unwrap();
            }
            return Run {
                status,
                stderr,
                stdout,
                took: started.elapsed(),
            };
        }
        if started.elapsed() > limit {
            child.kill().unwrap();
            panic!("the sidecar still ran after {limit:?}");
        }
        thread::sleep(Duration::from_millis(20));
    }
}

fn run(mut command: Command) -> Run {
    let started = Instant::now();
    finish(command.spawn().unwrap(), started, Duration::from_secs(20))
}

/// Puts a `sleep` that counts its calls first on the sidecar's PATH. The sidecar sleeps
/// once after each look at the heartbeat file, so the count says how many looks it made
/// (and found no reason to call).
fn count_looks(command: &mut Command, dir: &Path) -> PathBuf {
    let bin = dir.join("bin");
    std::fs::create_dir_all(&bin).unwrap();
    let real = ["/usr/bin/sleep", "/bin/sleep"]
        .into_iter()
        .find(|p| Path::new(p).exists())
        .expect("a sleep program");
    let count = dir.join("looks");
    script(
        &bin,
        "sleep",
        &format!("echo look >> '{}'\nexec {real} \"$@\"\n", count.display()),
    );
    command.env("PATH", format!("{}:/usr/bin:/bin", bin.display()));
    count
}

/// Waits until the sidecar has slept `n` times (see `count_looks`).
fn wait_for_looks(count: &Path, n: usize) {
    let what = format!("the sidecar to look {n} times");
    wait_blocking(&what, PATIENCE, || {
        let looks = std::fs::read_to_string(count).map_or(0, |c| c.lines().count());
        if looks >= n {
            Ok(())
        } else {
            Err(looks)
        }
    })
}

fn assert_terminated_callback(request: &Recorded) {
    assert_eq!(request.method, "PATCH");
    assert_eq!(request.path, format!("/job/{JOB_ID}"));
    assert_eq!(request.headers["content-type"], "application/json");
    let body: serde_json::Value = serde_json::from_str(&request.body).unwrap();
    assert_eq!(body, serde_json::json!({"state": "Terminated"}));
}

#[test]
fn after_the_driver_ends_the_sidecar_patches_the_job_once_and_succeeds() {
    let service = FakeService::start(204);
    let dir = tempfile::tempdir().unwrap();
    let heartbeat = ended_driver(dir.path());

    let run = run(sidecar(service.port, &heartbeat, &[]));

    assert!(run.status.success(), "{}", run.stderr);
    let requests = service.requests();
    assert_eq!(requests.len(), 1, "{requests:?}");
    assert_terminated_callback(&requests[0]);
    assert!(!requests[0].headers.contains_key("authorization"));
}

#[test]
fn with_a_callback_token_the_sidecar_sends_it_as_a_bearer_and_never_prints_it() {
    let service = FakeService::start(204);
    let dir = tempfile::tempdir().unwrap();
    let heartbeat = ended_driver(dir.path());
    let token = "s3cr3t-callback-token";

    let run = run(sidecar(
        service.port,
        &heartbeat,
        &[("CALLBACK_TOKEN", token)],
    ));

    assert!(run.status.success(), "{}", run.stderr);
    let requests = service.requests();
    assert_eq!(requests.len(), 1, "{requests:?}");
    assert_terminated_callback(&requests[0]);
    assert_eq!(
        requests[0].headers["authorization"],
        format!("Bearer {token}")
    );
    assert!(!run.stderr.contains(token) && !run.stdout.contains(token));
}

#[test]
fn the_sidecar_waits_while_the_heartbeat_is_fresh_and_calls_once_it_stops() {
    let service = FakeService::start(204);
    let dir = tempfile::tempdir().unwrap();
    let heartbeat = dir.path().join("main-container-terminated");
    File::create(&heartbeat).unwrap();

    let started = Instant::now();
    let mut command = sidecar(service.port, &heartbeat, &[("HEARTBEAT_TIMEOUT", "30")]);
    let looks = count_looks(&mut command, dir.path());
    let child = command.spawn().unwrap();
    // The driver is alive: the file is fresh. Three looks and no call: a sidecar that
    // took the driver for ended would have called and left instead of looking again.
    wait_for_looks(&looks, 3);
    assert!(
        service.requests().is_empty(),
        "called while the driver runs"
    );
    // The driver ends: its last beat is now long past.
    File::options()
        .write(true)
        .open(&heartbeat)
        .unwrap()
        .set_modified(SystemTime::now() - Duration::from_secs(120))
        .unwrap();
    let run = finish(child, started, Duration::from_secs(20));

    assert!(run.status.success(), "{}", run.stderr);
    assert_eq!(service.requests().len(), 1);
}

#[test]
fn the_sidecar_waits_for_the_heartbeat_file_to_appear() {
    let service = FakeService::start(204);
    let dir = tempfile::tempdir().unwrap();
    let heartbeat = dir.path().join("main-container-terminated");

    let started = Instant::now();
    let mut command = sidecar(service.port, &heartbeat, &[]);
    let looks = count_looks(&mut command, dir.path());
    let child = command.spawn().unwrap();
    wait_for_looks(&looks, 3);
    assert!(service.requests().is_empty(), "called before any heartbeat");
    ended_driver(dir.path());
    let run = finish(child, started, Duration::from_secs(20));

    assert!(run.status.success(), "{}", run.stderr);
    assert_eq!(service.requests().len(), 1);
}

#[test]
fn without_any_heartbeat_the_sidecar_calls_anyway_once_its_start_timeout_passes() {
    let service = FakeService::start(204);
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("never-created");

    let run = run(sidecar(service.port, &missing, &[("START_TIMEOUT", "1")]));

    assert!(run.status.success(), "{}", run.stderr);
    assert_eq!(service.requests().len(), 1);
    assert!(run.took < Duration::from_secs(5), "{:?}", run.took);
}

#[test]
fn a_stop_signal_while_the_driver_runs_makes_the_sidecar_call_before_leaving() {
    let service = FakeService::start(204);
    let dir = tempfile::tempdir().unwrap();
    let heartbeat = dir.path().join("main-container-terminated");
    File::create(&heartbeat).unwrap();

    // Its log goes to a file, to see when it is waiting: it sets its TERM trap before that.
    let log = dir.path().join("sidecar.log");
    let started = Instant::now();
    let child = sidecar(service.port, &heartbeat, &[("HEARTBEAT_TIMEOUT", "300")])
        .stderr(File::create(&log).unwrap())
        .spawn()
        .unwrap();
    while !std::fs::read_to_string(&log)
        .unwrap()
        .contains("waiting for the driver to end")
    {
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "the sidecar never said it was waiting"
        );
        thread::sleep(Duration::from_millis(10));
    }
    assert!(service.requests().is_empty());
    let pid = nix::unistd::Pid::from_raw(child.id() as i32);
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM).unwrap();
    let run = finish(child, started, Duration::from_secs(10));

    let log = std::fs::read_to_string(&log).unwrap();
    assert!(run.status.success(), "{log}");
    assert!(log.contains("stopped by a signal"), "{log}");
    let requests = service.requests();
    assert_eq!(requests.len(), 1);
    assert_terminated_callback(&requests[0]);
}

#[test]
fn with_nothing_listening_the_sidecar_gives_up_after_its_attempts_in_bounded_time() {
    let port = closed_port();
    let dir = tempfile::tempdir().unwrap();
    let heartbeat = ended_driver(dir.path());

    let run = run(sidecar(port, &heartbeat, &[("ATTEMPTS", "3")]));

    assert!(!run.status.success());
    assert!(run.took < Duration::from_secs(10), "{:?}", run.took);
    assert!(run.stderr.contains("call 3/3"), "{}", run.stderr);
    assert!(!run.stderr.contains("call 4/"), "{}", run.stderr);
}

#[test]
fn a_failing_service_is_called_exactly_the_configured_number_of_times() {
    let service = FakeService::start(503);
    let dir = tempfile::tempdir().unwrap();
    let heartbeat = ended_driver(dir.path());

    let run = run(sidecar(service.port, &heartbeat, &[("ATTEMPTS", "4")]));

    assert!(!run.status.success());
    let requests = service.requests();
    assert_eq!(requests.len(), 4, "{requests:?}");
    requests.iter().for_each(assert_terminated_callback);
}

#[test]
fn a_refusal_from_the_service_is_not_retried() {
    let service = FakeService::start(401);
    let dir = tempfile::tempdir().unwrap();
    let heartbeat = ended_driver(dir.path());

    let run = run(sidecar(service.port, &heartbeat, &[("ATTEMPTS", "4")]));

    assert!(!run.status.success());
    assert_eq!(service.requests().len(), 1);
    assert!(run.stderr.contains("401"), "{}", run.stderr);
}

#[test]
fn a_host_name_without_a_valid_job_id_stops_the_sidecar_without_a_call() {
    let service = FakeService::start(204);
    let dir = tempfile::tempdir().unwrap();
    let heartbeat = ended_driver(dir.path());
    let too_long = format!("spark-{}-driver", "a".repeat(65));

    for hostname in [
        "driver",
        "spark--driver",
        "spark-000000031KD8AJ0VTN3-driver",
        "spark-0000;rm -rf-driver",
        "spark-job_1-driver",
        too_long.as_str(),
    ] {
        let run = run(sidecar(
            service.port,
            &heartbeat,
            &[("POD_HOSTNAME", hostname)],
        ));
        assert_eq!(run.status.code(), Some(2), "{hostname}: {}", run.stderr);
        assert!(
            run.stderr.contains("no job id"),
            "{hostname}: {}",
            run.stderr
        );
    }
    assert!(service.requests().is_empty());
}

#[test]
fn the_longest_valid_job_id_is_accepted() {
    let service = FakeService::start(204);
    let dir = tempfile::tempdir().unwrap();
    let heartbeat = ended_driver(dir.path());
    let id = "z".repeat(64);
    let hostname = format!("spark-{id}-driver");

    let run = run(sidecar(
        service.port,
        &heartbeat,
        &[("POD_HOSTNAME", hostname.as_str())],
    ));

    assert!(run.status.success(), "{}", run.stderr);
    assert_eq!(service.requests()[0].path, format!("/job/{id}"));
}

#[test]
fn malformed_numbers_in_the_environment_are_refused_before_any_call() {
    let service = FakeService::start(204);
    let dir = tempfile::tempdir().unwrap();
    let heartbeat = ended_driver(dir.path());

    for (key, value) in [
        ("ATTEMPTS", "0"),
        ("ATTEMPTS", "three"),
        ("MAX_WAIT", "-1"),
        ("RETRY_DELAY", "1s"),
        ("EKS_EMR_SERVICE_PROTO", "ftp"),
        ("UPLOAD_ATTEMPTS", "0"),
        ("UPLOAD_TIMEOUT", "0"),
        ("UPLOAD_TIMEOUT", "-5"),
        ("STOP_UPLOAD_TIMEOUT", "0.0"),
        ("RESULTS_S3_URI", "/var/results"),
        ("RESULTS_S3_URI", "s3://"),
    ] {
        let run = run(sidecar(service.port, &heartbeat, &[(key, value)]));
        assert_eq!(run.status.code(), Some(2), "{key}={value}: {}", run.stderr);
    }
    assert!(service.requests().is_empty());
}

// ---------------------------------------------------------------------------------------
// The results: uploaded to S3 after the driver ends and before the call

const APP: &str = "BBHA_42";

/// What a finished job leaves in RESULTS_PATH: its own folder, another app's folder, and
/// the hidden folder a job writes into before renaming it into place.
fn job_results(results: &Path) {
    write_tree(
        results,
        &[
            (
                "BBHA_42/result.json",
                r#"{"features": "BRCA1_1", "best_metric": 0.7}"#,
            ),
            ("BBHA_42/times.json", r#"{"fitness": [0.7]}"#),
            ("BBHA_42/model.pkl", "pickled"),
            ("BBHA_42/extra/notes.txt", "nested"),
            (
                "BBHA_7/result.json",
                "another app's, never uploaded by this pod",
            ),
            (".BBHA_42.partial-12/result.json", "half written"),
        ],
    );
}

/// The sidecar set up to upload APP's results from `results` with the CLI `cli`.
fn uploading(port: u16, heartbeat: &Path, results: &Path, cli: &Path) -> Command {
    let mut command = sidecar(port, heartbeat, &[]);
    command
        .env("RESULTS_S3_URI", format!("s3://{BUCKET}/results/"))
        .env("RESULTS_PATH", results)
        .env("APP_NAME", APP)
        .env("AWS_CLI", cli)
        .env("UPLOAD_ATTEMPTS", "3")
        .env("UPLOAD_TIMEOUT", "60");
    command
}

/// A stand-in CLI that appends its arguments, on one line, to `dir/calls`, then runs
/// `then` (shell code).
fn stand_in_cli(dir: &Path, then: &str) -> (PathBuf, PathBuf) {
    let calls = dir.join("calls");
    let cli = script(
        dir,
        "aws-stand-in",
        &format!("echo \"$*\" >> '{}'\n{then}\n", calls.display()),
    );
    (cli, calls)
}

fn lines(path: &Path) -> Vec<String> {
    std::fs::read_to_string(path)
        .map(|c| c.lines().map(str::to_owned).collect())
        .unwrap_or_default()
}

fn uploaded_keys() -> Vec<String> {
    ["extra/notes.txt", "model.pkl", "result.json", "times.json"]
        .iter()
        .map(|f| format!("results/{APP}/{f}"))
        .collect()
}

#[test]
fn with_moto_the_sidecar_uploads_exactly_its_apps_results_result_json_last_then_calls() {
    let Some(moto) = MotoS3::start() else { return };
    moto.put_files(
        "",
        &[
            ("results/BBHA_7/result.json", "another app's result"),
            (
                "results/BBHA_420/result.json",
                "an app whose name starts the same",
            ),
            ("datasets/BBHA_42/molecules.csv", "the inputs"),
        ],
    );
    let before = moto.keys();
    // When the call reaches the service, it notes how many requests S3 has had, then
    // lists the bucket.
    let (mark_now, list) = (moto.marker(), moto.lister());
    let service = FakeService::start_with(
        204,
        Box::new(move || {
            let mut seen = vec![mark_now().to_string()];
            seen.extend(list());
            seen
        }),
    );
    let dir = tempfile::tempdir().unwrap();
    let heartbeat = ended_driver(dir.path());
    let results = dir.path().join("results");
    job_results(&results);
    let mark = moto.mark();

    let mut command = uploading(service.port, &heartbeat, &results, &moto.cli);
    command.envs(moto.env()).env("ATTEMPT_TIMEOUT", "30");
    let run = run(command);

    assert!(run.status.success(), "{}", run.stderr);
    let requests = service.requests();
    assert_eq!(requests.len(), 1, "{requests:?}");
    assert_terminated_callback(&requests[0]);
    // Everything was in S3 when the service was called.
    let (mark_at_call, seen) = requests[0].seen.split_first().unwrap();
    let mut expected = before.clone();
    expected.extend(uploaded_keys());
    expected.sort();
    assert_eq!(seen, expected);
    assert_eq!(moto.keys(), expected);
    assert_eq!(
        moto.get(&format!("results/{APP}/result.json")),
        r#"{"features": "BRCA1_1", "best_metric": 0.7}"#
    );
    assert_eq!(
        moto.get("results/BBHA_7/result.json"),
        "another app's result",
        "another app's prefix is untouched"
    );

    // What the sidecar asked of S3 (before the call; the service's own listing and the
    // test's reads come after): only writes, only under the app's prefix, and
    // result.json alone and last.
    let mut s3_calls = moto.requests_since(mark);
    s3_calls.truncate(mark_at_call.parse::<usize>().unwrap() - mark);
    let prefix = format!("/{BUCKET}/results/{APP}/");
    for request in &s3_calls {
        assert_eq!(request.method, "PUT", "{s3_calls:?}");
        assert!(request.path.starts_with(&prefix), "{s3_calls:?}");
    }
    let result_json = format!("{prefix}result.json");
    assert_eq!(s3_calls.last().unwrap().path, result_json, "{s3_calls:?}");
    assert_eq!(
        s3_calls.iter().filter(|r| r.path == result_json).count(),
        1,
        "{s3_calls:?}"
    );
    assert_eq!(s3_calls.len(), uploaded_keys().len(), "{s3_calls:?}");
}

#[test]
fn with_moto_a_failed_upload_is_tried_again_and_the_results_arrive_whole() {
    let Some(moto) = MotoS3::start() else { return };
    let service = FakeService::start(204);
    let dir = tempfile::tempdir().unwrap();
    let heartbeat = ended_driver(dir.path());
    let results = dir.path().join("results");
    job_results(&results);
    // The first call fails as the CLI does when S3 cannot be reached; later ones are
    // the real CLI's.
    let failed_once = dir.path().join("failed-once");
    let (cli, calls) = stand_in_cli(
        dir.path(),
        &format!(
            "if [ ! -e '{failed}' ]; then : > '{failed}'; echo 'Could not connect to the endpoint URL' >&2; exit 1; fi\n\
             exec '{real}' \"$@\"",
            failed = failed_once.display(),
            real = moto.cli.display()
        ),
    );

    let mut command = uploading(service.port, &heartbeat, &results, &cli);
    command.envs(moto.env());
    let run = run(command);

    assert!(run.status.success(), "{}", run.stderr);
    assert!(run.stderr.contains("upload try 1/3"), "{}", run.stderr);
    assert!(run.stderr.contains("try 2/3"), "{}", run.stderr);
    assert!(!run.stderr.contains("try 3/3"), "{}", run.stderr);
    // The failed call, then the files and result.json.
    assert_eq!(lines(&calls).len(), 3, "{:?}", lines(&calls));
    assert_eq!(moto.keys(), uploaded_keys());
    assert_eq!(service.requests().len(), 1);
}

#[test]
fn with_moto_a_stop_signal_while_waiting_uploads_the_results_once_then_calls() {
    let Some(moto) = MotoS3::start() else { return };
    let service = FakeService::start(204);
    let dir = tempfile::tempdir().unwrap();
    // A driver still beating: only the signal ends the wait.
    let heartbeat = dir.path().join("main-container-terminated");
    File::create(&heartbeat).unwrap();
    let results = dir.path().join("results");
    job_results(&results);
    let log = dir.path().join("sidecar.log");

    let mut command = uploading(service.port, &heartbeat, &results, &moto.cli);
    command
        .envs(moto.env())
        .env("HEARTBEAT_TIMEOUT", "300")
        .stderr(File::create(&log).unwrap());
    let started = Instant::now();
    let child = command.spawn().unwrap();
    while !std::fs::read_to_string(&log)
        .unwrap()
        .contains("waiting for the driver to end")
    {
        assert!(started.elapsed() < Duration::from_secs(20));
        thread::sleep(Duration::from_millis(10));
    }
    let pid = nix::unistd::Pid::from_raw(child.id() as i32);
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM).unwrap();
    let run = finish(child, started, Duration::from_secs(30));

    let log = std::fs::read_to_string(&log).unwrap();
    assert!(run.status.success(), "{log}");
    assert!(log.contains("stopped by a signal while waiting"), "{log}");
    assert!(log.contains("try 1/1"), "{log}");
    assert_eq!(moto.keys(), uploaded_keys());
    assert_eq!(service.requests().len(), 1);
}

#[test]
fn when_every_upload_fails_the_sidecar_still_calls_and_says_so_loudly() {
    let Some(cli) = pod_scripts::aws_cli() else {
        return;
    };
    let service = FakeService::start(204);
    let dir = tempfile::tempdir().unwrap();
    let heartbeat = ended_driver(dir.path());
    let results = dir.path().join("results");
    job_results(&results);
    // The real CLI, with nothing listening where S3 should be.
    let endpoint = format!("http://127.0.0.1:{}", closed_port());

    let mut command = uploading(service.port, &heartbeat, &results, &cli);
    command
        .envs(pod_scripts::aws_env(&endpoint, dir.path()))
        .env("UPLOAD_ATTEMPTS", "2");
    let run = run(command);

    assert_eq!(run.status.code(), Some(3), "{}", run.stderr);
    assert!(run.stderr.contains("upload try 2/2"), "{}", run.stderr);
    assert!(
        run.stderr.contains("UPLOAD FAILED after 2 tries"),
        "{}",
        run.stderr
    );
    let requests = service.requests();
    assert_eq!(requests.len(), 1);
    assert_terminated_callback(&requests[0]);
}

#[test]
fn an_upload_call_that_hangs_is_ended_by_its_timeout_and_the_sidecar_calls() {
    let service = FakeService::start(204);
    let dir = tempfile::tempdir().unwrap();
    let heartbeat = ended_driver(dir.path());
    let results = dir.path().join("results");
    job_results(&results);
    let (cli, calls) = stand_in_cli(dir.path(), "exec sleep 600");

    let mut command = uploading(service.port, &heartbeat, &results, &cli);
    command
        .env("UPLOAD_TIMEOUT", "0.5")
        .env("UPLOAD_ATTEMPTS", "2");
    // The stand-in sleeps for ten minutes: `run` gives up after 20 s.
    let run = run(command);

    assert_eq!(run.status.code(), Some(3), "{}", run.stderr);
    assert!(run.stderr.contains("status 124"), "{}", run.stderr);
    // Two tries, each stopped in its first call (result.json never started).
    assert_eq!(lines(&calls).len(), 2, "{:?}", lines(&calls));
    assert_eq!(service.requests().len(), 1);
}

#[test]
fn a_stop_signal_during_the_upload_ends_it_and_the_sidecar_calls_at_once() {
    let service = FakeService::start(204);
    let dir = tempfile::tempdir().unwrap();
    let heartbeat = ended_driver(dir.path());
    let results = dir.path().join("results");
    job_results(&results);
    let (cli, calls) = stand_in_cli(dir.path(), "exec sleep 600");

    let log = dir.path().join("sidecar.log");
    let mut command = uploading(service.port, &heartbeat, &results, &cli);
    command
        .env("UPLOAD_TIMEOUT", "600")
        .stderr(File::create(&log).unwrap());
    let started = Instant::now();
    let child = command.spawn().unwrap();
    while lines(&calls).is_empty() {
        assert!(started.elapsed() < Duration::from_secs(20), "no upload");
        thread::sleep(Duration::from_millis(10));
    }
    let pid = nix::unistd::Pid::from_raw(child.id() as i32);
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM).unwrap();
    // The call under way would take ten minutes and the timeout allows that much: the
    // sidecar finishing at all shows the signal ended the upload.
    let run = finish(child, started, Duration::from_secs(20));

    let log = std::fs::read_to_string(&log).unwrap();
    assert_eq!(run.status.code(), Some(3), "{log}");
    assert!(log.contains("UPLOAD INTERRUPTED"), "{log}");
    assert_eq!(lines(&calls).len(), 1, "no second call after the signal");
    let requests = service.requests();
    assert_eq!(requests.len(), 1);
    assert_terminated_callback(&requests[0]);
}

#[test]
fn without_a_results_folder_nothing_is_uploaded_and_the_sidecar_calls() {
    let service = FakeService::start(204);
    let dir = tempfile::tempdir().unwrap();
    let heartbeat = ended_driver(dir.path());
    let results = dir.path().join("results");
    // Another app's results, and a half-written folder, but nothing of this job's.
    write_tree(
        &results,
        &[
            ("BBHA_7/result.json", "{}"),
            (".BBHA_42.partial-3/times.json", "{}"),
        ],
    );
    let (cli, calls) = stand_in_cli(dir.path(), "exit 0");

    let run = run(uploading(service.port, &heartbeat, &results, &cli));

    assert!(run.status.success(), "{}", run.stderr);
    assert!(run.stderr.contains("nothing to upload"), "{}", run.stderr);
    assert!(lines(&calls).is_empty(), "{:?}", lines(&calls));
    assert_eq!(service.requests().len(), 1);
}

#[test]
fn without_a_results_s3_uri_the_sidecar_never_runs_the_cli() {
    let service = FakeService::start(204);
    let dir = tempfile::tempdir().unwrap();
    let heartbeat = ended_driver(dir.path());
    let results = dir.path().join("results");
    job_results(&results);
    let (cli, calls) = stand_in_cli(dir.path(), "exit 0");

    for unset in [None, Some("")] {
        let mut command = uploading(service.port, &heartbeat, &results, &cli);
        command.env_remove("RESULTS_S3_URI");
        if let Some(value) = unset {
            command.env("RESULTS_S3_URI", value);
        }
        let run = run(command);
        assert!(run.status.success(), "{}", run.stderr);
    }
    assert!(lines(&calls).is_empty(), "{:?}", lines(&calls));
    assert_eq!(service.requests().len(), 2);
}

#[test]
fn an_empty_or_unsafe_app_name_skips_the_upload_but_not_the_call() {
    let service = FakeService::start(204);
    let dir = tempfile::tempdir().unwrap();
    let heartbeat = ended_driver(dir.path());
    let results = dir.path().join("results");
    job_results(&results);
    let (cli, calls) = stand_in_cli(dir.path(), "exit 0");

    let cases = [
        ("", "DATA_STAGING=s3"),
        ("..", "not one safe folder name"),
        ("../BBHA_7", "not one safe folder name"),
        ("BBHA_42/extra", "not one safe folder name"),
    ];
    for (app_name, says) in cases {
        let mut command = uploading(service.port, &heartbeat, &results, &cli);
        command.env("APP_NAME", app_name);
        let run = run(command);
        assert_eq!(run.status.code(), Some(3), "{app_name:?}: {}", run.stderr);
        assert!(run.stderr.contains(says), "{app_name:?}: {}", run.stderr);
        assert!(
            run.stderr.contains("will NOT be uploaded"),
            "{}",
            run.stderr
        );
    }
    assert!(lines(&calls).is_empty(), "{:?}", lines(&calls));
    assert_eq!(service.requests().len(), cases.len());
}
