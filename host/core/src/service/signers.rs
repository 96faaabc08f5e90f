//! Signers (CSC users) and their signing credentials.
//!
//! A credential's certificate is issued through Sigil's own certificate path (profile
//! `document-signing` unless another is named), so it is in the inventory, the audit trail, and
//! in CRL and OCSP once revoked. Passwords and PINs are kept as Argon2id hashes only; neither
//! reaches the audit trail.

use std::sync::Arc;

use argon2::password_hash::{PasswordHash, SaltString};
use uuid::Uuid;
use zeroize::Zeroizing;

use crate::audit::NewAuditEvent;
use crate::authz::{Capability, Permission, Principal, perm};
use crate::cert::{Certificate, KeyType, RevocationReason};
use crate::csc::{
    CREDENTIALS, CredentialStatus, CscSettings, SIGNERS, Signer, SigningCredential, SigningKeys,
};
use crate::error::{CoreError, Result};
use crate::ports::{Clock, PageRequest, Store};
use crate::records::{Cond, Record, RecordQuery, conflict_as, decode_all};
use crate::service::certificates::{CertificateService, IssueRequest};
use crate::service::csc::CscCache;
use crate::service::people::PeopleService;
use crate::service::{Page, lock_unchanged, record_page};

/// Largest `multisign`.
pub const MAX_MULTISIGN: u32 = 1000;
/// The profile credential certificates are issued under by default.
pub const SIGNING_PROFILE: &str = "document-signing";

/// Argon2id hashing and verification of passwords and PINs, with a bound on how many run at once.
///
/// Each one takes about 19 MiB and tens of milliseconds of a core on purpose, and `auth/login` is
/// unauthenticated: without a bound, a burst of anonymous logins takes the server's memory and
/// CPU. At most `concurrency` run at once, on as many threads of their own (so the allocator
/// keeps no more than that many 19 MiB arenas), and at most `queue` wait (for at most
/// [`SecretGate::MAX_WAIT`]); anything beyond is shed at once with 503 and `Retry-After`.
pub struct SecretGate {
    slots: Arc<tokio::sync::Semaphore>,
    waiting: std::sync::atomic::AtomicUsize,
    queue: usize,
    jobs: std::sync::mpsc::Sender<Job>,
}

/// A place on a hashing thread. It goes with the job, so a job whose request was dropped still
/// holds its place until it has run: abandoned requests cannot pile up work beyond the bound.
#[derive(Debug)]
pub struct Slot {
    // Held, never read: dropping it gives the place back.
    _permit: tokio::sync::OwnedSemaphorePermit,
}

/// What an unknown, disabled or locked-out signer's password is checked against: Argon2id with
/// the default parameters and an output nothing hashes to, so the refusal costs what a wrong
/// password costs.
const DUMMY_HASH: &str = "$argon2id$v=19$m=19456,t=2,p=1$c2lnaWwtZHVtbXktc2FsdA$\
                          AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA";

/// A job gets its thread's Argon2 memory, allocated once and reused, so hashing never makes
/// the allocator hold more than `concurrency` blocks of 19 MiB.
type Job = Box<dyn FnOnce(&mut Vec<argon2::Block>) + Send>;

impl std::fmt::Debug for SecretGate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SecretGate").field("queue", &self.queue).finish_non_exhaustive()
    }
}

/// The first `n` blocks of a thread's Argon2 memory, grown (once) when a hash needs more. The
/// blocks are overwritten by every hash, so nothing of one secret is left for the next.
fn blocks(memory: &mut Vec<argon2::Block>, n: usize) -> &mut [argon2::Block] {
    if memory.len() < n {
        memory.resize(n, argon2::Block::default());
    }
    &mut memory[..n]
}

/// Counts a waiter for as long as it waits (also when its request is dropped).
struct Waiting<'a>(&'a std::sync::atomic::AtomicUsize);

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, std::sync::atomic::Ordering::SeqCst);
    }
}

