//! Remote signing over the CSC API, on the wire: signers and credentials managed under
//! `/api/v1` (certificates from Sigil's own CA path, in the inventory, CRL and OCSP), login,
//! credential listing and description in both versions' field names, authorization bound to
//! signer, credential, count and hashes, signatures that openssl verifies, and every CSC error
//! as CSC's own JSON.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use reqwest::Method;
use serde_json::{Value, json};
use sha2::{Digest, Sha256, Sha384};
use sigil_core::ports::CertStore as _;
use sigil_tests::{Options, TestServer, backends, json, openssl};

pub(crate) fn b64(d: &[u8]) -> String {
    STANDARD.encode(d)
}

fn sha256(m: &[u8]) -> String {
    b64(&Sha256::digest(m))
}

/// The public key of a PEM certificate, as a PEM file in `dir`.
pub(crate) fn public_key(dir: &std::path::Path, cert_pem: &str) -> std::path::PathBuf {
    let cert = dir.join("cert.pem");
    std::fs::write(&cert, cert_pem).unwrap();
    let out = dir.join("pub.pem");
    let (ok, text) = openssl(&[
        "x509",
        "-in",
        cert.to_str().unwrap(),
        "-pubkey",
        "-noout",
        "-out",
        out.to_str().unwrap(),
    ]);
    assert!(ok, "{text}");
    out
}

/// `openssl dgst -verify` of `sig` over `msg` with `pubkey` (plus `-sigopt` options).
pub(crate) fn openssl_verifies(
    dir: &std::path::Path,
    md: &str,
    pubkey: &std::path::Path,
    msg: &[u8],
    sig: &[u8],
    opts: &[&str],
) -> bool {
    let (m, s) = (dir.join("msg.bin"), dir.join("sig.bin"));
    std::fs::write(&m, msg).unwrap();
    std::fs::write(&s, sig).unwrap();
    let mut args =
        vec!["dgst", md, "-verify", pubkey.to_str().unwrap(), "-signature", s.to_str().unwrap()];
    for o in opts {
        args.extend(["-sigopt", o]);
    }
    args.push(m.to_str().unwrap());
    let (ok, text) = openssl(&args);
    ok && text.contains("Verified OK")
}

#[tokio::test]
async fn a_signing_credential_gets_its_certificate_from_sigils_ca_path() {
    for db in backends().await {
        let s = TestServer::start(&db).await;
        let tmp = tempfile::tempdir().unwrap();
        let signer = s.signer("alice", "correct horse").await;
        // Same name again, in another case: refused.
        let r = s
            .admin(Method::POST, "/api/v1/signers")
            .json(&json!({"username": "ALICE", "password": "something else"}))
            .send()
            .await
            .unwrap();
        let (st, v) = json(r).await;
        assert_eq!((st, v["code"].as_str()), (409, Some("username_taken")), "{v}");
        let c = s.credential("alice", "p256", "123456", 1, 5).await;
        let text = c.to_string();
        assert!(!text.contains("123456") && !text.contains("correct horse"), "{text}");
        assert_eq!(c["signer_id"], signer.as_str());
        assert_eq!((c["status"].as_str(), c["locked"].as_bool()), (Some("enabled"), Some(false)));
        // The certificate is in the inventory, under the document-signing profile.
        let path = format!("/api/v1/certificates/{}", c["certificate_id"].as_str().unwrap());
        let (st, cert) = json(s.admin(Method::GET, &path).send().await.unwrap()).await;
        assert_eq!((st, cert["profile"].as_str()), (200, Some("document-signing")), "{cert}");
        assert_eq!(cert["metadata"]["signing_credential_id"], c["credential_id"]);
        // openssl accepts it against Sigil's CA.
        let (leaf, chain) = (tmp.path().join("leaf.pem"), tmp.path().join("chain.pem"));
        std::fs::write(&leaf, c["certificate"].as_str().unwrap()).unwrap();
        let chain_pem: Vec<&str> =
            c["chain"].as_array().unwrap().iter().map(|v| v.as_str().unwrap()).collect();
        std::fs::write(&chain, chain_pem.concat()).unwrap();
        let (ok, out) =
            openssl(&["verify", "-CAfile", chain.to_str().unwrap(), leaf.to_str().unwrap()]);
        assert!(ok, "{out}");
        // Listed, filtered, audited.
        let (_, list) = json(
            s.admin(Method::GET, &format!("/api/v1/signing-credentials?signer_id={signer}"))
                .send()
                .await
                .unwrap(),
        )
        .await;
        assert_eq!(list["items"].as_array().unwrap().len(), 1);
        let actions = s.trail_actions("signing_credential", c["id"].as_str().unwrap()).await;
        assert_eq!(actions, ["signing_credential.create"]);
        // Bad input is a clear 400.
        for (body, code) in [
            (
                json!({"signer": "alice", "key_algorithm": "rsa-4096", "pin": "1234"}),
                "invalid_key_algorithm",
            ),
            (json!({"signer": "nobody", "key_algorithm": "p256", "pin": "1234"}), "unknown_signer"),
            (json!({"signer": "alice", "key_algorithm": "p256", "pin": "12"}), "invalid_pin"),
            (
                json!({"signer": "alice", "key_algorithm": "p256", "pin": "1234", "scal": 3}),
                "invalid_scal",
            ),
        ] {
            let r = s
                .admin(Method::POST, "/api/v1/signing-credentials")
                .json(&body)
                .send()
                .await
                .unwrap();
            let (st, v) = json(r).await;
            assert_eq!((st, v["code"].as_str()), (400, Some(code)), "{body} → {v}");
        }
        s.stop().await;
        db.cleanup().await;
    }
}

