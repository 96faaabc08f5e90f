//! In-memory fakes of core's ports, for unit tests of the use cases' rules (scope, state
//! machines, validation) that run in milliseconds, without SQL or HTTPS.
//!
//! [`MemoryRecords`] keeps records as their JSON bodies, selects them with the filters'
//! in-memory meaning ([`Filter::matches`]) in key order, and keeps each unit of work's writes
//! apart until it commits. What it does not do is the store's own business, tested on both
//! databases in `sigil-store`: unique constraints, row locks between concurrent units, and the
//! hash chain (a commit records its events as given and returns no chained events).

#![allow(clippy::panic, clippy::expect_used)] // A test double: a broken fixture stops the test.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard};

use async_trait::async_trait;
use time::OffsetDateTime;

use crate::audit::{AuditEvent, NewAuditEvent};
use crate::error::{StoreError, StoreResult};
use crate::records::{
    Collection, Filter, Record, RecordQuery, RecordStore, RecordTx, RecordUnit, Records, Row,
};

type Rows = BTreeMap<(Collection, String), String>;

#[derive(Debug, Default)]
struct State {
    rows: Rows,
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
        lock(&self.state).rows.insert((row.collection(), row.key()), body);
    }

    /// The audit events committed so far, oldest first.
    pub fn events(&self) -> Vec<NewAuditEvent> {
        lock(&self.state).events.clone()
    }

    /// How many records `c` holds.
    pub fn count(&self, c: Collection) -> usize {
        lock(&self.state).rows.keys().filter(|(rc, _)| *rc == c).count()
    }
}

#[async_trait]
impl RecordStore for MemoryRecords {
    async fn record(&self, c: Collection, key: &str) -> StoreResult<Option<String>> {
        Ok(lock(&self.state).rows.get(&(c, key.to_owned())).cloned())
    }

    async fn records(&self, q: &RecordQuery) -> StoreResult<Vec<String>> {
        Ok(query(&lock(&self.state).rows, q))
    }

    async fn count_records(&self, filter: &Filter) -> StoreResult<i64> {
        let n = query(&lock(&self.state).rows, &RecordQuery::all(filter.clone())).len();
        Ok(i64::try_from(n).unwrap_or(i64::MAX))
    }
}

#[async_trait]
impl Records for MemoryRecords {
    async fn begin_records(&self) -> StoreResult<Box<dyn RecordUnit>> {
        let view = lock(&self.state).rows.clone();
        Ok(Box::new(MemoryUnit { shared: Arc::clone(&self.state), view, writes: Vec::new() }))
    }
}

/// A write waiting for its unit's commit.
#[derive(Debug)]
enum Write {
    Put(Collection, String, String),
    Delete(Collection, String),
}

/// A unit of work over [`MemoryRecords`]: reads see the records as they were at its start plus
/// its own writes; nothing is shared until commit.
#[derive(Debug)]
pub struct MemoryUnit {
    shared: Arc<Mutex<State>>,
    view: Rows,
    writes: Vec<Write>,
}

impl MemoryUnit {
    fn put(&mut self, row: Row<'_>, must_exist: bool) -> StoreResult<()> {
        let (c, key) = (row.collection(), row.key());
        let exists = self.view.contains_key(&(c, key.clone()));
        if must_exist && !exists {
            return Err(StoreError::NotFound);
        }
        if !must_exist && exists {
            return Err(StoreError::Conflict { constraint: "primary key".into() });
        }
        let body = row.body().map_err(|e| StoreError::Backend(e.to_string()))?;
        self.view.insert((c, key.clone()), body.clone());
        self.writes.push(Write::Put(c, key, body));
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
        self.view.remove(&(c, key.to_owned()));
        self.writes.push(Write::Delete(c, key.to_owned()));
        Ok(())
    }

    async fn record_for_update(&mut self, c: Collection, key: &str) -> StoreResult<Option<String>> {
        Ok(self.view.get(&(c, key.to_owned())).cloned())
    }

    async fn records_in_tx(&mut self, q: &RecordQuery) -> StoreResult<Vec<String>> {
        Ok(query(&self.view, q))
    }
}

#[async_trait]
impl RecordUnit for MemoryUnit {
    async fn commit(
        self: Box<Self>,
        events: Vec<NewAuditEvent>,
        _now: OffsetDateTime,
    ) -> StoreResult<Vec<AuditEvent>> {
        let mut state = lock(&self.shared);
        for w in self.writes {
            match w {
                Write::Put(c, k, body) => {
                    state.rows.insert((c, k), body);
                }
                Write::Delete(c, k) => {
                    state.rows.remove(&(c, k));
                }
            }
        }
        state.events.extend(events);
        Ok(Vec::new())
    }
}
