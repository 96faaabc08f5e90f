//! Customer rules for personal data, at the `person` and `custom-field` hooks:
//! - `person`: the e-mail address must be in one of the comma-separated `email_domains`;
//! - `custom-field`: the attribute named by `checksum_field` must pass the Luhn check; with
//!   `override = "yes"` the plugin takes over the built-in custom-field rules (pattern, length,
//!   allowed values) for the attributes it accepts;
//! - `enrolment-request`: requests for people of the offices in `blocked_offices` are refused.

use sigil_plugin_sdk::config;
use sigil_plugin_sdk::validator::{Subject, SubjectExt, Validator, Verdict};

fn luhn(digits: &str) -> bool {
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return false;
    }
    let sum: u32 = digits
        .bytes()
        .rev()
        .enumerate()
        .map(|(i, b)| {
            let d = u32::from(b - b'0');
            if i % 2 == 1 {
                let x = d * 2;
                if x > 9 { x - 9 } else { x }
            } else {
                d
            }
        })
        .sum();
    sum % 10 == 0
}

struct PersonRules;

impl Validator for PersonRules {
    fn validate(s: Subject) -> Result<Verdict, String> {
        match s.hook.as_str() {
            "person" => {
                let Some(domains) = config::get("email_domains") else { return Ok(Verdict::Allow) };
                match s.attribute("email") {
                    Some(email)
                        if !domains.split(',').map(str::trim).any(|d| email.ends_with(&format!("@{d}"))) =>
                    {
                        Ok(Verdict::Deny(vec![format!("`{email}` is not in {domains}")]))
                    }
                    _ => Ok(Verdict::Allow),
                }
            }
            "custom-field" => {
                if let Some(field) = config::get("checksum_field")
                    && let Some(v) = s.attribute(&field)
                    && !luhn(v)
                {
                    return Ok(Verdict::Deny(vec![format!("`{field}` fails its check digit")]));
                }
                if config::get("override").as_deref() == Some("yes") {
                    Ok(Verdict::OverrideAllow)
                } else {
                    Ok(Verdict::Allow)
                }
            }
            "enrolment-request" => {
                let blocked = config::get("blocked_offices").unwrap_or_default();
                match s.attribute("office_id") {
                    Some(o) if blocked.split(',').map(str::trim).any(|b| b == o) => {
                        Ok(Verdict::Deny(vec![format!("office {o} takes no enrolment requests")]))
                    }
                    _ => Ok(Verdict::Allow),
                }
            }
            _ => Ok(Verdict::Allow),
        }
    }
}

sigil_plugin_sdk::export_validator!(PersonRules);
