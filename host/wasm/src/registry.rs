//! The loaded plugin set: built from configuration, swapped atomically on reload, and serving
//! the validator hook points. A plugin that fails to load or fails its canary call never replaces
//! a working version; its error is shown in the status.

use sigil_core::ErrorCode;
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};

use async_trait::async_trait;
use sigil_core::certs::{KeyType, RequestKey};
use sigil_core::ports::{
    ApiDispatcher, Endpoints, PluginHttp, PluginHttpResponse, PluginStatus, ValidationInput,
    ValidationOutcome, Validators,
};
use sigil_core::{CoreError, Result};

use crate::connector::PluginIssuer;
use crate::engine::PluginEngine;
use crate::error::PluginError;
use crate::plugin::Counters;
use crate::plugin::{Kv, LoadedPlugin, PluginPolicy, Subject, Verdict, World};

/// One plugin as configured.
#[derive(Debug, Clone)]
pub struct PluginSpec {
    /// Id.
    pub id: String,
    /// Component file.
    pub file: PathBuf,
    /// Hook points (validators): `certificate-issuance`, …
    pub hooks: Vec<String>,
    /// Let calls through when the plugin fails (default: closed for validators).
    pub fail_open: bool,
    /// Limits, grants, config values.
    pub policy: PluginPolicy,
}

struct Entry {
    plugin: Arc<LoadedPlugin>,
    spec: PluginSpec,
    counters: Arc<Counters>,
    generation: u64,
    /// For a CA connector: the back end it serves.
    issuer: Option<Arc<PluginIssuer>>,
}

impl Entry {
    /// Whether this is a workflow plugin that hooks changes of `kind`.
    fn hooks(&self, kind: &str) -> bool {
        self.plugin.world == World::Workflow && self.spec.hooks.iter().any(|h| h == kind)
    }
}

#[derive(Default)]
struct Set {
    entries: BTreeMap<String, Entry>,
    /// Plugins whose latest load failed: (hooks, error).
    failed: BTreeMap<String, (Vec<String>, String)>,
}

/// The registry.
pub struct PluginRegistry {
    engine: Arc<PluginEngine>,
    current: RwLock<Arc<Set>>,
    generation: AtomicU64,
    reloading: tokio::sync::Mutex<()>,
    /// Serves `sigil-api` calls; set once the API exists, cleared at shutdown (it holds the API,
    /// which holds this registry).
    api: RwLock<Option<Arc<dyn ApiDispatcher>>>,
}

impl std::fmt::Debug for PluginRegistry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PluginRegistry")
            .field("generation", &self.generation)
            .finish_non_exhaustive()
    }
}

fn same_spec(a: &PluginSpec, b: &PluginSpec) -> bool {
    a.hooks == b.hooks
        && a.fail_open == b.fail_open
        && a.policy.timeout_ms == b.policy.timeout_ms
        && a.policy.memory_mib == b.policy.memory_mib
        && a.policy.max_concurrency == b.policy.max_concurrency
        && a.policy.grants == b.policy.grants
        && a.policy.config == b.policy.config
        && a.policy.permissions == b.policy.permissions
        && a.policy.allowed_hosts == b.policy.allowed_hosts
        && a.policy.ca_file == b.policy.ca_file
}

fn key_bits(k: KeyType) -> u32 {
    match k {
        KeyType::P256 => 256,
        KeyType::P384 => 384,
        other => other.rsa_bits().unwrap_or(0),
    }
}

fn subject(hook: &str, input: &ValidationInput) -> Subject {
    let (key_type, bits) = match &input.key {
        Some(RequestKey::Known(k)) => (Some(k.as_str().to_owned()), Some(key_bits(*k))),
        Some(RequestKey::Rsa(b)) => (Some("rsa".to_owned()), Some(*b)),
        Some(RequestKey::Other(d)) => (Some(d.clone()), None),
        None => (None, None),
    };
    Subject {
        hook: hook.to_owned(),
        attributes: input
            .attributes
            .iter()
            .map(|a| Kv { key: a.attribute.clone(), value: a.value.clone() })
            .collect(),
        sans: input.sans.iter().map(|s| s.tagged()).collect(),
        key_type,
        key_bits: bits,
        context: input.context.clone(),
        json: input.json.clone(),
    }
}

fn canary() -> Subject {
    Subject {
        hook: "canary".into(),
        attributes: vec![],
        sans: vec![],
        key_type: None,
        key_bits: None,
        context: "canary".into(),
        json: "{}".into(),
    }
}

impl PluginRegistry {
    /// An empty registry.
    pub fn new(engine: Arc<PluginEngine>) -> Self {
        Self {
            engine,
            current: RwLock::new(Arc::new(Set::default())),
            generation: AtomicU64::new(0),
            reloading: tokio::sync::Mutex::new(()),
            api: RwLock::new(None),
        }
    }

