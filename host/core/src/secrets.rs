//! Password and PIN hashing (Argon2id) on a bounded set of threads of its own: the work an
//! unauthenticated `auth/login` can cause is capped in CPU and memory, and shed beyond.

use std::sync::Arc;

use argon2::password_hash::{PasswordHash, SaltString};
use zeroize::Zeroizing;

use crate::error::{CoreError, Result};

/// Argon2id hashing and verification of passwords and PINs, with a bound on how many run at once.
///
/// Each one takes about 19 MiB and tens of milliseconds of a core on purpose, and `auth/login` is
/// unauthenticated: without a bound, a burst of anonymous logins takes the server's memory and
/// CPU. At most `concurrency` run at once, on as many threads of their own (so the allocator
/// keeps no more than that many 19 MiB arenas), and at most `queue` wait (for at most
/// [`SecretGate::MAX_WAIT`]); anything beyond is shed at once with 503 and `Retry-After`.
pub struct SecretGate {
    slots: Arc<tokio::sync::Semaphore>,
    waiting: std::sync::atomic::AtomicUsize,
    queue: usize,
    jobs: std::sync::mpsc::Sender<Job>,
}

/// A place on a hashing thread. It goes with the job, so a job whose request was dropped still
/// holds its place until it has run: abandoned requests cannot pile up work beyond the bound.
#[derive(Debug)]
pub struct Slot {
    // Held, never read: dropping it gives the place back.
    _permit: tokio::sync::OwnedSemaphorePermit,
}

/// What an unknown, disabled or locked-out signer's password is checked against: Argon2id with
/// the default parameters and an output nothing hashes to, so the refusal costs what a wrong
/// password costs.
const DUMMY_HASH: &str = "$argon2id$v=19$m=19456,t=2,p=1$c2lnaWwtZHVtbXktc2FsdA$\
                          AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA";

/// A job gets its thread's Argon2 memory, allocated once and reused, so hashing never makes
/// the allocator hold more than `concurrency` blocks of 19 MiB.
type Job = Box<dyn FnOnce(&mut Vec<argon2::Block>) + Send>;

impl std::fmt::Debug for SecretGate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SecretGate").field("queue", &self.queue).finish_non_exhaustive()
    }
}

/// The first `n` blocks of a thread's Argon2 memory, grown (once) when a hash needs more. The
/// blocks are overwritten by every hash, so nothing of one secret is left for the next.
fn blocks(memory: &mut Vec<argon2::Block>, n: usize) -> &mut [argon2::Block] {
    if memory.len() < n {
        memory.resize(n, argon2::Block::default());
    }
    &mut memory[..n]
}

/// `a`'s output of `len` bytes for `secret` and `salt`, computed in the thread's `memory`.
fn output(
    a: &argon2::Argon2<'_>,
    secret: &str,
    salt: &[u8],
    len: usize,
    memory: &mut Vec<argon2::Block>,
) -> argon2::password_hash::Result<argon2::password_hash::Output> {
    argon2::password_hash::Output::init_with(len, |out| {
        a.hash_password_into_with_memory(
            secret.as_bytes(),
            salt,
            out,
            blocks(memory, a.params().block_count()),
        )
        .map_err(|_| argon2::password_hash::Error::Crypto)
    })
}

/// Counts a waiter for as long as it waits (also when its request is dropped).
struct Waiting<'a>(&'a std::sync::atomic::AtomicUsize);

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, std::sync::atomic::Ordering::SeqCst);
    }
}

impl SecretGate {
    /// Longest wait for a slot before the call is shed.
    pub const MAX_WAIT: std::time::Duration = std::time::Duration::from_secs(2);

    /// At most `concurrency` (at least 1) hashes at once, `queue` waiting.
    pub fn new(concurrency: usize, queue: usize) -> Self {
        let concurrency = concurrency.max(1);
        let (jobs, rx) = std::sync::mpsc::channel::<Job>();
        let rx = Arc::new(std::sync::Mutex::new(rx));
        for i in 0..concurrency {
            let rx = Arc::clone(&rx);
            let spawned =
                std::thread::Builder::new().name(format!("argon2-{i}")).spawn(move || {
                    let mut memory: Vec<argon2::Block> = Vec::new();
                    loop {
                        // The lock is held only while waiting for the next job.
                        let job = match rx.lock() {
                            Ok(r) => r.recv(),
                            Err(_) => return,
                        };
                        match job {
                            Ok(job) => job(&mut memory),
                            Err(_) => return, // the gate was dropped
                        }
                    }
                });
            if let Err(e) = spawned {
                tracing::error!(error = %e, "could not start a password hashing thread");
            }
        }
        Self {
            slots: Arc::new(tokio::sync::Semaphore::new(concurrency)),
            waiting: std::sync::atomic::AtomicUsize::new(0),
            queue,
            jobs,
        }
    }

