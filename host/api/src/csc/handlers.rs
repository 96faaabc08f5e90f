//! The CSC methods. Each is written once and served under `/csc/v1` and `/csc/v2` by thin
//! documented wrappers; the version changes field names of answers and error codes only.

use axum::body::Bytes;
use axum::extract::{FromRequestParts, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use sigil_core::access::authz::RequestContext;
use sigil_core::certs::{CertStatus, Certificate, KeyType};
use sigil_core::signing::credential::{
    CredentialStatus, CscAuthType, HashAlgo, SigningCredential, key_algos,
};
use sigil_core::signing::csc::{Authorize, Session, SignHash};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use zeroize::Zeroizing;

use super::model::*;
use super::{CscError, Version, bearer, body, digest};
use crate::AppState;

/// Routes of both versions.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(v1_info_post, v1_info_get))
        .routes(routes!(v1_login))
        .routes(routes!(v1_revoke))
        .routes(routes!(v1_list))
        .routes(routes!(v1_credential_info))
        .routes(routes!(v1_authorize))
        .routes(routes!(v1_sign_hash))
        .routes(routes!(v2_info_post, v2_info_get))
        .routes(routes!(v2_login))
        .routes(routes!(v2_revoke))
        .routes(routes!(v2_list))
        .routes(routes!(v2_credential_info))
        .routes(routes!(v2_authorize))
        .routes(routes!(v2_sign_hash))
}

/// Who is calling from where, and their headers.
pub struct Ctx {
    headers: HeaderMap,
    context: RequestContext,
}

impl<S: Send + Sync> FromRequestParts<S> for Ctx {
    type Rejection = CscError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        let context = crate::auth::request_context(parts);
        Ok(Self { headers: parts.headers.clone(), context })
    }
}

type Answer = Result<Response, CscError>;

fn ok<T: serde::Serialize>(v: T) -> Answer {
    Ok(axum::Json(v).into_response())
}

async fn session(st: &AppState, ctx: &Ctx, v: Version) -> Result<Session, CscError> {
    let token = bearer(&ctx.headers)?;
    st.csc.authenticate(token, ctx.context.clone()).await.map_err(|e| CscError::from_core(e, v))
}

const METHODS: [&str; 6] = [
    "auth/login",
    "auth/revoke",
    "credentials/list",
    "credentials/info",
    "credentials/authorize",
    "signatures/signHash",
];

const ALL_ALGOS: [&str; 8] = [
    "1.2.840.10045.4.3.2",
    "1.2.840.10045.4.3.3",
    "1.2.840.10045.4.3.4",
    "1.2.840.113549.1.1.11",
    "1.2.840.113549.1.1.12",
    "1.2.840.113549.1.1.13",
    "1.2.840.113549.1.1.10",
    "1.2.840.113549.1.1.1",
];

async fn info(st: AppState, v: Version, raw: Bytes) -> Answer {
    let _: InfoRequest = body(&raw)?;
    let p = st.csc_providers.current().await.map_err(|e| CscError::from_core(e, v))?;
    let (name, logo, region, lang, description, auth) = match p {
        Some(p) => (
            p.name,
            p.logo,
            p.region,
            p.language,
            p.description,
            p.auth_types
                .iter()
                .map(|a| match a {
                    CscAuthType::Basic => "basic",
                    CscAuthType::Tls => "TLS",
                    CscAuthType::External => "external",
                })
                .map(str::to_owned)
                .collect(),
        ),
        None => (
            "Sigil".to_owned(),
            String::new(),
            "EU".to_owned(),
            "en".to_owned(),
            "Sigil remote signing service".to_owned(),
            vec!["basic".to_owned()],
        ),
    };
    let v2 = v == Version::V2;
    ok(InfoResponse {
        specs: if v2 { "2.0.0.2" } else { "1.0.4.0" }.to_owned(),
        name,
        logo,
        region,
        lang,
        description,
        auth_type: auth,
        methods: METHODS.iter().map(|m| (*m).to_owned()).collect(),
        sign_algorithms: v2
            .then(|| SignAlgorithms { algos: ALL_ALGOS.iter().map(|a| (*a).to_owned()).collect() }),
        signature_formats: v2.then(|| SignatureFormats { formats: vec![] }),
        conformance_levels: v2.then(Vec::new),
    })
}

