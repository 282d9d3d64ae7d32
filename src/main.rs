//! The binary: logs, configuration, the service, until SIGTERM.

use std::process::ExitCode;

use multiomix_aws_emr::app::{shutdown_signal, Application};
use multiomix_aws_emr::config::Config;
use multiomix_aws_emr::telemetry;

#[tokio::main]
async fn main() -> ExitCode {
    let config = match Config::from_env() {
        Ok(config) => config,
        Err(e) => {
            eprintln!("multiomix-aws-emr: configuration error: {e}");
            return ExitCode::from(2);
        }
    };
    telemetry::init_tracing(config.server.log_format);
    let app = match Application::build(config).await {
        Ok(app) => app,
        Err(e) => {
            tracing::error!(error = format!("{e:#}"), "cannot start");
            return ExitCode::FAILURE;
        }
    };
    match app.run_until_stopped(shutdown_signal()).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!(error = format!("{e:#}"), "stopped with an error");
            ExitCode::FAILURE
        }
    }
}
