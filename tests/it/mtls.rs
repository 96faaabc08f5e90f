//! Mutual TLS: a client certificate from the configured client CA authenticates as the API key
//! bound to its fingerprint; endpoints can require it; a certificate on the CRL fails the
//! handshake.

use std::path::Path;

use rcgen::{
    BasicConstraints, CertificateParams, CertificateRevocationListParams, DnType, IsCa, Issuer,
    KeyIdMethod, KeyPair, RevocationReason, RevokedCertParams, SerialNumber,
};
use reqwest::Method;
use serde_json::json;
use sha2::{Digest, Sha256};
use sigil_tests::{Options, TestServer, backends, client_for, json};

struct ClientPki {
    dir: tempfile::TempDir,
    good_sha256: String,
    other_sha256: String,
}

fn leaf(dir: &Path, name: &str, serial: u64, issuer: &Issuer<'_, &KeyPair>) -> String {
    let key = KeyPair::generate().unwrap();
    let mut p = CertificateParams::new(vec![]).unwrap();
    p.distinguished_name.push(DnType::CommonName, name);
    p.serial_number = Some(SerialNumber::from(serial));
    let cert = p.signed_by(&key, issuer).unwrap();
    std::fs::write(dir.join(format!("{name}.pem")), cert.pem()).unwrap();
    std::fs::write(dir.join(format!("{name}-key.pem")), key.serialize_pem()).unwrap();
    hex::encode(Sha256::digest(cert.der()))
}

fn client_pki() -> ClientPki {
    let dir = tempfile::tempdir().unwrap();
    let ca_key = KeyPair::generate().unwrap();
    let mut ca = CertificateParams::new(vec![]).unwrap();
    ca.distinguished_name.push(DnType::CommonName, "Test Client CA");
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca.key_identifier_method = KeyIdMethod::Sha256;
    let ca_cert = ca.self_signed(&ca_key).unwrap();
    std::fs::write(dir.path().join("client-ca.pem"), ca_cert.pem()).unwrap();
    let issuer = Issuer::new(ca, &ca_key);
    let good_sha256 = leaf(dir.path(), "good", 1001, &issuer);
    let other_sha256 = leaf(dir.path(), "other", 1002, &issuer);
    leaf(dir.path(), "revoked", 1003, &issuer);
    let now = time::OffsetDateTime::now_utc();
    let crl = CertificateRevocationListParams {
        this_update: now - time::Duration::minutes(1),
        next_update: now + time::Duration::days(1),
        crl_number: SerialNumber::from(1u64),
        issuing_distribution_point: None,
        revoked_certs: vec![RevokedCertParams {
            serial_number: SerialNumber::from(1003u64),
            revocation_time: now - time::Duration::minutes(1),
            reason_code: Some(RevocationReason::KeyCompromise),
            invalidity_date: None,
        }],
        key_identifier_method: KeyIdMethod::Sha256,
    }
    .signed_by(&issuer)
    .unwrap();
    std::fs::write(dir.path().join("client-ca.crl.pem"), crl.pem().unwrap()).unwrap();
    ClientPki { dir, good_sha256, other_sha256 }
}

