//! Host side of the imported interfaces, and the per-call store state.

use std::collections::BTreeMap;
use std::sync::Arc;

use wasmtime::ResourceLimiter;
use wasmtime::component::ResourceTable;
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};

use sigil_core::access::authz::Principal;
use sigil_core::ports::{ApiDispatcher, PluginHttp};

use crate::bindings::endpoint::sigil::plugin::sigil_api;
use crate::bindings::validator::sigil::plugin::{clock, config, log, types, validation};

/// Most host resources (streams, pollables, requests…) one call may hold at once.
pub(crate) const MAX_RESOURCES: usize = 1024;

/// Memory limiter that remembers whether the limit was hit and the peak size asked for.
pub(crate) struct Limits {
    pub(crate) max_bytes: usize,
    pub(crate) hit: bool,
    pub(crate) peak: usize,
}

impl ResourceLimiter for Limits {
    fn memory_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        if desired > self.max_bytes {
            self.hit = true;
            return Ok(false);
        }
        self.peak = self.peak.max(desired);
        Ok(true)
    }

    fn table_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        Ok(desired <= 100_000)
    }
}

/// Everything one call's store holds.
pub(crate) struct State {
    pub(crate) wasi: WasiCtx,
    pub(crate) table: ResourceTable,
    pub(crate) limits: Limits,
    pub(crate) plugin: Arc<str>,
    pub(crate) config: Arc<BTreeMap<String, String>>,
    /// For the `sigil-api` interface: who the plugin acts as, and how to reach the API.
    pub(crate) api: Option<(Arc<dyn ApiDispatcher>, Arc<Principal>)>,
    /// For the `outbound-http` interface.
    pub(crate) outbound: Option<crate::outbound::Outbound>,
}

impl State {
    pub(crate) fn new(
        plugin: Arc<str>,
        config: Arc<BTreeMap<String, String>>,
        max_bytes: usize,
    ) -> Self {
        // No preopened directories, no environment, no sockets (not even unconnected ones,
        // which would still take file descriptors), no name lookup: WASI is linked because a
        // Rust std guest imports it, not to give the plugin anything. Outbound HTTP is its own
        // grant.
        let mut wasi = WasiCtx::builder();
        wasi.allow_tcp(false).allow_udp(false).allow_ip_name_lookup(false);
        let mut table = ResourceTable::new();
        table.set_max_capacity(MAX_RESOURCES);
        Self {
            wasi: wasi.build(),
            table,
            limits: Limits { max_bytes, hit: false, peak: 0 },
            plugin,
            config,
            api: None,
            outbound: None,
        }
    }
}

impl WasiView for State {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView { ctx: &mut self.wasi, table: &mut self.table }
    }
}

impl types::Host for State {}
impl validation::Host for State {}

impl log::Host for State {
    async fn log(&mut self, level: log::Level, message: String) {
        let plugin = &*self.plugin;
        // Plugins cannot flood the log with huge lines.
        let message: String = message.chars().take(2000).collect();
        match level {
            log::Level::Trace => tracing::trace!(plugin, "{message}"),
            log::Level::Debug => tracing::debug!(plugin, "{message}"),
            log::Level::Info => tracing::info!(plugin, "{message}"),
            log::Level::Warn => tracing::warn!(plugin, "{message}"),
            log::Level::Error => tracing::error!(plugin, "{message}"),
        }
    }
}

impl config::Host for State {
    async fn get(&mut self, key: String) -> Option<String> {
        self.config.get(&key).cloned()
    }
}

impl clock::Host for State {
    async fn now_ms(&mut self) -> u64 {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
            .unwrap_or(0)
    }
}

impl sigil_api::Host for State {
    async fn call(&mut self, request: types::HttpRequest) -> Result<types::HttpResponse, String> {
        let Some((dispatcher, principal)) = self.api.clone() else {
            return Err("the sigil-api interface is not available here".into());
        };
        let req = PluginHttp {
            method: request.method,
            path: request.path,
            query: request.query,
            headers: request.headers.into_iter().map(|kv| (kv.key, kv.value)).collect(),
            body: request.body,
        };
        let res = dispatcher.call(principal, req).await;
        Ok(types::HttpResponse {
            status: res.status,
            headers: res.headers.into_iter().map(|(key, value)| types::Kv { key, value }).collect(),
            body: res.body,
        })
    }
}

impl crate::bindings::workflow::sigil::plugin::outbound_http::Host for State {
    async fn send(&mut self, request: types::HttpRequest) -> Result<types::HttpResponse, String> {
        match self.outbound.clone() {
            Some(o) => o.send(request).await,
            None => Err("outbound-http is not available to this plugin".into()),
        }
    }
}
