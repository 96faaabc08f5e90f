//! The certificates area's storage ports: reads and writes of CAs, CRLs, profiles and
//! certificates.

use async_trait::async_trait;
use uuid::Uuid;

use crate::certs::ca::{CaRecord, CrlRecord, RevokedEntry};
use crate::certs::profile::Profile;
use crate::certs::{CertFilter, Certificate};
use crate::error::StoreResult;
use crate::page::PageRequest;

/// Reads of CAs, CRLs, profiles and certificates.
#[async_trait]
pub trait CertStore: Send + Sync {
    /// Every stored CA.
    async fn cas(&self) -> StoreResult<Vec<CaRecord>>;
    /// A CA's CRL state.
    async fn crl(&self, ca_id: &str) -> StoreResult<Option<CrlRecord>>;
    /// Revoked and suspended certificates of a CA.
    async fn revoked_entries(&self, ca_id: &str) -> StoreResult<Vec<RevokedEntry>>;
    /// Every profile.
    async fn profiles(&self) -> StoreResult<Vec<Profile>>;
    /// One certificate.
    async fn certificate(&self, id: Uuid) -> StoreResult<Option<Certificate>>;
    /// The certificate that renewed certificate `id`, if any.
    async fn renewal_of(&self, id: Uuid) -> StoreResult<Option<Certificate>>;
    /// Superseded certificates whose grace ended at or before `now_us`, active (not on hold,
    /// not revoked, not expired), oldest first, at most `limit`.
    async fn superseded_due(&self, now_us: i64, limit: u32) -> StoreResult<Vec<Certificate>>;
    /// A certificate by CA and serial.
    async fn certificate_by_serial(
        &self,
        ca_id: &str,
        serial: &str,
    ) -> StoreResult<Option<Certificate>>;
    /// A page of certificates. `after` is an opaque cursor produced by [`cert_cursor`].
    async fn list_certificates(
        &self,
        f: &CertFilter,
        page: &PageRequest,
    ) -> StoreResult<Vec<Certificate>>;
}

/// Writes of CAs, CRLs, profiles and certificates.
#[async_trait]
pub trait CertTx: Send {
    /// Inserts a CA.
    async fn insert_ca(&mut self, ca: &CaRecord) -> StoreResult<()>;
    /// Replaces a CA's sealed keys (issuing, root) with `new` when they are still `old`;
    /// whether they were replaced.
    async fn set_ca_keys(
        &mut self,
        id: &str,
        old: (&[u8], Option<&[u8]>),
        new: (&[u8], Option<&[u8]>),
    ) -> StoreResult<bool>;
    /// Stores the CA's root CRL (DER).
    async fn set_root_crl(&mut self, id: &str, der: &[u8]) -> StoreResult<()>;
    /// Removes a CA's stored root key (moved out of the database).
    async fn clear_ca_root_key(&mut self, id: &str) -> StoreResult<()>;
    /// Marks a CA's CRL as needing regeneration.
    async fn mark_crl_stale(&mut self, ca_id: &str) -> StoreResult<()>;
    /// Stores a new CRL; returns the CRL number it must carry (one more than the last).
    async fn next_crl_number(&mut self, ca_id: &str) -> StoreResult<i64>;
    /// Stores the signed CRL with its number and times.
    async fn store_crl(
        &mut self,
        ca_id: &str,
        der: &[u8],
        this_update_us: i64,
        next_update_us: i64,
    ) -> StoreResult<()>;
    /// Inserts a profile.
    async fn insert_profile(&mut self, p: &Profile) -> StoreResult<()>;
    /// Replaces a profile's rules.
    async fn update_profile(&mut self, p: &Profile) -> StoreResult<()>;
    /// Inserts a certificate.
    async fn insert_certificate(&mut self, c: &Certificate) -> StoreResult<()>;
    /// Reads a certificate and locks it until commit.
    async fn certificate_for_update(&mut self, id: Uuid) -> StoreResult<Option<Certificate>>;
    /// Replaces a certificate's mutable fields (status, revocation, metadata).
    async fn update_certificate(&mut self, c: &Certificate) -> StoreResult<()>;
    /// Moves the revocation of superseded certificate `id` to `until_us`, unless it is revoked
    /// already.
    async fn set_superseded_until(&mut self, id: Uuid, until_us: i64) -> StoreResult<()>;
    /// Cancels the revocation of superseded certificate `id` while its grace lasts (after
    /// `now_us`) and it is not revoked; whether it did.
    async fn cancel_supersession(&mut self, id: Uuid, now_us: i64) -> StoreResult<bool>;
}
