//! The CSC protocol operations, independent of API version: login and tokens, credential
//! listing and description, authorization (SAD) and signHash.
//!
//! Errors are `CoreError`s carrying the CSC codes the API layer puts on the wire per version:
//! `Invalid` with `invalid_request`, `invalid_pin` (v2: `invalid_authentication_data`) or
//! `authentication_error`, and `Unauthenticated` for bearer tokens (401 `invalid_token`, or
//! `expired_token` for [`AuthFailure::Expired`]).
//!
//! signHash is the hot path: the bearer token and the credential come from short-lived caches
//! (bounded by [`CscSettings::cache_ttl`], dropped at once on this node when they change), and
//! the SAD is spent in the same group-committed unit as the signing's audit event, so that a
//! signature never leaves without its audit record and a SAD never signs more than it allows.

use crate::ErrorCode;
use crate::audit::AuditAction;
use std::sync::Arc;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use sha2::{Digest, Sha256};
use time::format_description::well_known::Rfc3339;
use time::{Duration, OffsetDateTime};
use uuid::Uuid;
use zeroize::Zeroizing;

use crate::access::api_key::{RateLimit, RateUnit};
use crate::access::api_keys::throttle;
use crate::access::authz::{ActorKind, PermissionSet, Principal, RequestContext};
use crate::audit::refusals::Refusals;
use crate::audit::trail::write_refusals;
use crate::audit::{NewAuditEvent, unix_micros};
use crate::certs::{CertStatus, Certificate, KeyType};
use crate::error::{AuthFailure, CoreError, Result, StoreError};
use crate::ports::{Clock, Store, WriteOp};
use crate::records::{Collection, Filter, Record, RecordQuery};
use crate::signing::cache::CscCache;
use crate::signing::credential::{
    CredentialKey, CredentialStatus, CscSettings, CscToken, HashAlgo, Sad, SadUse, SignFamily,
    SignScheme, Signer, SigningCredential, SigningKeys, sign_algo,
};
use crate::signing::signers::SignerService;

mod login;

/// Most hashes in one authorize or signHash.
pub const MAX_HASHES: usize = 1000;

/// A logged-in signer.
#[derive(Debug, Clone)]
pub struct Session {
    /// The signer.
    pub signer: Arc<Signer>,
    /// Who to audit.
    pub principal: Arc<Principal>,
    /// The access token's id (the digest of its secret): authorizing a SAD checks, in its
    /// transaction, that the token still exists, so a token ended on another node (password
    /// change, disable, lockout) cannot authorize signatures from a cache.
    token_id: String,
}

/// Tokens `auth/login` hands out.
#[derive(Debug)]
pub struct Login {
    /// The bearer access token.
    pub access_token: Zeroizing<String>,
    /// With rememberMe.
    pub refresh_token: Option<Zeroizing<String>>,
    /// Seconds.
    pub expires_in: i64,
}

/// What `credentials/authorize` asks for.
#[derive(Debug, Clone)]
pub struct Authorize {
    /// The credential.
    pub credential_id: String,
    /// Signatures to allow.
    pub num_signatures: u32,
    /// The digests to bind the SAD to (required for SCAL 2), raw.
    pub hashes: Option<Vec<Vec<u8>>>,
    /// The PIN.
    pub pin: Option<Zeroizing<String>>,
}

/// What `signatures/signHash` asks for.
#[derive(Debug, Clone)]
pub struct SignHash {
    /// The credential.
    pub credential_id: String,
    /// The SAD.
    pub sad: Zeroizing<String>,
    /// The digests, raw.
    pub hashes: Vec<Vec<u8>>,
    /// Combined or plain signature algorithm OID.
    pub sign_algo: String,
    /// Digest OID (needed when `sign_algo` implies none).
    pub hash_algo: Option<String>,
    /// DER signature parameters (RSASSA-PSS).
    pub sign_algo_params: Option<Vec<u8>>,
}

fn invalid(detail: impl Into<String>) -> CoreError {
    CoreError::invalid(ErrorCode::InvalidRequest, detail)
}

fn digest_id(secret: &str) -> String {
    crate::audit::lower_hex(&Sha256::digest(secret.as_bytes()))
}

/// CSC operations.
pub struct CscService {
    store: Arc<dyn Store>,
    clock: Arc<dyn Clock>,
    signers: Arc<SignerService>,
    keys: Arc<dyn SigningKeys>,
    settings: CscSettings,
    cache: Arc<CscCache>,
    refusals: Arc<Refusals>,
}

