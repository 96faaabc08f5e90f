//! API key use cases: create, list, show, update, revoke, rotate, and authenticate a request.

use crate::ErrorCode;
use crate::audit::AuditAction;
use std::sync::Arc;
use std::time::Duration as StdDuration;

use time::{Duration, OffsetDateTime};
use uuid::Uuid;

use crate::access::api_key::{
    self as apikey, ApiKey, Expiry, KeySecret, KeyStatus, RateLimit, hash_secret, hashes_match,
    presented_prefix,
};
use crate::access::authz::{
    ActorKind, Authority, Capability, Permission, PermissionSet, Principal, RequestContext, perm,
};
use crate::access::scope::Scope;
use crate::access::ui_session::SessionOwner;
use crate::audit::{NewAuditEvent, unix_micros};
use crate::error::{AuthFailure, CoreError, Result};
use crate::page::{Page, paginate};
use crate::ports::{AccessPort, AccessStore, ApiKeyFilter, Clock, PageRequest};
use crate::records::Collection;

/// Longest rotation grace period.
pub const MAX_GRACE_SECS: i64 = 7 * 86_400;

/// What a caller asks for when creating a key.
#[derive(Debug, Clone)]
pub struct CreateApiKey {
    /// Unique name.
    pub name: String,
    /// Free text.
    pub description: String,
    /// `30d`, `60d`, `never` or an RFC 3339 instant.
    pub expires: String,
    /// Permission patterns.
    pub permissions: Vec<String>,
    /// Optional rate limit.
    pub rate_limit: Option<RateLimit>,
    /// Allowed client addresses and ranges.
    pub ip_whitelist: Vec<String>,
    /// SHA-256 fingerprint of a client certificate that authenticates as this key (mTLS).
    pub client_cert_sha256: Option<String>,
    /// Operator the key acts for; it then never exceeds the operator's roles.
    pub operator_id: Option<Uuid>,
    /// Token holder (a person) the key acts for, for self-service.
    pub holder_id: Option<Uuid>,
}

/// A change to a key; `None` leaves a field as it is, `Some(None)` clears an optional one.
#[derive(Debug, Clone, Default)]
pub struct UpdateApiKey {
    /// New name.
    pub name: Option<String>,
    /// New description.
    pub description: Option<String>,
    /// New expiry.
    pub expires: Option<String>,
    /// New permissions.
    pub permissions: Option<Vec<String>>,
    /// New or removed rate limit.
    pub rate_limit: Option<Option<RateLimit>>,
    /// New whitelist.
    pub ip_whitelist: Option<Vec<String>>,
    /// New or removed client certificate binding.
    pub client_cert_sha256: Option<Option<String>>,
    /// New or removed operator binding.
    pub operator_id: Option<Option<Uuid>>,
}

/// A key with its secret, returned once on creation or rotation.
#[derive(Debug)]
pub struct IssuedApiKey {
    /// The stored key.
    pub key: ApiKey,
    /// The secret; show it once.
    pub secret: KeySecret,
}

/// API key operations.
pub struct ApiKeyService {
    store: Arc<dyn AccessPort>,
    clock: Arc<dyn Clock>,
    /// Shared entries: a request reads the key, it does not need a copy of it.
    cache: crate::cache::Cache<String, Arc<ApiKey>>,
    cache_ttl: StdDuration,
    /// When this node last recorded each key's use.
    last_use: std::sync::Mutex<std::collections::HashMap<Uuid, OffsetDateTime>>,
}

impl std::fmt::Debug for ApiKeyService {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ApiKeyService").field("cache_ttl", &self.cache_ttl).finish_non_exhaustive()
    }
}

impl ApiKeyService {
    /// `cache_ttl` bounds how long another node may keep honouring a key revoked elsewhere.
    pub fn new(store: Arc<dyn AccessPort>, clock: Arc<dyn Clock>, cache_ttl: StdDuration) -> Self {
        Self {
            store,
            clock,
            cache: crate::cache::Cache::new(cache_ttl, 10_000),
            cache_ttl,
            last_use: Default::default(),
        }
    }

