//! Runs a FakeEmr until SIGTERM or Ctrl-C, for benchmarks that drive the service as a process.
//!
//! `fake-emr [--port P] [--virtual-cluster-id ID] [--complete-after-ms N]`
//!
//! Prints `listening on http://127.0.0.1:PORT` once bound, and the call counts per
//! operation (JSON) when stopped. `GET /_calls` answers the same counts while running.

use std::io::Write;
use std::process::ExitCode;
use std::time::Duration;

use multiomix_fakes::{FakeEmr, JobState};

const USAGE: &str = "usage: fake-emr [--port P] [--virtual-cluster-id ID] [--complete-after-ms N]";

#[tokio::main]
async fn main() -> ExitCode {
    let options = match parse_args(std::env::args().skip(1)) {
        Ok(Some(options)) => options,
        Ok(None) => {
            println!("{USAGE}");
            return ExitCode::SUCCESS;
        }
        Err(message) => {
            eprintln!("fake-emr: {message}\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    let mut builder = FakeEmr::builder()
        .record_start_requests(false)
        .port(options.port);
    if let Some(id) = options.virtual_cluster_id {
        builder = builder.virtual_cluster_id(id);
    }
    if let Some(ms) = options.complete_after_ms {
        builder = builder.finish_after(Duration::from_millis(ms), JobState::Completed);
    }

    let fake = match builder.try_start().await {
        Ok(fake) => fake,
        Err(error) => {
            eprintln!("fake-emr: cannot listen: {error}");
            return ExitCode::FAILURE;
        }
    };
    println!("listening on http://{}", fake.addr());
    println!("virtual cluster {}", fake.virtual_cluster_id());
    let _ = std::io::stdout().flush();

    multiomix_fakes::wait_for_stop().await;
    let counts = serde_json::to_string(&fake.call_counts()).expect("JSON");
    println!("calls {counts}");
    let _ = std::io::stdout().flush();
    fake.shutdown().await;
    ExitCode::SUCCESS
}

struct Options {
    port: u16,
    virtual_cluster_id: Option<String>,
    complete_after_ms: Option<u64>,
}

/// `Ok(None)` asks for the usage text.
fn parse_args(mut args: impl Iterator<Item = String>) -> Result<Option<Options>, String> {
    let mut options = Options {
        port: 0,
        virtual_cluster_id: None,
        complete_after_ms: None,
    };
    while let Some(arg) = args.next() {
        let mut value = || args.next().ok_or_else(|| format!("{arg} needs a value"));
        match arg.as_str() {
            "--port" => {
                let v = value()?;
                options.port = v.parse().map_err(|_| format!("bad port {v:?}"))?;
            }
            "--virtual-cluster-id" => options.virtual_cluster_id = Some(value()?),
            "--complete-after-ms" => {
                let v = value()?;
                let ms = v.parse().map_err(|_| format!("bad milliseconds {v:?}"))?;
                options.complete_after_ms = Some(ms);
            }
            "-h" | "--help" => return Ok(None),
            other => return Err(format!("unknown argument {other:?}")),
        }
    }
    Ok(Some(options))
}
