//! The service's benchmark: starts the release binaries of the service, the fake EMR and
//! the fake Multiomix on 127.0.0.1, drives load, and prints throughput, latency
//! percentiles, memory, start-up time and notice delivery for each scenario. It measures;
//! it does not judge (the targets are printed next to the figures for reading).
//!
//!     cargo run --release -p multiomix-bench            # full run, about a minute
//!     cargo run --release -p multiomix-bench -- --smoke # a few seconds, for CI

mod load;
mod procs;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use hyper::{Method, StatusCode};
use load::LoadResult;
use procs::{mib, split, Memory, Proc};

const USAGE: &str = "usage: multiomix-bench [--smoke] [--duration SECS] [--connections N] \
[--callbacks N] [--startup-runs N] [--bin-dir DIR]";

const VIRTUAL_CLUSTER: &str = "benchvirtualcluster000001";

/// Exactly what Multiomix sends, for the experiment whose app-name is `app`.
fn job_body(app: &str) -> Bytes {
    Bytes::from(format!(
        r#"{{"name":"BreastCancerBBHA","algorithm":1,"entrypoint_arguments":[{{"name":"app-name","value":"{app}"}},{{"name":"molecules-dataset","value":"{app}/molecules.csv"}},{{"name":"n-stars","value":15}},{{"name":"cv-folds","value":"10"}}]}}"#
    ))
}

/// A new experiment's request each time: the service holds one open job per app-name,
/// and Multiomix names each experiment's app `BBHA_<experiment id>`.
fn next_job_body() -> Bytes {
    static EXPERIMENTS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);
    let n = EXPERIMENTS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    job_body(&format!("BBHA_{n}"))
}
/// What the driver pod's sidecar sends.
const CALLBACK_BODY: &str = r#"{"state":"Terminated"}"#;

struct Options {
    smoke: bool,
    duration: Duration,
    warmup: Duration,
    connections: usize,
    callbacks: usize,
    startup_runs: usize,
    delivery_timeout: Duration,
    bin_dir: Option<PathBuf>,
}

fn parse_args() -> Result<Options, String> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let smoke = args.iter().any(|a| a == "--smoke");
    let mut o = Options {
        smoke,
        duration: Duration::from_secs(if smoke { 1 } else { 10 }),
        warmup: Duration::from_millis(if smoke { 200 } else { 1_000 }),
        connections: 16,
        callbacks: if smoke { 100 } else { 1_000 },
        startup_runs: if smoke { 2 } else { 5 },
        delivery_timeout: Duration::from_secs(if smoke { 20 } else { 60 }),
        bin_dir: None,
    };
    let mut it = args.into_iter();
    while let Some(arg) = it.next() {
        let mut value = || it.next().ok_or_else(|| format!("{arg} needs a value"));
        match arg.as_str() {
            "--smoke" => {}
            "--duration" => {
                let v = value()?;
                let secs: f64 = v.parse().map_err(|_| format!("bad seconds {v:?}"))?;
                o.duration = Duration::from_secs_f64(secs);
            }
            "--connections" => o.connections = number(&value()?)?,
            "--callbacks" => o.callbacks = number(&value()?)?,
            "--startup-runs" => o.startup_runs = number::<usize>(&value()?)?.max(1),
            "--bin-dir" => o.bin_dir = Some(PathBuf::from(value()?)),
            "-h" | "--help" => return Err(String::new()),
            other => return Err(format!("unknown argument {other:?}")),
        }
    }
    Ok(o)
}

fn number<T: std::str::FromStr>(v: &str) -> Result<T, String> {
    v.parse().map_err(|_| format!("bad number {v:?}"))
}

