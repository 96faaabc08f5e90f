//! ECDSA signatures of digests with their nonce work done ahead of time, on otherwise idle CPU.
//!
//! An ECDSA signature of a digest `e` under the key `d` is `(r, s)` with `r = (k·G).x mod n`
//! and `s = k⁻¹·(e + r·d) mod n` for a fresh secret `k`. Nearly all of its cost is `k·G` and
//! `k⁻¹`, and neither depends on the message or on the key: only on the curve. OpenSSL computes
//! the pair `(k⁻¹, r)` on its own with `ECDSA_sign_setup` and takes it in `ECDSA_do_sign_ex`,
//! through the same constant-time code as `ECDSA_do_sign`. [`sign`] keeps a pool of such pairs
//! per curve, filled by a thread of its own at `SCHED_IDLE` (it runs only on a core that nothing
//! else wants: under load, the moments a request waits for its commit), and signs with a pair
//! taken from the pool, used once and then cleared and freed; with the pool empty, or taken by
//! another thread at that instant, it signs as `ECDSA_do_sign` does.
//!
//! A pair is as secret as the key: with `k` and one signature, anyone computes `d`. The pairs
//! live in this process's memory beside the keys themselves, are never written anywhere, and
//! each is moved out of the pool by the one signature that uses it.
//!
//! This crate and sigil-sqlite-wal are the host's only `unsafe` code: OpenSSL's precomputed-nonce
//! calls have no safe wrapper.

use std::collections::HashMap;
use std::ffi::{c_int, c_uchar};
use std::ptr::{self, NonNull};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, OnceLock};

use foreign_types::{ForeignType, ForeignTypeRef};
use openssl::bn::BigNumContext;
use openssl::ec::{EcGroup, EcKey, EcKeyRef};
use openssl::ecdsa::EcdsaSig;
use openssl::error::ErrorStack;
use openssl::nid::Nid;
use openssl::pkey::Private;
use openssl_sys::{BIGNUM, BN_CTX, EC_KEY, ECDSA_SIG};

// OpenSSL 3.0 declares both (deprecated, with the rest of `EC_KEY`, which the openssl crate
// uses too); openssl-sys does not bind them.
unsafe extern "C" {
    fn ECDSA_sign_setup(
        eckey: *mut EC_KEY,
        ctx: *mut BN_CTX,
        kinvp: *mut *mut BIGNUM,
        rp: *mut *mut BIGNUM,
    ) -> c_int;
    fn ECDSA_do_sign_ex(
        dgst: *const c_uchar,
        dgstlen: c_int,
        kinv: *const BIGNUM,
        rp: *const BIGNUM,
        eckey: *mut EC_KEY,
    ) -> *mut ECDSA_SIG;
}

/// Pairs kept ready per curve: at 20,000 signatures a second, a fifth of a second of them.
pub const POOL_SIZE: usize = 4096;

/// Pairs the filler computes between two looks at the pool.
const BATCH: usize = 32;

/// One `(k⁻¹, r)`, owned: cleared and freed when dropped.
struct Nonce {
    kinv: NonNull<BIGNUM>,
    r: NonNull<BIGNUM>,
}

// SAFETY: the two BIGNUMs belong to this value alone (nothing else holds their pointers), and
// OpenSSL's BIGNUM functions may be called on a BIGNUM from any thread that owns it.
unsafe impl Send for Nonce {}

impl Drop for Nonce {
    fn drop(&mut self) {
        // SAFETY: both were allocated by OpenSSL (ECDSA_sign_setup) and are freed once, here.
        unsafe {
            openssl_sys::BN_clear_free(self.kinv.as_ptr());
            openssl_sys::BN_clear_free(self.r.as_ptr());
        }
    }
}

impl Nonce {
    /// A fresh pair for `key`'s curve (only its group is used; OpenSSL requires that it hold a
    /// private key).
    fn new(key: &EcKeyRef<Private>, ctx: &mut BigNumContext) -> Result<Self, ErrorStack> {
        let mut kinv: *mut BIGNUM = ptr::null_mut();
        let mut r: *mut BIGNUM = ptr::null_mut();
        // SAFETY: `key` and `ctx` are valid for the call; OpenSSL allocates `kinv` and `r` and
        // hands them over on success, and frees whatever it allocated on failure.
        let ok = unsafe { ECDSA_sign_setup(key.as_ptr(), ctx.as_ptr(), &mut kinv, &mut r) };
        match (ok == 1, NonNull::new(kinv), NonNull::new(r)) {
            (true, Some(kinv), Some(r)) => Ok(Self { kinv, r }),
            (_, kinv, r) => {
                // Not expected after a success, but never leaked.
                drop(kinv.zip(r).map(|(kinv, r)| Self { kinv, r }));
                Err(ErrorStack::get())
            }
        }
    }
}

/// The pairs of one curve and what wakes its filler.
struct Pool {
    nonces: Mutex<Vec<Nonce>>,
    /// Set by the filler before it waits for the pool to run low.
    waiting: AtomicBool,
    low: Condvar,
    /// Signatures made with a pair from the pool, and without one.
    pooled: AtomicU64,
    fresh: AtomicU64,
}

impl Pool {
    /// A pair, if one is ready and the pool is not being filled at this instant: a signer never
    /// waits for the filler, which may be descheduled for long while holding the lock (it runs
    /// at the lowest priority there is).
    fn take(&self) -> Option<Nonce> {
        let mut nonces = self.nonces.try_lock().ok()?;
        let n = nonces.pop();
        let left = nonces.len();
        drop(nonces);
        if left < POOL_SIZE / 2 && self.waiting.load(Ordering::Relaxed) {
            self.low.notify_one();
        }
        n
    }
}