#[tokio::test]
async fn signatures_from_sign_hash_verify_with_openssl_for_every_key_and_scheme() {
    for db in backends().await {
        let s = TestServer::start(&db).await;
        let tmp = tempfile::tempdir().unwrap();
        s.signer("bob", "bob's password").await;
        let token = s.csc_login("v1", "bob", "bob's password").await;
        let msg = b"a document to sign";
        // (key, signAlgo, openssl digest, the digest, extra params, openssl options)
        let pss = "MDSgDzANBglghkgBZQMEAgEFAKEcMBoGCSqGSIb3DQEBCDANBglghkgBZQMEAgEFAKIDAgHe";
        type Case<'a> = (&'a str, &'a str, &'a str, Vec<u8>, Option<&'a str>, Vec<&'a str>);
        let cases: Vec<Case> = vec![
            ("p256", "1.2.840.10045.4.3.2", "-sha256", Sha256::digest(msg).to_vec(), None, vec![]),
            ("p384", "1.2.840.10045.4.3.3", "-sha384", Sha384::digest(msg).to_vec(), None, vec![]),
            (
                "rsa-2048",
                "1.2.840.113549.1.1.11",
                "-sha256",
                Sha256::digest(msg).to_vec(),
                None,
                vec![],
            ),
            (
                "rsa-2048",
                "1.2.840.113549.1.1.10",
                "-sha256",
                Sha256::digest(msg).to_vec(),
                Some(pss),
                vec!["rsa_padding_mode:pss", "rsa_pss_saltlen:222"],
            ),
            (
                "rsa-3072",
                "1.2.840.113549.1.1.12",
                "-sha384",
                Sha384::digest(msg).to_vec(),
                None,
                vec![],
            ),
        ];
        for (alg, sign_algo, md, digest, params, opts) in cases {
            let c = s.credential("bob", alg, "2468", 1, 3).await;
            let id = c["credential_id"].as_str().unwrap();
            let info = s
                .csc(
                    "v1",
                    "credentials/info",
                    &token,
                    json!({"credentialID": id, "certificates": "chain", "certInfo": true}),
                )
                .await;
            assert_eq!(info.status, 200, "{:?}", info.body);
            assert!(
                info.body["key"]["algo"].as_array().unwrap().iter().any(|a| a == sign_algo),
                "{alg}"
            );
            let certs = info.body["cert"]["certificates"].as_array().unwrap();
            assert_eq!(certs.len(), 3, "end entity, issuing CA, root");
            assert_eq!(info.body["cert"]["serialNumber"], c["serial"]);
            let sad = s.csc_authorize(&token, id, "2468", &[b64(&digest)]).await;
            let mut req = json!({"credentialID": id, "SAD": sad, "hash": [b64(&digest)],
                "hashAlgo": "2.16.840.1.101.3.4.2.1", "signAlgo": sign_algo});
            if let Some(p) = params {
                req["signAlgoParams"] = json!(p);
            }
            let a = s.csc("v1", "signatures/signHash", &token, req).await;
            assert_eq!(
                (a.status, a.content_type.as_str()),
                (200, "application/json"),
                "{alg}: {:?}",
                a.body
            );
            let sig = STANDARD.decode(a.body["signatures"][0].as_str().unwrap()).unwrap();
            let pubkey = public_key(tmp.path(), c["certificate"].as_str().unwrap());
            assert!(
                openssl_verifies(tmp.path(), md, &pubkey, msg, &sig, &opts),
                "{alg} {sign_algo}"
            );
        }
        s.stop().await;
        db.cleanup().await;
    }
}

