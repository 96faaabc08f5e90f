use std::collections::HashSet;

use super::*;
use openssl::bn::BigNumContext;
use openssl::ec::{EcGroup, EcKey};
use openssl::nid::Nid;

/// A distinct `len`-byte "digest" per index (any bytes do: ECDSA signs them as given).
fn digest(i: u32, len: usize) -> Vec<u8> {
    (0..len).map(|j| (i as usize * 31 + j * 7 + 1) as u8).collect()
}

/// Puts `n` pairs into `curve`'s pool on this thread (the filler runs only on an idle core,
/// which a busy test machine may not have).
fn prefill(curve: Nid, n: usize) {
    let p = pool(curve).unwrap();
    let key = EcKey::generate(&EcGroup::from_curve_name(curve).unwrap()).unwrap();
    let mut ctx = BigNumContext::new().unwrap();
    let batch: Vec<Nonce> = (0..n).map(|_| Nonce::new(&key, &mut ctx).unwrap()).collect();
    p.nonces.lock().unwrap().extend(batch);
}

fn signatures_verify_and_no_two_share_a_nonce(curve: Nid, len: usize) {
    let key = EcKey::generate(&EcGroup::from_curve_name(curve).unwrap()).unwrap();
    let public = EcKey::from_public_key(key.group(), key.public_key()).unwrap();
    prefill(curve, 300);
    let (pooled_before, _) = counts(curve);
    let mut rs = HashSet::new();
    for i in 0..300 {
        let d = digest(i, len);
        let sig = sign(&d, &key).unwrap();
        assert!(sig.verify(&d, &public).unwrap(), "signature {i} does not verify");
        // Another digest does not verify under it.
        assert!(!sig.verify(&digest(i + 1000, len), &public).unwrap());
        assert!(rs.insert(sig.r().to_vec()), "signature {i} repeats an r: a nonce was reused");
    }
    let (pooled, _) = counts(curve);
    assert!(
        pooled - pooled_before >= 250,
        "only {} of 300 came from the pool",
        pooled - pooled_before
    );
}

#[test]
fn p256_signatures_from_the_pool_verify_and_never_reuse_a_nonce() {
    signatures_verify_and_no_two_share_a_nonce(Nid::X9_62_PRIME256V1, 32);
}

#[test]
fn p384_signatures_from_the_pool_verify_and_never_reuse_a_nonce() {
    signatures_verify_and_no_two_share_a_nonce(Nid::SECP384R1, 48);
}

#[test]
fn a_pair_taken_from_the_pool_is_no_longer_in_it() {
    let curve = Nid::SECP521R1;
    prefill(curve, 3);
    let p = pool(curve).unwrap();
    let n = p.take().unwrap();
    // The filler may have added pairs meanwhile, never the taken one back.
    let taken = n.kinv.as_ptr();
    assert!(p.nonces.lock().unwrap().iter().all(|m| m.kinv.as_ptr() != taken));
}

#[test]
fn the_filler_fills_an_emptied_pool_on_an_idle_core() {
    let curve = Nid::X9_62_PRIME256V1;
    let p = pool(curve).unwrap();
    let key = EcKey::generate(&EcGroup::from_curve_name(curve).unwrap()).unwrap();
    // Empty it through signatures, which wakes the filler below half.
    while p.take().is_some() {}
    let _ = sign(&digest(1, 32), &key).unwrap();
    let start = std::time::Instant::now();
    while p.nonces.lock().unwrap().len() < 64 {
        assert!(start.elapsed().as_secs() < 120, "the filler did not refill the pool");
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}
