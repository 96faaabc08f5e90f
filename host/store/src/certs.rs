//! CA, CRL, profile and certificate rows.

use sigil_core::StoreError;
use sigil_core::audit::{from_unix_micros, unix_micros};
use sigil_core::certs::ca::{CaRecord, RevokedEntry};
use sigil_core::certs::profile::{Profile, ProfileSpec};
use sigil_core::certs::{CertStatus, Certificate, KeyType, RevocationReason, San};
use sigil_core::ports::{
    CertFilter, CertSort, CrlRecord, PageRequest, StoreResult, parse_cert_cursor,
};
use sqlx::any::AnyRow;
use sqlx::{Any, AnyConnection, AnyPool, Executor, Row};
use uuid::Uuid;

use crate::filter::{Param, Select, escape_like};
use crate::{Backend, like_pattern, map_err};

fn corrupt(what: &str) -> StoreError {
    StoreError::Backend(format!("corrupt row: {what}"))
}

const CA_COLUMNS: &str =
    "id, kind, key_type, cert_der, key_sealed, root_der, root_key_sealed, root_crl_der, created_at";

fn ca_from_row(r: &AnyRow) -> StoreResult<CaRecord> {
    let kt: String = r.try_get("key_type").map_err(map_err)?;
    Ok(CaRecord {
        id: r.try_get("id").map_err(map_err)?,
        kind: r.try_get("kind").map_err(map_err)?,
        key_type: KeyType::parse(&kt).map_err(|_| corrupt("cas.key_type"))?,
        cert_der: r.try_get("cert_der").map_err(map_err)?,
        key_sealed: r.try_get("key_sealed").map_err(map_err)?,
        root_der: r.try_get("root_der").map_err(map_err)?,
        root_key_sealed: r.try_get("root_key_sealed").map_err(map_err)?,
        root_crl_der: r.try_get("root_crl_der").map_err(map_err)?,
        created_at: from_unix_micros(r.try_get("created_at").map_err(map_err)?),
    })
}

pub(crate) async fn cas<'c, E: Executor<'c, Database = Any>>(e: E) -> StoreResult<Vec<CaRecord>> {
    let sql = format!("SELECT {CA_COLUMNS} FROM cas ORDER BY created_at, id");
    let rows = sqlx::query(sqlx::AssertSqlSafe(sql)).fetch_all(e).await.map_err(map_err)?;
    rows.iter().map(ca_from_row).collect()
}

pub(crate) async fn insert_ca<'c, E: Executor<'c, Database = Any>>(
    e: E,
    c: &CaRecord,
) -> StoreResult<()> {
    sqlx::query(
        "INSERT INTO cas (id, kind, key_type, cert_der, key_sealed, root_der, root_key_sealed, root_crl_der, created_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
    )
    .bind(&c.id)
    .bind(&c.kind)
    .bind(c.key_type.as_str())
    .bind(c.cert_der.clone())
    .bind(c.key_sealed.clone())
    .bind(c.root_der.clone())
    .bind(c.root_key_sealed.clone())
    .bind(c.root_crl_der.clone())
    .bind(unix_micros(c.created_at))
    .execute(e)
    .await
    .map(|_| ())
    .map_err(map_err)
}

pub(crate) async fn set_ca_keys<'c, E: Executor<'c, Database = Any>>(
    e: E,
    id: &str,
    old: (&[u8], Option<&[u8]>),
    new: (&[u8], Option<&[u8]>),
) -> StoreResult<bool> {
    // A NULL is compared with IS NULL (a bound NULL has no type PostgreSQL could infer).
    let root_was = if old.1.is_some() { "root_key_sealed = $5" } else { "root_key_sealed IS NULL" };
    let sql = format!(
        "UPDATE cas SET key_sealed = $1, root_key_sealed = $2 \
         WHERE id = $3 AND key_sealed = $4 AND {root_was}"
    );
    let mut q = sqlx::query(sqlx::AssertSqlSafe(sql))
        .bind(new.0.to_vec())
        .bind(new.1.map(<[u8]>::to_vec))
        .bind(id)
        .bind(old.0.to_vec());
    if let Some(r) = old.1 {
        q = q.bind(r.to_vec());
    }
    let done = q.execute(e).await.map_err(map_err)?;
    Ok(done.rows_affected() == 1)
}

