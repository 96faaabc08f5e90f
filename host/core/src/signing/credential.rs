//! Remote signing (Cloud Signature Consortium API): signers, their signing credentials, CSC
//! provider configurations, access tokens and signature activation data (SAD), and the
//! algorithm identifiers the API speaks.

use crate::sealing::{SealBinding, SealPurpose};
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use uuid::Uuid;

use crate::certs::KeyType;

/// A CSC user: logs in to the CSC API with HTTP Basic and owns signing credentials.
#[derive(Clone, PartialEq, Serialize, Deserialize)]
pub struct Signer {
    /// Id (UUIDv7).
    pub id: Uuid,
    /// Login name (unique, lowercase).
    pub username: String,
    /// The person in the registry this signer is.
    pub person_id: Option<Uuid>,
    /// Argon2id PHC string of the password.
    pub password_hash: String,
    /// A disabled signer cannot log in, and its tokens stop working.
    pub enabled: bool,
    /// Free-form description.
    pub description: String,
    /// Creation time.
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    /// Last change.
    #[serde(with = "time::serde::rfc3339")]
    pub updated_at: OffsetDateTime,
    /// Wrong passwords at `auth/login` since the last successful login or unlock.
    #[serde(default)]
    pub failed_logins: u32,
    /// Until when `auth/login` refuses this signer after too many wrong passwords.
    #[serde(default, with = "time::serde::rfc3339::option")]
    pub locked_until: Option<OffsetDateTime>,
}

impl Signer {
    /// Whether `auth/login` refuses this signer at `now` (too many wrong passwords).
    pub fn login_locked(&self, now: OffsetDateTime) -> bool {
        self.locked_until.is_some_and(|t| t > now)
    }
}

impl std::fmt::Debug for Signer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Signer")
            .field("id", &self.id)
            .field("username", &self.username)
            .field("enabled", &self.enabled)
            .finish_non_exhaustive()
    }
}

/// Whether a credential's key may be used.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum CredentialStatus {
    /// Usable.
    Enabled,
    /// Not usable (CSC `key.status` "disabled").
    Disabled,
}

impl CredentialStatus {
    /// Wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Enabled => "enabled",
            Self::Disabled => "disabled",
        }
    }
}

/// A key pair whose certificate Sigil issued, owned by a signer and protected by a PIN.
#[derive(Clone, PartialEq, Serialize, Deserialize)]
pub struct SigningCredential {
    /// Id (UUIDv7): the CSC `credentialID`.
    pub id: Uuid,
    /// Owner.
    pub signer_id: Uuid,
    /// The certificate (in the inventory).
    pub certificate_id: Uuid,
    /// Key algorithm.
    pub key_algorithm: KeyType,
    /// The PKCS#8 private key sealed under the master key, base64.
    pub sealed_key: String,
    /// Argon2id PHC string of the PIN.
    pub pin_hash: String,
    /// Wrong PINs left before the credential locks.
    pub pin_retries_left: u8,
    /// Whether the PIN is digits only (CSC PIN `format` `N`, else `A`).
    #[serde(default)]
    pub pin_numeric: bool,
    /// Sole control assurance level: 1, or 2 (each authorization bound to the exact hashes).
    pub scal: u8,
    /// Most signatures one authorization allows.
    pub multisign: u32,
    /// Enabled or disabled.
    pub status: CredentialStatus,
    /// Free-form description (CSC `description`).
    pub description: String,
    /// Creation time.
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    /// Last change.
    #[serde(with = "time::serde::rfc3339")]
    pub updated_at: OffsetDateTime,
}

impl std::fmt::Debug for SigningCredential {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SigningCredential")
            .field("id", &self.id)
            .field("signer_id", &self.signer_id)
            .field("key_algorithm", &self.key_algorithm)
            .field("status", &self.status)
            .finish_non_exhaustive()
    }
}

impl SigningCredential {
    /// Whether wrong PINs have locked it.
    pub fn locked(&self) -> bool {
        self.pin_retries_left == 0
    }
}