impl SecretGate {
    /// Longest wait for a slot before the call is shed.
    pub const MAX_WAIT: std::time::Duration = std::time::Duration::from_secs(2);

    /// At most `concurrency` (at least 1) hashes at once, `queue` waiting.
    pub fn new(concurrency: usize, queue: usize) -> Self {
        let concurrency = concurrency.max(1);
        let (jobs, rx) = std::sync::mpsc::channel::<Job>();
        let rx = Arc::new(std::sync::Mutex::new(rx));
        for i in 0..concurrency {
            let rx = Arc::clone(&rx);
            let spawned =
                std::thread::Builder::new().name(format!("argon2-{i}")).spawn(move || {
                    let mut memory: Vec<argon2::Block> = Vec::new();
                    loop {
                        // The lock is held only while waiting for the next job.
                        let job = match rx.lock() {
                            Ok(r) => r.recv(),
                            Err(_) => return,
                        };
                        match job {
                            Ok(job) => job(&mut memory),
                            Err(_) => return, // the gate was dropped
                        }
                    }
                });
            if let Err(e) = spawned {
                tracing::error!(error = %e, "could not start a password hashing thread");
            }
        }
        Self {
            slots: Arc::new(tokio::sync::Semaphore::new(concurrency)),
            waiting: std::sync::atomic::AtomicUsize::new(0),
            queue,
            jobs,
        }
    }

