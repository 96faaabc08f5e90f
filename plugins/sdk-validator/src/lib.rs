//! A validator written with the SDK: refuses CNs and DNS names that contain any word of the
//! comma-separated `forbidden` config value (default `test,example`).

use sigil_plugin_sdk::validator::{Subject, SubjectExt, Validator, Verdict};
use sigil_plugin_sdk::{config, log};

struct ForbiddenWords;

impl Validator for ForbiddenWords {
    fn validate(s: Subject) -> Result<Verdict, String> {
        let words = config::get("forbidden").unwrap_or_else(|| "test,example".into());
        let words: Vec<&str> = words.split(',').map(str::trim).filter(|w| !w.is_empty()).collect();
        let mut names: Vec<&str> = s.dns_names();
        names.extend(s.attribute("CN"));
        let reasons: Vec<String> = names
            .iter()
            .filter_map(|n| {
                words.iter().find(|w| n.contains(*w)).map(|w| format!("`{n}` contains `{w}`"))
            })
            .collect();
        if reasons.is_empty() {
            Ok(Verdict::Allow)
        } else {
            log::info(&reasons.join("; "));
            Ok(Verdict::Deny(reasons))
        }
    }
}

sigil_plugin_sdk::export_validator!(ForbiddenWords);
