//! [`SqlStore`] as each of sigil-core's storage ports: each method picks its area's module (or
//! the group writer), the pool for its kind of work, and, for writes outside the group, the
//! writers' gate.

use super::*;

#[async_trait]
impl sigil_core::records::RecordStore for SqlStore {
    async fn record(
        &self,
        c: sigil_core::records::Collection,
        key: &str,
    ) -> StoreResult<Option<String>> {
        records::fetch_one(&self.read, c, key, "").await
    }

    async fn records(&self, q: &sigil_core::records::RecordQuery) -> StoreResult<Vec<String>> {
        records::fetch(&self.read, q, "").await
    }

    async fn count_records(&self, f: &sigil_core::records::Filter) -> StoreResult<i64> {
        records::count_of(&self.read, f).await
    }
}

#[async_trait]
impl sigil_core::records::Records for SqlStore {
    async fn begin_records(&self) -> StoreResult<Box<dyn sigil_core::records::RecordUnit>> {
        Ok(Box::new(self.begin_write().await?))
    }
}

#[async_trait]
impl sigil_core::ports::AccessPort for SqlStore {
    async fn begin_access(&self) -> StoreResult<Box<dyn sigil_core::ports::AccessUnit>> {
        Ok(Box::new(self.begin_write().await?))
    }
}

#[async_trait]
impl Store for SqlStore {
    fn backend(&self) -> &'static str {
        match self.backend {
            Backend::Sqlite => "sqlite",
            Backend::Postgres => "postgres",
        }
    }

    async fn ping(&self) -> StoreResult<()> {
        if self.group.is_closed() {
            return Err(StoreError::Backend("the group-commit writer has stopped".into()));
        }
        sqlx::query("SELECT 1").execute(&self.read).await.map(|_| ()).map_err(map_err)
    }

    async fn commit_ops(
        &self,
        ops: Vec<sigil_core::ports::WriteOp>,
        events: Vec<sigil_core::audit::NewAuditEvent>,
        now: time::OffsetDateTime,
    ) -> StoreResult<()> {
        let (reply, rx) = tokio::sync::oneshot::channel();
        self.group
            .send(group::Unit { ops, events, now, reply })
            .await
            .map_err(|_| StoreError::Backend("the writer has stopped".into()))?;
        // The unit comes back with its answer, to be dropped on this thread (see group::Answer).
        let answer = rx.await.map_err(|_| StoreError::Backend("the writer has stopped".into()))?;
        answer.result?;
        if let Some(o) = self.observer.get() {
            for e in &answer.events {
                o.committed(e.into());
            }
        }
        Ok(())
    }

    async fn begin(&self) -> StoreResult<Box<dyn Tx>> {
        Ok(Box::new(self.begin_write().await?))
    }

    fn observe_commits(&self, observer: Arc<dyn sigil_core::ports::CommitObserver>) {
        let _ = self.observer.set(observer);
    }

    fn pool_status(&self) -> Vec<sigil_core::ports::PoolStatus> {
        let status = |pool: &'static str, p: &AnyPool| sigil_core::ports::PoolStatus {
            pool,
            open: p.size(),
            idle: u32::try_from(p.num_idle()).unwrap_or(u32::MAX),
            max: p.options().get_max_connections(),
        };
        match self.backend {
            Backend::Sqlite => vec![status("read", &self.read), status("write", &self.write)],
            // One pool serves both.
            Backend::Postgres => vec![status("read", &self.read)],
        }
    }
}

#[async_trait]
impl AccessStore for SqlStore {
    async fn count_api_keys(&self) -> StoreResult<i64> {
        apikeys::count(&self.read).await
    }

    async fn api_key(&self, id: Uuid) -> StoreResult<Option<ApiKey>> {
        apikeys::by_id(&self.read, id).await
    }

    async fn api_key_by_prefix(&self, prefix: &str) -> StoreResult<Option<ApiKey>> {
        apikeys::by_prefix(&self.read, prefix).await
    }

