//! Completes Sigil's person records from an HR system that serves employees as JSON:
//! `GET {url}/employees/{employee number}` (by `external_id`), or
//! `GET {url}/employees?email={email}` (by e-mail) answering one employee or a list.
//!
//! Config: `url` (the HR API's base URL, which must be in the plugin's `allowed_hosts`),
//! optional `token` (sent as a bearer token). The employee's `employee_id` becomes
//! `external_id`; `given_name`, `family_name`, `email` and `phone` keep their names; every other
//! string or number field becomes an extended attribute (`attributes.<name>`).

use sigil_plugin_sdk::http::{Kv, request};
use sigil_plugin_sdk::identity::{IdentitySource, field, known};
use sigil_plugin_sdk::{config, outbound};

struct HrDirectory;

const STANDARD: [&str; 4] = ["given_name", "family_name", "email", "phone"];

fn encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                char::from(b).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

fn fields(employee: &serde_json::Map<String, serde_json::Value>) -> Vec<Kv> {
    let mut out = Vec::new();
    for (k, v) in employee {
        let value = match v {
            serde_json::Value::String(s) => s.clone(),
            serde_json::Value::Number(n) => n.to_string(),
            _ => continue,
        };
        let name = match k.as_str() {
            "employee_id" => "external_id".to_owned(),
            k if STANDARD.contains(&k) => k.to_owned(),
            other => format!("attributes.{other}"),
        };
        out.push(field(&name, value));
    }
    out
}

impl IdentitySource for HrDirectory {
    fn lookup(who: Vec<Kv>) -> Result<Option<Vec<Kv>>, String> {
        let base = config::get("url").ok_or("config `url` is missing")?;
        let base = base.trim_end_matches('/');
        let url = if let Some(id) = known(&who, "external_id") {
            format!("{base}/employees/{}", encode(id))
        } else if let Some(email) = known(&who, "email") {
            format!("{base}/employees?email={}", encode(email))
        } else {
            return Err("the HR system finds people by external_id or email".into());
        };
        let mut req = request("GET", &url);
        req.headers.push(Kv { key: "accept".into(), value: "application/json".into() });
        if let Some(token) = config::get("token") {
            req.headers.push(Kv { key: "authorization".into(), value: format!("Bearer {token}") });
        }
        let resp = outbound::send(&req)?;
        match resp.status {
            404 => return Ok(None),
            200 => {}
            s => return Err(format!("the HR system answered {s}")),
        }
        let body: serde_json::Value = serde_json::from_slice(&resp.body)
            .map_err(|e| format!("the HR system sent invalid JSON: {e}"))?;
        let employee = match &body {
            serde_json::Value::Array(list) => match list.as_slice() {
                [] => return Ok(None),
                [one] => one.as_object(),
                _ => return Err(format!("{} employees match; refusing to guess", list.len())),
            },
            other => other.as_object(),
        };
        let employee = employee.ok_or("the HR system's employee is not a JSON object")?;
        Ok(Some(fields(employee)))
    }
}

sigil_plugin_sdk::export_identity_source!(HrDirectory);
