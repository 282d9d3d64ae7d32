//! Runs a FakeMultiomix until SIGTERM or Ctrl-C, for benchmarks that drive the service as
//! a process.
//!
//! `fake-multiomix [--port P] [--base-path PATH] [--status CODE]`
//!
//! Prints `listening on http://127.0.0.1:PORT` once bound, and `notices N` when stopped.
//! `GET /_count` answers the number of notices received so far, as plain text.

use std::io::Write;
use std::process::ExitCode;

use multiomix_fakes::{FakeMultiomix, Reply};

const USAGE: &str = "usage: fake-multiomix [--port P] [--base-path PATH] [--status CODE]";

#[tokio::main]
async fn main() -> ExitCode {
    let options = match parse_args(std::env::args().skip(1)) {
        Ok(Some(options)) => options,
        Ok(None) => {
            println!("{USAGE}");
            return ExitCode::SUCCESS;
        }
        Err(message) => {
            eprintln!("fake-multiomix: {message}\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    let builder = FakeMultiomix::builder()
        .keep_notices(false)
        .port(options.port)
        .base_path(&options.base_path)
        .reply(Reply::status(options.status));

    let fake = match builder.try_start().await {
        Ok(fake) => fake,
        Err(error) => {
            eprintln!("fake-multiomix: cannot listen: {error}");
            return ExitCode::FAILURE;
        }
    };
    println!("listening on http://{}", fake.addr());
    println!("notices go to {}/{{id}}/", fake.url());
    let _ = std::io::stdout().flush();

    multiomix_fakes::wait_for_stop().await;
    println!("notices {}", fake.count());
    let _ = std::io::stdout().flush();
    fake.shutdown().await;
    ExitCode::SUCCESS
}

struct Options {
    port: u16,
    base_path: String,
    status: u16,
}

/// `Ok(None)` asks for the usage text.
fn parse_args(mut args: impl Iterator<Item = String>) -> Result<Option<Options>, String> {
    let mut options = Options {
        port: 0,
        base_path: String::new(),
        status: 200,
    };
    while let Some(arg) = args.next() {
        let mut value = || args.next().ok_or_else(|| format!("{arg} needs a value"));
        match arg.as_str() {
            "--port" => {
                let v = value()?;
                options.port = v.parse().map_err(|_| format!("bad port {v:?}"))?;
            }
            "--base-path" => options.base_path = value()?,
            "--status" => {
                let v = value()?;
                options.status = v
                    .parse()
                    .ok()
                    .filter(|s| (100..=999).contains(s))
                    .ok_or_else(|| format!("bad status {v:?}"))?;
            }
            "-h" | "--help" => return Ok(None),
            other => return Err(format!("unknown argument {other:?}")),
        }
    }
    Ok(Some(options))
}
