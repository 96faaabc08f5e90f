//! `server.pin_workers`: each async worker thread kept on a CPU of its own.
//!
//! Why: on a VM whose scheduler places a woken thread on the core that woke it (the 2-core VM of
//! the performance notes does), a worker woken by the other one to take part of its work waits
//! behind it on the same core while the second core idles; `perf sched` counted about a fifth
//! of the cores' time that way under issuance. With one worker on each CPU, a worker can only be
//! woken where it runs. Measured there in alternating pairs of 5 s (`compare --pin-workers`):
//! issuance +10% on SQLite (six pairs, all six higher) and +7% on PostgreSQL, while signHash,
//! whose requests are short, moved −1% on SQLite and −4% on PostgreSQL, with more CPU per
//! signature. Off by default, as affinity is in nginx (`worker_cpu_affinity`) and HAProxy
//! (`cpu-map`): it pays where the host packs threads like that and the server has the CPUs to
//! itself.
//!
//! Which threads are the workers: tokio names its workers and its blocking threads alike, so the
//! server starts one task per worker that holds its thread until all of them have started. Tasks
//! run only on workers, and each holds one, so each is on a different worker; each then pins
//! the thread it is on, and all are pinned or none (a worker that cannot be pinned, or one that
//! never comes, leaves every worker where it was). Worker i takes the i-th CPU of the process;
//! more workers than CPUs is refused. Linux only; when refused, the workers stay where the
//! scheduler puts them and the server says so. Threads the runtime starts later get the
//! process's CPUs back (`restore_on_thread_start`), not the one CPU of the worker that started
//! them.

use std::io;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

/// How long the worker tasks wait for each other: far more than a start-up needs; past it (a
/// worker busy elsewhere) pinning is given up rather than holding the runtime.
const MEET: Duration = Duration::from_secs(2);

/// The CPUs the calling thread may run on, in order (Linux).
pub fn allowed_cpus() -> io::Result<Vec<usize>> {
    #[cfg(target_os = "linux")]
    {
        use rustix::thread::{CpuSet, sched_getaffinity};
        let set = sched_getaffinity(None).map_err(io::Error::from)?;
        Ok((0..CpuSet::MAX_CPU).filter(|&c| set.is_set(c)).collect())
    }
    #[cfg(not(target_os = "linux"))]
    {
        Err(io::Error::new(io::ErrorKind::Unsupported, "CPU affinity needs Linux"))
    }
}

/// Pins each worker thread of `runtime` to a CPU of its own among the calling thread's CPUs
/// (worker i on the i-th). Refused when there are more workers than CPUs. Returns the CPUs
/// used, sorted. If the workers do not all meet, or one cannot be pinned, every worker is left
/// with the CPUs it had.
///
/// A thread started from a pinned worker inherits its one CPU: the runtime should restore the
/// process's CPUs in its `on_thread_start` (see [`restore_on_thread_start`]).
pub fn pin_workers(runtime: &tokio::runtime::Runtime) -> io::Result<Vec<usize>> {
    let cpus = allowed_cpus()?;
    let workers = runtime.metrics().num_workers();
    if workers > cpus.len() {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("{workers} worker threads and {} CPUs: a CPU each is not possible", cpus.len()),
        ));
    }
    // (arrived, gave up, pinned): the tasks pin only once all have arrived and none gave up,
    // and undo their pin if another could not pin.
    let met = Arc::new((Mutex::new((0usize, false)), Condvar::new()));
    let pinned = Arc::new((Mutex::new((0usize, false)), Condvar::new()));
    let next = Arc::new(AtomicUsize::new(0));
    let tasks: Vec<_> = (0..workers)
        .map(|_| {
            let (met, pinned, next, cpus) =
                (met.clone(), pinned.clone(), next.clone(), cpus.clone());
            runtime.spawn(async move {
                // Blocking on purpose: holding this worker keeps the other tasks off it.
                let (lock, all) = &*met;
                let mut st = lock.lock().map_err(poisoned)?;
                st.0 += 1;
                all.notify_all();
                let (mut st, waited) = all
                    .wait_timeout_while(st, MEET, |st| st.0 < workers && !st.1)
                    .map_err(poisoned)?;
                if st.1 || waited.timed_out() {
                    st.1 = true;
                    all.notify_all();
                    return Err(io::Error::new(
                        io::ErrorKind::TimedOut,
                        "the worker threads did not all start",
                    ));
                }
                drop(st);
                let before = allowed_cpus()?;
                let cpu = cpus[next.fetch_add(1, Ordering::Relaxed)];
                let done = set_this_thread_cpus(&[cpu]);
                // Every worker pinned, or none: each waits for the others' outcome.
                let (lock, all) = &*pinned;
                let mut st = lock.lock().map_err(poisoned)?;
                st.0 += 1;
                st.1 |= done.is_err();
                all.notify_all();
                let (st, _) = all
                    .wait_timeout_while(st, MEET, |st| st.0 < workers && !st.1)
                    .map_err(poisoned)?;
                if st.1 || st.0 < workers {
                    let _ = set_this_thread_cpus(&before);
                    return done.and(Err(io::Error::other("another worker could not be pinned")));
                }
                Ok(cpu)
            })
        })
        .collect();
    runtime.block_on(async move {
        let mut used = Vec::with_capacity(tasks.len());
        let mut first_err = None;
        for t in tasks {
            match t.await.map_err(io::Error::other).and_then(|r| r) {
                Ok(cpu) => used.push(cpu),
                Err(e) => {
                    first_err.get_or_insert(e);
                }
            }
        }
        match first_err {
            Some(e) => Err(e),
            None => {
                used.sort_unstable();
                Ok(used)
            }
        }
    })
}

