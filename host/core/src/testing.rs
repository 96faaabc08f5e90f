//! In-memory fakes of core's ports, for unit tests of the use cases' rules (scope, authority,
//! state machines, validation) that run in milliseconds, without SQL or HTTPS.
//!
//! [`MemoryRecords`] fakes the records port ([`Records`]) and the access port
//! ([`AccessPort`]: API keys, roles, operators, rate-limit windows). It keeps records as their
//! JSON bodies, selects them with the filters' in-memory meaning ([`Filter::matches`]) in key
//! order, and keeps each unit of work's writes apart until it commits. What it does not do is
//! the store's own business, tested on both databases in `sigil-store`: unique constraints,
//! row locks between concurrent units, the built-in roles the migrations seed, and the hash
//! chain (a commit records its events as given and returns no chained events).

#![allow(clippy::panic, clippy::expect_used)] // A test double: a broken fixture stops the test.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard};

use async_trait::async_trait;
use time::OffsetDateTime;

use uuid::Uuid;

use crate::access::api_key::ApiKey;
use crate::access::operator::{Operator, Role};
use crate::audit::{AuditEvent, NewAuditEvent};
use crate::error::{StoreError, StoreResult};
use crate::ports::{
    AccessPort, AccessStore, AccessTx, AccessUnit, ApiKeyFilter, OperatorFilter, PageRequest,
};
use crate::records::{
    Collection, Filter, Record, RecordQuery, RecordStore, RecordTx, RecordUnit, Records, Row,
};

type Rows = BTreeMap<(Collection, String), String>;

/// What a unit of work reads and writes: records and the access tables.
#[derive(Debug, Default, Clone)]
struct Tables {
    rows: Rows,
    api_keys: BTreeMap<Uuid, ApiKey>,
    roles: BTreeMap<String, Role>,
    operators: BTreeMap<Uuid, Operator>,
    ui_sessions: BTreeMap<String, crate::access::ui_session::UiSession>,
}

#[derive(Debug, Default)]
struct State {
    tables: Tables,
    /// Commits so far: a unit that began before another committed may not commit (the store
    /// would have serialised the two; the fake refuses rather than lose a write).
    version: u64,
    rate_windows: BTreeMap<(String, i64), (i64, i64)>,
    events: Vec<NewAuditEvent>,
}

/// Records in memory, shared by clones.
#[derive(Debug, Default, Clone)]
pub struct MemoryRecords {
    state: Arc<Mutex<State>>,
}

fn lock(m: &Mutex<State>) -> MutexGuard<'_, State> {
    // A test that panicked while holding the lock has failed already; its data is still usable.
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Whether `filter` selects the record stored as `body`. A body that does not decode stops the
/// test: the real store would return it and the caller's decoding would fail, which a fake
/// that skipped it would hide.
fn selects(filter: &Filter, body: &str) -> bool {
    fn with<R: Record>(filter: &Filter, body: &str) -> bool {
        match R::from_body(body) {
            Ok(r) => filter.matches(r.row()),
            Err(e) => panic!("MemoryRecords holds a corrupt record: {e}"),
        }
    }
    use crate::cards::device::{Device, DeviceEvent};
    use crate::cards::enrolment::EnrolmentRequest;
    use crate::cards::unlock::DeviceSecret;
    use crate::org::{Division, Office, Organization};
    use crate::people::{CustomField, Person};
    use crate::signing::credential::{CscProvider, CscToken, Signer, SigningCredential};
    match filter.collection() {
        Collection::Organizations => with::<Organization>(filter, body),
        Collection::Divisions => with::<Division>(filter, body),
        Collection::Offices => with::<Office>(filter, body),
        Collection::CustomFields => with::<CustomField>(filter, body),
        Collection::People => with::<Person>(filter, body),
        Collection::Requests => with::<EnrolmentRequest>(filter, body),
        Collection::Devices => with::<Device>(filter, body),
        Collection::DeviceEvents => with::<DeviceEvent>(filter, body),
        Collection::DeviceSecrets => with::<DeviceSecret>(filter, body),
        Collection::Signers => with::<Signer>(filter, body),
        Collection::Credentials => with::<SigningCredential>(filter, body),
        Collection::Providers => with::<CscProvider>(filter, body),
        Collection::Tokens => with::<CscToken>(filter, body),
        Collection::AcmeAccounts => with::<crate::acme::model::AcmeAccount>(filter, body),
        Collection::AcmeOrders => with::<crate::acme::model::AcmeOrder>(filter, body),
        Collection::AcmeAuthzs => with::<crate::acme::model::AcmeAuthz>(filter, body),
        Collection::AcmeEabKeys => with::<crate::acme::model::EabKey>(filter, body),
    }
}

