//! `/api/v1/profiles` and `/api/v1/ca-backends`, plus the public CRL at `/crl/{ca}.crl`.

use axum::extract::{Path, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use sigil_core::access::authz::perm;
use sigil_core::certs::profile::{Profile, ProfileSpec};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::certificates::pem;
use super::rfc3339;
use crate::AppState;
use crate::error::{ApiError, Problem};
use crate::extract::{Authorized, Json};

/// Routes of this module.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list, create))
        .routes(routes!(show, replace))
        .routes(routes!(ca_backends))
        .routes(routes!(crl))
        .routes(routes!(ca_certificate))
        .routes(routes!(ocsp_post))
        .routes(routes!(ocsp_get))
}

/// What the plain-HTTP publication listener serves (`pki.http_listen`): CRLs, OCSP and CA
/// certificates, and nothing else (RFC 5280 §4.2.1.13 and RFC 6960 relying parties fetch them
/// over HTTP; checking a CRL fetched over TLS would need revocation checking itself).
pub fn publication() -> axum::Router<AppState> {
    axum::Router::new()
        .route("/crl/{file}", axum::routing::get(crl))
        .route("/ca/{file}", axum::routing::get(ca_certificate))
        .route("/ocsp", axum::routing::post(ocsp_post))
        .route("/ocsp/{request}", axum::routing::get(ocsp_get))
}

/// A CA back end's certificate (DER), where authorityInfoAccess caIssuers points.
#[utoipa::path(get, path = "/ca/{file}", tag = "revocation",
    params(("file" = String, Path, description = "`<ca>.crt`")),
    responses((status = 200, content_type = "application/pkix-cert"), (status = 404, body = Problem)))]
async fn ca_certificate(
    State(st): State<AppState>,
    Path(file): Path<String>,
) -> Result<Response, ApiError> {
    let ca = file.strip_suffix(".crt").ok_or_else(ApiError::not_found)?;
    let der = st.cas.ca_certificate(ca).await.map_err(|_| ApiError::not_found())?;
    let mut res = der.into_response();
    res.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static("application/pkix-cert"));
    res.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("max-age=3600"));
    Ok(res)
}

/// An unsigned OCSPResponse with status tryLater (RFC 6960 §2.3).
const OCSP_TRY_LATER: &[u8] = &[0x30, 0x03, 0x0a, 0x01, 0x03];

/// An OCSP answer: the signed response, or, when a dependency the signature needs is down (the
/// CA key's token), tryLater: an OCSP client understands that, not a problem document.
fn ocsp_answer(r: sigil_core::Result<Vec<u8>>) -> Result<Response, ApiError> {
    match r {
        Ok(der) => Ok(ocsp_response(der)),
        Err(e @ sigil_core::CoreError::Dependency { .. }) => {
            tracing::warn!(error = %e, "OCSP: answering tryLater");
            Ok(ocsp_response(OCSP_TRY_LATER.to_vec()))
        }
        Err(e) => Err(e.into()),
    }
}

fn ocsp_response(der: Vec<u8>) -> Response {
    let mut res = der.into_response();
    res.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static("application/ocsp-response"));
    res
}

/// OCSP responder (RFC 6960), POST form: the body is a DER OCSPRequest.
#[utoipa::path(post, path = "/ocsp", tag = "revocation",
    request_body(content = Vec<u8>, content_type = "application/ocsp-request"),
    responses((status = 200, content_type = "application/ocsp-response")))]
async fn ocsp_post(
    State(st): State<AppState>,
    body: axum::body::Bytes,
) -> Result<Response, ApiError> {
    ocsp_answer(st.cas.ocsp(&body).await)
}

/// OCSP responder (RFC 6960), GET form: the path is the base64 (URL-encoded) DER OCSPRequest.
#[utoipa::path(get, path = "/ocsp/{request}", tag = "revocation",
    params(("request" = String, Path, description = "base64 DER OCSPRequest, URL-encoded")),
    responses((status = 200, content_type = "application/ocsp-response")))]
async fn ocsp_get(
    State(st): State<AppState>,
    Path(request): Path<String>,
) -> Result<Response, ApiError> {
    use base64::Engine as _;
    let der = base64::engine::general_purpose::STANDARD
        .decode(request.trim())
        .or_else(|_| base64::engine::general_purpose::URL_SAFE.decode(request.trim()))
        .unwrap_or_default();
    ocsp_answer(st.cas.ocsp(&der).await)
}

/// A profile.
#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
pub struct ProfileView {
    /// Unique name.
    pub name: String,
    /// Created on first start.
    pub built_in: bool,
    /// Last change.
    pub updated_at: String,
    /// The rules.
    pub spec: ProfileSpec,
}

impl From<Profile> for ProfileView {
    fn from(p: Profile) -> Self {
        Self { name: p.name, built_in: p.built_in, updated_at: rfc3339(p.updated_at), spec: p.spec }
    }
}

