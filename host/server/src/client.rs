//! `sigil cert …`: the client side of the REST API for people at a terminal (what `step ca
//! certificate` and `vault write pki/issue` give their users). Keys are made here and never
//! sent; requests go to a running server over HTTPS with an API key. Exit codes: 0 done, 1 the
//! server refused (its problem `code` and `detail` are printed) or could not be reached, 2 a
//! usage error.

use std::io::IsTerminal as _;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use clap::{Args, Subcommand, ValueEnum};
use serde_json::{Value, json};
use sigil_core::certs::KeyType;

/// Where the server is and how to reach it.
#[derive(Debug, Args)]
pub struct Connection {
    /// Server URL (default https://127.0.0.1:8443).
    #[arg(long, global = true, env = "SIGIL_URL")]
    pub server: Option<String>,
    /// File holding the API key. Without it, the key in the environment variable SIGIL_API_KEY,
    /// else <data_dir>/admin.key. Never the key itself on the command line, where other users
    /// of the machine see it.
    #[arg(long, global = true)]
    pub api_key_file: Option<PathBuf>,
    /// PEM bundle of CAs to trust for the server (default <data_dir>/tls/ca.pem).
    #[arg(long, global = true, env = "SIGIL_CA_FILE")]
    pub ca_file: Option<PathBuf>,
}

/// How lists and records are printed.
#[derive(Debug, Clone, Copy, ValueEnum, Default)]
pub enum Output {
    /// Aligned columns for people.
    #[default]
    Table,
    /// The server's JSON, for scripts.
    Json,
}

/// `sigil cert …`.
#[derive(Debug, Subcommand)]
pub enum CertCommand {
    /// Make a key and a request here, have the server issue, write the certificate and chain.
    Issue {
        /// Profile (GET /api/v1/profiles lists them).
        #[arg(long)]
        profile: String,
        /// Subject, for example "CN=alice,O=Acme".
        #[arg(long)]
        subject: String,
        /// Subject alternative name: dns:NAME, ip:ADDRESS or email:ADDRESS (repeatable).
        #[arg(long)]
        san: Vec<String>,
        /// Key type.
        #[arg(long, value_enum, default_value_t = KeyKind::P256)]
        key_type: KeyKind,
        /// Where to write the certificate followed by its chain (PEM).
        #[arg(long)]
        out: PathBuf,
        /// Where to write the private key (PEM, mode 0600).
        #[arg(long)]
        key_out: PathBuf,
    },
    /// List certificates (every page, or up to --limit).
    List {
        /// `active`, `suspended`, `revoked` or `expired`.
        #[arg(long)]
        status: Option<String>,
        /// Profile name.
        #[arg(long)]
        profile: Option<String>,
        /// Subject or SAN contains.
        #[arg(long)]
        q: Option<String>,
        /// At most this many.
        #[arg(long)]
        limit: Option<usize>,
        /// Output format.
        #[arg(long, value_enum, default_value_t = Output::Table)]
        output: Output,
    },
    /// Show one certificate.
    Show {
        /// Certificate id.
        id: String,
        /// Output format.
        #[arg(long, value_enum, default_value_t = Output::Table)]
        output: Output,
    },
    /// Revoke a certificate (final).
    Revoke {
        /// Certificate id.
        id: String,
        /// RFC 5280 reason: unspecified, keyCompromise, affiliationChanged, superseded,
        /// cessationOfOperation, privilegeWithdrawn, …
        #[arg(long, default_value = "unspecified")]
        reason: String,
        /// Free text for the audit trail.
        #[arg(long)]
        comment: Option<String>,
    },
    /// Put a certificate on hold.
    Suspend {
        /// Certificate id.
        id: String,
        /// Free text for the audit trail.
        #[arg(long)]
        comment: Option<String>,
    },
    /// Release a certificate from hold.
    Reactivate {
        /// Certificate id.
        id: String,
        /// Free text for the audit trail.
        #[arg(long)]
        comment: Option<String>,
    },
    /// Renew a certificate: with the same key, or with a new one made here (--key-out).
    Renew {
        /// Certificate id.
        id: String,
        /// Where to write the new certificate and its chain (PEM).
        #[arg(long)]
        out: Option<PathBuf>,
        /// Make a new key of --key-type here and write it to this file (mode 0600); without
        /// it the certificate is renewed for the key it certifies.
        #[arg(long)]
        key_out: Option<PathBuf>,
        /// Key type of the new key.
        #[arg(long, value_enum, default_value_t = KeyKind::P256)]
        key_type: KeyKind,
    },
}

