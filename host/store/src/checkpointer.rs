//! SQLite WAL checkpoints off the write path.
//!
//! SQLite's own (auto)checkpoint runs inside the commit that crosses its threshold: that commit
//! copies about a thousand pages into the database file and waits for the file's fsync, and
//! every request in its batch (and every request queued behind it) waits too. Under issuance
//! load that stall was 5 to 25 ms, a few times a second: the tail of the latency.
//!
//! So the group writer nudges this thread after its commits, and the thread runs a PASSIVE
//! checkpoint on a connection of its own at most every [`PERIOD`]. A PASSIVE checkpoint takes
//! no writer lock: it copies the frames committed so far while the writer goes on appending.
//!
//! A checkpoint that runs beside a writer rarely finishes level with it, and SQLite restarts the
//! WAL at the file's start only once a checkpoint has copied every frame. So the writer keeps an
//! automatic checkpoint of its own at [`WRITER_FRAMES`]: past that size, the commit copies what
//! the background has not yet copied (little) and the WAL starts over.

use std::path::Path;
use std::sync::mpsc;
use std::time::Duration;

use rusqlite::Connection;

/// Least time between two background checkpoints: each copies what the commits of this period
/// wrote (a few hundred pages under load) and fsyncs the database file once.
const PERIOD: Duration = Duration::from_millis(25);

/// WAL size (frames) at which a committing connection checkpoints itself: the safety net that
/// lets the WAL restart (see the module comment). 4,096 frames of 4 KiB is 16 MiB.
pub(crate) const WRITER_FRAMES: u32 = 4096;

/// A handle that asks for a checkpoint soon; cheap, and never blocks.
#[derive(Clone)]
pub(crate) struct Nudge(mpsc::SyncSender<()>);

impl Nudge {
    /// Asks for a checkpoint within about [`PERIOD`] (a request already pending covers this one).
    pub(crate) fn nudge(&self) {
        let _ = self.0.try_send(());
    }
}

/// Starts the checkpoint thread on its own connection to `path`; it ends when every [`Nudge`]
/// is dropped.
pub(crate) fn spawn(path: &Path) -> Result<Nudge, String> {
    let conn = Connection::open(path).map_err(|e| e.to_string())?;
    conn.busy_timeout(Duration::from_secs(1)).map_err(|e| e.to_string())?;
    let (tx, rx) = mpsc::sync_channel::<()>(1);
    std::thread::Builder::new()
        .name("sigil-sqlite-checkpoint".into())
        .spawn(move || {
            while rx.recv().is_ok() {
                std::thread::sleep(PERIOD);
                while rx.try_recv().is_ok() {}
                // (busy, WAL frames, frames copied). A failure (a full disk, say) is retried at
                // the next nudge, and the writers' own checkpoint still bounds the WAL.
                let done = conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |r| {
                    Ok((r.get::<_, i64>(0)?, r.get::<_, i64>(1)?, r.get::<_, i64>(2)?))
                });
                if let Err(e) = done {
                    tracing::warn!(error = %e, "background WAL checkpoint failed");
                }
            }
        })
        .map_err(|e| e.to_string())?;
    Ok(Nudge(tx))
}
