//! ACME (RFC 8555): certificates for servers and devices through the protocol every client
//! speaks, served per ACME-enabled profile (ARCHITECTURE §9.5).
//!
//! - [`model`]: accounts, orders, authorizations and their challenges, binding keys;
//! - [`jws`]: the signed requests (parsing, header rules, key thumbprints); the signature is
//!   checked by a [`jws::JwsVerifier`] (`sigil-pki`);
//! - [`accounts`] and [`orders`]: the use cases of [`AcmeService`];
//! - [`validation`]: the challenge checks (a [`validation::ChallengeValidator`], implemented by
//!   the server with its network guard), run off the request path with bounded concurrency;
//! - [`store`]: the nonces every node shares.
//!
//! An ACME account acts as a principal of its own kind (`acme_account` in the audit trail)
//! that holds no permission but the one step it takes through the ordinary services: issuing
//! through [`crate::certs::certificates::CertificateService`] (profile rules, validator plugins,
//! the profile's back end), so every ACME certificate is an ordinary Sigil certificate.

pub mod accounts;
pub mod admin;
pub mod error;
pub mod jws;
pub mod model;
pub mod orders;
pub mod renewal;
pub mod revocation;
pub mod store;
pub mod validation;

use std::sync::Arc;

use uuid::Uuid;

use crate::access::authz::{ActorKind, PermissionSet, Principal, RequestContext};
use crate::certs::certificates::CertificateService;
use crate::certs::profile::Profile;
use crate::ports::{Clock, Store};
pub use error::AcmeError;

/// How long a nonce may wait to be used.
pub const NONCE_LIFETIME: time::Duration = time::Duration::hours(1);

/// Settings (`[acme]`).
#[derive(Debug, Clone)]
pub struct AcmeSettings {
    /// Whether ACME is served at all.
    pub enabled: bool,
    /// Whether new accounts must be bound to an external account binding key.
    pub eab_required: bool,
    /// Challenge validations running at once on this node.
    pub max_validations: usize,
}

impl Default for AcmeSettings {
    fn default() -> Self {
        Self { enabled: false, eab_required: false, max_validations: 16 }
    }
}

/// The URLs of one profile's ACME server, from the base the client reached (`https://host`).
#[derive(Debug, Clone)]
pub struct Urls {
    root: String,
}

impl Urls {
    /// The URLs under `base` (scheme and authority, no trailing slash) for `profile`.
    pub fn new(base: &str, profile: &str) -> Self {
        Self { root: format!("{}/acme/{profile}", base.trim_end_matches('/')) }
    }

    /// The directory.
    pub fn directory(&self) -> String {
        format!("{}/directory", self.root)
    }
    /// newNonce.
    pub fn new_nonce(&self) -> String {
        format!("{}/new-nonce", self.root)
    }
    /// newAccount.
    pub fn new_account(&self) -> String {
        format!("{}/new-account", self.root)
    }
    /// newOrder.
    pub fn new_order(&self) -> String {
        format!("{}/new-order", self.root)
    }
    /// revokeCert.
    pub fn revoke_cert(&self) -> String {
        format!("{}/revoke-cert", self.root)
    }
    /// keyChange.
    pub fn key_change(&self) -> String {
        format!("{}/key-change", self.root)
    }
    /// renewalInfo (RFC 9773).
    pub fn renewal_info(&self) -> String {
        format!("{}/renewal-info", self.root)
    }
    /// An account.
    pub fn account(&self, id: Uuid) -> String {
        format!("{}/account/{id}", self.root)
    }
    /// An account's orders.
    pub fn orders(&self, id: Uuid) -> String {
        format!("{}/account/{id}/orders", self.root)
    }
    /// An order.
    pub fn order(&self, id: Uuid) -> String {
        format!("{}/order/{id}", self.root)
    }
    /// An order's finalize URL.
    pub fn finalize(&self, id: Uuid) -> String {
        format!("{}/order/{id}/finalize", self.root)
    }
    /// An authorization.
    pub fn authz(&self, id: Uuid) -> String {
        format!("{}/authz/{id}", self.root)
    }
    /// A challenge of an authorization.
    pub fn challenge(&self, authz: Uuid, kind: model::ChallengeType) -> String {
        format!("{}/chall/{authz}/{}", self.root, kind.as_str())
    }
    /// A certificate.
    pub fn certificate(&self, id: Uuid) -> String {
        format!("{}/cert/{id}", self.root)
    }
    /// The account id an account URL (a JWS `kid`) names.
    pub fn account_id(&self, kid: &str) -> Option<Uuid> {
        let rest = kid.strip_prefix(&self.root)?.strip_prefix("/account/")?;
        Uuid::parse_str(rest).ok()
    }
}

