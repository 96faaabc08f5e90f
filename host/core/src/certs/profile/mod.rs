//! Certificate profiles (templates): which keys, names and extensions a request may carry, how
//! long the certificate lives, which CA back end signs it, and when it may be renewed. A profile
//! turns a verified request into the exact content of the certificate, or refuses it with the
//! rule that failed.

mod builtin;
pub mod cabf;
pub mod conformance;

pub use builtin::built_in_profiles;

use crate::ErrorCode;
use regex::Regex;
use time::{Duration, OffsetDateTime};

use crate::certs::{KeyType, NameAttribute, ParsedCsr, RequestKey, San};
use crate::error::{CoreError, Result};

/// Whether something must, may or must not appear.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Default,
    serde::Serialize,
    serde::Deserialize,
    utoipa::ToSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum Requirement {
    /// Must be present.
    Required,
    /// May be present.
    #[default]
    Optional,
    /// Must not be present.
    Forbidden,
}

fn default_attributes() -> Vec<String> {
    ["CN", "O", "OU", "C", "ST", "L", "emailAddress", "serialNumber"].map(String::from).to_vec()
}

/// Rules on the subject DN.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SubjectRules {
    /// The common name.
    #[serde(default)]
    pub common_name: Requirement,
    /// A regular expression the whole CN must match.
    #[serde(default)]
    pub common_name_pattern: Option<String>,
    /// Attributes allowed in the subject; others are refused.
    #[serde(default = "default_attributes")]
    pub allowed_attributes: Vec<String>,
}

impl Default for SubjectRules {
    fn default() -> Self {
        Self {
            common_name: Requirement::Optional,
            common_name_pattern: None,
            allowed_attributes: default_attributes(),
        }
    }
}

fn default_max_sans() -> u32 {
    100
}

/// Rules on subject alternative names.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SanRules {
    /// DNS names.
    #[serde(default)]
    pub dns: Requirement,
    /// IP addresses.
    #[serde(default)]
    pub ip: Requirement,
    /// E-mail addresses.
    #[serde(default)]
    pub email: Requirement,
    /// URIs.
    #[serde(default)]
    pub uri: Requirement,
    /// A regular expression every DNS name must match.
    #[serde(default)]
    pub dns_pattern: Option<String>,
    /// A regular expression every e-mail address must match.
    #[serde(default)]
    pub email_pattern: Option<String>,
    /// Most SANs in one certificate.
    #[serde(default = "default_max_sans")]
    pub max: u32,
}

impl Default for SanRules {
    fn default() -> Self {
        Self {
            dns: Requirement::Optional,
            ip: Requirement::Optional,
            email: Requirement::Optional,
            uri: Requirement::Optional,
            dns_pattern: None,
            email_pattern: None,
            max: default_max_sans(),
        }
    }
}

/// An extension copied into every certificate of the profile.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CustomExtension {
    /// Dotted OID.
    pub oid: String,
    /// Critical flag.
    #[serde(default)]
    pub critical: bool,
    /// The extension value (the DER inside the OCTET STRING), base64.
    pub value: String,
}

pub(crate) fn default_ca() -> String {
    "builtin".into()
}
fn default_validity() -> u32 {
    365
}
fn default_window() -> u32 {
    30
}
fn yes() -> bool {
    true
}

