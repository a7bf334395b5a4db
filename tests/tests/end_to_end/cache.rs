//! The compiled-component cache: a second load hits it, and a corrupted file is caught
//! before `deserialize` ever sees it.

use std::sync::Arc;
use vidfarm::runtime::CacheOutcome;
use vidfarm_tests::runtime;

fn hello() -> Arc<[u8]> {
    Arc::from(vidfarm_template_artifacts::bytes("hello").expect("hello is built in"))
}

#[tokio::test]
async fn the_second_load_of_a_component_is_a_cache_hit() {
    let dir = tempfile::tempdir().expect("a temp dir");
    let first = runtime(dir.path()).load(hello()).await.expect("loads");
    assert_eq!(first.cache_outcome, CacheOutcome::Miss);
    // A new runtime (a restarted host) on the same cache dir.
    let second = runtime(dir.path()).load(hello()).await.expect("loads");
    assert_eq!(second.cache_outcome, CacheOutcome::Hit);
    assert_eq!(first.digest, second.digest);
    assert_eq!(second.manifest.id, "hello");
}

#[tokio::test]
async fn a_flipped_byte_in_a_cache_file_is_detected_discarded_and_recompiled() {
    let dir = tempfile::tempdir().expect("a temp dir");
    runtime(dir.path()).load(hello()).await.expect("loads");
    let files: Vec<_> =
        std::fs::read_dir(dir.path().join("compiled")).expect("the cache dir").flatten().map(|e| e.path()).collect();
    assert_eq!(files.len(), 1, "one cache file: {files:?}");
    for offset in [0usize, 20, 4096, 40_000] {
        let mut bytes = std::fs::read(&files[0]).expect("read");
        let at = offset.min(bytes.len() - 1);
        bytes[at] ^= 0x01;
        std::fs::write(&files[0], &bytes).expect("write");
        let reloaded = runtime(dir.path()).load(hello()).await.expect("still loads");
        assert_eq!(reloaded.cache_outcome, CacheOutcome::Corrupt, "flip at {at} detected");
        assert_eq!(
            runtime(dir.path()).load(hello()).await.expect("loads").cache_outcome,
            CacheOutcome::Hit,
            "rewritten"
        );
    }
}

fn keyed(dir: &std::path::Path, key: [u8; 32]) -> vidfarm::runtime::Runtime {
    let config = vidfarm::runtime::RuntimeConfig {
        cache_dir: Some(dir.join("compiled")),
        cache_key: Some(key),
        ..Default::default()
    };
    vidfarm::runtime::Runtime::new(config).expect("a runtime")
}

#[tokio::test]
async fn a_compiled_file_made_without_the_hosts_key_is_never_loaded() {
    let dir = tempfile::tempdir().expect("a temp dir");
    // Someone who can write the cache dir but has no master key plants a valid compiled file
    // (made with another key) under the digest of a signed template.
    keyed(dir.path(), [7; 32]).load(hello()).await.expect("loads");
    let host = keyed(dir.path(), [42; 32]);
    assert_eq!(host.load(hello()).await.expect("loads").cache_outcome, CacheOutcome::Corrupt, "planted: refused");
    assert_eq!(keyed(dir.path(), [42; 32]).load(hello()).await.expect("loads").cache_outcome, CacheOutcome::Hit);

    // Another component's genuine file copied under hello's name is refused too.
    let probe: Arc<[u8]> = Arc::from(vidfarm_template_artifacts::bytes("sandbox-probe").expect("built in"));
    let probe_loaded = keyed(dir.path(), [42; 32]).load(probe).await.expect("loads");
    let file_of = |digest: &str| {
        std::fs::read_dir(dir.path().join("compiled"))
            .expect("the cache dir")
            .flatten()
            .map(|e| e.path())
            .find(|p| p.file_name().is_some_and(|n| n.to_string_lossy().starts_with(digest)))
            .expect("a cache file")
    };
    let hello_digest = keyed(dir.path(), [42; 32]).load(hello()).await.expect("loads").digest;
    std::fs::copy(file_of(&probe_loaded.digest), file_of(&hello_digest)).expect("copied");
    let swapped = keyed(dir.path(), [42; 32]).load(hello()).await.expect("loads");
    assert_eq!((swapped.cache_outcome, swapped.manifest.id.as_str()), (CacheOutcome::Corrupt, "hello"));
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(dir.path().join("compiled")).expect("the dir").permissions().mode();
    assert_eq!(mode & 0o777, 0o700, "only the host's user may read or write compiled code");
}

