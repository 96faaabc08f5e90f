//! Batch import of operators from JSON or CSV, validated row by row with the same rules as a
//! single create, reported per row, and applied all-or-nothing (one transaction) or best
//! effort (each valid row on its own).

use crate::ErrorCode;
use std::collections::HashSet;

use uuid::Uuid;

use crate::access::authz::{Capability, perm};
use crate::access::operators::{CreateOperator, OperatorService};
use crate::error::{CoreError, Result};

/// Most rows in one import.
pub const MAX_ROWS: usize = 1000;

/// How an import applies.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize, utoipa::ToSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum ImportMode {
    /// Every row valid, all created in one transaction; otherwise nothing.
    AllOrNothing,
    /// Each valid row created; invalid rows reported.
    BestEffort,
}

/// One row's outcome.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize, utoipa::ToSchema)]
pub struct RowReport {
    /// 1-based row number (CSV: data rows after the header).
    pub row: usize,
    /// The username given.
    pub username: String,
    /// `created`, `valid` (all-or-nothing import that was not committed) or `failed`.
    pub status: String,
    /// The new operator.
    pub id: Option<String>,
    /// Error code.
    pub code: Option<String>,
    /// Error detail.
    pub detail: Option<String>,
}

/// The import's outcome.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize, utoipa::ToSchema)]
pub struct ImportReport {
    /// The mode used.
    pub mode: ImportMode,
    /// Whether anything was written.
    pub committed: bool,
    /// Rows read.
    pub total: usize,
    /// Operators created.
    pub created: usize,
    /// Rows refused.
    pub failed: usize,
    /// Per row.
    pub rows: Vec<RowReport>,
}

/// A row as parsed: the request, or why the row could not be read.
pub type ParsedRow = (usize, String, std::result::Result<CreateOperator, CoreError>);

fn uuids(field: &str, s: &str) -> std::result::Result<Vec<Uuid>, CoreError> {
    s.split(';')
        .map(str::trim)
        .filter(|v| !v.is_empty())
        .map(|v| {
            Uuid::parse_str(v).map_err(|_| {
                CoreError::invalid(ErrorCode::InvalidRow, format!("{field}: `{v}` is not an id"))
            })
        })
        .collect()
}

/// Parses CSV with a header row. Columns: `username` (required), `display_name`, `email`,
/// `roles`, `divisions`, `offices` (lists separated by `;`), `unrestricted` (`true`/`false`),
/// `client_cert_sha256`. Unknown columns are refused.
pub fn parse_csv(text: &str) -> Result<Vec<ParsedRow>> {
    const COLUMNS: [&str; 8] = [
        "username",
        "display_name",
        "email",
        "roles",
        "divisions",
        "offices",
        "unrestricted",
        "client_cert_sha256",
    ];
    let mut rd =
        csv::ReaderBuilder::new().trim(csv::Trim::All).flexible(false).from_reader(text.as_bytes());
    let headers = rd
        .headers()
        .map_err(|e| CoreError::invalid(ErrorCode::InvalidCsv, format!("header: {e}")))?
        .clone();
    if let Some(h) = headers.iter().find(|h| !COLUMNS.contains(h)) {
        return Err(CoreError::invalid(
            ErrorCode::InvalidCsv,
            format!("unknown column `{h}` (columns: {})", COLUMNS.join(", ")),
        ));
    }
    if !headers.iter().any(|h| h == "username") {
        return Err(CoreError::invalid(
            ErrorCode::InvalidCsv,
            "the header needs a `username` column",
        ));
    }
    let mut out = Vec::new();
    for (i, rec) in rd.records().enumerate() {
        let row = i + 1;
        if row > MAX_ROWS {
            return Err(CoreError::invalid(
                ErrorCode::TooManyRows,
                format!("at most {MAX_ROWS} rows"),
            ));
        }
        let rec = match rec {
            Ok(r) => r,
            Err(e) => {
                out.push((
                    row,
                    String::new(),
                    Err(CoreError::invalid(ErrorCode::InvalidRow, e.to_string())),
                ));
                continue;
            }
        };
        let get = |c: &str| {
            headers
                .iter()
                .position(|h| h == c)
                .and_then(|i| rec.get(i))
                .map(str::to_owned)
                .filter(|v| !v.is_empty())
        };
        let username = get("username").unwrap_or_default();
        let parsed = (|| {
            Ok(CreateOperator {
                username: username.clone(),
                display_name: get("display_name"),
                email: get("email"),
                roles: get("roles")
                    .map(|r| {
                        r.split(';')
                            .map(|x| x.trim().to_owned())
                            .filter(|x| !x.is_empty())
                            .collect()
                    })
                    .unwrap_or_default(),
                client_cert_sha256: get("client_cert_sha256"),
                unrestricted: match get("unrestricted").as_deref() {
                    None => None,
                    Some("true") => Some(true),
                    Some("false") => Some(false),
                    Some(v) => {
                        return Err(CoreError::invalid(
                            ErrorCode::InvalidRow,
                            format!("unrestricted: `{v}` is not true or false"),
                        ));
                    }
                },
                divisions: uuids("divisions", &get("divisions").unwrap_or_default())?,
                offices: uuids("offices", &get("offices").unwrap_or_default())?,
            })
        })();
        out.push((row, username, parsed));
    }
    Ok(out)
}

