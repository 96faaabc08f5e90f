//! Ports: the traits core owns and other crates implement (storage in `sigil-store`, crypto in
//! `sigil-pki`). Writes go through a [`Tx`] whose only way to commit takes the audit events of the
//! change, so a change without its audit trail cannot be committed.

use crate::ErrorCode;
use async_trait::async_trait;
use time::OffsetDateTime;
use uuid::Uuid;

use crate::access::api_key::ApiKey;
use crate::access::operator::{Operator, Role};
use crate::audit::{AuditEvent, Checkpoint, NewAuditEvent};
use crate::certs::Certificate;
use crate::certs::ca::{CaRecord, RevokedEntry};
use crate::certs::profile::Profile;

pub use crate::access::api_key::ApiKeyFilter;
pub use crate::access::operator::OperatorFilter;
pub use crate::audit::{AuditFilter, AuditHead, AuditKeyRecord};
pub use crate::certs::ca::CrlRecord;
pub use crate::certs::{CertFilter, CertSort, cert_cursor, parse_cert_cursor};
pub use crate::error::StoreResult;

/// The source of time. Services never read the system clock themselves.
pub trait Clock: Send + Sync {
    /// Now, in UTC.
    fn now(&self) -> OffsetDateTime;
}

/// The real clock, truncated to the microsecond precision the store keeps.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> OffsetDateTime {
        crate::audit::from_unix_micros(crate::audit::unix_micros(OffsetDateTime::now_utc()))
    }
}

/// A request for one page of a list.
#[derive(Debug, Clone, Default)]
pub struct PageRequest {
    /// Opaque position after which to continue (from the previous page's `next_cursor`).
    pub after: Option<String>,
    /// Page size (already clamped by the service).
    pub limit: u32,
}

/// A change that is one statement (or a conditional update) and needs no read by the caller
/// first; such changes can be group-committed.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum WriteOp {
    /// Insert an issued certificate.
    InsertCertificate(Box<Certificate>),
    /// Claim the one renewal of certificate `renewed_from` for `renewal`: a second claim is
    /// [`crate::error::StoreError::Conflict`] (and nothing of the unit written).
    ClaimRenewal {
        /// The certificate renewed.
        renewed_from: Uuid,
        /// Its renewal.
        renewal: Uuid,
        /// When, microseconds.
        at_us: i64,
        /// When the renewed certificate is revoked as superseded, microseconds.
        superseded_until_us: i64,
    },
    /// Spend a SAD on a signHash: refused with [`crate::error::StoreError::Refused`] (and nothing of the
    /// unit written) when it is unknown, another's, expired, exhausted, or not for these hashes.
    ConsumeSad(crate::signing::credential::SadUse),
}

/// The database: each area's read port, and the units of work that write. Services name the
/// narrowest port they use; wiring hands them the one store.
#[async_trait]
pub trait Store:
    AccessPort + CertStore + AuditLog + SettingsStore + SigningStore + 'static
{
    /// Applies insert-only `ops` and appends `events` in one atomic unit. On SQLite concurrent
    /// callers are group-committed: one transaction carries many units, each still all-or-nothing.
    async fn commit_ops(
        &self,
        ops: Vec<WriteOp>,
        events: Vec<NewAuditEvent>,
        now: OffsetDateTime,
    ) -> StoreResult<Vec<AuditEvent>>;
    /// Which backend: `sqlite` or `postgres`.
    fn backend(&self) -> &'static str;
    /// Checks that the database answers.
    async fn ping(&self) -> StoreResult<()>;
    /// Starts a write transaction.
    async fn begin(&self) -> StoreResult<Box<dyn Tx>>;
}

/// A unit of work of the access use cases: API keys, roles and operators, and the records they
/// are checked against; committed with its audit events, as every unit is.
#[async_trait]
pub trait AccessUnit: crate::records::RecordTx + AccessTx + Send {
    /// Commits the writes and appends `events` to the audit chain, atomically.
    async fn commit(
        self: Box<Self>,
        events: Vec<NewAuditEvent>,
        now: OffsetDateTime,
    ) -> StoreResult<Vec<AuditEvent>>;
}

/// The port of the access use cases (API keys): their reads, the records they check scopes
/// and holders against, and their units of work. `sigil-store` implements it over SQL,
/// `MemoryStore` (the `testing` module) in memory.
#[async_trait]
pub trait AccessPort: crate::records::Records + AccessStore {
    /// Starts a unit of work.
    async fn begin_access(&self) -> StoreResult<Box<dyn AccessUnit>>;
}

