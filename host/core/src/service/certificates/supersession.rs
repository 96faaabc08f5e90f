//! Supersession: a renewed certificate stays valid beside its renewal for its profile's
//! `supersede_grace_days`, then Sigil revokes it with reason superseded (RFC 5280 §5.3.1), so
//! that a renewal never leaves two live certificates for one identity for long.

use crate::authz::Principal;
use crate::cert::{CertStatus, RevocationReason};
use crate::error::Result;

use super::{CertChange, CertificateService};

/// Most superseded certificates revoked in one sweep; the rest wait for the next.
const SWEEP_LIMIT: u32 = 100;

impl CertificateService {
    /// Revokes (reason superseded) the superseded certificates whose grace has ended, telling
    /// their back ends first; audited as the server. Returns how many were revoked. One whose
    /// back end refuses stays as it is and is tried again on the next sweep.
    pub async fn revoke_superseded(&self) -> Result<usize> {
        let now = self.clock.now();
        let due = self.store.superseded_due(crate::audit::unix_micros(now), SWEEP_LIMIT).await?;
        let system = Principal::system();
        let change = CertChange::Revoke(RevocationReason::Superseded);
        let mut done = 0;
        for cert in due {
            if let Err(e) = self.tell_backend(&cert, change).await {
                tracing::warn!(certificate = %cert.id, error = %e,
                    "revoking a superseded certificate at its CA failed; trying again later");
                continue;
            }
            let mut tx = self.store.begin().await?;
            let (revoked, ev) =
                self.change_in_tx(tx.as_mut(), &system, cert.id, change, now).await?;
            let Some(ev) = ev else { continue };
            let ev = ev.details(serde_json::json!({
                "serial": revoked.serial, "from": cert.status_at(now).as_str(),
                "to": CertStatus::Revoked.as_str(), "reason": "superseded",
                "superseded_by": cert.superseded_by,
            }));
            tx.commit(vec![ev], now).await?;
            self.announce_change(change, &revoked);
            done += 1;
        }
        Ok(done)
    }
}