fn query(rows: &Rows, q: &RecordQuery) -> Vec<String> {
    let c = q.filter.collection();
    let limit = if q.limit == 0 { usize::MAX } else { q.limit as usize };
    rows.iter()
        .filter(|((rc, key), _)| *rc == c && q.after.as_ref().is_none_or(|a| key > a))
        .filter(|(_, body)| selects(&q.filter, body))
        .map(|(_, body)| body.clone())
        .take(limit)
        .collect()
}

impl MemoryRecords {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    /// Puts `r` in place without a unit of work or an audit event: a test's fixture.
    pub fn put<R: Record>(&self, r: &R) {
        let row = r.row();
        let body = row.body().expect("a fixture that encodes");
        lock(&self.state).tables.rows.insert((row.collection(), row.key()), body);
    }

    /// The audit events committed so far, oldest first.
    pub fn events(&self) -> Vec<NewAuditEvent> {
        lock(&self.state).events.clone()
    }

    /// How many records `c` holds.
    pub fn count(&self, c: Collection) -> usize {
        lock(&self.state).tables.rows.keys().filter(|(rc, _)| *rc == c).count()
    }
}

#[async_trait]
impl RecordStore for MemoryRecords {
    async fn record(&self, c: Collection, key: &str) -> StoreResult<Option<String>> {
        Ok(lock(&self.state).tables.rows.get(&(c, key.to_owned())).cloned())
    }

    async fn records(&self, q: &RecordQuery) -> StoreResult<Vec<String>> {
        Ok(query(&lock(&self.state).tables.rows, q))
    }

    async fn count_records(&self, filter: &Filter) -> StoreResult<i64> {
        let n = query(&lock(&self.state).tables.rows, &RecordQuery::all(filter.clone())).len();
        Ok(i64::try_from(n).unwrap_or(i64::MAX))
    }
}

#[async_trait]
impl Records for MemoryRecords {
    async fn begin_records(&self) -> StoreResult<Box<dyn RecordUnit>> {
        Ok(Box::new(self.unit()))
    }
}

/// A unit of work over [`MemoryRecords`]: it works on its own copy of the tables, taken at its
/// start, and replaces the shared tables with it at commit (tests run their units one after
/// another; the store's locking between concurrent units is tested in `sigil-store`).
#[derive(Debug)]
pub struct MemoryUnit {
    shared: Arc<Mutex<State>>,
    view: Tables,
    version: u64,
}

impl MemoryRecords {
    fn unit(&self) -> MemoryUnit {
        let state = lock(&self.state);
        MemoryUnit {
            shared: Arc::clone(&self.state),
            view: state.tables.clone(),
            version: state.version,
        }
    }
}

impl MemoryUnit {
    fn put(&mut self, row: Row<'_>, must_exist: bool) -> StoreResult<()> {
        let (c, key) = (row.collection(), row.key());
        let exists = self.view.rows.contains_key(&(c, key.clone()));
        if must_exist && !exists {
            return Err(StoreError::NotFound);
        }
        if !must_exist && exists {
            return Err(StoreError::Conflict { constraint: "primary key".into() });
        }
        let body = row.body().map_err(|e| StoreError::Backend(e.to_string()))?;
        self.view.rows.insert((c, key), body);
        Ok(())
    }

    fn finish(self, events: Vec<NewAuditEvent>) -> StoreResult<()> {
        let mut state = lock(&self.shared);
        if state.version != self.version {
            return Err(StoreError::Backend(
                "MemoryRecords: another unit of work committed meanwhile".into(),
            ));
        }
        state.tables = self.view;
        state.version += 1;
        state.events.extend(events);
        Ok(())
    }
}

#[async_trait]
impl RecordTx for MemoryUnit {
    async fn insert_record(&mut self, row: Row<'_>) -> StoreResult<()> {
        self.put(row, false)
    }

    async fn update_record(&mut self, row: Row<'_>) -> StoreResult<()> {
        self.put(row, true)
    }

    async fn delete_record(&mut self, c: Collection, key: &str) -> StoreResult<()> {
        self.view.rows.remove(&(c, key.to_owned()));
        Ok(())
    }