/// Reads of API keys, roles and operators, and the shared rate-limit windows.
#[async_trait]
pub trait AccessStore: Send + Sync {
    /// Number of API keys (active or not).
    async fn count_api_keys(&self) -> StoreResult<i64>;
    /// One key by id.
    async fn api_key(&self, id: Uuid) -> StoreResult<Option<ApiKey>>;
    /// The key whose current or previous (grace-period) prefix is `prefix`.
    async fn api_key_by_prefix(&self, prefix: &str) -> StoreResult<Option<ApiKey>>;
    /// The key bound to a client certificate fingerprint.
    async fn api_key_by_certificate(&self, sha256: &str) -> StoreResult<Option<ApiKey>>;
    /// A page of keys ordered by id (creation order).
    async fn list_api_keys(&self, f: &ApiKeyFilter, page: &PageRequest)
    -> StoreResult<Vec<ApiKey>>;

    /// Every role, by name.
    async fn roles(&self) -> StoreResult<Vec<Role>>;
    /// One operator.
    async fn operator(&self, id: Uuid) -> StoreResult<Option<Operator>>;
    /// The operator bound to a client certificate fingerprint.
    async fn operator_by_certificate(&self, sha256: &str) -> StoreResult<Option<Operator>>;
    /// A page of operators ordered by id.
    async fn list_operators(
        &self,
        f: &OperatorFilter,
        page: &PageRequest,
    ) -> StoreResult<Vec<Operator>>;

    /// Counts one request in a rate-limit window and returns the window's total across all nodes.
    async fn rate_limit_hit(
        &self,
        key: &str,
        window_start: i64,
        window_end: i64,
    ) -> StoreResult<i64>;
    /// Removes windows that ended before `before`.
    async fn rate_limit_prune(&self, before: i64) -> StoreResult<u64>;
}

/// Reads of CAs, CRLs, profiles and certificates.
#[async_trait]
pub trait CertStore: Send + Sync {
    /// Every stored CA.
    async fn cas(&self) -> StoreResult<Vec<CaRecord>>;
    /// A CA's CRL state.
    async fn crl(&self, ca_id: &str) -> StoreResult<Option<CrlRecord>>;
    /// Revoked and suspended certificates of a CA.
    async fn revoked_entries(&self, ca_id: &str) -> StoreResult<Vec<RevokedEntry>>;
    /// Every profile.
    async fn profiles(&self) -> StoreResult<Vec<Profile>>;
    /// One certificate.
    async fn certificate(&self, id: Uuid) -> StoreResult<Option<Certificate>>;
    /// The certificate that renewed certificate `id`, if any.
    async fn renewal_of(&self, id: Uuid) -> StoreResult<Option<Certificate>>;
    /// Superseded certificates whose grace ended at or before `now_us`, active (not on hold,
    /// not revoked, not expired), oldest first, at most `limit`.
    async fn superseded_due(&self, now_us: i64, limit: u32) -> StoreResult<Vec<Certificate>>;
    /// A certificate by CA and serial.
    async fn certificate_by_serial(
        &self,
        ca_id: &str,
        serial: &str,
    ) -> StoreResult<Option<Certificate>>;
    /// A page of certificates. `after` is an opaque cursor produced by [`cert_cursor`].
    async fn list_certificates(
        &self,
        f: &CertFilter,
        page: &PageRequest,
    ) -> StoreResult<Vec<Certificate>>;
}

/// Reads of the audit chain, and its checkpoints and keys (which attest to the chain and are
/// not themselves audited changes).
#[async_trait]
pub trait AuditLog: Send + Sync {
    /// A page of audit events, ordered by seq ascending.
    async fn audit_events(&self, f: &AuditFilter, limit: u32) -> StoreResult<Vec<AuditEvent>>;
    /// The recorded head of the chain.
    async fn audit_head(&self) -> StoreResult<AuditHead>;
    /// Checkpoints whose counter is at least `from_counter`, ordered by counter.
    async fn audit_checkpoints(&self, from_counter: i64) -> StoreResult<Vec<Checkpoint>>;
    /// Stores a signed checkpoint (not itself an audited change: it only attests to the chain).
    /// False when its counter is taken (another node checkpointed first).
    async fn insert_audit_checkpoint(&self, c: &Checkpoint) -> StoreResult<bool>;
    /// Registers an audit public key (idempotent).
    async fn register_audit_key(&self, k: &AuditKeyRecord) -> StoreResult<()>;
    /// All registered audit keys.
    async fn audit_keys(&self) -> StoreResult<Vec<AuditKeyRecord>>;
}

