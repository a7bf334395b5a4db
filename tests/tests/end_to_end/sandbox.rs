//! The sandbox holds: every hostile probe fails its own run with its own error code, within
//! its limit, while a well-behaved job on the same runtime finishes normally and on time.

use serde_json::json;
use std::time::{Duration, Instant};
use vidfarm::runtime::{Limits, RunError, RunOutcome};
use vidfarm_tests::{backends, load, request, runtime};

fn failure_code(outcome: &RunOutcome) -> String {
    match outcome {
        RunOutcome::Failed(e) => e.code().to_string(),
        other => format!("not a failure: {other:?}"),
    }
}

/// Limits that make each probe trip quickly but still by its own limit.
fn probe_limits() -> Limits {
    Limits {
        fuel: 2_000_000_000,
        memory_bytes: 64 << 20,
        timeout_ms: 20_000,
        max_log_events: 500,
        max_children: 5,
        ..Limits::default()
    }
}

#[tokio::test(flavor = "current_thread")]
async fn every_probe_fails_with_its_own_code_while_hello_finishes_on_time_repeatedly() {
    let dir = tempfile::tempdir().expect("a temp dir");
    let rt = runtime(dir.path());
    let probe = load(&rt, "sandbox-probe").await;
    let hello = load(&rt, "hello").await;
    let expected = [
        ("spin", "out_of_fuel"),
        ("hog-memory", "memory_limit"),
        ("panic", "guest_panic"),
        ("flood-logs", "log_limit_exceeded"),
        ("escape-storage", "storage_invalid_key"),
        ("fork-children", "child_limit_reached"),
    ];
    for round in 0..3 {
        for (operation, code) in expected {
            let b = backends(dir.path());
            let job = format!("probe-{round}-{operation}");
            let hostile = rt.run(&probe, request(&probe, &job, operation, json!({}), probe_limits()), b.caps.clone());
            // One thread: hello can only finish while the probe runs if the probe yields.
            let friendly = async {
                tokio::time::sleep(Duration::from_millis(5)).await;
                let started = Instant::now();
                let report = rt
                    .run(
                        &hello,
                        request(&hello, &format!("hello-{job}"), "greet", json!({"name": "Ada"}), Limits::default()),
                        b.caps.clone(),
                    )
                    .await;
                (report, started.elapsed())
            };
            let (probe_report, (hello_report, hello_took)) = tokio::join!(hostile, friendly);
            assert_eq!(failure_code(&probe_report.outcome), code, "{operation}: {:?}", probe_report.outcome);
            assert!(probe_report.fuel_consumed > 0, "{operation} reports the fuel it burned");
            assert_eq!(
                hello_report.outcome,
                RunOutcome::Succeeded(json!({"greeting": "Hello, Ada!"})),
                "beside {operation}"
            );
            assert!(hello_took < Duration::from_secs(5), "hello took {hello_took:?} beside {operation}");
        }
    }
}

#[tokio::test]
async fn echo_returns_its_payload_and_reports_fuel() {
    let dir = tempfile::tempdir().expect("a temp dir");
    let rt = runtime(dir.path());
    let probe = load(&rt, "sandbox-probe").await;
    let payload = json!({"a": [1, 2, 3], "b": {"c": "ü"}});
    let report = rt
        .run(&probe, request(&probe, "job-echo", "echo", payload.clone(), Limits::default()), backends(dir.path()).caps)
        .await;
    assert_eq!(report.outcome, RunOutcome::Succeeded(payload));
    assert!(report.fuel_consumed > 0);
}

#[tokio::test]
async fn a_spinning_guest_with_plenty_of_fuel_hits_its_deadline() {
    let dir = tempfile::tempdir().expect("a temp dir");
    let rt = runtime(dir.path());
    let probe = load(&rt, "sandbox-probe").await;
    let limits = Limits { fuel: u64::MAX / 2, timeout_ms: 300, ..Limits::default() };
    let started = Instant::now();
    let report =
        rt.run(&probe, request(&probe, "job-deadline", "spin", json!({}), limits), backends(dir.path()).caps).await;
    assert_eq!(report.outcome, RunOutcome::Failed(RunError::DeadlineExceeded { timeout_ms: 300 }));
    assert!(started.elapsed() < Duration::from_secs(3), "stopped near its deadline, took {:?}", started.elapsed());
}

#[tokio::test]
async fn a_panic_carries_the_guests_message() {
    let dir = tempfile::tempdir().expect("a temp dir");
    let rt = runtime(dir.path());
    let probe = load(&rt, "sandbox-probe").await;
    let report = rt
        .run(
            &probe,
            request(&probe, "job-panic", "panic", json!({"message": "scene 3 has no audio"}), Limits::default()),
            backends(dir.path()).caps,
        )
        .await;
    assert_eq!(report.outcome, RunOutcome::Failed(RunError::GuestPanic { message: "scene 3 has no audio".into() }));
}

#[tokio::test]
async fn cancelling_a_spinning_run_stops_it_with_cancelled() {
    let dir = tempfile::tempdir().expect("a temp dir");
    let rt = runtime(dir.path());
    let probe = load(&rt, "sandbox-probe").await;
    let req = request(&probe, "job-cancel", "spin", json!({}), Limits { fuel: u64::MAX / 2, ..Limits::default() });
    let cancel = req.cancel.clone();
    tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(100)).await;
        cancel.cancel();
    });
    let report = rt.run(&probe, req, backends(dir.path()).caps).await;
    assert_eq!(report.outcome, RunOutcome::Failed(RunError::Cancelled));
}