/// What a profile allows; the body of `POST/PUT /api/v1/profiles`.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ProfileSpec {
    /// What it is for.
    #[serde(default)]
    pub description: String,
    /// Allowed key types.
    pub key_types: Vec<KeyType>,
    /// Validity in days.
    #[serde(default = "default_validity")]
    pub validity_days: u32,
    /// Key usage bits by RFC name (`digitalSignature`, `keyEncipherment`, …). Each certificate
    /// gets those its key type may carry (EC: no encipherment; RSA: no key agreement).
    #[serde(default)]
    pub key_usage: Vec<String>,
    /// Extended key usages: `serverAuth`, `clientAuth`, `codeSigning`, `emailProtection`,
    /// `timeStamping`, `ocspSigning`, `documentSigning` (RFC 9336), or a dotted OID.
    #[serde(default)]
    pub extended_key_usage: Vec<String>,
    /// Subject rules.
    #[serde(default)]
    pub subject: SubjectRules,
    /// SAN rules.
    #[serde(default)]
    pub san: SanRules,
    /// Extensions added to every certificate.
    #[serde(default)]
    pub custom_extensions: Vec<CustomExtension>,
    /// CA back end id (see `GET /api/v1/ca-backends`).
    #[serde(default = "default_ca")]
    pub ca: String,
    /// Renewal is allowed this many days before notAfter (and after it, until revoked).
    #[serde(default = "default_window")]
    pub renewal_window_days: u32,
    /// Whether certificates of this profile may be suspended.
    #[serde(default = "yes")]
    pub allow_suspension: bool,
    /// Approvals an enrolment request for this profile needs before it is carried out, each by
    /// a different operator (1 to 3; 2 or more is dual control).
    #[serde(default = "one")]
    pub approvals_required: u8,
    /// Whether the requester of an enrolment request may approve it; false keeps request and
    /// approval with different operators (separation of duties).
    #[serde(default)]
    pub requester_may_approve: bool,
    /// Days a renewed certificate stays valid beside its renewal (to deploy the new one)
    /// before Sigil revokes it with reason superseded; 0 revokes it at once.
    #[serde(default = "default_supersede_grace")]
    pub supersede_grace_days: u32,
    /// Certificate policy OIDs (dotted) of the certificatePolicies extension.
    #[serde(default)]
    pub certificate_policies: Vec<String>,
    /// The profile follows the CA/Browser Forum TLS Baseline Requirements (a publicly trusted
    /// sub-CA): its rules are checked when it is saved and on every request.
    #[serde(default)]
    pub cabf_server_auth: bool,
    /// Served over ACME at `/acme/{profile}/directory` (when `[acme] enabled`): DNS and IP
    /// identifiers proven by http-01, tls-alpn-01 or dns-01 are issued under these rules.
    #[serde(default)]
    pub acme: bool,
}

fn default_supersede_grace() -> u32 {
    7
}

fn one() -> u8 {
    1
}

/// Key usage names accepted in profiles.
pub const KEY_USAGES: [&str; 9] = [
    "digitalSignature",
    "nonRepudiation",
    "keyEncipherment",
    "dataEncipherment",
    "keyAgreement",
    "keyCertSign",
    "cRLSign",
    "encipherOnly",
    "decipherOnly",
];

/// Extended key usage names accepted in profiles (`documentSigning` is RFC 9336's
/// id-kp-documentSigning, 1.3.6.1.5.5.7.3.36).
pub const EXTENDED_KEY_USAGES: [&str; 7] = [
    "serverAuth",
    "clientAuth",
    "codeSigning",
    "emailProtection",
    "timeStamping",
    "ocspSigning",
    "documentSigning",
];

/// The OID of RFC 9336's id-kp-documentSigning.
pub const DOCUMENT_SIGNING_OID: &str = "1.3.6.1.5.5.7.3.36";

/// Parses a dotted OID.
/// Canonical form only: decimal arcs without sign or leading zeros, a first arc of 0, 1 or 2,
/// a second arc under 40 below 2 (X.660), at most 32 arcs, and a first encoded subidentifier
/// that fits 64 bits. Any other spelling could name an OID that encodes like another one
/// (`1.63.140…` is `2.23.140…`) or compare unequal to its canonical self.
pub fn parse_oid(s: &str) -> Option<Vec<u64>> {
    let canonical = |a: &str| {
        !a.is_empty()
            && a.len() <= 20
            && a.bytes().all(|b| b.is_ascii_digit())
            && (a == "0" || !a.starts_with('0'))
    };
    let arcs: Option<Vec<u64>> =
        s.split('.').map(|a| canonical(a).then(|| a.parse().ok()).flatten()).collect();
    arcs.filter(|a| match a.as_slice() {
        [first, second, ..] => {
            a.len() <= 32 && (*first < 2 && *second < 40 || *first == 2 && *second < u64::MAX - 80)
        }
        _ => false,
    })
}

/// Compiled patterns, by pattern: a profile's rules are compiled once, not per request (a
/// pattern never changes meaning; an edited profile brings new patterns).
static COMPILED: std::sync::LazyLock<crate::cache::Cache<String, Regex>> =
    std::sync::LazyLock::new(|| {
        crate::cache::Cache::new(std::time::Duration::from_secs(3600), 1024)
    });

fn anchored(field: &str, p: &str) -> Result<Regex> {
    let key = p.to_owned();
    if let Some(re) = COMPILED.get(&key) {
        return Ok(re);
    }
    let re = Regex::new(&format!("^(?:{p})$")).map_err(|e| {
        CoreError::invalid(
            ErrorCode::InvalidProfile,
            format!("{field} is not a valid regular expression: {e}"),
        )
    })?;
    COMPILED.put(key, re.clone());
    Ok(re)
}

