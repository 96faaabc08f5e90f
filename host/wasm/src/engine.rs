//! The engine: one per process.

use std::path::Path;
use std::time::Duration;

use wasmtime::component::{HasSelf, Linker};
use wasmtime::{
    Cache, CacheConfig, Config, Engine, InstanceAllocationStrategy, PoolingAllocationConfig,
};

use crate::bindings::validator::Validator;
use crate::error::PluginError;
use crate::host::State;

/// Epoch tick; deadlines are counted in these.
pub const TICK: Duration = Duration::from_millis(10);
/// Largest memory any plugin may be given.
pub const MAX_MEMORY_MIB: u64 = 256;
/// Plugin instances alive at once in one process (the pool's size; per-plugin concurrency limits
/// sit below it).
pub const MAX_INSTANCES: u32 = 128;

/// The shared engine and linker.
pub struct PluginEngine {
    pub(crate) engine: Engine,
    pub(crate) linker: Linker<State>,
    pooling: bool,
}

impl std::fmt::Debug for PluginEngine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PluginEngine").field("pooling", &self.pooling).finish_non_exhaustive()
    }
}

fn engine_err(e: impl std::fmt::Display) -> PluginError {
    PluginError::Engine(e.to_string())
}

impl PluginEngine {
    /// Builds the engine. `cache_dir` keeps compiled code between runs (keyed by the
    /// component's content and the engine's settings).
    pub fn new(cache_dir: Option<&Path>) -> Result<Self, PluginError> {
        let mut cfg = Config::new();
        cfg.wasm_component_model(true);
        cfg.epoch_interruption(true);
        if let Some(dir) = cache_dir {
            let mut cc = CacheConfig::new();
            cc.with_directory(dir);
            cfg.cache(Some(Cache::new(cc).map_err(engine_err)?));
        }
        let mut pooled = cfg.clone();
        let mut pool = PoolingAllocationConfig::default();
        // Each memory slot reserves address space for MAX_MEMORY_MIB plus guard pages; the pool is
        // sized so that a process keeps well inside the 128 TiB user address space even when a
        // test binary runs dozens of servers at once.
        pool.total_component_instances(MAX_INSTANCES)
            .total_core_instances(MAX_INSTANCES * 2)
            .total_memories(MAX_INSTANCES)
            .total_tables(MAX_INSTANCES * 2)
            .max_memory_size(usize::try_from(MAX_MEMORY_MIB << 20).unwrap_or(usize::MAX))
            .linear_memory_keep_resident(64 << 10);
        pooled.allocation_strategy(InstanceAllocationStrategy::Pooling(pool));
        // The pooling allocator reserves address space up front; where that is not possible
        // (small VMs, strict overcommit) fall back to allocating on demand.
        let (engine, pooling) = match Engine::new(&pooled) {
            Ok(e) => (e, true),
            Err(e) => {
                tracing::warn!(error = %e, "pooling allocator unavailable; allocating plugin instances on demand");
                (Engine::new(&cfg).map_err(engine_err)?, false)
            }
        };
        let mut linker = Linker::<State>::new(&engine);
        wasmtime_wasi::p2::add_to_linker_async(&mut linker).map_err(engine_err)?;
        Validator::add_to_linker::<_, HasSelf<_>>(&mut linker, |s| s).map_err(engine_err)?;
        // The endpoint world shares log/config/clock with the validator world; only its own
        // interface is added.
        crate::bindings::endpoint::sigil::plugin::sigil_api::add_to_linker::<_, HasSelf<_>>(
            &mut linker,
            |s| s,
        )
        .map_err(engine_err)?;
        crate::bindings::workflow::sigil::plugin::outbound_http::add_to_linker::<_, HasSelf<_>>(
            &mut linker,
            |s| s,
        )
        .map_err(engine_err)?;
        let weak = engine.weak();
        std::thread::Builder::new()
            .name("sigil-epoch".into())
            .spawn(move || {
                while let Some(e) = weak.upgrade() {
                    e.increment_epoch();
                    drop(e);
                    std::thread::sleep(TICK);
                }
            })
            .map_err(engine_err)?;
        Ok(Self { engine, linker, pooling })
    }

    /// Whether the pooling allocator is in use.
    pub fn pooling(&self) -> bool {
        self.pooling
    }
}
