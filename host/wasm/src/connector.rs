//! A CA connector plugin as one of Sigil's CA back ends (the core `Issuer` port).
//!
//! The external CA chooses serial and validity; Sigil records what it actually issued. Sigil does
//! not take the connector's word for it: the certificate must carry the requested key, name the
//! connector's CA as issuer and verify under that CA's key, or the issuance fails and nothing is
//! recorded.

use sigil_core::ErrorCode;
use std::sync::Arc;

use async_trait::async_trait;
use sigil_core::certs::RevocationReason;
use sigil_core::certs::ca::{Holds, IssueOrder, Issued as CoreIssued, IssuedRef, Issuer};
use sigil_core::{CoreError, Result};
use x509_parser::prelude::{FromDer, X509Certificate};

use crate::engine::PluginEngine;
use crate::error::PluginError;
use crate::plugin::Counters;
use crate::plugin::{
    CertificateRef, ConnectorCall, ConnectorInfo, ConnectorReply, IssueRequest, Kv, LoadedPlugin,
};

/// A loaded CA connector, serving as the back end named by its plugin id.
pub(crate) struct PluginIssuer {
    engine: Arc<PluginEngine>,
    plugin: Arc<LoadedPlugin>,
    counters: Arc<Counters>,
    ca_der: Vec<u8>,
    /// Issuing CA first, root last.
    chain: Vec<Vec<u8>>,
    supports_suspension: bool,
}

fn bad_cert(plugin: &str, why: impl std::fmt::Display) -> CoreError {
    CoreError::Dependency {
        code: ErrorCode::CaBadCertificate,
        detail: format!("CA connector `{plugin}` returned an unusable certificate: {why}"),
    }
}

fn parse(der: &[u8]) -> std::result::Result<X509Certificate<'_>, String> {
    match X509Certificate::from_der(der) {
        Ok(([], c)) => Ok(c),
        Ok(_) => Err("trailing bytes after the certificate".into()),
        Err(e) => Err(e.to_string()),
    }
}

/// A serial in lowercase hex as decimal digits (the `serial-decimal` the WIT hands connectors).
pub fn serial_decimal(hex_serial: &str) -> String {
    let mut digits: Vec<u8> = vec![0]; // little-endian base-10 digits
    for c in hex_serial.chars().filter_map(|c| c.to_digit(16)) {
        let mut carry = c;
        for d in &mut digits {
            let v = u32::from(*d) * 16 + carry;
            *d = u8::try_from(v % 10).unwrap_or(0);
            carry = v / 10;
        }
        while carry > 0 {
            digits.push(u8::try_from(carry % 10).unwrap_or(0));
            carry /= 10;
        }
    }
    digits.iter().rev().map(|d| char::from(b'0' + d)).collect()
}

impl PluginIssuer {
    /// Asks the connector for its CA (the canary call of a load) and checks what it says.
    pub(crate) async fn connect(
        engine: Arc<PluginEngine>,
        plugin: Arc<LoadedPlugin>,
        counters: Arc<Counters>,
    ) -> std::result::Result<Self, String> {
        let info = match engine.connector(&plugin, ConnectorCall::Info).await {
            Ok(ConnectorReply::Info(i)) => i,
            Ok(other) => return Err(format!("info answered {other:?}")),
            Err(e) => return Err(e.to_string()),
        };
        let ConnectorInfo { name, ca_certificate, chain, supports_suspension } = info;
        let ca = parse(&ca_certificate).map_err(|e| format!("info: CA certificate: {e}"))?;
        if !ca.is_ca() {
            return Err("info: the CA certificate is not a CA (basicConstraints)".into());
        }
        for (i, c) in chain.iter().enumerate() {
            parse(c).map_err(|e| format!("info: chain[{i}]: {e}"))?;
        }
        tracing::info!(plugin = %plugin.id, name = %name, subject = %ca.subject(), "CA connector ready");
        let mut full = vec![ca_certificate.clone()];
        full.extend(chain);
        Ok(Self {
            engine,
            plugin,
            counters,
            ca_der: ca_certificate,
            chain: full,
            supports_suspension,
        })
    }

    async fn call(&self, call: ConnectorCall<'_>) -> Result<ConnectorReply> {
        self.counters.record_call();
        let start = std::time::Instant::now();
        let reply = self.engine.connector(&self.plugin, call).await;
        self.counters.record_time(start);
        reply.map_err(|e: PluginError| {
            self.counters.record_fault(&e.to_string());
            CoreError::Dependency { code: e.code(), detail: e.to_string() }
        })
    }

