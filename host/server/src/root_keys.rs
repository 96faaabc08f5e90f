//! Root CA keys kept in files instead of the database ([`RootKeyVault`]): `<data_dir>/ca/`,
//! one PKCS#8 PEM per CA, mode 0600, never overwritten. The server never reads them: they are
//! there for `sigil ca` (signing a new issuing CA or the root's CRL) and for the operator to
//! move offline, as the README's production setup says.

use std::io::Write as _;
use std::path::PathBuf;

use sigil_core::certs::ca::RootKeyVault;
use sigil_core::{CoreError, Result};

/// Root keys in a directory.
#[derive(Debug, Clone)]
pub struct RootKeyDir {
    dir: PathBuf,
}

impl RootKeyDir {
    /// Keys in `dir` (created when first needed).
    pub fn new(dir: PathBuf) -> Self {
        Self { dir }
    }

    fn file_name(ca_id: &str, n: u32) -> String {
        // A CA id comes from the configuration; keep only what is safe in a file name.
        let safe: String = ca_id
            .chars()
            .map(
                |c| if c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.') { c } else { '_' },
            )
            .collect();
        if n == 0 { format!("{safe}-root-key.pem") } else { format!("{safe}-root-key.{n}.pem") }
    }
}

impl RootKeyVault for RootKeyDir {
    fn keep(&self, ca_id: &str, pem: &str) -> Result<String> {
        let io = |e: std::io::Error| CoreError::Internal(format!("keeping the root key: {e}"));
        std::fs::create_dir_all(&self.dir).map_err(io)?;
        for n in 0..1000 {
            let path = self.dir.join(Self::file_name(ca_id, n));
            if std::fs::read_to_string(&path).is_ok_and(|old| old == pem) {
                return Ok(path.display().to_string());
            }
            let mut opts = std::fs::OpenOptions::new();
            opts.write(true).create_new(true);
            #[cfg(unix)]
            std::os::unix::fs::OpenOptionsExt::mode(&mut opts, 0o600);
            match opts.open(&path) {
                Ok(mut f) => {
                    f.write_all(pem.as_bytes()).and_then(|()| f.sync_all()).map_err(io)?;
                    return Ok(path.display().to_string());
                }
                // Another key is there: never overwrite it, take the next name.
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
                Err(e) => return Err(io(e)),
            }
        }
        Err(CoreError::Internal(format!("no free file name for {ca_id}'s root key")))
    }

    fn discard(&self, _ca_id: &str, kept_at: &str) {
        let path = PathBuf::from(kept_at);
        if path.starts_with(&self.dir) {
            let _ = std::fs::remove_file(path);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_kept_key_is_never_overwritten_and_keeping_it_again_is_a_no_op() {
        let dir = tempfile::tempdir().unwrap();
        let v = RootKeyDir::new(dir.path().join("ca"));
        let a = v.keep("main", "A").unwrap();
        assert_eq!(v.keep("main", "A").unwrap(), a);
        let b = v.keep("main", "B").unwrap();
        assert_ne!(a, b);
        assert_eq!(std::fs::read_to_string(&a).unwrap(), "A");
        assert_eq!(std::fs::read_to_string(&b).unwrap(), "B");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt as _;
            assert_eq!(std::fs::metadata(&a).unwrap().permissions().mode() & 0o777, 0o600);
        }
        let odd = v.keep("../x", "C").unwrap();
        assert!(PathBuf::from(&odd).starts_with(dir.path().join("ca")), "{odd}");
    }
}