/// Key types `--key-type` takes.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum KeyKind {
    /// ECDSA P-256.
    P256,
    /// ECDSA P-384.
    P384,
    /// RSA 2048.
    #[value(name = "rsa-2048")]
    Rsa2048,
    /// RSA 3072.
    #[value(name = "rsa-3072")]
    Rsa3072,
}

impl From<KeyKind> for KeyType {
    fn from(k: KeyKind) -> Self {
        match k {
            KeyKind::P256 => KeyType::P256,
            KeyKind::P384 => KeyType::P384,
            KeyKind::Rsa2048 => KeyType::Rsa2048,
            KeyKind::Rsa3072 => KeyType::Rsa3072,
        }
    }
}

/// A server refused: its problem, printed by [`run`] as `error: CODE: DETAIL` (exit 1).
#[derive(Debug, thiserror::Error)]
#[error("{code}: {detail} (HTTP {status})")]
pub struct Refused {
    /// HTTP status.
    pub status: u16,
    /// The problem's stable `code`.
    pub code: String,
    /// The problem's `detail`.
    pub detail: String,
}

/// A usage error found before anything was sent (exit 2).
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct Usage(pub String);

/// A connected client.
struct Api {
    http: reqwest::Client,
    base: String,
    key: String,
}

impl Api {
    fn connect(c: &Connection, data_dir: &Path) -> Result<Self> {
        let base = c.server.clone().unwrap_or_else(|| "https://127.0.0.1:8443".into());
        let base = base.trim_end_matches('/').to_owned();
        // --api-key-file if given, else SIGIL_API_KEY, else the data directory's admin key.
        let from_env = std::env::var("SIGIL_API_KEY").ok().filter(|k| !k.trim().is_empty());
        let key = match (&c.api_key_file, from_env) {
            (None, Some(k)) => k.trim().to_owned(),
            (file, _) => {
                let f = file.clone().unwrap_or_else(|| data_dir.join("admin.key"));
                std::fs::read_to_string(&f)
                    .with_context(|| {
                        format!(
                            "reading the API key from {} (give --api-key-file or SIGIL_API_KEY)",
                            f.display()
                        )
                    })?
                    .trim()
                    .to_owned()
            }
        };
        let ca = c.ca_file.clone().unwrap_or_else(|| data_dir.join("tls/ca.pem"));
        let http = reqwest::Client::builder()
            .tls_backend_preconfigured(crate::tls::client_config(&ca)?)
            .user_agent(concat!("sigil-cli/", env!("CARGO_PKG_VERSION")))
            // The API key travels in every request: never over plain HTTP.
            .https_only(true)
            .build()
            .context("building the HTTP client")?;
        Ok(Self { http, base, key })
    }

    async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
    ) -> Result<Value> {
        let mut req =
            self.http.request(method, format!("{}{path}", self.base)).bearer_auth(&self.key);
        if let Some(b) = body {
            req = req.json(&b);
        }
        let resp = req.send().await.with_context(|| format!("cannot reach {}", self.base))?;
        let status = resp.status().as_u16();
        let text = resp.text().await.context("reading the answer")?;
        let value: Value = serde_json::from_str(&text).unwrap_or(Value::String(text));
        if status >= 400 {
            let field = |k: &str| value.get(k).and_then(Value::as_str).map(str::to_owned);
            return Err(Refused {
                status,
                code: field("code").unwrap_or_else(|| format!("http_{status}")),
                detail: field("detail").unwrap_or_else(|| value.to_string()),
            }
            .into());
        }
        Ok(value)
    }
}

/// Writes `text` to `path`, mode 0600 for keys (and 0644 for certificates).
fn write(path: &Path, text: &str, private: bool) -> Result<()> {
    if private {
        sigil_pki::write_private(path, text.as_bytes())?;
    } else {
        std::fs::write(path, text).with_context(|| format!("writing {}", path.display()))?;
    }
    Ok(())
}

/// The certificate followed by its chain, as one PEM file.
fn pem_with_chain(c: &Value) -> String {
    let mut out = c["certificate"].as_str().unwrap_or_default().to_owned();
    for p in c["chain"].as_array().into_iter().flatten().filter_map(Value::as_str) {
        if !out.ends_with('\n') {
            out.push('\n');
        }
        out.push_str(p);
    }
    out
}

fn progress(msg: &str) {
    if std::io::stderr().is_terminal() {
        eprint!("\r{msg}\x1b[K");
    }
}

fn done_progress() {
    if std::io::stderr().is_terminal() {
        eprint!("\r\x1b[K");
    }
}