/// How CSC clients authenticate to a provider (CSC `authType`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub enum CscAuthType {
    /// HTTP Basic at `auth/login`.
    #[serde(rename = "basic")]
    Basic,
    /// TLS client certificates.
    #[serde(rename = "TLS")]
    Tls,
    /// An external party authenticates (e.g. a gateway).
    #[serde(rename = "external")]
    External,
}

/// A CSC provider configuration: what `info` says about the service.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CscProvider {
    /// Id (UUIDv7).
    pub id: Uuid,
    /// Name (unique; CSC `name`, at most 255 characters).
    pub name: String,
    /// ISO 3166-1 alpha-2 region (CSC `region`).
    pub region: String,
    /// Logo: an https URL, or an uploaded image as a `data:image/png|jpeg;base64,` URI.
    pub logo: String,
    /// RFC 5646 language (CSC `lang`).
    pub language: String,
    /// Authentication types (CSC `authType`).
    pub auth_types: Vec<CscAuthType>,
    /// Description (CSC `description`, at most 255 characters).
    pub description: String,
    /// The provider `info` answers from (exactly one is the default).
    pub default: bool,
    /// Creation time.
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    /// Last change.
    #[serde(with = "time::serde::rfc3339")]
    pub updated_at: OffsetDateTime,
}

/// Digest algorithms of signHash.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HashAlgo {
    /// SHA-256.
    Sha256,
    /// SHA-384.
    Sha384,
    /// SHA-512.
    Sha512,
}

impl HashAlgo {
    /// From its OID.
    pub fn from_oid(oid: &str) -> Option<Self> {
        match oid {
            "2.16.840.1.101.3.4.2.1" => Some(Self::Sha256),
            "2.16.840.1.101.3.4.2.2" => Some(Self::Sha384),
            "2.16.840.1.101.3.4.2.3" => Some(Self::Sha512),
            _ => None,
        }
    }

    /// Digest length, bytes.
    pub fn digest_len(self) -> usize {
        match self {
            Self::Sha256 => 32,
            Self::Sha384 => 48,
            Self::Sha512 => 64,
        }
    }
}

/// Signature schemes of signHash.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SignScheme {
    /// RSASSA-PKCS1-v1_5.
    RsaPkcs1,
    /// RSASSA-PSS with MGF1 over the same hash, and this salt length.
    RsaPss {
        /// Salt length, bytes.
        salt_len: usize,
    },
    /// ECDSA, DER-encoded signature.
    Ecdsa,
}

/// Key algorithm OIDs a credential of `k` advertises in `key.algo`: the combined signature
/// OIDs clients send as `signAlgo` (pyHanko checks its choice against this list).
pub fn key_algos(k: KeyType) -> &'static [&'static str] {
    match k {
        KeyType::P256 | KeyType::P384 => {
            &["1.2.840.10045.4.3.2", "1.2.840.10045.4.3.3", "1.2.840.10045.4.3.4"]
        }
        _ => &[
            "1.2.840.113549.1.1.11",
            "1.2.840.113549.1.1.12",
            "1.2.840.113549.1.1.13",
            "1.2.840.113549.1.1.10",
            "1.2.840.113549.1.1.1",
        ],
    }
}

/// The hash a combined `signAlgo` implies, and its scheme family (PSS parameters are read
/// separately).
pub fn sign_algo(oid: &str) -> Option<(Option<HashAlgo>, SignFamily)> {
    Some(match oid {
        "1.2.840.10045.4.3.2" => (Some(HashAlgo::Sha256), SignFamily::Ecdsa),
        "1.2.840.10045.4.3.3" => (Some(HashAlgo::Sha384), SignFamily::Ecdsa),
        "1.2.840.10045.4.3.4" => (Some(HashAlgo::Sha512), SignFamily::Ecdsa),
        "1.2.840.113549.1.1.11" => (Some(HashAlgo::Sha256), SignFamily::RsaPkcs1),
        "1.2.840.113549.1.1.12" => (Some(HashAlgo::Sha384), SignFamily::RsaPkcs1),
        "1.2.840.113549.1.1.13" => (Some(HashAlgo::Sha512), SignFamily::RsaPkcs1),
        "1.2.840.113549.1.1.1" => (None, SignFamily::RsaPkcs1),
        "1.2.840.113549.1.1.10" => (None, SignFamily::RsaPss),
        _ => return None,
    })
}