    async fn record_for_update(&mut self, c: Collection, key: &str) -> StoreResult<Option<String>> {
        Ok(self.view.rows.get(&(c, key.to_owned())).cloned())
    }

    async fn records_in_tx(&mut self, q: &RecordQuery) -> StoreResult<Vec<String>> {
        Ok(query(&self.view.rows, q))
    }
}

#[async_trait]
impl RecordUnit for MemoryUnit {
    async fn commit(
        self: Box<Self>,
        events: Vec<NewAuditEvent>,
        _now: OffsetDateTime,
    ) -> StoreResult<Vec<AuditEvent>> {
        self.finish(events)?;
        Ok(Vec::new())
    }
}

#[async_trait]
impl AccessUnit for MemoryUnit {
    async fn commit(
        self: Box<Self>,
        events: Vec<NewAuditEvent>,
        _now: OffsetDateTime,
    ) -> StoreResult<Vec<AuditEvent>> {
        self.finish(events)?;
        Ok(Vec::new())
    }
}

#[async_trait]
impl AccessPort for MemoryRecords {
    async fn begin_access(&self) -> StoreResult<Box<dyn AccessUnit>> {
        Ok(Box::new(self.unit()))
    }
}

/// A page of `items` (in id order) after the page's cursor.
fn page_of<T: Clone>(items: impl Iterator<Item = (String, T)>, page: &PageRequest) -> Vec<T> {
    items
        .filter(|(id, _)| page.after.as_ref().is_none_or(|a| id > a))
        .take(page.limit as usize)
        .map(|(_, t)| t)
        .collect()
}

/// Replaces an existing entry; a missing one is [`StoreError::NotFound`], as the store's
/// update of no row.
fn replace<K: Ord, V: Clone>(map: &mut BTreeMap<K, V>, key: &K, value: &V) -> StoreResult<()> {
    let slot = map.get_mut(key).ok_or(StoreError::NotFound)?;
    *slot = value.clone();
    Ok(())
}

fn contains(text: &str, part: &str) -> bool {
    text.to_lowercase().contains(&part.to_lowercase())
}

#[async_trait]
impl AccessStore for MemoryRecords {
    async fn count_api_keys(&self) -> StoreResult<i64> {
        Ok(i64::try_from(lock(&self.state).tables.api_keys.len()).unwrap_or(i64::MAX))
    }

    async fn api_key(&self, id: Uuid) -> StoreResult<Option<ApiKey>> {
        Ok(lock(&self.state).tables.api_keys.get(&id).cloned())
    }

    async fn api_key_by_prefix(&self, prefix: &str) -> StoreResult<Option<ApiKey>> {
        let s = lock(&self.state);
        let found = s
            .tables
            .api_keys
            .values()
            .find(|k| k.prefix == prefix || k.previous_prefix.as_deref() == Some(prefix));
        Ok(found.cloned())
    }

    async fn api_key_by_certificate(&self, sha256: &str) -> StoreResult<Option<ApiKey>> {
        let s = lock(&self.state);
        let found =
            s.tables.api_keys.values().find(|k| k.client_cert_sha256.as_deref() == Some(sha256));
        Ok(found.cloned())
    }

    async fn list_api_keys(
        &self,
        f: &ApiKeyFilter,
        page: &PageRequest,
    ) -> StoreResult<Vec<ApiKey>> {
        let s = lock(&self.state);
        let now = f.now.unwrap_or(OffsetDateTime::UNIX_EPOCH);
        let keys = s.tables.api_keys.values().filter(|k| {
            f.name_contains.as_ref().is_none_or(|n| contains(&k.name, n))
                && f.operator_id.as_ref().is_none_or(|o| k.operator_id.as_ref() == Some(o))
                && f.parent_id.is_none_or(|p| k.parent_id == Some(p))
                && f.status.is_none_or(|st| k.status(now) == st)
        });
        Ok(page_of(keys.map(|k| (k.id.to_string(), k.clone())), page))
    }

    async fn roles(&self) -> StoreResult<Vec<Role>> {
        Ok(lock(&self.state).tables.roles.values().cloned().collect())
    }

    async fn operator(&self, id: Uuid) -> StoreResult<Option<Operator>> {
        Ok(lock(&self.state).tables.operators.get(&id).cloned())
    }

