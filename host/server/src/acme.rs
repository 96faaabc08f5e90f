//! ACME challenge validation over the network (RFC 8555 §8.3 http-01, §8.4 dns-01, RFC 8737
//! tls-alpn-01, RFC 8738 for IP identifiers), with the SSRF guard of `[acme]`: unless
//! `allow_private_targets`, no connection goes to a loopback, private, link-local or otherwise
//! non-public address, whether named by the identifier, by DNS or by a redirect. Every
//! connection is made to an address checked here (never re-resolved by the HTTP client).

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use hickory_resolver::TokioResolver;
use hickory_resolver::config::{NameServerConfig, ResolverConfig};
use hickory_resolver::net::runtime::TokioRuntimeProvider;
use hickory_resolver::proto::rr::RData;
use sha2::{Digest as _, Sha256};
use sigil_core::acme::model::{AcmeProblem, ChallengeType, Identifier, IdentifierType};
use sigil_core::acme::validation::ChallengeValidator;

/// How long one validation may take in all.
const DEADLINE: Duration = Duration::from_secs(20);
/// Most redirects an http-01 check follows.
const MAX_REDIRECTS: usize = 10;
/// Most bytes of an http-01 answer read.
const MAX_BODY: usize = 8 * 1024;

/// The `[acme]` knobs validation uses.
#[derive(Debug, Clone)]
pub struct ValidationConfig {
    /// Port of http-01 requests (80).
    pub http01_port: u16,
    /// Port of tls-alpn-01 connections (443).
    pub tlsalpn01_port: u16,
    /// DNS server (`IP:PORT`); None: the system's resolver configuration.
    pub dns_resolver: Option<SocketAddr>,
    /// Whether private, loopback and link-local targets may be contacted (tests, labs).
    pub allow_private_targets: bool,
}

/// The validator.
pub struct NetValidator {
    cfg: ValidationConfig,
    resolver: TokioResolver,
    /// TLS for http-01 redirects to https: ring, any certificate (RFC 8555 §8.3: the key
    /// authorization proves control, not the certificate). Given to each HTTP client, so
    /// nothing depends on a process-wide default provider.
    redirect_tls: rustls::ClientConfig,
}

impl std::fmt::Debug for NetValidator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NetValidator").field("cfg", &self.cfg).finish_non_exhaustive()
    }
}

fn problem(kind: &str, detail: impl Into<String>) -> AcmeProblem {
    AcmeProblem::new(kind, detail)
}

/// Whether `ip` is an address no validation may reach by default: not globally routable.
pub fn non_public(ip: IpAddr) -> bool {
    match ip.to_canonical() {
        IpAddr::V4(v4) => {
            let o = v4.octets();
            v4.is_loopback()
                || v4.is_private()
                || v4.is_link_local()
                || v4.is_unspecified()
                || v4.is_broadcast()
                || v4.is_multicast()
                || v4.is_documentation()
                || o[0] == 0
                || (o[0] == 100 && (64..128).contains(&o[1])) // shared address space (CGNAT)
                || (o[0] == 198 && (18..20).contains(&o[1])) // benchmarking
                || o[0] >= 240 // reserved
                || (o[0] == 192 && o[1] == 0 && o[2] == 0) // IETF protocol assignments
        }
        IpAddr::V6(v6) => {
            let s = v6.segments();
            let o = v6.octets();
            // An IPv4 address carried inside: NAT64 (64:ff9b::/96), 6to4 (2002::/16) and
            // IPv4-compatible (::a.b.c.d) reach it through a translator where one routes.
            let embedded = if s[0] == 0x64 && s[1] == 0xff9b && s[2..6] == [0, 0, 0, 0] {
                Some([o[12], o[13], o[14], o[15]])
            } else if s[0] == 0x2002 {
                Some([o[2], o[3], o[4], o[5]])
            } else if s[..6] == [0, 0, 0, 0, 0, 0] {
                Some([o[12], o[13], o[14], o[15]])
            } else {
                None
            };
            if let Some(v4) = embedded
                && non_public(IpAddr::from(v4))
            {
                return true;
            }
            v6.is_loopback()
                || v6.is_unspecified()
                || v6.is_multicast()
                || (s[0] & 0xfe00) == 0xfc00 // unique local
                || (s[0] & 0xffc0) == 0xfe80 // link-local
                || (s[0] & 0xffc0) == 0xfec0 // site-local (deprecated)
                || (s[0] == 0x2001 && s[1] == 0x0db8) // documentation
                || (s[0] == 0x2001 && s[1] == 0) // Teredo: tunnels to anywhere
                || (s[0] == 0x0100 && s[1..4] == [0, 0, 0]) // discard-only
        }
    }
}

