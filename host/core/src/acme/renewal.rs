//! ACME Renewal Information (RFC 9773): when a client should renew a certificate. The window
//! opens two thirds into the certificate's life and closes at five sixths; for a revoked
//! certificate it lies in the past (renew now).

use time::{Duration, OffsetDateTime};

use super::jws::b64;
use super::{AcmeError, AcmeService};
use crate::certs::CertStatus;

/// How long a client should wait before asking again.
pub const RETRY_AFTER_SECS: u64 = 6 * 3600;

/// A suggested renewal window.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Window {
    /// Start.
    pub start: OffsetDateTime,
    /// End.
    pub end: OffsetDateTime,
}

impl AcmeService {
    /// The renewal window of the certificate `cert_id` names (`base64url(AKI keyIdentifier)`
    /// `.` `base64url(serial)`), issued under `profile`'s CA.
    pub async fn renewal_info(&self, profile: &str, cert_id: &str) -> Result<Window, AcmeError> {
        let profile = self.profile(profile).await?;
        let (aki, serial) = cert_id
            .split_once('.')
            .ok_or_else(|| AcmeError::malformed("a certificate id is AKI.serial (RFC 9773)"))?;
        let (aki, serial) = (b64(aki, "the key identifier")?, b64(serial, "the serial")?);
        let cert = self
            .by_serial(&profile.spec.ca, &hex::encode(&serial))
            .await?
            .filter(|c| self.verifier.authority_key_id(&c.der).as_deref() == Some(aki.as_slice()))
            .ok_or_else(|| AcmeError::not_found("certificate"))?;
        let now = self.clock.now();
        if cert.status == CertStatus::Revoked {
            return Ok(Window { start: now - Duration::days(2), end: now - Duration::days(1) });
        }
        let life = cert.not_after - cert.not_before;
        Ok(Window { start: cert.not_before + life * 2 / 3, end: cert.not_before + life * 5 / 6 })
    }
}
