//! The local backend against a fake spark-submit (tests/fixtures/fake-spark-submit), which
//! records how it was started and exits, fails or sleeps as each test tells it. What every
//! backend owes the API (an unknown job, one job per client token, ...) is in the
//! conformance suite (tests/integration/conformance), which runs against this backend too; this file
//! covers what is the local backend's own.

use std::collections::{HashMap, HashSet};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use multiomix_aws_emr::backend::local::{LocalBackend, LocalCommand, SetupError};
use multiomix_aws_emr::backend::{BackendError, JobBackend, ListQuery};
use multiomix_aws_emr::config::Config;
use multiomix_aws_emr::job::{Algorithm, JobId, JobName, JobRun, JobSpec, JobState};
use multiomix_aws_emr::notify::Notifier;
use multiomix_aws_emr::reconcile::Reconciler;
use multiomix_aws_emr::store::{now_millis, NewLocalRun, Store};
use multiomix_fakes::FakeMultiomix;
use tokio::sync::mpsc::{self, UnboundedReceiver};

use crate::common::app::{local_vars, stand_in_scripts, FAST};
use crate::common::{
    submit_job, wait_for, wait_healthy, wait_until, TestApp, FAKE_SPARK_SUBMIT, PATIENCE,
};

/// One test's folders: scripts, logs, the store, and the fake's records (RESULTS_PATH).
struct Setup {
    dir: Arc<tempfile::TempDir>,
}

impl Setup {
    fn new() -> Self {
        let dir = Arc::new(tempfile::tempdir().unwrap());
        stand_in_scripts(dir.path());
        Setup { dir }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn database_url(&self) -> String {
        format!("sqlite:{}", self.path("store.db").display())
    }

    /// The local backend's variables in these tests, besides the harness's own: the
    /// entry point of BBHA's own, a grace before SIGKILL the tests can see, and a
    /// reconciler that runs often.
    fn vars(&self, extra: &[(&str, &str)]) -> Vec<(String, String)> {
        let mut vars = local_vars(self.dir.path(), FAKE_SPARK_SUBMIT, &self.path("scripts"));
        for (k, v) in [
            ("LOCAL_CANCEL_GRACE", "10"),
            ("ALGO_BBHA_ENTRYPOINT", "bbha.py"),
            ("ALGO_BBHA_PY_FILES", "bbha.zip"),
            ("SLEEP_TIME", "0"),
            ("RECONCILE_INTERVAL", "0.2"),
        ]
        .iter()
        .chain(extra)
        {
            vars.push((k.to_string(), v.to_string()));
        }
        vars
    }

    /// The configuration of a backend built by the test itself, without the service.
    fn config(&self, extra: &[(&str, &str)]) -> Config {
        let mut vars: HashMap<String, String> = [
            ("HOST", "127.0.0.1".to_owned()),
            ("PORT", "0".to_owned()),
            ("DATABASE_URL", self.database_url()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v))
        .collect();
        vars.extend(FAST.iter().map(|(k, v)| (k.to_string(), v.to_string())));
        vars.extend(self.vars(extra));
        Config::from_vars(vars).unwrap()
    }

    async fn store(&self) -> Store {
        Store::connect(&self.database_url()).await.unwrap()
    }

    async fn backend(
        &self,
        extra: &[(&str, &str)],
    ) -> (LocalBackend, UnboundedReceiver<JobId>, Store) {
        let config = self.config(extra);
        let store = self.store().await;
        let (tx, rx) = mpsc::unbounded_channel();
        let backend = LocalBackend::new(
            store.clone(),
            config.backend.local().unwrap().clone(),
            config.spark,
            config.job,
            tx,
        )
        .await
        .unwrap();
        (backend, rx, store)
    }

    /// Tells the fake what to do for the job of this name.
    fn behave(&self, job_name: &str, behaviour: &str) {
        let dir = self.path("results");
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join(format!("{job_name}.behaviour")), behaviour).unwrap();
    }

    fn record_path(&self, job_name: &str) -> PathBuf {
        self.path("results").join(format!("{job_name}.record"))
    }

    /// What the fake recorded for this job, once it has.
    async fn record(&self, job_name: &str) -> Record {
        let path = self.record_path(job_name);
        wait_until("the fake to record its start", PATIENCE, || path.exists()).await;
        Record::parse(&std::fs::read_to_string(path).unwrap())
    }
}

#[derive(Debug)]
struct Record {
    pid: i32,
    env: HashMap<String, String>,
    /// The name of every variable the process was started with.
    inherited: HashSet<String>,
    args: Vec<String>,
}

impl Record {
    fn parse(text: &str) -> Self {
        let mut pid = 0;
        let mut env = HashMap::new();
        let mut args = Vec::new();
        let mut inherited = HashSet::new();
        for line in text.lines() {
            let (key, value) = line.split_once('=').unwrap();
            match key {
                "pid" => pid = value.parse().unwrap(),
                "arg" => args.push(value.to_owned()),
                "inherited" => {
                    inherited.insert(value.to_owned());
                }
                _ => {
                    env.insert(key.to_owned(), value.to_owned());
                }
            }
        }
        Record {
            pid,
            env,
            inherited,
            args,
        }
    }
}

fn spec(name: &str, arguments: &[(&str, &str)]) -> JobSpec {
    JobSpec {
        name: JobName::parse(name).unwrap(),
        algorithm: Algorithm::Bbha,
        arguments: arguments
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
        progress_token: None,
    }
}

fn simple(name: &str) -> JobSpec {
    spec(name, &[("app-name", name)])
}

async fn next_ended(rx: &mut UnboundedReceiver<JobId>) -> JobId {
    tokio::time::timeout(PATIENCE, rx.recv())
        .await
        .expect("timed out waiting for a job to end")
        .expect("the ended channel is open")
}

async fn state_of(backend: &dyn JobBackend, id: &JobId) -> JobRun {
    backend.describe(id).await.unwrap()
}

async fn wait_for_state(backend: &dyn JobBackend, id: &JobId, state: JobState) -> JobRun {
    wait_for(&format!("job {id} to be {state}"), PATIENCE, || async {
        let run = state_of(backend, id).await;
        if run.state == state {
            Ok(run)
        } else {
            Err(run.state)
        }
    })
    .await
}

/// `/proc/<pid>/stat`: (state, process group), for a process that exists.
fn proc_stat(pid: i32) -> Option<(char, i32)> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let mut fields = stat[stat.rfind(')')? + 1..].split_whitespace();
    let state = fields.next()?.chars().next()?;
    let group = fields.nth(1)?.parse().ok()?;
    Some((state, group))
}

