//! The ACME resources (RFC 8555 §7). Every POST body is a JWS (`application/jose+json`);
//! a POST with an empty payload is a read (POST-as-GET, §6.3).

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::json;
use sigil_core::acme::accounts::Signed;
use sigil_core::acme::model::{ChallengeType, OrderStatus};
use sigil_core::acme::{AcmeError, Urls};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use super::{AcmeReply, Ctx, views};
use crate::AppState;

/// The ACME routes.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(directory))
        .routes(routes!(new_nonce))
        .routes(routes!(new_account))
        .routes(routes!(account))
        .routes(routes!(account_orders))
        .routes(routes!(key_change))
        .routes(routes!(new_order))
        .routes(routes!(order))
        .routes(routes!(finalize))
        .routes(routes!(authz))
        .routes(routes!(challenge))
        .routes(routes!(certificate))
        .routes(routes!(revoke_cert))
        .routes(routes!(renewal_info))
}

/// How long a client should wait before polling a pending or processing object again.
const POLL_SECS: u64 = 2;

type Reply = Result<AcmeReply, AcmeError>;

/// The answer with the directory link, and a fresh nonce when this directory is served (a
/// server with ACME off, or a profile not served over it, records nothing for anyone).
async fn finish(st: &AppState, urls: &Urls, profile: &str, r: Reply) -> Response {
    let served = st.acme.profile(profile).await.is_ok();
    let r = r.unwrap_or_else(AcmeReply::problem);
    if served { r.finish(st, Some(urls)).await } else { r.into_response() }
}

/// A request signed by a registered account.
async fn signed(st: &AppState, ctx: &Ctx, profile: &str, body: &[u8]) -> Result<Signed, AcmeError> {
    jose(ctx)?;
    st.acme.signed(profile, &ctx.urls(profile), &ctx.url, body, ctx.context.clone()).await
}

fn jose(ctx: &Ctx) -> Result<(), AcmeError> {
    if ctx.jose {
        Ok(())
    } else {
        Err(AcmeError::Problem(
            415,
            sigil_core::acme::model::AcmeProblem::new(
                "malformed",
                "ACME requests are application/jose+json",
            ),
        ))
    }
}

fn id(s: &str, what: &str) -> Result<Uuid, AcmeError> {
    Uuid::parse_str(s).map_err(|_| AcmeError::not_found(what))
}

/// The directory (RFC 8555 §7.1.1) of an ACME-enabled profile.
#[utoipa::path(get, path = "/acme/{profile}/directory", tag = "acme",
    params(("profile" = String, Path, description = "A profile with `acme = true`")),
    responses((status = 200, description = "The ACME directory", body = Object),
              (status = 404, description = "ACME is off, or the profile is not served over ACME")))]
async fn directory(State(st): State<AppState>, ctx: Ctx, Path(profile): Path<String>) -> Response {
    let urls = ctx.urls(&profile);
    let r = async {
        st.acme.profile(&profile).await?;
        Ok(AcmeReply::json(
            StatusCode::OK,
            json!({
                "newNonce": urls.new_nonce(),
                "newAccount": urls.new_account(),
                "newOrder": urls.new_order(),
                "keyChange": urls.key_change(),
                "revokeCert": urls.revoke_cert(),
                "renewalInfo": urls.renewal_info(),
                "meta": {
                    "externalAccountRequired": st.acme.settings().eab_required,
                    "profiles": {profile.clone(): "Sigil profile"},
                },
            }),
        ))
    }
    .await;
    r.unwrap_or_else(AcmeReply::problem).into_response()
}

/// A fresh anti-replay nonce (RFC 8555 §7.2): HEAD answers 200, GET 204.
#[utoipa::path(get, path = "/acme/{profile}/new-nonce", tag = "acme",
    params(("profile" = String, Path, description = "A profile with `acme = true`")),
    responses((status = 204, description = "A nonce in Replay-Nonce (HEAD: 200)")))]
async fn new_nonce(
    State(st): State<AppState>,
    ctx: Ctx,
    method: Method,
    Path(profile): Path<String>,
) -> Response {
    let urls = ctx.urls(&profile);
    let r = async {
        st.acme.profile(&profile).await?;
        let status = if method == Method::HEAD { StatusCode::OK } else { StatusCode::NO_CONTENT };
        Ok(AcmeReply::raw(status.into_response()))
    }
    .await;
    finish(&st, &urls, &profile, r).await
}

/// newAccount (RFC 8555 §7.3): signed with the account's key (jwk). 201 with the account's
/// URL in Location, or 200 with the existing account of that key.
#[utoipa::path(post, path = "/acme/{profile}/new-account", tag = "acme",
    params(("profile" = String, Path, description = "A profile with `acme = true`")),
    request_body(content = String, content_type = "application/jose+json"),
    responses((status = 201, description = "Account created", body = Object),
              (status = 200, description = "The existing account of this key", body = Object)))]
