//! The offline root: what `sigil ca` does with a root key that the server never stores. A root
//! is made on an offline machine; it signs issuing CA certificates from their requests and its
//! own CRLs there; the server gets only the issuing CA (its key made and sealed on the server)
//! and the root's certificate.

use rcgen::{
    CertificateRevocationListParams, CertificateSigningRequestParams, Issuer, KeyIdMethod, KeyPair,
    RevokedCertParams, SerialNumber,
};
use rustls_pki_types::{CertificateDer, CertificateSigningRequestDer};
use sigil_core::certs::{KeyType, RevocationReason};
use time::{Duration, OffsetDateTime};
use x509_parser::prelude::{FromDer, X509Certificate};
use zeroize::Zeroizing;

use crate::builtin::{CaNames, ca_params, crl_reason, serial_bytes};
use crate::{PkiError, keys, pem};

fn bad(m: impl Into<String>) -> PkiError {
    PkiError::Parse(m.into())
}

/// A new self-signed root named `names` (its root CN) : (PKCS#8 key PEM, certificate PEM).
pub fn new_root(
    k: KeyType,
    names: &CaNames,
    years: i64,
    now: OffsetDateTime,
) -> Result<(Zeroizing<String>, String), PkiError> {
    let pkcs8 = keys::generate(k)?;
    let key = keys::load(&pkcs8, k)?;
    let cn = names.root_common_name.as_deref().unwrap_or("Sigil Root CA");
    let cert = ca_params(names.dn(cn), years, None, now).self_signed(&key)?;
    Ok((Zeroizing::new(pem::encode("PRIVATE KEY", &pkcs8)), pem::encode("CERTIFICATE", cert.der())))
}

/// A new issuing CA key of type `k` and a PKCS#10 request for it named `names` (its issuing
/// CN, or `cn`): (PKCS#8 key DER, request PEM).
pub fn new_request(
    k: KeyType,
    names: &CaNames,
    cn: &str,
) -> Result<(Zeroizing<Vec<u8>>, String), PkiError> {
    let pkcs8 = keys::generate(k)?;
    let key = keys::load(&pkcs8, k)?;
    let mut params = rcgen::CertificateParams::new(Vec::<String>::new())?;
    params.distinguished_name = names.dn(names.issuing_common_name.as_deref().unwrap_or(cn));
    let csr = params.serialize_request(&key)?;
    Ok((pkcs8, csr.pem()?))
}

/// A root key and certificate, checked to belong together.
pub struct Root {
    issuer: Issuer<'static, KeyPair>,
    der: Vec<u8>,
    not_after: OffsetDateTime,
    key_id: Vec<u8>,
}

impl std::fmt::Debug for Root {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Root").finish_non_exhaustive()
    }
}

impl Root {
    /// Loads the root from its key (PKCS#8 PEM) and certificate (PEM).
    pub fn load(key_pem: &str, cert_pem: &str) -> Result<Self, PkiError> {
        let der = pem::decode("CERTIFICATE", cert_pem)
            .ok_or_else(|| bad("no CERTIFICATE in the root certificate file"))?;
        let pkcs8 = Zeroizing::new(
            pem::decode("PRIVATE KEY", key_pem)
                .ok_or_else(|| bad("the root key must be an unencrypted PKCS#8 PRIVATE KEY"))?,
        );
        let (_, cert) = X509Certificate::from_der(&der)
            .map_err(|_| bad("the root certificate does not parse"))?;
        if !cert.is_ca() {
            return Err(bad("the root certificate is not a CA certificate"));
        }
        let k = match crate::csr::key_of(cert.public_key()) {
            sigil_core::certs::RequestKey::Known(k) => k,
            other => return Err(bad(format!("unsupported root key {other}"))),
        };
        let key = keys::load(&pkcs8, k)?;
        if rcgen::PublicKeyData::subject_public_key_info(&key) != cert.public_key().raw {
            return Err(bad("the key does not belong to the root certificate"));
        }
        let not_after = cert.validity().not_after.to_datetime();
        let key_id = crate::builtin::subject_key_id(&der)
            .ok_or_else(|| bad("the root certificate has no subject key identifier"))?;
        let issuer = Issuer::from_ca_cert_der(&CertificateDer::from(der.as_slice()), key)?;
        Ok(Self { issuer, der, not_after, key_id })
    }

