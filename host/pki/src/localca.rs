//! The local CA created on first start: a root, an issuing CA under it, and the server's TLS
//! certificate for localhost issued by the issuing CA. Clients trust `<data_dir>/tls/ca.pem`.
//!
//! Files under `<data_dir>/tls/`: `ca.pem` (root), `ca-key.pem`, `issuing.pem`,
//! `issuing-key.pem`, `server.pem` (leaf then issuing CA), `server-key.pem`. Key files are 0600.

use std::path::{Path, PathBuf};

use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose, SanType,
};
use time::{Duration, OffsetDateTime};

use crate::{PkiError, write_private};

/// Paths of the local CA's files.
#[derive(Debug, Clone)]
pub struct LocalCaFiles {
    /// Directory holding them.
    pub dir: PathBuf,
}

impl LocalCaFiles {
    /// `<data_dir>/tls`.
    pub fn in_data_dir(data_dir: &Path) -> Self {
        Self { dir: data_dir.join("tls") }
    }
    /// The trust anchor clients need.
    pub fn root_cert(&self) -> PathBuf {
        self.dir.join("ca.pem")
    }
    fn root_key(&self) -> PathBuf {
        self.dir.join("ca-key.pem")
    }
    /// The issuing CA certificate.
    pub fn issuing_cert(&self) -> PathBuf {
        self.dir.join("issuing.pem")
    }
    fn issuing_key(&self) -> PathBuf {
        self.dir.join("issuing-key.pem")
    }
    /// The server certificate chain (leaf first).
    pub fn server_cert(&self) -> PathBuf {
        self.dir.join("server.pem")
    }
    /// The server key.
    pub fn server_key(&self) -> PathBuf {
        self.dir.join("server-key.pem")
    }
}

fn read(path: &Path) -> Result<String, PkiError> {
    std::fs::read_to_string(path)
        .map_err(|source| PkiError::Io { path: path.display().to_string(), source })
}

fn write_public(path: &Path, data: &str) -> Result<(), PkiError> {
    std::fs::write(path, data)
        .map_err(|source| PkiError::Io { path: path.display().to_string(), source })
}

fn dn(cn: &str) -> DistinguishedName {
    let mut d = DistinguishedName::new();
    d.push(DnType::OrganizationName, "Sigil");
    d.push(DnType::CommonName, cn);
    d
}

fn ca_params(cn: &str, years: i64, path_len: Option<u8>) -> CertificateParams {
    let mut p = CertificateParams::default();
    p.distinguished_name = dn(cn);
    p.is_ca = match path_len {
        Some(n) => IsCa::Ca(BasicConstraints::Constrained(n)),
        None => IsCa::Ca(BasicConstraints::Unconstrained),
    };
    p.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    let now = OffsetDateTime::now_utc();
    p.not_before = now - Duration::minutes(5);
    p.not_after = now + Duration::days(365 * years);
    p.serial_number = Some(random_serial().into());
    p.use_authority_key_identifier_extension = path_len.is_some();
    p
}

/// A random positive 16-byte serial number.
pub fn random_serial() -> Vec<u8> {
    let mut s = [0u8; 16];
    if ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut s).is_err() {
        // ring's system source does not fail on supported platforms; a time-based serial keeps
        // us going rather than refusing to start.
        s[..16].copy_from_slice(&OffsetDateTime::now_utc().unix_timestamp_nanos().to_be_bytes());
    }
    s[0] &= 0x7f;
    s[0] |= 0x01;
    s.to_vec()
}