fn print_table(rows: &[&Value]) {
    let col =
        |c: &Value, k: &str| c[k].as_str().map(str::to_owned).unwrap_or_else(|| c[k].to_string());
    println!("{:<36}  {:<10}  {:<12}  {:<20}  SUBJECT", "ID", "STATUS", "PROFILE", "NOT AFTER");
    for c in rows {
        let not_after: String = col(c, "not_after").chars().take(20).collect();
        println!(
            "{:<36}  {:<10}  {:<12}  {:<20}  {}",
            col(c, "id"),
            col(c, "status"),
            col(c, "profile"),
            not_after,
            col(c, "subject")
        );
    }
}

fn print_one(c: &Value, output: Output) -> Result<()> {
    match output {
        Output::Json => println!("{}", serde_json::to_string_pretty(c)?),
        Output::Table => {
            for k in
                ["id", "serial", "status", "profile", "subject", "ca", "not_before", "not_after"]
            {
                if let Some(v) = c.get(k).filter(|v| !v.is_null()) {
                    println!("{k:<12} {}", v.as_str().map_or_else(|| v.to_string(), str::to_owned));
                }
            }
            if let Some(sans) = c.get("sans").and_then(Value::as_array).filter(|s| !s.is_empty()) {
                let list: Vec<String> = sans
                    .iter()
                    .map(|s| {
                        format!(
                            "{}:{}",
                            s["type"].as_str().unwrap_or("?"),
                            s["value"].as_str().unwrap_or("?")
                        )
                    })
                    .collect();
                println!("{:<12} {}", "sans", list.join(", "));
            }
        }
    }
    Ok(())
}

fn new_key(
    kind: KeyKind,
    subject: &str,
    sans: &[String],
) -> Result<(zeroize::Zeroizing<String>, String)> {
    let subject = sigil_pki::request::parse_subject(subject)?;
    let sans: Vec<_> =
        sans.iter().map(|s| sigil_pki::request::parse_san(s)).collect::<sigil_core::Result<_>>()?;
    let k = KeyType::from(kind);
    progress(&format!("generating a {k} key…"));
    let made = sigil_pki::request::new_request(k, &subject, &sans);
    done_progress();
    Ok(made?)
}

/// Runs a `sigil cert` command; returns the exit code.
pub async fn run(cmd: CertCommand, conn: &Connection, data_dir: &Path) -> Result<i32> {
    match exec(cmd, conn, data_dir).await {
        Ok(()) => Ok(0),
        Err(e) => {
            if let Some(r) = e.downcast_ref::<Refused>() {
                eprintln!("error: {}: {}", r.code, r.detail);
                return Ok(1);
            }
            if let Some(u) = e.downcast_ref::<Usage>() {
                eprintln!("error: {u}");
                return Ok(2);
            }
            Err(e)
        }
    }
}

