//! The `at-gateway` binary: parse the command line, load settings, run.

use std::path::PathBuf;
use std::process::ExitCode;

use at_gateway::{telemetry, Application, Settings};
use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "at-gateway",
    version,
    about = "The trusted ingress for trading signals"
)]
struct Cli {
    /// Extra settings file (TOML), layered over config/default.toml and under
    /// the environment; per-source settings live here.
    #[arg(long, global = true, value_name = "FILE")]
    config: Option<PathBuf>,

    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Serve webhooks (the default).
    Serve,
    /// Load the configuration, report problems, print the effective
    /// settings with secrets redacted.
    CheckConfig,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let settings = match Settings::load(cli.config.as_deref()) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::from(2);
        }
    };
    match cli.command.unwrap_or(Command::Serve) {
        Command::CheckConfig => {
            println!("configuration OK\n{}", settings.describe());
            ExitCode::SUCCESS
        }
        Command::Serve => serve(settings),
    }
}

fn serve(settings: Settings) -> ExitCode {
    telemetry::init_logging(&settings.log_level, std::io::stdout);
    let result = actix_web::rt::System::new().block_on(async move {
        let app = Application::build(settings).await?;
        app.run_until_stopped().await?;
        anyhow::Ok(())
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!(error = %e, "at-gateway failed");
            eprintln!("at-gateway: {e}");
            ExitCode::FAILURE
        }
    }
}