impl NetValidator {
    /// A validator with `cfg`.
    pub fn new(cfg: ValidationConfig) -> anyhow::Result<Self> {
        let resolver = match cfg.dns_resolver {
            Some(addr) => {
                let mut ns = NameServerConfig::udp_and_tcp(addr.ip());
                for c in &mut ns.connections {
                    c.port = addr.port();
                }
                let rc = ResolverConfig::from_parts(None, vec![], vec![ns]);
                TokioResolver::builder_with_config(rc, TokioRuntimeProvider::default()).build()?
            }
            None => TokioResolver::builder_tokio()?.build()?,
        };
        let redirect_tls = rustls::ClientConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(AnyCertificate))
        .with_no_client_auth();
        Ok(Self { cfg, resolver, redirect_tls })
    }

    /// The guard: refuses a non-public address unless allowed.
    fn guard(&self, ip: IpAddr) -> Result<IpAddr, AcmeProblem> {
        if non_public(ip) && !self.cfg.allow_private_targets {
            return Err(problem(
                "rejectedIdentifier",
                format!(
                    "{ip} is not a public address; this server does not connect to private, \
                     loopback or link-local addresses (acme.allow_private_targets)"
                ),
            ));
        }
        Ok(ip)
    }

    /// The addresses to try for `id`: the IP itself, or the name's A and AAAA records, each
    /// passed through the guard (a name that has any non-public address is refused: a
    /// rebinding server could hand either).
    async fn addresses(&self, id: &Identifier) -> Result<Vec<IpAddr>, AcmeProblem> {
        let ips: Vec<IpAddr> = match id.kind {
            IdentifierType::Ip => {
                vec![id.value.parse().map_err(|_| problem("malformed", "not an IP address"))?]
            }
            IdentifierType::Dns => {
                let name = format!("{}.", id.value.trim_end_matches('.'));
                let found = self
                    .resolver
                    .lookup_ip(name.as_str())
                    .await
                    .map_err(|e| problem("dns", format!("no address for {}: {e}", id.value)))?;
                found.iter().collect()
            }
        };
        if ips.is_empty() {
            return Err(problem("dns", format!("no address for {}", id.value)));
        }
        ips.into_iter().map(|ip| self.guard(ip)).collect()
    }

    async fn http01(
        &self,
        id: &Identifier,
        token: &str,
        key_authz: &str,
    ) -> Result<(), AcmeProblem> {
        let host = match id.kind {
            IdentifierType::Dns => id.value.clone(),
            IdentifierType::Ip => match id.value.parse::<IpAddr>() {
                Ok(IpAddr::V6(v6)) => format!("[{v6}]"),
                _ => id.value.clone(),
            },
        };
        let mut url =
            format!("http://{host}:{}/.well-known/acme-challenge/{token}", self.cfg.http01_port);
        let mut last = None;
        for _ in 0..=MAX_REDIRECTS {
            let parsed = reqwest::Url::parse(&url)
                .map_err(|e| problem("connection", format!("redirect to `{url}`: {e}")))?;
            let Some(h) = parsed.host_str() else {
                return Err(problem("connection", format!("`{url}` names no host")));
            };
            let bare = h.trim_start_matches('[').trim_end_matches(']');
            let domain = bare.parse::<IpAddr>().is_err().then(|| bare.to_owned());
            let target = match &domain {
                Some(d) => Identifier { kind: IdentifierType::Dns, value: d.clone() },
                None => Identifier { kind: IdentifierType::Ip, value: bare.to_owned() },
            };
            let port = parsed.port_or_known_default().unwrap_or(80);
            let ips = self.addresses(&target).await?;
            let mut answered = None;
            for ip in ips {
                let addr = SocketAddr::new(ip, port);
                let mut b = reqwest::Client::builder()
                    .redirect(reqwest::redirect::Policy::none())
                    .timeout(Duration::from_secs(10))
                    .no_proxy()
                    .tls_backend_preconfigured(self.redirect_tls.clone());
                if let Some(d) = &domain {
                    b = b.resolve(d, addr);
                }
                let client = b
                    .build()
                    .map_err(|e| problem("serverInternal", format!("HTTP client: {e}")))?;
                match client.get(parsed.clone()).send().await {
                    Ok(r) => {
                        answered = Some(r);
                        break;
                    }
                    Err(e) => last = Some(format!("{addr}: {e}")),
                }
            }
            let Some(mut r) = answered else {
                return Err(problem(
                    "connection",
                    format!("no answer from {}: {}", target.value, last.unwrap_or_default()),
                ));
            };
            if r.status().is_redirection() {
                let next = r
                    .headers()
                    .get(reqwest::header::LOCATION)
                    .and_then(|l| l.to_str().ok())
                    .ok_or_else(|| problem("connection", "a redirect without Location"))?;
                let next = parsed
                    .join(next)
                    .map_err(|e| problem("connection", format!("redirect: {e}")))?;
                if !matches!(next.scheme(), "http" | "https") {
                    return Err(problem("connection", "redirects go to http or https only"));
                }
                // Only to the ports validation uses: a redirect must not make the server probe
                // arbitrary host:port pairs.
                let port = next.port_or_known_default().unwrap_or(0);
                if ![80, 443, self.cfg.http01_port].contains(&port) {
                    return Err(problem(
                        "connection",
                        format!(
                            "a redirect to port {port}; only 80, 443 and the http-01 port are followed"
                        ),
                    ));
                }
                url = next.to_string();
                continue;
            }
            if !r.status().is_success() {
                return Err(problem(
                    "unauthorized",
                    format!("{url} answered {}", r.status().as_u16()),
                ));
            }
            let mut body = Vec::new();
            while let Some(chunk) =
                r.chunk().await.map_err(|e| problem("connection", format!("reading {url}: {e}")))?
            {
                body.extend_from_slice(&chunk);
                if body.len() > MAX_BODY {
                    return Err(problem("unauthorized", format!("{url} answered too much")));
                }
            }
            let got = String::from_utf8_lossy(&body);
            return if got.trim_end() == key_authz {
                Ok(())
            } else {
                Err(problem(
                    "incorrectResponse",
                    format!("{url} did not answer the key authorization"),
                ))
            };
        }
        Err(problem("connection", format!("more than {MAX_REDIRECTS} redirects")))
    }

    async fn dns01(&self, id: &Identifier, key_authz: &str) -> Result<(), AcmeProblem> {
        if id.kind != IdentifierType::Dns {
            return Err(problem("malformed", "dns-01 proves DNS names only"));
        }
        let want = base64::Engine::encode(
            &base64::engine::general_purpose::URL_SAFE_NO_PAD,
            Sha256::digest(key_authz.as_bytes()),
        );
        let name = format!("_acme-challenge.{}.", id.value.trim_end_matches('.'));
        let found = self
            .resolver
            .txt_lookup(name.as_str())
            .await
            .map_err(|e| problem("dns", format!("no TXT record at {name}: {e}")))?;
        let texts: Vec<String> = found
            .answers()
            .iter()
            .filter_map(|r| match &r.data {
                RData::TXT(t) => Some(
                    t.txt_data.iter().map(|p| String::from_utf8_lossy(p).into_owned()).collect(),
                ),
                _ => None,
            })
            .collect();
        if texts.iter().any(|t| t == &want) {
            Ok(())
        } else {
            Err(problem(
                "incorrectResponse",
                format!("no TXT record at {name} holds the key authorization's digest"),
            ))
        }
    }

    async fn tls_alpn01(&self, id: &Identifier, key_authz: &str) -> Result<(), AcmeProblem> {
        use rustls_pki_types::ServerName;
        let sni = match id.kind {
            IdentifierType::Dns => id.value.clone(),
            IdentifierType::Ip => reverse_name(&id.value)?,
        };
        let server_name = ServerName::try_from(sni.clone())
            .map_err(|e| problem("malformed", format!("`{sni}`: {e}")))?;
        let mut cfg = rustls::ClientConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .map_err(|e| problem("serverInternal", e.to_string()))?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(AnyCertificate))
        .with_no_client_auth();
        cfg.alpn_protocols = vec![b"acme-tls/1".to_vec()];
        let connector = tokio_rustls::TlsConnector::from(Arc::new(cfg));
        let mut last = String::new();
        for ip in self.addresses(id).await? {
            let addr = SocketAddr::new(ip, self.cfg.tlsalpn01_port);
            let tcp = match tokio::time::timeout(
                Duration::from_secs(10),
                tokio::net::TcpStream::connect(addr),
            )
            .await
            {
                Ok(Ok(t)) => t,
                Ok(Err(e)) => {
                    last = format!("{addr}: {e}");
                    continue;
                }
                Err(_) => {
                    last = format!("{addr}: timed out");
                    continue;
                }
            };
            let tls = tokio::time::timeout(
                Duration::from_secs(10),
                connector.connect(server_name.clone(), tcp),
            )
            .await
            .map_err(|_| problem("tls", format!("{addr}: the TLS handshake timed out")))?
            .map_err(|e| problem("tls", format!("{addr}: {e}")))?;
            let (_, conn) = tls.get_ref();
            if conn.alpn_protocol() != Some(b"acme-tls/1") {
                return Err(problem("tls", format!("{addr} did not negotiate acme-tls/1")));
            }
            let cert = conn
                .peer_certificates()
                .and_then(|c| c.first())
                .ok_or_else(|| problem("tls", format!("{addr} sent no certificate")))?;
            return check_alpn_certificate(cert.as_ref(), id, key_authz);
        }
        Err(problem("connection", format!("no TLS answer from {}: {last}", id.value)))
    }
}

