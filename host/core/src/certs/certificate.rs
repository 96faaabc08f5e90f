//! Certificates: key types, subject alternative names, lifecycle states, RFC 5280 revocation
//! reasons, and the stored certificate record.

use crate::ErrorCode;
use crate::audit::AuditAction;
use std::fmt;

use time::OffsetDateTime;
use uuid::Uuid;

use crate::error::{CoreError, Result};

/// A key type Sigil issues for or signs with.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize, utoipa::ToSchema,
)]
pub enum KeyType {
    /// ECDSA on P-256.
    #[serde(rename = "p256")]
    P256,
    /// ECDSA on P-384.
    #[serde(rename = "p384")]
    P384,
    /// RSA, 2048 bits.
    #[serde(rename = "rsa-2048")]
    Rsa2048,
    /// RSA, 3072 bits.
    #[serde(rename = "rsa-3072")]
    Rsa3072,
    /// RSA, 4096 bits.
    #[serde(rename = "rsa-4096")]
    Rsa4096,
}

impl KeyType {
    /// Every key type.
    pub const ALL: [KeyType; 5] =
        [Self::P256, Self::P384, Self::Rsa2048, Self::Rsa3072, Self::Rsa4096];

    /// Stable name (`p256`, `rsa-2048`, …).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::P256 => "p256",
            Self::P384 => "p384",
            Self::Rsa2048 => "rsa-2048",
            Self::Rsa3072 => "rsa-3072",
            Self::Rsa4096 => "rsa-4096",
        }
    }

    /// Parses a stable name.
    pub fn parse(s: &str) -> Result<Self> {
        Self::ALL.into_iter().find(|k| k.as_str() == s).ok_or_else(|| {
            CoreError::invalid(
                ErrorCode::InvalidKeyType,
                format!(
                    "key type must be one of p256, p384, rsa-2048, rsa-3072, rsa-4096; got `{s}`"
                ),
            )
        })
    }

    /// The RSA modulus size, for RSA keys.
    pub fn rsa_bits(self) -> Option<u32> {
        match self {
            Self::Rsa2048 => Some(2048),
            Self::Rsa3072 => Some(3072),
            Self::Rsa4096 => Some(4096),
            _ => None,
        }
    }
}

impl fmt::Display for KeyType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The public key found in a request: its type, or a description of an unsupported one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RequestKey {
    /// A supported key.
    Known(KeyType),
    /// RSA with a modulus size we do not issue for.
    Rsa(u32),
    /// Anything else (description).
    Other(String),
}

impl fmt::Display for RequestKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Known(k) => write!(f, "{k}"),
            Self::Rsa(bits) => write!(f, "rsa-{bits}"),
            Self::Other(d) => f.write_str(d),
        }
    }
}

/// A subject alternative name.
#[derive(
    Debug, Clone, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize, utoipa::ToSchema,
)]
#[serde(tag = "type", content = "value", rename_all = "lowercase")]
pub enum San {
    /// DNS name.
    Dns(String),
    /// IP address (text form).
    Ip(String),
    /// E-mail address.
    Email(String),
    /// URI.
    Uri(String),
}

impl San {
    /// `dns`, `ip`, `email` or `uri`.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Dns(_) => "dns",
            Self::Ip(_) => "ip",
            Self::Email(_) => "email",
            Self::Uri(_) => "uri",
        }
    }

    /// The value.
    pub fn value(&self) -> &str {
        match self {
            Self::Dns(v) | Self::Ip(v) | Self::Email(v) | Self::Uri(v) => v,
        }
    }

    /// `kind:value`, the stored and searchable form.
    pub fn tagged(&self) -> String {
        format!("{}:{}", self.kind(), self.value())
    }

    /// Parses the `kind:value` form.
    pub fn parse_tagged(s: &str) -> Option<Self> {
        let (k, v) = s.split_once(':')?;
        let v = v.to_owned();
        Some(match k {
            "dns" => Self::Dns(v),
            "ip" => Self::Ip(v),
            "email" => Self::Email(v),
            "uri" => Self::Uri(v),
            _ => return None,
        })
    }
}