pub(crate) async fn set_root_crl<'c, E: Executor<'c, Database = Any>>(
    e: E,
    id: &str,
    der: &[u8],
) -> StoreResult<()> {
    let done = sqlx::query("UPDATE cas SET root_crl_der = $1 WHERE id = $2")
        .bind(der.to_vec())
        .bind(id)
        .execute(e)
        .await
        .map_err(map_err)?;
    if done.rows_affected() == 0 {
        return Err(StoreError::NotFound);
    }
    Ok(())
}

pub(crate) async fn clear_ca_root_key<'c, E: Executor<'c, Database = Any>>(
    e: E,
    id: &str,
) -> StoreResult<()> {
    sqlx::query("UPDATE cas SET root_key_sealed = NULL WHERE id = $1")
        .bind(id)
        .execute(e)
        .await
        .map(|_| ())
        .map_err(map_err)
}

pub(crate) async fn crl<'c, E: Executor<'c, Database = Any>>(
    e: E,
    ca_id: &str,
) -> StoreResult<Option<CrlRecord>> {
    let row = sqlx::query("SELECT crl_number, crl_der, crl_this_update, crl_next_update, crl_stale FROM cas WHERE id = $1")
        .bind(ca_id)
        .fetch_optional(e)
        .await
        .map_err(map_err)?;
    row.map(|r| {
        Ok(CrlRecord {
            number: r.try_get("crl_number").map_err(map_err)?,
            der: r.try_get("crl_der").map_err(map_err)?,
            this_update_us: r.try_get("crl_this_update").map_err(map_err)?,
            next_update_us: r.try_get("crl_next_update").map_err(map_err)?,
            stale: r.try_get::<i64, _>("crl_stale").map_err(map_err)? != 0,
        })
    })
    .transpose()
}

pub(crate) async fn mark_crl_stale<'c, E: Executor<'c, Database = Any>>(
    e: E,
    ca_id: &str,
) -> StoreResult<()> {
    sqlx::query("UPDATE cas SET crl_stale = 1 WHERE id = $1")
        .bind(ca_id)
        .execute(e)
        .await
        .map(|_| ())
        .map_err(map_err)
}

pub(crate) async fn next_crl_number<'c, E: Executor<'c, Database = Any>>(
    e: E,
    ca_id: &str,
) -> StoreResult<i64> {
    sqlx::query_scalar::<_, i64>(
        "UPDATE cas SET crl_number = crl_number + 1 WHERE id = $1 RETURNING crl_number",
    )
    .bind(ca_id)
    .fetch_optional(e)
    .await
    .map_err(map_err)?
    .ok_or(StoreError::NotFound)
}

pub(crate) async fn store_crl<'c, E: Executor<'c, Database = Any>>(
    e: E,
    ca_id: &str,
    der: &[u8],
    this_us: i64,
    next_us: i64,
) -> StoreResult<()> {
    sqlx::query("UPDATE cas SET crl_der = $2, crl_this_update = $3, crl_next_update = $4, crl_stale = 0 WHERE id = $1")
        .bind(ca_id)
        .bind(der.to_vec())
        .bind(this_us)
        .bind(next_us)
        .execute(e)
        .await
        .map(|_| ())
        .map_err(map_err)
}

