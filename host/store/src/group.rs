//! Group commit for SQLite. SQLite has one writer and sqlx pays a thread hop per statement, so
//! committing each issuance alone caps throughput at a few hundred per second. A writer task
//! takes whatever units are waiting (up to [`MAX_BATCH`]), applies them in one transaction with
//! their audit events chained in order, and commits once. If the batch fails, each unit is
//! retried alone, so one bad unit never takes others down with it.

use sigil_core::StoreError;
use sigil_core::audit::{AuditEvent, NewAuditEvent};
use sigil_core::ports::{StoreResult, WriteOp};
use sqlx::{AnyConnection, AnyPool};
use time::OffsetDateTime;
use tokio::sync::{mpsc, oneshot};

use crate::{audit, certs, csc, map_err};

/// Most units in one transaction.
pub(crate) const MAX_BATCH: usize = 256;

pub(crate) struct Unit {
    pub(crate) ops: Vec<WriteOp>,
    pub(crate) events: Vec<NewAuditEvent>,
    pub(crate) now: OffsetDateTime,
    pub(crate) reply: oneshot::Sender<StoreResult<Vec<AuditEvent>>>,
}

/// Starts the writer task; it ends when every sender is dropped.
pub(crate) fn spawn(pool: AnyPool) -> mpsc::Sender<Unit> {
    let (tx, mut rx) = mpsc::channel::<Unit>(4 * MAX_BATCH);
    tokio::spawn(async move {
        while let Some(first) = rx.recv().await {
            let mut batch = vec![first];
            while batch.len() < MAX_BATCH {
                match rx.try_recv() {
                    Ok(u) => batch.push(u),
                    Err(_) => break,
                }
            }
            let refs: Vec<(&[WriteOp], &[NewAuditEvent], OffsetDateTime)> =
                batch.iter().map(|u| (u.ops.as_slice(), u.events.as_slice(), u.now)).collect();
            match write(&pool, &refs).await {
                Ok(results) => {
                    for (u, r) in batch.into_iter().zip(results) {
                        let _ = u.reply.send(Ok(r));
                    }
                }
                Err(_) if batch.len() > 1 => {
                    for u in batch {
                        let r = write(&pool, &[(u.ops.as_slice(), u.events.as_slice(), u.now)])
                            .await
                            .map(|mut v| v.pop().unwrap_or_default());
                        let _ = u.reply.send(r);
                    }
                }
                Err(e) => {
                    if let Some(u) = batch.into_iter().next() {
                        let _ = u.reply.send(Err(e));
                    }
                }
            }
        }
    });
    tx
}

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

/// Applies `units` in one transaction and returns each unit's sealed events.
pub(crate) async fn write(
    pool: &AnyPool,
    units: &[(&[WriteOp], &[NewAuditEvent], OffsetDateTime)],
) -> StoreResult<Vec<Vec<AuditEvent>>> {
    let mut tx = pool.begin().await.map_err(map_err)?;
    // SQLite only (the group writer): its writer lock serialises the chain.
    let mut chain = audit::Chain::head(&mut tx, false).await?;
    let mut out = Vec::with_capacity(units.len());
    for (ops, events, now) in units {
        for op in *ops {
            apply(&mut tx, op).await?;
        }
        out.push(chain.append(&mut tx, events, *now).await?);
    }
    chain.save(&mut tx).await?;
    tx.commit().await.map_err(map_err)?;
    Ok(out)
}