/// The reverse-DNS name of an IP address, the SNI of a tls-alpn-01 check of an IP identifier
/// (RFC 8738 §6).
fn reverse_name(ip: &str) -> Result<String, AcmeProblem> {
    match ip.parse::<IpAddr>().map_err(|_| problem("malformed", "not an IP address"))? {
        IpAddr::V4(v4) => {
            let o = v4.octets();
            Ok(format!("{}.{}.{}.{}.in-addr.arpa", o[3], o[2], o[1], o[0]))
        }
        IpAddr::V6(v6) => {
            let hex: String = v6.octets().iter().map(|b| format!("{b:02x}")).collect();
            let nibbles: Vec<String> = hex.chars().rev().map(|c| c.to_string()).collect();
            Ok(format!("{}.ip6.arpa", nibbles.join(".")))
        }
    }
}

/// The tls-alpn-01 certificate (RFC 8737 §3): one subjectAltName, the identifier, and a
/// critical acmeIdentifier extension holding SHA-256 of the key authorization.
fn check_alpn_certificate(der: &[u8], id: &Identifier, key_authz: &str) -> Result<(), AcmeProblem> {
    use x509_parser::prelude::*;
    let (_, cert) = X509Certificate::from_der(der)
        .map_err(|e| problem("tls", format!("the certificate does not parse: {e}")))?;
    let sans: Vec<String> = cert
        .subject_alternative_name()
        .ok()
        .flatten()
        .map(|s| {
            s.value
                .general_names
                .iter()
                .map(|g| match g {
                    GeneralName::DNSName(d) => d.to_ascii_lowercase(),
                    GeneralName::IPAddress(b) => match b.len() {
                        4 => IpAddr::from(<[u8; 4]>::try_from(*b).unwrap_or_default()).to_string(),
                        16 => {
                            IpAddr::from(<[u8; 16]>::try_from(*b).unwrap_or_default()).to_string()
                        }
                        _ => String::new(),
                    },
                    other => format!("{other:?}"),
                })
                .collect()
        })
        .unwrap_or_default();
    if sans != [id.value.clone()] {
        return Err(problem(
            "unauthorized",
            format!("the certificate must name {} alone; it names {sans:?}", id.value),
        ));
    }
    let oid = x509_parser::der_parser::oid!(1.3.6.1.5.5.7.1.31);
    let ext = cert.extensions().iter().find(|e| e.oid == oid).ok_or_else(|| {
        problem("unauthorized", "the certificate has no acmeIdentifier extension")
    })?;
    if !ext.critical {
        return Err(problem("unauthorized", "the acmeIdentifier extension must be critical"));
    }
    let want = Sha256::digest(key_authz.as_bytes());
    // The extension's value is an OCTET STRING of the 32-byte digest.
    let mut expected = vec![0x04, 0x20];
    expected.extend_from_slice(&want);
    if ext.value != expected.as_slice() {
        return Err(problem(
            "incorrectResponse",
            "the acmeIdentifier extension does not hold the key authorization's digest",
        ));
    }
    Ok(())
}

