//! The command line: `serve`, `migrate`, `check-config`, `apikey`, `audit verify`, `backup`,
//! `plugin`, and `ca` (the offline root, in `ca_cli`).

use std::io::Write as _;
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{Context, Result, bail};
use base64::Engine as _;
use clap::{Args, Parser, Subcommand};
use sigil_core::access::api_key::{RateLimit, RateUnit};
use sigil_core::access::api_keys::CreateApiKey;
use sigil_core::access::authz::{Principal, perm};
use sigil_core::audit::export::{ExportSignature, decode_json};
use sigil_core::audit::{ChainVerifier, Freshness};
use sigil_core::ports::{ApiKeyFilter, PageRequest};
use sigil_pki::audit_key::Keyring;

use crate::config::Config;
use crate::startup;

/// Sigil: certificates, tokens and remote signing.
#[derive(Debug, Parser)]
#[command(name = "sigil", version)]
pub struct Cli {
    /// Configuration file (TOML); see config/sigil.toml.
    #[arg(long, global = true, env = "SIGIL_CONFIG")]
    pub config: Option<PathBuf>,
    /// Data directory (overrides server.data_dir).
    #[arg(long, global = true)]
    pub data_dir: Option<PathBuf>,
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// Subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the server.
    Serve {
        /// Address to listen on (port 0 picks a free port).
        #[arg(long)]
        listen: Option<String>,
        /// Address of the plain-HTTP publication listener (CRLs, OCSP, CA certificates;
        /// overrides pki.http_listen; port 0 picks a free port).
        #[arg(long)]
        http_listen: Option<String>,
    },
    /// Apply database migrations and exit.
    Migrate {
        /// Also re-seal, once, the secrets an earlier version sealed (before each was bound to
        /// its row), each only if it fits its row; run it with every node stopped.
        #[arg(long)]
        reseal_legacy: bool,
    },
    /// Load and check the configuration, print it (secrets redacted) and exit.
    CheckConfig,
    /// Manage API keys directly in the database (no server needed).
    #[command(subcommand)]
    Apikey(ApiKeyCommand),
    /// Audit trail tools.
    #[command(subcommand)]
    Audit(AuditCommand),
    /// Copy the database (online, consistent) and the key files into a new directory that
    /// `sigil serve --data-dir DIR` starts from; on PostgreSQL, the key files only (use pg_dump).
    Backup {
        /// The new (or empty) directory to write.
        #[arg(long)]
        out: PathBuf,
    },
    /// Plugin tools.
    #[command(subcommand)]
    Plugin(PluginCommand),
    /// CA tools: an offline root that signs the issuing CA and its own CRLs.
    #[command(subcommand)]
    Ca(crate::ca_cli::CaCommand),
    /// Certificates on a running server: issue (the key is made here), list, show, revoke,
    /// suspend, reactivate, renew.
    Cert {
        /// Server, API key and trust.
        #[command(flatten)]
        conn: crate::client::Connection,
        /// What to do.
        #[command(subcommand)]
        cmd: crate::client::CertCommand,
    },
    /// Print a shell completion script (bash, zsh, fish, elvish, powershell).
    Completions {
        /// The shell.
        shell: clap_complete::Shell,
    },
    /// Print the man page (roff) of `sigil`.
    Man,
}

