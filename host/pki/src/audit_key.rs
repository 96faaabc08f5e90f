//! The audit signing key: ECDSA P-256 with SHA-256 (ring), PKCS#8 on disk with mode 0600.
//! Checkpoints and export signatures are DER-encoded ECDSA signatures, base64 in text.

use std::collections::HashMap;
use std::path::Path;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use ring::rand::SystemRandom;
use ring::signature::{self, EcdsaKeyPair, KeyPair as _};
use sha2::{Digest, Sha256};
use sigil_core::audit::AuditCrypto;
use sigil_core::audit::SignatureCheck;
use sigil_core::ports::AuditKeyRecord;
use sigil_core::{CoreError, Result};

use crate::{PkiError, pem, write_private};

/// DER prefix of a P-256 SubjectPublicKeyInfo before the 65-byte uncompressed point.
const P256_SPKI_PREFIX: [u8; 26] = [
    0x30, 0x59, 0x30, 0x13, 0x06, 0x07, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01, 0x06, 0x08, 0x2a,
    0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07, 0x03, 0x42, 0x00,
];

/// The audit key of this node.
pub struct AuditKey {
    pair: EcdsaKeyPair,
    rng: SystemRandom,
    key_id: String,
    public_pem: String,
}

impl std::fmt::Debug for AuditKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AuditKey").field("key_id", &self.key_id).finish_non_exhaustive()
    }
}

impl AuditKey {
    /// Loads the key at `path`, creating it (mode 0600) when it does not exist.
    pub fn load_or_create(path: &Path) -> std::result::Result<Self, PkiError> {
        let rng = SystemRandom::new();
        let alg = &signature::ECDSA_P256_SHA256_ASN1_SIGNING;
        let pkcs8 = if path.exists() {
            let text = std::fs::read_to_string(path)
                .map_err(|source| PkiError::Io { path: path.display().to_string(), source })?;
            pem::decode("PRIVATE KEY", &text)
                .ok_or_else(|| PkiError::InvalidKey(path.display().to_string()))?
        } else {
            let doc = EcdsaKeyPair::generate_pkcs8(alg, &rng).map_err(|_| PkiError::Random)?;
            write_private(path, pem::encode("PRIVATE KEY", doc.as_ref()).as_bytes())?;
            doc.as_ref().to_vec()
        };
        let pair = EcdsaKeyPair::from_pkcs8(alg, &pkcs8, &rng)
            .map_err(|_| PkiError::InvalidKey(path.display().to_string()))?;
        let mut spki = P256_SPKI_PREFIX.to_vec();
        spki.extend_from_slice(pair.public_key().as_ref());
        let key_id = key_id(&spki);
        let public_pem = pem::encode("PUBLIC KEY", &spki);
        Ok(Self { pair, rng, key_id, public_pem })
    }

    /// Writes the public key next to the private one (`<name>.pub.pem`, unless it is there
    /// already) so that other nodes and offline verifiers can pin it. Returns its path.
    pub fn publish(&self, key_path: &Path) -> std::result::Result<std::path::PathBuf, PkiError> {
        let path = key_path.with_extension("pub.pem");
        let current = std::fs::read_to_string(&path).ok();
        if current.as_deref() != Some(self.public_pem.as_str()) {
            std::fs::write(&path, &self.public_pem)
                .map_err(|source| PkiError::Io { path: path.display().to_string(), source })?;
        }
        Ok(path)
    }

    /// A keyring holding this key only.
    pub fn keyring(&self) -> Keyring {
        let mut k = Keyring::default();
        k.add_pem(&self.public_pem, None);
        k
    }
}

/// Key id: hex of the first 16 bytes of SHA-256 over the SubjectPublicKeyInfo DER.
pub fn key_id(spki_der: &[u8]) -> String {
    hex::encode(&Sha256::digest(spki_der)[..16])
}

impl AuditCrypto for AuditKey {
    fn key_id(&self) -> &str {
        &self.key_id
    }