    /// Connects (or, with `None`, disconnects) the `sigil-api` interface.
    pub fn set_api(&self, api: Option<Arc<dyn ApiDispatcher>>) {
        if let Ok(mut a) = self.api.write() {
            *a = api;
        }
    }

    fn set(&self) -> Arc<Set> {
        self.current.read().map(|s| Arc::clone(&s)).unwrap_or_default()
    }

    /// Loads `specs` off the request path (compile, type-check, canary call) and swaps the new
    /// set in atomically; in-flight calls finish on the set they started with.
    pub async fn apply(&self, specs: Vec<PluginSpec>) -> Vec<PluginStatus> {
        let _one_at_a_time = self.reloading.lock().await;
        let old = self.set();
        let generation = self.generation.load(Ordering::SeqCst) + 1;
        let mut next = Set::default();
        for spec in specs {
            let prev = old.entries.get(&spec.id);
            let bytes = match std::fs::read(&spec.file) {
                Ok(b) => b,
                Err(e) => {
                    let msg = PluginError::Io {
                        plugin: spec.id.clone(),
                        message: format!("{}: {e}", spec.file.display()),
                    }
                    .to_string();
                    self.keep_old(&mut next, prev, &spec, msg);
                    continue;
                }
            };
            let digest = hex::encode(<sha2::Sha256 as sha2::Digest>::digest(&bytes));
            if let Some(p) = prev.filter(|p| p.plugin.digest == digest && same_spec(&p.spec, &spec))
            {
                next.entries.insert(
                    spec.id.clone(),
                    Entry {
                        plugin: Arc::clone(&p.plugin),
                        spec,
                        counters: Arc::clone(&p.counters),
                        generation: p.generation,
                        issuer: p.issuer.clone(),
                    },
                );
                continue;
            }
            let loaded = match self.engine.load(&spec.id, &bytes, spec.policy.clone()) {
                Ok(l) => l,
                Err(e) => {
                    self.keep_old(&mut next, prev, &spec, e.to_string());
                    continue;
                }
            };
            if loaded.world == World::Validator {
                match self.engine.validate(&loaded, &canary()).await {
                    Ok(_) | Err(PluginError::Rejected { .. }) => {}
                    Err(e) => {
                        self.keep_old(&mut next, prev, &spec, format!("canary call failed: {e}"));
                        continue;
                    }
                }
            }
            let plugin = Arc::new(loaded);
            let counters = Arc::<Counters>::default();
            let mut issuer = None;
            if plugin.world == World::CaConnector {
                // The canary of a connector is `info`: it must reach its CA and describe it.
                let engine = Arc::clone(&self.engine);
                match PluginIssuer::connect(engine, Arc::clone(&plugin), Arc::clone(&counters))
                    .await
                {
                    Ok(i) => issuer = Some(Arc::new(i)),
                    Err(e) => {
                        self.keep_old(&mut next, prev, &spec, format!("canary call failed: {e}"));
                        continue;
                    }
                }
            }
            tracing::info!(plugin = %spec.id, digest = %plugin.digest, generation, "plugin loaded");
            next.entries
                .insert(spec.id.clone(), Entry { plugin, spec, counters, generation, issuer });
        }
        self.generation.store(generation, Ordering::SeqCst);
        if let Ok(mut cur) = self.current.write() {
            *cur = Arc::new(next);
        }
        self.status()
    }

    fn keep_old(&self, next: &mut Set, prev: Option<&Entry>, spec: &PluginSpec, error: String) {
        tracing::error!(plugin = %spec.id, error = %error, "plugin not loaded; the previous version, if any, keeps serving");
        if let Some(p) = prev {
            next.entries.insert(
                spec.id.clone(),
                Entry {
                    plugin: Arc::clone(&p.plugin),
                    spec: p.spec.clone(),
                    counters: Arc::clone(&p.counters),
                    generation: p.generation,
                    issuer: p.issuer.clone(),
                },
            );
        }
        next.failed.insert(spec.id.clone(), (spec.hooks.clone(), error));
    }

