//! revokeCert (RFC 8555 §7.6): by the account that ordered the certificate, by an account that
//! holds valid authorizations for every name in it, or by whoever holds the certificate's key
//! (the request signed with it). Revocation goes through the ordinary certificate service, so
//! it is audited and shows in CRLs and OCSP like any other.

use std::sync::Arc;

use serde::Deserialize;

use super::jws::{Jws, b64, thumbprint};
use super::model::{AcmeAccount, AcmeAuthz, AuthzStatus, IdentifierType};
use super::{AcmeError, AcmeService, Urls, principal};
use crate::access::authz::{ActorKind, PermissionSet, Principal, RequestContext, perm};
use crate::certs::{CertStatus, Certificate, RevocationReason, San};
use crate::records::{Filter, select};

#[derive(Debug, Deserialize)]
struct Revoke {
    certificate: String,
    #[serde(default)]
    reason: Option<u8>,
}

/// The reasons ACME clients may give (RFC 8555 §7.6 refers to RFC 5280 §5.3.1; a hold is not
/// a revocation, and CA or AA compromise are not a subscriber's to declare).
fn reason(code: Option<u8>) -> Result<RevocationReason, AcmeError> {
    Ok(match code.unwrap_or(0) {
        0 => RevocationReason::Unspecified,
        1 => RevocationReason::KeyCompromise,
        3 => RevocationReason::AffiliationChanged,
        4 => RevocationReason::Superseded,
        5 => RevocationReason::CessationOfOperation,
        9 => RevocationReason::PrivilegeWithdrawn,
        other => {
            return Err(AcmeError::bad_revocation_reason(format!(
                "reason {other} is not one a subscriber may give (0, 1, 3, 4, 5 or 9)"
            )));
        }
    })
}

impl AcmeService {
    /// revokeCert under `profile`'s directory.
    pub async fn revoke(
        &self,
        profile: &str,
        urls: &Urls,
        url: &str,
        body: &[u8],
        context: RequestContext,
    ) -> Result<(), AcmeError> {
        let profile = self.profile(profile).await?;
        let jws = self.checked(url, body).await?;
        let req: Revoke = jws.json()?;
        let reason = reason(req.reason)?;
        let der = b64(&req.certificate, "certificate")?;
        let (serial, spki) = self
            .verifier
            .certificate_identity(&der)
            .ok_or_else(|| AcmeError::malformed("the certificate does not parse"))?;
        let cert = self.find(&profile.spec.ca, &serial, &der).await?;
        let actor = match (&jws.header.kid, &jws.header.jwk) {
            (Some(kid), None) => {
                self.revoking_account(&jws, urls, kid, &profile.name, &cert, context).await?
            }
            (None, Some(jwk)) => {
                jws.verify_with(self.verifier.as_ref(), jwk)?;
                if self.verifier.jwk_spki(jwk)? != spki {
                    return Err(AcmeError::unauthorized(
                        "the request is signed neither by an account nor by the certificate's key",
                    ));
                }
                key_holder(&thumbprint(jwk)?, context)
            }
            _ => {
                return Err(AcmeError::malformed(
                    "the protected header has exactly one of jwk and kid",
                ));
            }
        };
        if cert.status == CertStatus::Revoked {
            return Err(AcmeError::already_revoked("the certificate is revoked already"));
        }
        let cap =
            actor.acting_with(["certificate:revoke"])?.authorize::<perm::CertificateRevoke>()?;
        self.certificates.revoke(&cap, cert.id, reason).await.map_err(|e| match e {
            crate::CoreError::Conflict { detail, .. } => AcmeError::already_revoked(detail),
            other => AcmeError::Core(other),
        })?;
        Ok(())
    }

    /// The certificate of CA `ca` with `serial` whose DER is exactly `der`.
    async fn find(&self, ca: &str, serial: &str, der: &[u8]) -> Result<Certificate, AcmeError> {
        self.by_serial(ca, serial)
            .await?
            .filter(|c| c.der == der)
            .ok_or_else(|| AcmeError::not_found("certificate issued here"))
    }

    /// The certificate of CA `ca` with serial `serial_hex` (the DER content bytes in hex, which
    /// may carry a leading zero byte the stored serial does not).
    pub(super) async fn by_serial(
        &self,
        ca: &str,
        serial_hex: &str,
    ) -> Result<Option<Certificate>, AcmeError> {
        for s in [serial_hex, serial_hex.trim_start_matches("00")] {
            if let Some(c) = self.store.certificate_by_serial(ca, s).await? {
                return Ok(Some(c));
            }
        }
        Ok(None)
    }

    /// The account revoking by kid: it ordered the certificate, or holds valid authorizations
    /// for every name in it.
    async fn revoking_account(
        &self,
        jws: &Jws,
        urls: &Urls,
        kid: &str,
        profile: &str,
        cert: &Certificate,
        context: RequestContext,
    ) -> Result<Arc<Principal>, AcmeError> {
        let account = self.kid_account(jws, urls, kid, profile).await?;
        let ordered = cert.metadata.get("acme_account").and_then(|v| v.as_str())
            == Some(account.id.to_string().as_str());
        if !ordered && !self.holds_every_name(&account, cert).await? {
            return Err(AcmeError::unauthorized(
                "this account neither ordered the certificate nor holds authorizations for all \
                 its names",
            ));
        }
        Ok(principal(&account, context))
    }

    async fn holds_every_name(
        &self,
        account: &AcmeAccount,
        cert: &Certificate,
    ) -> Result<bool, AcmeError> {
        if cert.sans.is_empty() {
            return Ok(false);
        }
        let now = self.clock.now();
        let valid: Vec<AcmeAuthz> = select(
            self.store.as_ref(),
            Filter::AcmeAuthzs { order_id: None, account_id: Some(account.id) },
        )
        .await?
        .into_iter()
        .filter(|a: &AcmeAuthz| a.status_at(now) == AuthzStatus::Valid)
        .collect();
        Ok(cert.sans.iter().all(|san| {
            let (kind, value) = match san {
                San::Dns(d) => (IdentifierType::Dns, d.to_ascii_lowercase()),
                San::Ip(ip) => (IdentifierType::Ip, ip.clone()),
                _ => return false,
            };
            let (base, wildcard) = match value.strip_prefix("*.") {
                Some(b) => (b.to_owned(), true),
                None => (value, false),
            };
            valid.iter().any(|a| {
                a.identifier.kind == kind && a.identifier.value == base && a.wildcard == wildcard
            })
        }))
    }
}

/// Whoever signed with a certificate's key: a principal of no account, named by the key.
fn key_holder(thumbprint: &str, context: RequestContext) -> Arc<Principal> {
    Arc::new(Principal {
        kind: ActorKind::AcmeAccount,
        id: format!("certificate-key:{thumbprint}"),
        name: "holder of the certificate's key (ACME)".into(),
        api_key_id: None,
        operator_id: None,
        holder_id: None,
        permissions: PermissionSet::default(),
        scope: crate::access::scope::Scope::All,
        context,
    })
}

#[cfg(test)]
mod tests {
    use super::reason;

    #[test]
    fn subscribers_may_not_declare_a_hold_or_a_ca_compromise() {
        assert!(reason(None).is_ok());
        for ok in [0, 1, 3, 4, 5, 9] {
            assert!(reason(Some(ok)).is_ok(), "{ok}");
        }
        for bad in [2, 6, 7, 8, 10, 200] {
            assert_eq!(reason(Some(bad)).unwrap_err().kind(), "badRevocationReason", "{bad}");
        }
    }
}
