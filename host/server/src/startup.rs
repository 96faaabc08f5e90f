//! Start-up: data directory, local CA, database and migrations, services, the first
//! administrator key, the listener, background jobs and graceful shutdown.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use axum_server::Handle;
use axum_server::accept::NoDelayAcceptor;
use sigil_api::exposure::Exposure;
use sigil_api::{AppServices, AppState, Limits};
use sigil_core::access::api_keys::ApiKeyService;
use sigil_core::access::operators::OperatorService;
use sigil_core::access::roles::RoleService;
use sigil_core::audit::trail::{AuditService, AuditTrust};
use sigil_core::certs::KeyType;
use sigil_core::certs::ca::Issuers;
use sigil_core::certs::cas::{CaImport, CaService};
use sigil_core::certs::certificates::CertificateService;
use sigil_core::certs::profiles::ProfileService;
use sigil_core::ports::{Clock, Store, SystemClock};
use sigil_core::settings::SettingsService;
use sigil_pki::audit_key::{AuditKey, Keyring};
use sigil_pki::builtin::BuiltinFactory;
use sigil_pki::ocsp::OcspCodec;
use sigil_pki::parser::Pkcs10;
use sigil_pki::seal::MasterKey;
use sigil_store::{DbOptions, SqlStore};
use tokio::task::JoinHandle;

use crate::config::Config;

/// The store's options for a command; the writer thread's priority and CPU are the server's
/// alone ([`open_serving_store`]): a CLI command's few writes gain nothing from them, and an
/// unprivileged shell would get the refusal's log line on every command.
fn db_options(cfg: &Config, existing: bool) -> DbOptions {
    DbOptions {
        url: cfg.database_url(),
        max_connections: cfg.database.max_connections,
        sqlite_synchronous: cfg.database.sqlite_synchronous.clone(),
        sqlite_writer_nice: 0,
        sqlite_writer_cpu: None,
        acquire_timeout: Duration::from_secs(cfg.database.acquire_timeout_secs),
        existing,
    }
}

/// Binds `addr` (the value of config key `key`) for a listener, with an error that says which.
fn bind(addr: &str, key: &str) -> Result<std::net::TcpListener> {
    let at: SocketAddr = addr.parse().with_context(|| format!("{key} `{addr}` is not IP:PORT"))?;
    std::net::TcpListener::bind(at).with_context(|| format!("cannot listen on {at} ({key})"))
}

/// Opens the database named by the configuration and applies migrations.
pub async fn open_store(cfg: &Config) -> Result<SqlStore> {
    connect_migrated(&db_options(cfg, false)).await
}

/// [`open_store`] for `serve`: the SQLite writer thread at `database.sqlite_writer_nice`, on
/// `database.sqlite_writer_cpu` if set.
async fn open_serving_store(cfg: &Config) -> Result<SqlStore> {
    connect_migrated(&DbOptions {
        sqlite_writer_nice: cfg.database.sqlite_writer_nice,
        sqlite_writer_cpu: cfg.database.sqlite_writer_cpu,
        ..db_options(cfg, false)
    })
    .await
}

async fn connect_migrated(opts: &DbOptions) -> Result<SqlStore> {
    let store = SqlStore::connect(opts).await?;
    store.migrate().await?;
    Ok(store)
}

/// Opens an existing, up-to-date database without changing it: no file is created and no
/// migration applied (commands that read an installation, or verify one, must leave it as
/// they found it).
pub async fn open_existing(cfg: &Config) -> Result<SqlStore> {
    let store = SqlStore::connect(&db_options(cfg, true)).await?;
    let pending = store.pending_migrations().await?;
    if pending > 0 {
        anyhow::bail!(
            "the database at {} is older than this version of sigil ({pending} migrations \
             pending): run `sigil migrate` (or start the server) first",
            sigil_store::redact_url(&cfg.database_url())
        );
    }
    Ok(store)
}