    /// Signs an issuing CA certificate for the request `csr_pem` (its signature checked),
    /// valid `years` but never past the root, with path length `path_len`; with `published`
    /// (the root's CRL URL and its certificate's URL) it carries a CRL distribution point and
    /// an authorityInfoAccess caIssuers; PEM.
    pub fn sign_issuing(
        &self,
        csr_pem: &str,
        years: i64,
        path_len: u8,
        published: Option<(&str, &str)>,
        now: OffsetDateTime,
    ) -> Result<String, PkiError> {
        let der = pem::decode("CERTIFICATE REQUEST", csr_pem)
            .ok_or_else(|| bad("no CERTIFICATE REQUEST in the request file"))?;
        let csr =
            CertificateSigningRequestParams::from_der(&CertificateSigningRequestDer::from(der))
                .map_err(|e| bad(format!("the request does not verify: {e}")))?;
        let mut params =
            ca_params(csr.params.distinguished_name.clone(), years, Some(path_len), now);
        params.not_after = params.not_after.min(self.not_after);
        if let Some((crl, ca)) = published {
            params.crl_distribution_points =
                vec![rcgen::CrlDistributionPoint { uris: vec![crl.to_owned()] }];
            if let Some(aia) = crate::aia::value(None, Some(ca)) {
                params
                    .custom_extensions
                    .push(rcgen::CustomExtension::from_oid_content(&crate::aia::OID, aia));
            }
        }
        let cert = params.signed_by(&csr.public_key, &self.issuer)?;
        Ok(pem::encode("CERTIFICATE", cert.der()))
    }

    /// The root's CRL listing `revoked` (serial in hex, reason, time), numbered `number`, valid
    /// for `days`; DER.
    pub fn crl(
        &self,
        revoked: &[(String, RevocationReason, OffsetDateTime)],
        number: u64,
        days: i64,
        now: OffsetDateTime,
    ) -> Result<Vec<u8>, PkiError> {
        let params = CertificateRevocationListParams {
            this_update: now,
            next_update: now + Duration::days(days),
            crl_number: SerialNumber::from(number),
            issuing_distribution_point: None,
            revoked_certs: revoked
                .iter()
                .map(|(serial, reason, at)| RevokedCertParams {
                    serial_number: SerialNumber::from_slice(&serial_bytes(serial)),
                    revocation_time: *at,
                    reason_code: (*reason != RevocationReason::Unspecified)
                        .then(|| crl_reason(*reason)),
                    invalidity_date: None,
                })
                .collect(),
            key_identifier_method: KeyIdMethod::PreSpecified(self.key_id.clone()),
        };
        Ok(params.signed_by(&self.issuer)?.der().to_vec())
    }

    /// The root certificate, DER.
    pub fn der(&self) -> &[u8] {
        &self.der
    }
}

