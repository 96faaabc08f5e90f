//! Loading (compile, world detection, capability check, pre-instantiation) and calling plugins.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};
use tokio::sync::Semaphore;
use wasmtime::component::Component;
use wasmtime::{Store, Trap};

use crate::bindings::connector::CaConnectorPre;
pub use crate::bindings::connector::sigil::plugin::connector::{
    CertificateRef, ConnectorInfo, IssueRequest, Issued,
};
use crate::bindings::endpoint::EndpointPre;
use crate::bindings::identity::IdentitySourcePre;
use crate::bindings::validator::ValidatorPre;
pub use crate::bindings::validator::sigil::plugin::types::Kv;
pub(crate) use crate::bindings::validator::sigil::plugin::types::{HttpRequest, HttpResponse};
pub use crate::bindings::validator::sigil::plugin::validation::{Subject, Verdict};
use crate::bindings::workflow::WorkflowPre;
pub use crate::bindings::workflow::sigil::plugin::events::{Action, Event};
use crate::engine::{MAX_MEMORY_MIB, PluginEngine, TICK};
use crate::error::PluginError;
use crate::host::State;
use sigil_core::access::authz::{ActorKind, PermissionSet, Principal, RequestContext};
use sigil_core::ports::{ApiDispatcher, PluginHttp, PluginHttpResponse};

/// Host interfaces a configuration may grant.
pub const GRANTS: [&str; 5] = ["log", "config", "clock", "outbound-http", "sigil-api"];

/// WASI interfaces every Rust std guest imports; linked with nothing behind them (no files,
/// environment, or network), so they need no grant.
const WASI_ALWAYS: [&str; 4] = ["wasi:cli/", "wasi:io/", "wasi:clocks/", "wasi:random/"];

/// The world a component targets, found from its exports.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum World {
    /// `validate`.
    Validator,
    /// `info`, `issue`, `revoke`.
    CaConnector,
    /// `handle`.
    Endpoint,
    /// `on-event`.
    Workflow,
    /// `lookup`.
    IdentitySource,
}

/// Limits and grants of one plugin. `Debug` shows config keys only: values may be credentials.
#[derive(Clone)]
pub struct PluginPolicy {
    /// Deadline of one call, ms.
    pub timeout_ms: u64,
    /// Memory limit, MiB.
    pub memory_mib: u64,
    /// Calls in flight at once.
    pub max_concurrency: usize,
    /// Granted host interfaces (see [`GRANTS`]).
    pub grants: BTreeSet<String>,
    /// Values for the `config` interface.
    pub config: BTreeMap<String, String>,
    /// Permissions the plugin acts with through `sigil-api` (audited as the plugin).
    pub permissions: Vec<String>,
    /// `outbound-http` allowlist: `scheme://host[:port]` origins the plugin may call.
    pub allowed_hosts: Vec<String>,
    /// PEM bundle of CAs trusted for `outbound-http` HTTPS (none by default).
    pub ca_file: Option<std::path::PathBuf>,
}

impl std::fmt::Debug for PluginPolicy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PluginPolicy")
            .field("timeout_ms", &self.timeout_ms)
            .field("memory_mib", &self.memory_mib)
            .field("max_concurrency", &self.max_concurrency)
            .field("grants", &self.grants)
            .field("config_keys", &self.config.keys().collect::<Vec<_>>())
            .field("permissions", &self.permissions)
            .field("allowed_hosts", &self.allowed_hosts)
            .field("ca_file", &self.ca_file)
            .finish()
    }
}

impl Default for PluginPolicy {
    fn default() -> Self {
        Self {
            timeout_ms: 100,
            memory_mib: 32,
            max_concurrency: 16,
            grants: BTreeSet::new(),
            config: BTreeMap::new(),
            permissions: Vec::new(),
            allowed_hosts: Vec::new(),
            ca_file: None,
        }
    }
}

pub(crate) enum Pre {
    Validator(ValidatorPre<State>),
    Connector(CaConnectorPre<State>),
    Endpoint(EndpointPre<State>),
    Workflow(WorkflowPre<State>),
    Identity(IdentitySourcePre<State>),
}

