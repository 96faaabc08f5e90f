//! Signers (CSC users) and their signing credentials.
//!
//! A credential's certificate is issued through Sigil's own certificate path (profile
//! `document-signing` unless another is named), so it is in the inventory, the audit trail, and
//! in CRL and OCSP once revoked. Passwords and PINs are kept as Argon2id hashes only; neither
//! reaches the audit trail.

use crate::ErrorCode;
use crate::audit::AuditAction;
use std::sync::Arc;

use uuid::Uuid;
use zeroize::Zeroizing;

use crate::access::authz::{Capability, Permission, Principal, perm};
use crate::audit::NewAuditEvent;
use crate::certs::certificates::{CertificateService, IssueRequest};
use crate::certs::{Certificate, KeyType, RevocationReason};
use crate::error::{CoreError, Result};
use crate::page::{Page, lock_unchanged, record_page};
use crate::people::directory::PeopleService;
use crate::ports::{Clock, PageRequest, Store};
use crate::records::{Collection, Filter, Record, conflict_as, select};
use crate::secrets::SecretGate;
use crate::signing::cache::CscCache;
use crate::signing::credential::{
    CredentialStatus, CscSettings, Signer, SigningCredential, SigningKeys,
};

/// Largest `multisign`.
pub const MAX_MULTISIGN: u32 = 1000;
/// The profile credential certificates are issued under by default.
pub const SIGNING_PROFILE: &str = "document-signing";

fn check_username(u: &str) -> Result<String> {
    let u = u.trim().to_lowercase();
    let ok = (1..=64).contains(&u.len())
        && u.chars().all(|c| c.is_ascii_alphanumeric() || "._@-".contains(c));
    if !ok {
        return Err(CoreError::invalid(
            ErrorCode::InvalidUsername,
            "a username is 1 to 64 letters, digits, `.`, `_`, `@` or `-`",
        ));
    }
    Ok(u)
}

fn check_password(p: &str) -> Result<()> {
    if !(8..=1024).contains(&p.chars().count()) {
        return Err(CoreError::invalid(
            ErrorCode::InvalidPassword,
            "a password is 8 to 1024 characters",
        ));
    }
    Ok(())
}

fn check_pin(p: &str) -> Result<()> {
    if !(4..=64).contains(&p.len()) || !p.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(CoreError::invalid(
            ErrorCode::InvalidPin,
            "a PIN is 4 to 64 printable ASCII characters",
        ));
    }
    Ok(())
}

fn check_multisign(m: u32) -> Result<()> {
    if !(1..=MAX_MULTISIGN).contains(&m) {
        return Err(CoreError::invalid(
            ErrorCode::InvalidMultisign,
            format!("multisign is 1 to {MAX_MULTISIGN}"),
        ));
    }
    Ok(())
}

fn check_description(d: &str) -> Result<()> {
    if d.chars().count() > 255 || d.chars().any(char::is_control) {
        return Err(CoreError::invalid(
            ErrorCode::InvalidDescription,
            "a description is at most 255 characters",
        ));
    }
    Ok(())
}

/// A new signer.
#[derive(Clone)]
pub struct NewSigner {
    /// Login name.
    pub username: String,
    /// Password.
    pub password: Zeroizing<String>,
    /// The person it is.
    pub person_id: Option<Uuid>,
    /// Description.
    pub description: String,
}

/// A change to a signer; absent fields stay.
#[derive(Clone, Default)]
pub struct SignerChange {
    /// New password.
    pub password: Option<Zeroizing<String>>,
    /// Enable or disable.
    pub enabled: Option<bool>,
    /// Person (`Some(None)` unlinks).
    pub person_id: Option<Option<Uuid>>,
    /// Description.
    pub description: Option<String>,
    /// Lift a login lockout and forget earlier wrong passwords (a new password does too).
    pub unlock: bool,
}