    /// Runs `f` on a hashing thread in `slot`.
    async fn run<T: Send + 'static>(
        &self,
        slot: Slot,
        f: impl FnOnce(&mut Vec<argon2::Block>) -> Result<T> + Send + 'static,
    ) -> Result<T> {
        let (tx, rx) = tokio::sync::oneshot::channel();
        let job: Job = Box::new(move |memory| {
            let _ = tx.send(f(memory));
            drop(slot);
        });
        self.jobs
            .send(job)
            .map_err(|_| CoreError::Internal("the password hashing threads are gone".into()))?;
        rx.await.map_err(|_| CoreError::Internal("a password hashing job was lost".into()))?
    }

    fn busy() -> CoreError {
        CoreError::Busy { retry_after_secs: 1 }
    }

    /// A place on a hashing thread: at once, after a bounded wait, or 503 `server_busy`.
    pub async fn slot(&self) -> Result<Slot> {
        if let Ok(p) = Arc::clone(&self.slots).try_acquire_owned() {
            return Ok(Slot { _permit: p });
        }
        use std::sync::atomic::Ordering::SeqCst;
        if self.waiting.fetch_add(1, SeqCst) >= self.queue {
            self.waiting.fetch_sub(1, SeqCst);
            return Err(Self::busy());
        }
        let _waiting = Waiting(&self.waiting);
        match tokio::time::timeout(Self::MAX_WAIT, Arc::clone(&self.slots).acquire_owned()).await {
            Ok(Ok(p)) => Ok(Slot { _permit: p }),
            _ => Err(Self::busy()),
        }
    }

    /// Hashes a password or PIN (off the async threads: it is slow on purpose).
    pub async fn hash(&self, secret: Zeroizing<String>) -> Result<String> {
        let slot = self.slot().await?;
        self.run(slot, move |memory| {
            let fail =
                |e: &dyn std::fmt::Display| CoreError::Internal(format!("hashing a secret: {e}"));
            let salt = SaltString::generate(&mut argon2::password_hash::rand_core::OsRng);
            let a = argon2::Argon2::default();
            let params = a.params().clone();
            let mut salt_buf = [0u8; 64];
            let salt_bytes = salt.decode_b64(&mut salt_buf).map_err(|e| fail(&e))?;
            let len = params.output_len().unwrap_or(argon2::Params::DEFAULT_OUTPUT_LEN);
            let output = argon2::password_hash::Output::init_with(len, |out| {
                a.hash_password_into_with_memory(
                    secret.as_bytes(),
                    salt_bytes,
                    out,
                    blocks(memory, params.block_count()),
                )
                .map_err(|_| argon2::password_hash::Error::Crypto)
            })
            .map_err(|e| fail(&e))?;
            let phc = PasswordHash {
                algorithm: argon2::Algorithm::Argon2id.ident(),
                version: Some(argon2::Version::V0x13.into()),
                params: (&params).try_into().map_err(|e| fail(&e))?,
                salt: Some(salt.as_salt()),
                hash: Some(output),
            };
            Ok(phc.to_string())
        })
        .await
    }

    /// Whether `secret` matches the Argon2id `hash`.
    pub async fn verify(&self, secret: Zeroizing<String>, hash: String) -> Result<bool> {
        let slot = self.slot().await?;
        self.verify_in(slot, secret, hash).await
    }

    /// [`SecretGate::verify`] in a slot taken earlier.
    pub async fn verify_in(
        &self,
        slot: Slot,
        secret: Zeroizing<String>,
        hash: String,
    ) -> Result<bool> {
        self.run(slot, move |memory| {
            let corrupt =
                |e: &dyn std::fmt::Display| CoreError::Storage(format!("corrupt secret hash: {e}"));
            let parsed = PasswordHash::new(&hash).map_err(|e| corrupt(&e))?;
            let algorithm =
                argon2::Algorithm::try_from(parsed.algorithm).map_err(|e| corrupt(&e))?;
            let version = argon2::Version::try_from(parsed.version.unwrap_or(0x13))
                .map_err(|e| corrupt(&e))?;
            let params = argon2::Params::try_from(&parsed).map_err(|e| corrupt(&e))?;
            let (Some(salt), Some(expected)) = (parsed.salt, parsed.hash) else {
                return Err(corrupt(&"no salt or no hash"));
            };
            let mut salt_buf = [0u8; 64];
            let salt_bytes = salt.decode_b64(&mut salt_buf).map_err(|e| corrupt(&e))?;
            let a = argon2::Argon2::new(algorithm, version, params.clone());
            let computed = argon2::password_hash::Output::init_with(expected.len(), |out| {
                a.hash_password_into_with_memory(
                    secret.as_bytes(),
                    salt_bytes,
                    out,
                    blocks(memory, params.block_count()),
                )
                .map_err(|_| argon2::password_hash::Error::Crypto)
            })
            .map_err(|e| corrupt(&e))?;
            // `Output`'s equality is constant-time.
            Ok(computed == expected)
        })
        .await
    }

    /// Spends the time of one verification and answers `false`: a login for an unknown,
    /// disabled or locked-out signer then takes as long as a wrong password, so that timing does
    /// not tell which usernames exist.
    pub async fn verify_nothing(&self, slot: Slot, secret: Zeroizing<String>) -> Result<bool> {
        self.verify_in(slot, secret, DUMMY_HASH.to_owned()).await.map(|_| false)
    }
}

fn check_username(u: &str) -> Result<String> {
    let u = u.trim().to_lowercase();
    let ok = (1..=64).contains(&u.len())
        && u.chars().all(|c| c.is_ascii_alphanumeric() || "._@-".contains(c));
    if !ok {
        return Err(CoreError::invalid(
            "invalid_username",
            "a username is 1 to 64 letters, digits, `.`, `_`, `@` or `-`",
        ));
    }
    Ok(u)
}

fn check_password(p: &str) -> Result<()> {
    if !(8..=1024).contains(&p.chars().count()) {
        return Err(CoreError::invalid("invalid_password", "a password is 8 to 1024 characters"));
    }
    Ok(())
}

fn check_pin(p: &str) -> Result<()> {
    if !(4..=64).contains(&p.len()) || !p.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(CoreError::invalid(
            "invalid_pin",
            "a PIN is 4 to 64 printable ASCII characters",
        ));
    }
    Ok(())
}

