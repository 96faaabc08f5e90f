//! Typed records over one generic storage port, for the card-management objects (organizations,
//! divisions, offices, people, requests, devices, …).
//!
//! A record is stored as its JSON `body` (the source of truth) plus the columns it is filtered,
//! ordered and constrained by (indexed on both backends). Column names come only from the
//! static [`Table`] descriptors in this crate, never from input, so the store may write them
//! into SQL; values are always bound.

use async_trait::async_trait;
use serde::Serialize;
use serde::de::DeserializeOwned;
use uuid::Uuid;

use crate::error::StoreResult;
use crate::error::{CoreError, Result, StoreError};

/// A table of records: its name and its filter columns (besides `id` and `body`), in order.
#[derive(Debug)]
pub struct Table {
    /// SQL table name.
    pub name: &'static str,
    /// Filter columns, in the order [`Record::columns`] returns their values.
    pub columns: &'static [&'static str],
}

/// A column value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SqlValue {
    /// TEXT.
    Text(String),
    /// BIGINT.
    Int(i64),
    /// NULL.
    Null,
}

impl From<&str> for SqlValue {
    fn from(s: &str) -> Self {
        Self::Text(s.to_owned())
    }
}

impl From<String> for SqlValue {
    fn from(s: String) -> Self {
        Self::Text(s)
    }
}

impl From<Uuid> for SqlValue {
    fn from(u: Uuid) -> Self {
        Self::Text(u.to_string())
    }
}

impl From<i64> for SqlValue {
    fn from(i: i64) -> Self {
        Self::Int(i)
    }
}

impl From<bool> for SqlValue {
    fn from(b: bool) -> Self {
        Self::Int(i64::from(b))
    }
}

impl<T: Into<SqlValue>> From<Option<T>> for SqlValue {
    fn from(o: Option<T>) -> Self {
        o.map_or(Self::Null, Into::into)
    }
}

/// One stored row.
#[derive(Debug, Clone)]
pub struct RecordRow {
    /// Primary key.
    pub id: String,
    /// The record as JSON.
    pub body: String,
    /// Values of the table's columns, in order.
    pub columns: Vec<SqlValue>,
}

/// A condition on a column.
#[derive(Debug, Clone)]
pub enum Cond {
    /// `column = value`.
    Eq(&'static str, SqlValue),
    /// `column IN (values)`; an empty list matches nothing.
    In(&'static str, Vec<SqlValue>),
    /// `column >= value`.
    Gte(&'static str, i64),
    /// `column < value`.
    Lt(&'static str, i64),
    /// `lower(column)` contains the lowercased text.
    Contains(&'static str, String),
    /// `column IS NULL`.
    IsNull(&'static str),
}

/// A page query: conditions, then `id > after` in id order (UUIDv7 ids are time-ordered).
#[derive(Debug, Clone, Default)]
pub struct RecordQuery {
    /// All must hold.
    pub conds: Vec<Cond>,
    /// Continue after this id.
    pub after: Option<String>,
    /// Most rows (0: no limit, for internal reads of bounded sets).
    pub limit: u32,
}

impl RecordQuery {
    /// A query with `conds` and no paging.
    pub fn all(conds: Vec<Cond>) -> Self {
        Self { conds, after: None, limit: 0 }
    }
}

/// Reads of records.
#[async_trait]
pub trait RecordStore {
    /// The body of record `id`.
    async fn record(&self, table: &'static Table, id: &str) -> StoreResult<Option<String>>;
    /// Bodies matching `q`, in id order.
    async fn records(&self, table: &'static Table, q: &RecordQuery) -> StoreResult<Vec<String>>;
    /// How many rows match `conds`.
    async fn count_records(&self, table: &'static Table, conds: &[Cond]) -> StoreResult<i64>;
}

/// Writes of records, inside a transaction of the storage port (`Tx`).
#[async_trait]
pub trait RecordTx {
    /// Inserts a row; a unique column clash is [`StoreError::Conflict`].
    async fn insert_record(&mut self, table: &'static Table, row: &RecordRow) -> StoreResult<()>;
    /// Replaces a row's body and columns.
    async fn update_record(&mut self, table: &'static Table, row: &RecordRow) -> StoreResult<()>;
    /// Deletes a row.
    async fn delete_record(&mut self, table: &'static Table, id: &str) -> StoreResult<()>;
    /// Reads a row and locks it until commit.
    async fn record_for_update(
        &mut self,
        table: &'static Table,
        id: &str,
    ) -> StoreResult<Option<String>>;
    /// Bodies matching `q`, as this transaction sees them.
    async fn records_in_tx(
        &mut self,
        table: &'static Table,
        q: &RecordQuery,
    ) -> StoreResult<Vec<String>>;
}

/// A typed record.
pub trait Record: Serialize + DeserializeOwned + Send + Sync {
    /// Where it is stored.
    const TABLE: &'static Table;
    /// Its id.
    fn id(&self) -> Uuid;
    /// Its column values, in the order of `TABLE.columns`.
    fn columns(&self) -> Vec<SqlValue>;

    /// The row to store.
    fn to_row(&self) -> Result<RecordRow> {
        Ok(RecordRow {
            id: self.id().to_string(),
            body: serde_json::to_string(self)
                .map_err(|e| CoreError::Internal(format!("encoding a record: {e}")))?,
            columns: self.columns(),
        })
    }

    /// Decodes a stored body.
    fn from_body(body: &str) -> Result<Self> {
        serde_json::from_str(body)
            .map_err(|e| CoreError::Storage(format!("corrupt {} record: {e}", Self::TABLE.name)))
    }
}

/// Decodes many bodies.
pub fn decode_all<R: Record>(bodies: Vec<String>) -> Result<Vec<R>> {
    bodies.iter().map(|b| R::from_body(b)).collect()
}

/// Turns a unique-constraint clash into a conflict with a stable `code` and a clear message.
pub fn conflict_as(code: &'static str, detail: String) -> impl FnOnce(StoreError) -> CoreError {
    move |e| match e {
        StoreError::Conflict { .. } => CoreError::conflict(code, detail),
        other => other.into(),
    }
}

/// The condition restricting a list to what `scope` sees, on `column` (None: no restriction).
pub fn scope_condition(scope: &crate::access::scope::Scope, column: &'static str) -> Option<Cond> {
    scope
        .office_set()
        .map(|offices| Cond::In(column, offices.iter().map(|o| SqlValue::from(*o)).collect()))
}
