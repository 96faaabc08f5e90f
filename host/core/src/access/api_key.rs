//! API keys: the domain model, the rules for creating and changing them, and the secret format.
//!
//! A key's secret is `sgk_<prefix>_<secret>`: the 12-hex-digit prefix is public and indexed for
//! lookup, the secret part carries 256 random bits. Only the SHA-256 of the whole string is
//! stored; a high-entropy secret needs no slow hash, and the comparison is constant-time.

use crate::ErrorCode;
use std::fmt;
use std::net::IpAddr;

use ipnet::IpNet;
use sha2::{Digest, Sha256};
use time::{Duration, OffsetDateTime};
use uuid::Uuid;

use crate::access::authz::PermissionSet;
use crate::error::{CoreError, Result};

/// Longest accepted key name.
pub const MAX_NAME_LEN: usize = 100;
/// Longest accepted description.
pub const MAX_DESCRIPTION_LEN: usize = 1000;
/// Most entries in an IP whitelist.
pub const MAX_WHITELIST_LEN: usize = 256;

/// The unit of a rate-limit window.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize, utoipa::ToSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum RateUnit {
    /// 60 seconds.
    Minute,
    /// 3600 seconds.
    Hour,
    /// 86400 seconds.
    Day,
}

impl RateUnit {
    /// Window length in seconds.
    pub fn seconds(self) -> i64 {
        match self {
            Self::Minute => 60,
            Self::Hour => 3600,
            Self::Day => 86_400,
        }
    }

    /// Stable lowercase name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Minute => "minute",
            Self::Hour => "hour",
            Self::Day => "day",
        }
    }

    /// Parses the stored name.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "minute" => Some(Self::Minute),
            "hour" => Some(Self::Hour),
            "day" => Some(Self::Day),
            _ => None,
        }
    }
}

/// N requests per window. Windows are fixed and aligned to UTC multiples of their length.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize, utoipa::ToSchema,
)]
#[serde(deny_unknown_fields)]
pub struct RateLimit {
    /// Requests allowed per window (1 or more).
    pub requests: u32,
    /// Window unit.
    pub per: RateUnit,
}

impl RateLimit {
    /// Rejects a zero limit.
    pub fn validate(self) -> Result<Self> {
        if self.requests == 0 {
            return Err(CoreError::invalid(
                ErrorCode::InvalidRateLimit,
                "rate_limit.requests must be at least 1",
            ));
        }
        Ok(self)
    }
}

/// How long a new key lives.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Expiry {
    /// 30 days from creation.
    Days30,
    /// 60 days from creation.
    Days60,
    /// Does not expire.
    Never,
    /// A chosen instant, which must be in the future.
    At(OffsetDateTime),
}

impl Expiry {
    /// Parses `30d`, `60d`, `never` or an RFC 3339 instant.
    pub fn parse(s: &str) -> Result<Self> {
        match s.trim() {
            "30d" => Ok(Self::Days30),
            "60d" => Ok(Self::Days60),
            "never" => Ok(Self::Never),
            other => OffsetDateTime::parse(other, &time::format_description::well_known::Rfc3339)
                .map(Self::At)
                .map_err(|_| {
                    CoreError::invalid(
                        ErrorCode::InvalidExpiry,
                        format!(
                            "expires must be \"30d\", \"60d\", \"never\" or an RFC 3339 date-time, got `{other}`"
                        ),
                    )
                }),
        }
    }

    /// The instant the key expires, given the current time.
    pub fn resolve(self, now: OffsetDateTime) -> Result<Option<OffsetDateTime>> {
        match self {
            Self::Days30 => Ok(Some(now + Duration::days(30))),
            Self::Days60 => Ok(Some(now + Duration::days(60))),
            Self::Never => Ok(None),
            Self::At(t) if t <= now => {
                Err(CoreError::invalid(ErrorCode::InvalidExpiry, "expires must be in the future"))
            }
            Self::At(t) => Ok(Some(t)),
        }
    }
}

/// Parses an IP whitelist: single addresses (`10.1.2.3`, `::1`) and CIDRs (`10.0.0.0/8`).
pub fn parse_whitelist<S: AsRef<str>>(entries: &[S]) -> Result<Vec<IpNet>> {
    if entries.len() > MAX_WHITELIST_LEN {
        return Err(CoreError::invalid(
            ErrorCode::InvalidIpWhitelist,
            format!("ip_whitelist has more than {MAX_WHITELIST_LEN} entries"),
        ));
    }
    entries
        .iter()
        .map(|e| {
            let e = e.as_ref().trim();
            e.parse::<IpNet>()
                .or_else(|_| e.parse::<IpAddr>().map(IpNet::from))
                .map(|n| n.trunc())
                .map_err(|_| {
                    CoreError::invalid(
                        ErrorCode::InvalidIpWhitelist,
                        format!("`{e}` is not an IP address or CIDR range"),
                    )
                })
        })
        .collect()
}

