//! Configuration: built-in defaults, then the TOML file, then `SIGIL__SECTION__KEY` environment
//! variables (a `SIGIL__SECTION__KEY_FILE` variable reads the value from a file, for secrets).
//! Unknown keys are errors that name the key. `config/sigil.toml` documents every key.

use std::path::{Path, PathBuf};

use figment::Figment;
use figment::providers::{Format, Toml};
use sigil_api::exposure::ExposureConfig;

/// Errors loading the configuration.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// Parsing or validation failed; the message names the key.
    #[error("configuration: {0}")]
    Invalid(String),
    /// A `*_FILE` variable names a file that cannot be read.
    #[error("configuration: {var}: cannot read {path}: {source}")]
    SecretFile {
        /// The variable.
        var: String,
        /// The file.
        path: String,
        /// Cause.
        source: std::io::Error,
    },
}

fn d_listen() -> String {
    "127.0.0.1:8443".into()
}
fn d_data_dir() -> PathBuf {
    PathBuf::from("./data")
}
fn d_stream_max() -> u64 {
    3600
}
fn d_streams_per_caller() -> usize {
    4
}
fn d_streams_total() -> usize {
    64
}
fn d_body_limit() -> usize {
    1024 * 1024
}
fn d_timeout() -> u64 {
    30
}
fn d_grace() -> u64 {
    30
}
fn d_names() -> Vec<String> {
    vec!["localhost".into(), "127.0.0.1".into(), "::1".into()]
}
fn d_refresh() -> u64 {
    2000
}
fn d_max_conn() -> u32 {
    8
}
fn d_sync() -> String {
    "full".into()
}
fn d_writer_nice() -> i32 {
    -10
}
fn d_acquire() -> u64 {
    30
}
fn d_log_level() -> String {
    "info".into()
}
fn d_log_format() -> String {
    "text".into()
}
fn d_cache_ttl() -> u64 {
    2000
}
fn d_checkpoint() -> u64 {
    60
}
fn d_checkpoint_events() -> u64 {
    25_000
}
fn d_checkpoint_max_age() -> u64 {
    3600
}

/// `[server]`.
#[derive(Debug, Clone, serde::Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct ServerSection {
    /// Address to listen on; port 0 picks a free port.
    #[serde(default = "d_listen")]
    pub listen: String,
    /// Where the database, keys and TLS files live.
    #[serde(default = "d_data_dir")]
    pub data_dir: PathBuf,
    /// Largest accepted request body, bytes.
    #[serde(default = "d_body_limit")]
    pub body_limit_bytes: usize,
    /// Longest a request may run, seconds.
    #[serde(default = "d_timeout")]
    pub request_timeout_secs: u64,
    /// Longest an event stream (`/api/v1/audit/stream`) stays open, seconds; the client then
    /// reconnects with `Last-Event-ID` and is authenticated again.
    #[serde(default = "d_stream_max")]
    pub stream_max_secs: u64,
    /// Open event streams per caller (API key or operator).
    #[serde(default = "d_streams_per_caller")]
    pub streams_per_caller: usize,
    /// Open event streams on this node in total.
    #[serde(default = "d_streams_total")]
    pub streams_total: usize,
    /// How long shutdown waits for in-flight requests, seconds.
    #[serde(default = "d_grace")]
    pub shutdown_grace_secs: u64,
    /// Names and addresses on the generated server certificate.
    #[serde(default = "d_names")]
    pub server_names: Vec<String>,
    /// Serve plain HTTP instead of HTTPS. Development only.
    #[serde(default)]
    pub insecure_plain_http: bool,
    /// How often settings changed through the API on other nodes are re-read, ms.
    #[serde(default = "d_refresh")]
    pub settings_refresh_ms: u64,
    /// Reverse proxies (addresses or CIDRs) whose `X-Forwarded-For` names the client; empty
    /// (the default): the TCP peer is the client and the header is ignored.
    #[serde(default)]
    pub trusted_proxies: Vec<String>,
    /// Keep each async worker thread on a CPU of its own (Linux, `sigil serve`); see
    /// affinity.rs for when it pays.
    #[serde(default)]
    pub pin_workers: bool,
}

/// `[tls]`.
#[derive(Debug, Clone, Default, serde::Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct TlsSection {
    /// Server certificate chain (PEM); default: issued by the local CA.
    #[serde(default)]
    pub cert_file: Option<PathBuf>,
    /// Server key (PEM).
    #[serde(default)]
    pub key_file: Option<PathBuf>,
    /// CA certificates that issue client certificates (PEM); enables mTLS.
    #[serde(default)]
    pub client_ca_file: Option<PathBuf>,
    /// CRLs for client certificates (PEM).
    #[serde(default)]
    pub client_crl_file: Option<PathBuf>,
}

/// `[database]`.
#[derive(Clone, serde::Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct DatabaseSection {
    /// `sqlite://…` or `postgres://…`; default `sqlite://<data_dir>/sigil.db`.
    #[serde(default)]
    pub url: Option<String>,
    /// Connection pool size.
    #[serde(default = "d_max_conn")]
    pub max_connections: u32,
    /// SQLite `synchronous`: `full` or `normal`.
    #[serde(default = "d_sync")]
    pub sqlite_synchronous: String,
    /// SQLite: nice value of the group writer's thread, −20 to 0 (0 leaves it as is).
    #[serde(default = "d_writer_nice")]
    pub sqlite_writer_nice: i32,
    /// SQLite: the CPU (from 0) the group writer's thread is kept on; none by default.
    #[serde(default)]
    pub sqlite_writer_cpu: Option<usize>,
    /// Seconds to wait for a connection.
    #[serde(default = "d_acquire")]
    pub acquire_timeout_secs: u64,
}

impl std::fmt::Debug for DatabaseSection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DatabaseSection")
            .field("url", &self.url.as_deref().map(sigil_store::redact_url))
            .field("max_connections", &self.max_connections)
            .finish_non_exhaustive()
    }
}