/// One attribute of a distinguished name, in order.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize, utoipa::ToSchema)]
pub struct NameAttribute {
    /// Short name (`CN`, `O`, `OU`, `C`, `ST`, `L`, `emailAddress`, …) or dotted OID.
    pub attribute: String,
    /// Value.
    pub value: String,
}

/// A parsed, signature-checked certification request.
#[derive(Debug, Clone)]
pub struct ParsedCsr {
    /// The request, DER.
    pub der: Vec<u8>,
    /// Subject attributes in order.
    pub subject: Vec<NameAttribute>,
    /// Requested SANs.
    pub sans: Vec<San>,
    /// SubjectPublicKeyInfo, DER.
    pub spki_der: Vec<u8>,
    /// The key.
    pub key: RequestKey,
}

impl ParsedCsr {
    /// The first CN, if any.
    pub fn common_name(&self) -> Option<&str> {
        self.subject.iter().find(|a| a.attribute == "CN").map(|a| a.value.as_str())
    }
}

/// Lifecycle state of a certificate.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize, utoipa::ToSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum CertStatus {
    /// Valid.
    Active,
    /// On hold (certificateHold): reported as revoked until reactivated.
    Suspended,
    /// Revoked (final).
    Revoked,
    /// Past its notAfter.
    Expired,
}

impl CertStatus {
    /// Stable name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Active => "active",
            Self::Suspended => "suspended",
            Self::Revoked => "revoked",
            Self::Expired => "expired",
        }
    }

    /// Parses a stable name.
    pub fn parse(s: &str) -> Result<Self> {
        match s {
            "active" => Ok(Self::Active),
            "suspended" => Ok(Self::Suspended),
            "revoked" => Ok(Self::Revoked),
            "expired" => Ok(Self::Expired),
            _ => Err(CoreError::invalid(
                ErrorCode::InvalidFilter,
                format!("status must be active, suspended, revoked or expired; got `{s}`"),
            )),
        }
    }
}

/// RFC 5280 CRLReason, by its RFC name.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize, utoipa::ToSchema,
)]
#[serde(rename_all = "camelCase")]
pub enum RevocationReason {
    /// unspecified (0).
    Unspecified,
    /// keyCompromise (1).
    KeyCompromise,
    /// cACompromise (2).
    #[serde(rename = "cACompromise")]
    CaCompromise,
    /// affiliationChanged (3).
    AffiliationChanged,
    /// superseded (4).
    Superseded,
    /// cessationOfOperation (5).
    CessationOfOperation,
    /// certificateHold (6): used by suspension, not by revocation.
    CertificateHold,
    /// privilegeWithdrawn (9).
    PrivilegeWithdrawn,
    /// aACompromise (10).
    #[serde(rename = "aACompromise")]
    AaCompromise,
}

impl RevocationReason {
    /// The RFC name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Unspecified => "unspecified",
            Self::KeyCompromise => "keyCompromise",
            Self::CaCompromise => "cACompromise",
            Self::AffiliationChanged => "affiliationChanged",
            Self::Superseded => "superseded",
            Self::CessationOfOperation => "cessationOfOperation",
            Self::CertificateHold => "certificateHold",
            Self::PrivilegeWithdrawn => "privilegeWithdrawn",
            Self::AaCompromise => "aACompromise",
        }
    }

    /// The CRLReason code.
    pub fn code(self) -> u8 {
        match self {
            Self::Unspecified => 0,
            Self::KeyCompromise => 1,
            Self::CaCompromise => 2,
            Self::AffiliationChanged => 3,
            Self::Superseded => 4,
            Self::CessationOfOperation => 5,
            Self::CertificateHold => 6,
            Self::PrivilegeWithdrawn => 9,
            Self::AaCompromise => 10,
        }
    }

    /// Parses the RFC name.
    pub fn parse(s: &str) -> Result<Self> {
        [
            Self::Unspecified,
            Self::KeyCompromise,
            Self::CaCompromise,
            Self::AffiliationChanged,
            Self::Superseded,
            Self::CessationOfOperation,
            Self::CertificateHold,
            Self::PrivilegeWithdrawn,
            Self::AaCompromise,
        ]
        .into_iter()
        .find(|r| r.as_str() == s)
        .ok_or_else(|| {
            CoreError::invalid(ErrorCode::InvalidReason, format!("unknown revocation reason `{s}`"))
        })
    }
}

