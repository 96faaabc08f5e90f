//! Orders, authorizations, challenges, finalization and certificate download (RFC 8555 §7.4,
//! §7.5, §8; RFC 8738 for IP identifiers).

use std::collections::BTreeSet;
use std::net::IpAddr;
use std::sync::Arc;

use serde::Deserialize;
use uuid::Uuid;

use super::accounts::Signed;
use super::jws::{b64, key_authorization};
use super::model::{
    AcmeAuthz, AcmeOrder, AcmeProblem, AuthzStatus, Challenge, ChallengeStatus, ChallengeType,
    Identifier, IdentifierType, MAX_IDENTIFIERS, ORDER_LIFETIME, OrderStatus,
};
use super::{AcmeError, AcmeService, random_token};
use crate::access::authz::{Principal, perm};
use crate::audit::{AuditAction, NewAuditEvent};
use crate::certs::certificates::IssueRequest;
use crate::certs::{Certificate, ParsedCsr, San};
use crate::page::lock_unchanged;
use crate::records::{Collection, Filter, Record, get, select};

/// Most authorizations one account may have pending at once.
pub const MAX_PENDING_AUTHZS: usize = 300;

/// Most challenges of one account being validated at once (the node's slots are shared by all
/// accounts: one account must not hold them all).
pub const MAX_VALIDATIONS_PER_ACCOUNT: usize = 4;

/// A challenge left `processing` longer than this (its node stopped) may be asked for again.
const STALE_VALIDATION: time::Duration = time::Duration::minutes(2);

/// An identifier as sent: its type may be one this server does not know.
#[derive(Debug, Deserialize)]
struct RawIdentifier {
    #[serde(rename = "type")]
    kind: String,
    value: String,
}

/// newOrder's payload.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct NewOrder {
    identifiers: Vec<RawIdentifier>,
    #[serde(default)]
    not_before: Option<String>,
    #[serde(default)]
    not_after: Option<String>,
    #[serde(default)]
    replaces: Option<String>,
}

/// finalize's payload.
#[derive(Debug, Deserialize)]
struct Finalize {
    csr: String,
}

/// An order's identifier in canonical form, and whether it asks for a wildcard.
fn canonical(raw: &RawIdentifier) -> Result<(Identifier, bool), AcmeError> {
    match raw.kind.as_str() {
        "dns" => {
            let v = raw.value.trim_end_matches('.').to_ascii_lowercase();
            let wildcard = v.starts_with("*.");
            Ok((Identifier { kind: IdentifierType::Dns, value: v }, wildcard))
        }
        "ip" => {
            let ip: IpAddr = raw.value.parse().map_err(|_| {
                AcmeError::malformed(format!("`{}` is not an IP address", raw.value))
            })?;
            Ok((Identifier { kind: IdentifierType::Ip, value: ip.to_string() }, false))
        }
        other => Err(AcmeError::unsupported_identifier(format!(
            "identifier type `{other}` is not supported (dns and ip are)"
        ))),
    }
}

/// The SAN an identifier stands for.
fn san_of(id: &Identifier) -> San {
    match id.kind {
        IdentifierType::Dns => San::Dns(id.value.clone()),
        IdentifierType::Ip => San::Ip(id.value.clone()),
    }
}

/// The challenges offered for an identifier: a wildcard only by DNS (RFC 8555 §7.1.3), an IP
/// address never by DNS (RFC 8738 §7).
fn offered(id: &Identifier, wildcard: bool) -> Vec<ChallengeType> {
    match (id.kind, wildcard) {
        (IdentifierType::Dns, true) => vec![ChallengeType::Dns01],
        (IdentifierType::Dns, false) => {
            vec![ChallengeType::Http01, ChallengeType::Dns01, ChallengeType::TlsAlpn01]
        }
        (IdentifierType::Ip, _) => vec![ChallengeType::Http01, ChallengeType::TlsAlpn01],
    }
}

/// What an order's status is, from its stored state and its authorizations: a pending order
/// is ready once every authorization is valid and invalid once one cannot become valid.
pub fn order_status(
    order: &AcmeOrder,
    authzs: &[AcmeAuthz],
    now: time::OffsetDateTime,
) -> OrderStatus {
    let stored = order.status_at(now);
    if !matches!(stored, OrderStatus::Pending | OrderStatus::Ready) {
        return stored;
    }
    let states: Vec<AuthzStatus> = authzs.iter().map(|a| a.status_at(now)).collect();
    if states.len() != order.authorizations.len()
        || states.iter().any(|s| !matches!(s, AuthzStatus::Pending | AuthzStatus::Valid))
    {
        OrderStatus::Invalid
    } else if states.iter().all(|s| *s == AuthzStatus::Valid) {
        OrderStatus::Ready
    } else {
        OrderStatus::Pending
    }
}

