//! The audit anchor log: an append-only file (one JSON checkpoint per line) on the server's disk,
//! outside the database, with an optional second copy and a syslog socket. A database writer
//! can rewrite the chain and its checkpoints, but not take back a checkpoint recorded here.

use std::io::{Read as _, Seek as _, SeekFrom, Write as _};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use sigil_core::audit::{AnchorLog, Checkpoint};
use sigil_core::{CoreError, Result};

/// How much of the end of the log is read to find its newest line.
const TAIL: u64 = 64 * 1024;

/// The anchor log of this node.
#[derive(Debug)]
pub struct FileAnchor {
    path: PathBuf,
    copy: Option<PathBuf>,
    syslog: Option<PathBuf>,
    // The newest checkpoint, once read: the file only grows through this value.
    latest: Mutex<Option<Option<Checkpoint>>>,
}

impl FileAnchor {
    /// The log at `path`, copied to `copy` and sent to the syslog socket `syslog` when given.
    pub fn new(path: PathBuf, copy: Option<PathBuf>, syslog: Option<PathBuf>) -> Self {
        Self { path, copy, syslog, latest: Mutex::new(None) }
    }

    /// Reads the newest checkpoint recorded in the log at `path` (none when there is no file).
    pub fn read_latest(path: &Path) -> Result<Option<Checkpoint>> {
        let io = |e: std::io::Error| {
            CoreError::Internal(format!("reading the audit anchor log {}: {e}", path.display()))
        };
        let mut f = match std::fs::File::open(path) {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(io(e)),
        };
        let len = f.metadata().map_err(io)?.len();
        let from = len.saturating_sub(TAIL);
        f.seek(SeekFrom::Start(from)).map_err(io)?;
        let mut text = String::new();
        f.read_to_string(&mut text).map_err(io)?;
        let mut lines: Vec<&str> = text.lines().collect();
        if from > 0 && !lines.is_empty() {
            lines.remove(0); // a partial line
        }
        // A line cut short by a crash (JSON that ends early, wherever it now sits) is skipped;
        // anything else that does not parse is refused.
        let mut newest: Option<Checkpoint> = None;
        for (i, line) in lines.iter().enumerate().filter(|(_, l)| !l.trim().is_empty()) {
            match serde_json::from_str::<Checkpoint>(line) {
                Ok(c) if newest.as_ref().is_none_or(|n| c.counter > n.counter) => newest = Some(c),
                Ok(_) => {}
                Err(e) if e.is_eof() || i + 1 == lines.len() => {}
                Err(e) => {
                    return Err(CoreError::Internal(format!(
                        "the audit anchor log {} has a line that is not a checkpoint: {e}",
                        path.display()
                    )));
                }
            }
        }
        Ok(newest)
    }

    fn append_to(path: &Path, line: &str) -> std::io::Result<()> {
        let mut opts = std::fs::OpenOptions::new();
        opts.create(true).read(true).append(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt;
            opts.mode(0o600);
        }
        let mut f = opts.open(path)?;
        // After a line cut short by a crash, start on a line of its own.
        let len = f.metadata()?.len();
        if len > 0 {
            let mut last = [0u8; 1];
            f.seek(SeekFrom::Start(len - 1))?;
            f.read_exact(&mut last)?;
            if last[0] != b'\n' {
                f.write_all(b"\n")?;
            }
        }
        f.write_all(line.as_bytes())?;
        f.sync_data()
    }

    #[cfg(unix)]
    fn send_syslog(socket: &Path, json: &str) -> std::io::Result<()> {
        // RFC 3164 framing; facility auth (4), severity notice (5).
        let msg = format!("<37>sigil-audit[{}]: checkpoint {json}", std::process::id());
        std::os::unix::net::UnixDatagram::unbound()?.send_to(msg.as_bytes(), socket).map(|_| ())
    }

    #[cfg(not(unix))]
    fn send_syslog(_: &Path, _: &str) -> std::io::Result<()> {
        Err(std::io::Error::other("syslog sockets need a Unix system"))
    }
}

impl AnchorLog for FileAnchor {
    fn latest(&self) -> Result<Option<Checkpoint>> {
        let mut cached = self.latest.lock().map_err(|_| CoreError::Internal("poisoned".into()))?;
        if let Some(c) = cached.as_ref() {
            return Ok(c.clone());
        }
        let c = Self::read_latest(&self.path)?;
        *cached = Some(c.clone());
        Ok(c)
    }

