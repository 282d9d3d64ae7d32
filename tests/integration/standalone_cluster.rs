//! A real Spark standalone cluster: a Master and two Workers (one core each), started
//! from the pyspark distribution's own jars on the loopback, and the service's real
//! binary on the local backend with `SPARK_MASTER=spark://127.0.0.1:PORT`.
//!
//! - Multiomix's BBHA request ends COMPLETED, its driver here (client mode, reading the
//!   shared folders), and Spark's event log shows tasks run by an executor of each worker.
//! - A cancelled job leaves no application on the Master and no executor or Python worker
//!   on the Workers; the test prints how long that took.
//! - On a `local[2]` master, a cancelled job leaves no process of its group (spark-submit,
//!   the driver's Python, the Python workers); also timed.
//!
//! Needs REAL_SPARK_SUBMIT and PYSPARK_PYTHON (dev/test.sh sets both) and `java`: skipped
//! with a message without them on a developer's machine, failing under CI. Every process
//! the test starts is stopped when the test ends, passed or not: SIGTERM (a Worker stops
//! its executors on it, the service its jobs), then SIGKILL. They stay in the test's
//! process group, so that nextest's own SIGTERM on a timeout reaches them too.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use multiomix_fakes::FakeMultiomix;
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use serde_json::{json, Value};

use crate::common;
use crate::common::app::FAST;

const BIN: &str = env!("CARGO_BIN_EXE_multiomix-aws-emr");

struct Tools {
    spark_submit: String,
    python: String,
    spark_home: PathBuf,
}

fn tools() -> Option<Tools> {
    let (Ok(spark_submit), Ok(python)) = (
        std::env::var("REAL_SPARK_SUBMIT"),
        std::env::var("PYSPARK_PYTHON"),
    ) else {
        if std::env::var_os("CI").is_some() {
            panic!("REAL_SPARK_SUBMIT and PYSPARK_PYTHON must be set under CI (run dev/test.sh)");
        }
        eprintln!(
            "skipping: REAL_SPARK_SUBMIT or PYSPARK_PYTHON is not set (dev/test.sh sets both)"
        );
        return None;
    };
    // The Spark distribution pip installs: the pyspark package folder.
    let out = Command::new(&python)
        .args([
            "-c",
            "import os, pyspark; print(os.path.dirname(pyspark.__file__))",
        ])
        .output()
        .expect("PYSPARK_PYTHON runs");
    assert!(out.status.success(), "pyspark is not importable");
    let spark_home = PathBuf::from(String::from_utf8(out.stdout).unwrap().trim());
    Some(Tools {
        spark_submit,
        python,
        spark_home,
    })
}

/// The processes of the cluster and of the service, stopped in reverse order of their
/// start when this is dropped: the service (which stops its jobs), the Workers (which stop
/// their executors and so the Python workers), the Master.
#[derive(Default)]
struct Processes(Vec<Child>);

impl Processes {
    fn spawn(&mut self, command: &mut Command) {
        let child = command
            .stdin(Stdio::null())
            .spawn()
            .expect("the process starts");
        self.0.push(child);
    }
}