/// Family of a `signAlgo`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SignFamily {
    /// ECDSA.
    Ecdsa,
    /// RSA PKCS#1 v1.5.
    RsaPkcs1,
    /// RSA-PSS.
    RsaPss,
}

/// CSC access tokens and refresh tokens.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CscToken {
    /// Hex SHA-256 of the token.
    pub id: String,
    /// Whose.
    pub signer_id: Uuid,
    /// `access` or `refresh`.
    pub kind: String,
    /// For an access token made from a refresh token: that refresh token's id (revoking the
    /// refresh token revokes it too).
    pub parent: Option<String>,
    /// Expiry.
    #[serde(with = "time::serde::rfc3339")]
    pub expires_at: OffsetDateTime,
}

/// Signature activation data: what one `credentials/authorize` allows. Stored in its own table
/// (`csc_sads`) whose columns are the whole record, because signHash spends it with one
/// conditional update.
#[derive(Debug, Clone, PartialEq)]
pub struct Sad {
    /// Hex SHA-256 of the SAD (the SAD itself is never stored).
    pub id: String,
    /// The credential.
    pub credential_id: Uuid,
    /// The signer who authorized (only they may use it).
    pub signer_id: Uuid,
    /// Signatures left.
    pub remaining: u32,
    /// For SCAL 2: the digests still to be signed, hex (each consumed when signed).
    pub hashes: Option<Vec<String>>,
    /// Expiry.
    pub expires_at: OffsetDateTime,
    /// When it was handed out.
    pub created_at: OffsetDateTime,
}

/// One signHash's use of a SAD: spent atomically with the audit event of the signing.
#[derive(Debug, Clone, PartialEq)]
pub struct SadUse {
    /// Hex SHA-256 of the presented SAD.
    pub id: String,
    /// The credential signHash names.
    pub credential_id: Uuid,
    /// The signer whose bearer token made the call.
    pub signer_id: Uuid,
    /// The digests being signed, hex.
    pub hashes: Vec<String>,
    /// Now, unix microseconds.
    pub now_us: i64,
}

/// Joins hex digests for the `hashes` column.
pub fn join_hashes(h: &[String]) -> String {
    h.join(" ")
}

/// Takes `requested` out of the SCAL 2 allowance `allowed` (space-separated hex; each
/// authorized digest signs once). `None` when one of them is not (or no longer) authorized.
pub fn spend_hashes(allowed: &str, requested: &[String]) -> Option<String> {
    let mut left: Vec<&str> = allowed.split_whitespace().collect();
    for h in requested {
        let i = left.iter().position(|a| a.eq_ignore_ascii_case(h))?;
        left.swap_remove(i);
    }
    Some(left.join(" "))
}

/// Why a SAD cannot be spent (CSC `invalid_request`, worded by [`SadRefusal::description`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SadRefusal {
    /// Unknown, or made for another credential or signer.
    Invalid,
    /// Past its lifetime.
    Expired,
    /// Fewer signatures left than asked for.
    Exhausted,
    /// SCAL 2: a digest it was not made for, or one already signed.
    HashNotAuthorized,
}

impl SadRefusal {
    /// CSC's `error_description`.
    pub fn description(self) -> &'static str {
        match self {
            Self::Invalid => "Invalid SAD",
            Self::Expired => "SAD expired",
            Self::Exhausted => "The SAD does not authorize this many more signatures",
            Self::HashNotAuthorized => "Hash is not authorized by the SAD.",
        }
    }

    /// Why the SAD a store found (credential, signer, signatures left, expiry in unix µs) does
    /// not pay for `u`; None when it does, up to the SCAL 2 digests.
    fn check(found: (Uuid, Uuid, u32, i64), u: &SadUse) -> Option<Self> {
        let (credential, signer, remaining, expires_us) = found;
        if credential != u.credential_id || signer != u.signer_id {
            Some(Self::Invalid)
        } else if expires_us <= u.now_us {
            Some(Self::Expired)
        } else if (remaining as usize) < u.hashes.len() {
            Some(Self::Exhausted)
        } else {
            None
        }
    }

    /// Why a store refused to spend `u` on the SAD it found (`None`: no such SAD). What is left
    /// when the SAD itself pays is the SCAL 2 digest check.
    pub fn of(found: Option<(Uuid, Uuid, u32, i64)>, u: &SadUse) -> Self {
        match found {
            None => Self::Invalid,
            Some(f) => Self::check(f, u).unwrap_or(Self::HashNotAuthorized),
        }
    }
}