/// `[log]`.
#[derive(Debug, Clone, serde::Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct LogSection {
    /// `text` or `json`.
    #[serde(default = "d_log_format")]
    pub format: String,
    /// A tracing filter, for example `info` or `sigil=debug,info`.
    #[serde(default = "d_log_level")]
    pub level: String,
}

/// `[api_keys]`.
#[derive(Debug, Clone, serde::Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct ApiKeysSection {
    /// How long a node caches a key lookup, ms; bounds how long another node may still accept
    /// a key revoked elsewhere. 0 disables the cache.
    #[serde(default = "d_cache_ttl")]
    pub cache_ttl_ms: u64,
}

fn d_access_ttl() -> i64 {
    3600
}
fn d_refresh_ttl() -> i64 {
    30 * 24 * 3600
}
fn d_sad_ttl() -> i64 {
    300
}
fn d_pin_retries() -> u8 {
    3
}
fn d_login_retries() -> u32 {
    5
}
fn d_login_lock() -> i64 {
    900
}

/// `[csc]`: the Cloud Signature Consortium API.
#[derive(Debug, Clone, serde::Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct CscSection {
    /// Lifetime of an access token from `auth/login`, seconds.
    #[serde(default = "d_access_ttl")]
    pub access_token_ttl_secs: i64,
    /// Lifetime of a refresh token (`rememberMe`), seconds.
    #[serde(default = "d_refresh_ttl")]
    pub refresh_token_ttl_secs: i64,
    /// Lifetime of a SAD from `credentials/authorize`, seconds.
    #[serde(default = "d_sad_ttl")]
    pub sad_ttl_secs: i64,
    /// Wrong PINs before a signing credential locks.
    #[serde(default = "d_pin_retries")]
    pub pin_retries: u8,
    /// Consecutive wrong passwords at `auth/login` before a signer is locked out (0: never).
    #[serde(default = "d_login_retries")]
    pub login_retries: u32,
    /// How long that lockout lasts, seconds.
    #[serde(default = "d_login_lock")]
    pub login_lock_secs: i64,
    /// How long a node caches a token or credential lookup, ms; bounds how long another node
    /// may still honour a revoked token, a disabled signer or credential, or a revoked
    /// certificate. 0 disables the cache.
    #[serde(default = "d_cache_ttl")]
    pub cache_ttl_ms: u64,
    /// Password and PIN hashes (Argon2id, about 19 MiB each) that run at once; default: the
    /// number of CPUs.
    #[serde(default)]
    pub argon2_concurrency: Option<usize>,
    /// How many more may wait for a slot (at most 2 s); beyond that a request gets 503 with
    /// `Retry-After`.
    #[serde(default = "d_argon2_queue")]
    pub argon2_queue: usize,
    /// `auth/login` attempts per client address per minute, counted across nodes (0: no limit).
    #[serde(default = "d_login_per_address")]
    pub login_per_address_per_minute: u32,
    /// `auth/login` attempts per username per minute, counted across nodes (0: no limit).
    #[serde(default = "d_login_per_username")]
    pub login_per_username_per_minute: u32,
}

fn d_argon2_queue() -> usize {
    // Waiting costs no Argon2 memory; 64 lets a batch client's threads authorize at once
    // (about a second of work on two cores) while a flood beyond still gets 503.
    64
}
fn d_login_per_address() -> u32 {
    60
}
fn d_login_per_username() -> u32 {
    20
}

impl Default for CscSection {
    fn default() -> Self {
        Self {
            access_token_ttl_secs: d_access_ttl(),
            refresh_token_ttl_secs: d_refresh_ttl(),
            sad_ttl_secs: d_sad_ttl(),
            pin_retries: d_pin_retries(),
            login_retries: d_login_retries(),
            login_lock_secs: d_login_lock(),
            cache_ttl_ms: d_cache_ttl(),
            argon2_concurrency: None,
            argon2_queue: d_argon2_queue(),
            login_per_address_per_minute: d_login_per_address(),
            login_per_username_per_minute: d_login_per_username(),
        }
    }
}

impl CscSection {
    /// The settings, checked.
    pub fn settings(&self) -> anyhow::Result<sigil_core::signing::credential::CscSettings> {
        let positive = |n: i64, k: &str| {
            if n > 0 { Ok(n) } else { Err(anyhow::anyhow!("csc.{k} must be positive")) }
        };
        if self.argon2_concurrency == Some(0) {
            anyhow::bail!("csc.argon2_concurrency must be positive");
        }
        if !(1..=15).contains(&self.pin_retries) {
            anyhow::bail!("csc.pin_retries must be 1 to 15");
        }
        Ok(sigil_core::signing::credential::CscSettings {
            access_ttl_secs: positive(self.access_token_ttl_secs, "access_token_ttl_secs")?,
            refresh_ttl_secs: positive(self.refresh_token_ttl_secs, "refresh_token_ttl_secs")?,
            sad_ttl_secs: positive(self.sad_ttl_secs, "sad_ttl_secs")?,
            pin_retries: self.pin_retries,
            login_retries: self.login_retries,
            login_lock_secs: positive(self.login_lock_secs, "login_lock_secs")?,
            cache_ttl: std::time::Duration::from_millis(self.cache_ttl_ms),
            argon2_concurrency: self.argon2_concurrency.unwrap_or_else(|| {
                std::thread::available_parallelism().map(|n| n.get()).unwrap_or(2)
            }),
            argon2_queue: self.argon2_queue,
            login_per_address_per_minute: self.login_per_address_per_minute,
            login_per_username_per_minute: self.login_per_username_per_minute,
        })
    }
}

fn d_ca_id() -> String {
    "builtin".into()
}
fn d_ca_key() -> String {
    "p256".into()
}
fn d_crl_hours() -> u64 {
    24
}

