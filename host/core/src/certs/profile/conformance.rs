//! The RFC rules a profile's decision must follow whatever the profile says: key usage that fits
//! the key type (RFC 5480 §3, RFC 8813 §3 for EC; RFC 4055/5280 for RSA), no repeated subject
//! attributes (a relying party reads the first or the last, and the two disagree), a subject
//! e-mail address under the same rules as an e-mail SAN, and extensions the issuer sets never
//! supplied by a profile.

use crate::ErrorCode;
use time::{Duration, OffsetDateTime};

use crate::certs::profile::CertContent;
use crate::certs::{KeyType, NameAttribute, San};
use crate::error::{CoreError, Result};

/// Key usage bits an end-entity key of type `k` may carry. EC keys sign and agree on keys, never
/// encipher (RFC 8813 §3 forbids keyEncipherment and dataEncipherment); RSA keys sign and
/// encipher, never agree (keyAgreement, and with it encipherOnly/decipherOnly, is for DH/ECDH).
pub fn key_usage_allowed(k: KeyType, usage: &str) -> bool {
    let ec = matches!(k, KeyType::P256 | KeyType::P384);
    match usage {
        "digitalSignature" | "nonRepudiation" => true,
        "keyEncipherment" | "dataEncipherment" => !ec,
        "keyAgreement" | "encipherOnly" | "decipherOnly" => ec,
        _ => false,
    }
}

/// The profile's key usage as it applies to a key of type `k`: the bits that key type may
/// carry. Nothing left is an error, so a certificate never goes out without the usage its
/// profile meant.
pub fn key_usage_for(k: KeyType, wanted: &[String]) -> Result<Vec<String>> {
    let kept: Vec<String> = wanted.iter().filter(|u| key_usage_allowed(k, u)).cloned().collect();
    if kept.is_empty() && !wanted.is_empty() {
        return Err(CoreError::invalid(
            ErrorCode::KeyNotAllowed,
            format!("the profile's key usage ({}) does not apply to a {k} key", wanted.join(", ")),
        ));
    }
    // encipherOnly/decipherOnly mean something only next to keyAgreement.
    let agrees = kept.iter().any(|u| u == "keyAgreement");
    Ok(kept
        .into_iter()
        .filter(|u| agrees || !matches!(u.as_str(), "encipherOnly" | "decipherOnly"))
        .collect())
}

/// Refuses a subject that names an attribute twice (`CN=Ana, CN=Chief Executive`): relying
/// parties read the first or the last, and the two disagree. (Repeated OU or DC are refused too:
/// the built-in CA writes one value per attribute type.)
pub fn check_no_repeats(subject: &[NameAttribute]) -> Result<()> {
    for (i, a) in subject.iter().enumerate() {
        if subject[..i].iter().any(|b| b.attribute == a.attribute) {
            return Err(CoreError::invalid(
                ErrorCode::SubjectNotAllowed,
                format!("the subject names {} more than once", a.attribute),
            ));
        }
    }
    Ok(())
}

/// The upper bounds of RFC 5280 appendix A.1 (ub-common-name and kin), in characters; C is two
/// letters.
fn upper_bound(attribute: &str) -> Option<usize> {
    Some(match attribute {
        "CN" | "O" | "OU" | "serialNumber" => 64,
        "L" | "ST" => 128,
        "emailAddress" => 255,
        "C" => 2,
        _ => return None,
    })
}

/// Refuses subject values longer than RFC 5280 allows (and a country that is not two letters).
pub fn check_lengths(subject: &[NameAttribute]) -> Result<()> {
    for a in subject {
        let n = a.value.chars().count();
        let too_long = upper_bound(&a.attribute).is_some_and(|max| n > max);
        let bad_country =
            a.attribute == "C" && !(n == 2 && a.value.bytes().all(|b| b.is_ascii_uppercase()));
        if n == 0 || too_long || bad_country {
            return Err(CoreError::invalid(
                ErrorCode::SubjectNotAllowed,
                match upper_bound(&a.attribute) {
                    Some(2) => "subject C is two capital letters (ISO 3166)".to_owned(),
                    Some(max) => format!("subject {} is 1 to {max} characters", a.attribute),
                    None => format!("subject {} is empty", a.attribute),
                },
            ));
        }
    }
    Ok(())
}

