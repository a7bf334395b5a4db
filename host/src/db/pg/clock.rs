//! The database server's clock, followed by every host. Leases, sweeps, cooldowns and the
//! billing month compare times written by different hosts; each host reading its own clock
//! would let one running ahead re-queue jobs another host still runs. So `db::now_ms` adds
//! this host's measured offset to the server's clock (`clock_timestamp()`), measured at connect
//! and again every minute, NTP-style: on one connection, the sample with the shortest round
//! trip, its midpoint.
//!
//! The offset is process-wide: a process talks to one database server (the CLI's `db copy`
//! opens a second database, on a server whose clock it has no reason to follow instead).

use std::sync::atomic::{AtomicI64, Ordering::Relaxed};
use std::time::{Duration, Instant};
use tokio_util::sync::{CancellationToken, DropGuard};

/// Server clock minus this host's clock, in milliseconds (0 until measured, and on SQLite).
static OFFSET_MS: AtomicI64 = AtomicI64::new(0);
/// Samples per measurement; the one with the shortest round trip wins.
const SAMPLES: usize = 5;
/// A best round trip longer than this says the server or network is busy: the midpoint could
/// be off by half of it, so the previous offset stays.
const TRUSTED_ROUND_TRIP: Duration = Duration::from_millis(50);
/// How often the offset is measured again (clocks drift, and NTP steps them).
const EVERY: Duration = Duration::from_secs(60);
/// Smaller changes are measurement noise: ignoring them keeps `now_ms` from stepping back.
const NOISE_MS: i64 = 2;
/// An offset past this is worth an operator's attention (the host's NTP is off).
const WARN_PAST_MS: i64 = 1_000;
/// Past this, one of the clocks is badly wrong; the hosts still agree with each other, but
/// times customers see (webhook signatures) are off.
const ERROR_PAST_MS: i64 = 5 * 60 * 1_000;

pub(crate) fn offset_ms() -> i64 {
    OFFSET_MS.load(Relaxed)
}

/// Measure now (so the first lease this host writes is on the server's clock; a few tries),
/// then keep measuring in the background until the returned guard, kept by the pool's
/// owner, is dropped.
pub(super) async fn follow(pool: sqlx::PgPool) -> DropGuard {
    for attempt in 0..3 {
        match measure(&pool).await {
            Ok(()) => break,
            Err(e) if attempt == 2 => {
                tracing::error!(error = %e, "the database's clock could not be read; this host keeps its own until it can")
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(200)).await,
        }
    }
    let stop = CancellationToken::new();
    let stopped = stop.clone();
    tokio::spawn(async move {
        loop {
            tokio::select! {
                _ = stopped.cancelled() => return,
                _ = tokio::time::sleep(EVERY) => {}
            }
            if let Err(e) = measure(&pool).await {
                tracing::warn!(error = %e, "the database's clock could not be read; keeping the last offset");
            }
        }
    });
    stop.drop_guard()
}

async fn measure(pool: &sqlx::PgPool) -> Result<(), sqlx::Error> {
    // One connection for every sample: waiting for a pool slot is not a network round trip.
    let mut conn = pool.acquire().await?;
    let mut best: Option<(Duration, i64)> = None;
    for _ in 0..SAMPLES {
        let before_us = crate::db::local_now_ms() * 1_000;
        let sent = Instant::now();
        let server_us: i64 = sqlx::query_scalar("SELECT (extract(epoch FROM clock_timestamp()) * 1000000)::BIGINT")
            .fetch_one(&mut *conn)
            .await?;
        let round_trip = sent.elapsed();
        let midpoint_us = before_us + i64::try_from(round_trip.as_micros() / 2).unwrap_or(0);
        if best.is_none_or(|(shortest, _)| round_trip < shortest) {
            best = Some((round_trip, (server_us - midpoint_us) / 1_000));
        }
    }
    let Some((round_trip, offset)) = best else { return Ok(()) };
    if round_trip > TRUSTED_ROUND_TRIP {
        tracing::debug!(round_trip_ms = round_trip.as_millis() as u64, "database clock sample too slow to trust");
        return Ok(());
    }
    if offset.abs() > ERROR_PAST_MS {
        tracing::error!(
            offset_ms = offset,
            "this host's clock and the database server's differ by minutes; following the server's"
        );
    } else if offset.abs() > WARN_PAST_MS {
        tracing::warn!(offset_ms = offset, "this host's clock is off the database server's; following the server's");
    }
    if (offset - OFFSET_MS.load(Relaxed)).abs() >= NOISE_MS {
        OFFSET_MS.store(offset, Relaxed);
    }
    Ok(())
}
