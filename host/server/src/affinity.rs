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
//! the thread it is on. Linux only; elsewhere, or if the process may not use the CPUs, the
//! workers stay where the scheduler puts them and the server says so.

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

/// Restricts the calling thread to CPU `cpu`.
fn pin_this_thread(cpu: usize) -> io::Result<()> {
    #[cfg(target_os = "linux")]
    {
        use rustix::thread::{CpuSet, sched_setaffinity};
        let mut set = CpuSet::new();
        set.set(cpu);
        sched_setaffinity(None, &set).map_err(io::Error::from)
    }
    #[cfg(not(target_os = "linux"))]
    {
        let _ = cpu;
        Err(io::Error::new(io::ErrorKind::Unsupported, "CPU affinity needs Linux"))
    }
}

/// Pins each worker thread of `runtime` to one of the calling thread's CPUs, in turn (worker i
/// on the i-th, wrapping when there are more workers than CPUs). Returns the CPUs used, sorted.
pub fn pin_workers(runtime: &tokio::runtime::Runtime) -> io::Result<Vec<usize>> {
    let cpus = allowed_cpus()?;
    if cpus.is_empty() {
        return Err(io::Error::new(io::ErrorKind::NotFound, "the process may use no CPU"));
    }
    let workers = runtime.metrics().num_workers();
    let met = Arc::new((Mutex::new(0usize), Condvar::new()));
    let next = Arc::new(AtomicUsize::new(0));
    let tasks: Vec<_> = (0..workers)
        .map(|_| {
            let (met, next, cpus) = (met.clone(), next.clone(), cpus.clone());
            runtime.spawn(async move {
                // Blocking on purpose: holding this worker keeps the other tasks off it.
                let (count, all) = &*met;
                let mut n = count.lock().map_err(|_| io::Error::other("poisoned lock"))?;
                *n += 1;
                all.notify_all();
                let (n, waited) = all
                    .wait_timeout_while(n, MEET, |n| *n < workers)
                    .map_err(|_| io::Error::other("poisoned lock"))?;
                drop(n);
                if waited.timed_out() {
                    return Err(io::Error::new(
                        io::ErrorKind::TimedOut,
                        "the worker threads did not all start",
                    ));
                }
                let cpu = cpus[next.fetch_add(1, Ordering::Relaxed) % cpus.len()];
                pin_this_thread(cpu).map(|()| cpu)
            })
        })
        .collect();
    runtime.block_on(async move {
        let mut used = Vec::with_capacity(tasks.len());
        for t in tasks {
            used.push(t.await.map_err(io::Error::other)??);
        }
        used.sort_unstable();
        Ok(used)
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
    fn each_worker_thread_is_pinned_to_a_cpu_of_its_own_in_turn() {
        let cpus = allowed_cpus().unwrap();
        let workers = 3;
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(workers)
            .enable_all()
            .build()
            .unwrap();
        let used = pin_workers(&rt).unwrap();
        let mut expected: Vec<usize> = (0..workers).map(|i| cpus[i % cpus.len()]).collect();
        expected.sort_unstable();
        assert_eq!(used, expected);
        // A task runs on a worker, and every worker now may use one CPU only.
        let on: std::collections::BTreeSet<String> = rt.block_on(async {
            let mut on = std::collections::BTreeSet::new();
            for _ in 0..200 {
                let tid = tokio::spawn(async { rustix::thread::gettid().as_raw_nonzero().get() })
                    .await
                    .unwrap();
                on.insert(cpus_of(tid));
            }
            on
        });
        assert!(on.iter().all(|c| c.parse::<usize>().is_ok()), "workers may run on {on:?}");
        // The thread that asked is not a worker and keeps every CPU it had.
        assert_eq!(allowed_cpus().unwrap(), cpus);
    }
}