impl ProfileSpec {
    /// Checks the profile itself.
    pub fn validate(&self) -> Result<()> {
        let bad = |m: String| Err(CoreError::invalid(ErrorCode::InvalidProfile, m));
        if self.key_types.is_empty() {
            return bad("key_types must list at least one key type".into());
        }
        if !(1..=3).contains(&self.approvals_required) {
            return bad("approvals_required must be between 1 and 3".into());
        }
        if !(1..=3650).contains(&self.validity_days) {
            return bad("validity_days must be between 1 and 3650".into());
        }
        if let Some(k) = self.key_usage.iter().find(|k| !KEY_USAGES.contains(&k.as_str())) {
            return bad(format!("unknown key usage `{k}`"));
        }
        if let Some(k) =
            self.key_usage.iter().find(|k| matches!(k.as_str(), "keyCertSign" | "cRLSign"))
        {
            return bad(format!(
                "`{k}` is for CA certificates; profiles issue end-entity certificates"
            ));
        }
        if let Some(e) = self
            .extended_key_usage
            .iter()
            .find(|e| !EXTENDED_KEY_USAGES.contains(&e.as_str()) && parse_oid(e).is_none())
        {
            return bad(format!("unknown extended key usage `{e}`"));
        }
        for (i, c) in self.custom_extensions.iter().enumerate() {
            let Some(arcs) = parse_oid(&c.oid) else {
                return bad(format!("custom extension oid `{}` is not a dotted OID", c.oid));
            };
            if conformance::RESERVED_EXTENSIONS.contains(&conformance::dotted(&arcs).as_str()) {
                return bad(format!(
                    "custom extension {} is one Sigil sets itself (use the profile's own fields)",
                    c.oid
                ));
            }
            if self.custom_extensions[..i]
                .iter()
                .any(|o| parse_oid(&o.oid).as_deref() == Some(arcs.as_slice()))
            {
                return bad(format!("custom extension {} is listed twice", c.oid));
            }
            if base64::Engine::decode(&base64::engine::general_purpose::STANDARD, &c.value).is_err()
            {
                return bad(format!("custom extension {} value is not base64", c.oid));
            }
        }
        if let Some(p) = &self.subject.common_name_pattern {
            anchored("subject.common_name_pattern", p)?;
        }
        if let Some(p) = &self.san.dns_pattern {
            anchored("san.dns_pattern", p)?;
        }
        if let Some(p) = &self.san.email_pattern {
            anchored("san.email_pattern", p)?;
        }
        if self.renewal_window_days > self.validity_days {
            return bad("renewal_window_days cannot exceed validity_days".into());
        }
        if self.supersede_grace_days > self.validity_days {
            return bad("supersede_grace_days cannot exceed validity_days".into());
        }
        cabf::validate_policies(self)?;
        if self.cabf_server_auth {
            cabf::validate(self)?;
        }
        Ok(())
    }

    /// Checks `csr` against the profile and returns what goes into the certificate.
    pub fn apply(&self, csr: &ParsedCsr, now: OffsetDateTime) -> Result<CertContent> {
        self.apply_with(csr, now, false)
    }

