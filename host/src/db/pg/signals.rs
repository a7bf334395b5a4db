//! [`Signal`]s as PostgreSQL `NOTIFY` on one channel, heard with `LISTEN`.
//! `NOTIFY` takes a database-wide lock at commit, so a host never notifies per job: a burst
//! of "a job is due" becomes one notification per `DEBOUNCE` ([`JobDueNotices`]). The two
//! writes that make most jobs due, batches of job inserts and of run ends, carry that
//! notification in their own transaction when one may be sent, so it costs no transaction of
//! its own; otherwise, and for every other signal (a resume, a child, a sweep, a cancellation,
//! the registry), it is owed and one task per host sends it. The listener reconnects by itself
//! (sqlx's `PgListener`); what is said while it is away is lost, and the pollers it saves
//! waiting for pick that work up.

use super::Pg;
use crate::db::signals::Signal;
use sqlx::postgres::PgListener;
use sqlx::{PgConnection, PgPool};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};
use tokio::sync::{Notify, mpsc};

/// The channel every host listens on.
const CHANNEL: &str = "vidfarm";
/// Shortest gap between two "a job is due" notifications of one host.
const DEBOUNCE: Duration = Duration::from_millis(5);
/// Longest cancellation notice, in bytes (`NOTIFY` payloads are capped at 8,000); more ids are
/// sent as several notices.
const NOTICE_BYTES: usize = 7_900;

/// This host's "a job is due" notifications: at most one per [`DEBOUNCE`], each covering every
/// job made due before it was taken.
///
/// A write that makes jobs due either *carries* the notification (its transaction runs
/// `pg_notify`, delivered when and only if it commits, so no host wakes before the jobs are
/// there) or, after it commits, *owes* one, which the announcer sends once the gap has passed
/// unless a carried one has covered it by then. A notification taken after a debt was owed is
/// sent after the owing commit, so it covers it: taking one clears the debt.
pub(super) struct JobDueNotices {
    /// When the last notification was taken, in µs since `origin` (offset so that the first
    /// is due at once).
    last_us: AtomicU64,
    /// A commit made jobs due that no notification taken since covers.
    owed: AtomicBool,
    /// Wakes the announcer when a debt is owed.
    owing: Notify,
    origin: Instant,
}

impl JobDueNotices {
    fn new() -> Arc<Self> {
        Arc::new(Self {
            last_us: AtomicU64::new(0),
            owed: AtomicBool::new(false),
            owing: Notify::new(),
            origin: Instant::now(),
        })
    }

    fn now_us(&self) -> u64 {
        self.origin.elapsed().as_micros() as u64 + 1_000_000
    }

    /// How long until the next notification may be taken.
    fn gap_left(&self) -> Duration {
        let next = self.last_us.load(Ordering::Acquire) + DEBOUNCE.as_micros() as u64;
        Duration::from_micros(next.saturating_sub(self.now_us()))
    }

    /// Take the next notification if the gap has passed: the caller then sends it (see
    /// [`Self::carry_in`]), and it covers every debt owed so far.
    fn take(&self) -> bool {
        let (now, last) = (self.now_us(), self.last_us.load(Ordering::Acquire));
        if now < last + DEBOUNCE.as_micros() as u64
            || self.last_us.compare_exchange(last, now, Ordering::AcqRel, Ordering::Acquire).is_err()
        {
            return false;
        }
        self.owed.store(false, Ordering::Release);
        true
    }

    /// Within a transaction that makes jobs due: send the notification with it if one may be
    /// taken now. Returns whether it did; the caller owes one if not, and at once if the
    /// transaction then fails (the debts this one cleared are owed again with it).
    pub(super) async fn carry_in(&self, tx: &mut PgConnection) -> Result<bool, sqlx::Error> {
        if !self.take() {
            return Ok(false);
        }
        notify(tx, "job_due").await?;
        Ok(true)
    }

    /// A commit made jobs due and carried no notification (or the one it carried was not
    /// committed): the announcer sends one after the gap, unless a carried one covers it first.
    pub(super) fn owe(&self) {
        self.owed.store(true, Ordering::Release);
        self.owing.notify_one();
    }
}

/// The host's sending side: signals queue here and one task sends them; it ends when the last
/// sender goes. Returns the queue and the host's [`JobDueNotices`], which the writes that make
/// jobs due carry or owe.
pub(super) fn spawn_announcer(pool: PgPool) -> (mpsc::UnboundedSender<Signal>, Arc<JobDueNotices>) {
    let notices = JobDueNotices::new();
    let (tx, mut rx) = mpsc::unbounded_channel::<Signal>();
    let debts = notices.clone();
    tokio::spawn(async move {
        let mut queued = Vec::new();
        loop {
            tokio::select! {
                received = rx.recv_many(&mut queued, 1024) => {
                    if received == 0 {
                        return;
                    }
                    let mut payloads: Vec<String> = Vec::new();
                    if queued.contains(&Signal::Registry) {
                        payloads.push("registry".into());
                    }
                    for signal in queued.drain(..) {
                        match signal {
                            Signal::JobDue => debts.owe(),
                            Signal::Cancelled(ids) => payloads.extend(cancel_notices(&ids)),
                            Signal::Registry => {}
                        }
                    }
                    for payload in payloads {
                        send(&pool, &payload).await;
                    }
                }
                () = debts.owing.notified() => loop {
                    tokio::time::sleep(debts.gap_left()).await;
                    if !debts.owed.load(Ordering::Acquire) {
                        break;
                    }
                    if debts.take() {
                        send(&pool, "job_due").await;
                        break;
                    }
                },
            }
        }
    });
    (tx, notices)
}

/// One notification on the channel, within whatever transaction `on` is in.
async fn notify<'c>(on: impl sqlx::PgExecutor<'c>, payload: &str) -> Result<(), sqlx::Error> {
    sqlx::query("SELECT pg_notify($1, $2)").bind(CHANNEL).bind(payload).execute(on).await.map(drop)
}

/// One notification in a transaction of its own; a failure loses a hint, not work.
async fn send(pool: &PgPool, payload: &str) {
    if let Err(e) = notify(pool, payload).await {
        tracing::debug!(error = %e, "a signal to the other hosts was not sent (they poll)");
    }
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
        notify(&mut conn, &payload).await?;
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