/// `user:password` from an HTTP Basic header.
fn basic(h: &HeaderMap) -> Result<Option<(String, Zeroizing<String>)>, CscError> {
    let Some(v) = h.get(header::AUTHORIZATION) else { return Ok(None) };
    let malformed = || {
        CscError::new(
            StatusCode::UNAUTHORIZED,
            "invalid_request",
            "Malformed authentication parameter.",
        )
    };
    let v = v.to_str().map_err(|_| malformed())?;
    let (scheme, b64) = v.split_once(' ').ok_or_else(malformed)?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return Err(malformed());
    }
    let raw = Zeroizing::new(STANDARD.decode(b64.trim()).map_err(|_| malformed())?);
    let text = std::str::from_utf8(&raw)
        .map_err(|_| CscError::invalid("Malformed authentication parameter."))?;
    let (user, pass) = text.split_once(':').ok_or_else(|| {
        CscError::invalid("Malformed authentication parameter: expected user:password")
    })?;
    Ok(Some((user.to_owned(), Zeroizing::new(pass.to_owned()))))
}

async fn login(st: AppState, ctx: Ctx, v: Version, raw: Bytes) -> Answer {
    let req: LoginRequest = body(&raw)?;
    let remember = req.remember_me.unwrap_or(false);
    let login = match (basic(&ctx.headers)?, req.refresh_token) {
        (Some((user, pass)), _) => st.csc.login(&user, pass, remember, ctx.context).await,
        (None, Some(t)) => st.csc.refresh(&t, ctx.context).await,
        (None, None) => {
            return Err(CscError::new(
                StatusCode::UNAUTHORIZED,
                "invalid_request",
                "Malformed authentication parameter.",
            ));
        }
    }
    .map_err(|e| CscError::from_core(e, v))?;
    ok(LoginResponse {
        access_token: login.access_token.to_string(),
        refresh_token: login.refresh_token.map(|t| t.to_string()),
        expires_in: login.expires_in,
    })
}

async fn revoke(st: AppState, ctx: Ctx, v: Version, raw: Bytes) -> Answer {
    let s = session(&st, &ctx, v).await?;
    let req: RevokeRequest = body(&raw)?;
    let token = req
        .token
        .filter(|t| !t.is_empty())
        .ok_or_else(|| CscError::invalid("Missing (or invalid type) string parameter token"))?;
    if let Some(h) = &req.token_type_hint
        && !matches!(h.as_str(), "access_token" | "refresh_token")
    {
        return Err(CscError::invalid("Invalid parameter token_type_hint"));
    }
    st.csc.revoke(&s, &token).await.map_err(|e| CscError::from_core(e, v))?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// `none`, `single` or `chain`.
fn certificates_param(p: Option<&str>) -> Result<&'static str, CscError> {
    match p.unwrap_or("single") {
        "none" => Ok("none"),
        "single" => Ok("single"),
        "chain" => Ok("chain"),
        _ => Err(CscError::invalid("Invalid parameter certificates")),
    }
}

/// Certificate time as `YYYYMMDDHHMMSSZ`.
fn generalized(t: time::OffsetDateTime) -> String {
    let t = t.to_offset(time::UtcOffset::UTC);
    format!(
        "{:04}{:02}{:02}{:02}{:02}{:02}Z",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute(),
        t.second()
    )
}

struct Describe {
    certificates: &'static str,
    cert_info: bool,
}

