//! The objects of RFC 8555 as Sigil keeps them: accounts, orders, authorizations with their
//! challenges, and external account binding keys; their states and the transitions the
//! protocol allows.

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use uuid::Uuid;

/// How long a new order and its authorizations stay open.
pub const ORDER_LIFETIME: time::Duration = time::Duration::days(7);

/// Most identifiers in one order.
pub const MAX_IDENTIFIERS: usize = 100;

/// Most contacts on an account.
pub const MAX_CONTACTS: usize = 10;

/// An account's state (RFC 8555 §7.1.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AccountStatus {
    /// In use.
    Valid,
    /// Ended by its holder or an administrator; final.
    Deactivated,
    /// Ended by the server; final.
    Revoked,
}

impl AccountStatus {
    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Valid => "valid",
            Self::Deactivated => "deactivated",
            Self::Revoked => "revoked",
        }
    }
}

/// An ACME account: a public key (JWK) registered with one ACME-enabled profile.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AcmeAccount {
    /// Id (the last segment of the account URL).
    pub id: Uuid,
    /// The profile whose directory it was created under.
    pub profile: String,
    /// RFC 7638 thumbprint of the key (base64url SHA-256): unique per profile.
    pub thumbprint: String,
    /// The public key, as the client sent it (JWK).
    pub jwk: serde_json::Value,
    /// State.
    pub status: AccountStatus,
    /// `mailto:` contacts.
    #[serde(default)]
    pub contact: Vec<String>,
    /// Whether the client agreed to the terms of service.
    #[serde(default)]
    pub terms_agreed: bool,
    /// The external account binding key it was bound with.
    #[serde(default)]
    pub eab_key_id: Option<String>,
    /// Created.
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    /// Last change.
    #[serde(with = "time::serde::rfc3339")]
    pub updated_at: OffsetDateTime,
}

/// The kind of an identifier.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum IdentifierType {
    /// A DNS name (RFC 8555).
    Dns,
    /// An IP address (RFC 8738).
    Ip,
}

/// An identifier of an order or authorization.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Identifier {
    /// `dns` or `ip`.
    #[serde(rename = "type")]
    pub kind: IdentifierType,
    /// The name (lowercase; `*.` for a wildcard) or the address (canonical text form).
    pub value: String,
}

/// An order's state (RFC 8555 §7.1.6).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OrderStatus {
    /// Some authorization is not valid yet.
    Pending,
    /// Every authorization is valid: the client may finalize.
    Ready,
    /// The certificate is being issued.
    Processing,
    /// Issued.
    Valid,
    /// An authorization failed, the order expired, or issuance was refused.
    Invalid,
}

impl OrderStatus {
    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Ready => "ready",
            Self::Processing => "processing",
            Self::Valid => "valid",
            Self::Invalid => "invalid",
        }
    }
}

/// A problem document (RFC 7807) as ACME uses it: `type` is `urn:ietf:params:acme:error:…`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AcmeProblem {
    /// The ACME error type, without the `urn:ietf:params:acme:error:` prefix.
    #[serde(rename = "type")]
    pub kind: String,
    /// What went wrong.
    pub detail: String,
    /// The identifier concerned, when one is.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub identifier: Option<Identifier>,
    /// One problem per identifier, for errors about several.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub subproblems: Vec<AcmeProblem>,
}

impl AcmeProblem {
    /// A problem of ACME error type `kind` (for example `rejectedIdentifier`).
    pub fn new(kind: &str, detail: impl Into<String>) -> Self {
        Self { kind: kind.to_owned(), detail: detail.into(), identifier: None, subproblems: vec![] }
    }

    /// The same, about `id`.
    pub fn about(mut self, id: &Identifier) -> Self {
        self.identifier = Some(id.clone());
        self
    }
}

/// An order for a certificate.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AcmeOrder {
    /// Id.
    pub id: Uuid,
    /// The account that placed it.
    pub account_id: Uuid,
    /// The profile it is issued under.
    pub profile: String,
    /// State.
    pub status: OrderStatus,
    /// What the certificate will name.
    pub identifiers: Vec<Identifier>,
    /// Its authorizations, one per identifier, in the same order.
    pub authorizations: Vec<Uuid>,
    /// When it expires unless finalized.
    #[serde(with = "time::serde::rfc3339")]
    pub expires: OffsetDateTime,
    /// Requested notBefore.
    #[serde(default, with = "time::serde::rfc3339::option")]
    pub not_before: Option<OffsetDateTime>,
    /// Requested notAfter.
    #[serde(default, with = "time::serde::rfc3339::option")]
    pub not_after: Option<OffsetDateTime>,
    /// Why it became invalid.
    #[serde(default)]
    pub error: Option<AcmeProblem>,
    /// The certificate issued for it.
    #[serde(default)]
    pub certificate_id: Option<Uuid>,
    /// The ARI certificate id of the certificate it replaces (RFC 9773).
    #[serde(default)]
    pub replaces: Option<String>,
    /// Created.
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    /// Last change.
    #[serde(with = "time::serde::rfc3339")]
    pub updated_at: OffsetDateTime,
}