    /// As [`ProfileSpec::apply`]; with `key_policy_overridden` a validator plugin has taken over
    /// the key rule, so any supported key type passes.
    pub fn apply_with(
        &self,
        csr: &ParsedCsr,
        now: OffsetDateTime,
        key_policy_overridden: bool,
    ) -> Result<CertContent> {
        let refuse = |code: ErrorCode, m: String| Err(CoreError::invalid(code, m));
        let key = match &csr.key {
            RequestKey::Known(k) if key_policy_overridden || self.key_types.contains(k) => *k,
            other => {
                let allowed: Vec<_> = self.key_types.iter().map(|k| k.as_str()).collect();
                return refuse(
                    ErrorCode::KeyNotAllowed,
                    format!(
                        "the profile allows {} keys; the request has {other}",
                        allowed.join(", ")
                    ),
                );
            }
        };
        conformance::check_no_repeats(&csr.subject)?;
        conformance::check_lengths(&csr.subject)?;
        for a in &csr.subject {
            if !self.subject.allowed_attributes.contains(&a.attribute) {
                return refuse(
                    ErrorCode::SubjectNotAllowed,
                    format!("subject attribute {} is not allowed by the profile", a.attribute),
                );
            }
        }
        match (self.subject.common_name, csr.common_name()) {
            (Requirement::Required, None) => {
                return refuse(ErrorCode::SubjectNotAllowed, "the profile requires a CN".into());
            }
            (Requirement::Forbidden, Some(_)) => {
                return refuse(
                    ErrorCode::SubjectNotAllowed,
                    "the profile does not allow a CN".into(),
                );
            }
            _ => {}
        }
        if let (Some(p), Some(cn)) = (&self.subject.common_name_pattern, csr.common_name())
            && !anchored("subject.common_name_pattern", p)?.is_match(cn)
        {
            return refuse(
                ErrorCode::SubjectNotAllowed,
                format!("CN `{cn}` does not match the profile's pattern"),
            );
        }
        if csr.sans.len() > self.san.max as usize {
            return refuse(
                ErrorCode::SanNotAllowed,
                format!("at most {} SANs are allowed", self.san.max),
            );
        }
        for (kind, rule) in [
            ("dns", self.san.dns),
            ("ip", self.san.ip),
            ("email", self.san.email),
            ("uri", self.san.uri),
        ] {
            let present = csr.sans.iter().any(|s| s.kind() == kind);
            match rule {
                Requirement::Required if !present => {
                    return refuse(
                        ErrorCode::SanNotAllowed,
                        format!("the profile requires a {kind} SAN"),
                    );
                }
                Requirement::Forbidden if present => {
                    return refuse(
                        ErrorCode::SanNotAllowed,
                        format!("the profile does not allow {kind} SANs"),
                    );
                }
                _ => {}
            }
        }
        let dns_re =
            self.san.dns_pattern.as_deref().map(|p| anchored("san.dns_pattern", p)).transpose()?;
        let email_re = self
            .san
            .email_pattern
            .as_deref()
            .map(|p| anchored("san.email_pattern", p))
            .transpose()?;
        // A subject e-mail address is an e-mail address too: the same rules as an e-mail SAN.
        for a in csr.subject.iter().filter(|a| a.attribute == "emailAddress") {
            let as_san = San::Email(a.value.clone());
            if self.san.email == Requirement::Forbidden {
                return refuse(
                    ErrorCode::SubjectNotAllowed,
                    "the profile does not allow e-mail addresses (subject emailAddress)".into(),
                );
            }
            validate_san(&as_san).map_err(|_| {
                CoreError::invalid(
                    ErrorCode::SubjectNotAllowed,
                    format!("subject emailAddress `{}` is malformed", a.value),
                )
            })?;
            if let Some(re) = &email_re
                && !re.is_match(&a.value)
            {
                return refuse(
                    ErrorCode::SubjectNotAllowed,
                    format!(
                        "subject emailAddress `{}` does not match the profile's pattern",
                        a.value
                    ),
                );
            }
        }
        for s in &csr.sans {
            validate_san(s)?;
            let re = match s {
                San::Dns(_) => dns_re.as_ref(),
                San::Email(_) => email_re.as_ref(),
                _ => None,
            };
            if let Some(re) = re
                && !re.is_match(s.value())
            {
                let m =
                    format!("{} `{}` does not match the profile's pattern", s.kind(), s.value());
                return refuse(ErrorCode::SanNotAllowed, m);
            }
        }
        // Backdate a little for clocks that run behind. The validity period includes both ends
        // (RFC 5280 §4.1.2.5), so notAfter is one second short of notBefore + validity_days:
        // the certificate lives exactly as long as the profile says.
        // Whole seconds: what X.509 times can say, so the certificate says exactly this.
        let now = now.replace_nanosecond(0).unwrap_or(now);
        let not_before = now - Duration::minutes(5);
        let not_after =
            not_before + Duration::days(i64::from(self.validity_days)) - Duration::seconds(1);
        let key_usage = conformance::key_usage_for(key, &self.key_usage)?;
        if let Some(c) = self.custom_extensions.iter().find(|c| {
            parse_oid(&c.oid).is_some_and(|a| {
                conformance::RESERVED_EXTENSIONS.contains(&conformance::dotted(&a).as_str())
            })
        }) {
            // A profile stored before the rule: refuse rather than issue a contradiction.
            return refuse(
                ErrorCode::InvalidProfile,
                format!("the profile's custom extension {} is one Sigil sets itself", c.oid),
            );
        }
        if self.cabf_server_auth {
            cabf::check_request(self, &csr.subject, &csr.sans, now)?;
        }
        let mut custom_extensions: Vec<(Vec<u64>, bool, Vec<u8>)> = self
            .custom_extensions
            .iter()
            .filter_map(|c| {
                let value =
                    base64::Engine::decode(&base64::engine::general_purpose::STANDARD, &c.value)
                        .ok()?;
                Some((parse_oid(&c.oid)?, c.critical, value))
            })
            .collect();
        let policies: Vec<Vec<u64>> =
            self.certificate_policies.iter().filter_map(|p| parse_oid(p)).collect();
        if !policies.is_empty() {
            custom_extensions.push((vec![2, 5, 29, 32], false, cabf::policies_der(&policies)));
        }
        Ok(CertContent {
            subject: csr.subject.clone(),
            sans: csr.sans.clone(),
            spki_der: csr.spki_der.clone(),
            key_type: key,
            not_before,
            not_after,
            key_usage,
            extended_key_usage: self.extended_key_usage.clone(),
            custom_extensions,
            cabf_server_auth: self.cabf_server_auth,
        })
    }
}