/// A certificate as stored.
#[derive(Debug, Clone, PartialEq)]
pub struct Certificate {
    /// Identifier (UUIDv7).
    pub id: Uuid,
    /// Serial number, lowercase hex without leading zeros.
    pub serial: String,
    /// CA back end that issued it.
    pub ca_id: String,
    /// Profile it was issued under.
    pub profile: String,
    /// Stored lifecycle state (expiry is derived, see [`Certificate::status_at`]).
    pub status: CertStatus,
    /// Subject DN as text (RFC 4514 order as issued).
    pub subject: String,
    /// SANs.
    pub sans: Vec<San>,
    /// Key type.
    pub key_type: KeyType,
    /// notBefore.
    pub not_before: OffsetDateTime,
    /// notAfter.
    pub not_after: OffsetDateTime,
    /// The certificate, DER.
    pub der: Vec<u8>,
    /// Hex SHA-256 of the DER.
    pub sha256: String,
    /// When it was issued.
    pub issued_at: OffsetDateTime,
    /// Who requested it (audit actor id).
    pub issued_by: String,
    /// Revocation time (also the hold time while suspended).
    pub revoked_at: Option<OffsetDateTime>,
    /// Revocation reason (certificateHold while suspended).
    pub revocation_reason: Option<RevocationReason>,
    /// Custom metadata (a JSON object).
    pub metadata: serde_json::Value,
    /// The certificate this one renewed.
    pub renewed_from: Option<Uuid>,
    /// Its renewal, once renewed (it is superseded).
    pub superseded_by: Option<Uuid>,
    /// When a superseded certificate is revoked (reason superseded): its renewal time plus the
    /// profile's `supersede_grace_days`.
    pub superseded_until: Option<OffsetDateTime>,
    /// The registration office it belongs to (its holder's), when it has one; operators with a
    /// restricted scope see only certificates of their offices.
    pub office_id: Option<Uuid>,
    /// Last change.
    pub updated_at: OffsetDateTime,
}

impl Certificate {
    /// The state at `now`: an active or suspended certificate past notAfter is expired.
    pub fn status_at(&self, now: OffsetDateTime) -> CertStatus {
        match self.status {
            CertStatus::Active | CertStatus::Suspended if self.not_after <= now => {
                CertStatus::Expired
            }
            s => s,
        }
    }

    /// Refuses a renewal at `now` unless the certificate may be renewed: not revoked or on
    /// hold, and within the renewal window, which opens `window_days` before expiry and closes
    /// as long after it (a certificate long expired is a new enrolment).
    pub fn check_renewable(&self, now: OffsetDateTime, window_days: u32) -> Result<()> {
        self.check_not_held(now)?;
        let window = time::Duration::days(i64::from(window_days));
        if now < self.not_after - window {
            return Err(CoreError::conflict(
                ErrorCode::OutsideRenewalWindow,
                format!("renewal opens {window_days} days before expiry"),
            ));
        }
        if now > self.not_after + window {
            return Err(CoreError::conflict(
                ErrorCode::OutsideRenewalWindow,
                format!("renewal closed {window_days} days after expiry; enrol anew"),
            ));
        }
        Ok(())
    }
}

impl Certificate {
    /// Refuses (409 `invalid_transition`) a revoked or held certificate: what renewal refuses
    /// whatever the profile says.
    pub fn check_not_held(&self, now: OffsetDateTime) -> Result<()> {
        let why = match self.status_at(now) {
            CertStatus::Revoked => "a revoked certificate cannot be renewed",
            CertStatus::Suspended => "a suspended certificate cannot be renewed",
            _ => return Ok(()),
        };
        Err(CoreError::conflict(ErrorCode::InvalidTransition, why))
    }
}