/// `[pki]`.
#[derive(Debug, Clone, serde::Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct PkiSection {
    /// Key that seals CA private keys in the database (base64, 32 bytes); default
    /// `<data_dir>/master.key`, created if absent. Every node needs the same one.
    #[serde(default)]
    pub master_key_file: Option<PathBuf>,
    /// Id of the built-in CA back end.
    #[serde(default = "d_ca_id")]
    pub ca_id: String,
    /// Key type of the built-in CA created on first start: p256, p384, rsa-2048, rsa-3072, rsa-4096.
    #[serde(default = "d_ca_key")]
    pub ca_key_type: String,
    /// Import the built-in CA from these PEM files on first start instead of creating one.
    #[serde(default)]
    pub import_cert_file: Option<PathBuf>,
    /// The imported CA's PKCS#8 key.
    #[serde(default)]
    pub import_key_file: Option<PathBuf>,
    /// Instead of `import_key_file`: the label of the imported CA's key, already on the
    /// `[pki.pkcs11]` token (it stays there).
    #[serde(default)]
    pub import_key_label: Option<String>,
    /// The chain above the imported CA, root last.
    #[serde(default)]
    pub import_chain_file: Option<PathBuf>,
    /// Public base URL (`https://pki.example.org`); when set, certificates carry a CRL
    /// distribution point `<public_url>/crl/<ca>.crl`.
    #[serde(default)]
    pub public_url: Option<String>,
    /// CRL validity, hours; CRLs are remade after every change and when a quarter is left.
    #[serde(default = "d_crl_hours")]
    pub crl_validity_hours: u64,
    /// How long an OCSP response may be relied on (its nextUpdate), seconds.
    #[serde(default = "d_ocsp_validity")]
    pub ocsp_validity_secs: u64,
    /// Address of the plain-HTTP publication listener (CRLs, OCSP, CA certificates only);
    /// unset: none.
    #[serde(default)]
    pub http_listen: Option<String>,
    /// Names of the root and issuing CA made on first start.
    #[serde(default)]
    pub ca_subject: CaSubject,
    /// How often superseded certificates past their grace are revoked, seconds.
    #[serde(default = "d_supersede_check")]
    pub supersede_check_secs: u64,
    /// Where new signing-credential keys are made and kept unless a request says otherwise:
    /// `sealed` (AES-256-GCM under the master key, in the database) or `pkcs11` (on the token
    /// of `[pki.pkcs11]`).
    #[serde(default = "d_key_store")]
    pub key_store: String,
    /// `[pki.pkcs11]`: the PKCS#11 token; unset, no token is used.
    #[serde(default)]
    pub pkcs11: Option<Pkcs11Section>,
}

fn d_supersede_check() -> u64 {
    60
}
fn d_key_store() -> String {
    "sealed".into()
}

/// `[pki.pkcs11]`: a PKCS#11 token that makes and holds keys (they never leave it).
#[derive(Debug, Clone, serde::Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct Pkcs11Section {
    /// The module, for example `/usr/lib/softhsm/libsofthsm2.so`.
    pub module: PathBuf,
    /// The token's label (slot numbers change; labels do not).
    pub token_label: String,
    /// A file holding the user PIN (never the PIN itself in this file);
    /// `SIGIL__PKI__PKCS11__PIN_FILE` sets it.
    pub pin_file: PathBuf,
}

/// `[pki.ca_subject]`: the names of the CAs made on first start.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CaSubject {
    /// O; empty for none.
    #[serde(default = "d_ca_org")]
    pub organization: String,
    /// C, two capital letters; empty for none.
    #[serde(default)]
    pub country: String,
    /// The root's CN; empty: `Sigil Root CA (<ca_id>)`.
    #[serde(default)]
    pub root_common_name: String,
    /// The issuing CA's CN; empty: `Sigil Issuing CA (<ca_id>)`.
    #[serde(default)]
    pub issuing_common_name: String,
}

fn d_ca_org() -> String {
    "Sigil".into()
}

impl Default for CaSubject {
    fn default() -> Self {
        Self {
            organization: d_ca_org(),
            country: String::new(),
            root_common_name: String::new(),
            issuing_common_name: String::new(),
        }
    }
}

fn d_ocsp_validity() -> u64 {
    3600
}

impl Default for PkiSection {
    fn default() -> Self {
        Self {
            master_key_file: None,
            ca_id: d_ca_id(),
            ca_key_type: d_ca_key(),
            import_cert_file: None,
            import_key_file: None,
            import_key_label: None,
            import_chain_file: None,
            public_url: None,
            crl_validity_hours: d_crl_hours(),
            ocsp_validity_secs: d_ocsp_validity(),
            http_listen: None,
            ca_subject: CaSubject::default(),
            supersede_check_secs: d_supersede_check(),
            key_store: d_key_store(),
            pkcs11: None,
        }
    }
}

fn d_plugin_timeout() -> u64 {
    100
}
fn d_plugin_memory() -> u64 {
    32
}
fn d_plugin_concurrency() -> usize {
    16
}
fn yes() -> bool {
    true
}

/// `[plugins.load.<id>]`. Its `Debug` shows config keys, not values: plugin configuration
/// carries credentials (a CA's HMAC key, a webhook token).
#[derive(Clone, serde::Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct PluginEntry {
    /// The component (`.wasm`), absolute or relative to the working directory.
    pub file: PathBuf,
    /// Host interfaces it may import: log, config, clock, outbound-http, sigil-api.
    #[serde(default)]
    pub grants: Vec<String>,
    /// Hook points: `certificate-issuance`, `enrolment-request`, `person`, `custom-field`
    /// (validators); lifecycle events `certificate.*`, `request.*`, `device.*` (workflows; see
    /// [`VALIDATOR_HOOKS`] and `sigil_core::events::EventKind`).
    #[serde(default)]
    pub hooks: Vec<String>,
    /// Deadline of one call, ms.
    #[serde(default = "d_plugin_timeout")]
    pub timeout_ms: u64,
    /// Memory limit, MiB.
    #[serde(default = "d_plugin_memory")]
    pub memory_mib: u64,
    /// Calls in flight at once.
    #[serde(default = "d_plugin_concurrency")]
    pub max_concurrency: usize,
    /// Let calls through when the plugin fails (validators fail closed by default).
    #[serde(default)]
    pub fail_open: bool,
    /// Load it (false keeps the entry but unloads the plugin).
    #[serde(default = "yes")]
    pub enabled: bool,
    /// Values the plugin reads through the `config` interface.
    #[serde(default)]
    pub config: std::collections::BTreeMap<String, String>,
    /// Permissions the plugin acts with when it calls Sigil through `sigil-api` (its calls are
    /// audited as the plugin).
    #[serde(default)]
    pub permissions: Vec<String>,
    /// Origins (`scheme://host[:port]`) the plugin may reach through `outbound-http`.
    #[serde(default)]
    pub allowed_hosts: Vec<String>,
    /// PEM file of CA certificates the plugin's `outbound-http` HTTPS requests trust (none by
    /// default: HTTPS origins fail until their issuing CA is listed here).
    #[serde(default)]
    pub ca_file: Option<PathBuf>,
}

