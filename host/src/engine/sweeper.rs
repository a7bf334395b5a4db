//! Background sweeps: re-queue jobs whose worker died (lease expired), delete finished jobs
//! past the retention period, and forget shared rate-limit buckets nobody touched for a minute.

use super::Platform;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// How often finished jobs past retention are deleted.
const RETENTION_SWEEP_EVERY: Duration = Duration::from_secs(3600);
/// How often rate-limit buckets full again (untouched for a minute) are deleted.
const RATE_BUCKET_SWEEP_EVERY: Duration = Duration::from_secs(60);

pub async fn run(platform: Platform, stop: CancellationToken) {
    let orphan_every = (platform.config.lease / 2).max(Duration::from_millis(100));
    let mut last_retention = None::<std::time::Instant>;
    let mut last_bucket_sweep = std::time::Instant::now();
    loop {
        match platform.db.sweep_orphans().await {
            Ok(0) => {}
            Ok(n) => {
                tracing::warn!(jobs = n, "recovered jobs whose worker stopped");
                platform.bus.job_is_due();
            }
            Err(e) => tracing::error!(error = %e, "orphan sweep failed"),
        }
        if last_retention.is_none_or(|at| at.elapsed() >= RETENTION_SWEEP_EVERY) {
            last_retention = Some(std::time::Instant::now());
            let retention_ms = i64::try_from(platform.config.retention.as_millis()).unwrap_or(i64::MAX);
            match platform.db.sweep_finished(crate::db::now_ms().saturating_sub(retention_ms)).await {
                Ok(0) => {}
                Ok(n) => tracing::info!(jobs = n, "deleted finished jobs past retention"),
                Err(e) => tracing::error!(error = %e, "retention sweep failed"),
            }
        }
        if last_bucket_sweep.elapsed() >= RATE_BUCKET_SWEEP_EVERY {
            last_bucket_sweep = std::time::Instant::now();
            if let Err(e) = platform.db.forget_full_rate_buckets().await {
                tracing::warn!(error = %e, "rate-limit bucket sweep failed");
            }
        }
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = tokio::time::sleep(orphan_every) => {}
        }
    }
}
