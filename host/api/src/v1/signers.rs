//! `/api/v1/signers` and `/api/v1/signing-credentials`: the accounts of the CSC signing API and
//! their credentials (a key pair whose certificate Sigil issued, protected by a PIN).

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use sigil_core::access::authz::perm;
use sigil_core::certs::{Certificate, KeyType};
use sigil_core::page::page_size;
use sigil_core::ports::PageRequest;
use sigil_core::signing::credential::{CredentialStatus, Signer, SigningCredential};
use sigil_core::signing::key_store::KeyStoreKind;
use sigil_core::signing::signers::{CredentialChange, NewCredential, NewSigner, SignerChange};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;
use zeroize::Zeroizing;

use super::certificates::CertificateView;
use super::{double_option, rfc3339};
use crate::AppState;
use crate::error::{ApiError, Problem};
use crate::extract::{Authorized, Json, Query};

/// Routes of this module.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_signers, create_signer))
        .routes(routes!(show_signer, update_signer))
        .routes(routes!(list_credentials, create_credential))
        .routes(routes!(show_credential, update_credential))
}

/// A signer: a CSC user.
#[derive(Debug, serde::Serialize, serde::Deserialize, utoipa::ToSchema)]
pub struct SignerView {
    /// Id.
    pub id: String,
    /// Login name for `auth/login` (HTTP Basic).
    pub username: String,
    /// The person in the registry this signer is.
    pub person_id: Option<String>,
    /// A disabled signer cannot log in and its tokens stop working.
    pub enabled: bool,
    /// Description.
    pub description: String,
    /// Wrong passwords at `auth/login` since the last successful login or unlock.
    pub failed_logins: u32,
    /// While in the future, `auth/login` refuses the signer (too many wrong passwords;
    /// `PATCH` with `unlock` or a new `password` lifts it).
    pub locked_until: Option<String>,
    /// Creation time.
    pub created_at: String,
    /// Last change.
    pub updated_at: String,
}

impl From<Signer> for SignerView {
    fn from(s: Signer) -> Self {
        Self {
            id: s.id.to_string(),
            username: s.username,
            person_id: s.person_id.map(|p| p.to_string()),
            enabled: s.enabled,
            description: s.description,
            failed_logins: s.failed_logins,
            locked_until: s.locked_until.map(rfc3339),
            created_at: rfc3339(s.created_at),
            updated_at: rfc3339(s.updated_at),
        }
    }
}

/// A page of signers.
#[derive(Debug, serde::Serialize, serde::Deserialize, utoipa::ToSchema)]
pub struct SignerPage {
    /// Oldest first.
    pub items: Vec<SignerView>,
    /// Cursor for the next page.
    pub next_cursor: Option<String>,
}

/// A signing credential (no secret: the key stays sealed, the PIN is a hash).
#[derive(Debug, serde::Serialize, serde::Deserialize, utoipa::ToSchema)]
pub struct CredentialView {
    /// The CSC `credentialID`.
    pub credential_id: String,
    /// Same as `credential_id`.
    pub id: String,
    /// Owner.
    pub signer_id: String,
    /// Key algorithm.
    pub key_algorithm: KeyType,
    /// Where the key is kept: `sealed` or `pkcs11`.
    pub key_store: KeyStoreKind,
    /// `enabled` or `disabled`.
    pub status: CredentialStatus,
    /// Sole control assurance level: 1, or 2 (authorizations bound to the exact hashes).
    pub scal: u8,
    /// Most signatures one authorization allows.
    pub multisign: u32,
    /// Wrong PINs left before the PIN locks.
    pub pin_retries_left: u8,
    /// Whether wrong PINs have locked it (`PATCH` with `unlock` or a new `pin` releases it).
    pub locked: bool,
    /// Description.
    pub description: String,
    /// The certificate in the inventory (`/api/v1/certificates/{id}`).
    pub certificate_id: String,
    /// Its serial, hex.
    pub serial: Option<String>,
    /// Its state: active, suspended, revoked, expired.
    pub certificate_status: Option<String>,
    /// The certificate, PEM.
    pub certificate: Option<String>,
    /// Issuing CA, then root, PEM.
    pub chain: Vec<String>,
    /// Creation time.
    pub created_at: String,
    /// Last change.
    pub updated_at: String,
}

