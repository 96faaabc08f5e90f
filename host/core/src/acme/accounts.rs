//! Signed requests and accounts: the checks every POST passes (nonce, URL, key), newAccount,
//! account updates and deactivation, and key change (RFC 8555 §6, §7.3).

use std::sync::Arc;

use serde::Deserialize;
use serde_json::Value;
use uuid::Uuid;

use super::jws::{Jws, thumbprint};
use super::model::{AccountStatus, AcmeAccount, MAX_CONTACTS};
use super::{AcmeError, AcmeService, Urls, principal};
use crate::access::authz::{Principal, RequestContext};
use crate::audit::{AuditAction, NewAuditEvent};
use crate::certs::profile::Profile;
use crate::records::{Collection, Filter, Record, conflict_as, get, select};

/// A request whose JWS verified with a registered, valid account's key.
#[derive(Debug)]
pub struct Signed {
    /// The request.
    pub jws: Jws,
    /// The account.
    pub account: AcmeAccount,
    /// The profile.
    pub profile: Profile,
    /// The account as a principal.
    pub principal: Arc<Principal>,
}

/// newAccount's payload.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct NewAccount {
    #[serde(default)]
    contact: Option<Vec<String>>,
    #[serde(default)]
    terms_of_service_agreed: Option<bool>,
    #[serde(default)]
    only_return_existing: Option<bool>,
    #[serde(default)]
    external_account_binding: Option<Value>,
}

/// An account update's payload.
#[derive(Debug, Default, Deserialize)]
struct AccountUpdate {
    #[serde(default)]
    contact: Option<Vec<String>>,
    #[serde(default)]
    status: Option<String>,
}

/// keyChange's inner payload.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct KeyChange {
    account: String,
    old_key: Value,
}

/// Checks contacts: at most [`MAX_CONTACTS`] `mailto:` URLs of one plain address each.
fn check_contacts(contacts: &[String]) -> Result<(), AcmeError> {
    if contacts.len() > MAX_CONTACTS {
        return Err(AcmeError::invalid_contact(format!("at most {MAX_CONTACTS} contacts")));
    }
    for c in contacts {
        let Some(addr) = c.strip_prefix("mailto:") else {
            return Err(AcmeError::unsupported_contact(format!(
                "only mailto: contacts are supported, not `{c}`"
            )));
        };
        let plain = addr.len() <= 254
            && !addr.contains([',', '?', '&', ' ', '<', '>'])
            && addr.split_once('@').is_some_and(|(l, d)| {
                !l.is_empty() && d.contains('.') && !d.starts_with('.') && !d.ends_with('.')
            });
        if !plain {
            return Err(AcmeError::invalid_contact(format!("`{c}` is not one e-mail address")));
        }
    }
    Ok(())
}

impl AcmeService {
    /// Parses `body`, sent to `url` under profile `urls`, and checks what every ACME POST must
    /// hold before its key is looked at: an accepted algorithm, one of jwk and kid, a nonce
    /// this database issued and nobody spent, and the URL it was sent to.
    pub async fn checked(&self, urls_url: &str, body: &[u8]) -> Result<Jws, AcmeError> {
        let jws = Jws::parse(body)?;
        jws.check_outer_header()?;
        let Some(nonce) = jws.header.nonce.as_deref() else {
            return Err(AcmeError::bad_nonce("the protected header has no nonce"));
        };
        let now = crate::audit::unix_micros(self.clock.now());
        if !self.store.acme_nonce_consume(nonce, now).await? {
            return Err(AcmeError::bad_nonce("the nonce is unknown, spent or expired"));
        }
        if jws.header.url.as_deref() != Some(urls_url) {
            return Err(AcmeError::unauthorized(format!(
                "the protected header's url is not the URL the request was sent to ({urls_url})"
            )));
        }
        Ok(jws)
    }

    /// A request signed by a registered account (`kid`): checked, the account found (valid,
    /// of this profile) and the signature verified with its key.
    pub async fn signed(
        &self,
        profile: &str,
        urls: &Urls,
        url: &str,
        body: &[u8],
        context: RequestContext,
    ) -> Result<Signed, AcmeError> {
        let profile = self.profile(profile).await?;
        let jws = self.checked(url, body).await?;
        let Some(kid) = jws.header.kid.as_deref() else {
            return Err(AcmeError::malformed(
                "this request is signed by an account (kid), not jwk",
            ));
        };
        let account = self.kid_account(&jws, urls, kid, &profile.name).await?;
        let principal = principal(&account, context);
        Ok(Signed { jws, account, profile, principal })
    }

