//! `/api/v1/certificates`: issue (single, batch), search, details, metadata, lifecycle actions,
//! downloads.

use std::sync::{Arc, LazyLock};
use std::time::Duration;

use axum::extract::{Path, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use sigil_core::ErrorCode;
use sigil_core::cache::Cache;
use sigil_core::certs::certificates::IssueRequest;
use sigil_core::certs::{CertStatus, Certificate, KeyType, RevocationReason, San};
use sigil_core::page::page_size;
use sigil_core::ports::{CertFilter, CertSort, PageRequest};
use sigil_core::{CoreError, access::authz::perm};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use super::{parse_time, rfc3339};
use crate::AppState;
use crate::error::{ApiError, Problem};
use crate::extract::{Authorized, Json, Query};

/// Routes of this module.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list, issue))
        .routes(routes!(batch))
        .routes(routes!(show, update))
        .routes(routes!(suspend))
        .routes(routes!(reactivate))
        .routes(routes!(revoke))
        .routes(routes!(renew))
        .routes(routes!(download))
}

pub(crate) use sigil_core::pem::encode as pem;

/// A certificate.
#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
pub struct CertificateView {
    /// Identifier.
    pub id: String,
    /// Serial number, hex.
    pub serial: String,
    /// `active`, `suspended`, `revoked` or `expired`.
    pub status: CertStatus,
    /// Profile.
    pub profile: String,
    /// CA back end.
    pub ca: String,
    /// Subject DN.
    pub subject: String,
    /// Subject alternative names.
    pub sans: Vec<San>,
    /// Key type.
    pub key_type: KeyType,
    /// notBefore.
    pub not_before: String,
    /// notAfter.
    pub not_after: String,
    /// SHA-256 fingerprint, hex.
    pub sha256: String,
    /// Issue time.
    pub issued_at: String,
    /// Who asked for it.
    pub issued_by: String,
    /// Revocation or hold time.
    pub revoked_at: Option<String>,
    /// RFC 5280 reason (certificateHold while suspended).
    pub revocation_reason: Option<RevocationReason>,
    /// Custom metadata.
    pub metadata: serde_json::Value,
    /// The certificate this one renewed.
    pub renewed_from: Option<String>,
    /// The renewal that superseded this certificate.
    pub superseded_by: Option<String>,
    /// When a superseded certificate is revoked (reason superseded), unless revoked before.
    pub superseded_until: Option<String>,
    /// Registration office.
    pub office_id: Option<String>,
    /// The certificate, PEM.
    pub certificate: String,
    /// Issuing CA first, root last, PEM.
    #[schema(value_type = Vec<String>)]
    pub chain: ChainPem,
    /// Parsed fields (on `GET /api/v1/certificates/{id}` only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub details: Option<super::x509::CertificateDetails>,
}