/// Whether `ip` is allowed by `list` (an empty list allows every address).
pub fn whitelist_allows(list: &[IpNet], ip: IpAddr) -> bool {
    // An IPv4 client that reaches a dual-stack socket shows up as ::ffff:a.b.c.d.
    let ip = match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map(IpAddr::V4).unwrap_or(ip),
        v4 => v4,
    };
    list.is_empty() || list.iter().any(|n| n.contains(&ip))
}

/// Validates a key name: 1..=100 characters, no control characters.
pub fn validate_name(name: &str) -> Result<String> {
    let name = name.trim();
    if name.is_empty() || name.chars().count() > MAX_NAME_LEN || name.chars().any(char::is_control)
    {
        return Err(CoreError::invalid(
            ErrorCode::InvalidName,
            format!("name must be 1 to {MAX_NAME_LEN} printable characters"),
        ));
    }
    Ok(name.to_owned())
}

/// Validates a certificate fingerprint: 64 hex digits (colons allowed), returned lowercase.
pub fn parse_fingerprint(s: &str) -> Result<String> {
    let hex: String = s.chars().filter(|c| *c != ':').collect::<String>().to_ascii_lowercase();
    if hex.len() != 64 || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(CoreError::invalid(
            ErrorCode::InvalidFingerprint,
            "client_cert_sha256 must be the 64-hex-digit SHA-256 of the certificate",
        ));
    }
    Ok(hex)
}

/// Validates a description (may be empty).
pub fn validate_description(d: &str) -> Result<String> {
    if d.chars().count() > MAX_DESCRIPTION_LEN {
        return Err(CoreError::invalid(
            ErrorCode::InvalidDescription,
            format!("description is longer than {MAX_DESCRIPTION_LEN} characters"),
        ));
    }
    Ok(d.to_owned())
}

/// A stored API key. The secret itself is never part of it.
#[derive(Debug, Clone, PartialEq)]
pub struct ApiKey {
    /// Identifier (UUIDv7, so ids sort by creation time).
    pub id: Uuid,
    /// Unique name.
    pub name: String,
    /// Free text.
    pub description: String,
    /// Public lookup prefix of the current secret.
    pub prefix: String,
    /// Hex SHA-256 of the current secret.
    pub secret_hash: String,
    /// Granted permissions.
    pub permissions: PermissionSet,
    /// Expiry, if any.
    pub expires_at: Option<OffsetDateTime>,
    /// Rate limit, if any.
    pub rate_limit: Option<RateLimit>,
    /// Allowed client addresses; empty means any.
    pub ip_whitelist: Vec<IpNet>,
    /// Operator this key acts for, if bound.
    pub operator_id: Option<String>,
    /// Creation time.
    pub created_at: OffsetDateTime,
    /// Last change.
    pub updated_at: OffsetDateTime,
    /// Who created it (audit actor id).
    pub created_by: String,
    /// When it was revoked.
    pub revoked_at: Option<OffsetDateTime>,
    /// Why.
    pub revocation_reason: Option<String>,
    /// The previous secret's prefix, valid until `previous_expires_at` after a rotation with grace.
    pub previous_prefix: Option<String>,
    /// The previous secret's hash.
    pub previous_hash: Option<String>,
    /// End of the rotation grace period.
    pub previous_expires_at: Option<OffsetDateTime>,
    /// Last rotation time.
    pub rotated_at: Option<OffsetDateTime>,
    /// Hex SHA-256 of the client certificate (mTLS) that authenticates as this key.
    pub client_cert_sha256: Option<String>,
    /// The token holder (a person) the key acts for: it may use the self-service endpoints for
    /// that person's devices only.
    pub holder_id: Option<Uuid>,
    /// The key that minted this one (lineage; None when an operator's certificate, the command
    /// line or the server created it).
    pub parent_id: Option<Uuid>,
    /// Last accepted use (recorded at most once a minute per node, so it may lag by that much).
    pub last_used_at: Option<OffsetDateTime>,
}

/// Lifecycle state of a key, derived from its timestamps.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize, utoipa::ToSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum KeyStatus {
    /// Usable.
    Active,
    /// Past its expiry.
    Expired,
    /// Revoked (final).
    Revoked,
}

impl KeyStatus {
    /// Parses a status filter value.
    pub fn parse(s: &str) -> Result<Self> {
        match s {
            "active" => Ok(Self::Active),
            "expired" => Ok(Self::Expired),
            "revoked" => Ok(Self::Revoked),
            _ => Err(CoreError::invalid(
                ErrorCode::InvalidFilter,
                format!("status must be active, expired or revoked, got `{s}`"),
            )),
        }
    }
}

impl ApiKey {
    /// The key's state at `now`.
    pub fn status(&self, now: OffsetDateTime) -> KeyStatus {
        if self.revoked_at.is_some() {
            KeyStatus::Revoked
        } else if self.expires_at.is_some_and(|e| e <= now) {
            KeyStatus::Expired
        } else {
            KeyStatus::Active
        }
    }
}