/// A new signing credential.
#[derive(Clone)]
pub struct NewCredential {
    /// The owner, by username.
    pub signer: String,
    /// Key algorithm: `p256`, `p384`, `rsa-2048`, `rsa-3072`.
    pub key_algorithm: KeyType,
    /// The PIN.
    pub pin: Zeroizing<String>,
    /// 1 or 2.
    pub scal: u8,
    /// Most signatures per authorization.
    pub multisign: u32,
    /// Description.
    pub description: String,
    /// Profile of its certificate (default `document-signing`).
    pub profile: Option<String>,
    /// Where its key is made and kept (default: the configured `pki.key_store`).
    pub key_store: Option<crate::signing::key_store::KeyStoreKind>,
}

/// A change to a credential; absent fields stay.
#[derive(Clone, Default)]
pub struct CredentialChange {
    /// Enable or disable.
    pub status: Option<CredentialStatus>,
    /// A new PIN (also unlocks).
    pub pin: Option<Zeroizing<String>>,
    /// Restore the PIN retries of a locked credential.
    pub unlock: bool,
    /// Most signatures per authorization.
    pub multisign: Option<u32>,
    /// Description.
    pub description: Option<String>,
}

/// Signer and credential operations.
pub struct SignerService {
    store: Arc<dyn Store>,
    clock: Arc<dyn Clock>,
    people: Arc<PeopleService>,
    certificates: Arc<CertificateService>,
    keys: Arc<dyn SigningKeys>,
    settings: CscSettings,
    cache: Arc<CscCache>,
    secrets: Arc<SecretGate>,
}

impl std::fmt::Debug for SignerService {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SignerService").finish_non_exhaustive()
    }
}

impl SignerService {
    /// Wires the service.
    pub fn new(
        store: Arc<dyn Store>,
        clock: Arc<dyn Clock>,
        people: Arc<PeopleService>,
        certificates: Arc<CertificateService>,
        keys: Arc<dyn SigningKeys>,
        settings: CscSettings,
    ) -> Self {
        let cache = Arc::new(CscCache::new(settings.cache_ttl));
        let secrets = Arc::new(SecretGate::new(settings.argon2_concurrency, settings.argon2_queue));
        Self { store, clock, people, certificates, keys, settings, cache, secrets }
    }

    /// Password and PIN hashing, bounded.
    pub fn secrets(&self) -> &Arc<SecretGate> {
        &self.secrets
    }

    /// The signing keys port (for the CSC service).
    pub fn keys(&self) -> Arc<dyn SigningKeys> {
        Arc::clone(&self.keys)
    }

    /// The CSC settings.
    pub fn settings(&self) -> CscSettings {
        self.settings
    }

    /// The token and credential cache shared with the CSC service.
    pub fn cache(&self) -> Arc<CscCache> {
        Arc::clone(&self.cache)
    }

    /// A signer by id.
    pub async fn signer(&self, id: Uuid) -> Result<Option<Signer>> {
        let body = self.store.record(Collection::Signers, &id.to_string()).await?;
        body.map(|b| Signer::from_body(&b)).transpose()
    }

    /// A signer by username.
    pub async fn signer_by_name(&self, username: &str) -> Result<Option<Signer>> {
        let username = Some(username.trim().to_lowercase());
        let filter = Filter::Signers { username, enabled: None, person_id: None };
        Ok(select::<Signer, _>(self.store.as_ref(), filter).await?.into_iter().next())
    }

    /// A credential by id.
    pub async fn credential(&self, id: Uuid) -> Result<Option<SigningCredential>> {
        let body = self.store.record(Collection::Credentials, &id.to_string()).await?;
        let c = body.map(|b| SigningCredential::from_body(&b)).transpose()?;
        match c {
            // A body copied into another row is not that row's credential.
            Some(c) if c.id != id => {
                Err(CoreError::Storage(format!("signing credential row {id} holds another id")))
            }
            c => Ok(c),
        }
    }

    /// The certificates of the CA back end that issued `cert`, DER: its issuing CA certificate
    /// first, then the chain above it.
    pub fn ca_chain(&self, cert: &Certificate) -> Result<Vec<Vec<u8>>> {
        let issuer = self.certificates.issuers().get(&cert.ca_id)?;
        let mut chain = vec![issuer.ca_certificate().to_vec()];
        chain.extend(issuer.chain().iter().cloned());
        Ok(chain)
    }

    /// The certificate of credential `c` (none if it has gone from the inventory).
    pub async fn certificate_of(&self, c: &SigningCredential) -> Result<Option<Certificate>> {
        Ok(self.store.certificate(c.certificate_id).await?)
    }