/// An authorization's state (RFC 8555 §7.1.6).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AuthzStatus {
    /// No challenge has succeeded yet.
    Pending,
    /// A challenge succeeded.
    Valid,
    /// A challenge failed.
    Invalid,
    /// Given up by the client.
    Deactivated,
    /// Past its expiry.
    Expired,
    /// Withdrawn by the server.
    Revoked,
}

impl AuthzStatus {
    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Valid => "valid",
            Self::Invalid => "invalid",
            Self::Deactivated => "deactivated",
            Self::Expired => "expired",
            Self::Revoked => "revoked",
        }
    }
}

/// A challenge's kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum ChallengeType {
    /// A file over HTTP on port 80 (RFC 8555 §8.3).
    #[serde(rename = "http-01")]
    Http01,
    /// A TXT record (RFC 8555 §8.4).
    #[serde(rename = "dns-01")]
    Dns01,
    /// A certificate over TLS with ALPN `acme-tls/1` (RFC 8737).
    #[serde(rename = "tls-alpn-01")]
    TlsAlpn01,
}

impl ChallengeType {
    /// The wire name (and the last segment of the challenge URL).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Http01 => "http-01",
            Self::Dns01 => "dns-01",
            Self::TlsAlpn01 => "tls-alpn-01",
        }
    }

    /// From the wire name.
    pub fn parse(s: &str) -> Option<Self> {
        [Self::Http01, Self::Dns01, Self::TlsAlpn01].into_iter().find(|c| c.as_str() == s)
    }
}

/// A challenge's state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ChallengeStatus {
    /// Not asked for yet.
    Pending,
    /// Being validated.
    Processing,
    /// Validated.
    Valid,
    /// Failed.
    Invalid,
}

/// One way to prove control of an authorization's identifier.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Challenge {
    /// Kind.
    #[serde(rename = "type")]
    pub kind: ChallengeType,
    /// The random token (base64url, 32 bytes).
    pub token: String,
    /// State.
    pub status: ChallengeStatus,
    /// When it was validated.
    #[serde(default, with = "time::serde::rfc3339::option")]
    pub validated: Option<OffsetDateTime>,
    /// Why it failed.
    #[serde(default)]
    pub error: Option<AcmeProblem>,
}

/// An authorization: the account's proof of control over one identifier.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AcmeAuthz {
    /// Id.
    pub id: Uuid,
    /// The account it belongs to.
    pub account_id: Uuid,
    /// The order it was made for.
    pub order_id: Uuid,
    /// The identifier (without `*.` for a wildcard).
    pub identifier: Identifier,
    /// Whether the order asked for a wildcard of the identifier.
    #[serde(default)]
    pub wildcard: bool,
    /// State.
    pub status: AuthzStatus,
    /// Expiry.
    #[serde(with = "time::serde::rfc3339")]
    pub expires: OffsetDateTime,
    /// Its challenges (one of each offered kind).
    pub challenges: Vec<Challenge>,
    /// Last change.
    #[serde(with = "time::serde::rfc3339")]
    pub updated_at: OffsetDateTime,
}

impl AcmeAuthz {
    /// The status the client sees at `now`: a pending or valid authorization past its expiry
    /// is `expired`.
    pub fn status_at(&self, now: OffsetDateTime) -> AuthzStatus {
        match self.status {
            AuthzStatus::Pending | AuthzStatus::Valid if now >= self.expires => {
                AuthzStatus::Expired
            }
            s => s,
        }
    }
}

impl AcmeOrder {
    /// The status the client sees at `now`: a pending or ready order past its expiry is
    /// `invalid`.
    pub fn status_at(&self, now: OffsetDateTime) -> OrderStatus {
        match self.status {
            OrderStatus::Pending | OrderStatus::Ready if now >= self.expires => {
                OrderStatus::Invalid
            }
            s => s,
        }
    }
}

/// An external account binding key (RFC 8555 §7.3.4): an HMAC key an administrator hands to
/// whoever may create an ACME account; used once.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EabKey {
    /// Id: the `kid` the client puts in the binding.
    pub id: Uuid,
    /// A name for people.
    pub name: String,
    /// Only for accounts of this profile (None: any ACME profile).
    #[serde(default)]
    pub profile: Option<String>,
    /// The HMAC key, sealed under the master key (bound to this row).
    pub sealed_key: String,
    /// Who created it (principal id).
    pub created_by: String,
    /// Created.
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    /// The account it bound, once used.
    #[serde(default)]
    pub account_id: Option<Uuid>,
    /// When it was revoked.
    #[serde(default, with = "time::serde::rfc3339::option")]
    pub revoked_at: Option<OffsetDateTime>,
}