/// Body of `POST /api/v1/profiles`.
#[derive(Debug, serde::Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateProfile {
    /// Unique name (lowercase letters, digits, `-`, `_`).
    #[schema(pattern = "^[a-z0-9_-]{1,64}$")]
    name: String,
    /// The rules.
    spec: ProfileSpec,
}

/// List profiles.
#[utoipa::path(get, path = "/api/v1/profiles", tag = "profiles",
    responses((status = 200, body = Vec<ProfileView>)), security(("bearer" = []), ("api_key" = [])))]
async fn list(
    State(st): State<AppState>,
    Authorized(cap): Authorized<perm::ProfilesRead>,
) -> Result<axum::Json<Vec<ProfileView>>, ApiError> {
    Ok(axum::Json(st.profiles.list(&cap).await?.into_iter().map(Into::into).collect()))
}

/// Create a profile.
#[utoipa::path(post, path = "/api/v1/profiles", tag = "profiles", request_body = CreateProfile,
    responses((status = 201, body = ProfileView), (status = 400, body = Problem), (status = 409, body = Problem)),
    security(("bearer" = []), ("api_key" = [])))]
async fn create(
    State(st): State<AppState>,
    Authorized(cap): Authorized<perm::ProfilesWrite>,
    Json(b): Json<CreateProfile>,
) -> Result<impl IntoResponse, ApiError> {
    let p = st.profiles.create(&cap, &b.name, b.spec).await?;
    Ok((StatusCode::CREATED, axum::Json(ProfileView::from(p))))
}

/// Show a profile.
#[utoipa::path(get, path = "/api/v1/profiles/{name}", tag = "profiles", params(("name" = String, Path)),
    responses((status = 200, body = ProfileView), (status = 404, body = Problem)),
    security(("bearer" = []), ("api_key" = [])))]
async fn show(
    State(st): State<AppState>,
    Authorized(cap): Authorized<perm::ProfilesRead>,
    Path(name): Path<String>,
) -> Result<axum::Json<ProfileView>, ApiError> {
    let p = st.profiles.get(&cap, &name).await.map_err(|_| ApiError::not_found())?;
    Ok(axum::Json(p.into()))
}

/// Replace a profile's rules.
#[utoipa::path(put, path = "/api/v1/profiles/{name}", tag = "profiles", params(("name" = String, Path)),
    request_body = ProfileSpec,
    responses((status = 200, body = ProfileView), (status = 400, body = Problem), (status = 404, body = Problem)),
    security(("bearer" = []), ("api_key" = [])))]
async fn replace(
    State(st): State<AppState>,
    Authorized(cap): Authorized<perm::ProfilesWrite>,
    Path(name): Path<String>,
    Json(spec): Json<ProfileSpec>,
) -> Result<axum::Json<ProfileView>, ApiError> {
    Ok(axum::Json(st.profiles.update(&cap, &name, spec).await?.into()))
}

/// A CA back end.
#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
pub struct CaBackendView {
    /// Id (profiles name it in `ca`).
    pub id: String,
    /// `builtin` or `plugin`.
    pub kind: String,
    /// Where Sigil publishes its CRL; absent for an external CA (a `plugin` back end), which
    /// publishes its own status.
    pub crl_url: Option<String>,
    /// Whether its certificates can be suspended (put on hold).
    pub supports_suspension: bool,
    /// Issuing CA certificate, PEM.
    pub certificate: String,
    /// Issuing CA first, root last, PEM.
    pub chain: Vec<String>,
}

/// List CA back ends.
#[utoipa::path(get, path = "/api/v1/ca-backends", tag = "ca-backends",
    responses((status = 200, body = Vec<CaBackendView>)), security(("bearer" = []), ("api_key" = [])))]
async fn ca_backends(
    State(st): State<AppState>,
    Authorized(cap): Authorized<perm::CaBackendsRead>,
) -> axum::Json<Vec<CaBackendView>> {
    axum::Json(
        st.cas
            .list(&cap)
            .into_iter()
            .map(|i| CaBackendView {
                id: i.id().to_owned(),
                kind: i.kind().to_owned(),
                crl_url: i.status().is_some().then(|| format!("/crl/{}.crl", i.id())),
                supports_suspension: i.holds().is_some(),
                certificate: pem("CERTIFICATE", i.ca_certificate()),
                chain: i.chain().iter().map(|d| pem("CERTIFICATE", d)).collect(),
            })
            .collect(),
    )
}

/// The CA's current CRL (DER), regenerated after every change and before nextUpdate.
#[utoipa::path(get, path = "/crl/{file}", tag = "revocation",
    params(("file" = String, Path, description = "`<ca>.crl`")),
    responses((status = 200, content_type = "application/pkix-crl"), (status = 404, body = Problem)))]
async fn crl(State(st): State<AppState>, Path(file): Path<String>) -> Result<Response, ApiError> {
    let ca = file.strip_suffix(".crl").ok_or_else(ApiError::not_found)?;
    let der = st.cas.crl(ca).await?;
    let mut res = der.into_response();
    res.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static("application/pkix-crl"));
    res.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("max-age=60"));
    Ok(res)
}