    /// A signer's credentials.
    pub async fn credentials_of(&self, signer: Uuid) -> Result<Vec<SigningCredential>> {
        select(self.store.as_ref(), Filter::Credentials { signer_id: Some(signer), status: None })
            .await
    }

    /// A signer's person must be one the caller sees; a caller with a restricted scope must
    /// name one (a signer of no person is visible to unrestricted callers only).
    async fn check_person(&self, p: &Principal, person: Option<Uuid>) -> Result<()> {
        match person {
            Some(id) => {
                self.people.visible(p, id).await.map_err(|_| {
                    CoreError::invalid(ErrorCode::UnknownPerson, format!("no person {id}"))
                })?;
            }
            None if !p.scope.is_all() => {
                return Err(CoreError::invalid(
                    ErrorCode::MissingField,
                    "`person_id` is required for a caller with a restricted scope",
                ));
            }
            None => {}
        }
        Ok(())
    }

    /// Whether `p` sees signer `s`: the visibility rule of signers is their person's (a signer
    /// of no person is seen by unrestricted callers only).
    async fn sees_signer(&self, p: &Principal, s: &Signer) -> Result<bool> {
        if p.scope.is_all() {
            return Ok(true);
        }
        let Some(person) = s.person_id else { return Ok(false) };
        match self.people.visible(p, person).await {
            Ok(_) => Ok(true),
            Err(CoreError::NotFound { .. }) => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// A signer `p` sees, or 404.
    async fn visible_signer(&self, p: &Principal, id: Uuid) -> Result<Signer> {
        match self.signer(id).await? {
            Some(s) if self.sees_signer(p, &s).await? => Ok(s),
            _ => Err(CoreError::not_found("signer", id.to_string())),
        }
    }

    /// A credential `p` sees (its signer's rule), or 404.
    async fn visible_credential(&self, p: &Principal, id: Uuid) -> Result<SigningCredential> {
        let c = self.credential(id).await?;
        if let Some(c) = c
            && let Some(s) = self.signer(c.signer_id).await?
            && self.sees_signer(p, &s).await?
        {
            return Ok(c);
        }
        Err(CoreError::not_found("signing_credential", id.to_string()))
    }

    /// A page of the rows `filter` selects whose signer (`signer_of`) `p` sees. For a restricted
    /// caller, reads pages until one is full of rows passing the signers' visibility rule.
    async fn scoped_page<R: Record>(
        &self,
        p: &Principal,
        filter: Filter,
        page: PageRequest,
        signer_of: fn(&R) -> Uuid,
    ) -> Result<Page<R>> {
        if p.scope.is_all() {
            return record_page(self.store.as_ref(), filter, page).await;
        }
        let mut out = Vec::new();
        let mut after = page.after.clone();
        loop {
            let batch: Page<R> = record_page(
                self.store.as_ref(),
                filter.clone(),
                PageRequest { after: after.clone(), limit: 200 },
            )
            .await?;
            for r in batch.items {
                let seen = match self.signer(signer_of(&r)).await? {
                    Some(s) => self.sees_signer(p, &s).await?,
                    None => false,
                };
                if seen {
                    out.push(r);
                }
            }
            after = batch.next_cursor;
            if after.is_none() || out.len() > page.limit as usize {
                break;
            }
        }
        Ok(crate::page::paginate(out, page.limit, |r| r.key()))
    }

    /// Creates a signer.
    pub async fn create_signer(
        &self,
        cap: &Capability<perm::SignersWrite>,
        n: NewSigner,
    ) -> Result<Signer> {
        let username = check_username(&n.username)?;
        check_password(&n.password)?;
        check_description(&n.description)?;
        self.check_person(cap.principal(), n.person_id).await?;
        let now = self.clock.now();
        let s = Signer {
            id: Uuid::now_v7(),
            username,
            person_id: n.person_id,
            password_hash: self.secrets.hash(n.password).await?,
            enabled: true,
            description: n.description,
            created_at: now,
            updated_at: now,
            failed_logins: 0,
            locked_until: None,
        };
        let mut tx = self.store.begin().await?;
        tx.insert_record(s.row()).await.map_err(conflict_as(
            ErrorCode::UsernameTaken,
            format!("a signer `{}` exists", s.username),
        ))?;
        let ev = NewAuditEvent::new(cap.principal(), AuditAction::SignerCreate, "signer", s.id)
            .details(serde_json::json!({"username": s.username, "person_id": s.person_id}));
        tx.commit(vec![ev], now).await?;
        Ok(s)
    }

    /// A page of signers.
    pub async fn list_signers(
        &self,
        cap: &Capability<perm::SignersRead>,
        enabled: Option<bool>,
        person_id: Option<Uuid>,
        page: PageRequest,
    ) -> Result<Page<Signer>> {
        let filter = Filter::Signers { username: None, enabled, person_id };
        self.scoped_page(cap.principal(), filter, page, |s: &Signer| s.id).await
    }

    /// One signer, or 404 (also outside the caller's scope).
    pub async fn get_signer(
        &self,
        cap: &Capability<perm::SignersRead>,
        id: Uuid,
    ) -> Result<Signer> {
        self.visible_signer(cap.principal(), id).await
    }

    /// Changes a signer the caller sees. A new password or a disable ends the signer's CSC
    /// tokens and SADs in the same transaction (on every node: SADs are spent in the database,
    /// and authorizing a SAD checks the token there).
    pub async fn update_signer(
        &self,
        cap: &Capability<perm::SignersWrite>,
        id: Uuid,
        c: SignerChange,
    ) -> Result<Signer> {
        let before = self.visible_signer(cap.principal(), id).await?;
        let mut s = before.clone();
        let mut fields = Vec::new();
        if let Some(p) = c.password {
            check_password(&p)?;
            s.password_hash = self.secrets.hash(p).await?;
            fields.push("password");
        }
        if (c.unlock || fields.contains(&"password"))
            && (s.failed_logins != 0 || s.locked_until.is_some())
        {
            s.failed_logins = 0;
            s.locked_until = None;
            fields.push("unlock");
        }
        if let Some(e) = c.enabled
            && e != s.enabled
        {
            s.enabled = e;
            fields.push("enabled");
        }
        if let Some(p) = c.person_id
            && p != s.person_id
        {
            self.check_person(cap.principal(), p).await?;
            s.person_id = p;
            fields.push("person_id");
        }
        if let Some(d) = c.description
            && d != s.description
        {
            check_description(&d)?;
            s.description = d;
            fields.push("description");
        }
        if fields.is_empty() {
            return Ok(before);
        }
        let now = self.clock.now();
        s.updated_at = now;
        let mut tx = self.store.begin().await?;
        lock_unchanged(tx.as_mut(), &before, "signer").await?;
        tx.update_record(s.row()).await?;
        let ends_sessions = fields.contains(&"password") || (before.enabled && !s.enabled);
        let ended = if ends_sessions { tx.end_csc_sessions(id).await? } else { 0 };
        let ev = NewAuditEvent::new(cap.principal(), AuditAction::SignerUpdate, "signer", id).details(
            serde_json::json!({"fields": fields, "enabled": s.enabled, "sessions_ended": ended}),
        );
        tx.commit(vec![ev], now).await?;
        self.cache.forget_signer(id);
        Ok(s)
    }

    /// Creates a credential: a new key, its certificate from Sigil's CA path, a hashed PIN.
    pub async fn create_credential(
        &self,
        cap: &Capability<perm::SignersWrite>,
        n: NewCredential,
    ) -> Result<(SigningCredential, Certificate)> {
        let p = cap.principal();
        let unknown = || {
            CoreError::invalid(ErrorCode::UnknownSigner, format!("no signer `{}`", n.signer.trim()))
        };
        let signer = self.signer_by_name(&n.signer).await?.ok_or_else(unknown)?;
        if !self.sees_signer(p, &signer).await? {
            return Err(unknown());
        }
        // `signers:write` issues document-signing certificates only; another profile needs the
        // caller's own `certificate:issue` (the service acts with no more than the caller).
        let profile = n.profile.clone().unwrap_or_else(|| SIGNING_PROFILE.to_owned());
        if profile != SIGNING_PROFILE && !p.permissions.allows(perm::CertificateIssue::NAME) {
            return Err(CoreError::Forbidden {
                code: ErrorCode::PermissionDenied,
                detail: format!(
                    "a credential under profile `{profile}` needs `certificate:issue`; \
                     `signers:write` issues `{SIGNING_PROFILE}` certificates only"
                ),
            });
        }
        // A signing key's certificate must say it is for signing (RFC 9336 documentSigning or
        // emailProtection) and never for TLS: a credential cannot be used to mint a TLS identity.
        let found = self.certificates.profiles().find(&profile).await?;
        let spec = &found.spec;
        // Compared as OIDs, so a dotted spelling of a TLS purpose (or anyExtendedKeyUsage)
        // counts as what it is.
        let eku: Vec<String> = spec
            .extended_key_usage
            .iter()
            .map(|e| crate::certs::profile::conformance::eku_oid(e))
            .collect();
        let has = |oid: &str| eku.iter().any(|e| e == oid);
        let signing = has(crate::certs::profile::DOCUMENT_SIGNING_OID) || has("1.3.6.1.5.5.7.3.4");
        let tls_or_any = has("1.3.6.1.5.5.7.3.1") || has("1.3.6.1.5.5.7.3.2") || has("2.5.29.37.0");
        if !signing || tls_or_any {
            return Err(CoreError::invalid(
                ErrorCode::ProfileNotForSigning,
                format!(
                    "profile `{profile}` is not a signing profile: its extended key usage must \
                     include documentSigning or emailProtection and not serverAuth or clientAuth"
                ),
            ));
        }
        if !matches!(
            n.key_algorithm,
            KeyType::P256 | KeyType::P384 | KeyType::Rsa2048 | KeyType::Rsa3072
        ) {
            return Err(CoreError::invalid(
                ErrorCode::InvalidKeyAlgorithm,
                "key_algorithm is p256, p384, rsa-2048 or rsa-3072",
            ));
        }
        check_pin(&n.pin)?;
        check_description(&n.description)?;
        if !matches!(n.scal, 1 | 2) {
            return Err(CoreError::invalid(ErrorCode::InvalidScal, "scal is 1 or 2"));
        }
        check_multisign(n.multisign)?;
        let (cn, office) = match signer.person_id {
            Some(pid) => {
                let person = self.people.visible(p, pid).await?;
                (format!("{} {}", person.given_name, person.family_name), Some(person.office_id))
            }
            None => (signer.username.clone(), None),
        };
        let pin_numeric = n.pin.bytes().all(|b| b.is_ascii_digit());
        let pin_hash = self.secrets.hash(n.pin).await?;
        let id = Uuid::now_v7();
        let (sealed_key, csr) =
            self.keys.generate(id, n.key_algorithm, cn.trim(), n.key_store).await?;
        let issuer = p.acting_with(["certificate:issue"])?;
        let issued = match issuer.authorize::<perm::CertificateIssue>() {
            Ok(cap) => {
                self.certificates
                    .issue(
                        &cap,
                        IssueRequest {
                            csr,
                            profile,
                            metadata: Some(serde_json::json!({
                                "signing_credential_id": id, "signer": signer.username,
                            })),
                            office_id: office,
                        },
                    )
                    .await
            }
            Err(e) => Err(e),
        };
        let cert = match issued {
            Ok(cert) => cert,
            Err(e) => {
                self.keys.discard(&sealed_key).await;
                return Err(e);
            }
        };
        let now = self.clock.now();
        let c = SigningCredential {
            id,
            signer_id: signer.id,
            certificate_id: cert.id,
            key_algorithm: n.key_algorithm,
            sealed_key,
            pin_hash,
            pin_retries_left: self.settings.pin_retries,
            pin_numeric,
            scal: n.scal,
            multisign: n.multisign,
            status: CredentialStatus::Enabled,
            description: n.description,
            created_at: now,
            updated_at: now,
        };
        let ev =
            NewAuditEvent::new(p, AuditAction::SigningCredentialCreate, "signing_credential", id)
                .details(serde_json::json!({
                    "signer": signer.username, "key_algorithm": c.key_algorithm, "scal": c.scal,
                    "multisign": c.multisign, "certificate_id": cert.id, "serial": cert.serial,
                    "key_store": crate::signing::key_store::KeyStoreKind::of_stored(&c.sealed_key),
                }));
        if let Err(e) = self.insert_credential(&c, ev).await {
            self.withdraw(p, &cert).await;
            self.keys.discard(&c.sealed_key).await;
            return Err(e);
        }
        Ok((c, cert))
    }

    async fn insert_credential(&self, c: &SigningCredential, ev: NewAuditEvent) -> Result<()> {
        let mut tx = self.store.begin().await?;
        tx.insert_record(c.row()).await?;
        tx.commit(vec![ev], c.created_at).await?;
        Ok(())
    }

    /// Revokes (cessationOfOperation) the certificate of a credential that could not be stored,
    /// so that no valid certificate is left whose key nobody holds. Best effort: the
    /// credential's own error is what the caller sees.
    async fn withdraw(&self, p: &Arc<Principal>, cert: &Certificate) {
        let revoked = match p
            .acting_with(["certificate:revoke"])
            .and_then(|r| r.authorize::<perm::CertificateRevoke>())
        {
            Ok(cap) => {
                self.certificates
                    .revoke(&cap, cert.id, RevocationReason::CessationOfOperation)
                    .await
            }
            Err(e) => Err(e),
        };
        if let Err(e) = revoked {
            tracing::error!(certificate = %cert.id, error = %e,
                "a signing credential was not stored and its certificate could not be revoked");
        }
    }

    /// A page of credentials.
    pub async fn list_credentials(
        &self,
        cap: &Capability<perm::SignersRead>,
        signer_id: Option<Uuid>,
        status: Option<CredentialStatus>,
        page: PageRequest,
    ) -> Result<Page<SigningCredential>> {
        let filter = Filter::Credentials { signer_id, status };
        self.scoped_page(cap.principal(), filter, page, |c: &SigningCredential| c.signer_id).await
    }

    /// One credential, or 404 (also outside the caller's scope).
    pub async fn get_credential(
        &self,
        cap: &Capability<perm::SignersRead>,
        id: Uuid,
    ) -> Result<SigningCredential> {
        self.visible_credential(cap.principal(), id).await
    }

    /// Enables or disables a credential, sets a new PIN, unlocks it, changes its limits.
    pub async fn update_credential(
        &self,
        cap: &Capability<perm::SignersWrite>,
        id: Uuid,
        ch: CredentialChange,
    ) -> Result<SigningCredential> {
        let before = self.visible_credential(cap.principal(), id).await?;
        let mut c = before.clone();
        let mut fields = Vec::new();
        if let Some(s) = ch.status
            && s != c.status
        {
            c.status = s;
            fields.push("status");
        }
        if let Some(pin) = ch.pin {
            check_pin(&pin)?;
            c.pin_numeric = pin.bytes().all(|b| b.is_ascii_digit());
            c.pin_hash = self.secrets.hash(pin).await?;
            c.pin_retries_left = self.settings.pin_retries;
            fields.push("pin");
        }
        if ch.unlock && c.pin_retries_left != self.settings.pin_retries {
            c.pin_retries_left = self.settings.pin_retries;
            fields.push("pin_retries_left");
        }
        if let Some(m) = ch.multisign
            && m != c.multisign
        {
            check_multisign(m)?;
            c.multisign = m;
            fields.push("multisign");
        }
        if let Some(d) = ch.description
            && d != c.description
        {
            check_description(&d)?;
            c.description = d;
            fields.push("description");
        }
        if fields.is_empty() {
            return Ok(before);
        }
        let now = self.clock.now();
        c.updated_at = now;
        let mut tx = self.store.begin().await?;
        lock_unchanged(tx.as_mut(), &before, "signing_credential").await?;
        tx.update_record(c.row()).await?;
        let ev = NewAuditEvent::new(
            cap.principal(),
            AuditAction::SigningCredentialUpdate,
            "signing_credential",
            id,
        )
        .details(serde_json::json!({"fields": fields, "status": c.status}));
        tx.commit(vec![ev], now).await?;
        self.cache.forget_credential(id);
        Ok(c)
    }
}
