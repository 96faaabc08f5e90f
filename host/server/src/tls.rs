//! The rustls configurations: the server's (its certificate, and optional client-certificate
//! verification (mTLS) against the configured client CA and CRL), and the `sigil cert` client's.

use std::path::Path;
use std::sync::Arc;

use anyhow::{Context, Result};
use rustls::ServerConfig;
use rustls::server::WebPkiClientVerifier;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, CertificateRevocationListDer, PrivateKeyDer};

use crate::config::TlsSection;

/// Builds the server TLS configuration.
pub fn server_config(tls: &TlsSection, cert: &Path, key: &Path) -> Result<ServerConfig> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(cert)
        .with_context(|| format!("reading {}", cert.display()))?
        .collect::<Result<_, _>>()
        .with_context(|| format!("parsing {}", cert.display()))?;
    let key =
        PrivateKeyDer::from_pem_file(key).with_context(|| format!("reading {}", key.display()))?;
    let builder = ServerConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()?;
    let mut cfg = match &tls.client_ca_file {
        None => builder.with_no_client_auth().with_single_cert(chain, key)?,
        Some(ca) => {
            let roots = roots(ca)?;
            let crls: Vec<CertificateRevocationListDer<'static>> = match &tls.client_crl_file {
                Some(f) => CertificateRevocationListDer::pem_file_iter(f)
                    .with_context(|| format!("reading {}", f.display()))?
                    .collect::<Result<_, _>>()?,
                None => vec![],
            };
            // Certificates are optional at the handshake; the exposure rule of each endpoint
            // decides whether one is required.
            let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider)
                .allow_unauthenticated()
                .with_crls(crls)
                .build()?;
            builder.with_client_cert_verifier(verifier).with_single_cert(chain, key)?
        }
    };
    cfg.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(cfg)
}

/// The certificates of PEM file `ca`, as trust anchors.
fn roots(ca: &Path) -> Result<rustls::RootCertStore> {
    let mut roots = rustls::RootCertStore::empty();
    for c in
        CertificateDer::pem_file_iter(ca).with_context(|| format!("reading {}", ca.display()))?
    {
        roots.add(c.with_context(|| format!("{}: not a PEM certificate", ca.display()))?)?;
    }
    Ok(roots)
}

/// The client configuration of `sigil cert`: trusting only the CAs in `ca`.
pub fn client_config(ca: &Path) -> Result<rustls::ClientConfig> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut cfg = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_root_certificates(roots(ca).context("give --ca-file or SIGIL_CA_FILE")?)
        .with_no_client_auth();
    cfg.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(cfg)
}
