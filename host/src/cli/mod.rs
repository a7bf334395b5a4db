//! The command line. Operators: `serve`, `api`, `worker`, `doctor`, `customers`, `keys`, `db`.
//! Authors: `template build|run`. Exit codes: 0 success, 1 failure, 2 bad usage.

mod accounts;
mod admin;
mod customer_limits;
mod database;
pub mod doctor;
mod platform;
mod provider_keys;
mod registry;
mod template;

use clap::{Parser, Subcommand};
use std::io::IsTerminal;
use std::process::ExitCode;

#[derive(Parser)]
#[command(name = "vidfarm", version, about = "Run video-production templates as sandboxed wasm components.")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the API and the workers (the platform, with embedded defaults).
    Serve(platform::ServeArgs),
    /// Run only the API (workers run elsewhere on the same database).
    Api(platform::ServeArgs),
    /// Run only workers.
    Worker(platform::ServeArgs),
    /// Check what serving and rendering need (ffmpeg, Chromium, Node, the Remotion bundle,
    /// storage, keys) and print the fix for what is missing; exit 1 if a required piece is.
    Doctor(doctor::DoctorArgs),
    /// Manage customers.
    #[command(subcommand)]
    Customers(admin::CustomersCommand),
    /// Manage customers' API keys.
    #[command(subcommand)]
    Keys(admin::KeysCommand),
    /// Customer credit and charges.
    #[command(subcommand)]
    Billing(admin::BillingCommand),
    /// Customers' AI provider keys (encrypted at rest).
    #[command(subcommand)]
    ProviderKeys(provider_keys::ProviderKeysCommand),
    /// Database maintenance.
    #[command(subcommand)]
    Db(admin::DbCommand),
    /// The signed template registry: keys, publish, activate, rollback, verify.
    #[command(subcommand)]
    Registry(registry::RegistryCommand),
    /// Build and run templates (for template authors).
    #[command(subcommand)]
    Template(template::TemplateCommand),
}

/// Parse the arguments, run the command, map the result to an exit code.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    let server = matches!(cli.command, Command::Serve(_) | Command::Api(_) | Command::Worker(_));
    let traces = init_logging(server);
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::from(1);
        }
    };
    let code = runtime.block_on(async {
        match cli.command {
            Command::Serve(args) => platform::run(args, true, true).await,
            Command::Api(args) => platform::run(args, true, false).await,
            Command::Worker(args) => platform::run(args, false, true).await,
            Command::Doctor(args) => doctor::run(args).await,
            Command::Customers(command) => admin::customers(command).await,
            Command::Keys(command) => admin::keys(command).await,
            Command::Db(command) => admin::db(command).await,
            Command::Billing(command) => admin::billing(command).await,
            Command::ProviderKeys(command) => provider_keys::run(command).await,
            Command::Registry(command) => registry::run(command).await,
            Command::Template(command) => template::run(command).await,
        }
    });
    // The last spans (the shutdown's) are exported before the process exits.
    drop(traces);
    code
}

/// Servers log to stdout (JSON lines in production, readable in development); other
/// commands log to stderr so their stdout stays machine-readable. Spans are exported over
/// OTLP when the standard `OTEL_EXPORTER_OTLP_*` environment asks for it (`crate::telemetry`);
/// the guard flushes them at exit.
fn init_logging(server: bool) -> Option<crate::telemetry::TracerGuard> {
    use tracing_subscriber::prelude::*;
    let filter = tracing_subscriber::EnvFilter::try_from_env("VIDFARM_LOG")
        .unwrap_or_else(|_| if server { "info,sqlx=warn" } else { "warn" }.into());
    let production = std::env::var("VIDFARM_ENV").is_ok_and(|e| e == "production");
    let ansi = if server { std::io::stdout().is_terminal() } else { std::io::stderr().is_terminal() };
    let (otlp, guard, otlp_error) = match crate::telemetry::otlp_layer() {
        Ok(Some((layer, guard))) => (Some(layer), Some(guard), None),
        Ok(None) => (None, None, None),
        Err(e) => (None, None, Some(e)),
    };
    let fmt = tracing_subscriber::fmt::layer().with_ansi(ansi);
    let fmt = match (server, production) {
        (true, true) => fmt.json().with_writer(std::io::stdout).boxed(),
        (true, false) => fmt.with_writer(std::io::stdout).boxed(),
        (false, _) => fmt.with_writer(std::io::stderr).boxed(),
    };
    tracing_subscriber::registry().with(otlp).with(fmt.with_filter(filter)).init();
    if let Some(e) = otlp_error {
        tracing::error!(error = %e, "OTLP trace export is configured but cannot start; no spans are exported");
    }
    guard
}

/// A usage error: printed to stderr, exit code 2.
pub(crate) fn usage(message: impl std::fmt::Display) -> ExitCode {
    eprintln!("error: {message}");
    ExitCode::from(2)
}

/// A failure: printed to stderr, exit code 1.
pub(crate) fn failure(message: impl std::fmt::Display) -> ExitCode {
    eprintln!("error: {message}");
    ExitCode::from(1)
}