impl AcmeService {
    /// Record `id` of `R` if it belongs to `account`, else 404 (the same answer whether it
    /// exists or not).
    async fn owned<R: Record>(
        &self,
        id: Uuid,
        account: Uuid,
        owner: impl Fn(&R) -> Uuid,
        what: &str,
    ) -> Result<R, AcmeError> {
        get::<R, _>(self.store.as_ref(), &id.to_string())
            .await?
            .filter(|r| owner(r) == account)
            .ok_or_else(|| AcmeError::not_found(what))
    }

    /// Authorizations `ids`, in that order.
    async fn authzs(&self, ids: &[Uuid]) -> Result<Vec<AcmeAuthz>, AcmeError> {
        let mut out = Vec::with_capacity(ids.len());
        for id in ids {
            if let Some(a) = get::<AcmeAuthz, _>(self.store.as_ref(), &id.to_string()).await? {
                out.push(a);
            }
        }
        Ok(out)
    }

    /// newOrder: checks every identifier against the profile (refusing the order, with one
    /// subproblem per refused identifier, before any challenge), reuses the account's valid
    /// authorizations and makes new ones for the rest.
    pub async fn new_order(&self, s: &Signed) -> Result<AcmeOrder, AcmeError> {
        let req: NewOrder = s.jws.json()?;
        if req.identifiers.is_empty() || req.identifiers.len() > MAX_IDENTIFIERS {
            return Err(AcmeError::malformed(format!(
                "an order names 1 to {MAX_IDENTIFIERS} identifiers"
            )));
        }
        if let Some(r) = &req.replaces {
            let ok = r.len() <= 200
                && r.split_once('.').is_some_and(|(a, b)| {
                    b64(a, "replaces").is_ok()
                        && b64(b, "replaces").is_ok()
                        && !a.is_empty()
                        && !b.is_empty()
                });
            if !ok {
                return Err(AcmeError::malformed(
                    "replaces is an RFC 9773 certificate id (AKI.serial)",
                ));
            }
        }
        if req.not_before.is_some() || req.not_after.is_some() {
            return Err(AcmeError::malformed(
                "the validity comes from the profile: leave notBefore and notAfter out",
            ));
        }
        let mut wanted: Vec<(Identifier, bool)> = Vec::new();
        let mut refused = Vec::new();
        for raw in &req.identifiers {
            let (id, wildcard) = canonical(raw)?;
            if wanted.iter().any(|(w, _)| *w == id) {
                continue;
            }
            if let Err(e) = s.profile.spec.check_san(&san_of(&id)) {
                refused.push(AcmeProblem::new("rejectedIdentifier", e.to_string()).about(&id));
            }
            wanted.push((id, wildcard));
        }
        for (kind, rule) in [
            (IdentifierType::Dns, s.profile.spec.san.dns),
            (IdentifierType::Ip, s.profile.spec.san.ip),
        ] {
            if rule == crate::certs::profile::Requirement::Required
                && !wanted.iter().any(|(id, _)| id.kind == kind)
            {
                let name = if kind == IdentifierType::Dns { "DNS name" } else { "IP address" };
                return Err(AcmeError::rejected_identifier(format!(
                    "profile `{}` requires a {name} in every certificate",
                    s.profile.name
                )));
            }
        }
        if !refused.is_empty() {
            let mut p = AcmeProblem::new(
                "rejectedIdentifier",
                format!("profile `{}` does not issue for every identifier", s.profile.name),
            );
            p.subproblems = refused;
            return Err(AcmeError::Problem(400, p));
        }
        let now = self.clock.now();
        let mine: Vec<AcmeAuthz> = select(
            self.store.as_ref(),
            Filter::AcmeAuthzs { order_id: None, account_id: Some(s.account.id) },
        )
        .await?;
        let pending = mine.iter().filter(|a| a.status_at(now) == AuthzStatus::Pending).count();
        if pending + wanted.len() > MAX_PENDING_AUTHZS {
            return Err(AcmeError::Problem(
                429,
                AcmeProblem::new(
                    "rateLimited",
                    format!(
                        "at most {MAX_PENDING_AUTHZS} pending authorizations per account; finish \
                         or deactivate some first"
                    ),
                ),
            ));
        }
        let order_id = Uuid::now_v7();
        let expires = now + ORDER_LIFETIME;
        let mut fresh = Vec::new();
        let mut ids = Vec::new();
        let mut identifiers = Vec::new();
        for (id, wildcard) in wanted {
            let base = Identifier {
                kind: id.kind,
                value: id.value.strip_prefix("*.").unwrap_or(&id.value).to_owned(),
            };
            let reusable = mine.iter().find(|a| {
                a.identifier == base
                    && a.wildcard == wildcard
                    && a.status_at(now) == AuthzStatus::Valid
                    // Valid for longer than the order lives.
                    && a.expires > expires
            });
            match reusable {
                Some(a) => ids.push(a.id),
                None => {
                    let mut challenges = Vec::new();
                    for kind in offered(&base, wildcard) {
                        challenges.push(Challenge {
                            kind,
                            token: random_token()?,
                            status: ChallengeStatus::Pending,
                            validated: None,
                            error: None,
                        });
                    }
                    let a = AcmeAuthz {
                        id: Uuid::now_v7(),
                        account_id: s.account.id,
                        order_id,
                        identifier: base,
                        wildcard,
                        status: AuthzStatus::Pending,
                        expires,
                        challenges,
                        updated_at: now,
                    };
                    ids.push(a.id);
                    fresh.push(a);
                }
            }
            identifiers.push(id);
        }
        let order = AcmeOrder {
            id: order_id,
            account_id: s.account.id,
            profile: s.profile.name.clone(),
            status: if fresh.is_empty() { OrderStatus::Ready } else { OrderStatus::Pending },
            identifiers,
            authorizations: ids,
            expires,
            not_before: None,
            not_after: None,
            error: None,
            certificate_id: None,
            replaces: req.replaces,
            created_at: now,
            updated_at: now,
        };
        let mut tx = self.store.begin_records().await?;
        for a in &fresh {
            tx.insert_record(a.row()).await?;
        }
        tx.insert_record(order.row()).await?;
        let ev =
            NewAuditEvent::new(&s.principal, AuditAction::AcmeOrderCreate, "acme_order", order.id)
                .details(serde_json::json!({
                    "profile": order.profile, "identifiers": order.identifiers,
                    "authorizations_reused": order.authorizations.len() - fresh.len(),
                }));
        tx.commit(vec![ev], now).await?;
        Ok(order)
    }