#[tokio::test]
async fn bytes_that_are_not_a_component_are_refused_with_a_clear_error() {
    let dir = tempfile::tempdir().expect("a temp dir");
    let err = runtime(dir.path()).load(Arc::from(&b"\0asm not really"[..])).await.err().expect("refused");
    assert!(err.to_string().contains("does not compile"), "{err}");
}

fn bounded(dir: &std::path::Path, max_bytes: u64) -> vidfarm::runtime::Runtime {
    let config = vidfarm::runtime::RuntimeConfig {
        cache_dir: Some(dir.join("compiled")),
        cache_max_bytes: max_bytes,
        ..Default::default()
    };
    vidfarm::runtime::Runtime::new(config).expect("a runtime")
}

fn cached(dir: &std::path::Path) -> Vec<(String, u64)> {
    let mut files: Vec<(String, u64)> = std::fs::read_dir(dir.join("compiled"))
        .expect("the cache dir")
        .flatten()
        .map(|e| (e.file_name().to_string_lossy().into_owned(), e.metadata().expect("metadata").len()))
        .collect();
    files.sort();
    files
}

#[tokio::test]
async fn the_cache_keeps_to_its_bound_by_evicting_the_least_recently_used_files() {
    let dir = tempfile::tempdir().expect("a temp dir");
    let component = |id: &str| -> Arc<[u8]> { Arc::from(vidfarm_template_artifacts::bytes(id).expect("built in")) };
    // Measure each compiled file, then bound the cache so that any two of the three fit.
    let ids = ["hello", "sandbox-probe", "json-to-video"];
    let mut sizes = Vec::new();
    let mut digests = Vec::new();
    for id in ids {
        let measure = tempfile::tempdir().expect("a temp dir");
        digests.push(runtime(measure.path()).load(component(id)).await.expect("loads").digest);
        sizes.push(cached(measure.path())[0].1);
    }
    let bound = sizes.iter().sum::<u64>() - sizes.iter().min().expect("three") + 1;

    let host = bounded(dir.path(), bound);
    // A file left over from another engine version goes first, however recently it was used.
    let foreign = dir.path().join("compiled").join(format!("{}-0000000000000000.cwasm", digests[0]));
    std::fs::write(&foreign, vec![0; 4096]).expect("a foreign file");
    let in_an_hour = std::time::SystemTime::now() + std::time::Duration::from_secs(3600);
    std::fs::File::options().write(true).open(&foreign).and_then(|f| f.set_modified(in_an_hour)).expect("touched");
    for id in ids {
        assert_eq!(host.load(component(id)).await.expect("loads").cache_outcome, CacheOutcome::Miss, "{id}");
        // Modification times must differ for the order to mean anything.
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let total: u64 = cached(dir.path()).iter().map(|(_, len)| len).sum();
    assert!(total <= bound, "the cache holds {total} bytes, over its bound of {bound}: {:?}", cached(dir.path()));
    let holds = |digest: &str| cached(dir.path()).iter().any(|(name, _)| name.starts_with(digest));
    assert!(!cached(dir.path()).iter().any(|(name, _)| name.contains("-0000000000000000")), "the foreign file is gone");
    assert!(holds(&digests[2]), "the newest file stays");

    assert!(!holds(&digests[0]) && holds(&digests[1]), "the least recently used went: {:?}", cached(dir.path()));

    // A hit makes a file the most recently used: the next eviction passes it over.
    assert_eq!(host.load(component(ids[1])).await.expect("loads").cache_outcome, CacheOutcome::Hit);
    std::thread::sleep(std::time::Duration::from_millis(20));
    assert_eq!(host.load(component(ids[0])).await.expect("loads").cache_outcome, CacheOutcome::Miss);
    assert!(holds(&digests[0]) && holds(&digests[1]), "the hit and the newest stay");
    assert!(!holds(&digests[2]), "the least recently used went: {:?}", cached(dir.path()));

    // A version this host keeps loaded (one it serves) keeps its file, however long ago it
    // was loaded: its next start needs it first.
    let serving = host.load(component(ids[1])).await.expect("loads");
    std::thread::sleep(std::time::Duration::from_millis(20));
    assert_eq!(host.load(component(ids[0])).await.expect("loads").cache_outcome, CacheOutcome::Hit);
    std::thread::sleep(std::time::Duration::from_millis(20));
    assert_eq!(host.load(component(ids[2])).await.expect("loads").cache_outcome, CacheOutcome::Miss);
    assert!(holds(&digests[1]), "the file of a loaded version was evicted: {:?}", cached(dir.path()));
    assert!(!holds(&digests[0]), "the least recently used one not loaded went instead: {:?}", cached(dir.path()));
    drop(serving);
}
