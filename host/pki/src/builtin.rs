//! The built-in CA: a root and an issuing CA whose keys live in the database, sealed under the
//! master key. Leaf certificates and CRLs are built with rcgen and signed with ring.

use sigil_core::ErrorCode;
use std::sync::Arc;

use async_trait::async_trait;
use rcgen::string::{Ia5String, PrintableString};
use rcgen::{
    BasicConstraints, CertificateParams, CertificateRevocationListParams, CrlDistributionPoint,
    CustomExtension, DistinguishedName, DnType, DnValue, ExtendedKeyUsagePurpose, IsCa, Issuer,
    KeyIdMethod, KeyPair, KeyUsagePurpose, RevokedCertParams, SanType, SerialNumber,
    SubjectPublicKeyInfo,
};
use rustls_pki_types::CertificateDer;
use sigil_core::certs::ca::{
    CaFactory, CaKeySource, CaRecord, Holds, IssueOrder, Issued, IssuedRef, Issuer as CoreIssuer,
    NewCa, RevokedEntry, StatusPublisher, ca_key_binding, ca_root_key_binding,
};
use sigil_core::certs::profile::CertContent;
use sigil_core::certs::{KeyType, NameAttribute, RevocationReason, San};
use sigil_core::{CoreError, Result};
use time::{Duration, OffsetDateTime};
use x509_parser::prelude::FromDer;
use zeroize::Zeroizing;

use crate::seal::MasterKey;
use crate::{PkiError, keys};

fn internal(e: impl std::fmt::Display) -> CoreError {
    CoreError::Internal(e.to_string())
}

/// A signature that failed: on a token that did not sign (its own error is logged by the
/// signer), a dependency failure; otherwise ours.
fn signing_failed(e: rcgen::Error) -> CoreError {
    match e {
        rcgen::Error::RemoteKeyError => CoreError::Dependency {
            code: ErrorCode::KeyStoreUnavailable,
            detail: "the PKCS#11 token holding the CA key did not sign".into(),
        },
        e => internal(e),
    }
}

impl From<PkiError> for CoreError {
    fn from(e: PkiError) -> Self {
        CoreError::Internal(e.to_string())
    }
}

/// A usable built-in CA.
pub struct BuiltinCa {
    id: String,
    cert_der: Vec<u8>,
    chain: Vec<Vec<u8>>,
    issuer: Issuer<'static, CaKey>,
    key_id: Vec<u8>,
    key_type: KeyType,
    crl_url: Option<String>,
    /// The authorityInfoAccess value leaves carry (OCSP and this CA's certificate).
    aia: Option<Vec<u8>>,
}

/// An issuing CA's key: sealed under the master key and opened in memory (ring), or held on
/// the PKCS#11 token, which signs.
pub enum CaKey {
    /// Opened from its sealed form.
    Sealed(KeyPair),
    /// On the token.
    Token(crate::pkcs11::TokenSigner),
}

impl rcgen::PublicKeyData for CaKey {
    fn der_bytes(&self) -> &[u8] {
        match self {
            Self::Sealed(k) => k.der_bytes(),
            Self::Token(k) => k.der_bytes(),
        }
    }

    fn algorithm(&self) -> &'static rcgen::SignatureAlgorithm {
        match self {
            Self::Sealed(k) => k.algorithm(),
            Self::Token(k) => k.algorithm(),
        }
    }
}

impl rcgen::SigningKey for CaKey {
    fn sign(&self, msg: &[u8]) -> std::result::Result<Vec<u8>, rcgen::Error> {
        match self {
            Self::Sealed(k) => k.sign(msg),
            Self::Token(k) => k.sign(msg),
        }
    }
}

/// DER AlgorithmIdentifier of the signature algorithm a key of type `k` signs with.
fn signature_algorithm_der(k: KeyType) -> Vec<u8> {
    match k {
        // ecdsa-with-SHA256, no parameters
        KeyType::P256 => {
            vec![0x30, 0x0a, 0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x04, 0x03, 0x02]
        }
        // ecdsa-with-SHA384
        KeyType::P384 => {
            vec![0x30, 0x0a, 0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x04, 0x03, 0x03]
        }
        // sha256WithRSAEncryption, NULL parameters
        KeyType::Rsa2048 | KeyType::Rsa3072 | KeyType::Rsa4096 => vec![
            0x30, 0x0d, 0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x0b, 0x05,
            0x00,
        ],
    }
}

impl std::fmt::Debug for BuiltinCa {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BuiltinCa").field("id", &self.id).finish_non_exhaustive()
    }
}

fn dn_value(attribute: &str, value: &str) -> DnValue {
    match attribute {
        "C" | "serialNumber" => PrintableString::try_from(value)
            .map(DnValue::PrintableString)
            .unwrap_or_else(|_| DnValue::Utf8String(value.to_owned())),
        "emailAddress" | "DC" => Ia5String::try_from(value)
            .map(DnValue::Ia5String)
            .unwrap_or_else(|_| DnValue::Utf8String(value.to_owned())),
        _ => DnValue::Utf8String(value.to_owned()),
    }
}

