//! CSC helpers: signers and credentials made through `/api/v1`, and calls to `/csc/v1|v2` as
//! a signer.

use reqwest::Method;
use serde_json::{Value, json};

use crate::{TestServer, json as body_of};

/// A CSC answer: status, `Content-Type`, JSON body.
#[derive(Debug)]
pub struct Answer {
    /// HTTP status.
    pub status: u16,
    /// Its content type.
    pub content_type: String,
    /// The body (a JSON string if it was not JSON).
    pub body: Value,
}

impl Answer {
    /// The CSC `error` code.
    pub fn error(&self) -> &str {
        self.body["error"].as_str().unwrap_or("")
    }
}

impl TestServer {
    /// Creates a signer as the administrator; returns its id.
    pub async fn signer(&self, username: &str, password: &str) -> String {
        let r = self
            .admin(Method::POST, "/api/v1/signers")
            .json(&json!({"username": username, "password": password}))
            .send()
            .await
            .unwrap();
        let (st, v) = body_of(r).await;
        assert_eq!(st, 201, "{v}");
        v["id"].as_str().unwrap().to_owned()
    }

    /// Creates a signing credential as the administrator; returns the response body.
    pub async fn credential(
        &self,
        signer: &str,
        alg: &str,
        pin: &str,
        scal: u8,
        multisign: u32,
    ) -> Value {
        let r = self
            .admin(Method::POST, "/api/v1/signing-credentials")
            .json(&json!({"signer": signer, "key_algorithm": alg, "pin": pin, "scal": scal,
                "multisign": multisign}))
            .send()
            .await
            .unwrap();
        let (st, v) = body_of(r).await;
        assert_eq!(st, 201, "{v}");
        v
    }

    /// Logs in at `/csc/{ver}/auth/login` with HTTP Basic; returns the access token.
    pub async fn csc_login(&self, ver: &str, user: &str, password: &str) -> String {
        let r = self
            .client
            .post(format!("{}/csc/{ver}/auth/login", self.url))
            .basic_auth(user, Some(password))
            .send()
            .await
            .unwrap();
        let (st, v) = body_of(r).await;
        assert_eq!(st, 200, "{v}");
        v["access_token"].as_str().unwrap().to_owned()
    }

    /// POSTs `body` to `/csc/{ver}/{method}` with `token` as bearer (none if empty).
    pub async fn csc(&self, ver: &str, method: &str, token: &str, body: Value) -> Answer {
        let mut b = self.client.request(Method::POST, format!("{}/csc/{ver}/{method}", self.url));
        if !token.is_empty() {
            b = b.bearer_auth(token);
        }
        let r = b.json(&body).send().await.unwrap();
        let content_type =
            r.headers().get("content-type").and_then(|v| v.to_str().ok()).unwrap_or("").to_owned();
        let (status, body) = body_of(r).await;
        Answer { status, content_type, body }
    }

    /// Authorizes `hashes` (base64; none: one signature of any hash) on `credential` with
    /// `pin` through v1; returns the SAD.
    pub async fn csc_authorize(
        &self,
        token: &str,
        credential: &str,
        pin: &str,
        hashes: &[String],
    ) -> String {
        let mut body = json!({"credentialID": credential, "numSignatures": hashes.len().max(1),
            "PIN": pin});
        if !hashes.is_empty() {
            body["hash"] = json!(hashes);
        }
        let a = self.csc("v1", "credentials/authorize", token, body).await;
        assert_eq!(a.status, 200, "{:?}", a.body);
        a.body["SAD"].as_str().unwrap().to_owned()
    }
}
