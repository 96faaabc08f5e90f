//! Self-service: a key bound to a token holder acts on that person's devices only — temporary
//! suspension and its reversal, reporting a device lost or damaged. Anything else, and anyone
//! else's device, does not exist for it (404).

use std::sync::Arc;

use uuid::Uuid;

use crate::authz::{Capability, PermissionSet, Principal, perm};
use crate::device::{DEVICES, Device, DeviceStatus};
use crate::error::{CoreError, Result};
use crate::ports::Store;
use crate::records::{Cond, Record, RecordQuery, decode_all};
use crate::service::devices::DeviceService;

/// Self-service operations.
pub struct SelfService {
    store: Arc<dyn Store>,
    devices: Arc<DeviceService>,
}

impl std::fmt::Debug for SelfService {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SelfService").finish_non_exhaustive()
    }
}

fn holder(p: &Principal) -> Result<Uuid> {
    p.holder_id.ok_or_else(|| CoreError::Forbidden {
        code: "not_a_holder",
        detail: "self-service needs a key bound to a token holder (`holder_id`)".into(),
    })
}

impl SelfService {
    /// Wires the service.
    pub fn new(store: Arc<dyn Store>, devices: Arc<DeviceService>) -> Self {
        Self { store, devices }
    }

    /// The holder's devices.
    pub async fn devices(&self, cap: &Capability<perm::SelfService>) -> Result<Vec<Device>> {
        let h = holder(cap.principal())?;
        let q = RecordQuery::all(vec![Cond::Eq("holder_id", h.into())]);
        decode_all(self.store.records(&DEVICES, &q).await?)
    }

    /// One of the holder's devices, or 404.
    async fn mine(&self, p: &Principal, id: Uuid) -> Result<Device> {
        let h = holder(p)?;
        let body = self.store.record(&DEVICES, &id.to_string()).await?;
        match body.map(|b| Device::from_body(&b)).transpose()? {
            Some(d) if d.holder_id == Some(h) => Ok(d),
            _ => Err(CoreError::not_found("device", id.to_string())),
        }
    }

    /// Moves one of the holder's devices: `suspended`, `active` (only back from a suspension),
    /// `lost` or `damaged`. The cascade to its certificates is the operators' one.
    pub async fn transition(
        &self,
        cap: &Capability<perm::SelfService>,
        id: Uuid,
        to: DeviceStatus,
        reason: Option<String>,
    ) -> Result<Device> {
        let p = cap.principal();
        let d = self.mine(p, id).await?;
        if to == DeviceStatus::Active && d.status != DeviceStatus::Suspended && d.status != to {
            return Err(CoreError::conflict(
                "invalid_transition",
                format!(
                    "a holder can reactivate a suspended device, not a {} one",
                    d.status.as_str()
                ),
            ));
        }
        let needed = crate::service::devices::permission_for(d.status, to);
        // The holder acts with exactly the device permission this step needs, on this device.
        let acting = Arc::new(Principal {
            permissions: PermissionSet::parse([needed])?,
            scope: crate::org::Scope::All,
            ..(**p).clone()
        });
        match to {
            DeviceStatus::Suspended | DeviceStatus::Lost => {
                let c = acting.authorize::<perm::DeviceSuspend>()?;
                self.devices.transition(&c, id, to, reason, None).await
            }
            DeviceStatus::Active => {
                let c = acting.authorize::<perm::DeviceReactivate>()?;
                self.devices.transition(&c, id, to, reason, None).await
            }
            DeviceStatus::Damaged => {
                let c = acting.authorize::<perm::DeviceRevoke>()?;
                self.devices.transition(&c, id, to, reason, None).await
            }
            other => Err(CoreError::invalid(
                "not_self_service",
                format!("a holder cannot move a device to {}", other.as_str()),
            )),
        }
    }
}