fn dn_type(attribute: &str) -> Result<DnType> {
    Ok(match attribute {
        "CN" => DnType::CommonName,
        "O" => DnType::OrganizationName,
        "OU" => DnType::OrganizationalUnitName,
        "C" => DnType::CountryName,
        "ST" => DnType::StateOrProvinceName,
        "L" => DnType::LocalityName,
        "serialNumber" => DnType::CustomDnType(vec![2, 5, 4, 5]),
        "SN" => DnType::CustomDnType(vec![2, 5, 4, 4]),
        "GN" => DnType::CustomDnType(vec![2, 5, 4, 42]),
        "emailAddress" => DnType::CustomDnType(vec![1, 2, 840, 113_549, 1, 9, 1]),
        "DC" => DnType::CustomDnType(vec![0, 9, 2342, 19_200_300, 100, 1, 25]),
        "UID" => DnType::CustomDnType(vec![0, 9, 2342, 19_200_300, 100, 1, 1]),
        other => {
            DnType::CustomDnType(sigil_core::certs::profile::parse_oid(other).ok_or_else(|| {
                CoreError::invalid(
                    ErrorCode::SubjectNotAllowed,
                    format!("unknown attribute {other}"),
                )
            })?)
        }
    })
}

pub(crate) fn distinguished_name(attrs: &[NameAttribute]) -> Result<DistinguishedName> {
    let mut dn = DistinguishedName::new();
    for a in attrs {
        dn.push(dn_type(&a.attribute)?, dn_value(&a.attribute, &a.value));
    }
    Ok(dn)
}

pub(crate) fn san(s: &San) -> Result<SanType> {
    let ia5 = |v: &str| {
        Ia5String::try_from(v).map_err(|_| {
            CoreError::invalid(ErrorCode::SanNotAllowed, format!("`{v}` is not ASCII"))
        })
    };
    Ok(match s {
        San::Dns(v) => SanType::DnsName(ia5(v)?),
        San::Email(v) => SanType::Rfc822Name(ia5(v)?),
        San::Uri(v) => SanType::URI(ia5(v)?),
        San::Ip(v) => SanType::IpAddress(v.parse().map_err(|_| {
            CoreError::invalid(ErrorCode::SanNotAllowed, format!("`{v}` is not an IP"))
        })?),
    })
}

fn key_usage(name: &str) -> Option<KeyUsagePurpose> {
    Some(match name {
        "digitalSignature" => KeyUsagePurpose::DigitalSignature,
        "nonRepudiation" => KeyUsagePurpose::ContentCommitment,
        "keyEncipherment" => KeyUsagePurpose::KeyEncipherment,
        "dataEncipherment" => KeyUsagePurpose::DataEncipherment,
        "keyAgreement" => KeyUsagePurpose::KeyAgreement,
        "encipherOnly" => KeyUsagePurpose::EncipherOnly,
        "decipherOnly" => KeyUsagePurpose::DecipherOnly,
        _ => return None,
    })
}

fn extended_key_usage(name: &str) -> Option<ExtendedKeyUsagePurpose> {
    Some(match name {
        "serverAuth" => ExtendedKeyUsagePurpose::ServerAuth,
        "clientAuth" => ExtendedKeyUsagePurpose::ClientAuth,
        "codeSigning" => ExtendedKeyUsagePurpose::CodeSigning,
        "emailProtection" => ExtendedKeyUsagePurpose::EmailProtection,
        "timeStamping" => ExtendedKeyUsagePurpose::TimeStamping,
        "ocspSigning" => ExtendedKeyUsagePurpose::OcspSigning,
        // documentSigning and dotted OIDs: core's one name-to-OID table.
        other => ExtendedKeyUsagePurpose::Other(sigil_core::certs::profile::parse_oid(
            &sigil_core::certs::profile::conformance::eku_oid(other),
        )?),
    })
}

/// The SubjectKeyIdentifier of a certificate.
pub fn subject_key_id(der: &[u8]) -> Option<Vec<u8>> {
    let (_, cert) = x509_parser::certificate::X509Certificate::from_der(der).ok()?;
    cert.extensions().iter().find_map(|e| match e.parsed_extension() {
        x509_parser::extensions::ParsedExtension::SubjectKeyIdentifier(k) => Some(k.0.to_vec()),
        _ => None,
    })
}

pub(crate) fn crl_reason(r: RevocationReason) -> rcgen::RevocationReason {
    use rcgen::RevocationReason as R;
    match r {
        RevocationReason::Unspecified => R::Unspecified,
        RevocationReason::KeyCompromise => R::KeyCompromise,
        RevocationReason::CaCompromise => R::CaCompromise,
        RevocationReason::AffiliationChanged => R::AffiliationChanged,
        RevocationReason::Superseded => R::Superseded,
        RevocationReason::CessationOfOperation => R::CessationOfOperation,
        RevocationReason::CertificateHold => R::CertificateHold,
        RevocationReason::PrivilegeWithdrawn => R::PrivilegeWithdrawn,
        RevocationReason::AaCompromise => R::AaCompromise,
    }
}

