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
/// Longest cancellation notice, in bytes (`NOTIFY` payloads are capped at 8,000); more ids are
/// sent as several notices.
const NOTICE_BYTES: usize = 7_900;

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
                    payloads.extend(cancel_notices(&ids));
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

/// Send `signal` once over a connection of its own: for a short-lived process (the CLI) that
/// should neither create nor migrate the database, nor leave a queued signal behind at exit.
pub(crate) async fn notify_once(url: &str, signal: Signal) -> Result<(), sqlx::Error> {
    use sqlx::Connection;
    use std::str::FromStr;
    let options = super::session_options(sqlx::postgres::PgConnectOptions::from_str(url)?);
    let mut conn = sqlx::PgConnection::connect_with(&options).await?;
    let payloads = match signal {
        Signal::JobDue => vec!["job_due".to_string()],
        Signal::Registry => vec!["registry".to_string()],
        Signal::Cancelled(ids) => cancel_notices(&ids),
    };
    for payload in payloads {
        sqlx::query("SELECT pg_notify($1, $2)").bind(CHANNEL).bind(&payload).execute(&mut conn).await?;
    }
    conn.close().await
}

/// `cancel:<id>,<id>…` notices of at most [`NOTICE_BYTES`] each (a child's id grows with its
/// depth, so the count per notice is not fixed).
fn cancel_notices(ids: &[String]) -> Vec<String> {
    let mut notices = Vec::new();
    let mut notice = String::from("cancel:");
    for id in ids {
        if notice.len() + id.len() + 1 > NOTICE_BYTES && notice.len() > "cancel:".len() {
            notices.push(std::mem::replace(&mut notice, String::from("cancel:")));
        }
        if notice.len() > "cancel:".len() {
            notice.push(',');
        }
        notice.push_str(id);
    }
    if notice.len() > "cancel:".len() {
        notices.push(notice);
    }
    notices
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

    #[test]
    fn a_long_cancellation_is_split_into_notices_that_fit_and_name_every_job_once() {
        let ids: Vec<String> = (0..900).map(|n| format!("job_{n:036}_c1_c2_c3")).collect();
        let notices = cancel_notices(&ids);
        assert!(notices.len() > 1 && notices.iter().all(|n| n.len() <= NOTICE_BYTES), "{}", notices.len());
        let heard: Vec<String> = notices
            .iter()
            .flat_map(|n| match parse(n) {
                Some(Signal::Cancelled(ids)) => ids,
                other => panic!("{other:?}"),
            })
            .collect();
        assert_eq!(heard, ids);
    }
}
