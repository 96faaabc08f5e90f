//! Authorization: permissions are `resource:action` strings, principals carry a permission set,
//! and a successful check yields a [`Capability`] that services demand as an argument.
//!
//! The capability has no public constructor: the only ways to get one are
//! [`Principal::authorize`] and, for the local command line, [`Principal::local_cli`]. A handler
//! that forgets the check cannot call the service at all.

use crate::ErrorCode;
use std::collections::BTreeSet;
use std::fmt;
use std::marker::PhantomData;
use std::net::IpAddr;
use std::sync::Arc;

use uuid::Uuid;

use crate::error::{CoreError, Result};

/// One entry of the permission catalogue.
#[derive(Debug, Clone, Copy, serde::Serialize, utoipa::ToSchema)]
pub struct PermissionInfo {
    /// The `resource:action` string.
    pub name: &'static str,
    /// What it allows.
    pub description: &'static str,
}

/// A compile-time permission; services take `&Capability<P>` for the `P` they need.
pub trait Permission: Send + Sync + 'static {
    /// The `resource:action` string.
    const NAME: &'static str;
}

macro_rules! permissions {
    ($( #[doc = $doc:literal] $ty:ident = $name:literal ; )*) => {
        /// Marker types, one per permission in the catalogue.
        pub mod perm {
            $(
                #[doc = $doc]
                #[derive(Debug)]
                pub struct $ty;
                impl super::Permission for $ty {
                    const NAME: &'static str = $name;
                }
            )*
        }

        /// Every permission Sigil knows, with its description.
        pub const CATALOGUE: &[PermissionInfo] = &[
            $( PermissionInfo { name: $name, description: $doc.trim_ascii() } ),*
        ];
    };
}

permissions! {
    /// Manage ACME: external account binding keys (create, list, revoke) and accounts.
    AcmeManage = "acme:manage";
    /// List and read API keys (never their secrets).
    ApiKeysRead = "api_keys:read";
    /// Create API keys.
    ApiKeysCreate = "api_keys:create";
    /// Change an API key's description, permissions, expiry, rate limit or IP whitelist.
    ApiKeysUpdate = "api_keys:update";
    /// Revoke API keys.
    ApiKeysRevoke = "api_keys:revoke";
    /// Rotate an API key's secret.
    ApiKeysRotate = "api_keys:rotate";
    /// Query audit events and per-object trails.
    AuditRead = "audit:read";
    /// Export the audit trail (CSV, XML, JSON) with a detached signature.
    AuditExport = "audit:export";
    /// Verify the audit chain and its signed checkpoints.
    AuditVerify = "audit:verify";
    /// Read the exposure configuration (modules, endpoints, authentication, IP ranges).
    ExposureRead = "exposure:read";
    /// Change the exposure configuration.
    ExposureUpdate = "exposure:update";
    /// List the permission catalogue and roles.
    RolesRead = "roles:read";
    /// Create, change and delete roles.
    RolesWrite = "roles:write";
    /// List and read operators.
    OperatorsRead = "operators:read";
    /// Create operators.
    OperatorsCreate = "operators:create";
    /// Change operators' details, roles and client certificates.
    OperatorsUpdate = "operators:update";
    /// Enable and disable operator accounts.
    OperatorsDisable = "operators:disable";
    /// List and read organizations, divisions and registration offices (within scope).
    OrganizationsRead = "organizations:read";
    /// Create and change organizations, divisions and offices.
    OrganizationsWrite = "organizations:write";
    /// Read people's personal data and the custom field definitions; validate attributes.
    PeopleRead = "people:read";
    /// Create and change people and their extended attributes.
    PeopleWrite = "people:write";
    /// Define, change and delete custom fields.
    CustomFieldsWrite = "custom_fields:write";
    /// List devices, their state, history and production metadata.
    DevicesRead = "devices:read";
    /// Register devices, change their data, link certificates.
    DevicesWrite = "devices:write";
    /// Activate a registered device.
    DeviceActivate = "device:activate";
    /// Suspend a device or report it lost (its certificates go on hold).
    DeviceSuspend = "device:suspend";
    /// Reactivate a suspended or found device (the holds it placed are released).
    DeviceReactivate = "device:reactivate";
    /// Revoke, terminate, expire a device or report it damaged (its certificates are revoked).
    DeviceRevoke = "device:revoke";
    /// Set up a device's PIN reset secrets (administration key, unlock code).
    DevicePersonalize = "device:personalize";
    /// Reset a device's blocked PIN (answers its challenge or hands out its unlock code).
    DevicePinReset = "device:pin_reset";
    /// List and read enrolment requests.
    RequestsRead = "requests:read";
    /// Create enrolment requests, enrich their metadata, cancel them.
    RequestsWrite = "requests:write";
    /// Approve or reject enrolment requests.
    RequestsApprove = "requests:approve";
    /// Search and read certificates, download them.
    CertificatesRead = "certificates:read";
    /// Issue certificates from CSRs (single and batch).
    CertificateIssue = "certificate:issue";
    /// Suspend certificates (certificateHold).
    CertificateSuspend = "certificate:suspend";
    /// Reactivate suspended certificates.
    CertificateReactivate = "certificate:reactivate";
    /// Revoke certificates.
    CertificateRevoke = "certificate:revoke";
    /// Renew certificates.
    CertificateRenew = "certificate:renew";
    /// Change certificates' custom metadata.
    CertificatesUpdate = "certificates:update";
    /// List and read profiles.
    ProfilesRead = "profiles:read";
    /// Create and change profiles.
    ProfilesWrite = "profiles:write";
    /// List CA back ends.
    CaBackendsRead = "ca_backends:read";
    /// See the loaded plugins and their state.
    PluginsRead = "plugins:read";
    /// Reload the plugin set.
    PluginsReload = "plugins:reload";
    /// Call every endpoint plugin under /api/v1/ext/ (`plugins:invoke:<id>` grants one plugin).
    PluginsInvoke = "plugins:invoke";
    /// Self-service for the key's own token holder (devices under /api/v1/self).
    SelfService = "self_service:use";
    /// List and read CSC signers and their signing credentials.
    SignersRead = "signers:read";
    /// Create, change and disable signers and signing credentials (issues their certificates).
    SignersWrite = "signers:write";
    /// List and read CSC provider configurations.
    CscProvidersRead = "csc_providers:read";
    /// Create, change and delete CSC provider configurations.
    CscProvidersWrite = "csc_providers:write";
}

/// The plugin id of a per-plugin invoke permission `plugins:invoke:<id>` (an id is 1 to 64
/// lowercase letters, digits, `-` or `_`).
pub fn plugin_invoke_target(p: &str) -> Option<&str> {
    let id = p.strip_prefix("plugins:invoke:")?;
    let ok = (1..=64).contains(&id.len())
        && id
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_');
    ok.then_some(id)
}

/// Permissions over what every office shares (roles, profiles, custom fields, CSC providers,
/// exposure, the plugin set) or over records that are not kept per office (the audit trail):
/// only a principal that sees every office may use them, whatever its permissions say.
pub const UNRESTRICTED_ONLY: &[&str] = &[
    perm::AcmeManage::NAME,
    perm::RolesWrite::NAME,
    perm::ProfilesWrite::NAME,
    perm::CustomFieldsWrite::NAME,
    perm::CscProvidersWrite::NAME,
    perm::ExposureUpdate::NAME,
    perm::PluginsReload::NAME,
    perm::AuditRead::NAME,
    perm::AuditExport::NAME,
];

/// Returns the catalogue entry for `name`, if it is a known permission.
pub fn lookup(name: &str) -> Option<&'static PermissionInfo> {
    CATALOGUE.iter().find(|p| p.name == name)
}

