//! Role and operator rows.

use sigil_core::StoreError;
use sigil_core::access::authz::PermissionSet;
use sigil_core::access::operator::{Operator, Role};
use sigil_core::audit::{from_unix_micros, unix_micros};
use sigil_core::ports::{OperatorFilter, PageRequest, StoreResult};
use sqlx::any::AnyRow;
use sqlx::{Any, Executor, Row};
use uuid::Uuid;

use crate::filter::{Select, escape_like};
use crate::{like_pattern, map_err};

const ROLE_COLUMNS: &str =
    "name, description, permissions, excludes, built_in, created_at, updated_at";
pub(crate) const OPERATOR_COLUMNS: &str = "id, username, display_name, email, roles, enabled, \
     client_cert_sha256, unrestricted, divisions, offices, created_at, updated_at";

fn uuid_list(text: &str, what: &str) -> StoreResult<Vec<Uuid>> {
    serde_json::from_str(text).map_err(|_| StoreError::Backend(format!("corrupt {what}")))
}

fn uuids_json(v: &[Uuid]) -> String {
    serde_json::to_string(v).unwrap_or_else(|_| "[]".into())
}

fn json_list(text: &str, what: &str) -> StoreResult<Vec<String>> {
    serde_json::from_str(text).map_err(|_| StoreError::Backend(format!("corrupt {what}")))
}

fn to_json(v: &[String]) -> String {
    serde_json::to_string(v).unwrap_or_else(|_| "[]".into())
}

pub(crate) fn role_from_row(r: &AnyRow) -> StoreResult<Role> {
    let perms: String = r.try_get("permissions").map_err(map_err)?;
    Ok(Role {
        name: r.try_get("name").map_err(map_err)?,
        description: r.try_get("description").map_err(map_err)?,
        permissions: PermissionSet::from_stored(json_list(&perms, "roles.permissions")?),
        excludes: json_list(
            &r.try_get::<String, _>("excludes").map_err(map_err)?,
            "roles.excludes",
        )?,
        built_in: r.try_get::<i64, _>("built_in").map_err(map_err)? != 0,
        created_at: from_unix_micros(r.try_get("created_at").map_err(map_err)?),
        updated_at: from_unix_micros(r.try_get("updated_at").map_err(map_err)?),
    })
}

pub(crate) fn operator_from_row(r: &AnyRow) -> StoreResult<Operator> {
    let id: String = r.try_get("id").map_err(map_err)?;
    let roles: String = r.try_get("roles").map_err(map_err)?;
    Ok(Operator {
        id: Uuid::parse_str(&id).map_err(|_| StoreError::Backend("corrupt operators.id".into()))?,
        username: r.try_get("username").map_err(map_err)?,
        display_name: r.try_get("display_name").map_err(map_err)?,
        email: r.try_get("email").map_err(map_err)?,
        roles: json_list(&roles, "operators.roles")?,
        enabled: r.try_get::<i64, _>("enabled").map_err(map_err)? != 0,
        client_cert_sha256: r.try_get("client_cert_sha256").map_err(map_err)?,
        unrestricted: r.try_get::<i64, _>("unrestricted").map_err(map_err)? != 0,
        divisions: uuid_list(
            &r.try_get::<String, _>("divisions").map_err(map_err)?,
            "operators.divisions",
        )?,
        offices: uuid_list(
            &r.try_get::<String, _>("offices").map_err(map_err)?,
            "operators.offices",
        )?,
        created_at: from_unix_micros(r.try_get("created_at").map_err(map_err)?),
        updated_at: from_unix_micros(r.try_get("updated_at").map_err(map_err)?),
    })
}

pub(crate) async fn roles<'c, E: Executor<'c, Database = Any>>(e: E) -> StoreResult<Vec<Role>> {
    let sql = format!("SELECT {ROLE_COLUMNS} FROM roles ORDER BY name");
    let rows = sqlx::query(sqlx::AssertSqlSafe(sql)).fetch_all(e).await.map_err(map_err)?;
    rows.iter().map(role_from_row).collect()
}

pub(crate) async fn role_for_update<'c, E: Executor<'c, Database = Any>>(
    e: E,
    name: &str,
    lock: &str,
) -> StoreResult<Option<Role>> {
    let sql = format!("SELECT {ROLE_COLUMNS} FROM roles WHERE name = $1{lock}");
    let row = sqlx::query(sqlx::AssertSqlSafe(sql))
        .bind(name)
        .fetch_optional(e)
        .await
        .map_err(map_err)?;
    row.as_ref().map(role_from_row).transpose()
}

pub(crate) async fn insert_role<'c, E: Executor<'c, Database = Any>>(
    e: E,
    r: &Role,
) -> StoreResult<()> {
    sqlx::query(
        "INSERT INTO roles (name, description, permissions, built_in, created_at, updated_at, excludes) \
         VALUES ($1, $2, $3, $4, $5, $6, $7)",
    )
    .bind(&r.name)
    .bind(&r.description)
    .bind(to_json(&r.permissions.to_vec()))
    .bind(i64::from(r.built_in))
    .bind(unix_micros(r.created_at))
    .bind(unix_micros(r.updated_at))
    .bind(to_json(&r.excludes))
    .execute(e)
    .await
    .map(|_| ())
    .map_err(map_err)
}