    /// Every plugin's state.
    pub fn status(&self) -> Vec<PluginStatus> {
        let set = self.set();
        let mut out: Vec<PluginStatus> = set
            .entries
            .iter()
            .map(|(id, e)| {
                let failed = set.failed.get(id);
                PluginStatus {
                    id: id.clone(),
                    kind: serde_json::to_value(e.plugin.world)
                        .ok()
                        .and_then(|v| v.as_str().map(str::to_owned))
                        .unwrap_or_default(),
                    digest: Some(e.plugin.digest.clone()),
                    generation: e.generation,
                    status: if failed.is_some() { "failed" } else { "active" }.into(),
                    last_error: failed
                        .map(|f| f.1.clone())
                        .or_else(|| e.counters.last_error.lock().ok().and_then(|l| l.clone())),
                    calls: e.counters.calls.load(Ordering::Relaxed),
                    faults: e.counters.faults.load(Ordering::Relaxed),
                    call_seconds: e.counters.seconds(),
                    call_buckets: e.counters.bucket_counts(),
                    hooks: e.spec.hooks.clone(),
                }
            })
            .collect();
        for (id, (hooks, error)) in &set.failed {
            if !set.entries.contains_key(id) {
                out.push(PluginStatus {
                    id: id.clone(),
                    kind: String::new(),
                    digest: None,
                    generation: 0,
                    status: "failed".into(),
                    last_error: Some(error.clone()),
                    calls: 0,
                    faults: 0,
                    call_seconds: 0.0,
                    call_buckets: Vec::new(),
                    hooks: hooks.clone(),
                });
            }
        }
        out.sort_by(|a, b| a.id.cmp(&b.id));
        out
    }
}

#[async_trait]
impl Validators for PluginRegistry {
    fn active(&self, hook: &str) -> bool {
        self.set()
            .entries
            .values()
            .any(|e| e.plugin.world == World::Validator && e.spec.hooks.iter().any(|h| h == hook))
    }

    async fn validate(&self, hook: &str, input: &ValidationInput) -> Result<ValidationOutcome> {
        let set = self.set();
        let mut outcome = ValidationOutcome::default();
        let mut reasons = Vec::new();
        let s = subject(hook, input);
        for e in set.entries.values().filter(|e| {
            e.plugin.world == World::Validator && e.spec.hooks.iter().any(|h| h == hook)
        }) {
            e.counters.calls.fetch_add(1, Ordering::Relaxed);
            let start = std::time::Instant::now();
            let verdict = self.engine.validate(&e.plugin, &s).await;
            e.counters.record_time(start);
            match verdict {
                Ok((Verdict::Allow, _)) => {}
                Ok((Verdict::OverrideAllow, _)) => outcome.override_builtin = true,
                Ok((Verdict::Deny(r), _)) => {
                    reasons.extend(r.into_iter().map(|r| format!("{}: {r}", e.spec.id)))
                }
                Err(err) => {
                    e.counters.record_fault(&err.to_string());
                    if e.spec.fail_open {
                        tracing::warn!(plugin = %e.spec.id, error = %err, "validator failed; fail-open lets the call through");
                        continue;
                    }
                    return Err(CoreError::Dependency {
                        code: err.code(),
                        detail: err.to_string(),
                    });
                }
            }
        }
        if !reasons.is_empty() {
            return Err(CoreError::invalid(ErrorCode::ValidationFailed, reasons.join("; ")));
        }
        Ok(outcome)
    }
}

#[async_trait]
impl Endpoints for PluginRegistry {
    async fn handle(
        &self,
        id: &str,
        caller: &Arc<sigil_core::access::authz::Principal>,
        request: PluginHttp,
    ) -> Option<Result<PluginHttpResponse>> {
        if !caller.may_invoke(id) {
            return Some(Err(CoreError::Forbidden {
                code: ErrorCode::PermissionDenied,
                detail: format!("missing permission `plugins:invoke:{id}` (or `plugins:invoke`)"),
            }));
        }
        let set = self.set();
        let e = set.entries.get(id).filter(|e| e.plugin.world == World::Endpoint)?;
        e.counters.calls.fetch_add(1, Ordering::Relaxed);
        let api = self.api.read().ok().and_then(|a| a.clone());
        let start = std::time::Instant::now();
        let handled = self.engine.handle(&e.plugin, caller, request, api).await;
        e.counters.record_time(start);
        Some(handled.map_err(|err| {
            e.counters.record_fault(&err.to_string());
            CoreError::Dependency { code: err.code(), detail: err.to_string() }
        }))
    }
}

tokio::task_local! {
    /// How many workflow actions led to the change being announced (0: a caller's own change).
    static WORKFLOW_DEPTH: u8;
}

/// Changes made by workflow actions trigger workflows again only this many times in a row, so
/// workflows that answer each other's (or their own) changes cannot loop forever.
pub const MAX_WORKFLOW_DEPTH: u8 = 3;

impl sigil_core::ports::EventSink for PluginRegistry {
    /// Whether a workflow plugin now loaded hooks `kind`. One loaded before the change is
    /// announced but after this answer misses that one change, as it would had it loaded a
    /// moment later.
    fn wants(&self, kind: &str) -> bool {
        self.set().entries.values().any(|e| e.hooks(kind))
    }