impl std::fmt::Debug for PluginEntry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PluginEntry")
            .field("file", &self.file)
            .field("grants", &self.grants)
            .field("hooks", &self.hooks)
            .field("timeout_ms", &self.timeout_ms)
            .field("memory_mib", &self.memory_mib)
            .field("max_concurrency", &self.max_concurrency)
            .field("fail_open", &self.fail_open)
            .field("enabled", &self.enabled)
            .field("config_keys", &self.config.keys().collect::<Vec<_>>())
            .field("permissions", &self.permissions)
            .field("allowed_hosts", &self.allowed_hosts)
            .field("ca_file", &self.ca_file)
            .finish()
    }
}

/// `[plugins]`.
#[derive(Debug, Clone, Default, serde::Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct PluginsSection {
    /// Compiled-code cache; default `<data_dir>/plugin-cache`.
    #[serde(default)]
    pub cache_dir: Option<PathBuf>,
    /// Reload when the configuration file or a plugin file changes (written, created, moved,
    /// removed, or its attributes changed; opening or reading it is not a change).
    #[serde(default)]
    pub watch: Option<bool>,
    /// Plugins by id.
    #[serde(default)]
    pub load: std::collections::BTreeMap<String, PluginEntry>,
}

/// The validator hook points; workflows subscribe to lifecycle events
/// (`sigil_core::events::EventKind`).
pub const VALIDATOR_HOOKS: [&str; 4] =
    ["certificate-issuance", "enrolment-request", "person", "custom-field"];

/// Whether `h` is a hook point: a validator hook or a lifecycle event.
fn is_hook(h: &str) -> bool {
    VALIDATOR_HOOKS.contains(&h) || sigil_core::events::EventKind::parse(h).is_some()
}

/// Every hook point, for messages.
fn hooks_list() -> String {
    let events = sigil_core::events::EventKind::ALL.iter().map(|k| k.as_str());
    VALIDATOR_HOOKS.iter().copied().chain(events).collect::<Vec<_>>().join(", ")
}

/// `[devices]`: cards and tokens.
#[derive(Debug, Clone, serde::Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct DevicesSection {
    /// PIN resets per device per day (UTC), across nodes; beyond: 429, audited (0: no limit).
    #[serde(default = "d_pin_resets_per_day")]
    pub pin_resets_per_day: u32,
}

fn d_pin_resets_per_day() -> u32 {
    3
}

/// `[ui]`: the admin web UI at `/ui/`.
#[derive(Debug, Clone, serde::Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct UiSection {
    /// Serve the UI (on the HTTPS listener only).
    #[serde(default = "d_true")]
    pub enabled: bool,
    /// Hours from sign-in to the end of a session, whatever the activity.
    #[serde(default = "d_session_hours")]
    pub session_hours: u32,
    /// Minutes without a request after which a session ends.
    #[serde(default = "d_idle_minutes")]
    pub idle_minutes: u32,
}

fn d_true() -> bool {
    true
}
fn d_session_hours() -> u32 {
    8
}
fn d_idle_minutes() -> u32 {
    30
}

impl Default for UiSection {
    fn default() -> Self {
        Self { enabled: true, session_hours: d_session_hours(), idle_minutes: d_idle_minutes() }
    }
}

/// `[acme]`: the ACME server (RFC 8555) of each profile with `acme = true`.
#[derive(Debug, Clone, serde::Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct AcmeSection {
    /// Serve ACME at `/acme/{profile}/directory`.
    #[serde(default)]
    pub enabled: bool,
    /// Port of http-01 validation requests.
    #[serde(default = "d_http01_port")]
    pub http01_port: u16,
    /// Port of tls-alpn-01 validation connections.
    #[serde(default = "d_tlsalpn01_port")]
    pub tlsalpn01_port: u16,
    /// DNS server for validation (`IP:PORT`); empty: the system's resolver configuration.
    #[serde(default)]
    pub dns_resolver: String,
    /// Let validation reach loopback, private and link-local addresses (labs and tests only:
    /// otherwise an ACME client could make the server probe its own network).
    #[serde(default)]
    pub allow_private_targets: bool,
    /// New accounts must carry an external account binding.
    #[serde(default)]
    pub eab_required: bool,
    /// Challenge validations running at once on this node.
    #[serde(default = "d_max_validations")]
    pub max_validations: usize,
}

fn d_http01_port() -> u16 {
    80
}
fn d_tlsalpn01_port() -> u16 {
    443
}
fn d_max_validations() -> usize {
    16
}

impl Default for AcmeSection {
    fn default() -> Self {
        Self {
            enabled: false,
            http01_port: d_http01_port(),
            tlsalpn01_port: d_tlsalpn01_port(),
            dns_resolver: String::new(),
            allow_private_targets: false,
            eab_required: false,
            max_validations: d_max_validations(),
        }
    }
}