/// A lock poisoned by a panicking worker task, as an error.
fn poisoned<T>(_: T) -> io::Error {
    io::Error::other("poisoned lock")
}

/// Restricts the calling thread to `cpus`.
fn set_this_thread_cpus(cpus: &[usize]) -> io::Result<()> {
    #[cfg(target_os = "linux")]
    {
        use rustix::thread::{CpuSet, sched_setaffinity};
        let mut set = CpuSet::new();
        for &c in cpus {
            set.set(c);
        }
        sched_setaffinity(None, &set).map_err(io::Error::from)
    }
    #[cfg(not(target_os = "linux"))]
    {
        let _ = cpus;
        Err(io::Error::new(io::ErrorKind::Unsupported, "CPU affinity needs Linux"))
    }
}

/// A runtime `on_thread_start` hook that gives each thread the runtime starts the CPUs the
/// calling thread has now: a blocking-pool thread started from a pinned worker would otherwise
/// inherit that worker's one CPU. (Threads that libraries start themselves from a worker, such
/// as sqlx's SQLite connection threads opened after start-up, still inherit it.)
pub fn restore_on_thread_start() -> io::Result<impl Fn() + Send + Sync + 'static> {
    let cpus = allowed_cpus()?;
    Ok(move || {
        let _ = set_this_thread_cpus(&cpus);
    })
}

#[cfg(test)]
#[cfg(target_os = "linux")]
mod tests {
    use super::*;

    /// The CPUs thread `tid` of this process may run on, from /proc.
    fn cpus_of(tid: i32) -> String {
        let status = std::fs::read_to_string(format!("/proc/self/task/{tid}/status")).unwrap();
        let line = status.lines().find(|l| l.starts_with("Cpus_allowed_list:")).unwrap();
        line.split_once(':').unwrap().1.trim().to_owned()
    }

    #[test]
    fn each_worker_thread_is_pinned_to_a_cpu_of_its_own_and_threads_it_starts_are_not() {
        let cpus = allowed_cpus().unwrap();
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(cpus.len())
            .on_thread_start(restore_on_thread_start().unwrap())
            .enable_all()
            .build()
            .unwrap();
        let used = pin_workers(&rt).unwrap();
        assert_eq!(used, cpus);
        let tid = || rustix::thread::gettid().as_raw_nonzero().get();
        // A task runs on a worker, and every worker now may use one CPU only; a blocking thread
        // started from a worker keeps every CPU.
        let (on, blocking): (std::collections::BTreeSet<String>, Vec<String>) =
            rt.block_on(async {
                let mut on = std::collections::BTreeSet::new();
                let mut blocking = Vec::new();
                for _ in 0..50 {
                    on.insert(cpus_of(tokio::spawn(async move { tid() }).await.unwrap()));
                    let b = tokio::spawn(async move { tokio::task::spawn_blocking(tid).await })
                        .await
                        .unwrap()
                        .unwrap();
                    blocking.push(cpus_of(b));
                }
                (on, blocking)
            });
        assert!(on.iter().all(|c| c.parse::<usize>().is_ok()), "workers may run on {on:?}");
        if cpus.len() > 1 {
            assert!(blocking.iter().all(|c| c.parse::<usize>().is_err()), "{blocking:?}");
        }
        // The thread that asked is not a worker and keeps every CPU it had.
        assert_eq!(allowed_cpus().unwrap(), cpus);
    }

    #[test]
    fn more_workers_than_cpus_are_refused_and_left_as_they_were() {
        let cpus = allowed_cpus().unwrap();
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(cpus.len() + 1)
            .enable_all()
            .build()
            .unwrap();
        let e = pin_workers(&rt).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::InvalidInput, "{e}");
        let tid = || rustix::thread::gettid().as_raw_nonzero().get();
        let on = rt.block_on(async { tokio::spawn(async move { tid() }).await.unwrap() });
        assert_eq!(cpus_of(on), cpus_of(tid()));
    }
}