pub(crate) async fn revoked_entries<'c, E: Executor<'c, Database = Any>>(
    e: E,
    ca_id: &str,
) -> StoreResult<Vec<RevokedEntry>> {
    let rows = sqlx::query(
        "SELECT serial, revoked_at, revocation_reason FROM certificates \
         WHERE ca_id = $1 AND status IN ('revoked', 'suspended') ORDER BY revoked_at",
    )
    .bind(ca_id)
    .fetch_all(e)
    .await
    .map_err(map_err)?;
    rows.iter()
        .map(|r| {
            let reason: Option<String> = r.try_get("revocation_reason").map_err(map_err)?;
            let at: Option<i64> = r.try_get("revoked_at").map_err(map_err)?;
            Ok(RevokedEntry {
                serial: r.try_get("serial").map_err(map_err)?,
                revoked_at: from_unix_micros(at.unwrap_or(0)),
                reason: reason
                    .as_deref()
                    .map(RevocationReason::parse)
                    .transpose()
                    .map_err(|_| corrupt("revocation_reason"))?
                    .unwrap_or(RevocationReason::Unspecified),
            })
        })
        .collect()
}

fn profile_from_row(r: &AnyRow) -> StoreResult<Profile> {
    let spec: String = r.try_get("spec").map_err(map_err)?;
    Ok(Profile {
        name: r.try_get("name").map_err(map_err)?,
        spec: serde_json::from_str::<ProfileSpec>(&spec).map_err(|_| corrupt("profiles.spec"))?,
        built_in: r.try_get::<i64, _>("built_in").map_err(map_err)? != 0,
        created_at: from_unix_micros(r.try_get("created_at").map_err(map_err)?),
        updated_at: from_unix_micros(r.try_get("updated_at").map_err(map_err)?),
    })
}

pub(crate) async fn profiles<'c, E: Executor<'c, Database = Any>>(
    e: E,
) -> StoreResult<Vec<Profile>> {
    let rows = sqlx::query(
        "SELECT name, spec, built_in, created_at, updated_at FROM profiles ORDER BY name",
    )
    .fetch_all(e)
    .await
    .map_err(map_err)?;
    rows.iter().map(profile_from_row).collect()
}

pub(crate) async fn insert_profile<'c, E: Executor<'c, Database = Any>>(
    e: E,
    p: &Profile,
) -> StoreResult<()> {
    let spec = serde_json::to_string(&p.spec).map_err(|e| StoreError::Backend(e.to_string()))?;
    sqlx::query("INSERT INTO profiles (name, spec, built_in, created_at, updated_at) VALUES ($1, $2, $3, $4, $5)")
        .bind(&p.name)
        .bind(spec)
        .bind(i64::from(p.built_in))
        .bind(unix_micros(p.created_at))
        .bind(unix_micros(p.updated_at))
        .execute(e)
        .await
        .map(|_| ())
        .map_err(map_err)
}

pub(crate) async fn update_profile<'c, E: Executor<'c, Database = Any>>(
    e: E,
    p: &Profile,
) -> StoreResult<()> {
    let spec = serde_json::to_string(&p.spec).map_err(|e| StoreError::Backend(e.to_string()))?;
    sqlx::query("UPDATE profiles SET spec = $2, updated_at = $3 WHERE name = $1")
        .bind(&p.name)
        .bind(spec)
        .bind(unix_micros(p.updated_at))
        .execute(e)
        .await
        .map(|_| ())
        .map_err(map_err)
}

pub(crate) const CERT_COLUMNS: &str = "id, serial, ca_id, profile, status, subject, sans, key_type, not_before, \
    not_after, der, sha256, issued_at, issued_by, revoked_at, revocation_reason, metadata, renewed_from, updated_at, \
    office_id, superseded_by, superseded_until";