    /// An order of the signer's account with its authorizations and current status.
    pub async fn order(
        &self,
        s: &Signed,
        id: Uuid,
    ) -> Result<(AcmeOrder, Vec<AcmeAuthz>), AcmeError> {
        let mut order: AcmeOrder =
            self.owned(id, s.account.id, |o: &AcmeOrder| o.account_id, "order").await?;
        let authzs = self.authzs(&order.authorizations).await?;
        order.status = order_status(&order, &authzs, self.clock.now());
        Ok((order, authzs))
    }

    /// The ids of the signer's account's orders, oldest first.
    pub async fn orders_of(&self, s: &Signed, account: Uuid) -> Result<Vec<Uuid>, AcmeError> {
        if account != s.account.id {
            return Err(AcmeError::unauthorized("a request may only concern the signer's account"));
        }
        let orders: Vec<AcmeOrder> =
            select(self.store.as_ref(), Filter::AcmeOrders { account_id: Some(account) }).await?;
        Ok(orders.into_iter().map(|o| o.id).collect())
    }

    /// An authorization of the signer's account: read it, or deactivate it
    /// (`{"status": "deactivated"}`).
    pub async fn authz(&self, s: &Signed, id: Uuid) -> Result<AcmeAuthz, AcmeError> {
        let mut a: AcmeAuthz =
            self.owned(id, s.account.id, |a: &AcmeAuthz| a.account_id, "authorization").await?;
        if s.jws.is_post_as_get() {
            a.status = a.status_at(self.clock.now());
            return Ok(a);
        }
        #[derive(Deserialize)]
        struct Update {
            status: Option<String>,
        }
        let u: Update = s.jws.json()?;
        match u.status.as_deref() {
            None => {
                a.status = a.status_at(self.clock.now());
                Ok(a)
            }
            Some("deactivated") => {
                let now = self.clock.now();
                if !matches!(a.status_at(now), AuthzStatus::Pending | AuthzStatus::Valid) {
                    return Err(AcmeError::malformed(format!(
                        "only a pending or valid authorization can be deactivated; this one is {}",
                        a.status_at(now).as_str()
                    )));
                }
                let mut next = a.clone();
                next.status = AuthzStatus::Deactivated;
                next.updated_at = now;
                self.save_authz(
                    &s.principal,
                    &a,
                    &next,
                    serde_json::json!({"status": "deactivated"}),
                )
                .await?;
                Ok(next)
            }
            Some(other) => Err(AcmeError::malformed(format!(
                "an authorization's status can only become deactivated, not `{other}`"
            ))),
        }
    }

