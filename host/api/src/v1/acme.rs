//! `/api/v1/acme`: ACME administration (`acme:manage`, callers who see every office):
//! external account binding keys and ACME accounts.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use sigil_core::access::authz::perm;
use sigil_core::acme::model::{AccountStatus, AcmeAccount, EabKey};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use super::rfc3339;
use crate::AppState;
use crate::error::{ApiError, Problem};
use crate::extract::{Authorized, Json, Query};

/// Routes of this module.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_eab_keys, create_eab_key))
        .routes(routes!(revoke_eab_key))
        .routes(routes!(list_accounts))
        .routes(routes!(show_account))
        .routes(routes!(deactivate_account))
}

/// An external account binding key (its HMAC key is shown once, at creation).
#[derive(Debug, serde::Serialize, serde::Deserialize, utoipa::ToSchema)]
pub struct EabKeyView {
    /// Id: the `kid` of the binding.
    pub id: String,
    /// Name.
    pub name: String,
    /// Only for accounts of this profile (null: any ACME profile).
    pub profile: Option<String>,
    /// The account it bound, once used (a key binds one account).
    pub account_id: Option<String>,
    /// Who created it.
    pub created_by: String,
    /// Creation time.
    pub created_at: String,
    /// Revocation time.
    pub revoked_at: Option<String>,
    /// The HMAC key (base64url): in the creation answer only.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hmac_key: Option<String>,
}

impl From<EabKey> for EabKeyView {
    fn from(k: EabKey) -> Self {
        Self {
            id: k.id.to_string(),
            name: k.name,
            profile: k.profile,
            account_id: k.account_id.map(|a| a.to_string()),
            created_by: k.created_by,
            created_at: rfc3339(k.created_at),
            revoked_at: k.revoked_at.map(rfc3339),
            hmac_key: None,
        }
    }
}

/// Binding keys, oldest first.
#[derive(Debug, serde::Serialize, serde::Deserialize, utoipa::ToSchema)]
pub struct EabKeyList {
    /// The keys.
    pub items: Vec<EabKeyView>,
}

/// Body of `POST /api/v1/acme/eab-keys`.
#[derive(Debug, serde::Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct EabKeyBody {
    /// A name for people (1 to 200 characters).
    pub name: String,
    /// Only for accounts of this ACME profile.
    #[serde(default)]
    pub profile: Option<String>,
}

/// An ACME account.
#[derive(Debug, serde::Serialize, serde::Deserialize, utoipa::ToSchema)]
pub struct AcmeAccountView {
    /// Id (the last segment of its account URL).
    pub id: String,
    /// The profile whose directory it was created under.
    pub profile: String,
    /// `valid`, `deactivated` or `revoked`.
    pub status: String,
    /// `mailto:` contacts.
    pub contact: Vec<String>,
    /// RFC 7638 thumbprint of its key.
    pub thumbprint: String,
    /// The binding key it was created with.
    pub eab_key_id: Option<String>,
    /// Creation time.
    pub created_at: String,
    /// Last change.
    pub updated_at: String,
}

impl From<AcmeAccount> for AcmeAccountView {
    fn from(a: AcmeAccount) -> Self {
        Self {
            id: a.id.to_string(),
            profile: a.profile,
            status: a.status.as_str().to_owned(),
            contact: a.contact,
            thumbprint: a.thumbprint,
            eab_key_id: a.eab_key_id,
            created_at: rfc3339(a.created_at),
            updated_at: rfc3339(a.updated_at),
        }
    }
}

/// ACME accounts, oldest first.
#[derive(Debug, serde::Serialize, serde::Deserialize, utoipa::ToSchema)]
pub struct AcmeAccountList {
    /// The accounts.
    pub items: Vec<AcmeAccountView>,
}

/// Filters of `GET /api/v1/acme/accounts`.
#[derive(Debug, serde::Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
pub struct AccountQuery {
    /// Of this profile.
    pub profile: Option<String>,
    /// `valid`, `deactivated` or `revoked`.
    pub status: Option<String>,
}

fn id(s: &str) -> Result<Uuid, ApiError> {
    Uuid::parse_str(s).map_err(|_| ApiError::not_found())
}

/// List external account binding keys.
#[utoipa::path(get, path = "/api/v1/acme/eab-keys", tag = "acme",
    responses((status = 200, body = EabKeyList), (status = 401, body = Problem), (status = 403, body = Problem)),
    security(("bearer" = []), ("api_key" = [])))]