impl CredentialView {
    fn new(st: &AppState, c: SigningCredential, cert: Option<Certificate>) -> Self {
        let cert = cert.map(|c| CertificateView::new(st, c));
        Self {
            credential_id: c.id.to_string(),
            id: c.id.to_string(),
            signer_id: c.signer_id.to_string(),
            key_algorithm: c.key_algorithm,
            key_store: KeyStoreKind::of_stored(&c.sealed_key),
            status: c.status,
            scal: c.scal,
            multisign: c.multisign,
            pin_retries_left: c.pin_retries_left,
            locked: c.locked(),
            description: c.description,
            certificate_id: c.certificate_id.to_string(),
            serial: cert.as_ref().map(|v| v.serial.clone()),
            certificate_status: cert.as_ref().map(|v| v.status.as_str().to_owned()),
            certificate: cert.as_ref().map(|v| v.certificate.clone()),
            chain: cert.map(|v| v.chain.pems().to_vec()).unwrap_or_default(),
            created_at: rfc3339(c.created_at),
            updated_at: rfc3339(c.updated_at),
        }
    }
}

/// A page of credentials.
#[derive(Debug, serde::Serialize, serde::Deserialize, utoipa::ToSchema)]
pub struct CredentialPage {
    /// Oldest first.
    pub items: Vec<CredentialView>,
    /// Cursor for the next page.
    pub next_cursor: Option<String>,
}

/// Body of `POST /api/v1/signers`.
#[derive(Debug, serde::Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateSignerBody {
    /// Login name: 1 to 64 letters, digits, `.`, `_`, `@`, `-` (stored lowercase).
    #[schema(pattern = "^[A-Za-z0-9._@-]{1,64}$")]
    username: String,
    /// Password, 8 to 1024 characters (kept as an Argon2id hash only).
    #[schema(min_length = 8, max_length = 1024)]
    password: String,
    /// The person in the registry this signer is (their name goes into certificates).
    #[serde(default)]
    person_id: Option<Uuid>,
    /// Description.
    #[serde(default)]
    #[schema(max_length = 255)]
    description: Option<String>,
}

/// Body of `PATCH /api/v1/signers/{id}`.
#[derive(Debug, serde::Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateSignerBody {
    /// A new password (also lifts a login lockout).
    #[serde(default)]
    #[schema(min_length = 8, max_length = 1024)]
    password: Option<String>,
    /// Lift a login lockout and forget earlier wrong passwords.
    #[serde(default)]
    unlock: bool,
    /// Enable or disable (disabling stops its tokens at once).
    #[serde(default)]
    enabled: Option<bool>,
    /// Link to a person (`null` unlinks).
    #[serde(default, deserialize_with = "double_option")]
    #[schema(value_type = Option<Uuid>)]
    person_id: Option<Option<Uuid>>,
    /// Description.
    #[serde(default)]
    #[schema(max_length = 255)]
    description: Option<String>,
}

/// Body of `POST /api/v1/signing-credentials`.
#[derive(Debug, serde::Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateCredentialBody {
    /// The owner, by username.
    signer: String,
    /// `p256`, `p384`, `rsa-2048` or `rsa-3072`.
    key_algorithm: KeyType,
    /// The PIN, 4 to 64 printable ASCII characters (kept as an Argon2id hash only).
    #[schema(min_length = 4, max_length = 64)]
    pin: String,
    /// 1 (default) or 2.
    #[serde(default)]
    #[schema(minimum = 1, maximum = 2)]
    scal: Option<u8>,
    /// Most signatures per authorization, 1 to 1000 (default 1).
    #[serde(default)]
    #[schema(minimum = 1, maximum = 1000)]
    multisign: Option<u32>,
    /// Description (CSC `description`).
    #[serde(default)]
    #[schema(max_length = 255)]
    description: Option<String>,
    /// Profile of its certificate (default `document-signing`).
    #[serde(default)]
    profile: Option<String>,
    /// Where the key is made and kept: `sealed` (in the database, under the master key) or
    /// `pkcs11` (on the configured token, never leaving it); default `pki.key_store`.
    #[serde(default)]
    key_store: Option<KeyStoreKind>,
}

/// Body of `PATCH /api/v1/signing-credentials/{id}`.
#[derive(Debug, serde::Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateCredentialBody {
    /// `enabled` or `disabled`.
    #[serde(default)]
    status: Option<CredentialStatus>,
    /// A new PIN (also releases a lock).
    #[serde(default)]
    #[schema(min_length = 4, max_length = 64)]
    pin: Option<String>,
    /// Release a PIN lock (restores the retries).
    #[serde(default)]
    unlock: bool,
    /// Most signatures per authorization, 1 to 1000.
    #[serde(default)]
    #[schema(minimum = 1, maximum = 1000)]
    multisign: Option<u32>,
    /// Description.
    #[serde(default)]
    #[schema(max_length = 255)]
    description: Option<String>,
}

