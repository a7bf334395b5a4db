//! The command line: `vidfarm template build|run` for authors (more commands join as the
//! platform grows). Exit codes: 0 success, 1 a failed job, 2 bad usage.

mod template;

use clap::{Parser, Subcommand};
use std::process::ExitCode;

#[derive(Parser)]
#[command(name = "vidfarm", version, about = "Run video-production templates as sandboxed wasm components.")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Build and run templates (for template authors).
    #[command(subcommand)]
    Template(template::TemplateCommand),
}

/// Parse the arguments, run the command, map the result to an exit code.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::try_from_env("VIDFARM_LOG").unwrap_or_else(|_| "warn".into()))
        .with_writer(std::io::stderr)
        .init();
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::from(1);
        }
    };
    runtime.block_on(async {
        match cli.command {
            Command::Template(command) => template::run(command).await,
        }
    })
}

/// A usage error: printed to stderr, exit code 2.
pub(crate) fn usage(message: impl std::fmt::Display) -> ExitCode {
    eprintln!("error: {message}");
    ExitCode::from(2)
}
