//! `sigil backup --out DIR`: what restoring an installation needs, in a new directory that
//! `sigil serve --data-dir DIR` starts from — a consistent copy of the SQLite database (taken
//! online, while the server runs) and the key files (master key, audit key, local CA and TLS
//! files, root keys, first-start admin key, audit anchor log). Everything is written owner-only
//! (0600 files, 0700 directories). On PostgreSQL the database is the operator's to dump
//! (`pg_dump`); the key files are copied all the same.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};

use crate::config::Config;

/// What a backup copied.
#[derive(Debug, Default)]
pub struct Report {
    /// Files written, relative to the backup directory.
    pub files: Vec<PathBuf>,
    /// Whether the database is in the backup (SQLite) or must be dumped separately.
    pub database_copied: bool,
}

/// Copies `from` to `to` (mode 0600) if it exists; returns whether it did.
fn copy_private(from: &Path, to: &Path) -> Result<bool> {
    if !from.is_file() {
        return Ok(false);
    }
    let data = std::fs::read(from).with_context(|| format!("reading {}", from.display()))?;
    sigil_pki::write_private(to, &data)?;
    Ok(true)
}

/// Backs up the installation `cfg` describes into `out`, which must be new or empty; prints a
/// line per file on stderr.
pub async fn run(cfg: &Config, out: &Path) -> Result<Report> {
    if out.exists() && std::fs::read_dir(out).map(|mut d| d.next().is_some()).unwrap_or(true) {
        bail!("{} exists and is not empty: back up into a new directory", out.display());
    }
    sigil_pki::private_dir(out)?;
    let data = &cfg.server.data_dir;
    let mut report = Report::default();
    let mut copy = |from: &Path, name: &Path| -> Result<()> {
        if copy_private(from, &out.join(name))? {
            eprintln!("  {}", name.display());
            report.files.push(name.to_path_buf());
        }
        Ok(())
    };
    // Keys and logs under their default names, so that the copy starts with no configuration.
    // The anchor log goes first: the database copied after it is at least as new as every
    // checkpoint the log anchors (a log ahead of its chain reads as a rollback).
    copy(&cfg.anchor_path(), Path::new("audit-anchors.log"))?;
    let audit_key = cfg.audit_key_path();
    copy(&audit_key, Path::new("audit-key.pem"))?;
    copy(&audit_key.with_extension("pub.pem"), Path::new("audit-key.pub.pem"))?;
    copy(&cfg.master_key_path(), Path::new("master.key"))?;
    copy(&data.join("admin.key"), Path::new("admin.key"))?;
    for dir in ["tls", "ca"] {
        let Ok(entries) = std::fs::read_dir(data.join(dir)) else { continue };
        let mut names: Vec<PathBuf> = entries.filter_map(|e| e.ok().map(|e| e.path())).collect();
        names.sort();
        for p in names.iter().filter(|p| p.is_file()) {
            if let Some(name) = p.file_name() {
                copy(p, &Path::new(dir).join(name))?;
            }
        }
    }
    let url = cfg.database_url();
    if url.starts_with("sqlite:") {
        let db = out.join("sigil.db");
        sigil_store::sqlite_backup(&url, &db).await?;
        eprintln!("  sigil.db (online copy)");
        report.files.push("sigil.db".into());
        report.database_copied = true;
    }
    if cfg.pki.master_key_file.is_some() || cfg.audit.signing_key_file.is_some() {
        eprintln!(
            "note: the configuration names key files outside the data directory; the copies are \
             under their default names in {}",
            out.display()
        );
    }
    Ok(report)
}