impl AcmeSection {
    /// The DNS server, when one is set.
    pub fn dns_resolver(&self) -> Result<Option<std::net::SocketAddr>, ConfigError> {
        if self.dns_resolver.trim().is_empty() {
            return Ok(None);
        }
        self.dns_resolver.trim().parse().map(Some).map_err(|_| {
            ConfigError::Invalid(format!(
                "acme.dns_resolver `{}` is not IP:PORT",
                self.dns_resolver
            ))
        })
    }
}

impl Default for DevicesSection {
    fn default() -> Self {
        Self { pin_resets_per_day: d_pin_resets_per_day() }
    }
}

/// `[audit]`.
#[derive(Debug, Clone, serde::Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct AuditSection {
    /// The audit signing key (PKCS#8 PEM); default `<data_dir>/audit-key.pem`, created if absent.
    #[serde(default)]
    pub signing_key_file: Option<PathBuf>,
    /// How often a signed checkpoint is written, seconds.
    #[serde(default = "d_checkpoint")]
    pub checkpoint_interval_secs: u64,
    /// A checkpoint is also written once this many events follow the newest one (0: by time
    /// only). A start verifies the events after the newest checkpoint before serving, so this
    /// bounds the start after a crash under load.
    #[serde(default = "d_checkpoint_events")]
    pub checkpoint_every_events: u64,
    /// Verification fails when the newest checkpoint is older than this, seconds (0: no
    /// bound). Checkpoints are written without new events once the newest is half this old.
    #[serde(default = "d_checkpoint_max_age")]
    pub checkpoint_max_age_secs: u64,
    /// Public keys (PEM) of the other nodes' audit keys; with this node's own key they are the
    /// only keys whose checkpoints verify.
    #[serde(default)]
    pub trusted_keys: Vec<PathBuf>,
    /// Append-only log of the checkpoints this node signed; default next to the audit key
    /// (`audit-anchors.log` in its directory).
    #[serde(default)]
    pub anchor_file: Option<PathBuf>,
    /// A second copy of the anchor log, for example on another volume.
    #[serde(default)]
    pub anchor_copy_file: Option<PathBuf>,
    /// A syslog socket (`/dev/log`) that receives each checkpoint as well.
    #[serde(default)]
    pub anchor_syslog_socket: Option<PathBuf>,
}

/// The whole file.
#[derive(Debug, Clone, serde::Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// `[server]`.
    pub server: ServerSection,
    /// `[tls]`.
    #[serde(default)]
    pub tls: TlsSection,
    /// `[database]`.
    pub database: DatabaseSection,
    /// `[log]`.
    pub log: LogSection,
    /// `[api_keys]`.
    pub api_keys: ApiKeysSection,
    /// `[audit]`.
    pub audit: AuditSection,
    /// `[pki]`.
    #[serde(default)]
    pub pki: PkiSection,
    /// `[plugins]`.
    #[serde(default)]
    pub plugins: PluginsSection,
    /// `[exposure]`.
    #[serde(default)]
    pub exposure: ExposureConfig,
    /// `[csc]`.
    #[serde(default)]
    pub csc: CscSection,
    /// `[devices]`.
    #[serde(default)]
    pub devices: DevicesSection,
    /// `[ui]`.
    #[serde(default)]
    pub ui: UiSection,
    /// `[acme]`.
    #[serde(default)]
    pub acme: AcmeSection,
    /// The file this was loaded from (not a configuration key).
    #[serde(skip)]
    pub source: Option<PathBuf>,
}

/// `SIGIL__SERVER__LISTEN` → `server.listen`.
fn env_key(var: &str) -> String {
    var.trim_start_matches("SIGIL__")
        .split("__")
        .map(str::to_ascii_lowercase)
        .collect::<Vec<_>>()
        .join(".")
}

/// Environment values are parsed like figment's own environment provider: numbers, booleans,
/// `[arrays]` and `{dicts}` become values, anything else a string.
fn env_value(v: &str) -> figment::value::Value {
    v.parse().unwrap_or_else(|never: std::convert::Infallible| match never {})
}

/// Configuration keys whose value is a file path (`…_file`): their `SIGIL__…_FILE` variable
/// sets the path itself rather than reading a value from a file.
const PATH_KEYS: &[&str] = &[
    "tls.cert_file",
    "tls.key_file",
    "tls.client_ca_file",
    "tls.client_crl_file",
    "audit.signing_key_file",
    "audit.anchor_file",
    "audit.anchor_copy_file",
    "pki.master_key_file",
    "pki.import_cert_file",
    "pki.import_key_file",
    "pki.import_chain_file",
    "pki.pkcs11.pin_file",
];

const EMPTY_SECTIONS: &str = "[server]\n[database]\n[log]\n[api_keys]\n[audit]\n";

impl Config {
    /// Loads defaults, then `file`, then the environment.
    pub fn load(file: Option<&Path>) -> Result<Self, ConfigError> {
        Self::load_from(file, std::env::vars())
    }

    /// As [`Config::load`], with the environment given.
    pub fn load_from(
        file: Option<&Path>,
        env: impl Iterator<Item = (String, String)>,
    ) -> Result<Self, ConfigError> {
        let mut fig = Figment::new().merge(Toml::string(EMPTY_SECTIONS));
        if let Some(f) = file {
            if !f.exists() {
                return Err(ConfigError::Invalid(format!("{} does not exist", f.display())));
            }
            fig = fig.merge(Toml::file(f));
        }
        let env: Vec<(String, String)> = env.filter(|(k, _)| k.starts_with("SIGIL__")).collect();
        // A key that is itself a path (`SIGIL__PKI__MASTER_KEY_FILE`) is set as given; any
        // other `*_FILE` variable reads its key's value from the file it names.
        let direct = |k: &str| !k.ends_with("_FILE") || PATH_KEYS.contains(&env_key(k).as_str());
        for (var, value) in env.iter().filter(|(k, _)| direct(k)) {
            fig = fig.merge((env_key(var), env_value(value)));
        }
        for (var, path) in env.iter().filter(|(k, _)| !direct(k)) {
            let value = std::fs::read_to_string(path).map_err(|source| {
                ConfigError::SecretFile { var: var.clone(), path: path.clone(), source }
            })?;
            let key = env_key(var.trim_end_matches("_FILE"));
            fig = fig.merge((key, value.trim_end_matches(['\r', '\n']).to_owned()));
        }
        let mut cfg: Config = fig.extract().map_err(|e| ConfigError::Invalid(e.to_string()))?;
        cfg.source = file.map(Path::to_path_buf);
        cfg.validate()?;
        Ok(cfg)
    }

