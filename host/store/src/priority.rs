//! Scheduling precedence for the SQLite group writer's thread.
//!
//! Every durable write of a SQLite store passes through one thread (group.rs): it applies a
//! batch, commits, waits for the WAL's `fdatasync` and answers. That cycle sets the pace of
//! issuance and signing, and under load the request threads hold every core: after each sync
//! and each look for more units the writer waited for a core, and every request in its batch
//! waited with it. Raised above them (nice −10 against 0) on the 2-core VM of the performance
//! notes, the writer took issuance from 9,700/s to 10,850/s on average in five alternating
//! pairs of runs (all five higher). Linux only: elsewhere the thread keeps its priority.
//!
//! Raising a priority needs `CAP_SYS_NICE` or an `RLIMIT_NICE` that allows it (systemd's
//! `LimitNICE=-10`, as packaging/sigil.service sets); without either the writer keeps its
//! priority and the server says so once.

use std::io;

/// Sets the calling thread's nice value (−20 to 19; lower runs first). On Linux a nice value
/// belongs to a thread: `setpriority(PRIO_PROCESS, tid)` changes that thread alone, so the
/// server's other threads keep theirs.
pub(crate) fn set_this_thread_nice(nice: i32) -> io::Result<()> {
    #[cfg(target_os = "linux")]
    {
        rustix::process::setpriority_process(Some(rustix::thread::gettid()), nice)
            .map_err(io::Error::from)
    }
    #[cfg(not(target_os = "linux"))]
    {
        let _ = nice;
        Err(io::Error::new(io::ErrorKind::Unsupported, "a thread's own priority needs Linux"))
    }
}

/// Gives the calling (writer) thread the nice value `nice` of the configuration; 0 leaves it
/// as it is. A refusal is not an error: the writer runs as before, and the first refusal in
/// the process is logged with what would allow it.
pub(crate) fn apply_writer_nice(nice: i32) {
    static TOLD: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);
    if nice == 0 {
        return;
    }
    match set_this_thread_nice(nice) {
        Ok(()) => tracing::debug!(nice, "SQLite writer thread priority set"),
        Err(e) if e.kind() == io::ErrorKind::Unsupported => {
            tracing::debug!(nice, error = %e, "SQLite writer thread priority left as it is");
        }
        Err(e) => {
            if !TOLD.swap(true, std::sync::atomic::Ordering::Relaxed) {
                tracing::info!(
                    nice,
                    error = %e,
                    "the SQLite writer thread keeps its priority: CAP_SYS_NICE or LimitNICE \
                     (systemd) allows database.sqlite_writer_nice"
                );
            }
        }
    }
}

/// Keeps the calling (writer) thread on CPU `cpu` (the configuration's
/// `database.sqlite_writer_cpu`), where the process may run there; `None` leaves it free. A
/// refusal (no such CPU, or one outside the process's own set) is logged once, and the writer
/// runs wherever the scheduler puts it.
///
/// Why: on a VM whose scheduler places a woken thread on the core that woke it (as the 2-core
/// VM of the performance notes does), the writer and the request threads it wakes end up on one
/// core while the other idles. Pinned to the second core, the writer took signHash up 3.5% in
/// five alternating pairs of runs (all five higher, same CPU per signature) and 1.1% in five
/// more (three higher); issuance did not move. Off by default, as affinity is: it pays only
/// where the host packs threads like that, and only a little.
pub(crate) fn apply_writer_cpu(cpu: Option<usize>) {
    let Some(cpu) = cpu else { return };
    match pin_this_thread(cpu) {
        Ok(()) => tracing::debug!(cpu, "SQLite writer thread pinned"),
        Err(e) => tracing::info!(cpu, error = %e, "the SQLite writer thread is not pinned"),
    }
}

/// Restricts the calling thread to CPU `cpu`.
pub(crate) fn pin_this_thread(cpu: usize) -> io::Result<()> {
    #[cfg(target_os = "linux")]
    {
        use rustix::thread::{CpuSet, sched_setaffinity};
        if cpu >= CpuSet::MAX_CPU {
            return Err(io::Error::new(io::ErrorKind::InvalidInput, "no such CPU"));
        }
        let mut set = CpuSet::new();
        set.set(cpu);
        sched_setaffinity(None, &set).map_err(io::Error::from)
    }
    #[cfg(not(target_os = "linux"))]
    {
        let _ = cpu;
        Err(io::Error::new(io::ErrorKind::Unsupported, "a thread's CPU affinity needs Linux"))
    }
}

#[cfg(test)]
#[cfg(target_os = "linux")]
mod tests {
    use super::*;

    /// The calling thread's nice value.
    fn this_thread_nice() -> io::Result<i32> {
        rustix::process::getpriority_process(Some(rustix::thread::gettid()))
            .map_err(io::Error::from)
    }