/// `sigil plugin …`.
#[derive(Debug, Subcommand)]
pub enum PluginCommand {
    /// Print a component's world, WIT version, imports and whether this host accepts it.
    Check {
        /// The component.
        file: PathBuf,
    },
    /// Run one call under production limits and print the result, duration and peak memory.
    Run {
        /// The component.
        file: PathBuf,
        /// The call's input as JSON: validator `{hook, attributes, sans, key_type, key_bits,
        /// context}`; endpoint `{method, path, query, headers, body}`; workflow `{kind,
        /// object_type, object_id, json}`; ca-connector `{call: info|issue|revoke|suspend|
        /// reactivate, …}`.
        #[arg(long)]
        input: PathBuf,
        /// Origins `outbound-http` may reach during the call (repeatable).
        #[arg(long = "allow-host")]
        allow_host: Vec<String>,
        /// A value for the plugin's `config` interface, `KEY=VALUE` (repeatable).
        #[arg(long = "set", value_parser = key_value)]
        set: Vec<(String, String)>,
        /// Deadline, ms.
        #[arg(long, default_value_t = 100)]
        timeout_ms: u64,
        /// Memory limit, MiB.
        #[arg(long, default_value_t = 32)]
        memory_mib: u64,
    },
}

/// `sigil apikey …`.
#[derive(Debug, Subcommand)]
pub enum ApiKeyCommand {
    /// Create a key and print its secret once.
    Create(CreateArgs),
    /// List keys.
    List,
    /// Revoke a key.
    Revoke {
        /// Key id.
        id: String,
        /// Reason, recorded in the audit trail.
        #[arg(long)]
        reason: Option<String>,
        /// Also revoke every key it minted, and theirs.
        #[arg(long)]
        cascade: bool,
    },
}

/// Arguments of `sigil apikey create`.
#[derive(Debug, Args)]
pub struct CreateArgs {
    /// Unique name.
    #[arg(long)]
    pub name: String,
    /// Description.
    #[arg(long, default_value = "")]
    pub description: String,
    /// `30d`, `60d`, `never` or an RFC 3339 date-time.
    #[arg(long, default_value = "never")]
    pub expires: String,
    /// Permissions, comma-separated (`*` for all).
    #[arg(long, value_delimiter = ',', required = true)]
    pub permissions: Vec<String>,
    /// Rate limit as N/minute, N/hour or N/day.
    #[arg(long)]
    pub rate_limit: Option<String>,
    /// Allowed client address or CIDR (repeatable).
    #[arg(long = "ip")]
    pub ip_whitelist: Vec<String>,
}

/// `sigil audit …`.
#[derive(Debug, Subcommand)]
pub enum AuditCommand {
    /// Verify the chain in a database, or an export file and its detached signature.
    Verify(VerifyArgs),
}

/// Arguments of `sigil audit verify`.
#[derive(Debug, Args)]
pub struct VerifyArgs {
    /// Database to verify (default: the configured one).
    #[arg(long, conflicts_with = "file")]
    pub database_url: Option<String>,
    /// An export file (JSON exports are also checked as a chain).
    #[arg(long)]
    pub file: Option<PathBuf>,
    /// The detached signature (the `Sigil-Signature` header value, or its decoded JSON).
    #[arg(long, requires = "file")]
    pub signature: Option<PathBuf>,
    /// Trust only these audit public keys (PEM; repeatable). Default: this node's audit key
    /// (from `--data-dir`) and the configured `audit.trusted_keys`.
    #[arg(long)]
    pub public_key: Vec<PathBuf>,
    /// The anchor log to hold the database to. Default: this node's, when it exists.
    #[arg(long, conflicts_with = "file")]
    pub anchor_file: Option<PathBuf>,
    /// Fail when the newest checkpoint is older than this many seconds (0: no bound). Default:
    /// `audit.checkpoint_max_age_secs`.
    #[arg(long, conflicts_with = "file")]
    pub max_checkpoint_age: Option<u64>,
}

fn parse_rate(s: &str) -> Result<RateLimit> {
    let (n, per) = s.split_once('/').context("rate limit must look like 100/minute")?;
    let per = RateUnit::parse(per).context("rate limit unit must be minute, hour or day")?;
    Ok(RateLimit { requests: n.parse().context("rate limit count")?, per })
}