fn alive(pid: i32) -> bool {
    proc_stat(pid).is_some_and(|(state, _)| state != 'Z')
}

/// Whether any live process is in the process group.
fn group_alive(group: i32) -> bool {
    std::fs::read_dir("/proc")
        .unwrap()
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<i32>().ok())
        .any(|pid| proc_stat(pid).is_some_and(|(state, g)| g == group && state != 'Z'))
}

fn log_text(run: &JobRun) -> String {
    std::fs::read_to_string(run.log_location.as_deref().unwrap()).unwrap()
}

#[tokio::test]
async fn a_job_runs_spark_submit_with_the_exact_command_and_environment_and_completes() {
    let setup = Setup::new();
    let (backend, mut ended, _store) = setup
        .backend(&[
            ("EMR_DRIVER_MEMORY", "2g"),
            ("ENTRYPOINT_ARGS_KEY_PREFIX", "--"),
        ])
        .await;
    let job = spec(
        "BreastCancerBBHA",
        &[
            ("app-name", "exp-42-app"),
            ("molecules-dataset", "exp-42-app/molecules.csv"),
            ("n-stars", "15"),
            ("use-gpu", "true"),
        ],
    );
    let id = backend.start(&job, "token-1").await.unwrap();
    assert_eq!(id.as_str().len(), 19);

    assert_eq!(next_ended(&mut ended).await, id);
    let run = state_of(&backend, &id).await;
    assert_eq!(run.state, JobState::Completed, "{:?}", run.state_details);
    assert_eq!(run.name, "BreastCancerBBHA");
    assert_eq!(run.state_details, None);
    let finished = run.finished_at.expect("a final state has its end time");
    assert!(finished >= run.created_at);

    let scripts = setup.path("scripts");
    let record = setup.record("BreastCancerBBHA").await;
    let expected: Vec<String> = [
        "--master",
        "local[2]",
        "--py-files",
        &format!("{}/bbha.zip", scripts.display()),
        "--conf",
        "spark.driver.memory=2g",
        "--conf",
        "spark.driver.maxResultSize=2g",
        "--conf",
        "spark.executor.heartbeatInterval=600s",
        "--conf",
        "spark.network.timeout=2400s",
        "--conf",
        "spark.executor.memoryOverhead=2g",
        &format!("{}/bbha.py", scripts.display()),
        "--app-name",
        "exp-42-app",
        "--molecules-dataset",
        "exp-42-app/molecules.csv",
        "--n-stars",
        "15",
        "--use-gpu",
        "true",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    assert_eq!(record.args, expected);
    assert_eq!(record.env["JOB_NAME"], "BreastCancerBBHA");
    assert_eq!(
        record.env["DATASETS_PATH"],
        setup.path("data").display().to_string()
    );
    assert_eq!(
        record.env["RESULTS_PATH"],
        setup.path("results").display().to_string()
    );

    let log = setup.path("logs").join(format!("{id}.log"));
    assert_eq!(run.log_location, Some(log.display().to_string()));
    assert!(
        log_text(&run).contains("fake spark-submit: job BreastCancerBBHA running"),
        "{}",
        log_text(&run)
    );
    // The process is gone once the job is final.
    assert!(!alive(record.pid));
}

/// Variables of this process set for one test, and put back as they were when it ends
/// (even by a panic). nextest runs each test in a process of its own; `cargo test` runs
/// them as threads of one, where the others must not see these afterwards.
struct EnvRestored(Vec<(String, Option<std::ffi::OsString>)>);

impl EnvRestored {
    fn set<'a>(vars: impl IntoIterator<Item = (&'a str, &'a str)>) -> Self {
        let mut before = Vec::new();
        for (name, value) in vars {
            before.push((name.to_owned(), std::env::var_os(name)));
            std::env::set_var(name, value);
        }
        EnvRestored(before)
    }
}

impl Drop for EnvRestored {
    fn drop(&mut self) {
        for (name, value) in self.0.drain(..) {
            match value {
                Some(value) => std::env::set_var(&name, value),
                None => std::env::remove_var(&name),
            }
        }
    }
}

#[tokio::test]
async fn a_job_gets_none_of_the_services_secrets_from_its_environment() {
    // What a deployment sets, set in this process for the test (see EnvRestored).
    let secrets = [
        "API_TOKEN",
        "CALLBACK_TOKEN",
        "NOTIFY_SECRET",
        "AWS_ACCESS_KEY_ID",
        "AWS_SECRET_ACCESS_KEY",
        "AWS_SESSION_TOKEN",
        "DATABASE_URL",
    ];
    let _restore = EnvRestored::set(
        secrets
            .iter()
            .map(|name| (*name, "must-not-leak"))
            .chain([("SPARK_HOME", "/opt/spark-for-the-test")]),
    );
    let setup = Setup::new();
    let (backend, mut ended, _store) = setup.backend(&[]).await;
    let id = backend.start(&simple("EnvJob"), "token-env").await.unwrap();
    assert_eq!(next_ended(&mut ended).await, id);

    let record = setup.record("EnvJob").await;
    for name in secrets {
        assert!(
            !record.inherited.contains(name),
            "{name} reached the job: {:?}",
            record.inherited
        );
    }
    // What spark-submit needs to start is still there, and so is what the service sets.
    for name in [
        "PATH",
        "SPARK_HOME",
        "JOB_NAME",
        "DATASETS_PATH",
        "RESULTS_PATH",
    ] {
        assert!(
            record.inherited.contains(name),
            "{name} is missing: {:?}",
            record.inherited
        );
    }
}

#[tokio::test]
async fn a_failing_job_is_failed_with_its_exit_code_and_the_last_lines_of_its_log() {
    let setup = Setup::new();
    let (backend, mut ended, _store) = setup.backend(&[]).await;
    setup.behave("failing", "exit 3");
    let id = backend.start(&simple("failing"), "t").await.unwrap();
    assert_eq!(next_ended(&mut ended).await, id);

    let run = state_of(&backend, &id).await;
    assert_eq!(run.state, JobState::Failed);
    assert!(run.finished_at.is_some());
    assert_eq!(run.failure_reason.as_deref(), Some("USER_ERROR"));
    let details = run.state_details.unwrap();
    assert!(
        details.starts_with("spark-submit exited with code 3"),
        "{details}"
    );
    assert!(details.contains("fake failure: exit 3"), "{details}");
    assert!(details.contains("stderr line 30"), "{details}");
    // Only the last 20 lines: the 19 last numbered ones and the final line.
    assert!(details.contains("stderr line 12"), "{details}");
    assert!(!details.contains("stderr line 11\n"), "{details}");
    assert!(!details.contains("[multiomix-aws-emr]"), "{details}");
}