/// Parses a hex serial into bytes.
pub fn serial_bytes(hex_serial: &str) -> Vec<u8> {
    let padded =
        if hex_serial.len() % 2 == 1 { format!("0{hex_serial}") } else { hex_serial.to_owned() };
    hex::decode(padded).unwrap_or_default()
}

impl BuiltinCa {
    /// The DER of the issuing CA certificate.
    pub fn certificate(&self) -> &[u8] {
        &self.cert_der
    }

    fn leaf_params(&self, c: &CertContent, serial: &[u8]) -> Result<CertificateParams> {
        let mut p = CertificateParams::default();
        p.distinguished_name = distinguished_name(&c.subject)?;
        p.subject_alt_names = c.sans.iter().map(san).collect::<Result<_>>()?;
        p.not_before = c.not_before;
        p.not_after = c.not_after;
        p.serial_number = Some(SerialNumber::from_slice(serial));
        p.is_ca = IsCa::ExplicitNoCa;
        p.key_usages = c.key_usage.iter().filter_map(|k| key_usage(k)).collect();
        p.extended_key_usages =
            c.extended_key_usage.iter().filter_map(|e| extended_key_usage(e)).collect();
        p.use_authority_key_identifier_extension = true;
        p.key_identifier_method = KeyIdMethod::Sha256;
        if let Some(url) = &self.crl_url {
            p.crl_distribution_points = vec![CrlDistributionPoint { uris: vec![url.clone()] }];
        }
        p.custom_extensions = c
            .custom_extensions
            .iter()
            .map(|(oid, critical, value)| {
                let mut e = CustomExtension::from_oid_content(oid, value.clone());
                e.set_criticality(*critical);
                e
            })
            .collect();
        if let Some(aia) = &self.aia {
            p.custom_extensions
                .push(CustomExtension::from_oid_content(&crate::aia::OID, aia.clone()));
        }
        Ok(p)
    }
}

#[async_trait]
impl CoreIssuer for BuiltinCa {
    fn id(&self) -> &str {
        &self.id
    }

    fn kind(&self) -> &'static str {
        "builtin"
    }

    fn ca_certificate(&self) -> &[u8] {
        &self.cert_der
    }

    fn chain(&self) -> &[Vec<u8>] {
        &self.chain
    }

    fn unfit_for_public_trust(&self) -> Option<String> {
        let Some(url) = &self.crl_url else {
            return Some(
                "its certificates point to no CRL or OCSP responder: set pki.public_url".into(),
            );
        };
        // The Baseline Requirements want plain http:// pointers (§7.1.2.7.7, §7.1.2.11.2).
        let Some(rest) = url.strip_prefix("http://") else {
            return Some("pki.public_url must be an http:// URL for CRL and OCSP pointers".into());
        };
        let host = rest.split(['/', '?', '#']).next().unwrap_or("");
        if host.contains('@') {
            return Some("pki.public_url may not hold user information".into());
        }
        // Without the port: a bracketed IPv6 literal, else what precedes the last colon.
        let host = match host.strip_prefix('[') {
            Some(v6) => v6.split(']').next().unwrap_or(""),
            None => host.rsplit_once(':').map_or(host, |(h, _)| h),
        };
        (!sigil_core::certs::profile::cabf::public_host(host)).then(|| {
            format!("pki.public_url names `{host}`, which is not a public host name or address")
        })
    }

    async fn issue(&self, order: &IssueOrder<'_>) -> Result<Issued> {
        let content = order.content;
        let params = self.leaf_params(content, order.serial)?;
        let spki = SubjectPublicKeyInfo::from_der(&content.spki_der).map_err(|e| {
            CoreError::invalid(ErrorCode::KeyNotAllowed, format!("unsupported public key: {e}"))
        })?;
        let cert = params.signed_by(&spki, &self.issuer).map_err(signing_failed)?;
        Ok(Issued {
            der: cert.der().to_vec(),
            serial: order.serial.to_vec(),
            not_before: content.not_before,
            not_after: content.not_after,
        })
    }

    fn status(&self) -> Option<&dyn StatusPublisher> {
        Some(self)
    }

    fn holds(&self) -> Option<&dyn Holds> {
        Some(self)
    }
}

/// Sigil publishes this CA's status itself: a hold is recorded, and shown in its CRL and OCSP,
/// with nothing to tell anyone first.
#[async_trait]
impl Holds for BuiltinCa {
    async fn suspend(&self, _cert: IssuedRef<'_>) -> Result<()> {
        Ok(())
    }

    async fn reactivate(&self, _cert: IssuedRef<'_>) -> Result<()> {
        Ok(())
    }
}

impl StatusPublisher for BuiltinCa {
    fn sign(&self, message: &[u8]) -> Result<(Vec<u8>, Vec<u8>)> {
        let key = self.issuer.key();
        let sig = rcgen::SigningKey::sign(key, message).map_err(signing_failed)?;
        Ok((sig, signature_algorithm_der(self.key_type)))
    }

