//! Settings changed through the API and shared by every node through the database: for now, the
//! exposure configuration. Validation of the value belongs to whoever understands it (the API
//! layer for exposure); this service stores, audits and serves it.

use crate::audit::AuditAction;
use std::sync::Arc;

use crate::access::authz::{Capability, perm};
use crate::audit::{NewAuditEvent, unix_micros};
use crate::error::{CoreError, Result};
use crate::ports::{Clock, Store};

/// Name of the exposure setting.
pub const EXPOSURE: &str = "exposure";

/// Shared settings.
pub struct SettingsService {
    store: Arc<dyn Store>,
    clock: Arc<dyn Clock>,
}

impl std::fmt::Debug for SettingsService {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SettingsService").finish_non_exhaustive()
    }
}

fn parse(raw: Option<String>) -> Result<Option<serde_json::Value>> {
    raw.map(|r| {
        serde_json::from_str(&r)
            .map_err(|e| CoreError::Internal(format!("stored setting is not JSON: {e}")))
    })
    .transpose()
}

impl SettingsService {
    /// Wires the service.
    pub fn new(store: Arc<dyn Store>, clock: Arc<dyn Clock>) -> Self {
        Self { store, clock }
    }

    /// The stored exposure override (JSON text), if any. No capability: every node reads it to
    /// enforce it.
    pub async fn exposure_raw(&self) -> Result<Option<String>> {
        Ok(self.store.setting(EXPOSURE).await?)
    }

    /// Replaces the exposure override with `value` (already validated by the caller).
    pub async fn put_exposure(
        &self,
        cap: &Capability<perm::ExposureUpdate>,
        value: &serde_json::Value,
    ) -> Result<()> {
        let now = self.clock.now();
        let text = value.to_string();
        let mut tx = self.store.begin().await?;
        let before = parse(tx.setting(EXPOSURE).await?)?;
        if before.as_ref() == Some(value) {
            return Ok(());
        }
        tx.put_setting(EXPOSURE, &text, unix_micros(now), &cap.principal().id).await?;
        let event =
            NewAuditEvent::new(cap.principal(), AuditAction::ExposureUpdate, "setting", EXPOSURE)
                .details(serde_json::json!({"before": before, "after": value}));
        tx.commit(vec![event], now).await?;
        Ok(())
    }

    /// Removes the override so that the configuration file applies again. Returns whether there
    /// was one.
    pub async fn reset_exposure(&self, cap: &Capability<perm::ExposureUpdate>) -> Result<bool> {
        let now = self.clock.now();
        let mut tx = self.store.begin().await?;
        let before = parse(tx.setting(EXPOSURE).await?)?;
        if before.is_none() {
            return Ok(false);
        }
        tx.delete_setting(EXPOSURE).await?;
        let event =
            NewAuditEvent::new(cap.principal(), AuditAction::ExposureReset, "setting", EXPOSURE)
                .details(serde_json::json!({"before": before}));
        tx.commit(vec![event], now).await?;
        Ok(true)
    }

    /// Records, as the server, that the configuration file's `[exposure]` is being replaced:
    /// `before` and `after` are the file's sections, `in_force` whether the new one applies,
    /// `trigger` what asked (`sighup`, `file`, `api`). Called before the swap, so a reload that
    /// cannot be audited does not happen.
    pub async fn record_file_exposure(
        &self,
        before: serde_json::Value,
        after: serde_json::Value,
        in_force: bool,
        trigger: &str,
    ) -> Result<()> {
        let now = self.clock.now();
        let tx = self.store.begin().await?;
        let event = NewAuditEvent::new(
            &crate::access::authz::Principal::system(),
            AuditAction::ExposureFileReload,
            "setting",
            EXPOSURE,
        )
        .details(serde_json::json!({
            "before": before, "after": after, "in_force": in_force, "trigger": trigger,
        }));
        tx.commit(vec![event], now).await?;
        Ok(())
    }
}