/// The ACME use cases.
pub struct AcmeService {
    store: Arc<dyn Store>,
    clock: Arc<dyn Clock>,
    certificates: Arc<CertificateService>,
    verifier: Arc<dyn jws::JwsVerifier>,
    validator: Arc<dyn validation::ChallengeValidator>,
    settings: AcmeSettings,
    validations: Arc<tokio::sync::Semaphore>,
    eab: Option<Arc<dyn admin::EabSealer>>,
}

impl std::fmt::Debug for AcmeService {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AcmeService").field("settings", &self.settings).finish_non_exhaustive()
    }
}

impl AcmeService {
    /// Wires the service.
    pub fn new(
        store: Arc<dyn Store>,
        clock: Arc<dyn Clock>,
        certificates: Arc<CertificateService>,
        verifier: Arc<dyn jws::JwsVerifier>,
        validator: Arc<dyn validation::ChallengeValidator>,
        settings: AcmeSettings,
    ) -> Self {
        let validations = Arc::new(tokio::sync::Semaphore::new(settings.max_validations.max(1)));
        Self { store, clock, certificates, verifier, validator, settings, validations, eab: None }
    }

    /// Seals external account binding keys with `sealer` (without one, none can be made).
    #[must_use]
    pub fn with_eab(mut self, sealer: Arc<dyn admin::EabSealer>) -> Self {
        self.eab = Some(sealer);
        self
    }

    /// The settings.
    pub fn settings(&self) -> &AcmeSettings {
        &self.settings
    }

    /// ACME-enabled profile `name`, or a 404 (ACME off, no such profile, or not for ACME).
    pub async fn profile(&self, name: &str) -> Result<Profile, AcmeError> {
        if !self.settings.enabled {
            return Err(AcmeError::not_found("ACME directory"));
        }
        match self.certificates.profiles().find(name).await {
            Ok(p) if p.spec.acme => Ok(p.cloned()),
            // The same answer whether the profile is missing, misnamed or not for ACME: the
            // directory does not tell outsiders which profiles exist.
            Ok(_) | Err(crate::CoreError::NotFound { .. } | crate::CoreError::Invalid { .. }) => {
                Err(AcmeError::not_found("ACME directory"))
            }
            Err(e) => Err(e.into()),
        }
    }

    /// A fresh nonce, recorded for every node.
    pub async fn new_nonce(&self) -> Result<String, AcmeError> {
        let mut bytes = [0u8; 16];
        getrandom::fill(&mut bytes)
            .map_err(|e| crate::CoreError::Internal(format!("no randomness: {e}")))?;
        let nonce = jws::b64e(&bytes);
        let expires = crate::audit::unix_micros(self.clock.now() + NONCE_LIFETIME);
        self.store.acme_nonce_issue(&nonce, expires).await?;
        Ok(nonce)
    }

    /// Removes spent-out nonces (the hourly housekeeping).
    pub async fn prune(&self) -> Result<u64, AcmeError> {
        Ok(self.store.acme_nonce_prune(crate::audit::unix_micros(self.clock.now())).await?)
    }
}

/// The principal an ACME account acts as: no permission of its own (each step narrows it to
/// the one it takes), every office (its certificates belong to none).
pub fn principal(account: &model::AcmeAccount, context: RequestContext) -> Arc<Principal> {
    Arc::new(Principal {
        kind: ActorKind::AcmeAccount,
        id: account.id.to_string(),
        name: format!("ACME account {}", account.id),
        api_key_id: None,
        operator_id: None,
        holder_id: None,
        permissions: PermissionSet::default(),
        scope: crate::access::scope::Scope::All,
        context,
    })
}

/// A random base64url token of 32 bytes (challenge tokens).
fn random_token() -> Result<String, AcmeError> {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes)
        .map_err(|e| crate::CoreError::Internal(format!("no randomness: {e}")))?;
    Ok(jws::b64e(&bytes))
}
