//! One builder for the dynamic `WHERE` clauses of list queries: each condition is written with
//! `?` placeholders, numbered `$1…$n` in order, and its values are bound in the same order.

use sqlx::any::{AnyArguments, AnyRow};
use sqlx::{Any, Executor};

use sigil_core::ports::StoreResult;

use crate::map_err;

/// A bound value.
pub(crate) enum Param {
    Text(String),
    Int(i64),
}

impl From<String> for Param {
    fn from(s: String) -> Self {
        Self::Text(s)
    }
}

impl From<&str> for Param {
    fn from(s: &str) -> Self {
        Self::Text(s.to_owned())
    }
}

impl From<i64> for Param {
    fn from(i: i64) -> Self {
        Self::Int(i)
    }
}

/// `SELECT … WHERE 1 = 1` plus conditions.
pub(crate) struct Select {
    sql: String,
    params: Vec<Param>,
}

impl Select {
    /// Starts `SELECT {columns} FROM {table} WHERE 1 = 1`.
    pub(crate) fn new(columns: &str, table: &str) -> Self {
        Self::new_bound(columns, table, Vec::new())
    }

    /// As [`Select::new`], with a `table` expression whose placeholders `$1…$n` take `params`.
    pub(crate) fn new_bound(columns: &str, table: &str, params: Vec<Param>) -> Self {
        Self { sql: format!("SELECT {columns} FROM {table} WHERE 1 = 1"), params }
    }

    /// Appends ` AND {clause}`, numbering its `?` placeholders and queuing `params` for them.
    pub(crate) fn and<I, P>(&mut self, clause: &str, params: I) -> &mut Self
    where
        I: IntoIterator<Item = P>,
        P: Into<Param>,
    {
        let mut c = String::with_capacity(clause.len() + 8);
        let mut params = params.into_iter();
        for ch in clause.chars() {
            if ch == '?' {
                if let Some(p) = params.next() {
                    self.params.push(p.into());
                }
                c.push_str(&format!("${}", self.params.len()));
            } else {
                c.push(ch);
            }
        }
        self.sql.push_str(" AND ");
        self.sql.push_str(&c);
        self
    }

    /// Appends a condition without parameters.
    pub(crate) fn and_raw(&mut self, clause: &str) -> &mut Self {
        self.sql.push_str(" AND ");
        self.sql.push_str(clause);
        self
    }

    /// Adds `tail` (ORDER BY, LIMIT), binds everything and fetches the rows.
    pub(crate) async fn fetch<'c, E: Executor<'c, Database = Any>>(
        self,
        tail: &str,
        e: E,
    ) -> StoreResult<Vec<AnyRow>> {
        let sql = format!("{} {tail}", self.sql);
        let mut q: sqlx::query::Query<'_, Any, AnyArguments> =
            sqlx::query(sqlx::AssertSqlSafe(sql));
        for p in self.params {
            q = match p {
                Param::Text(t) => q.bind(t),
                Param::Int(i) => q.bind(i),
            };
        }
        q.fetch_all(e).await.map_err(map_err)
    }
}

/// Escapes `%`, `_` and `\` for a `LIKE … ESCAPE '\'` pattern (no surrounding wildcards).
pub(crate) fn escape_like(s: &str) -> String {
    s.replace('\\', "\\\\").replace('%', "\\%").replace('_', "\\_")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placeholders_are_numbered_in_order() {
        let mut s = Select::new("a", "t");
        s.and("x = ?", ["1"])
            .and_raw("y IS NULL")
            .and("(k > ? OR (k = ? AND id > ?))", [Param::Int(5), Param::Int(5), "z".into()]);
        assert_eq!(
            s.sql,
            "SELECT a FROM t WHERE 1 = 1 AND x = $1 AND y IS NULL AND (k > $2 OR (k = $3 AND id > $4))"
        );
        assert_eq!(s.params.len(), 4);
    }
}