#[tokio::test]
async fn a_client_certificate_authenticates_as_its_bound_key_and_crl_entries_are_refused() {
    for db in backends().await {
        let pki = client_pki();
        let d = pki.dir.path();
        let toml = format!(
            "[tls]\nclient_ca_file = \"{}\"\nclient_crl_file = \"{}\"\n\
             [exposure.endpoints.\"GET /api/v1/api-keys\"]\nauth = \"mtls\"\n\
             [exposure.endpoints.\"GET /api/v1/audit\"]\nauth = \"either\"\n",
            d.join("client-ca.pem").display(),
            d.join("client-ca.crl.pem").display()
        );
        let s = TestServer::start_with(&db, Options { toml, ..Default::default() }).await;
        let k = s
            .create_key(json!({"name": "by-cert", "permissions": ["api_keys:read", "audit:read"], "client_cert_sha256": pki.good_sha256}))
            .await;
        let ca = s.data_dir().join("tls/ca.pem");
        let as_client = |name: &str| {
            client_for(
                &ca,
                Some((&d.join(format!("{name}.pem")), &d.join(format!("{name}-key.pem")))),
            )
        };
        let url = |p: &str| format!("{}{p}", s.url);

        // The bound certificate is enough on an mTLS endpoint, with no API key at all.
        let (st, body) =
            json(as_client("good").get(url("/api/v1/api-keys")).send().await.unwrap()).await;
        assert_eq!(st, 200, "{body}");
        // An API key alone does not satisfy an mTLS endpoint.
        let (st, b) = json(s.admin(Method::GET, "/api/v1/api-keys").send().await.unwrap()).await;
        assert_eq!((st, b["code"].as_str()), (401, Some("client_certificate_required")));
        // "either" accepts both.
        assert_eq!(as_client("good").get(url("/api/v1/audit")).send().await.unwrap().status(), 200);
        assert_eq!(s.admin(Method::GET, "/api/v1/audit").send().await.unwrap().status(), 200);
        // A valid certificate bound to no key is unknown.
        let (st, b) =
            json(as_client("other").get(url("/api/v1/api-keys")).send().await.unwrap()).await;
        assert_eq!((st, b["code"].as_str()), (401, Some("credentials_invalid")));
        // A revoked certificate does not get through the handshake.
        assert!(as_client("revoked").get(url("/health/live")).send().await.is_err());
        // The audit trail records the key the certificate stood for.
        let (_, trail) =
            json(s.admin(Method::GET, "/api/v1/audit?limit=500").send().await.unwrap()).await;
        assert!(trail["items"].as_array().unwrap().iter().any(|e| e["object_id"] == k["id"]));
        // Revoking the key revokes the certificate's access too.
        let id = k["id"].as_str().unwrap();
        s.admin(Method::DELETE, &format!("/api/v1/api-keys/{id}")).send().await.unwrap();
        let (st, b) =
            json(as_client("good").get(url("/api/v1/api-keys")).send().await.unwrap()).await;
        assert_eq!((st, b["code"].as_str()), (401, Some("api_key_revoked")));
        s.stop().await;
        db.cleanup().await;
    }
}

#[tokio::test]
async fn a_client_certificate_can_stand_for_an_operator() {
    for db in backends().await {
        let pki = client_pki();
        let d = pki.dir.path();
        let toml = format!(
            "[tls]\nclient_ca_file = \"{}\"\n[exposure.modules.audit]\nauth = \"either\"\n\
             [exposure.modules.api-keys]\nauth = \"either\"\n",
            d.join("client-ca.pem").display()
        );
        let s = TestServer::start_with(&db, Options { toml, ..Default::default() }).await;
        let (st, op) = json(s.admin(Method::POST, "/api/v1/operators")
            .json(&json!({"username": "dora", "roles": ["auditor"], "client_cert_sha256": pki.other_sha256}))
            .send().await.unwrap()).await;
        assert_eq!(st, 201, "{op}");
        let ca = s.data_dir().join("tls/ca.pem");
        let dora = client_for(&ca, Some((&d.join("other.pem"), &d.join("other-key.pem"))));
        let (st, page) =
            json(dora.get(format!("{}/api/v1/audit", s.url)).send().await.unwrap()).await;
        assert_eq!(st, 200, "{page}");
        let (st, b) =
            json(dora.get(format!("{}/api/v1/api-keys", s.url)).send().await.unwrap()).await;
        assert_eq!((st, b["code"].as_str()), (403, Some("permission_denied")));
        let id = op["id"].as_str().unwrap();
        s.admin(Method::POST, &format!("/api/v1/operators/{id}/disable")).send().await.unwrap();
        let (st, b) = json(dora.get(format!("{}/api/v1/audit", s.url)).send().await.unwrap()).await;
        assert_eq!((st, b["code"].as_str()), (401, Some("principal_disabled")));
        let _ = &pki.good_sha256;
        s.stop().await;
        db.cleanup().await;
    }
}
