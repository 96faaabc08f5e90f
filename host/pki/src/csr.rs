//! PKCS#10 requests: parse (PEM, base64 or DER), verify the signature (proof of possession of the
//! private key), and extract the subject, the requested SANs and the key type.

use sigil_core::ErrorCode;
use std::net::IpAddr;

use base64::Engine as _;
use sigil_core::certs::{KeyType, NameAttribute, ParsedCsr, RequestKey, San};
use sigil_core::{CoreError, Result};
use x509_parser::certification_request::X509CertificationRequest;
use x509_parser::extensions::{GeneralName, ParsedExtension};
use x509_parser::prelude::FromDer;
use x509_parser::public_key::PublicKey;
use x509_parser::x509::X509Name;

/// Largest request accepted, bytes of DER.
pub const MAX_CSR_BYTES: usize = 64 * 1024;

fn invalid(m: impl Into<String>) -> CoreError {
    CoreError::invalid(ErrorCode::InvalidCsr, m)
}

/// Short names of the attributes Sigil knows; others are shown as dotted OIDs.
pub fn attribute_name(oid: &str) -> String {
    crate::oid_text::NAME_ATTRIBUTES
        .iter()
        .find(|(dotted, _)| *dotted == oid)
        .map_or(oid, |(_, short)| short)
        .to_owned()
}

/// The attributes of a name, in order.
pub fn name_attributes(name: &X509Name<'_>) -> Result<Vec<NameAttribute>> {
    let mut out = Vec::new();
    for rdn in name.iter_rdn() {
        for a in rdn.iter() {
            let value =
                a.as_str().map_err(|_| invalid("a subject attribute is not a string"))?.to_owned();
            out.push(NameAttribute {
                attribute: attribute_name(&crate::oid_text::dotted(a.attr_type())),
                value,
            });
        }
    }
    Ok(out)
}

fn is_request_label(label: &str) -> bool {
    matches!(label, "CERTIFICATE REQUEST" | "NEW CERTIFICATE REQUEST")
}

/// Accepts PEM (`CERTIFICATE REQUEST` or `NEW CERTIFICATE REQUEST`), bare base64, or DER.
pub fn decode(input: &[u8]) -> Result<Vec<u8>> {
    let text = std::str::from_utf8(input).ok().map(str::trim);
    let der = match text {
        Some(t) if t.starts_with("-----BEGIN") => {
            let (label_ok, der) = match crate::pem::plain_block(t) {
                Some((label, der)) => (is_request_label(label), der),
                None => {
                    let block =
                        pem::parse(t).map_err(|_| invalid("the PEM block does not parse"))?;
                    (is_request_label(block.tag()), block.into_contents())
                }
            };
            if !label_ok {
                return Err(invalid("the PEM block is not a CERTIFICATE REQUEST"));
            }
            der
        }
        Some(t)
            if !t.is_empty()
                && t.bytes().all(|b| b.is_ascii_alphanumeric() || b"+/=\r\n".contains(&b)) =>
        {
            base64::engine::general_purpose::STANDARD
                .decode(t.replace(['\r', '\n'], ""))
                .map_err(|_| invalid("the request is not valid base64"))?
        }
        _ => input.to_vec(),
    };
    if der.is_empty() || der.len() > MAX_CSR_BYTES {
        return Err(invalid(format!("the request must be 1 to {MAX_CSR_BYTES} bytes of DER")));
    }
    Ok(der)
}

/// Classifies a SubjectPublicKeyInfo.
pub fn key_of(spki: &x509_parser::x509::SubjectPublicKeyInfo<'_>) -> RequestKey {
    match spki.parsed() {
        Ok(PublicKey::RSA(rsa)) => {
            let bits = u32::try_from(rsa.key_size()).unwrap_or(0);
            match bits {
                2048 => RequestKey::Known(KeyType::Rsa2048),
                3072 => RequestKey::Known(KeyType::Rsa3072),
                4096 => RequestKey::Known(KeyType::Rsa4096),
                b => RequestKey::Rsa(b),
            }
        }
        Ok(PublicKey::EC(_)) => {
            let curve = spki
                .algorithm
                .parameters
                .as_ref()
                .and_then(|p| p.as_oid().ok())
                .map(|o| crate::oid_text::dotted(&o));
            match curve.as_deref() {
                Some("1.2.840.10045.3.1.7") => RequestKey::Known(KeyType::P256),
                Some("1.3.132.0.34") => RequestKey::Known(KeyType::P384),
                Some(c) => RequestKey::Other(format!("EC curve {c}")),
                None => RequestKey::Other("EC key without a named curve".into()),
            }
        }
        Ok(_) => {
            RequestKey::Other(format!("key algorithm {}", spki.algorithm.algorithm.to_id_string()))
        }
        Err(_) => RequestKey::Other("unparseable public key".into()),
    }
}

