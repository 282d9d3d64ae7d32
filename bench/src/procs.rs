//! The processes under test: finding the release binaries, starting them, reading their
//! memory from `/proc`, and stopping them.

use std::io::{BufRead, BufReader};
use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The binaries the benchmark starts.
pub const SERVICE: &str = "multiomix-aws-emr";
pub const FAKE_EMR: &str = "fake-emr";
pub const FAKE_MULTIOMIX: &str = "fake-multiomix";

/// Where the release binaries are: `--bin-dir`, else next to this binary. Under
/// `cargo run` (which sets `CARGO`) the workspace's binaries are built first, so a
/// stale service is never measured; that build is a no-op when nothing changed.
pub fn locate_binaries(explicit: Option<PathBuf>) -> Result<PathBuf, String> {
    let dir = match explicit {
        Some(dir) => dir,
        None => {
            let exe = std::env::current_exe().map_err(|e| format!("current_exe: {e}"))?;
            let dir = exe
                .parent()
                .ok_or("the benchmark binary has no folder")?
                .to_path_buf();
            if let Some(cargo) = std::env::var_os("CARGO") {
                build_workspace(&cargo)?;
            }
            dir
        }
    };
    for name in [SERVICE, FAKE_EMR, FAKE_MULTIOMIX] {
        if !dir.join(name).is_file() {
            return Err(format!(
                "{} is missing; build the binaries first:\n    cargo build --release --workspace --bins",
                dir.join(name).display()
            ));
        }
    }
    Ok(dir)
}

fn build_workspace(cargo: &std::ffi::OsStr) -> Result<(), String> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("the bench crate sits in the workspace");
    eprintln!("building the release binaries (cargo build --release --workspace --bins)...");
    let status = Command::new(cargo)
        .args(["build", "--release", "--workspace", "--bins"])
        .current_dir(root)
        .status()
        .map_err(|e| format!("cannot run cargo: {e}"))?;
    if status.success() {
        Ok(())
    } else {
        Err(format!("cargo build failed: {status}"))
    }
}

/// A child process that is stopped (SIGTERM, then SIGKILL) when dropped.
pub struct Proc {
    pub name: &'static str,
    child: Child,
}

impl Proc {
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Sends SIGTERM and waits up to `grace` before SIGKILL.
    pub fn stop(&mut self, grace: Duration) {
        if let Ok(Some(_)) = self.child.try_wait() {
            return;
        }
        // SAFETY: kill(2) with a pid this process spawned and has not reaped yet.
        unsafe {
            libc::kill(self.child.id() as libc::pid_t, libc::SIGTERM);
        }
        let until = Instant::now() + grace;
        while Instant::now() < until {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        eprintln!("{} did not stop within {grace:?}; killing it", self.name);
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Memory figures from `/proc/PID/status`.
    pub fn memory(&self) -> Memory {
        Memory::of(self.pid())
    }

    /// Resets the peak resident size (`VmHWM`) to the current one, so a later reading
    /// is the peak of what happened since. Linux 4.0 and later.
    pub fn reset_peak(&self) -> bool {
        std::fs::write(format!("/proc/{}/clear_refs", self.pid()), "5").is_ok()
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        self.stop(Duration::from_secs(2));
    }
}

/// Starts a fake, which prints `listening on http://ADDR` once bound.
pub fn start_fake(
    bin_dir: &Path,
    name: &'static str,
    args: &[&str],
) -> Result<(Proc, SocketAddr), String> {
    let mut child = Command::new(bin_dir.join(name))
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .map_err(|e| format!("cannot start {name}: {e}"))?;
    let stdout = child.stdout.take().expect("piped stdout");
    let proc = Proc { name, child };
    let mut lines = BufReader::new(stdout).lines();
    let addr = loop {
        let line = match lines.next() {
            Some(Ok(line)) => line,
            _ => return Err(format!("{name} stopped before it was listening")),
        };
        if let Some(rest) = line.strip_prefix("listening on http://") {
            break rest
                .trim()
                .parse::<SocketAddr>()
                .map_err(|e| format!("{name} printed a bad address {rest:?}: {e}"))?;
        }
    };
    // Keep reading what it prints so it never blocks on a full pipe.
    std::thread::spawn(move || for _ in lines {});
    Ok((proc, addr))
}

/// Starts the service with `env` and its log in `log`; does not wait for it.
pub fn spawn_service(bin_dir: &Path, env: &[(String, String)], log: &Path) -> Result<Proc, String> {
    let log = std::fs::File::create(log).map_err(|e| format!("log file: {e}"))?;
    let mut command = Command::new(bin_dir.join(SERVICE));
    command
        .env_clear()
        .envs(env.iter().map(|(k, v)| (k, v)))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(log);
    if let Some(path) = std::env::var_os("PATH") {
        command.env("PATH", path);
    }
    let child = command
        .spawn()
        .map_err(|e| format!("cannot start {SERVICE}: {e}"))?;
    Ok(Proc {
        name: SERVICE,
        child,
    })
}

/// A free port on 127.0.0.1 (bound and released; the OS does not hand it out again soon).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port on 127.0.0.1")
}

/// Resident memory of a process, in KiB.
#[derive(Clone, Copy, Debug, Default)]
pub struct Memory {
    pub rss_kib: u64,
    pub hwm_kib: u64,
    /// The process's own memory (heap, stacks).
    pub anon_kib: u64,
    /// Pages of mapped files, mostly the binary's code: shared and reclaimable.
    pub file_kib: u64,
}

impl Memory {
    pub fn of(pid: u32) -> Memory {
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
        let field = |name: &str| {
            status
                .lines()
                .find_map(|l| l.strip_prefix(name))
                .and_then(|v| v.split_whitespace().next())
                .and_then(|v| v.parse().ok())
                .unwrap_or(0)
        };
        Memory {
            rss_kib: field("VmRSS:"),
            hwm_kib: field("VmHWM:"),
            anon_kib: field("RssAnon:"),
            file_kib: field("RssFile:"),
        }
    }
}

/// `17.5 MiB (2.4 anonymous + 15.1 file)`.
pub fn split(m: Memory) -> String {
    format!(
        "{:.1} MiB ({:.1} anonymous + {:.1} file-backed)",
        mib(m.rss_kib),
        mib(m.anon_kib),
        mib(m.file_kib)
    )
}

pub fn mib(kib: u64) -> f64 {
    kib as f64 / 1024.0
}

/// Raises the soft limit of open files to the hard one: the burst holds a thousand
/// connections open at once, and children inherit the limit.
pub fn raise_open_files_limit() {
    // SAFETY: getrlimit/setrlimit with a valid, initialised struct.
    unsafe {
        let mut limit = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) == 0 && limit.rlim_cur < limit.rlim_max
        {
            limit.rlim_cur = limit.rlim_max;
            libc::setrlimit(libc::RLIMIT_NOFILE, &limit);
        }
    }
}