    fn append(&self, c: &Checkpoint) -> Result<()> {
        let json = serde_json::to_string(c)
            .map_err(|e| CoreError::Internal(format!("encoding a checkpoint: {e}")))?;
        let line = format!("{json}\n");
        let mut cached = self.latest.lock().map_err(|_| CoreError::Internal("poisoned".into()))?;
        Self::append_to(&self.path, &line).map_err(|e| {
            CoreError::Internal(format!(
                "writing the audit anchor log {}: {e}",
                self.path.display()
            ))
        })?;
        *cached = Some(Some(c.clone()));
        // The copies are best effort: the primary log already anchors the checkpoint, and an
        // unreachable share must not stop checkpoints.
        if let Some(p) = &self.copy
            && let Err(e) = Self::append_to(p, &line)
        {
            tracing::warn!(path = %p.display(), error = %e, "audit anchor copy not written");
        }
        if let Some(s) = &self.syslog
            && let Err(e) = Self::send_syslog(s, &json)
        {
            tracing::warn!(socket = %s.display(), error = %e, "audit anchor not sent to syslog");
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cp(counter: i64) -> Checkpoint {
        Checkpoint {
            counter,
            seq: counter * 10,
            hash: "h".into(),
            prev: "p".into(),
            signed_at_us: 1,
            key_id: "k".into(),
            signature: "s".into(),
        }
    }

    #[test]
    fn the_log_keeps_every_checkpoint_and_its_copies_and_syslog_get_them_too() {
        let dir = tempfile::tempdir().unwrap();
        let sock_path = dir.path().join("log.sock");
        let sock = std::os::unix::net::UnixDatagram::bind(&sock_path).unwrap();
        let a = FileAnchor::new(
            dir.path().join("a.log"),
            Some(dir.path().join("copy.log")),
            Some(sock_path),
        );
        assert_eq!(a.latest().unwrap(), None);
        a.append(&cp(1)).unwrap();
        a.append(&cp(2)).unwrap();
        assert_eq!(a.latest().unwrap(), Some(cp(2)));
        // A fresh reader (a restarted server, or the offline verifier) finds the same.
        assert_eq!(FileAnchor::read_latest(&dir.path().join("a.log")).unwrap(), Some(cp(2)));
        assert_eq!(FileAnchor::read_latest(&dir.path().join("copy.log")).unwrap(), Some(cp(2)));
        let mut buf = [0u8; 2048];
        let n = sock.recv(&mut buf).unwrap();
        let msg = String::from_utf8_lossy(&buf[..n]);
        assert!(msg.starts_with("<37>sigil-audit[") && msg.contains("\"counter\":1"), "{msg}");
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(dir.path().join("a.log")).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }

    #[test]
    fn a_line_cut_short_by_a_crash_is_skipped_but_garbage_inside_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("a.log");
        let good = serde_json::to_string(&cp(3)).unwrap();
        std::fs::write(&p, format!("{good}\n{{\"counter\":4,\"se")).unwrap();
        assert_eq!(FileAnchor::read_latest(&p).unwrap(), Some(cp(3)));
        // The next checkpoints go on lines of their own and stay readable.
        let a = FileAnchor::new(p.clone(), None, None);
        a.append(&cp(5)).unwrap();
        a.append(&cp(6)).unwrap();
        assert_eq!(FileAnchor::read_latest(&p).unwrap(), Some(cp(6)));
        std::fs::write(&p, format!("garbage\n{good}\n")).unwrap();
        assert!(FileAnchor::read_latest(&p).is_err());
    }

    #[test]
    fn only_the_tail_of_a_long_log_is_read() {
        let dir = tempfile::tempdir().unwrap();
        let lines: String =
            (1..=1000).map(|i| serde_json::to_string(&cp(i)).unwrap() + "\n").collect();
        std::fs::write(dir.path().join("a.log"), lines).unwrap();
        assert!(std::fs::metadata(dir.path().join("a.log")).unwrap().len() > TAIL);
        assert_eq!(FileAnchor::read_latest(&dir.path().join("a.log")).unwrap(), Some(cp(1000)));
    }
}