    async fn operator_by_certificate(&self, sha256: &str) -> StoreResult<Option<Operator>> {
        let s = lock(&self.state);
        let found =
            s.tables.operators.values().find(|o| o.client_cert_sha256.as_deref() == Some(sha256));
        Ok(found.cloned())
    }

    async fn list_operators(
        &self,
        f: &OperatorFilter,
        page: &PageRequest,
    ) -> StoreResult<Vec<Operator>> {
        let s = lock(&self.state);
        let ops = s.tables.operators.values().filter(|o| {
            f.enabled.is_none_or(|e| o.enabled == e)
                && f.role.as_ref().is_none_or(|r| o.roles.contains(r))
                && f.name_contains
                    .as_ref()
                    .is_none_or(|n| contains(&o.username, n) || contains(&o.display_name, n))
        });
        Ok(page_of(ops.map(|o| (o.id.to_string(), o.clone())), page))
    }

    async fn rate_limit_hit(
        &self,
        key: &str,
        window_start: i64,
        window_end: i64,
    ) -> StoreResult<i64> {
        let mut s = lock(&self.state);
        let w = s.rate_windows.entry((key.to_owned(), window_start)).or_insert((window_end, 0));
        w.1 += 1;
        Ok(w.1)
    }

    async fn touch_api_key(&self, id: Uuid, now_us: i64) -> StoreResult<()> {
        if let Some(k) = lock(&self.state).tables.api_keys.get_mut(&id) {
            let t = crate::audit::from_unix_micros(now_us);
            if k.last_used_at.is_none_or(|l| l < t) {
                k.last_used_at = Some(t);
            }
        }
        Ok(())
    }

    async fn ui_session(
        &self,
        token_hash: &str,
    ) -> StoreResult<Option<crate::access::ui_session::UiSession>> {
        Ok(lock(&self.state).tables.ui_sessions.get(token_hash).cloned())
    }

    async fn touch_ui_session(&self, token_hash: &str, now_us: i64) -> StoreResult<()> {
        if let Some(s) = lock(&self.state).tables.ui_sessions.get_mut(token_hash) {
            s.last_seen_at = crate::audit::from_unix_micros(now_us);
        }
        Ok(())
    }

    async fn prune_ui_sessions(&self, before_us: i64) -> StoreResult<u64> {
        let mut s = lock(&self.state);
        let n = s.tables.ui_sessions.len();
        let before = crate::audit::from_unix_micros(before_us);
        s.tables.ui_sessions.retain(|_, v| v.expires_at >= before);
        Ok(u64::try_from(n - s.tables.ui_sessions.len()).unwrap_or(0))
    }

    async fn rate_limit_prune(&self, before: i64) -> StoreResult<u64> {
        let mut s = lock(&self.state);
        let n = s.rate_windows.len();
        s.rate_windows.retain(|_, (end, _)| *end >= before);
        Ok(u64::try_from(n - s.rate_windows.len()).unwrap_or(0))
    }
}

impl MemoryUnit {
    /// The store's unique indexes on API keys: name, prefixes, client certificate.
    fn unique_key(&self, key: &ApiKey) -> StoreResult<()> {
        let clash = |c: &str| Err(StoreError::Conflict { constraint: c.into() });
        for k in self.view.api_keys.values().filter(|k| k.id != key.id) {
            if k.name == key.name {
                return clash("api_keys.name");
            }
            if k.prefix == key.prefix
                || (k.previous_prefix.is_some() && k.previous_prefix == key.previous_prefix)
            {
                return clash("api_keys.key_prefix");
            }
            if k.client_cert_sha256.is_some() && k.client_cert_sha256 == key.client_cert_sha256 {
                return clash("api_keys.client_cert_sha256");
            }
        }
        Ok(())
    }

    /// The store's unique indexes on operators: username, client certificate.
    fn unique_operator(&self, op: &Operator) -> StoreResult<()> {
        let clash = |c: &str| Err(StoreError::Conflict { constraint: c.into() });
        for o in self.view.operators.values().filter(|o| o.id != op.id) {
            if o.username == op.username {
                return clash("operators.username");
            }
            if o.client_cert_sha256.is_some() && o.client_cert_sha256 == op.client_cert_sha256 {
                return clash("operators.client_cert_sha256");
            }
        }
        Ok(())
    }
}

#[async_trait]
impl AccessTx for MemoryUnit {
    async fn insert_api_key(&mut self, key: &ApiKey) -> StoreResult<()> {
        if self.view.api_keys.contains_key(&key.id) {
            return Err(StoreError::Conflict { constraint: "api_keys.id".into() });
        }
        self.unique_key(key)?;
        self.view.api_keys.insert(key.id, key.clone());
        Ok(())
    }

