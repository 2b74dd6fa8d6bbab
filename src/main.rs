//! The `at-gateway` binary: parse the command line, load settings, run.

use std::io::Read;
use std::path::PathBuf;
use std::process::ExitCode;

use at_gateway::cli::{self, CliError};
use at_gateway::{telemetry, Application, Settings};
use clap::{Parser, Subcommand};

/// See Cargo.toml for why not glibc's malloc.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

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
    /// settings as TOML with secrets redacted.
    CheckConfig,
    /// Sign a body for a custom source with its configured key; print the
    /// headers and a ready curl command. The body comes from --body-file or
    /// standard input, byte for byte.
    Sign {
        /// The custom source to sign for.
        source: String,
        #[arg(long, value_name = "FILE")]
        body_file: Option<PathBuf>,
        /// Gateway base URL (default: from HTTP_ADDR).
        #[arg(long)]
        url: Option<String>,
        /// Sign with this key id (default: the live key that expires last).
        #[arg(long)]
        key_id: Option<String>,
        #[arg(long)]
        idempotency_key: Option<String>,
    },
    /// Follow a subject (default: signals.normalized) through the durable
    /// consumer NATS_DURABLE and print each message.
    Tail {
        #[arg(long)]
        subject: Option<String>,
        /// Durable consumer name (default: NATS_DURABLE).
        #[arg(long)]
        durable: Option<String>,
        /// Where a new durable consumer starts; an existing one resumes.
        #[arg(long, value_enum, default_value = "new")]
        from: cli::tail::From,
        /// Stop after this many messages.
        #[arg(long)]
        count: Option<u64>,
        /// One compact JSON payload per line.
        #[arg(long)]
        json: bool,
    },
    /// Inspect and replay dead letters (signals.dlq).
    Dlq {
        #[command(subcommand)]
        command: DlqCommand,
    },
    /// Manage the source registry (SOURCE_REGISTRY): add sources, rotate
    /// their credentials, disable, list.
    Sources {
        #[command(subcommand)]
        command: cli::sources::Command,
    },
}

#[derive(Subcommand)]
enum DlqCommand {
    /// List every dead letter the stream holds.
    List {
        #[arg(long)]
        json: bool,
    },
    /// Re-run dead letters through normalization and publish those that now
    /// normalize; a record is published at most once.
    Replay {
        /// Stream sequences of the records (see `dlq list`).
        #[arg(required_unless_present = "all", conflicts_with = "all")]
        seq: Vec<u64>,
        /// Every record.
        #[arg(long)]
        all: bool,
        /// Report what would happen; publish nothing.
        #[arg(long)]
        dry_run: bool,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    // The key that enables the registry is made before it is configured.
    if let Some(Command::Sources {
        command: cli::sources::Command::NewKey,
    }) = &cli.command
    {
        return report(cli::sources::new_key(&mut std::io::stdout()));
    }
    let settings = match Settings::load(cli.config.as_deref()) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::from(2);
        }
    };
    match cli.command.unwrap_or(Command::Serve) {
        Command::CheckConfig => {
            // All of stdout is TOML: `check-config > effective.toml` is a file.
            print!(
                "# configuration OK\n{}",
                cli::check_config::effective_toml(&settings)
            );
            ExitCode::SUCCESS
        }
        Command::Serve => serve(settings),
        Command::Sign {
            source,
            body_file,
            url,
            key_id,
            idempotency_key,
        } => report(sign(
            settings,
            source,
            body_file,
            url,
            key_id,
            idempotency_key,
        )),
        Command::Tail {
            subject,
            durable,
            from,
            count,
            json,
        } => {
            let req = cli::tail::TailRequest {
                subject,
                durable,
                from,
                count,
                json,
            };
            report(run_async(async move {
                cli::tail::tail(&settings, &req, &mut std::io::stdout()).await
            }))
        }
        Command::Dlq { command } => report(run_async(async move {
            let mut out = std::io::stdout();
            match command {
                DlqCommand::List { json } => {
                    let records = cli::dlq::list(&settings).await?;
                    cli::dlq::print_list(&records, json, &mut out)
                        .map_err(|e| CliError::runtime(format!("cannot write: {e}")))
                }
                DlqCommand::Replay {
                    seq,
                    all: _,
                    dry_run,
                } => {
                    cli::dlq::replay(&settings, &seq, dry_run, &mut out).await?;
                    Ok(())
                }
            }
        })),
        Command::Sources { command } => report(run_async(async move {
            cli::sources::run(&settings, command, &mut std::io::stdout()).await
        })),
    }
}

fn sign(
    settings: Settings,
    source: String,
    body_file: Option<PathBuf>,
    url: Option<String>,
    key_id: Option<String>,
    idempotency_key: Option<String>,
) -> Result<(), CliError> {
    let body = match &body_file {
        Some(path) => std::fs::read(path)
            .map_err(|e| CliError::usage(format!("cannot read {}: {e}", path.display())))?,
        None => {
            let mut body = Vec::new();
            std::io::stdin()
                .read_to_end(&mut body)
                .map_err(|e| CliError::usage(format!("cannot read standard input: {e}")))?;
            body
        }
    };
    let req = cli::sign::SignRequest {
        source,
        body,
        body_file: body_file.map(|p| p.display().to_string()),
        url,
        key_id,
        idempotency_key,
    };
    let signed = cli::sign::sign(&settings, &req)?;
    for (name, value) in &signed.headers {
        println!("{name}: {value}");
    }
    println!("\n{}", signed.curl);
    Ok(())
}

/// Runs an ops command on a small runtime of its own.
fn run_async<F: std::future::Future<Output = Result<(), CliError>>>(f: F) -> Result<(), CliError> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| CliError::runtime(format!("cannot start a runtime: {e}")))?
        .block_on(f)
}

fn report(result: Result<(), CliError>) -> ExitCode {
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("at-gateway: {e}");
            ExitCode::from(if e.usage { 2 } else { 1 })
        }
    }
}

fn serve(settings: Settings) -> ExitCode {
    telemetry::init_logging(&settings.log_level, std::io::stdout);
    let result = actix_web::rt::System::new().block_on(async move {
        let app = Application::build(settings).await?;
        actix_web::rt::spawn(at_gateway::ingress::drain::on_signals(app.shutdown()));
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
