//! The profiles created on first start: TLS client, TLS server, document signing, and the
//! CA/Browser Forum TLS server profile for operators of a publicly trusted sub-CA.

use super::{ProfileSpec, Requirement, SanRules, SubjectRules, default_ca};
use crate::certs::KeyType;

/// The profiles created on first start.
pub fn built_in_profiles() -> Vec<(String, ProfileSpec)> {
    // What every built-in profile shares; each names what differs.
    let base = ProfileSpec {
        description: String::new(),
        key_types: KeyType::ALL.to_vec(),
        validity_days: 365,
        key_usage: vec![],
        extended_key_usage: vec![],
        subject: SubjectRules::default(),
        san: SanRules::default(),
        custom_extensions: vec![],
        ca: default_ca(),
        renewal_window_days: 30,
        allow_suspension: true,
        approvals_required: 1,
        requester_may_approve: false,
        supersede_grace_days: 7,
        certificate_policies: vec![],
        cabf_server_auth: false,
        acme: false,
    };
    vec![
        (
            "tls-client".into(),
            ProfileSpec {
                description: "TLS client authentication (CN required)".into(),
                validity_days: 365,
                key_usage: vec!["digitalSignature".into()],
                extended_key_usage: vec!["clientAuth".into()],
                subject: SubjectRules { common_name: Requirement::Required, ..Default::default() },
                ..base.clone()
            },
        ),
        (
            "tls-server".into(),
            ProfileSpec {
                description: "TLS server authentication (DNS SAN required); served over ACME \
                              when [acme] is enabled"
                    .into(),
                validity_days: 397,
                key_usage: vec!["digitalSignature".into(), "keyEncipherment".into()],
                extended_key_usage: vec!["serverAuth".into()],
                san: SanRules {
                    dns: Requirement::Required,
                    email: Requirement::Forbidden,
                    uri: Requirement::Forbidden,
                    ..Default::default()
                },
                acme: true,
                ..base.clone()
            },
        ),
        (
            "document-signing".into(),
            ProfileSpec {
                description: "Document signing keys of CSC signing credentials (CN required)"
                    .into(),
                key_types: vec![KeyType::P256, KeyType::P384, KeyType::Rsa2048, KeyType::Rsa3072],
                validity_days: 730,
                key_usage: vec!["digitalSignature".into(), "nonRepudiation".into()],
                extended_key_usage: vec!["documentSigning".into()],
                subject: SubjectRules { common_name: Requirement::Required, ..Default::default() },
                ..base.clone()
            },
        ),
        (
            "tls-server-public".into(),
            ProfileSpec {
                description: "TLS server authentication under the CA/Browser Forum Baseline \
                              Requirements (domain validated), for a publicly trusted sub-CA; \
                              needs pki.public_url"
                    .into(),
                key_types: vec![KeyType::P256, KeyType::P384, KeyType::Rsa2048, KeyType::Rsa3072],
                validity_days: super::cabf::MAX_VALIDITY_DAYS,
                key_usage: vec!["digitalSignature".into(), "keyEncipherment".into()],
                extended_key_usage: vec!["serverAuth".into()],
                subject: SubjectRules {
                    common_name: Requirement::Optional,
                    common_name_pattern: None,
                    allowed_attributes: vec!["CN".into(), "C".into()],
                },
                san: SanRules {
                    dns: Requirement::Required,
                    email: Requirement::Forbidden,
                    uri: Requirement::Forbidden,
                    ..Default::default()
                },
                allow_suspension: false,
                certificate_policies: vec![super::cabf::DV.into()],
                cabf_server_auth: true,
                ..base.clone()
            },
        ),
    ]
}
