//! A key and a certificate request made on the client's machine (`sigil cert issue`): the
//! private key never leaves it; only the PKCS#10 request goes to the server.

use sigil_core::certs::{KeyType, NameAttribute, San};
use sigil_core::{CoreError, ErrorCode, Result};
use zeroize::Zeroizing;

use crate::builtin::{distinguished_name, san};
use crate::{keys, pem};

/// Parses a subject written `CN=alice,O=Acme Ltd,C=DE` (attributes in the order given; `\,`
/// and `\\` escape a comma and a backslash inside a value).
pub fn parse_subject(s: &str) -> Result<Vec<NameAttribute>> {
    let bad = |m: String| CoreError::invalid(ErrorCode::SubjectNotAllowed, m);
    let mut parts = Vec::new();
    let mut cur = String::new();
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => match chars.next() {
                Some(n) => cur.push(n),
                None => return Err(bad("the subject ends with a lone `\\`".into())),
            },
            ',' => parts.push(std::mem::take(&mut cur)),
            c => cur.push(c),
        }
    }
    parts.push(cur);
    parts
        .into_iter()
        .map(|p| {
            let (attribute, value) = p
                .split_once('=')
                .ok_or_else(|| bad(format!("`{p}` is not ATTRIBUTE=VALUE (CN=…,O=…)")))?;
            let (attribute, value) = (attribute.trim(), value.trim());
            if attribute.is_empty() || value.is_empty() {
                return Err(bad(format!("`{p}` has an empty attribute or value")));
            }
            Ok(NameAttribute { attribute: attribute.to_owned(), value: value.to_owned() })
        })
        .collect()
}

/// Parses a subject alternative name written `dns:NAME`, `ip:ADDRESS`, `email:ADDRESS` or
/// `uri:URI`.
pub fn parse_san(s: &str) -> Result<San> {
    let bad = || {
        CoreError::invalid(
            ErrorCode::SanNotAllowed,
            format!("`{s}` is not dns:NAME, ip:ADDRESS, email:ADDRESS or uri:URI"),
        )
    };
    let (kind, value) = s.split_once(':').ok_or_else(bad)?;
    if value.is_empty() {
        return Err(bad());
    }
    Ok(match kind.to_ascii_lowercase().as_str() {
        "dns" => San::Dns(value.to_owned()),
        "ip" => {
            value.parse::<std::net::IpAddr>().map_err(|_| bad())?;
            San::Ip(value.to_owned())
        }
        "email" => San::Email(value.to_owned()),
        "uri" => San::Uri(value.to_owned()),
        _ => return Err(bad()),
    })
}

/// A new key of type `k` and a PKCS#10 request signed with it for `subject` and `sans`:
/// (the key as PKCS#8 PEM, the request PEM).
pub fn new_request(
    k: KeyType,
    subject: &[NameAttribute],
    sans: &[San],
) -> Result<(Zeroizing<String>, String)> {
    let pkcs8 = keys::generate(k)?;
    let key = keys::load(&pkcs8, k)?;
    let mut params =
        rcgen::CertificateParams::new(Vec::<String>::new()).map_err(crate::PkiError::from)?;
    params.distinguished_name = distinguished_name(subject)?;
    params.subject_alt_names = sans.iter().map(san).collect::<Result<_>>()?;
    let csr = params.serialize_request(&key).map_err(crate::PkiError::from)?;
    let csr = csr.pem().map_err(crate::PkiError::from)?;
    Ok((Zeroizing::new(pem::encode("PRIVATE KEY", &pkcs8)), csr))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subjects_and_names_parse_as_written_and_nonsense_is_refused() {
        let s = parse_subject("CN=alice, O=Acme\\, Ltd,C=DE").unwrap();
        let got: Vec<(&str, &str)> =
            s.iter().map(|a| (a.attribute.as_str(), a.value.as_str())).collect();
        assert_eq!(got, [("CN", "alice"), ("O", "Acme, Ltd"), ("C", "DE")]);
        assert!(parse_subject("alice").is_err());
        assert!(parse_subject("CN=").is_err());
        assert_eq!(parse_san("dns:a.example").unwrap(), San::Dns("a.example".into()));
        assert_eq!(parse_san("IP:10.0.0.1").unwrap(), San::Ip("10.0.0.1".into()));
        assert!(parse_san("ip:not-an-ip").is_err());
        assert!(parse_san("mail:x@y").is_err());
    }

    #[test]
    fn a_request_carries_the_subject_and_names_and_verifies() {
        use x509_parser::prelude::FromDer as _;
        let subject = parse_subject("CN=alice,O=Acme").unwrap();
        let sans = [parse_san("dns:alice.example").unwrap(), parse_san("ip:10.1.2.3").unwrap()];
        let (key, csr) = new_request(KeyType::P256, &subject, &sans).unwrap();
        assert!(key.starts_with("-----BEGIN PRIVATE KEY-----"));
        let der = pem::decode("CERTIFICATE REQUEST", &csr).unwrap();
        let (_, req) =
            x509_parser::certification_request::X509CertificationRequest::from_der(&der).unwrap();
        req.verify_signature().unwrap();
        assert_eq!(req.certification_request_info.subject.to_string(), "CN=alice, O=Acme");
    }
}