    /// Creates a key within the caller's authority: only permissions it holds, bound to an
    /// operator inside its scope (a caller bound to an operator mints keys bound to that
    /// operator unless it names another), for a token holder it sees, expiring no later than
    /// the key that mints it. The minting key is recorded as the new key's parent.
    pub async fn create(
        &self,
        cap: &Capability<perm::ApiKeysCreate>,
        mut req: CreateApiKey,
    ) -> Result<IssuedApiKey> {
        let now = self.clock.now();
        let principal = cap.principal();
        if req.operator_id.is_none() && req.holder_id.is_none() {
            req.operator_id =
                principal.operator_id.as_deref().and_then(|o| Uuid::parse_str(o).ok());
        }
        let permissions = self.grantable(principal, &req.permissions)?;
        let secret = KeySecret::generate()?;
        let key = ApiKey {
            id: Uuid::now_v7(),
            name: apikey::validate_name(&req.name)?,
            description: apikey::validate_description(&req.description)?,
            prefix: secret.prefix.clone(),
            secret_hash: secret.hash.clone(),
            permissions,
            expires_at: Expiry::parse(&req.expires)?.resolve(now)?,
            rate_limit: req.rate_limit.map(RateLimit::validate).transpose()?,
            ip_whitelist: apikey::parse_whitelist(&req.ip_whitelist)?,
            operator_id: self.check_operator(principal, req.operator_id).await?,
            created_at: now,
            updated_at: now,
            created_by: principal.id.clone(),
            revoked_at: None,
            revocation_reason: None,
            previous_prefix: None,
            previous_hash: None,
            previous_expires_at: None,
            rotated_at: None,
            client_cert_sha256: req
                .client_cert_sha256
                .as_deref()
                .map(apikey::parse_fingerprint)
                .transpose()?,
            holder_id: self
                .check_holder(principal, req.holder_id, req.operator_id.is_some())
                .await?,
            parent_id: principal.api_key_id,
            last_used_at: None,
        };
        if key.holder_id.is_some() && !key.permissions.is_subset_of(&holder_permissions()?) {
            return Err(CoreError::invalid(
                ErrorCode::InvalidPermission,
                "a token holder's key carries `self_service:use` (and `plugins:invoke`) only: \
                 it acts for its holder through self-service",
            ));
        }
        principal.ensure_covers(&self.authority_of(&key).await?, "API key")?;
        self.check_lifetime(&key).await?;
        let mut tx = self.store.begin_access().await?;
        tx.insert_api_key(&key).await.map_err(name_conflict)?;
        let event = NewAuditEvent::new(principal, AuditAction::ApiKeyCreate, "api_key", key.id)
            .details(describe(&key));
        tx.commit(vec![event], now).await?;
        Ok(IssuedApiKey { key, secret })
    }

    /// The authority `key` acts with: its permissions within its operator's roles and the
    /// operator's scope; a token holder's key reaches its holder's office only. A key whose
    /// operator or holder has gone reaches nothing.
    pub async fn authority_of(&self, key: &ApiKey) -> Result<Authority> {
        if let Some(op_id) = &key.operator_id {
            let op = match Uuid::parse_str(op_id) {
                Ok(u) => self.store.operator(u).await?,
                Err(_) => None,
            };
            return Ok(match op {
                Some(op) => Authority {
                    permissions: key
                        .permissions
                        .intersect(&self.role_permissions(&op.roles).await?),
                    scope: crate::org::organizations::scope_of(self.store.as_ref(), &op).await?,
                },
                None => {
                    Authority { permissions: PermissionSet::default(), scope: Scope::nothing() }
                }
            });
        }
        if let Some(h) = key.holder_id {
            let office = self
                .store
                .record(Collection::People, &h.to_string())
                .await?
                .and_then(|b| <crate::people::Person as crate::records::Record>::from_body(&b).ok())
                .map(|p| p.office_id);
            // Who may manage a holder's key: whoever sees the holder's office. (What the key
            // itself sees is nothing office-bound; see `admit`.)
            return Ok(Authority {
                permissions: key.permissions.clone(),
                scope: office.map_or_else(Scope::nothing, |o| Scope::offices([o])),
            });
        }
        Ok(Authority { permissions: key.permissions.clone(), scope: Scope::All })
    }

    /// A stored key, or 404.
    async fn stored(&self, id: Uuid) -> Result<ApiKey> {
        self.store.api_key(id).await?.ok_or_else(|| CoreError::not_found("api_key", id.to_string()))
    }

    /// The authority of `key` when `p` sees it: its scope lies within `p`'s (`Scope::manages`);
    /// None otherwise, so that keys outside the caller's scope do not exist for it.
    async fn seen(&self, p: &Principal, key: &ApiKey) -> Result<Option<Authority>> {
        let authority = self.authority_of(key).await?;
        Ok(p.scope.manages(&authority.scope).then_some(authority))
    }