    fn crl(
        &self,
        entries: &[RevokedEntry],
        number: u64,
        this_update: OffsetDateTime,
        next_update: OffsetDateTime,
    ) -> Result<Vec<u8>> {
        let params = CertificateRevocationListParams {
            this_update,
            next_update,
            crl_number: SerialNumber::from(number),
            issuing_distribution_point: None,
            revoked_certs: entries
                .iter()
                .map(|e| RevokedCertParams {
                    serial_number: SerialNumber::from_slice(&serial_bytes(&e.serial)),
                    revocation_time: e.revoked_at,
                    // An unspecified reason is left out (RFC 5280 §5.3.1), as in OCSP.
                    reason_code: (e.reason != RevocationReason::Unspecified)
                        .then(|| crl_reason(e.reason)),
                    invalidity_date: None,
                })
                .collect(),
            // The CRL's AKI must equal the CA certificate's SKI, whatever method made it.
            key_identifier_method: KeyIdMethod::PreSpecified(self.key_id.clone()),
        };
        Ok(params.signed_by(&self.issuer).map_err(signing_failed)?.der().to_vec())
    }
}

/// The names of the CAs made on first start (`[pki.ca_subject]`): C, O, then the CN.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CaNames {
    /// O.
    pub organization: Option<String>,
    /// C (two letters).
    pub country: Option<String>,
    /// The root's CN; default `Sigil Root CA (<id>)`.
    pub root_common_name: Option<String>,
    /// The issuing CA's CN; default `Sigil Issuing CA (<id>)`.
    pub issuing_common_name: Option<String>,
}

impl Default for CaNames {
    fn default() -> Self {
        Self {
            organization: Some("Sigil".into()),
            country: None,
            root_common_name: None,
            issuing_common_name: None,
        }
    }
}

impl CaNames {
    /// The DN for common name `cn`.
    pub fn dn(&self, cn: &str) -> DistinguishedName {
        let mut dn = DistinguishedName::new();
        if let Some(c) = &self.country {
            dn.push(DnType::CountryName, dn_value("C", c));
        }
        if let Some(o) = &self.organization {
            dn.push(DnType::OrganizationName, o.as_str());
        }
        dn.push(DnType::CommonName, cn);
        dn
    }
}

/// Creates and loads built-in CAs.
pub struct BuiltinFactory {
    master: Arc<MasterKey>,
    /// The PKCS#11 token, if configured.
    token: Option<Arc<crate::pkcs11::Token>>,
    /// Whether the issuing keys of CAs created from now on are made on the token.
    issuing_on_token: bool,
    crl_base_url: Option<String>,
    names: CaNames,
}

impl std::fmt::Debug for BuiltinFactory {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BuiltinFactory")
            .field("crl_base_url", &self.crl_base_url)
            .finish_non_exhaustive()
    }
}

pub(crate) fn ca_params(
    dn: DistinguishedName,
    years: i64,
    path_len: Option<u8>,
    now: OffsetDateTime,
) -> CertificateParams {
    let mut p = CertificateParams::default();
    p.distinguished_name = dn;
    p.is_ca = match path_len {
        Some(n) => IsCa::Ca(BasicConstraints::Constrained(n)),
        None => IsCa::Ca(BasicConstraints::Unconstrained),
    };
    p.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    p.not_before = now - Duration::minutes(5);
    p.not_after = now + Duration::days(365 * years);
    p.serial_number = Some(SerialNumber::from_slice(&crate::localca::random_serial()));
    p.use_authority_key_identifier_extension = path_len.is_some();
    p.key_identifier_method = KeyIdMethod::Sha256;
    p
}

pub(crate) fn pem_blocks(label: &str, text: &str) -> Vec<Vec<u8>> {
    crate::pem::blocks(label, text)
}

impl BuiltinFactory {
    /// `crl_base_url` (for example `http://pki.example.org`, the plain-HTTP publication address)
    /// puts into every certificate a CRL distribution point `<base>/crl/<ca>.crl` and an
    /// authorityInfoAccess with the OCSP responder `<base>/ocsp` and the issuer's certificate
    /// `<base>/ca/<ca>.crt`.
    pub fn new(master: Arc<MasterKey>, crl_base_url: Option<String>) -> Self {
        Self {
            master,
            token: None,
            issuing_on_token: false,
            crl_base_url,
            names: CaNames::default(),
        }
    }

    /// Opens CA keys held on `token`; with `issuing_on_token`, CAs created from now on get
    /// their issuing key there (labelled `sigil-ca-<id>`). Their roots stay off the token: a
    /// root is meant to go offline, and its key is handed to the root-key vault as before.
    #[must_use]
    pub fn with_token(mut self, token: Arc<crate::pkcs11::Token>, issuing_on_token: bool) -> Self {
        self.token = Some(token);
        self.issuing_on_token = issuing_on_token;
        self
    }

    /// The configured token, for a key stored on the token labelled `label`.
    fn token_for(&self, label: &str) -> std::result::Result<Arc<crate::pkcs11::Token>, PkiError> {
        self.token.clone().filter(|t| t.label() == label).ok_or_else(|| {
            PkiError::Parse(format!(
                "a CA key is on token `{label}`, which this server is not configured with"
            ))
        })
    }