    async fn api_key_by_certificate(&self, sha256: &str) -> StoreResult<Option<ApiKey>> {
        apikeys::by_certificate(&self.read, sha256).await
    }

    async fn list_api_keys(
        &self,
        f: &ApiKeyFilter,
        page: &PageRequest,
    ) -> StoreResult<Vec<ApiKey>> {
        apikeys::list(&self.read, f, page).await
    }

    async fn roles(&self) -> StoreResult<Vec<sigil_core::access::operator::Role>> {
        operators::roles(&self.read).await
    }

    async fn operator(
        &self,
        id: Uuid,
    ) -> StoreResult<Option<sigil_core::access::operator::Operator>> {
        operators::operator_where(&self.read, "id", &id.to_string(), "").await
    }

    async fn operator_by_certificate(
        &self,
        sha256: &str,
    ) -> StoreResult<Option<sigil_core::access::operator::Operator>> {
        operators::operator_where(&self.read, "client_cert_sha256", sha256, "").await
    }

    async fn list_operators(
        &self,
        f: &sigil_core::ports::OperatorFilter,
        page: &PageRequest,
    ) -> StoreResult<Vec<sigil_core::access::operator::Operator>> {
        operators::list(&self.read, f, page).await
    }

    async fn rate_limit_hit(&self, key: &str, start: i64, end: i64) -> StoreResult<i64> {
        // Through the write pool, in the writers' queue on SQLite, instead of racing them for
        // the lock.
        let _turn = self.gate().await;
        sqlx::query_scalar::<_, i64>(
            "INSERT INTO rate_limit_windows (bucket, window_start, window_end, hits) \
             VALUES ($1, $2, $3, 1) \
             ON CONFLICT (bucket, window_start) DO UPDATE SET hits = rate_limit_windows.hits + 1 \
             RETURNING hits",
        )
        .bind(key)
        .bind(start)
        .bind(end)
        .fetch_one(&self.write)
        .await
        .map_err(map_err)
    }

    async fn touch_api_key(&self, id: Uuid, now_us: i64) -> StoreResult<()> {
        let _turn = self.gate().await;
        sqlx::query(
            "UPDATE api_keys SET last_used_at = $1 \
             WHERE id = $2 AND (last_used_at IS NULL OR last_used_at < $1)",
        )
        .bind(now_us)
        .bind(id.to_string())
        .execute(&self.write)
        .await
        .map(|_| ())
        .map_err(map_err)
    }

    async fn ui_session(
        &self,
        token_hash: &str,
    ) -> StoreResult<Option<sigil_core::access::ui_session::UiSession>> {
        ui_sessions::get(&self.read, token_hash).await
    }

    async fn touch_ui_session(&self, token_hash: &str, now_us: i64) -> StoreResult<()> {
        let _turn = self.gate().await;
        ui_sessions::touch(&self.write, token_hash, now_us).await
    }

    async fn prune_ui_sessions(&self, before_us: i64) -> StoreResult<u64> {
        let _turn = self.gate().await;
        ui_sessions::prune(&self.write, before_us).await
    }

    async fn rate_limit_prune(&self, before: i64) -> StoreResult<u64> {
        let _turn = self.gate().await;
        sqlx::query("DELETE FROM rate_limit_windows WHERE window_end < $1")
            .bind(before)
            .execute(&self.write)
            .await
            .map(|r| r.rows_affected())
            .map_err(map_err)
    }
}

#[async_trait]
impl CertStore for SqlStore {
    async fn cas(&self) -> StoreResult<Vec<sigil_core::certs::ca::CaRecord>> {
        certs::cas(&self.read).await
    }

    async fn crl(&self, ca_id: &str) -> StoreResult<Option<sigil_core::ports::CrlRecord>> {
        certs::crl(&self.read, ca_id).await
    }

    async fn revoked_entries(
        &self,
        ca_id: &str,
    ) -> StoreResult<Vec<sigil_core::certs::ca::RevokedEntry>> {
        certs::revoked_entries(&self.read, ca_id).await
    }

    async fn profiles(&self) -> StoreResult<Vec<sigil_core::certs::profile::Profile>> {
        certs::profiles(&self.read).await
    }

