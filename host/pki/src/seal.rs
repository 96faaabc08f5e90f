//! Encryption of private keys at rest: AES-256-GCM (ring) under a master key kept outside the
//! database. Every node of a deployment needs the same master key to use the shared CA keys.

use std::path::Path;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use ring::aead::{AES_256_GCM, Aad, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};
use ring::rand::{SecureRandom, SystemRandom};
use zeroize::Zeroizing;

use crate::{PkiError, write_private};

/// The master key.
pub struct MasterKey {
    key: LessSafeKey,
    rng: SystemRandom,
}

impl std::fmt::Debug for MasterKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("MasterKey(..)")
    }
}

const LABEL: &[u8] = b"sigil-sealed-v1";

impl MasterKey {
    /// Loads the base64 key at `path`, creating it (mode 0600) when absent.
    pub fn load_or_create(path: &Path) -> Result<Self, PkiError> {
        let rng = SystemRandom::new();
        let raw = if path.exists() {
            let text = Zeroizing::new(
                std::fs::read_to_string(path)
                    .map_err(|source| PkiError::Io { path: path.display().to_string(), source })?,
            );
            Zeroizing::new(
                STANDARD
                    .decode(text.trim())
                    .map_err(|_| PkiError::InvalidKey(path.display().to_string()))?,
            )
        } else {
            let mut k = Zeroizing::new(vec![0u8; 32]);
            rng.fill(&mut k).map_err(|_| PkiError::Random)?;
            write_private(path, format!("{}\n", STANDARD.encode(&*k)).as_bytes())?;
            k
        };
        Self::from_bytes(&raw, rng)
            .map_err(|_| PkiError::InvalidKey(format!("{}: need 32 bytes, base64", path.display())))
    }

    fn from_bytes(raw: &[u8], rng: SystemRandom) -> Result<Self, ()> {
        let unbound = UnboundKey::new(&AES_256_GCM, raw).map_err(|_| ())?;
        Ok(Self { key: LessSafeKey::new(unbound), rng })
    }

    /// Encrypts `plain`; the output is nonce ‖ ciphertext ‖ tag.
    pub fn seal(&self, plain: &[u8]) -> Result<Vec<u8>, PkiError> {
        let mut nonce = [0u8; NONCE_LEN];
        self.rng.fill(&mut nonce).map_err(|_| PkiError::Random)?;
        let mut buf = plain.to_vec();
        self.key
            .seal_in_place_append_tag(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(LABEL),
                &mut buf,
            )
            .map_err(|_| PkiError::Sealed)?;
        let mut out = nonce.to_vec();
        out.extend_from_slice(&buf);
        Ok(out)
    }

    /// Decrypts what [`MasterKey::seal`] produced.
    pub fn open(&self, sealed: &[u8]) -> Result<Zeroizing<Vec<u8>>, PkiError> {
        if sealed.len() < NONCE_LEN {
            return Err(PkiError::Sealed);
        }
        let (nonce, ct) = sealed.split_at(NONCE_LEN);
        let nonce = Nonce::try_assume_unique_for_key(nonce).map_err(|_| PkiError::Sealed)?;
        let mut buf = Zeroizing::new(ct.to_vec());
        let plain = self
            .key
            .open_in_place(nonce, Aad::from(LABEL), &mut buf)
            .map_err(|_| PkiError::Sealed)?;
        Ok(Zeroizing::new(plain.to_vec()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sealed_data_opens_only_with_the_same_key() {
        let dir = tempfile::tempdir().unwrap();
        let a = MasterKey::load_or_create(&dir.path().join("a.key")).unwrap();
        let again = MasterKey::load_or_create(&dir.path().join("a.key")).unwrap();
        let b = MasterKey::load_or_create(&dir.path().join("b.key")).unwrap();
        let sealed = a.seal(b"secret key material").unwrap();
        assert!(!sealed.windows(6).any(|w| w == b"secret"));
        assert_eq!(&*again.open(&sealed).unwrap(), b"secret key material");
        assert!(b.open(&sealed).is_err());
        let mut tampered = sealed.clone();
        tampered[20] ^= 1;
        assert!(a.open(&tampered).is_err());
    }
}
