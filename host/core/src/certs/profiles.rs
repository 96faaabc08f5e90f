//! Profiles: list, show, create, replace; the built-in profiles are created on first start.

use crate::ErrorCode;
use crate::audit::AuditAction;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::access::authz::{Capability, Principal, perm};
use crate::access::operator::validate_role_name;
use crate::audit::NewAuditEvent;
use crate::certs::ca::Issuers;
use crate::certs::profile::{Profile, ProfileSpec, built_in_profiles};
use crate::error::{CoreError, Result};
use crate::ports::{Clock, Store};

/// Profile operations.
pub struct ProfileService {
    store: Arc<dyn Store>,
    clock: Arc<dyn Clock>,
    issuers: Arc<Issuers>,
    /// Issuance looks a profile up on every request; a short-lived copy saves a query each time.
    /// Changes made on another node are seen within [`CACHE_TTL`].
    cache: Mutex<Option<(Instant, Arc<Vec<Profile>>)>>,
}

/// A profile found by name, read in place from the list it was found in: issuance looks one up
/// per request, and a copy of its spec (patterns, usages, extensions) was made and dropped each
/// time.
pub(crate) struct Found {
    list: Arc<Vec<Profile>>,
    /// Always an index of `list` ([`ProfileService::find`] found it there).
    at: usize,
}

impl Found {
    /// A copy, for an answer that outlives the lookup.
    pub(crate) fn cloned(&self) -> Profile {
        Profile::clone(self)
    }
}

impl std::ops::Deref for Found {
    type Target = Profile;

    fn deref(&self) -> &Profile {
        // `at` came from `position` over this very list, which never changes (it is shared).
        &self.list[self.at]
    }
}

/// How long a node keeps its copy of the profiles.
pub const CACHE_TTL: Duration = Duration::from_secs(1);

impl std::fmt::Debug for ProfileService {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ProfileService").finish_non_exhaustive()
    }
}

impl ProfileService {
    /// Wires the service.
    pub fn new(store: Arc<dyn Store>, clock: Arc<dyn Clock>, issuers: Arc<Issuers>) -> Self {
        Self { store, clock, issuers, cache: Mutex::new(None) }
    }

    async fn all(&self) -> Result<Arc<Vec<Profile>>> {
        if let Ok(c) = self.cache.lock()
            && let Some((at, list)) = c.as_ref()
            && at.elapsed() < CACHE_TTL
        {
            return Ok(Arc::clone(list));
        }
        let list = Arc::new(self.store.profiles().await?);
        if let Ok(mut c) = self.cache.lock() {
            *c = Some((Instant::now(), Arc::clone(&list)));
        }
        Ok(list)
    }

    fn forget(&self) {
        if let Ok(mut c) = self.cache.lock() {
            *c = None;
        }
    }

    /// Creates the built-in profiles that do not exist yet, issuing from `default_ca`.
    pub async fn bootstrap(&self, default_ca: &str) -> Result<()> {
        let existing = self.store.profiles().await?;
        let system = Principal::system();
        for (name, mut spec) in built_in_profiles() {
            if let Some(old) = existing.iter().find(|p| p.name == name) {
                self.upgrade_built_in(old).await?;
                continue;
            }
            // Built-in profiles issue from the CA the deployment names (`pki.ca_id`).
            default_ca.clone_into(&mut spec.ca);
            let now = self.clock.now();
            let p = Profile {
                name: name.clone(),
                spec,
                built_in: true,
                created_at: now,
                updated_at: now,
            };
            let mut tx = self.store.begin().await?;
            match tx.insert_profile(&p).await {
                Ok(()) => {}
                // Another node created it first.
                Err(crate::StoreError::Conflict { .. }) => continue,
                Err(e) => return Err(e.into()),
            }
            let ev = NewAuditEvent::new(&system, AuditAction::ProfileCreate, "profile", &name)
                .details(serde_json::to_value(&p.spec).unwrap_or_default());
            tx.commit(vec![ev], now).await?;
        }
        Ok(())
    }

