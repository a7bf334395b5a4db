//! [`Signal`]s as PostgreSQL `NOTIFY` on one channel, heard with `LISTEN`.
//! `NOTIFY` takes a database-wide lock at commit, so a host never notifies per job: a burst
//! of "a job is due" becomes one notification per `DEBOUNCE`, sent outside any transaction
//! by one task per host. The listener reconnects by itself (sqlx's `PgListener`); what is
//! said while it is away is lost, and the pollers it saves waiting for pick that work up.

use super::Pg;
use crate::db::signals::Signal;
use sqlx::postgres::PgListener;
use std::time::Duration;
use tokio::sync::mpsc;

/// The channel every host listens on.
const CHANNEL: &str = "vidfarm";
/// Shortest gap between two "a job is due" notifications of one host.
const DEBOUNCE: Duration = Duration::from_millis(5);
/// Most job ids one cancellation notice names (`NOTIFY` payloads are capped at 8,000 bytes);
/// more are sent as several notices.
const IDS_PER_NOTICE: usize = 150;

/// The host's sending side: signals queue here and one task sends them.
pub(super) fn spawn_announcer(pool: sqlx::PgPool) -> mpsc::UnboundedSender<Signal> {
    let (tx, mut rx) = mpsc::unbounded_channel::<Signal>();
    tokio::spawn(async move {
        let mut queued = Vec::new();
        while rx.recv_many(&mut queued, 1024).await > 0 {
            let job_due = queued.contains(&Signal::JobDue);
            let mut payloads: Vec<String> = Vec::new();
            if job_due {
                payloads.push("job_due".into());
            }
            if queued.contains(&Signal::Registry) {
                payloads.push("registry".into());
            }
            for signal in queued.drain(..) {
                if let Signal::Cancelled(ids) = signal {
                    payloads.extend(ids.chunks(IDS_PER_NOTICE).map(|ids| format!("cancel:{}", ids.join(","))));
                }
            }
            for payload in payloads {
                if let Err(e) =
                    sqlx::query("SELECT pg_notify($1, $2)").bind(CHANNEL).bind(&payload).execute(&pool).await
                {
                    tracing::debug!(error = %e, "a signal to the other hosts was not sent (they poll)");
                }
            }
            if job_due {
                tokio::time::sleep(DEBOUNCE).await;
            }
        }
    });
    tx
}

impl Pg {
    pub(crate) fn announce(&self, signal: Signal) {
        let _ = self.announcer.send(signal);
    }

    /// Listen on the channel; the task ends when the receiver is dropped.
    pub(crate) fn listen(&self) -> mpsc::Receiver<Signal> {
        let (tx, rx) = mpsc::channel(256);
        let pool = self.pool.clone();
        tokio::spawn(async move {
            let mut listener = loop {
                match PgListener::connect_with(&pool).await {
                    Ok(mut listener) => match listener.listen(CHANNEL).await {
                        Ok(()) => break listener,
                        Err(e) => tracing::warn!(error = %e, "LISTEN failed; retrying"),
                    },
                    Err(e) => tracing::warn!(error = %e, "no connection to LISTEN on; retrying"),
                }
                if tx.is_closed() {
                    return;
                }
                tokio::time::sleep(Duration::from_secs(1)).await;
            };
            loop {
                let notice = tokio::select! {
                    _ = tx.closed() => return,
                    notice = listener.recv() => notice,
                };
                let signal = match notice {
                    Ok(notice) => parse(notice.payload()),
                    // The connection dropped: the next recv reconnects; meanwhile anything
                    // may have happened, so wake the workers once.
                    Err(_) => {
                        tokio::time::sleep(Duration::from_millis(100)).await;
                        Some(Signal::JobDue)
                    }
                };
                if let Some(signal) = signal
                    && tx.send(signal).await.is_err()
                {
                    return;
                }
            }
        });
        rx
    }
}

fn parse(payload: &str) -> Option<Signal> {
    match payload {
        "job_due" => Some(Signal::JobDue),
        "registry" => Some(Signal::Registry),
        _ => payload
            .strip_prefix("cancel:")
            .map(|ids| Signal::Cancelled(ids.split(',').filter(|id| !id.is_empty()).map(String::from).collect())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn notices_read_back_as_the_signals_they_carry() {
        assert_eq!(parse("job_due"), Some(Signal::JobDue));
        assert_eq!(parse("registry"), Some(Signal::Registry));
        assert_eq!(parse("cancel:job_a,job_b"), Some(Signal::Cancelled(vec!["job_a".into(), "job_b".into()])));
        assert_eq!(parse("something else"), None);
    }
}
