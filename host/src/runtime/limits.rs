//! Per-run limits: host defaults, what an operation asks for, and the host's hard maxima.

use super::bindings::types;
use serde::{Deserialize, Serialize};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

/// The limits one run executes under.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Limits {
    /// Fuel units (≈ wasm instructions) before `out_of_fuel`.
    pub fuel: u64,
    /// Linear memory cap before `memory_limit`.
    pub memory_bytes: u64,
    /// Wall-clock deadline before `deadline_exceeded`.
    pub timeout_ms: u64,
    /// Log events a job may emit before `log_limit_exceeded`.
    pub max_log_events: u64,
    /// Bytes of stdout/stderr kept per run; the rest is dropped (and said so).
    pub max_output_bytes: usize,
    /// Child jobs one job may enqueue before `child_limit_reached`.
    pub max_children: u32,
    /// Retries of a retryable failure before the job fails for good.
    pub max_retries: u32,
}

impl Default for Limits {
    /// The host defaults: generous for real templates, tight enough that a runaway guest
    /// is stopped in well under a minute.
    fn default() -> Self {
        Self {
            fuel: 10_000_000_000,
            memory_bytes: 256 << 20,
            timeout_ms: 300_000,
            max_log_events: 10_000,
            max_output_bytes: 64 << 10,
            max_children: 100,
            max_retries: 3,
        }
    }
}

impl Limits {
    /// The host's maxima: no operation may ask for more than this.
    pub fn maxima() -> Self {
        Self {
            fuel: 1_000_000_000_000,
            memory_bytes: 1 << 30,
            timeout_ms: 3_600_000,
            max_log_events: 100_000,
            max_output_bytes: 1 << 20,
            max_children: 1_000,
            max_retries: 10,
        }
    }

    /// These defaults overridden by what the operation asks for, capped at `maxima`.
    pub fn for_operation(&self, asked: &types::Limits, maxima: &Limits) -> Limits {
        Limits {
            fuel: asked.fuel.unwrap_or(self.fuel).min(maxima.fuel),
            memory_bytes: asked
                .memory_mib
                .map_or(self.memory_bytes, |mib| u64::from(mib) << 20)
                .min(maxima.memory_bytes),
            timeout_ms: asked.timeout_ms.unwrap_or(self.timeout_ms).min(maxima.timeout_ms),
            max_children: asked.max_children.unwrap_or(self.max_children).min(maxima.max_children),
            max_retries: asked.max_retries.unwrap_or(self.max_retries).min(maxima.max_retries),
            ..*self
        }
    }
}

/// Core module instances one component may hold (componentize-js and componentize-py make a
/// few dozen at most; Rust guests a handful).
pub const MAX_CORE_INSTANCES_PER_COMPONENT: u32 = 64;
/// Tables one component may hold.
pub const MAX_TABLES_PER_COMPONENT: u32 = 64;
/// Linear memories one component may hold.
pub const MAX_MEMORIES_PER_COMPONENT: u32 = 8;

/// Caps linear memory and remembers whether it refused a growth, so an abort that follows
/// (Rust aborts on allocation failure) is reported as `memory_limit`, not as a bare trap.
pub struct MemoryLimiter {
    /// The run's cap on linear memory, summed across every memory of every core instance of
    /// the component (a component with four memories gets the cap once, not four times).
    limit_bytes: usize,
    /// Linear memory the run's memories hold now, in all.
    in_use: usize,
    /// Set once a growth was refused; shared so the runner can read it after the store died.
    refused: Arc<AtomicBool>,
}

impl MemoryLimiter {
    pub fn new(limit_bytes: u64) -> Self {
        Self {
            limit_bytes: usize::try_from(limit_bytes).unwrap_or(usize::MAX),
            in_use: 0,
            refused: Arc::new(AtomicBool::new(false)),
        }
    }

    pub fn refused(&self) -> Arc<AtomicBool> {
        self.refused.clone()
    }
}

impl wasmtime::ResourceLimiter for MemoryLimiter {
    fn memory_growing(&mut self, current: usize, desired: usize, _maximum: Option<usize>) -> wasmtime::Result<bool> {
        // A new memory arrives with current = 0; a growth adds desired - current.
        let total = self.in_use.saturating_sub(current).saturating_add(desired);
        let allowed = total <= self.limit_bytes;
        if allowed {
            self.in_use = total;
        } else {
            self.refused.store(true, Ordering::Relaxed);
        }
        Ok(allowed)
    }

    fn table_growing(&mut self, _current: usize, desired: usize, _maximum: Option<usize>) -> wasmtime::Result<bool> {
        Ok(desired <= 1_000_000)
    }

    /// Core instances, tables and memories one run may create: a component cannot fan out
    /// into thousands of modules to get around the caps above.
    fn instances(&self) -> usize {
        MAX_CORE_INSTANCES_PER_COMPONENT as usize
    }

    fn tables(&self) -> usize {
        MAX_TABLES_PER_COMPONENT as usize
    }

    fn memories(&self) -> usize {
        MAX_MEMORIES_PER_COMPONENT as usize
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use wasmtime::ResourceLimiter;

    #[test]
    fn memory_is_capped_across_every_memory_of_a_component_not_per_memory() {
        const MIB: usize = 1 << 20;
        let mut limiter = MemoryLimiter::new(64 << 20);
        assert!(limiter.memory_growing(0, 40 * MIB, None).expect("asked"), "the first memory fits");
        assert!(!limiter.memory_growing(0, 40 * MIB, None).expect("asked"), "a second 40 MiB would make 80");
        assert!(limiter.refused().load(Ordering::Relaxed), "the refusal is remembered");
        assert!(limiter.memory_growing(40 * MIB, 50 * MIB, None).expect("asked"), "the first may still grow to 50");
        assert!(!limiter.memory_growing(50 * MIB, 65 * MIB, None).expect("asked"), "but not past the cap");
        assert_eq!((limiter.instances(), limiter.memories(), limiter.tables()), (64, 8, 64));
    }

    #[test]
    fn an_operation_cannot_ask_for_more_retries_than_the_host_allows() {
        let asked = types::Limits {
            fuel: None,
            memory_mib: None,
            timeout_ms: None,
            max_children: None,
            max_retries: Some(1_000),
        };
        assert_eq!(Limits::default().for_operation(&asked, &Limits::maxima()).max_retries, 10);
        let none = types::Limits { max_retries: None, ..asked };
        assert_eq!(Limits::default().for_operation(&none, &Limits::maxima()).max_retries, 3);
    }
}