pub(crate) fn cert_from_row(r: &AnyRow) -> StoreResult<Certificate> {
    let s = |c: &str| r.try_get::<String, _>(c).map_err(map_err);
    let id = s("id")?;
    let sans: Vec<String> =
        serde_json::from_str(&s("sans")?).map_err(|_| corrupt("certificates.sans"))?;
    let reason: Option<String> = r.try_get("revocation_reason").map_err(map_err)?;
    let renewed: Option<String> = r.try_get("renewed_from").map_err(map_err)?;
    Ok(Certificate {
        id: Uuid::parse_str(&id).map_err(|_| corrupt("certificates.id"))?,
        serial: s("serial")?,
        ca_id: s("ca_id")?,
        profile: s("profile")?,
        status: CertStatus::parse(&s("status")?).map_err(|_| corrupt("certificates.status"))?,
        subject: s("subject")?,
        sans: sans.iter().filter_map(|t| San::parse_tagged(t)).collect(),
        key_type: KeyType::parse(&s("key_type")?).map_err(|_| corrupt("certificates.key_type"))?,
        not_before: from_unix_micros(r.try_get("not_before").map_err(map_err)?),
        not_after: from_unix_micros(r.try_get("not_after").map_err(map_err)?),
        der: r.try_get("der").map_err(map_err)?,
        sha256: s("sha256")?,
        issued_at: from_unix_micros(r.try_get("issued_at").map_err(map_err)?),
        issued_by: s("issued_by")?,
        revoked_at: r
            .try_get::<Option<i64>, _>("revoked_at")
            .map_err(map_err)?
            .map(from_unix_micros),
        revocation_reason: reason
            .as_deref()
            .map(RevocationReason::parse)
            .transpose()
            .map_err(|_| corrupt("reason"))?,
        metadata: serde_json::from_str(&s("metadata")?)
            .map_err(|_| corrupt("certificates.metadata"))?,
        renewed_from: renewed.as_deref().and_then(|r| Uuid::parse_str(r).ok()),
        superseded_by: r
            .try_get::<Option<String>, _>("superseded_by")
            .map_err(map_err)?
            .and_then(|o| Uuid::parse_str(&o).ok()),
        superseded_until: r
            .try_get::<Option<i64>, _>("superseded_until")
            .map_err(map_err)?
            .map(from_unix_micros),
        office_id: r
            .try_get::<Option<String>, _>("office_id")
            .map_err(map_err)?
            .and_then(|o| Uuid::parse_str(&o).ok()),
        updated_at: from_unix_micros(r.try_get("updated_at").map_err(map_err)?),
    })
}

pub(crate) fn search_text(c: &Certificate) -> String {
    let mut t = c.subject.to_lowercase();
    for s in &c.sans {
        t.push('|');
        t.push_str(&s.value().to_lowercase());
    }
    t
}

pub(crate) const INSERT_COLUMNS: &str = "id, serial, ca_id, profile, status, subject, sans, search, \
    key_type, not_before, not_after, der, sha256, issued_at, issued_by, revoked_at, \
    revocation_reason, metadata, renewed_from, updated_at, office_id";

pub(crate) async fn insert_certificate(
    conn: &mut AnyConnection,
    c: &Certificate,
) -> StoreResult<()> {
    insert_certificates(conn, &[c]).await
}

/// Stores new certificates, many rows per statement (see `audit::insert_events`).
pub(crate) async fn insert_certificates(
    conn: &mut AnyConnection,
    certs: &[&Certificate],
) -> StoreResult<()> {
    for run in crate::insert_runs(certs) {
        let sql = crate::multi_insert("certificates", INSERT_COLUMNS, 21, run.len());
        let mut q = sqlx::query(sqlx::AssertSqlSafe(sql));
        for c in run {
            let sans = serde_json::to_string(&c.sans.iter().map(San::tagged).collect::<Vec<_>>())
                .map_err(|e| StoreError::Backend(e.to_string()))?;
            q = q
                .bind(c.id.to_string())
                .bind(&c.serial)
                .bind(&c.ca_id)
                .bind(&c.profile)
                .bind(c.status.as_str())
                .bind(&c.subject)
                .bind(sans)
                .bind(search_text(c))
                .bind(c.key_type.as_str())
                .bind(unix_micros(c.not_before))
                .bind(unix_micros(c.not_after))
                .bind(c.der.clone())
                .bind(&c.sha256)
                .bind(unix_micros(c.issued_at))
                .bind(&c.issued_by)
                .bind(c.revoked_at.map(unix_micros))
                .bind(c.revocation_reason.map(|r| r.as_str()))
                .bind(c.metadata.to_string())
                .bind(c.renewed_from.map(|u| u.to_string()))
                .bind(unix_micros(c.updated_at))
                .bind(c.office_id.map(|u| u.to_string()));
        }
        q.execute(&mut *conn).await.map_err(map_err)?;
    }
    Ok(())
}