async fn new_account(
    State(st): State<AppState>,
    ctx: Ctx,
    Path(profile): Path<String>,
    body: Bytes,
) -> Response {
    let urls = ctx.urls(&profile);
    let r = async {
        jose(&ctx)?;
        let (a, created) =
            st.acme.new_account(&profile, &urls, &ctx.url, &body, ctx.context.clone()).await?;
        let status = if created { StatusCode::CREATED } else { StatusCode::OK };
        Ok(AcmeReply::json(status, views::account(&a, &urls)).location(&urls.account(a.id)))
    }
    .await;
    finish(&st, &urls, &profile, r).await
}

/// An account (RFC 8555 §7.3.2, §7.3.6): read it (empty payload), change its contacts, or
/// deactivate it (`{"status": "deactivated"}`).
#[utoipa::path(post, path = "/acme/{profile}/account/{id}", tag = "acme",
    params(("profile" = String, Path, description = "A profile with `acme = true`"),
           ("id" = String, Path, description = "Account id")),
    request_body(content = String, content_type = "application/jose+json"),
    responses((status = 200, description = "The account", body = Object)))]
async fn account(
    State(st): State<AppState>,
    ctx: Ctx,
    Path((profile, account)): Path<(String, String)>,
    body: Bytes,
) -> Response {
    let urls = ctx.urls(&profile);
    let r = async {
        let s = signed(&st, &ctx, &profile, &body).await?;
        let a = st.acme.account_update(&s, id(&account, "account")?).await?;
        Ok(AcmeReply::json(StatusCode::OK, views::account(&a, &urls)))
    }
    .await;
    finish(&st, &urls, &profile, r).await
}

/// An account's orders (RFC 8555 §7.1.2.1).
#[utoipa::path(post, path = "/acme/{profile}/account/{id}/orders", tag = "acme",
    params(("profile" = String, Path, description = "A profile with `acme = true`"),
           ("id" = String, Path, description = "Account id")),
    request_body(content = String, content_type = "application/jose+json"),
    responses((status = 200, description = "Order URLs", body = Object)))]
async fn account_orders(
    State(st): State<AppState>,
    ctx: Ctx,
    Path((profile, account)): Path<(String, String)>,
    body: Bytes,
) -> Response {
    let urls = ctx.urls(&profile);
    let r = async {
        let s = signed(&st, &ctx, &profile, &body).await?;
        let ids = st.acme.orders_of(&s, id(&account, "account")?).await?;
        let orders: Vec<String> = ids.into_iter().map(|o| urls.order(o)).collect();
        Ok(AcmeReply::json(StatusCode::OK, json!({ "orders": orders })))
    }
    .await;
    finish(&st, &urls, &profile, r).await
}

/// keyChange (RFC 8555 §7.3.5): the payload is a JWS signed by the new key.
#[utoipa::path(post, path = "/acme/{profile}/key-change", tag = "acme",
    params(("profile" = String, Path, description = "A profile with `acme = true`")),
    request_body(content = String, content_type = "application/jose+json"),
    responses((status = 200, description = "The account, with its new key", body = Object),
              (status = 409, description = "Another account holds the new key")))]
async fn key_change(
    State(st): State<AppState>,
    ctx: Ctx,
    Path(profile): Path<String>,
    body: Bytes,
) -> Response {
    let urls = ctx.urls(&profile);
    let r = async {
        let s = signed(&st, &ctx, &profile, &body).await?;
        let a = st.acme.key_change(&s, &urls).await?;
        Ok(AcmeReply::json(StatusCode::OK, views::account(&a, &urls)))
    }
    .await;
    finish(&st, &urls, &profile, r).await
}

/// newOrder (RFC 8555 §7.4): DNS and IP (RFC 8738) identifiers, each checked against the
/// profile first (`rejectedIdentifier` names the refused ones).
#[utoipa::path(post, path = "/acme/{profile}/new-order", tag = "acme",
    params(("profile" = String, Path, description = "A profile with `acme = true`")),
    request_body(content = String, content_type = "application/jose+json"),
    responses((status = 201, description = "The order", body = Object)))]
async fn new_order(
    State(st): State<AppState>,
    ctx: Ctx,
    Path(profile): Path<String>,
    body: Bytes,
) -> Response {
    let urls = ctx.urls(&profile);
    let r = async {
        let s = signed(&st, &ctx, &profile, &body).await?;
        let o = st.acme.new_order(&s).await?;
        Ok(AcmeReply::json(StatusCode::CREATED, views::order(&o, &urls))
            .location(&urls.order(o.id)))
    }
    .await;
    finish(&st, &urls, &profile, r).await
}