    /// Key `id` when `p` may change it: visible (404 otherwise), and with no more authority
    /// than `p` (403).
    async fn changeable(&self, p: &Principal, id: Uuid) -> Result<ApiKey> {
        let key = self.stored(id).await?;
        let authority = self
            .seen(p, &key)
            .await?
            .ok_or_else(|| CoreError::not_found("api_key", id.to_string()))?;
        p.ensure_covers(&authority, "API key")?;
        Ok(key)
    }

    /// A key never outlives the key that minted it.
    async fn check_lifetime(&self, key: &ApiKey) -> Result<()> {
        let Some(parent) = key.parent_id else { return Ok(()) };
        let Some(parent) = self.store.api_key(parent).await? else { return Ok(()) };
        if let Some(limit) = parent.expires_at
            && outlives(key, limit)
        {
            return Err(CoreError::invalid(
                ErrorCode::ExpiryBeyondCreator,
                format!(
                    "a key cannot outlive the key that mints it (expires {}); choose an earlier \
                     `expires`",
                    limit
                        .format(&time::format_description::well_known::Rfc3339)
                        .unwrap_or_default()
                ),
            ));
        }
        Ok(())
    }

    /// Creates the first administrator key when the store has none. Returns `None` otherwise.
    pub async fn bootstrap_admin(&self) -> Result<Option<IssuedApiKey>> {
        if self.store.count_api_keys().await? > 0 {
            return Ok(None);
        }
        let system = Principal::system();
        let cap = system.authorize::<perm::ApiKeysCreate>()?;
        let req = CreateApiKey {
            name: "admin".into(),
            description: "first-start administrator key (every permission)".into(),
            expires: "never".into(),
            permissions: vec!["*".into()],
            rate_limit: None,
            ip_whitelist: vec![],
            client_cert_sha256: None,
            operator_id: None,
            holder_id: None,
        };
        match self.create(&cap, req).await {
            Ok(k) => Ok(Some(k)),
            // Another node created it first.
            Err(CoreError::Conflict { .. }) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Lists the keys the caller sees (those within its scope), oldest first.
    pub async fn list(
        &self,
        cap: &Capability<perm::ApiKeysRead>,
        mut filter: ApiKeyFilter,
        page: PageRequest,
    ) -> Result<Page<ApiKey>> {
        if let Some(after) = &page.after {
            Uuid::parse_str(after)
                .map_err(|_| CoreError::invalid(ErrorCode::InvalidCursor, "cursor is not valid"))?;
        }
        filter.now = Some(self.clock.now());
        let p = cap.principal();
        if p.scope.is_all() {
            let fetch = PageRequest { after: page.after, limit: page.limit + 1 };
            let rows = self.store.list_api_keys(&filter, &fetch).await?;
            return Ok(paginate(rows, page.limit, |k| k.id.to_string()));
        }
        // A restricted caller: read on until the page is full of keys it sees.
        let mut out = Vec::new();
        let mut after = page.after;
        loop {
            let batch = self
                .store
                .list_api_keys(&filter, &PageRequest { after: after.clone(), limit: 200 })
                .await?;
            let done = batch.len() < 200;
            after = batch.last().map(|k| k.id.to_string());
            for k in batch {
                if self.seen(p, &k).await?.is_some() {
                    out.push(k);
                }
            }
            if done || out.len() > page.limit as usize {
                break;
            }
        }
        Ok(paginate(out, page.limit, |k| k.id.to_string()))
    }

    /// One key (404 outside the caller's scope).
    pub async fn get(&self, cap: &Capability<perm::ApiKeysRead>, id: Uuid) -> Result<ApiKey> {
        let key = self.stored(id).await?;
        match self.seen(cap.principal(), &key).await? {
            Some(_) => Ok(key),
            None => Err(CoreError::not_found("api_key", id.to_string())),
        }
    }

    /// Changes a key's settings. Revoked keys cannot be changed.
    pub async fn update(
        &self,
        cap: &Capability<perm::ApiKeysUpdate>,
        id: Uuid,
        patch: UpdateApiKey,
    ) -> Result<ApiKey> {
        let now = self.clock.now();
        let p = cap.principal();
        let operator = match patch.operator_id {
            Some(o) => Some(self.check_operator(p, o).await?),
            None => None,
        };
        self.changeable(p, id).await?;
        let mut tx = self.store.begin_access().await?;
        let before = tx
            .api_key_for_update(id)
            .await?
            .ok_or_else(|| CoreError::not_found("api_key", id.to_string()))?;
        if before.revoked_at.is_some() {
            return Err(CoreError::conflict(
                ErrorCode::ApiKeyRevoked,
                "a revoked API key cannot be changed",
            ));
        }
        let mut key = before.clone();
        if let Some(n) = &patch.name {
            key.name = apikey::validate_name(n)?;
        }
        if let Some(d) = &patch.description {
            key.description = apikey::validate_description(d)?;
        }
        if let Some(e) = &patch.expires {
            key.expires_at = Expiry::parse(e)?.resolve(now)?;
        }
        if let Some(p) = &patch.permissions {
            key.permissions = self.grantable(cap.principal(), p)?;
        }
        if let Some(r) = patch.rate_limit {
            key.rate_limit = r.map(RateLimit::validate).transpose()?;
        }
        if let Some(w) = &patch.ip_whitelist {
            key.ip_whitelist = apikey::parse_whitelist(w)?;
        }
        if let Some(c) = &patch.client_cert_sha256 {
            key.client_cert_sha256 = c.as_deref().map(apikey::parse_fingerprint).transpose()?;
        }
        if let Some(o) = operator {
            if o.is_some() && key.holder_id.is_some() {
                return Err(CoreError::invalid(
                    ErrorCode::InvalidBinding,
                    "a key acts for an operator or for a token holder, not both",
                ));
            }
            key.operator_id = o;
        }
        if key.holder_id.is_some() && !key.permissions.is_subset_of(&holder_permissions()?) {
            return Err(CoreError::invalid(
                ErrorCode::InvalidPermission,
                "a token holder's key carries `self_service:use` (and `plugins:invoke`) only",
            ));
        }
        if key == before {
            return Ok(before);
        }
        // A key lives no longer than the key that changes it (no key extends its own life).
        if key.expires_at != before.expires_at
            && let Some(caller) = p.api_key_id
            && let Some(caller) = self.store.api_key(caller).await?
            && let Some(limit) = caller.expires_at
            && outlives(&key, limit)
        {
            return Err(CoreError::invalid(
                ErrorCode::ExpiryBeyondCreator,
                "a key cannot be made to outlive the key that changes it",
            ));
        }
        // What the key becomes must lie within the caller's authority too (a rebinding, an
        // unbinding or new permissions), and within its creator's lifetime.
        p.ensure_covers(&self.authority_of(&key).await?, "API key")?;
        self.check_lifetime(&key).await?;
        key.updated_at = now;
        tx.update_api_key(&key).await.map_err(name_conflict)?;
        let event = NewAuditEvent::new(cap.principal(), AuditAction::ApiKeyUpdate, "api_key", id)
            .details(serde_json::json!({"before": describe(&before), "after": describe(&key)}));
        tx.commit(vec![event], now).await?;
        self.forget(&key);
        Ok(key)
    }

    /// Revokes a key at once; with `cascade`, also every key it minted, and theirs, in the same
    /// transaction. Revoking a revoked key changes nothing and succeeds (retries are safe; a
    /// cascading retry still reaches descendants left active).
    pub async fn revoke(
        &self,
        cap: &Capability<perm::ApiKeysRevoke>,
        id: Uuid,
        reason: Option<String>,
        cascade: bool,
    ) -> Result<ApiKey> {
        let now = self.clock.now();
        let p = cap.principal();
        let reason = reason.map(|r| apikey::validate_description(&r)).transpose()?;
        self.changeable(p, id).await?;
        let descendants = if cascade { self.descendants(id).await? } else { Vec::new() };
        // Every key the cascade reaches must lie within the caller's authority too (one may
        // have been rebound since it was minted): all or nothing.
        for child in &descendants {
            self.changeable(p, *child).await?;
        }
        let mut tx = self.store.begin_access().await?;
        let mut root = tx
            .api_key_for_update(id)
            .await?
            .ok_or_else(|| CoreError::not_found("api_key", id.to_string()))?;
        let mut events = Vec::new();
        let mut revoked = Vec::new();
        if root.revoked_at.is_none() {
            revoke_in_place(&mut root, now, reason.clone());
            // Its UI sessions stay until pruned: a revoked key admits nothing, and the
            // session can still tell its user why it ended.
            tx.update_api_key(&root).await?;
            events.push(NewAuditEvent::new(p, AuditAction::ApiKeyRevoke, "api_key", id).details(
                serde_json::json!({
                    "name": root.name, "reason": reason, "cascade": cascade,
                    "descendants": descendants.len(),
                }),
            ));
            revoked.push(root.clone());
        }
        for child in descendants {
            let Some(mut k) = tx.api_key_for_update(child).await? else { continue };
            if k.revoked_at.is_some() {
                continue;
            }
            revoke_in_place(&mut k, now, Some(format!("minted by revoked key {id}")));
            tx.update_api_key(&k).await?;
            events.push(NewAuditEvent::new(p, AuditAction::ApiKeyRevoke, "api_key", k.id).details(
                serde_json::json!({"name": k.name, "reason": k.revocation_reason, "cascade_from": id}),
            ));
            revoked.push(k);
        }
        if events.is_empty() {
            return Ok(root);
        }
        tx.commit(events, now).await?;
        for k in &revoked {
            self.forget(k);
        }
        Ok(root)
    }

    /// Every key minted by `id`, by the keys it minted, and so on (breadth first, bounded).
    async fn descendants(&self, id: Uuid) -> Result<Vec<Uuid>> {
        const MAX: usize = 10_000;
        let mut out = Vec::new();
        let mut queue = std::collections::VecDeque::from([id]);
        while let Some(parent) = queue.pop_front() {
            let mut after = None;
            loop {
                let filter = ApiKeyFilter { parent_id: Some(parent), ..ApiKeyFilter::default() };
                let batch = self
                    .store
                    .list_api_keys(&filter, &PageRequest { after: after.clone(), limit: 500 })
                    .await?;
                let done = batch.len() < 500;
                after = batch.last().map(|k| k.id.to_string());
                for k in batch {
                    if k.id != id && !out.contains(&k.id) {
                        out.push(k.id);
                        queue.push_back(k.id);
                    }
                }
                if out.len() > MAX {
                    return Err(CoreError::invalid(
                        ErrorCode::TooManyDescendants,
                        format!("more than {MAX} keys descend from this key"),
                    ));
                }
                if done {
                    break;
                }
            }
        }
        Ok(out)
    }

    /// Replaces a key's secret. With a grace period the old secret keeps working until it ends.
    pub async fn rotate(
        &self,
        cap: &Capability<perm::ApiKeysRotate>,
        id: Uuid,
        grace_secs: Option<i64>,
    ) -> Result<IssuedApiKey> {
        let now = self.clock.now();
        let grace = grace_secs.unwrap_or(0);
        if !(0..=MAX_GRACE_SECS).contains(&grace) {
            return Err(CoreError::invalid(
                ErrorCode::InvalidGracePeriod,
                format!("grace_period_seconds must be between 0 and {MAX_GRACE_SECS}"),
            ));
        }
        self.changeable(cap.principal(), id).await?;
        let mut tx = self.store.begin_access().await?;
        let mut key = tx
            .api_key_for_update(id)
            .await?
            .ok_or_else(|| CoreError::not_found("api_key", id.to_string()))?;
        match key.status(now) {
            KeyStatus::Revoked => {
                return Err(CoreError::conflict(
                    ErrorCode::ApiKeyRevoked,
                    "a revoked API key cannot be rotated",
                ));
            }
            KeyStatus::Expired => {
                return Err(CoreError::conflict(
                    ErrorCode::ApiKeyExpired,
                    "an expired API key cannot be rotated",
                ));
            }
            KeyStatus::Active => {}
        }
        let old = key.clone();
        let secret = KeySecret::generate()?;
        if grace > 0 {
            key.previous_prefix = Some(key.prefix.clone());
            key.previous_hash = Some(key.secret_hash.clone());
            key.previous_expires_at = Some(now + Duration::seconds(grace));
        } else {
            key.previous_prefix = None;
            key.previous_hash = None;
            key.previous_expires_at = None;
        }
        key.prefix = secret.prefix.clone();
        key.secret_hash = secret.hash.clone();
        key.rotated_at = Some(now);
        key.updated_at = now;
        tx.update_api_key(&key).await?;
        // Sessions signed in with the old secret end: a rotation answers a leak.
        let ended = tx.end_ui_sessions(&SessionOwner::Key(id)).await?;
        let event = NewAuditEvent::new(cap.principal(), AuditAction::ApiKeyRotate, "api_key", id)
            .details(serde_json::json!({"name": key.name, "grace_period_seconds": grace,
                "ui_sessions_ended": ended}));
        tx.commit(vec![event], now).await?;
        self.forget(&old);
        Ok(IssuedApiKey { key, secret })
    }

    /// Authenticates a presented key from `client_ip`: known, not revoked, not expired, address
    /// whitelisted, and under its rate limit (counted across every node sharing the database).
    pub async fn authenticate(
        &self,
        presented: &str,
        context: RequestContext,
    ) -> Result<Arc<Principal>> {
        let prefix =
            presented_prefix(presented).ok_or(CoreError::Unauthenticated(AuthFailure::Unknown))?;
        let key =
            self.lookup(prefix).await?.ok_or(CoreError::Unauthenticated(AuthFailure::Unknown))?;
        let hash = hash_secret(presented);
        let now = self.clock.now();
        let current = key.prefix == prefix && hashes_match(&hash, &key.secret_hash);
        let previous = key.previous_prefix.as_deref() == Some(prefix)
            && key.previous_hash.as_deref().is_some_and(|h| hashes_match(&hash, h))
            && key.previous_expires_at.is_some_and(|t| t > now);
        if !current && !previous {
            return Err(CoreError::Unauthenticated(AuthFailure::Unknown));
        }
        self.admit(&key, now, context, true).await
    }

    /// Authenticates a verified client certificate by its SHA-256 fingerprint: the key bound to
    /// it must pass the same checks as a presented secret.
    pub async fn authenticate_certificate(
        &self,
        sha256: &str,
        context: RequestContext,
    ) -> Result<Arc<Principal>> {
        let now = self.clock.now();
        if let Some(key) = self.store.api_key_by_certificate(sha256).await? {
            return self.admit(&key, now, context, true).await;
        }
        // Not a client's certificate: perhaps an operator's.
        let op = self
            .store
            .operator_by_certificate(sha256)
            .await?
            .ok_or(CoreError::Unauthenticated(AuthFailure::Unknown))?;
        self.operator_principal(op, context).await
    }

    async fn operator_principal(
        &self,
        op: crate::access::operator::Operator,
        context: RequestContext,
    ) -> Result<Arc<Principal>> {
        if !op.enabled {
            return Err(CoreError::Unauthenticated(AuthFailure::Disabled));
        }
        let permissions = self.role_permissions(&op.roles).await?;
        let scope = crate::org::organizations::scope_of(self.store.as_ref(), &op).await?;
        Ok(Arc::new(Principal {
            kind: ActorKind::Operator,
            id: op.id.to_string(),
            name: op.username,
            api_key_id: None,
            operator_id: Some(op.id.to_string()),
            holder_id: None,
            permissions,
            scope,
            context,
        }))
    }

    /// The caller behind `p` as it would be admitted now: read from the store (not the cache)
    /// and not counted against its rate limit. Long-lived responses (the audit stream) re-check
    /// their caller with it, so a revoked or expired key, a disabled operator or a withdrawn
    /// role ends them.
    pub async fn reauthenticate(&self, p: &Principal) -> Result<Arc<Principal>> {
        let now = self.clock.now();
        if let Some(id) = p.api_key_id {
            let key = self
                .store
                .api_key(id)
                .await?
                .ok_or(CoreError::Unauthenticated(AuthFailure::Revoked))?;
            return self.admit(&key, now, p.context.clone(), false).await;
        }
        if p.kind == ActorKind::Operator {
            let id = p.operator_id.as_deref().and_then(|s| Uuid::parse_str(s).ok());
            let op = match id {
                Some(u) => self.store.operator(u).await?,
                None => None,
            };
            let op = op.ok_or(CoreError::Unauthenticated(AuthFailure::Disabled))?;
            return self.operator_principal(op, p.context.clone()).await;
        }
        Ok(Arc::new(p.clone()))
    }

    async fn role_permissions(&self, names: &[String]) -> Result<PermissionSet> {
        let roles: Vec<_> =
            self.store.roles().await?.into_iter().filter(|r| names.contains(&r.name)).collect();
        Ok(crate::access::operator::role_permissions(&roles))
    }

    /// A token holder the caller sees (an unknown person and one outside the caller's scope
    /// get the same answer).
    async fn check_holder(
        &self,
        p: &Principal,
        holder: Option<Uuid>,
        has_operator: bool,
    ) -> Result<Option<Uuid>> {
        let Some(h) = holder else { return Ok(None) };
        if has_operator {
            return Err(CoreError::invalid(
                ErrorCode::InvalidBinding,
                "a key acts for an operator or for a token holder, not both",
            ));
        }
        let person = self
            .store
            .record(Collection::People, &h.to_string())
            .await?
            .map(|b| <crate::people::Person as crate::records::Record>::from_body(&b))
            .transpose()?;
        match person {
            Some(person) if p.scope.sees(Some(person.office_id)) => Ok(Some(h)),
            _ => Err(CoreError::invalid(ErrorCode::UnknownPerson, format!("no person {h}"))),
        }
    }

    /// An operator the caller sees (its whole scope within the caller's): one outside and one
    /// that does not exist get the same answer.
    async fn check_operator(&self, p: &Principal, id: Option<Uuid>) -> Result<Option<String>> {
        let Some(id) = id else { return Ok(None) };
        if let Some(op) = self.store.operator(id).await? {
            let scope = crate::org::organizations::scope_of(self.store.as_ref(), &op).await?;
            if p.scope.manages(&scope) {
                return Ok(Some(id.to_string()));
            }
        }
        Err(CoreError::invalid(ErrorCode::UnknownOperator, format!("operator {id} does not exist")))
    }

    /// The clock (for the UI sessions, which share this service's store and rules).
    pub(crate) fn clock(&self) -> &dyn Clock {
        self.clock.as_ref()
    }

    /// The store.
    pub(crate) fn access_store(&self) -> &dyn AccessPort {
        self.store.as_ref()
    }

    /// Key `id` admitted now as if presented (read from the store, not the cache: a revoked
    /// key stops at once), counted against its rate limit.
    pub(crate) async fn admit_key(
        &self,
        id: Uuid,
        context: RequestContext,
    ) -> Result<Arc<Principal>> {
        let key = self
            .store
            .api_key(id)
            .await?
            .ok_or(CoreError::Unauthenticated(AuthFailure::Revoked))?;
        self.admit(&key, self.clock.now(), context, true).await
    }

    async fn admit(
        &self,
        key: &ApiKey,
        now: OffsetDateTime,
        context: RequestContext,
        count: bool,
    ) -> Result<Arc<Principal>> {
        match key.status(now) {
            KeyStatus::Revoked => return Err(CoreError::Unauthenticated(AuthFailure::Revoked)),
            KeyStatus::Expired => return Err(CoreError::Unauthenticated(AuthFailure::Expired)),
            KeyStatus::Active => {}
        }
        if let Some(ip) = context.client_ip
            && !apikey::whitelist_allows(&key.ip_whitelist, ip)
        {
            return Err(CoreError::Forbidden {
                code: ErrorCode::IpNotAllowed,
                detail: format!("requests from {ip} are not allowed for this API key"),
            });
        }
        // A key bound to an operator acts within the operator's roles, and stops when the
        // operator is disabled. Operators are not cached, so that takes effect at once.
        let (permissions, scope) = match &key.operator_id {
            // A token holder's key reaches its holder's objects through self-service only.
            None if key.holder_id.is_some() => {
                (key.permissions.intersect(&holder_permissions()?), Scope::nothing())
            }
            None => (key.permissions.clone(), Scope::All),
            Some(op_id) => {
                let op = match Uuid::parse_str(op_id) {
                    Ok(u) => self.store.operator(u).await?,
                    Err(_) => None,
                };
                let op = op.ok_or(CoreError::Unauthenticated(AuthFailure::Disabled))?;
                if !op.enabled {
                    return Err(CoreError::Unauthenticated(AuthFailure::Disabled));
                }
                let scope = crate::org::organizations::scope_of(self.store.as_ref(), &op).await?;
                (key.permissions.intersect(&self.role_permissions(&op.roles).await?), scope)
            }
        };
        if let Some(limit) = key.rate_limit.filter(|_| count) {
            self.check_rate(key, limit, now).await?;
        }
        if count {
            self.note_use(key, now).await;
        }
        Ok(Arc::new(Principal {
            kind: ActorKind::ApiKey,
            id: key.id.to_string(),
            name: key.name.clone(),
            api_key_id: Some(key.id),
            operator_id: key.operator_id.clone(),
            holder_id: key.holder_id,
            permissions,
            scope,
            context,
        }))
    }

    /// Records the key's use for "last used" displays: at most once a minute per key and node
    /// (a busy key must not turn every request into a write), and never failing the request.
    async fn note_use(&self, key: &ApiKey, now: OffsetDateTime) {
        const EVERY: Duration = Duration::minutes(1);
        if key.last_used_at.is_some_and(|t| now - t < EVERY) {
            return;
        }
        {
            let mut seen = self.last_use.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            if seen.get(&key.id).is_some_and(|t| now - *t < EVERY) {
                return;
            }
            if seen.len() >= 10_000 {
                seen.clear();
            }
            seen.insert(key.id, now);
        }
        if let Err(e) = self.store.touch_api_key(key.id, unix_micros(now)).await {
            tracing::warn!(error = %e, "recording an API key's last use failed");
        }
    }

    async fn check_rate(&self, key: &ApiKey, limit: RateLimit, now: OffsetDateTime) -> Result<()> {
        throttle(self.store.as_ref(), &format!("api_key:{}", key.id), limit, now).await
    }

    /// Counts a request against `limit` in `bucket` (shared by every node); used for per-endpoint
    /// throttling configured in the exposure rules.
    pub async fn throttle(&self, bucket: &str, limit: RateLimit) -> Result<()> {
        throttle(self.store.as_ref(), bucket, limit, self.clock.now()).await
    }

    async fn lookup(&self, prefix: &str) -> Result<Option<Arc<ApiKey>>> {
        if let Some(k) = self.cache.get(prefix) {
            return Ok(Some(k));
        }
        let found = self.store.api_key_by_prefix(prefix).await?.map(Arc::new);
        // Only hits are cached: a key created on another node works at once.
        if let Some(k) = &found {
            self.cache.put(prefix.to_owned(), Arc::clone(k));
        }
        Ok(found)
    }

    fn forget(&self, key: &ApiKey) {
        self.cache.forget(&key.prefix);
        if let Some(p) = &key.previous_prefix {
            self.cache.forget(p);
        }
    }

    fn grantable(&self, principal: &Principal, requested: &[String]) -> Result<PermissionSet> {
        if requested.is_empty() {
            return Err(CoreError::invalid(
                ErrorCode::InvalidPermission,
                "permissions must not be empty",
            ));
        }
        let set = PermissionSet::parse(requested)?;
        if !set.is_subset_of(&principal.permissions) {
            return Err(CoreError::Forbidden {
                code: ErrorCode::PermissionEscalation,
                detail: "an API key cannot be granted permissions its creator does not hold".into(),
            });
        }
        Ok(set)
    }

    /// Removes rate-limit windows that ended over a day ago.
    pub async fn prune_rate_limits(&self) -> Result<u64> {
        let before = self.clock.now().unix_timestamp() - 86_400;
        Ok(self.store.rate_limit_prune(before).await?)
    }
}

/// All a token holder's key may carry: self-service, and calling endpoint plugins (which then
/// act for the holder with no more than that).
fn holder_permissions() -> Result<PermissionSet> {
    PermissionSet::parse([perm::SelfService::NAME, perm::PluginsInvoke::NAME])
}

/// Whether `key` would still be valid after `limit`.
fn outlives(key: &ApiKey, limit: OffsetDateTime) -> bool {
    key.expires_at.is_none_or(|e| e > limit)
}

fn revoke_in_place(key: &mut ApiKey, now: OffsetDateTime, reason: Option<String>) {
    key.revoked_at = Some(now);
    key.revocation_reason = reason;
    key.previous_prefix = None;
    key.previous_hash = None;
    key.previous_expires_at = None;
    key.updated_at = now;
}

/// The audit description of a key (never its secret or hash).
fn describe(k: &ApiKey) -> serde_json::Value {
    serde_json::json!({
        "name": k.name,
        "description": k.description,
        "permissions": k.permissions.to_vec(),
        "expires_at_us": k.expires_at.map(unix_micros),
        "rate_limit": k.rate_limit,
        "ip_whitelist": k.ip_whitelist.iter().map(ToString::to_string).collect::<Vec<_>>(),
        "operator_id": k.operator_id,
        "holder_id": k.holder_id,
        "parent_id": k.parent_id,
        "client_cert_sha256": k.client_cert_sha256,
    })
}

fn name_conflict(e: crate::error::StoreError) -> CoreError {
    match e {
        crate::error::StoreError::Conflict { .. } => {
            CoreError::conflict(ErrorCode::NameTaken, "an API key with this name already exists")
        }
        other => other.into(),
    }
}

/// Fixed-window counting in the shared store: the window is aligned to UTC multiples of its
/// length, so every node counts into the same row.
pub(crate) async fn throttle(
    store: &dyn AccessStore,
    bucket: &str,
    limit: RateLimit,
    now: OffsetDateTime,
) -> Result<()> {
    let len = limit.per.seconds();
    let t = now.unix_timestamp();
    let start = t - t.rem_euclid(len);
    let end = start + len;
    let count = store.rate_limit_hit(bucket, start, end).await?;
    if count > i64::from(limit.requests) {
        return Err(CoreError::RateLimited {
            limit: limit.requests,
            per: limit.per.as_str(),
            retry_after_secs: u64::try_from((end - t).max(1)).unwrap_or(1),
        });
    }
    Ok(())
}