    fn validate(&self) -> Result<(), ConfigError> {
        self.acme.dns_resolver()?;
        if self.acme.max_validations == 0 || self.acme.max_validations > 1024 {
            return Err(ConfigError::Invalid("acme.max_validations is 1 to 1024".into()));
        }
        if !matches!(self.log.format.as_str(), "text" | "json") {
            return Err(ConfigError::Invalid("log.format must be `text` or `json`".into()));
        }
        if !matches!(self.database.sqlite_synchronous.as_str(), "full" | "normal") {
            return Err(ConfigError::Invalid(
                "database.sqlite_synchronous must be `full` or `normal`".into(),
            ));
        }
        if self.database.sqlite_writer_cpu.is_some_and(|c| c >= 1024) {
            return Err(ConfigError::Invalid(
                "database.sqlite_writer_cpu must be a CPU number below 1024".into(),
            ));
        }
        if !(-20..=0).contains(&self.database.sqlite_writer_nice) {
            return Err(ConfigError::Invalid(
                "database.sqlite_writer_nice must be -20 to 0".into(),
            ));
        }
        if self.server.body_limit_bytes == 0 || self.server.request_timeout_secs == 0 {
            return Err(ConfigError::Invalid(
                "server.body_limit_bytes and server.request_timeout_secs must be positive".into(),
            ));
        }
        sigil_core::access::api_key::parse_whitelist(&self.server.trusted_proxies)
            .map_err(|e| ConfigError::Invalid(format!("server.trusted_proxies: {e}")))?;
        if self.tls.cert_file.is_some() != self.tls.key_file.is_some() {
            return Err(ConfigError::Invalid("tls.cert_file and tls.key_file go together".into()));
        }
        if self.server.settings_refresh_ms == 0 {
            return Err(ConfigError::Invalid("server.settings_refresh_ms must be positive".into()));
        }
        sigil_core::certs::KeyType::parse(&self.pki.ca_key_type)
            .map_err(|e| ConfigError::Invalid(format!("pki.ca_key_type: {e}")))?;
        let import_key = self.pki.import_key_file.is_some() || self.pki.import_key_label.is_some();
        if self.pki.import_cert_file.is_some() != import_key {
            return Err(ConfigError::Invalid(
                "pki.import_cert_file and pki.import_key_file (or pki.import_key_label) go together"
                    .into(),
            ));
        }
        if let Some(u) = &self.pki.public_url {
            let ok = (u.starts_with("http://") || u.starts_with("https://"))
                && u.bytes().all(|b| b.is_ascii_graphic())
                && !u.contains(['?', '#', '@']);
            if !ok {
                return Err(ConfigError::Invalid(format!(
                    "pki.public_url is an ASCII http:// or https:// URL without user information, \
                     query or fragment, not `{u}`"
                )));
            }
        }
        let c = &self.pki.ca_subject.country;
        let two_letters = c.len() == 2 && c.bytes().all(|b| b.is_ascii_uppercase());
        if !(c.is_empty() || two_letters) {
            return Err(ConfigError::Invalid(format!(
                "pki.ca_subject.country is two capital letters (ISO 3166), not `{c}`"
            )));
        }
        // One name for both would make the issuing CA look self-issued: relying parties build
        // paths by name, and RFC 5280 §6.1 then sees a loop.
        let n = &self.pki.ca_subject;
        if !n.root_common_name.is_empty() && n.root_common_name == n.issuing_common_name {
            return Err(ConfigError::Invalid(
                "pki.ca_subject.root_common_name and issuing_common_name must differ".into(),
            ));
        }
        for (key, v) in [("root", &n.root_common_name), ("issuing", &n.issuing_common_name)] {
            if v.chars().count() > 64 || v.trim() != v.as_str() {
                return Err(ConfigError::Invalid(format!(
                    "pki.ca_subject.{key}_common_name is at most 64 characters, without leading \
                     or trailing spaces"
                )));
            }
        }
        if n.organization.chars().count() > 64 {
            return Err(ConfigError::Invalid(
                "pki.ca_subject.organization is at most 64 characters".into(),
            ));
        }
        if self.pki.import_key_file.is_some() && self.pki.import_key_label.is_some() {
            return Err(ConfigError::Invalid(
                "pki.import_key_file and pki.import_key_label name the same key: set one".into(),
            ));
        }
        if self.pki.import_key_label.is_some() && self.pki.pkcs11.is_none() {
            return Err(ConfigError::Invalid(
                "pki.import_key_label needs a [pki.pkcs11] section".into(),
            ));
        }
        match (self.pki.key_store.as_str(), &self.pki.pkcs11) {
            ("sealed", _) | ("pkcs11", Some(_)) => {}
            ("pkcs11", None) => {
                return Err(ConfigError::Invalid(
                    "pki.key_store = \"pkcs11\" needs a [pki.pkcs11] section".into(),
                ));
            }
            (other, _) => {
                return Err(ConfigError::Invalid(format!(
                    "pki.key_store must be `sealed` or `pkcs11`, not `{other}`"
                )));
            }
        }
        if !(1..=168).contains(&self.ui.session_hours)
            || !(1..=1440).contains(&self.ui.idle_minutes)
        {
            return Err(ConfigError::Invalid(
                "ui.session_hours must be 1 to 168 and ui.idle_minutes 1 to 1440".into(),
            ));
        }
        if !(1..=86_400).contains(&self.pki.supersede_check_secs) {
            return Err(ConfigError::Invalid(
                "pki.supersede_check_secs must be between 1 and 86400".into(),
            ));
        }
        if !(60..=7 * 24 * 3600).contains(&self.pki.ocsp_validity_secs) {
            return Err(ConfigError::Invalid(
                "pki.ocsp_validity_secs must be between 60 and 604800".into(),
            ));
        }
        if !(1..=24 * 365).contains(&self.pki.crl_validity_hours) {
            return Err(ConfigError::Invalid(
                "pki.crl_validity_hours must be between 1 and 8760".into(),
            ));
        }
        // `<ca>-root` names a CA's root (its CRL and certificate): no back end may take it.
        if self.pki.ca_id.ends_with("-root") {
            return Err(ConfigError::Invalid(
                "pki.ca_id may not end in `-root` (reserved for the CA's root)".into(),
            ));
        }
        for (id, p) in &self.plugins.load {
            if id.ends_with("-root") {
                return Err(ConfigError::Invalid(format!(
                    "plugins.load.{id}: a plugin id may not end in `-root` (reserved for CA roots)"
                )));
            }
            if let Some(g) =
                p.grants.iter().find(|g| !sigil_wasm::plugin::GRANTS.contains(&g.as_str()))
            {
                return Err(ConfigError::Invalid(format!(
                    "plugins.load.{id}.grants: unknown grant `{g}`"
                )));
            }
            sigil_core::access::authz::PermissionSet::parse(&p.permissions)
                .map_err(|e| ConfigError::Invalid(format!("plugins.load.{id}.permissions: {e}")))?;
            if let Some(h) = p.hooks.iter().find(|h| !is_hook(h)) {
                return Err(ConfigError::Invalid(format!(
                    "plugins.load.{id}.hooks: unknown hook `{h}` (available: {})",
                    hooks_list()
                )));
            }
        }
        if self.audit.checkpoint_interval_secs == 0 {
            return Err(ConfigError::Invalid(
                "audit.checkpoint_interval_secs must be positive".into(),
            ));
        }
        let a = &self.audit;
        if a.checkpoint_max_age_secs != 0
            && a.checkpoint_max_age_secs < a.checkpoint_interval_secs.saturating_mul(2)
        {
            return Err(ConfigError::Invalid(
                "audit.checkpoint_max_age_secs must be 0 or at least twice \
                 audit.checkpoint_interval_secs (checkpoints could not keep up with it)"
                    .into(),
            ));
        }
        Ok(())
    }

