//! Ports: the traits core owns and other crates implement (storage in `sigil-store`, crypto in
//! `sigil-pki`, plugins in `sigil-wasm`). Each area's storage ports live in its `store.rs`
//! (`access`, `certs`, `audit`, `signing`; records in `records`); here they are composed into
//! [`Store`] and [`Tx`], with the shared settings ports and the plugin ports. Writes go through
//! a unit of work whose only way to commit takes the audit events of the change, so a change
//! without its audit trail cannot be committed.

use crate::ErrorCode;
use async_trait::async_trait;
use time::OffsetDateTime;
use uuid::Uuid;

use crate::audit::{AuditEvent, NewAuditEvent};
use crate::certs::Certificate;

pub use crate::access::api_key::ApiKeyFilter;
pub use crate::access::operator::OperatorFilter;
pub use crate::access::store::{AccessPort, AccessStore, AccessTx, AccessUnit};
pub use crate::audit::store::AuditLog;
pub use crate::audit::{AuditFilter, AuditHead, AuditKeyRecord};
pub use crate::certs::ca::CrlRecord;
pub use crate::certs::store::{CertStore, CertTx};
pub use crate::certs::{CertFilter, CertSort, cert_cursor, parse_cert_cursor};
pub use crate::error::StoreResult;
pub use crate::page::PageRequest;
pub use crate::signing::store::{SigningStore, SigningTx};

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

/// A change that is one statement (or a conditional update) and needs no read by the caller
/// first; such changes can be group-committed.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum WriteOp {
    /// Insert an issued certificate. Shared, not copied: the caller answers with the same
    /// certificate once the store has committed it (and let go of its reference).
    InsertCertificate(std::sync::Arc<Certificate>),
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
    AccessPort
    + CertStore
    + AuditLog
    + SettingsStore
    + SigningStore
    + crate::acme::store::AcmeStore
    + 'static
{
    /// Applies insert-only `ops` and appends `events` in one atomic unit. Concurrent callers are
    /// group-committed (SQLite and PostgreSQL): one transaction carries many units, each still
    /// all-or-nothing. The store keeps nothing of `ops` once it has answered (a certificate shared
    /// with it is the caller's alone again).
    async fn commit_ops(
        &self,
        ops: Vec<WriteOp>,
        events: Vec<NewAuditEvent>,
        now: OffsetDateTime,
    ) -> StoreResult<()>;
    /// Which backend: `sqlite` or `postgres`.
    fn backend(&self) -> &'static str;
    /// Checks that the database answers.
    async fn ping(&self) -> StoreResult<()>;
    /// Starts a write transaction.
    async fn begin(&self) -> StoreResult<Box<dyn Tx>>;
    /// Tells `observer` of the audit events of every change committed through this store from
    /// now on (one observer; a second call replaces nothing and is ignored).
    fn observe_commits(&self, _observer: std::sync::Arc<dyn CommitObserver>) {}
    /// The connection pools' state, for metrics.
    fn pool_status(&self) -> Vec<PoolStatus> {
        Vec::new()
    }
}

/// Told of the audit events of each change this node commits, right after the commit (metrics
/// count them: every change has its events, so no service needs a metrics call of its own).
/// Must be cheap and must not block.
pub trait CommitObserver: Send + Sync + std::fmt::Debug {
    /// `event` was committed.
    fn committed(&self, event: CommittedEvent<'_>);
}

/// What a [`CommitObserver`] is told of one committed audit event: the fields a sealed event
/// shares with the event it was made from, so either can tell it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CommittedEvent<'a> {
    /// Dotted action name.
    pub action: &'a str,
    /// `success` or `failure`.
    pub outcome: &'a str,
    /// Object id.
    pub object_id: &'a str,
}

impl<'a> From<&'a AuditEvent> for CommittedEvent<'a> {
    fn from(e: &'a AuditEvent) -> Self {
        Self { action: &e.action, outcome: &e.outcome, object_id: &e.object_id }
    }
}

impl<'a> From<&'a NewAuditEvent> for CommittedEvent<'a> {
    fn from(e: &'a NewAuditEvent) -> Self {
        Self { action: &e.action, outcome: e.outcome.as_str(), object_id: &e.object_id }
    }
}

/// Connections of one database pool.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PoolStatus {
    /// `read` or `write`.
    pub pool: &'static str,
    /// Open connections.
    pub open: u32,
    /// Open and idle.
    pub idle: u32,
    /// The most it opens.
    pub max: u32,
}

/// Reads of settings changed through the API.
#[async_trait]
pub trait SettingsStore: Send + Sync {
    /// A setting's stored value (JSON text), if it was ever set through the API.
    async fn setting(&self, name: &str) -> StoreResult<Option<String>>;
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

/// Upper bounds, seconds, of the plugin call duration histogram (`/metrics`).
pub const PLUGIN_CALL_BUCKETS: [f64; 10] =
    [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0];

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
    /// Time spent in calls since load, seconds.
    pub call_seconds: f64,
    /// Calls by duration: one count per bound of [`PLUGIN_CALL_BUCKETS`], then the slower ones
    /// (metrics only).
    #[serde(skip)]
    pub call_buckets: Vec<u64>,
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

    /// Whether anything may listen for changes of `kind` (an [`crate::events::EventKind`]
    /// name): a change nobody listens for is not described (its JSON is not built). A sink that
    /// cannot tell says yes.
    fn wants(&self, _kind: &str) -> bool {
        true
    }
}

/// Announces a committed change of `kind` to object `object_id` on `sink`, describing it
/// (`json`) only when something may listen ([`EventSink::wants`]).
pub fn announce(
    sink: &dyn EventSink,
    kind: crate::events::EventKind,
    object_type: &str,
    object_id: Uuid,
    json: impl FnOnce() -> serde_json::Value,
) {
    let kind = kind.as_str();
    if !sink.wants(kind) {
        return;
    }
    sink.emit(LifecycleEvent {
        kind: kind.to_owned(),
        object_type: object_type.to_owned(),
        object_id: object_id.to_string(),
        json: json().to_string(),
    });
}

/// Nobody listens.
#[derive(Debug, Default, Clone, Copy)]
pub struct NoEvents;

impl EventSink for NoEvents {
    fn emit(&self, _event: LifecycleEvent) {}

    fn wants(&self, _kind: &str) -> bool {
        false
    }
}