/// Extensions the issuer sets (or that only a CA may carry): a profile's custom extensions may
/// not supply them. basicConstraints, keyUsage, extKeyUsage, subjectAltName, subjectKeyIdentifier,
/// authorityKeyIdentifier, cRLDistributionPoints, authorityInfoAccess, nameConstraints,
/// policyConstraints, policyMappings, inhibitAnyPolicy, issuerAltName, freshestCRL,
/// subjectInfoAccess, certificatePolicies (the profile's `certificate_policies`), their obsolete
/// forms, and extensions that change what relying parties do with the certificate.
pub const RESERVED_EXTENSIONS: [&str; 28] = [
    // What the issuer sets itself.
    "2.5.29.32",
    "2.5.29.19",
    "2.5.29.15",
    "2.5.29.37",
    "2.5.29.17",
    "2.5.29.14",
    "2.5.29.35",
    "2.5.29.31",
    "1.3.6.1.5.5.7.1.1",
    "2.5.29.30",
    "2.5.29.36",
    "2.5.29.33",
    "2.5.29.54",
    "2.5.29.18",
    "2.5.29.46",
    "1.3.6.1.5.5.7.1.11",
    // Their obsolete forms, which Windows still honours: old AKI, key attributes, policies,
    // key usage restriction, SAN, issuer alternative name, basic constraints (twice).
    "2.5.29.1",
    "2.5.29.2",
    "2.5.29.3",
    "2.5.29.4",
    "2.5.29.7",
    "2.5.29.8",
    "2.5.29.10",
    "2.5.29.13",
    // Certificate Transparency (a precertificate's poison, SCTs), OCSP no-check (a certificate
    // nobody could revoke) and AD CS application policies (honoured over the EKU).
    "1.3.6.1.4.1.11129.2.4.3",
    "1.3.6.1.4.1.11129.2.4.2",
    "1.3.6.1.5.5.7.48.1.5",
    "1.3.6.1.4.1.311.21.10",
];

/// The dotted form of OID arcs.
pub fn dotted(arcs: &[u64]) -> String {
    arcs.iter().map(u64::to_string).collect::<Vec<_>>().join(".")
}

/// What an issued certificate says, read back from its DER.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IssuedContent {
    /// Subject attributes, in order.
    pub subject: Vec<NameAttribute>,
    /// Whether an RDN holds several attributes.
    pub multi_valued_rdn: bool,
    /// SANs, in order.
    pub sans: Vec<San>,
    /// The subject public key, DER.
    pub spki_der: Vec<u8>,
    /// notBefore.
    pub not_before: OffsetDateTime,
    /// notAfter.
    pub not_after: OffsetDateTime,
    /// Key usage names.
    pub key_usage: Vec<String>,
    /// Extended key usage OIDs (dotted), or none when the extension is absent.
    pub extended_key_usage: Option<Vec<String>>,
    /// basicConstraints cA.
    pub is_ca: bool,
    /// Every extension: dotted OID, critical, value (the DER inside the OCTET STRING).
    pub extensions: Vec<(String, bool, Vec<u8>)>,
    /// The issuer name, DER.
    pub issuer_der: Vec<u8>,
    /// The subject name, DER.
    pub subject_der: Vec<u8>,
    /// The authority key identifier's keyIdentifier.
    pub authority_key_id: Option<Vec<u8>>,
    /// The subject key identifier.
    pub subject_key_id: Option<Vec<u8>>,
}

/// The dotted OID of an extended key usage name (or the OID itself).
pub fn eku_oid(name: &str) -> String {
    match name {
        "serverAuth" => "1.3.6.1.5.5.7.3.1",
        "clientAuth" => "1.3.6.1.5.5.7.3.2",
        "codeSigning" => "1.3.6.1.5.5.7.3.3",
        "emailProtection" => "1.3.6.1.5.5.7.3.4",
        "timeStamping" => "1.3.6.1.5.5.7.3.8",
        "ocspSigning" => "1.3.6.1.5.5.7.3.9",
        "documentSigning" => crate::certs::profile::DOCUMENT_SIGNING_OID,
        oid => oid,
    }
    .to_owned()
}

/// Extensions an issuer sets on an end-entity certificate itself; anything else must come from
/// the profile.
const ISSUER_EXTENSIONS: [&str; 8] = [
    "2.5.29.19",
    "2.5.29.15",
    "2.5.29.37",
    "2.5.29.17",
    "2.5.29.14",
    "2.5.29.35",
    "2.5.29.31",
    AIA_OID,
];