/// Runs the command line.
pub async fn run(cli: Cli) -> Result<i32> {
    let mut cfg = Config::load(cli.config.as_deref())?;
    if let Some(d) = cli.data_dir {
        cfg.server.data_dir = d;
    }
    match cli.command {
        Command::Serve { listen, http_listen } => {
            if let Some(l) = listen {
                cfg.server.listen = l;
            }
            if http_listen.is_some() {
                cfg.pki.http_listen = http_listen;
            }
            let running = startup::start(&cfg).await?;
            println!("listening on {}://{}", running.scheme, running.addr);
            if let Some(a) = running.publishing {
                println!("publishing on http://{a}");
            }
            let _ = std::io::stdout().flush();
            startup::shutdown_signal().await;
            tracing::info!("shutting down: finishing in-flight requests");
            running.shutdown().await?;
            Ok(0)
        }
        Command::Migrate { reseal_legacy } => {
            sigil_pki::private_dir(&cfg.server.data_dir)?;
            let store = startup::open_store(&cfg).await?;
            println!("migrations applied to {}", sigil_store::redact_url(&cfg.database_url()));
            if reseal_legacy {
                let master = sigil_pki::seal::MasterKey::load(&cfg.master_key_path())?;
                let now = time::OffsetDateTime::now_utc();
                let r = sigil_core::sealing::reseal::reseal_legacy(&store, &master, now).await?;
                println!("legacy sealed secrets re-sealed for their rows: {}", r.resealed);
                for (at, why) in &r.refused {
                    eprintln!("left unusable: {at}: {why}");
                }
            }
            Ok(0)
        }
        Command::CheckConfig => {
            let mut shown = cfg.redacted();
            shown.database.url = Some(sigil_store::redact_url(&cfg.database_url()));
            println!("{}", serde_json::to_string_pretty(&shown)?);
            let (_, doc) = sigil_api::routes();
            sigil_api::exposure::Exposure::new(sigil_api::endpoints(&doc), cfg.exposure.clone())?;
            let problems = cfg.problems();
            if problems.is_empty() {
                eprintln!("configuration is valid");
                return Ok(0);
            }
            for p in &problems {
                eprintln!("error: {p}");
            }
            eprintln!("configuration is not valid: {} problems", problems.len());
            Ok(1)
        }
        Command::Apikey(c) => apikey(&cfg, c).await,
        Command::Cert { conn, cmd } => crate::client::run(cmd, &conn, &cfg.server.data_dir).await,
        Command::Completions { shell } => {
            let mut cmd = <Cli as clap::CommandFactory>::command();
            clap_complete::generate(shell, &mut cmd, "sigil", &mut std::io::stdout());
            Ok(0)
        }
        Command::Man => {
            let cmd = <Cli as clap::CommandFactory>::command();
            clap_mangen::Man::new(cmd).render(&mut std::io::stdout())?;
            Ok(0)
        }
        Command::Backup { out } => {
            eprintln!("backing up {} to {}", cfg.server.data_dir.display(), out.display());
            let report = crate::backup::run(&cfg, &out).await?;
            if !report.database_copied {
                eprintln!(
                    "note: the database is on PostgreSQL ({}): back it up with pg_dump",
                    sigil_store::redact_url(&cfg.database_url())
                );
            }
            println!("backup written to {} ({} files)", out.display(), report.files.len());
            Ok(0)
        }
        Command::Audit(AuditCommand::Verify(a)) => verify(&cfg, a).await,
        Command::Ca(c) => crate::ca_cli::run(&cfg, c).await,
        Command::Plugin(c) => {
            let engine = sigil_wasm::PluginEngine::new(None)?;
            match c {
                PluginCommand::Check { file } => crate::plugin_cli::check(&engine, &file),
                PluginCommand::Run { file, input, timeout_ms, memory_mib, allow_host, set } => {
                    let policy = sigil_wasm::PluginPolicy {
                        timeout_ms,
                        memory_mib,
                        allowed_hosts: allow_host,
                        config: set.into_iter().collect(),
                        ..Default::default()
                    };
                    crate::plugin_cli::run(&engine, &file, &input, policy).await
                }
            }
        }
    }
}

