//! Encryption of secrets at rest: AES-256-GCM (ring) under a master key kept outside the
//! database, with associated data that binds each blob to its purpose, table, row and key type
//! ([`SealBinding`]). Every node of a deployment needs the same master key to use the shared
//! CA keys.

use std::path::Path;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use ring::aead::{AES_256_GCM, Aad, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};
use ring::rand::{SecureRandom, SystemRandom};
use zeroize::Zeroizing;

use sigil_core::sealing::{LegacyCheck, Resealed, Resealer, SealBinding};

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

/// The associated data of legacy (v1) blobs: one label for every secret.
const LEGACY_LABEL: &[u8] = b"sigil-sealed-v1";

/// The prefix of blobs bound to their purpose and row ([`SealBinding`]).
const MAGIC: &[u8; 4] = b"SGL\x02";

impl MasterKey {
    /// Loads the base64 key at `path`; an absent file is an error (for tools that must use the
    /// deployment's key, never make a new one).
    pub fn load(path: &Path) -> Result<Self, PkiError> {
        if !path.exists() {
            return Err(PkiError::Io {
                path: path.display().to_string(),
                source: std::io::Error::new(std::io::ErrorKind::NotFound, "no master key here"),
            });
        }
        Self::load_or_create(path)
    }

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

    /// Encrypts `plain` for `binding`; the output is magic ‖ nonce ‖ ciphertext ‖ tag. It opens
    /// only with the same binding.
    pub fn seal(&self, binding: &SealBinding, plain: &[u8]) -> Result<Vec<u8>, PkiError> {
        let mut out = MAGIC.to_vec();
        out.extend_from_slice(&self.seal_with(&binding.aad(), plain)?);
        Ok(out)
    }

    /// Decrypts what [`MasterKey::seal`] produced for the same `binding`. A legacy blob, or
    /// one sealed for another purpose, table, row or key type, does not open.
    pub fn open(
        &self,
        binding: &SealBinding,
        sealed: &[u8],
    ) -> Result<Zeroizing<Vec<u8>>, PkiError> {
        let body = sealed.strip_prefix(MAGIC.as_slice()).ok_or(PkiError::Sealed)?;
        self.open_with(&binding.aad(), body)
    }

    /// Whether `sealed` is bound to a purpose (else it is a legacy blob).
    pub fn is_bound(sealed: &[u8]) -> bool {
        sealed.starts_with(MAGIC)
    }

    fn seal_with(&self, aad: &[u8], plain: &[u8]) -> Result<Vec<u8>, PkiError> {
        let mut nonce = [0u8; NONCE_LEN];
        self.rng.fill(&mut nonce).map_err(|_| PkiError::Random)?;
        let mut buf = plain.to_vec();
        self.key
            .seal_in_place_append_tag(Nonce::assume_unique_for_key(nonce), Aad::from(aad), &mut buf)
            .map_err(|_| PkiError::Sealed)?;
        let mut out = nonce.to_vec();
        out.extend_from_slice(&buf);
        Ok(out)
    }

    fn open_with(&self, aad: &[u8], sealed: &[u8]) -> Result<Zeroizing<Vec<u8>>, PkiError> {
        if sealed.len() < NONCE_LEN {
            return Err(PkiError::Sealed);
        }
        let (nonce, ct) = sealed.split_at(NONCE_LEN);
        let nonce = Nonce::try_assume_unique_for_key(nonce).map_err(|_| PkiError::Sealed)?;
        let mut buf = Zeroizing::new(ct.to_vec());
        let plain = self
            .key
            .open_in_place(nonce, Aad::from(aad), &mut buf)
            .map_err(|_| PkiError::Sealed)?;
        Ok(Zeroizing::new(plain.to_vec()))
    }

    /// Opens a legacy blob. Only the one-time re-sealing at start uses it.
    fn open_legacy(&self, sealed: &[u8]) -> Result<Zeroizing<Vec<u8>>, PkiError> {
        self.open_with(LEGACY_LABEL, sealed)
    }

    /// Seals `plain` the legacy way, for tests of the re-sealing.
    #[doc(hidden)]
    pub fn seal_legacy_for_tests(&self, plain: &[u8]) -> Result<Vec<u8>, PkiError> {
        self.seal_with(LEGACY_LABEL, plain)
    }
}

impl Resealer for MasterKey {
    fn is_bound(&self, sealed: &[u8]) -> bool {
        Self::is_bound(sealed)
    }

    fn reseal_legacy(
        &self,
        sealed: &[u8],
        binding: &SealBinding,
        check: LegacyCheck<'_>,
    ) -> Resealed {
        // A bound blob is never re-sealed (and a legacy one that happens to start with the
        // magic bytes, one in 2^32, opens as legacy below only if it does not open as bound).
        if Self::is_bound(sealed) && self.open(binding, sealed).is_ok() {
            return Resealed::Current;
        }
        let plain = match self.open_legacy(sealed) {
            Ok(p) => p,
            Err(_) if Self::is_bound(sealed) => {
                return Resealed::Refused("sealed for another purpose or row".into());
            }
            Err(_) => return Resealed::Refused("does not open with this master key".into()),
        };
        if let Err(why) = fits(&plain, check) {
            return Resealed::Refused(why);
        }
        match self.seal(binding, &plain) {
            Ok(b) => Resealed::New(b),
            Err(e) => Resealed::Refused(e.to_string()),
        }
    }
}