impl ProfileSpec {
    /// Whether a certificate of this profile may name `san` on its own terms (its kind allowed,
    /// its syntax, the profile's pattern): what an ACME order's identifiers are checked against
    /// before any challenge. The whole request is still checked when it is finalized.
    pub fn check_san(&self, san: &San) -> Result<()> {
        let rule = match san {
            San::Dns(_) => self.san.dns,
            San::Ip(_) => self.san.ip,
            San::Email(_) => self.san.email,
            San::Uri(_) => self.san.uri,
        };
        if rule == Requirement::Forbidden {
            return Err(CoreError::invalid(
                ErrorCode::SanNotAllowed,
                format!("the profile does not allow {} SANs", san.kind()),
            ));
        }
        validate_san(san)?;
        let pattern = match san {
            San::Dns(_) => self.san.dns_pattern.as_deref().map(|p| ("san.dns_pattern", p)),
            San::Email(_) => self.san.email_pattern.as_deref().map(|p| ("san.email_pattern", p)),
            _ => None,
        };
        if let Some((field, p)) = pattern
            && !anchored(field, p)?.is_match(san.value())
        {
            return Err(CoreError::invalid(
                ErrorCode::SanNotAllowed,
                format!("{} `{}` does not match the profile's pattern", san.kind(), san.value()),
            ));
        }
        Ok(())
    }
}

/// Syntax checks on one SAN.
pub fn validate_san(s: &San) -> Result<()> {
    let ok = match s {
        San::Dns(d) => {
            let d = d.strip_prefix("*.").unwrap_or(d);
            !d.is_empty()
                && d.len() <= 253
                && d.split('.').all(|l| {
                    !l.is_empty()
                        && l.len() <= 63
                        && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
                        && !l.starts_with('-')
                        && !l.ends_with('-')
                })
        }
        San::Ip(ip) => ip.parse::<std::net::IpAddr>().is_ok(),
        San::Email(e) => e.split_once('@').is_some_and(|(a, b)| !a.is_empty() && !b.is_empty()),
        San::Uri(u) => u.split_once(':').is_some_and(|(scheme, rest)| {
            !scheme.is_empty()
                && scheme.bytes().all(|b| b.is_ascii_alphanumeric() || b"+-.".contains(&b))
                && !rest.is_empty()
        }),
    };
    if ok {
        Ok(())
    } else {
        Err(CoreError::invalid(
            ErrorCode::SanNotAllowed,
            format!("{} `{}` is malformed", s.kind(), s.value()),
        ))
    }
}

/// Everything that goes into a certificate, decided by the profile.
#[derive(Debug, Clone)]
pub struct CertContent {
    /// Subject attributes.
    pub subject: Vec<NameAttribute>,
    /// SANs.
    pub sans: Vec<San>,
    /// The subject's public key.
    pub spki_der: Vec<u8>,
    /// Its type.
    pub key_type: KeyType,
    /// notBefore.
    pub not_before: OffsetDateTime,
    /// notAfter.
    pub not_after: OffsetDateTime,
    /// Key usage names.
    pub key_usage: Vec<String>,
    /// Extended key usage names or OIDs.
    pub extended_key_usage: Vec<String>,
    /// (OID arcs, critical, value DER): the profile's own extensions and its
    /// certificatePolicies.
    pub custom_extensions: Vec<(Vec<u64>, bool, Vec<u8>)>,
    /// Under a CA/Browser Forum profile: the certificate must point to its CRL and OCSP.
    pub cabf_server_auth: bool,
}