async fn apikey(cfg: &Config, c: ApiKeyCommand) -> Result<i32> {
    // An installation's keys: never a new database, master key and CA in a mistyped directory.
    let store = startup::open_existing(cfg).await?;
    if let ApiKeyCommand::List = c {
        // Reading only: the key service alone, and no checkpoint.
        let store: Arc<dyn sigil_core::ports::Store> = Arc::new(store);
        let keys = sigil_core::access::api_keys::ApiKeyService::new(
            store,
            Arc::new(sigil_core::ports::SystemClock),
            std::time::Duration::ZERO,
        );
        return list_keys(&keys).await;
    }
    let svc = startup::services(
        cfg,
        store,
        Arc::new(sigil_core::ports::NoValidators),
        Arc::new(sigil_core::ports::NoEvents),
        Arc::new(sigil_core::ports::NoIdentitySources),
    )
    .await?;
    let cli = Principal::local_cli();
    match c {
        ApiKeyCommand::Create(a) => {
            let req = CreateApiKey {
                name: a.name,
                description: a.description,
                expires: a.expires,
                permissions: a.permissions,
                rate_limit: a.rate_limit.as_deref().map(parse_rate).transpose()?,
                ip_whitelist: a.ip_whitelist,
                client_cert_sha256: None,
                operator_id: None,
                holder_id: None,
            };
            let k = svc.api_keys.create(&cli.authorize::<perm::ApiKeysCreate>()?, req).await?;
            eprintln!(
                "created API key {} ({}); the secret below is shown only once",
                k.key.id, k.key.name
            );
            println!("{}", k.secret.value);
        }
        ApiKeyCommand::List => return list_keys(&svc.api_keys).await,
        ApiKeyCommand::Revoke { id, reason, cascade } => {
            let id = uuid::Uuid::parse_str(&id).context("the key id is not a UUID")?;
            let cap = cli.authorize::<perm::ApiKeysRevoke>()?;
            let k = svc.api_keys.revoke(&cap, id, reason, cascade).await?;
            println!("revoked {} ({})", k.id, k.name);
        }
    }
    // What the command changed is signed and anchored at once, as a server does at shutdown.
    if let Err(e) = svc.audit.checkpoint().await {
        eprintln!("warning: no audit checkpoint was signed: {e}");
    }
    Ok(0)
}

/// `sigil apikey list`: every key, a page at a time.
async fn list_keys(keys: &sigil_core::access::api_keys::ApiKeyService) -> Result<i32> {
    let cli = Principal::local_cli();
    let cap = cli.authorize::<perm::ApiKeysRead>()?;
    let mut after = None;
    let now = time::OffsetDateTime::now_utc();
    println!("{:<38} {:<8} {:<24} PERMISSIONS", "ID", "STATUS", "NAME");
    loop {
        let page =
            keys.list(&cap, ApiKeyFilter::default(), PageRequest { after, limit: 500 }).await?;
        for k in &page.items {
            let status = format!("{:?}", k.status(now)).to_lowercase();
            println!(
                "{:<38} {:<8} {:<24} {}",
                k.id,
                status,
                k.name,
                k.permissions.to_vec().join(",")
            );
        }
        match page.next_cursor {
            Some(c) => after = Some(c),
            None => break,
        }
    }

    Ok(0)
}

/// The pinned audit keys: `--public-key` files, or this node's key and `audit.trusted_keys`.
/// Never a key found in the database or in the file being verified.
fn pinned_keys(cfg: &Config, a: &VerifyArgs) -> Result<Keyring> {
    let mut k = Keyring::default();
    for p in &a.public_key {
        k.add_file(p)
            .with_context(|| format!("{} is not a P-256 public key in PEM", p.display()))?;
    }
    if !a.public_key.is_empty() {
        return Ok(k);
    }
    let path = cfg.audit_key_path();
    if path.exists() {
        let key = sigil_pki::audit_key::AuditKey::load_or_create(&path)?;
        eprintln!("note: trusting the audit key of {}", path.display());
        k = key.keyring();
    }
    let k = startup::pinned_audit_keys(cfg, k)?;
    if k.is_empty() {
        bail!(
            "no pinned audit key: pass --public-key FILE (an audit public key, PEM) or --data-dir \
             of the node whose audit key signed"
        );
    }
    Ok(k)
}

