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
