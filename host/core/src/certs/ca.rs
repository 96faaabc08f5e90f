//! CA back ends. The built-in CA is the first implementation of [`Issuer`]; CA connector plugins
//! implement the same port. Core decides what goes into a certificate (profiles); an issuer only
//! signs it.

use crate::ErrorCode;
use std::collections::BTreeMap;
use std::sync::{Arc, RwLock};

use async_trait::async_trait;
use time::OffsetDateTime;
use zeroize::Zeroizing;

use crate::certs::profile::CertContent;
use crate::certs::{KeyType, RevocationReason};
use crate::error::{CoreError, Result};
use crate::sealing::{SealBinding, SealPurpose};

/// One entry of a CRL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RevokedEntry {
    /// Serial, lowercase hex.
    pub serial: String,
    /// Revocation (or hold) time.
    pub revoked_at: OffsetDateTime,
    /// Reason (certificateHold while suspended).
    pub reason: RevocationReason,
}

/// What Sigil asks a back end to issue.
#[derive(Debug, Clone, Copy)]
pub struct IssueOrder<'a> {
    /// What the profile decided.
    pub content: &'a CertContent,
    /// The serial Sigil chose (a back end that chooses its own ignores it).
    pub serial: &'a [u8],
    /// The PKCS#10 request, DER (empty for a same-key renewal, which has none).
    pub csr_der: &'a [u8],
    /// The profile name.
    pub profile: &'a str,
}

/// What a back end issued.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Issued {
    /// The certificate, DER.
    pub der: Vec<u8>,
    /// Its serial (the back end's own for an external CA).
    pub serial: Vec<u8>,
    /// notBefore as issued.
    pub not_before: OffsetDateTime,
    /// notAfter as issued.
    pub not_after: OffsetDateTime,
}

/// A certificate a back end issued, for revocation and holds.
#[derive(Debug, Clone, Copy)]
pub struct IssuedRef<'a> {
    /// Serial, lowercase hex.
    pub serial: &'a str,
    /// The certificate, DER.
    pub der: &'a [u8],
}