#[tokio::test]
async fn several_hashes_are_signed_in_order_under_one_sad_through_v2_names() {
    for db in backends().await {
        let s = TestServer::start(&db).await;
        let tmp = tempfile::tempdir().unwrap();
        s.signer("carol", "carol's password").await;
        let c = s.credential("carol", "p256", "8642", 2, 10).await;
        let id = c["credential_id"].as_str().unwrap();
        let token = s.csc_login("v2", "carol", "carol's password").await;
        let msgs: Vec<&[u8]> = vec![b"one", b"two", b"three"];
        let hashes: Vec<String> = msgs.iter().map(|m| sha256(m)).collect();
        let a = s
            .csc(
                "v2",
                "credentials/authorize",
                &token,
                json!({"credentialID": id, "numSignatures": 3, "hashes": hashes,
                    "hashAlgorithmOID": "2.16.840.1.101.3.4.2.1",
                    "authData": [{"id": "PIN", "value": "8642"}]}),
            )
            .await;
        assert_eq!(a.status, 200, "{:?}", a.body);
        let sad = a.body["SAD"].as_str().unwrap();
        let r = s
            .csc(
                "v2",
                "signatures/signHash",
                &token,
                json!({"credentialID": id, "SAD": sad, "hashes": hashes, "operationMode": "S",
                    "hashAlgorithmOID": "2.16.840.1.101.3.4.2.1", "signAlgo": "1.2.840.10045.4.3.2"}),
            )
            .await;
        assert_eq!(r.status, 200, "{:?}", r.body);
        let sigs = r.body["signatures"].as_array().unwrap();
        assert_eq!(sigs.len(), 3);
        let pubkey = public_key(tmp.path(), c["certificate"].as_str().unwrap());
        for (m, sig) in msgs.iter().zip(sigs) {
            let sig = STANDARD.decode(sig.as_str().unwrap()).unwrap();
            assert!(openssl_verifies(tmp.path(), "-sha256", &pubkey, m, &sig, &[]));
        }
        // v2 list with the info inline; v2 info describes auth as objects.
        let l = s
            .csc(
                "v2",
                "credentials/list",
                &token,
                json!({"credentialInfo": true, "onlyValid": true}),
            )
            .await;
        assert_eq!(l.body["credentialIDs"], json!([id]), "{:?}", l.body);
        assert_eq!(l.body["credentialInfos"][0]["credentialID"], id);
        assert_eq!(l.body["credentialInfos"][0]["auth"]["objects"][0]["id"], "PIN");
        assert_eq!(l.body["credentialInfos"][0]["SCAL"], "2");
        let i = s.csc("v1", "credentials/info", &token, json!({"credentialID": id})).await;
        assert_eq!(
            (i.body["authMode"].as_str(), i.body["PIN"]["format"].as_str()),
            (Some("explicit"), Some("N"))
        );
        assert_eq!(
            i.body["cert"]["certificates"].as_array().unwrap().len(),
            1,
            "single by default"
        );
        s.stop().await;
        db.cleanup().await;
    }
}

