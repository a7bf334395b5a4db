//! The sandbox: wasmtime's component model with async host imports, a pooling allocator, one
//! `InstancePre` per loaded template and a fresh `Store` per run under fuel, memory and
//! wall-clock limits. See `run.rs` for one run and `load.rs` for loading a component.

pub mod bindings;
pub mod cache;
mod error;
mod limits;
mod load;
mod run;
mod state;
mod wasi;

pub use cache::{CacheError, CacheOutcome};
pub use error::{HostTrap, RunError, Suspension, fail, suspend};
pub use limits::Limits;
pub use load::{LoadError, LoadedTemplate, SchemaViolation};
pub use run::{RunOutcome, RunReport, RunRequest};
pub use state::{HostState, JobScope};

use bindings::Template;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;
use wasmtime::component::{HasSelf, Linker};
use wasmtime::{Config, Engine, InstanceAllocationStrategy, PoolingAllocationConfig};

/// How often the epoch advances: the granularity of deadlines and cancellation checks.
const EPOCH_TICK: Duration = Duration::from_millis(10);

/// The compiled cache's default bound: about 40 JS or Python components, or ~1,700 Rust ones.
pub const DEFAULT_CACHE_MAX_BYTES: u64 = 2 << 30;

/// How the runtime is set up (read once from the host's config).
#[derive(Debug, Clone)]
pub struct RuntimeConfig {
    /// Where compiled components are cached; `None` compiles in memory every load.
    pub cache_dir: Option<PathBuf>,
    /// Keys the compiled cache's MACs (the platform derives it from the master key); `None`:
    /// an integrity check only, for tools without the master key.
    pub cache_key: Option<[u8; 32]>,
    /// Bytes the compiled cache keeps on disk before it evicts the least recently used files.
    pub cache_max_bytes: u64,
    /// Limits of an operation that asks for nothing special.
    pub defaults: Limits,
    /// What no operation may exceed.
    pub maxima: Limits,
    /// Runs (stores) alive at once; sizes the pooling allocator.
    pub max_instances: u32,
}

impl Default for RuntimeConfig {
    fn default() -> Self {
        Self {
            cache_dir: None,
            cache_key: None,
            cache_max_bytes: DEFAULT_CACHE_MAX_BYTES,
            defaults: Limits::default(),
            maxima: Limits::maxima(),
            max_instances: 256,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum RuntimeError {
    #[error("the wasm engine could not start: {0}")]
    Engine(String),
    #[error(transparent)]
    Cache(#[from] CacheError),
}

/// The engine, the linker with every capability, and the compiled-component cache. Shared by
/// all runs of a host.
pub struct Runtime {
    engine: Engine,
    linker: Linker<HostState>,
    cache: Arc<cache::ComponentCache>,
    config: RuntimeConfig,
    /// Stops the epoch ticker thread when the runtime is dropped.
    ticker_stop: Arc<AtomicBool>,
}

impl Runtime {
    pub fn new(config: RuntimeConfig) -> Result<Self, RuntimeError> {
        let wasm_config = engine_config(&config);
        let engine = Engine::new(&wasm_config).map_err(|e| RuntimeError::Engine(format!("{e:#}")))?;
        let mut linker = Linker::new(&engine);
        wasmtime_wasi::p2::add_to_linker_async(&mut linker).map_err(|e| RuntimeError::Engine(format!("{e:#}")))?;
        Template::add_to_linker::<_, HasSelf<_>>(&mut linker, |state| state)
            .map_err(|e| RuntimeError::Engine(format!("{e:#}")))?;
        let cache = Arc::new(cache::ComponentCache::new(
            &engine,
            wasm_config,
            config.cache_dir.clone(),
            config.cache_key,
            config.cache_max_bytes,
        )?);
        let ticker_stop = Arc::new(AtomicBool::new(false));
        spawn_epoch_ticker(engine.clone(), ticker_stop.clone());
        Ok(Self { engine, linker, cache, config, ticker_stop })
    }

    pub fn engine(&self) -> &Engine {
        &self.engine
    }

    /// The retries a job of an operation that asks for `asked` gets: the host default, or
    /// what it asks, never past the host's maximum (a template cannot retry without end).
    pub fn max_retries(&self, asked: Option<u32>) -> u32 {
        let config = self.config();
        asked.unwrap_or(config.defaults.max_retries).min(config.maxima.max_retries)
    }

    pub fn config(&self) -> &RuntimeConfig {
        &self.config
    }
}

impl Drop for Runtime {
    fn drop(&mut self) {
        self.ticker_stop.store(true, Ordering::Relaxed);
    }
}

/// Bytes of a finished instance's linear memory kept resident for its slot's next job.
const KEEP_RESIDENT_MEMORY_BYTES: usize = 256 << 10;
/// Bytes of a finished instance's tables kept resident for its slot's next job.
const KEEP_RESIDENT_TABLE_BYTES: usize = 64 << 10;

fn engine_config(config: &RuntimeConfig) -> Config {
    let mut pool = PoolingAllocationConfig::default();
    let instances = config.max_instances.max(1);
    pool.total_component_instances(instances)
        .total_core_instances(instances.saturating_mul(4))
        .total_memories(instances.saturating_mul(2))
        .total_tables(instances.saturating_mul(4))
        .total_stacks(instances)
        .max_memory_size(usize::try_from(config.maxima.memory_bytes).unwrap_or(usize::MAX))
        .max_core_instances_per_component(limits::MAX_CORE_INSTANCES_PER_COMPONENT)
        .max_memories_per_component(limits::MAX_MEMORIES_PER_COMPONENT)
        .max_tables_per_component(limits::MAX_TABLES_PER_COMPONENT)
        // Return finished instances' memory to the kernel 32 slots at a time: each decommit
        // is a TLB shootdown on every core, and one per job was ~7 % of a busy host's CPU.
        .decommit_batch_size(32)
        // A slot's next job reuses the pages its last job touched: those pages (up to this
        // much per memory and table) are zeroed or restored in place instead of returned to
        // the kernel, so the next run takes no page fault, and no TLB shootdown, on them.
        // PAGEMAP_SCAN (Linux 6.7+) finds which pages those were; without it the lowest
        // addresses are reset.
        .linear_memory_keep_resident(KEEP_RESIDENT_MEMORY_BYTES)
        .table_keep_resident(KEEP_RESIDENT_TABLE_BYTES)
        .pagemap_scan(wasmtime::Enabled::Auto);
    let mut wasm = Config::new();
    wasm.wasm_component_model(true)
        .consume_fuel(true)
        .epoch_interruption(true)
        .allocation_strategy(InstanceAllocationStrategy::Pooling(pool));
    wasm
}

/// Advances the engine's epoch every tick until told to stop: the clock behind deadlines.
fn spawn_epoch_ticker(engine: Engine, stop: Arc<AtomicBool>) {
    std::thread::Builder::new()
        .name("vidfarm-epoch".into())
        .spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                std::thread::sleep(EPOCH_TICK);
                engine.increment_epoch();
            }
        })
        .map(drop)
        .unwrap_or_else(|e| tracing::error!(error = %e, "epoch ticker did not start: deadlines will not fire"));
}
