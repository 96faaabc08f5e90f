//! The CA/Browser Forum TLS Baseline Requirements, for profiles marked `cabf_server_auth` (an
//! operator running a publicly trusted sub-CA): checked when such a profile is saved (its
//! shape: validity, usages, names, policy, no suspension) and on every request (public DNS
//! names and IP addresses only, a CN only when it repeats a SAN). Sections cited are of the
//! Baseline Requirements 2.x (profiles of ballot SC-62, validity of ballot SC-081).

use crate::ErrorCode;
use std::net::IpAddr;

use crate::certs::{NameAttribute, San};
use crate::error::{CoreError, Result};

use super::{ProfileSpec, Requirement, parse_oid};

/// Longest validity a profile may say (§6.3.2: 200 days for certificates issued from 15 March
/// 2026); issuance applies the limit of its date ([`max_validity_days`]).
pub const MAX_VALIDITY_DAYS: u32 = 200;

/// The longest validity, in days, of a certificate issued at `now` (ballot SC-081: 200 days
/// from 15 March 2026, 100 from 15 March 2027, 47 from 15 March 2029).
pub fn max_validity_days(now: time::OffsetDateTime) -> u32 {
    let from = |y: i32| {
        time::Date::from_calendar_date(y, time::Month::March, 15)
            .map(|d| d.midnight().assume_utc())
            .unwrap_or(time::OffsetDateTime::UNIX_EPOCH)
    };
    if now < from(2027) {
        200
    } else if now < from(2029) {
        100
    } else {
        47
    }
}

/// The CA/Browser Forum's reserved policy identifiers (§7.1.6.1): domain, organization and
/// individual validated.
pub const DV: &str = "2.23.140.1.2.1";
/// Organization validated.
pub const OV: &str = "2.23.140.1.2.2";
/// Individual validated.
pub const IV: &str = "2.23.140.1.2.3";

/// Subject attributes each validation type allows (§7.1.2.7.2 to .4; no OU since September
/// 2022).
fn allowed_attributes(policy: &str) -> &'static [&'static str] {
    match policy {
        DV => &["CN", "C"],
        OV => &["CN", "C", "ST", "L", "O"],
        _ => &["CN", "C", "ST", "L", "GN", "SN"],
    }
}

/// Whether `arcs` is one of the CA/Browser Forum's TLS policy identifiers (EV, DV, OV, IV), which
/// only a profile that follows its rules may assert.
fn tls_reserved(arcs: &[u64]) -> bool {
    arcs == [2, 23, 140, 1, 1] || arcs.starts_with(&[2, 23, 140, 1, 2])
}

/// Top-level labels that are not public DNS (RFC 6761, RFC 6762, RFC 7686, RFC 9476) or that
/// are widely used for internal names (§7.1.2.7.12: internal names are never allowed).
const NOT_PUBLIC: [&str; 22] = [
    "local",
    "localhost",
    "localdomain",
    "internal",
    "test",
    "example",
    "invalid",
    "onion",
    "arpa",
    "alt",
    "home",
    "corp",
    "lan",
    "intranet",
    "intra",
    "private",
    "priv",
    "dmz",
    "workgroup",
    "domain",
    "mail",
    "router",
];

/// The validation type a CA/Browser Forum profile asserts: its one reserved policy, when it
/// has exactly one and that one is DV, OV or IV (policies are canonical OIDs, see
/// [`super::parse_oid`]).
fn validation_type(spec: &ProfileSpec) -> Option<&str> {
    let reserved: Vec<&String> = spec
        .certificate_policies
        .iter()
        .filter(|p| parse_oid(p).is_some_and(|a| tls_reserved(&a)))
        .collect();
    match reserved.as_slice() {
        [one] if [DV, OV, IV].contains(&one.as_str()) => Some(one.as_str()),
        _ => None,
    }
}