    /// Names the CAs it creates `names`.
    #[must_use]
    pub fn with_names(mut self, names: CaNames) -> Self {
        self.names = names;
        self
    }

    /// A usable CA from a record.
    pub fn load_builtin(&self, rec: &CaRecord) -> std::result::Result<BuiltinCa, PkiError> {
        let on_token = std::str::from_utf8(&rec.key_sealed)
            .ok()
            .and_then(sigil_core::signing::key_store::TokenKeyRef::decode);
        let key = match on_token {
            Some(at) => {
                if !at.may_be_a_cas() {
                    return Err(PkiError::Parse(format!(
                        "CA {}: its token reference names a signing credential's key `{}`",
                        rec.id, at.label
                    )));
                }
                let token = self.token_for(&at.token)?;
                let found = token
                    .find(&at.label, &at.id, rec.key_type)
                    .map_err(|e| PkiError::Parse(format!("CA {}: {e}", rec.id)))?;
                CaKey::Token(
                    crate::pkcs11::TokenSigner::new(token, found)
                        .map_err(|e| PkiError::Parse(e.to_string()))?,
                )
            }
            None => CaKey::Sealed(self.open_sealed(rec)?),
        };
        self.load_with(rec, key)
    }

    fn open_sealed(&self, rec: &CaRecord) -> std::result::Result<KeyPair, PkiError> {
        let pkcs8 = self
            .master
            .open(&ca_key_binding(&rec.id, rec.key_type), &rec.key_sealed)
            .map_err(|e| {
                if MasterKey::is_bound(&rec.key_sealed) {
                    e
                } else {
                    PkiError::Parse(format!(
                        "CA {}'s key was sealed by an earlier version: stop every node and run \
                         `sigil migrate --reseal-legacy` once",
                        rec.id
                    ))
                }
            })?;
        keys::load(&pkcs8, rec.key_type)
    }

    fn load_with(&self, rec: &CaRecord, key: CaKey) -> std::result::Result<BuiltinCa, PkiError> {
        let (_, cert) = x509_parser::certificate::X509Certificate::from_der(&rec.cert_der)
            .map_err(|_| PkiError::Parse(format!("CA {}'s certificate does not parse", rec.id)))?;
        if rcgen::PublicKeyData::subject_public_key_info(&key) != cert.public_key().raw {
            return Err(PkiError::Parse(format!(
                "CA {}'s key is not the key of its certificate",
                rec.id
            )));
        }
        let issuer = Issuer::from_ca_cert_der(&CertificateDer::from(rec.cert_der.as_slice()), key)?;
        let key_id = subject_key_id(&rec.cert_der)
            .ok_or_else(|| PkiError::Parse("the CA certificate has no SKI".into()))?;
        let mut chain = vec![rec.cert_der.clone()];
        if rec.root_der != rec.cert_der {
            chain.push(rec.root_der.clone());
        }
        Ok(BuiltinCa {
            id: rec.id.clone(),
            cert_der: rec.cert_der.clone(),
            chain,
            issuer,
            key_id,
            key_type: rec.key_type,
            crl_url: self.url(&format!("crl/{}.crl", rec.id)),
            aia: crate::aia::value(
                self.url("ocsp").as_deref(),
                self.url(&format!("ca/{}.crt", rec.id)).as_deref(),
            ),
        })
    }

    /// `<public_url>/<path>`, when a public URL is set.
    fn url(&self, path: &str) -> Option<String> {
        self.crl_base_url.as_ref().map(|b| format!("{}/{path}", b.trim_end_matches('/')))
    }
}

