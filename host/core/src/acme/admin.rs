//! ACME administration (`acme:manage`, callers who see every office): external account
//! binding keys (RFC 8555 §7.3.4), created with their HMAC key shown once and sealed under the
//! master key, each binding one account; and the accounts themselves, listed and deactivated.

use std::sync::Arc;

use serde_json::Value;
use uuid::Uuid;
use zeroize::Zeroizing;

use super::jws::{Jws, b64e};
use super::model::{AccountStatus, AcmeAccount, EabKey};
use super::{AcmeError, AcmeService, Urls};
use crate::access::authz::{Capability, perm};
use crate::audit::{AuditAction, NewAuditEvent};
use crate::page::lock_unchanged;
use crate::records::{Filter, Record, get, select};
use crate::{CoreError, ErrorCode, Result};

/// Most binding keys kept (used or not).
pub const MAX_EAB_KEYS: usize = 10_000;

/// Seals binding keys under the master key (implemented in `sigil-pki`), bound to their row.
pub trait EabSealer: Send + Sync {
    /// Seals `key` for binding key `id`.
    fn seal(&self, id: Uuid, key: &[u8]) -> Result<String>;
    /// Opens the sealed key of binding key `id`.
    fn open(&self, id: Uuid, sealed: &str) -> Result<Zeroizing<Vec<u8>>>;
}

/// A new binding key: the record, and the HMAC key (base64url) to hand over once.
#[derive(Debug)]
pub struct NewEabKey {
    /// The stored record.
    pub record: EabKey,
    /// The HMAC key, base64url: shown once, never stored in the clear.
    pub hmac_key: Zeroizing<String>,
}

impl AcmeService {
    fn sealer(&self) -> Result<&Arc<dyn EabSealer>> {
        self.eab
            .as_ref()
            .ok_or_else(|| CoreError::Internal("no sealer for ACME binding keys".into()))
    }

    /// Creates a binding key named `name`, for accounts of `profile` only when given.
    pub async fn create_eab_key(
        &self,
        cap: &Capability<perm::AcmeManage>,
        name: &str,
        profile: Option<String>,
    ) -> Result<NewEabKey> {
        let name = name.trim();
        if name.is_empty() || name.len() > 200 {
            return Err(CoreError::invalid(ErrorCode::InvalidRequest, "name: 1 to 200 characters"));
        }
        if let Some(p) = &profile {
            let found = self.certificates.profiles().find(p).await?;
            if !found.spec.acme {
                return Err(CoreError::invalid(
                    ErrorCode::InvalidRequest,
                    format!("profile `{p}` is not served over ACME"),
                ));
            }
        }
        let all: Vec<EabKey> = select(self.store.as_ref(), Filter::AcmeEabKeys).await?;
        if all.len() >= MAX_EAB_KEYS {
            return Err(CoreError::conflict(
                ErrorCode::Conflict,
                format!("at most {MAX_EAB_KEYS} binding keys; revoke unused ones"),
            ));
        }
        let mut key = Zeroizing::new(vec![0u8; 32]);
        getrandom::fill(&mut key)
            .map_err(|e| CoreError::Internal(format!("no randomness: {e}")))?;
        let id = Uuid::now_v7();
        let now = self.clock.now();
        let record = EabKey {
            id,
            name: name.to_owned(),
            profile,
            sealed_key: self.sealer()?.seal(id, &key)?,
            created_by: cap.principal().id.clone(),
            created_at: now,
            account_id: None,
            revoked_at: None,
        };
        let mut tx = self.store.begin_records().await?;
        tx.insert_record(record.row()).await?;
        let ev =
            NewAuditEvent::new(cap.principal(), AuditAction::AcmeEabKeyCreate, "acme_eab_key", id)
                .details(serde_json::json!({"name": record.name, "profile": record.profile}));
        tx.commit(vec![ev], now).await?;
        Ok(NewEabKey { record, hmac_key: Zeroizing::new(b64e(&key)) })
    }

    /// Every binding key, oldest first (never their HMAC keys).
    pub async fn eab_keys(&self, _cap: &Capability<perm::AcmeManage>) -> Result<Vec<EabKey>> {
        select(self.store.as_ref(), Filter::AcmeEabKeys).await
    }