    /// The database URL in force.
    pub fn database_url(&self) -> String {
        self.database.url.clone().unwrap_or_else(|| {
            format!("sqlite://{}", self.server.data_dir.join("sigil.db").display())
        })
    }

    /// The master key path in force.
    pub fn master_key_path(&self) -> PathBuf {
        self.pki.master_key_file.clone().unwrap_or_else(|| self.server.data_dir.join("master.key"))
    }

    /// Where root CA keys created (or moved out of the database) by this node are written.
    pub fn root_key_dir(&self) -> PathBuf {
        self.server.data_dir.join("ca")
    }

    /// The audit key path in force.
    pub fn audit_key_path(&self) -> PathBuf {
        self.audit
            .signing_key_file
            .clone()
            .unwrap_or_else(|| self.server.data_dir.join("audit-key.pem"))
    }

    /// What `check-config` finds wrong beyond the syntax: files the configuration names that do
    /// not exist (keys and logs Sigil creates itself need only their directory).
    pub fn problems(&self) -> Vec<String> {
        let mut out = Vec::new();
        let mut must_exist = |key: &str, p: Option<&Path>| {
            if let Some(p) = p
                && !p.is_file()
            {
                out.push(format!("{key}: {} does not exist or is not a file", p.display()));
            }
        };
        must_exist("tls.cert_file", self.tls.cert_file.as_deref());
        must_exist("tls.key_file", self.tls.key_file.as_deref());
        must_exist("tls.client_ca_file", self.tls.client_ca_file.as_deref());
        must_exist("tls.client_crl_file", self.tls.client_crl_file.as_deref());
        must_exist("pki.import_cert_file", self.pki.import_cert_file.as_deref());
        must_exist("pki.import_key_file", self.pki.import_key_file.as_deref());
        must_exist("pki.import_chain_file", self.pki.import_chain_file.as_deref());
        if let Some(p) = &self.pki.pkcs11 {
            must_exist("pki.pkcs11.module", Some(&p.module));
            must_exist("pki.pkcs11.pin_file", Some(&p.pin_file));
        }
        for k in &self.audit.trusted_keys {
            must_exist("audit.trusted_keys", Some(k));
        }
        for (id, p) in &self.plugins.load {
            must_exist(&format!("plugins.load.{id}.file"), Some(&p.file));
            must_exist(&format!("plugins.load.{id}.ca_file"), p.ca_file.as_deref());
        }
        let created = [
            ("pki.master_key_file", self.pki.master_key_file.as_deref()),
            ("audit.signing_key_file", self.audit.signing_key_file.as_deref()),
            ("audit.anchor_file", self.audit.anchor_file.as_deref()),
            ("audit.anchor_copy_file", self.audit.anchor_copy_file.as_deref()),
        ];
        for (key, p) in created {
            if let Some(p) = p
                && !p.exists()
                && let Some(dir) = p.parent().filter(|d| !d.as_os_str().is_empty())
                && !dir.is_dir()
            {
                out.push(format!(
                    "{key}: {} cannot be created: {} is not a directory",
                    p.display(),
                    dir.display()
                ));
            }
        }
        out
    }

    /// The configuration as `check-config` prints it: every secret replaced by `***` (the
    /// database password, plugin configuration values, which often hold tokens).
    pub fn redacted(&self) -> Self {
        let mut shown = self.clone();
        shown.database.url = self.database.url.as_deref().map(sigil_store::redact_url);
        for p in shown.plugins.load.values_mut() {
            p.config.values_mut().for_each(|v| *v = "***".into());
        }
        shown
    }