/// Checks the shape of a CA/Browser Forum profile.
pub fn validate(spec: &ProfileSpec) -> Result<()> {
    let bad = |m: String| {
        Err(CoreError::invalid(
            ErrorCode::InvalidProfile,
            format!("a CA/Browser Forum profile: {m}"),
        ))
    };
    if spec.validity_days > MAX_VALIDITY_DAYS {
        return bad(format!("validity_days is at most {MAX_VALIDITY_DAYS}"));
    }
    if spec.allow_suspension {
        return bad("allow_suspension must be false (no certificateHold, §4.9.13)".into());
    }
    let eku: Vec<String> =
        spec.extended_key_usage.iter().map(|e| super::conformance::eku_oid(e)).collect();
    if eku != ["1.3.6.1.5.5.7.3.1"] {
        return bad("extended_key_usage must be exactly serverAuth (§7.1.2.7.10)".into());
    }
    if !spec.key_usage.iter().any(|k| k == "digitalSignature")
        || spec
            .key_usage
            .iter()
            .any(|k| !["digitalSignature", "keyEncipherment"].contains(&k.as_str()))
    {
        return bad(
            "key_usage is digitalSignature, and keyEncipherment for RSA only (§7.1.2.7.11)".into(),
        );
    }
    if spec.san.dns != Requirement::Required
        || spec.san.email != Requirement::Forbidden
        || spec.san.uri != Requirement::Forbidden
    {
        return bad("san needs dns required, email and uri forbidden (§7.1.2.7.12)".into());
    }
    if let Some(c) = spec.custom_extensions.first() {
        return bad(format!(
            "custom extension {} is not allowed: the Baseline Requirements fix the extensions \
             of a subscriber certificate (§7.1.2.7.6)",
            c.oid
        ));
    }
    if spec.subject.common_name == Requirement::Required {
        return bad("the CN may not be required (it is NOT RECOMMENDED, §7.1.2.7.2)".into());
    }
    let Some(policy) = validation_type(spec) else {
        return bad(format!(
            "certificate_policies must hold exactly one of {DV} (DV), {OV} (OV), {IV} (IV)"
        ));
    };
    let allowed = allowed_attributes(policy);
    if let Some(a) = spec.subject.allowed_attributes.iter().find(|a| !allowed.contains(&a.as_str()))
    {
        return bad(format!("subject attribute {a} is not allowed under policy {policy}"));
    }
    Ok(())
}

/// Checks a request under a CA/Browser Forum profile at `now`: the validity limit of the day,
/// public names only, a CN that repeats a SAN, the subject its validation type needs.
pub fn check_request(
    spec: &ProfileSpec,
    subject: &[NameAttribute],
    sans: &[San],
    now: time::OffsetDateTime,
) -> Result<()> {
    let refuse = |code: ErrorCode, m: String| Err(CoreError::invalid(code, m));
    let max = max_validity_days(now);
    if spec.validity_days > max {
        return refuse(
            ErrorCode::InvalidProfile,
            format!(
                "the profile's validity_days ({}) exceeds the {max} days the Baseline \
                 Requirements allow for certificates issued now (§6.3.2); lower it",
                spec.validity_days
            ),
        );
    }
    for s in sans {
        match s {
            San::Dns(d) if !public_dns_name(d) => {
                return refuse(
                    ErrorCode::SanNotAllowed,
                    format!("`{d}` is not a public DNS name (internal names are not allowed)"),
                );
            }
            San::Ip(ip) if !ip.parse::<IpAddr>().is_ok_and(public_ip) => {
                return refuse(
                    ErrorCode::SanNotAllowed,
                    format!("{ip} is a reserved or private address (§7.1.2.7.12)"),
                );
            }
            _ => {}
        }
    }
    // A character-for-character copy of a SAN (§7.1.4.3).
    for a in subject.iter().filter(|a| a.attribute == "CN") {
        if !sans.iter().any(|s| s.value() == a.value) {
            return refuse(
                ErrorCode::SubjectNotAllowed,
                format!("the CN `{}` must repeat one of the SANs (§7.1.4.3)", a.value),
            );
        }
    }
    let needs: &[&[&str]] = match validation_type(spec) {
        Some(OV) => &[&["O"], &["C"], &["ST", "L"]],
        Some(IV) => &[&["GN"], &["SN"], &["C"], &["ST", "L"]],
        _ => &[],
    };
    for one_of in needs {
        if !subject.iter().any(|a| one_of.contains(&a.attribute.as_str())) {
            return refuse(
                ErrorCode::SubjectNotAllowed,
                format!(
                    "the subject needs {} under an {} policy (§7.1.2.7.3, §7.1.2.7.4)",
                    one_of.join(" or "),
                    if validation_type(spec) == Some(OV) { "OV" } else { "IV" }
                ),
            );
        }
    }
    Ok(())
}