/// Query of the signer list.
#[derive(Debug, serde::Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
pub struct SignerQuery {
    /// Only enabled (true) or disabled (false) signers.
    enabled: Option<bool>,
    /// Only the signer linked to this person.
    person_id: Option<Uuid>,
    /// Page size, 1 to 500.
    #[param(minimum = 1, maximum = 500)]
    limit: Option<u32>,
    /// Cursor.
    #[param(value_type = Option<uuid::Uuid>)]
    cursor: Option<String>,
}

/// Query of the credential list.
#[derive(Debug, serde::Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
pub struct CredentialQuery {
    /// Only this signer's.
    signer_id: Option<Uuid>,
    /// `enabled` or `disabled`.
    status: Option<CredentialStatus>,
    /// Page size, 1 to 500.
    #[param(minimum = 1, maximum = 500)]
    limit: Option<u32>,
    /// Cursor.
    #[param(value_type = Option<uuid::Uuid>)]
    cursor: Option<String>,
}

fn id(s: &str) -> Result<Uuid, ApiError> {
    Uuid::parse_str(s).map_err(|_| ApiError::not_found())
}

/// List signers.
#[utoipa::path(get, path = "/api/v1/signers", tag = "signers", params(SignerQuery),
    responses((status = 200, body = SignerPage), (status = 400, body = Problem), (status = 401, body = Problem),
        (status = 403, body = Problem)),
    security(("bearer" = []), ("api_key" = [])))]
async fn list_signers(
    State(st): State<AppState>,
    Authorized(cap): Authorized<perm::SignersRead>,
    Query(q): Query<SignerQuery>,
) -> Result<axum::Json<SignerPage>, ApiError> {
    let page = PageRequest { after: q.cursor, limit: page_size(q.limit)? };
    let p = st.signers.list_signers(&cap, q.enabled, q.person_id, page).await?;
    Ok(axum::Json(SignerPage {
        items: p.items.into_iter().map(Into::into).collect(),
        next_cursor: p.next_cursor,
    }))
}

/// Create a signer (a CSC user who logs in with HTTP Basic at `auth/login`).
#[utoipa::path(post, path = "/api/v1/signers", tag = "signers", request_body = CreateSignerBody,
    responses((status = 201, body = SignerView), (status = 400, body = Problem), (status = 401, body = Problem),
        (status = 403, body = Problem), (status = 409, body = Problem)),
    security(("bearer" = []), ("api_key" = [])))]
async fn create_signer(
    State(st): State<AppState>,
    Authorized(cap): Authorized<perm::SignersWrite>,
    Json(b): Json<CreateSignerBody>,
) -> Result<impl IntoResponse, ApiError> {
    let s = st
        .signers
        .create_signer(
            &cap,
            NewSigner {
                username: b.username,
                password: Zeroizing::new(b.password),
                person_id: b.person_id,
                description: b.description.unwrap_or_default(),
            },
        )
        .await?;
    Ok((StatusCode::CREATED, axum::Json(SignerView::from(s))))
}

/// One signer.
#[utoipa::path(get, path = "/api/v1/signers/{id}", tag = "signers", params(("id" = String, Path)),
    responses((status = 200, body = SignerView), (status = 401, body = Problem), (status = 403, body = Problem),
        (status = 404, body = Problem)),
    security(("bearer" = []), ("api_key" = [])))]
async fn show_signer(
    State(st): State<AppState>,
    Authorized(cap): Authorized<perm::SignersRead>,
    Path(i): Path<String>,
) -> Result<axum::Json<SignerView>, ApiError> {
    Ok(axum::Json(st.signers.get_signer(&cap, id(&i)?).await?.into()))
}

/// Change a signer: password, enabled, person, description; lift a login lockout.
#[utoipa::path(patch, path = "/api/v1/signers/{id}", tag = "signers", params(("id" = String, Path)),
    request_body = UpdateSignerBody,
    responses((status = 200, body = SignerView), (status = 400, body = Problem), (status = 401, body = Problem),
        (status = 403, body = Problem), (status = 404, body = Problem), (status = 409, body = Problem)),
    security(("bearer" = []), ("api_key" = [])))]
async fn update_signer(
    State(st): State<AppState>,
    Authorized(cap): Authorized<perm::SignersWrite>,
    Path(i): Path<String>,
    Json(b): Json<UpdateSignerBody>,
) -> Result<axum::Json<SignerView>, ApiError> {
    let change = SignerChange {
        password: b.password.map(Zeroizing::new),
        enabled: b.enabled,
        person_id: b.person_id,
        description: b.description,
        unlock: b.unlock,
    };
    Ok(axum::Json(st.signers.update_signer(&cap, id(&i)?, change).await?.into()))
}