impl std::fmt::Debug for CscService {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CscService").field("settings", &self.settings).finish_non_exhaustive()
    }
}

impl CscService {
    /// Wires the service.
    pub fn new(
        store: Arc<dyn Store>,
        clock: Arc<dyn Clock>,
        signers: Arc<SignerService>,
        refusals: Arc<Refusals>,
    ) -> Self {
        let keys = signers.keys();
        let settings = signers.settings();
        let cache = signers.cache();
        Self { store, clock, signers, keys, settings, cache, refusals }
    }

    /// Records a refused login that changed nothing, aggregated per address and minute (over
    /// every username: an anonymous caller makes them up).
    async fn refused(&self, ev: NewAuditEvent, context: &RequestContext, why: &str) -> Result<()> {
        let who = context.client_ip.map_or_else(|| "unknown".to_owned(), |ip| ip.to_string());
        let now = self.clock.now();
        let events = self.refusals.admit(now, &who, "", why, ev).into_events();
        write_refusals(self.store.as_ref(), &self.refusals, events, now).await
    }

    /// Deletes tokens and SADs that have expired.
    pub async fn prune(&self) -> Result<u64> {
        Ok(self.store.csc_prune(unix_micros(self.clock.now())).await?)
    }

    /// The settings in force.
    pub fn settings(&self) -> CscSettings {
        self.settings
    }

    fn principal(s: &Signer, context: RequestContext) -> Arc<Principal> {
        Arc::new(Principal {
            kind: ActorKind::Signer,
            id: s.id.to_string(),
            name: format!("signer {}", s.username),
            api_key_id: None,
            operator_id: None,
            holder_id: s.person_id,
            permissions: PermissionSet::default(),
            scope: crate::access::scope::Scope::All,
            context,
        })
    }

    fn random_token() -> Result<Zeroizing<String>> {
        let mut b = Zeroizing::new([0u8; 32]);
        getrandom::fill(b.as_mut()).map_err(|e| CoreError::Internal(format!("random: {e}")))?;
        Ok(Zeroizing::new(URL_SAFE_NO_PAD.encode(b.as_ref())))
    }

    /// The outcome of a SAD's spend: a refusal is audited with `ev` and told to the client.
    async fn spent(
        &self,
        r: std::result::Result<(), StoreError>,
        ev: &(dyn Fn(&str) -> NewAuditEvent + Sync),
    ) -> Result<()> {
        match r {
            Ok(()) => Ok(()),
            Err(StoreError::Refused { code, detail }) => {
                self.audit_only(vec![ev("invalid_sad")]).await?;
                Err(CoreError::invalid(code, detail))
            }
            Err(e) => Err(e.into()),
        }
    }

    /// Records `events` alone (outcomes of refused calls), group-committed.
    async fn audit_only(&self, events: Vec<NewAuditEvent>) -> Result<()> {
        self.store.commit_ops(vec![], events, self.clock.now()).await?;
        Ok(())
    }

    /// The server, as the actor of a refused login (nobody has authenticated).
    fn system(context: RequestContext) -> Arc<Principal> {
        let mut system = (*Principal::system()).clone();
        system.context = context;
        Arc::new(system)
    }

    fn login_refused() -> CoreError {
        CoreError::invalid(ErrorCode::AuthenticationError, "Authentication failed.")
    }