/// Whether a legacy secret is what its row says it is.
fn fits(plain: &[u8], check: LegacyCheck<'_>) -> Result<(), String> {
    match check {
        LegacyCheck::SymmetricKey(n) if plain.len() == n => Ok(()),
        LegacyCheck::SymmetricKey(n) => Err(format!("not a {n}-byte key")),
        LegacyCheck::UnlockCode
            if (4..=16).contains(&plain.len()) && plain.iter().all(u8::is_ascii_graphic) =>
        {
            Ok(())
        }
        LegacyCheck::UnlockCode => Err("not an unlock code".into()),
        LegacyCheck::KeyOf { cert, end_entity, issued_by, not_of } => {
            use x509_parser::prelude::{FromDer, X509Certificate};
            let key = openssl::pkey::PKey::private_key_from_pkcs8(plain)
                .map_err(|_| "not a PKCS#8 private key".to_owned())?;
            let spki = key.public_key_to_der().map_err(|e| e.to_string())?;
            let parse = |der| {
                X509Certificate::from_der(der)
                    .map(|(_, c)| c)
                    .map_err(|_| "a certificate on record does not parse".to_owned())
            };
            let c = parse(cert)?;
            if c.public_key().raw != spki.as_slice() {
                return Err("not the key of the certificate on record".into());
            }
            for other in not_of {
                if parse(other)?.public_key().raw == spki.as_slice() {
                    return Err("the key of a CA certificate".into());
                }
            }
            if end_entity {
                let signs = c
                    .key_usage()
                    .ok()
                    .flatten()
                    .is_some_and(|ku| ku.value.key_cert_sign() || ku.value.crl_sign());
                if c.is_ca() || signs {
                    return Err("its certificate is a CA certificate".into());
                }
            }
            if let Some(ca) = issued_by {
                let ca = parse(ca)?;
                if c.issuer() != ca.subject() || c.verify_signature(Some(ca.public_key())).is_err()
                {
                    return Err("its certificate is not signed by its CA".into());
                }
            }
            Ok(())
        }
    }
}

#[cfg(test)]
mod tests {
    use sigil_core::sealing::SealPurpose;

    use super::*;

    fn binding(purpose: SealPurpose, row: &str, kt: &str) -> SealBinding {
        SealBinding::new(purpose, row, kt)
    }

    #[test]
    fn sealed_data_opens_only_with_the_same_key() {
        let dir = tempfile::tempdir().unwrap();
        let a = MasterKey::load_or_create(&dir.path().join("a.key")).unwrap();
        let again = MasterKey::load_or_create(&dir.path().join("a.key")).unwrap();
        let b = MasterKey::load_or_create(&dir.path().join("b.key")).unwrap();
        let at = binding(SealPurpose::CardUnlockCode, "d1", "text");
        let sealed = a.seal(&at, b"secret key material").unwrap();
        assert!(!sealed.windows(6).any(|w| w == b"secret"));
        assert_eq!(&*again.open(&at, &sealed).unwrap(), b"secret key material");
        assert!(b.open(&at, &sealed).is_err());
        let mut tampered = sealed.clone();
        tampered[20] ^= 1;
        assert!(a.open(&at, &tampered).is_err());
    }

    #[test]
    fn a_blob_opens_only_for_the_purpose_row_and_key_type_it_was_sealed_for() {
        let dir = tempfile::tempdir().unwrap();
        let m = MasterKey::load_or_create(&dir.path().join("m.key")).unwrap();
        let ca = binding(SealPurpose::CaKey, "default", "p256");
        let sealed = m.seal(&ca, b"pkcs8").unwrap();
        assert!(m.open(&ca, &sealed).is_ok());
        for other in [
            binding(SealPurpose::CredentialKey, "default", "p256"),
            binding(SealPurpose::CaRootKey, "default", "p256"),
            binding(SealPurpose::CaKey, "other", "p256"),
            binding(SealPurpose::CaKey, "default", "p384"),
        ] {
            assert!(m.open(&other, &sealed).is_err(), "{other}");
        }
    }

    #[test]
    fn legacy_blobs_do_not_open_and_are_resealed_only_when_they_fit_their_row() {
        let dir = tempfile::tempdir().unwrap();
        let m = MasterKey::load_or_create(&dir.path().join("m.key")).unwrap();
        let code = binding(SealPurpose::CardUnlockCode, "d1", "text");
        let legacy = m.seal_legacy_for_tests(b"12345678").unwrap();
        assert!(m.open(&code, &legacy).is_err(), "legacy blobs are refused in use");
        let Resealed::New(bound) = m.reseal_legacy(&legacy, &code, LegacyCheck::UnlockCode) else {
            panic!("a legacy unlock code is re-sealed")
        };
        assert_eq!(&*m.open(&code, &bound).unwrap(), b"12345678");
        assert!(matches!(
            m.reseal_legacy(&bound, &code, LegacyCheck::UnlockCode),
            Resealed::Current
        ));
        // A bound blob is never re-bound elsewhere.
        let elsewhere = binding(SealPurpose::CardUnlockCode, "d2", "text");
        assert!(matches!(
            m.reseal_legacy(&bound, &elsewhere, LegacyCheck::UnlockCode),
            Resealed::Refused(_)
        ));
        // A legacy key is not an unlock code, nor a 16-byte key a 24-byte one.
        let key = m.seal_legacy_for_tests(&[7u8; 16]).unwrap();
        assert!(matches!(
            m.reseal_legacy(&key, &code, LegacyCheck::UnlockCode),
            Resealed::Refused(_)
        ));
        let admin = binding(SealPurpose::CardAdminKey, "d1", "3des");
        assert!(matches!(
            m.reseal_legacy(&key, &admin, LegacyCheck::SymmetricKey(24)),
            Resealed::Refused(_)
        ));
    }
}