    /// The valid account of `profile` that `kid` (an account URL) names, whose key signed `jws`.
    pub(super) async fn kid_account(
        &self,
        jws: &Jws,
        urls: &Urls,
        kid: &str,
        profile: &str,
    ) -> Result<AcmeAccount, AcmeError> {
        let account = match urls.account_id(kid) {
            Some(id) => get::<AcmeAccount, _>(self.store.as_ref(), &id.to_string()).await?,
            None => None,
        }
        .filter(|a| a.profile == profile)
        .ok_or_else(|| AcmeError::account_does_not_exist("no account has this URL"))?;
        if account.status != AccountStatus::Valid {
            return Err(AcmeError::unauthorized(format!(
                "the account is {}",
                account.status.as_str()
            )));
        }
        jws.verify_with(self.verifier.as_ref(), &account.jwk)?;
        Ok(account)
    }

    /// The account holding key `thumbprint` under `profile`.
    async fn account_by_key(
        &self,
        profile: &str,
        thumbprint: &str,
    ) -> Result<Option<AcmeAccount>, AcmeError> {
        let found: Vec<AcmeAccount> = select(
            self.store.as_ref(),
            Filter::AcmeAccounts {
                profile: Some(profile.to_owned()),
                thumbprint: Some(thumbprint.to_owned()),
                status: None,
            },
        )
        .await?;
        Ok(found.into_iter().next())
    }

    /// newAccount: registers the request's key (jwk), or finds the account that has it.
    /// Returns the account and whether it was created now.
    pub async fn new_account(
        &self,
        profile: &str,
        urls: &Urls,
        url: &str,
        body: &[u8],
        context: RequestContext,
    ) -> Result<(AcmeAccount, bool), AcmeError> {
        let profile = self.profile(profile).await?;
        let jws = self.checked(url, body).await?;
        let Some(sent_jwk) = jws.header.jwk.clone() else {
            return Err(AcmeError::malformed(
                "newAccount is signed with the new key (jwk), not kid",
            ));
        };
        jws.verify_with(self.verifier.as_ref(), &sent_jwk)?;
        // Only the public, required members are kept.
        let jwk = super::jws::public_jwk(&sent_jwk)?;
        let req: NewAccount = jws.json()?;
        let thumb = thumbprint(&jwk)?;
        if let Some(existing) = self.account_by_key(&profile.name, &thumb).await? {
            if existing.status != AccountStatus::Valid {
                return Err(AcmeError::unauthorized(format!(
                    "the account of this key is {}",
                    existing.status.as_str()
                )));
            }
            return Ok((existing, false));
        }
        if req.only_return_existing == Some(true) {
            return Err(AcmeError::account_does_not_exist("no account has this key"));
        }
        let binding = match &req.external_account_binding {
            Some(b) => Some(self.check_binding(b, &sent_jwk, &profile.name, urls).await?),
            None if self.settings.eab_required => {
                return Err(AcmeError::external_account_required(
                    "new accounts need an external account binding (ask the administrator for a \
                     key)",
                ));
            }
            None => None,
        };
        let contact = req.contact.unwrap_or_default();
        check_contacts(&contact)?;
        let now = self.clock.now();
        let account = AcmeAccount {
            id: Uuid::now_v7(),
            profile: profile.name.clone(),
            thumbprint: thumb,
            jwk,
            status: AccountStatus::Valid,
            contact,
            terms_agreed: req.terms_of_service_agreed.unwrap_or(false),
            eab_key_id: binding.as_ref().map(|k| k.id.to_string()),
            created_at: now,
            updated_at: now,
        };
        let actor = principal(&account, context);
        let mut tx = self.store.begin_records().await?;
        let inserted = tx.insert_record(account.row()).await.map_err(conflict_as(
            crate::ErrorCode::NameTaken,
            "an account with this key exists".into(),
        ));
        let inserted = match (inserted, &binding) {
            (Ok(()), Some(key)) => {
                // The key binds this account only: a second use finds it taken (or loses the
                // race on the row lock).
                let mut used = key.clone();
                used.account_id = Some(account.id);
                match crate::page::lock_unchanged(tx.as_mut(), key, "acme_eab_key").await {
                    Ok(()) => tx.update_record(used.row()).await.map_err(Into::into),
                    Err(_) => {
                        Err(AcmeError::unauthorized("the external account binding is not valid"))
                    }
                }
            }
            (r, _) => r.map_err(AcmeError::from),
        };
        if let Err(e) = inserted {
            drop(tx);
            // Created by a concurrent request with the same key: that account is the answer.
            if let Some(existing) = self.account_by_key(&profile.name, &account.thumbprint).await? {
                return Ok((existing, false));
            }
            return Err(e);
        }
        let ev =
            NewAuditEvent::new(&actor, AuditAction::AcmeAccountCreate, "acme_account", account.id)
                .details(serde_json::json!({
                    "profile": account.profile, "contact": account.contact,
                    "thumbprint": account.thumbprint,
                }));
        tx.commit(vec![ev], now).await?;
        Ok((account, true))
    }

