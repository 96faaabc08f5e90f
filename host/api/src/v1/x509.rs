//! Parsed details of a certificate for `GET /api/v1/certificates/{id}`: what `openssl x509 -text`
//! would show a person, as JSON.

use x509_parser::certificate::X509Certificate;
use x509_parser::extensions::{GeneralName, ParsedExtension};
use x509_parser::prelude::FromDer;

/// Parsed fields of a certificate.
#[derive(Debug, Default, serde::Serialize, utoipa::ToSchema)]
pub struct CertificateDetails {
    /// X.509 version (3).
    pub version: u32,
    /// Issuer DN.
    pub issuer: String,
    /// Subject DN.
    pub subject: String,
    /// Signature algorithm OID.
    pub signature_algorithm: String,
    /// Public key algorithm OID.
    pub public_key_algorithm: String,
    /// Public key size in bits.
    pub public_key_bits: usize,
    /// Key usage names.
    pub key_usage: Vec<String>,
    /// Extended key usage names or OIDs.
    pub extended_key_usage: Vec<String>,
    /// Whether it is a CA certificate.
    pub is_ca: bool,
    /// Subject key identifier, hex.
    pub subject_key_id: Option<String>,
    /// Authority key identifier, hex.
    pub authority_key_id: Option<String>,
    /// CRL distribution point URIs.
    pub crl_distribution_points: Vec<String>,
    /// Every extension, by OID, with its criticality.
    pub extensions: Vec<ExtensionInfo>,
}

/// One extension.
#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
pub struct ExtensionInfo {
    /// Dotted OID.
    pub oid: String,
    /// Critical flag.
    pub critical: bool,
}

/// Parses `der`; `None` if it does not parse (it always should: Sigil made it).
pub fn details(der: &[u8]) -> Option<CertificateDetails> {
    let (_, c) = X509Certificate::from_der(der).ok()?;
    let mut d = CertificateDetails {
        version: c.version().0 + 1,
        issuer: c.issuer().to_string(),
        subject: c.subject().to_string(),
        signature_algorithm: c.signature_algorithm.algorithm.to_id_string(),
        public_key_algorithm: c.public_key().algorithm.algorithm.to_id_string(),
        public_key_bits: c.public_key().parsed().map(|k| k.key_size()).unwrap_or(0),
        is_ca: c.is_ca(),
        ..Default::default()
    };
    for e in c.extensions() {
        d.extensions.push(ExtensionInfo { oid: e.oid.to_id_string(), critical: e.critical });
        match e.parsed_extension() {
            ParsedExtension::KeyUsage(ku) => {
                let names = [
                    (ku.digital_signature(), "digitalSignature"),
                    (ku.non_repudiation(), "nonRepudiation"),
                    (ku.key_encipherment(), "keyEncipherment"),
                    (ku.data_encipherment(), "dataEncipherment"),
                    (ku.key_agreement(), "keyAgreement"),
                    (ku.key_cert_sign(), "keyCertSign"),
                    (ku.crl_sign(), "cRLSign"),
                    (ku.encipher_only(), "encipherOnly"),
                    (ku.decipher_only(), "decipherOnly"),
                ];
                d.key_usage =
                    names.iter().filter(|(on, _)| *on).map(|(_, n)| (*n).to_owned()).collect();
            }
            ParsedExtension::ExtendedKeyUsage(eku) => {
                let names = [
                    (eku.server_auth, "serverAuth"),
                    (eku.client_auth, "clientAuth"),
                    (eku.code_signing, "codeSigning"),
                    (eku.email_protection, "emailProtection"),
                    (eku.time_stamping, "timeStamping"),
                    (eku.ocsp_signing, "ocspSigning"),
                ];
                d.extended_key_usage =
                    names.iter().filter(|(on, _)| *on).map(|(_, n)| (*n).to_owned()).collect();
                d.extended_key_usage.extend(eku.other.iter().map(|o| o.to_id_string()));
            }
            ParsedExtension::SubjectKeyIdentifier(k) => d.subject_key_id = Some(hex::encode(k.0)),
            ParsedExtension::AuthorityKeyIdentifier(a) => {
                d.authority_key_id = a.key_identifier.as_ref().map(|k| hex::encode(k.0));
            }
            ParsedExtension::CRLDistributionPoints(points) => {
                for p in points.iter() {
                    if let Some(x509_parser::extensions::DistributionPointName::FullName(names)) =
                        &p.distribution_point
                    {
                        for n in names {
                            if let GeneralName::URI(u) = n {
                                d.crl_distribution_points.push((*u).to_owned());
                            }
                        }
                    }
                }
            }
            _ => {}
        }
    }
    Some(d)
}