fn describe(
    st: &AppState,
    v: Version,
    c: &SigningCredential,
    cert: &Certificate,
    d: &Describe,
) -> CredentialInfo {
    let now = sigil_core::ports::Clock::now(&sigil_core::ports::SystemClock);
    let status = match cert.status_at(now) {
        CertStatus::Active => "valid",
        CertStatus::Expired => "expired",
        CertStatus::Revoked => "revoked",
        CertStatus::Suspended => "suspended",
    };
    let certificates = match d.certificates {
        "none" => None,
        mode => {
            let mut v = vec![STANDARD.encode(&cert.der)];
            if mode == "chain"
                && let Ok(i) = st.certificates.issuers().get(&cert.ca_id)
            {
                v.extend(i.chain().iter().map(|d| STANDARD.encode(d)));
            }
            Some(v)
        }
    };
    let issuer = d
        .cert_info
        .then(|| {
            x509_parser::parse_x509_certificate(&cert.der).ok().map(|(_, x)| x.issuer().to_string())
        })
        .flatten();
    let (len, curve) = match c.key_algorithm {
        KeyType::P256 => (256, Some("1.2.840.10045.3.1.7".to_owned())),
        KeyType::P384 => (384, Some("1.3.132.0.34".to_owned())),
        k => (k.rsa_bits().unwrap_or(2048), None),
    };
    let format = if c.pin_numeric { "N" } else { "A" }.to_owned();
    let v1 = v == Version::V1;
    CredentialInfo {
        credential_id: None,
        description: c.description.clone(),
        key: KeyInfo {
            status: c.status.as_str().to_owned(),
            algo: key_algos(c.key_algorithm).iter().map(|a| (*a).to_owned()).collect(),
            len,
            curve,
        },
        cert: CertInfo {
            status: status.to_owned(),
            certificates,
            issuer_dn: issuer,
            serial_number: d.cert_info.then(|| cert.serial.clone()),
            subject_dn: d.cert_info.then(|| cert.subject.clone()),
            valid_from: d.cert_info.then(|| generalized(cert.not_before)),
            valid_to: d.cert_info.then(|| generalized(cert.not_after)),
        },
        auth_mode: v1.then(|| "explicit".to_owned()),
        pin: v1.then(|| PinInfo {
            presence: "true".into(),
            format: format.clone(),
            label: "PIN".into(),
            description: "The PIN of this signing credential".into(),
        }),
        auth: (!v1).then(|| AuthInfo {
            mode: "explicit".into(),
            objects: vec![AuthObject {
                kind: "Password".into(),
                id: "PIN".into(),
                format,
                label: "PIN".into(),
                description: "The PIN of this signing credential".into(),
            }],
        }),
        scal: c.scal.to_string(),
        multisign: c.multisign,
        lang: "en".into(),
    }
}

async fn list(st: AppState, ctx: Ctx, v: Version, raw: Bytes) -> Answer {
    let s = session(&st, &ctx, v).await?;
    let req: ListRequest = body(&raw)?;
    if req.user_id.as_ref().is_some_and(|u| !u.is_null()) {
        return Err(CscError::invalid("userID parameter MUST be null"));
    }
    let certificates = certificates_param(req.certificates.as_deref())?;
    let now = sigil_core::ports::Clock::now(&sigil_core::ports::SystemClock);
    let mut all = st.csc.list(&s).await.map_err(|e| CscError::from_core(e, v))?;
    if req.only_valid == Some(true) {
        all.retain(|(c, cert)| {
            c.status == CredentialStatus::Enabled && cert.status_at(now) == CertStatus::Active
        });
    }
    let start = match &req.page_token {
        None => 0,
        Some(t) => {
            t.parse::<usize>().map_err(|_| CscError::invalid("Invalid parameter pageToken"))?
        }
    };
    let size = req.max_results.map_or(usize::MAX, |m| m.max(1) as usize);
    let page: Vec<_> = all.iter().skip(start).take(size).collect();
    let next =
        (start.saturating_add(page.len()) < all.len()).then(|| (start + page.len()).to_string());
    let infos = (req.credential_info == Some(true)).then(|| {
        let d = Describe { certificates, cert_info: req.cert_info == Some(true) };
        page.iter()
            .map(|(c, cert)| CredentialInfo {
                credential_id: Some(c.id.to_string()),
                ..describe(&st, v, c, cert, &d)
            })
            .collect()
    });
    ok(ListResponse {
        credential_ids: page.iter().map(|(c, _)| c.id.to_string()).collect(),
        next_page_token: next,
        credential_infos: infos,
        only_valid: req.only_valid,
    })
}

