//! One call of any world from JSON, for `sigil plugin run`: the same fresh store, limits and
//! deadline as in the server, with the result, duration and peak memory.
//!
//! Inputs by world:
//! - validator: `{hook, attributes: {k: v}, sans: [], key_type, key_bits, context}`;
//! - endpoint: `{method, path, query, headers: {k: v}, body}` (no `sigil-api` behind it);
//! - workflow: `{kind, object_type, object_id, json}`;
//! - ca-connector: `{call: "info"}`, `{call: "issue", csr (PEM), subject: {k: v}, sans: [],
//!   validity_days, profile}`, `{call: "revoke" | "suspend" | "reactivate", serial (hex),
//!   reason}`. Certificates come back as base64 DER;
//! - identity-source: `{known: {k: v}}`.

use std::time::Instant;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use serde_json::{Value, json};

use crate::engine::PluginEngine;
use crate::error::PluginError;
use crate::plugin::{
    CallStats, CertificateRef, IssueRequest, Kv, LoadedPlugin, Pre, Subject, Verdict,
};

fn s(v: &Value, k: &str) -> String {
    v.get(k).and_then(Value::as_str).unwrap_or_default().to_owned()
}

fn kvs(v: &Value, k: &str) -> Vec<Kv> {
    v.get(k)
        .and_then(Value::as_object)
        .map(|m| {
            m.iter()
                .map(|(key, val)| Kv {
                    key: key.clone(),
                    value: val.as_str().map_or_else(|| val.to_string(), str::to_owned),
                })
                .collect()
        })
        .unwrap_or_default()
}

fn strings(v: &Value, k: &str) -> Vec<String> {
    v.get(k)
        .and_then(Value::as_array)
        .map(|a| a.iter().filter_map(|x| x.as_str().map(str::to_owned)).collect())
        .unwrap_or_default()
}

/// The validator input of `v`.
pub fn subject(v: &Value) -> Subject {
    Subject {
        hook: v.get("hook").and_then(Value::as_str).unwrap_or("certificate-issuance").to_owned(),
        attributes: kvs(v, "attributes"),
        sans: strings(v, "sans"),
        key_type: v.get("key_type").and_then(Value::as_str).map(str::to_owned),
        key_bits: v.get("key_bits").and_then(Value::as_u64).and_then(|b| u32::try_from(b).ok()),
        context: s(v, "context"),
        json: v.to_string(),
    }
}

fn pem_der(text: &str) -> Result<Vec<u8>, String> {
    let b64: String = text.lines().filter(|l| !l.starts_with("-----")).collect();
    STANDARD.decode(b64.trim()).map_err(|e| format!("csr: not PEM: {e}"))
}

fn bad_input(p: &LoadedPlugin, m: String) -> PluginError {
    PluginError::Rejected { plugin: p.id.clone(), message: format!("input: {m}") }
}