/// A stored profile.
#[derive(Debug, Clone, PartialEq)]
pub struct Profile {
    /// Unique name.
    pub name: String,
    /// Rules.
    pub spec: ProfileSpec,
    /// Shipped with Sigil (may be changed, not deleted).
    pub built_in: bool,
    /// Creation time.
    pub created_at: OffsetDateTime,
    /// Last change.
    pub updated_at: OffsetDateTime,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn csr(cn: Option<&str>, sans: Vec<San>, key: RequestKey) -> ParsedCsr {
        ParsedCsr {
            der: vec![],
            subject: cn
                .map(|c| vec![NameAttribute { attribute: "CN".into(), value: c.into() }])
                .unwrap_or_default(),
            sans,
            spki_der: vec![],
            key,
        }
    }

    fn profile(name: &str) -> ProfileSpec {
        built_in_profiles().into_iter().find(|(n, _)| n == name).unwrap().1
    }

    #[test]
    fn only_canonical_oids_parse() {
        assert_eq!(parse_oid("2.23.140.1.2.1"), Some(vec![2, 23, 140, 1, 2, 1]));
        assert_eq!(parse_oid("0.9.2342"), Some(vec![0, 9, 2342]));
        for bad in ["2.23.140.1.2.+2", "2.23.140.1.2.02", "1.63.140.1.2.1", "3.1", "2", "2..1", ""]
        {
            assert_eq!(parse_oid(bad), None, "{bad}");
        }
        assert_eq!(parse_oid(&format!("2.{}", u64::MAX)), None);
    }

    #[test]
    fn built_in_profiles_are_valid() {
        for (_, p) in built_in_profiles() {
            p.validate().unwrap();
        }
    }

    #[test]
    fn tls_client_requires_a_cn_and_an_allowed_key() {
        let p = profile("tls-client");
        let now = OffsetDateTime::now_utc();
        assert!(
            p.apply(&csr(Some("alice"), vec![], RequestKey::Known(KeyType::P256)), now).is_ok()
        );
        assert_eq!(
            p.apply(&csr(None, vec![], RequestKey::Known(KeyType::P256)), now).unwrap_err().code(),
            "subject_not_allowed"
        );
        assert_eq!(
            p.apply(&csr(Some("a"), vec![], RequestKey::Rsa(1024)), now).unwrap_err().code(),
            "key_not_allowed"
        );
    }

    #[test]
    fn tls_server_requires_a_dns_san_and_refuses_bad_names() {
        let p = profile("tls-server");
        let now = OffsetDateTime::now_utc();
        let k = RequestKey::Known(KeyType::P384);
        assert!(
            p.apply(&csr(None, vec![San::Dns("www.example.org".into())], k.clone()), now).is_ok()
        );
        assert_eq!(
            p.apply(&csr(Some("x"), vec![], k.clone()), now).unwrap_err().code(),
            "san_not_allowed"
        );
        assert_eq!(
            p.apply(&csr(None, vec![San::Dns("bad_name!".into())], k.clone()), now)
                .unwrap_err()
                .code(),
            "san_not_allowed"
        );
        let with_email = vec![San::Dns("a.example".into()), San::Email("a@b.c".into())];
        assert_eq!(p.apply(&csr(None, with_email, k), now).unwrap_err().code(), "san_not_allowed");
    }

    #[test]
    fn patterns_are_enforced_on_the_whole_value() {
        let mut p = profile("tls-server");
        p.san.dns_pattern = Some(r"[a-z0-9-]+\.corp\.example".into());
        p.validate().unwrap();
        let now = OffsetDateTime::now_utc();
        let k = RequestKey::Known(KeyType::P256);
        assert!(
            p.apply(&csr(None, vec![San::Dns("web1.corp.example".into())], k.clone()), now).is_ok()
        );
        assert!(
            p.apply(&csr(None, vec![San::Dns("web1.corp.example.evil".into())], k), now).is_err()
        );
        p.san.dns_pattern = Some("(".into());
        assert_eq!(p.validate().unwrap_err().code(), "invalid_profile");
    }
}