impl CaFactory for BuiltinFactory {
    fn create(&self, id: &str, key: KeyType, now: OffsetDateTime) -> Result<NewCa> {
        let root_pkcs8 = keys::generate(key)?;
        let root_key = keys::load(&root_pkcs8, key)?;
        let n = &self.names;
        let root_cn = n.root_common_name.clone().unwrap_or_else(|| format!("Sigil Root CA ({id})"));
        let issuing_cn =
            n.issuing_common_name.clone().unwrap_or_else(|| format!("Sigil Issuing CA ({id})"));
        let root_params = ca_params(n.dn(&root_cn), 20, None, now);
        let root = root_params.self_signed(&root_key).map_err(internal)?;
        // The issuing key: on the token (made there, never leaving it), or sealed.
        let (issuing_key, key_stored) = match (&self.token, self.issuing_on_token) {
            (Some(token), true) => {
                let label = format!("sigil-ca-{id}");
                let (key_id, _) = token.generate(key, &label)?;
                let found = token.find(&label, &key_id, key)?;
                let at = sigil_core::signing::key_store::TokenKeyRef {
                    token: token.label().to_owned(),
                    label,
                    id: key_id,
                };
                let signer = crate::pkcs11::TokenSigner::new(Arc::clone(token), found)?;
                (CaKey::Token(signer), at.encode().into_bytes())
            }
            _ => {
                let pkcs8 = keys::generate(key)?;
                let sealed = self.master.seal(&ca_key_binding(id, key), &pkcs8)?;
                (CaKey::Sealed(keys::load(&pkcs8, key)?), sealed)
            }
        };
        let mut issuing_params = ca_params(n.dn(&issuing_cn), 10, Some(0), now);
        // Where a relying party finds the root's CRL and certificate (RFC 5280 4.2.1.13, 4.2.2.1).
        if let Some(url) = self.url(&format!("crl/{id}-root.crl")) {
            issuing_params.crl_distribution_points = vec![CrlDistributionPoint { uris: vec![url] }];
        }
        if let Some(aia) =
            crate::aia::value(None, self.url(&format!("ca/{id}-root.crt")).as_deref())
        {
            issuing_params
                .custom_extensions
                .push(CustomExtension::from_oid_content(&crate::aia::OID, aia));
        }
        let root_issuer = Issuer::new(root_params, &root_key);
        let issuing = issuing_params.signed_by(&issuing_key, &root_issuer).map_err(internal)?;
        // The root's first CRL, signed while its key is here: valid a year, after which the
        // operator signs the next one offline (`sigil ca crl`, `sigil ca publish-root-crl`).
        let root_key_id = subject_key_id(root.der())
            .ok_or_else(|| CoreError::Internal("the root certificate has no SKI".into()))?;
        let root_crl = CertificateRevocationListParams {
            this_update: now,
            next_update: now + Duration::days(365),
            crl_number: SerialNumber::from(1u64),
            issuing_distribution_point: None,
            revoked_certs: vec![],
            key_identifier_method: KeyIdMethod::PreSpecified(root_key_id),
        }
        .signed_by(&root_issuer)
        .map_err(internal)?;
        let record = CaRecord {
            id: id.to_owned(),
            kind: "builtin".into(),
            key_type: key,
            cert_der: issuing.der().to_vec(),
            key_sealed: key_stored,
            root_der: root.der().to_vec(),
            root_key_sealed: None,
            root_crl_der: Some(root_crl.der().to_vec()),
            created_at: now,
        };
        Ok(NewCa {
            record,
            root_key_pem: Zeroizing::new(crate::pem::encode("PRIVATE KEY", &root_pkcs8)),
        })
    }

    fn crl_next_update(&self, der: &[u8]) -> Option<OffsetDateTime> {
        let (_, crl) =
            x509_parser::revocation_list::CertificateRevocationList::from_der(der).ok()?;
        crl.next_update().map(|t| t.to_datetime())
    }

