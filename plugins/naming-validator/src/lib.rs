//! Enforces customer naming rules and refuses weak keys, overriding the built-in key policy.
//!
//! Config: `cn_suffix` (default `.corp.example`): every CN and DNS SAN must end with it;
//! `min_rsa_bits` (default 3072): RSA keys below it are refused (stricter than the built-in 2048).

wit_bindgen::generate!({ world: "validator", path: "../../wit" });

use sigil::plugin::{config, log};

struct Naming;

impl Guest for Naming {
    fn validate(s: Subject) -> Result<Verdict, String> {
        let suffix = config::get("cn_suffix").unwrap_or_else(|| ".corp.example".into());
        let min_rsa: u32 = config::get("min_rsa_bits").and_then(|v| v.parse().ok()).unwrap_or(3072);
        let mut reasons = Vec::new();
        for kv in &s.attributes {
            if kv.key == "CN" && !kv.value.ends_with(&suffix) {
                reasons.push(format!("CN {} must end with {suffix}", kv.value));
            }
        }
        for san in &s.sans {
            if let Some(d) = san.strip_prefix("dns:") {
                if !d.ends_with(&suffix) {
                    reasons.push(format!("DNS name {d} must end with {suffix}"));
                }
            }
        }
        if let (Some(k), Some(bits)) = (&s.key_type, s.key_bits) {
            if k.starts_with("rsa") && bits < min_rsa {
                reasons.push(format!("RSA keys must have at least {min_rsa} bits, not {bits}"));
            }
        }
        if reasons.is_empty() {
            // Our key rule replaces the built-in one: accept on our own authority.
            Ok(Verdict::OverrideAllow)
        } else {
            log::log(log::Level::Info, &format!("refused: {}", reasons.join("; ")));
            Ok(Verdict::Deny(reasons))
        }
    }
}

export!(Naming);