impl PluginEngine {
    /// Runs one call of `p`'s world with `input`; returns its result as JSON.
    pub async fn run_json(
        &self,
        p: &LoadedPlugin,
        input: &Value,
    ) -> Result<(Value, CallStats), PluginError> {
        let connector_call = s(input, "call");
        let issue = if connector_call == "issue" {
            Some(IssueRequest {
                csr: pem_der(&s(input, "csr")).map_err(|m| bad_input(p, m))?,
                subject: kvs(input, "subject"),
                sans: strings(input, "sans"),
                validity_days: input
                    .get("validity_days")
                    .and_then(Value::as_u64)
                    .and_then(|d| u32::try_from(d).ok())
                    .unwrap_or(365),
                profile: s(input, "profile"),
            })
        } else {
            None
        };
        let cert_ref = CertificateRef {
            serial: s(input, "serial"),
            serial_decimal: crate::connector::serial_decimal(&s(input, "serial")),
            certificate: vec![],
        };
        let _permit = p.permits.acquire().await.map_err(|e| PluginError::Engine(e.to_string()))?;
        let started = Instant::now();
        let mut store = self.store(p);
        let call = async {
            let out: Result<Value, String> = match &p.pre {
                Pre::Validator(pre) => {
                    let b = pre.instantiate_async(&mut store).await?;
                    b.call_validate(&mut store, &subject(input)).await?.map(|v| match v {
                        Verdict::Allow => json!({"verdict": "allow"}),
                        Verdict::OverrideAllow => json!({"verdict": "override-allow"}),
                        Verdict::Deny(r) => json!({"verdict": "deny", "reasons": r}),
                    })
                }
                Pre::Endpoint(pre) => {
                    let req = crate::plugin::HttpRequest {
                        method: v_or(input, "method", "GET"),
                        path: s(input, "path"),
                        query: s(input, "query"),
                        headers: kvs(input, "headers"),
                        body: s(input, "body").into_bytes(),
                    };
                    let b = pre.instantiate_async(&mut store).await?;
                    let r = b.call_handle(&mut store, &req).await?;
                    Ok(json!({
                        "status": r.status,
                        "headers": r.headers.iter().map(|kv| (kv.key.clone(), kv.value.clone())).collect::<std::collections::BTreeMap<_, _>>(),
                        "body": String::from_utf8_lossy(&r.body),
                    }))
                }
                Pre::Workflow(pre) => {
                    let ev = crate::plugin::Event {
                        kind: s(input, "kind"),
                        object_type: s(input, "object_type"),
                        object_id: s(input, "object_id"),
                        json: input.get("json").map_or_else(
                            || "{}".to_owned(),
                            |j| j.as_str().map_or_else(|| j.to_string(), str::to_owned),
                        ),
                    };
                    let b = pre.instantiate_async(&mut store).await?;
                    b.call_on_event(&mut store, &ev).await?.map(|actions| {
                        json!({"actions": actions.iter().map(|a| json!({"method": a.method, "path": a.path, "body": a.body})).collect::<Vec<_>>()})
                    })
                }
                Pre::Identity(pre) => {
                    let b = pre.instantiate_async(&mut store).await?;
                    b.call_lookup(&mut store, &kvs(input, "known")).await?.map(|found| {
                        json!({"found": found.map(|f| f.into_iter().map(|kv| (kv.key, kv.value)).collect::<std::collections::BTreeMap<_, _>>())})
                    })
                }
                Pre::Connector(pre) => {
                    let b = pre.instantiate_async(&mut store).await?;
                    match (connector_call.as_str(), &issue) {
                        ("info", _) => b.call_info(&mut store).await?.map(|i| {
                            json!({"name": i.name, "ca_certificate": STANDARD.encode(&i.ca_certificate),
                                   "chain": i.chain.iter().map(|c| STANDARD.encode(c)).collect::<Vec<_>>(),
                                   "supports_suspension": i.supports_suspension})
                        }),
                        ("issue", Some(req)) => b.call_issue(&mut store, req).await?.map(|i| {
                            json!({"certificate": STANDARD.encode(&i.certificate),
                                   "chain": i.chain.iter().map(|c| STANDARD.encode(c)).collect::<Vec<_>>()})
                        }),
                        ("revoke", _) => b
                            .call_revoke(&mut store, &cert_ref, &v_or(input, "reason", "unspecified"))
                            .await?
                            .map(|()| json!({"done": true})),
                        ("suspend", _) => b.call_suspend(&mut store, &cert_ref).await?.map(|()| json!({"done": true})),
                        ("reactivate", _) => {
                            b.call_reactivate(&mut store, &cert_ref).await?.map(|()| json!({"done": true}))
                        }
                        (other, _) => Err(format!(
                            "input: `call` must be info, issue, revoke, suspend or reactivate, not `{other}`"
                        )),
                    }
                }
            };
            wasmtime::Result::Ok(out)
        };
        let outcome = tokio::time::timeout(p.deadline(), call).await;
        let stats =
            CallStats { duration: started.elapsed(), peak_memory: store.data().limits.peak };
        p.outcome(&store, outcome).map(|v| (v, stats))
    }
}

fn v_or(v: &Value, k: &str, default: &str) -> String {
    v.get(k).and_then(Value::as_str).unwrap_or(default).to_owned()
}
