//! A CA connector for cfssl (`cfssl serve`, tested against Debian's golang-cfssl 1.2.0, a 2016
//! snapshot). Sigil's profile decides the subject and names; this connector sends them to cfssl
//! as overrides so cfssl cannot widen them, maps Sigil's profile to a cfssl profile, and revokes
//! by decimal serial (what cfssl's certdb keys on).
//!
//! Configuration (`[plugins.load.<id>.config]`):
//! - `url`: cfssl's base URL, e.g. `http://127.0.0.1:8888` (also in `allowed_hosts`);
//! - `profile`: the cfssl profile to sign with (default `client`); `profile.<sigil profile>`
//!   overrides it per Sigil profile. cfssl silently signs with its default profile for a name
//!   it does not know, so keep cfssl's default profile harmless;
//! - `auth_key`: hex HMAC key of the cfssl profile; when set, requests go to `/authsign` with
//!   an HMAC-SHA256 token instead of the unauthenticated `/sign`;
//! - `chain_pem`: the certificates above cfssl's signing CA (PEM, root last); cfssl's `info`
//!   returns only the signing certificate;
//! - `authority_key_id`: what cfssl's certdb stores as AKI (default empty: this cfssl build
//!   always stores an empty one, and revoke matches on it).
//!
//! cfssl answers HTTP 400 for every error, transient or not, so decisions are made on its error
//! `code`: `11000` (database locked) is retried, the rest are reported.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use hmac::{Hmac, KeyInit, Mac};
use serde::Deserialize;
use serde_json::{Value, json};
use sigil_plugin_sdk::connector::{
    CaConnector, CertificateRef, ConnectorInfo, IssueRequest, Issued,
};
use sigil_plugin_sdk::http::json_request;
use sigil_plugin_sdk::{config, outbound, pem};

/// cfssl's "database is locked" (certdb write failed under load): worth another try.
const DB_LOCKED: i64 = 11000;
const ATTEMPTS: usize = 3;

#[derive(Deserialize)]
struct Envelope {
    success: bool,
    #[serde(default)]
    result: Value,
    #[serde(default)]
    errors: Vec<CfsslError>,
}

#[derive(Deserialize)]
struct CfsslError {
    code: i64,
    message: String,
}

fn base_url() -> Result<String, String> {
    let url = config::get("url").ok_or("config `url` (cfssl's base URL) is missing")?;
    Ok(url.trim_end_matches('/').to_owned())
}

/// POSTs `body` to `/api/v1/cfssl/<endpoint>` and returns `result`, retrying a locked certdb.
fn post(endpoint: &str, body: &Value) -> Result<Value, String> {
    let url = format!("{}/api/v1/cfssl/{endpoint}", base_url()?);
    let mut last = String::new();
    for _ in 0..ATTEMPTS {
        let resp = outbound::send(&json_request("POST", &url, body.to_string()))
            .map_err(|e| format!("cfssl {endpoint}: {e}"))?;
        let env: Envelope = serde_json::from_slice(&resp.body).map_err(|_| {
            format!(
                "cfssl {endpoint} answered HTTP {} without a cfssl envelope: {}",
                resp.status,
                String::from_utf8_lossy(&resp.body).chars().take(200).collect::<String>()
            )
        })?;
        if env.success {
            return Ok(env.result);
        }
        let errs: Vec<String> =
            env.errors.iter().map(|e| format!("{} {}", e.code, e.message)).collect();
        last = format!("cfssl {endpoint} failed: {}", errs.join("; "));
        if !env.errors.iter().any(|e| e.code == DB_LOCKED) {
            break;
        }
    }
    Err(last)
}

