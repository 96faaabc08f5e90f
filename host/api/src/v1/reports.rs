//! `/api/v1/reports`: certificates expiring within N days, per registration office.

use axum::extract::State;
use sigil_core::access::authz::perm;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::rfc3339;
use crate::AppState;
use crate::error::{ApiError, Problem};
use crate::extract::{Authorized, Query};

/// Most certificates one report lists.
const MAX: usize = 10_000;

/// Routes of this module.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(expiring))
}

/// Query of the expiry report.
#[derive(Debug, serde::Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
pub struct ExpiringQuery {
    /// Window in days from now (1 to 3650, default 30).
    #[param(minimum = 1, maximum = 3650)]
    days: Option<u32>,
}

/// A certificate in the report.
#[derive(Debug, serde::Serialize, serde::Deserialize, utoipa::ToSchema)]
pub struct ExpiringCertificate {
    /// Id.
    pub id: String,
    /// Serial (hex).
    pub serial: String,
    /// Subject.
    pub subject: String,
    /// Profile.
    pub profile: String,
    /// notAfter.
    pub not_after: String,
}

/// One office's part of the report.
#[derive(Debug, serde::Serialize, serde::Deserialize, utoipa::ToSchema)]
pub struct OfficeExpiry {
    /// The office (absent for certificates of no office).
    pub office_id: Option<String>,
    /// Its code.
    pub office_code: Option<String>,
    /// Its name.
    pub office_name: Option<String>,
    /// How many expire in the window.
    pub count: usize,
    /// Soonest first.
    pub certificates: Vec<ExpiringCertificate>,
}

/// The report.
#[derive(Debug, serde::Serialize, serde::Deserialize, utoipa::ToSchema)]
pub struct ExpiryReport {
    /// The window, days.
    pub days: u32,
    /// Certificates counted.
    pub total: usize,
    /// More than 10 000 matched; the report lists the soonest.
    pub truncated: bool,
    /// Per office.
    pub offices: Vec<OfficeExpiry>,
}

/// Active certificates expiring within `days` days, per registration office (within the
/// caller's scope).
#[utoipa::path(get, path = "/api/v1/reports/expiring", tag = "reports", params(ExpiringQuery),
    responses((status = 200, body = ExpiryReport), (status = 400, body = Problem), (status = 401, body = Problem),
        (status = 403, body = Problem)),
    security(("bearer" = []), ("api_key" = [])))]
async fn expiring(
    State(st): State<AppState>,
    Authorized(cap): Authorized<perm::CertificatesRead>,
    Query(q): Query<ExpiringQuery>,
) -> Result<axum::Json<ExpiryReport>, ApiError> {
    let days = q.days.unwrap_or(30);
    let (groups, truncated) = st.certificates.expiring_by_office(&cap, days, MAX).await?;
    let offices: Vec<OfficeExpiry> = groups
        .into_iter()
        .map(|(o, certs)| OfficeExpiry {
            office_id: o.as_ref().map(|o| o.id.to_string()),
            office_code: o.as_ref().map(|o| o.code.clone()),
            office_name: o.as_ref().map(|o| o.name.clone()),
            count: certs.len(),
            certificates: certs
                .into_iter()
                .map(|c| ExpiringCertificate {
                    id: c.id.to_string(),
                    serial: c.serial,
                    subject: c.subject,
                    profile: c.profile,
                    not_after: rfc3339(c.not_after),
                })
                .collect(),
        })
        .collect();
    let total = offices.iter().map(|o| o.count).sum();
    Ok(axum::Json(ExpiryReport { days, total, truncated, offices }))
}