/// A freshly generated secret. `Debug` never shows it.
pub struct KeySecret {
    /// The full `sgk_…` string, shown once to the caller.
    pub value: String,
    /// Its public prefix.
    pub prefix: String,
    /// Hex SHA-256 of `value`.
    pub hash: String,
}

impl fmt::Debug for KeySecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KeySecret").field("prefix", &self.prefix).finish_non_exhaustive()
    }
}

impl Drop for KeySecret {
    fn drop(&mut self) {
        zeroize::Zeroize::zeroize(&mut self.value);
    }
}

const KEY_TAG: &str = "sgk_";

impl KeySecret {
    /// Draws a new secret from the operating system's CSPRNG.
    pub fn generate() -> Result<Self> {
        let mut bytes = [0u8; 38];
        getrandom::fill(&mut bytes)
            .map_err(|e| CoreError::Internal(format!("random source failed: {e}")))?;
        let (p, s) = bytes.split_at(6);
        let prefix = hex::encode(p);
        let secret = base64::Engine::encode(&base64::engine::general_purpose::URL_SAFE_NO_PAD, s);
        zeroize::Zeroize::zeroize(&mut bytes);
        let value = format!("{KEY_TAG}{prefix}_{secret}");
        let hash = hash_secret(&value);
        Ok(Self { value, prefix, hash })
    }
}

/// Hex SHA-256 of a presented key.
pub fn hash_secret(presented: &str) -> String {
    hex::encode(Sha256::digest(presented.as_bytes()))
}

/// Splits a presented key into its prefix, or `None` if it is not shaped like one of ours.
pub fn presented_prefix(presented: &str) -> Option<&str> {
    let rest = presented.strip_prefix(KEY_TAG)?;
    let (prefix, secret) = rest.split_once('_')?;
    (prefix.len() == 12
        && prefix.bytes().all(|b| b.is_ascii_hexdigit())
        && (40..=64).contains(&secret.len()))
    .then_some(prefix)
}

/// Constant-time comparison of two hex hashes.
pub fn hashes_match(a: &str, b: &str) -> bool {
    let (a, b) = (a.as_bytes(), b.as_bytes());
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Filters for listing API keys.
#[derive(Debug, Clone, Default)]
pub struct ApiKeyFilter {
    /// Only keys in this state (evaluated at `now`).
    pub status: Option<KeyStatus>,
    /// Name contains this (case-insensitive).
    pub name_contains: Option<String>,
    /// Bound to this operator.
    pub operator_id: Option<String>,
    /// Minted by this key.
    pub parent_id: Option<Uuid>,
    /// The time at which `status` is evaluated.
    pub now: Option<OffsetDateTime>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_secrets_have_the_documented_shape_and_match_their_hash() {
        let s = KeySecret::generate().unwrap();
        assert_eq!(presented_prefix(&s.value), Some(s.prefix.as_str()));
        assert!(hashes_match(&hash_secret(&s.value), &s.hash));
        assert!(!format!("{s:?}").contains(&s.value));
        assert_ne!(KeySecret::generate().unwrap().value, s.value);
    }

    #[test]
    fn malformed_presented_keys_have_no_prefix() {
        for bad in
            ["", "sgk_", "sgk_zzzzzzzzzzzz_aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa", "Bearer x"]
        {
            assert_eq!(presented_prefix(bad), None, "{bad}");
        }
    }

    #[test]
    fn expiry_accepts_the_four_forms_and_rejects_the_past() {
        let now = OffsetDateTime::now_utc();
        assert_eq!(
            Expiry::parse("30d").unwrap().resolve(now).unwrap(),
            Some(now + Duration::days(30))
        );
        assert_eq!(Expiry::parse("never").unwrap().resolve(now).unwrap(), None);
        assert!(Expiry::parse("2001-01-01T00:00:00Z").unwrap().resolve(now).is_err());
        assert!(Expiry::parse("2999-01-01T00:00:00Z").unwrap().resolve(now).unwrap().is_some());
        assert_eq!(Expiry::parse("tomorrow").unwrap_err().code(), "invalid_expiry");
    }

    #[test]
    fn whitelist_takes_addresses_and_cidrs() {
        let l = parse_whitelist(&["127.0.0.1", "10.0.0.0/8", "::1"]).unwrap();
        assert!(whitelist_allows(&l, "10.9.8.7".parse().unwrap()));
        assert!(whitelist_allows(&l, "::ffff:127.0.0.1".parse().unwrap()));
        assert!(!whitelist_allows(&l, "192.168.1.1".parse().unwrap()));
        assert!(whitelist_allows(&[], "192.168.1.1".parse().unwrap()));
        assert!(parse_whitelist(&["10.0.0.0/33"]).is_err());
    }
}