/// A host name in public DNS or a public IP address (for the URLs certificates point to).
pub fn public_host(host: &str) -> bool {
    match host.parse::<IpAddr>() {
        Ok(ip) => public_ip(ip),
        Err(_) => !host.starts_with("*.") && public_dns_name(host),
    }
}

/// A name that can be in public DNS: two labels or more, a top-level label of letters (or an
/// IDN `xn--` label), none of the top-level names used for internal or special names; a
/// wildcard only as the whole first label of such a name. Without the public suffix list this
/// cannot tell a registrable name from a public suffix (`*.co.uk`): proving control of the
/// name (§3.2.2.4) before approval is the operator's part.
fn public_dns_name(d: &str) -> bool {
    let d = d.strip_prefix("*.").unwrap_or(d);
    let labels: Vec<&str> = d.split('.').collect();
    let Some(tld) = labels.last().map(|t| t.to_ascii_lowercase()) else { return false };
    let tld_ok = match tld.strip_prefix("xn--") {
        Some(idn) => !idn.is_empty() && idn.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-'),
        None => tld.len() >= 2 && tld.bytes().all(|b| b.is_ascii_alphabetic()),
    };
    labels.len() >= 2 && !d.contains('*') && tld_ok && !NOT_PUBLIC.contains(&tld.as_str())
}

/// An address in public use: none of loopback, private, shared, link-local, documentation,
/// benchmarking, unique-local, multicast or unspecified.
fn public_ip(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => {
            let o = v4.octets();
            !(v4.is_loopback()
                || v4.is_private()
                || v4.is_link_local()
                || v4.is_unspecified()
                || v4.is_broadcast()
                || v4.is_documentation()
                || v4.is_multicast()
                || o[0] == 0
                || (o[0] == 100 && (64..128).contains(&o[1]))
                || (o[0] == 198 && (18..20).contains(&o[1]))
                || (o[0] == 192 && o[1] == 0 && o[2] == 0)
                || (o[0] == 192 && o[1] == 88 && o[2] == 99)
                || o[0] >= 240)
        }
        // Global unicast (2000::/3) only, without the special-purpose blocks inside it (IANA
        // IPv6 special-purpose registry: IETF protocol assignments incl. Teredo, documentation,
        // 6to4). Everything outside 2000::/3 (mapped, compatible, NAT64, ULA, link-local,
        // multicast, discard) is refused with it.
        IpAddr::V6(v6) => {
            let s = v6.segments();
            (s[0] & 0xe000) == 0x2000
                && !(s[0] == 0x2001 && s[1] < 0x0200)
                && !(s[0] == 0x2001 && s[1] == 0x0db8)
                && s[0] != 0x2002
                && (s[0] & 0xfff0) != 0x3ff0
        }
    }
}

/// Checks the policy OIDs of any profile: dotted, distinct, at most 8.
pub fn validate_policies(spec: &ProfileSpec) -> Result<()> {
    let bad = |m: String| Err(CoreError::invalid(ErrorCode::InvalidProfile, m));
    if spec.certificate_policies.len() > 8 {
        return bad("certificate_policies holds at most 8 policies".into());
    }
    for (i, p) in spec.certificate_policies.iter().enumerate() {
        let Some(arcs) = parse_oid(p) else {
            return bad(format!("certificate policy `{p}` is not a dotted OID"));
        };
        if tls_reserved(&arcs) && !spec.cabf_server_auth {
            return bad(format!(
                "certificate policy {p} is the CA/Browser Forum's: only a profile with \
                 cabf_server_auth, which follows its rules, may assert it"
            ));
        }
        if spec.certificate_policies[..i].iter().any(|o| parse_oid(o).as_deref() == Some(&arcs)) {
            return bad(format!("certificate policy {p} is listed twice"));
        }
    }
    Ok(())
}