impl CertificateView {
    /// The `201 Created` answer, its JSON written into a buffer sized for it up front: the
    /// three certificates' PEM make it about 3 KiB, and axum's growing buffer copied it four
    /// times on the way (about 0.5% of the request threads' time under issuance).
    pub(crate) fn created(&self) -> Result<Response, ApiError> {
        let pem: usize = self.certificate.len() + self.chain.json_len();
        // JSON escapes each PEM line's LF as two characters; the other fields take well under
        // 2 KiB unless the metadata is large (then the buffer grows as axum's would).
        let mut body = Vec::with_capacity(pem + pem / 60 + 2048);
        serde_json::to_writer(&mut body, self).map_err(|e| {
            ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, ErrorCode::Internal, e.to_string())
        })?;
        let json = HeaderValue::from_static("application/json");
        Ok((StatusCode::CREATED, [(header::CONTENT_TYPE, json)], body).into_response())
    }

    pub(crate) fn new(st: &AppState, c: Certificate) -> Self {
        let chain = st
            .certificates
            .issuers()
            .get(&c.ca_id)
            .map(|i| chain_pem(&c.ca_id, i.chain()))
            .unwrap_or_default();
        let now = sigil_core::ports::Clock::now(&sigil_core::ports::SystemClock);
        Self {
            id: c.id.to_string(),
            status: c.status_at(now),
            serial: c.serial,
            profile: c.profile,
            ca: c.ca_id,
            subject: c.subject,
            sans: c.sans,
            key_type: c.key_type,
            not_before: rfc3339(c.not_before),
            not_after: rfc3339(c.not_after),
            sha256: c.sha256,
            issued_at: rfc3339(c.issued_at),
            issued_by: c.issued_by,
            revoked_at: c.revoked_at.map(rfc3339),
            revocation_reason: c.revocation_reason,
            metadata: c.metadata,
            renewed_from: c.renewed_from.map(|u| u.to_string()),
            superseded_by: c.superseded_by.map(|u| u.to_string()),
            superseded_until: c.superseded_until.map(rfc3339),
            office_id: c.office_id.map(|u| u.to_string()),
            certificate: pem("CERTIFICATE", &c.der),
            chain,
            details: None,
        }
    }
}

/// A CA's chain in PEM (issuing CA first, root last), shared by every answer of that CA: it is
/// written into each answer's JSON as it was escaped once (a JSON array of the PEM texts, the
/// same text serde_json writes for them), not cloned and escaped again per answer. For
/// serde_json only: another serializer would write serde_json's wrapper of the raw text (views
/// are only ever written by serde_json).
#[derive(Debug, Clone, Default)]
pub struct ChainPem(Option<Arc<ChainJson>>);

#[derive(Debug)]
struct ChainJson {
    pems: Vec<String>,
    /// `pems` as JSON; none only if it could not be written, and then `pems` are written.
    json: Option<Box<serde_json::value::RawValue>>,
}

impl ChainPem {
    fn of(chain: &[Vec<u8>]) -> Self {
        let pems: Vec<String> = chain.iter().map(|d| pem("CERTIFICATE", d)).collect();
        let json = serde_json::value::to_raw_value(&pems).ok();
        Self(Some(Arc::new(ChainJson { pems, json })))
    }

    /// The PEM texts.
    pub fn pems(&self) -> &[String] {
        self.0.as_ref().map_or(&[], |c| c.pems.as_slice())
    }

    /// About the length of its JSON (to size a buffer).
    fn json_len(&self) -> usize {
        self.0.as_ref().map_or(2, |c| c.json.as_ref().map_or(0, |j| j.get().len()))
    }
}

impl serde::Serialize for ChainPem {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self.0.as_ref().and_then(|c| c.json.as_ref()) {
            Some(json) => json.serialize(s),
            None => self.pems().serialize(s),
        }
    }
}

/// The PEM of CA `ca_id`'s `chain`, made once per chain rather than per answer: every issuance
/// answer carries it, and encoding it was about 1% of the request threads' time. A kept copy
/// is handed out only while the CA's chain is byte for byte the one it was made from, so a CA
/// replaced or re-keyed (a plugin swapped, a CA rotated) is encoded afresh. Kept in core's one
/// in-process cache (an hour, 64 CAs).
fn chain_pem(ca_id: &str, chain: &[Vec<u8>]) -> ChainPem {
    type Made = Arc<(Vec<Vec<u8>>, ChainPem)>;
    static KEPT: LazyLock<Cache<String, Made>> =
        LazyLock::new(|| Cache::new(Duration::from_secs(3600), 64));
    if let Some(made) = KEPT.get_if(ca_id, |made| made.0.as_slice() == chain) {
        return made.1.clone();
    }
    let made = ChainPem::of(chain);
    KEPT.put(ca_id.to_owned(), Arc::new((chain.to_vec(), made.clone())));
    made
}