    /// POST to an account URL: read it (POST-as-GET), change its contacts, or deactivate it.
    pub async fn account_update(&self, s: &Signed, id: Uuid) -> Result<AcmeAccount, AcmeError> {
        if s.account.id != id {
            return Err(AcmeError::unauthorized("a request may only concern the signer's account"));
        }
        if s.jws.is_post_as_get() {
            return Ok(s.account.clone());
        }
        let req: AccountUpdate = s.jws.json()?;
        let mut next = s.account.clone();
        let action = match (req.status.as_deref(), req.contact) {
            (Some("deactivated"), _) => {
                next.status = AccountStatus::Deactivated;
                AuditAction::AcmeAccountDeactivate
            }
            (Some(other), _) => {
                return Err(AcmeError::malformed(format!(
                    "an account's status can only become deactivated, not `{other}`"
                )));
            }
            (None, Some(contact)) => {
                check_contacts(&contact)?;
                next.contact = contact;
                AuditAction::AcmeAccountUpdate
            }
            (None, None) => return Ok(s.account.clone()),
        };
        let now = self.clock.now();
        next.updated_at = now;
        self.save_account(&s.principal, &s.account, &next, action).await?;
        Ok(next)
    }

    /// Writes `next` over `before` (unchanged since read) with its audit event.
    async fn save_account(
        &self,
        actor: &Arc<Principal>,
        before: &AcmeAccount,
        next: &AcmeAccount,
        action: AuditAction,
    ) -> Result<(), AcmeError> {
        let mut tx = self.store.begin_records().await?;
        let current =
            tx.record_for_update(Collection::AcmeAccounts, &before.id.to_string()).await?;
        if current.map(|b| AcmeAccount::from_body(&b)).transpose()?.as_ref() != Some(before) {
            return Err(AcmeError::Core(crate::CoreError::conflict(
                crate::ErrorCode::Conflict,
                "the account changed meanwhile; retry",
            )));
        }
        tx.update_record(next.row()).await.map_err(conflict_as(
            crate::ErrorCode::NameTaken,
            "another account has this key".into(),
        ))?;
        let ev =
            NewAuditEvent::new(actor, action, "acme_account", next.id).details(serde_json::json!({
                "status": next.status.as_str(), "contact": next.contact,
                "thumbprint": next.thumbprint,
            }));
        tx.commit(vec![ev], self.clock.now()).await?;
        Ok(())
    }

    /// keyChange (RFC 8555 §7.3.5): the outer JWS is signed by the account, the inner by the
    /// new key, naming the account and its old key.
    pub async fn key_change(&self, s: &Signed, urls: &Urls) -> Result<AcmeAccount, AcmeError> {
        let inner = Jws::parse(&s.jws.payload)?;
        let Some(new_jwk) = inner.header.jwk.clone() else {
            return Err(AcmeError::malformed(
                "the inner JWS of a key change carries the new key (jwk)",
            ));
        };
        if inner.header.kid.is_some() || inner.header.nonce.is_some() {
            return Err(AcmeError::malformed(
                "the inner JWS of a key change has no kid and no nonce",
            ));
        }
        if inner.header.url != s.jws.header.url {
            return Err(AcmeError::malformed("the inner and outer JWS name different URLs"));
        }
        if !super::jws::ALGORITHMS.contains(&inner.header.alg.as_str()) {
            return Err(AcmeError::bad_signature_algorithm(&inner.header.alg));
        }
        inner.verify_with(self.verifier.as_ref(), &new_jwk)?;
        let req: KeyChange = inner.json()?;
        if urls.account_id(&req.account) != Some(s.account.id) {
            return Err(AcmeError::unauthorized("the key change names another account"));
        }
        if thumbprint(&req.old_key)? != s.account.thumbprint {
            return Err(AcmeError::unauthorized("oldKey is not the account's key"));
        }
        let thumb = thumbprint(&new_jwk)?;
        if let Some(other) = self.account_by_key(&s.account.profile, &thumb).await? {
            return Err(AcmeError::conflict(format!(
                "the new key belongs to account {}",
                urls.account(other.id)
            )));
        }
        let mut next = s.account.clone();
        next.jwk = super::jws::public_jwk(&new_jwk)?;
        next.thumbprint = thumb;
        next.updated_at = self.clock.now();
        self.save_account(&s.principal, &s.account, &next, AuditAction::AcmeAccountKeyChange)
            .await?;
        Ok(next)
    }
}

#[cfg(test)]
mod tests {
    use super::check_contacts;

    #[test]
    fn only_plain_mailto_contacts_are_taken() {
        check_contacts(&["mailto:ops@example.org".into()]).unwrap();
        for (c, kind) in [
            ("tel:+1555", "unsupportedContact"),
            ("mailto:a@b.example,c@d.example", "invalidContact"),
            ("mailto:ops@example.org?subject=x", "invalidContact"),
            ("mailto:nobody", "invalidContact"),
        ] {
            assert_eq!(check_contacts(&[c.into()]).unwrap_err().kind(), kind, "{c}");
        }
        let many: Vec<String> = (0..11).map(|i| format!("mailto:a{i}@example.org")).collect();
        assert_eq!(check_contacts(&many).unwrap_err().kind(), "invalidContact");
    }
}