/// Core services over a store.
pub struct Services {
    /// The store.
    pub store: Arc<dyn Store>,
    /// API keys.
    pub api_keys: Arc<ApiKeyService>,
    /// Audit.
    pub audit: Arc<AuditService>,
    /// Shared settings.
    pub settings: Arc<SettingsService>,
    /// Roles.
    pub roles: Arc<RoleService>,
    /// Operators.
    pub operators: Arc<OperatorService>,
    /// Organizations, divisions, offices.
    pub org: Arc<sigil_core::org::organizations::OrgService>,
    /// People and custom fields.
    pub people: Arc<sigil_core::people::directory::PeopleService>,
    /// Devices.
    pub devices: Arc<sigil_core::cards::devices::DeviceService>,
    /// Enrolment requests.
    pub requests: Arc<sigil_core::cards::enrolments::RequestService>,
    /// Self-service.
    pub selfservice: Arc<sigil_core::cards::self_service::SelfService>,
    /// Identity sources.
    pub identity: Arc<sigil_core::people::identity::IdentityService>,
    /// CSC signers and credentials.
    pub signers: Arc<sigil_core::signing::signers::SignerService>,
    /// The CSC protocol.
    pub csc: Arc<sigil_core::signing::csc::CscService>,
    /// CSC provider configurations.
    pub csc_providers: Arc<sigil_core::signing::providers::CscProviderService>,
    /// PIN reset.
    pub pins: Arc<sigil_core::cards::pin_reset::PinResetService>,
    /// Profiles.
    pub profiles: Arc<ProfileService>,
    /// CA back ends.
    pub cas: Arc<CaService>,
    /// Certificates.
    pub certificates: Arc<CertificateService>,
    /// ACME.
    pub acme: Arc<sigil_core::acme::AcmeService>,
}

/// `own` (this node's key, when it has one) plus the configured `audit.trusted_keys`: the only
/// keys whose checkpoints verify.
pub fn pinned_audit_keys(cfg: &Config, mut own: Keyring) -> Result<Keyring> {
    for p in &cfg.audit.trusted_keys {
        own.add_file(p).with_context(|| format!("audit.trusted_keys: {}", p.display()))?;
    }
    Ok(own)
}

