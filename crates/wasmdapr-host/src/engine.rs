//! The one shared Wasmtime [`Engine`] and the epoch ticker behind time limits.
//!
//! Every app of a process shares one engine: compiled code, the pooling
//! allocator's slots and the copy-on-write memory images live there, so a new
//! instance costs a slot and a few page mappings rather than an allocation of
//! every structure and a copy of every data segment.

use std::time::Duration;

use wasmtime::{Config, Enabled, Engine, InstanceAllocationStrategy, PoolingAllocationConfig};

use crate::error::HostError;

/// How often the ticker thread advances the engine's epoch.
///
/// Time limits are rounded up to whole ticks, so this is their resolution. An
/// epoch check is a load and a compare in guest code, so ticking does not slow
/// guests down.
pub const EPOCH_TICK: Duration = Duration::from_millis(10);

/// Bytes of each pooled linear memory kept resident between instances and
/// reset in place (see [`EngineConfig::build`]).
///
/// Every slot an instance ever used keeps up to this much, however long it
/// stays unused, so this times the slots a burst of concurrent requests
/// touched is what stays resident after the burst (Wasmtime offers no knob
/// that bounds the *number* of slots that keep pages: `max_unused_warm_slots`
/// only steers which slot an allocation picks). A request of a plain Rust
/// handler dirties about 12 KiB (three pages), so 256 KiB keeps every
/// ordinary request on the in-place reset path (PAGEMAP_SCAN finds all its
/// dirty pages and nothing is left to `madvise`), while a guest that filled
/// its memory leaves 256 KiB behind instead of 2 MiB: 100 slots after a
/// storm hold 25 MiB rather than 200 MiB.
pub const MEMORY_KEEP_RESIDENT: usize = 256 << 10;

/// Unused warm slots after which an instance of another module reuses the
/// least recently used warm slot rather than a never-used one (Wasmtime's
/// default is 100). With several apps in a host, this bounds the set of
/// slots ever touched, and so kept resident, by the peak concurrency plus
/// this many, instead of letting it approach the whole pool. An app's own
/// instances always take the most recently used slot of their module first,
/// so a served app keeps reusing the same hot slots either way.
const MAX_UNUSED_WARM_SLOTS: u32 = 16;

/// Bytes of each pooled table kept resident between instances.
const TABLE_KEEP_RESIDENT: usize = 64 << 10;

/// How the shared engine is built.
#[derive(Debug, Clone)]
pub struct EngineConfig {
    /// Use the pooling instance allocator (the default): instances are carved
    /// out of pre-reserved slots instead of fresh `mmap`s.
    pub pooling: bool,
    /// How many instances may be alive at once in the pool (core modules and
    /// components each count). Each slot reserves address space, not memory.
    pub max_instances: u32,
}

impl Default for EngineConfig {
    fn default() -> Self {
        Self {
            pooling: true,
            max_instances: 100,
        }
    }
}

impl EngineConfig {
    /// Builds the engine and starts its epoch ticker.
    ///
    /// The ticker holds only a weak reference: it stops once the last clone of
    /// the engine is dropped.
    pub fn build(&self) -> Result<Engine, HostError> {
        let mut config = Config::new();
        config
            .epoch_interruption(true)
            .memory_init_cow(true)
            .wasm_component_model(true);
        if self.pooling {
            let mut pool = PoolingAllocationConfig::new();
            // Components are counted once and their core instances again, so
            // give core instances and memories a multiple of the budget: a
            // typical component holds a handful of core instances (the guest,
            // the adapter, shims).
            let n = self.max_instances.max(1);
            pool.total_component_instances(n)
                .total_core_instances(n.saturating_mul(4))
                .total_memories(n.saturating_mul(2))
                .total_tables(n.saturating_mul(4))
                .total_stacks(n)
                .max_memories_per_module(2)
                .max_tables_per_module(4);
            // A slot is reused by the next instance (for a served app, the
            // next request). By default Wasmtime resets a slot's memory with
            // `madvise`, which unmaps every touched page: a system call, a
            // TLB shootdown across cores and a page fault per page on the
            // next use. Instead, keep the low part resident and reset it by
            // rewriting only the pages the last instance touched (Linux's
            // PAGEMAP_SCAN finds them, kernel 6.7+; without it Wasmtime
            // rewrites the whole kept part). A Rust guest's stack, data and
            // first heap pages live there. How much is kept per slot, and
            // how many slots may be touched, bound what stays resident after
            // a burst: see the two constants.
            pool.linear_memory_keep_resident(MEMORY_KEEP_RESIDENT)
                .max_unused_warm_slots(MAX_UNUSED_WARM_SLOTS)
                .table_keep_resident(TABLE_KEEP_RESIDENT)
                .pagemap_scan(Enabled::Auto);
            // Per-memory size is left at Wasmtime's default (the whole 32-bit
            // space) so that the per-app `--max-memory` limiter, not the pool,
            // decides, and reports, every refusal the same way.
            config.allocation_strategy(InstanceAllocationStrategy::Pooling(pool));
        }
        let engine = Engine::new(&config).map_err(|e| HostError::Engine(e.to_string()))?;
        spawn_ticker(&engine)
            .map_err(|e| HostError::Engine(format!("cannot start the epoch ticker: {e}")))?;
        Ok(engine)
    }
}

fn spawn_ticker(engine: &Engine) -> std::io::Result<()> {
    let weak = engine.weak();
    std::thread::Builder::new()
        .name("wasmdapr-epoch".into())
        .spawn(move || {
            while let Some(engine) = weak.upgrade() {
                engine.increment_epoch();
                drop(engine);
                std::thread::sleep(EPOCH_TICK);
            }
        })
        .map(drop)
}

/// The number of epoch ticks that covers `timeout`, rounded up.
pub(crate) fn ticks_for(timeout: Duration) -> u64 {
    let tick = EPOCH_TICK.as_nanos();
    let ticks = timeout.as_nanos().div_ceil(tick);
    u64::try_from(ticks).unwrap_or(u64::MAX).max(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Timeouts round up to whole ticks and never become a zero deadline.
    #[test]
    fn ticks_round_up() {
        assert_eq!(ticks_for(Duration::from_millis(10)), 1);
        assert_eq!(ticks_for(Duration::from_millis(11)), 2);
        assert_eq!(ticks_for(Duration::ZERO), 1);
        assert_eq!(ticks_for(Duration::from_secs(2)), 200);
    }
}