#[tokio::test]
async fn escape_storage_never_writes_or_reads_outside_the_jobs_prefix() {
    let dir = tempfile::tempdir().expect("a temp dir");
    let rt = runtime(dir.path());
    let probe = load(&rt, "sandbox-probe").await;
    // A file next to the prefix that an escaping read would find.
    let objects = dir.path().join("objects");
    std::fs::create_dir_all(objects.join("templates/sandbox-probe/users/cus_test/jobs")).expect("mkdir");
    std::fs::write(objects.join("templates/sandbox-probe/users/cus_test/jobs/escaped.txt"), "secret").expect("write");
    let report = rt
        .run(
            &probe,
            request(&probe, "job-escape", "escape-storage", json!({}), Limits::default()),
            backends(dir.path()).caps,
        )
        .await;
    assert_eq!(failure_code(&report.outcome), "storage_invalid_key");
    let mut files = Vec::new();
    collect_files(dir.path(), &mut files);
    let written: Vec<_> = files.iter().filter(|f| !f.starts_with(dir.path().join("compiled"))).collect();
    assert_eq!(
        written,
        [&objects.join("templates/sandbox-probe/users/cus_test/jobs/escaped.txt")],
        "nothing else was written"
    );
    assert!(!std::path::Path::new("/tmp/vidfarm-escaped.txt").exists());
}

fn collect_files(dir: &std::path::Path, out: &mut Vec<std::path::PathBuf>) {
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let path = entry.path();
        if path.is_dir() { collect_files(&path, out) } else { out.push(path) }
    }
}

#[tokio::test]
async fn a_guest_sees_no_host_file_env_var_socket_or_real_clock() {
    let dir = tempfile::tempdir().expect("a temp dir");
    let rt = runtime(dir.path());
    let probe = load(&rt, "sandbox-probe").await;
    // SAFETY of the test: the guest must not see this, whatever the host's env holds.
    let report = rt
        .run(
            &probe,
            request(&probe, "job-ambient", "inspect-ambient", json!({}), Limits::default()),
            backends(dir.path()).caps,
        )
        .await;
    let RunOutcome::Succeeded(seen) = report.outcome else { panic!("inspect-ambient failed: {:?}", report.outcome) };
    assert_eq!(seen["env"], json!([]), "no env vars");
    assert_eq!(seen["args"], json!([]), "no args");
    for probe in ["read_dir_root", "read_etc_passwd", "read_dir_cwd", "tcp_connect", "tcp_bind"] {
        assert!(seen[probe].as_str().is_some_and(|s| s.starts_with("Err(")), "{probe} must fail: {}", seen[probe]);
    }
    let now = seen["now_ms"].as_u64().expect("a time");
    assert!((1_700_000_000_000..1_700_000_001_000).contains(&now), "the clock is the job's logical time, got {now}");
}

#[tokio::test]
async fn the_same_job_sees_the_same_randomness_and_time_on_replay() {
    let dir = tempfile::tempdir().expect("a temp dir");
    let rt = runtime(dir.path());
    let probe = load(&rt, "sandbox-probe").await;
    let run = |job: &'static str| {
        let (rt, probe, dir) = (&rt, &probe, dir.path());
        async move {
            rt.run(probe, request(probe, job, "inspect-ambient", json!({}), Limits::default()), backends(dir).caps)
                .await
                .outcome
        }
    };
    assert_eq!(run("job-a").await, run("job-a").await);
    assert_ne!(run("job-a").await, run("job-b").await, "another job gets another random stream");
}

#[tokio::test]
async fn the_log_cap_counts_every_run_of_a_job_not_each_run_alone() {
    let dir = tempfile::tempdir().expect("a temp dir");
    let rt = runtime(dir.path());
    let probe = load(&rt, "sandbox-probe").await;
    let b = backends(dir.path());
    let limits = || Limits { max_log_events: 500, ..Limits::default() };
    // The first run logs 300 lines after its first round of effects.
    let first = json!({ "steps": 1, "log_lines": [300] });
    let report = rt.run(&probe, request(&probe, "job-logs", "effects", first, limits()), b.caps.clone()).await;
    assert!(matches!(report.outcome, RunOutcome::Succeeded(_)), "{:?}", report.outcome);
    // A later run of the same job (a guest that behaves differently on a retry) replays that
    // round silently and logs 300 new lines after a second one: 600 for the job, over its cap.
    let second = json!({ "steps": 2, "log_lines": [0, 300] });
    let report = rt.run(&probe, request(&probe, "job-logs", "effects", second, limits()), b.caps.clone()).await;
    assert_eq!(failure_code(&report.outcome), "log_limit_exceeded", "{:?}", report.outcome);
    let stored = b.events.0.lock().expect("events").iter().filter(|(job, _)| job == "job-logs").count();
    assert_eq!(stored, 500, "the job keeps exactly its cap of events");
    // A plain replay of the first run re-emits its 300 events and is not counted twice.
    let replay = json!({ "steps": 1, "log_lines": [300] });
    let report = rt.run(&probe, request(&probe, "job-logs", "effects", replay, limits()), b.caps).await;
    assert!(matches!(report.outcome, RunOutcome::Succeeded(_)), "a replay was counted again: {:?}", report.outcome);
}