/// Wires the services.
pub async fn services(
    cfg: &Config,
    store: SqlStore,
    validators: Arc<dyn sigil_core::ports::Validators>,
    events: Arc<dyn sigil_core::ports::EventSink>,
    sources: Arc<dyn sigil_core::ports::IdentitySources>,
) -> Result<Services> {
    let store: Arc<dyn Store> = Arc::new(store);
    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    let key_path = cfg.audit_key_path();
    let audit_key = AuditKey::load_or_create(&key_path)?;
    audit_key.publish(&key_path)?;
    let trust = AuditTrust {
        keys: Arc::new(pinned_audit_keys(cfg, audit_key.keyring())?),
        anchor: Arc::new(crate::anchor::FileAnchor::new(
            cfg.anchor_path(),
            cfg.audit.anchor_copy_file.clone(),
            cfg.audit.anchor_syslog_socket.clone(),
        )),
        max_age_secs: cfg.audit.checkpoint_max_age_secs,
    };
    let audit =
        Arc::new(AuditService::new(store.clone(), clock.clone(), Arc::new(audit_key), trust));
    audit.register_key().await?;
    let settings = Arc::new(SettingsService::new(store.clone(), clock.clone()));
    let api_keys = Arc::new(ApiKeyService::new(
        store.clone(),
        clock.clone(),
        Duration::from_millis(cfg.api_keys.cache_ttl_ms),
    ));
    let roles = Arc::new(RoleService::new(store.clone(), clock.clone()));
    let operators = Arc::new(OperatorService::new(store.clone(), clock.clone()));
    let org =
        Arc::new(sigil_core::org::organizations::OrgService::new(store.clone(), clock.clone()));
    let people = Arc::new(sigil_core::people::directory::PeopleService::new(
        store.clone(),
        clock.clone(),
        validators.clone(),
    ));
    let identity =
        Arc::new(sigil_core::people::identity::IdentityService::new(people.clone(), sources));
    let issuers = Arc::new(Issuers::default());
    let master = Arc::new(MasterKey::load_or_create(&cfg.master_key_path())?);
    warn_of_legacy_secrets(store.as_ref(), master.as_ref()).await?;
    let unlock = Arc::new(sigil_pki::unlock::CardUnlock::new(master.clone()));
    let token = open_token(&cfg.pki)?;
    let default_store =
        sigil_core::signing::key_store::KeyStoreKind::parse(&cfg.pki.key_store).unwrap_or_default();
    let credential_keys = sigil_pki::signing::CredentialKeys::new(master.clone());
    let credential_keys = Arc::new(match &token {
        Some(token) => credential_keys.with_token(Arc::clone(token), default_store),
        None => credential_keys,
    });
    let some = |s: &str| (!s.is_empty()).then(|| s.to_owned());
    let subject = &cfg.pki.ca_subject;
    let names = sigil_pki::builtin::CaNames {
        organization: some(&subject.organization),
        country: some(&subject.country),
        root_common_name: some(&subject.root_common_name),
        issuing_common_name: some(&subject.issuing_common_name),
    };
    let eab_sealer = Arc::new(sigil_pki::acme_jws::EabKeySealer::new(master.clone()));
    let factory = BuiltinFactory::new(master, cfg.pki.public_url.clone()).with_names(names);
    // CAs created from now on get their issuing key on the token when it is the key store.
    let factory = Arc::new(match token {
        Some(token) => factory.with_token(
            token,
            default_store == sigil_core::signing::key_store::KeyStoreKind::Pkcs11,
        ),
        None => factory,
    });
    let crl_validity =
        time::Duration::hours(i64::try_from(cfg.pki.crl_validity_hours).unwrap_or(24));
    let cas = Arc::new(CaService::new(
        store.clone(),
        clock.clone(),
        issuers.clone(),
        factory,
        Arc::new(OcspCodec::new(time::Duration::seconds(
            i64::try_from(cfg.pki.ocsp_validity_secs).unwrap_or(3600),
        ))),
        crl_validity,
    ));
    let read = |f: &std::path::Path| {
        std::fs::read_to_string(f).with_context(|| format!("reading {}", f.display()))
    };
    let chain_pem = match &cfg.pki.import_chain_file {
        Some(f) => read(f)?,
        None => String::new(),
    };
    let import =
        match (&cfg.pki.import_cert_file, &cfg.pki.import_key_file, &cfg.pki.import_key_label) {
            (Some(c), Some(k), None) => {
                Some(CaImport { cert_pem: read(c)?, key_pem: read(k)?, chain_pem, key_label: None })
            }
            // The key is already on the token: it is found by label and stays there.
            (Some(c), None, Some(label)) => Some(CaImport {
                cert_pem: read(c)?,
                key_pem: String::new(),
                chain_pem,
                key_label: Some(label.clone()),
            }),
            _ => None,
        };
    let vault = crate::root_keys::RootKeyDir::new(cfg.root_key_dir());
    cas.bootstrap(&cfg.pki.ca_id, KeyType::parse(&cfg.pki.ca_key_type)?, import, &vault).await?;
    for (ca, moved) in cas.move_root_keys_out(&vault).await? {
        match moved {
            Ok(at) => {
                tracing::warn!(ca, file = at, "the root CA key left the database; move it offline");
            }
            Err(why) => {
                tracing::warn!(ca, why, "a root CA key in the database cannot be moved out")
            }
        }
    }
    let profiles = Arc::new(ProfileService::new(store.clone(), clock.clone(), issuers.clone()));
    profiles.bootstrap(&cfg.pki.ca_id).await?;
    let certificates = Arc::new(CertificateService::new(
        store.clone(),
        clock.clone(),
        issuers,
        profiles.clone(),
        Arc::new(Pkcs10),
        validators.clone(),
        events.clone(),
    ));
    let devices = Arc::new(sigil_core::cards::devices::DeviceService::new(
        store.clone(),
        clock.clone(),
        certificates.clone(),
        people.clone(),
        events.clone(),
    ));
    let pins = Arc::new(sigil_core::cards::pin_reset::PinResetService::new(
        store.clone(),
        clock.clone(),
        devices.clone(),
        unlock,
        cfg.devices.pin_resets_per_day,
    ));
    let requests = Arc::new(sigil_core::cards::enrolments::RequestService::new(
        store.clone(),
        clock.clone(),
        sigil_core::cards::enrolments::RequestDeps {
            people: people.clone(),
            profiles: profiles.clone(),
            certificates: certificates.clone(),
            devices: devices.clone(),
            validators,
            events,
        },
    ));
    let signers = Arc::new(sigil_core::signing::signers::SignerService::new(
        store.clone(),
        clock.clone(),
        people.clone(),
        certificates.clone(),
        credential_keys,
        cfg.csc.settings()?,
    ));
    let csc = Arc::new(sigil_core::signing::csc::CscService::new(
        store.clone(),
        clock.clone(),
        signers.clone(),
        audit.refusals(),
    ));
    let csc_providers = Arc::new(sigil_core::signing::providers::CscProviderService::new(
        store.clone(),
        clock.clone(),
    ));
    let selfservice = Arc::new(sigil_core::cards::self_service::SelfService::new(
        store.clone(),
        devices.clone(),
        certificates.clone(),
        requests.clone(),
        pins.clone(),
    ));
    let validator = crate::acme::NetValidator::new(crate::acme::ValidationConfig {
        http01_port: cfg.acme.http01_port,
        tlsalpn01_port: cfg.acme.tlsalpn01_port,
        dns_resolver: cfg.acme.dns_resolver()?,
        allow_private_targets: cfg.acme.allow_private_targets,
    })
    .context("acme: the DNS resolver")?;
    let acme = Arc::new(
        sigil_core::acme::AcmeService::new(
            store.clone(),
            clock.clone(),
            certificates.clone(),
            Arc::new(sigil_pki::acme_jws::AcmeJws),
            Arc::new(validator),
            sigil_core::acme::AcmeSettings {
                enabled: cfg.acme.enabled,
                eab_required: cfg.acme.eab_required,
                max_validations: cfg.acme.max_validations,
            },
        )
        .with_eab(eab_sealer),
    );
    Ok(Services {
        store,
        api_keys,
        audit,
        settings,
        roles,
        operators,
        org,
        people,
        devices,
        requests,
        selfservice,
        identity,
        signers,
        csc,
        csc_providers,
        pins,
        profiles,
        cas,
        certificates,
        acme,
    })
}