pub(crate) async fn update_certificate<'c, E: Executor<'c, Database = Any>>(
    e: E,
    c: &Certificate,
) -> StoreResult<()> {
    let done = sqlx::query(
        "UPDATE certificates SET status = $2, revoked_at = $3, revocation_reason = $4, metadata = $5, updated_at = $6 \
         WHERE id = $1",
    )
    .bind(c.id.to_string())
    .bind(c.status.as_str())
    .bind(c.revoked_at.map(unix_micros))
    .bind(c.revocation_reason.map(|r| r.as_str()))
    .bind(c.metadata.to_string())
    .bind(unix_micros(c.updated_at))
    .execute(e)
    .await
    .map_err(map_err)?;
    if done.rows_affected() == 0 {
        return Err(StoreError::NotFound);
    }
    Ok(())
}

pub(crate) async fn certificate_where<'c, E: Executor<'c, Database = Any>>(
    e: E,
    clause: &'static str,
    binds: &[&str],
    lock: &str,
) -> StoreResult<Option<Certificate>> {
    let sql = format!("SELECT {CERT_COLUMNS} FROM certificates WHERE {clause}{lock}");
    let mut q = sqlx::query(sqlx::AssertSqlSafe(sql));
    for b in binds {
        q = q.bind(b.to_string());
    }
    let row = q.fetch_optional(e).await.map_err(map_err)?;
    row.as_ref().map(cert_from_row).transpose()
}