#[tokio::test]
async fn a_running_job_is_cancelled_and_its_process_group_is_gone() {
    let setup = Setup::new();
    let (backend, mut ended, _store) = setup.backend(&[]).await;
    setup.behave("sleeper", "sleep 60");
    let id = backend.start(&simple("sleeper"), "t").await.unwrap();
    let record = setup.record("sleeper").await;
    let run = wait_for_state(&backend, &id, JobState::Running).await;
    assert_eq!(run.finished_at, None);
    assert!(alive(record.pid));
    // Its own process group, led by spark-submit.
    assert_eq!(proc_stat(record.pid).unwrap().1, record.pid);

    backend.cancel(&id).await.unwrap();
    assert_eq!(next_ended(&mut ended).await, id);
    let run = state_of(&backend, &id).await;
    assert_eq!(run.state, JobState::Cancelled, "{:?}", run.state_details);
    assert!(run.finished_at.is_some());
    assert_eq!(run.state_details.as_deref(), Some("cancelled by request"));
    assert!(!alive(record.pid));
    wait_until("the job's processes to be gone", PATIENCE, || {
        !group_alive(record.pid)
    })
    .await;

    match backend.cancel(&id).await {
        Err(BackendError::Conflict(msg)) => assert!(msg.contains("CANCELLED"), "{msg}"),
        other => panic!("cancelling a cancelled job: {other:?}"),
    }
}

#[tokio::test]
async fn a_job_that_ignores_sigterm_is_killed_after_the_grace_period_and_still_cancelled() {
    let setup = Setup::new();
    let (backend, mut ended, _store) = setup.backend(&[("LOCAL_CANCEL_GRACE", "0.3")]).await;
    setup.behave("stubborn", "ignore-term 60");
    let id = backend.start(&simple("stubborn"), "t").await.unwrap();
    // The fixture ignores SIGTERM from before it writes its record.
    let record = setup.record("stubborn").await;
    wait_for_state(&backend, &id, JobState::Running).await;

    backend.cancel(&id).await.unwrap();
    let right_after = state_of(&backend, &id).await.state;
    assert!(
        matches!(right_after, JobState::CancelPending | JobState::Cancelled),
        "{right_after}"
    );
    assert_eq!(next_ended(&mut ended).await, id);
    let run = state_of(&backend, &id).await;
    assert_eq!(run.state, JobState::Cancelled);
    let details = run.state_details.unwrap();
    assert!(details.contains("was killed"), "{details}");
    wait_until("the job's processes to be gone", PATIENCE, || {
        !group_alive(record.pid)
    })
    .await;
}

#[tokio::test]
async fn with_one_slot_a_second_job_waits_pending_until_the_first_ends() {
    let setup = Setup::new();
    let (backend, mut ended, store) = setup.backend(&[("LOCAL_MAX_CONCURRENT", "1")]).await;
    setup.behave("first", "sleep 60");
    let first = backend.start(&simple("first"), "t1").await.unwrap();
    let second = backend.start(&simple("second"), "t2").await.unwrap();
    setup.record("first").await;
    wait_for_state(&backend, &first, JobState::Running).await;
    assert_eq!(state_of(&backend, &second).await.state, JobState::Pending);
    assert!(!setup.record_path("second").exists());

    backend.cancel(&first).await.unwrap();
    assert_eq!(next_ended(&mut ended).await, first);
    assert_eq!(next_ended(&mut ended).await, second);
    assert_eq!(state_of(&backend, &second).await.state, JobState::Completed);
    assert!(setup.record_path("second").exists());
    // The store says when each process started and ended: the second one's started only
    // once the first one's had ended, however long the first one ran.
    let first_run = store.local_run(&first).await.unwrap().unwrap();
    let second_run = store.local_run(&second).await.unwrap().unwrap();
    let first_ended = first_run.finished_at.expect("the first run ended");
    let second_started = second_run.started_at.expect("the second run started");
    assert!(
        second_started >= first_ended,
        "the second run started at {second_started}, before the first ended at {first_ended}"
    );
}

#[tokio::test]
async fn a_queued_job_is_cancelled_at_once_and_never_starts() {
    let setup = Setup::new();
    let (backend, mut ended, _store) = setup.backend(&[("LOCAL_MAX_CONCURRENT", "1")]).await;
    setup.behave("blocker", "sleep 60");
    let blocker = backend.start(&simple("blocker"), "t1").await.unwrap();
    let queued = backend.start(&simple("queued"), "t2").await.unwrap();
    wait_for_state(&backend, &blocker, JobState::Running).await;
    assert_eq!(state_of(&backend, &queued).await.state, JobState::Pending);

    backend.cancel(&queued).await.unwrap();
    let run = state_of(&backend, &queued).await;
    assert_eq!(run.state, JobState::Cancelled);
    assert!(run.finished_at.is_some());
    assert_eq!(next_ended(&mut ended).await, queued);
    assert!(matches!(
        backend.cancel(&queued).await,
        Err(BackendError::Conflict(_))
    ));

    // Its slot would have come when the blocker ended; it must not start then either.
    // Slots are handed out in the order jobs came: a job submitted after the blocker
    // ended gets one only after the queued job has let its turn pass (or, were it to
    // start, after its process, which exits at once, had ended).
    backend.cancel(&blocker).await.unwrap();
    assert_eq!(next_ended(&mut ended).await, blocker);
    let after = backend.start(&simple("after"), "t3").await.unwrap();
    assert_eq!(next_ended(&mut ended).await, after);
    assert!(setup.record_path("after").exists());
    assert!(!setup.record_path("queued").exists());
    assert_eq!(state_of(&backend, &queued).await.state, JobState::Cancelled);
    assert!(ended.try_recv().is_err(), "a job ended twice");
}