fn check_multisign(m: u32) -> Result<()> {
    if !(1..=MAX_MULTISIGN).contains(&m) {
        return Err(CoreError::invalid(
            "invalid_multisign",
            format!("multisign is 1 to {MAX_MULTISIGN}"),
        ));
    }
    Ok(())
}

fn check_description(d: &str) -> Result<()> {
    if d.chars().count() > 255 || d.chars().any(char::is_control) {
        return Err(CoreError::invalid(
            "invalid_description",
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
        let body = self.store.record(&SIGNERS, &id.to_string()).await?;
        body.map(|b| Signer::from_body(&b)).transpose()
    }

    /// A signer by username.
    pub async fn signer_by_name(&self, username: &str) -> Result<Option<Signer>> {
        let q = RecordQuery::all(vec![Cond::Eq("username", username.trim().to_lowercase().into())]);
        Ok(decode_all::<Signer>(self.store.records(&SIGNERS, &q).await?)?.into_iter().next())
    }

    /// A credential by id.
    pub async fn credential(&self, id: Uuid) -> Result<Option<SigningCredential>> {
        let body = self.store.record(&CREDENTIALS, &id.to_string()).await?;
        body.map(|b| SigningCredential::from_body(&b)).transpose()
    }

    /// The certificate of credential `c` (none if it has gone from the inventory).
    pub async fn certificate_of(&self, c: &SigningCredential) -> Result<Option<Certificate>> {
        Ok(self.store.certificate(c.certificate_id).await?)
    }

    /// A signer's credentials.
    pub async fn credentials_of(&self, signer: Uuid) -> Result<Vec<SigningCredential>> {
        let q = RecordQuery::all(vec![Cond::Eq("signer_id", signer.into())]);
        decode_all(self.store.records(&CREDENTIALS, &q).await?)
    }

    /// A signer's person must be one the caller sees; a caller with a restricted scope must
    /// name one (a signer of no person is visible to unrestricted callers only).
    async fn check_person(&self, p: &Principal, person: Option<Uuid>) -> Result<()> {
        match person {
            Some(id) => {
                self.people
                    .visible(p, id)
                    .await
                    .map_err(|_| CoreError::invalid("unknown_person", format!("no person {id}")))?;
            }
            None if !p.scope.is_all() => {
                return Err(CoreError::invalid(
                    "missing_field",
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

    /// Reads pages until one is full of rows whose signer (`signer_of`) `p` sees: a
    /// restricted caller's list, filtered by the signers' visibility rule.
    async fn scoped_page<R: Record>(
        &self,
        p: &Principal,
        conds: Vec<Cond>,
        page: PageRequest,
        signer_of: fn(&R) -> Uuid,
    ) -> Result<Page<R>> {
        let mut out = Vec::new();
        let mut after = page.after.clone();
        loop {
            let batch: Page<R> = record_page(
                self.store.as_ref(),
                conds.clone(),
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
        Ok(crate::service::paginate(out, page.limit, |r| r.id().to_string()))
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
        tx.insert_record(&SIGNERS, &s.to_row()?)
            .await
            .map_err(conflict_as("username_taken", format!("a signer `{}` exists", s.username)))?;
        let ev = NewAuditEvent::new(cap.principal(), "signer.create", "signer", s.id)
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
        let mut conds = Vec::new();
        if let Some(e) = enabled {
            conds.push(Cond::Eq("enabled", e.into()));
        }
        if let Some(p) = person_id {
            conds.push(Cond::Eq("person_id", p.into()));
        }
        let p = cap.principal();
        if p.scope.is_all() {
            return record_page(self.store.as_ref(), conds, page).await;
        }
        self.scoped_page(p, conds, page, |s: &Signer| s.id).await
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
        tx.update_record(&SIGNERS, &s.to_row()?).await?;
        let ends_sessions = fields.contains(&"password") || (before.enabled && !s.enabled);
        let ended = if ends_sessions { tx.end_csc_sessions(id).await? } else { 0 };
        let ev = NewAuditEvent::new(cap.principal(), "signer.update", "signer", id).details(
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
        let unknown =
            || CoreError::invalid("unknown_signer", format!("no signer `{}`", n.signer.trim()));
        let signer = self.signer_by_name(&n.signer).await?.ok_or_else(unknown)?;
        if !self.sees_signer(p, &signer).await? {
            return Err(unknown());
        }
        // `signers:write` issues document-signing certificates only; another profile needs the
        // caller's own `certificate:issue` (the service acts with no more than the caller).
        let profile = n.profile.clone().unwrap_or_else(|| SIGNING_PROFILE.to_owned());
        if profile != SIGNING_PROFILE && !p.permissions.allows(perm::CertificateIssue::NAME) {
            return Err(CoreError::Forbidden {
                code: "permission_denied",
                detail: format!(
                    "a credential under profile `{profile}` needs `certificate:issue`; \
                     `signers:write` issues `{SIGNING_PROFILE}` certificates only"
                ),
            });
        }
        if !matches!(
            n.key_algorithm,
            KeyType::P256 | KeyType::P384 | KeyType::Rsa2048 | KeyType::Rsa3072
        ) {
            return Err(CoreError::invalid(
                "invalid_key_algorithm",
                "key_algorithm is p256, p384, rsa-2048 or rsa-3072",
            ));
        }
        check_pin(&n.pin)?;
        check_description(&n.description)?;
        if !matches!(n.scal, 1 | 2) {
            return Err(CoreError::invalid("invalid_scal", "scal is 1 or 2"));
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
        let (sealed_key, csr) = self.keys.generate(n.key_algorithm, cn.trim()).await?;
        let id = Uuid::now_v7();
        let issuer = p.acting_with(["certificate:issue"])?;
        let cert = self
            .certificates
            .issue(
                &issuer.authorize::<perm::CertificateIssue>()?,
                IssueRequest {
                    csr,
                    profile,
                    metadata: Some(serde_json::json!({
                        "signing_credential_id": id, "signer": signer.username,
                    })),
                    office_id: office,
                },
            )
            .await?;
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
        let ev = NewAuditEvent::new(p, "signing_credential.create", "signing_credential", id)
            .details(serde_json::json!({
                "signer": signer.username, "key_algorithm": c.key_algorithm, "scal": c.scal,
                "multisign": c.multisign, "certificate_id": cert.id, "serial": cert.serial,
            }));
        if let Err(e) = self.insert_credential(&c, ev).await {
            self.withdraw(p, &cert).await;
            return Err(e);
        }
        Ok((c, cert))
    }

    async fn insert_credential(&self, c: &SigningCredential, ev: NewAuditEvent) -> Result<()> {
        let mut tx = self.store.begin().await?;
        tx.insert_record(&CREDENTIALS, &c.to_row()?).await?;
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
        let mut conds = Vec::new();
        if let Some(s) = signer_id {
            conds.push(Cond::Eq("signer_id", s.into()));
        }
        if let Some(s) = status {
            conds.push(Cond::Eq("status", s.as_str().into()));
        }
        let p = cap.principal();
        if p.scope.is_all() {
            return record_page(self.store.as_ref(), conds, page).await;
        }
        self.scoped_page(p, conds, page, |c: &SigningCredential| c.signer_id).await
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
        tx.update_record(&CREDENTIALS, &c.to_row()?).await?;
        let ev = NewAuditEvent::new(
            cap.principal(),
            "signing_credential.update",
            "signing_credential",
            id,
        )
        .details(serde_json::json!({"fields": fields, "status": c.status}));
        tx.commit(vec![ev], now).await?;
        self.cache.forget_credential(id);
        Ok(c)
    }
}