/// The order answer, with `Retry-After` while it is not settled.
fn order_reply(o: &sigil_core::acme::model::AcmeOrder, urls: &Urls) -> AcmeReply {
    let r = AcmeReply::json(StatusCode::OK, views::order(o, urls)).location(&urls.order(o.id));
    if matches!(o.status, OrderStatus::Pending | OrderStatus::Processing) {
        r.retry_after(POLL_SECS)
    } else {
        r
    }
}

/// An order (POST-as-GET).
#[utoipa::path(post, path = "/acme/{profile}/order/{id}", tag = "acme",
    params(("profile" = String, Path, description = "A profile with `acme = true`"),
           ("id" = String, Path, description = "Order id")),
    request_body(content = String, content_type = "application/jose+json"),
    responses((status = 200, description = "The order", body = Object)))]
async fn order(
    State(st): State<AppState>,
    ctx: Ctx,
    Path((profile, order)): Path<(String, String)>,
    body: Bytes,
) -> Response {
    let urls = ctx.urls(&profile);
    let r = async {
        let s = signed(&st, &ctx, &profile, &body).await?;
        let (o, _) = st.acme.order(&s, id(&order, "order")?).await?;
        Ok(order_reply(&o, &urls))
    }
    .await;
    finish(&st, &urls, &profile, r).await
}

/// finalize (RFC 8555 §7.4): `{"csr": base64url DER}` naming exactly the order's identifiers;
/// the certificate is issued through the profile like any other.
#[utoipa::path(post, path = "/acme/{profile}/order/{id}/finalize", tag = "acme",
    params(("profile" = String, Path, description = "A profile with `acme = true`"),
           ("id" = String, Path, description = "Order id")),
    request_body(content = String, content_type = "application/jose+json"),
    responses((status = 200, description = "The order, valid with its certificate URL", body = Object),
              (status = 403, description = "orderNotReady")))]
async fn finalize(
    State(st): State<AppState>,
    ctx: Ctx,
    Path((profile, order)): Path<(String, String)>,
    body: Bytes,
) -> Response {
    let urls = ctx.urls(&profile);
    let r = async {
        let s = signed(&st, &ctx, &profile, &body).await?;
        let o = st.acme.finalize(&s, id(&order, "order")?).await?;
        Ok(order_reply(&o, &urls))
    }
    .await;
    finish(&st, &urls, &profile, r).await
}

/// An authorization: read it (empty payload) or deactivate it.
#[utoipa::path(post, path = "/acme/{profile}/authz/{id}", tag = "acme",
    params(("profile" = String, Path, description = "A profile with `acme = true`"),
           ("id" = String, Path, description = "Authorization id")),
    request_body(content = String, content_type = "application/jose+json"),
    responses((status = 200, description = "The authorization", body = Object)))]
async fn authz(
    State(st): State<AppState>,
    ctx: Ctx,
    Path((profile, authz)): Path<(String, String)>,
    body: Bytes,
) -> Response {
    let urls = ctx.urls(&profile);
    let r = async {
        let s = signed(&st, &ctx, &profile, &body).await?;
        let a = st.acme.authz(&s, id(&authz, "authorization")?).await?;
        let pending = a.status == sigil_core::acme::model::AuthzStatus::Pending;
        let reply = AcmeReply::json(StatusCode::OK, views::authz(&a, &urls));
        Ok(if pending { reply.retry_after(POLL_SECS) } else { reply })
    }
    .await;
    finish(&st, &urls, &profile, r).await
}

/// A challenge: `{}` asks the server to validate it (off the request path); an empty payload
/// reads it.
#[utoipa::path(post, path = "/acme/{profile}/chall/{authz}/{type}", tag = "acme",
    params(("profile" = String, Path, description = "A profile with `acme = true`"),
           ("authz" = String, Path, description = "Authorization id"),
           ("type" = String, Path, description = "http-01, dns-01 or tls-alpn-01")),
    request_body(content = String, content_type = "application/jose+json"),
    responses((status = 200, description = "The challenge", body = Object)))]
