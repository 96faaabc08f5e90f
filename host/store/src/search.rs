//! Text search over certificates' subjects and SANs (`q=` on the certificate list).
//!
//! `LIKE '%text%'` alone reads every certificate (half a second over a million). PostgreSQL
//! keeps a pg_trgm GIN index on `certificates.search` and its planner weighs it. SQLite keeps
//! an FTS5 trigram table (`certificates_search`) that is filled in batches by
//! [`SqlStore::index_certificate_search`] rather than by a trigger: one FTS insert per
//! certificate would cost the issuance path about a tenth of its rate, a batch of thousands
//! costs little. `certificates_search_mark` holds the last certificate (rowid and id) the
//! index covers; a search narrowed by the index also takes every certificate after the mark
//! (`rowid >`), so nothing issued since is missed, and the LIKE is always applied, so the
//! answer is the same as without the index.

use sqlx::AnyPool;

use crate::{Backend, SqlStore, map_err};
use sigil_core::ports::StoreResult;

/// Above this many trigram matches a text search is not narrowed by the index: the matching
/// certificates are common enough that walking the list in its order finds a page sooner than
/// sorting every match.
const NARROW_LIMIT: i64 = 2_000;

/// Certificates indexed per transaction: large enough that the FTS insert is cheap per row,
/// small enough that the writers' gate (which issuance waits on) is held for under about 10 ms
/// (a catch-up over 1.38 million certificates indexed about 115,000 a second here).
const INDEX_BATCH: i64 = 1_000;

/// The FTS5 phrase that matches `text` as a substring through the trigram index.
pub(crate) fn fts_phrase(text: &str) -> String {
    format!("\"{}\"", text.to_lowercase().replace('"', "\"\""))
}

/// The condition that narrows a certificate query to the index's candidates for `text`, when
/// it should: on SQLite, for text of three or more characters (a trigram; shorter text is not
/// indexed) that matches at most [`NARROW_LIMIT`] indexed certificates.
pub(crate) async fn narrowing(
    pool: &AnyPool,
    backend: Backend,
    text: &str,
) -> StoreResult<Option<(&'static str, String)>> {
    if backend != Backend::Sqlite || text.chars().count() < 3 {
        return Ok(None);
    }
    let n: i64 = sqlx::query_scalar(
        "SELECT COUNT(*) FROM (SELECT 1 FROM certificates_search \
         WHERE certificates_search MATCH $1 LIMIT $2)",
    )
    .bind(fts_phrase(text))
    .bind(NARROW_LIMIT + 1)
    .fetch_one(pool)
    .await
    .map_err(map_err)?;
    Ok((n <= NARROW_LIMIT).then(|| {
        (
            // One IN list (not an OR, which SQLite answers by walking the whole list order):
            // the index's matches and the certificates after its mark.
            "id IN (SELECT id FROM certificates_search WHERE certificates_search MATCH ? \
             UNION ALL SELECT id FROM certificates \
             WHERE rowid > (SELECT last_rowid FROM certificates_search_mark WHERE id = 1))",
            fts_phrase(text),
        )
    }))
}

impl SqlStore {
    /// SQLite: adds the certificates issued since the last call to the text-search index, in
    /// batches, and returns how many it added (0 on PostgreSQL, whose index is kept by the
    /// database). The server calls this every second. If the mark no longer names the
    /// certificate it recorded (a database rebuilt by VACUUM may renumber rows), the index is
    /// rebuilt from scratch.
    pub async fn index_certificate_search(&self) -> StoreResult<u64> {
        if self.backend != Backend::Sqlite {
            return Ok(0);
        }
        let mut added = 0;
        loop {
            let mut tx = self.begin_write().await?;
            let (mark, mark_id): (i64, Option<String>) = sqlx::query_as(
                "SELECT last_rowid, last_id FROM certificates_search_mark WHERE id = 1",
            )
            .fetch_one(&mut *tx.tx)
            .await
            .map_err(map_err)?;
            let mut from = mark;
            if mark > 0 {
                let at: Option<String> =
                    sqlx::query_scalar("SELECT id FROM certificates WHERE rowid = $1")
                        .bind(mark)
                        .fetch_optional(&mut *tx.tx)
                        .await
                        .map_err(map_err)?;
                if at != mark_id {
                    sqlx::query("DELETE FROM certificates_search")
                        .execute(&mut *tx.tx)
                        .await
                        .map_err(map_err)?;
                    from = 0;
                }
            }
            let (last, n): (Option<i64>, i64) = sqlx::query_as(
                "SELECT MAX(rowid), COUNT(*) FROM (SELECT rowid FROM certificates \
                 WHERE rowid > $1 ORDER BY rowid LIMIT $2)",
            )
            .bind(from)
            .bind(INDEX_BATCH)
            .fetch_one(&mut *tx.tx)
            .await
            .map_err(map_err)?;
            let Some(last) = last else {
                if from != mark {
                    sqlx::query(
                        "UPDATE certificates_search_mark SET last_rowid = 0, last_id = NULL \
                         WHERE id = 1",
                    )
                    .execute(&mut *tx.tx)
                    .await
                    .map_err(map_err)?;
                }
                tx.tx.commit().await.map_err(map_err)?;
                return Ok(added);
            };
            sqlx::query(
                "INSERT INTO certificates_search (id, search) SELECT id, search FROM certificates \
                 WHERE rowid > $1 AND rowid <= $2",
            )
            .bind(from)
            .bind(last)
            .execute(&mut *tx.tx)
            .await
            .map_err(map_err)?;
            sqlx::query(
                "UPDATE certificates_search_mark SET last_rowid = $1, \
                 last_id = (SELECT id FROM certificates WHERE rowid = $1) WHERE id = 1",
            )
            .bind(last)
            .execute(&mut *tx.tx)
            .await
            .map_err(map_err)?;
            tx.tx.commit().await.map_err(map_err)?;
            added += u64::try_from(n).unwrap_or(0);
            if n < INDEX_BATCH {
                return Ok(added);
            }
        }
    }
}