/// Whether a renewal's request keeps the identity of the certificate it renews: the same
/// subject attributes in the same order, and the same names in any order. A renewal changes
/// the key, never the identity; anything else is a new enrolment, with its approvals.
pub fn same_identity(old: (&[NameAttribute], &[San]), new: (&[NameAttribute], &[San])) -> bool {
    let key = |a: &NameAttribute| (a.attribute.clone(), a.value.clone());
    let subject = old.0.iter().map(key).eq(new.0.iter().map(key));
    let names = new.1.len() == old.1.len()
        && new.1.iter().all(|n| old.1.contains(n))
        && old.1.iter().all(|n| new.1.contains(n));
    subject && names
}

/// A state change of a certificate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CertChange {
    /// Put on hold.
    Suspend,
    /// Release a hold.
    Reactivate,
    /// Revoke for good.
    Revoke(RevocationReason),
}

impl CertChange {
    /// Whether this change does anything to `c` at `now`: a hold takes only an active
    /// certificate, a release only a held one, a revocation any not yet revoked.
    pub fn applies_to(self, c: &Certificate, now: OffsetDateTime) -> bool {
        match self {
            Self::Suspend => c.status_at(now) == CertStatus::Active,
            Self::Reactivate => c.status_at(now) == CertStatus::Suspended,
            Self::Revoke(_) => c.status != CertStatus::Revoked,
        }
    }

    pub(crate) fn action(self) -> AuditAction {
        match self {
            Self::Suspend => AuditAction::CertificateSuspend,
            Self::Reactivate => AuditAction::CertificateReactivate,
            Self::Revoke(_) => AuditAction::CertificateRevoke,
        }
    }

    pub(crate) fn event(self) -> crate::events::EventKind {
        use crate::events::EventKind;
        match self {
            Self::Suspend => EventKind::CertificateSuspended,
            Self::Reactivate => EventKind::CertificateReactivated,
            Self::Revoke(_) => EventKind::CertificateRevoked,
        }
    }

    /// Changes `c`; false when it is already in the target state (a retry).
    pub(crate) fn apply(self, c: &mut Certificate, now: OffsetDateTime) -> Result<bool> {
        match self {
            Self::Suspend => match c.status_at(now) {
                CertStatus::Suspended => Ok(false),
                CertStatus::Active => {
                    c.status = CertStatus::Suspended;
                    c.revoked_at = Some(now);
                    c.revocation_reason = Some(RevocationReason::CertificateHold);
                    Ok(true)
                }
                s => Err(CoreError::conflict(
                    ErrorCode::InvalidTransition,
                    format!("a {} certificate cannot be suspended", s.as_str()),
                )),
            },
            Self::Reactivate => match c.status_at(now) {
                CertStatus::Active => Ok(false),
                CertStatus::Suspended => {
                    c.status = CertStatus::Active;
                    c.revoked_at = None;
                    c.revocation_reason = None;
                    Ok(true)
                }
                s => Err(CoreError::conflict(
                    ErrorCode::InvalidTransition,
                    format!("a {} certificate cannot be reactivated", s.as_str()),
                )),
            },
            Self::Revoke(reason) => match c.status {
                CertStatus::Revoked => Ok(false),
                _ => {
                    c.status = CertStatus::Revoked;
                    c.revoked_at = Some(now);
                    c.revocation_reason = Some(reason);
                    Ok(true)
                }
            },
        }
    }
}

/// Sort order of certificate lists.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum CertSort {
    /// Issue time, oldest first (the default).
    #[default]
    IssuedAsc,
    /// Issue time, newest first.
    IssuedDesc,
    /// Expiry, soonest first.
    ExpiresAsc,
    /// Expiry, latest first.
    ExpiresDesc,
}