async fn challenge(
    State(st): State<AppState>,
    ctx: Ctx,
    Path((profile, authz, kind)): Path<(String, String, String)>,
    body: Bytes,
) -> Response {
    let urls = ctx.urls(&profile);
    let r = async {
        let s = signed(&st, &ctx, &profile, &body).await?;
        let authz = id(&authz, "authorization")?;
        let kind = ChallengeType::parse(&kind).ok_or_else(|| AcmeError::not_found("challenge"))?;
        let (a, c) = if s.jws.is_post_as_get() {
            let a = st.acme.authz(&s, authz).await?;
            let c = a
                .challenges
                .iter()
                .find(|c| c.kind == kind)
                .cloned()
                .ok_or_else(|| AcmeError::not_found("challenge"))?;
            (a, c)
        } else {
            st.acme.respond_challenge(&s, authz, kind).await?
        };
        let processing = c.status == sigil_core::acme::model::ChallengeStatus::Processing;
        let reply = AcmeReply::json(StatusCode::OK, views::challenge(&c, a.id, &urls))
            .link(&urls.authz(a.id), "up");
        Ok(if processing { reply.retry_after(POLL_SECS) } else { reply })
    }
    .await;
    finish(&st, &urls, &profile, r).await
}

/// The certificate with its chain (`application/pem-certificate-chain`, RFC 8555 §7.4.2).
#[utoipa::path(post, path = "/acme/{profile}/cert/{id}", tag = "acme",
    params(("profile" = String, Path, description = "A profile with `acme = true`"),
           ("id" = String, Path, description = "Certificate id")),
    request_body(content = String, content_type = "application/jose+json"),
    responses((status = 200, description = "PEM certificate chain",
               content_type = "application/pem-certificate-chain")))]
async fn certificate(
    State(st): State<AppState>,
    ctx: Ctx,
    Path((profile, cert)): Path<(String, String)>,
    body: Bytes,
) -> Response {
    let urls = ctx.urls(&profile);
    let r = async {
        let s = signed(&st, &ctx, &profile, &body).await?;
        if !s.jws.is_post_as_get() {
            return Err(AcmeError::malformed(
                "the certificate is read by POST-as-GET (empty payload)",
            ));
        }
        let (c, chain) = st.acme.certificate(&s, id(&cert, "certificate")?).await?;
        let mut pem = crate::v1::certificates::pem("CERTIFICATE", &c.der);
        for der in &chain {
            pem.push_str(&crate::v1::certificates::pem("CERTIFICATE", der));
        }
        let mut res = pem.into_response();
        res.headers_mut().insert(
            header::CONTENT_TYPE,
            axum::http::HeaderValue::from_static("application/pem-certificate-chain"),
        );
        Ok(AcmeReply::raw(res))
    }
    .await;
    finish(&st, &urls, &profile, r).await
}

/// revokeCert (RFC 8555 §7.6): signed by the account that ordered the certificate, an account
/// holding authorizations for all its names, or the certificate's own key (jwk).
#[utoipa::path(post, path = "/acme/{profile}/revoke-cert", tag = "acme",
    params(("profile" = String, Path, description = "A profile with `acme = true`")),
    request_body(content = String, content_type = "application/jose+json"),
    responses((status = 200, description = "Revoked"),
              (status = 403, description = "unauthorized: not this signer's certificate")))]
async fn revoke_cert(
    State(st): State<AppState>,
    ctx: Ctx,
    Path(profile): Path<String>,
    body: Bytes,
) -> Response {
    let urls = ctx.urls(&profile);
    let r = async {
        jose(&ctx)?;
        st.acme.revoke(&profile, &urls, &ctx.url, &body, ctx.context.clone()).await?;
        Ok(AcmeReply::raw(StatusCode::OK.into_response()))
    }
    .await;
    finish(&st, &urls, &profile, r).await
}

/// ACME Renewal Information (RFC 9773): the suggested renewal window of a certificate,
/// named by `base64url(AKI keyIdentifier).base64url(serial)`.
#[utoipa::path(get, path = "/acme/{profile}/renewal-info/{id}", tag = "acme",
    params(("profile" = String, Path, description = "A profile with `acme = true`"),
           ("id" = String, Path, description = "RFC 9773 certificate identifier")),
    responses((status = 200, description = "The suggested window, with Retry-After", body = Object),
              (status = 404, description = "No such certificate here")))]
async fn renewal_info(
    State(st): State<AppState>,
    Path((profile, id)): Path<(String, String)>,
) -> Response {
    use time::format_description::well_known::Rfc3339;
    let r = async {
        let w = st.acme.renewal_info(&profile, &id).await?;
        let window = json!({"suggestedWindow": {
            "start": w.start.format(&Rfc3339).unwrap_or_default(),
            "end": w.end.format(&Rfc3339).unwrap_or_default(),
        }});
        Ok(AcmeReply::json(StatusCode::OK, window)
            .retry_after(sigil_core::acme::renewal::RETRY_AFTER_SECS))
    }
    .await;
    r.unwrap_or_else(AcmeReply::problem).into_response()
}
