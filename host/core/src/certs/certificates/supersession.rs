//! Supersession: a renewed certificate stays valid beside its renewal for its profile's
//! `supersede_grace_days`, then Sigil revokes it with reason superseded (RFC 5280 §5.3.1), so
//! that a renewal never leaves two live certificates for one identity for long. One on hold is
//! left alone (its hold may be for a compromise, which superseded would hide); one that has
//! expired needs no revocation; revoking the renewal within the grace cancels it.

use crate::access::authz::Principal;
use crate::certs::RevocationReason;
use crate::error::Result;

use super::{CertChange, CertificateService};

/// Most superseded certificates revoked in one sweep; the rest wait for the next.
const SWEEP_LIMIT: u32 = 100;
/// How long a certificate whose back end refused waits before it is tried again (so that a
/// back end that refuses never holds up the others, which come first meanwhile).
const RETRY_AFTER: time::Duration = time::Duration::hours(1);

impl CertificateService {
    /// Revokes (reason superseded) the active superseded certificates whose grace has ended,
    /// telling their back ends first; audited as the server. Returns how many were revoked.
    /// One whose back end refuses is tried again an hour later.
    pub async fn revoke_superseded(&self) -> Result<usize> {
        let now = self.clock.now();
        let due = self.store.superseded_due(crate::audit::unix_micros(now), SWEEP_LIMIT).await?;
        let system = Principal::system();
        let change = CertChange::Revoke(RevocationReason::Superseded);
        let mut done = 0;
        for cert in due {
            if let Err(e) = self.tell_backend(&cert, change).await {
                tracing::warn!(certificate = %cert.id, error = %e,
                    "revoking a superseded certificate at its CA failed; trying again in an hour");
                let mut tx = self.store.begin().await?;
                let later = crate::audit::unix_micros(now + RETRY_AFTER);
                tx.set_superseded_until(cert.id, later).await?;
                tx.commit(vec![], now).await?;
                continue;
            }
            let mut tx = self.store.begin().await?;
            // Still due under the row lock: a hold placed or a supersession cancelled since the
            // read wins (and is left alone).
            let still_due = tx.certificate_for_update(cert.id).await?.is_some_and(|c| {
                c.status == crate::certs::CertStatus::Active
                    && c.superseded_until.is_some_and(|u| u <= now)
            });
            if !still_due {
                if self.backend(&cert).is_ok_and(|b| b.status().is_none()) {
                    tracing::warn!(certificate = %cert.id, "a superseded certificate changed \
                        while its CA revoked it; its CA may now list it as revoked");
                }
                continue;
            }
            let (revoked, ev) =
                self.change_in_tx(tx.as_mut(), &system, cert.id, change, now).await?;
            let Some(mut ev) = ev else { continue };
            if let Some(d) = ev.details.as_object_mut() {
                d.insert("superseded_by".into(), serde_json::json!(cert.superseded_by));
            }
            tx.commit(vec![ev], now).await?;
            self.announce_change(change, &revoked);
            done += 1;
        }
        Ok(done)
    }
}
