//! Exposure: which modules and endpoints are served, the authentication each requires, and the
//! client address ranges allowed to reach them. A disabled endpoint answers 404 and is left out
//! of `/openapi.json`.

use std::collections::{BTreeMap, HashMap};
use std::net::IpAddr;
use std::sync::{Arc, RwLock};

use axum::http::Method;
use ipnet::IpNet;
use sigil_core::access::api_key::{RateLimit, parse_whitelist, whitelist_allows};

/// How callers of an endpoint authenticate.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize, utoipa::ToSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum AuthMode {
    /// No authentication (health, docs, metrics, CRL, OCSP).
    None,
    /// An API key (`Authorization: Bearer` or `X-API-Key`).
    ApiKey,
    /// A client certificate (mutual TLS) mapped to an API key.
    Mtls,
    /// Either of the two.
    Either,
}

/// Settings for a module or a single endpoint; unset fields inherit.
#[derive(
    Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize, utoipa::ToSchema,
)]
#[serde(deny_unknown_fields)]
pub struct Rule {
    /// Serve it at all.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub enabled: Option<bool>,
    /// Required authentication.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auth: Option<AuthMode>,
    /// Allowed client addresses and CIDR ranges (empty: any).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub allowed_ips: Option<Vec<String>>,
    /// Throttle: requests per window for each caller (API key, operator, or client address when
    /// unauthenticated), on top of each key's own limit.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rate_limit: Option<RateLimit>,
}

/// The `[exposure]` section.
#[derive(
    Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize, utoipa::ToSchema,
)]
#[serde(deny_unknown_fields)]
pub struct ExposureConfig {
    /// Address ranges allowed for every endpoint (empty: any).
    #[serde(default)]
    pub allowed_ips: Vec<String>,
    /// Per module (`api-keys`, `audit`, `exposure`, `permissions`, `health`, `metrics`, `docs`).
    #[serde(default)]
    pub modules: BTreeMap<String, Rule>,
    /// Per endpoint, keyed `"METHOD /path/{param}"` as listed by `GET /api/v1/exposure`.
    #[serde(default)]
    pub endpoints: BTreeMap<String, Rule>,
}

/// What applies to one endpoint after inheritance.
#[derive(Debug, Clone, serde::Serialize, utoipa::ToSchema)]
pub struct Resolved {
    /// `METHOD /path`.
    pub endpoint: String,
    /// Module it belongs to.
    pub module: String,
    /// Served or not.
    pub enabled: bool,
    /// Required authentication.
    pub auth: AuthMode,
    /// Allowed ranges for this endpoint (the global list applies as well).
    pub allowed_ips: Vec<String>,
    /// Per-caller throttle.
    pub rate_limit: Option<RateLimit>,
    #[serde(skip)]
    nets: Vec<IpNet>,
}

/// The module an API path belongs to.
pub fn module_of(path: &str) -> String {
    let mut segs = path.trim_start_matches('/').split('/');
    match (segs.next(), segs.next(), segs.next()) {
        (Some("api"), Some("v1"), Some(m)) => m.to_owned(),
        (Some("openapi.json"), ..) | (Some("docs"), ..) => "docs".to_owned(),
        (Some(first), ..) => first.to_owned(),
        _ => String::new(),
    }
}

fn default_rule(module: &str, path: &str) -> (AuthMode, Vec<&'static str>) {
    match module {
        // CSC authenticates its own way: HTTP Basic at auth/login, then its bearer tokens.
        "health" | "docs" | "crl" | "ocsp" | "ca" | "csc" => (AuthMode::None, vec![]),
        // ACME requests are signed by their account key (its administration under
        // /api/v1/acme takes API keys like the rest of the API).
        "acme" if !path.starts_with("/api/") => (AuthMode::None, vec![]),
        // Metrics reveal traffic shape; by default only local scrapers see them.
        "metrics" => (AuthMode::None, vec!["127.0.0.0/8", "::1"]),
        _ => (AuthMode::ApiKey, vec![]),
    }
}