async fn credential_info(st: AppState, ctx: Ctx, v: Version, raw: Bytes) -> Answer {
    let s = session(&st, &ctx, v).await?;
    let req: InfoOfCredential = body(&raw)?;
    let id = req.credential_id.ok_or_else(|| {
        CscError::invalid("Missing (or invalid type) string parameter credentialID")
    })?;
    let certificates = certificates_param(req.certificates.as_deref())?;
    let entry = st.csc.credential(&s, &id).await.map_err(|e| CscError::from_core(e, v))?;
    let d = Describe { certificates, cert_info: req.cert_info == Some(true) };
    ok(describe(&st, v, &entry.0, &entry.1, &d))
}

async fn authorize(st: AppState, ctx: Ctx, v: Version, raw: Bytes) -> Answer {
    let s = session(&st, &ctx, v).await?;
    let req: AuthorizeRequest = body(&raw)?;
    let credential_id = req.credential_id.ok_or_else(|| {
        CscError::invalid("Missing (or invalid type) string parameter credentialID")
    })?;
    let num = req.num_signatures.ok_or_else(|| {
        CscError::invalid("Missing (or invalid type) integer parameter numSignatures")
    })?;
    let hashes = match req.hash {
        Some(hs) => Some(hs.iter().map(|h| digest(h)).collect::<Result<Vec<_>, _>>()?),
        None => None,
    };
    // v2 names the digest algorithm of the hashes: their lengths must match it.
    if let Some(oid) = &req.hash_algorithm_oid {
        let alg = HashAlgo::from_oid(oid)
            .ok_or_else(|| CscError::invalid("Invalid parameter hashAlgorithmOID"))?;
        if hashes.iter().flatten().any(|h| h.len() != alg.digest_len()) {
            return Err(CscError::invalid("Invalid digest value length"));
        }
    }
    // v2 sends the PIN as an authData object; v1 as `PIN`. Either is taken on both paths.
    let from_auth_data = req
        .auth_data
        .unwrap_or_default()
        .into_iter()
        .find(|a| a.id.eq_ignore_ascii_case("PIN"))
        .and_then(|a| a.value);
    let pin = req.pin.or(from_auth_data).map(Zeroizing::new);
    let a = Authorize { credential_id, num_signatures: num, hashes, pin };
    let (sad, expires_in) = st.csc.authorize(&s, a).await.map_err(|e| CscError::from_core(e, v))?;
    ok(AuthorizeResponse { sad: sad.to_string(), expires_in })
}

async fn sign_hash(st: AppState, ctx: Ctx, v: Version, raw: Bytes) -> Answer {
    let s = session(&st, &ctx, v).await?;
    let req: SignHashRequest = body(&raw)?;
    let credential_id = req.credential_id.ok_or_else(|| {
        CscError::invalid("Missing (or invalid type) string parameter credentialID")
    })?;
    let sad = req
        .sad
        .ok_or_else(|| CscError::invalid("Missing (or invalid type) string parameter SAD"))?;
    let hashes = req
        .hash
        .ok_or_else(|| CscError::invalid("Missing (or invalid type) array parameter hash"))?
        .iter()
        .map(|h| digest(h))
        .collect::<Result<Vec<_>, _>>()?;
    let sign_algo = req
        .sign_algo
        .ok_or_else(|| CscError::invalid("Missing (or invalid type) string parameter signAlgo"))?;
    if let Some(m) = &req.operation_mode
        && m != "S"
    {
        return Err(CscError::invalid("Invalid parameter operationMode: only S is served"));
    }
    let params = match req.sign_algo_params {
        Some(p) => Some(
            STANDARD
                .decode(p)
                .map_err(|_| CscError::invalid("Invalid parameter signAlgoParams"))?,
        ),
        None => None,
    };
    let r = SignHash {
        credential_id,
        sad: Zeroizing::new(sad),
        hashes,
        sign_algo,
        hash_algo: req.hash_algo,
        sign_algo_params: params,
    };
    let sigs = st.csc.sign_hash(&s, r).await.map_err(|e| CscError::from_core(e, v))?;
    ok(SignHashResponse { signatures: sigs.iter().map(|s| STANDARD.encode(s)).collect() })
}