    /// Where this node's anchor log is: next to the audit key unless configured.
    pub fn anchor_path(&self) -> PathBuf {
        self.audit.anchor_file.clone().unwrap_or_else(|| {
            let key = self.audit_key_path();
            key.parent().unwrap_or(Path::new(".")).join("audit-anchors.log")
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(v: &[(&str, &str)]) -> impl Iterator<Item = (String, String)> {
        v.iter().map(|(a, b)| (a.to_string(), b.to_string())).collect::<Vec<_>>().into_iter()
    }

    #[test]
    fn defaults_need_no_file() {
        let c = Config::load_from(None, env(&[])).unwrap();
        assert_eq!(c.server.listen, "127.0.0.1:8443");
        assert!(c.database_url().starts_with("sqlite://"));
    }

    #[test]
    fn unknown_keys_are_named() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("s.toml");
        std::fs::write(&f, "[server]\nlisten = \"127.0.0.1:0\"\nlisen = 1\n").unwrap();
        let e = Config::load_from(Some(&f), env(&[])).unwrap_err().to_string();
        assert!(e.contains("lisen"), "{e}");
    }

    #[test]
    fn every_documented_path_key_can_be_set_from_the_environment() {
        // Every `…_file` key of config/sigil.toml's top-level sections is in PATH_KEYS...
        let doc = include_str!("../../../config/sigil.toml");
        let mut section = String::new();
        for line in doc.lines() {
            let t = line.trim_start_matches('#').trim();
            // A header, or a commented-out one (an optional section shown as an example).
            if t.starts_with('[') && t.ends_with(']') && !t.contains(' ') {
                section = t.trim_matches(['[', ']']).to_owned();
            } else if let Some((k, _)) = t.split_once('=')
                && k.trim().ends_with("_file")
                && !section.starts_with("plugins")
                && !k.trim().contains(' ')
            {
                let key = format!("{section}.{}", k.trim());
                assert!(PATH_KEYS.contains(&key.as_str()), "{key} is not in PATH_KEYS");
            }
        }
        // ...and setting one from the environment sets the path.
        let c = Config::load_from(
            None,
            env(&[
                ("SIGIL__PKI__MASTER_KEY_FILE", "/etc/sigil/master.key"),
                ("SIGIL__AUDIT__SIGNING_KEY_FILE", "/etc/sigil/audit-key.pem"),
            ]),
        )
        .unwrap();
        assert_eq!(c.pki.master_key_file.as_deref(), Some(Path::new("/etc/sigil/master.key")));
        assert_eq!(
            c.audit.signing_key_file.as_deref(),
            Some(Path::new("/etc/sigil/audit-key.pem"))
        );
    }

    #[test]
    fn environment_and_secret_files_override_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let secret = dir.path().join("url");
        std::fs::write(&secret, "postgres://u:p@127.0.0.1/db\n").unwrap();
        let c = Config::load_from(
            None,
            env(&[
                ("SIGIL__SERVER__LISTEN", "127.0.0.1:9999"),
                ("SIGIL__SERVER__BODY_LIMIT_BYTES", "4096"),
                ("SIGIL__EXPOSURE__ALLOWED_IPS", "[\"10.0.0.0/8\", \"127.0.0.1\"]"),
                ("SIGIL__DATABASE__URL_FILE", secret.to_str().unwrap()),
            ]),
        )
        .unwrap();
        assert_eq!(c.server.listen, "127.0.0.1:9999");
        assert_eq!(c.server.body_limit_bytes, 4096);
        assert_eq!(c.exposure.allowed_ips, ["10.0.0.0/8", "127.0.0.1"]);
        assert_eq!(c.database_url(), "postgres://u:p@127.0.0.1/db");
        assert!(!format!("{c:?}").contains(":p@"));
    }

    #[test]
    fn the_sqlite_writer_cpu_is_unset_by_default_and_a_cpu_number_when_set() {
        let c = Config::load_from(None, env(&[])).unwrap();
        assert_eq!(c.database.sqlite_writer_cpu, None);
        let set = |v: &str| {
            Config::load_from(None, env(&[("SIGIL__DATABASE__SQLITE_WRITER_CPU", v)]))
                .map(|c| c.database.sqlite_writer_cpu)
                .map_err(|e| e.to_string())
        };
        assert_eq!(set("1"), Ok(Some(1)));
        for bad in ["1024", "-1", "last"] {
            let e = set(bad).unwrap_err();
            assert!(e.contains("sqlite_writer_cpu"), "{bad}: {e}");
        }
    }

    #[test]
    fn async_workers_are_not_pinned_unless_configured() {
        let c = Config::load_from(None, env(&[])).unwrap();
        assert!(!c.server.pin_workers);
        let set = |v: &str| {
            Config::load_from(None, env(&[("SIGIL__SERVER__PIN_WORKERS", v)]))
                .map(|c| c.server.pin_workers)
                .map_err(|e| e.to_string())
        };
        assert_eq!(set("true"), Ok(true));
        assert!(set("sometimes").unwrap_err().contains("pin_workers"));
    }

    #[test]
    fn the_sqlite_writer_nice_value_defaults_to_minus_ten_and_is_bounded() {
        let c = Config::load_from(None, env(&[])).unwrap();
        assert_eq!(c.database.sqlite_writer_nice, -10);
        let set = |v: &str| {
            Config::load_from(None, env(&[("SIGIL__DATABASE__SQLITE_WRITER_NICE", v)]))
                .map(|c| c.database.sqlite_writer_nice)
                .map_err(|e| e.to_string())
        };
        assert_eq!(set("-3"), Ok(-3));
        assert_eq!(set("0"), Ok(0));
        for bad in ["5", "-21", "high"] {
            let e = set(bad).unwrap_err();
            assert!(e.contains("database.sqlite_writer_nice"), "{bad}: {e}");
        }
    }
}
