//! Key generation and loading. ECDSA keys come from ring; RSA keys are generated with the `rsa`
//! crate (key generation only) and every RSA private-key operation runs in ring.

use rcgen::{
    KeyPair, PKCS_ECDSA_P256_SHA256, PKCS_ECDSA_P384_SHA384, PKCS_RSA_SHA256, SignatureAlgorithm,
};
use ring::rand::SystemRandom;
use ring::signature::{
    ECDSA_P256_SHA256_ASN1_SIGNING, ECDSA_P384_SHA384_ASN1_SIGNING, EcdsaKeyPair,
};
use rsa::pkcs8::EncodePrivateKey;
use sigil_core::certs::KeyType;
use zeroize::Zeroizing;

use crate::PkiError;

/// The signature algorithm a key of this type signs with.
pub fn signature_algorithm(k: KeyType) -> &'static SignatureAlgorithm {
    match k {
        KeyType::P256 => &PKCS_ECDSA_P256_SHA256,
        KeyType::P384 => &PKCS_ECDSA_P384_SHA384,
        KeyType::Rsa2048 | KeyType::Rsa3072 | KeyType::Rsa4096 => &PKCS_RSA_SHA256,
    }
}

/// Generates a private key, PKCS#8 DER (zeroed on drop).
pub fn generate(k: KeyType) -> Result<Zeroizing<Vec<u8>>, PkiError> {
    let rng = SystemRandom::new();
    match k {
        KeyType::P256 | KeyType::P384 => {
            let alg = if k == KeyType::P256 {
                &ECDSA_P256_SHA256_ASN1_SIGNING
            } else {
                &ECDSA_P384_SHA384_ASN1_SIGNING
            };
            let doc = EcdsaKeyPair::generate_pkcs8(alg, &rng).map_err(|_| PkiError::Random)?;
            Ok(Zeroizing::new(doc.as_ref().to_vec()))
        }
        KeyType::Rsa2048 | KeyType::Rsa3072 | KeyType::Rsa4096 => {
            let bits = k.rsa_bits().unwrap_or(2048) as usize;
            let key = rsa::RsaPrivateKey::new(&mut rand_core::OsRng, bits)
                .map_err(|_| PkiError::Random)?;
            let doc = key.to_pkcs8_der().map_err(|e| PkiError::InvalidKey(e.to_string()))?;
            Ok(Zeroizing::new(doc.as_bytes().to_vec()))
        }
    }
}

/// Loads a PKCS#8 key for signing (ring under rcgen).
pub fn load(pkcs8: &[u8], k: KeyType) -> Result<KeyPair, PkiError> {
    let der = rustls_pki_types::PrivatePkcs8KeyDer::from(pkcs8);
    KeyPair::from_pkcs8_der_and_sign_algo(&der, signature_algorithm(k))
        .map_err(|e| PkiError::InvalidKey(format!("{k} key: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_keys_load_and_sign() {
        for k in [KeyType::P256, KeyType::P384, KeyType::Rsa2048] {
            let der = generate(k).unwrap();
            let kp = load(&der, k).unwrap();
            assert!(!rcgen::PublicKeyData::der_bytes(&kp).is_empty());
        }
    }
}