impl Drop for Processes {
    fn drop(&mut self) {
        for child in self.0.iter_mut().rev() {
            let _ = kill(Pid::from_raw(child.id() as i32), Signal::SIGTERM);
            let deadline = Instant::now() + Duration::from_secs(15);
            while matches!(child.try_wait(), Ok(None)) && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(100));
            }
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

struct Cluster {
    master_port: u16,
    master_ui: u16,
    /// Web UI port of each Worker: it names the Worker in the executors' log URLs.
    worker_uis: Vec<u16>,
    work_dirs: Vec<PathBuf>,
}

impl Cluster {
    /// A Master and two Workers of one core and 1 GiB each, on 127.0.0.1 only.
    async fn start(tools: &Tools, dir: &Path, processes: &mut Processes) -> Cluster {
        let spark_class = tools.spark_home.join("bin/spark-class");
        let spark_command = |class: &str, log: &str| {
            let mut c = Command::new(&spark_class);
            c.arg(class)
                .env("SPARK_HOME", &tools.spark_home)
                .env("SPARK_LOCAL_IP", "127.0.0.1")
                .env("SPARK_LOG_DIR", dir)
                .env("PYSPARK_PYTHON", &tools.python)
                .stdout(std::fs::File::create(dir.join(log)).unwrap())
                .stderr(std::fs::File::create(dir.join(log)).unwrap());
            c
        };
        let (master_port, master_ui) = (common::free_port(), common::free_port());
        processes.spawn(
            spark_command("org.apache.spark.deploy.master.Master", "master.log").args([
                "--host",
                "127.0.0.1",
                "--port",
                &master_port.to_string(),
                "--webui-port",
                &master_ui.to_string(),
            ]),
        );
        let mut worker_uis = Vec::new();
        let mut work_dirs = Vec::new();
        for i in 1..=2 {
            let ui = common::free_port();
            let work_dir = dir.join(format!("worker-{i}"));
            std::fs::create_dir_all(&work_dir).unwrap();
            processes.spawn(
                spark_command(
                    "org.apache.spark.deploy.worker.Worker",
                    &format!("worker-{i}.log"),
                )
                .args([
                    "--host",
                    "127.0.0.1",
                    "--cores",
                    "1",
                    "--memory",
                    "1g",
                    "--webui-port",
                    &ui.to_string(),
                    "--work-dir",
                    work_dir.to_str().unwrap(),
                    &format!("spark://127.0.0.1:{master_port}"),
                ]),
            );
            worker_uis.push(ui);
            work_dirs.push(work_dir);
        }
        let cluster = Cluster {
            master_port,
            master_ui,
            worker_uis,
            work_dirs,
        };
        let what = format!("the cluster to come up (logs in {})", dir.display());
        common::wait_for(&what, Duration::from_secs(180), || async {
            match cluster.master_json().await {
                Some(m) if m["status"] == "ALIVE" && m["aliveworkers"] == 2 => Ok(()),
                seen => Err(seen),
            }
        })
        .await;
        cluster
    }

    /// The Master's state (`/json/` of its web UI).
    async fn master_json(&self) -> Option<Value> {
        let url = format!("http://127.0.0.1:{}/json/", self.master_ui);
        reqwest::get(url).await.ok()?.json().await.ok()
    }

