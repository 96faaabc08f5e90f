//! ACME request signatures (RFC 8555 §6.2, RFC 7518 §3): ES256, ES384, RS256 and EdDSA
//! (Ed25519) over the JWS signing input, with ring, and HMAC-SHA-256 for external account
//! bindings.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use ring::signature::{self, UnparsedPublicKey};
use serde_json::Value;
use sigil_core::acme::AcmeError;
use sigil_core::acme::jws::JwsVerifier;

/// The verifier.
#[derive(Debug, Default, Clone, Copy)]
pub struct AcmeJws;

fn member(jwk: &Value, k: &str) -> Result<Vec<u8>, AcmeError> {
    let s = jwk
        .get(k)
        .and_then(Value::as_str)
        .ok_or_else(|| AcmeError::bad_public_key(format!("the JWK has no `{k}`")))?;
    URL_SAFE_NO_PAD
        .decode(s)
        .map_err(|_| AcmeError::bad_public_key(format!("the JWK's `{k}` is not base64url")))
}

fn text<'a>(jwk: &'a Value, k: &str) -> &'a str {
    jwk.get(k).and_then(Value::as_str).unwrap_or("")
}

/// An EC public point `04 ‖ x ‖ y` from a JWK of curve `crv` with coordinates of `len` bytes.
fn ec_point(jwk: &Value, crv: &str, len: usize) -> Result<Vec<u8>, AcmeError> {
    if text(jwk, "kty") != "EC" || text(jwk, "crv") != crv {
        return Err(AcmeError::bad_public_key(format!("this algorithm needs an EC {crv} key")));
    }
    let (x, y) = (member(jwk, "x")?, member(jwk, "y")?);
    if x.len() != len || y.len() != len {
        return Err(AcmeError::bad_public_key(format!("{crv} coordinates are {len} bytes")));
    }
    let mut p = Vec::with_capacity(1 + 2 * len);
    p.push(0x04);
    p.extend_from_slice(&x);
    p.extend_from_slice(&y);
    Ok(p)
}

impl JwsVerifier for AcmeJws {
    fn verify(&self, alg: &str, jwk: &Value, input: &[u8], sig: &[u8]) -> Result<(), AcmeError> {
        let checked = match alg {
            "ES256" => UnparsedPublicKey::new(
                &signature::ECDSA_P256_SHA256_FIXED,
                ec_point(jwk, "P-256", 32)?,
            )
            .verify(input, sig),
            "ES384" => UnparsedPublicKey::new(
                &signature::ECDSA_P384_SHA384_FIXED,
                ec_point(jwk, "P-384", 48)?,
            )
            .verify(input, sig),
            "RS256" => {
                if text(jwk, "kty") != "RSA" {
                    return Err(AcmeError::bad_public_key("RS256 needs an RSA key"));
                }
                let (n, e) = (member(jwk, "n")?, member(jwk, "e")?);
                // ring takes 2048 to 8192 bits and refuses anything else as a bad signature;
                // say it plainly.
                let bits = n.iter().skip_while(|b| **b == 0).count() * 8;
                if !(2048..=8192).contains(&bits) {
                    return Err(AcmeError::bad_public_key(
                        "RSA account keys are 2048 to 8192 bits",
                    ));
                }
                signature::RsaPublicKeyComponents { n: &n, e: &e }.verify(
                    &signature::RSA_PKCS1_2048_8192_SHA256,
                    input,
                    sig,
                )
            }
            "EdDSA" => {
                if text(jwk, "kty") != "OKP" || text(jwk, "crv") != "Ed25519" {
                    return Err(AcmeError::bad_public_key("EdDSA needs an OKP Ed25519 key"));
                }
                let x = member(jwk, "x")?;
                UnparsedPublicKey::new(&signature::ED25519, x).verify(input, sig)
            }
            other => return Err(AcmeError::bad_signature_algorithm(other)),
        };
        checked.map_err(|_| AcmeError::malformed("the JWS signature does not verify"))
    }