/// A compiled, type-checked plugin ready to be called.
pub struct LoadedPlugin {
    /// Id from the configuration.
    pub id: String,
    /// Its world.
    pub world: World,
    /// Hex SHA-256 of the component.
    pub digest: String,
    /// Interfaces it imports.
    pub imports: Vec<String>,
    /// Its limits.
    pub policy: PluginPolicy,
    id_arc: Arc<str>,
    config: Arc<BTreeMap<String, String>>,
    pub(crate) pre: Pre,
    pub(crate) permits: Arc<Semaphore>,
    principal: Arc<Principal>,
    outbound: Option<crate::outbound::Outbound>,
}

impl std::fmt::Debug for LoadedPlugin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LoadedPlugin")
            .field("id", &self.id)
            .field("world", &self.world)
            .field("digest", &self.digest)
            .finish_non_exhaustive()
    }
}

impl LoadedPlugin {
    /// The epoch stops guest code at the deadline; this outer bound also covers time spent in
    /// host calls.
    pub(crate) fn deadline(&self) -> Duration {
        Duration::from_millis(self.policy.timeout_ms) + TICK * 5
    }

    fn not_a(&self, world: &str) -> PluginError {
        PluginError::Incompatible {
            plugin: self.id.clone(),
            message: format!("not a {world} plugin"),
        }
    }

    /// The result of a call that may have been stopped at the outer deadline (`Err(Elapsed)`),
    /// trapped (`Ok(Err)`), or returned the plugin's own error (`Ok(Ok(Err))`).
    pub(crate) fn outcome<T>(
        &self,
        store: &Store<State>,
        r: Result<wasmtime::Result<Result<T, String>>, tokio::time::error::Elapsed>,
    ) -> Result<T, PluginError> {
        match r {
            Ok(Ok(Ok(v))) => Ok(v),
            Ok(Ok(Err(message))) => Err(PluginError::Rejected { plugin: self.id.clone(), message }),
            Ok(Err(e)) => Err(self.fault(store, Some(e))),
            Err(_) => Err(self.fault(store, None)),
        }
    }

    /// The typed error for a failed call (`None`: the outer deadline passed).
    pub(crate) fn fault(&self, store: &Store<State>, e: Option<wasmtime::Error>) -> PluginError {
        let plugin = self.id.clone();
        match e {
            _ if store.data().limits.hit => {
                PluginError::MemoryLimit { plugin, mib: self.policy.memory_mib }
            }
            None => PluginError::Timeout { plugin, ms: self.policy.timeout_ms },
            Some(e) if e.downcast_ref::<Trap>() == Some(&Trap::Interrupt) => {
                PluginError::Timeout { plugin, ms: self.policy.timeout_ms }
            }
            Some(e) => PluginError::Trap { plugin, message: format!("{e:#}") },
        }
    }
}