/// The pool of each curve, its filler started on first use.
fn pool(curve: Nid) -> Option<Arc<Pool>> {
    static POOLS: OnceLock<Mutex<HashMap<Nid, Arc<Pool>>>> = OnceLock::new();
    let pools = POOLS.get_or_init(Default::default);
    let mut pools = pools.lock().ok()?;
    if let Some(p) = pools.get(&curve) {
        return Some(Arc::clone(p));
    }
    let p = Arc::new(Pool {
        nonces: Mutex::new(Vec::with_capacity(POOL_SIZE)),
        waiting: AtomicBool::new(false),
        low: Condvar::new(),
        pooled: AtomicU64::new(0),
        fresh: AtomicU64::new(0),
    });
    let filler = Arc::clone(&p);
    let started = std::thread::Builder::new()
        .name("sigil-ecdsa-pool".into())
        .spawn(move || fill(curve, &filler));
    if let Err(e) = started {
        // Signing goes on without the pool.
        tracing::warn!(error = %e, "the ECDSA nonce pool's thread did not start");
    }
    pools.insert(curve, Arc::clone(&p));
    Some(p)
}

/// The filler: keeps the pool of `curve` full, at the lowest scheduling priority.
fn fill(curve: Nid, pool: &Pool) {
    lowest_priority();
    let setup = EcGroup::from_curve_name(curve)
        .and_then(|g| EcKey::generate(&g))
        .and_then(|k| BigNumContext::new_secure().map(|c| (k, c)));
    let (key, mut ctx) = match setup {
        Ok(s) => s,
        Err(e) => {
            tracing::warn!(error = %e, ?curve, "the ECDSA nonce pool cannot compute for this curve");
            return;
        }
    };
    loop {
        let Ok(mut nonces) = pool.nonces.lock() else { return };
        while nonces.len() >= POOL_SIZE {
            pool.waiting.store(true, Ordering::Relaxed);
            nonces = match pool.low.wait(nonces) {
                Ok(n) => n,
                Err(_) => return,
            };
            pool.waiting.store(false, Ordering::Relaxed);
        }
        let want = (POOL_SIZE - nonces.len()).min(BATCH);
        drop(nonces);
        // Computed outside the lock, pushed in one short hold of it.
        let batch: Vec<Nonce> = (0..want).map_while(|_| Nonce::new(&key, &mut ctx).ok()).collect();
        if batch.is_empty() {
            tracing::warn!(?curve, "the ECDSA nonce pool stops: OpenSSL computes no nonce");
            return;
        }
        let Ok(mut nonces) = pool.nonces.lock() else { return };
        nonces.extend(batch);
    }
}

/// Puts the calling thread at `SCHED_IDLE`: it then runs only when nothing else is runnable on
/// its core. Lowering one's own priority needs no privilege.
#[cfg(target_os = "linux")]
fn lowest_priority() {
    let param = libc::sched_param { sched_priority: 0 };
    // SAFETY: `param` is valid for the call; 0 names the calling thread.
    let rc = unsafe { libc::sched_setscheduler(0, libc::SCHED_IDLE, &param) };
    if rc != 0 {
        tracing::debug!(error = %std::io::Error::last_os_error(), "SCHED_IDLE refused");
    }
}

#[cfg(not(target_os = "linux"))]
fn lowest_priority() {}

/// The ECDSA signature of `digest` (a hash's output, truncated to the curve's order as ECDSA
/// does) under `key`, with a pair from its curve's pool when one is ready.
pub fn sign(digest: &[u8], key: &EcKeyRef<Private>) -> Result<EcdsaSig, ErrorStack> {
    let pool = key.group().curve_name().and_then(pool);
    let len = c_int::try_from(digest.len()).ok();
    if let (Some(pool), Some(len)) = (&pool, len) {
        if let Some(n) = pool.take() {
            // SAFETY: `digest` is valid for `len` bytes, `n`'s BIGNUMs and `key` for the call;
            // OpenSSL only reads them, and returns a new ECDSA_SIG (owned by the caller) or null.
            let sig = unsafe {
                ECDSA_do_sign_ex(digest.as_ptr(), len, n.kinv.as_ptr(), n.r.as_ptr(), key.as_ptr())
            };
            // Used once, whatever happened.
            drop(n);
            if let Some(sig) = NonNull::new(sig) {
                pool.pooled.fetch_add(1, Ordering::Relaxed);
                // SAFETY: a valid ECDSA_SIG whose ownership passes to the EcdsaSig.
                return Ok(unsafe { EcdsaSig::from_ptr(sig.as_ptr()) });
            }
            // s = 0 for this pair (OpenSSL asks for new setup values; about 2⁻²⁵⁶) or any
            // failure: signed afresh below, the error queue emptied first.
            drop(ErrorStack::get());
        }
        pool.fresh.fetch_add(1, Ordering::Relaxed);
    }
    EcdsaSig::sign(digest, key)
}

/// Signatures made so far on `curve` with a pooled pair and without one (tests and metrics).
pub fn counts(curve: Nid) -> (u64, u64) {
    pool(curve)
        .map_or((0, 0), |p| (p.pooled.load(Ordering::Relaxed), p.fresh.load(Ordering::Relaxed)))
}

#[cfg(test)]
mod tests;