/// Checks that `cert_pem` (an issuing CA) is signed by the first certificate of `chain_pem`,
/// each of those by the next, and the last is self-signed: what `sigil ca install` requires.
pub fn check_chain(cert_pem: &str, chain_pem: &str) -> Result<(), PkiError> {
    let cert = pem::decode("CERTIFICATE", cert_pem)
        .ok_or_else(|| bad("no CERTIFICATE in the CA certificate file"))?;
    let mut ders = vec![cert];
    ders.extend(crate::builtin::pem_blocks("CERTIFICATE", chain_pem));
    if ders.len() < 2 {
        return Err(bad("the chain file holds no certificate: give the root's certificate"));
    }
    let parsed = ders
        .iter()
        .map(|d| X509Certificate::from_der(d).map(|(_, c)| c))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|_| bad("a certificate of the chain does not parse"))?;
    for pair in parsed.windows(2) {
        let (child, parent) = (&pair[0], &pair[1]);
        if !parent.is_ca() || child.issuer() != parent.subject() {
            return Err(bad(format!("{} is not issued by {}", child.subject(), parent.subject())));
        }
        child
            .verify_signature(Some(parent.public_key()))
            .map_err(|_| bad(format!("the signature on {} does not verify", child.subject())))?;
    }
    let last = parsed.last().ok_or_else(|| bad("empty chain"))?;
    if last.issuer() != last.subject() || last.verify_signature(None).is_err() {
        return Err(bad("the chain does not end in a self-signed root"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn openssl(dir: &std::path::Path, args: &[&str]) -> (bool, String) {
        let out =
            std::process::Command::new("openssl").current_dir(dir).args(args).output().unwrap();
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        (out.status.success(), text)
    }

    #[test]
    fn an_offline_root_signs_an_issuing_ca_and_a_crl_that_openssl_accepts() {
        let dir = tempfile::tempdir().unwrap();
        let now = OffsetDateTime::now_utc();
        let names = CaNames {
            organization: Some("Example Corp".into()),
            country: Some("DE".into()),
            root_common_name: Some("Example Root".into()),
            issuing_common_name: None,
        };
        let (root_key, root_pem) = new_root(KeyType::P384, &names, 20, now).unwrap();
        let root = Root::load(&root_key, &root_pem).unwrap();
        let (_, csr) = new_request(KeyType::P256, &names, "Example Issuing").unwrap();
        let urls =
            ("http://pki.example.org/crl/corp-root.crl", "http://pki.example.org/ca/corp-root.crt");
        let issuing = root.sign_issuing(&csr, 50, 0, Some(urls), now).unwrap();
        check_chain(&issuing, &root_pem).unwrap();
        let crl =
            root.crl(&[("0abc".into(), RevocationReason::KeyCompromise, now)], 7, 30, now).unwrap();
        std::fs::write(dir.path().join("root.pem"), &root_pem).unwrap();
        std::fs::write(dir.path().join("issuing.pem"), &issuing).unwrap();
        std::fs::write(dir.path().join("root.crl"), &crl).unwrap();
        let (ok, out) =
            openssl(dir.path(), &["verify", "-x509_strict", "-CAfile", "root.pem", "issuing.pem"]);
        assert!(ok, "{out}");
        let (ok, out) = openssl(dir.path(), &["x509", "-in", "issuing.pem", "-noout", "-text"]);
        assert!(ok && out.contains("CA:TRUE, pathlen:0"), "{out}");
        assert!(out.contains("C = DE, O = Example Corp, CN = Example Issuing"), "{out}");
        assert!(out.contains("URI:http://pki.example.org/crl/corp-root.crl"), "{out}");
        assert!(out.contains("CA Issuers - URI:http://pki.example.org/ca/corp-root.crt"), "{out}");
        // Never valid past the root.
        let (_, r) = X509Certificate::from_der(root.der()).unwrap();
        let i = pem::decode("CERTIFICATE", &issuing).unwrap();
        let (_, i) = X509Certificate::from_der(&i).unwrap();
        assert!(i.validity().not_after <= r.validity().not_after);
        let (ok, out) = openssl(
            dir.path(),
            &["crl", "-inform", "DER", "-in", "root.crl", "-CAfile", "root.pem", "-noout", "-text"],
        );
        assert!(
            ok && out.contains("verify OK")
                && out.contains("0ABC")
                && out.contains("Key Compromise"),
            "{out}"
        );
        // A chain to another root, or a key that is not the root's, is refused.
        let (other_key, other_pem) = new_root(KeyType::P256, &CaNames::default(), 20, now).unwrap();
        assert!(check_chain(&issuing, &other_pem).is_err());
        assert!(Root::load(&other_key, &root_pem).is_err());
    }
}