/// Errors in an exposure configuration.
#[derive(Debug, thiserror::Error)]
pub enum ExposureError {
    /// An endpoint key that names nothing we serve.
    #[error("exposure.endpoints: unknown endpoint `{0}` (GET /api/v1/exposure lists them)")]
    UnknownEndpoint(String),
    /// A module that does not exist.
    #[error("exposure.modules: unknown module `{0}`")]
    UnknownModule(String),
    /// A bad address range.
    #[error("exposure: {0}")]
    Invalid(String),
    /// Authentication cannot be switched off for the management API.
    #[error("exposure: `{0}` must require authentication")]
    Unauthenticated(String),
    /// The change would disable the endpoints that change exposure.
    #[error("exposure: `{0}` must stay enabled, or exposure could not be changed back")]
    LockOut(String),
    /// A stored configuration that no longer parses.
    #[error("exposure: stored configuration is invalid: {0}")]
    Stored(String),
}

/// Where the configuration in force comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Source {
    /// The `[exposure]` section of the configuration file.
    File,
    /// `PUT /api/v1/exposure` (stored in the database, shared by every node).
    Api,
}

const SELF_ENDPOINTS: [&str; 3] =
    ["GET /api/v1/exposure", "PUT /api/v1/exposure", "DELETE /api/v1/exposure"];

/// The live exposure table; replaced atomically when the configuration changes.
#[derive(Debug)]
pub struct Exposure {
    endpoints: Vec<(Method, String)>,
    /// The configuration file's `[exposure]` (replaced by [`Exposure::reload_file`]).
    file: RwLock<ExposureConfig>,
    current: RwLock<Arc<Table>>,
    /// Held from reading the stored override to installing it. Without it the periodic refresh
    /// can read the old value, lose the race to an API write that installs the new one, and
    /// then install the old one over it until its next tick.
    syncing: tokio::sync::Mutex<()>,
}

#[derive(Debug)]
struct Table {
    config: ExposureConfig,
    source: Source,
    raw: Option<String>,
    global: Vec<IpNet>,
    // Shared: the auth layer looks one up per request.
    by_endpoint: HashMap<String, Arc<Resolved>>,
}

fn key(method: &Method, path: &str) -> String {
    format!("{method} {path}")
}

impl Exposure {
    /// Builds the table for the served `endpoints` from `config`.
    pub fn new(
        endpoints: Vec<(Method, String)>,
        config: ExposureConfig,
    ) -> Result<Self, ExposureError> {
        let table = Self::compile(&endpoints, config.clone(), Source::File, None)?;
        Ok(Self {
            endpoints,
            file: RwLock::new(config),
            current: RwLock::new(Arc::new(table)),
            syncing: tokio::sync::Mutex::new(()),
        })
    }

    fn compile(
        endpoints: &[(Method, String)],
        config: ExposureConfig,
        source: Source,
        raw: Option<String>,
    ) -> Result<Table, ExposureError> {
        let nets = |list: &[String]| {
            parse_whitelist(list).map_err(|e| ExposureError::Invalid(e.to_string()))
        };
        let global = nets(&config.allowed_ips)?;
        let modules: std::collections::BTreeSet<String> =
            endpoints.iter().map(|(_, p)| module_of(p)).collect();
        for m in config.modules.keys() {
            if !modules.contains(m) {
                return Err(ExposureError::UnknownModule(m.clone()));
            }
        }
        let mut by_endpoint = HashMap::new();
        for (method, path) in endpoints {
            let k = key(method, path);
            let module = module_of(path);
            let (auth, ips) = default_rule(&module, path);
            let mut r = Resolved {
                endpoint: k.clone(),
                module: module.clone(),
                enabled: true,
                auth,
                allowed_ips: ips.into_iter().map(str::to_owned).collect(),
                rate_limit: None,
                nets: vec![],
            };
            for rule in
                [config.modules.get(&module), config.endpoints.get(&k)].into_iter().flatten()
            {
                if let Some(e) = rule.enabled {
                    r.enabled = e;
                }
                if let Some(a) = rule.auth {
                    r.auth = a;
                }
                if let Some(ips) = &rule.allowed_ips {
                    r.allowed_ips = ips.clone();
                }
                if let Some(l) = rule.rate_limit {
                    r.rate_limit =
                        Some(l.validate().map_err(|e| ExposureError::Invalid(e.to_string()))?);
                }
            }
            if r.auth == AuthMode::None && path.starts_with("/api/") {
                return Err(ExposureError::Unauthenticated(k));
            }
            r.nets = nets(&r.allowed_ips)?;
            by_endpoint.insert(k, Arc::new(r));
        }
        for k in config.endpoints.keys() {
            if !by_endpoint.contains_key(k) {
                return Err(ExposureError::UnknownEndpoint(k.clone()));
            }
        }
        Ok(Table { config, source, raw, global, by_endpoint })
    }

