//! The write operations that ride with their audit events in one commit ([`WriteOp`]), applied
//! through sqlx inside a transaction (PostgreSQL, and SQLite outside the group writer).

use sigil_core::StoreError;
use sigil_core::ports::{StoreResult, WriteOp};
use sqlx::AnyConnection;

use crate::{certs, csc, map_err};

pub(crate) async fn apply(conn: &mut AnyConnection, op: &WriteOp) -> StoreResult<()> {
    match op {
        WriteOp::InsertCertificate(c) => certs::insert_certificate(conn, c).await,
        WriteOp::ConsumeSad(u) => csc::consume(conn, u).await,
        WriteOp::ClaimRenewal { renewed_from, renewal, at_us, superseded_until_us } => {
            sqlx::query(
                "INSERT INTO certificate_renewals (renewed_from, renewal_id, claimed_at) \
                 VALUES ($1, $2, $3)",
            )
            .bind(renewed_from.to_string())
            .bind(renewal.to_string())
            .bind(*at_us)
            .execute(&mut *conn)
            .await
            .map_err(map_err)?;
            sqlx::query(
                "UPDATE certificates SET superseded_by = $2, superseded_until = $3, \
                 updated_at = $4 WHERE id = $1",
            )
            .bind(renewed_from.to_string())
            .bind(renewal.to_string())
            .bind(*superseded_until_us)
            .bind(*at_us)
            .execute(&mut *conn)
            .await
            .map(|_| ())
            .map_err(map_err)
        }
        #[allow(unreachable_patterns)]
        _ => Err(StoreError::Backend("unsupported write operation".into())),
    }
}