/// List signing credentials.
#[utoipa::path(get, path = "/api/v1/signing-credentials", tag = "signers", params(CredentialQuery),
    responses((status = 200, body = CredentialPage), (status = 400, body = Problem), (status = 401, body = Problem),
        (status = 403, body = Problem)),
    security(("bearer" = []), ("api_key" = [])))]
async fn list_credentials(
    State(st): State<AppState>,
    Authorized(cap): Authorized<perm::SignersRead>,
    Query(q): Query<CredentialQuery>,
) -> Result<axum::Json<CredentialPage>, ApiError> {
    let page = PageRequest { after: q.cursor, limit: page_size(q.limit)? };
    let p = st.signers.list_credentials(&cap, q.signer_id, q.status, page).await?;
    let mut items = Vec::with_capacity(p.items.len());
    for c in p.items {
        let cert = st.signers.certificate_of(&c).await?;
        items.push(CredentialView::new(&st, c, cert));
    }
    Ok(axum::Json(CredentialPage { items, next_cursor: p.next_cursor }))
}

/// Create a signing credential: a new key pair, its certificate issued through Sigil's CA path
/// (in the inventory and the audit trail; revoking it there shows in CRL and OCSP), a PIN.
#[utoipa::path(post, path = "/api/v1/signing-credentials", tag = "signers",
    request_body = CreateCredentialBody,
    responses((status = 201, body = CredentialView), (status = 400, body = Problem), (status = 401, body = Problem),
        (status = 403, body = Problem), (status = 502, body = Problem)),
    security(("bearer" = []), ("api_key" = [])))]
async fn create_credential(
    State(st): State<AppState>,
    Authorized(cap): Authorized<perm::SignersWrite>,
    Json(b): Json<CreateCredentialBody>,
) -> Result<impl IntoResponse, ApiError> {
    let (c, cert) = st
        .signers
        .create_credential(
            &cap,
            NewCredential {
                signer: b.signer,
                key_algorithm: b.key_algorithm,
                pin: Zeroizing::new(b.pin),
                scal: b.scal.unwrap_or(1),
                multisign: b.multisign.unwrap_or(1),
                description: b.description.unwrap_or_default(),
                profile: b.profile,
                key_store: b.key_store,
            },
        )
        .await?;
    Ok((StatusCode::CREATED, axum::Json(CredentialView::new(&st, c, Some(cert)))))
}

/// One signing credential.
#[utoipa::path(get, path = "/api/v1/signing-credentials/{id}", tag = "signers",
    params(("id" = String, Path)),
    responses((status = 200, body = CredentialView), (status = 401, body = Problem), (status = 403, body = Problem),
        (status = 404, body = Problem)),
    security(("bearer" = []), ("api_key" = [])))]
async fn show_credential(
    State(st): State<AppState>,
    Authorized(cap): Authorized<perm::SignersRead>,
    Path(i): Path<String>,
) -> Result<axum::Json<CredentialView>, ApiError> {
    let c = st.signers.get_credential(&cap, id(&i)?).await?;
    let cert = st.signers.certificate_of(&c).await?;
    Ok(axum::Json(CredentialView::new(&st, c, cert)))
}

/// Change a signing credential: enable or disable, a new PIN, unlock, multisign, description.
#[utoipa::path(patch, path = "/api/v1/signing-credentials/{id}", tag = "signers",
    params(("id" = String, Path)), request_body = UpdateCredentialBody,
    responses((status = 200, body = CredentialView), (status = 400, body = Problem), (status = 401, body = Problem),
        (status = 403, body = Problem), (status = 404, body = Problem), (status = 409, body = Problem)),
    security(("bearer" = []), ("api_key" = [])))]
async fn update_credential(
    State(st): State<AppState>,
    Authorized(cap): Authorized<perm::SignersWrite>,
    Path(i): Path<String>,
    Json(b): Json<UpdateCredentialBody>,
) -> Result<axum::Json<CredentialView>, ApiError> {
    let change = CredentialChange {
        status: b.status,
        pin: b.pin.map(Zeroizing::new),
        unlock: b.unlock,
        multisign: b.multisign,
        description: b.description,
    };
    let c = st.signers.update_credential(&cap, id(&i)?, change).await?;
    let cert = st.signers.certificate_of(&c).await?;
    Ok(axum::Json(CredentialView::new(&st, c, cert)))
}