#[tokio::test]
async fn listing_is_newest_first_filtered_by_state_and_paged() {
    let setup = Setup::new();
    let (backend, mut ended, _store) = setup.backend(&[]).await;
    setup.behave("bad", "exit 1");
    let mut started = Vec::new();
    for (i, name) in ["ok1", "bad", "ok2"].iter().enumerate() {
        started.push(
            backend
                .start(&simple(name), &format!("t{i}"))
                .await
                .unwrap(),
        );
        // Distinct creation times.
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    for _ in 0..3 {
        next_ended(&mut ended).await;
    }
    let newest_first: Vec<JobId> = started.iter().rev().cloned().collect();

    let ids = |jobs: &[JobRun]| jobs.iter().map(|j| j.id.clone()).collect::<Vec<_>>();
    let all = backend.list(&ListQuery::default()).await.unwrap();
    assert_eq!(ids(&all.jobs), newest_first);
    assert_eq!(all.next_token, None);

    let first = backend
        .list(&ListQuery {
            page_size: Some(2),
            ..ListQuery::default()
        })
        .await
        .unwrap();
    assert_eq!(ids(&first.jobs), newest_first[..2]);
    let second = backend
        .list(&ListQuery {
            page_size: Some(2),
            next_token: first.next_token.clone(),
            ..ListQuery::default()
        })
        .await
        .unwrap();
    assert_eq!(ids(&second.jobs), newest_first[2..]);
    assert_eq!(second.next_token, None);

    let failed = backend
        .list(&ListQuery {
            states: vec![JobState::Failed],
            ..ListQuery::default()
        })
        .await
        .unwrap();
    assert_eq!(ids(&failed.jobs), vec![started[1].clone()]);

    let later = backend
        .list(&ListQuery {
            created_after: Some(time::OffsetDateTime::now_utc() + time::Duration::hours(1)),
            ..ListQuery::default()
        })
        .await
        .unwrap();
    assert!(later.jobs.is_empty());

    assert!(matches!(
        backend
            .list(&ListQuery {
                next_token: Some("not-ours".into()),
                ..ListQuery::default()
            })
            .await,
        Err(BackendError::Rejected(_))
    ));
}

#[tokio::test]
async fn a_program_that_cannot_be_started_fails_the_job_with_the_reason() {
    let setup = Setup::new();
    let program = setup.path("spark-submit");
    std::fs::copy(FAKE_SPARK_SUBMIT, &program).unwrap();
    let program_text = program.display().to_string();
    let (backend, mut ended, _store) = setup.backend(&[("SPARK_SUBMIT", &program_text)]).await;
    std::fs::remove_file(&program).unwrap();

    let id = backend.start(&simple("orphan"), "t").await.unwrap();
    assert_eq!(next_ended(&mut ended).await, id);
    let run = state_of(&backend, &id).await;
    assert_eq!(run.state, JobState::Failed);
    assert!(run.finished_at.is_some());
    let details = run.state_details.unwrap();
    assert!(details.contains("could not be started"), "{details}");
    assert!(details.contains(&program_text), "{details}");

    match backend.check().await {
        Err(BackendError::Unavailable(msg)) => {
            assert!(msg.contains("SPARK_SUBMIT"), "{msg}")
        }
        other => panic!("check with the program gone: {other:?}"),
    }
}

#[tokio::test]
async fn start_up_and_readiness_say_what_is_missing() {
    let setup = Setup::new();
    let config = setup.config(&[("SPARK_SUBMIT", "no-such-spark-submit-here")]);
    let (tx, _rx) = mpsc::unbounded_channel();
    let err = LocalBackend::new(
        setup.store().await,
        config.backend.local().unwrap().clone(),
        config.spark,
        config.job,
        tx.clone(),
    )
    .await
    .err()
    .expect("a missing program stops start-up");
    assert!(matches!(err, SetupError::Program(_)));
    let msg = err.to_string();
    assert!(
        msg.contains("SPARK_SUBMIT") && msg.contains("no-such-spark-submit-here"),
        "{msg}"
    );

    let missing = setup.path("no-scripts").display().to_string();
    let config = setup.config(&[("LOCAL_SCRIPTS_DIR", &missing)]);
    let err = LocalBackend::new(
        setup.store().await,
        config.backend.local().unwrap().clone(),
        config.spark,
        config.job,
        tx.clone(),
    )
    .await
    .err()
    .expect("a missing scripts folder stops start-up");
    let msg = err.to_string();
    assert!(
        msg.contains("LOCAL_SCRIPTS_DIR") && msg.contains(&missing),
        "{msg}"
    );

    let (backend, _ended, _store) = setup.backend(&[]).await;
    backend.check().await.unwrap();
    std::fs::remove_dir_all(setup.path("scripts")).unwrap();
    match backend.check().await {
        Err(BackendError::Unavailable(msg)) => assert!(msg.contains("LOCAL_SCRIPTS_DIR"), "{msg}"),
        other => panic!("check without the scripts folder: {other:?}"),
    }
}

#[tokio::test]
async fn a_relative_scripts_dir_becomes_absolute_in_the_command() {
    let setup = Setup::new();
    // The scripts folder, spelled relative to the working directory.
    let depth = std::env::current_dir().unwrap().components().count() - 1;
    let mut relative: PathBuf = std::iter::repeat("..").take(depth).collect();
    relative.push(setup.path("scripts").strip_prefix("/").unwrap());
    assert!(relative.is_relative());
    let relative = relative.display().to_string();
    let (backend, _ended, _store) = setup.backend(&[("LOCAL_SCRIPTS_DIR", &relative)]).await;
    let command = backend.command_for(&simple("x"));
    let entry = command
        .args
        .iter()
        .find(|a| a.ends_with("bbha.py"))
        .unwrap();
    assert!(Path::new(entry).is_absolute(), "{entry}");
    assert!(Path::new(entry).exists(), "{entry}");
    assert!(Path::new(&command.program).is_absolute());
    assert!(backend.log_dir().is_absolute());
}

/// Records a run as a previous process would have left it.
async fn leave_run(store: &Store, id: &str, name: &str, command: &LocalCommand, log: &Path) {
    store
        .insert_local_run(&NewLocalRun {
            id: &JobId::parse(id).unwrap(),
            name,
            algorithm: 1,
            client_token: id,
            command: &serde_json::to_string(command).unwrap(),
            log_path: &log.display().to_string(),
            created_at: now_millis(),
        })
        .await
        .unwrap();
}

fn proc_start_time(pid: u32) -> Option<i64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    stat[stat.rfind(')')? + 1..]
        .split_whitespace()
        .nth(19)?
        .parse()
        .ok()
}

