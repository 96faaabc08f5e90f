//! Sealed secrets bound to their purpose and row: a blob moved to another row opens nowhere,
//! secrets sealed the old way (one label for all) are re-bound only by `sigil migrate
//! --reseal-legacy` and only when they fit their row, a CA's key is never certified as an end
//! entity, and the root CA key lives in a file, not in the database.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use reqwest::Method;
use serde_json::{Value, json};
use sha2::{Digest as _, Sha256};
use sigil_core::cards::unlock::unlock_code_binding;
use sigil_core::certs::ca::{ca_key_binding, ca_root_key_binding};
use sigil_core::ports::CertStore as _;
use sigil_core::records::Collection::{
    Credentials as CREDENTIALS, DeviceSecrets as DEVICE_SECRETS,
};
use sigil_core::records::RecordStore as _;
use sigil_core::signing::credential::credential_binding;
use sigil_pki::seal::MasterKey;
use sigil_server::config::Config;
use sigil_server::startup::start;
use sigil_store::SqlStore;
use sigil_tests::{Options, TestServer, backends, json};
use uuid::Uuid;

/// A BLOB literal for `db_url`'s SQL dialect.
fn blob(db_url: &str, bytes: &[u8]) -> String {
    if db_url.starts_with("sqlite") {
        format!("X'{}'", hex::encode(bytes))
    } else {
        format!("decode('{}', 'hex')", hex::encode(bytes))
    }
}

/// Replaces record `id`'s body in `table` with `body` (a database writer's edit).
async fn set_body(store: &SqlStore, table: &str, id: &str, body: &Value) {
    let text = body.to_string().replace('\'', "''");
    store
        .execute_raw(&format!("UPDATE {table} SET body = '{text}' WHERE id = '{id}'"))
        .await
        .unwrap();
}

async fn body(store: &SqlStore, table: sigil_core::records::Collection, id: &str) -> Value {
    serde_json::from_str(&store.record(table, id).await.unwrap().expect("row")).unwrap()
}

/// One signHash of a fixed digest on `credential` as `user`; the response.
async fn sign(
    s: &TestServer,
    user: &str,
    password: &str,
    credential: &str,
) -> sigil_tests::csc::Answer {
    let token = s.csc_login("v1", user, password).await;
    let digest = STANDARD.encode(Sha256::digest(b"tbsCertificate of www.bank.example"));
    let sad = s.csc_authorize(&token, credential, "2468", std::slice::from_ref(&digest)).await;
    let req = json!({"credentialID": credential, "SAD": sad, "hash": [digest],
        "signAlgo": "1.2.840.10045.4.3.2"});
    s.csc("v1", "signatures/signHash", &token, req).await
}

