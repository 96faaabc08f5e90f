//! `sigil ca …`: an offline root for production. `root`, `sign` and `crl` run on the offline
//! machine with the root key file and touch no database; `request` and `install` run on a
//! server node: the issuing key is made there, kept sealed (for that CA only) until its
//! certificate comes back, and the root key is never asked for.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{Context, Result, bail};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use clap::Subcommand;
use sigil_core::certs::ca::{Issuers, ca_key_binding};
use sigil_core::certs::cas::{CaImport, CaService};
use sigil_core::certs::{KeyType, RevocationReason};
use sigil_core::ports::SystemClock;
use sigil_pki::builtin::{BuiltinFactory, CaNames};
use sigil_pki::offline::{Root, check_chain, new_request, new_root};
use sigil_pki::seal::MasterKey;
use time::OffsetDateTime;

use crate::config::Config;
use crate::startup;

/// `sigil ca …`.
#[derive(Debug, Subcommand)]
pub enum CaCommand {
    /// Offline: create a root CA key and self-signed certificate.
    Root {
        /// Where to write the root's private key (PKCS#8 PEM, mode 0600; must not exist).
        #[arg(long)]
        key_out: PathBuf,
        /// Where to write the root certificate (PEM).
        #[arg(long)]
        cert_out: PathBuf,
        /// p256, p384, rsa2048, rsa3072 or rsa4096.
        #[arg(long, default_value = "p384")]
        key_type: String,
        /// Common name.
        #[arg(long, default_value = "Sigil Root CA")]
        cn: String,
        /// Organization (O); none when not given.
        #[arg(long)]
        org: Option<String>,
        /// Country (C, two letters); none when not given.
        #[arg(long)]
        country: Option<String>,
        /// Validity in years (1 to 50).
        #[arg(long, default_value_t = 20, value_parser = clap::value_parser!(i64).range(1..=50))]
        years: i64,
    },
    /// On a server node: make issuing CA `id`'s key (kept sealed in the data directory) and
    /// write a certificate request for the root to sign.
    Request {
        /// The CA id (what profiles and `pki.ca_id` name).
        #[arg(long)]
        id: String,
        /// Where to write the request (PEM).
        #[arg(long)]
        out: PathBuf,
        /// p256, p384, rsa2048, rsa3072 or rsa4096.
        #[arg(long, default_value = "p256")]
        key_type: String,
        /// Common name.
        #[arg(long)]
        cn: Option<String>,
        /// Organization (O); none when not given.
        #[arg(long)]
        org: Option<String>,
        /// Country (C, two letters); none when not given.
        #[arg(long)]
        country: Option<String>,
    },
    /// Offline: sign an issuing CA certificate from a request with the root key.
    Sign {
        /// The root's private key (PEM).
        #[arg(long)]
        root_key: PathBuf,
        /// The root certificate (PEM).
        #[arg(long)]
        root_cert: PathBuf,
        /// The request `sigil ca request` wrote.
        #[arg(long)]
        csr: PathBuf,
        /// Where to write the issuing CA certificate (PEM).
        #[arg(long)]
        out: PathBuf,
        /// Validity in years (1 to 50; never past the root's).
        #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(i64).range(1..=50))]
        years: i64,
        /// Most CA certificates allowed below it.
        #[arg(long, default_value_t = 0)]
        path_len: u8,
        /// The servers' `pki.public_url`: the certificate then points to the root's CRL
        /// (`<url>/crl/<ca-id>-root.crl`) and certificate (`<url>/ca/<ca-id>-root.crt`).
        #[arg(long, requires = "ca_id")]
        public_url: Option<String>,
        /// The CA id the servers will know it by (with --public-url).
        #[arg(long, requires = "public_url")]
        ca_id: Option<String>,
    },
    /// On a server node: install issuing CA `id` from its signed certificate and the root's
    /// certificate, with the key `sigil ca request` made. Restart the nodes to serve it.
    Install {
        /// The CA id given to `sigil ca request`.
        #[arg(long)]
        id: String,
        /// The issuing CA certificate (PEM) the root signed.
        #[arg(long)]
        cert: PathBuf,
        /// The certificates above it, root last (PEM).
        #[arg(long)]
        chain: PathBuf,
    },
    /// On a server node: publish CA `id`'s root CRL (signed offline with `sigil ca crl`) at
    /// `/crl/<id>-root.crl`; it must verify with the root's key and be numbered above the
    /// current one.
    PublishRootCrl {
        /// The CA id.
        #[arg(long)]
        id: String,
        /// The CRL, DER (as `sigil ca crl` writes it) or PEM (`X509 CRL`).
        #[arg(long)]
        crl: PathBuf,
    },
    /// Offline: sign the root's CRL.
    Crl {
        /// The root's private key (PEM).
        #[arg(long)]
        root_key: PathBuf,
        /// The root certificate (PEM).
        #[arg(long)]
        root_cert: PathBuf,
        /// A revoked certificate of the root: `SERIAL_HEX[:REASON]` (RFC 5280 reason name,
        /// default `cACompromise`; repeatable).
        #[arg(long)]
        revoke: Vec<String>,
        /// CRL number; default: the current Unix time, so each CRL's is larger.
        #[arg(long)]
        number: Option<u64>,
        /// Days until nextUpdate (1 to 3650).
        #[arg(long, default_value_t = 90, value_parser = clap::value_parser!(i64).range(1..=3650))]
        days: i64,
        /// Where to write the CRL (DER).
        #[arg(long)]
        out: PathBuf,
    },
}