/// A running server.
pub struct Running {
    /// The bound address.
    pub addr: SocketAddr,
    /// `https` or `http`.
    pub scheme: &'static str,
    /// The plain-HTTP publication address, when `pki.http_listen` is set.
    pub publishing: Option<SocketAddr>,
    publication_task: Option<(Handle<SocketAddr>, JoinHandle<std::io::Result<()>>)>,
    handle: Handle<SocketAddr>,
    task: JoinHandle<std::io::Result<()>>,
    jobs: Vec<JoinHandle<()>>,
    audit: Arc<AuditService>,
    grace: Duration,
    _watcher: Option<notify::RecommendedWatcher>,
    registry: Arc<sigil_wasm::PluginRegistry>,
}

impl Running {
    /// Signs an audit checkpoint now (as the periodic job does), after verifying the chain.
    pub async fn checkpoint(&self) -> sigil_core::Result<Option<sigil_core::audit::Checkpoint>> {
        self.audit.checkpoint().await
    }

    /// Stops accepting, lets in-flight requests finish (up to the grace period), signs a final
    /// checkpoint.
    pub async fn shutdown(self) -> Result<()> {
        self.handle.graceful_shutdown(Some(self.grace));
        let res = self.task.await;
        if let Some((h, t)) = self.publication_task {
            h.graceful_shutdown(Some(self.grace));
            let _ = t.await;
        }
        self.registry.set_api(None);
        for j in self.jobs {
            j.abort();
        }
        if let Err(e) = self.audit.flush_refusals(true).await {
            tracing::warn!(error = %e, "writing refusal summaries failed");
        }
        if let Err(e) = self.audit.checkpoint().await {
            tracing::warn!(error = %e, "final audit checkpoint failed");
        }
        res.context("server task")?.context("server")?;
        Ok(())
    }
}