    fn public_key_pem(&self) -> &str {
        &self.public_pem
    }

    fn sign(&self, message: &[u8]) -> Result<String> {
        let sig = self
            .pair
            .sign(&self.rng, message)
            .map_err(|_| CoreError::Internal("audit signature failed".into()))?;
        Ok(STANDARD.encode(sig.as_ref()))
    }
}

/// Public audit keys by id.
#[derive(Debug, Default, Clone)]
pub struct Keyring {
    points: HashMap<String, Vec<u8>>,
}

impl Keyring {
    /// Builds a keyring from stored records; a record whose PEM or id does not check out is
    /// skipped (its signatures then fail to verify).
    pub fn from_records(keys: &[AuditKeyRecord]) -> Self {
        let mut k = Self::default();
        for r in keys {
            k.add_pem(&r.public_key_pem, Some(&r.key_id));
        }
        k
    }

    /// Adds the public key in the PEM file at `path`; fails when it is not a P-256 public key.
    pub fn add_file(&mut self, path: &Path) -> std::result::Result<String, PkiError> {
        let text = std::fs::read_to_string(path)
            .map_err(|source| PkiError::Io { path: path.display().to_string(), source })?;
        self.add_pem(&text, None).ok_or_else(|| PkiError::InvalidKey(path.display().to_string()))
    }

    /// Whether no key is pinned.
    pub fn is_empty(&self) -> bool {
        self.points.is_empty()
    }

    /// Adds a public key PEM; when `expected_id` is given the key must hash to it.
    pub fn add_pem(&mut self, pem_text: &str, expected_id: Option<&str>) -> Option<String> {
        let der = pem::decode("PUBLIC KEY", pem_text)?;
        let point = der.strip_prefix(&P256_SPKI_PREFIX[..])?;
        let id = key_id(&der);
        if expected_id.is_some_and(|e| e != id) {
            return None;
        }
        self.points.insert(id.clone(), point.to_vec());
        Some(id)
    }
}

impl SignatureCheck for Keyring {
    fn knows(&self, key_id: &str) -> bool {
        self.points.contains_key(key_id)
    }

    fn verify(&self, key_id: &str, message: &[u8], signature_b64: &str) -> bool {
        let (Some(point), Ok(sig)) = (self.points.get(key_id), STANDARD.decode(signature_b64))
        else {
            return false;
        };
        signature::UnparsedPublicKey::new(&signature::ECDSA_P256_SHA256_ASN1, point)
            .verify(message, &sig)
            .is_ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_created_key_is_reloaded_and_its_signatures_verify() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("audit-key.pem");
        let k = AuditKey::load_or_create(&path).unwrap();
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            assert_eq!(std::fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o600);
        }
        let again = AuditKey::load_or_create(&path).unwrap();
        assert_eq!(k.key_id(), again.key_id());
        let sig = k.sign(b"hello").unwrap();
        let rec = AuditKeyRecord {
            key_id: k.key_id().into(),
            public_key_pem: k.public_key_pem().into(),
            created_at_us: 0,
        };
        let ring = Keyring::from_records(&[rec]);
        assert!(ring.verify(k.key_id(), b"hello", &sig));
        assert!(!ring.verify(k.key_id(), b"hellO", &sig));
        assert!(!ring.verify("other", b"hello", &sig));
        // The published public key pins the same key.
        let pubfile = k.publish(&path).unwrap();
        assert_eq!(pubfile, dir.path().join("audit-key.pub.pem"));
        let mut pinned = Keyring::default();
        assert_eq!(pinned.add_file(&pubfile).unwrap(), k.key_id());
        assert!(pinned.knows(k.key_id()) && !pinned.knows("other"));
        assert!(pinned.verify(k.key_id(), b"hello", &sig));
        assert!(Keyring::default().add_file(&path).is_err(), "a private key is not a public key");
    }
}
