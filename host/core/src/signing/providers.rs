//! CSC provider configurations: what `/csc/v1|v2/info` says about the service (name, region,
//! logo, language, authentication types, description). One is the default; without any, `info`
//! answers with built-in values.

use crate::ErrorCode;
use crate::audit::AuditAction;
use std::sync::Arc;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use uuid::Uuid;

use crate::access::authz::{Capability, perm};
use crate::audit::NewAuditEvent;
use crate::error::{CoreError, Result};
use crate::page::lock_unchanged;
use crate::ports::Clock;
use crate::records::{Collection, Filter, Record, Records, conflict_as, select};
use crate::signing::credential::{CscAuthType, CscProvider};

/// Largest uploaded logo, bytes (decoded).
pub const MAX_LOGO: usize = 256 * 1024;
/// Most providers.
pub const MAX_PROVIDERS: usize = 100;

/// Fields of a provider; on update, absent ones stay.
#[derive(Debug, Clone, Default)]
pub struct ProviderInput {
    /// Name.
    pub name: Option<String>,
    /// ISO 3166-1 alpha-2 region.
    pub region: Option<String>,
    /// https URL or `data:image/png|jpeg;base64,…`.
    pub logo: Option<String>,
    /// RFC 5646 language tag.
    pub language: Option<String>,
    /// Authentication types.
    pub auth_types: Option<Vec<CscAuthType>>,
    /// Description.
    pub description: Option<String>,
    /// Make it the one `info` answers from.
    pub default: Option<bool>,
}

fn check(p: &CscProvider) -> Result<()> {
    let bad = |code, detail: &str| Err(CoreError::invalid(code, detail.to_owned()));
    let name_len = p.name.trim().chars().count();
    if name_len == 0 || name_len > 255 || p.name.chars().any(char::is_control) {
        return bad(ErrorCode::InvalidName, "a name is 1 to 255 characters");
    }
    if p.region.len() != 2 || !p.region.bytes().all(|b| b.is_ascii_uppercase()) {
        return bad(ErrorCode::InvalidRegion, "region is an ISO 3166-1 alpha-2 code such as `SI`");
    }
    let lang_ok = {
        let mut parts = p.language.split('-');
        let primary = parts.next().unwrap_or_default();
        (2..=3).contains(&primary.len())
            && primary.bytes().all(|b| b.is_ascii_alphabetic())
            && parts
                .all(|s| (1..=8).contains(&s.len()) && s.bytes().all(|b| b.is_ascii_alphanumeric()))
    };
    if !lang_ok {
        return bad(ErrorCode::InvalidLanguage, "language is an RFC 5646 tag such as `en-US`");
    }
    if p.auth_types.is_empty() {
        return bad(ErrorCode::InvalidAuthTypes, "name at least one authentication type");
    }
    if p.description.chars().count() > 255 || p.description.chars().any(char::is_control) {
        return bad(ErrorCode::InvalidDescription, "a description is at most 255 characters");
    }
    check_logo(&p.logo)
}

fn check_logo(logo: &str) -> Result<()> {
    if logo.is_empty() {
        return Ok(());
    }
    if let Some(rest) = logo.strip_prefix("data:") {
        let (mime, data) = rest.split_once(";base64,").unwrap_or(("", ""));
        if !matches!(mime, "image/png" | "image/jpeg") {
            return Err(CoreError::invalid(
                ErrorCode::InvalidLogo,
                "an uploaded logo is data:image/png;base64,… or data:image/jpeg;base64,…",
            ));
        }
        let bytes = STANDARD.decode(data).map_err(|_| {
            CoreError::invalid(ErrorCode::InvalidLogo, "the logo is not valid base64")
        })?;
        let png = bytes.starts_with(b"\x89PNG\r\n\x1a\n");
        let jpeg = bytes.starts_with(&[0xff, 0xd8, 0xff]);
        if bytes.len() > MAX_LOGO
            || (mime == "image/png" && !png)
            || (mime == "image/jpeg" && !jpeg)
        {
            return Err(CoreError::invalid(
                ErrorCode::InvalidLogo,
                format!("the logo must be a PNG or JPEG image of at most {MAX_LOGO} bytes"),
            ));
        }
        return Ok(());
    }
    let url_ok = (logo.starts_with("https://") || logo.starts_with("http://"))
        && logo.len() <= 2048
        && !logo.chars().any(|c| c.is_whitespace() || c.is_control());
    if !url_ok {
        return Err(CoreError::invalid(
            ErrorCode::InvalidLogo,
            "logo is an http(s) URL (at most 2048 characters) or an uploaded data: URI",
        ));
    }
    Ok(())
}

/// Provider operations.
pub struct CscProviderService {
    store: Arc<dyn Records>,
    clock: Arc<dyn Clock>,
}

impl std::fmt::Debug for CscProviderService {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CscProviderService").finish_non_exhaustive()
    }
}

impl CscProviderService {
    /// Wires the service.
    pub fn new(store: Arc<dyn Records>, clock: Arc<dyn Clock>) -> Self {
        Self { store, clock }
    }

    async fn all_providers(&self) -> Result<Vec<CscProvider>> {
        select(self.store.as_ref(), Filter::Providers).await
    }