    /// The processes whose working folder is under a Worker's: its executors and their
    /// Python workers.
    fn executor_processes(&self) -> Vec<u32> {
        let mut found = Vec::new();
        for entry in std::fs::read_dir("/proc").unwrap().flatten() {
            let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else {
                continue;
            };
            if let Ok(cwd) = std::fs::read_link(entry.path().join("cwd")) {
                if self.work_dirs.iter().any(|w| cwd.starts_with(w)) {
                    found.push(pid);
                }
            }
        }
        found
    }
}

/// The `SparkListener*` events of the only event log in `dir`.
fn event_log(dir: &Path) -> Vec<Value> {
    let files: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .filter(|p| !p.to_string_lossy().ends_with(".inprogress"))
        .collect();
    assert_eq!(files.len(), 1, "{files:?}");
    std::fs::read_to_string(&files[0])
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

/// Tasks per Worker (by web UI port), from the executors' log URLs and the tasks' ends.
fn tasks_by_worker(events: &[Value]) -> BTreeMap<u16, usize> {
    let mut worker_of = BTreeMap::new();
    for e in events
        .iter()
        .filter(|e| e["Event"] == "SparkListenerExecutorAdded")
    {
        let url = e["Executor Info"]["Log Urls"]["stdout"].as_str().unwrap();
        let port = url
            .trim_start_matches("http://")
            .split(['/', ':'])
            .nth(1)
            .unwrap()
            .parse::<u16>()
            .unwrap();
        worker_of.insert(e["Executor ID"].as_str().unwrap().to_owned(), port);
    }
    let mut tasks = BTreeMap::new();
    for e in events
        .iter()
        .filter(|e| e["Event"] == "SparkListenerTaskEnd")
    {
        let executor = e["Task Info"]["Executor ID"].as_str().unwrap();
        *tasks.entry(worker_of[executor]).or_insert(0) += 1;
    }
    tasks
}

fn bbha_request(app: &str, iterations: u32) -> Value {
    json!({"name": format!("JobforFSExperiment{app}"), "algorithm": 1, "entrypoint_arguments": [
        {"name": "app-name", "value": app},
        {"name": "molecules-dataset", "value": format!("{app}/molecules.csv")},
        {"name": "clinical-dataset", "value": format!("{app}/clinical.csv")},
        {"name": "model", "value": "svm"},
        {"name": "n-stars", "value": 5},
        {"name": "bbha-iterations", "value": iterations},
        {"name": "cv-folds", "value": "3"},
        {"name": "svm-kernel", "value": "linear"},
        {"name": "random-state", "value": "7"}]})
}

/// The service's binary on the local backend with `master`, its datasets folder holding
/// the example dataset as BBHA_51 and BBHA_52.
struct Service {
    http: reqwest::Client,
    base: String,
    results: PathBuf,
}

impl Service {
    async fn start(
        tools: &Tools,
        dir: &Path,
        master: &str,
        conf: &Path,
        multiomix: &FakeMultiomix,
        processes: &mut Processes,
    ) -> Service {
        let repo = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
        let datasets = dir.join("datasets");
        let results = dir.join("results");
        std::fs::create_dir_all(&results).unwrap();
        for app in ["BBHA_51", "BBHA_52"] {
            std::fs::create_dir_all(datasets.join(app)).unwrap();
            for file in ["molecules.csv", "clinical.csv"] {
                std::fs::copy(
                    repo.join("examples/datasets/example").join(file),
                    datasets.join(app).join(file),
                )
                .unwrap();
            }
        }
        let port = common::free_port();
        let mut service = Command::new(BIN);
        service
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("HOME", dir)
            .env("PYSPARK_PYTHON", &tools.python)
            .env("SPARK_LOCAL_IP", "127.0.0.1")
            .env("SPARK_CONF_DIR", conf)
            .env("JOB_BACKEND", "local")
            .env("SPARK_SUBMIT", &tools.spark_submit)
            .env("SPARK_MASTER", master)
            .env("EMR_DRIVER_MEMORY", "1g")
            .env("EMR_EXECUTOR_MEMORY", "512m")
            .env("EMR_EXECUTOR_INSTANCES", "2")
            .env("LOCAL_SCRIPTS_DIR", repo.join("scripts"))
            .env("LOCAL_LOG_DIR", dir.join("logs"))
            .env("LOCAL_MAX_CONCURRENT", "1")
            .env("DATASETS_PATH", &datasets)
            .env("RESULTS_PATH", &results)
            .env("DATABASE_URL", format!("sqlite:{}/store.db", dir.display()))
            .env("MULTIOMIX_URL", multiomix.url())
            .envs(FAST.iter().copied())
            .env("HOST", "127.0.0.1")
            .env("PORT", port.to_string())
            .stdout(std::fs::File::create(dir.join("service.log")).unwrap())
            .stderr(std::fs::File::create(dir.join("service.err")).unwrap());
        if let Some(java_home) = std::env::var_os("JAVA_HOME") {
            service.env("JAVA_HOME", java_home);
        }
        processes.spawn(&mut service);
        let base = format!("http://127.0.0.1:{port}");
        let http = reqwest::Client::new();
        common::wait_healthy(&http, &base, Duration::from_secs(30)).await;
        Service {
            http,
            base,
            results,
        }
    }

    /// Fails the test if the job has ended.
    async fn assert_unfinished(&self, id: &str) {
        let job: Value = self
            .http
            .get(format!("{}/job/{id}", self.base))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert!(
            job["state"] == "PENDING" || job["state"] == "RUNNING",
            "{job}"
        );
    }
}

/// Every process as (pid, parent, process group), from /proc.
fn process_table() -> Vec<(u32, u32, u32)> {
    let mut table = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else {
            continue;
        };
        // "pid (comm) state ppid pgrp ...": comm may hold anything, so after its ')'.
        let fields: Vec<u32> = stat
            .rsplit_once(')')
            .map(|(_, rest)| {
                rest.split_whitespace()
                    .skip(1)
                    .take(2)
                    .filter_map(|f| f.parse().ok())
                    .collect()
            })
            .unwrap_or_default();
        if let [parent, group] = fields[..] {
            table.push((pid, parent, group));
        }
    }
    table
}

/// `roots`, their process groups and every descendant of theirs, alive now. PySpark's
/// daemon makes a group of its own, so a job's Python workers are found as descendants.
fn job_processes(roots: &BTreeSet<u32>) -> BTreeSet<u32> {
    let table = process_table();
    let groups: BTreeSet<u32> = table
        .iter()
        .filter(|(pid, _, _)| roots.contains(pid))
        .map(|(_, _, group)| *group)
        .collect();
    let mut found: BTreeSet<u32> = table
        .iter()
        .filter(|(pid, _, group)| roots.contains(pid) || groups.contains(group))
        .map(|(pid, _, _)| *pid)
        .collect();
    loop {
        let children: Vec<u32> = table
            .iter()
            .filter(|(pid, parent, _)| found.contains(parent) && !found.contains(pid))
            .map(|(pid, _, _)| *pid)
            .collect();
        if children.is_empty() {
            return found;
        }
        found.extend(children);
    }
}

/// The JVM of the local job whose app is `app`.
fn spark_submit_of(app: &str) -> Option<u32> {
    std::fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .find_map(|entry| {
            let pid = entry.file_name().to_string_lossy().parse::<u32>().ok()?;
            let cmdline = std::fs::read(entry.path().join("cmdline")).ok()?;
            let cmdline = String::from_utf8_lossy(&cmdline);
            (cmdline.contains("org.apache.spark.deploy.SparkSubmit") && cmdline.contains(app))
                .then_some(pid)
        })
}

#[tokio::test]
async fn a_cancelled_job_on_a_local_master_leaves_no_process_behind() {
    let Some(tools) = tools() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let conf = dir.path().join("conf");
    std::fs::create_dir_all(&conf).unwrap();
    let mut processes = Processes::default();
    let multiomix = FakeMultiomix::start().await;
    let service = Service::start(
        &tools,
        dir.path(),
        "local[2]",
        &conf,
        &multiomix,
        &mut processes,
    )
    .await;
    let (http, base) = (&service.http, &service.base);

    let id = common::submit_job(http, base, &bbha_request("BBHA_52", 10_000)).await;
    let processes_of_job = common::wait_for(
        "the job's Python workers to run",
        Duration::from_secs(300),
        || async {
            service.assert_unfinished(&id).await;
            // spark-submit's JVM, the driver's Python, a daemon and its workers.
            let jvm = spark_submit_of("BBHA_52").ok_or("no spark-submit yet")?;
            let found = job_processes(&BTreeSet::from([jvm]));
            let workers = found
                .iter()
                .filter(|pid| {
                    std::fs::read(format!("/proc/{pid}/cmdline"))
                        .is_ok_and(|c| String::from_utf8_lossy(&c).contains("pyspark.daemon"))
                })
                .count();
            if workers >= 2 {
                Ok(found)
            } else {
                Err("fewer than two Python workers")
            }
        },
    )
    .await;
    let before = processes_of_job.len();
    let deleted = Instant::now();
    let r = http
        .delete(format!("{base}/job/{id}"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let gone = common::wait_for(
        "the job's processes to end after DELETE",
        Duration::from_secs(60),
        || {
            let left = job_processes(&processes_of_job);
            std::future::ready(left.is_empty().then(|| deleted.elapsed()).ok_or(left))
        },
    )
    .await;
    let job = common::read_job_until(http, base, &id, Duration::from_secs(60), |job| {
        job["state"] == "CANCELLED"
    })
    .await;
    assert_eq!(job["state"], "CANCELLED");
    println!(
        "cancel on local[2]: {before} processes of the job (spark-submit, the driver's \
         Python, the Python workers); the last ended {:.2} s after DELETE",
        gone.as_secs_f64()
    );
}

#[tokio::test]
async fn a_bbha_request_runs_on_both_workers_of_a_standalone_cluster_and_cancel_stops_its_executors(
) {
    let Some(tools) = tools() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let mut processes = Processes::default();
    let cluster = Cluster::start(&tools, dir.path(), &mut processes).await;

    // The lab's spark-defaults.conf: an event log to read the tasks from, and the first
    // stage waits for both executors so that both take part.
    let conf = dir.path().join("conf");
    let events = dir.path().join("events");
    std::fs::create_dir_all(&conf).unwrap();
    std::fs::create_dir_all(&events).unwrap();
    std::fs::write(
        conf.join("spark-defaults.conf"),
        format!(
            "spark.eventLog.enabled true\nspark.eventLog.dir file://{}\n\
             spark.eventLog.compress false\nspark.eventLog.rolling.enabled false\n\
             spark.scheduler.minRegisteredResourcesRatio 1.0\n\
             spark.scheduler.maxRegisteredResourcesWaitingTime 120s\nspark.ui.enabled false\n",
            events.display()
        ),
    )
    .unwrap();
    let multiomix = FakeMultiomix::start().await;
    let master = format!("spark://127.0.0.1:{}", cluster.master_port);
    let service = Service::start(
        &tools,
        dir.path(),
        &master,
        &conf,
        &multiomix,
        &mut processes,
    )
    .await;
    let (http, base, results) = (&service.http, &service.base, &service.results);

    // A BBHA request, to COMPLETED, with tasks on both workers.
    let id = common::submit_job(http, base, &bbha_request("BBHA_51", 2)).await;
    let job = common::read_job_until(http, base, &id, Duration::from_secs(400), |job| {
        job["state"] != "PENDING" && job["state"] != "RUNNING"
    })
    .await;
    let log = std::fs::read_to_string(job["logUri"].as_str().unwrap()).unwrap_or_default();
    assert_eq!(job["state"], "COMPLETED", "{job}\n--- log ---\n{log}");
    assert!(results.join("BBHA_51/result.json").is_file());
    let tasks = tasks_by_worker(&event_log(&events));
    let workers: BTreeSet<u16> = tasks.keys().copied().collect();
    assert_eq!(
        workers,
        cluster.worker_uis.iter().copied().collect(),
        "tasks by worker web UI port: {tasks:?}"
    );
    // 3 batches (the first stars, 2 iterations) of at least one task each.
    assert!(tasks.values().sum::<usize>() >= 3, "{tasks:?}");
    let master = cluster.master_json().await.unwrap();
    let apps = master["completedapps"].as_array().unwrap();
    assert_eq!(apps.len(), 1, "{master}");
    assert_eq!(apps[0]["state"], "FINISHED", "{master}");
    println!("tasks by worker (web UI port): {tasks:?}");

    // A long job, cancelled once both executors and their Python workers run.
    let id = common::submit_job(http, base, &bbha_request("BBHA_52", 10_000)).await;
    let executors = "the second job's executors to run";
    common::wait_for(executors, Duration::from_secs(300), || async {
        service.assert_unfinished(&id).await;
        let running = cluster
            .master_json()
            .await
            .is_some_and(|m| m["activeapps"].as_array().is_some_and(|a| a.len() == 1));
        let processes = cluster.executor_processes();
        if running && processes.len() >= 4 {
            Ok(())
        } else {
            Err((running, processes))
        }
    })
    .await;
    let before = cluster.executor_processes().len();
    let deleted = Instant::now();
    let r = http
        .delete(format!("{base}/job/{id}"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    // When each was first seen: the Master's application ended, the processes gone.
    let app_gone = std::cell::Cell::new(None);
    let processes_gone = std::cell::Cell::new(None);
    let ended = "the application and its processes to end after DELETE";
    let (app_gone, processes_gone) = common::wait_for(ended, Duration::from_secs(60), || async {
        if app_gone.get().is_none()
            && cluster
                .master_json()
                .await
                .is_some_and(|m| m["activeapps"].as_array().is_some_and(|a| a.is_empty()))
        {
            app_gone.set(Some(deleted.elapsed()));
        }
        let processes = cluster.executor_processes();
        if processes_gone.get().is_none() && processes.is_empty() {
            processes_gone.set(Some(deleted.elapsed()));
        }
        match (app_gone.get(), processes_gone.get()) {
            (Some(app), Some(processes)) => Ok((app, processes)),
            seen => Err((seen, processes)),
        }
    })
    .await;
    let job = common::read_job_until(http, base, &id, Duration::from_secs(60), |job| {
        job["state"] == "CANCELLED"
    })
    .await;
    assert_eq!(job["state"], "CANCELLED");
    println!(
        "cancel: {before} executor and Python worker processes; the Master's application \
         ended {:.1} s after DELETE, the last of the processes {:.1} s after",
        app_gone.as_secs_f64(),
        processes_gone.as_secs_f64()
    );
}