    async fn save_authz(
        &self,
        actor: &Arc<Principal>,
        before: &AcmeAuthz,
        next: &AcmeAuthz,
        details: serde_json::Value,
    ) -> Result<(), AcmeError> {
        let mut tx = self.store.begin_records().await?;
        lock_unchanged(tx.as_mut(), before, "acme_authz").await?;
        tx.update_record(next.row()).await?;
        let mut details = details;
        details["identifier"] = serde_json::json!(next.identifier);
        let ev = NewAuditEvent::new(actor, AuditAction::AcmeAuthzUpdate, "acme_authz", next.id)
            .details(details);
        tx.commit(vec![ev], self.clock.now()).await?;
        Ok(())
    }

    /// POST to a challenge: the client says it is ready. The challenge turns `processing`
    /// and is validated off the request path (at most `max_validations` at once on this node);
    /// its authorization then turns valid or invalid. Asking again changes nothing.
    pub async fn respond_challenge(
        self: &Arc<Self>,
        s: &Signed,
        authz: Uuid,
        kind: ChallengeType,
    ) -> Result<(AcmeAuthz, Challenge), AcmeError> {
        let a: AcmeAuthz =
            self.owned(authz, s.account.id, |a: &AcmeAuthz| a.account_id, "authorization").await?;
        let Some(ch) = a.challenges.iter().find(|c| c.kind == kind).cloned() else {
            return Err(AcmeError::not_found("challenge"));
        };
        let now = self.clock.now();
        let stale =
            ch.status == ChallengeStatus::Processing && now - a.updated_at > STALE_VALIDATION;
        if a.status_at(now) != AuthzStatus::Pending
            || (ch.status != ChallengeStatus::Pending && !stale)
            || a.challenges
                .iter()
                .any(|c| c.kind != kind && c.status == ChallengeStatus::Processing)
        {
            return Ok((a, ch));
        }
        let busy = select::<AcmeAuthz, _>(
            self.store.as_ref(),
            Filter::AcmeAuthzs { order_id: None, account_id: Some(s.account.id) },
        )
        .await?
        .iter()
        .filter(|x| {
            x.status_at(now) == AuthzStatus::Pending
                && now - x.updated_at <= STALE_VALIDATION
                && x.challenges.iter().any(|c| c.status == ChallengeStatus::Processing)
        })
        .count();
        if busy >= MAX_VALIDATIONS_PER_ACCOUNT {
            return Err(AcmeError::Problem(
                429,
                AcmeProblem::new(
                    "rateLimited",
                    format!(
                        "at most {MAX_VALIDATIONS_PER_ACCOUNT} challenges of an account are \
                         validated at once; retry when one is done"
                    ),
                ),
            ));
        }
        let mut next = a.clone();
        next.updated_at = now;
        for c in &mut next.challenges {
            if c.kind == kind {
                c.status = ChallengeStatus::Processing;
            }
        }
        self.save_authz(
            &s.principal,
            &a,
            &next,
            serde_json::json!({"challenge": kind.as_str(), "status": "processing"}),
        )
        .await?;
        let key_authz = key_authorization(&ch.token, &s.account.thumbprint);
        let this = Arc::clone(self);
        let actor = Arc::clone(&s.principal);
        let (id, token) = (next.identifier.clone(), ch.token.clone());
        let permits = Arc::clone(&self.validations);
        tokio::spawn(async move {
            let Ok(_permit) = permits.acquire_owned().await else { return };
            let outcome = this.validator.validate(kind, &id, &token, &key_authz).await;
            if let Err(e) = this.complete(&actor, authz, kind, outcome).await {
                tracing::error!(authz = %authz, error = %e, "recording an ACME validation failed");
            }
        });
        let ch = next.challenges.iter().find(|c| c.kind == kind).cloned().unwrap_or(ch);
        Ok((next, ch))
    }