    /// Checks a configuration submitted through the API without applying it: it must compile
    /// and keep the exposure endpoints themselves reachable.
    pub fn validate_update(&self, config: &ExposureConfig) -> Result<(), ExposureError> {
        let t = Self::compile(&self.endpoints, config.clone(), Source::Api, None)?;
        for e in SELF_ENDPOINTS {
            if t.by_endpoint.get(e).is_some_and(|r| !r.enabled) {
                return Err(ExposureError::LockOut(e.to_owned()));
            }
        }
        Ok(())
    }

    /// Hold this while reading the stored override and passing it to [`Exposure::sync`], so that
    /// two readers cannot install their values in the opposite order of their reads.
    pub async fn sync_guard(&self) -> tokio::sync::MutexGuard<'_, ()> {
        self.syncing.lock().await
    }

    /// Makes the stored override (`None`: the file) current if it differs from what is in force.
    /// Returns whether anything changed.
    pub fn sync(&self, raw: Option<&str>) -> Result<bool, ExposureError> {
        if self.table().is_some_and(|t| t.raw.as_deref() == raw) {
            return Ok(false);
        }
        let table = match raw {
            None => Self::compile(&self.endpoints, self.file_config(), Source::File, None)?,
            Some(r) => {
                let cfg: ExposureConfig =
                    serde_json::from_str(r).map_err(|e| ExposureError::Stored(e.to_string()))?;
                Self::compile(&self.endpoints, cfg, Source::Api, Some(r.to_owned()))?
            }
        };
        if let Ok(mut cur) = self.current.write() {
            *cur = Arc::new(table);
        }
        Ok(true)
    }

    fn file_config(&self) -> ExposureConfig {
        self.file.read().map(|f| f.clone()).unwrap_or_default()
    }

    /// The file's `[exposure]` in force before a reload to `config`, when `config` differs
    /// from it (`None`: nothing to do); an error when `config` does not compile.
    pub fn file_change(
        &self,
        config: &ExposureConfig,
    ) -> Result<Option<ExposureConfig>, ExposureError> {
        Self::compile(&self.endpoints, config.clone(), Source::File, None)?;
        let before = self.file_config();
        Ok((before != *config).then_some(before))
    }

    /// Replaces the configuration file's `[exposure]` (a reload: SIGHUP or a file change) and
    /// puts it in force unless an override stored through the API is. A configuration that does
    /// not compile changes nothing. Hold [`Exposure::sync_guard`] around it.
    pub fn reload_file(&self, config: ExposureConfig) -> Result<bool, ExposureError> {
        let table = Self::compile(&self.endpoints, config.clone(), Source::File, None)?;
        if let Ok(mut f) = self.file.write() {
            *f = config;
        }
        if self.source() != Source::File {
            return Ok(false);
        }
        if let Ok(mut cur) = self.current.write() {
            *cur = Arc::new(table);
        }
        Ok(true)
    }

    /// Where the configuration in force comes from.
    pub fn source(&self) -> Source {
        self.table().map(|t| t.source).unwrap_or(Source::File)
    }

    fn table(&self) -> Option<Arc<Table>> {
        self.current.read().ok().map(|t| Arc::clone(&t))
    }

    /// The current configuration.
    pub fn config(&self) -> ExposureConfig {
        self.table().map(|t| t.config.clone()).unwrap_or_default()
    }

    /// What applies to `method path` (a route template), if it is served.
    pub fn resolve(&self, method: &Method, path: &str) -> Option<Arc<Resolved>> {
        let t = self.table()?;
        t.by_endpoint.get(&key(method, path)).cloned()
    }

    /// Whether `ip` may reach an endpoint with rule `r`.
    pub fn ip_allowed(&self, r: &Resolved, ip: IpAddr) -> bool {
        let global_ok = self.table().is_none_or(|t| whitelist_allows(&t.global, ip));
        global_ok && whitelist_allows(&r.nets, ip)
    }

    /// Every endpoint with its resolved rule, sorted.
    pub fn list(&self) -> Vec<Resolved> {
        let mut v: Vec<Resolved> = self
            .table()
            .map(|t| t.by_endpoint.values().map(|r| (**r).clone()).collect())
            .unwrap_or_default();
        v.sort_by(|a, b| a.endpoint.cmp(&b.endpoint));
        v
    }

    /// Whether `method path` is enabled (for filtering the OpenAPI document).
    pub fn enabled(&self, method: &Method, path: &str) -> bool {
        self.resolve(method, path).is_some_and(|r| r.enabled)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn eps() -> Vec<(Method, String)> {
        vec![
            (Method::GET, "/api/v1/api-keys".into()),
            (Method::DELETE, "/api/v1/api-keys/{id}".into()),
            (Method::GET, "/health/live".into()),
        ]
    }

    #[test]
    fn endpoint_rules_override_module_rules() {
        let mut c = ExposureConfig::default();
        c.modules.insert("api-keys".into(), Rule { enabled: Some(false), ..Default::default() });
        c.endpoints.insert(
            "GET /api/v1/api-keys".into(),
            Rule { enabled: Some(true), auth: Some(AuthMode::Either), ..Default::default() },
        );
        let x = Exposure::new(eps(), c).unwrap();
        assert!(x.enabled(&Method::GET, "/api/v1/api-keys"));
        assert!(!x.enabled(&Method::DELETE, "/api/v1/api-keys/{id}"));
        assert_eq!(x.resolve(&Method::GET, "/api/v1/api-keys").unwrap().auth, AuthMode::Either);
        assert_eq!(x.resolve(&Method::GET, "/health/live").unwrap().auth, AuthMode::None);
    }

    #[test]
    fn unknown_names_and_open_management_endpoints_are_rejected() {
        let mut c = ExposureConfig::default();
        c.endpoints.insert("GET /nope".into(), Rule::default());
        assert!(matches!(Exposure::new(eps(), c), Err(ExposureError::UnknownEndpoint(_))));
        let mut c = ExposureConfig::default();
        c.modules.insert("nope".into(), Rule::default());
        assert!(matches!(Exposure::new(eps(), c), Err(ExposureError::UnknownModule(_))));
        let mut c = ExposureConfig::default();
        c.modules
            .insert("api-keys".into(), Rule { auth: Some(AuthMode::None), ..Default::default() });
        assert!(matches!(Exposure::new(eps(), c), Err(ExposureError::Unauthenticated(_))));
    }

    #[test]
    fn api_overrides_replace_the_file_and_cannot_lock_exposure_out() {
        let mut eps = eps();
        eps.push((Method::PUT, "/api/v1/exposure".into()));
        let x = Exposure::new(eps, ExposureConfig::default()).unwrap();
        let mut c = ExposureConfig::default();
        c.endpoints.insert(
            "GET /api/v1/api-keys".into(),
            Rule { enabled: Some(false), ..Default::default() },
        );
        x.validate_update(&c).unwrap();
        assert!(x.sync(Some(&serde_json::to_string(&c).unwrap())).unwrap());
        assert_eq!(x.source(), Source::Api);
        assert!(!x.enabled(&Method::GET, "/api/v1/api-keys"));
        assert!(x.sync(None).unwrap());
        assert!(x.enabled(&Method::GET, "/api/v1/api-keys"));
        let mut c = ExposureConfig::default();
        c.modules.insert("exposure".into(), Rule { enabled: Some(false), ..Default::default() });
        assert!(matches!(x.validate_update(&c), Err(ExposureError::LockOut(_))));
    }

    #[test]
    fn ip_ranges_apply_globally_and_per_endpoint() {
        let mut c =
            ExposureConfig { allowed_ips: vec!["127.0.0.0/8".into()], ..Default::default() };
        c.endpoints.insert(
            "GET /api/v1/api-keys".into(),
            Rule { allowed_ips: Some(vec!["127.0.0.2".into()]), ..Default::default() },
        );
        let x = Exposure::new(eps(), c).unwrap();
        let r = x.resolve(&Method::GET, "/api/v1/api-keys").unwrap();
        assert!(x.ip_allowed(&r, "127.0.0.2".parse().unwrap()));
        assert!(!x.ip_allowed(&r, "127.0.0.1".parse().unwrap()));
        let h = x.resolve(&Method::GET, "/health/live").unwrap();
        assert!(!x.ip_allowed(&h, "10.0.0.1".parse().unwrap()));
    }
}
