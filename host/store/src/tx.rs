//! The write transaction: API key writes and the audit append that commits them.

use async_trait::async_trait;
use sigil_core::access::api_key::ApiKey;
use sigil_core::audit::{AuditEvent, NewAuditEvent};
use sigil_core::ports::{AccessTx, CertTx, SettingsTx, SigningTx, StoreResult, Tx};
use sqlx::{Any, Transaction};
use time::OffsetDateTime;
use uuid::Uuid;

use crate::{Backend, apikeys, audit, certs, map_err, operators, records};
use sigil_core::access::operator::{Operator, Role};
use sigil_core::records::{Collection, RecordQuery, Row};

pub(crate) struct SqlTx {
    pub(crate) tx: Transaction<'static, Any>,
    pub(crate) backend: Backend,
    /// SQLite: this writer's turn at the writers' gate, given back when the transaction ends.
    pub(crate) _gate: Option<tokio::sync::OwnedMutexGuard<()>>,
    /// Told of the events once they are committed.
    pub(crate) observer: crate::Observer,
}

impl SqlTx {
    /// The row-lock suffix: PostgreSQL locks rows read for update; on SQLite the transaction
    /// holds the writer lock from its start (`BEGIN IMMEDIATE`).
    fn lock(&self) -> &'static str {
        match self.backend {
            Backend::Postgres => " FOR UPDATE",
            Backend::Sqlite => "",
        }
    }
}

#[async_trait]
impl sigil_core::records::RecordTx for SqlTx {
    async fn insert_record(&mut self, row: Row<'_>) -> StoreResult<()> {
        records::insert_row(&mut *self.tx, row).await
    }

    async fn update_record(&mut self, row: Row<'_>) -> StoreResult<()> {
        records::update_row(&mut *self.tx, row).await
    }

    async fn delete_record(&mut self, c: Collection, key: &str) -> StoreResult<()> {
        records::delete_key(&mut *self.tx, c, key).await
    }

    async fn record_for_update(&mut self, c: Collection, key: &str) -> StoreResult<Option<String>> {
        let lock = self.lock();
        records::fetch_one(&mut *self.tx, c, key, lock).await
    }

    async fn records_in_tx(&mut self, q: &RecordQuery) -> StoreResult<Vec<String>> {
        records::fetch(&mut *self.tx, q, "").await
    }
}

#[async_trait]
impl sigil_core::records::RecordUnit for SqlTx {
    async fn commit(
        self: Box<Self>,
        events: Vec<NewAuditEvent>,
        now: OffsetDateTime,
    ) -> StoreResult<Vec<AuditEvent>> {
        Tx::commit(self, events, now).await
    }
}

#[async_trait]
impl sigil_core::ports::AccessUnit for SqlTx {
    async fn commit(
        self: Box<Self>,
        events: Vec<NewAuditEvent>,
        now: OffsetDateTime,
    ) -> StoreResult<Vec<AuditEvent>> {
        Tx::commit(self, events, now).await
    }
}

#[async_trait]
impl Tx for SqlTx {
    async fn commit(
        mut self: Box<Self>,
        events: Vec<NewAuditEvent>,
        now: OffsetDateTime,
    ) -> StoreResult<Vec<AuditEvent>> {
        let lock = matches!(self.backend, Backend::Postgres);
        let mut chain = audit::Chain::head(&mut self.tx, lock).await?;
        let sealed = chain.append(&mut self.tx, &events, now).await?;
        chain.save(&mut self.tx).await?;
        let observer = std::sync::Arc::clone(&self.observer);
        self.tx.commit().await.map_err(map_err)?;
        if let Some(o) = observer.get() {
            for e in &sealed {
                o.committed(e.into());
            }
        }
        Ok(sealed)
    }
}

#[async_trait]
impl AccessTx for SqlTx {
    async fn insert_api_key(&mut self, key: &ApiKey) -> StoreResult<()> {
        apikeys::insert(&mut *self.tx, key).await
    }