async fn verify(cfg: &Config, a: VerifyArgs) -> Result<i32> {
    let Some(file) = &a.file else {
        let pinned = pinned_keys(cfg, &a)?;
        let mut cfg = cfg.clone();
        if let Some(url) = &a.database_url {
            cfg.database.url = Some(url.clone());
        }
        let anchor_path = a.anchor_file.clone().unwrap_or_else(|| cfg.anchor_path());
        let anchor = if anchor_path.exists() || a.anchor_file.is_some() {
            eprintln!("note: holding the chain to the anchor log {}", anchor_path.display());
            crate::anchor::FileAnchor::read_latest(&anchor_path)?
        } else {
            None
        };
        let max_age = a.max_checkpoint_age.unwrap_or(cfg.audit.checkpoint_max_age_secs);
        let freshness = (max_age > 0).then(|| Freshness {
            now_us: sigil_core::audit::unix_micros(time::OffsetDateTime::now_utc()),
            max_age_us: i64::try_from(max_age.saturating_mul(1_000_000)).unwrap_or(i64::MAX),
        });
        // Verifying reads: it never creates, migrates or otherwise changes what it checks.
        let store = startup::open_existing(&cfg).await?;
        let report =
            sigil_core::audit::trail::verify_store(&store, &pinned, anchor, freshness).await?;
        println!("{}", serde_json::to_string_pretty(&report)?);
        return Ok(if report.valid { 0 } else { 1 });
    };
    let body = std::fs::read(file).with_context(|| format!("reading {}", file.display()))?;
    let mut ok = true;
    let mut out = serde_json::Map::new();
    if let Some(sig_path) = &a.signature {
        let raw = std::fs::read_to_string(sig_path)?;
        let raw = raw.trim();
        let json = if raw.starts_with('{') {
            raw.as_bytes().to_vec()
        } else {
            base64::engine::general_purpose::STANDARD
                .decode(raw)
                .context("the signature is neither JSON nor base64")?
        };
        let sig: ExportSignature =
            serde_json::from_slice(&json).context("parsing the signature")?;
        // Never the key the signature file carries: anyone can sign a made-up export with a
        // key of their own.
        match sig.verify(&body, &pinned_keys(cfg, &a)?) {
            Ok(()) => {
                out.insert("signature".into(), "valid".into());
            }
            Err(e) => {
                ok = false;
                out.insert("signature".into(), format!("invalid: {e}").into());
            }
        }
    }
    if let Ok(events) = decode_json(&body)
        && let Some(first) = events.first()
    {
        let mut v = ChainVerifier::new(first.seq, &first.prev_hash.clone());
        let contiguous = events.windows(2).all(|w| w[1].seq == w[0].seq + 1);
        for e in events {
            v.push(e);
        }
        let report = v.finish(None);
        if contiguous || !report.valid {
            ok &= report.valid;
            out.insert("chain".into(), serde_json::to_value(&report)?);
        } else {
            out.insert(
                "chain".into(),
                "not checked: the export is filtered (not contiguous)".into(),
            );
        }
    }
    out.insert("valid".into(), ok.into());
    println!("{}", serde_json::to_string_pretty(&out)?);
    Ok(if ok { 0 } else { 1 })
}

fn key_value(s: &str) -> std::result::Result<(String, String), String> {
    s.split_once('=')
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .ok_or_else(|| format!("`{s}` is not KEY=VALUE"))
}
