//! The generic record tables (see `sigil_core::records`): a JSON body plus filter columns. Table
//! and column names come from core's static descriptors, never from input; values are bound.

use sigil_core::StoreError;
use sigil_core::ports::StoreResult;
use sigil_core::records::{Cond, RecordQuery, RecordRow, SqlValue, Table};
use sqlx::any::AnyArguments;
use sqlx::{Any, Executor, Row};

use crate::filter::{Param, Select};
use crate::{like_pattern, map_err};

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
            Cond::IsNull(col) => {
                known(col)?;
                q.and_raw(&format!("{col} IS NULL"));
            }
        }
    }
    Ok(())
}

pub(crate) async fn select<'c, E: Executor<'c, Database = Any>>(
    e: E,
    table: &Table,
    rq: &RecordQuery,
    lock: &str,
) -> StoreResult<Vec<String>> {
    let mut q = Select::new("body", table.name);
    apply(&mut q, table, &rq.conds)?;
    if let Some(after) = &rq.after {
        q.and("id > ?", [after.as_str()]);
    }
    let limit = if rq.limit > 0 { format!(" LIMIT {}", rq.limit) } else { String::new() };
    let rows = q.fetch(&format!("ORDER BY id{limit}{lock}"), e).await?;
    rows.iter().map(|r| r.try_get::<String, _>("body").map_err(map_err)).collect()
}

pub(crate) async fn count<'c, E: Executor<'c, Database = Any>>(
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

pub(crate) async fn insert<'c, E: Executor<'c, Database = Any>>(
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

pub(crate) async fn update<'c, E: Executor<'c, Database = Any>>(
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

pub(crate) async fn delete<'c, E: Executor<'c, Database = Any>>(
    e: E,
    table: &Table,
    id: &str,
) -> StoreResult<()> {
    let sql = format!("DELETE FROM {} WHERE id = $1", table.name);
    sqlx::query(sqlx::AssertSqlSafe(sql)).bind(id).execute(e).await.map(|_| ()).map_err(map_err)
}