impl Sad {
    /// Spends `u`: one signature per digest, and under SCAL 2 each digest once and only one it
    /// was made for. A refusal leaves the SAD as it was. This is the rule the store applies
    /// with one conditional update (`sigil-store`'s `csc.rs`).
    pub fn spend(&mut self, u: &SadUse) -> Result<(), SadRefusal> {
        if u.id != self.id {
            return Err(SadRefusal::Invalid);
        }
        let found = (
            self.credential_id,
            self.signer_id,
            self.remaining,
            crate::audit::unix_micros(self.expires_at),
        );
        if let Some(r) = SadRefusal::check(found, u) {
            return Err(r);
        }
        if let Some(allowed) = &self.hashes {
            let left = spend_hashes(&join_hashes(allowed), &u.hashes)
                .ok_or(SadRefusal::HashNotAuthorized)?;
            self.hashes = Some(left.split_whitespace().map(str::to_owned).collect());
        }
        let n = u32::try_from(u.hashes.len()).unwrap_or(u32::MAX);
        self.remaining -= n;
        Ok(())
    }
}

/// Settings of the CSC API (`[csc]`).
#[derive(Debug, Clone, Copy)]
pub struct CscSettings {
    /// Access token lifetime, seconds.
    pub access_ttl_secs: i64,
    /// Refresh token (rememberMe) lifetime, seconds.
    pub refresh_ttl_secs: i64,
    /// SAD lifetime, seconds.
    pub sad_ttl_secs: i64,
    /// Wrong PINs before a credential locks.
    pub pin_retries: u8,
    /// Consecutive wrong passwords at `auth/login` before a signer is locked out (0: never).
    pub login_retries: u32,
    /// How long that lockout lasts, seconds.
    pub login_lock_secs: i64,
    /// How long a node caches a token or credential lookup; bounds how long another node may
    /// still honour a revoked token, a disabled signer or credential, or a revoked certificate.
    pub cache_ttl: std::time::Duration,
    /// Argon2id hashes and verifications that run at once (each takes about 19 MiB).
    pub argon2_concurrency: usize,
    /// How many more may wait for one; beyond that a request is shed with 503.
    pub argon2_queue: usize,
    /// `auth/login` attempts per client address per minute, across nodes (0: no limit).
    pub login_per_address_per_minute: u32,
    /// `auth/login` attempts per username per minute, across nodes (0: no limit).
    pub login_per_username_per_minute: u32,
}

impl Default for CscSettings {
    fn default() -> Self {
        Self {
            access_ttl_secs: 3600,
            refresh_ttl_secs: 30 * 24 * 3600,
            sad_ttl_secs: 300,
            pin_retries: 3,
            login_retries: 5,
            login_lock_secs: 900,
            cache_ttl: std::time::Duration::from_secs(2),
            argon2_concurrency: 2,
            argon2_queue: 8,
            login_per_address_per_minute: 60,
            login_per_username_per_minute: 20,
        }
    }
}

/// Where credential `id`'s key of type `k` is sealed.
pub fn credential_binding(id: Uuid, k: KeyType) -> SealBinding {
    SealBinding::new(SealPurpose::CredentialKey, id, k.as_str())
}

/// A credential's key as [`SigningKeys::sign_hashes`] needs it.
#[derive(Debug, Clone, Copy)]
pub struct CredentialKey<'a> {
    /// The credential's id, as requested (the row the key must be sealed for).
    pub id: Uuid,
    /// Its key type.
    pub key_type: KeyType,
    /// The sealed key, base64.
    pub sealed_key: &'a str,
    /// Its certificate, DER.
    pub certificate: &'a [u8],
    /// The certificates of the CA back end that issued it, DER: its issuing CA certificate
    /// first, then the chain above it. None of their keys may sign as a credential.
    pub ca_chain: &'a [Vec<u8>],
}