    async fn issue_tokens(
        &self,
        s: &Signer,
        remember_me: bool,
        parent: Option<String>,
        context: RequestContext,
    ) -> Result<Login> {
        let now = self.clock.now();
        let mut tx = self.store.begin().await?;
        if parent.is_none() {
            // A right password forgets the wrong ones (and gives back its own reserved
            // attempt), unless a concurrent attempt has just locked the signer out.
            let body = tx.record_for_update(Collection::Signers, &s.id.to_string()).await?;
            let mut cur =
                body.map(|b| Signer::from_body(&b)).transpose()?.ok_or_else(Self::login_refused)?;
            if cur.login_locked(now) {
                drop(tx);
                let ev = Self::principal(s, context.clone());
                let ev = NewAuditEvent::new(&ev, AuditAction::CscLogin, "signer", s.id)
                    .details(serde_json::json!({"outcome": "locked"}))
                    .failed();
                self.audit_only(vec![ev]).await?;
                return Err(Self::login_refused());
            }
            cur.failed_logins = 0;
            cur.locked_until = None;
            cur.updated_at = now;
            tx.update_record(cur.row()).await?;
        }
        let access = Self::random_token()?;
        let refresh = if remember_me { Some(Self::random_token()?) } else { None };
        let refresh_id = refresh.as_ref().map(|r| digest_id(r));
        let mut rows = vec![CscToken {
            id: digest_id(&access),
            signer_id: s.id,
            kind: "access".into(),
            parent: parent.clone().or_else(|| refresh_id.clone()),
            expires_at: now + Duration::seconds(self.settings.access_ttl_secs),
        }];
        if let Some(id) = refresh_id {
            rows.push(CscToken {
                id,
                signer_id: s.id,
                kind: "refresh".into(),
                parent: None,
                expires_at: now + Duration::seconds(self.settings.refresh_ttl_secs),
            });
        }
        for r in &rows {
            tx.insert_record(r.row()).await?;
        }
        let p = Self::principal(s, context);
        let ev = NewAuditEvent::new(&p, AuditAction::CscLogin, "signer", s.id).details(
            serde_json::json!({
                "outcome": "ok",
                "grant": if parent.is_some() { "refresh_token" } else { "password" },
                "refresh_token": refresh.is_some(),
            }),
        );
        tx.commit(vec![ev], now).await?;
        Ok(Login {
            access_token: access,
            refresh_token: refresh,
            expires_in: self.settings.access_ttl_secs,
        })
    }

    async fn token(&self, digest: &str) -> Result<Option<CscToken>> {
        let body = self.store.record(Collection::Tokens, digest).await?;
        body.map(|b| CscToken::from_body(&b)).transpose()
    }

    /// `auth/login` with a refresh token: a new access token (the refresh token stays).
    pub async fn refresh(&self, token: &str, context: RequestContext) -> Result<Login> {
        let bad = || invalid("Invalid refresh token");
        let t = self.token(&digest_id(token)).await?.ok_or_else(bad)?;
        if t.kind != "refresh" || t.expires_at <= self.clock.now() {
            return Err(bad());
        }
        let s = self.signers.signer(t.signer_id).await?.filter(|s| s.enabled).ok_or_else(bad)?;
        self.issue_tokens(&s, false, Some(t.id), context).await
    }

    /// The signer behind a bearer access token.
    pub async fn authenticate(&self, token: &str, context: RequestContext) -> Result<Session> {
        let id = digest_id(token);
        let now = self.clock.now();
        let (signer, expires) = match self.cache.session(&id) {
            Some(hit) => hit,
            None => {
                let unknown = CoreError::Unauthenticated(AuthFailure::Unknown);
                let t = self.token(&id).await?.ok_or(unknown)?;
                if t.kind != "access" {
                    return Err(CoreError::Unauthenticated(AuthFailure::Unknown));
                }
                let s = self
                    .signers
                    .signer(t.signer_id)
                    .await?
                    .map(Arc::new)
                    .ok_or(CoreError::Unauthenticated(AuthFailure::Unknown))?;
                self.cache.put_session(id.clone(), Arc::clone(&s), t.expires_at);
                (s, t.expires_at)
            }
        };
        if expires <= now {
            return Err(CoreError::Unauthenticated(AuthFailure::Expired));
        }
        if !signer.enabled {
            return Err(CoreError::Unauthenticated(AuthFailure::Disabled));
        }
        let principal = Self::principal(&signer, context);
        Ok(Session { signer, principal, token_id: id })
    }

    /// `auth/revoke`: an access token, or a refresh token with the access tokens made from it.
    /// Only the signer's own tokens can be revoked.
    pub async fn revoke(&self, s: &Session, token: &str) -> Result<()> {
        let id = digest_id(token);
        let t = self
            .token(&id)
            .await?
            .filter(|t| t.signer_id == s.signer.id)
            .ok_or_else(|| invalid("Invalid string parameter token"))?;
        let mut ids = vec![id.clone()];
        if t.kind == "refresh" {
            let q = RecordQuery::all(Filter::Tokens { signer_id: Some(s.signer.id) });
            for b in self.store.records(&q).await? {
                if let Ok(c) = CscToken::from_body(&b)
                    && c.parent.as_deref() == Some(id.as_str())
                {
                    ids.push(c.id);
                }
            }
        }
        let now = self.clock.now();
        let mut tx = self.store.begin().await?;
        for i in &ids {
            tx.delete_record(Collection::Tokens, i).await?;
        }
        let ev = NewAuditEvent::new(&s.principal, AuditAction::CscRevoke, "signer", s.signer.id)
            .details(serde_json::json!({"kind": t.kind, "tokens": ids.len()}));
        tx.commit(vec![ev], now).await?;
        for i in &ids {
            self.cache.forget_token(i);
        }
        Ok(())
    }