async fn exec(cmd: CertCommand, conn: &Connection, data_dir: &Path) -> Result<()> {
    use reqwest::Method;
    check_usage(&cmd)?;
    let api = Api::connect(conn, data_dir)?;
    match cmd {
        CertCommand::Issue { profile, subject, san, key_type, out, key_out } => {
            let (key, csr) = new_key(key_type, &subject, &san)?;
            let c = api
                .call(
                    Method::POST,
                    "/api/v1/certificates",
                    Some(json!({"csr": csr, "profile": profile})),
                )
                .await?;
            write(&key_out, &key, true)?;
            write(&out, &pem_with_chain(&c), false)?;
            eprintln!(
                "issued {} (serial {}); certificate and chain in {}, key in {}",
                c["id"].as_str().unwrap_or("?"),
                c["serial"].as_str().unwrap_or("?"),
                out.display(),
                key_out.display()
            );
        }
        CertCommand::List { status, profile, q, limit, output } => {
            let mut items: Vec<Value> = Vec::new();
            let mut cursor: Option<String> = None;
            loop {
                let page_size = limit.map_or(500, |l| l.saturating_sub(items.len()).clamp(1, 500));
                let mut query = vec![("limit".to_owned(), page_size.to_string())];
                for (k, v) in
                    [("status", &status), ("profile", &profile), ("q", &q), ("cursor", &cursor)]
                {
                    if let Some(v) = v {
                        query.push((k.to_owned(), v.clone()));
                    }
                }
                let qs = query_string(&query);
                let page =
                    api.call(Method::GET, &format!("/api/v1/certificates?{qs}"), None).await?;
                items.extend(page["items"].as_array().cloned().unwrap_or_default());
                progress(&format!("{} certificates…", items.len()));
                cursor = page["next_cursor"].as_str().map(str::to_owned);
                if cursor.is_none() || limit.is_some_and(|l| items.len() >= l) {
                    break;
                }
            }
            done_progress();
            match output {
                Output::Json => println!("{}", serde_json::to_string_pretty(&items)?),
                Output::Table => print_table(&items.iter().collect::<Vec<_>>()),
            }
        }
        CertCommand::Show { id, output } => {
            let c =
                api.call(Method::GET, &format!("/api/v1/certificates/{}", seg(&id)), None).await?;
            print_one(&c, output)?;
        }
        CertCommand::Revoke { id, reason, comment } => {
            let c = api
                .call(
                    Method::POST,
                    &format!("/api/v1/certificates/{}/revoke", seg(&id)),
                    Some(json!({"reason": reason, "comment": comment})),
                )
                .await?;
            eprintln!("revoked {} ({})", id, c["revocation_reason"].as_str().unwrap_or(&reason));
        }
        CertCommand::Suspend { id, comment } => {
            hold(&api, &id, "suspend", comment).await?;
            eprintln!("suspended {id}");
        }
        CertCommand::Reactivate { id, comment } => {
            hold(&api, &id, "reactivate", comment).await?;
            eprintln!("reactivated {id}");
        }
        CertCommand::Renew { id, out, key_out, key_type } => {
            let old =
                api.call(Method::GET, &format!("/api/v1/certificates/{}", seg(&id)), None).await?;
            let (body, key) = match &key_out {
                Some(_) => {
                    // The new request names what the old certificate did.
                    let subject = old["subject"].as_str().unwrap_or_default().to_owned();
                    let sans: Vec<String> = old["sans"]
                        .as_array()
                        .into_iter()
                        .flatten()
                        .filter_map(|s| {
                            Some(format!("{}:{}", s["type"].as_str()?, s["value"].as_str()?))
                        })
                        .collect();
                    let (key, csr) = new_key(key_type, &subject, &sans)?;
                    (json!({"csr": csr}), Some(key))
                }
                None => (json!({}), None),
            };
            let c = api
                .call(Method::POST, &format!("/api/v1/certificates/{}/renew", seg(&id)), Some(body))
                .await?;
            if let (Some(path), Some(key)) = (&key_out, &key) {
                write(path, key, true)?;
            }
            if let Some(out) = &out {
                write(out, &pem_with_chain(&c), false)?;
            }
            eprintln!("renewed {id} as {}", c["id"].as_str().unwrap_or("?"));
            if out.is_none() {
                print_one(&c, Output::Table)?;
            }
        }
    }
    Ok(())
}

/// Puts certificate `id` on hold or releases it (`action`: `suspend` or `reactivate`).
async fn hold(api: &Api, id: &str, action: &str, comment: Option<String>) -> Result<()> {
    let path = format!("/api/v1/certificates/{}/{action}", seg(id));
    api.call(reqwest::Method::POST, &path, Some(json!({"comment": comment}))).await?;
    Ok(())
}

/// A path segment: the hyphenated form of an id [`check_usage`] found to be a UUID.
fn seg(id: &str) -> String {
    uuid::Uuid::parse_str(id).map(|u| u.hyphenated().to_string()).unwrap_or_default()
}

/// `k=v&…`, percent-encoded.
fn query_string(pairs: &[(String, String)]) -> String {
    let enc = |s: &str| {
        s.bytes()
            .map(|b| match b {
                b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                    (b as char).to_string()
                }
                _ => format!("%{b:02X}"),
            })
            .collect::<String>()
    };
    pairs.iter().map(|(k, v)| format!("{}={}", enc(k), enc(v))).collect::<Vec<_>>().join("&")
}

/// Refuses what cannot work before a request is made: a bad subject, name or id, one file
/// for both the key and the certificate.
pub fn check_usage(cmd: &CertCommand) -> Result<()> {
    let usage = |m: String| anyhow::Error::new(Usage(m));
    match cmd {
        CertCommand::Issue { subject, san, out, key_out, .. } => {
            sigil_pki::request::parse_subject(subject).map_err(|e| usage(e.to_string()))?;
            for s in san {
                sigil_pki::request::parse_san(s).map_err(|e| usage(e.to_string()))?;
            }
            let same = |a: &Path, b: &Path| match (std::path::absolute(a), std::path::absolute(b)) {
                (Ok(x), Ok(y)) => x.components().eq(y.components()),
                _ => a == b,
            };
            if same(out, key_out) {
                return Err(usage("--out and --key-out name the same file".into()));
            }
        }
        CertCommand::Show { id, .. }
        | CertCommand::Revoke { id, .. }
        | CertCommand::Suspend { id, .. }
        | CertCommand::Reactivate { id, .. }
        | CertCommand::Renew { id, .. } => {
            uuid::Uuid::parse_str(id)
                .map_err(|_| usage(format!("`{id}` is not a certificate id (a UUID)")))?;
        }
        CertCommand::List { .. } => {}
    }
    Ok(())
}