/// tls-alpn-01 takes whatever certificate is offered (self-signed by design) and checks its
/// content itself; the handshake signature is still verified.
#[derive(Debug)]
struct AnyCertificate;

impl rustls::client::danger::ServerCertVerifier for AnyCertificate {
    fn verify_server_cert(
        &self,
        _end_entity: &rustls_pki_types::CertificateDer<'_>,
        _intermediates: &[rustls_pki_types::CertificateDer<'_>],
        _server_name: &rustls_pki_types::ServerName<'_>,
        _ocsp_response: &[u8],
        _now: rustls_pki_types::UnixTime,
    ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        Ok(rustls::client::danger::ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &rustls_pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        handshake_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &rustls_pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        handshake_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        use rustls::SignatureScheme as S;
        vec![
            S::ECDSA_NISTP256_SHA256,
            S::ECDSA_NISTP384_SHA384,
            S::ED25519,
            S::RSA_PSS_SHA256,
            S::RSA_PSS_SHA384,
            S::RSA_PSS_SHA512,
            S::RSA_PKCS1_SHA256,
            S::RSA_PKCS1_SHA384,
            S::RSA_PKCS1_SHA512,
        ]
    }
}

/// Checks the peer's handshake signature with the key of its certificate, read directly: the
/// tls-alpn-01 certificate carries a critical extension (acmeIdentifier) that a path-building
/// parser refuses, and nothing else of it is trusted anyway.
fn handshake_signature(
    message: &[u8],
    cert: &rustls_pki_types::CertificateDer<'_>,
    dss: &rustls::DigitallySignedStruct,
) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
    use ring::signature as sig;
    use rustls::SignatureScheme as S;
    use x509_parser::prelude::{FromDer, X509Certificate};
    let bad = || rustls::Error::InvalidCertificate(rustls::CertificateError::BadSignature);
    let (_, c) = X509Certificate::from_der(cert.as_ref()).map_err(|_| bad())?;
    let key = c.tbs_certificate.subject_pki.subject_public_key.data.as_ref();
    let alg: &dyn sig::VerificationAlgorithm = match dss.scheme {
        S::ECDSA_NISTP256_SHA256 => &sig::ECDSA_P256_SHA256_ASN1,
        S::ECDSA_NISTP384_SHA384 => &sig::ECDSA_P384_SHA384_ASN1,
        S::ED25519 => &sig::ED25519,
        S::RSA_PSS_SHA256 => &sig::RSA_PSS_2048_8192_SHA256,
        S::RSA_PSS_SHA384 => &sig::RSA_PSS_2048_8192_SHA384,
        S::RSA_PSS_SHA512 => &sig::RSA_PSS_2048_8192_SHA512,
        S::RSA_PKCS1_SHA256 => &sig::RSA_PKCS1_2048_8192_SHA256,
        S::RSA_PKCS1_SHA384 => &sig::RSA_PKCS1_2048_8192_SHA384,
        S::RSA_PKCS1_SHA512 => &sig::RSA_PKCS1_2048_8192_SHA512,
        _ => return Err(bad()),
    };
    sig::UnparsedPublicKey::new(alg, key).verify(message, dss.signature()).map_err(|_| bad())?;
    Ok(rustls::client::danger::HandshakeSignatureValid::assertion())
}

#[async_trait]
impl ChallengeValidator for NetValidator {
    async fn validate(
        &self,
        kind: ChallengeType,
        identifier: &Identifier,
        token: &str,
        key_authorization: &str,
    ) -> Result<(), AcmeProblem> {
        let check = async {
            match kind {
                ChallengeType::Http01 => self.http01(identifier, token, key_authorization).await,
                ChallengeType::Dns01 => self.dns01(identifier, key_authorization).await,
                ChallengeType::TlsAlpn01 => self.tls_alpn01(identifier, key_authorization).await,
            }
        };
        tokio::time::timeout(DEADLINE, check).await.unwrap_or_else(|_| {
            Err(problem("connection", format!("the {} check took longer than 20 s", kind.as_str())))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_private_link_local_and_mapped_addresses_are_not_public() {
        for ip in [
            "127.0.0.1",
            "10.1.2.3",
            "172.16.0.1",
            "192.168.1.1",
            "169.254.169.254",
            "0.0.0.0",
            "100.64.0.1",
            "::1",
            "fe80::1",
            "fd00::1",
            "::ffff:127.0.0.1",
            "::ffff:10.0.0.1",
        ] {
            assert!(non_public(ip.parse().unwrap()), "{ip}");
        }
        for ip in ["93.184.215.14", "2606:4700:4700::1111", "8.8.8.8"] {
            assert!(!non_public(ip.parse().unwrap()), "{ip}");
        }
    }

    #[test]
    fn reverse_names_of_ip_identifiers_follow_rfc_8738() {
        assert_eq!(reverse_name("192.0.2.7").unwrap(), "7.2.0.192.in-addr.arpa");
        assert!(reverse_name("2001:db8::1").unwrap().ends_with(".8.b.d.0.1.0.0.2.ip6.arpa"));
    }
}