/// A CA back end.
#[async_trait]
pub trait Issuer: Send + Sync {
    /// Stable id (used in profiles and CRL URLs).
    fn id(&self) -> &str;
    /// `builtin` or `plugin`.
    fn kind(&self) -> &'static str;
    /// The issuing CA certificate, DER.
    fn ca_certificate(&self) -> &[u8];
    /// The chain above the end entity: issuing CA first, root last.
    fn chain(&self) -> &[Vec<u8>];
    /// Issues a certificate for `order`.
    async fn issue(&self, order: &IssueOrder<'_>) -> Result<Issued>;
    /// Why the back end cannot issue under a CA/Browser Forum profile, when it knows before
    /// issuing: the built-in CA's certificates must point to its CRL and OCSP responder at a
    /// public host (`pki.public_url`). An external CA's certificates are checked once issued.
    fn unfit_for_public_trust(&self) -> Option<String> {
        None
    }
    /// Holds at this back end, when its certificates can be put on hold and released (none:
    /// Sigil refuses to suspend them rather than promise a hold the CA cannot lift).
    fn holds(&self) -> Option<&dyn Holds>;
    /// Tells the back end a certificate is revoked, before Sigil records it (an error leaves it
    /// unchanged). A back end whose status Sigil publishes has nothing to do.
    async fn revoke(&self, _cert: IssuedRef<'_>, _reason: RevocationReason) -> Result<()> {
        Ok(())
    }
    /// The back end's revocation-status publisher, when Sigil publishes its status (it holds
    /// the key); an external CA publishes its own and has none.
    fn status(&self) -> Option<&dyn StatusPublisher> {
        None
    }
}

/// Puts certificates on hold (certificateHold) and lifts holds at a back end, before Sigil
/// records the change (an error leaves the certificate as it was).
#[async_trait]
pub trait Holds: Send + Sync {
    /// Tells the back end a certificate is on hold.
    async fn suspend(&self, cert: IssuedRef<'_>) -> Result<()>;
    /// Tells the back end a hold is lifted.
    async fn reactivate(&self, cert: IssuedRef<'_>) -> Result<()>;
}

/// Signs what Sigil publishes for a CA whose key it holds: OCSP responses and CRLs.
pub trait StatusPublisher: Send + Sync {
    /// Signs `message` with the CA key (for OCSP responses Sigil makes on the CA's behalf).
    /// Returns the signature and the DER AlgorithmIdentifier of the signature algorithm.
    fn sign(&self, message: &[u8]) -> Result<(Vec<u8>, Vec<u8>)>;
    /// Signs a CRL.
    fn crl(
        &self,
        entries: &[RevokedEntry],
        number: u64,
        this_update: OffsetDateTime,
        next_update: OffsetDateTime,
    ) -> Result<Vec<u8>>;
}

/// A stored CA (its private keys sealed under the master key).
#[derive(Debug, Clone, PartialEq)]
pub struct CaRecord {
    /// Id.
    pub id: String,
    /// `builtin`.
    pub kind: String,
    /// Key type of the issuing CA.
    pub key_type: KeyType,
    /// Issuing CA certificate, DER.
    pub cert_der: Vec<u8>,
    /// Issuing CA key, sealed PKCS#8.
    pub key_sealed: Vec<u8>,
    /// Root certificate, DER (the same as `cert_der` for a single-level CA).
    pub root_der: Vec<u8>,
    /// Root key, sealed PKCS#8: only in databases from before the root key moved out of the
    /// database (it is moved to a file at start).
    pub root_key_sealed: Option<Vec<u8>>,
    /// The root's current CRL (DER), when one has been published.
    pub root_crl_der: Option<Vec<u8>>,
    /// Creation time.
    pub created_at: OffsetDateTime,
}

/// Where CA `id`'s issuing key of type `k` is sealed.
pub fn ca_key_binding(id: &str, k: KeyType) -> SealBinding {
    SealBinding::new(SealPurpose::CaKey, id, k.as_str())
}

/// Where CA `id`'s root key of type `k` was sealed (databases from before it moved out).
pub fn ca_root_key_binding(id: &str, k: KeyType) -> SealBinding {
    SealBinding::new(SealPurpose::CaRootKey, id, k.as_str())
}

/// A CA just created: its record (issuing key sealed, no root key) and the root's key, which
/// the caller keeps outside the database.
pub struct NewCa {
    /// What to store.
    pub record: CaRecord,
    /// The root's PKCS#8 key, PEM.
    pub root_key_pem: Zeroizing<String>,
}

impl std::fmt::Debug for NewCa {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NewCa").field("id", &self.record.id).finish_non_exhaustive()
    }
}

/// Where root CA keys go instead of the database: a directory on the node that created them,
/// from which the operator moves them offline. Implemented by the server.
pub trait RootKeyVault: Send + Sync {
    /// Keeps CA `ca_id`'s root key (PEM); says where. Never overwrites another key.
    fn keep(&self, ca_id: &str, pem: &str) -> Result<String>;
    /// Removes what `keep` wrote for a CA that another node created first.
    fn discard(&self, ca_id: &str, kept_at: &str);
}

/// Where an imported CA's key comes from.
#[derive(Debug, Clone, Copy)]
pub enum CaKeySource<'a> {
    /// An unencrypted PKCS#8 PEM (sealed on import).
    Pem(&'a str),
    /// The label of a key already on the configured PKCS#11 token (it stays there).
    TokenLabel(&'a str),
}

/// Creates and loads built-in CAs; implemented in `sigil-pki`.
pub trait CaFactory: Send + Sync {
    /// Creates a root and an issuing CA with keys of type `key`. The root key is returned, not
    /// stored: only the issuing key is sealed into the record.
    fn create(&self, id: &str, key: KeyType, now: OffsetDateTime) -> Result<NewCa>;
    /// The root key a record from before the root key moved out still holds, as PEM.
    fn root_key_pem(&self, rec: &CaRecord) -> Result<Option<Zeroizing<String>>>;
    /// Checks a root CRL (DER) for `rec`: a full CRL issued by its root, its signature verifying
    /// with the root's key, current at `now`, numbered above the one published; its number.
    fn check_root_crl(&self, rec: &CaRecord, der: &[u8], now: OffsetDateTime) -> Result<u64>;
    /// A CRL's nextUpdate (None when it has none or does not parse).
    fn crl_next_update(&self, der: &[u8]) -> Option<OffsetDateTime>;
    /// Imports an issuing CA from PEM (certificate, and the chain up to its root) with its key
    /// from a PKCS#8 PEM or, on the configured PKCS#11 token, by label.
    fn import(
        &self,
        id: &str,
        cert_pem: &str,
        key: CaKeySource<'_>,
        chain_pem: &str,
        now: OffsetDateTime,
    ) -> Result<CaRecord>;
    /// Makes a stored CA usable.
    fn load(&self, rec: &CaRecord) -> Result<Arc<dyn Issuer>>;
}

/// Back ends that come and go at run time (CA connector plugins, swapped on reload).
pub trait IssuerSource: Send + Sync {
    /// The back end `id`, if this source serves it now.
    fn issuer(&self, id: &str) -> Option<Arc<dyn Issuer>>;
    /// Every back end it serves now.
    fn issuers(&self) -> Vec<Arc<dyn Issuer>>;
}

/// The CA back ends in service, by id: the stored (built-in) CAs, then those of the dynamic
/// source. A stored CA wins over a plugin of the same id.
#[derive(Default)]
pub struct Issuers {
    map: RwLock<BTreeMap<String, Arc<dyn Issuer>>>,
    source: RwLock<Option<Arc<dyn IssuerSource>>>,
}

impl std::fmt::Debug for Issuers {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(self.ids()).finish()
    }
}

impl Issuers {
    /// Adds or replaces a back end.
    pub fn insert(&self, issuer: Arc<dyn Issuer>) {
        if let Ok(mut m) = self.map.write() {
            m.insert(issuer.id().to_owned(), issuer);
        }
    }