/// Extensions an external CA may add of its own accord that narrow nothing and widen nothing:
/// signed certificate timestamps (RFC 6962), freshest CRL, certificate policies (unless the
/// profile sets them), and Active Directory Certificate Services' template extensions. A CT
/// precertificate poison, name constraints, AD CS application policies (which Windows honours
/// over the EKU) or anything unknown is not.
const EXTERNAL_EXTENSIONS: [&str; 5] = [
    "1.3.6.1.4.1.11129.2.4.2",
    "2.5.29.46",
    "2.5.29.32",
    "1.3.6.1.4.1.311.21.7",
    "1.3.6.1.4.1.311.20.2",
];

/// authorityInfoAccess.
const AIA_OID: &str = "1.3.6.1.5.5.7.1.1";
/// cRLDistributionPoints.
const CRL_DP_OID: &str = "2.5.29.31";

/// Every extension once; none the profile did not ask for beyond the issuer's own; every
/// extension of the profile, as the profile says it; the revocation pointers a CA/Browser Forum
/// profile needs.
fn check_extensions(
    decided: &CertContent,
    got: &IssuedContent,
    exact: bool,
) -> std::result::Result<(), String> {
    for (i, (oid, ..)) in got.extensions.iter().enumerate() {
        if got.extensions[..i].iter().any(|(o, ..)| o == oid) {
            return Err(format!("extension {oid} twice"));
        }
        let of_profile = decided.custom_extensions.iter().any(|(arcs, ..)| dotted(arcs) == *oid);
        let external = !exact && EXTERNAL_EXTENSIONS.contains(&oid.as_str());
        if !of_profile && !external && !ISSUER_EXTENSIONS.contains(&oid.as_str()) {
            return Err(format!("extension {oid}, which the profile does not set"));
        }
    }
    for (arcs, critical, value) in &decided.custom_extensions {
        let oid = dotted(arcs);
        match got.extensions.iter().find(|(o, ..)| *o == oid) {
            Some((_, c, v)) if c == critical && v == value => {}
            Some(_) => return Err(format!("extension {oid} with another value or criticality")),
            None => return Err(format!("no extension {oid}, which the profile sets")),
        }
    }
    if decided.cabf_server_auth {
        for (oid, name) in
            [(AIA_OID, "authorityInfoAccess"), (CRL_DP_OID, "CRL distribution point")]
        {
            if !got.extensions.iter().any(|(o, ..)| o == oid) {
                return Err(format!("no {name}, which a CA/Browser Forum certificate needs"));
            }
        }
    }
    Ok(())
}

/// How far an external CA's validity may stray from the decision (its own backdating and
/// clock): never more.
const EXTERNAL_SLACK: Duration = Duration::minutes(10);