    /// Runs `f` on a hashing thread in `slot`.
    async fn run<T: Send + 'static>(
        &self,
        slot: Slot,
        f: impl FnOnce(&mut Vec<argon2::Block>) -> Result<T> + Send + 'static,
    ) -> Result<T> {
        let (tx, rx) = tokio::sync::oneshot::channel();
        let job: Job = Box::new(move |memory| {
            let _ = tx.send(f(memory));
            drop(slot);
        });
        self.jobs
            .send(job)
            .map_err(|_| CoreError::Internal("the password hashing threads are gone".into()))?;
        rx.await.map_err(|_| CoreError::Internal("a password hashing job was lost".into()))?
    }

    fn busy() -> CoreError {
        CoreError::Busy { retry_after_secs: 1 }
    }

    /// A place on a hashing thread: at once, after a bounded wait, or 503 `server_busy`.
    pub async fn slot(&self) -> Result<Slot> {
        if let Ok(p) = Arc::clone(&self.slots).try_acquire_owned() {
            return Ok(Slot { _permit: p });
        }
        use std::sync::atomic::Ordering::SeqCst;
        if self.waiting.fetch_add(1, SeqCst) >= self.queue {
            self.waiting.fetch_sub(1, SeqCst);
            return Err(Self::busy());
        }
        let _waiting = Waiting(&self.waiting);
        match tokio::time::timeout(Self::MAX_WAIT, Arc::clone(&self.slots).acquire_owned()).await {
            Ok(Ok(p)) => Ok(Slot { _permit: p }),
            _ => Err(Self::busy()),
        }
    }

    /// Hashes a password or PIN (off the async threads: it is slow on purpose).
    pub async fn hash(&self, secret: Zeroizing<String>) -> Result<String> {
        let slot = self.slot().await?;
        self.run(slot, move |memory| {
            let fail =
                |e: &dyn std::fmt::Display| CoreError::Internal(format!("hashing a secret: {e}"));
            let salt = SaltString::generate(&mut argon2::password_hash::rand_core::OsRng);
            let a = argon2::Argon2::default();
            let params = a.params().clone();
            let mut salt_buf = [0u8; 64];
            let salt_bytes = salt.decode_b64(&mut salt_buf).map_err(|e| fail(&e))?;
            let len = params.output_len().unwrap_or(argon2::Params::DEFAULT_OUTPUT_LEN);
            let output = output(&a, &secret, salt_bytes, len, memory).map_err(|e| fail(&e))?;
            let phc = PasswordHash {
                algorithm: argon2::Algorithm::Argon2id.ident(),
                version: Some(argon2::Version::V0x13.into()),
                params: (&params).try_into().map_err(|e| fail(&e))?,
                salt: Some(salt.as_salt()),
                hash: Some(output),
            };
            Ok(phc.to_string())
        })
        .await
    }

    /// Whether `secret` matches the Argon2id `hash`.
    pub async fn verify(&self, secret: Zeroizing<String>, hash: String) -> Result<bool> {
        let slot = self.slot().await?;
        self.verify_in(slot, secret, hash).await
    }

    /// [`SecretGate::verify`] in a slot taken earlier.
    pub async fn verify_in(
        &self,
        slot: Slot,
        secret: Zeroizing<String>,
        hash: String,
    ) -> Result<bool> {
        self.run(slot, move |memory| {
            let corrupt =
                |e: &dyn std::fmt::Display| CoreError::Storage(format!("corrupt secret hash: {e}"));
            let parsed = PasswordHash::new(&hash).map_err(|e| corrupt(&e))?;
            let algorithm =
                argon2::Algorithm::try_from(parsed.algorithm).map_err(|e| corrupt(&e))?;
            let version = argon2::Version::try_from(parsed.version.unwrap_or(0x13))
                .map_err(|e| corrupt(&e))?;
            let params = argon2::Params::try_from(&parsed).map_err(|e| corrupt(&e))?;
            let (Some(salt), Some(expected)) = (parsed.salt, parsed.hash) else {
                return Err(corrupt(&"no salt or no hash"));
            };
            let mut salt_buf = [0u8; 64];
            let salt_bytes = salt.decode_b64(&mut salt_buf).map_err(|e| corrupt(&e))?;
            let a = argon2::Argon2::new(algorithm, version, params);
            let computed =
                output(&a, &secret, salt_bytes, expected.len(), memory).map_err(|e| corrupt(&e))?;
            // `Output`'s equality is constant-time.
            Ok(computed == expected)
        })
        .await
    }

    /// Spends the time of one verification and answers `false`: a login for an unknown,
    /// disabled or locked-out signer then takes as long as a wrong password, so that timing does
    /// not tell which usernames exist.
    pub async fn verify_nothing(&self, slot: Slot, secret: Zeroizing<String>) -> Result<bool> {
        self.verify_in(slot, secret, DUMMY_HASH.to_owned()).await.map(|_| false)
    }
}