/// Body of `POST /api/v1/certificates`.
#[derive(Debug, serde::Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct IssueBody {
    /// PKCS#10 request: PEM, or base64 DER.
    #[schema(min_length = 1)]
    csr: String,
    /// Profile name (see `GET /api/v1/profiles`).
    profile: String,
    /// Custom metadata (a JSON object; `owner` is searchable).
    #[serde(default)]
    metadata: Option<serde_json::Value>,
    /// The registration office it belongs to (required for an operator with a restricted
    /// scope, who then sees it).
    #[serde(default)]
    office_id: Option<Uuid>,
}

/// Body of `POST /api/v1/certificates/batch`.
#[derive(Debug, serde::Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct BatchBody {
    /// 1 to 100 requests.
    #[schema(min_items = 1, max_items = 100)]
    requests: Vec<IssueBody>,
}

/// One batch item's outcome.
#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
pub struct BatchItem {
    /// Position in the request.
    pub index: usize,
    /// HTTP status the item alone would have had.
    pub status: u16,
    /// The certificate, on success.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub certificate: Option<CertificateView>,
    /// The problem, on failure.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<Problem>,
}

/// Batch outcome.
#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
pub struct BatchResult {
    /// Items that succeeded.
    pub issued: usize,
    /// Items that failed.
    pub failed: usize,
    /// Per-item results, in request order.
    pub results: Vec<BatchItem>,
}

/// Body of the revoke action.
#[derive(Debug, Default, serde::Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RevokeBody {
    /// RFC 5280 reason name (default `unspecified`; `certificateHold` is what suspend does).
    #[serde(default)]
    reason: Option<String>,
    /// Free text for the audit trail.
    #[serde(default)]
    comment: Option<String>,
}

/// Body of the suspend and reactivate actions.
#[derive(Debug, Default, serde::Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ActionBody {
    /// Ignored except `certificateHold` for suspend; accepted for client symmetry.
    #[serde(default)]
    reason: Option<String>,
    /// Free text.
    #[serde(default)]
    comment: Option<String>,
}

/// Body of the renew action.
#[derive(Debug, Default, serde::Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RenewBody {
    /// A new CSR; without one the certificate is renewed with the same key.
    #[serde(default)]
    pub(crate) csr: Option<String>,
}

/// Body of `PATCH /api/v1/certificates/{id}`.
#[derive(Debug, serde::Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateBody {
    /// Merged into the metadata (RFC 7386: `null` removes a member).
    metadata: serde_json::Value,
}

/// A page of certificates.
#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
pub struct CertificatePage {
    /// Certificates.
    pub items: Vec<CertificateView>,
    /// Cursor for the next page.
    pub next_cursor: Option<String>,
}

/// Query of `GET /api/v1/certificates`.
#[derive(Debug, serde::Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
pub struct ListQuery {
    /// `active`, `suspended`, `revoked` or `expired`.
    #[param(value_type = Option<CertStatus>)]
    status: Option<String>,
    /// Profile name.
    profile: Option<String>,
    /// CA back end id.
    ca: Option<String>,
    /// Of this registration office.
    office_id: Option<Uuid>,
    /// Superseded by a renewal (`true`) or not (`false`).
    superseded: Option<bool>,
    /// Subject or SAN contains (case-insensitive).
    q: Option<String>,
    /// Serial, hex.
    #[param(pattern = "^[0-9a-fA-F]{1,64}$")]
    serial: Option<String>,
    /// `metadata.owner` equals.
    owner: Option<String>,
    /// Issued at or after (RFC 3339).
    #[param(value_type = Option<String>, format = DateTime)]
    issued_from: Option<String>,
    /// Issued before (RFC 3339).
    #[param(value_type = Option<String>, format = DateTime)]
    issued_until: Option<String>,
    /// notAfter at or after (RFC 3339).
    #[param(value_type = Option<String>, format = DateTime)]
    expires_from: Option<String>,
    /// notAfter before (RFC 3339).
    #[param(value_type = Option<String>, format = DateTime)]
    expires_until: Option<String>,
    /// Active certificates expiring within this many days.
    #[param(minimum = 0, maximum = 36500)]
    expiring_within_days: Option<u32>,
    /// `issued_at` (default), `-issued_at`, `not_after`, `-not_after`.
    #[param(pattern = "^-?(issued_at|not_after)$")]
    sort: Option<String>,
    /// Page size, 1 to 500.
    #[param(minimum = 1, maximum = 500)]
    limit: Option<u32>,
    /// Cursor from the previous page.
    cursor: Option<String>,
}