    fn emit(&self, event: sigil_core::ports::LifecycleEvent) {
        let depth = WORKFLOW_DEPTH.try_with(|d| *d).unwrap_or(0);
        if depth >= MAX_WORKFLOW_DEPTH {
            tracing::warn!(
                kind = %event.kind,
                object = %event.object_id,
                depth,
                "a change made by workflow actions {depth} levels deep triggers no more workflows"
            );
            return;
        }
        let set = self.set();
        let targets: Vec<(Arc<LoadedPlugin>, Arc<Counters>)> = set
            .entries
            .values()
            .filter(|e| e.hooks(&event.kind))
            .map(|e| (Arc::clone(&e.plugin), Arc::clone(&e.counters)))
            .collect();
        if targets.is_empty() {
            return;
        }
        let Ok(runtime) = tokio::runtime::Handle::try_current() else { return };
        let engine = Arc::clone(&self.engine);
        let api = self.api.read().ok().and_then(|a| a.clone());
        // Workflows run after the change is committed and off the request path.
        runtime.spawn(async move {
            let ev = crate::plugin::Event {
                kind: event.kind.clone(),
                object_type: event.object_type.clone(),
                object_id: event.object_id.clone(),
                json: event.json.clone(),
            };
            for (plugin, counters) in targets {
                counters.calls.fetch_add(1, Ordering::Relaxed);
                let start = std::time::Instant::now();
                let result = engine.on_event(&plugin, &ev).await;
                counters.record_time(start);
                let actions = match result {
                    Ok(a) => a,
                    Err(e) => {
                        counters.record_fault(&e.to_string());
                        tracing::warn!(plugin = %plugin.id, error = %e, "workflow failed");
                        continue;
                    }
                };
                let Some(api) = &api else { continue };
                // A workflow asks; the host acts, under the plugin's permissions, a bounded number
                // of times per event.
                for a in actions.into_iter().take(16) {
                    let (path, query) = match a.path.split_once('?') {
                        Some((p, q)) => (p.to_owned(), q.to_owned()),
                        None => (a.path.clone(), String::new()),
                    };
                    let req = PluginHttp {
                        method: a.method.clone(),
                        path,
                        query,
                        headers: vec![("content-type".into(), "application/json".into())],
                        body: a.body.unwrap_or_default().into_bytes(),
                    };
                    // The changes this action makes are announced one level deeper.
                    let call = api.call(PluginEngine::principal_of(&plugin), req);
                    let res = WORKFLOW_DEPTH.scope(depth + 1, call).await;
                    if res.status >= 400 {
                        let msg = format!("action {} {} answered {}", a.method, a.path, res.status);
                        tracing::warn!(plugin = %plugin.id, "{msg}");
                        counters.record_fault(&msg);
                    }
                }
            }
        });
    }
}

#[async_trait]
impl sigil_core::ports::IdentitySources for PluginRegistry {
    fn sources(&self) -> Vec<String> {
        let set = self.set();
        set.entries
            .values()
            .filter(|e| e.plugin.world == World::IdentitySource)
            .map(|e| e.spec.id.clone())
            .collect()
    }

    async fn lookup(
        &self,
        source: &str,
        known: &[(String, String)],
    ) -> Result<Option<Vec<(String, String)>>> {
        let set = self.set();
        let e = set
            .entries
            .get(source)
            .filter(|e| e.plugin.world == World::IdentitySource)
            .ok_or_else(|| {
                CoreError::invalid(
                    ErrorCode::UnknownSource,
                    format!("no identity source `{source}`"),
                )
            })?;
        e.counters.record_call();
        let known: Vec<Kv> =
            known.iter().map(|(k, v)| Kv { key: k.clone(), value: v.clone() }).collect();
        let start = std::time::Instant::now();
        let found = self.engine.lookup(&e.plugin, &known).await;
        e.counters.record_time(start);
        match found {
            Ok(found) => Ok(found.map(|f| f.into_iter().map(|kv| (kv.key, kv.value)).collect())),
            Err(err) => {
                e.counters.record_fault(&err.to_string());
                let code = match err {
                    PluginError::Rejected { .. } => ErrorCode::IdentitySourceFailed,
                    _ => err.code(),
                };
                Err(CoreError::Dependency { code, detail: err.to_string() })
            }
        }
    }
}

impl sigil_core::certs::ca::IssuerSource for PluginRegistry {
    fn issuer(&self, id: &str) -> Option<Arc<dyn sigil_core::certs::ca::Issuer>> {
        let set = self.set();
        let i = set.entries.get(id)?.issuer.clone()?;
        Some(i)
    }

    fn issuers(&self) -> Vec<Arc<dyn sigil_core::certs::ca::Issuer>> {
        let set = self.set();
        set.entries
            .values()
            .filter_map(|e| e.issuer.clone())
            .map(|i| i as Arc<dyn sigil_core::certs::ca::Issuer>)
            .collect()
    }
}
