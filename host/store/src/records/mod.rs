//! The generic record tables: a JSON body (the source of truth) plus indexed filter columns.
//! Core hands over typed records and filters (`sigil_core::records`); [`map`] turns them into
//! table and column names, which come only from its static descriptors, never from input;
//! values are always bound.

mod map;

use sigil_core::StoreError;
use sigil_core::ports::StoreResult;
use sigil_core::records::{Collection, Filter, RecordQuery, Row};
use sqlx::any::AnyArguments;
use sqlx::{Any, Executor, Row as _};
use uuid::Uuid;

use crate::filter::{Param, Select};
use crate::{like_pattern, map_err};

/// A table of records: its name and its filter columns (besides `id` and `body`), in order.
#[derive(Debug)]
pub(crate) struct Table {
    /// SQL table name.
    pub(crate) name: &'static str,
    /// Filter columns, in the order `map::columns` returns their values.
    pub(crate) columns: &'static [&'static str],
}

/// A column value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum SqlValue {
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
pub(crate) struct RecordRow {
    /// Primary key.
    pub(crate) id: String,
    /// The record as JSON.
    pub(crate) body: String,
    /// Values of the table's columns, in order.
    pub(crate) columns: Vec<SqlValue>,
}

/// A condition on a column.
#[derive(Debug, Clone)]
pub(crate) enum Cond {
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
}

/// Conditions, then `id > after` in id order, at most `limit` rows (0: all).
struct Query<'a> {
    conds: Vec<Cond>,
    after: Option<&'a str>,
    limit: u32,
}

/// Bodies of the records `q` selects, in key order; `lock` is appended to the statement.
pub(crate) async fn fetch<'c, E: Executor<'c, Database = Any>>(
    e: E,
    q: &RecordQuery,
    lock: &str,
) -> StoreResult<Vec<String>> {
    let query = Query { conds: map::conds(&q.filter), after: q.after.as_deref(), limit: q.limit };
    select(e, map::table(q.filter.collection()), &query, lock).await
}

/// The body of record `key` of `c`.
pub(crate) async fn fetch_one<'c, E: Executor<'c, Database = Any>>(
    e: E,
    c: Collection,
    key: &str,
    lock: &str,
) -> StoreResult<Option<String>> {
    let query = Query { conds: vec![Cond::Eq("id", key.into())], after: None, limit: 0 };
    Ok(select(e, map::table(c), &query, lock).await?.into_iter().next())
}

/// How many records `f` selects.
pub(crate) async fn count_of<'c, E: Executor<'c, Database = Any>>(
    e: E,
    f: &Filter,
) -> StoreResult<i64> {
    count(e, map::table(f.collection()), &map::conds(f)).await
}

/// Inserts `row`.
pub(crate) async fn insert_row<'c, E: Executor<'c, Database = Any>>(
    e: E,
    row: Row<'_>,
) -> StoreResult<()> {
    let (table, r) = map::stored(row)?;
    insert(e, table, &r).await
}

/// Replaces `row`.
pub(crate) async fn update_row<'c, E: Executor<'c, Database = Any>>(
    e: E,
    row: Row<'_>,
) -> StoreResult<()> {
    let (table, r) = map::stored(row)?;
    update(e, table, &r).await
}

/// Deletes record `key` of `c`.
pub(crate) async fn delete_key<'c, E: Executor<'c, Database = Any>>(
    e: E,
    c: Collection,
    key: &str,
) -> StoreResult<()> {
    delete(e, map::table(c), key).await
}

fn param(v: &SqlValue) -> Option<Param> {
    match v {
        SqlValue::Text(t) => Some(Param::Text(t.clone())),
        SqlValue::Int(i) => Some(Param::Int(*i)),
        SqlValue::Null => None,
    }
}