    /// Connects the dynamic source (or disconnects it, with `None`, at shutdown: the source
    /// may hold what holds this).
    pub fn set_source(&self, source: Option<Arc<dyn IssuerSource>>) {
        if let Ok(mut s) = self.source.write() {
            *s = source;
        }
    }

    fn source(&self) -> Option<Arc<dyn IssuerSource>> {
        self.source.read().ok().and_then(|s| s.clone())
    }

    /// The back end `id`.
    pub fn get(&self, id: &str) -> Result<Arc<dyn Issuer>> {
        self.map
            .read()
            .ok()
            .and_then(|m| m.get(id).cloned())
            .or_else(|| self.source().and_then(|s| s.issuer(id)))
            .ok_or_else(|| {
                CoreError::invalid(ErrorCode::UnknownCa, format!("no CA back end `{id}`"))
            })
    }

    /// All ids, sorted.
    pub fn ids(&self) -> Vec<String> {
        self.all().iter().map(|i| i.id().to_owned()).collect()
    }

    /// All back ends, sorted by id.
    pub fn all(&self) -> Vec<Arc<dyn Issuer>> {
        let mut out: BTreeMap<String, Arc<dyn Issuer>> = BTreeMap::new();
        if let Some(s) = self.source() {
            for i in s.issuers() {
                out.insert(i.id().to_owned(), i);
            }
        }
        if let Ok(m) = self.map.read() {
            out.extend(m.iter().map(|(k, v)| (k.clone(), Arc::clone(v))));
        }
        out.into_values().collect()
    }

    /// The back ends whose CRL and OCSP Sigil signs.
    pub fn publishing(&self) -> Vec<Arc<dyn Issuer>> {
        self.all().into_iter().filter(|i| i.status().is_some()).collect()
    }
}

/// Parses and verifies certification requests; implemented in `sigil-pki`.
pub trait CsrParser: Send + Sync {
    /// Parses PEM, base64 or DER and checks the signature.
    fn parse(&self, input: &[u8]) -> Result<crate::certs::ParsedCsr>;
    /// The SubjectPublicKeyInfo (DER) of a certificate (for same-key renewal).
    fn certificate_spki(&self, cert_der: &[u8]) -> Result<Vec<u8>>;
    /// What an issued certificate says (subject, SANs, key, validity, usages), read from its DER.
    fn issued_content(
        &self,
        cert_der: &[u8],
    ) -> Result<crate::certs::profile::conformance::IssuedContent>;
}

/// The status OCSP reports for one certificate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OcspStatus {
    /// Issued by this CA and neither revoked nor on hold.
    Good,
    /// Revoked, or on hold (reason certificateHold).
    Revoked {
        /// When.
        at: OffsetDateTime,
        /// Why.
        reason: RevocationReason,
    },
    /// Not known to this responder.
    Unknown,
}

/// A parsed OCSP request.
#[derive(Debug, Clone)]
pub struct OcspQuery {
    /// The request, DER (kept to echo CertIDs and the nonce).
    pub der: Vec<u8>,
    /// Per requested certificate: the index of the issuing CA among those passed to
    /// [`Ocsp::parse`] (None when no CA matches), and the serial in hex.
    pub items: Vec<(Option<usize>, String)>,
    /// The CertID of each item, DER (what a response for that certificate answers).
    pub cert_ids: Vec<Vec<u8>>,
    /// Whether the response echoes the request's nonce (RFC 6960 §4.4.1); a response kept per
    /// certificate for everyone (RFC 5019) does not.
    pub echo_nonce: bool,
}

/// OCSP encoding; implemented in `sigil-pki`.
pub trait Ocsp: Send + Sync {
    /// Parses a request and matches each CertID against `cas`.
    fn parse(&self, der: &[u8], cas: &[Arc<dyn Issuer>]) -> Result<OcspQuery>;
    /// Builds the response for `query` with one status per item, signed by `signer`.
    fn respond(
        &self,
        query: &OcspQuery,
        statuses: &[OcspStatus],
        signer: &dyn Issuer,
        now: OffsetDateTime,
    ) -> Result<Vec<u8>>;
    /// How long a response may be relied on (its nextUpdate after its thisUpdate).
    fn validity(&self) -> time::Duration;
    /// The `malformedRequest` response.
    fn malformed(&self) -> Vec<u8>;
    /// The `unauthorized` response (no CA of ours issued what was asked about).
    fn unauthorized(&self) -> Vec<u8>;
}

/// A stored CRL.
#[derive(Debug, Clone)]
pub struct CrlRecord {
    /// CRL number.
    pub number: i64,
    /// DER, when one has been made.
    pub der: Option<Vec<u8>>,
    /// thisUpdate, microseconds.
    pub this_update_us: Option<i64>,
    /// nextUpdate, microseconds.
    pub next_update_us: Option<i64>,
    /// A change happened since it was made.
    pub stale: bool,
}
