//! The `CsrParser` port of sigil-core: CSRs parsed and checked (`csr`), issued certificates read
//! back (`inspect`).

use sigil_core::certs::ParsedCsr;
use sigil_core::certs::profile::conformance::IssuedContent;
use sigil_core::{CoreError, Result};
use x509_parser::prelude::FromDer;

/// The PKCS#10 parser as sigil-core's port.
#[derive(Debug, Default, Clone, Copy)]
pub struct Pkcs10;

impl sigil_core::certs::ca::CsrParser for Pkcs10 {
    fn parse(&self, input: &[u8]) -> Result<ParsedCsr> {
        crate::csr::parse(input)
    }

    fn certificate_spki(&self, cert_der: &[u8]) -> Result<Vec<u8>> {
        let (_, cert) = x509_parser::certificate::X509Certificate::from_der(cert_der)
            .map_err(|_| CoreError::Internal("a stored certificate does not parse".into()))?;
        Ok(cert.public_key().raw.to_vec())
    }

    fn issued_content(&self, cert_der: &[u8]) -> Result<IssuedContent> {
        crate::inspect::issued_content(cert_der)
    }
}