/// A set of granted permission patterns: exact names, `resource:*`, or `*`.
#[derive(Clone, Default, PartialEq, Eq)]
// Shared, not copied: every request's principal carries one, cloned from the cached key.
pub struct PermissionSet(Arc<BTreeSet<String>>);

impl PermissionSet {
    /// Every permission.
    pub fn all() -> Self {
        Self(Arc::new(BTreeSet::from(["*".to_owned()])))
    }

    /// Parses and validates patterns: each must be `*`, `resource:*` for a known resource, or a
    /// catalogue entry. The error names the first bad one.
    pub fn parse<I, S>(patterns: I) -> Result<Self>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        let mut set = BTreeSet::new();
        for p in patterns {
            let p = p.as_ref().trim();
            let ok = p == "*"
                || lookup(p).is_some()
                || plugin_invoke_target(p).is_some()
                || p.strip_suffix(":*").is_some_and(|res| {
                    CATALOGUE.iter().any(|c| c.name.split(':').next() == Some(res))
                });
            if !ok {
                return Err(CoreError::invalid(
                    ErrorCode::UnknownPermission,
                    format!("unknown permission `{p}` (see GET /api/v1/permissions)"),
                ));
            }
            set.insert(p.to_owned());
        }
        Ok(Self(Arc::new(set)))
    }

    /// Builds a set from stored strings without validation (they were validated on write; a
    /// permission retired later simply grants nothing).
    pub fn from_stored(patterns: impl IntoIterator<Item = String>) -> Self {
        Self(Arc::new(patterns.into_iter().collect()))
    }

    /// Whether the set grants `name`.
    pub fn allows(&self, name: &str) -> bool {
        if self.0.contains("*") || self.0.contains(name) {
            return true;
        }
        // `plugins:invoke` grants every plugin's `plugins:invoke:<id>`.
        if plugin_invoke_target(name).is_some() && self.0.contains(perm::PluginsInvoke::NAME) {
            return true;
        }
        match name.split_once(':') {
            Some((res, _)) => self.0.iter().any(|p| p.strip_suffix(":*") == Some(res)),
            None => false,
        }
    }

    /// Whether every permission this set grants is also granted by `other`.
    pub fn is_subset_of(&self, other: &Self) -> bool {
        if other.0.contains("*") {
            return true;
        }
        self.0.iter().all(|p| {
            if p == "*" {
                return false;
            }
            match p.strip_suffix(":*") {
                Some(res) => {
                    other.0.contains(p.as_str())
                        || CATALOGUE
                            .iter()
                            .filter(|c| c.name.split(':').next() == Some(res))
                            .all(|c| other.allows(c.name))
                }
                None => other.allows(p),
            }
        })
    }

    /// The intersection with another set, by catalogue entry (used when an API key is bound to
    /// an operator: the key never exceeds the operator).
    pub fn intersect(&self, other: &Self) -> Self {
        if other.0.contains("*") {
            return self.clone();
        }
        if self.0.contains("*") {
            return other.clone();
        }
        // Per-plugin grants are not in the catalogue: keep those both sides allow.
        let per_plugin = self
            .0
            .iter()
            .chain(other.0.iter())
            .filter(|p| plugin_invoke_target(p).is_some())
            .filter(|p| self.allows(p) && other.allows(p))
            .cloned();
        Self(Arc::new(
            CATALOGUE
                .iter()
                .filter(|c| self.allows(c.name) && other.allows(c.name))
                .map(|c| c.name.to_owned())
                .chain(per_plugin)
                .collect(),
        ))
    }

    /// The patterns, sorted.
    pub fn to_vec(&self) -> Vec<String> {
        self.0.iter().cloned().collect()
    }
}