async fn list_eab_keys(
    State(st): State<AppState>,
    Authorized(cap): Authorized<perm::AcmeManage>,
) -> Result<axum::Json<EabKeyList>, ApiError> {
    let items = st.acme.eab_keys(&cap).await?.into_iter().map(Into::into).collect();
    Ok(axum::Json(EabKeyList { items }))
}

/// Create an external account binding key; its HMAC key is in this answer only.
#[utoipa::path(post, path = "/api/v1/acme/eab-keys", tag = "acme", request_body = EabKeyBody,
    responses((status = 201, body = EabKeyView), (status = 400, body = Problem), (status = 401, body = Problem),
        (status = 403, body = Problem), (status = 409, body = Problem)),
    security(("bearer" = []), ("api_key" = [])))]
async fn create_eab_key(
    State(st): State<AppState>,
    Authorized(cap): Authorized<perm::AcmeManage>,
    Json(b): Json<EabKeyBody>,
) -> Result<impl IntoResponse, ApiError> {
    let made = st.acme.create_eab_key(&cap, &b.name, b.profile).await?;
    let mut view = EabKeyView::from(made.record);
    view.hmac_key = Some(made.hmac_key.to_string());
    Ok((StatusCode::CREATED, axum::Json(view)))
}

/// Revoke an external account binding key (an account it bound stays).
#[utoipa::path(delete, path = "/api/v1/acme/eab-keys/{id}", tag = "acme", params(("id" = String, Path)),
    responses((status = 200, body = EabKeyView), (status = 401, body = Problem), (status = 403, body = Problem),
        (status = 404, body = Problem)),
    security(("bearer" = []), ("api_key" = [])))]
async fn revoke_eab_key(
    State(st): State<AppState>,
    Authorized(cap): Authorized<perm::AcmeManage>,
    Path(i): Path<String>,
) -> Result<axum::Json<EabKeyView>, ApiError> {
    Ok(axum::Json(st.acme.revoke_eab_key(&cap, id(&i)?).await?.into()))
}

/// List ACME accounts.
#[utoipa::path(get, path = "/api/v1/acme/accounts", tag = "acme", params(AccountQuery),
    responses((status = 200, body = AcmeAccountList), (status = 400, body = Problem), (status = 401, body = Problem),
        (status = 403, body = Problem)),
    security(("bearer" = []), ("api_key" = [])))]
async fn list_accounts(
    State(st): State<AppState>,
    Authorized(cap): Authorized<perm::AcmeManage>,
    Query(q): Query<AccountQuery>,
) -> Result<axum::Json<AcmeAccountList>, ApiError> {
    let status = match q.status.as_deref() {
        None => None,
        Some("valid") => Some(AccountStatus::Valid),
        Some("deactivated") => Some(AccountStatus::Deactivated),
        Some("revoked") => Some(AccountStatus::Revoked),
        Some(other) => {
            return Err(sigil_core::CoreError::invalid(
                sigil_core::ErrorCode::InvalidRequest,
                format!("status `{other}`: valid, deactivated or revoked"),
            )
            .into());
        }
    };
    let items =
        st.acme.accounts(&cap, q.profile, status).await?.into_iter().map(Into::into).collect();
    Ok(axum::Json(AcmeAccountList { items }))
}

/// One ACME account.
#[utoipa::path(get, path = "/api/v1/acme/accounts/{id}", tag = "acme", params(("id" = String, Path)),
    responses((status = 200, body = AcmeAccountView), (status = 401, body = Problem), (status = 403, body = Problem),
        (status = 404, body = Problem)),
    security(("bearer" = []), ("api_key" = [])))]
async fn show_account(
    State(st): State<AppState>,
    Authorized(cap): Authorized<perm::AcmeManage>,
    Path(i): Path<String>,
) -> Result<axum::Json<AcmeAccountView>, ApiError> {
    Ok(axum::Json(st.acme.account(&cap, id(&i)?).await?.into()))
}

/// Deactivate an ACME account: its key signs nothing more (its certificates stay valid; revoke
/// them through `/api/v1/certificates`).
#[utoipa::path(post, path = "/api/v1/acme/accounts/{id}/deactivate", tag = "acme", params(("id" = String, Path)),
    responses((status = 200, body = AcmeAccountView), (status = 401, body = Problem), (status = 403, body = Problem),
        (status = 404, body = Problem)),
    security(("bearer" = []), ("api_key" = [])))]
async fn deactivate_account(
    State(st): State<AppState>,
    Authorized(cap): Authorized<perm::AcmeManage>,
    Path(i): Path<String>,
) -> Result<axum::Json<AcmeAccountView>, ApiError> {
    Ok(axum::Json(st.acme.deactivate_account(&cap, id(&i)?).await?.into()))
}
