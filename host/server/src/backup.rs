//! `sigil backup --out DIR`: what restoring an installation needs, in a new directory that
//! `sigil serve --data-dir DIR` starts from — a consistent copy of the SQLite database (taken
//! online, while the server runs) and the key files (master key, audit key, local CA and TLS
//! files, root keys, first-start admin key, audit anchor log). Everything is written owner-only
//! (0600 files, 0700 directories). On PostgreSQL the database is the operator's to dump
//! (`pg_dump`); the key files are copied all the same.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};

use crate::config::Config;

/// What a backup copied.
#[derive(Debug, Default)]
pub struct Report {
    /// Files written, relative to the backup directory.
    pub files: Vec<PathBuf>,
    /// Whether the database is in the backup (SQLite) or must be dumped separately.
    pub database_copied: bool,
}

/// Copies `from` to the new file `to` (mode 0600) if `from` is a regular file (a symbolic link
/// is skipped: a backup taken as root must not copy what a link in the data directory points
/// at); returns whether it did. `to` must not exist, so nothing planted there is written into.
fn copy_private(from: &Path, to: &Path) -> Result<bool> {
    match std::fs::symlink_metadata(from) {
        Ok(m) if m.file_type().is_file() => {}
        Ok(m) if m.file_type().is_symlink() => {
            eprintln!("  skipped {} (a symbolic link)", from.display());
            return Ok(false);
        }
        _ => return Ok(false),
    }
    let data = std::fs::read(from).with_context(|| format!("reading {}", from.display()))?;
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut opts, 0o600);
    let mut f = opts.open(to).with_context(|| format!("creating {}", to.display()))?;
    std::io::Write::write_all(&mut f, &data)
        .with_context(|| format!("writing {}", to.display()))?;
    f.sync_all().with_context(|| format!("writing {}", to.display()))?;
    Ok(true)
}

/// Copies `from` to `out/name` and records it (see [`copy_private`]).
fn copy(out: &Path, report: &mut Report, from: &Path, name: &Path) -> Result<()> {
    if copy_private(from, &out.join(name))? {
        eprintln!("  {}", name.display());
        report.files.push(name.to_path_buf());
    }
    Ok(())
}

/// Creates directory `dir` (mode 0700); it must not exist yet.
fn new_dir(dir: &Path) -> Result<()> {
    let mut b = std::fs::DirBuilder::new();
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut b, 0o700);
    b.create(dir)
        .with_context(|| format!("creating {} (a backup goes into a new directory)", dir.display()))
}

/// Backs up the installation `cfg` describes into `out`, which must be new or empty; prints a
/// line per file on stderr.
pub async fn run(cfg: &Config, out: &Path) -> Result<Report> {
    // A new directory of our own, never one that exists (someone else's, or with files planted
    // in it); its parent must exist.
    new_dir(out)?;
    let data = &cfg.server.data_dir;
    let mut report = Report::default();
    // The anchor log first, then the database: the copy of the database is at least as new as
    // every checkpoint the log anchors (a log ahead of its chain reads as a rollback). The key
    // directories last: a root CA created meanwhile has its key file, which is never rewritten.
    copy(out, &mut report, &cfg.anchor_path(), Path::new("audit-anchors.log"))?;
    let url = cfg.database_url();
    // SQLite's text-search index (sigil.db-search) is derived from the certificates and rebuilt
    // by the server when missing: not copied.
    if url.starts_with("sqlite:") {
        let db = out.join("sigil.db");
        sigil_store::sqlite_backup(&url, &db).await?;
        eprintln!("  sigil.db (online copy)");
        report.files.push("sigil.db".into());
        report.database_copied = true;
    }
    // Keys and files under their default names, so that the copy starts with no configuration.
    let audit_key = cfg.audit_key_path();
    copy(out, &mut report, &audit_key, Path::new("audit-key.pem"))?;
    copy(out, &mut report, &audit_key.with_extension("pub.pem"), Path::new("audit-key.pub.pem"))?;
    copy(out, &mut report, &cfg.master_key_path(), Path::new("master.key"))?;
    copy(out, &mut report, &data.join("admin.key"), Path::new("admin.key"))?;
    for dir in ["tls", "ca"] {
        let Ok(entries) = std::fs::read_dir(data.join(dir)) else { continue };
        new_dir(&out.join(dir))?;
        let mut names: Vec<PathBuf> = entries.filter_map(|e| e.ok().map(|e| e.path())).collect();
        names.sort();
        for p in &names {
            if let Some(name) = p.file_name() {
                copy(out, &mut report, p, &Path::new(dir).join(name))?;
            }
        }
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