/// Query of the download.
#[derive(Debug, serde::Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
pub struct DownloadQuery {
    /// `pem` (default), `der`, or `chain` (PEM: certificate, then issuing CA, then root).
    #[param(pattern = "^(pem|der|chain)$")]
    format: Option<String>,
}

fn cert_id(s: &str) -> Result<Uuid, ApiError> {
    Uuid::parse_str(s).map_err(|_| ApiError::not_found())
}

fn problem_of(e: CoreError) -> Problem {
    let a = ApiError::from(e);
    Problem {
        kind: format!("https://sigil.invalid/problems/{}", a.code),
        title: a.status.canonical_reason().unwrap_or("Error").to_owned(),
        status: a.status.as_u16(),
        detail: a.detail,
        code: a.code.as_str().to_owned(),
    }
}

/// Issue a certificate from a PKCS#10 request under a profile.
#[utoipa::path(post, path = "/api/v1/certificates", tag = "certificates", request_body = IssueBody,
    responses((status = 201, body = CertificateView), (status = 400, body = Problem), (status = 403, body = Problem)),
    security(("bearer" = []), ("api_key" = [])))]
async fn issue(
    State(st): State<AppState>,
    Authorized(cap): Authorized<perm::CertificateIssue>,
    Json(b): Json<IssueBody>,
) -> Result<impl IntoResponse, ApiError> {
    let req = IssueRequest {
        csr: b.csr.into_bytes(),
        profile: b.profile,
        metadata: b.metadata,
        office_id: b.office_id,
    };
    let cert = st.certificates.issue(&cap, req).await?;
    CertificateView::new(&st, cert).created()
}

/// Issue many certificates; each item succeeds or fails on its own.
#[utoipa::path(post, path = "/api/v1/certificates/batch", tag = "certificates", request_body = BatchBody,
    responses((status = 200, body = BatchResult), (status = 400, body = Problem), (status = 403, body = Problem)),
    security(("bearer" = []), ("api_key" = [])))]
async fn batch(
    State(st): State<AppState>,
    Authorized(cap): Authorized<perm::CertificateIssue>,
    Json(b): Json<BatchBody>,
) -> Result<axum::Json<BatchResult>, ApiError> {
    let reqs = b
        .requests
        .into_iter()
        .map(|r| IssueRequest {
            csr: r.csr.into_bytes(),
            profile: r.profile,
            metadata: r.metadata,
            office_id: r.office_id,
        })
        .collect();
    let results = st.certificates.issue_batch(&cap, reqs).await?;
    let mut out = BatchResult { issued: 0, failed: 0, results: Vec::with_capacity(results.len()) };
    for (index, r) in results.into_iter().enumerate() {
        match r {
            Ok(c) => {
                out.issued += 1;
                out.results.push(BatchItem {
                    index,
                    status: 201,
                    certificate: Some(CertificateView::new(&st, c)),
                    error: None,
                });
            }
            Err(e) => {
                out.failed += 1;
                let p = problem_of(e);
                out.results.push(BatchItem {
                    index,
                    status: p.status,
                    certificate: None,
                    error: Some(p),
                });
            }
        }
    }
    Ok(axum::Json(out))
}

/// Search certificates.
#[utoipa::path(get, path = "/api/v1/certificates", tag = "certificates", params(ListQuery),
    responses((status = 200, body = CertificatePage), (status = 400, body = Problem)),
    security(("bearer" = []), ("api_key" = [])))]