/// Starts the server described by `cfg` and returns once it accepts connections.
pub async fn start(cfg: &Config) -> Result<Running> {
    // The ports first: a busy one is a one-line error, before anything is created or opened.
    let listener = bind(&cfg.server.listen, "server.listen")?;
    let publication_listener =
        cfg.pki.http_listen.as_deref().map(|a| bind(a, "pki.http_listen")).transpose()?;
    let data_dir = &cfg.server.data_dir;
    sigil_pki::private_dir(data_dir)?;
    let (cert, key) = match (&cfg.tls.cert_file, &cfg.tls.key_file) {
        (Some(c), Some(k)) => (c.clone(), k.clone()),
        _ => {
            let files = sigil_pki::localca::ensure(data_dir, &cfg.server.server_names)?;
            (files.server_cert(), files.server_key())
        }
    };
    let store = open_serving_store(cfg).await?;
    let search_index = store.clone();
    let cache_dir = cfg.plugins.cache_dir.clone().unwrap_or_else(|| data_dir.join("plugin-cache"));
    // wasmtime takes an absolute cache path only; the default data_dir is `./data`.
    let cache_dir = std::path::absolute(&cache_dir)
        .with_context(|| format!("plugins.cache_dir {}", cache_dir.display()))?;
    let engine = Arc::new(sigil_wasm::PluginEngine::new(Some(&cache_dir))?);
    let registry = Arc::new(sigil_wasm::PluginRegistry::new(engine));
    // A plugin that fails to load is reported on GET /api/v1/plugins; it does not stop the server.
    registry.apply(crate::plugins::specs(cfg)).await;
    let svc = services(cfg, store, registry.clone(), registry.clone(), registry.clone()).await?;
    // CA connector plugins serve as back ends under their plugin ids, swapped with the set.
    svc.certificates.issuers().set_source(Some(registry.clone()));
    let plugin_host =
        Arc::new(crate::plugins::PluginHost::new(registry.clone(), cfg.source.clone()));
    if let Some(admin) = svc.api_keys.bootstrap_admin().await? {
        let path = data_dir.join("admin.key");
        sigil_pki::write_private(&path, format!("{}\n", admin.secret.value).as_bytes())?;
        tracing::info!(path = %path.display(), "created the first administrator API key");
    }
    let (routes, openapi) = sigil_api::routes();
    let exposure = Arc::new(Exposure::new(sigil_api::endpoints(&openapi), cfg.exposure.clone())?);
    // An override stored through the API wins over the file, on every node.
    exposure.sync(svc.settings.exposure_raw().await?.as_deref())?;
    plugin_host.set_exposure(exposure.clone(), svc.settings.clone());
    // Counts every change from here on by its audit events (domain metrics).
    let metrics = Arc::new(sigil_api::metrics::Metrics::default());
    svc.store.observe_commits(metrics.clone());
    let state = AppState::new(AppServices {
        api_keys: svc.api_keys.clone(),
        audit: svc.audit.clone(),
        store: svc.store.clone(),
        exposure: exposure.clone(),
        settings: svc.settings.clone(),
        roles: svc.roles.clone(),
        certificates: svc.certificates.clone(),
        profiles: svc.profiles.clone(),
        cas: svc.cas.clone(),
        operators: svc.operators.clone(),
        org: svc.org.clone(),
        people: svc.people.clone(),
        devices: svc.devices.clone(),
        requests: svc.requests.clone(),
        selfservice: svc.selfservice.clone(),
        pins: svc.pins.clone(),
        signers: svc.signers.clone(),
        csc: svc.csc.clone(),
        csc_providers: svc.csc_providers.clone(),
        acme: svc.acme.clone(),
        identity: svc.identity.clone(),
        plugins: plugin_host.clone(),
        endpoints: registry.clone(),
        metrics: metrics.clone(),
        openapi: Arc::new(openapi),
        streams: Arc::new(sigil_api::v1::stream::StreamSlots::new(
            cfg.server.streams_per_caller,
            cfg.server.streams_total,
            Duration::from_secs(cfg.server.stream_max_secs),
        )),
        ui: sigil_api::ui::UiConfig {
            enabled: cfg.ui.enabled,
            policy: sigil_core::access::ui_session::SessionPolicy {
                lifetime: time::Duration::hours(i64::from(cfg.ui.session_hours)),
                idle: time::Duration::minutes(i64::from(cfg.ui.idle_minutes)),
            },
        },
    });
    let limits = Limits {
        body_bytes: cfg.server.body_limit_bytes,
        request_timeout: Duration::from_secs(cfg.server.request_timeout_secs),
        trusted_proxies: sigil_core::access::api_key::parse_whitelist(&cfg.server.trusted_proxies)
            .context("server.trusted_proxies")?
            .into(),
    };
    let publication = sigil_api::publication_app(state.clone(), limits.clone());
    let router = sigil_api::app(state, routes, limits);
    // Plugins call the API in-process through the same router (cleared at shutdown: the router
    // holds the registry).
    registry.set_api(Some(Arc::new(sigil_api::v1::ext::RouterDispatcher::new(router.clone()))));
    let app = router.into_make_service_with_connect_info::<SocketAddr>();
    let handle = Handle::new();
    let (task, scheme) = if cfg.server.insecure_plain_http {
        let server = axum_server::from_tcp(listener)?
            .acceptor(NoDelayAcceptor::new())
            .handle(handle.clone());
        (tokio::spawn(async move { server.serve(app).await }), "http")
    } else {
        let tls = crate::tls::server_config(&cfg.tls, &cert, &key)?;
        let rustls = axum_server::tls_rustls::RustlsConfig::from_config(Arc::new(tls));
        let server = axum_server::from_tcp_rustls(listener, rustls)?
            .map(|tls| tls.acceptor(NoDelayAcceptor::new()))
            .handle(handle.clone());
        (tokio::spawn(async move { server.serve(app).await }), "https")
    };
    let addr = match handle.listening().await {
        Some(a) => a,
        None => {
            let res = task.await;
            anyhow::bail!("the server did not start: {res:?}");
        }
    };
    let (publishing, publication_task) = match publication_listener {
        Some(l) => {
            let h = Handle::new();
            let server =
                axum_server::from_tcp(l)?.acceptor(NoDelayAcceptor::new()).handle(h.clone());
            let app = publication.into_make_service_with_connect_info::<SocketAddr>();
            let publication = tokio::spawn(async move { server.serve(app).await });
            let Some(bound) = h.listening().await else {
                let res = publication.await;
                // Nothing half-started stays behind: the main listener stops too.
                handle.shutdown();
                let _ = task.await;
                anyhow::bail!("the publication listener did not start: {res:?}");
            };
            (Some(bound), Some((h, publication)))
        }
        None => (None, None),
    };
    // The chain as it stands at start is verified, anchored and signed before anything is
    // served (verification holds every event to a signed checkpoint).
    if let Err(e) = svc.audit.checkpoint().await {
        tracing::error!(error = %e, "audit checkpoint at start failed");
    }
    let mut jobs = background(
        &svc,
        Duration::from_secs(cfg.audit.checkpoint_interval_secs),
        cfg.audit.checkpoint_every_events,
    );
    jobs.push(revoke_superseded(svc.certificates.clone(), cfg.pki.supersede_check_secs));
    jobs.push(tokio::spawn(async move {
        // SQLite's text-search index is filled in batches, off the issuance path.
        let mut t = tokio::time::interval(Duration::from_secs(1));
        t.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            t.tick().await;
            if let Err(e) = search_index.index_certificate_search().await {
                tracing::warn!(error = %e, "indexing certificates for text search failed");
            }
        }
    }));
    let refresh = Duration::from_millis(cfg.server.settings_refresh_ms);
    jobs.push(refresh_settings(svc.settings.clone(), exposure, refresh));
    jobs.extend(crate::plugins::reload_on_hangup(plugin_host.clone()));
    let watcher = if cfg.plugins.watch.unwrap_or(true) {
        crate::plugins::watch(plugin_host, cfg).map(|(w, task)| {
            jobs.push(task);
            w
        })
    } else {
        None
    };
    Ok(Running {
        addr,
        scheme,
        publishing,
        publication_task,
        handle,
        task,
        jobs,
        audit: svc.audit,
        grace: Duration::from_secs(cfg.server.shutdown_grace_secs),
        _watcher: watcher,
        registry,
    })
}