/// The key-store port of signing credentials: key generation and signing, with keys sealed
/// under the master key or held on a PKCS#11 token (`key_store`); implemented in `sigil-pki`.
#[async_trait::async_trait]
pub trait SigningKeys: Send + Sync {
    /// A new key of type `k` for credential `id` in `store` (`None`: the configured default),
    /// and a PKCS#10 request (DER) for it with the common name `cn`, signed with the key (off
    /// the async threads: RSA key generation takes up to seconds). Returns the stored form: the
    /// key sealed for that credential only (base64), or a token reference
    /// ([`crate::signing::key_store::TokenKeyRef`]). A store that is not configured is 400
    /// `key_store_unavailable`.
    async fn generate(
        &self,
        id: Uuid,
        k: KeyType,
        cn: &str,
        store: Option<crate::signing::key_store::KeyStoreKind>,
    ) -> crate::Result<(String, Vec<u8>)>;
    /// Destroys a key `generate` made for a credential that was then not created (issuance
    /// refused, storage failed): on a token, its objects are deleted so that refused requests
    /// do not fill the token; a sealed key is only ever in the refused row, so nothing is left.
    /// Best effort: failures are logged.
    async fn discard(&self, _stored: &str) {}
    /// The hash and salt length of DER `RSASSA-PSS-params` (the MGF1 hash must be the same).
    fn pss_params(&self, der: &[u8]) -> crate::Result<(HashAlgo, usize)>;
    /// Signs each of `digests` with `credential`'s sealed key, as `scheme` says, in order. The
    /// key opens only as this credential's, and must be the one its end-entity certificate
    /// certifies, that certificate signed by its CA: a sealed key copied from elsewhere (a
    /// CA's, another credential's) signs nothing.
    async fn sign_hashes(
        &self,
        credential: CredentialKey<'_>,
        hash: HashAlgo,
        scheme: SignScheme,
        digests: Vec<Vec<u8>>,
    ) -> crate::Result<Vec<Vec<u8>>>;
    /// Whether signing `digests` digests with the key stored as `stored` (of type `k`) is
    /// cheap enough to run on the async threads: a sealed P-256 key and a few digests (about
    /// 15 µs each), not a P-384 key (half a millisecond each), an RSA key (a millisecond) nor a
    /// token (a device). Only such a signature may be computed while its SAD's spend commits,
    /// to be discarded if the spend is refused.
    fn signs_inline(&self, _k: KeyType, _stored: &str, _digests: usize) -> bool {
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spend(credential: Uuid, signer: Uuid, hashes: &[&str], now_us: i64) -> SadUse {
        SadUse {
            id: "sad".into(),
            credential_id: credential,
            signer_id: signer,
            hashes: hashes.iter().map(|h| (*h).to_owned()).collect(),
            now_us,
        }
    }

    #[test]
    fn each_authorized_hash_signs_once_and_others_not_at_all() {
        assert_eq!(spend_hashes("aa bb aa", &["aa".into()]), Some("aa bb".into()));
        assert_eq!(spend_hashes("aa bb", &["BB".into(), "aa".into()]), Some(String::new()));
        assert_eq!(spend_hashes("aa", &["aa".into(), "aa".into()]), None, "twice");
        assert_eq!(spend_hashes("aa bb", &["cc".into()]), None, "never authorized");
    }

    #[test]
    fn a_refused_sad_says_why() {
        let (c, s, other) = (Uuid::now_v7(), Uuid::now_v7(), Uuid::now_v7());
        let u = spend(c, s, &["aa"], 100);
        let why = |found| SadRefusal::of(found, &u).description();
        assert_eq!(why(None), "Invalid SAD");
        assert_eq!(why(Some((other, s, 1, 200))), "Invalid SAD");
        assert_eq!(why(Some((c, other, 1, 200))), "Invalid SAD");
        assert_eq!(why(Some((c, s, 1, 100))), "SAD expired");
        assert_eq!(
            why(Some((c, s, 0, 200))),
            "The SAD does not authorize this many more signatures"
        );
        assert_eq!(why(Some((c, s, 1, 200))), "Hash is not authorized by the SAD.");
    }

    fn sad(credential: Uuid, signer: Uuid, remaining: u32, hashes: Option<&[&str]>) -> Sad {
        let t = |us: i64| OffsetDateTime::from_unix_timestamp_nanos(i128::from(us) * 1000).unwrap();
        Sad {
            id: "sad".into(),
            credential_id: credential,
            signer_id: signer,
            remaining,
            hashes: hashes.map(|h| h.iter().map(|x| (*x).to_owned()).collect()),
            expires_at: t(200),
            created_at: t(0),
        }
    }

    #[test]
    fn a_sad_pays_for_as_many_signatures_as_it_was_made_for_and_no_more() {
        let (c, s) = (Uuid::now_v7(), Uuid::now_v7());
        let mut scal1 = sad(c, s, 3, None);
        scal1.spend(&spend(c, s, &["aa", "bb"], 100)).unwrap();
        assert_eq!(scal1.remaining, 1);
        let before = scal1.clone();
        let two = spend(c, s, &["cc", "dd"], 100);
        assert_eq!(scal1.spend(&two), Err(SadRefusal::Exhausted));
        assert_eq!(scal1, before, "a refusal spends nothing");
        scal1.spend(&spend(c, s, &["cc"], 100)).unwrap();
        assert_eq!(scal1.spend(&spend(c, s, &["ee"], 100)), Err(SadRefusal::Exhausted));
    }

    #[test]
    fn a_sad_serves_only_its_signer_credential_and_lifetime() {
        let (c, s, other) = (Uuid::now_v7(), Uuid::now_v7(), Uuid::now_v7());
        let mut a = sad(c, s, 5, None);
        let before = a.clone();
        assert_eq!(a.spend(&spend(other, s, &["aa"], 100)), Err(SadRefusal::Invalid));
        assert_eq!(a.spend(&spend(c, other, &["aa"], 100)), Err(SadRefusal::Invalid));
        assert_eq!(a.spend(&spend(c, s, &["aa"], 200)), Err(SadRefusal::Expired));
        let mut wrong_id = spend(c, s, &["aa"], 100);
        wrong_id.id = "another".into();
        assert_eq!(a.spend(&wrong_id), Err(SadRefusal::Invalid));
        assert_eq!(a, before);
        a.spend(&spend(c, s, &["aa"], 199)).unwrap();
    }

    #[test]
    fn under_scal2_each_authorized_digest_signs_once() {
        let (c, s) = (Uuid::now_v7(), Uuid::now_v7());
        let mut a = sad(c, s, 3, Some(&["aa", "bb", "cc"]));
        a.spend(&spend(c, s, &["BB"], 100)).unwrap();
        assert_eq!(a.spend(&spend(c, s, &["bb"], 100)), Err(SadRefusal::HashNotAuthorized));
        assert_eq!(a.spend(&spend(c, s, &["dd"], 100)), Err(SadRefusal::HashNotAuthorized));
        // One digest of a batch not authorized: the whole batch is refused, nothing spent.
        let before = a.clone();
        assert_eq!(a.spend(&spend(c, s, &["aa", "dd"], 100)), Err(SadRefusal::HashNotAuthorized));
        assert_eq!(a, before);
        a.spend(&spend(c, s, &["cc", "aa"], 100)).unwrap();
        assert_eq!((a.remaining, a.hashes.as_deref()), (0, Some(&[][..])));
    }

    #[test]
    fn credentials_advertise_the_combined_algorithms_clients_send() {
        assert!(key_algos(KeyType::P256).contains(&"1.2.840.10045.4.3.2"));
        assert!(key_algos(KeyType::Rsa2048).contains(&"1.2.840.113549.1.1.11"));
        assert!(key_algos(KeyType::Rsa2048).contains(&"1.2.840.113549.1.1.10"));
        assert_eq!(sign_algo("1.2.840.113549.1.1.1"), Some((None, SignFamily::RsaPkcs1)));
        assert_eq!(sign_algo("1.2.3"), None);
        assert_eq!(
            HashAlgo::from_oid("2.16.840.1.101.3.4.2.2").map(HashAlgo::digest_len),
            Some(48)
        );
    }
}