    fn reference(cert: IssuedRef<'_>) -> CertificateRef {
        CertificateRef {
            serial: cert.serial.to_owned(),
            serial_decimal: serial_decimal(cert.serial),
            certificate: cert.der.to_vec(),
        }
    }

    /// Checks the certificate against the request and the CA; returns what Sigil records.
    fn accept(&self, der: Vec<u8>, spki: &[u8]) -> Result<CoreIssued> {
        let id = &self.plugin.id;
        let cert = parse(&der).map_err(|e| bad_cert(id, e))?;
        let ca = parse(&self.ca_der).map_err(|e| bad_cert(id, e))?;
        if cert.public_key().raw != spki {
            return Err(bad_cert(id, "it does not carry the requested public key"));
        }
        if cert.issuer().as_raw() != ca.subject().as_raw() {
            return Err(bad_cert(id, format!("its issuer is `{}`, not the CA's", cert.issuer())));
        }
        cert.verify_signature(Some(ca.public_key())).map_err(|e| {
            bad_cert(id, format!("its signature does not verify under the CA: {e}"))
        })?;
        let raw = cert.raw_serial();
        let first = raw.iter().position(|b| *b != 0).unwrap_or(raw.len().saturating_sub(1));
        let serial = raw.get(first..).unwrap_or_default().to_vec();
        let not_before = cert.validity().not_before.to_datetime();
        let not_after = cert.validity().not_after.to_datetime();
        drop(cert);
        Ok(CoreIssued { der, serial, not_before, not_after })
    }
}

#[async_trait]
impl Issuer for PluginIssuer {
    fn id(&self) -> &str {
        &self.plugin.id
    }

    fn kind(&self) -> &'static str {
        "plugin"
    }

    fn ca_certificate(&self) -> &[u8] {
        &self.ca_der
    }

    fn chain(&self) -> &[Vec<u8>] {
        &self.chain
    }

    async fn issue(&self, order: &IssueOrder<'_>) -> Result<CoreIssued> {
        if order.csr_der.is_empty() {
            return Err(CoreError::invalid(
                ErrorCode::CsrRequired,
                format!(
                    "CA back end `{}` issues from a certification request; renew with a new CSR",
                    self.plugin.id
                ),
            ));
        }
        let c = order.content;
        let request = IssueRequest {
            csr: order.csr_der.to_vec(),
            subject: c
                .subject
                .iter()
                .map(|a| Kv { key: a.attribute.clone(), value: a.value.clone() })
                .collect(),
            sans: c.sans.iter().map(|s| s.tagged()).collect(),
            validity_days: u32::try_from((c.not_after - c.not_before).whole_days()).unwrap_or(1),
            profile: order.profile.to_owned(),
        };
        match self.call(ConnectorCall::Issue(&request)).await? {
            ConnectorReply::Issued(i) => self.accept(i.certificate, &c.spki_der),
            other => Err(bad_cert(&self.plugin.id, format!("issue answered {other:?}"))),
        }
    }

    fn holds(&self) -> Option<&dyn Holds> {
        self.supports_suspension.then_some(self as &dyn Holds)
    }

    async fn revoke(&self, cert: IssuedRef<'_>, reason: RevocationReason) -> Result<()> {
        self.call(ConnectorCall::Revoke(&Self::reference(cert), reason.as_str())).await.map(drop)
    }
}

#[async_trait]
impl Holds for PluginIssuer {
    async fn suspend(&self, cert: IssuedRef<'_>) -> Result<()> {
        self.call(ConnectorCall::Suspend(&Self::reference(cert))).await.map(drop)
    }

    async fn reactivate(&self, cert: IssuedRef<'_>) -> Result<()> {
        self.call(ConnectorCall::Reactivate(&Self::reference(cert))).await.map(drop)
    }
}

#[cfg(test)]
mod tests {
    use super::serial_decimal as decimal;

    #[test]
    fn hex_serials_convert_to_decimal() {
        assert_eq!(decimal("00"), "0");
        assert_eq!(decimal("ff"), "255");
        assert_eq!(decimal("0100"), "256");
        // 2^64 + 1
        assert_eq!(decimal("010000000000000001"), "18446744073709551617");
        assert_eq!(
            decimal("2a32f5ecee3b93f5a3e0a0a1b4c2d5e6f7081920"),
            "240914072767885275264067328910498672089491839264"
        );
    }
}