/// `/sign`, or `/authsign` with an HMAC token when `auth_key` is configured.
fn sign(request: &Value) -> Result<Value, String> {
    let Some(key) = config::get("auth_key") else {
        return post("sign", request);
    };
    let key = hex::decode(key.trim()).map_err(|e| format!("config `auth_key` is not hex: {e}"))?;
    let inner = request.to_string();
    let mut mac = <Hmac<sha2::Sha256> as KeyInit>::new_from_slice(&key)
        .map_err(|e| format!("config `auth_key`: {e}"))?;
    mac.update(inner.as_bytes());
    let token = STANDARD.encode(mac.finalize().into_bytes());
    post("authsign", &json!({"token": token, "request": STANDARD.encode(inner)}))
}

fn cfssl_profile(sigil_profile: &str) -> String {
    config::get(&format!("profile.{sigil_profile}"))
        .or_else(|| config::get("profile"))
        .unwrap_or_else(|| "client".to_owned())
}

/// Sigil's subject as cfssl's override: `CN` plus one `names` entry per attribute cfssl knows.
fn subject(req: &IssueRequest) -> Result<Value, String> {
    let mut cn = String::new();
    let mut names = Vec::new();
    for kv in &req.subject {
        match kv.key.as_str() {
            "CN" => cn = kv.value.clone(),
            "C" | "ST" | "L" | "O" | "OU" => names.push(json!({ kv.key.as_str(): kv.value })),
            other => return Err(format!("cfssl cannot set the subject attribute `{other}`")),
        }
    }
    Ok(json!({"CN": cn, "names": names}))
}

fn hosts(req: &IssueRequest) -> Result<Vec<String>, String> {
    req.sans
        .iter()
        .map(|s| match s.split_once(':') {
            Some(("dns" | "ip" | "email", v)) => Ok(v.to_owned()),
            _ => Err(format!("cfssl cannot put the subject alternative name `{s}`")),
        })
        .collect()
}

fn certificate_of(result: &Value, what: &str) -> Result<Vec<u8>, String> {
    let text = result
        .get("certificate")
        .and_then(Value::as_str)
        .ok_or_else(|| format!("cfssl {what}: no certificate in the result"))?;
    pem::decode("CERTIFICATE", text)
}

struct Cfssl;

impl CaConnector for Cfssl {
    fn info() -> Result<ConnectorInfo, String> {
        let profile = config::get("profile").unwrap_or_else(|| "client".to_owned());
        let result = post("info", &json!({"label": "", "profile": profile}))?;
        let ca_certificate = certificate_of(&result, "info")?;
        let chain = match config::get("chain_pem") {
            Some(p) => pem::decode_all("CERTIFICATE", &p)?,
            None => Vec::new(),
        };
        Ok(ConnectorInfo {
            name: format!("cfssl at {}", base_url()?),
            ca_certificate,
            chain,
            // cfssl's revoke is final: there is no way to lift a hold.
            supports_suspension: false,
        })
    }

    fn issue(request: IssueRequest) -> Result<Issued, String> {
        let body = json!({
            "certificate_request": pem::encode("CERTIFICATE REQUEST", &request.csr),
            "profile": cfssl_profile(&request.profile),
            "hosts": hosts(&request)?,
            "subject": subject(&request)?,
        });
        let result = sign(&body)?;
        Ok(Issued { certificate: certificate_of(&result, "sign")?, chain: Vec::new() })
    }

    fn revoke(certificate: CertificateRef, reason: String) -> Result<(), String> {
        // Revoking twice answers 200 twice, so a retry is harmless.
        post(
            "revoke",
            &json!({
                "serial": certificate.serial_decimal,
                "authority_key_id": config::get("authority_key_id").unwrap_or_default(),
                "reason": reason,
            }),
        )
        .map(drop)
    }

    fn suspend(_certificate: CertificateRef) -> Result<(), String> {
        Err("cfssl cannot put a certificate on hold and lift it again".into())
    }

    fn reactivate(_certificate: CertificateRef) -> Result<(), String> {
        Err("cfssl cannot lift a hold".into())
    }
}

sigil_plugin_sdk::export_ca_connector!(Cfssl);