/// Service information (no authentication): name, region, logo, language, description and
/// authentication types from the default CSC provider, and the methods served.
#[utoipa::path(post, path = "/csc/v1/info", tag = "csc", request_body(content = Option<InfoRequest>), responses((status = 200, body = InfoResponse)))]
async fn v1_info_post(State(st): State<AppState>, raw: Bytes) -> Answer {
    info(st, Version::V1, raw).await
}

/// Service information (GET, as some clients call it).
#[utoipa::path(get, path = "/csc/v1/info", tag = "csc", responses((status = 200, body = InfoResponse)))]
async fn v1_info_get(State(st): State<AppState>) -> Answer {
    info(st, Version::V1, Bytes::new()).await
}

/// Log in with HTTP Basic (or a refresh token): a bearer access token, and with `rememberMe` a
/// refresh token.
#[utoipa::path(post, path = "/csc/v1/auth/login", tag = "csc", request_body(content = Option<LoginRequest>), responses((status = 200, body = LoginResponse)), security(("basic" = []), ()))]
async fn v1_login(State(st): State<AppState>, ctx: Ctx, raw: Bytes) -> Answer {
    login(st, ctx, Version::V1, raw).await
}

/// Revoke an access token, or a refresh token with the access tokens made from it.
#[utoipa::path(post, path = "/csc/v1/auth/revoke", tag = "csc", request_body = RevokeRequest, responses((status = 204, description = "Revoked")), security(("bearer" = [])))]
async fn v1_revoke(State(st): State<AppState>, ctx: Ctx, raw: Bytes) -> Answer {
    revoke(st, ctx, Version::V1, raw).await
}

/// The logged-in signer's credentials.
#[utoipa::path(post, path = "/csc/v1/credentials/list", tag = "csc", request_body(content = Option<ListRequest>), responses((status = 200, body = ListResponse)), security(("bearer" = [])))]
async fn v1_list(State(st): State<AppState>, ctx: Ctx, raw: Bytes) -> Answer {
    list(st, ctx, Version::V1, raw).await
}

/// One credential: key algorithms, certificate (and chain), SCAL, multisign, auth mode.
#[utoipa::path(post, path = "/csc/v1/credentials/info", tag = "csc", request_body = InfoOfCredential, responses((status = 200, body = CredentialInfo)), security(("bearer" = [])))]
async fn v1_credential_info(State(st): State<AppState>, ctx: Ctx, raw: Bytes) -> Answer {
    credential_info(st, ctx, Version::V1, raw).await
}

/// Authorize signatures with the PIN: a SAD bound to the signer, the credential, the number of
/// signatures and (SCAL 2) the exact hashes; it expires.
#[utoipa::path(post, path = "/csc/v1/credentials/authorize", tag = "csc", request_body = AuthorizeRequest, responses((status = 200, body = AuthorizeResponse)), security(("bearer" = [])))]
async fn v1_authorize(State(st): State<AppState>, ctx: Ctx, raw: Bytes) -> Answer {
    authorize(st, ctx, Version::V1, raw).await
}

