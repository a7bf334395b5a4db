//! The `vidfarm` binary's memory allocator (a module of `main.rs`, not of the library: a
//! library leaves the choice of allocator to the program that embeds it).
//!
//! jemalloc, not glibc's malloc: a busy server allocates and frees small buffers on every
//! thread (requests, events, rows), and with jemalloc it spends about 14 % less CPU per job
//! (BENCHMARKS.md, session 26). SQLite keeps calling libc's `malloc`: routing it here too
//! measured no faster and held ~3 MB more at idle.

#[global_allocator]
static GLOBAL: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

/// jemalloc's options, read before `main`. Its defaults keep freed pages for 10 s and purge
/// them only on later allocations, so the compiler's ~25 MB freed at start-up would sit in an
/// idle server's RSS; a background thread returns dirty pages within a second and muzzy ones
/// (already advised away) at once, which keeps idle RSS within 1–3 MB of glibc's with
/// `malloc_trim` (65 MB with jemalloc's defaults); one such thread is enough (the default is
/// one per CPU).
/// Operators can still override any option with `_RJEM_MALLOC_CONF`.
#[allow(unsafe_code)]
// SAFETY: jemalloc reads this NUL-terminated string once, as a `const char *`, before the
// first allocation; nothing writes it.
#[unsafe(export_name = "_rjem_malloc_conf")]
static MALLOC_CONF: &[u8; 85] =
    b"background_thread:true,max_background_threads:1,dirty_decay_ms:1000,muzzy_decay_ms:0\0";