    /// The signer's credentials with their certificates, oldest first.
    pub async fn list(&self, s: &Session) -> Result<Vec<(SigningCredential, Certificate)>> {
        let mut out = Vec::new();
        for c in self.signers.credentials_of(s.signer.id).await? {
            if let Some(cert) = self.signers.certificate_of(&c).await? {
                out.push((c, cert));
            }
        }
        Ok(out)
    }

    /// One of the signer's credentials with its certificate (anyone else's does not exist).
    pub async fn credential(
        &self,
        s: &Session,
        id: &str,
    ) -> Result<Arc<(SigningCredential, Certificate)>> {
        let bad = || invalid("Invalid parameter credentialID");
        let id = Uuid::parse_str(id).map_err(|_| bad())?;
        let entry = match self.cache.credential(id) {
            Some(hit) => hit,
            None => {
                let c = self.signers.credential(id).await?.ok_or_else(bad)?;
                let cert = self.signers.certificate_of(&c).await?.ok_or_else(bad)?;
                let entry = Arc::new((c, cert));
                self.cache.put_credential(Arc::clone(&entry));
                entry
            }
        };
        if entry.0.signer_id != s.signer.id {
            return Err(bad());
        }
        Ok(entry)
    }

    /// An audit event on a credential; anything but `ok` is recorded as a failure.
    fn event(
        s: &Session,
        action: AuditAction,
        credential: &str,
        outcome: &str,
        mut details: serde_json::Value,
    ) -> NewAuditEvent {
        details["outcome"] = outcome.into();
        let e = NewAuditEvent::new(&s.principal, action, "signing_credential", credential)
            .details(details);
        if outcome == "ok" { e } else { e.failed() }
    }

    /// `credentials/authorize`: checks the PIN and hands out a SAD for `num_signatures`
    /// signatures (bound to the given hashes, which SCAL 2 requires). A wrong PIN counts toward
    /// the lock; a right one resets the count. Every call is audited with its outcome.
    pub async fn authorize(&self, s: &Session, a: Authorize) -> Result<(Zeroizing<String>, i64)> {
        let n_hashes = a.hashes.as_ref().map_or(0, Vec::len);
        let num = a.num_signatures;
        let ev = |outcome: &str| {
            Self::event(
                s,
                AuditAction::CscAuthorize,
                &a.credential_id,
                outcome,
                serde_json::json!({"num_signatures": num, "hashes": n_hashes}),
            )
        };
        let checked = self.check_authorize(s, &a).await;
        let c = match checked {
            Ok(c) => c,
            Err((e, outcome)) => {
                self.audit_only(vec![ev(outcome)]).await?;
                return Err(e);
            }
        };
        let Some(pin) = a.pin else {
            self.audit_only(vec![ev("invalid_request")]).await?;
            return Err(invalid("Missing string parameter PIN"));
        };
        let good = self.signers.secrets().verify(pin, c.pin_hash.clone()).await?;
        let now = self.clock.now();
        let mut tx = self.store.begin().await?;
        if tx.record_for_update(Collection::Tokens, &s.token_id).await?.is_none() {
            drop(tx);
            self.cache.forget_token(&s.token_id);
            self.audit_only(vec![ev("invalid_token")]).await?;
            return Err(CoreError::Unauthenticated(AuthFailure::Unknown));
        }
        let current = tx.record_for_update(Collection::Credentials, &c.id.to_string()).await?;
        let mut cur = current
            .map(|b| SigningCredential::from_body(&b))
            .transpose()?
            .ok_or_else(|| invalid("Invalid parameter credentialID"))?;
        if cur.locked() {
            // Locked by a concurrent wrong PIN since it was read.
            drop(tx);
            self.audit_only(vec![ev("locked")]).await?;
            return Err(invalid("PIN locked"));
        }
        if !good {
            cur.pin_retries_left = cur.pin_retries_left.saturating_sub(1);
            cur.updated_at = now;
            tx.update_record(cur.row()).await?;
            let outcome = if cur.locked() { "invalid_pin_locked" } else { "invalid_pin" };
            tx.commit(vec![ev(outcome)], now).await?;
            return Err(CoreError::invalid(ErrorCode::InvalidPin, "Invalid PIN"));
        }
        if cur.pin_retries_left != self.settings.pin_retries {
            cur.pin_retries_left = self.settings.pin_retries;
            cur.updated_at = now;
            tx.update_record(cur.row()).await?;
        }
        let sad = Self::random_token()?;
        let row = Sad {
            id: digest_id(&sad),
            credential_id: c.id,
            signer_id: s.signer.id,
            remaining: num,
            hashes: a.hashes.map(|hs| hs.iter().map(hex::encode).collect()),
            expires_at: now + Duration::seconds(self.settings.sad_ttl_secs),
            created_at: now,
        };
        tx.insert_sad(&row).await?;
        tx.commit(vec![ev("ok")], now).await?;
        Ok((sad, self.settings.sad_ttl_secs))
    }

