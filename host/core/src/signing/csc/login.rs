//! `auth/login`: throttling per address and username, the attempt reserved against the lockout
//! budget before the password is hashed, and the settlement of wrong passwords.

use super::*;
use crate::audit::AuditAction;
use crate::records::Collection;

/// The address a login is counted under: an IPv4 address, or the /64 network of an IPv6 one
/// (one end site usually holds a whole /64, so single addresses would cost it nothing).
fn address_group(ip: std::net::IpAddr) -> String {
    match ip {
        std::net::IpAddr::V4(v4) => v4.to_string(),
        std::net::IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => v4.to_string(),
            None => {
                let s = v6.segments();
                format!("{:x}:{:x}:{:x}:{:x}::/64", s[0], s[1], s[2], s[3])
            }
        },
    }
}

/// How long a reserved login attempt may take to settle before it counts as a wrong password.
const ATTEMPT_LEASE: Duration = Duration::seconds(30);

impl CscService {
    /// `auth/login` with a username and password; `remember_me` adds a refresh token.
    ///
    /// Attempts are throttled per client address and per username (across nodes) before any
    /// work. `csc.login_retries` consecutive wrong passwords lock the signer out for
    /// `csc.login_lock_secs`; each attempt is reserved against that budget before its password
    /// is hashed, so a concurrent burst gets no more guesses than the budget. Every refusal
    /// looks and takes the same (one Argon2id verification), whether the username is unknown,
    /// disabled, locked out or the password wrong.
    pub async fn login(
        &self,
        username: &str,
        password: Zeroizing<String>,
        remember_me: bool,
        context: RequestContext,
    ) -> Result<Login> {
        self.throttle_login(username, &context).await?;
        let signer = self.signers.signer_by_name(username).await?;
        let secrets = self.signers.secrets();
        // The hashing slot is taken before the attempt is reserved, so a request shed for load
        // spends none of the signer's budget.
        let slot = secrets.slot().await?;
        let s = match signer {
            Some(s) if s.enabled => s,
            other => {
                secrets.verify_nothing(slot, password).await?;
                let (id, outcome) = match other {
                    Some(s) => (s.id.to_string(), "disabled"),
                    // An unknown name is audited as given (it may be a typo), never the password.
                    None => (username.chars().take(64).collect(), "authentication_error"),
                };
                let ev = NewAuditEvent::new(
                    &Self::system(context.clone()),
                    AuditAction::CscLogin,
                    "signer",
                    id,
                )
                .details(serde_json::json!({"outcome": outcome}))
                .failed();
                self.refused(ev, &context, outcome).await?;
                return Err(Self::login_refused());
            }
        };
        if !self.reserve_attempt(s.id, &context).await? {
            secrets.verify_nothing(slot, password).await?;
            let ev = NewAuditEvent::new(
                &Self::system(context.clone()),
                AuditAction::CscLogin,
                "signer",
                s.id,
            )
            .details(serde_json::json!({"outcome": "locked"}))
            .failed();
            self.refused(ev, &context, "locked").await?;
            return Err(Self::login_refused());
        }
        if secrets.verify_in(slot, password, s.password_hash.clone()).await? {
            self.issue_tokens(&s, remember_me, None, context).await
        } else {
            self.count_wrong_password(s.id, context).await?;
            Err(Self::login_refused())
        }
    }

    /// Counts the attempt in this minute's windows for its address and its username.
    async fn throttle_login(&self, username: &str, context: &RequestContext) -> Result<()> {
        let now = self.clock.now();
        let per_minute = |requests| RateLimit { requests, per: RateUnit::Minute };
        let by_address = self.settings.login_per_address_per_minute;
        if let (Some(ip), true) = (context.client_ip, by_address > 0) {
            let bucket = format!("csc-login-address:{}", address_group(ip));
            throttle(self.store.as_ref(), &bucket, per_minute(by_address), now).await?;
        }
        let by_name = self.settings.login_per_username_per_minute;
        if by_name > 0 {
            let name: String = username.trim().to_lowercase().chars().take(64).collect();
            let bucket = format!("csc-login-username:{name}");
            throttle(self.store.as_ref(), &bucket, per_minute(by_name), now).await?;
        }
        Ok(())
    }