pub(crate) async fn update_role<'c, E: Executor<'c, Database = Any>>(
    e: E,
    r: &Role,
) -> StoreResult<()> {
    sqlx::query(
        "UPDATE roles SET description = $2, permissions = $3, updated_at = $4, excludes = $5 \
         WHERE name = $1",
    )
    .bind(&r.name)
    .bind(&r.description)
    .bind(to_json(&r.permissions.to_vec()))
    .bind(unix_micros(r.updated_at))
    .bind(to_json(&r.excludes))
    .execute(e)
    .await
    .map(|_| ())
    .map_err(map_err)
}

pub(crate) async fn delete_role<'c, E: Executor<'c, Database = Any>>(
    e: E,
    name: &str,
) -> StoreResult<()> {
    sqlx::query("DELETE FROM roles WHERE name = $1")
        .bind(name)
        .execute(e)
        .await
        .map(|_| ())
        .map_err(map_err)
}

pub(crate) async fn count_role_holders<'c, E: Executor<'c, Database = Any>>(
    e: E,
    name: &str,
) -> StoreResult<i64> {
    // The quoted JSON form of the name, matched literally: `_` is a LIKE wildcard, and role
    // names may hold it (`a_b` must not count the holders of `axb`).
    sqlx::query_scalar::<_, i64>("SELECT COUNT(*) FROM operators WHERE roles LIKE $1 ESCAPE '\\'")
        .bind(format!("%\"{}\"%", escape_like(name)))
        .fetch_one(e)
        .await
        .map_err(map_err)
}

pub(crate) async fn insert_operator<'c, E: Executor<'c, Database = Any>>(
    e: E,
    o: &Operator,
) -> StoreResult<()> {
    sqlx::query(
        "INSERT INTO operators (id, username, display_name, email, roles, enabled, client_cert_sha256, \
         created_at, updated_at, unrestricted, divisions, offices) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)",
    )
    .bind(o.id.to_string())
    .bind(&o.username)
    .bind(&o.display_name)
    .bind(o.email.clone())
    .bind(to_json(&o.roles))
    .bind(i64::from(o.enabled))
    .bind(o.client_cert_sha256.clone())
    .bind(unix_micros(o.created_at))
    .bind(unix_micros(o.updated_at))
    .bind(i64::from(o.unrestricted))
    .bind(uuids_json(&o.divisions))
    .bind(uuids_json(&o.offices))
    .execute(e)
    .await
    .map(|_| ())
    .map_err(map_err)
}

pub(crate) async fn update_operator<'c, E: Executor<'c, Database = Any>>(
    e: E,
    o: &Operator,
) -> StoreResult<()> {
    let done = sqlx::query(
        "UPDATE operators SET username = $2, display_name = $3, email = $4, roles = $5, enabled = $6, \
         client_cert_sha256 = $7, updated_at = $8, unrestricted = $9, divisions = $10, offices = $11 \
         WHERE id = $1",
    )
    .bind(o.id.to_string())
    .bind(&o.username)
    .bind(&o.display_name)
    .bind(o.email.clone())
    .bind(to_json(&o.roles))
    .bind(i64::from(o.enabled))
    .bind(o.client_cert_sha256.clone())
    .bind(unix_micros(o.updated_at))
    .bind(i64::from(o.unrestricted))
    .bind(uuids_json(&o.divisions))
    .bind(uuids_json(&o.offices))
    .execute(e)
    .await
    .map_err(map_err)?;
    if done.rows_affected() == 0 {
        return Err(StoreError::NotFound);
    }
    Ok(())
}

pub(crate) async fn operator_where<'c, E: Executor<'c, Database = Any>>(
    e: E,
    column: &'static str,
    value: &str,
    lock: &str,
) -> StoreResult<Option<Operator>> {
    let sql = format!("SELECT {OPERATOR_COLUMNS} FROM operators WHERE {column} = $1{lock}");
    let row = sqlx::query(sqlx::AssertSqlSafe(sql))
        .bind(value)
        .fetch_optional(e)
        .await
        .map_err(map_err)?;
    row.as_ref().map(operator_from_row).transpose()
}

pub(crate) async fn list<'c, E: Executor<'c, Database = Any>>(
    e: E,
    f: &OperatorFilter,
    page: &PageRequest,
) -> StoreResult<Vec<Operator>> {
    let mut q = Select::new(OPERATOR_COLUMNS, "operators");
    if let Some(after) = &page.after {
        q.and("id > ?", [after.as_str()]);
    }
    if let Some(n) = &f.name_contains {
        let p = like_pattern(n);
        q.and(
            "(LOWER(username) LIKE ? ESCAPE '\\' OR LOWER(display_name) LIKE ? ESCAPE '\\')",
            [p.clone(), p],
        );
    }
    if let Some(r) = &f.role {
        q.and("roles LIKE ? ESCAPE '\\'", [format!("%\"{}\"%", escape_like(r))]);
    }
    if let Some(en) = f.enabled {
        q.and("enabled = ?", [i64::from(en)]);
    }
    let rows = q.fetch(&format!("ORDER BY id LIMIT {}", page.limit), e).await?;
    rows.iter().map(operator_from_row).collect()
}