    /// Every provider (there are at most [`MAX_PROVIDERS`]); no permission needed beyond
    /// reading, because `info` publishes the default one anyway.
    pub async fn list(&self) -> Result<Vec<CscProvider>> {
        self.all_providers().await
    }

    /// The provider `info` answers from: the default one, else the oldest.
    pub async fn current(&self) -> Result<Option<CscProvider>> {
        let all = self.all_providers().await?;
        Ok(all.iter().find(|p| p.default).cloned().or_else(|| all.into_iter().next()))
    }

    /// One provider, or 404.
    pub async fn get(&self, id: Uuid) -> Result<CscProvider> {
        let body = self.store.record(Collection::Providers, &id.to_string()).await?;
        body.map(|b| CscProvider::from_body(&b))
            .transpose()?
            .ok_or_else(|| CoreError::not_found("csc_provider", id.to_string()))
    }

    /// Writes `p` (new or changed), clearing `default` on the others when it is set.
    async fn save(
        &self,
        cap: &Capability<perm::CscProvidersWrite>,
        before: Option<&CscProvider>,
        p: &CscProvider,
        action: AuditAction,
    ) -> Result<()> {
        let now = self.clock.now();
        let mut tx = self.store.begin_records().await?;
        let mut others = Vec::new();
        if p.default {
            for mut o in
                self.all_providers().await?.into_iter().filter(|o| o.id != p.id && o.default)
            {
                o.default = false;
                o.updated_at = now;
                others.push(o);
            }
        }
        match before {
            Some(b) => {
                lock_unchanged(tx.as_mut(), b, "csc_provider").await?;
                tx.update_record(p.row()).await
            }
            None => tx.insert_record(p.row()).await,
        }
        .map_err(conflict_as(
            ErrorCode::NameTaken,
            format!("a CSC provider `{}` exists", p.name),
        ))?;
        for o in &others {
            tx.update_record(o.row()).await?;
        }
        let ev = NewAuditEvent::new(cap.principal(), action, "csc_provider", p.id).details(
            serde_json::json!({
                "name": p.name, "region": p.region, "language": p.language,
                "auth_types": p.auth_types, "default": p.default,
                "logo": if p.logo.starts_with("data:") { "uploaded" } else { p.logo.as_str() },
            }),
        );
        tx.commit(vec![ev], now).await?;
        Ok(())
    }

    /// Creates a provider.
    pub async fn create(
        &self,
        cap: &Capability<perm::CscProvidersWrite>,
        i: ProviderInput,
    ) -> Result<CscProvider> {
        if self.all_providers().await?.len() >= MAX_PROVIDERS {
            return Err(CoreError::conflict(
                ErrorCode::TooManyProviders,
                format!("at most {MAX_PROVIDERS} CSC providers"),
            ));
        }
        let now = self.clock.now();
        let p = CscProvider {
            id: Uuid::now_v7(),
            name: i.name.unwrap_or_default().trim().to_owned(),
            region: i.region.unwrap_or_default(),
            logo: i.logo.unwrap_or_default(),
            language: i.language.unwrap_or_else(|| "en".into()),
            auth_types: i.auth_types.unwrap_or_else(|| vec![CscAuthType::Basic]),
            description: i.description.unwrap_or_default(),
            default: i.default.unwrap_or(false),
            created_at: now,
            updated_at: now,
        };
        check(&p)?;
        self.save(cap, None, &p, AuditAction::CscProviderCreate).await?;
        Ok(p)
    }

    /// Changes a provider.
    pub async fn update(
        &self,
        cap: &Capability<perm::CscProvidersWrite>,
        id: Uuid,
        i: ProviderInput,
    ) -> Result<CscProvider> {
        let before = self.get(id).await?;
        let mut p = before.clone();
        if let Some(v) = i.name {
            p.name = v.trim().to_owned();
        }
        if let Some(v) = i.region {
            p.region = v;
        }
        if let Some(v) = i.logo {
            p.logo = v;
        }
        if let Some(v) = i.language {
            p.language = v;
        }
        if let Some(v) = i.auth_types {
            p.auth_types = v;
        }
        if let Some(v) = i.description {
            p.description = v;
        }
        if let Some(v) = i.default {
            p.default = v;
        }
        if p == before {
            return Ok(before);
        }
        check(&p)?;
        p.updated_at = self.clock.now();
        self.save(cap, Some(&before), &p, AuditAction::CscProviderUpdate).await?;
        Ok(p)
    }

    /// Deletes a provider.
    pub async fn delete(&self, cap: &Capability<perm::CscProvidersWrite>, id: Uuid) -> Result<()> {
        let before = self.get(id).await?;
        let now = self.clock.now();
        let mut tx = self.store.begin_records().await?;
        lock_unchanged(tx.as_mut(), &before, "csc_provider").await?;
        tx.delete_record(Collection::Providers, &id.to_string()).await?;
        let ev =
            NewAuditEvent::new(cap.principal(), AuditAction::CscProviderDelete, "csc_provider", id)
                .details(serde_json::json!({"name": before.name}));
        tx.commit(vec![ev], now).await?;
        Ok(())
    }
}