    async fn api_key_for_update(&mut self, id: Uuid) -> StoreResult<Option<ApiKey>> {
        let lock = match self.backend {
            Backend::Postgres => " FOR UPDATE",
            // The single write connection already serialises SQLite writers.
            Backend::Sqlite => "",
        };
        let sql = format!("SELECT {} FROM api_keys WHERE id = $1{lock}", apikeys::COLUMNS);
        let row = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(id.to_string())
            .fetch_optional(&mut *self.tx)
            .await
            .map_err(map_err)?;
        row.as_ref().map(apikeys::from_row).transpose()
    }

    async fn update_api_key(&mut self, key: &ApiKey) -> StoreResult<()> {
        apikeys::update(&mut *self.tx, key).await
    }

    async fn insert_role(&mut self, role: &Role) -> StoreResult<()> {
        operators::insert_role(&mut *self.tx, role).await
    }

    async fn update_role(&mut self, role: &Role) -> StoreResult<()> {
        operators::update_role(&mut *self.tx, role).await
    }

    async fn delete_role(&mut self, name: &str) -> StoreResult<()> {
        operators::delete_role(&mut *self.tx, name).await
    }

    async fn role_for_update(&mut self, name: &str) -> StoreResult<Option<Role>> {
        let lock = self.lock();
        operators::role_for_update(&mut *self.tx, name, lock).await
    }

    async fn count_role_holders(&mut self, name: &str) -> StoreResult<i64> {
        operators::count_role_holders(&mut *self.tx, name).await
    }

    async fn insert_operator(&mut self, op: &Operator) -> StoreResult<()> {
        operators::insert_operator(&mut *self.tx, op).await
    }

    async fn operator_for_update(&mut self, id: Uuid) -> StoreResult<Option<Operator>> {
        let lock = self.lock();
        operators::operator_where(&mut *self.tx, "id", &id.to_string(), lock).await
    }

    async fn update_operator(&mut self, op: &Operator) -> StoreResult<()> {
        operators::update_operator(&mut *self.tx, op).await
    }

    async fn insert_ui_session(
        &mut self,
        s: &sigil_core::access::ui_session::UiSession,
    ) -> StoreResult<()> {
        crate::ui_sessions::insert(&mut *self.tx, s).await
    }

    async fn delete_ui_session(&mut self, token_hash: &str) -> StoreResult<Option<Uuid>> {
        crate::ui_sessions::delete(&mut *self.tx, token_hash).await
    }

    async fn end_ui_sessions(
        &mut self,
        owner: &sigil_core::access::ui_session::SessionOwner,
    ) -> StoreResult<u64> {
        crate::ui_sessions::end(&mut *self.tx, owner).await
    }
}

#[async_trait]
impl CertTx for SqlTx {
    async fn insert_ca(&mut self, ca: &sigil_core::certs::ca::CaRecord) -> StoreResult<()> {
        certs::insert_ca(&mut *self.tx, ca).await
    }

    async fn set_ca_keys(
        &mut self,
        id: &str,
        old: (&[u8], Option<&[u8]>),
        new: (&[u8], Option<&[u8]>),
    ) -> StoreResult<bool> {
        certs::set_ca_keys(&mut *self.tx, id, old, new).await
    }

    async fn set_root_crl(&mut self, id: &str, der: &[u8]) -> StoreResult<()> {
        certs::set_root_crl(&mut *self.tx, id, der).await
    }

    async fn clear_ca_root_key(&mut self, id: &str) -> StoreResult<()> {
        certs::clear_ca_root_key(&mut *self.tx, id).await
    }

    async fn mark_crl_stale(&mut self, ca_id: &str) -> StoreResult<()> {
        certs::mark_crl_stale(&mut *self.tx, ca_id).await
    }

    async fn next_crl_number(&mut self, ca_id: &str) -> StoreResult<i64> {
        certs::next_crl_number(&mut *self.tx, ca_id).await
    }