/// Reads of settings changed through the API.
#[async_trait]
pub trait SettingsStore: Send + Sync {
    /// A setting's stored value (JSON text), if it was ever set through the API.
    async fn setting(&self, name: &str) -> StoreResult<Option<String>>;
}

/// Housekeeping of CSC sessions.
#[async_trait]
pub trait SigningStore: Send + Sync {
    /// Removes CSC access/refresh tokens and SADs that expired before `before` (unix µs).
    async fn csc_prune(&self, before: i64) -> StoreResult<u64>;
}

/// A write transaction over every area's tables. Dropping it without [`Tx::commit`] rolls
/// everything back.
#[async_trait]
pub trait Tx: crate::records::RecordTx + AccessTx + CertTx + SettingsTx + SigningTx + Send {
    /// Appends `events` to the audit chain and commits the whole transaction. If the audit write
    /// fails, nothing of the transaction is kept. `events` must not be empty.
    async fn commit(
        self: Box<Self>,
        events: Vec<NewAuditEvent>,
        now: OffsetDateTime,
    ) -> StoreResult<Vec<AuditEvent>>;
}

/// Writes of API keys, roles and operators.
#[async_trait]
pub trait AccessTx: Send {
    /// Inserts a new API key.
    async fn insert_api_key(&mut self, key: &ApiKey) -> StoreResult<()>;
    /// Reads a key and locks it against concurrent writers until commit.
    async fn api_key_for_update(&mut self, id: Uuid) -> StoreResult<Option<ApiKey>>;
    /// Replaces a key's mutable fields.
    async fn update_api_key(&mut self, key: &ApiKey) -> StoreResult<()>;

    /// Inserts a role.
    async fn insert_role(&mut self, role: &Role) -> StoreResult<()>;
    /// Replaces a role's description and permissions.
    async fn update_role(&mut self, role: &Role) -> StoreResult<()>;
    /// Deletes a role.
    async fn delete_role(&mut self, name: &str) -> StoreResult<()>;
    /// Reads a role and locks it until commit.
    async fn role_for_update(&mut self, name: &str) -> StoreResult<Option<Role>>;
    /// How many operators hold a role.
    async fn count_role_holders(&mut self, name: &str) -> StoreResult<i64>;
    /// Inserts an operator.
    async fn insert_operator(&mut self, op: &Operator) -> StoreResult<()>;
    /// Reads an operator and locks it until commit.
    async fn operator_for_update(&mut self, id: Uuid) -> StoreResult<Option<Operator>>;
    /// Replaces an operator's mutable fields.
    async fn update_operator(&mut self, op: &Operator) -> StoreResult<()>;
}

/// Writes of CAs, CRLs, profiles and certificates.
#[async_trait]
pub trait CertTx: Send {
    /// Inserts a CA.
    async fn insert_ca(&mut self, ca: &CaRecord) -> StoreResult<()>;
    /// Replaces a CA's sealed keys (issuing, root) with `new` when they are still `old`;
    /// whether they were replaced.
    async fn set_ca_keys(
        &mut self,
        id: &str,
        old: (&[u8], Option<&[u8]>),
        new: (&[u8], Option<&[u8]>),
    ) -> StoreResult<bool>;
    /// Stores the CA's root CRL (DER).
    async fn set_root_crl(&mut self, id: &str, der: &[u8]) -> StoreResult<()>;
    /// Removes a CA's stored root key (moved out of the database).
    async fn clear_ca_root_key(&mut self, id: &str) -> StoreResult<()>;
    /// Marks a CA's CRL as needing regeneration.
    async fn mark_crl_stale(&mut self, ca_id: &str) -> StoreResult<()>;
    /// Stores a new CRL; returns the CRL number it must carry (one more than the last).
    async fn next_crl_number(&mut self, ca_id: &str) -> StoreResult<i64>;
    /// Stores the signed CRL with its number and times.
    async fn store_crl(
        &mut self,
        ca_id: &str,
        der: &[u8],
        this_update_us: i64,
        next_update_us: i64,
    ) -> StoreResult<()>;
    /// Inserts a profile.
    async fn insert_profile(&mut self, p: &Profile) -> StoreResult<()>;
    /// Replaces a profile's rules.
    async fn update_profile(&mut self, p: &Profile) -> StoreResult<()>;
    /// Inserts a certificate.
    async fn insert_certificate(&mut self, c: &Certificate) -> StoreResult<()>;
    /// Reads a certificate and locks it until commit.
    async fn certificate_for_update(&mut self, id: Uuid) -> StoreResult<Option<Certificate>>;
    /// Replaces a certificate's mutable fields (status, revocation, metadata).
    async fn update_certificate(&mut self, c: &Certificate) -> StoreResult<()>;
    /// Moves the revocation of superseded certificate `id` to `until_us`, unless it is revoked
    /// already.
    async fn set_superseded_until(&mut self, id: Uuid, until_us: i64) -> StoreResult<()>;
    /// Cancels the revocation of superseded certificate `id` while its grace lasts (after
    /// `now_us`) and it is not revoked; whether it did.
    async fn cancel_supersession(&mut self, id: Uuid, now_us: i64) -> StoreResult<bool>;
}