/// Filters for listing certificates. Times are microseconds since the epoch.
#[derive(Debug, Clone, Default)]
pub struct CertFilter {
    /// Stored status (`expired` is computed from `now_us`).
    pub status: Option<CertStatus>,
    /// Profile name.
    pub profile: Option<String>,
    /// CA back end id.
    pub ca_id: Option<String>,
    /// Subject or SAN contains this (case-insensitive).
    pub text: Option<String>,
    /// Serial (hex, exact).
    pub serial: Option<String>,
    /// Issued at or after.
    pub issued_from_us: Option<i64>,
    /// Issued before.
    pub issued_until_us: Option<i64>,
    /// notAfter at or after.
    pub expires_from_us: Option<i64>,
    /// notAfter before.
    pub expires_until_us: Option<i64>,
    /// Metadata `owner` field equals this.
    pub owner: Option<String>,
    /// Superseded by a renewal (true) or not (false).
    pub superseded: Option<bool>,
    /// Of this office.
    pub office_id: Option<Uuid>,
    /// Only certificates of these offices (a restricted caller's scope).
    pub scope: Option<Vec<Uuid>>,
    /// Evaluation time for the `expired` status.
    pub now_us: i64,
    /// Sort order.
    pub sort: CertSort,
}

/// The cursor of a certificate in a list sorted by `sort`: the sort key and the id.
pub fn cert_cursor(c: &Certificate, sort: CertSort) -> String {
    let key = match sort {
        CertSort::IssuedAsc | CertSort::IssuedDesc => crate::audit::unix_micros(c.issued_at),
        CertSort::ExpiresAsc | CertSort::ExpiresDesc => crate::audit::unix_micros(c.not_after),
    };
    format!("{key}_{}", c.id)
}

/// Splits a certificate cursor.
pub fn parse_cert_cursor(s: &str) -> Option<(i64, Uuid)> {
    let (k, id) = s.split_once('_')?;
    Some((k.parse().ok()?, Uuid::parse_str(id).ok()?))
}

#[cfg(test)]
mod renewal_tests {
    use super::*;

    fn cert(status: CertStatus, expires_in_days: i64, now: OffsetDateTime) -> Certificate {
        Certificate {
            id: Uuid::now_v7(),
            serial: "01".into(),
            ca_id: "builtin".into(),
            profile: "p".into(),
            status,
            subject: "CN=x".into(),
            sans: vec![San::Dns("a.example".into()), San::Email("a@example.org".into())],
            key_type: KeyType::P256,
            not_before: now - time::Duration::days(300),
            not_after: now + time::Duration::days(expires_in_days),
            der: vec![],
            sha256: String::new(),
            issued_at: now,
            issued_by: "test".into(),
            revoked_at: None,
            revocation_reason: None,
            metadata: serde_json::json!({}),
            renewed_from: None,
            superseded_by: None,
            superseded_until: None,
            office_id: None,
            updated_at: now,
        }
    }