    async fn store_crl(
        &mut self,
        ca_id: &str,
        der: &[u8],
        this_us: i64,
        next_us: i64,
    ) -> StoreResult<()> {
        certs::store_crl(&mut *self.tx, ca_id, der, this_us, next_us).await
    }

    async fn insert_profile(&mut self, p: &sigil_core::certs::profile::Profile) -> StoreResult<()> {
        certs::insert_profile(&mut *self.tx, p).await
    }

    async fn update_profile(&mut self, p: &sigil_core::certs::profile::Profile) -> StoreResult<()> {
        certs::update_profile(&mut *self.tx, p).await
    }

    async fn insert_certificate(&mut self, c: &sigil_core::certs::Certificate) -> StoreResult<()> {
        certs::insert_certificate(&mut self.tx, c).await
    }

    async fn certificate_for_update(
        &mut self,
        id: Uuid,
    ) -> StoreResult<Option<sigil_core::certs::Certificate>> {
        let lock = self.lock();
        certs::certificate_where(&mut *self.tx, "id = $1", &[&id.to_string()], lock).await
    }

    async fn update_certificate(&mut self, c: &sigil_core::certs::Certificate) -> StoreResult<()> {
        certs::update_certificate(&mut *self.tx, c).await
    }

    async fn cancel_supersession(&mut self, id: Uuid, now_us: i64) -> StoreResult<bool> {
        sqlx::query(
            "UPDATE certificates SET superseded_until = NULL \
             WHERE id = $1 AND superseded_until > $2 AND status IN ('active', 'suspended')",
        )
        .bind(id.to_string())
        .bind(now_us)
        .execute(&mut *self.tx)
        .await
        .map(|r| r.rows_affected() > 0)
        .map_err(map_err)
    }

    async fn set_superseded_until(&mut self, id: Uuid, until_us: i64) -> StoreResult<()> {
        sqlx::query(
            "UPDATE certificates SET superseded_until = $2 \
             WHERE id = $1 AND superseded_by IS NOT NULL AND status IN ('active', 'suspended')",
        )
        .bind(id.to_string())
        .bind(until_us)
        .execute(&mut *self.tx)
        .await
        .map(|_| ())
        .map_err(map_err)
    }
}

#[async_trait]
impl SettingsTx for SqlTx {
    async fn setting(&mut self, name: &str) -> StoreResult<Option<String>> {
        let lock = match self.backend {
            Backend::Postgres => " FOR UPDATE",
            Backend::Sqlite => "",
        };
        let sql = format!("SELECT value FROM settings WHERE name = $1{lock}");
        sqlx::query_scalar::<_, String>(sqlx::AssertSqlSafe(sql))
            .bind(name)
            .fetch_optional(&mut *self.tx)
            .await
            .map_err(map_err)
    }

    async fn put_setting(
        &mut self,
        name: &str,
        value: &str,
        now_us: i64,
        by: &str,
    ) -> StoreResult<()> {
        sqlx::query(
            "INSERT INTO settings (name, value, updated_at, updated_by) VALUES ($1, $2, $3, $4) \
             ON CONFLICT (name) DO UPDATE SET value = $2, updated_at = $3, updated_by = $4",
        )
        .bind(name)
        .bind(value)
        .bind(now_us)
        .bind(by)
        .execute(&mut *self.tx)
        .await
        .map(|_| ())
        .map_err(map_err)
    }

    async fn delete_setting(&mut self, name: &str) -> StoreResult<bool> {
        sqlx::query("DELETE FROM settings WHERE name = $1")
            .bind(name)
            .execute(&mut *self.tx)
            .await
            .map(|r| r.rows_affected() > 0)
            .map_err(map_err)
    }
}

#[async_trait]
impl SigningTx for SqlTx {
    async fn insert_sad(&mut self, sad: &sigil_core::signing::credential::Sad) -> StoreResult<()> {
        crate::csc::insert(&mut *self.tx, sad).await
    }

    async fn end_csc_sessions(&mut self, signer: Uuid) -> StoreResult<u64> {
        crate::csc::end_sessions(&mut self.tx, &signer.to_string()).await
    }
}