impl fmt::Debug for PermissionSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_set().entries(self.0.iter()).finish()
    }
}

/// What a principal may do: its permissions and its scope. Nothing Sigil hands out (an API
/// key, an operator's roles and scope, a plugin call made for a caller) may exceed the
/// authority of whoever hands it out, and no caller may change a key or an operator whose
/// authority exceeds its own.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Authority {
    /// Effective permissions (after intersection with an operator's roles).
    pub permissions: PermissionSet,
    /// Which offices' objects it reaches.
    pub scope: crate::access::scope::Scope,
}

impl Authority {
    /// Whether everything `other` may do, this may do too.
    pub fn covers(&self, other: &Authority) -> bool {
        other.permissions.is_subset_of(&self.permissions) && self.scope.covers(&other.scope)
    }
}

/// What kind of actor a principal is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ActorKind {
    /// An API client authenticated by key (or by a client certificate mapped to a key).
    ApiKey,
    /// A human operator.
    Operator,
    /// The local command line, acting with file-system access to the data directory.
    Cli,
    /// The server itself (start-up tasks, scheduled jobs).
    System,
    /// A plugin acting under its granted permissions.
    Plugin,
    /// A CSC signer (remote signing), acting on its own credentials only.
    Signer,
    /// An ACME account, acting on its own orders and certificates only.
    AcmeAccount,
}

impl ActorKind {
    /// Stable name used in audit events.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::ApiKey => "api_key",
            Self::Operator => "operator",
            Self::Cli => "cli",
            Self::System => "system",
            Self::Plugin => "plugin",
            Self::Signer => "signer",
            Self::AcmeAccount => "acme_account",
        }
    }
}

/// Where a request came from.
#[derive(Debug, Clone, Default)]
pub struct RequestContext {
    /// The request id (echoed in `x-request-id`).
    pub request_id: Option<String>,
    /// The client address as seen by the server.
    pub client_ip: Option<IpAddr>,
    /// How the caller proved who it is (the exposure rules of calls a plugin makes for this
    /// caller are checked against it).
    pub authenticated_by: Option<AuthMethod>,
}

/// The credential a request authenticated with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthMethod {
    /// An API key in a header.
    ApiKey,
    /// A verified client certificate (mTLS).
    ClientCertificate,
}