    /// Takes one attempt from signer `id`'s budget before its password is hashed: false when
    /// the signer is locked out or every remaining attempt is already being tried. A right
    /// password gives the attempt back ([`Self::issue_tokens`]); a wrong one keeps it and may
    /// lock the signer out ([`Self::count_wrong_password`]).
    async fn reserve_attempt(&self, id: Uuid, context: &RequestContext) -> Result<bool> {
        let now = self.clock.now();
        let mut tx = self.store.begin().await?;
        let body = tx.record_for_update(Collection::Signers, &id.to_string()).await?;
        let Some(mut cur) = body.map(|b| Signer::from_body(&b)).transpose()? else {
            return Ok(false);
        };
        let retries = self.settings.login_retries;
        if cur.login_locked(now) {
            return Ok(false);
        }
        if retries > 0 && cur.failed_logins >= retries {
            // Every attempt is taken. Attempts that never settled (the client went away, the
            // node stopped) count as wrong once their lease is over: the signer is then locked
            // out for the usual time, never indefinitely.
            if now - cur.updated_at > ATTEMPT_LEASE {
                cur.failed_logins = 0;
                cur.locked_until = Some(now + Duration::seconds(self.settings.login_lock_secs));
                cur.updated_at = now;
                tx.end_csc_sessions(id).await?;
                tx.update_record(cur.row()).await?;
                let ev = NewAuditEvent::new(
                    &Self::system(context.clone()),
                    AuditAction::CscLogin,
                    "signer",
                    id,
                )
                .details(serde_json::json!({
                    "outcome": "locked_out",
                    "why": "unsettled_attempts",
                    "locked_until": cur.locked_until.and_then(|t| t.format(&Rfc3339).ok()),
                }))
                .failed();
                tx.commit(vec![ev], now).await?;
                self.cache.forget_signer(id);
            }
            return Ok(false);
        }
        if retries == 0 {
            return Ok(true);
        }
        cur.failed_logins = cur.failed_logins.saturating_add(1);
        cur.updated_at = now;
        tx.update_record(cur.row()).await?;
        // The counter is state, so the reservation is audited too; the attempt's outcome is
        // audited as `csc.login` when it is settled (wrong password or login).
        let ev = NewAuditEvent::new(
            &Self::system(context.clone()),
            AuditAction::CscLoginAttempt,
            "signer",
            id,
        )
        .details(serde_json::json!({"failed_logins": cur.failed_logins}));
        tx.commit(vec![ev], now).await?;
        Ok(true)
    }

    /// Settles a wrong password against signer `id` (the attempt was counted when it was
    /// reserved), locking it out once `csc.login_retries` are spent.
    async fn count_wrong_password(&self, id: Uuid, context: RequestContext) -> Result<()> {
        let now = self.clock.now();
        let mut tx = self.store.begin().await?;
        let body = tx.record_for_update(Collection::Signers, &id.to_string()).await?;
        let Some(mut cur) = body.map(|b| Signer::from_body(&b)).transpose()? else {
            return Err(Self::login_refused());
        };
        let retries = self.settings.login_retries;
        let outcome = if cur.login_locked(now) {
            // Locked by a concurrent attempt since this one was reserved: nothing more to count.
            "authentication_error"
        } else if retries > 0 && cur.failed_logins >= retries {
            cur.failed_logins = 0;
            cur.locked_until = Some(now + Duration::seconds(self.settings.login_lock_secs));
            // A lockout ends the signer's tokens and SADs with it (someone is guessing).
            tx.end_csc_sessions(id).await?;
            cur.updated_at = now;
            tx.update_record(cur.row()).await?;
            "locked_out"
        } else {
            if retries == 0 {
                // Nothing was reserved; the count is still shown to administrators.
                cur.failed_logins = cur.failed_logins.saturating_add(1);
                cur.updated_at = now;
                tx.update_record(cur.row()).await?;
            }
            "authentication_error"
        };
        let ev = NewAuditEvent::new(&Self::system(context), AuditAction::CscLogin, "signer", id)
            .details(serde_json::json!({
                "outcome": outcome,
                "locked_until": cur.locked_until.and_then(|t| t.format(&Rfc3339).ok()),
            }))
            .failed();
        tx.commit(vec![ev], now).await?;
        if outcome == "locked_out" {
            self.cache.forget_signer(id);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::address_group;

    #[test]
    fn logins_are_counted_per_ipv4_address_and_per_ipv6_64() {
        let g = |s: &str| address_group(s.parse().unwrap());
        assert_eq!(g("192.0.2.7"), "192.0.2.7");
        assert_eq!(g("::ffff:192.0.2.7"), "192.0.2.7");
        assert_eq!(g("2001:db8:1:2::1"), g("2001:db8:1:2:ffff:ffff:ffff:fffe"));
        assert_eq!(g("2001:db8:1:2::1"), "2001:db8:1:2::/64");
        assert_ne!(g("2001:db8:1:2::1"), g("2001:db8:1:3::1"));
    }
}