fn read(path: &Path) -> Result<String> {
    std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))
}

/// Writes a new file, refusing to replace one (a key, a certificate or a CRL is never lost).
fn write_new(path: &Path, data: &[u8], private: bool) -> Result<()> {
    use std::io::Write as _;
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut opts, if private { 0o600 } else { 0o644 });
    let mut f = opts
        .open(path)
        .with_context(|| format!("creating {} (it must not exist)", path.display()))?;
    f.write_all(data)?;
    f.sync_all()?;
    Ok(())
}

/// The sealed key `sigil ca request` leaves for `sigil ca install`.
#[derive(serde::Serialize, serde::Deserialize)]
struct Pending {
    ca_id: String,
    key_type: KeyType,
    sealed: String,
}

fn pending_path(cfg: &Config, id: &str) -> Result<PathBuf> {
    if id.is_empty() || !id.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_')) {
        bail!("a CA id is letters, digits, '-' and '_'");
    }
    if id.ends_with("-root") {
        bail!("a CA id may not end in `-root` (reserved for the CA's root)");
    }
    Ok(cfg.root_key_dir().join(format!("{id}.pending-key.json")))
}

/// Runs `sigil ca …`.
pub async fn run(cfg: &Config, c: CaCommand) -> Result<i32> {
    let now = OffsetDateTime::now_utc();
    match c {
        CaCommand::Root { key_out, cert_out, key_type, cn, org, country, years } => {
            let names = names(org, country, Some(cn), None)?;
            let (key, cert) = new_root(KeyType::parse(&key_type)?, &names, years, now)?;
            write_new(&key_out, key.as_bytes(), true)?;
            write_new(&cert_out, cert.as_bytes(), false)?;
            eprintln!(
                "root CA written: key {} (keep it offline), certificate {}",
                key_out.display(),
                cert_out.display()
            );
        }
        CaCommand::Request { id, out, key_type, cn, org, country } => {
            let path = pending_path(cfg, &id)?;
            if path.exists() {
                bail!(
                    "{} exists: a request for {id} is pending (install it, or remove the file)",
                    path.display()
                );
            }
            let k = KeyType::parse(&key_type)?;
            let names = names(org, country, None, cn)?;
            let (pkcs8, csr) = new_request(k, &names, &format!("Sigil Issuing CA ({id})"))?;
            // The first command on a new node may come before the first start: it makes the
            // master key then, and says so (every node must use the same one).
            let key_path = cfg.master_key_path();
            if !key_path.exists() {
                eprintln!("no master key at {}: creating one", key_path.display());
            }
            let master = MasterKey::load_or_create(&key_path)?;
            let sealed = master.seal(&ca_key_binding(&id, k), &pkcs8)?;
            let pending =
                Pending { ca_id: id.clone(), key_type: k, sealed: STANDARD.encode(sealed) };
            std::fs::create_dir_all(cfg.root_key_dir())?;
            write_new(&path, serde_json::to_string(&pending)?.as_bytes(), true)?;
            write_new(&out, csr.as_bytes(), false)?;
            eprintln!(
                "request for CA {id} written to {}; its key waits, sealed, in {}",
                out.display(),
                path.display()
            );
        }
        CaCommand::Sign { root_key, root_cert, csr, out, years, path_len, public_url, ca_id } => {
            let root = Root::load(&read(&root_key)?, &read(&root_cert)?)?;
            let urls = match (public_url, ca_id) {
                (Some(u), Some(id)) => {
                    pending_path(cfg, &id)?; // the same id rules as on the servers
                    let u = u.trim_end_matches('/').to_owned();
                    if !(u.starts_with("http://") || u.starts_with("https://"))
                        || !u.bytes().all(|b| b.is_ascii_graphic())
                    {
                        bail!("--public-url is an ASCII http:// or https:// URL");
                    }
                    Some((format!("{u}/crl/{id}-root.crl"), format!("{u}/ca/{id}-root.crt")))
                }
                _ => None,
            };
            let published = urls.as_ref().map(|(c, a)| (c.as_str(), a.as_str()));
            let cert = root.sign_issuing(&read(&csr)?, years, path_len, published, now)?;
            write_new(&out, cert.as_bytes(), false)?;
            eprintln!("issuing CA certificate written to {}", out.display());
        }
        CaCommand::Install { id, cert, chain } => return install(cfg, &id, &cert, &chain).await,
        CaCommand::PublishRootCrl { id, crl } => {
            let raw = std::fs::read(&crl).with_context(|| format!("reading {}", crl.display()))?;
            let der = match std::str::from_utf8(&raw) {
                Ok(text) if text.contains("-----BEGIN") => sigil_pki::pem::decode("X509 CRL", text)
                    .with_context(|| format!("{} holds no PEM `X509 CRL` block", crl.display()))?,
                _ => raw,
            };
            let number = ca_service(cfg).await?.publish_root_crl(&id, &der).await?;
            eprintln!("root CRL {number} of CA {id} published at /crl/{id}-root.crl");
        }
        CaCommand::Crl { root_key, root_cert, revoke, number, days, out } => {
            let root = Root::load(&read(&root_key)?, &read(&root_cert)?)?;
            let revoked =
                revoke.iter().map(|r| revoked_entry(r, now)).collect::<Result<Vec<_>>>()?;
            let number = number.unwrap_or_else(|| u64::try_from(now.unix_timestamp()).unwrap_or(0));
            let der = root.crl(&revoked, number, days, now)?;
            write_new(&out, &der, false)?;
            eprintln!(
                "root CRL {number} with {} entries written to {}",
                revoked.len(),
                out.display()
            );
        }
    }
    Ok(0)
}