/// Sign hashes with a SAD (RSA PKCS#1 v1.5 or PSS, ECDSA DER), answered in order.
#[utoipa::path(post, path = "/csc/v1/signatures/signHash", tag = "csc", request_body = SignHashRequest, responses((status = 200, body = SignHashResponse)), security(("bearer" = [])))]
async fn v1_sign_hash(State(st): State<AppState>, ctx: Ctx, raw: Bytes) -> Answer {
    sign_hash(st, ctx, Version::V1, raw).await
}

/// Service information (no authentication): name, region, logo, language, description and
/// authentication types from the default CSC provider, and the methods served.
#[utoipa::path(post, path = "/csc/v2/info", tag = "csc", request_body(content = Option<InfoRequest>), responses((status = 200, body = InfoResponse)))]
async fn v2_info_post(State(st): State<AppState>, raw: Bytes) -> Answer {
    info(st, Version::V2, raw).await
}

/// Service information (GET, as some clients call it).
#[utoipa::path(get, path = "/csc/v2/info", tag = "csc", responses((status = 200, body = InfoResponse)))]
async fn v2_info_get(State(st): State<AppState>) -> Answer {
    info(st, Version::V2, Bytes::new()).await
}

/// Log in with HTTP Basic (or a refresh token): a bearer access token, and with `rememberMe` a
/// refresh token.
#[utoipa::path(post, path = "/csc/v2/auth/login", tag = "csc", request_body(content = Option<LoginRequest>), responses((status = 200, body = LoginResponse)), security(("basic" = []), ()))]
async fn v2_login(State(st): State<AppState>, ctx: Ctx, raw: Bytes) -> Answer {
    login(st, ctx, Version::V2, raw).await
}

/// Revoke an access token, or a refresh token with the access tokens made from it.
#[utoipa::path(post, path = "/csc/v2/auth/revoke", tag = "csc", request_body = RevokeRequest, responses((status = 204, description = "Revoked")), security(("bearer" = [])))]
async fn v2_revoke(State(st): State<AppState>, ctx: Ctx, raw: Bytes) -> Answer {
    revoke(st, ctx, Version::V2, raw).await
}

/// The logged-in signer's credentials.
#[utoipa::path(post, path = "/csc/v2/credentials/list", tag = "csc", request_body(content = Option<ListRequest>), responses((status = 200, body = ListResponse)), security(("bearer" = [])))]
async fn v2_list(State(st): State<AppState>, ctx: Ctx, raw: Bytes) -> Answer {
    list(st, ctx, Version::V2, raw).await
}

/// One credential: key algorithms, certificate (and chain), SCAL, multisign, auth mode.
#[utoipa::path(post, path = "/csc/v2/credentials/info", tag = "csc", request_body = InfoOfCredential, responses((status = 200, body = CredentialInfo)), security(("bearer" = [])))]
async fn v2_credential_info(State(st): State<AppState>, ctx: Ctx, raw: Bytes) -> Answer {
    credential_info(st, ctx, Version::V2, raw).await
}

/// Authorize signatures with the PIN: a SAD bound to the signer, the credential, the number of
/// signatures and (SCAL 2) the exact hashes; it expires.
#[utoipa::path(post, path = "/csc/v2/credentials/authorize", tag = "csc", request_body = AuthorizeRequest, responses((status = 200, body = AuthorizeResponse)), security(("bearer" = [])))]
async fn v2_authorize(State(st): State<AppState>, ctx: Ctx, raw: Bytes) -> Answer {
    authorize(st, ctx, Version::V2, raw).await
}

/// Sign hashes with a SAD (RSA PKCS#1 v1.5 or PSS, ECDSA DER), answered in order.
#[utoipa::path(post, path = "/csc/v2/signatures/signHash", tag = "csc", request_body = SignHashRequest, responses((status = 200, body = SignHashResponse)), security(("bearer" = [])))]
async fn v2_sign_hash(State(st): State<AppState>, ctx: Ctx, raw: Bytes) -> Answer {
    sign_hash(st, ctx, Version::V2, raw).await
}
