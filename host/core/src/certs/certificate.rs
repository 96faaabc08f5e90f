//! Certificates: key types, subject alternative names, lifecycle states, RFC 5280 revocation
//! reasons, and the stored certificate record.

use crate::ErrorCode;
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
    pub(crate) fn action(self) -> &'static str {
        match self {
            Self::Suspend => "certificate.suspend",
            Self::Reactivate => "certificate.reactivate",
            Self::Revoke(_) => "certificate.revoke",
        }
    }

    pub(crate) fn event(self) -> &'static str {
        match self {
            Self::Suspend => "certificate.suspended",
            Self::Reactivate => "certificate.reactivated",
            Self::Revoke(_) => "certificate.revoked",
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
