//! Reading an issued certificate back: what it says (subject, names, key, validity, usages), to
//! be compared with what the profile decided before it is recorded.

use sigil_core::certs::profile::conformance::IssuedContent;
use sigil_core::{CoreError, Result};
use x509_parser::extensions::ParsedExtension;
use x509_parser::prelude::FromDer;

use crate::csr::{name_attributes, san_of};

/// What an issued certificate says, read back from its DER to be compared with what the profile
/// decided.
pub fn issued_content(der: &[u8]) -> Result<IssuedContent> {
    use x509_parser::certificate::X509Certificate;
    let bad = |m: &str| CoreError::Internal(format!("an issued certificate {m}"));
    let (rest, cert) = X509Certificate::from_der(der).map_err(|_| bad("does not parse"))?;
    if !rest.is_empty() {
        return Err(bad("has trailing bytes"));
    }
    let multi_valued_rdn = cert.subject().iter_rdn().any(|rdn| rdn.iter().count() > 1);
    let subject = name_attributes(cert.subject())?;
    let mut sans = Vec::new();
    let (mut key_usage, mut eku, mut is_ca) = (Vec::new(), None, false);
    let (mut aki, mut ski) = (None, None);
    let mut extensions = Vec::new();
    for ext in cert.extensions() {
        extensions.push((crate::oid_text::dotted(&ext.oid), ext.critical, ext.value.to_vec()));
        match ext.parsed_extension() {
            ParsedExtension::AuthorityKeyIdentifier(a) => {
                aki = a.key_identifier.as_ref().map(|k| k.0.to_vec());
            }
            ParsedExtension::SubjectKeyIdentifier(k) => ski = Some(k.0.to_vec()),
            ParsedExtension::SubjectAlternativeName(san) => {
                for name in &san.general_names {
                    sans.push(san_of(name)?);
                }
            }
            ParsedExtension::KeyUsage(ku) => {
                for (on, name) in [
                    (ku.digital_signature(), "digitalSignature"),
                    (ku.non_repudiation(), "nonRepudiation"),
                    (ku.key_encipherment(), "keyEncipherment"),
                    (ku.data_encipherment(), "dataEncipherment"),
                    (ku.key_agreement(), "keyAgreement"),
                    (ku.key_cert_sign(), "keyCertSign"),
                    (ku.crl_sign(), "cRLSign"),
                    (ku.encipher_only(), "encipherOnly"),
                    (ku.decipher_only(), "decipherOnly"),
                ] {
                    if on {
                        key_usage.push(name.to_owned());
                    }
                }
            }
            ParsedExtension::ExtendedKeyUsage(e) => {
                let mut oids = Vec::new();
                for (on, oid) in [
                    (e.any, "2.5.29.37.0"),
                    (e.server_auth, "1.3.6.1.5.5.7.3.1"),
                    (e.client_auth, "1.3.6.1.5.5.7.3.2"),
                    (e.code_signing, "1.3.6.1.5.5.7.3.3"),
                    (e.email_protection, "1.3.6.1.5.5.7.3.4"),
                    (e.time_stamping, "1.3.6.1.5.5.7.3.8"),
                    (e.ocsp_signing, "1.3.6.1.5.5.7.3.9"),
                ] {
                    if on {
                        oids.push(oid.to_owned());
                    }
                }
                oids.extend(e.other.iter().map(|o| o.to_id_string()));
                eku = Some(oids);
            }
            ParsedExtension::BasicConstraints(bc) => is_ca = bc.ca,
            _ => {}
        }
    }
    Ok(IssuedContent {
        subject,
        multi_valued_rdn,
        sans,
        spki_der: cert.public_key().raw.to_vec(),
        not_before: cert.validity().not_before.to_datetime(),
        not_after: cert.validity().not_after.to_datetime(),
        key_usage,
        extended_key_usage: eku,
        is_ca,
        extensions,
        issuer_der: cert.issuer().as_raw().to_vec(),
        subject_der: cert.subject().as_raw().to_vec(),
        authority_key_id: aki,
        subject_key_id: ski,
    })
}