    fn hmac_sha256(&self, key: &[u8], input: &[u8]) -> Vec<u8> {
        let k = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, key);
        ring::hmac::sign(&k, input).as_ref().to_vec()
    }

    fn jwk_spki(&self, jwk: &Value) -> Result<Vec<u8>, AcmeError> {
        use openssl::bn::BigNum;
        use openssl::pkey::{Id, PKey};
        let bad = |e: openssl::error::ErrorStack| AcmeError::bad_public_key(e.to_string());
        let pkey = match (text(jwk, "kty"), text(jwk, "crv")) {
            ("EC", crv @ ("P-256" | "P-384")) => {
                let nid = if crv == "P-256" {
                    openssl::nid::Nid::X9_62_PRIME256V1
                } else {
                    openssl::nid::Nid::SECP384R1
                };
                let group = openssl::ec::EcGroup::from_curve_name(nid).map_err(bad)?;
                let x = BigNum::from_slice(&member(jwk, "x")?).map_err(bad)?;
                let y = BigNum::from_slice(&member(jwk, "y")?).map_err(bad)?;
                let key = openssl::ec::EcKey::from_public_key_affine_coordinates(&group, &x, &y)
                    .map_err(bad)?;
                PKey::from_ec_key(key).map_err(bad)?
            }
            ("RSA", _) => {
                let n = BigNum::from_slice(&member(jwk, "n")?).map_err(bad)?;
                let e = BigNum::from_slice(&member(jwk, "e")?).map_err(bad)?;
                PKey::from_rsa(openssl::rsa::Rsa::from_public_components(n, e).map_err(bad)?)
                    .map_err(bad)?
            }
            ("OKP", "Ed25519") => {
                PKey::public_key_from_raw_bytes(&member(jwk, "x")?, Id::ED25519).map_err(bad)?
            }
            (kty, crv) => {
                return Err(AcmeError::bad_public_key(format!(
                    "key `{kty}` `{crv}` is not accepted"
                )));
            }
        };
        pkey.public_key_to_der().map_err(bad)
    }

    fn authority_key_id(&self, der: &[u8]) -> Option<Vec<u8>> {
        use x509_parser::extensions::ParsedExtension;
        use x509_parser::prelude::{FromDer, X509Certificate};
        let (_, cert) = X509Certificate::from_der(der).ok()?;
        cert.extensions().iter().find_map(|e| match e.parsed_extension() {
            ParsedExtension::AuthorityKeyIdentifier(aki) => {
                aki.key_identifier.as_ref().map(|k| k.0.to_vec())
            }
            _ => None,
        })
    }

    fn certificate_identity(&self, der: &[u8]) -> Option<(String, Vec<u8>)> {
        use x509_parser::prelude::{FromDer, X509Certificate};
        let (rest, cert) = X509Certificate::from_der(der).ok()?;
        if !rest.is_empty() {
            return None;
        }
        Some((
            hex::encode(cert.tbs_certificate.raw_serial()),
            cert.tbs_certificate.subject_pki.raw.to_vec(),
        ))
    }
}

/// Seals ACME external account binding keys under the master key, each bound to its row.
pub struct EabKeySealer {
    master: std::sync::Arc<crate::seal::MasterKey>,
}

impl std::fmt::Debug for EabKeySealer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EabKeySealer").finish_non_exhaustive()
    }
}

impl EabKeySealer {
    /// A sealer under `master`.
    pub fn new(master: std::sync::Arc<crate::seal::MasterKey>) -> Self {
        Self { master }
    }
}

fn eab_binding(id: uuid::Uuid) -> sigil_core::sealing::SealBinding {
    sigil_core::sealing::SealBinding::new(sigil_core::sealing::SealPurpose::AcmeEabKey, id, "hmac")
}

impl sigil_core::acme::admin::EabSealer for EabKeySealer {
    fn seal(&self, id: uuid::Uuid, key: &[u8]) -> sigil_core::Result<String> {
        let sealed = self.master.seal(&eab_binding(id), key)?;
        Ok(base64::engine::general_purpose::STANDARD.encode(sealed))
    }