/// Checks what a back end issued against what the profile decided. Sigil's own CA must have
/// issued exactly the decision; an external CA may narrow it (fewer usages, a shorter life) but
/// never widen it: the same key, subject (attribute by attribute, in order) and names, no CA
/// flag, no usage or extended usage the profile did not decide, no life beyond the decision.
pub fn check_issued(
    decided: &CertContent,
    got: &IssuedContent,
    ca: &IssuedContent,
    exact: bool,
) -> Result<()> {
    let refuse = |why: String| {
        Err(CoreError::Dependency {
            code: ErrorCode::CaResultMismatch,
            detail: format!(
                "the CA back end issued something else than the profile decided: {why}"
            ),
        })
    };
    if got.spki_der != decided.spki_der {
        return refuse("another public key".into());
    }
    // Issued under the CA's name and key identifier (a relying party builds the path by them).
    if got.issuer_der != ca.subject_der {
        return refuse("an issuer name other than the CA's subject".into());
    }
    if got.authority_key_id.is_none() || got.authority_key_id != ca.subject_key_id {
        return refuse("an authority key identifier other than the CA's key identifier".into());
    }
    check_extensions(decided, got, exact).or_else(&refuse)?;
    if got.multi_valued_rdn || got.subject != decided.subject {
        let show = |s: &[NameAttribute]| {
            s.iter().map(|a| format!("{}={}", a.attribute, a.value)).collect::<Vec<_>>().join(",")
        };
        return refuse(format!(
            "subject {} instead of {}",
            show(&got.subject),
            show(&decided.subject)
        ));
    }
    let tagged = |s: &[San]| {
        let mut v: Vec<String> = s.iter().map(San::tagged).collect();
        v.sort();
        v
    };
    if tagged(&got.sans) != tagged(&decided.sans) {
        return refuse(format!(
            "names {:?} instead of {:?}",
            tagged(&got.sans),
            tagged(&decided.sans)
        ));
    }
    if got.is_ca {
        return refuse("a CA certificate".into());
    }
    let wider: Vec<&String> =
        got.key_usage.iter().filter(|u| !decided.key_usage.contains(u)).collect();
    if !wider.is_empty() || (exact && got.key_usage.len() != decided.key_usage.len()) {
        return refuse(format!("key usage {:?} instead of {:?}", got.key_usage, decided.key_usage));
    }
    let decided_eku: Vec<String> = decided.extended_key_usage.iter().map(|e| eku_oid(e)).collect();
    match &got.extended_key_usage {
        // No extension means any purpose: wider than a decided list.
        None if !decided_eku.is_empty() => {
            return refuse("no extended key usage (any purpose)".into());
        }
        Some(eku)
            if eku.iter().any(|e| !decided_eku.contains(e))
                || (exact && eku.len() != decided_eku.len()) =>
        {
            return refuse(format!("extended key usage {eku:?} instead of {decided_eku:?}"));
        }
        _ => {}
    }
    let late =
        got.not_after > decided.not_after + if exact { Duration::ZERO } else { EXTERNAL_SLACK };
    let early =
        got.not_before < decided.not_before - if exact { Duration::ZERO } else { EXTERNAL_SLACK };
    if late
        || early
        || (exact && (got.not_after != decided.not_after || got.not_before != decided.not_before))
    {
        return refuse(format!(
            "validity {} to {} instead of {} to {}",
            got.not_before, got.not_after, decided.not_before, decided.not_after
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| (*s).to_owned()).collect()
    }

    #[test]
    fn ec_keys_never_get_encipherment_and_rsa_keys_never_key_agreement() {
        let tls = names(&["digitalSignature", "keyEncipherment"]);
        assert_eq!(key_usage_for(KeyType::P256, &tls).unwrap(), names(&["digitalSignature"]));
        assert_eq!(key_usage_for(KeyType::Rsa2048, &tls).unwrap(), tls);
        let ecdh = names(&["keyAgreement", "encipherOnly"]);
        assert_eq!(key_usage_for(KeyType::P384, &ecdh).unwrap(), ecdh);
        assert_eq!(key_usage_for(KeyType::Rsa3072, &ecdh).unwrap_err().code(), "key_not_allowed");
        assert_eq!(
            key_usage_for(KeyType::P256, &names(&["keyEncipherment"])).unwrap_err().code(),
            "key_not_allowed"
        );
        // encipherOnly without keyAgreement means nothing and is dropped.
        assert_eq!(
            key_usage_for(KeyType::P256, &names(&["digitalSignature", "encipherOnly"])).unwrap(),
            names(&["digitalSignature"])
        );
    }

    #[test]
    fn subject_values_longer_than_rfc_5280_allows_are_refused() {
        let attr = |a: &str, v: &str| NameAttribute { attribute: a.into(), value: v.into() };
        assert!(check_lengths(&[attr("CN", &"a".repeat(64)), attr("C", "DE")]).is_ok());
        for bad in [attr("CN", &"a".repeat(65)), attr("C", "DEU"), attr("C", "de"), attr("O", "")] {
            assert_eq!(check_lengths(&[bad]).unwrap_err().code(), "subject_not_allowed");
        }
    }

    #[test]
    fn a_subject_naming_an_attribute_twice_is_refused() {
        let attr = |a: &str, v: &str| NameAttribute { attribute: a.into(), value: v.into() };
        let twice = [attr("CN", "Ana Alpha"), attr("CN", "Chief Executive")];
        assert_eq!(check_no_repeats(&twice).unwrap_err().code(), "subject_not_allowed");
        let once = [attr("CN", "Ana"), attr("OU", "A"), attr("O", "B")];
        assert!(check_no_repeats(&once).is_ok());
        let units = [attr("OU", "A"), attr("OU", "B")];
        assert!(check_no_repeats(&units).is_err(), "one value per attribute type");
    }
}