/// One call into a CA connector.
#[derive(Debug, Clone, Copy)]
pub enum ConnectorCall<'a> {
    /// `info`.
    Info,
    /// `issue`.
    Issue(&'a IssueRequest),
    /// `revoke` with an RFC 5280 reason name.
    Revoke(&'a CertificateRef, &'a str),
    /// `suspend`.
    Suspend(&'a CertificateRef),
    /// `reactivate`.
    Reactivate(&'a CertificateRef),
}

/// What a CA connector answered.
#[derive(Debug, Clone)]
pub enum ConnectorReply {
    /// To `info`.
    Info(ConnectorInfo),
    /// To `issue`.
    Issued(Issued),
    /// To `revoke`, `suspend`, `reactivate`.
    Done,
}

/// What a call cost.
#[derive(Debug, Clone, Copy)]
pub struct CallStats {
    /// Wall time.
    pub duration: Duration,
    /// Largest linear memory the plugin asked for, bytes.
    pub peak_memory: usize,
}

/// The world a component targets, from its export names.
pub fn world_of(exports: &BTreeSet<String>) -> Option<World> {
    if exports.contains("validate") {
        Some(World::Validator)
    } else if exports.contains("issue") && exports.contains("info") {
        Some(World::CaConnector)
    } else if exports.contains("handle") {
        Some(World::Endpoint)
    } else if exports.contains("on-event") {
        Some(World::Workflow)
    } else if exports.contains("lookup") {
        Some(World::IdentitySource)
    } else {
        None
    }
}

impl PluginEngine {
    /// Compiles `bytes`, checks its world and imports against `policy`, and pre-instantiates it.
    pub fn load(
        &self,
        id: &str,
        bytes: &[u8],
        policy: PluginPolicy,
    ) -> Result<LoadedPlugin, PluginError> {
        let incompatible =
            |m: String| PluginError::Incompatible { plugin: id.to_owned(), message: m };
        if policy.memory_mib == 0 || policy.memory_mib > MAX_MEMORY_MIB {
            return Err(incompatible(format!("memory limit must be 1 to {MAX_MEMORY_MIB} MiB")));
        }
        let digest = hex::encode(Sha256::digest(bytes));
        let component = Component::new(&self.engine, bytes)
            .map_err(|e| incompatible(format!("not a valid component: {e}")))?;
        let ty = component.component_type();
        let exports: BTreeSet<String> =
            ty.exports(&self.engine).map(|(n, _)| n.to_owned()).collect();
        let imports: Vec<String> = ty.imports(&self.engine).map(|(n, _)| n.to_owned()).collect();
        let world = world_of(&exports)
            .ok_or_else(|| incompatible(format!("exports {exports:?} match no Sigil world")))?;
        for name in &imports {
            if WASI_ALWAYS.iter().any(|p| name.starts_with(p)) {
                continue;
            }
            let grant = name
                .strip_prefix("sigil:plugin/")
                .map(|rest| rest.split('@').next().unwrap_or(rest).to_owned())
                .unwrap_or_else(|| name.clone());
            // Type-only interfaces carry no capability.
            if matches!(grant.as_str(), "types" | "validation" | "connector" | "events") {
                continue;
            }
            if !policy.grants.contains(&grant) {
                return Err(PluginError::NotGranted {
                    plugin: id.to_owned(),
                    interface: name.clone(),
                    grant,
                });
            }
        }
        let instance_pre =
            self.linker.instantiate_pre(&component).map_err(|e| incompatible(format!("{e:#}")))?;
        let pre = match world {
            World::Validator => Pre::Validator(
                ValidatorPre::new(instance_pre).map_err(|e| incompatible(format!("{e:#}")))?,
            ),
            World::Endpoint => Pre::Endpoint(
                EndpointPre::new(instance_pre).map_err(|e| incompatible(format!("{e:#}")))?,
            ),
            World::Workflow => Pre::Workflow(
                WorkflowPre::new(instance_pre).map_err(|e| incompatible(format!("{e:#}")))?,
            ),
            World::CaConnector => Pre::Connector(
                CaConnectorPre::new(instance_pre).map_err(|e| incompatible(format!("{e:#}")))?,
            ),
            World::IdentitySource => Pre::Identity(
                IdentitySourcePre::new(instance_pre).map_err(|e| incompatible(format!("{e:#}")))?,
            ),
        };
        let principal = Arc::new(Principal {
            kind: ActorKind::Plugin,
            id: id.to_owned(),
            name: format!("plugin {id}"),
            api_key_id: None,
            operator_id: None,
            holder_id: None,
            permissions: PermissionSet::from_stored(policy.permissions.clone()),
            // Plugins are configured by whoever runs the server; their reach is their
            // permissions, narrowed to the caller's authority when they serve a caller.
            scope: sigil_core::access::scope::Scope::All,
            context: RequestContext::default(),
        });
        let roots = match &policy.ca_file {
            Some(path) => std::fs::read(path).map_err(|e| PluginError::Io {
                plugin: id.to_owned(),
                message: format!("reading ca_file {}: {e}", path.display()),
            })?,
            None => Vec::new(),
        };
        let outbound = crate::outbound::Outbound::new(
            &policy.allowed_hosts,
            &roots,
            Duration::from_millis(policy.timeout_ms.max(1000)),
        )
        .map_err(|message| PluginError::Io {
            plugin: id.to_owned(),
            message: format!("ca_file: {message}"),
        })?;
        Ok(LoadedPlugin {
            id: id.to_owned(),
            world,
            digest,
            imports,
            id_arc: Arc::from(id),
            config: Arc::new(policy.config.clone()),
            permits: Arc::new(Semaphore::new(policy.max_concurrency.max(1))),
            outbound: Some(outbound),
            policy,
            pre,
            principal,
        })
    }

    /// A fresh store for one call of `p`: its memory limit, its deadline, its outbound client.
    pub(crate) fn store(&self, p: &LoadedPlugin) -> Store<State> {
        let max_bytes = usize::try_from(p.policy.memory_mib << 20).unwrap_or(usize::MAX);
        let mut state = State::new(Arc::clone(&p.id_arc), Arc::clone(&p.config), max_bytes);
        state.outbound = p.outbound.clone();
        let mut store = Store::new(&self.engine, state);
        store.limiter(|s| &mut s.limits);
        store.set_epoch_deadline(
            p.policy.timeout_ms / u64::try_from(TICK.as_millis()).unwrap_or(10) + 1,
        );
        store
    }

    /// Runs a validator in a fresh instance under the plugin's limits.
    pub async fn validate(
        &self,
        p: &LoadedPlugin,
        subject: &Subject,
    ) -> Result<(Verdict, CallStats), PluginError> {
        let Pre::Validator(pre) = &p.pre else {
            return Err(p.not_a("validator"));
        };
        let _permit = p.permits.acquire().await.map_err(|e| PluginError::Engine(e.to_string()))?;
        let started = Instant::now();
        let mut store = self.store(p);
        let call = async {
            let bindings = pre.instantiate_async(&mut store).await?;
            bindings.call_validate(&mut store, subject).await
        };
        let outcome = tokio::time::timeout(p.deadline(), call).await;
        let stats =
            CallStats { duration: started.elapsed(), peak_memory: store.data().limits.peak };
        p.outcome(&store, outcome).map(|v| (v, stats))
    }

    /// Runs an endpoint plugin's `handle` in a fresh instance under its limits; `api` serves its
    /// `sigil-api` calls (which count against the deadline too).
    pub async fn handle(
        &self,
        p: &LoadedPlugin,
        caller: &Principal,
        request: PluginHttp,
        api: Option<Arc<dyn ApiDispatcher>>,
    ) -> Result<PluginHttpResponse, PluginError> {
        let Pre::Endpoint(pre) = &p.pre else {
            return Err(p.not_a("endpoint"));
        };
        let _permit = p.permits.acquire().await.map_err(|e| PluginError::Engine(e.to_string()))?;
        let mut store = self.store(p);
        // The plugin's calls into the API never reach further than the caller could itself.
        store.data_mut().api = api.map(|d| (d, p.principal.on_behalf_of(caller)));
        let req = HttpRequest {
            method: request.method,
            path: request.path,
            query: request.query,
            headers: request.headers.into_iter().map(|(key, value)| Kv { key, value }).collect(),
            body: request.body,
        };
        let call = async {
            let bindings = pre.instantiate_async(&mut store).await?;
            bindings.call_handle(&mut store, &req).await
        };
        match tokio::time::timeout(p.deadline(), call).await {
            Ok(Ok(HttpResponse { status, headers, body })) => Ok(PluginHttpResponse {
                status,
                headers: headers.into_iter().map(|kv| (kv.key, kv.value)).collect(),
                body,
            }),
            Ok(Err(e)) => Err(p.fault(&store, Some(e))),
            Err(_) => Err(p.fault(&store, None)),
        }
    }

    /// Runs a workflow plugin's `on-event` in a fresh instance; returns the actions it asks for.
    pub async fn on_event(
        &self,
        p: &LoadedPlugin,
        event: &Event,
    ) -> Result<Vec<Action>, PluginError> {
        let Pre::Workflow(pre) = &p.pre else {
            return Err(p.not_a("workflow"));
        };
        let _permit = p.permits.acquire().await.map_err(|e| PluginError::Engine(e.to_string()))?;
        let mut store = self.store(p);
        let call = async {
            let bindings = pre.instantiate_async(&mut store).await?;
            bindings.call_on_event(&mut store, event).await
        };
        let r = tokio::time::timeout(p.deadline(), call).await;
        p.outcome(&store, r)
    }

    /// Runs one export of a CA connector in a fresh instance under its limits.
    pub async fn connector(
        &self,
        p: &LoadedPlugin,
        call: ConnectorCall<'_>,
    ) -> Result<ConnectorReply, PluginError> {
        let Pre::Connector(pre) = &p.pre else {
            return Err(p.not_a("ca-connector"));
        };
        let _permit = p.permits.acquire().await.map_err(|e| PluginError::Engine(e.to_string()))?;
        let mut store = self.store(p);
        let run = async {
            let b = pre.instantiate_async(&mut store).await?;
            wasmtime::Result::Ok(match call {
                ConnectorCall::Info => b.call_info(&mut store).await?.map(ConnectorReply::Info),
                ConnectorCall::Issue(r) => {
                    b.call_issue(&mut store, r).await?.map(ConnectorReply::Issued)
                }
                ConnectorCall::Revoke(c, reason) => {
                    b.call_revoke(&mut store, c, reason).await?.map(|()| ConnectorReply::Done)
                }
                ConnectorCall::Suspend(c) => {
                    b.call_suspend(&mut store, c).await?.map(|()| ConnectorReply::Done)
                }
                ConnectorCall::Reactivate(c) => {
                    b.call_reactivate(&mut store, c).await?.map(|()| ConnectorReply::Done)
                }
            })
        };
        let r = tokio::time::timeout(p.deadline(), run).await;
        p.outcome(&store, r)
    }

    /// Runs an identity source's `lookup` in a fresh instance under its limits.
    pub async fn lookup(
        &self,
        p: &LoadedPlugin,
        known: &[Kv],
    ) -> Result<Option<Vec<Kv>>, PluginError> {
        let Pre::Identity(pre) = &p.pre else {
            return Err(p.not_a("identity-source"));
        };
        let _permit = p.permits.acquire().await.map_err(|e| PluginError::Engine(e.to_string()))?;
        let mut store = self.store(p);
        let call = async {
            let bindings = pre.instantiate_async(&mut store).await?;
            bindings.call_lookup(&mut store, known).await
        };
        let r = tokio::time::timeout(p.deadline(), call).await;
        p.outcome(&store, r)
    }

    /// Who the plugin acts as (for actions carried out on its behalf).
    pub fn principal_of(p: &LoadedPlugin) -> Arc<Principal> {
        Arc::clone(&p.principal)
    }
}

/// Calls and faults of one plugin, kept across reloads of the same version.
#[derive(Default)]
pub(crate) struct Counters {
    pub(crate) calls: std::sync::atomic::AtomicU64,
    pub(crate) faults: std::sync::atomic::AtomicU64,
    /// Time spent in calls, nanoseconds.
    pub(crate) nanos: std::sync::atomic::AtomicU64,
    /// Calls by duration (`sigil_core::ports::PLUGIN_CALL_BUCKETS`, then the slower ones).
    pub(crate) buckets: [std::sync::atomic::AtomicU64; 11],
    pub(crate) last_error: std::sync::Mutex<Option<String>>,
}

impl Counters {
    pub(crate) fn record_call(&self) {
        self.calls.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    }

    /// Adds the time since `start` to the time spent in calls.
    pub(crate) fn record_time(&self, start: Instant) {
        let took = start.elapsed();
        let ns = u64::try_from(took.as_nanos()).unwrap_or(u64::MAX);
        self.nanos.fetch_add(ns, std::sync::atomic::Ordering::Relaxed);
        let secs = took.as_secs_f64();
        let i = sigil_core::ports::PLUGIN_CALL_BUCKETS
            .iter()
            .position(|b| secs <= *b)
            .unwrap_or(sigil_core::ports::PLUGIN_CALL_BUCKETS.len());
        if let Some(b) = self.buckets.get(i) {
            b.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        }
    }

    /// Calls by duration, as [`Counters::buckets`] holds them.
    pub(crate) fn bucket_counts(&self) -> Vec<u64> {
        self.buckets.iter().map(|b| b.load(std::sync::atomic::Ordering::Relaxed)).collect()
    }

    /// Time spent in calls, seconds.
    pub(crate) fn seconds(&self) -> f64 {
        self.nanos.load(std::sync::atomic::Ordering::Relaxed) as f64 / 1e9
    }

    pub(crate) fn record_fault(&self, error: &str) {
        self.faults.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        if let Ok(mut l) = self.last_error.lock() {
            *l = Some(error.to_owned());
        }
    }
}