fn wait_exit(child: &mut std::process::Child) -> Option<std::process::ExitStatus> {
    for _ in 0..500 {
        if let Some(status) = child.try_wait().unwrap() {
            return Some(status);
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    None
}

#[tokio::test]
async fn a_restart_fails_interrupted_runs_kills_their_leftovers_and_runs_queued_ones() {
    let setup = Setup::new();
    let store = setup.store().await;
    let log = setup.path("logs").join("old.log");
    let command = |name: &str| LocalCommand {
        program: "/nonexistent/old-spark-submit".into(),
        args: vec!["--master".into(), "local[1]".into()],
        env: vec![
            ("JOB_NAME".into(), name.into()),
            (
                "RESULTS_PATH".into(),
                setup.path("results").display().to_string(),
            ),
        ],
    };

    // Running, its process gone.
    let mut gone = std::process::Command::new("true").spawn().unwrap();
    gone.wait().unwrap();
    leave_run(&store, "restartgone", "gone", &command("gone"), &log).await;
    assert!(store
        .local_run_started(
            &JobId::parse("restartgone").unwrap(),
            gone.id().into(),
            None,
            now_millis()
        )
        .await
        .unwrap());

    // Running, its process still there in its own group: it must be killed.
    let mut orphan = std::process::Command::new("sleep")
        .arg("60")
        .process_group(0)
        .spawn()
        .unwrap();
    leave_run(&store, "restartorphan", "orphan", &command("orphan"), &log).await;
    store
        .local_run_started(
            &JobId::parse("restartorphan").unwrap(),
            orphan.id().into(),
            proc_start_time(orphan.id()),
            now_millis(),
        )
        .await
        .unwrap();

    // Running, recorded with a pid that now belongs to another process (a different
    // start time): it must be left alone.
    let mut stranger = std::process::Command::new("sleep")
        .arg("60")
        .process_group(0)
        .spawn()
        .unwrap();
    leave_run(&store, "restartreused", "reused", &command("reused"), &log).await;
    store
        .local_run_started(
            &JobId::parse("restartreused").unwrap(),
            stranger.id().into(),
            proc_start_time(stranger.id()).map(|t| t - 1),
            now_millis(),
        )
        .await
        .unwrap();

    // Being cancelled when the service stopped.
    leave_run(
        &store,
        "restartcancel",
        "cancelling",
        &command("cancelling"),
        &log,
    )
    .await;
    store
        .local_run_started(
            &JobId::parse("restartcancel").unwrap(),
            gone.id().into(),
            None,
            now_millis(),
        )
        .await
        .unwrap();
    store
        .local_run_cancel_requested(&JobId::parse("restartcancel").unwrap())
        .await
        .unwrap();

    // Queued, never started.
    leave_run(&store, "restartqueued", "queued", &command("queued"), &log).await;

    let (backend, mut ended, _store) = setup.backend(&[]).await;

    for id in ["restartgone", "restartorphan", "restartreused"] {
        let run = state_of(&backend, &JobId::parse(id).unwrap()).await;
        assert_eq!(run.state, JobState::Failed, "{id}");
        assert!(run.finished_at.is_some(), "{id}");
        assert_eq!(run.failure_reason.as_deref(), Some("INTERNAL_ERROR"));
        let details = run.state_details.unwrap();
        assert!(
            details.contains("the service restarted while the job was running"),
            "{id}: {details}"
        );
    }
    let orphan_exit = wait_exit(&mut orphan).expect("the orphaned job process was killed");
    assert_eq!(
        std::os::unix::process::ExitStatusExt::signal(&orphan_exit),
        Some(9)
    );
    assert_eq!(
        stranger.try_wait().unwrap(),
        None,
        "a process that merely reuses a recorded pid is left alone"
    );
    stranger.kill().unwrap();
    stranger.wait().unwrap();

    let cancelled = state_of(&backend, &JobId::parse("restartcancel").unwrap()).await;
    assert_eq!(cancelled.state, JobState::Cancelled);

    // Every settled run is reported, and the queued one runs (with today's program).
    let mut reported = HashSet::new();
    for _ in 0..5 {
        reported.insert(next_ended(&mut ended).await.to_string());
    }
    let expected: HashSet<String> = [
        "restartgone",
        "restartorphan",
        "restartreused",
        "restartcancel",
        "restartqueued",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    assert_eq!(reported, expected);
    let queued = state_of(&backend, &JobId::parse("restartqueued").unwrap()).await;
    assert_eq!(
        queued.state,
        JobState::Completed,
        "{:?}",
        queued.state_details
    );
    assert_eq!(setup.record("queued").await.args, ["--master", "local[1]"]);
}

#[tokio::test]
async fn runs_settled_at_restart_are_found_by_the_reconciler_even_without_the_channel() {
    let setup = Setup::new();
    let store = setup.store().await;
    let command = LocalCommand {
        program: FAKE_SPARK_SUBMIT.into(),
        args: vec![],
        env: vec![],
    };
    let mut gone = std::process::Command::new("true").spawn().unwrap();
    gone.wait().unwrap();
    leave_run(
        &store,
        "lostrun",
        "lost",
        &command,
        &setup.path("logs/l.log"),
    )
    .await;
    store
        .local_run_started(
            &JobId::parse("lostrun").unwrap(),
            gone.id().into(),
            None,
            now_millis(),
        )
        .await
        .unwrap();

    let config = setup.config(&[]);
    // The receiver is dropped at once: nothing forwards the end of the run.
    let (tx, _) = mpsc::unbounded_channel();
    let backend: Arc<dyn JobBackend> = Arc::new(
        LocalBackend::new(
            store.clone(),
            config.backend.local().unwrap().clone(),
            config.spark.clone(),
            config.job.clone(),
            tx,
        )
        .await
        .unwrap(),
    );
    let notifier = Notifier::new(store.clone(), backend.clone(), config.notify.clone(), 100)
        .await
        .unwrap();
    assert!(store
        .notice(&JobId::parse("lostrun").unwrap())
        .await
        .unwrap()
        .is_none());
    let reconciler = Reconciler::new(
        store.clone(),
        backend,
        notifier,
        config.notify.reconcile_interval,
        config.notify.recovery_window,
    );
    let round = reconciler.run_once().await.unwrap();
    assert_eq!((round.checked, round.ended), (1, 1));
    assert!(store
        .notice(&JobId::parse("lostrun").unwrap())
        .await
        .unwrap()
        .is_some());
}

/// The whole service on the local backend, serving on 127.0.0.1.
/// The service on the local backend, in `setup`'s folders, its notices to `multiomix`.
async fn local_app(
    setup: &Setup,
    multiomix: &Arc<FakeMultiomix>,
    extra: &[(&str, &str)],
) -> TestApp {
    TestApp::builder()
        .dir(setup.dir.clone())
        .multiomix(multiomix.clone())
        .owned_vars(setup.vars(extra))
        .configured_backend()
        .start()
        .await
}

/// POSTs a BBHA job under `name`, for an app name made from it; its id.
async fn post_named(app: &TestApp, name: &str) -> String {
    let experiment = format!(
        "exp-{}",
        name.replace(|c: char| !c.is_ascii_alphanumeric(), "")
    );
    let body = serde_json::json!({
        "name": name,
        "algorithm": 1,
        "entrypoint_arguments": [
            {"name": "app-name", "value": experiment},
            {"name": "n-stars", "value": 15}
        ]
    });
    submit_job(&app.http, &app.base, &body).await
}

/// `GET /job/{id}`, which must answer 200.
async fn job_of(app: &TestApp, id: &str) -> serde_json::Value {
    let (status, body) = app.get(&format!("/job/{id}")).await;
    assert_eq!(status, 200, "{body}");
    body
}

async fn cancel(app: &TestApp, id: &str) -> u16 {
    app.delete(&format!("/job/{id}")).await.0
}

fn is_contract_date(value: &serde_json::Value) -> bool {
    let Some(s) = value.as_str() else {
        return false;
    };
    let format =
        time::macros::format_description!("[year]-[month]-[day] [hour]:[minute]:[second]+00:00");
    time::PrimitiveDateTime::parse(s, format).is_ok()
}

/// The notices of these jobs, each exactly once, by job id.
async fn notices_of(
    multiomix: &FakeMultiomix,
    store: &Store,
    ids: &[&str],
) -> HashMap<String, serde_json::Value> {
    let notices = multiomix
        .wait_for_notices(ids.len(), PATIENCE)
        .await
        .unwrap();
    // Nothing more arrives later: one notice per job, each closed after the one attempt
    // Multiomix received, so the outbox has nothing of these jobs left to send.
    for id in ids {
        let job = JobId::parse(id).unwrap();
        let closed = wait_for(
            "the notice to be recorded as delivered",
            PATIENCE,
            || async {
                match store.notice(&job).await.unwrap() {
                    Some(n) if !n.status.is_open() => Ok(n),
                    other => Err(other.map(|n| n.status)),
                }
            },
        )
        .await;
        assert_eq!(closed.status.as_str(), "delivered", "{id}");
        assert_eq!(closed.attempts, 1, "{id}");
    }
    assert_eq!(multiomix.count(), ids.len(), "{:?}", multiomix.notices());
    let by_id: HashMap<String, serde_json::Value> = notices
        .into_iter()
        .map(|n| {
            assert_eq!(n.status, 200);
            assert_eq!(n.body["id"].as_str(), Some(n.id.as_str()));
            (n.id, n.body)
        })
        .collect();
    let mut wanted: Vec<&str> = ids.to_vec();
    wanted.sort();
    let mut got: Vec<&str> = by_id.keys().map(String::as_str).collect();
    got.sort();
    assert_eq!(got, wanted);
    by_id
}

#[tokio::test]
async fn every_final_state_sends_its_notice_without_any_callback() {
    let setup = Setup::new();
    let multiomix = Arc::new(FakeMultiomix::start().await);
    let app = local_app(&setup, &multiomix, &[("LOCAL_MAX_CONCURRENT", "3")]).await;
    setup.behave("Fails", "exit 2");
    setup.behave("Runs", "sleep 60");
    setup.behave("Blocks", "sleep 60");

    let completed = post_named(&app, "Completes").await;
    let failed = post_named(&app, "Fails").await;
    let cancelled = post_named(&app, "Runs").await;
    app.read_until_state(&cancelled, &["RUNNING"]).await;
    assert_eq!(cancel(&app, &cancelled).await, 200);

    let done = notices_of(&multiomix, &app.store, &[&completed, &failed, &cancelled]).await;
    for (id, state) in [
        (&completed, "COMPLETED"),
        (&failed, "FAILED"),
        (&cancelled, "CANCELLED"),
    ] {
        let notice = &done[id.as_str()];
        assert_eq!(notice["state"], state, "{notice}");
        assert!(is_contract_date(&notice["createdAt"]), "{notice}");
        assert!(is_contract_date(&notice["finishedAt"]), "{notice}");
        // The notice carries what GET /job/{id} says.
        let read = job_of(&app, id).await;
        for field in [
            "id",
            "name",
            "state",
            "createdAt",
            "finishedAt",
            "stateDetails",
        ] {
            assert_eq!(notice[field], read[field], "{field}");
        }
    }
    assert_eq!(
        done[completed.as_str()]["stateDetails"],
        serde_json::Value::Null
    );
    let details = done[failed.as_str()]["stateDetails"].as_str().unwrap();
    assert!(details.contains("exited with code 2"), "{details}");
    assert!(details.contains("fake failure: exit 2"), "{details}");
    // A finished job can no longer be cancelled.
    assert_eq!(cancel(&app, &completed).await, 409);
    app.stop().await;
}

#[tokio::test]
async fn a_queued_job_cancelled_before_it_starts_gets_a_cancelled_notice() {
    let setup = Setup::new();
    let multiomix = Arc::new(FakeMultiomix::start().await);
    let app = local_app(&setup, &multiomix, &[("LOCAL_MAX_CONCURRENT", "1")]).await;
    setup.behave("Blocks", "sleep 60");
    let blocker = post_named(&app, "Blocks").await;
    let queued = post_named(&app, "Queued").await;
    app.read_until_state(&blocker, &["RUNNING"]).await;
    assert_eq!(job_of(&app, &queued).await["state"], "PENDING");

    assert_eq!(cancel(&app, &queued).await, 200);
    let notice = &notices_of(&multiomix, &app.store, &[&queued]).await[queued.as_str()];
    assert_eq!(notice["state"], "CANCELLED");
    assert!(is_contract_date(&notice["finishedAt"]), "{notice}");
    assert!(!setup.record_path("Queued").exists());

    assert_eq!(cancel(&app, &blocker).await, 200);
    multiomix.wait_for_notices(2, PATIENCE).await.unwrap();
    assert_eq!(job_of(&app, &blocker).await["state"], "CANCELLED");
    app.stop().await;
}

#[tokio::test]
async fn after_a_restart_the_interrupted_and_the_requeued_runs_get_their_notices() {
    let setup = Setup::new();
    {
        let store = setup.store().await;
        let mut gone = std::process::Command::new("true").spawn().unwrap();
        gone.wait().unwrap();
        let command = |name: &str| LocalCommand {
            program: FAKE_SPARK_SUBMIT.into(),
            args: vec![],
            env: vec![
                ("JOB_NAME".into(), name.into()),
                (
                    "RESULTS_PATH".into(),
                    setup.path("results").display().to_string(),
                ),
            ],
        };
        let log = setup.path("logs").join("old.log");
        leave_run(
            &store,
            "interrupted",
            "Interrupted",
            &command("Interrupted"),
            &log,
        )
        .await;
        store
            .local_run_started(
                &JobId::parse("interrupted").unwrap(),
                gone.id().into(),
                None,
                now_millis(),
            )
            .await
            .unwrap();
        leave_run(&store, "waiting", "Waiting", &command("Waiting"), &log).await;
        store.close().await;
    }

    let multiomix = Arc::new(FakeMultiomix::start().await);
    let app = local_app(&setup, &multiomix, &[]).await;
    let notices = notices_of(&multiomix, &app.store, &["interrupted", "waiting"]).await;
    assert_eq!(notices["interrupted"]["state"], "FAILED");
    let details = notices["interrupted"]["stateDetails"].as_str().unwrap();
    assert!(
        details.contains("the service restarted while the job was running"),
        "{details}"
    );
    assert_eq!(notices["waiting"]["state"], "COMPLETED");
    for id in ["interrupted", "waiting"] {
        let notice = app
            .store
            .notice(&JobId::parse(id).unwrap())
            .await
            .unwrap()
            .unwrap();
        assert_eq!(notice.status.as_str(), "delivered");
    }
    app.stop().await;
}

#[tokio::test]
async fn the_service_on_the_local_backend_is_ready_and_serves_the_contract_dates() {
    let setup = Setup::new();
    let multiomix = Arc::new(FakeMultiomix::start().await);
    let app = local_app(&setup, &multiomix, &[]).await;
    let id = post_named(&app, "HttpJob").await;
    assert_eq!(id.len(), 19);
    let body = app.read_until_state(&id, &["COMPLETED"]).await;
    assert!(is_contract_date(&body["createdAt"]), "{body}");
    assert!(is_contract_date(&body["finishedAt"]), "{body}");
    let args = setup.record("HttpJob").await.args;
    assert_eq!(
        args[args.len() - 4..],
        ["--app-name", "exp-HttpJob", "--n-stars", "15"]
    );

    let ready = app
        .http
        .get(format!("{}/ready", app.base))
        .send()
        .await
        .unwrap();
    assert_eq!(ready.status(), 200);
    assert_eq!(
        ready.json::<serde_json::Value>().await.unwrap()["backend"],
        "local"
    );
    app.stop().await;
}

const BIN: &str = env!("CARGO_BIN_EXE_multiomix-aws-emr");

/// The real binary on the local backend, as a process.
fn service_process(setup: &Setup, multiomix: &FakeMultiomix, port: u16) -> tokio::process::Child {
    let mut command = tokio::process::Command::new(BIN);
    command
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("MULTIOMIX_URL", multiomix.url())
        .env("PORT", port.to_string())
        .env("RUST_LOG", "warn")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .kill_on_drop(true);
    let own = [
        ("HOST", "127.0.0.1"),
        ("DATABASE_URL", &setup.database_url()),
    ]
    .map(|(k, v)| (k.to_owned(), v.to_owned()));
    let fast = FAST.iter().map(|(k, v)| (k.to_string(), v.to_string()));
    for (name, value) in fast.chain(setup.vars(&[])).chain(own) {
        command.env(name, value);
    }
    command.spawn().expect("the binary starts")
}

#[tokio::test]
async fn stopping_the_service_stops_its_jobs_and_the_next_start_reports_them_failed() {
    let setup = Setup::new();
    let multiomix = Arc::new(FakeMultiomix::start().await);
    let port = crate::common::free_port();
    let base = format!("http://127.0.0.1:{port}");
    let client = reqwest::Client::new();
    setup.behave("LongJob", "sleep 60");

    let mut service = service_process(&setup, &multiomix, port);
    wait_healthy(&client, &base, PATIENCE).await;
    let created = client
        .post(format!("{base}/job"))
        .json(&serde_json::json!({
            "name": "LongJob", "algorithm": 1,
            "entrypoint_arguments": [{"name": "app-name", "value": "exp-9"}]
        }))
        .send()
        .await
        .unwrap();
    assert_eq!(created.status(), 201);
    let id = created.json::<serde_json::Value>().await.unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let record = setup.record("LongJob").await;
    assert!(group_alive(record.pid));

    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(service.id().unwrap() as i32),
        nix::sys::signal::Signal::SIGTERM,
    )
    .unwrap();
    let status = tokio::time::timeout(PATIENCE, service.wait())
        .await
        .expect("the service stops on SIGTERM")
        .unwrap();
    assert!(status.success(), "{status}");
    wait_until("the job's processes to be gone", PATIENCE, || {
        !group_alive(record.pid)
    })
    .await;

    let _service = service_process(&setup, &multiomix, port);
    wait_healthy(&client, &base, PATIENCE).await;
    let notices = multiomix.wait_for_notices(1, PATIENCE).await.unwrap();
    assert_eq!(notices[0].id, id);
    assert_eq!(notices[0].body["state"], "FAILED");
    let job: serde_json::Value = client
        .get(format!("{base}/job/{id}"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(job["state"], "FAILED");
    assert!(
        job["stateDetails"]
            .as_str()
            .unwrap()
            .contains("the service restarted while the job was running"),
        "{job}"
    );
}

/// The job joins each dataset argument to `DATASETS_PATH`, so an absolute path, a `..` or
/// a link out of the folder would have it read any file the service can read and quote
/// it in `stateDetails`. Each is refused at the door, naming the field, and nothing runs.
#[tokio::test]
async fn dataset_paths_out_of_the_datasets_folder_are_refused_and_nothing_runs() {
    let setup = Setup::new();
    let multiomix = Arc::new(FakeMultiomix::start().await);
    let app = local_app(&setup, &multiomix, &[]).await;
    let data = setup.path("data");
    std::fs::create_dir_all(data.join("exp-1")).unwrap();
    std::fs::write(data.join("exp-1/clinical.csv"), "\te\tt\n").unwrap();
    let outside = tempfile::tempdir().unwrap();
    std::fs::write(outside.path().join("secret.csv"), "password\thunter2\n").unwrap();
    std::fs::create_dir_all(outside.path().join("dir")).unwrap();
    std::os::unix::fs::symlink(
        outside.path().join("secret.csv"),
        data.join("exp-1/link.csv"),
    )
    .unwrap();
    std::os::unix::fs::symlink(outside.path().join("dir"), data.join("exp-1/linked-dir")).unwrap();
    let absolute = outside.path().join("secret.csv").display().to_string();
    for (field, value) in [
        ("clinical-dataset", absolute.as_str()),
        ("clinical-dataset", "../../secret.csv"),
        ("clinical-dataset", "exp-1/../../secret.csv"),
        ("molecules-dataset", "exp-1/link.csv"),
        ("molecules-dataset", "exp-1/linked-dir/absent.csv"),
    ] {
        let mut arguments = vec![
            serde_json::json!({"name": "app-name", "value": "exp-1"}),
            serde_json::json!({"name": "molecules-dataset", "value": "exp-1/molecules.csv"}),
            serde_json::json!({"name": "clinical-dataset", "value": "exp-1/clinical.csv"}),
        ];
        let at = if field == "molecules-dataset" { 1 } else { 2 };
        arguments[at]["value"] = serde_json::json!(value);
        let r = app
            .http
            .post(format!("{}/job", app.base))
            .json(&serde_json::json!({
                "name": "Confined", "algorithm": 1, "entrypoint_arguments": arguments
            }))
            .send()
            .await
            .unwrap();
        let status = r.status().as_u16();
        let answer: serde_json::Value = r.json().await.unwrap();
        assert_eq!(status, 400, "{value}: {answer}");
        assert_eq!(
            answer["field"],
            format!("entrypoint_arguments[{at}].value"),
            "{value}: {answer}"
        );
        assert!(
            answer["message"].as_str().unwrap().contains(field),
            "{answer}"
        );
        assert!(!answer.to_string().contains("hunter2"), "{answer}");
    }
    assert!(
        app.store
            .local_runs_in(&JobState::ALL)
            .await
            .unwrap()
            .is_empty(),
        "no run was recorded"
    );
    assert!(
        !setup.record_path("Confined").exists(),
        "spark-submit was never started"
    );
}

/// `GET /job/{id}` once it shows the progress of `iteration` (or a later one).
async fn progress_at(app: &TestApp, id: &str, iteration: u64) -> serde_json::Value {
    app.read_job_until(id, |body| {
        body["progress"]["iteration"]
            .as_u64()
            .is_some_and(|i| i >= iteration)
    })
    .await
}

#[tokio::test]
async fn a_jobs_progress_shows_in_get_job_iteration_by_iteration_and_survives_a_restart() {
    let setup = Setup::new();
    let multiomix = Arc::new(FakeMultiomix::start().await);
    let app = local_app(&setup, &multiomix, &[]).await;
    setup.behave("Reporting", "progress 3");
    let id = post_named(&app, "Reporting").await;

    // The token reaches the job in its environment, and in none of its arguments.
    let record = setup.record("Reporting").await;
    let token = record.env["PROGRESS_TOKEN"].clone();
    assert_eq!(token.len(), 64, "{token}");
    assert!(token.bytes().all(|b| b.is_ascii_hexdigit()), "{token}");
    assert!(!record.args.iter().any(|a| a.contains(&token)));
    let stored = app
        .store
        .progress_jobs(10)
        .await
        .unwrap()
        .into_iter()
        .find(|j| j.id.as_str() == id)
        .unwrap();
    assert_eq!(stored.token, token);

    let report = setup.path("results/.progress/exp-Reporting.json");
    let mut seen = Vec::new();
    for iteration in 0..=3 {
        let body = progress_at(&app, &id, iteration).await;
        let progress = body["progress"].clone();
        assert_eq!(progress["iteration"], iteration, "{body}");
        assert_eq!(progress["iterations"], 3);
        assert_eq!(progress["evaluationsDone"], 6 + 4 * iteration);
        assert_eq!(progress["evaluationsTotal"], 18);
        assert_eq!(progress["molecules"], 10 - iteration);
        assert!(is_contract_date(&progress["updatedAt"]), "{progress}");
        if iteration < 3 {
            // The job waits for the test's go-ahead: it runs, at a known pace.
            assert_eq!(body["state"], "RUNNING");
            let eta = progress["etaSeconds"].as_u64();
            assert!(
                eta.is_some(),
                "evaluations are done: the pace is known; {body}"
            );
        }
        // The list shows the same report (its ETA is worked out at each read).
        let (_, listed) = app.get("/jobs").await;
        let listed = listed["jobs"]
            .as_array()
            .unwrap()
            .iter()
            .find(|j| j["id"] == id.as_str())
            .unwrap_or_else(|| panic!("{id} is not listed: {listed}"))
            .clone();
        for field in ["iteration", "evaluationsDone", "molecules", "updatedAt"] {
            assert_eq!(
                listed["progress"][field], progress[field],
                "{field}: {listed}"
            );
        }
        seen.push(progress);
        if iteration < 3 {
            std::fs::write(setup.path(&format!("results/Reporting.go{iteration}")), "").unwrap();
        }
    }
    // Iteration by iteration, evaluations only growing.
    let done: Vec<u64> = seen
        .iter()
        .map(|p| p["evaluationsDone"].as_u64().unwrap())
        .collect();
    assert!(done.windows(2).all(|w| w[0] < w[1]), "{done:?}");

    // Ended: the last report stays, without an ETA, and its file is removed.
    let ended = app.read_until_state(&id, &["COMPLETED"]).await;
    wait_until("the report to be removed", PATIENCE, || !report.exists()).await;
    assert_eq!(ended["state"], "COMPLETED");
    let ended = job_of(&app, &id).await;
    assert_eq!(ended["progress"]["iteration"], 3, "{ended}");
    assert_eq!(ended["progress"]["evaluationsDone"], 18, "{ended}");
    assert!(ended["progress"]["etaSeconds"].is_null(), "{ended}");
    let (_, listed) = app.get("/jobs").await;
    assert_eq!(listed["jobs"][0]["id"], id.as_str(), "{listed}");
    assert_eq!(listed["jobs"][0]["progress"], ended["progress"], "{listed}");
    let before = ended["progress"].clone();
    app.stop().await;

    // Another process on the same store: the progress is still there, with no report
    // left to read.
    let app = local_app(&setup, &multiomix, &[]).await;
    let after = job_of(&app, &id).await;
    assert_eq!(after["progress"], before, "{after}");
    app.stop().await;
}