/// An authenticated caller.
#[derive(Debug, Clone)]
pub struct Principal {
    /// Kind of actor.
    pub kind: ActorKind,
    /// Stable identifier of the actor (API key id, operator id, `cli`, `system`).
    pub id: String,
    /// Display name.
    pub name: String,
    /// The API key used, when there was one.
    pub api_key_id: Option<Uuid>,
    /// The operator acted for, when there is one.
    pub operator_id: Option<String>,
    /// The token holder (a person) acted for, for self-service.
    pub holder_id: Option<Uuid>,
    /// Effective permissions.
    pub permissions: PermissionSet,
    /// Which offices' objects it sees (an operator's divisions and offices).
    pub scope: crate::access::scope::Scope,
    /// Request context.
    pub context: RequestContext,
}

impl Principal {
    /// The local command line: full permissions, audited as `cli`. Only the `sigil` binary's
    /// offline subcommands use this; whoever can run them can read the data directory anyway.
    pub fn local_cli() -> Arc<Self> {
        Arc::new(Self {
            kind: ActorKind::Cli,
            id: "cli".into(),
            name: "sigil command line".into(),
            api_key_id: None,
            operator_id: None,
            holder_id: None,
            permissions: PermissionSet::all(),
            scope: crate::access::scope::Scope::All,
            context: RequestContext::default(),
        })
    }

    /// The same actor (audited as itself) holding exactly `permissions`: for a service that
    /// performs a step of its own on the caller's behalf (issuing, revoking).
    pub fn acting_with<'a>(
        self: &Arc<Self>,
        permissions: impl IntoIterator<Item = &'a str>,
    ) -> Result<Arc<Self>> {
        Ok(Arc::new(Self { permissions: PermissionSet::parse(permissions)?, ..(**self).clone() }))
    }

    /// The server itself, for start-up work such as creating the first administrator key.
    pub fn system() -> Arc<Self> {
        Arc::new(Self {
            kind: ActorKind::System,
            id: "system".into(),
            name: "sigil server".into(),
            api_key_id: None,
            operator_id: None,
            holder_id: None,
            permissions: PermissionSet::all(),
            scope: crate::access::scope::Scope::All,
            context: RequestContext::default(),
        })
    }

    /// This principal's authority.
    pub fn authority(&self) -> Authority {
        Authority { permissions: self.permissions.clone(), scope: self.scope.clone() }
    }

    /// Refuses (403 `authority_exceeded`) unless `target`'s authority lies within this
    /// principal's: the one rule for changing, rotating, revoking or rebinding a credential.
    /// A token holder's key changes no credential at all.
    pub fn ensure_covers(&self, target: &Authority, what: &str) -> Result<()> {
        if self.holder_id.is_none() && self.authority().covers(target) {
            return Ok(());
        }
        Err(CoreError::Forbidden {
            code: ErrorCode::AuthorityExceeded,
            detail: format!(
                "this {what} holds permissions or a scope beyond the caller's own, so the caller \
                 cannot change it"
            ),
        })
    }

    /// Whether this principal may call endpoint plugin `plugin` (`plugins:invoke` for every
    /// plugin, `plugins:invoke:<id>` for one).
    pub fn may_invoke(&self, plugin: &str) -> bool {
        self.permissions.allows(&format!("plugins:invoke:{plugin}"))
    }

    /// The principal a plugin acts as while serving `caller`: the plugin, audited as itself on
    /// the caller's behalf, with only what both the plugin's grant and the caller's authority
    /// allow (permissions intersected, scopes intersected, the caller's token holder and
    /// request context, so the caller's exposure rules apply to the plugin's calls too). It
    /// keeps the caller's operator and key, so a request it files is the caller's (separation
    /// of duties) and a key it mints descends from the caller's key; as a plugin it never
    /// counts as an approver under dual control.
    pub fn on_behalf_of(&self, caller: &Principal) -> Arc<Principal> {
        Arc::new(Self {
            kind: self.kind,
            id: self.id.clone(),
            name: format!("{} for {}:{}", self.name, caller.kind.as_str(), caller.id),
            api_key_id: caller.api_key_id,
            operator_id: caller.operator_id.clone(),
            holder_id: caller.holder_id,
            permissions: self.permissions.intersect(&caller.permissions),
            scope: self.scope.intersect(&caller.scope),
            context: caller.context.clone(),
        })
    }

    /// Checks that this principal holds `P` (and, for the [`UNRESTRICTED_ONLY`] permissions,
    /// sees every office) and returns the capability for it.
    pub fn authorize<P: Permission>(self: &Arc<Self>) -> Result<Capability<P>> {
        if self.permissions.allows(P::NAME)
            && !self.scope.is_all()
            && UNRESTRICTED_ONLY.contains(&P::NAME)
        {
            return Err(CoreError::Forbidden {
                code: ErrorCode::ScopeRestricted,
                detail: format!(
                    "`{}` reaches every office; a caller with a restricted scope cannot use it",
                    P::NAME
                ),
            });
        }
        if self.permissions.allows(P::NAME) {
            Ok(Capability { principal: Arc::clone(self), _p: PhantomData })
        } else {
            Err(CoreError::Forbidden {
                code: ErrorCode::PermissionDenied,
                detail: format!("missing permission `{}`", P::NAME),
            })
        }
    }
}