/// Writes of settings.
#[async_trait]
pub trait SettingsTx: Send {
    /// A setting's value as this transaction sees it.
    async fn setting(&mut self, name: &str) -> StoreResult<Option<String>>;
    /// Creates or replaces a setting.
    async fn put_setting(
        &mut self,
        name: &str,
        value: &str,
        now_us: i64,
        by: &str,
    ) -> StoreResult<()>;
    /// Removes a setting; returns whether it existed.
    async fn delete_setting(&mut self, name: &str) -> StoreResult<bool>;
}

/// Writes of CSC signature activation data and sessions.
#[async_trait]
pub trait SigningTx: Send {
    /// Inserts a SAD.
    async fn insert_sad(&mut self, sad: &crate::signing::credential::Sad) -> StoreResult<()>;

    /// Deletes every CSC token and SAD of `signer`; returns how many.
    async fn end_csc_sessions(&mut self, signer: Uuid) -> StoreResult<u64>;
}

/// What validator plugins see of an object at a hook point.
#[derive(Debug, Clone)]
pub struct ValidationInput {
    /// Subject attributes or record fields.
    pub attributes: Vec<crate::certs::NameAttribute>,
    /// SANs.
    pub sans: Vec<crate::certs::San>,
    /// The key, when one is involved.
    pub key: Option<crate::certs::RequestKey>,
    /// Profile or record kind.
    pub context: String,
    /// The whole object, JSON.
    pub json: String,
}

/// What validator plugins decided (when none refused).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ValidationOutcome {
    /// A plugin took responsibility for the rules of this hook that overlap built-in ones (the
    /// key policy at certificate issuance).
    pub override_builtin: bool,
}

/// Validator plugins at hook points; implemented by the plugin host.
#[async_trait]
pub trait Validators: Send + Sync {
    /// Whether any validator runs at `hook` (lets callers skip building the input).
    fn active(&self, hook: &str) -> bool;
    /// Runs every validator registered for `hook`. A refusal is `CoreError::Invalid` with code
    /// `validation_failed` and the reasons; a failing fail-closed plugin is
    /// `CoreError::Dependency`.
    async fn validate(
        &self,
        hook: &str,
        input: &ValidationInput,
    ) -> crate::Result<ValidationOutcome>;
}

/// No plugins: every hook allows.
#[derive(Debug, Default, Clone, Copy)]
pub struct NoValidators;

#[async_trait]
impl Validators for NoValidators {
    fn active(&self, _hook: &str) -> bool {
        false
    }

    async fn validate(
        &self,
        _hook: &str,
        _input: &ValidationInput,
    ) -> crate::Result<ValidationOutcome> {
        Ok(ValidationOutcome::default())
    }
}

/// External identity sources (identity-source plugins); implemented by the plugin host.
#[async_trait]
pub trait IdentitySources: Send + Sync {
    /// Ids of the sources in service.
    fn sources(&self) -> Vec<String>;
    /// What `source` knows of the person `known` describes (pairs of field name and value,
    /// `attributes.<name>` for extended attributes); `Ok(None)`: no such person there. An
    /// unknown source is `Invalid` (`unknown_source`); a failing plugin is `Dependency`.
    async fn lookup(
        &self,
        source: &str,
        known: &[(String, String)],
    ) -> crate::Result<Option<Vec<(String, String)>>>;
}

/// No identity sources.
#[derive(Debug, Default, Clone, Copy)]
pub struct NoIdentitySources;