async fn list(
    State(st): State<AppState>,
    Authorized(cap): Authorized<perm::CertificatesRead>,
    Query(q): Query<ListQuery>,
) -> Result<axum::Json<CertificatePage>, ApiError> {
    let us = |name: &str, v: &Option<String>| {
        v.as_deref().map(|s| parse_time(name, s).map(sigil_core::audit::unix_micros)).transpose()
    };
    let mut f = CertFilter {
        status: q.status.as_deref().map(CertStatus::parse).transpose()?,
        profile: q.profile.clone(),
        ca_id: q.ca.clone(),
        text: q.q.clone(),
        serial: q.serial.as_deref().map(|s| s.trim_start_matches('0').to_ascii_lowercase()),
        owner: q.owner.clone(),
        office_id: q.office_id,
        superseded: q.superseded,
        scope: None,
        issued_from_us: us("issued_from", &q.issued_from)?,
        issued_until_us: us("issued_until", &q.issued_until)?,
        expires_from_us: us("expires_from", &q.expires_from)?,
        expires_until_us: us("expires_until", &q.expires_until)?,
        now_us: 0,
        sort: match q.sort.as_deref() {
            None | Some("issued_at") => CertSort::IssuedAsc,
            Some("-issued_at") => CertSort::IssuedDesc,
            Some("not_after") => CertSort::ExpiresAsc,
            Some("-not_after") => CertSort::ExpiresDesc,
            Some(o) => {
                return Err(ApiError::bad_request(
                    ErrorCode::InvalidQuery,
                    format!("unknown sort `{o}`"),
                ));
            }
        },
    };
    if let Some(days) = q.expiring_within_days {
        let now = time::OffsetDateTime::now_utc();
        f.status = Some(CertStatus::Active);
        f.expires_until_us =
            Some(sigil_core::audit::unix_micros(now + time::Duration::days(i64::from(days))));
    }
    let p = st
        .certificates
        .list(&cap, f, PageRequest { after: q.cursor, limit: page_size(q.limit)? })
        .await?;
    Ok(axum::Json(CertificatePage {
        items: p.items.into_iter().map(|c| CertificateView::new(&st, c)).collect(),
        next_cursor: p.next_cursor,
    }))
}

/// Details of one certificate.
#[utoipa::path(get, path = "/api/v1/certificates/{id}", tag = "certificates", params(("id" = String, Path)),
    responses((status = 200, body = CertificateView), (status = 404, body = Problem)),
    security(("bearer" = []), ("api_key" = [])))]
async fn show(
    State(st): State<AppState>,
    Authorized(cap): Authorized<perm::CertificatesRead>,
    Path(id): Path<String>,
) -> Result<axum::Json<CertificateView>, ApiError> {
    let cert = st.certificates.get(&cap, cert_id(&id)?).await?;
    let details = super::x509::details(&cert.der);
    Ok(axum::Json(CertificateView { details, ..CertificateView::new(&st, cert) }))
}

/// Change custom metadata.
#[utoipa::path(patch, path = "/api/v1/certificates/{id}", tag = "certificates", params(("id" = String, Path)),
    request_body = UpdateBody,
    responses((status = 200, body = CertificateView), (status = 400, body = Problem), (status = 404, body = Problem)),
    security(("bearer" = []), ("api_key" = [])))]
async fn update(
    State(st): State<AppState>,
    Authorized(cap): Authorized<perm::CertificatesUpdate>,
    Path(id): Path<String>,
    Json(b): Json<UpdateBody>,
) -> Result<axum::Json<CertificateView>, ApiError> {
    let c = st.certificates.update_metadata(&cap, cert_id(&id)?, b.metadata).await?;
    Ok(axum::Json(CertificateView::new(&st, c)))
}

use crate::extract::optional_body;

