//! `vidfarm serve | api | worker`.

use super::{failure, usage};
use crate::config::Config;
use crate::engine::Platform;
use clap::Args;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Args)]
pub struct ServeArgs {
    /// Data directory: SQLite file, local object store, compiled cache [env: VIDFARM_DATA_DIR].
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// Address to listen on [env: VIDFARM_LISTEN; default 127.0.0.1:8080].
    #[arg(long)]
    listen: Option<SocketAddr>,
}

/// The configuration from the environment with these flags on top.
pub fn config(data_dir: Option<PathBuf>, listen: Option<SocketAddr>) -> Result<Config, String> {
    let mut config = Config::from_env()?;
    if let Some(dir) = data_dir {
        config.runtime.cache_dir = Some(dir.join("compiled"));
        config.data_dir = dir;
    }
    if let Some(listen) = listen {
        config.listen = listen;
        // Signed file URLs point where the host listens unless the operator says otherwise.
        if std::env::var_os("VIDFARM_PUBLIC_URL").is_none() {
            config.public_url = format!("http://{listen}");
        }
    }
    Ok(config)
}

pub async fn run(args: ServeArgs, api: bool, workers: bool) -> ExitCode {
    let config = match config(args.data_dir, args.listen) {
        Ok(c) => c,
        Err(e) => return usage(e),
    };
    let listen = config.listen;
    let checked = config.clone();
    let platform = match Platform::start(config).await {
        Ok(p) => p,
        Err(e) => return failure(e),
    };
    let listener = if api {
        match tokio::net::TcpListener::bind(listen).await {
            Ok(l) => Some(l),
            Err(e) => return failure(format!("cannot listen on {listen}: {e}")),
        }
    } else {
        None
    };
    // The readiness checks log in the background once the platform is up (its start-up
    // compiles templates; a check timed against that would mislead), never delaying it.
    tokio::spawn(super::doctor::log(checked));
    let shutdown = crate::server::shutdown_on_signals();
    match crate::server::run(platform, listener, workers, shutdown).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => failure(e),
    }
}