#[async_trait]
impl IdentitySources for NoIdentitySources {
    fn sources(&self) -> Vec<String> {
        Vec::new()
    }

    async fn lookup(
        &self,
        source: &str,
        _known: &[(String, String)],
    ) -> crate::Result<Option<Vec<(String, String)>>> {
        Err(crate::CoreError::invalid(
            ErrorCode::UnknownSource,
            format!("no identity source `{source}`"),
        ))
    }
}

/// The state of one loaded (or failed) plugin.
#[derive(Debug, Clone, serde::Serialize, utoipa::ToSchema)]
pub struct PluginStatus {
    /// Id from the configuration.
    pub id: String,
    /// World: `validator`, `ca-connector`, `endpoint`, `workflow`.
    pub kind: String,
    /// Hex SHA-256 of the component in service.
    pub digest: Option<String>,
    /// Generation of the plugin set it belongs to.
    pub generation: u64,
    /// `active` or `failed` (failed: the last load failed; an older version may still serve).
    pub status: String,
    /// The last load or call error.
    pub last_error: Option<String>,
    /// Calls since load.
    pub calls: u64,
    /// Calls that failed (timeout, memory limit, trap).
    pub faults: u64,
    /// Hook points it runs at.
    pub hooks: Vec<String>,
}

/// Operating the plugin set; implemented by the server.
#[async_trait]
pub trait PluginControl: Send + Sync {
    /// The current set.
    fn status(&self) -> Vec<PluginStatus>;
    /// Re-reads the configuration and plugin files and swaps in what loads.
    async fn reload(&self) -> crate::Result<Vec<PluginStatus>>;
}

/// An HTTP exchange between a plugin and Sigil.
#[derive(Debug, Clone, Default)]
pub struct PluginHttp {
    /// Method.
    pub method: String,
    /// Path (below the plugin's mount point for endpoints; an API path for `sigil-api`).
    pub path: String,
    /// Query string without `?`.
    pub query: String,
    /// Headers.
    pub headers: Vec<(String, String)>,
    /// Body.
    pub body: Vec<u8>,
}

/// A response to a [`PluginHttp`] request.
#[derive(Debug, Clone, Default)]
pub struct PluginHttpResponse {
    /// Status.
    pub status: u16,
    /// Headers.
    pub headers: Vec<(String, String)>,
    /// Body.
    pub body: Vec<u8>,
}

/// Calls into Sigil's own API on a plugin's behalf (the `sigil-api` host interface); implemented
/// by the API layer, which authorizes the call with the plugin's granted permissions.
#[async_trait]
pub trait ApiDispatcher: Send + Sync {
    /// Performs `request` as `principal`.
    async fn call(
        &self,
        principal: std::sync::Arc<crate::access::authz::Principal>,
        request: PluginHttp,
    ) -> PluginHttpResponse;
}

/// Endpoint plugins, served under `/api/v1/ext/{plugin}/…`; implemented by the plugin host.
#[async_trait]
pub trait Endpoints: Send + Sync {
    /// Handles `request` with the endpoint plugin `id` for `caller`; `None` when there is no
    /// such plugin. The plugin's own calls into Sigil's API run as
    /// [`crate::access::authz::Principal::on_behalf_of`] the caller. A caller without
    /// `plugins:invoke:<id>` (or `plugins:invoke`) is refused.
    async fn handle(
        &self,
        id: &str,
        caller: &std::sync::Arc<crate::access::authz::Principal>,
        request: PluginHttp,
    ) -> Option<crate::Result<PluginHttpResponse>>;
}

/// A lifecycle event for workflow plugins.
#[derive(Debug, Clone)]
pub struct LifecycleEvent {
    /// `certificate.issued`, `certificate.suspended`, `certificate.reactivated`,
    /// `certificate.revoked`, `certificate.renewed`.
    pub kind: String,
    /// Object type.
    pub object_type: String,
    /// Object id.
    pub object_id: String,
    /// Details, JSON.
    pub json: String,
}

/// Where committed lifecycle changes are announced; implemented by the plugin host, which runs
/// the workflow plugins off the request path.
pub trait EventSink: Send + Sync {
    /// Announces a committed change. Must not block.
    fn emit(&self, event: LifecycleEvent);
}

/// Nobody listens.
#[derive(Debug, Default, Clone, Copy)]
pub struct NoEvents;

impl EventSink for NoEvents {
    fn emit(&self, _event: LifecycleEvent) {}
}
