//! The driver pod's sidecar script, run for real with `sh` and `curl` against a fake
//! multiomix-aws-emr on 127.0.0.1 that records every request.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant, SystemTime};

const SCRIPT: &str = "templates/dockerfiles/sidecar/sidecar.sh";
const DRIVER_HOSTNAME: &str = "spark-000000031kd8aj0vtn3-driver";
const JOB_ID: &str = "000000031kd8aj0vtn3";

#[derive(Debug, Clone)]
struct Recorded {
    method: String,
    path: String,
    headers: BTreeMap<String, String>,
    body: String,
}

/// A fake service answering every request with one status, recording what it got before
/// it answers: once the script has its answer, the request is in `requests()`.
struct FakeService {
    port: u16,
    requests: Arc<Mutex<Vec<Recorded>>>,
}

impl FakeService {
    fn start(status: u16) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let requests = Arc::new(Mutex::new(Vec::new()));
        let record = Arc::clone(&requests);
        thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(stream) = stream else { return };
                serve(stream, status, &record);
            }
        });
        FakeService { port, requests }
    }

    fn requests(&self) -> Vec<Recorded> {
        self.requests.lock().unwrap().clone()
    }
}

fn serve(stream: TcpStream, status: u16, record: &Mutex<Vec<Recorded>>) -> Option<()> {
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
    let child = sidecar(service.port, &heartbeat, &[("HEARTBEAT_TIMEOUT", "30")])
        .spawn()
        .unwrap();
    // The driver is alive: the file is fresh, nothing may be called.
    thread::sleep(Duration::from_millis(600));
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
    let child = sidecar(service.port, &heartbeat, &[]).spawn().unwrap();
    thread::sleep(Duration::from_millis(400));
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
    ] {
        let run = run(sidecar(service.port, &heartbeat, &[(key, value)]));
        assert_eq!(run.status.code(), Some(2), "{key}={value}: {}", run.stderr);
    }
    assert!(service.requests().is_empty());
}
