//! Running the platform: the API on a listener the caller binds, the workers, or both, until
//! the caller's shutdown token fires (mini-redis' `server::run(listener, shutdown)` shape).

use crate::api;
use crate::engine::{Platform, Worker};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

/// Serve the API on `listener` (if given) and run workers (if `workers`) until `shutdown`;
/// then stop accepting, drain running jobs within the grace period and return.
pub async fn run(
    platform: Platform,
    listener: Option<TcpListener>,
    workers: bool,
    shutdown: CancellationToken,
) -> std::io::Result<()> {
    let worker = workers.then(|| tokio::spawn(Worker::new(platform.clone()).run(shutdown.clone())));
    let webhooks = workers.then(|| tokio::spawn(crate::webhooks::run(platform.clone(), shutdown.clone())));
    let renders = workers.then(|| tokio::spawn(platform.renders.clone().run(shutdown.clone())));
    if let (true, Some(settings)) = (workers, platform.config.backup.clone()) {
        let scratch = platform.config.data_dir.join("backups-partial");
        tokio::spawn(crate::backup::run_schedule(platform.db.clone(), scratch, settings, shutdown.clone()));
    }
    let bus = platform.bus.clone();
    if let Some(listener) = listener {
        tracing::info!(addr = %listener.local_addr()?, env = platform.config.env.as_str(), "listening");
        let stop = shutdown.clone();
        // The peer's address reaches handlers (the dashboard's sign-in limits per client).
        let app = api::router(platform).into_make_service_with_connect_info::<std::net::SocketAddr>();
        axum::serve(listener, app)
            .with_graceful_shutdown(async move {
                stop.cancelled().await;
                bus.shutdown.cancel();
            })
            .await?;
    } else {
        shutdown.cancelled().await;
    }
    if let Some(worker) = worker {
        let _ = worker.await;
    }
    if let Some(webhooks) = webhooks {
        let _ = webhooks.await;
    }
    if let Some(renders) = renders {
        let _ = renders.await;
    }
    Ok(())
}

/// A token cancelled on SIGTERM or SIGINT.
pub fn shutdown_on_signals() -> CancellationToken {
    let token = CancellationToken::new();
    let fire = token.clone();
    tokio::spawn(async move {
        #[cfg(unix)]
        {
            use tokio::signal::unix::{SignalKind, signal};
            match signal(SignalKind::terminate()) {
                Ok(mut term) => {
                    tokio::select! {
                        _ = term.recv() => {}
                        _ = tokio::signal::ctrl_c() => {}
                    }
                }
                Err(_) => {
                    let _ = tokio::signal::ctrl_c().await;
                }
            }
        }
        #[cfg(not(unix))]
        let _ = tokio::signal::ctrl_c().await;
        tracing::info!("shutting down: no new work; running jobs get the grace period");
        fire.cancel();
    });
    token
}