/// Adds `conds` to `q`. A column not in `table` is a programming error reported as a backend
/// error rather than written into SQL.
fn apply(q: &mut Select, table: &Table, conds: &[Cond]) -> StoreResult<()> {
    let known = |c: &str| {
        if c == "id" || table.columns.contains(&c) {
            Ok(())
        } else {
            Err(StoreError::Backend(format!("{}: no column `{c}`", table.name)))
        }
    };
    for c in conds {
        match c {
            Cond::Eq(col, v) => {
                known(col)?;
                match param(v) {
                    Some(p) => q.and(&format!("{col} = ?"), [p]),
                    None => q.and_raw(&format!("{col} IS NULL")),
                };
            }
            Cond::In(col, vs) => {
                known(col)?;
                let ps: Vec<Param> = vs.iter().filter_map(param).collect();
                if ps.is_empty() {
                    q.and_raw("1 = 0");
                } else {
                    let marks = vec!["?"; ps.len()].join(", ");
                    q.and(&format!("{col} IN ({marks})"), ps);
                }
            }
            Cond::Gte(col, v) => {
                known(col)?;
                q.and(&format!("{col} >= ?"), [*v]);
            }
            Cond::Lt(col, v) => {
                known(col)?;
                q.and(&format!("{col} < ?"), [*v]);
            }
            Cond::Contains(col, text) => {
                known(col)?;
                q.and(&format!("LOWER({col}) LIKE ? ESCAPE '\\'"), [like_pattern(text)]);
            }
        }
    }
    Ok(())
}

async fn select<'c, E: Executor<'c, Database = Any>>(
    e: E,
    table: &Table,
    rq: &Query<'_>,
    lock: &str,
) -> StoreResult<Vec<String>> {
    let mut q = Select::new("body", table.name);
    apply(&mut q, table, &rq.conds)?;
    if let Some(after) = rq.after {
        q.and("id > ?", [after]);
    }
    let limit = if rq.limit > 0 { format!(" LIMIT {}", rq.limit) } else { String::new() };
    let rows = q.fetch(&format!("ORDER BY id{limit}{lock}"), e).await?;
    rows.iter().map(|r| r.try_get::<String, _>("body").map_err(map_err)).collect()
}

async fn count<'c, E: Executor<'c, Database = Any>>(
    e: E,
    table: &Table,
    conds: &[Cond],
) -> StoreResult<i64> {
    let mut q = Select::new("COUNT(*) AS n", table.name);
    apply(&mut q, table, conds)?;
    let rows = q.fetch("", e).await?;
    rows.first().map_or(Ok(0), |r| r.try_get::<i64, _>("n").map_err(map_err))
}

fn bind_all<'q>(
    mut q: sqlx::query::Query<'q, Any, AnyArguments>,
    values: &[SqlValue],
) -> sqlx::query::Query<'q, Any, AnyArguments> {
    for v in values {
        q = match v {
            SqlValue::Text(t) => q.bind(t.clone()),
            SqlValue::Int(i) => q.bind(*i),
            SqlValue::Null => q.bind(Option::<String>::None),
        };
    }
    q
}

fn check_width(table: &Table, row: &RecordRow) -> StoreResult<()> {
    if row.columns.len() == table.columns.len() {
        Ok(())
    } else {
        Err(StoreError::Backend(format!("{}: wrong number of column values", table.name)))
    }
}

async fn insert<'c, E: Executor<'c, Database = Any>>(
    e: E,
    table: &Table,
    row: &RecordRow,
) -> StoreResult<()> {
    check_width(table, row)?;
    let cols = table.columns.join(", ");
    let marks: Vec<String> = (3..table.columns.len() + 3).map(|i| format!("${i}")).collect();
    let sql = format!(
        "INSERT INTO {} (id, body, {cols}) VALUES ($1, $2, {})",
        table.name,
        marks.join(", ")
    );
    let q = sqlx::query(sqlx::AssertSqlSafe(sql)).bind(row.id.clone()).bind(row.body.clone());
    bind_all(q, &row.columns).execute(e).await.map(|_| ()).map_err(map_err)
}

async fn update<'c, E: Executor<'c, Database = Any>>(
    e: E,
    table: &Table,
    row: &RecordRow,
) -> StoreResult<()> {
    check_width(table, row)?;
    let sets: Vec<String> =
        table.columns.iter().enumerate().map(|(i, c)| format!("{c} = ${}", i + 3)).collect();
    let sql = format!("UPDATE {} SET body = $2, {} WHERE id = $1", table.name, sets.join(", "));
    let q = sqlx::query(sqlx::AssertSqlSafe(sql)).bind(row.id.clone()).bind(row.body.clone());
    let done = bind_all(q, &row.columns).execute(e).await.map_err(map_err)?;
    if done.rows_affected() == 0 {
        return Err(StoreError::NotFound);
    }
    Ok(())
}

async fn delete<'c, E: Executor<'c, Database = Any>>(
    e: E,
    table: &Table,
    id: &str,
) -> StoreResult<()> {
    let sql = format!("DELETE FROM {} WHERE id = $1", table.name);
    sqlx::query(sqlx::AssertSqlSafe(sql)).bind(id).execute(e).await.map(|_| ()).map_err(map_err)
}