/// Suspend (certificateHold): reported revoked by CRL and OCSP until reactivated.
#[utoipa::path(post, path = "/api/v1/certificates/{id}/suspend", tag = "certificates", params(("id" = String, Path)),
    request_body(content = Option<ActionBody>),
    responses((status = 200, body = CertificateView), (status = 404, body = Problem), (status = 409, body = Problem)),
    security(("bearer" = []), ("api_key" = [])))]
async fn suspend(
    State(st): State<AppState>,
    Authorized(cap): Authorized<perm::CertificateSuspend>,
    Path(id): Path<String>,
    body: axum::body::Bytes,
) -> Result<axum::Json<CertificateView>, ApiError> {
    let b: ActionBody = optional_body(&body)?;
    if let Some(r) = b.reason.as_deref().filter(|r| *r != "certificateHold") {
        return Err(ApiError::bad_request(
            ErrorCode::InvalidReason,
            format!("suspension uses certificateHold, not `{r}`"),
        ));
    }
    let _ = b.comment;
    Ok(axum::Json(CertificateView::new(&st, st.certificates.suspend(&cap, cert_id(&id)?).await?)))
}

/// Reactivate a suspended certificate (removeFromCRL).
#[utoipa::path(post, path = "/api/v1/certificates/{id}/reactivate", tag = "certificates", params(("id" = String, Path)),
    request_body(content = Option<ActionBody>),
    responses((status = 200, body = CertificateView), (status = 404, body = Problem), (status = 409, body = Problem)),
    security(("bearer" = []), ("api_key" = [])))]
async fn reactivate(
    State(st): State<AppState>,
    Authorized(cap): Authorized<perm::CertificateReactivate>,
    Path(id): Path<String>,
    body: axum::body::Bytes,
) -> Result<axum::Json<CertificateView>, ApiError> {
    let _: ActionBody = optional_body(&body)?;
    Ok(axum::Json(CertificateView::new(
        &st,
        st.certificates.reactivate(&cap, cert_id(&id)?).await?,
    )))
}

/// Revoke (final).
#[utoipa::path(post, path = "/api/v1/certificates/{id}/revoke", tag = "certificates", params(("id" = String, Path)),
    request_body(content = Option<RevokeBody>),
    responses((status = 200, body = CertificateView), (status = 400, body = Problem), (status = 404, body = Problem)),
    security(("bearer" = []), ("api_key" = [])))]
async fn revoke(
    State(st): State<AppState>,
    Authorized(cap): Authorized<perm::CertificateRevoke>,
    Path(id): Path<String>,
    body: axum::body::Bytes,
) -> Result<axum::Json<CertificateView>, ApiError> {
    let b: RevokeBody = optional_body(&body)?;
    let reason = RevocationReason::parse(b.reason.as_deref().unwrap_or("unspecified"))?;
    let _ = b.comment;
    Ok(axum::Json(CertificateView::new(
        &st,
        st.certificates.revoke(&cap, cert_id(&id)?, reason).await?,
    )))
}

/// Renew within the profile's renewal window, with a new CSR or the same key.
#[utoipa::path(post, path = "/api/v1/certificates/{id}/renew", tag = "certificates", params(("id" = String, Path)),
    request_body(content = Option<RenewBody>),
    responses((status = 201, body = CertificateView), (status = 400, body = Problem), (status = 404, body = Problem),
        (status = 409, body = Problem)),
    security(("bearer" = []), ("api_key" = [])))]
async fn renew(
    State(st): State<AppState>,
    Authorized(cap): Authorized<perm::CertificateRenew>,
    Path(id): Path<String>,
    body: axum::body::Bytes,
) -> Result<impl IntoResponse, ApiError> {
    let b: RenewBody = optional_body(&body)?;
    let c = st.certificates.renew(&cap, cert_id(&id)?, b.csr.map(String::into_bytes)).await?;
    CertificateView::new(&st, c).created()
}