    /// Records a validation's outcome on the authorization (if the challenge is still being
    /// validated).
    async fn complete(
        &self,
        actor: &Arc<Principal>,
        authz: Uuid,
        kind: ChallengeType,
        outcome: Result<(), AcmeProblem>,
    ) -> Result<(), AcmeError> {
        let now = self.clock.now();
        let mut tx = self.store.begin_records().await?;
        let Some(body) = tx.record_for_update(Collection::AcmeAuthzs, &authz.to_string()).await?
        else {
            return Ok(());
        };
        let mut a = AcmeAuthz::from_body(&body)?;
        // Only a still-pending authorization takes the outcome: one deactivated or expired
        // meanwhile stays as it is.
        if a.status_at(now) != AuthzStatus::Pending {
            return Ok(());
        }
        let Some(ch) = a.challenges.iter_mut().find(|c| c.kind == kind) else { return Ok(()) };
        if ch.status != ChallengeStatus::Processing {
            return Ok(());
        }
        let (status, error) = match outcome {
            Ok(()) => {
                ch.status = ChallengeStatus::Valid;
                ch.validated = Some(now);
                (AuthzStatus::Valid, None)
            }
            Err(p) => {
                let p = p.about(&a.identifier);
                ch.status = ChallengeStatus::Invalid;
                ch.error = Some(p.clone());
                (AuthzStatus::Invalid, Some(p))
            }
        };
        a.status = status;
        a.updated_at = now;
        tx.update_record(a.row()).await?;
        let ev = NewAuditEvent::new(actor, AuditAction::AcmeAuthzUpdate, "acme_authz", a.id)
            .details(serde_json::json!({
                "identifier": a.identifier, "challenge": kind.as_str(),
                "status": status.as_str(), "error": error,
            }));
        let ev = if status == AuthzStatus::Valid { ev } else { ev.failed() };
        tx.commit(vec![ev], now).await?;
        Ok(())
    }

    /// finalize: the CSR must name exactly the order's identifiers; the certificate is issued
    /// through the ordinary issuance path (profile rules, validator plugins, the profile's back
    /// end) and recorded as the account's.
    pub async fn finalize(&self, s: &Signed, id: Uuid) -> Result<AcmeOrder, AcmeError> {
        let (order, _) = self.order(s, id).await?;
        if order.status != OrderStatus::Ready {
            return Err(AcmeError::order_not_ready(format!(
                "the order is {}, not ready",
                order.status.as_str()
            )));
        }
        let req: Finalize = s.jws.json()?;
        let der = b64(&req.csr, "csr")?;
        let parsed = self.certificates.csr_parser().parse(&der).map_err(|e| match e {
            crate::CoreError::Invalid { detail, .. } => AcmeError::bad_csr(detail),
            other => AcmeError::Core(other),
        })?;
        check_csr_names(&order, &parsed)?;
        if self.verifier.jwk_spki(&s.account.jwk).ok().as_deref()
            == Some(parsed.spki_der.as_slice())
        {
            return Err(AcmeError::bad_csr(
                "the certificate's key must not be the account's key (RFC 8555 §11.1)",
            ));
        }
        // Ready → processing, once: a second finalize finds it processing.
        let stored: AcmeOrder =
            self.owned(id, s.account.id, |o: &AcmeOrder| o.account_id, "order").await?;
        // Checked again on the row read now: a concurrent finalize may have taken it already
        // (the write below then fails on its lock if it changed in between).
        if !matches!(stored.status, OrderStatus::Pending | OrderStatus::Ready) {
            return Err(AcmeError::order_not_ready(format!(
                "the order is {}, not ready",
                stored.status.as_str()
            )));
        }
        let mut processing = stored.clone();
        processing.status = OrderStatus::Processing;
        processing.updated_at = self.clock.now();
        self.save_order(
            &s.principal,
            &stored,
            &processing,
            serde_json::json!({"status": "processing"}),
        )
        .await?;
        let issuer = s.principal.acting_with(["certificate:issue"])?;
        let issued = self
            .certificates
            .issue(
                &issuer.authorize::<perm::CertificateIssue>()?,
                IssueRequest {
                    csr: der,
                    profile: order.profile.clone(),
                    metadata: Some(serde_json::json!({
                        "acme_account": s.account.id, "acme_order": order.id,
                    })),
                    office_id: None,
                },
            )
            .await;
        let mut done = processing.clone();
        done.updated_at = self.clock.now();
        match issued {
            Ok(cert) => {
                done.status = OrderStatus::Valid;
                done.certificate_id = Some(cert.id);
                let details = serde_json::json!({"status": "valid", "certificate_id": cert.id,
                    "serial": cert.serial});
                self.save_order(&s.principal, &processing, &done, details).await?;
                Ok(done)
            }
            Err(e) => {
                let problem = match AcmeError::Core(e) {
                    AcmeError::Core(e) => AcmeProblem::new(
                        super::error::core_kind(&e),
                        match &e {
                            crate::CoreError::Invalid { detail, .. } => detail.clone(),
                            _ => "the certificate could not be issued".into(),
                        },
                    ),
                    AcmeError::Problem(_, p) => p,
                };
                done.status = OrderStatus::Invalid;
                done.error = Some(problem.clone());
                let details = serde_json::json!({"status": "invalid", "error": problem});
                self.save_order(&s.principal, &processing, &done, details).await?;
                let status = if problem.kind == "serverInternal" { 500 } else { 400 };
                Err(AcmeError::Problem(status, problem))
            }
        }
    }