fn main() -> std::process::ExitCode {
    let options = match parse_args() {
        Ok(o) => o,
        Err(e) if e.is_empty() => {
            println!("{USAGE}");
            return std::process::ExitCode::SUCCESS;
        }
        Err(e) => {
            eprintln!("multiomix-bench: {e}\n{USAGE}");
            return std::process::ExitCode::from(2);
        }
    };
    let bin_dir = match procs::locate_binaries(options.bin_dir.clone()) {
        Ok(dir) => dir,
        Err(e) => {
            eprintln!("multiomix-bench: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    procs::raise_open_files_limit();
    let runtime = tokio::runtime::Runtime::new().expect("a tokio runtime");
    match runtime.block_on(run(&options, &bin_dir)) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("multiomix-bench: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}

/// One running service and where to reach it.
struct Service {
    proc: Proc,
    addr: SocketAddr,
    log: PathBuf,
}

struct Startup {
    to_connect: Duration,
    to_health: Duration,
}

struct Fakes {
    multiomix: Proc,
    multiomix_addr: SocketAddr,
}

async fn run(o: &Options, bin_dir: &Path) -> Result<(), String> {
    let tmp = tempfile::tempdir().map_err(|e| format!("temp dir: {e}"))?;
    println!(
        "# multiomix-aws-emr benchmark{}",
        if o.smoke { " (smoke)" } else { "" }
    );
    println!("machine: {}", machine());
    println!(
        "load: {} connections, {:.1} s per scenario after {:.1} s warm-up; burst of {} callbacks",
        o.connections,
        o.duration.as_secs_f64(),
        o.warmup.as_secs_f64(),
        o.callbacks
    );
    println!("binaries: {}", bin_dir.display());
    println!("load average at the start: {}", loadavg());
    println!();

    let (multiomix, multiomix_addr) = procs::start_fake(bin_dir, procs::FAKE_MULTIOMIX, &[])?;
    let fakes = Fakes {
        multiomix,
        multiomix_addr,
    };

    // Part 1: jobs stay PENDING, so every read of a job is a DescribeJobRun.
    let (mut emr, emr_addr) = procs::start_fake(
        bin_dir,
        procs::FAKE_EMR,
        &["--virtual-cluster-id", VIRTUAL_CLUSTER],
    )?;
    let mut startups = Vec::new();
    let mut service = None;
    for run in 0..o.startup_runs {
        let (svc, startup) =
            start_service(bin_dir, tmp.path(), &format!("a{run}"), emr_addr, &fakes).await?;
        startups.push(startup);
        if run + 1 == o.startup_runs {
            service = Some(svc);
        } else {
            let mut svc = svc;
            svc.proc.stop(Duration::from_secs(5));
        }
    }
    let mut a = service.expect("at least one start-up run");
    tokio::time::sleep(Duration::from_millis(500)).await;
    let idle_start = a.proc.memory();

    let post = measure(
        o,
        a.addr,
        Method::POST,
        StatusCode::CREATED,
        |_| "/job".into(),
        next_job_body,
    )
    .await;
    let ids = create_jobs(a.addr, 64, 4).await?;
    let get = {
        let ids = ids.clone();
        measure(
            o,
            a.addr,
            Method::GET,
            StatusCode::OK,
            move |n| format!("/job/{}", ids[n as usize % ids.len()]),
            Bytes::new,
        )
        .await
    };
    let loaded = a.proc.memory();
    tokio::time::sleep(Duration::from_secs(if o.smoke { 1 } else { 3 })).await;
    let idle_after = a.proc.memory();
    let describe_calls = fake_counter(emr_addr, "/_calls").await.unwrap_or_default();
    a.proc.stop(Duration::from_secs(5));
    emr.stop(Duration::from_secs(2));

    // Part 2: jobs are COMPLETED from their first read, as when the driver has ended.
    let (mut emr, emr_addr) = procs::start_fake(
        bin_dir,
        procs::FAKE_EMR,
        &[
            "--virtual-cluster-id",
            VIRTUAL_CLUSTER,
            "--complete-after-ms",
            "0",
        ],
    )?;
    let (mut b, _) = start_service(bin_dir, tmp.path(), "b", emr_addr, &fakes).await?;
    // The reconciler's first round at start-up adopts the jobs EMR lists when the store is
    // empty; jobs started before it ends would get their notices without any callback.
    wait_for_reconciler_round(b.addr).await;
    let before_jobs = fake_counter(fakes.multiomix_addr, "/_count")
        .await?
        .parse::<u64>()
        .map_err(|e| e.to_string())?;
    let finished = create_jobs(b.addr, o.callbacks, o.connections).await?;
    let burst = burst(o, &b, &finished, fakes.multiomix_addr, before_jobs).await?;
    let notice_metrics = scrape_notice_metrics(b.addr).await;
    if burst.delivered < finished.len() as u64 {
        let log = std::fs::read_to_string(&b.log).unwrap_or_default();
        let lines: Vec<&str> = log.lines().collect();
        eprintln!("not every notice arrived; the end of the service's log:");
        for line in &lines[lines.len().saturating_sub(20)..] {
            eprintln!("  {line}");
        }
    }
    let get_final = {
        let ids = finished.clone();
        measure(
            o,
            b.addr,
            Method::GET,
            StatusCode::OK,
            move |n| format!("/job/{}", ids[n as usize % ids.len()]),
            Bytes::new,
        )
        .await
    };
    b.proc.stop(Duration::from_secs(5));
    emr.stop(Duration::from_secs(2));
    let mut fakes = fakes;
    fakes.multiomix.stop(Duration::from_secs(2));

    // The report.
    println!("## Requests ({} connections)", o.connections);
    println!();
    println!("| scenario | target | requests/s | p50 ms | p90 ms | p99 ms | max ms | errors |");
    println!("|---|---|---:|---:|---:|---:|---:|---:|");
    print_load(
        "POST /job (StartJobRun + SQLite insert)",
        "≥ 5,000/s",
        &post,
    );
    print_load(
        "GET /job/{id}, job running (DescribeJobRun + SQLite read)",
        "≥ 10,000/s, p99 < 10 ms",
        &get,
    );
    print_load("GET /job/{id}, job finished", "—", &get_final);
    println!();
    println!("## Start-up and memory");
    println!();
    println!("| measure | target | value |");
    println!("|---|---|---:|");
    let mut health: Vec<Duration> = startups.iter().map(|s| s.to_health).collect();
    health.sort();
    let connect_median = {
        let mut c: Vec<Duration> = startups.iter().map(|s| s.to_connect).collect();
        c.sort();
        c[c.len() / 2]
    };
    println!(
        "| start-up: spawn → port accepts (median of {}) | — | {:.1} ms |",
        startups.len(),
        ms(connect_median)
    );
    println!(
        "| start-up: spawn → first 200 from /health (median of {}; max) | < 200 ms | {:.1} ms ({:.1} ms) |",
        health.len(),
        ms(health[health.len() / 2]),
        ms(*health.last().expect("at least one run"))
    );
    println!(
        "| idle RSS after start-up | ≤ 15 MiB | {} |",
        split(idle_start)
    );
    println!(
        "| RSS at the end of the request scenarios (peak) | — | {:.1} MiB ({:.1} MiB) |",
        mib(loaded.rss_kib),
        mib(loaded.hwm_kib)
    );
    println!("| idle RSS after load | ≤ 15 MiB | {} |", split(idle_after));
    println!();
    println!(
        "## Burst of {} concurrent sidecar callbacks (finished jobs)",
        o.callbacks
    );
    println!();
    println!("| measure | target | value |");
    println!("|---|---|---:|");
    println!(
        "| callbacks answered 204 (errors) | all | {} ({}) |",
        burst.answered, burst.errors
    );
    println!(
        "| time until every callback was answered | — | {:.0} ms |",
        ms(burst.answer_time)
    );
    println!(
        "| notices delivered to Multiomix | {} | {} |",
        o.callbacks, burst.delivered
    );
    if burst.early > 0 {
        println!(
            "| of which arrived before the burst | 0 | {} |",
            burst.early
        );
    }
    println!(
        "| time from the burst until the last notice arrived | — | {} |",
        match burst.delivery_time {
            Some(t) => format!("{:.0} ms", ms(t)),
            None => format!("not all within {:.0} s", o.delivery_timeout.as_secs_f64()),
        }
    );
    println!(
        "| RSS before the burst | — | {:.1} MiB |",
        mib(burst.before.rss_kib)
    );
    println!(
        "| peak RSS during the burst and delivery (VmHWM{}) | ≤ 40 MiB | {:.1} MiB |",
        if burst.peak_reset {
            ", reset before the burst"
        } else {
            " since start"
        },
        mib(burst.after.hwm_kib)
    );
    println!(
        "| largest RSS sampled every 2 ms (when, from the burst's start) | — | {:.1} MiB (+{:.0} ms) |",
        mib(burst.sampled_peak),
        ms(burst.peak_at)
    );
    println!("| RSS after delivery | — | {} |", split(burst.after));
    println!();
    println!("the service's notice metrics after the burst:");
    for line in notice_metrics.lines() {
        println!("    {line}");
    }
    println!();
    println!(
        "load average at the end: {} (above about 2, other work shared the cores)",
        loadavg()
    );
    println!("fake EMR calls during the request scenarios: {describe_calls}");
    for (name, result) in [
        ("POST /job", &post),
        ("GET /job", &get),
        ("GET /job finished", &get_final),
    ] {
        for sample in &result.error_samples {
            println!("error sample ({name}): {sample}");
        }
    }
    for e in &burst.error_samples {
        println!("error sample (burst): {e}");
    }
    Ok(())
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

fn print_load(name: &str, target: &str, r: &LoadResult) {
    println!(
        "| {name} | {target} | {:.0} | {:.2} | {:.2} | {:.2} | {:.2} | {} |",
        r.throughput(),
        r.percentile_ms(0.50),
        r.percentile_ms(0.90),
        r.percentile_ms(0.99),
        r.percentile_ms(1.0),
        r.errors
    );
}

/// `/proc/loadavg`'s 1, 5 and 15 minute figures.
fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "unknown".into())
}

fn machine() -> String {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("model name"))
                .map(|v| v.trim_start_matches([' ', '\t', ':']).to_owned())
        })
        .unwrap_or_else(|| "unknown CPU".into());
    let cores = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(0);
    format!("{cores} cores, {cpu}")
}

/// The service's environment: the EMR backend against the fake, the store in `dir`.
fn service_env(
    dir: &Path,
    port: u16,
    emr: SocketAddr,
    multiomix: SocketAddr,
) -> Vec<(String, String)> {
    let db = dir.join("store.db");
    [
        ("JOB_BACKEND", "emr".to_owned()),
        ("EMR_VIRTUAL_CLUSTER_ID", VIRTUAL_CLUSTER.to_owned()),
        (
            "EMR_EXECUTION_ROLE_ARN",
            "arn:aws:iam::123456789012:role/emr-job".to_owned(),
        ),
        ("EMR_S3_BUCKET", "multiomix-bench".to_owned()),
        ("AWS_ENDPOINT_URL", format!("http://{emr}")),
        ("AWS_ACCESS_KEY_ID", "AKIDBENCH".to_owned()),
        ("AWS_SECRET_ACCESS_KEY", "bench-secret".to_owned()),
        ("AWS_DEFAULT_REGION", "us-east-1".to_owned()),
        ("AWS_EC2_METADATA_DISABLED", "true".to_owned()),
        ("MULTIOMIX_URL", format!("http://{multiomix}/")),
        ("DATABASE_URL", format!("sqlite:{}", db.display())),
        ("SLEEP_TIME", "0".to_owned()),
        ("POLL_INTERVAL", "0.05".to_owned()),
        // The reconciler would read every unfinished job the POST scenario started; it
        // is measured by its own tests, not here.
        ("RECONCILE_INTERVAL", "3600".to_owned()),
        ("HOST", "127.0.0.1".to_owned()),
        ("PORT", port.to_string()),
        ("RUST_LOG", "warn".to_owned()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v))
    .chain(
        // Let the caller try allocator and runtime settings without a rebuild.
        ["MALLOC_ARENA_MAX", "TOKIO_WORKER_THREADS"]
            .into_iter()
            .filter_map(|k| std::env::var(k).ok().map(|v| (k.to_owned(), v))),
    )
    .collect()
}

/// Starts the service with a fresh store and times it until `/health` answers 200.
async fn start_service(
    bin_dir: &Path,
    tmp: &Path,
    label: &str,
    emr: SocketAddr,
    fakes: &Fakes,
) -> Result<(Service, Startup), String> {
    let dir = tmp.join(label);
    std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let port = procs::free_port();
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let env = service_env(&dir, port, emr, fakes.multiomix_addr);
    let log = dir.join("service.log");
    let spawned = Instant::now();
    let proc = procs::spawn_service(bin_dir, &env, &log)?;
    let give_up = spawned + Duration::from_secs(10);
    let mut to_connect = None;
    let to_health = loop {
        if Instant::now() > give_up {
            return Err(format!(
                "the service did not answer /health within 10 s; see {}",
                log.display()
            ));
        }
        match load::connect(addr).await {
            Ok(mut sender) => {
                to_connect.get_or_insert_with(|| spawned.elapsed());
                let req = load::request(Method::GET, addr, "/health", Bytes::new());
                if let Ok((StatusCode::OK, _)) = load::send(&mut sender, req).await {
                    break spawned.elapsed();
                }
            }
            Err(_) => tokio::time::sleep(Duration::from_micros(500)).await,
        }
    };
    let startup = Startup {
        to_connect: to_connect.unwrap_or(to_health),
        to_health,
    };
    Ok((Service { proc, addr, log }, startup))
}

/// Warms up, then measures one scenario.
async fn measure(
    o: &Options,
    addr: SocketAddr,
    method: Method,
    expected: StatusCode,
    path: impl Fn(u64) -> String + Send + Sync + 'static,
    body: impl Fn() -> Bytes + Send + Sync + 'static,
) -> LoadResult {
    let make: load::MakeRequest =
        Arc::new(move |n| load::request(method.clone(), addr, &path(n), body()));
    load::run(addr, o.connections, o.warmup, expected, make.clone()).await;
    load::run(addr, o.connections, o.duration, expected, make).await
}

/// Starts `n` jobs over `connections` connections and returns their ids.
async fn create_jobs(
    addr: SocketAddr,
    n: usize,
    connections: usize,
) -> Result<Vec<String>, String> {
    let mut tasks = tokio::task::JoinSet::new();
    let per = n.div_ceil(connections.max(1));
    for c in 0..connections.max(1) {
        let count = per.min(n.saturating_sub(c * per));
        tasks.spawn(async move {
            let mut sender = load::connect(addr)
                .await
                .map_err(|e| format!("connect: {e}"))?;
            let mut ids = Vec::with_capacity(count);
            for _ in 0..count {
                let req = load::request(Method::POST, addr, "/job", next_job_body());
                let (status, body) = load::send(&mut sender, req).await?;
                if status != StatusCode::CREATED {
                    return Err(format!(
                        "POST /job answered {status}: {}",
                        String::from_utf8_lossy(&body)
                    ));
                }
                let v: serde_json::Value =
                    serde_json::from_slice(&body).map_err(|e| e.to_string())?;
                ids.push(v["id"].as_str().ok_or("no id in the answer")?.to_owned());
            }
            Ok::<_, String>(ids)
        });
    }
    let mut ids = Vec::with_capacity(n);
    while let Some(r) = tasks.join_next().await {
        ids.extend(r.map_err(|e| e.to_string())??);
    }
    Ok(ids)
}

async fn fake_counter(addr: SocketAddr, path: &str) -> Result<String, String> {
    let (status, body) =
        load::once(addr, load::request(Method::GET, addr, path, Bytes::new())).await?;
    if status != StatusCode::OK {
        return Err(format!("{path} answered {status}"));
    }
    Ok(String::from_utf8_lossy(&body).trim().to_owned())
}

/// Waits (up to 5 s) until the service's reconciler has finished its first round.
async fn wait_for_reconciler_round(addr: SocketAddr) {
    let until = Instant::now() + Duration::from_secs(5);
    while Instant::now() < until {
        let req = load::request(Method::GET, addr, "/metrics", Bytes::new());
        if let Ok((StatusCode::OK, body)) = load::once(addr, req).await {
            let text = String::from_utf8_lossy(&body);
            let done = text.lines().any(|l| {
                l.strip_prefix("reconciler_rounds_total ")
                    .and_then(|v| v.trim().parse::<f64>().ok())
                    .is_some_and(|n| n >= 1.0)
            });
            if done {
                return;
            }
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    eprintln!("the reconciler's first round did not show in /metrics within 5 s; going on");
}

/// The service's own account of its notices (`GET /metrics`).
async fn scrape_notice_metrics(addr: SocketAddr) -> String {
    match load::once(
        addr,
        load::request(Method::GET, addr, "/metrics", Bytes::new()),
    )
    .await
    {
        Ok((StatusCode::OK, body)) => String::from_utf8_lossy(&body)
            .lines()
            .filter(|l| l.starts_with("notice") || l.starts_with("callbacks_total"))
            .collect::<Vec<_>>()
            .join("\n"),
        Ok((status, _)) => format!("GET /metrics answered {status}"),
        Err(e) => format!("GET /metrics failed: {e}"),
    }
}

struct Burst {
    /// Notices that arrived before the burst (none expected).
    early: u64,
    /// The largest RSS seen by sampling every 2 ms, and when (from the burst's start).
    sampled_peak: u64,
    peak_at: Duration,
    answered: usize,
    errors: usize,
    answer_time: Duration,
    delivered: u64,
    delivery_time: Option<Duration>,
    before: Memory,
    after: Memory,
    peak_reset: bool,
    error_samples: Vec<String>,
}

/// Reads a process's RSS every 2 ms on a thread of its own, to say when the peak was.
struct RssSampler {
    stop: Arc<std::sync::atomic::AtomicBool>,
    thread: std::thread::JoinHandle<(u64, Duration)>,
}

impl RssSampler {
    fn start(pid: u32) -> Self {
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let flag = stop.clone();
        let thread = std::thread::spawn(move || {
            let started = Instant::now();
            let mut peak = (0, Duration::ZERO);
            while !flag.load(std::sync::atomic::Ordering::Relaxed) {
                let rss = Memory::of(pid).rss_kib;
                if rss > peak.0 {
                    peak = (rss, started.elapsed());
                }
                std::thread::sleep(Duration::from_millis(2));
            }
            peak
        });
        RssSampler { stop, thread }
    }

    fn stop(self) -> (u64, Duration) {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        self.thread.join().unwrap_or_default()
    }
}

/// Every job's callback at once, each on its own connection (each comes from its own
/// driver pod), then waits until Multiomix has every notice.
async fn burst(
    o: &Options,
    service: &Service,
    ids: &[String],
    multiomix: SocketAddr,
    already: u64,
) -> Result<Burst, String> {
    let count = |_: ()| async move {
        fake_counter(multiomix, "/_count")
            .await
            .and_then(|s| s.parse::<u64>().map_err(|e| e.to_string()))
    };
    let early = count(()).await?.saturating_sub(already);
    tokio::time::sleep(Duration::from_millis(300)).await;
    let before = service.proc.memory();
    let peak_reset = service.proc.reset_peak();
    let sampler = RssSampler::start(service.proc.pid());

    let addr = service.addr;
    let barrier = Arc::new(tokio::sync::Barrier::new(ids.len() + 1));
    let mut tasks = tokio::task::JoinSet::new();
    for id in ids {
        let barrier = barrier.clone();
        let path = format!("/job/{id}");
        tasks.spawn(async move {
            let connected = load::connect(addr).await;
            barrier.wait().await;
            let mut sender = connected.map_err(|e| format!("connect: {e}"))?;
            let req = load::request(
                Method::PATCH,
                addr,
                &path,
                Bytes::from_static(CALLBACK_BODY.as_bytes()),
            );
            let (status, body) = load::send(&mut sender, req).await?;
            if status == StatusCode::NO_CONTENT {
                Ok(())
            } else {
                Err(format!("{status}: {}", String::from_utf8_lossy(&body)))
            }
        });
    }
    barrier.wait().await;
    let started = Instant::now();
    let (mut answered, mut errors, mut error_samples) = (0, 0, Vec::new());
    while let Some(r) = tasks.join_next().await {
        match r.map_err(|e| e.to_string()).and_then(|r| r) {
            Ok(()) => answered += 1,
            Err(e) => {
                errors += 1;
                if error_samples.len() < 3 {
                    error_samples.push(e);
                }
            }
        }
    }
    let answer_time = started.elapsed();
    let wanted = ids.len() as u64;
    let mut delivered = 0;
    let mut delivery_time = None;
    while started.elapsed() < o.delivery_timeout {
        delivered = count(()).await?.saturating_sub(already);
        if delivered >= wanted {
            delivery_time = Some(started.elapsed());
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let (sampled_peak, peak_at) = sampler.stop();
    Ok(Burst {
        early,
        sampled_peak,
        peak_at,
        answered,
        errors,
        answer_time,
        delivered,
        delivery_time,
        before,
        after: service.proc.memory(),
        peak_reset,
        error_samples,
    })
}