    /// Brings a built-in profile stored by an earlier version up to a rule it predates: the
    /// document-signing profile without an extended key usage (so valid for TLS too) gets RFC
    /// 9336 documentSigning. Audited; a profile an operator gave an EKU is left alone.
    async fn upgrade_built_in(&self, old: &Profile) -> Result<()> {
        if !(old.built_in
            && old.name == "document-signing"
            && old.spec.extended_key_usage.is_empty())
        {
            return Ok(());
        }
        let now = self.clock.now();
        let mut p = old.clone();
        p.spec.extended_key_usage = vec!["documentSigning".into()];
        p.updated_at = now;
        let mut tx = self.store.begin().await?;
        tx.update_profile(&p).await?;
        let ev = NewAuditEvent::new(
            &Principal::system(),
            AuditAction::ProfileUpdate,
            "profile",
            &p.name,
        )
        .details(serde_json::json!({
            "extended_key_usage": p.spec.extended_key_usage,
            "why": "signing certificates carry id-kp-documentSigning (RFC 9336)",
        }));
        tx.commit(vec![ev], now).await?;
        Ok(())
    }

    /// Every profile.
    pub async fn list(&self, _cap: &Capability<perm::ProfilesRead>) -> Result<Vec<Profile>> {
        Ok(self.store.profiles().await?)
    }

    /// One profile.
    pub async fn get(&self, _cap: &Capability<perm::ProfilesRead>, name: &str) -> Result<Profile> {
        self.find(name).await.map(|p| p.cloned())
    }

    /// The profile `name`, for services that checked their caller already (issuance looks one
    /// up per request).
    pub(crate) async fn find(&self, name: &str) -> Result<Found> {
        let list = self.all().await?;
        let at = list.iter().position(|p| p.name == name).ok_or_else(|| {
            CoreError::invalid(
                ErrorCode::UnknownProfile,
                format!("no profile `{name}` (see GET /api/v1/profiles)"),
            )
        })?;
        Ok(Found { list, at })
    }

    fn check(&self, spec: &ProfileSpec) -> Result<()> {
        spec.validate()?;
        self.issuers.get(&spec.ca).map(|_| ())
    }

    /// Creates a profile.
    pub async fn create(
        &self,
        cap: &Capability<perm::ProfilesWrite>,
        name: &str,
        spec: ProfileSpec,
    ) -> Result<Profile> {
        let name = validate_role_name(name).map_err(|_| {
            CoreError::invalid(
                ErrorCode::InvalidName,
                "a profile name is 1 to 64 lowercase letters, digits, `-` or `_`",
            )
        })?;
        self.check(&spec)?;
        let now = self.clock.now();
        let p = Profile { name, spec, built_in: false, created_at: now, updated_at: now };
        let mut tx = self.store.begin().await?;
        tx.insert_profile(&p).await.map_err(|e| match e {
            crate::StoreError::Conflict { .. } => {
                CoreError::conflict(ErrorCode::NameTaken, format!("profile `{}` exists", p.name))
            }
            other => other.into(),
        })?;
        let ev =
            NewAuditEvent::new(cap.principal(), AuditAction::ProfileCreate, "profile", &p.name)
                .details(serde_json::to_value(&p.spec).unwrap_or_default());
        tx.commit(vec![ev], now).await?;
        self.forget();
        Ok(p)
    }

    /// Replaces a profile's rules (certificates already issued keep theirs).
    pub async fn update(
        &self,
        cap: &Capability<perm::ProfilesWrite>,
        name: &str,
        spec: ProfileSpec,
    ) -> Result<Profile> {
        self.check(&spec)?;
        let before = self.find(name).await.map_err(|_| CoreError::not_found("profile", name))?;
        if before.spec == spec {
            return Ok(before.cloned());
        }
        // Its certificates were issued under the Forum's rules, and suspension and renewal
        // read the profile as it is: it keeps following them (make a new profile instead).
        if before.spec.cabf_server_auth && !spec.cabf_server_auth {
            return Err(CoreError::invalid(
                ErrorCode::InvalidProfile,
                "a CA/Browser Forum profile stays one (cabf_server_auth cannot be turned off); \
                 create another profile",
            ));
        }
        let now = self.clock.now();
        let p = Profile { spec, updated_at: now, ..before.clone() };
        let mut tx = self.store.begin().await?;
        tx.update_profile(&p).await?;
        let ev = NewAuditEvent::new(cap.principal(), AuditAction::ProfileUpdate, "profile", name)
            .details(serde_json::json!({
                "before": serde_json::to_value(&before.spec).unwrap_or_default(),
                "after": serde_json::to_value(&p.spec).unwrap_or_default(),
            }));
        tx.commit(vec![ev], now).await?;
        self.forget();
        Ok(p)
    }
}