/// Creates the root and issuing CA if missing, and (re)issues the server certificate when it is
/// missing or expires within 30 days. Returns the file set.
pub fn ensure(data_dir: &Path, server_names: &[String]) -> Result<LocalCaFiles, PkiError> {
    let files = LocalCaFiles::in_data_dir(data_dir);
    std::fs::create_dir_all(&files.dir)
        .map_err(|source| PkiError::Io { path: files.dir.display().to_string(), source })?;
    if !files.root_cert().exists() || !files.issuing_cert().exists() {
        let root_key = KeyPair::generate()?;
        let root_params = ca_params("Sigil Local Root CA", 20, None);
        let root = root_params.self_signed(&root_key)?;
        let issuing_key = KeyPair::generate()?;
        let issuing = ca_params("Sigil Local Issuing CA", 10, Some(0))
            .signed_by(&issuing_key, &Issuer::new(root_params, &root_key))?;
        write_private(&files.root_key(), root_key.serialize_pem().as_bytes())?;
        write_public(&files.root_cert(), &root.pem())?;
        write_private(&files.issuing_key(), issuing_key.serialize_pem().as_bytes())?;
        write_public(&files.issuing_cert(), &issuing.pem())?;
        let _ = std::fs::remove_file(files.server_cert());
    }
    if server_cert_needs_renewal(&files.server_cert()) {
        issue_server_cert(&files, server_names)?;
    }
    Ok(files)
}

fn server_cert_needs_renewal(path: &Path) -> bool {
    let Ok(text) = std::fs::read_to_string(path) else {
        return true;
    };
    let Some(der) = crate::pem::decode("CERTIFICATE", &text) else {
        return true;
    };
    match x509_parser::parse_x509_certificate(&der) {
        Ok((_, cert)) => {
            let not_after = cert.validity().not_after.timestamp();
            not_after - OffsetDateTime::now_utc().unix_timestamp() < 30 * 86_400
        }
        Err(_) => true,
    }
}

fn issue_server_cert(files: &LocalCaFiles, names: &[String]) -> Result<(), PkiError> {
    let issuing_key = KeyPair::from_pem(&read(&files.issuing_key())?)
        .map_err(|_| PkiError::InvalidKey(files.issuing_key().display().to_string()))?;
    let issuing_pem = read(&files.issuing_cert())?;
    let issuer = Issuer::from_ca_cert_pem(&issuing_pem, &issuing_key)?;
    let key = KeyPair::generate()?;
    let mut p = CertificateParams::default();
    p.distinguished_name = dn(names.first().map(String::as_str).unwrap_or("localhost"));
    p.subject_alt_names = names
        .iter()
        .map(|n| match n.parse::<std::net::IpAddr>() {
            Ok(ip) => Ok(SanType::IpAddress(ip)),
            Err(_) => n.clone().try_into().map(SanType::DnsName),
        })
        .collect::<Result<_, _>>()?;
    p.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    p.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    let now = OffsetDateTime::now_utc();
    p.not_before = now - Duration::minutes(5);
    p.not_after = now + Duration::days(397);
    p.serial_number = Some(random_serial().into());
    p.use_authority_key_identifier_extension = true;
    let cert = p.signed_by(&key, &issuer)?;
    write_private(&files.server_key(), key.serialize_pem().as_bytes())?;
    write_public(&files.server_cert(), &format!("{}{}", cert.pem(), issuing_pem))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn first_start_creates_a_chain_that_openssl_accepts() {
        let dir = tempfile::tempdir().unwrap();
        let files = ensure(dir.path(), &["localhost".into(), "127.0.0.1".into()]).unwrap();
        let root_before = std::fs::read(files.root_cert()).unwrap();
        ensure(dir.path(), &["localhost".into()]).unwrap();
        assert_eq!(std::fs::read(files.root_cert()).unwrap(), root_before, "root is kept");
        // The chain file holds the leaf then the issuing CA; openssl must accept the leaf.
        if std::process::Command::new("openssl").arg("version").output().is_ok() {
            let leaf_only = dir.path().join("leaf.pem");
            let chain = std::fs::read_to_string(files.server_cert()).unwrap();
            let end = chain.find("-----END CERTIFICATE-----").unwrap() + 26;
            std::fs::write(&leaf_only, &chain[..end]).unwrap();
            let out = std::process::Command::new("openssl")
                .args(["verify", "-CAfile"])
                .arg(files.root_cert())
                .arg("-untrusted")
                .arg(files.issuing_cert())
                .arg("-purpose")
                .arg("sslserver")
                .arg(&leaf_only)
                .output()
                .unwrap();
            assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        }
    }
}