#[tokio::test]
async fn info_answers_unauthenticated_from_the_default_csc_provider() {
    for db in backends().await {
        let s = TestServer::start(&db).await;
        // Built-in values before any provider exists; GET and POST, both versions.
        let r = s.client.get(format!("{}/csc/v2/info", s.url)).send().await.unwrap();
        let (st, v) = json(r).await;
        assert_eq!((st, v["specs"].as_str()), (200, Some("2.0.0.2")), "{v}");
        assert!(
            v["signAlgorithms"]["algos"]
                .as_array()
                .unwrap()
                .iter()
                .any(|a| a == "1.2.840.10045.4.3.2")
        );
        let png = format!("data:image/png;base64,{}", b64(b"\x89PNG\r\n\x1a\n0000"));
        let body = json!({"name": "Acme Trust", "region": "SI", "logo": png, "language": "sl-SI",
            "auth_types": ["basic", "TLS"], "description": "Remote signing for Acme", "default": true});
        let r = s.admin(Method::POST, "/api/v1/csc-providers").json(&body).send().await.unwrap();
        let (st, p) = json(r).await;
        assert_eq!(st, 201, "{p}");
        let pid = p["id"].as_str().unwrap().to_owned();
        let i = s.csc("v1", "info", "", json!({})).await;
        assert_eq!(i.status, 200);
        assert_eq!(i.body["name"], "Acme Trust");
        assert_eq!(i.body["region"], "SI");
        assert_eq!(i.body["lang"], "sl-SI");
        assert_eq!(i.body["logo"].as_str(), Some(png.as_str()));
        assert_eq!(i.body["authType"], json!(["basic", "TLS"]));
        assert_eq!(i.body["specs"], "1.0.4.0");
        assert!(i.body["methods"].as_array().unwrap().iter().any(|m| m == "signatures/signHash"));
        // Update and list.
        let r = s
            .admin(Method::PATCH, &format!("/api/v1/csc-providers/{pid}"))
            .json(&json!({"logo": "https://acme.example/logo.png", "description": "Changed"}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        let i = s.csc("v2", "info", "", json!({})).await;
        assert_eq!(
            (i.body["logo"].as_str(), i.body["description"].as_str()),
            (Some("https://acme.example/logo.png"), Some("Changed"))
        );
        let (_, list) =
            json(s.admin(Method::GET, "/api/v1/csc-providers").send().await.unwrap()).await;
        assert_eq!(list["items"].as_array().unwrap().len(), 1);
        // Bad values are refused with a code.
        for (b, code) in [
            (json!({"name": "X", "region": "Slovenia"}), "invalid_region"),
            (
                json!({"name": "Y", "region": "SI", "logo": "data:image/gif;base64,R0lG"}),
                "invalid_logo",
            ),
            (json!({"name": "Z", "region": "SI", "language": "not a tag!"}), "invalid_language"),
            (json!({"name": "Acme Trust", "region": "SI"}), "name_taken"),
        ] {
            let (st, v) =
                json(s.admin(Method::POST, "/api/v1/csc-providers").json(&b).send().await.unwrap())
                    .await;
            assert_eq!(v["code"].as_str(), Some(code), "{b} → {st} {v}");
        }
        // Delete: info falls back to the built-in values.
        let r =
            s.admin(Method::DELETE, &format!("/api/v1/csc-providers/{pid}")).send().await.unwrap();
        assert_eq!(r.status(), 204);
        let i = s.csc("v1", "info", "", json!({})).await;
        assert_eq!(i.body["name"], "Sigil");
        let actions = s.trail_actions("csc_provider", &pid).await;
        assert_eq!(actions, ["csc_provider.create", "csc_provider.update", "csc_provider.delete"]);
        s.stop().await;
        db.cleanup().await;
    }
}

#[tokio::test]
async fn login_refresh_and_revoke_follow_the_csc_rules() {
    for db in backends().await {
        let s = TestServer::start(&db).await;
        s.signer("dave", "dave's password").await;
        let url = format!("{}/csc/v1/auth/login", s.url);
        // Wrong password: 400 authentication_error; no credentials: 401 invalid_request.
        let r = s.client.post(&url).basic_auth("dave", Some("nope")).send().await.unwrap();
        let (st, v) = json(r).await;
        assert_eq!((st, v["error"].as_str()), (400, Some("authentication_error")), "{v}");
        let r = s.client.post(&url).send().await.unwrap();
        assert_eq!(r.headers()["content-type"], "application/json");
        let (st, v) = json(r).await;
        assert_eq!((st, v["error"].as_str()), (401, Some("invalid_request")), "{v}");
        // rememberMe gives a refresh token, which logs in again.
        let r = s
            .client
            .post(&url)
            .basic_auth("dave", Some("dave's password"))
            .json(&json!({"rememberMe": true}))
            .send()
            .await
            .unwrap();
        let (st, v) = json(r).await;
        assert_eq!(st, 200, "{v}");
        let (access, refresh) =
            (v["access_token"].as_str().unwrap(), v["refresh_token"].as_str().unwrap());
        assert_eq!(v["expires_in"], 3600);
        let again = s.csc("v1", "auth/login", "", json!({"refresh_token": refresh})).await;
        assert_eq!(again.status, 200, "{:?}", again.body);
        let child = again.body["access_token"].as_str().unwrap().to_owned();
        assert_eq!(s.csc("v1", "credentials/list", &child, json!({})).await.status, 200);
        // Revoking the access token: 204, and it stops working.
        let r = s.csc("v1", "auth/revoke", access, json!({"token": access})).await;
        assert_eq!(r.status, 204);
        let l = s.csc("v1", "credentials/list", access, json!({})).await;
        assert_eq!((l.status, l.error()), (401, "invalid_token"));
        // Revoking the refresh token also revokes the access tokens made from it.
        let r = s
            .csc(
                "v1",
                "auth/revoke",
                &child,
                json!({"token": refresh, "token_type_hint": "refresh_token"}),
            )
            .await;
        assert_eq!(r.status, 204, "{:?}", r.body);
        assert_eq!(s.csc("v1", "credentials/list", &child, json!({})).await.status, 401);
        let r = s.csc("v1", "auth/login", "", json!({"refresh_token": refresh})).await;
        assert_eq!((r.status, r.error()), (400, "invalid_request"));
        // A disabled signer cannot log in.
        let id = s.signer("erin", "erin's password").await;
        let r = s
            .admin(Method::PATCH, &format!("/api/v1/signers/{id}"))
            .json(&json!({"enabled": false}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        let r =
            s.client.post(&url).basic_auth("erin", Some("erin's password")).send().await.unwrap();
        assert_eq!(r.status(), 400);
        s.stop().await;
        db.cleanup().await;
    }
}

/// A server whose SADs live one second and tokens three, with no caching.
async fn short_lived(db: &sigil_tests::TestDb) -> TestServer {
    let toml = "[csc]\nsad_ttl_secs = 1\naccess_token_ttl_secs = 3\ncache_ttl_ms = 0\n".to_owned();
    TestServer::start_with(db, Options { toml, ..Default::default() }).await
}

#[tokio::test]
async fn every_csc_error_is_csc_json_with_the_right_status_and_code() {
    for db in backends().await {
        let s = short_lived(&db).await;
        s.signer("fay", "fay's password").await;
        s.signer("gus", "gus's password").await;
        let fay_cred = s.credential("fay", "p256", "1111", 2, 5).await;
        let gus_cred = s.credential("gus", "p256", "2222", 1, 5).await;
        let (fay_id, gus_id) = (
            fay_cred["credential_id"].as_str().unwrap(),
            gus_cred["credential_id"].as_str().unwrap(),
        );
        let fay = s.csc_login("v1", "fay", "fay's password").await;
        let gus = s.csc_login("v1", "gus", "gus's password").await;
        let h1 = sha256(b"one");
        let h2 = sha256(b"two");
        let sign = |token: String, cred: String, sad: String, hashes: Vec<String>| {
            let s = &s;
            async move {
                s.csc("v1", "signatures/signHash", &token,
                    json!({"credentialID": cred, "SAD": sad, "hash": hashes, "signAlgo": "1.2.840.10045.4.3.2"}))
                    .await
            }
        };
        let check = |a: &sigil_tests::csc::Answer, status: u16, error: &str, what: &str| {
            assert_eq!((a.status, a.error()), (status, error), "{what}: {:?}", a.body);
            assert_eq!(a.content_type, "application/json", "{what}");
            assert!(a.body["error_description"].is_string(), "{what}");
        };
        // Bearer problems.
        check(
            &s.csc("v1", "credentials/list", "", json!({})).await,
            401,
            "invalid_token",
            "no token",
        );
        check(
            &s.csc("v1", "credentials/list", "not-a-token", json!({})).await,
            401,
            "invalid_token",
            "unknown token",
        );
        let r = s
            .client
            .post(format!("{}/csc/v1/credentials/list", s.url))
            .header("authorization", "Token abc")
            .send()
            .await
            .unwrap();
        let (st, v) = json(r).await;
        assert_eq!((st, v["error"].as_str()), (400, Some("invalid_request")), "malformed header");
        // Bad parameters.
        check(
            &s.csc("v1", "credentials/info", &fay, json!({})).await,
            400,
            "invalid_request",
            "no credentialID",
        );
        check(
            &s.csc("v1", "credentials/info", &fay, json!({"credentialID": 7})).await,
            400,
            "invalid_request",
            "wrong type",
        );
        check(
            &s.csc(
                "v1",
                "credentials/info",
                &fay,
                json!({"credentialID": fay_id, "certificates": "all"}),
            )
            .await,
            400,
            "invalid_request",
            "certificates",
        );
        check(
            &s.csc("v1", "credentials/list", &fay, json!({"userID": "fay"})).await,
            400,
            "invalid_request",
            "userID",
        );
        // Another signer's credential does not exist for you.
        check(
            &s.csc("v1", "credentials/info", &fay, json!({"credentialID": gus_id})).await,
            400,
            "invalid_request",
            "other's info",
        );
        let a = s
            .csc(
                "v1",
                "credentials/authorize",
                &fay,
                json!({"credentialID": gus_id, "numSignatures": 1, "PIN": "2222"}),
            )
            .await;
        check(&a, 400, "invalid_request", "other's authorize");
        // SCAL 2 needs the hashes; numSignatures is bounded by multisign.
        let a = s
            .csc(
                "v1",
                "credentials/authorize",
                &fay,
                json!({"credentialID": fay_id, "numSignatures": 1, "PIN": "1111"}),
            )
            .await;
        check(&a, 400, "invalid_request", "SCAL 2 without hashes");
        let a = s
            .csc(
                "v1",
                "credentials/authorize",
                &fay,
                json!({"credentialID": fay_id, "numSignatures": 6, "PIN": "1111"}),
            )
            .await;
        check(&a, 400, "invalid_request", "over multisign");
        // A SAD used for other hashes, replayed, used by another signer or on another credential.
        let sad = s.csc_authorize(&fay, fay_id, "1111", std::slice::from_ref(&h1)).await;
        let a = sign(fay.clone(), fay_id.into(), sad.clone(), vec![h2.clone()]).await;
        check(&a, 400, "invalid_request", "other hash");
        assert_eq!(a.body["error_description"], "Hash is not authorized by the SAD.");
        check(
            &sign(gus.clone(), gus_id.into(), sad.clone(), vec![h1.clone()]).await,
            400,
            "invalid_request",
            "other's SAD",
        );
        check(
            &sign(gus.clone(), fay_id.into(), sad.clone(), vec![h1.clone()]).await,
            400,
            "invalid_request",
            "other's credential",
        );
        let a = sign(fay.clone(), fay_id.into(), sad.clone(), vec![h1.clone()]).await;
        assert_eq!(a.status, 200, "{:?}", a.body);
        check(
            &sign(fay.clone(), fay_id.into(), sad.clone(), vec![h1.clone()]).await,
            400,
            "invalid_request",
            "replay",
        );
        // Digest length, algorithm, base64.
        let sad = s.csc_authorize(&gus, gus_id, "2222", &[]).await;
        let short = b64(&[0u8; 20]);
        check(
            &sign(gus.clone(), gus_id.into(), sad.clone(), vec![short]).await,
            400,
            "invalid_request",
            "digest length",
        );
        let a = s.csc("v1", "signatures/signHash", &gus, json!({"credentialID": gus_id, "SAD": sad, "hash": [h1], "signAlgo": "1.2.840.113549.1.1.11"})).await;
        check(&a, 400, "invalid_request", "RSA algo on an EC key");
        check(
            &sign(gus.clone(), gus_id.into(), sad.clone(), vec!["%%%".into()]).await,
            400,
            "invalid_request",
            "base64",
        );
        check(
            &sign(gus.clone(), gus_id.into(), sad.clone(), vec![]).await,
            400,
            "invalid_request",
            "empty hash array",
        );
        // The SAD expires (a fresh token, so that it outlives the SAD).
        let gus = s.csc_login("v1", "gus", "gus's password").await;
        let sad = s.csc_authorize(&gus, gus_id, "2222", &[]).await;
        tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
        let a = sign(gus.clone(), gus_id.into(), sad.clone(), vec![h1.clone()]).await;
        check(&a, 400, "invalid_request", "expired SAD");
        assert_eq!(a.body["error_description"], "SAD expired");
        // So does the access token.
        tokio::time::sleep(std::time::Duration::from_millis(2000)).await;
        check(
            &s.csc("v1", "credentials/list", &gus, json!({})).await,
            401,
            "expired_token",
            "expired token",
        );
        s.stop().await;
        db.cleanup().await;
    }
}

#[tokio::test]
async fn wrong_pins_lock_the_credential_until_it_is_unlocked() {
    for db in backends().await {
        let s = TestServer::start(&db).await;
        s.signer("hal", "hal's password").await;
        let c = s.credential("hal", "p256", "135790", 1, 1).await;
        let id = c["credential_id"].as_str().unwrap();
        let token = s.csc_login("v2", "hal", "hal's password").await;
        let authorize = |ver: &'static str, pin: &'static str| {
            let (s, token) = (&s, token.clone());
            let body = if ver == "v1" {
                json!({"credentialID": id, "numSignatures": 1, "PIN": pin})
            } else {
                json!({"credentialID": id, "numSignatures": 1, "authData": [{"id": "PIN", "value": pin}]})
            };
            async move { s.csc(ver, "credentials/authorize", &token, body).await }
        };
        let a = authorize("v1", "000000").await;
        assert_eq!((a.status, a.error()), (400, "invalid_pin"), "{:?}", a.body);
        let a = authorize("v2", "000000").await;
        assert_eq!((a.status, a.error()), (400, "invalid_authentication_data"), "{:?}", a.body);
        // A right PIN resets the count.
        assert_eq!(authorize("v1", "135790").await.status, 200);
        for _ in 0..3 {
            assert_eq!(authorize("v1", "000000").await.error(), "invalid_pin");
        }
        // Locked: even the right PIN is refused.
        let a = authorize("v1", "135790").await;
        assert_eq!(
            (a.status, a.error(), a.body["error_description"].as_str()),
            (400, "invalid_request", Some("PIN locked"))
        );
        let (_, v) = json(
            s.admin(Method::GET, &format!("/api/v1/signing-credentials/{id}"))
                .send()
                .await
                .unwrap(),
        )
        .await;
        assert_eq!((v["locked"].as_bool(), v["pin_retries_left"].as_u64()), (Some(true), Some(0)));
        let r = s
            .admin(Method::PATCH, &format!("/api/v1/signing-credentials/{id}"))
            .json(&json!({"unlock": true}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        assert_eq!(authorize("v2", "135790").await.status, 200);
        // Every authorize is audited with its outcome, never the PIN or the SAD.
        let trail = s.trail("signing_credential", id).await;
        let outcomes: Vec<&str> = trail["items"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|e| e["action"] == "csc.authorize")
            .map(|e| e["details"]["outcome"].as_str().unwrap())
            .collect();
        assert_eq!(
            outcomes,
            [
                "invalid_pin",
                "invalid_pin",
                "ok",
                "invalid_pin",
                "invalid_pin",
                "invalid_pin_locked",
                "locked",
                "ok"
            ]
        );
        let text = trail.to_string();
        assert!(!text.contains("135790") && !text.contains("000000"), "{text}");
        s.stop().await;
        db.cleanup().await;
    }
}

#[tokio::test]
async fn sign_hash_is_audited_and_a_revoked_certificate_signs_no_more() {
    for db in backends().await {
        // No caching: the revocation must show at the very next call.
        let toml = "[csc]\ncache_ttl_ms = 0\n".to_owned();
        let s = TestServer::start_with(&db, Options { toml, ..Default::default() }).await;
        s.signer("ivy", "ivy's password").await;
        let c = s.credential("ivy", "p256", "4321", 1, 2).await;
        let id = c["credential_id"].as_str().unwrap();
        let token = s.csc_login("v1", "ivy", "ivy's password").await;
        let h = sha256(b"x");
        let sad = s.csc_authorize(&token, id, "4321", &[]).await;
        let sign = |sad: String| {
            let (s, token, h) = (&s, token.clone(), h.clone());
            async move {
                s.csc("v1", "signatures/signHash", &token, json!({"credentialID": id, "SAD": sad, "hash": [h], "signAlgo": "1.2.840.10045.4.3.2"})).await
            }
        };
        assert_eq!(sign(sad.clone()).await.status, 200);
        // Revoke the credential's certificate through the certificate API: CRL, OCSP, and CSC.
        let cert_id = c["certificate_id"].as_str().unwrap();
        let r = s
            .admin(Method::POST, &format!("/api/v1/certificates/{cert_id}/revoke"))
            .json(&json!({"reason": "keyCompromise"}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        let (_, cert) = json(
            s.admin(Method::GET, &format!("/api/v1/certificates/{cert_id}")).send().await.unwrap(),
        )
        .await;
        assert!(s.ocsp_text(&cert).await.contains("revoked"));
        let a = sign(sad.clone()).await;
        assert_eq!(
            (a.status, a.body["error_description"].as_str()),
            (400, Some("Signing certificate is revoked"))
        );
        let i = s.csc("v1", "credentials/info", &token, json!({"credentialID": id})).await;
        assert_eq!(i.body["cert"]["status"], "revoked");
        let trail = s.trail("signing_credential", id).await;
        let signs: Vec<&Value> = trail["items"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|e| e["action"] == "csc.sign_hash")
            .collect();
        assert_eq!(signs.len(), 2);
        assert_eq!(signs[0]["details"]["outcome"], "ok");
        assert_eq!(signs[0]["details"]["hashes"], 1);
        assert_eq!(signs[0]["actor"]["kind"], "signer");
        assert_eq!(signs[1]["details"]["outcome"], "invalid_request");
        assert!(!trail.to_string().contains(&sad), "the SAD never reaches the audit trail");
        s.stop().await;
        db.cleanup().await;
    }
}

#[tokio::test]
async fn csc_endpoints_are_throttled_and_hidden_by_exposure_with_csc_errors() {
    for db in backends().await {
        let toml = "[exposure.endpoints.\"POST /csc/v1/credentials/list\"]\nrate_limit = { requests = 2, per = \"minute\" }\n\
                    [exposure.endpoints.\"POST /csc/v2/signatures/signHash\"]\nenabled = false\n".to_owned();
        let s = TestServer::start_with(&db, Options { toml, ..Default::default() }).await;
        s.signer("jon", "jon's password").await;
        let token = s.csc_login("v1", "jon", "jon's password").await;
        for _ in 0..2 {
            assert_eq!(s.csc("v1", "credentials/list", &token, json!({})).await.status, 200);
        }
        let r = s
            .client
            .post(format!("{}/csc/v1/credentials/list", s.url))
            .bearer_auth(&token)
            .json(&json!({}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 429);
        assert!(r.headers().contains_key("retry-after"));
        assert_eq!(r.headers()["content-type"], "application/json");
        let (_, v) = json(r).await;
        assert_eq!(v["error"], "temporarily_unavailable", "{v}");
        let a = s.csc("v2", "signatures/signHash", &token, json!({})).await;
        assert_eq!(
            (a.status, a.content_type.as_str(), a.error()),
            (404, "application/json", "invalid_request")
        );
        s.stop().await;
        db.cleanup().await;
    }
}

#[tokio::test]
async fn concurrent_sign_hash_calls_never_spend_a_sad_twice() {
    for db in backends().await {
        let s = TestServer::start(&db).await;
        s.signer("kim", "kim's password").await;
        let c = s.credential("kim", "p256", "9753", 1, 3).await;
        let id = c["credential_id"].as_str().unwrap().to_owned();
        let token = s.csc_login("v1", "kim", "kim's password").await;
        // A SAD for three signatures, raced by twelve single-hash calls.
        let a = s
            .csc(
                "v1",
                "credentials/authorize",
                &token,
                json!({"credentialID": id, "numSignatures": 3, "PIN": "9753"}),
            )
            .await;
        let sad = a.body["SAD"].as_str().unwrap().to_owned();
        let calls = (0..12).map(|i| {
            let body = json!({"credentialID": id, "SAD": sad, "hash": [sha256(format!("doc {i}").as_bytes())],
                "signAlgo": "1.2.840.10045.4.3.2"});
            let (s, token) = (&s, token.clone());
            async move { s.csc("v1", "signatures/signHash", &token, body).await }
        });
        let answers = futures_util::future::join_all(calls).await;
        let ok = answers.iter().filter(|a| a.status == 200).count();
        assert_eq!(ok, 3, "{answers:?}");
        assert!(
            answers
                .iter()
                .all(|a| a.status == 200 || (a.status, a.error()) == (400, "invalid_request"))
        );
        // A P-256 signature is computed while its spend commits: a refused call's is dropped.
        assert!(answers.iter().all(|a| (a.status == 200) == a.body.get("signatures").is_some()));
        // The audit trail has exactly three successful signings.
        let trail = s.trail("signing_credential", &id).await;
        let signed = trail["items"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|e| e["action"] == "csc.sign_hash" && e["details"]["outcome"] == "ok")
            .count();
        assert_eq!(signed, 3);
        s.stop().await;
        db.cleanup().await;
    }
}

#[tokio::test]
async fn a_ca_key_copied_into_a_credential_row_signs_nothing() {
    for db in backends().await {
        let toml = "[csc]\ncache_ttl_ms = 0\n".to_owned();
        let s = TestServer::start_with(&db, Options { toml, ..Default::default() }).await;
        s.signer("mallory", "mallory's password").await;
        let c = s.credential("mallory", "p256", "2468", 1, 10).await;
        let id = c["id"].as_str().unwrap().to_owned();
        let token = s.csc_login("v1", "mallory", "mallory's password").await;
        let digest = Sha256::digest(b"tbsCertificate of www.bank.example").to_vec();
        let sign = |sad: String| {
            let req = json!({"credentialID": id, "SAD": sad, "hash": [STANDARD.encode(&digest)],
                "signAlgo": "1.2.840.10045.4.3.2"});
            s.csc("v1", "signatures/signHash", &token, req)
        };
        let sad = s.csc_authorize(&token, &id, "2468", &[STANDARD.encode(&digest)]).await;
        assert_eq!(sign(sad).await.status, 200, "the credential signs with its own key");
        // A database writer copies the sealed issuing-CA key into the credential's row.
        let store = s.db().await;
        let ca = store.cas().await.unwrap().into_iter().next().unwrap();
        let body: String = sigil_core::records::RecordStore::record(
            &store,
            sigil_core::records::Collection::Credentials,
            &id,
        )
        .await
        .unwrap()
        .expect("the credential row");
        let mut body: Value = serde_json::from_str(&body).unwrap();
        body["sealed_key"] = json!(STANDARD.encode(&ca.key_sealed));
        let text = body.to_string().replace('\'', "''");
        store
            .execute_raw(&format!(
                "UPDATE signing_credentials SET body = '{text}' WHERE id = '{id}'"
            ))
            .await
            .unwrap();
        let sad = s.csc_authorize(&token, &id, "2468", &[STANDARD.encode(&digest)]).await;
        let a = sign(sad).await;
        assert!(a.status >= 400, "{:?}", a.body);
        assert!(a.body.get("signatures").is_none(), "{:?}", a.body);
        store.close().await;
        s.stop().await;
        db.cleanup().await;
    }
}