    /// Runs `f` on a thread of its own, so that the test thread's priority never changes.
    fn on_own_thread<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
        std::thread::spawn(f).join().unwrap()
    }

    #[test]
    fn a_raised_priority_applies_to_the_calling_thread_alone_or_is_refused_unchanged() {
        let here = this_thread_nice().unwrap();
        let (result, before, wanted, after) = on_own_thread(move || {
            let before = this_thread_nice().unwrap();
            let wanted = (before - 5).max(-20);
            let result = set_this_thread_nice(wanted);
            (result, before, wanted, this_thread_nice().unwrap())
        });
        assert!(wanted < before, "the tests run at nice -20 already: nothing to raise");
        match result {
            // Permitted (root, CAP_SYS_NICE or RLIMIT_NICE): that thread runs higher.
            Ok(()) => assert_eq!(after, wanted),
            // Refused: a permission error, and nothing changed.
            Err(e) => {
                assert_eq!(e.kind(), io::ErrorKind::PermissionDenied, "{e}");
                assert_eq!(after, before);
            }
        }
        // The process's other threads, and threads it starts afterwards, keep their value.
        assert_eq!(this_thread_nice().unwrap(), here);
        assert_eq!(on_own_thread(|| this_thread_nice().unwrap()), here);
    }

    #[test]
    fn a_lower_priority_is_always_permitted_and_zero_leaves_the_thread_as_it_is() {
        let (before, lowered, after_zero) = on_own_thread(|| {
            let before = this_thread_nice().unwrap();
            // Lowering one's own priority needs no privilege: the call itself must work.
            apply_writer_nice((before + 2).min(19));
            let lowered = this_thread_nice().unwrap();
            // 0 means "leave it": the thread stays where it is, not at nice 0.
            apply_writer_nice(0);
            (before, lowered, this_thread_nice().unwrap())
        });
        assert!(before <= 17, "the tests run at nice {before}: too low to lower by 2");
        assert_eq!(lowered, before + 2);
        assert_eq!(after_zero, lowered);
    }
}

#[cfg(test)]
#[cfg(target_os = "linux")]
mod writer_tests {
    use std::collections::HashMap;

    use crate::SqlStore;
    use crate::testing::TestDb;

    /// This process's group writer threads (`sigil-sqlite-writer`, cut to 15 bytes by the
    /// kernel) and their nice values.
    fn writer_threads() -> HashMap<u32, i32> {
        crate::testing::thread_nice("self", "sigil-sqlite-wr")
    }

    /// What `read` says of each writer thread not in `before`, polled for up to 5 s until one
    /// says `wanted`: a writer names itself and sets its priority and CPU once it runs, which
    /// may be after `connect` returns, and other tests of this binary open stores too.
    fn new_writers_until<T: PartialEq>(
        before: &HashMap<u32, i32>,
        wanted: &T,
        read: impl Fn(u32, i32) -> Option<T>,
    ) -> Vec<T> {
        let mut seen = Vec::new();
        for _ in 0..500 {
            seen = writer_threads()
                .into_iter()
                .filter(|(t, _)| !before.contains_key(t))
                .filter_map(|(t, nice)| read(t, nice))
                .collect();
            if seen.contains(wanted) {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        seen
    }

    #[tokio::test]
    async fn the_group_writer_thread_is_kept_on_the_configured_cpu() {
        let before = writer_threads();
        let cpu = crate::testing::last_allowed_cpu().unwrap();
        let db = TestDb::sqlite();
        let mut opts = db.options();
        opts.sqlite_writer_cpu = Some(cpu);
        let store = SqlStore::connect(&opts).await.unwrap();
        let wanted = cpu.to_string();
        let seen =
            new_writers_until(&before, &wanted, |t, _| crate::testing::thread_cpus("self", t));
        assert!(seen.contains(&wanted), "new writer threads on CPUs {seen:?}");
        drop(store);
        db.cleanup().await;
    }

    #[test]
    fn a_cpu_the_process_cannot_use_is_refused_and_the_thread_stays_free() {
        std::thread::spawn(|| {
            let before = rustix::thread::sched_getaffinity(None).unwrap();
            assert!(super::pin_this_thread(1023).is_err());
            assert!(super::pin_this_thread(4096).is_err());
            let after = rustix::thread::sched_getaffinity(None).unwrap();
            assert_eq!(before.count(), after.count());
        })
        .join()
        .unwrap();
    }

    #[tokio::test]
    async fn the_group_writer_thread_runs_at_the_configured_nice_value() {
        let before = writer_threads();
        let db = TestDb::sqlite();
        let mut opts = db.options();
        // A lower priority than the process's (a higher nice value) needs no privilege, so
        // the value must reach the thread whoever runs the test; the server's range (-20 to
        // 0) is the configuration's to check.
        let here = std::thread::spawn(|| {
            rustix::process::getpriority_process(Some(rustix::thread::gettid())).unwrap()
        })
        .join()
        .unwrap();
        let wanted = (here + 3).min(19);
        assert!(wanted > here, "the tests run at nice {here}: nothing lower to ask for");
        opts.sqlite_writer_nice = wanted;
        let store = SqlStore::connect(&opts).await.unwrap();
        let new = new_writers_until(&before, &wanted, |_, nice| Some(nice));
        assert!(new.contains(&wanted), "new writer threads at {new:?}");
        drop(store);
        db.cleanup().await;
    }
}