/// Download as PEM, DER or PEM chain.
#[utoipa::path(get, path = "/api/v1/certificates/{id}/download", tag = "certificates",
    params(("id" = String, Path), DownloadQuery),
    responses((status = 200, description = "The certificate"), (status = 404, body = Problem)),
    security(("bearer" = []), ("api_key" = [])))]
async fn download(
    State(st): State<AppState>,
    Authorized(cap): Authorized<perm::CertificatesRead>,
    Path(id): Path<String>,
    Query(q): Query<DownloadQuery>,
) -> Result<Response, ApiError> {
    let c = st.certificates.get(&cap, cert_id(&id)?).await?;
    let (body, ctype, ext) = match q.format.as_deref().unwrap_or("pem") {
        "pem" => (pem("CERTIFICATE", &c.der).into_bytes(), "application/x-pem-file", "pem"),
        "der" => (c.der.clone(), "application/pkix-cert", "cer"),
        "chain" => {
            let mut s = pem("CERTIFICATE", &c.der);
            if let Ok(i) = st.certificates.issuers().get(&c.ca_id) {
                for d in i.chain() {
                    s.push_str(&pem("CERTIFICATE", d));
                }
            }
            (s.into_bytes(), "application/x-pem-file", "chain.pem")
        }
        other => {
            return Err(ApiError::bad_request(
                ErrorCode::InvalidFormat,
                format!("format must be pem, der or chain, got `{other}`"),
            ));
        }
    };
    let mut res = body.into_response();
    res.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static(ctype));
    if let Ok(v) = HeaderValue::from_str(&format!("attachment; filename=\"{}.{ext}\"", c.serial)) {
        res.headers_mut().insert(header::CONTENT_DISPOSITION, v);
    }
    Ok(res)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cas_chain_pem_is_made_again_when_its_chain_changes() {
        let one = vec![b"issuing".to_vec(), b"root".to_vec()];
        let made = chain_pem("chain-test-ca", &one);
        assert_eq!(made.pems(), [pem("CERTIFICATE", b"issuing"), pem("CERTIFICATE", b"root")]);
        let again = chain_pem("chain-test-ca", &one);
        assert_eq!(again.pems(), made.pems());
        // The same CA with another chain (rotated, or a plugin swapped): the new chain's PEM.
        let other = vec![b"issuing-2".to_vec()];
        assert_eq!(chain_pem("chain-test-ca", &other).pems(), [pem("CERTIFICATE", b"issuing-2")]);
        assert!(chain_pem("chain-test-ca", &[]).pems().is_empty());
    }

    #[test]
    fn a_chain_is_written_as_the_json_array_of_its_pem_texts() {
        let der = vec![vec![0x30, 0x82, 0x01, 0x0a], (0..=255u8).collect::<Vec<_>>()];
        let chain = ChainPem::of(&der);
        let pems: Vec<String> = der.iter().map(|d| pem("CERTIFICATE", d)).collect();
        assert!(pems.iter().all(|p| p.contains('\n')), "PEM lines are escaped in JSON");
        assert_eq!(serde_json::to_string(&chain).unwrap(), serde_json::to_string(&pems).unwrap());
        // Inside a larger document too, and read back as the same texts.
        let doc = serde_json::json!({ "a": 1 });
        let inside = serde_json::to_string(&(doc.clone(), &chain)).unwrap();
        assert_eq!(inside, serde_json::to_string(&(doc, &pems)).unwrap());
        let back: (serde_json::Value, Vec<String>) = serde_json::from_str(&inside).unwrap();
        assert_eq!(back.1, pems);
        // No chain (its CA gone): an empty array, as before.
        assert_eq!(serde_json::to_string(&ChainPem::default()).unwrap(), "[]");
        assert_eq!(serde_json::to_string(&ChainPem::of(&[])).unwrap(), "[]");
    }
}
