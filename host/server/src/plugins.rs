//! The plugin set in the running server: built from `[plugins]`, reloaded on demand
//! (`POST /api/v1/plugins/reload`) and when the configuration file or a plugin file changes.

use sigil_core::ErrorCode;
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use notify::{RecursiveMode, Watcher};
use sigil_core::ports::{PluginControl, PluginStatus};
use sigil_core::{CoreError, Result};
use sigil_wasm::{PluginPolicy, PluginRegistry, PluginSpec};

use crate::config::Config;

/// Specs from the configuration.
pub fn specs(cfg: &Config) -> Vec<PluginSpec> {
    cfg.plugins
        .load
        .iter()
        .filter(|(_, p)| p.enabled)
        .map(|(id, p)| PluginSpec {
            id: id.clone(),
            file: p.file.clone(),
            hooks: p.hooks.clone(),
            fail_open: p.fail_open,
            policy: PluginPolicy {
                timeout_ms: p.timeout_ms,
                memory_mib: p.memory_mib,
                max_concurrency: p.max_concurrency,
                grants: p.grants.iter().cloned().collect::<BTreeSet<_>>(),
                config: p.config.clone(),
                permissions: p.permissions.clone(),
                allowed_hosts: p.allowed_hosts.clone(),
                ca_file: p.ca_file.clone(),
            },
        })
        .collect()
}

/// Reload and status for the API.
pub struct PluginHost {
    registry: Arc<PluginRegistry>,
    config_file: Option<PathBuf>,
    /// The exposure table, whose file part a reload replaces too, and the settings service
    /// that audits it (set once they exist).
    exposure: std::sync::OnceLock<(
        Arc<sigil_api::exposure::Exposure>,
        Arc<sigil_core::settings::SettingsService>,
    )>,
}

impl PluginHost {
    /// Wires the host.
    pub fn new(registry: Arc<PluginRegistry>, config_file: Option<PathBuf>) -> Self {
        Self { registry, config_file, exposure: std::sync::OnceLock::new() }
    }

    /// Lets reloads replace the file's `[exposure]` in `exposure`, audited through `settings`.
    pub fn set_exposure(
        &self,
        exposure: Arc<sigil_api::exposure::Exposure>,
        settings: Arc<sigil_core::settings::SettingsService>,
    ) {
        let _ = self.exposure.set((exposure, settings));
    }

    /// Reads the configuration again and applies its `[exposure]` and `[plugins]` (what a file
    /// change, SIGHUP and `POST /api/v1/plugins/reload` do). Other sections need a restart.
    pub async fn reload_now(&self, trigger: &str) -> Result<Vec<PluginStatus>> {
        let cfg = Config::load(self.config_file.as_deref())
            .map_err(|e| CoreError::invalid(ErrorCode::InvalidConfiguration, e.to_string()))?;
        if let Some((exposure, settings)) = self.exposure.get() {
            let invalid = |e: sigil_api::exposure::ExposureError| {
                CoreError::invalid(ErrorCode::InvalidConfiguration, format!("[exposure]: {e}"))
            };
            let _sync = exposure.sync_guard().await;
            if let Some(before) = exposure.file_change(&cfg.exposure).map_err(invalid)? {
                let in_force = exposure.source() == sigil_api::exposure::Source::File;
                let json = |c: &sigil_api::exposure::ExposureConfig| {
                    serde_json::to_value(c).unwrap_or_default()
                };
                // Audited first: a change that cannot be recorded is not made.
                settings
                    .record_file_exposure(json(&before), json(&cfg.exposure), in_force, trigger)
                    .await?;
                exposure.reload_file(cfg.exposure.clone()).map_err(invalid)?;
                tracing::info!(trigger, in_force, "the configuration file's [exposure] changed");
            }
        }
        Ok(self.registry.apply(specs(&cfg)).await)
    }
}

#[async_trait]
impl PluginControl for PluginHost {
    fn status(&self) -> Vec<PluginStatus> {
        self.registry.status()
    }

    async fn reload(&self) -> Result<Vec<PluginStatus>> {
        self.reload_now("api").await
    }
}

/// Reloads the configuration on each SIGHUP, as a change of the file does. The handler is in
/// place when this returns (a SIGHUP before it would end the process); `None` if it cannot be.
pub fn reload_on_hangup(host: Arc<PluginHost>) -> Option<tokio::task::JoinHandle<()>> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut hup = match signal(SignalKind::hangup()) {
        Ok(s) => s,
        Err(e) => {
            tracing::warn!(error = %e, "SIGHUP cannot be caught; reload through the API");
            return None;
        }
    };
    Some(tokio::spawn(async move {
        while hup.recv().await.is_some() {
            match host.reload_now("sighup").await {
                Ok(s) => tracing::info!(plugins = s.len(), "configuration reloaded on SIGHUP"),
                Err(e) => tracing::error!(error = %e, "reload on SIGHUP failed; the current \
                    configuration keeps serving"),
            }
        }
    }))
}

/// Watches the configuration file and the plugin files (through their directories, so that
/// editors that replace files are seen) and reloads after changes settle for 300 ms.
pub fn watch(
    host: Arc<PluginHost>,
    cfg: &Config,
) -> Option<(notify::RecommendedWatcher, tokio::task::JoinHandle<()>)> {
    let mut files: Vec<PathBuf> = cfg.plugins.load.values().map(|p| absolute(&p.file)).collect();
    if let Some(f) = &cfg.source {
        files.push(absolute(f));
    }
    if files.is_empty() {
        return None;
    }
    let (tx, mut rx) = tokio::sync::mpsc::channel::<()>(16);
    let watched = files.clone();
    let mut watcher = notify::recommended_watcher(move |ev: notify::Result<notify::Event>| {
        // Opens and closes without a write are not changes; a reload reads the file itself,
        // so reacting to them made one read of the file (an operator's `cat`, a backup)
        // reload it every 300 ms for as long as the server ran.
        if let Ok(ev) = ev
            && !matches!(ev.kind, notify::EventKind::Access(_))
            && ev.paths.iter().any(|p| watched.iter().any(|w| p == w))
        {
            let _ = tx.try_send(());
        }
    })
    .ok()?;
    let dirs: BTreeSet<PathBuf> =
        files.iter().filter_map(|f| f.parent().map(Path::to_path_buf)).collect();
    for d in dirs {
        if let Err(e) = watcher.watch(&d, RecursiveMode::NonRecursive) {
            tracing::warn!(dir = %d.display(), error = %e, "cannot watch for plugin changes");
        }
    }
    let task = tokio::spawn(async move {
        while rx.recv().await.is_some() {
            tokio::time::sleep(Duration::from_millis(300)).await;
            while rx.try_recv().is_ok() {}
            match host.reload_now("file").await {
                Ok(s) => {
                    tracing::info!(plugins = s.len(), "configuration reloaded after a file change")
                }
                Err(e) => {
                    tracing::error!(error = %e, "plugin reload failed; the current set keeps serving")
                }
            }
        }
    });
    Some((watcher, task))
}

fn absolute(p: &Path) -> PathBuf {
    std::path::absolute(p).unwrap_or_else(|_| p.to_path_buf())
}