/// A card with a generated unlock code; (device id, code).
async fn card_with_code(s: &TestServer, office: &str, serial: &str) -> (String, String) {
    let person = s
        .create(
            "/api/v1/people",
            json!({"office_id": office, "given_name": "A", "family_name": serial}),
        )
        .await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let d = s
        .create(
            "/api/v1/devices",
            json!({"kind": "smart_card", "serial": serial, "office_id": office, "holder_id": person}),
        )
        .await;
    let id = d["id"].as_str().unwrap().to_owned();
    let r = s.admin(Method::POST, &format!("/api/v1/devices/{id}/activate")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    let path = format!("/api/v1/devices/{id}/pin-reset-setup");
    let (st, v) = json(
        s.admin(Method::PATCH, &path)
            .json(&json!({"unlock_code": "generate"}))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(st, 200, "{v}");
    (id, v["generated"]["unlock_code"].as_str().unwrap().to_owned())
}

async fn pin_reset(s: &TestServer, device: &str) -> (u16, Value) {
    let path = format!("/api/v1/devices/{device}/pin-reset");
    json(s.admin(Method::POST, &path).send().await.unwrap()).await
}

#[tokio::test]
async fn a_sealed_secret_moved_to_another_row_opens_nowhere() {
    for db in backends().await {
        let toml = "[csc]\ncache_ttl_ms = 0\n".to_owned();
        let s = TestServer::start_with(&db, Options { toml, ..Default::default() }).await;
        s.signer("ana", "ana's password").await;
        s.signer("eve", "eve's password").await;
        let ana =
            s.credential("ana", "p256", "2468", 1, 10).await["id"].as_str().unwrap().to_owned();
        let eve =
            s.credential("eve", "p256", "2468", 1, 10).await["id"].as_str().unwrap().to_owned();
        assert_eq!(sign(&s, "eve", "eve's password", &eve).await.status, 200);
        let office = s.offices(&["A"]).await.remove(0);
        let (card_a, _) = card_with_code(&s, &office, "SC-A").await;
        let (card_b, code_b) = card_with_code(&s, &office, "SC-B").await;
        let store = s.db().await;

        // Ana's sealed key copied into Eve's row: it is sealed for Ana's credential only.
        let mut e = body(&store, CREDENTIALS, &eve).await;
        e["sealed_key"] = body(&store, CREDENTIALS, &ana).await["sealed_key"].clone();
        set_body(&store, "signing_credentials", &eve, &e).await;
        let a = sign(&s, "eve", "eve's password", &eve).await;
        assert!(a.status >= 400 && a.body.get("signatures").is_none(), "{:?}", a.body);

        // Ana's whole row copied under a new id (and given to Eve): not that row's credential.
        let stolen = Uuid::now_v7().to_string();
        let mut whole = body(&store, CREDENTIALS, &ana).await;
        whole["signer_id"] = e["signer_id"].clone();
        let text = whole.to_string().replace('\'', "''");
        store
            .execute_raw(&format!(
                "INSERT INTO signing_credentials (id, body, signer_id, certificate_id, status, created_at) \
                 SELECT '{stolen}', '{text}', signer_id, certificate_id, status, created_at \
                 FROM signing_credentials WHERE id = '{ana}'"
            ))
            .await
            .unwrap();
        let token = s.csc_login("v1", "eve", "eve's password").await;
        let a = s
            .csc(
                "v1",
                "credentials/authorize",
                &token,
                json!({"credentialID": stolen, "numSignatures": 1, "PIN": "2468"}),
            )
            .await;
        assert!(a.status >= 400 && a.body.get("SAD").is_none(), "{:?}", a.body);

        // Card A's sealed unlock code put on card B: B's reset hands out nothing.
        let mut b = body(&store, DEVICE_SECRETS, &card_b).await;
        b["unlock_code"] = body(&store, DEVICE_SECRETS, &card_a).await["unlock_code"].clone();
        set_body(&store, "device_secrets", &card_b, &b).await;
        let (st, r) = pin_reset(&s, &card_b).await;
        assert!(st >= 400 && r.get("unlock_code").is_none(), "{st} {r}");
        assert!(!r.to_string().contains(&code_b));

        // The issuing CA's sealed key swapped with a credential's: the CA no longer loads
        // (checked through a fresh load of the record, as a restart would do).
        let ca = store.cas().await.unwrap().remove(0);
        let master = MasterKey::load_or_create(&s.config.master_key_path()).unwrap();
        let ana_sealed = STANDARD
            .decode(body(&store, CREDENTIALS, &ana).await["sealed_key"].as_str().unwrap())
            .unwrap();
        assert!(master.open(&ca_key_binding(&ca.id, ca.key_type), &ana_sealed).is_err());
        assert!(master.open(&ca_key_binding(&ca.id, ca.key_type), &ca.key_sealed).is_ok());
        store.close().await;
        s.stop().await;
        db.cleanup().await;
    }
}

#[tokio::test]
async fn legacy_secrets_are_rebound_only_by_the_operator_and_only_when_they_fit_their_row() {
    for db in backends().await {
        let dir = tempfile::tempdir().unwrap();
        let opts = Options {
            toml: "[csc]\ncache_ttl_ms = 0\n".to_owned(),
            data_dir: Some(dir.path().to_path_buf()),
        };
        let s = TestServer::start_with(&db, opts.clone()).await;
        // The root key of the CA created on first start is in a file, not in the database.
        let root_file = dir.path().join("ca/builtin-root-key.pem");
        let root_pem = std::fs::read_to_string(&root_file).expect("the root key file");
        {
            use std::os::unix::fs::PermissionsExt as _;
            let mode = std::fs::metadata(&root_file).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode, 0o600);
        }
        let store = s.db().await;
        let ca = store.cas().await.unwrap().remove(0);
        assert!(ca.root_key_sealed.is_none());
        s.signer("ana", "ana's password").await;
        s.signer("eve", "eve's password").await;
        let ana =
            s.credential("ana", "p256", "2468", 1, 10).await["id"].as_str().unwrap().to_owned();
        let eve =
            s.credential("eve", "p256", "2468", 1, 10).await["id"].as_str().unwrap().to_owned();
        let office = s.offices(&["L"]).await.remove(0);
        let (card, code) = card_with_code(&s, &office, "SC-L").await;
        s.stop().await;

        // Turn the database into one from before bindings: every blob sealed with the one
        // legacy label, the root key back in the database, and Eve's row holding the CA key.
        let master = MasterKey::load_or_create(&opts_master(&db, &opts)).unwrap();
        let ca_key = master.open(&ca_key_binding(&ca.id, ca.key_type), &ca.key_sealed).unwrap();
        let root_der = sigil_pki::pem::decode("PRIVATE KEY", &root_pem).unwrap();
        assert!(master.open(&ca_root_key_binding(&ca.id, ca.key_type), &root_der).is_err());
        store
            .execute_raw(&format!(
                "UPDATE cas SET key_sealed = {}, root_key_sealed = {} WHERE id = '{}'",
                blob(&db.url, &master.seal_legacy_for_tests(&ca_key).unwrap()),
                blob(&db.url, &master.seal_legacy_for_tests(&root_der).unwrap()),
                ca.id
            ))
            .await
            .unwrap();
        std::fs::remove_file(&root_file).unwrap();
        let mut a = body(&store, CREDENTIALS, &ana).await;
        let id = Uuid::parse_str(&ana).unwrap();
        let at = credential_binding(id, sigil_core::certs::KeyType::P256);
        let key =
            master.open(&at, &STANDARD.decode(a["sealed_key"].as_str().unwrap()).unwrap()).unwrap();
        a["sealed_key"] = json!(STANDARD.encode(master.seal_legacy_for_tests(&key).unwrap()));
        set_body(&store, "signing_credentials", &ana, &a).await;
        let mut e = body(&store, CREDENTIALS, &eve).await;
        e["sealed_key"] = json!(STANDARD.encode(master.seal_legacy_for_tests(&ca_key).unwrap()));
        set_body(&store, "signing_credentials", &eve, &e).await;
        let mut d = body(&store, DEVICE_SECRETS, &card).await;
        let at = unlock_code_binding(Uuid::parse_str(&card).unwrap());
        let c = master
            .open(&at, &STANDARD.decode(d["unlock_code"].as_str().unwrap()).unwrap())
            .unwrap();
        d["unlock_code"] = json!(STANDARD.encode(master.seal_legacy_for_tests(&c).unwrap()));
        set_body(&store, "device_secrets", &card, &d).await;

        // The server never opens a legacy blob: it does not start with the CA's key one.
        let cfg_file = dir.path().join("test.toml");
        let config = Config::load_from(Some(&cfg_file), std::iter::empty()).unwrap();
        let e = start(&config).await.err().expect("no start with a legacy CA key");
        assert!(format!("{e:#}").contains("reseal-legacy"), "{e:#}");
        // The operator re-seals once, with every node stopped.
        let c = cfg_file.to_str().unwrap();
        assert_eq!(crate::cli::sigil(&["--config", c, "migrate", "--reseal-legacy"]).await, 0);
        let s = TestServer::start_with(&db, opts.clone()).await;
        // Everything that fits its row works again, bound to it.
        let ca = store.cas().await.unwrap().remove(0);
        assert!(MasterKey::is_bound(&ca.key_sealed));
        assert!(ca.root_key_sealed.is_none(), "the root key moved out of the database again");
        assert_eq!(std::fs::read_to_string(&root_file).unwrap(), root_pem);
        assert!(s.crl_text("builtin").await.contains("Revocation List"), "the CA signs");
        assert_eq!(sign(&s, "ana", "ana's password", &ana).await.status, 200);
        let (st, r) = pin_reset(&s, &card).await;
        assert_eq!((st, r["unlock_code"].as_str()), (200, Some(code.as_str())), "{r}");
        // Eve's row held the CA key: it was not re-bound and signs nothing.
        let e = body(&store, CREDENTIALS, &eve).await;
        assert!(!MasterKey::is_bound(&STANDARD.decode(e["sealed_key"].as_str().unwrap()).unwrap()));
        let a = sign(&s, "eve", "eve's password", &eve).await;
        assert!(a.status >= 400 && a.body.get("signatures").is_none(), "{:?}", a.body);
        // The trail says what was re-bound, what was refused (by row) and where the root went.
        let (st, ev) =
            json(s.admin(Method::GET, "/api/v1/audit?action=sealing.rebind").send().await.unwrap())
                .await;
        assert_eq!(st, 200, "{ev}");
        let items = ev["items"].as_array().unwrap();
        let mut rebound: Vec<String> = items
            .iter()
            .filter(|e| e["outcome"] == "success")
            .map(|e| {
                let (t, id) =
                    (e["object_type"].as_str().unwrap(), e["object_id"].as_str().unwrap());
                format!("{t} {id} {}", e["details"]["secrets"])
            })
            .collect();
        rebound.sort();
        let mut expected = vec![
            r#"ca builtin ["ca-key","ca-root-key"]"#.to_owned(),
            format!(r#"device {card} ["card-unlock-code"]"#),
            format!(r#"signing_credential {ana} ["credential-key"]"#),
        ];
        expected.sort();
        assert_eq!(rebound, expected);
        let refused = items.iter().find(|e| e["outcome"] != "success").expect("a refusal");
        assert_eq!(refused["details"]["refused"], 1, "{refused}");
        assert!(refused.to_string().contains(&eve), "{refused}");
        assert_eq!(
            s.trail_actions("ca", "builtin")
                .await
                .iter()
                .filter(|a| *a == "ca.root_key_moved")
                .count(),
            1
        );
        s.stop().await;
        // A legacy blob planted later (from an old backup) is never re-bound by a start.
        let mut a = body(&store, CREDENTIALS, &ana).await;
        a["sealed_key"] = json!(STANDARD.encode(master.seal_legacy_for_tests(&key).unwrap()));
        set_body(&store, "signing_credentials", &ana, &a).await;
        let s = TestServer::start_with(&db, opts).await;
        let r = sign(&s, "ana", "ana's password", &ana).await;
        assert!(r.status >= 400 && r.body.get("signatures").is_none(), "{:?}", r.body);
        let a = body(&store, CREDENTIALS, &ana).await;
        assert!(!MasterKey::is_bound(&STANDARD.decode(a["sealed_key"].as_str().unwrap()).unwrap()));
        store.close().await;
        s.stop().await;
        db.cleanup().await;
    }
}

/// The master key file the test servers of `db` share.
fn opts_master(db: &sigil_tests::TestDb, _opts: &Options) -> std::path::PathBuf {
    std::env::temp_dir().join(format!(
        "sigil-test-master-{}.key",
        Uuid::new_v5(&Uuid::NAMESPACE_URL, db.url.as_bytes()).simple()
    ))
}

#[tokio::test]
async fn a_ca_certificate_planted_in_the_inventory_is_never_renewed_as_an_end_entity() {
    for db in backends().await {
        let s = TestServer::start(&db).await;
        let dir = tempfile::tempdir().unwrap();
        let (csr, _) = sigil_tests::openssl_csr(dir.path(), "r", "ec:P-256", "/CN=renewer", None);
        let (st, cert) = s.issue(&csr, "tls-client").await;
        assert_eq!(st, 201, "{cert}");
        let id = cert["id"].as_str().unwrap().to_owned();
        let mut spec =
            json(s.admin(Method::GET, "/api/v1/profiles/tls-client").send().await.unwrap()).await.1
                ["spec"]
                .take();
        spec["renewal_window_days"] = json!(365);
        let r =
            s.admin(Method::PUT, "/api/v1/profiles/tls-client").json(&spec).send().await.unwrap();
        assert_eq!(r.status(), 200);
        // A database writer swaps the certificate's DER for the issuing CA's certificate: a
        // same-key renewal (no proof of possession) would certify the CA's key.
        let store = s.db().await;
        let ca = store.cas().await.unwrap().remove(0);
        store
            .execute_raw(&format!(
                "UPDATE certificates SET der = {} WHERE id = '{id}'",
                blob(&db.url, &ca.cert_der)
            ))
            .await
            .unwrap();
        let path = format!("/api/v1/certificates/{id}/renew");
        let (st, b) = json(s.admin(Method::POST, &path).send().await.unwrap()).await;
        assert_eq!((st, b["code"].as_str()), (400, Some("key_not_allowed")), "{b}");
        store.close().await;
        s.stop().await;
        db.cleanup().await;
    }
}