    fn check_root_crl(&self, rec: &CaRecord, der: &[u8], now: OffsetDateTime) -> Result<u64> {
        use x509_parser::revocation_list::CertificateRevocationList;
        let bad = |m: String| CoreError::invalid(ErrorCode::InvalidCrl, m);
        // The CRL number, which must be there and fit 64 bits.
        let number = |crl: &CertificateRevocationList<'_>| -> Result<u64> {
            let n = crl.crl_number().ok_or_else(|| bad("the CRL has no CRL number".into()))?;
            match n.to_u64_digits().as_slice() {
                [] => Ok(0),
                [one] => Ok(*one),
                _ => Err(bad("the CRL number does not fit 64 bits".into())),
            }
        };
        let (rest, crl) = CertificateRevocationList::from_der(der)
            .map_err(|_| bad("the CRL does not parse (DER expected)".into()))?;
        if !rest.is_empty() {
            return Err(bad("trailing bytes after the CRL".into()));
        }
        let (_, root) = x509_parser::certificate::X509Certificate::from_der(&rec.root_der)
            .map_err(|_| bad("the root certificate does not parse".into()))?;
        if crl.issuer() != root.subject() {
            return Err(bad(format!(
                "the CRL is issued by {}, not by the root {}",
                crl.issuer(),
                root.subject()
            )));
        }
        crl.verify_signature(root.public_key())
            .map_err(|_| bad("the CRL's signature does not verify with the root's key".into()))?;
        // A full CRL of every certificate the root signed: no delta, no partition.
        for e in crl.extensions() {
            let oid = e.oid.to_id_string();
            if oid == "2.5.29.27" || oid == "2.5.29.28" {
                return Err(bad(format!(
                    "a delta or partitioned CRL ({oid}) cannot replace the root's full CRL"
                )));
            }
        }
        let this = crl.last_update().to_datetime();
        let next = crl.next_update().map(|t| t.to_datetime());
        if this > now + Duration::minutes(5) {
            return Err(bad("the CRL's thisUpdate is in the future".into()));
        }
        if next.is_none_or(|n| n <= now) {
            return Err(bad("the CRL has no nextUpdate or it has passed".into()));
        }
        let n = number(&crl)?;
        if let Some(old) = &rec.root_crl_der
            && let Ok((_, old)) = CertificateRevocationList::from_der(old)
            && number(&old).is_ok_and(|o| o >= n)
        {
            return Err(bad(format!("CRL number {n} is not above the published one")));
        }
        Ok(n)
    }

    fn root_key_pem(&self, rec: &CaRecord) -> Result<Option<Zeroizing<String>>> {
        let Some(sealed) = &rec.root_key_sealed else { return Ok(None) };
        let pkcs8 = self.master.open(&ca_root_key_binding(&rec.id, rec.key_type), sealed)?;
        Ok(Some(Zeroizing::new(crate::pem::encode("PRIVATE KEY", &pkcs8))))
    }

    fn import(
        &self,
        id: &str,
        cert_pem: &str,
        key: CaKeySource<'_>,
        chain_pem: &str,
        now: OffsetDateTime,
    ) -> Result<CaRecord> {
        let bad = |m: &str| CoreError::invalid(ErrorCode::InvalidCa, m.to_owned());
        let cert_der = pem_blocks("CERTIFICATE", cert_pem)
            .into_iter()
            .next()
            .ok_or_else(|| bad("no CERTIFICATE in the CA certificate file"))?;
        let (_, cert) = x509_parser::certificate::X509Certificate::from_der(&cert_der)
            .map_err(|_| bad("the CA certificate does not parse"))?;
        if !cert.is_ca() {
            return Err(bad("the certificate is not a CA certificate"));
        }
        let key_type = match crate::csr::key_of(cert.public_key()) {
            sigil_core::certs::RequestKey::Known(k) => k,
            other => return Err(bad(&format!("unsupported CA key {other}"))),
        };
        let key_sealed = match key {
            CaKeySource::Pem(key_pem) => {
                let pkcs8 = crate::pem::decode("PRIVATE KEY", key_pem)
                    .ok_or_else(|| bad("the CA key must be an unencrypted PKCS#8 PRIVATE KEY"))?;
                let key = keys::load(&pkcs8, key_type)?;
                if rcgen::PublicKeyData::subject_public_key_info(&key) != cert.public_key().raw {
                    return Err(bad("the key does not belong to the certificate"));
                }
                self.master.seal(&ca_key_binding(id, key_type), &pkcs8)?
            }
            CaKeySource::TokenLabel(label) => {
                let token = self.token.clone().ok_or_else(|| {
                    CoreError::invalid(
                        ErrorCode::KeyStoreUnavailable,
                        "pki.import_key_label needs a [pki.pkcs11] token",
                    )
                })?;
                let at_label = sigil_core::signing::key_store::TokenKeyRef {
                    token: token.label().to_owned(),
                    label: label.to_owned(),
                    id: String::new(),
                };
                if !at_label.may_be_a_cas() {
                    return Err(bad(&format!(
                        "`{label}` is a signing credential's key, which a CA may not use"
                    )));
                }
                let found = token.find(label, "", key_type)?;
                if found.spki != cert.public_key().raw {
                    return Err(bad(&format!(
                        "the key `{label}` on token `{}` does not belong to the certificate",
                        token.label()
                    )));
                }
                // The CKA_ID of the key found, so that a later key with the same label is
                // not taken for it.
                let at =
                    sigil_core::signing::key_store::TokenKeyRef { id: found.id_hex(), ..at_label };
                at.encode().into_bytes()
            }
        };
        let chain = pem_blocks("CERTIFICATE", chain_pem);
        let root_der = chain.last().cloned().unwrap_or_else(|| cert_der.clone());
        Ok(CaRecord {
            id: id.to_owned(),
            kind: "builtin".into(),
            key_type,
            cert_der,
            key_sealed,
            root_der,
            root_key_sealed: None,
            root_crl_der: None,
            created_at: now,
        })
    }

    fn load(&self, rec: &CaRecord) -> Result<Arc<dyn CoreIssuer>> {
        Ok(Arc::new(self.load_builtin(rec)?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sigil_core::certs::profile::built_in_profiles;

    fn openssl(args: &[&str]) -> (bool, String) {
        let out = std::process::Command::new("openssl").args(args).output().expect("openssl");
        (
            out.status.success(),
            format!(
                "{}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            ),
        )
    }

    #[tokio::test]
    async fn issued_certificates_and_crls_pass_openssl() {
        let dir = tempfile::tempdir().unwrap();
        let master = Arc::new(MasterKey::load_or_create(&dir.path().join("master.key")).unwrap());
        let factory = BuiltinFactory::new(master, Some("https://pki.example".into()));
        for ca_key in [KeyType::P256, KeyType::P384, KeyType::Rsa2048] {
            let new = factory.create("test", ca_key, OffsetDateTime::now_utc()).unwrap();
            assert!(new.record.root_key_sealed.is_none(), "the root key is not stored");
            assert!(new.root_key_pem.contains("PRIVATE KEY"));
            let rec = new.record;
            let ca = factory.load_builtin(&rec).unwrap();
            let leaf_key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P384_SHA384).unwrap();
            let mut req = CertificateParams::new(vec!["www.example.org".into()]).unwrap();
            req.distinguished_name.push(DnType::CommonName, "www");
            let csr = crate::csr::parse(
                req.serialize_request(&leaf_key).unwrap().pem().unwrap().as_bytes(),
            )
            .unwrap();
            let (_, spec) =
                built_in_profiles().into_iter().find(|(n, _)| n == "tls-server").unwrap();
            let content = spec.apply(&csr, OffsetDateTime::now_utc()).unwrap();
            let serial = crate::localca::random_serial();
            let order = IssueOrder {
                content: &content,
                serial: &serial,
                csr_der: &csr.der,
                profile: "tls-server",
            };
            let issued = ca.issue(&order).await.unwrap();
            assert_eq!(issued.serial, serial);
            let der = issued.der;
            let p = |name: &str| dir.path().join(name).to_str().unwrap().to_owned();
            std::fs::write(p("leaf.pem"), crate::pem::encode("CERTIFICATE", &der)).unwrap();
            std::fs::write(p("issuing.pem"), crate::pem::encode("CERTIFICATE", &rec.cert_der))
                .unwrap();
            std::fs::write(p("root.pem"), crate::pem::encode("CERTIFICATE", &rec.root_der))
                .unwrap();
            let (ok, out) = openssl(&[
                "verify",
                "-CAfile",
                &p("root.pem"),
                "-untrusted",
                &p("issuing.pem"),
                "-purpose",
                "sslserver",
                &p("leaf.pem"),
            ]);
            assert!(ok, "{ca_key}: {out}");
            let (_, text) = openssl(&["x509", "-in", &p("leaf.pem"), "-noout", "-text"]);
            assert!(
                text.contains("DNS:www.example.org")
                    && text.contains("TLS Web Server Authentication"),
                "{text}"
            );
            assert!(text.contains("https://pki.example/crl/test.crl"), "{text}");
            // A CRL listing the leaf: openssl reports it revoked.
            let now = OffsetDateTime::now_utc();
            let entry = RevokedEntry {
                serial: hex::encode(&serial),
                revoked_at: now,
                reason: RevocationReason::KeyCompromise,
            };
            let crl = ca.crl(&[entry], 7, now, now + Duration::hours(24)).unwrap();
            std::fs::write(p("crl.pem"), crate::pem::encode("X509 CRL", &crl)).unwrap();
            let mut chain = std::fs::read_to_string(p("root.pem")).unwrap();
            chain.push_str(&std::fs::read_to_string(p("issuing.pem")).unwrap());
            std::fs::write(p("chain.pem"), chain).unwrap();
            let (ok, out) =
                openssl(&["crl", "-in", &p("crl.pem"), "-CAfile", &p("chain.pem"), "-noout"]);
            assert!(ok, "{ca_key}: {out}");
            let (ok, out) = openssl(&[
                "verify",
                "-crl_check",
                "-CAfile",
                &p("chain.pem"),
                "-CRLfile",
                &p("crl.pem"),
                &p("leaf.pem"),
            ]);
            assert!(!ok && out.contains("certificate revoked"), "{ca_key}: {out}");
        }
    }

    #[test]
    fn an_imported_ca_must_match_its_key() {
        let dir = tempfile::tempdir().unwrap();
        let master = Arc::new(MasterKey::load_or_create(&dir.path().join("master.key")).unwrap());
        let factory = BuiltinFactory::new(master.clone(), None);
        let rec = factory.create("a", KeyType::P256, OffsetDateTime::now_utc()).unwrap().record;
        let cert_pem = crate::pem::encode("CERTIFICATE", &rec.cert_der);
        let opened = master.open(&ca_key_binding("a", KeyType::P256), &rec.key_sealed).unwrap();
        let key_pem = crate::pem::encode("PRIVATE KEY", &opened);
        let root_pem = crate::pem::encode("CERTIFICATE", &rec.root_der);
        let imported = factory
            .import(
                "b",
                &cert_pem,
                CaKeySource::Pem(&key_pem),
                &root_pem,
                OffsetDateTime::now_utc(),
            )
            .unwrap();
        assert_eq!(imported.root_der, rec.root_der);
        let other = factory.create("c", KeyType::P256, OffsetDateTime::now_utc()).unwrap().record;
        let opened = master.open(&ca_key_binding("c", KeyType::P256), &other.key_sealed).unwrap();
        let other_key = crate::pem::encode("PRIVATE KEY", &opened);
        // A CA's sealed key does not load as another CA's.
        let swapped = CaRecord { key_sealed: other.key_sealed.clone(), ..rec.clone() };
        assert!(factory.load_builtin(&swapped).is_err());
        // Nor does another key sealed for this CA: it must be its certificate's key.
        let resealed = master.seal(&ca_key_binding("a", KeyType::P256), &opened).unwrap();
        let mismatched = CaRecord { key_sealed: resealed, ..rec.clone() };
        let e = factory.load_builtin(&mismatched).unwrap_err();
        assert!(e.to_string().contains("not the key of its certificate"), "{e}");
        assert!(factory.load_builtin(&rec).is_ok());
        let e = factory
            .import(
                "d",
                &cert_pem,
                CaKeySource::Pem(&other_key),
                &root_pem,
                OffsetDateTime::now_utc(),
            )
            .unwrap_err();
        assert_eq!(e.code(), "invalid_ca");
    }
}