fn background(
    svc: &Services,
    checkpoint_every: Duration,
    checkpoint_events: u64,
) -> Vec<JoinHandle<()>> {
    let audit = svc.audit.clone();
    let cp = tokio::spawn(async move {
        // Every second: a checkpoint is due when the interval passed or when enough events
        // wait for one (each start verifies those before serving).
        let mut t = tokio::time::interval(Duration::from_secs(1).min(checkpoint_every));
        t.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        t.tick().await;
        let mut last = tokio::time::Instant::now();
        let mut failed = false;
        loop {
            t.tick().await;
            // After a failure (a broken chain stays broken) only the interval retries, so a
            // failing checkpoint is not re-walked every second.
            let by_count = checkpoint_events > 0
                && !failed
                && audit
                    .unanchored_events()
                    .await
                    .is_ok_and(|n| u64::try_from(n).unwrap_or(0) >= checkpoint_events);
            if !by_count && last.elapsed() < checkpoint_every {
                continue;
            }
            last = tokio::time::Instant::now();
            failed = match audit.checkpoint().await {
                Ok(_) => false,
                Err(e) => {
                    tracing::error!(error = %e, "audit checkpoint failed");
                    true
                }
            };
        }
    });
    let audit = svc.audit.clone();
    let refusals = tokio::spawn(async move {
        let mut t = tokio::time::interval(Duration::from_secs(15));
        loop {
            t.tick().await;
            if let Err(e) = audit.flush_refusals(false).await {
                tracing::warn!(error = %e, "writing refusal summaries failed");
            }
        }
    });
    let keys = svc.api_keys.clone();
    let csc = svc.csc.clone();
    let acme = svc.acme.clone();
    let prune = tokio::spawn(async move {
        let mut t = tokio::time::interval(Duration::from_secs(3600));
        loop {
            t.tick().await;
            if let Err(e) = keys.prune_rate_limits().await {
                tracing::warn!(error = %e, "pruning rate-limit windows failed");
            }
            if let Err(e) = keys.prune_ui_sessions().await {
                tracing::warn!(error = %e, "pruning ended UI sessions failed");
            }
            if let Err(e) = csc.prune().await {
                tracing::warn!(error = %e, "pruning expired CSC tokens and SADs failed");
            }
            if let Err(e) = acme.prune().await {
                tracing::warn!(error = %e, "pruning expired ACME nonces failed");
            }
        }
    });
    let cas = svc.cas.clone();
    // CRLs are remade on demand after changes; this keeps them fresh when nobody asks.
    let crls = tokio::spawn(async move {
        let mut t = tokio::time::interval(Duration::from_secs(60));
        // Root CRLs are signed offline: warn at start and hourly from 30 days before they run out.
        let root_warning = time::Duration::days(30);
        if let Err(e) = cas.warn_root_crls(root_warning).await {
            tracing::warn!(error = %e, "checking root CRLs failed");
        }
        t.tick().await;
        let mut minutes = 0u32;
        loop {
            t.tick().await;
            if let Err(e) = cas.refresh_crls().await {
                tracing::warn!(error = %e, "refreshing CRLs failed");
            }
            minutes += 1;
            if minutes.is_multiple_of(60)
                && let Err(e) = cas.warn_root_crls(root_warning).await
            {
                tracing::warn!(error = %e, "checking root CRLs failed");
            }
        }
    });
    vec![cp, refusals, prune, crls]
}