pub(crate) async fn list(
    pool: &AnyPool,
    backend: Backend,
    f: &CertFilter,
    page: &PageRequest,
) -> StoreResult<Vec<Certificate>> {
    // A serial names one certificate per CA, found through the unique (ca_id, serial) index.
    // On SQLite it drives the query from a join's outer side: as a plain condition beside a
    // status or profile, SQLite (which keeps no statistics here) chose that column's index
    // instead, and walked every certificate of the status to find one serial.
    let by_serial = match (&f.serial, backend) {
        (Some(serial), Backend::Sqlite) => Some(serial.as_str()),
        _ => None,
    };
    let mut q = match by_serial {
        Some(serial) => {
            let mut q = Select::new_bound(
                CERT_COLUMNS,
                "(SELECT id AS hit FROM certificates WHERE ca_id IN (SELECT id FROM cas) \
                 AND serial = $1) AS by_serial CROSS JOIN certificates",
                vec![Param::from(serial)],
            );
            q.and_raw("certificates.id = by_serial.hit");
            q
        }
        None => Select::new(CERT_COLUMNS, "certificates"),
    };
    match f.status {
        None => {}
        Some(CertStatus::Expired) => {
            q.and("status IN ('active', 'suspended') AND not_after <= ?", [f.now_us]);
        }
        Some(s @ (CertStatus::Active | CertStatus::Suspended)) => {
            // Sorted by issue date, `+not_after` keeps the validity check from steering SQLite
            // to the (status, not_after) index, which would sort every active certificate for
            // one page. Sorted by expiry, that index is the right one and the check skips the
            // expired rows in it.
            let clause = match f.sort {
                CertSort::IssuedAsc | CertSort::IssuedDesc => "status = ? AND +not_after > ?",
                CertSort::ExpiresAsc | CertSort::ExpiresDesc => "status = ? AND not_after > ?",
            };
            q.and(clause, [Param::from(s.as_str()), Param::Int(f.now_us)]);
        }
        Some(s) => {
            q.and("status = ?", [s.as_str()]);
        }
    }
    if let Some(v) = &f.profile {
        q.and("profile = ?", [v.as_str()]);
    }
    if let Some(v) = &f.ca_id {
        q.and("ca_id = ?", [v.as_str()]);
    }
    if let Some(v) = f.serial.as_ref().filter(|_| by_serial.is_none()) {
        // Through the unique (ca_id, serial) index, once per CA when no CA is given (there is
        // no index on the serial alone: migration 0027).
        if f.ca_id.is_none() {
            q.and_raw("ca_id IN (SELECT id FROM cas)");
        }
        q.and("serial = ?", [v.as_str()]);
    }
    if let Some(v) = &f.text {
        // No subject or SAN holds a NUL (PostgreSQL text cannot; SQLite's LIKE would stop at
        // it and match a shorter text), so nothing matches one.
        if v.contains('\0') {
            return Ok(Vec::new());
        }
        if let Some((clause, phrase)) = crate::search::narrowing(pool, backend, v).await? {
            q.and(clause, [phrase]);
        }
        q.and("search LIKE ? ESCAPE '\\'", [like_pattern(v)]);
    }
    for (clause, v) in [
        ("issued_at >= ?", f.issued_from_us),
        ("issued_at < ?", f.issued_until_us),
        ("not_after >= ?", f.expires_from_us),
        ("not_after < ?", f.expires_until_us),
    ] {
        if let Some(v) = v {
            q.and(clause, [v]);
        }
    }
    match f.superseded {
        Some(true) => {
            q.and_raw("superseded_by IS NOT NULL");
        }
        Some(false) => {
            q.and_raw("superseded_by IS NULL");
        }
        None => {}
    }
    if let Some(v) = f.office_id {
        q.and("office_id = ?", [v.to_string()]);
    }
    if let Some(offices) = &f.scope {
        if offices.is_empty() {
            q.and_raw("1 = 0");
        } else {
            let marks = vec!["?"; offices.len()].join(", ");
            q.and(&format!("office_id IN ({marks})"), offices.iter().map(|o| o.to_string()));
        }
    }
    if let Some(v) = &f.owner {
        // The owner is matched on the stored metadata text: the exact JSON member.
        let member = serde_json::Value::String(v.clone()).to_string();
        q.and("metadata LIKE ? ESCAPE '\\'", [format!("%\"owner\":{}%", escape_like(&member))]);
    }
    let (col, dir, cmp) = match f.sort {
        CertSort::IssuedAsc => ("issued_at", "ASC", ">"),
        CertSort::IssuedDesc => ("issued_at", "DESC", "<"),
        CertSort::ExpiresAsc => ("not_after", "ASC", ">"),
        CertSort::ExpiresDesc => ("not_after", "DESC", "<"),
    };
    if let Some(c) = &page.after {
        let (k, id) =
            parse_cert_cursor(c).ok_or_else(|| StoreError::Backend("bad cursor".into()))?;
        q.and(
            &format!("({col} {cmp} ? OR ({col} = ? AND id {cmp} ?))"),
            [Param::Int(k), Param::Int(k), Param::from(id.to_string())],
        );
    }
    let rows =
        q.fetch(&format!("ORDER BY {col} {dir}, id {dir} LIMIT {}", page.limit), pool).await?;
    rows.iter().map(cert_from_row).collect()
}

pub(crate) async fn superseded_due<'c, E: Executor<'c, Database = Any>>(
    e: E,
    now_us: i64,
    limit: u32,
) -> StoreResult<Vec<Certificate>> {
    // `(status || '')`: an expression, so SQLite walks the superseded_until index (a few due
    // rows) instead of the status index (every active certificate).
    let sql = format!(
        "SELECT {CERT_COLUMNS} FROM certificates WHERE superseded_until <= $1 \
         AND (status || '') = 'active' AND not_after > $1 ORDER BY superseded_until, id LIMIT {limit}"
    );
    let rows =
        sqlx::query(sqlx::AssertSqlSafe(sql)).bind(now_us).fetch_all(e).await.map_err(map_err)?;
    rows.iter().map(cert_from_row).collect()
}