/// The certificatePolicies extension value (RFC 5280 §4.2.1.4) for `policies`: a SEQUENCE of
/// PolicyInformation, each a SEQUENCE holding the policy OID alone.
pub fn policies_der(policies: &[Vec<u64>]) -> Vec<u8> {
    let infos: Vec<u8> = policies.iter().flat_map(|arcs| tlv(0x30, &oid_der(arcs))).collect();
    tlv(0x30, &infos)
}

fn oid_der(arcs: &[u64]) -> Vec<u8> {
    let mut body = Vec::new();
    let first = arcs.first().copied().unwrap_or(0) * 40 + arcs.get(1).copied().unwrap_or(0);
    for arc in std::iter::once(first).chain(arcs.iter().skip(2).copied()) {
        let mut bytes = vec![(arc & 0x7f) as u8];
        let mut rest = arc >> 7;
        while rest > 0 {
            bytes.push(((rest & 0x7f) as u8) | 0x80);
            rest >>= 7;
        }
        body.extend(bytes.iter().rev());
    }
    tlv(0x06, &body)
}

fn tlv(tag: u8, body: &[u8]) -> Vec<u8> {
    let mut out = vec![tag];
    let len = body.len();
    if len < 0x80 {
        out.push(len as u8);
    } else {
        let bytes: Vec<u8> = len.to_be_bytes().iter().copied().skip_while(|b| *b == 0).collect();
        out.push(0x80 | bytes.len() as u8);
        out.extend(bytes);
    }
    out.extend_from_slice(body);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn policies_encode_as_der() {
        // 2.23.140.1.2.1 and 1.3.6.1.4.1.55555.1, as openssl encodes them.
        let der = policies_der(&[vec![2, 23, 140, 1, 2, 1], vec![1, 3, 6, 1, 4, 1, 55555, 1]]);
        assert_eq!(hex::encode(der), "30173008060667810c010201300b06092b0601040183b20301");
    }

    #[test]
    fn the_validity_limit_follows_the_ballot_dates() {
        let at = |y, m, d| time::Date::from_calendar_date(y, m, d).unwrap().midnight().assume_utc();
        assert_eq!(max_validity_days(at(2026, time::Month::December, 4)), 200);
        assert_eq!(max_validity_days(at(2027, time::Month::March, 15)), 100);
        assert_eq!(max_validity_days(at(2029, time::Month::March, 15)), 47);
    }

    #[test]
    fn only_public_names_and_addresses_pass() {
        for ok in
            ["www.example.org", "*.example.org", "a.b.co.uk", "xn--bcher-kva.de", "a.xn--p1ai"]
        {
            assert!(public_dns_name(ok), "{ok}");
        }
        for bad in [
            "intranet",
            "host.local",
            "x.internal",
            "a.*.example.org",
            "10.0.0.1",
            "x.corp",
            "server.localdomain",
            "nas.private",
            "x.dmz",
            "pc.workgroup",
            "*.com",
        ] {
            assert!(!public_dns_name(bad), "{bad}");
        }
        for ok in ["8.8.8.8", "2606:4700::1111", "2a00:1450:4001::200e"] {
            assert!(public_ip(ok.parse().unwrap()), "{ok}");
        }
        for bad in [
            "10.1.2.3",
            "127.0.0.1",
            "100.64.0.1",
            "192.0.2.1",
            "192.0.0.8",
            "192.88.99.1",
            "fd00::1",
            "::ffff:10.0.0.1",
            "::10.0.0.1",
            "64:ff9b::a00:1",
            "2002:a00:1::1",
            "2001::1",
            "2001:db8::1",
            "100::1",
            "3fff::1",
            "5f00::1",
        ] {
            assert!(!public_ip(bad.parse().unwrap()), "{bad}");
        }
    }
}