fn failed(row: usize, username: String, e: &CoreError) -> RowReport {
    RowReport {
        row,
        username,
        status: "failed".into(),
        id: None,
        code: Some(e.code().as_str().to_owned()),
        detail: Some(e.to_string()),
    }
}

impl OperatorService {
    /// Imports operators. Every row is checked as a single create would be (username, roles
    /// without escalation or exclusive pairs, scope), plus duplicates within the batch.
    pub async fn import(
        &self,
        cap: &Capability<perm::OperatorsCreate>,
        rows: Vec<ParsedRow>,
        mode: ImportMode,
    ) -> Result<ImportReport> {
        if rows.is_empty() {
            return Err(CoreError::invalid(ErrorCode::EmptyImport, "no rows to import"));
        }
        if rows.len() > MAX_ROWS {
            return Err(CoreError::invalid(
                ErrorCode::TooManyRows,
                format!("at most {MAX_ROWS} rows"),
            ));
        }
        let p = cap.principal();
        let total = rows.len();
        let batch = Uuid::now_v7().to_string();
        let mut seen = HashSet::new();
        let mut reports = Vec::with_capacity(total);
        let mut valid = Vec::new();
        for (row, username, parsed) in rows {
            let prepared = match parsed {
                Ok(req) => self.prepare(p, req).await,
                Err(e) => Err(e),
            };
            match prepared {
                Ok(op) if !seen.insert(op.username.to_lowercase()) => {
                    let e = CoreError::conflict(
                        ErrorCode::NameTaken,
                        format!("`{}` appears twice in this import", op.username),
                    );
                    reports.push(failed(row, username, &e));
                }
                Ok(op) => {
                    reports.push(RowReport {
                        row,
                        username,
                        status: "valid".into(),
                        id: Some(op.id.to_string()),
                        code: None,
                        detail: None,
                    });
                    valid.push((reports.len() - 1, op));
                }
                Err(e) => reports.push(failed(row, username, &e)),
            }
        }
        let mut committed = false;
        match mode {
            ImportMode::AllOrNothing => {
                if valid.len() == total {
                    let ops: Vec<_> = valid.iter().map(|(_, o)| o.clone()).collect();
                    match self.insert_all(p, &ops, Some(&batch)).await {
                        Ok(()) => {
                            committed = true;
                            for (i, _) in &valid {
                                reports[*i].status = "created".into();
                            }
                        }
                        // A clash with an existing operator: nothing written, the row named.
                        Err((Some(at), e)) => {
                            let r = &mut reports[valid[at].0];
                            *r = failed(r.row, r.username.clone(), &e);
                        }
                        Err((None, e)) => return Err(e),
                    }
                }
                if !committed {
                    for r in reports.iter_mut().filter(|r| r.status == "valid") {
                        r.id = None;
                    }
                }
            }
            ImportMode::BestEffort => {
                for (i, op) in &valid {
                    match self.insert_all(p, std::slice::from_ref(op), Some(&batch)).await {
                        Ok(()) => {
                            committed = true;
                            reports[*i].status = "created".into();
                        }
                        Err((_, e)) => {
                            let r = &mut reports[*i];
                            *r = failed(r.row, r.username.clone(), &e);
                        }
                    }
                }
            }
        }
        let created = reports.iter().filter(|r| r.status == "created").count();
        let failed_n = reports.iter().filter(|r| r.status == "failed").count();
        Ok(ImportReport { mode, committed, total, created, failed: failed_n, rows: reports })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_rows_parse_with_lists_and_report_bad_ids_per_row() {
        let rows = parse_csv(
            "username,email,roles,offices\nana,ana@x.org,auditor;service-desk,\nbob,,auditor,not-an-id\n",
        )
        .unwrap();
        assert_eq!(rows.len(), 2);
        let ana = rows[0].2.as_ref().unwrap();
        assert_eq!(ana.roles, ["auditor", "service-desk"]);
        assert_eq!(rows[1].2.as_ref().unwrap_err().code(), "invalid_row");
        assert_eq!(parse_csv("user,roles\nx,y\n").unwrap_err().code(), "invalid_csv");
    }
}
