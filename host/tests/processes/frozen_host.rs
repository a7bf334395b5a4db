//! A host that freezes inside a transaction (SIGSTOP, a paused VM) must not stop the others:
//! PostgreSQL ends its session after `idle_in_transaction_session_timeout`, the locks it held
//! (the claim lock, a customer's row) go with it, and the other hosts carry on. Once thawed, the
//! frozen host reconnects and works again. PostgreSQL pass only, like `multi_host`.

use crate::common::*;
use crate::multi_host::customer_in;
use serde_json::json;
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering::SeqCst};
use std::time::{Duration, Instant};

/// What the hosts' sessions may sit idle inside a transaction in this test: the default (5 s)
/// would do too, only slower. The URL chooses it, as an operator's would.
const IDLE_TIMEOUT: &str = "1500ms";

/// The backends of the process `pid` that sit idle inside a transaction.
fn idle_in_transaction(url: &str, pid: u32) -> Vec<String> {
    psql(
        url,
        &format!(
            "SELECT pid FROM pg_stat_activity WHERE application_name = 'vidfarm {pid}' AND state = 'idle in transaction'"
        ),
    )
}

/// `kill -SIG pid`: stop or continue a host as an operator's shell (or a VM pause) would.
fn signal(pid: u32, sig: &str) {
    let sent = Command::new("kill").args([&format!("-{sig}"), &pid.to_string()]).status().expect("kill runs");
    assert!(sent.success(), "kill -{sig} {pid}");
}

/// Sets the flag when dropped, a failed assertion's unwinding included.
struct StopOnDrop<'a>(&'a AtomicBool);

impl Drop for StopOnDrop<'_> {
    fn drop(&mut self) {
        self.0.store(true, SeqCst);
    }
}

#[test]
fn a_host_frozen_inside_a_transaction_holds_the_others_up_for_seconds_not_for_ever() {
    let Some((_cluster, url)) = shared_database() else { return };
    let url = format!("{url}?options[idle_in_transaction_session_timeout]={IDLE_TIMEOUT}");
    let env = [
        ("VIDFARM_DATABASE_URL", url.as_str()),
        ("VIDFARM_DATABASE_POOL", "4"),
        ("VIDFARM_MASTER_KEY", "6d756c74692d686f73742d746573742d6d61737465722d6b65792d33322d2121"),
        ("VIDFARM_LOG", "info,vidfarm::engine::worker=debug"),
    ];
    let dirs: Vec<tempfile::TempDir> = (0..3).map(|_| tempfile::tempdir().expect("a data dir")).collect();
    let api = start("api", dirs[0].path(), &env);
    let (frozen, frozen_ran) = start_watching("worker", dirs[1].path(), &env, "run ended");
    let (_other, other_ran) = start_watching("worker", dirs[2].path(), &env, "run ended");
    let client = customer_in(&url, dirs[0].path());
    let frozen_pid = frozen.child.id();

    // A steady stream of jobs keeps both workers claiming and ending runs, until the test
    // ends (or fails: the guard stops the stream, and a stopped worker is killed with it).
    let stop = AtomicBool::new(false);
    let jobs: Vec<String> = std::thread::scope(|scope| {
        let _stop_on_exit = StopOnDrop(&stop);
        let creator = scope.spawn(|| {
            let mut ids = Vec::new();
            while !stop.load(SeqCst) {
                ids.push(client.create(&api, "effects", json!({ "steps": 1, "spin": 20_000 })));
                std::thread::sleep(Duration::from_millis(10));
            }
            ids
        });
        let deadline = Instant::now() + Duration::from_secs(60);
        while frozen_ran.load(SeqCst) < 10 || other_ran.load(SeqCst) < 10 {
            assert!(Instant::now() < deadline, "both workers run jobs");
            std::thread::sleep(Duration::from_millis(10));
        }

        // Freeze the worker until it is caught holding a transaction open.
        let mut caught = Vec::new();
        for _ in 0..300 {
            signal(frozen_pid, "STOP");
            std::thread::sleep(Duration::from_millis(20));
            caught = idle_in_transaction(&url, frozen_pid);
            if !caught.is_empty() {
                break;
            }
            signal(frozen_pid, "CONT");
            std::thread::sleep(Duration::from_millis(15));
        }
        assert!(!caught.is_empty(), "the worker was never caught inside a transaction");
        let frozen_at = Instant::now();
        eprintln!("froze the worker inside transaction(s) of backend(s) {caught:?}");

        // The server ends the frozen sessions, and the other worker goes on running jobs.
        let ran_at_freeze = other_ran.load(SeqCst);
        let deadline = frozen_at + Duration::from_secs(20);
        loop {
            let still = psql(&url, &format!("SELECT pid FROM pg_stat_activity WHERE pid IN ({})", caught.join(",")));
            if still.is_empty() {
                break;
            }
            assert!(Instant::now() < deadline, "the frozen host's transactions are still open: {still:?}");
            std::thread::sleep(Duration::from_millis(50));
        }
        eprintln!("the server ended the frozen sessions after {:?}", frozen_at.elapsed());
        while other_ran.load(SeqCst) < ran_at_freeze + 50 {
            assert!(Instant::now() < deadline, "the other worker stalled behind the frozen one");
            std::thread::sleep(Duration::from_millis(10));
        }
        eprintln!("the other worker ran 50 jobs {:?} after the freeze", frozen_at.elapsed());

        // Thawed, the frozen worker reconnects and runs jobs again.
        let ran_at_thaw = frozen_ran.load(SeqCst);
        signal(frozen_pid, "CONT");
        let deadline = Instant::now() + Duration::from_secs(30);
        while frozen_ran.load(SeqCst) < ran_at_thaw + 10 {
            assert!(Instant::now() < deadline, "the thawed worker never ran a job again");
            std::thread::sleep(Duration::from_millis(10));
        }
        stop.store(true, SeqCst);
        creator.join().expect("the creator")
    });

    // Every job succeeds, each effect once, whichever worker ran (or re-ran) it.
    for id in &jobs {
        let job = client.wait_finished(&api, id);
        assert_eq!(job["status"], "succeeded", "{job}");
    }
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("tokio");
    let db = rt.block_on(vidfarm::db::Db::connect(&url, 2)).expect("the database");
    for id in &jobs {
        assert_eq!(rt.block_on(effects_of(&db, id)), (1, 2), "{id}: its charge once, each effect journaled once");
    }
    eprintln!("{} jobs, each run to the end once", jobs.len());
}
