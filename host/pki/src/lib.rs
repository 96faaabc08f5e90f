//! X.509 and keys for Sigil: the local CA created on first start (root, issuing CA, and the
//! server's TLS certificate), and the audit signing key.
//!
//! Private-key operations use ring (ECDSA P-256 here). This crate implements sigil-core's
//! [`sigil_core::audit::AuditCrypto`] port; it knows nothing of HTTP or SQL.
#![deny(missing_docs)]

pub mod acme_jws;
pub mod aia;
pub mod audit_key;
pub mod builtin;
pub mod csr;
pub mod inspect;
pub mod keys;
pub mod localca;
pub mod ocsp;
pub mod offline;
pub mod oid_text;
pub mod parser;
pub mod pem;
pub mod pkcs11;
pub mod request;
pub mod seal;
pub mod signing;
pub mod unlock;

/// Errors from key and certificate handling.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PkiError {
    /// A file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// Cause.
        source: std::io::Error,
    },
    /// Key material is malformed.
    #[error("invalid key material in {0}")]
    InvalidKey(String),
    /// Certificate generation failed.
    #[error("certificate generation failed: {0}")]
    Certificate(String),
    /// The random source failed.
    #[error("random source failed")]
    Random,
    /// Sealed key material does not open: another master key, a blob sealed for another
    /// purpose, row or key type, or a legacy blob that was not re-sealed.
    #[error(
        "sealed key material does not open here (another master key, or sealed for another purpose or row)"
    )]
    Sealed,
    /// A certificate or request could not be parsed.
    #[error("{0}")]
    Parse(String),
}

impl From<rcgen::Error> for PkiError {
    fn from(e: rcgen::Error) -> Self {
        Self::Certificate(e.to_string())
    }
}

/// Creates directory `dir` and any missing parents with mode 0700 (owner only): a data
/// directory holds the database and the keys. An existing directory is left as it is.
pub fn private_dir(dir: &std::path::Path) -> Result<(), PkiError> {
    let mut b = std::fs::DirBuilder::new();
    b.recursive(true);
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut b, 0o700);
    b.create(dir).map_err(|source| PkiError::Io { path: dir.display().to_string(), source })
}

/// Writes `data` to `path` with mode 0600 (owner only), creating parent directories (0700).
pub fn write_private(path: &std::path::Path, data: &[u8]) -> Result<(), PkiError> {
    use std::io::Write as _;
    let io = |source| PkiError::Io { path: path.display().to_string(), source };
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        private_dir(dir)?;
    }
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create(true).truncate(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut opts, 0o600);
    let mut f = opts.open(path).map_err(io)?;
    // An existing file keeps its mode through open(): narrow it before the secret goes in.
    #[cfg(unix)]
    f.set_permissions(std::os::unix::fs::PermissionsExt::from_mode(0o600)).map_err(io)?;
    f.write_all(data).map_err(io)?;
    f.sync_all().map_err(io)
}