    async fn certificate(&self, id: Uuid) -> StoreResult<Option<sigil_core::certs::Certificate>> {
        certs::certificate_where(&self.read, "id = $1", &[&id.to_string()], "").await
    }

    async fn renewal_of(&self, id: Uuid) -> StoreResult<Option<sigil_core::certs::Certificate>> {
        // The write pool: a renewal just made on this node must be seen at once.
        certs::certificate_where(&self.write, "renewed_from = $1", &[&id.to_string()], "").await
    }

    async fn superseded_due(
        &self,
        now_us: i64,
        limit: u32,
    ) -> StoreResult<Vec<sigil_core::certs::Certificate>> {
        certs::superseded_due(&self.write, now_us, limit).await
    }

    async fn certificate_by_serial(
        &self,
        ca_id: &str,
        serial: &str,
    ) -> StoreResult<Option<sigil_core::certs::Certificate>> {
        certs::certificate_where(&self.read, "ca_id = $1 AND serial = $2", &[ca_id, serial], "")
            .await
    }

    async fn list_certificates(
        &self,
        f: &sigil_core::ports::CertFilter,
        page: &PageRequest,
    ) -> StoreResult<Vec<sigil_core::certs::Certificate>> {
        certs::list(&self.read, self.backend, f, page).await
    }
}

#[async_trait]
impl AuditLog for SqlStore {
    async fn audit_events(&self, f: &AuditFilter, limit: u32) -> StoreResult<Vec<AuditEvent>> {
        // The chain walk's shape (every event after a sequence number): read past sqlx.
        if let (Some(walk), Some(after)) = (&self.walk, f.after_seq)
            && *f == (AuditFilter { after_seq: Some(after), ..AuditFilter::default() })
        {
            return sqlite_read::events_after_in_file(Arc::clone(walk), after, limit).await;
        }
        audit::events(&self.read, f, limit).await
    }

    async fn audit_head(&self) -> StoreResult<AuditHead> {
        audit::head(&self.read).await
    }

    async fn audit_checkpoints(&self, from_counter: i64) -> StoreResult<Vec<Checkpoint>> {
        audit::checkpoints(&self.read, from_counter).await
    }

    async fn insert_audit_checkpoint(&self, c: &Checkpoint) -> StoreResult<bool> {
        let _turn = self.gate().await;
        audit::insert_checkpoint(&self.write, c).await
    }

    async fn register_audit_key(&self, k: &AuditKeyRecord) -> StoreResult<()> {
        let _turn = self.gate().await;
        audit::register_key(&self.write, k).await
    }

    async fn audit_keys(&self) -> StoreResult<Vec<AuditKeyRecord>> {
        audit::keys(&self.read).await
    }
}

#[async_trait]
impl SettingsStore for SqlStore {
    async fn setting(&self, name: &str) -> StoreResult<Option<String>> {
        sqlx::query_scalar::<_, String>("SELECT value FROM settings WHERE name = $1")
            .bind(name)
            .fetch_optional(&self.read)
            .await
            .map_err(map_err)
    }
}

#[async_trait]
impl sigil_core::acme::store::AcmeStore for SqlStore {
    async fn acme_nonce_issue(&self, nonce: &str, expires_us: i64) -> StoreResult<()> {
        let _turn = self.gate().await;
        acme::issue(&self.write, nonce, expires_us).await
    }

    async fn acme_nonce_consume(&self, nonce: &str, now_us: i64) -> StoreResult<bool> {
        let _turn = self.gate().await;
        acme::consume(&self.write, nonce, now_us).await
    }

    async fn acme_nonce_prune(&self, before_us: i64) -> StoreResult<u64> {
        let _turn = self.gate().await;
        acme::prune(&self.write, before_us).await
    }
}

#[async_trait]
impl SigningStore for SqlStore {
    async fn csc_prune(&self, before: i64) -> StoreResult<u64> {
        let _turn = self.gate().await;
        csc::prune(&self.write, before).await
    }
}
