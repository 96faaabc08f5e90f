//! The access area's storage ports: reads and writes of API keys, roles, operators and the
//! shared rate-limit windows, and `AccessPort`, the narrow port its use cases take (faked by
//! `MemoryRecords` in the `testing` module).

use async_trait::async_trait;
use time::OffsetDateTime;
use uuid::Uuid;

use crate::access::api_key::{ApiKey, ApiKeyFilter};
use crate::access::operator::{Operator, OperatorFilter, Role};
use crate::audit::{AuditEvent, NewAuditEvent};
use crate::error::StoreResult;
use crate::page::PageRequest;

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
    /// Records a key's last use (never moving it back).
    async fn touch_api_key(&self, id: Uuid, now_us: i64) -> StoreResult<()>;

    /// The UI session whose token hashes to `token_hash`.
    async fn ui_session(
        &self,
        token_hash: &str,
    ) -> StoreResult<Option<crate::access::ui_session::UiSession>>;
    /// Records a UI session's latest request.
    async fn touch_ui_session(&self, token_hash: &str, now_us: i64) -> StoreResult<()>;
    /// Removes UI sessions that ended before `before_us`; returns how many.
    async fn prune_ui_sessions(&self, before_us: i64) -> StoreResult<u64>;

    /// Removes windows that ended before `before`.
    async fn rate_limit_prune(&self, before: i64) -> StoreResult<u64>;
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

    /// Inserts a UI session.
    async fn insert_ui_session(
        &mut self,
        s: &crate::access::ui_session::UiSession,
    ) -> StoreResult<()>;
    /// Deletes the UI session whose token hashes to `token_hash`; returns its id if it existed.
    async fn delete_ui_session(&mut self, token_hash: &str) -> StoreResult<Option<Uuid>>;
    /// Ends every UI session of `owner`; returns how many there were.
    async fn end_ui_sessions(
        &mut self,
        owner: &crate::access::ui_session::SessionOwner,
    ) -> StoreResult<u64>;
}