    async fn check_authorize(
        &self,
        s: &Session,
        a: &Authorize,
    ) -> std::result::Result<SigningCredential, (CoreError, &'static str)> {
        let bad = |e: CoreError| (e, "invalid_request");
        let id = Uuid::parse_str(&a.credential_id)
            .map_err(|_| bad(invalid("Invalid parameter credentialID")))?;
        // Fresh from the store: the PIN and its retry count must not come from a cache.
        let c = self
            .signers
            .credential(id)
            .await
            .map_err(|e| (e, "error"))?
            .filter(|c| c.signer_id == s.signer.id)
            .ok_or_else(|| bad(invalid("Invalid parameter credentialID")))?;
        if c.status != CredentialStatus::Enabled {
            return Err((invalid("The credential is disabled"), "disabled"));
        }
        if c.locked() {
            return Err((invalid("PIN locked"), "locked"));
        }
        if a.num_signatures == 0 || a.num_signatures > c.multisign {
            return Err(bad(invalid(format!(
                "Invalid parameter numSignatures: 1 to {} for this credential",
                c.multisign
            ))));
        }
        let n = a.hashes.as_ref().map_or(0, Vec::len);
        if n > MAX_HASHES {
            return Err(bad(invalid(format!("Too many hashes (at most {MAX_HASHES})"))));
        }
        if let Some(hs) = &a.hashes
            && hs.iter().any(|h| ![32, 48, 64].contains(&h.len()))
        {
            return Err(bad(invalid("Invalid digest value length")));
        }
        if c.scal == 2 && n != a.num_signatures as usize {
            return Err(bad(invalid(
                "SCAL 2 credential: give the hashes to sign, as many as numSignatures",
            )));
        }
        if n > 0 && n != a.num_signatures as usize {
            return Err(bad(invalid("The number of hashes must equal numSignatures")));
        }
        Ok(c)
    }