    async fn api_key_for_update(&mut self, id: Uuid) -> StoreResult<Option<ApiKey>> {
        Ok(self.view.api_keys.get(&id).cloned())
    }

    async fn update_api_key(&mut self, key: &ApiKey) -> StoreResult<()> {
        self.unique_key(key)?;
        replace(&mut self.view.api_keys, &key.id, key)
    }

    async fn insert_role(&mut self, role: &Role) -> StoreResult<()> {
        if self.view.roles.contains_key(&role.name) {
            return Err(StoreError::Conflict { constraint: "roles.name".into() });
        }
        self.view.roles.insert(role.name.clone(), role.clone());
        Ok(())
    }

    async fn update_role(&mut self, role: &Role) -> StoreResult<()> {
        replace(&mut self.view.roles, &role.name, role)
    }

    async fn delete_role(&mut self, name: &str) -> StoreResult<()> {
        self.view.roles.remove(name).map(|_| ()).ok_or(StoreError::NotFound)
    }

    async fn role_for_update(&mut self, name: &str) -> StoreResult<Option<Role>> {
        Ok(self.view.roles.get(name).cloned())
    }

    async fn count_role_holders(&mut self, name: &str) -> StoreResult<i64> {
        let n = self.view.operators.values().filter(|o| o.roles.iter().any(|r| r == name)).count();
        Ok(i64::try_from(n).unwrap_or(i64::MAX))
    }

    async fn insert_operator(&mut self, op: &Operator) -> StoreResult<()> {
        if self.view.operators.contains_key(&op.id) {
            return Err(StoreError::Conflict { constraint: "operators.id".into() });
        }
        self.unique_operator(op)?;
        self.view.operators.insert(op.id, op.clone());
        Ok(())
    }

    async fn operator_for_update(&mut self, id: Uuid) -> StoreResult<Option<Operator>> {
        Ok(self.view.operators.get(&id).cloned())
    }

    async fn update_operator(&mut self, op: &Operator) -> StoreResult<()> {
        self.unique_operator(op)?;
        replace(&mut self.view.operators, &op.id, op)
    }

    async fn insert_ui_session(
        &mut self,
        s: &crate::access::ui_session::UiSession,
    ) -> StoreResult<()> {
        if self.view.ui_sessions.contains_key(&s.token_hash) {
            return Err(StoreError::Conflict { constraint: "ui_sessions.token_hash".into() });
        }
        self.view.ui_sessions.insert(s.token_hash.clone(), s.clone());
        Ok(())
    }

    async fn delete_ui_session(&mut self, token_hash: &str) -> StoreResult<Option<Uuid>> {
        Ok(self.view.ui_sessions.remove(token_hash).map(|s| s.id))
    }

    async fn end_ui_sessions(
        &mut self,
        owner: &crate::access::ui_session::SessionOwner,
    ) -> StoreResult<u64> {
        use crate::access::ui_session::SessionOwner;
        let keys: Vec<Uuid> = match owner {
            SessionOwner::Key(k) => vec![*k],
            SessionOwner::Operator(o) => self
                .view
                .api_keys
                .values()
                .filter(|k| k.operator_id.as_deref() == Some(o.as_str()))
                .map(|k| k.id)
                .collect(),
        };
        let n = self.view.ui_sessions.len();
        self.view.ui_sessions.retain(|_, s| !keys.contains(&s.api_key_id));
        Ok(u64::try_from(n - self.view.ui_sessions.len()).unwrap_or(0))
    }
}

/// A clock a test moves by hand.
#[derive(Debug, Clone)]
pub struct TestClock {
    now: Arc<Mutex<OffsetDateTime>>,
}

impl TestClock {
    /// A clock at the current time (to the microsecond, as the store keeps it).
    pub fn new() -> Self {
        use crate::ports::Clock as _;
        Self { now: Arc::new(Mutex::new(crate::ports::SystemClock.now())) }
    }

    /// Moves the clock on by `d`.
    pub fn advance(&self, d: time::Duration) {
        let mut now = self.now.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        *now += d;
    }
}

impl Default for TestClock {
    fn default() -> Self {
        Self::new()
    }
}

impl crate::ports::Clock for TestClock {
    fn now(&self) -> OffsetDateTime {
        *self.now.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}
