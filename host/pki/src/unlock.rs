//! The card PIN-unblock cipher and the sealing of card secrets: sigil-core's
//! [`UnlockCrypto`] port.
//!
//! The response to a card's challenge is the challenge encrypted with the card's
//! administration key, one block, ECB (3DES-EDE3 for 8-byte challenges as the Windows
//! minidriver and PIV 3DES management keys use, AES for 16-byte ones as PIV AES keys use).

use sigil_core::ErrorCode;
use std::sync::Arc;

use aes::cipher::{BlockEncrypt, KeyInit, generic_array::GenericArray};
use ring::rand::{SecureRandom, SystemRandom};
use sigil_core::CoreError;
use sigil_core::cards::unlock::{UnlockAlgorithm, UnlockCrypto};
use sigil_core::sealing::SealBinding;
use zeroize::Zeroizing;

use crate::seal::MasterKey;

/// [`UnlockCrypto`] over the master key.
#[derive(Debug)]
pub struct CardUnlock {
    master: Arc<MasterKey>,
    rng: SystemRandom,
}

impl CardUnlock {
    /// Seals with `master`.
    pub fn new(master: Arc<MasterKey>) -> Self {
        Self { master, rng: SystemRandom::new() }
    }
}

fn encrypt_block<C: KeyInit + BlockEncrypt>(key: &[u8], block: &[u8]) -> Option<Vec<u8>> {
    let cipher = C::new_from_slice(key).ok()?;
    let mut b = GenericArray::clone_from_slice(block);
    cipher.encrypt_block(&mut b);
    Some(b.to_vec())
}

/// One block of `challenge` encrypted with `key`, or `None` when a length is wrong.
pub fn respond(algorithm: UnlockAlgorithm, key: &[u8], challenge: &[u8]) -> Option<Vec<u8>> {
    if key.len() != algorithm.key_len() || challenge.len() != algorithm.block_len() {
        return None;
    }
    match algorithm {
        UnlockAlgorithm::Tdes => encrypt_block::<des::TdesEde3>(key, challenge),
        UnlockAlgorithm::Aes128 => encrypt_block::<aes::Aes128>(key, challenge),
        UnlockAlgorithm::Aes192 => encrypt_block::<aes::Aes192>(key, challenge),
        UnlockAlgorithm::Aes256 => encrypt_block::<aes::Aes256>(key, challenge),
    }
}

impl UnlockCrypto for CardUnlock {
    fn seal(&self, binding: &SealBinding, plain: &[u8]) -> sigil_core::Result<Vec<u8>> {
        Ok(self.master.seal(binding, plain)?)
    }

    fn open(&self, binding: &SealBinding, sealed: &[u8]) -> sigil_core::Result<Zeroizing<Vec<u8>>> {
        Ok(self.master.open(binding, sealed)?)
    }

    fn respond(
        &self,
        algorithm: UnlockAlgorithm,
        key: &[u8],
        challenge: &[u8],
    ) -> sigil_core::Result<Vec<u8>> {
        respond(algorithm, key, challenge).ok_or_else(|| {
            CoreError::invalid(
                ErrorCode::InvalidChallenge,
                format!("a {} challenge is {} bytes", algorithm.as_str(), algorithm.block_len()),
            )
        })
    }

    fn random(&self, len: usize) -> sigil_core::Result<Zeroizing<Vec<u8>>> {
        let mut out = Zeroizing::new(vec![0u8; len]);
        self.rng.fill(&mut out).map_err(|_| CoreError::Internal("random source failed".into()))?;
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn h(s: &str) -> Vec<u8> {
        hex::decode(s).unwrap()
    }

    #[test]
    fn aes_responses_match_the_fips_197_vectors() {
        let pt = h("00112233445566778899aabbccddeeff");
        let k = h("000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f");
        let r = |a, n| hex::encode(respond(a, &k[..n], &pt).unwrap());
        assert_eq!(r(UnlockAlgorithm::Aes128, 16), "69c4e0d86a7b0430d8cdb78070b4c55a");
        assert_eq!(r(UnlockAlgorithm::Aes192, 24), "dda97ca4864cdfe06eaf70a0ec0d7191");
        assert_eq!(r(UnlockAlgorithm::Aes256, 32), "8ea2b7ca516745bfeafc49904b496089");
    }

    #[test]
    fn triple_des_with_three_equal_keys_is_single_des() {
        // NIST SP 800-17 / FIPS 81 known answer: DES(k=0123456789abcdef, "Now is t").
        let k = h("0123456789abcdef0123456789abcdef0123456789abcdef");
        let out = respond(UnlockAlgorithm::Tdes, &k, b"Now is t").unwrap();
        assert_eq!(hex::encode(out), "3fa40e8a984d4815");
    }

    #[test]
    fn wrong_key_or_challenge_lengths_are_refused() {
        assert!(respond(UnlockAlgorithm::Aes128, &[0; 15], &[0; 16]).is_none());
        assert!(respond(UnlockAlgorithm::Tdes, &[0; 24], &[0; 16]).is_none());
        assert!(respond(UnlockAlgorithm::Aes256, &[0; 32], &[0; 8]).is_none());
    }
}