/// Parses and verifies a request.
pub fn parse(input: &[u8]) -> Result<ParsedCsr> {
    let der = decode(input)?;
    let (rest, csr) = X509CertificationRequest::from_der(&der)
        .map_err(|e| invalid(format!("not a PKCS#10 request: {e}")))?;
    if !rest.is_empty() {
        return Err(invalid("trailing bytes after the request"));
    }
    // ring verifies only RSA keys of 2048 bits and more; a weaker key is refused for what it
    // is rather than as a bad signature.
    let key = key_of(&csr.certification_request_info.subject_pki);
    if let RequestKey::Rsa(bits) = key
        && bits < 2048
    {
        return Err(CoreError::invalid(
            ErrorCode::KeyNotAllowed,
            format!("RSA keys of {bits} bits are too weak"),
        ));
    }
    csr.verify_signature().map_err(|_| {
        CoreError::invalid(
            ErrorCode::CsrSignatureInvalid,
            "the request's signature does not verify (no proof of possession)",
        )
    })?;
    let info = &csr.certification_request_info;
    // An RDN with several attributes is read differently by different relying parties.
    if info.subject.iter_rdn().any(|rdn| rdn.iter().count() > 1) {
        return Err(CoreError::invalid(
            ErrorCode::SubjectNotAllowed,
            "the subject has a multi-valued RDN (several attributes in one RDN)",
        ));
    }
    let subject = name_attributes(&info.subject)?;
    let mut sans = Vec::new();
    if let Some(exts) = csr.requested_extensions() {
        for ext in exts {
            if let ParsedExtension::SubjectAlternativeName(san) = ext {
                for name in &san.general_names {
                    sans.push(san_of(name)?);
                }
            }
        }
    }
    Ok(ParsedCsr {
        key: key_of(&info.subject_pki),
        spki_der: info.subject_pki.raw.to_vec(),
        der,
        subject,
        sans,
    })
}

/// A subject alternative name as Sigil knows them (DNS names lowercased).
pub fn san_of(name: &GeneralName<'_>) -> Result<San> {
    Ok(match name {
        GeneralName::DNSName(d) => San::Dns(d.to_ascii_lowercase()),
        GeneralName::RFC822Name(e) => San::Email((*e).to_owned()),
        GeneralName::URI(u) => San::Uri((*u).to_owned()),
        GeneralName::IPAddress(b) => San::Ip(ip_text(b)?),
        other => {
            return Err(CoreError::invalid(
                ErrorCode::SanNotAllowed,
                format!("unsupported SAN type {other:?}"),
            ));
        }
    })
}

fn ip_text(b: &[u8]) -> Result<String> {
    let ip = match b.len() {
        4 => IpAddr::from(<[u8; 4]>::try_from(b).map_err(|_| invalid("bad IP SAN"))?),
        16 => IpAddr::from(<[u8; 16]>::try_from(b).map_err(|_| invalid("bad IP SAN"))?),
        _ => return Err(invalid("an IP SAN must be 4 or 16 bytes")),
    };
    Ok(ip.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn make_csr(key: &rcgen::KeyPair, cn: &str, sans: Vec<String>) -> String {
        let mut p = rcgen::CertificateParams::new(sans).unwrap();
        p.distinguished_name.push(rcgen::DnType::CommonName, cn);
        p.serialize_request(key).unwrap().pem().unwrap()
    }

    #[test]
    fn a_valid_request_yields_subject_sans_and_key() {
        let key = rcgen::KeyPair::generate().unwrap();
        let pem = make_csr(&key, "alice", vec!["www.example.org".into(), "10.1.2.3".into()]);
        let csr = parse(pem.as_bytes()).unwrap();
        assert_eq!(csr.common_name(), Some("alice"));
        assert_eq!(csr.key, RequestKey::Known(KeyType::P256));
        assert_eq!(csr.sans, vec![San::Dns("www.example.org".into()), San::Ip("10.1.2.3".into())]);
        // Base64 and DER forms parse the same.
        assert_eq!(parse(&csr.der).unwrap().subject, csr.subject);
    }

    #[test]
    fn garbage_and_tampered_requests_are_refused() {
        assert_eq!(parse(b"hello").unwrap_err().code(), "invalid_csr");
        assert_eq!(
            parse(b"-----BEGIN CERTIFICATE REQUEST-----\n!!!\n-----END CERTIFICATE REQUEST-----")
                .unwrap_err()
                .code(),
            "invalid_csr"
        );
        let key = rcgen::KeyPair::generate().unwrap();
        let pem = make_csr(&key, "alice", vec![]);
        let mut der = parse(pem.as_bytes()).unwrap().der;
        // Flip a byte inside the CN: the signature no longer matches.
        let i = der.windows(5).position(|w| w == b"alice").unwrap();
        der[i] = b'A';
        assert_eq!(parse(&der).unwrap_err().code(), "csr_signature_invalid");
    }
}