/// Proof that a principal holds permission `P`. Services take it by reference.
pub struct Capability<P: Permission> {
    principal: Arc<Principal>,
    _p: PhantomData<P>,
}

impl<P: Permission> Capability<P> {
    /// Who holds it; services use this for the audit actor and for further checks.
    pub fn principal(&self) -> &Arc<Principal> {
        &self.principal
    }
}

impl<P: Permission> fmt::Debug for Capability<P> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Capability")
            .field("permission", &P::NAME)
            .field("principal", &self.principal.id)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wildcards_grant_what_they_name_and_nothing_else() {
        let s = PermissionSet::parse(["api_keys:*", "audit:read"]).unwrap();
        assert!(s.allows("api_keys:create"));
        assert!(s.allows("audit:read"));
        assert!(!s.allows("audit:export"));
        assert!(PermissionSet::all().allows("audit:export"));
    }

    #[test]
    fn unknown_permissions_are_rejected_by_name() {
        let e = PermissionSet::parse(["audit:read", "audit:frobnicate"]).unwrap_err();
        assert!(e.to_string().contains("audit:frobnicate"), "{e}");
        assert!(PermissionSet::parse(["nosuch:*"]).is_err());
    }

    #[test]
    fn subset_and_intersection_follow_the_catalogue() {
        let admin = PermissionSet::all();
        let audit = PermissionSet::parse(["audit:*"]).unwrap();
        let read = PermissionSet::parse(["audit:read"]).unwrap();
        assert!(read.is_subset_of(&audit));
        assert!(audit.is_subset_of(&admin));
        assert!(!audit.is_subset_of(&read));
        assert!(!admin.is_subset_of(&audit));
        let both = audit.intersect(&PermissionSet::parse(["audit:read", "roles:read"]).unwrap());
        assert_eq!(both.to_vec(), vec!["audit:read".to_owned()]);
    }

    #[test]
    fn per_plugin_invoke_permissions_grant_one_plugin() {
        let one = PermissionSet::parse(["plugins:invoke:expiry-report"]).unwrap();
        assert!(one.allows("plugins:invoke:expiry-report"));
        assert!(!one.allows("plugins:invoke:other"));
        assert!(!one.allows("plugins:invoke"));
        let all = PermissionSet::parse(["plugins:invoke"]).unwrap();
        assert!(all.allows("plugins:invoke:anything"));
        assert!(one.is_subset_of(&all));
        assert!(!all.is_subset_of(&one));
        assert_eq!(one.intersect(&all).to_vec(), vec!["plugins:invoke:expiry-report".to_owned()]);
        assert!(PermissionSet::parse(["plugins:invoke:Bad Id"]).is_err());
    }

    #[test]
    fn authority_covers_permissions_and_scope_together() {
        let office = Uuid::now_v7();
        let admin = Authority {
            permissions: PermissionSet::all(),
            scope: crate::access::scope::Scope::All,
        };
        let scoped = Authority {
            permissions: PermissionSet::parse(["api_keys:*"]).unwrap(),
            scope: crate::access::scope::Scope::offices([office]),
        };
        assert!(admin.covers(&scoped));
        assert!(!scoped.covers(&admin));
        let wider_scope = Authority { scope: crate::access::scope::Scope::All, ..scoped.clone() };
        assert!(!scoped.covers(&wider_scope));
    }

    #[test]
    fn authorize_yields_a_capability_only_for_held_permissions() {
        let p = Arc::new(Principal {
            permissions: PermissionSet::parse(["audit:read"]).unwrap(),
            ..(*Principal::system()).clone()
        });
        assert!(p.authorize::<perm::AuditRead>().is_ok());
        let e = p.authorize::<perm::AuditExport>().unwrap_err();
        assert_eq!(e.code(), "permission_denied");
        assert!(e.to_string().contains("audit:export"));
    }
}