/// Revokes superseded certificates once their grace has ended (every node may run it: a
/// certificate is revoked once, the others find it revoked already).
fn revoke_superseded(certs: Arc<CertificateService>, every_secs: u64) -> JoinHandle<()> {
    tokio::spawn(async move {
        let mut t = tokio::time::interval(Duration::from_secs(every_secs));
        t.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            t.tick().await;
            match certs.revoke_superseded().await {
                Ok(0) => {}
                Ok(n) => tracing::info!(revoked = n, "superseded certificates revoked"),
                Err(e) => tracing::warn!(error = %e, "revoking superseded certificates failed"),
            }
        }
    })
}

/// Re-reads settings changed on other nodes.
fn refresh_settings(
    settings: Arc<SettingsService>,
    exposure: Arc<Exposure>,
    every: Duration,
) -> JoinHandle<()> {
    tokio::spawn(async move {
        let mut t = tokio::time::interval(every);
        loop {
            t.tick().await;
            let _sync = exposure.sync_guard().await;
            match settings.exposure_raw().await {
                Ok(raw) => {
                    if let Err(e) = exposure.sync(raw.as_deref()) {
                        tracing::error!(error = %e, "stored exposure configuration rejected; keeping the current one");
                    }
                }
                Err(e) => tracing::warn!(error = %e, "reading settings failed"),
            }
        }
    })
}