    /// `signatures/signHash`: spends the SAD on the hashes in one unit with the audit event,
    /// and signs every hash in order; no signature leaves before the spend is committed. A SAD
    /// that is unknown, another's, expired, exhausted or not for these hashes gives no
    /// signature, and costs none, except where signing is cheap (a few digests with a sealed
    /// P-256 key, see [`SigningKeys::signs_inline`]): those are signed while the spend commits
    /// (the commit's wait is most of a signHash's time) and discarded if it is refused.
    pub async fn sign_hash(&self, s: &Session, r: SignHash) -> Result<Vec<Vec<u8>>> {
        let n = r.hashes.len();
        let ev = |outcome: &str| {
            Self::event(
                s,
                AuditAction::CscSignHash,
                &r.credential_id,
                outcome,
                serde_json::json!({"hashes": n, "sign_algo": r.sign_algo}),
            )
        };
        let now = self.clock.now();
        let prepared = match self.credential(s, &r.credential_id).await {
            Ok(entry) => self.check_sign(&entry.0, &entry.1, &r, now).map(|hs| (entry, hs)),
            Err(e) => Err(e),
        };
        let (entry, (hash, scheme)) = match prepared {
            Ok(v) => v,
            Err(e) => {
                self.audit_only(vec![ev("invalid_request")]).await?;
                return Err(e);
            }
        };
        let (c, cert) = (&entry.0, &entry.1);
        let spend = SadUse {
            id: digest_id(&r.sad),
            credential_id: c.id,
            signer_id: s.signer.id,
            hashes: r.hashes.iter().map(|h| crate::audit::lower_hex(h)).collect(),
            now_us: unix_micros(now),
        };
        let inline = self.keys.signs_inline(c.key_algorithm, &c.sealed_key, n);
        let digests = r.hashes;
        let sign = async {
            // The back end's absence is the server's problem, not the client's: logged, not told.
            let chain = self
                .signers
                .ca_chain(cert)
                .map_err(|e| CoreError::Internal(format!("the credential's CA back end: {e}")))?;
            let key = CredentialKey {
                id: c.id,
                key_type: c.key_algorithm,
                sealed_key: &c.sealed_key,
                certificate: &cert.der,
                ca_chain: &chain,
            };
            self.keys.sign_hashes(key, hash, scheme, digests).await
        };
        let commit = self.store.commit_ops(vec![WriteOp::ConsumeSad(spend)], vec![ev("ok")], now);
        let signed = if inline {
            // The commit is sent first (join polls in order), then the signature is computed
            // while it waits for its sync; it is dropped here unless the spend was committed.
            let (spent, signed) = tokio::join!(commit, sign);
            self.spent(spent, &ev).await?;
            signed
        } else {
            // Anything costlier waits for the spend, so a bogus, spent or foreign SAD costs no
            // private-key work at all.
            self.spent(commit.await, &ev).await?;
            sign.await
        };
        match signed {
            Ok(sigs) => Ok(sigs),
            Err(e) => {
                // The SAD stays spent (fail closed); the trail says no signature came of it.
                self.audit_only(vec![ev("signing_failed")]).await?;
                Err(e)
            }
        }
    }

    /// The hash and scheme a signHash asks for, checked against the credential's key.
    fn scheme(&self, c: &SigningCredential, r: &SignHash) -> Result<(HashAlgo, SignScheme)> {
        let (implied, family) =
            sign_algo(&r.sign_algo).ok_or_else(|| invalid("Invalid parameter signAlgo"))?;
        let ec = matches!(c.key_algorithm, KeyType::P256 | KeyType::P384);
        if ec != (family == SignFamily::Ecdsa) {
            return Err(invalid("Invalid parameter signAlgo: not an algorithm of this key"));
        }
        let given = match &r.hash_algo {
            Some(h) => {
                Some(HashAlgo::from_oid(h).ok_or_else(|| invalid("Invalid parameter hashAlgo"))?)
            }
            None => None,
        };
        Ok(match family {
            SignFamily::Ecdsa => (implied.or(given).unwrap_or(HashAlgo::Sha256), SignScheme::Ecdsa),
            SignFamily::RsaPkcs1 => {
                let h = implied.or(given).ok_or_else(|| invalid("Missing parameter hashAlgo"))?;
                (h, SignScheme::RsaPkcs1)
            }
            SignFamily::RsaPss => {
                let der = r
                    .sign_algo_params
                    .as_deref()
                    .ok_or_else(|| invalid("Missing parameter signAlgoParams"))?;
                let (h, salt_len) = self.keys.pss_params(der)?;
                (h, SignScheme::RsaPss { salt_len })
            }
        })
    }

    fn check_sign(
        &self,
        c: &SigningCredential,
        cert: &Certificate,
        r: &SignHash,
        now: OffsetDateTime,
    ) -> Result<(HashAlgo, SignScheme)> {
        if c.status != CredentialStatus::Enabled {
            return Err(invalid("The credential is disabled"));
        }
        match cert.status_at(now) {
            CertStatus::Active => {}
            CertStatus::Expired => return Err(invalid("Signing certificate is expired")),
            CertStatus::Revoked => return Err(invalid("Signing certificate is revoked")),
            CertStatus::Suspended => return Err(invalid("Signing certificate is suspended")),
        }
        if r.sad.is_empty() {
            return Err(invalid("Missing string parameter SAD"));
        }
        if r.hashes.is_empty() {
            return Err(invalid("Empty hash array"));
        }
        if r.hashes.len() > MAX_HASHES {
            return Err(invalid(format!("Too many hashes (at most {MAX_HASHES})")));
        }
        let (hash, scheme) = self.scheme(c, r)?;
        if r.hashes.iter().any(|h| h.len() != hash.digest_len()) {
            return Err(invalid("Invalid digest value length"));
        }
        Ok((hash, scheme))
    }
}