    fn code(r: Result<()>) -> &'static str {
        match r {
            Err(CoreError::Conflict { code, .. }) => code.as_str(),
            other => panic!("expected a conflict, got {other:?}"),
        }
    }

    #[test]
    fn the_certificate_state_machine_holds_releases_and_revokes_once() {
        let now = OffsetDateTime::now_utc();
        let mut c = cert(CertStatus::Active, 100, now);
        // A release of an active certificate is a retry: nothing changes.
        assert!(!CertChange::Reactivate.apply(&mut c, now).unwrap());
        assert!(CertChange::Suspend.apply(&mut c, now).unwrap());
        assert_eq!(c.status, CertStatus::Suspended);
        assert_eq!(c.revocation_reason, Some(RevocationReason::CertificateHold));
        assert!(!CertChange::Suspend.apply(&mut c, now).unwrap(), "holding twice changes nothing");
        assert!(CertChange::Reactivate.apply(&mut c, now).unwrap());
        assert_eq!((c.status, c.revoked_at, c.revocation_reason), (CertStatus::Active, None, None));
        // A held certificate may be revoked for good; the reason replaces the hold.
        CertChange::Suspend.apply(&mut c, now).unwrap();
        assert!(CertChange::Revoke(RevocationReason::KeyCompromise).apply(&mut c, now).unwrap());
        assert_eq!(c.status, CertStatus::Revoked);
        assert_eq!(c.revocation_reason, Some(RevocationReason::KeyCompromise));
        let revoked = c.clone();
        assert!(!CertChange::Revoke(RevocationReason::Superseded).apply(&mut c, now).unwrap());
        assert_eq!(
            c.revocation_reason, revoked.revocation_reason,
            "a second revocation keeps the first reason"
        );
        // Nothing brings a revoked certificate back or puts it on hold.
        for change in [CertChange::Suspend, CertChange::Reactivate] {
            assert!(matches!(
                change.apply(&mut c, now),
                Err(CoreError::Conflict { code: ErrorCode::InvalidTransition, .. })
            ));
        }
        // An expired certificate is neither held nor released, but can still be revoked.
        let mut old = cert(CertStatus::Active, -1, now);
        assert!(CertChange::Suspend.apply(&mut old, now).is_err());
        assert!(
            CertChange::Revoke(RevocationReason::CessationOfOperation)
                .apply(&mut old, now)
                .unwrap()
        );
    }

    #[test]
    fn renewal_opens_and_closes_around_expiry_by_the_profiles_window() {
        let now = OffsetDateTime::now_utc();
        let active = |days| cert(CertStatus::Active, days, now);
        assert_eq!(code(active(31).check_renewable(now, 30)), "outside_renewal_window");
        active(30).check_renewable(now, 30).unwrap();
        active(1).check_renewable(now, 30).unwrap();
        // Expired, but within the window after expiry: still a renewal.
        active(-30).check_renewable(now, 30).unwrap();
        assert_eq!(code(active(-31).check_renewable(now, 30)), "outside_renewal_window");
        assert_eq!(code(active(10).check_renewable(now, 0)), "outside_renewal_window");
    }

    #[test]
    fn a_revoked_or_held_certificate_is_not_renewed() {
        let now = OffsetDateTime::now_utc();
        for s in [CertStatus::Revoked, CertStatus::Suspended] {
            assert_eq!(code(cert(s, 5, now).check_renewable(now, 30)), "invalid_transition");
        }
        // A hold past expiry is an expired certificate, renewable within the window.
        cert(CertStatus::Suspended, -1, now).check_renewable(now, 30).unwrap();
    }

    #[test]
    fn a_change_touches_only_the_certificates_it_applies_to() {
        let now = OffsetDateTime::now_utc();
        let revoke = CertChange::Revoke(RevocationReason::KeyCompromise);
        let cases = [
            // (status, days to expiry, suspend, reactivate, revoke)
            (CertStatus::Active, 5, true, false, true),
            (CertStatus::Suspended, 5, false, true, true),
            (CertStatus::Revoked, 5, false, false, false),
            // Expired: nothing to hold or release, but still revocable (CRLs may list it).
            (CertStatus::Active, -1, false, false, true),
            (CertStatus::Suspended, -1, false, false, true),
        ];
        for (status, days, s, r, v) in cases {
            let c = cert(status, days, now);
            let got = (
                CertChange::Suspend.applies_to(&c, now),
                CertChange::Reactivate.applies_to(&c, now),
                revoke.applies_to(&c, now),
            );
            assert_eq!(got, (s, r, v), "{status:?} expiring in {days} days");
        }
    }

    #[test]
    fn a_renewal_keeps_the_subject_in_order_and_the_names_in_any_order() {
        let attr = |a: &str, v: &str| NameAttribute { attribute: a.into(), value: v.into() };
        let subject = [attr("CN", "Ana"), attr("O", "Acme")];
        let names = [San::Dns("a.example".into()), San::Email("a@example.org".into())];
        let swapped = [names[1].clone(), names[0].clone()];
        assert!(same_identity((&subject, &names), (&subject, &swapped)));
        let reordered = [attr("O", "Acme"), attr("CN", "Ana")];
        assert!(!same_identity((&subject, &names), (&reordered, &names)));
        let other = [attr("CN", "Eve"), attr("O", "Acme")];
        assert!(!same_identity((&subject, &names), (&other, &names)));
        assert!(!same_identity((&subject, &names), (&subject, &names[..1])));
        let doubled = [names[0].clone(), names[0].clone()];
        assert!(!same_identity((&subject, &names), (&subject, &doubled)));
    }
}