/// Resolves when SIGINT or SIGTERM arrives.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = term => {},
    }
}

/// Says how many secrets sealed by an earlier version (before each was bound to its row) are
/// left: they are refused until `sigil migrate --reseal-legacy` re-seals them.
async fn warn_of_legacy_secrets(store: &dyn Store, master: &MasterKey) -> Result<()> {
    let n = sigil_core::sealing::reseal::count_legacy(store, master).await?;
    if n > 0 {
        tracing::warn!(
            secrets = n,
            "secrets sealed by an earlier version are refused: stop every node and run \
             `sigil migrate --reseal-legacy` once"
        );
    }
    Ok(())
}

/// The configured PKCS#11 token, logged in; a missing module or token, or a wrong PIN, stops
/// start-up with one line naming the module and the token (never the PIN).
fn open_token(pki: &crate::config::PkiSection) -> Result<Option<Arc<sigil_pki::pkcs11::Token>>> {
    let Some(p) = &pki.pkcs11 else { return Ok(None) };
    let pin = zeroize::Zeroizing::new(
        std::fs::read_to_string(&p.pin_file)
            .with_context(|| format!("pki.pkcs11.pin_file {}", p.pin_file.display()))?,
    );
    {
        use std::os::unix::fs::PermissionsExt as _;
        if let Ok(m) = std::fs::metadata(&p.pin_file)
            && m.permissions().mode() & 0o077 != 0
        {
            tracing::warn!(file = %p.pin_file.display(),
                "pki.pkcs11.pin_file can be read by other users than its owner; chmod 0600 it");
        }
    }
    let cfg = sigil_pki::pkcs11::TokenConfig {
        module: p.module.clone(),
        token_label: p.token_label.clone(),
        pin: zeroize::Zeroizing::new(pin.trim_end_matches(['\r', '\n']).to_owned()),
    };
    let token =
        sigil_pki::pkcs11::Token::open(&cfg).map_err(|e| anyhow::anyhow!("pki.pkcs11: {e}"))?;
    tracing::info!(module = %p.module.display(), token = %p.token_label, "PKCS#11 token logged in");
    Ok(Some(token))
}
