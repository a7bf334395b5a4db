//! WASI p2 with nothing ambient: no dirs, sockets, env or args. Clocks and randomness are
//! host-supplied and replay-stable; stdout/stderr are captured into bounded buffers.

use bytes::Bytes;
use rand::SeedableRng;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use wasmtime_wasi::cli::{IsTerminal, StdoutStream};
use wasmtime_wasi::p2::{OutputStream, Pollable, StreamError};
use wasmtime_wasi::{HostMonotonicClock, HostWallClock, WasiCtx, WasiCtxBuilder};

/// Captured stdout and stderr of one run.
#[derive(Clone)]
pub struct GuestOutput {
    pub stdout: OutputBuffer,
    pub stderr: OutputBuffer,
}

/// The WASI context of one run. `start_ms` is the job's logical start (the same on every
/// replay) and `seed` keys its random stream (derived from the job id, so replays match).
pub fn context(start_ms: i64, seed: [u8; 32], max_output_bytes: usize) -> (WasiCtx, GuestOutput) {
    let output =
        GuestOutput { stdout: OutputBuffer::new(max_output_bytes), stderr: OutputBuffer::new(max_output_bytes) };
    let ticks = Arc::new(AtomicU64::new(0));
    let mut insecure_seed = [0u8; 16];
    insecure_seed.copy_from_slice(&seed[16..]);
    let ctx = WasiCtxBuilder::new()
        .stdout(output.stdout.clone())
        .stderr(output.stderr.clone())
        .wall_clock(ReplayClock { start_ms, ticks: ticks.clone() })
        .monotonic_clock(ReplayClock { start_ms, ticks })
        .secure_random(rand::rngs::StdRng::from_seed(seed))
        .insecure_random_seed(u128::from_le_bytes(insecure_seed))
        .allow_tcp(false)
        .allow_udp(false)
        .allow_ip_name_lookup(false)
        .build();
    (ctx, output)
}

/// A clock that starts at the job's logical start and advances 1 ms per reading, so a
/// replay sees exactly the times the first run saw and time never goes backwards.
struct ReplayClock {
    start_ms: i64,
    ticks: Arc<AtomicU64>,
}

impl ReplayClock {
    fn tick(&self) -> u64 {
        self.ticks.fetch_add(1, Ordering::Relaxed) + 1
    }
}

impl HostWallClock for ReplayClock {
    fn resolution(&self) -> Duration {
        Duration::from_millis(1)
    }
    fn now(&self) -> Duration {
        let ms = u64::try_from(self.start_ms).unwrap_or(0).saturating_add(self.tick());
        Duration::from_millis(ms)
    }
}

impl HostMonotonicClock for ReplayClock {
    fn resolution(&self) -> u64 {
        1_000_000
    }
    fn now(&self) -> u64 {
        self.tick().saturating_mul(1_000_000)
    }
}

/// A bounded sink for guest output: it accepts every write (so `println!` never fails in
/// the guest) but keeps only the first `capacity` bytes and counts the rest.
#[derive(Clone)]
pub struct OutputBuffer {
    inner: Arc<Mutex<Captured>>,
    capacity: usize,
}

#[derive(Default)]
struct Captured {
    bytes: Vec<u8>,
    dropped: u64,
}

impl OutputBuffer {
    fn new(capacity: usize) -> Self {
        Self { inner: Arc::default(), capacity }
    }

    /// What was kept, and how many bytes were dropped past the cap.
    pub fn contents(&self) -> (String, u64) {
        let captured = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        (String::from_utf8_lossy(&captured.bytes).into_owned(), captured.dropped)
    }

    fn append(&self, bytes: &[u8]) {
        let mut captured = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        let room = self.capacity.saturating_sub(captured.bytes.len());
        let kept = bytes.len().min(room);
        captured.bytes.extend_from_slice(&bytes[..kept]);
        captured.dropped += (bytes.len() - kept) as u64;
    }
}

impl IsTerminal for OutputBuffer {
    fn is_terminal(&self) -> bool {
        false
    }
}

impl StdoutStream for OutputBuffer {
    fn p2_stream(&self) -> Box<dyn OutputStream> {
        Box::new(self.clone())
    }
    fn async_stream(&self) -> Box<dyn tokio::io::AsyncWrite + Send + Sync> {
        Box::new(self.clone())
    }
}

#[async_trait::async_trait]
impl OutputStream for OutputBuffer {
    fn write(&mut self, bytes: Bytes) -> Result<(), StreamError> {
        self.append(&bytes);
        Ok(())
    }
    fn flush(&mut self) -> Result<(), StreamError> {
        Ok(())
    }
    fn check_write(&mut self) -> Result<usize, StreamError> {
        Ok(64 << 10)
    }
}

#[async_trait::async_trait]
impl Pollable for OutputBuffer {
    async fn ready(&mut self) {}
}

impl tokio::io::AsyncWrite for OutputBuffer {
    fn poll_write(
        self: std::pin::Pin<&mut Self>,
        _: &mut std::task::Context<'_>,
        buf: &[u8],
    ) -> std::task::Poll<std::io::Result<usize>> {
        self.append(buf);
        std::task::Poll::Ready(Ok(buf.len()))
    }
    fn poll_flush(
        self: std::pin::Pin<&mut Self>,
        _: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::task::Poll::Ready(Ok(()))
    }
    fn poll_shutdown(
        self: std::pin::Pin<&mut Self>,
        _: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::task::Poll::Ready(Ok(()))
    }
}

/// The panic message in a Rust guest's stderr (`panicked at file:line:col:\nmessage`).
pub fn panic_message(stderr: &str) -> Option<String> {
    let start = stderr.find("panicked at ")?;
    let after = &stderr[start..];
    let body = after.split_once(":\n").map(|(_, rest)| rest).unwrap_or(after);
    let message: Vec<&str> = body.lines().take_while(|l| !l.starts_with("note: ")).collect();
    Some(message.join("\n").trim().to_string())
}