    async fn save_order(
        &self,
        actor: &Arc<Principal>,
        before: &AcmeOrder,
        next: &AcmeOrder,
        details: serde_json::Value,
    ) -> Result<(), AcmeError> {
        let mut tx = self.store.begin_records().await?;
        lock_unchanged(tx.as_mut(), before, "acme_order").await.map_err(|e| match e {
            crate::CoreError::Conflict { .. } => AcmeError::order_not_ready(
                "the order changed meanwhile (finalized by another request)",
            ),
            other => AcmeError::Core(other),
        })?;
        tx.update_record(next.row()).await?;
        let failed = next.status == OrderStatus::Invalid;
        let ev = NewAuditEvent::new(actor, AuditAction::AcmeOrderFinalize, "acme_order", next.id)
            .details(details);
        tx.commit(vec![if failed { ev.failed() } else { ev }], self.clock.now()).await?;
        Ok(())
    }

    /// A certificate the signer's account was issued, with its chain (issuing CA first).
    pub async fn certificate(
        &self,
        s: &Signed,
        id: Uuid,
    ) -> Result<(Certificate, Vec<Vec<u8>>), AcmeError> {
        let cert = self
            .store
            .certificate(id)
            .await?
            .filter(|c| {
                c.metadata.get("acme_account").and_then(|v| v.as_str())
                    == Some(s.account.id.to_string().as_str())
            })
            .ok_or_else(|| AcmeError::not_found("certificate"))?;
        let chain = self.certificates.issuers().get(&cert.ca_id)?.chain().to_vec();
        Ok((cert, chain))
    }
}

/// The CSR must name exactly the order's identifiers (DNS and IP SANs, nothing else); a CN,
/// when present, must be one of them.
fn check_csr_names(order: &AcmeOrder, csr: &ParsedCsr) -> Result<(), AcmeError> {
    let mut named = BTreeSet::new();
    for san in &csr.sans {
        match san {
            // As written (but for case): a trailing dot is not the order's name, and would be
            // refused at issuance after the order was spent.
            San::Dns(d) => named.insert((IdentifierType::Dns as u8, d.to_ascii_lowercase())),
            San::Ip(ip) => {
                let ip: IpAddr = ip
                    .parse()
                    .map_err(|_| AcmeError::bad_csr(format!("`{ip}` is not an IP address")))?;
                named.insert((IdentifierType::Ip as u8, ip.to_string()))
            }
            other => {
                return Err(AcmeError::bad_csr(format!(
                    "the CSR names a {} ({}), which the order does not",
                    other.kind(),
                    other.value()
                )));
            }
        };
    }
    let ordered: BTreeSet<(u8, String)> =
        order.identifiers.iter().map(|i| (i.kind as u8, i.value.clone())).collect();
    if named != ordered {
        return Err(AcmeError::bad_csr(
            "the CSR's subjectAltNames must be exactly the order's identifiers",
        ));
    }
    if let Some(cn) = csr.common_name() {
        let cn = cn.to_ascii_lowercase();
        if !ordered.iter().any(|(_, v)| *v == cn) {
            return Err(AcmeError::bad_csr(format!(
                "the CSR's common name `{cn}` is not one of the order's identifiers"
            )));
        }
    }
    Ok(())
}