    fn open(
        &self,
        id: uuid::Uuid,
        sealed: &str,
    ) -> sigil_core::Result<zeroize::Zeroizing<Vec<u8>>> {
        let raw = base64::engine::general_purpose::STANDARD
            .decode(sealed)
            .map_err(|e| sigil_core::CoreError::Internal(format!("binding key {id}: {e}")))?;
        Ok(self.master.open(&eab_binding(id), &raw)?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ring::rand::SystemRandom;
    use ring::signature::{EcdsaKeyPair, Ed25519KeyPair, KeyPair as _};
    use serde_json::json;

    fn b64(b: &[u8]) -> String {
        URL_SAFE_NO_PAD.encode(b)
    }

    #[test]
    fn es256_and_eddsa_signatures_verify_and_tampering_or_a_wrong_key_type_is_refused() {
        let rng = SystemRandom::new();
        let alg = &signature::ECDSA_P256_SHA256_FIXED_SIGNING;
        let pkcs8 = EcdsaKeyPair::generate_pkcs8(alg, &rng).unwrap();
        let kp = EcdsaKeyPair::from_pkcs8(alg, pkcs8.as_ref(), &rng).unwrap();
        let pt = kp.public_key().as_ref();
        let jwk = json!({"kty": "EC", "crv": "P-256", "x": b64(&pt[1..33]), "y": b64(&pt[33..])});
        let sig = kp.sign(&rng, b"input").unwrap();
        AcmeJws.verify("ES256", &jwk, b"input", sig.as_ref()).unwrap();
        assert_eq!(
            AcmeJws.verify("ES256", &jwk, b"other", sig.as_ref()).unwrap_err().kind(),
            "malformed"
        );
        assert_eq!(
            AcmeJws.verify("ES384", &jwk, b"input", sig.as_ref()).unwrap_err().kind(),
            "badPublicKey"
        );
        assert_eq!(
            AcmeJws.verify("RS256", &jwk, b"input", sig.as_ref()).unwrap_err().kind(),
            "badPublicKey"
        );
        let ed = Ed25519KeyPair::from_pkcs8(Ed25519KeyPair::generate_pkcs8(&rng).unwrap().as_ref())
            .unwrap();
        let jwk = json!({"kty": "OKP", "crv": "Ed25519", "x": b64(ed.public_key().as_ref())});
        AcmeJws.verify("EdDSA", &jwk, b"input", ed.sign(b"input").as_ref()).unwrap();
        assert!(AcmeJws.verify("EdDSA", &jwk, b"input!", ed.sign(b"input").as_ref()).is_err());
    }

    #[test]
    fn es384_and_rs256_verify_and_a_jwk_gives_the_spki_of_its_key() {
        let rng = SystemRandom::new();
        let alg = &signature::ECDSA_P384_SHA384_FIXED_SIGNING;
        let pkcs8 = EcdsaKeyPair::generate_pkcs8(alg, &rng).unwrap();
        let kp = EcdsaKeyPair::from_pkcs8(alg, pkcs8.as_ref(), &rng).unwrap();
        let pt = kp.public_key().as_ref();
        let jwk = json!({"kty": "EC", "crv": "P-384", "x": b64(&pt[1..49]), "y": b64(&pt[49..])});
        AcmeJws.verify("ES384", &jwk, b"input", kp.sign(&rng, b"input").unwrap().as_ref()).unwrap();
        let spki = openssl::pkey::PKey::private_key_from_pkcs8(pkcs8.as_ref())
            .unwrap()
            .public_key_to_der()
            .unwrap();
        assert_eq!(AcmeJws.jwk_spki(&jwk).unwrap(), spki);

        let rsa = openssl::rsa::Rsa::generate(2048).unwrap();
        let jwk = json!({"kty": "RSA", "n": b64(&rsa.n().to_vec()), "e": b64(&rsa.e().to_vec())});
        let key = openssl::pkey::PKey::from_rsa(rsa).unwrap();
        let mut signer =
            openssl::sign::Signer::new(openssl::hash::MessageDigest::sha256(), &key).unwrap();
        let sig = signer.sign_oneshot_to_vec(b"input").unwrap();
        AcmeJws.verify("RS256", &jwk, b"input", &sig).unwrap();
        assert!(AcmeJws.verify("RS256", &jwk, b"other", &sig).is_err());
        assert_eq!(AcmeJws.jwk_spki(&jwk).unwrap(), key.public_key_to_der().unwrap());
        // A 1024-bit RSA account key is refused as a key, before any signature.
        let small = openssl::rsa::Rsa::generate(1024).unwrap();
        let jwk =
            json!({"kty": "RSA", "n": b64(&small.n().to_vec()), "e": b64(&small.e().to_vec())});
        assert_eq!(
            AcmeJws.verify("RS256", &jwk, b"input", &sig).unwrap_err().kind(),
            "badPublicKey"
        );
    }
}