/// CA names from the command line; a country is two letters.
fn names(
    org: Option<String>,
    country: Option<String>,
    root_cn: Option<String>,
    issuing_cn: Option<String>,
) -> Result<CaNames> {
    if let Some(c) = &country
        && !(c.len() == 2 && c.bytes().all(|b| b.is_ascii_uppercase()))
    {
        bail!("--country is two capital letters (ISO 3166), not `{c}`");
    }
    Ok(CaNames {
        organization: org,
        country,
        root_common_name: root_cn,
        issuing_common_name: issuing_cn,
    })
}

/// The CA service over the configured database, for the commands that change CAs.
async fn ca_service(cfg: &Config) -> Result<CaService> {
    ca_service_with(cfg, Arc::new(MasterKey::load(&cfg.master_key_path())?)).await
}

async fn ca_service_with(cfg: &Config, master: Arc<MasterKey>) -> Result<CaService> {
    std::fs::create_dir_all(&cfg.server.data_dir)?;
    let store: Arc<dyn sigil_core::ports::Store> = Arc::new(startup::open_store(cfg).await?);
    Ok(CaService::new(
        store,
        Arc::new(SystemClock),
        Arc::new(Issuers::default()),
        Arc::new(BuiltinFactory::new(master, cfg.pki.public_url.clone())),
        Arc::new(sigil_pki::ocsp::OcspCodec::default()),
        time::Duration::hours(24),
    ))
}

fn revoked_entry(
    s: &str,
    now: OffsetDateTime,
) -> Result<(String, RevocationReason, OffsetDateTime)> {
    let (serial, reason) = s.split_once(':').unwrap_or((s, "cACompromise"));
    let serial = serial.trim().trim_start_matches("0x").to_ascii_lowercase();
    if serial.is_empty() || !serial.bytes().all(|b| b.is_ascii_hexdigit()) {
        bail!("--revoke {s}: the serial is hexadecimal");
    }
    let reason: RevocationReason =
        serde_json::from_value(serde_json::Value::String(reason.to_owned())).with_context(
            || format!("--revoke {s}: unknown reason (RFC 5280 names, e.g. keyCompromise)"),
        )?;
    Ok((serial, reason, now))
}

async fn install(cfg: &Config, id: &str, cert: &Path, chain: &Path) -> Result<i32> {
    let path = pending_path(cfg, id)?;
    let pending: Pending = serde_json::from_str(
        &read(&path).context("no pending request: run `sigil ca request` first")?,
    )
    .context("the pending request file is corrupt")?;
    if pending.ca_id != id {
        bail!("{} is for CA {}, not {id}", path.display(), pending.ca_id);
    }
    let (cert_pem, chain_pem) = (read(cert)?, read(chain)?);
    check_chain(&cert_pem, &chain_pem)?;
    let master = Arc::new(MasterKey::load(&cfg.master_key_path())?);
    let sealed = STANDARD.decode(&pending.sealed).context("the pending request file is corrupt")?;
    let pkcs8 = master.open(&ca_key_binding(id, pending.key_type), &sealed)?;
    let key_pem = sigil_pki::pem::encode("PRIVATE KEY", &pkcs8);
    let cas = ca_service_with(cfg, master).await?;
    let import = CaImport { cert_pem, key_pem, chain_pem, key_label: None };
    let rec = cas.install(id, &import).await?;
    std::fs::remove_file(&path).with_context(|| format!("removing {}", path.display()))?;
    eprintln!(
        "CA {id} ({}) installed; set `pki.ca_id = \"{id}\"` or name it in profiles, and restart the nodes",
        rec.key_type
    );
    Ok(0)
}