    /// Revokes binding key `id`: it binds no account from now on (an account it bound stays).
    pub async fn revoke_eab_key(
        &self,
        cap: &Capability<perm::AcmeManage>,
        id: Uuid,
    ) -> Result<EabKey> {
        let before: EabKey = get(self.store.as_ref(), &id.to_string())
            .await?
            .ok_or_else(|| CoreError::not_found("acme_eab_key", id.to_string()))?;
        if before.revoked_at.is_some() {
            return Ok(before);
        }
        let mut next = before.clone();
        next.revoked_at = Some(self.clock.now());
        let mut tx = self.store.begin_records().await?;
        lock_unchanged(tx.as_mut(), &before, "acme_eab_key").await?;
        tx.update_record(next.row()).await?;
        let ev =
            NewAuditEvent::new(cap.principal(), AuditAction::AcmeEabKeyRevoke, "acme_eab_key", id)
                .details(serde_json::json!({"name": next.name, "account_id": next.account_id}));
        tx.commit(vec![ev], self.clock.now()).await?;
        Ok(next)
    }

    /// Checks newAccount's external account binding (RFC 8555 §7.3.4): an HS256 JWS by an
    /// unused, unrevoked binding key (of this profile, when it names one), over the new
    /// account's key, sent to the newAccount URL. Returns the key, to be marked used with the
    /// account.
    pub(super) async fn check_binding(
        &self,
        binding: &Value,
        account_jwk: &Value,
        profile: &str,
        urls: &Urls,
    ) -> std::result::Result<EabKey, AcmeError> {
        let jws = Jws::parse(binding.to_string().as_bytes())?;
        if jws.header.alg != "HS256" {
            return Err(AcmeError::malformed("an external account binding is signed with HS256"));
        }
        if jws.header.nonce.is_some() || jws.header.jwk.is_some() {
            return Err(AcmeError::malformed(
                "an external account binding has no nonce and no jwk",
            ));
        }
        if jws.header.url.as_deref() != Some(urls.new_account().as_str()) {
            return Err(AcmeError::malformed("the external account binding names another URL"));
        }
        let payload: Value = jws.json()?;
        if &payload != account_jwk {
            return Err(AcmeError::malformed("the external account binding is over another key"));
        }
        let refused = || AcmeError::unauthorized("the external account binding is not valid");
        let id =
            jws.header.kid.as_deref().and_then(|k| Uuid::parse_str(k).ok()).ok_or_else(refused)?;
        let key: EabKey = get(self.store.as_ref(), &id.to_string()).await?.ok_or_else(refused)?;
        if key.revoked_at.is_some()
            || key.account_id.is_some()
            || key.profile.as_deref().is_some_and(|p| p != profile)
        {
            return Err(refused());
        }
        let secret = self.sealer()?.open(key.id, &key.sealed_key)?;
        let mac = self.verifier.hmac_sha256(&secret, &jws.signing_input());
        if !crate::access::api_key::hashes_match(&b64e(&mac), &b64e(&jws.signature)) {
            return Err(refused());
        }
        Ok(key)
    }

    /// ACME accounts, oldest first; of one profile or state when given.
    pub async fn accounts(
        &self,
        _cap: &Capability<perm::AcmeManage>,
        profile: Option<String>,
        status: Option<AccountStatus>,
    ) -> Result<Vec<AcmeAccount>> {
        select(self.store.as_ref(), Filter::AcmeAccounts { profile, thumbprint: None, status })
            .await
    }

    /// One ACME account.
    pub async fn account(
        &self,
        _cap: &Capability<perm::AcmeManage>,
        id: Uuid,
    ) -> Result<AcmeAccount> {
        get(self.store.as_ref(), &id.to_string())
            .await?
            .ok_or_else(|| CoreError::not_found("acme_account", id.to_string()))
    }

    /// Deactivates an ACME account (its key signs nothing more; its certificates stay).
    pub async fn deactivate_account(
        &self,
        cap: &Capability<perm::AcmeManage>,
        id: Uuid,
    ) -> Result<AcmeAccount> {
        let before = self.account(cap, id).await?;
        if before.status != AccountStatus::Valid {
            return Ok(before);
        }
        let mut next = before.clone();
        next.status = AccountStatus::Deactivated;
        next.updated_at = self.clock.now();
        let mut tx = self.store.begin_records().await?;
        lock_unchanged(tx.as_mut(), &before, "acme_account").await?;
        tx.update_record(next.row()).await?;
        let ev = NewAuditEvent::new(
            cap.principal(),
            AuditAction::AcmeAccountDeactivate,
            "acme_account",
            id,
        )
        .details(serde_json::json!({"status": "deactivated", "by": "administrator"}));
        tx.commit(vec![ev], self.clock.now()).await?;
        Ok(next)
    }
}
