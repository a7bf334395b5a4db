//! The database server's clock, followed by every host. Leases, sweeps, cooldowns and the
//! billing month compare times written by different hosts; each host reading its own clock
//! would let one running ahead re-queue jobs another host still runs. So `db::now_ms` adds
//! this host's measured offset to the server's clock (`clock_timestamp()`), measured at connect
//! and again every minute, NTP-style: the sample with the shortest round trip, its midpoint.

use std::sync::atomic::{AtomicI64, Ordering::Relaxed};
use std::time::{Duration, Instant};

/// Server clock minus this host's clock, in milliseconds (0 until measured, and on SQLite).
static OFFSET_MS: AtomicI64 = AtomicI64::new(0);
/// Samples per measurement; the one with the shortest round trip wins.
const SAMPLES: usize = 5;
/// How often the offset is measured again (clocks drift, and NTP steps them).
const EVERY: Duration = Duration::from_secs(60);
/// An offset past this is worth an operator's attention (the host's NTP is off).
const WARN_PAST_MS: i64 = 1_000;

pub(crate) fn offset_ms() -> i64 {
    OFFSET_MS.load(Relaxed)
}

/// Measure now (so the first lease this host writes is on the server's clock), then keep
/// measuring in the background for as long as the pool lives.
pub(super) async fn follow(pool: sqlx::PgPool) {
    measure(&pool).await;
    tokio::spawn(async move {
        loop {
            tokio::time::sleep(EVERY).await;
            if pool.is_closed() {
                return;
            }
            measure(&pool).await;
        }
    });
}

async fn measure(pool: &sqlx::PgPool) {
    let mut best: Option<(Duration, i64)> = None;
    for _ in 0..SAMPLES {
        let local_before = crate::db::local_now_ms();
        let sent = Instant::now();
        let server: Result<i64, _> =
            sqlx::query_scalar("SELECT (extract(epoch FROM clock_timestamp()) * 1000)::BIGINT").fetch_one(pool).await;
        let round_trip = sent.elapsed();
        let Ok(server) = server else { return };
        let midpoint = local_before + i64::try_from(round_trip.as_millis() / 2).unwrap_or(0);
        if best.is_none_or(|(shortest, _)| round_trip < shortest) {
            best = Some((round_trip, server - midpoint));
        }
    }
    if let Some((round_trip, offset)) = best {
        if offset.abs() > WARN_PAST_MS {
            tracing::warn!(
                offset_ms = offset,
                "this host's clock is off the database server's; following the server's"
            );
        }
        tracing::debug!(offset_ms = offset, round_trip_us = round_trip.as_micros() as u64, "database clock measured");
        OFFSET_MS.store(offset, Relaxed);
    }
}
