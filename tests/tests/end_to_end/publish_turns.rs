//! Turns at what several hosts, or several requests of one host, may try at once but only one
//! at a time should do: writing the template registry (see `engine::publish`). On PostgreSQL a
//! turn is an advisory lock held by a session of its own, so it ends with its host; on a SQLite
//! database a host's requests take turns through a lock inside it, and then with a CLI beside
//! it through a locked file.

use std::time::Duration;
use vidfarm::db::Db;
use vidfarm_tests::server::TestServer;

const PUBLISHING: &str = vidfarm::engine::publish::REGISTRY_TURN;
const LONG: Duration = Duration::from_secs(30);

#[tokio::test]
async fn two_requests_of_one_host_take_turns() {
    let server = TestServer::start_with(|_| {}, false).await;
    let db = &server.platform.db;
    let first = db.take_turn(PUBLISHING, LONG).await.expect("asked").expect("the first turn");
    let impatient = db.take_turn(PUBLISHING, Duration::from_millis(300)).await.expect("asked");
    assert!(impatient.is_none(), "a turn this host's other request holds was taken");
    let elsewhere = db.take_turn("something else", Duration::from_secs(5)).await.expect("asked");
    assert!(elsewhere.is_some(), "a turn at something else is not held up");

    let waiting = {
        let db = db.clone();
        tokio::spawn(async move { db.take_turn(PUBLISHING, LONG).await })
    };
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(!waiting.is_finished(), "the second request took the turn while the first had it");
    drop(first);
    let taken = tokio::time::timeout(Duration::from_secs(10), waiting).await.expect("the turn passed on");
    assert!(taken.expect("the task ran").expect("asked").is_some());

    // A CLI beside the host, by the database's URL, takes part: on PostgreSQL it is another
    // session, on SQLite another process locking the turn's file beside the database.
    let config = &server.platform.config;
    let url = config.database_url.clone().unwrap_or_else(|| format!("sqlite://{}", config.database_path().display()));
    let held = db.take_turn(PUBLISHING, LONG).await.expect("asked").expect("the turn");
    let cli = vidfarm::db::take_turn_at(&url, PUBLISHING, Duration::from_millis(300)).await.expect("asked");
    assert!(cli.is_none(), "the CLI took a turn a host holds");
    drop(held);
    let cli = vidfarm::db::take_turn_at(&url, PUBLISHING, LONG).await.expect("asked").expect("the CLI's turn");
    let host = db.take_turn(PUBLISHING, Duration::from_millis(300)).await.expect("asked");
    assert!(host.is_none(), "the host took a turn the CLI holds");
    drop(cli);
    assert!(db.take_turn(PUBLISHING, LONG).await.expect("asked").is_some(), "the turn came back to the host");
    server.stop().await;
}

#[tokio::test]
async fn a_host_waits_while_another_host_has_the_turn_and_takes_it_when_that_host_is_gone() {
    let server = TestServer::start_with(|_| {}, false).await;
    let Some(url) = server.platform.config.database_url.clone() else {
        server.stop().await;
        return;
    };
    let this_host = Db::connect(&url, 2).await.expect("this host");
    let other_host = Db::connect(&url, 2).await.expect("another host");
    let first = this_host.take_turn(PUBLISHING, LONG).await.expect("asked").expect("the first turn");

    // A host that waits only so long goes without.
    let impatient = server.platform.db.take_turn(PUBLISHING, Duration::from_millis(300)).await.expect("asked");
    assert!(impatient.is_none(), "a turn another host holds was taken");

    let waiting =
        tokio::spawn(async move { other_host.take_turn(PUBLISHING, LONG).await.map(|turn| (turn, other_host)) });
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(!waiting.is_finished(), "the other host took the turn while this one had it");

    // A turn at something else is not held up by it.
    let elsewhere = server.platform.db.take_turn("something else", Duration::from_secs(5)).await.expect("asked");
    drop(elsewhere.expect("a turn at something else, at once"));

    // This host goes (its session closes): the other takes the turn.
    drop(first);
    drop(this_host);
    let taken = tokio::time::timeout(Duration::from_secs(10), waiting).await;
    let (turn, _other_host) = taken.expect("the turn passed on").expect("the task ran").expect("asked");
    assert!(turn.is_some(), "the other host never took the turn");
    server.stop().await;
}
