//! Signing credentials of the CSC API: key generation with a PKCS#10 request for Sigil's own
//! certificate path, and signatures over precomputed digests (signHash) with the sealed key.
//!
//! ring signs only messages it hashes itself, so signHash uses OpenSSL (the system libcrypto):
//! its RSA private-key operation is constant-time and blinded, which a remotely timed service
//! needs (the `rsa` crate is not: RUSTSEC-2023-0071), and its P-256 ECDSA costs about 20 µs
//! (through the key's `EC_KEY`, see [`SealedKey`]).
//! ECDSA signatures are returned DER-encoded, as CMS (and so pyHanko) needs them. Opened keys
//! are cached per credential so that a signature does not pay for unsealing and parsing.

use sigil_core::ErrorCode;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use openssl::ec::EcKey;
use openssl::ecdsa::EcdsaSig;
use openssl::md::{Md, MdRef};
use openssl::pkey::{Id, PKey, Private};
use openssl::pkey_ctx::PkeyCtx;
use openssl::rsa::Padding;
use openssl::sign::RsaPssSaltlen;
use sigil_core::CoreError;
use sigil_core::certs::KeyType;
use sigil_core::signing::credential::{
    CredentialKey, HashAlgo, SignScheme, SigningKeys, credential_binding,
};
use uuid::Uuid;
use zeroize::Zeroizing;

use crate::pkcs11::{Token, TokenKey};
use crate::seal::MasterKey;
use sigil_core::signing::key_store::{KeyStoreKind, TokenKeyRef};

/// Most opened keys kept; a full clear is cheap and rare.
const CACHE_MAX: usize = 10_000;

/// Signatures computed inline on the async thread: a few P-256 ones (about 15 µs each) cost
/// less than a hop. P-384 ones take about half a millisecond each with OpenSSL 3.0 (no fast
/// path for that curve), RSA ones a millisecond: those run on the blocking pool.
const INLINE_EC: usize = 8;

/// An opened credential key: sealed and now in memory, or on the token.
#[derive(Clone)]
enum OpenKey {
    Sealed(Arc<SealedKey>),
    Token(Arc<Token>, Arc<TokenKey>),
}

/// A sealed key opened: OpenSSL's key, and for an EC key its `EC_KEY` too. ECDSA through the
/// `EC_KEY` (`ECDSA_do_sign`) is the same OpenSSL code the EVP interface ends in, without
/// the context, algorithm fetch and parameter passing EVP (OpenSSL 3) repeats per signature:
/// about 23 → 20 µs a P-256 signature alone, more under load, where the fetch contends.
struct SealedKey {
    pkey: PKey<Private>,
    ec: Option<EcKey<Private>>,
}

impl SealedKey {
    fn new(pkey: PKey<Private>) -> Result<Self, CoreError> {
        let ec = if pkey.id() == Id::EC { Some(pkey.ec_key().map_err(bad_key)?) } else { None };
        Ok(Self { pkey, ec })
    }

    fn sign(
        &self,
        k: KeyType,
        hash: HashAlgo,
        scheme: SignScheme,
        digest: &[u8],
    ) -> Result<Vec<u8>, CoreError> {
        check_request(k, hash, scheme, digest)?;
        match &self.ec {
            // ECDSA_do_sign: the ECDSA signature (DER) of `digest`.
            Some(ec) => EcdsaSig::sign(digest, ec).and_then(|s| s.to_der()).map_err(failed),
            None => evp_sign(&self.pkey, hash, scheme, digest),
        }
    }
}

/// A sealed key, the certificate and CA chain it was checked against, and the key opened.
type Opened = (String, Vec<u8>, Vec<Vec<u8>>, OpenKey);

/// [`SigningKeys`] with keys sealed under the master key or held on a PKCS#11 token.
pub struct CredentialKeys {
    master: Arc<MasterKey>,
    /// The configured token, if any.
    token: Option<Arc<Token>>,
    /// Where new keys go when the request does not say.
    default_store: KeyStoreKind,
    /// credential id → (its sealed key, its certificate, its CA chain, opened): a change to any
    /// is opened and checked again.
    cache: Mutex<HashMap<Uuid, Opened>>,
}

impl std::fmt::Debug for CredentialKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CredentialKeys").finish_non_exhaustive()
    }
}

impl CredentialKeys {
    /// Seals with `master`.
    pub fn new(master: Arc<MasterKey>) -> Self {
        Self {
            master,
            token: None,
            default_store: KeyStoreKind::Sealed,
            cache: Mutex::new(HashMap::new()),
        }
    }

    /// Also keeps keys on `token`; new keys go to `default_store` unless the request names one.
    pub fn with_token(mut self, token: Arc<Token>, default_store: KeyStoreKind) -> Self {
        self.token = Some(token);
        self.default_store = default_store;
        self
    }

    /// The configured token, for a key stored on the token labelled `label`.
    fn token_for(&self, label: &str) -> Result<Arc<Token>, CoreError> {
        self.token.clone().filter(|t| t.label() == label).ok_or_else(|| {
            CoreError::Internal(format!(
                "credential key: it is on token `{label}`, which this server is not configured with"
            ))
        })
    }

    fn open(&self, r: &CredentialKey<'_>) -> Result<OpenKey, CoreError> {
        if let Ok(c) = self.cache.lock()
            && let Some((s, cert, chain, k)) = c.get(&r.id)
            && s == r.sealed_key
            && cert.as_slice() == r.certificate
            && chain.as_slice() == r.ca_chain
        {
            return Ok(k.clone());
        }
        let key = match TokenKeyRef::decode(r.sealed_key) {
            Some(at) => {
                if !at.is_credentials(r.id) {
                    return Err(CoreError::Internal(format!(
                        "credential {}: its token reference names key `{}`, not its own",
                        r.id, at.label
                    )));
                }
                let token = self.token_for(&at.token)?;
                let found = Arc::new(token.find(&at.label, &at.id, r.key_type)?);
                check_certifies(&found.spki, r.certificate, r.ca_chain)?;
                OpenKey::Token(token, found)
            }
            None => {
                let sealed = STANDARD.decode(r.sealed_key).map_err(bad_key)?;
                let pkcs8 = self.master.open(&credential_binding(r.id, r.key_type), &sealed)?;
                let key = PKey::private_key_from_pkcs8(&pkcs8).map_err(bad_key)?;
                check_certifies(
                    &key.public_key_to_der().map_err(bad_key)?,
                    r.certificate,
                    r.ca_chain,
                )?;
                OpenKey::Sealed(Arc::new(SealedKey::new(key)?))
            }
        };
        if let Ok(mut c) = self.cache.lock() {
            if c.len() >= CACHE_MAX {
                c.clear();
            }
            c.insert(
                r.id,
                (r.sealed_key.to_owned(), r.certificate.to_vec(), r.ca_chain.to_vec(), key.clone()),
            );
        }
        Ok(key)
    }
}

/// The key must be the one `certificate` certifies, the certificate an end-entity one that may
/// not sign certificates or CRLs, signed by the first of `ca_chain` (the CA back end it names),
/// and the key none of the chain's: so a sealed CA key put in a credential's row, a credential
/// pointed at a CA certificate, a certificate forged into the inventory, or even a genuine
/// end-entity certificate for a CA's own key signs nothing.
fn check_certifies(spki: &[u8], certificate: &[u8], ca_chain: &[Vec<u8>]) -> Result<(), CoreError> {
    use x509_parser::prelude::{FromDer, SubjectPublicKeyInfo, X509Certificate};
    // Internal: the API logs it and tells the client only that nothing was signed.
    let refused = |why: &str| CoreError::Internal(format!("credential key refused: {why}"));
    let (_, cert) =
        X509Certificate::from_der(certificate).map_err(|_| refused("unreadable certificate"))?;
    let (_, opened) =
        SubjectPublicKeyInfo::from_der(spki).map_err(|_| refused("unreadable public key"))?;
    if opened.subject_public_key.data != cert.public_key().subject_public_key.data {
        return Err(refused("the key is not the one its certificate certifies"));
    }
    if cert.is_ca() {
        return Err(refused("the certificate is a CA certificate"));
    }
    if let Ok(Some(ku)) = cert.key_usage()
        && (ku.value.key_cert_sign() || ku.value.crl_sign())
    {
        return Err(refused("the certificate may sign certificates or CRLs"));
    }
    let mut cas = Vec::with_capacity(ca_chain.len());
    for der in ca_chain {
        let (_, ca) =
            X509Certificate::from_der(der).map_err(|_| refused("unreadable CA certificate"))?;
        if ca.public_key().subject_public_key.data == opened.subject_public_key.data {
            return Err(refused("the key is a CA's key"));
        }
        cas.push(ca);
    }
    let ca = cas.first().ok_or_else(|| refused("no CA certificate"))?;
    if !ca.is_ca() || cert.issuer() != ca.subject() {
        return Err(refused("the certificate is not issued by its CA back end"));
    }
    cert.verify_signature(Some(ca.public_key()))
        .map_err(|_| refused("the certificate's signature does not verify with its CA's key"))?;
    Ok(())
}

fn bad_key(e: impl std::fmt::Display) -> CoreError {
    CoreError::Internal(format!("credential key: {e}"))
}

fn md(h: HashAlgo) -> &'static MdRef {
    match h {
        HashAlgo::Sha256 => Md::sha256(),
        HashAlgo::Sha384 => Md::sha384(),
        HashAlgo::Sha512 => Md::sha512(),
    }
}

fn is_ec(k: KeyType) -> bool {
    matches!(k, KeyType::P256 | KeyType::P384)
}

/// Whether `digests` signatures of a key of type `k` held in memory are computed on the async
/// thread (see [`INLINE_EC`]).
fn signs_inline(k: KeyType, digests: usize) -> bool {
    k == KeyType::P256 && digests <= INLINE_EC
}

/// Refuses a digest of the wrong length for `hash`, or a scheme that is not `k`'s.
fn check_request(
    k: KeyType,
    hash: HashAlgo,
    scheme: SignScheme,
    digest: &[u8],
) -> Result<(), CoreError> {
    if digest.len() != hash.digest_len() {
        return Err(CoreError::invalid(ErrorCode::InvalidRequest, "Invalid digest value length"));
    }
    if is_ec(k) != (scheme == SignScheme::Ecdsa) {
        return Err(CoreError::invalid(
            ErrorCode::InvalidRequest,
            format!("a {k} key does not sign with this signAlgo"),
        ));
    }
    Ok(())
}

fn failed(e: openssl::error::ErrorStack) -> CoreError {
    CoreError::invalid(ErrorCode::InvalidRequest, format!("signing failed: {e}"))
}

/// Signs `digest` with `key` of type `k`: ECDSA (DER), PKCS#1 v1.5 over a DigestInfo, or PSS
/// with MGF1 over the same hash.
pub fn sign_digest(
    key: &PKey<Private>,
    k: KeyType,
    hash: HashAlgo,
    scheme: SignScheme,
    digest: &[u8],
) -> Result<Vec<u8>, CoreError> {
    check_request(k, hash, scheme, digest)?;
    evp_sign(key, hash, scheme, digest)
}

/// [`sign_digest`] after its checks, through OpenSSL's EVP interface.
fn evp_sign(
    key: &PKey<Private>,
    hash: HashAlgo,
    scheme: SignScheme,
    digest: &[u8],
) -> Result<Vec<u8>, CoreError> {
    let mut ctx = PkeyCtx::new(key).map_err(bad_key)?;
    ctx.sign_init().map_err(bad_key)?;
    ctx.set_signature_md(md(hash)).map_err(failed)?;
    match scheme {
        SignScheme::Ecdsa => {}
        SignScheme::RsaPkcs1 => ctx.set_rsa_padding(Padding::PKCS1).map_err(failed)?,
        SignScheme::RsaPss { salt_len } => {
            let salt = i32::try_from(salt_len)
                .map_err(|_| CoreError::invalid(ErrorCode::InvalidRequest, "PSS salt too long"))?;
            ctx.set_rsa_padding(Padding::PKCS1_PSS).map_err(failed)?;
            ctx.set_rsa_mgf1_md(md(hash)).map_err(failed)?;
            ctx.set_rsa_pss_saltlen(RsaPssSaltlen::custom(salt)).map_err(failed)?;
        }
    }
    let mut sig = Vec::new();
    ctx.sign_to_vec(digest, &mut sig).map_err(failed)?;
    Ok(sig)
}

/// A new PKCS#8 key of type `k` (the one generator every Sigil key comes from).
pub fn generate(k: KeyType) -> Result<Zeroizing<Vec<u8>>, CoreError> {
    Ok(crate::keys::generate(k)?)
}

/// A new key for credential `id` with a PKCS#10 request for common name `cn`: (sealed key, CSR
/// DER).
fn new_key(
    master: &MasterKey,
    id: Uuid,
    k: KeyType,
    cn: &str,
) -> Result<(String, Vec<u8>), CoreError> {
    let pkcs8 = generate(k)?;
    let kp = crate::keys::load(&pkcs8, k)?;
    let mut params =
        rcgen::CertificateParams::new(Vec::<String>::new()).map_err(crate::PkiError::from)?;
    params.distinguished_name.push(rcgen::DnType::CommonName, cn);
    let csr = params.serialize_request(&kp).map_err(crate::PkiError::from)?;
    let sealed = master.seal(&credential_binding(id, k), &pkcs8)?;
    Ok((STANDARD.encode(sealed), csr.der().to_vec()))
}

/// A new key for credential `id` on `token`, labelled `sigil-cred-<id>`, with a PKCS#10 request
/// for common name `cn` signed on the token: (token reference, CSR DER).
fn new_token_key(
    token: &Arc<Token>,
    id: Uuid,
    k: KeyType,
    cn: &str,
) -> Result<(String, Vec<u8>), CoreError> {
    let label = TokenKeyRef::credential_label(id);
    let (key_id, _) = token.generate(k, &label)?;
    let key = token.find(&label, &key_id, k)?;
    let mut params =
        rcgen::CertificateParams::new(Vec::<String>::new()).map_err(crate::PkiError::from)?;
    params.distinguished_name.push(rcgen::DnType::CommonName, cn);
    let signer = crate::pkcs11::TokenSigner::new(Arc::clone(token), key)?;
    let csr = params.serialize_request(&signer).map_err(crate::PkiError::from)?;
    let at = TokenKeyRef { token: token.label().to_owned(), label, id: key_id };
    Ok((at.encode(), csr.der().to_vec()))
}

/// One DER TLV: (tag, content, rest).
fn tlv(b: &[u8]) -> Option<(u8, &[u8], &[u8])> {
    let (&tag, rest) = b.split_first()?;
    let (&first, rest) = rest.split_first()?;
    let (len, rest) = if first < 0x80 {
        (usize::from(first), rest)
    } else {
        let n = usize::from(first & 0x7f);
        if n == 0 || n > 2 || rest.len() < n {
            return None;
        }
        let len = rest[..n].iter().fold(0usize, |a, &x| (a << 8) | usize::from(x));
        (len, &rest[n..])
    };
    (rest.len() >= len).then(|| (tag, &rest[..len], &rest[len..]))
}

/// The hash of an AlgorithmIdentifier SEQUENCE.
fn alg_hash(seq: &[u8]) -> Option<HashAlgo> {
    let (0x30, inner, _) = tlv(seq)? else { return None };
    let (0x06, oid, _) = tlv(inner)? else { return None };
    match oid {
        [0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x01] => Some(HashAlgo::Sha256),
        [0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x02] => Some(HashAlgo::Sha384),
        [0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x03] => Some(HashAlgo::Sha512),
        _ => None,
    }
}

/// RSASSA-PSS-params (RFC 4055): hash, MGF1 over the same hash, salt length, trailer 1. The
/// SHA-1 defaults are refused.
pub fn pss_params(der: &[u8]) -> Option<(HashAlgo, usize)> {
    let (0x30, mut body, _) = tlv(der)? else { return None };
    let (mut hash, mut mgf_hash, mut salt) = (None, None, 20usize);
    while !body.is_empty() {
        let (tag, content, rest) = tlv(body)?;
        match tag {
            0xa0 => hash = Some(alg_hash(content)?),
            0xa1 => {
                // SEQUENCE { OID id-mgf1, AlgorithmIdentifier hash }
                let (0x30, inner, _) = tlv(content)? else { return None };
                let (0x06, oid, params) = tlv(inner)? else { return None };
                if oid != [0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x08] {
                    return None;
                }
                mgf_hash = Some(alg_hash(params)?);
            }
            0xa2 => {
                let (0x02, int, _) = tlv(content)? else { return None };
                if int.is_empty() || int.len() > 4 {
                    return None;
                }
                salt = int.iter().fold(0usize, |a, &x| (a << 8) | usize::from(x));
            }
            0xa3 => {
                let (0x02, [1], _) = tlv(content)? else { return None };
            }
            _ => return None,
        }
        body = rest;
    }
    let hash = hash?;
    (mgf_hash? == hash).then_some((hash, salt))
}

#[async_trait::async_trait]
impl SigningKeys for CredentialKeys {
    async fn generate(
        &self,
        id: Uuid,
        k: KeyType,
        cn: &str,
        store: Option<KeyStoreKind>,
    ) -> sigil_core::Result<(String, Vec<u8>)> {
        let cn = cn.to_owned();
        let job = match store.unwrap_or(self.default_store) {
            KeyStoreKind::Sealed => {
                let master = Arc::clone(&self.master);
                tokio::task::spawn_blocking(move || new_key(&master, id, k, &cn))
            }
            KeyStoreKind::Pkcs11 => {
                let token = self.token.clone().ok_or_else(|| {
                    CoreError::invalid(
                        ErrorCode::KeyStoreUnavailable,
                        "key_store `pkcs11`: this server has no PKCS#11 token configured",
                    )
                })?;
                tokio::task::spawn_blocking(move || new_token_key(&token, id, k, &cn))
            }
        };
        job.await.map_err(|e| CoreError::Internal(format!("key generation: {e}")))?
    }

    async fn discard(&self, stored: &str) {
        let (Some(at), Some(token)) = (TokenKeyRef::decode(stored), self.token.clone()) else {
            return;
        };
        if token.label() != at.token || !at.label.starts_with("sigil-cred-") {
            return;
        }
        let gone = tokio::task::spawn_blocking(move || token.destroy(&at.label, &at.id)).await;
        match gone {
            Ok(Ok(())) => {}
            Ok(Err(e)) => tracing::warn!(error = %e, "a refused credential's token key stays"),
            Err(e) => tracing::warn!(error = %e, "a refused credential's token key stays"),
        }
    }

    fn pss_params(&self, der: &[u8]) -> sigil_core::Result<(HashAlgo, usize)> {
        pss_params(der).ok_or_else(|| {
            CoreError::invalid(
                ErrorCode::InvalidRequest,
                "Invalid parameter signAlgoParams: RSASSA-PSS-params with SHA-256/384/512 and MGF1 over the same hash",
            )
        })
    }

    fn signs_inline(&self, k: KeyType, stored: &str, digests: usize) -> bool {
        signs_inline(k, digests) && TokenKeyRef::decode(stored).is_none()
    }

    async fn sign_hashes(
        &self,
        credential: CredentialKey<'_>,
        hash: HashAlgo,
        scheme: SignScheme,
        digests: Vec<Vec<u8>>,
    ) -> sigil_core::Result<Vec<Vec<u8>>> {
        let key = self.open(&credential)?;
        let k = credential.key_type;
        // A token is a device: its calls may block, so they never run on the async threads.
        let inline = signs_inline(k, digests.len()) && matches!(key, OpenKey::Sealed(_));
        let all = move || match &key {
            OpenKey::Sealed(key) => {
                digests.iter().map(|d| key.sign(k, hash, scheme, d)).collect::<Result<_, _>>()
            }
            OpenKey::Token(token, key) => digests
                .iter()
                .map(|d| token.sign_digest(key, hash, scheme, d))
                .collect::<Result<_, _>>(),
        };
        // RSA signatures take about a millisecond each: keep them off the async threads.
        if inline {
            all()
        } else {
            tokio::task::spawn_blocking(all)
                .await
                .map_err(|e| CoreError::Internal(format!("signing: {e}")))?
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sha2::Digest as _;

    fn digest(hash: HashAlgo, msg: &[u8]) -> Vec<u8> {
        match hash {
            HashAlgo::Sha256 => sha2::Sha256::digest(msg).to_vec(),
            HashAlgo::Sha384 => sha2::Sha384::digest(msg).to_vec(),
            HashAlgo::Sha512 => sha2::Sha512::digest(msg).to_vec(),
        }
    }

    #[test]
    fn signatures_over_a_digest_verify_as_signatures_over_the_message() {
        use ring::signature::{
            ECDSA_P256_SHA256_ASN1, ECDSA_P384_SHA384_ASN1, RSA_PKCS1_2048_8192_SHA256,
            RSA_PKCS1_2048_8192_SHA512, RSA_PSS_2048_8192_SHA256, UnparsedPublicKey,
            VerificationAlgorithm,
        };
        let msg = b"the document";
        let cases: [(KeyType, HashAlgo, SignScheme, &dyn VerificationAlgorithm); 5] = [
            (KeyType::P256, HashAlgo::Sha256, SignScheme::Ecdsa, &ECDSA_P256_SHA256_ASN1),
            (KeyType::P384, HashAlgo::Sha384, SignScheme::Ecdsa, &ECDSA_P384_SHA384_ASN1),
            (KeyType::Rsa2048, HashAlgo::Sha256, SignScheme::RsaPkcs1, &RSA_PKCS1_2048_8192_SHA256),
            (KeyType::Rsa3072, HashAlgo::Sha512, SignScheme::RsaPkcs1, &RSA_PKCS1_2048_8192_SHA512),
            // ring verifies PSS with the salt as long as the hash only; pyHanko's largest salt
            // is verified with openssl by the integration tests.
            (
                KeyType::Rsa2048,
                HashAlgo::Sha256,
                SignScheme::RsaPss { salt_len: 32 },
                &RSA_PSS_2048_8192_SHA256,
            ),
        ];
        for (k, hash, scheme, alg) in cases {
            let pkcs8 = generate(k).unwrap();
            let key = PKey::private_key_from_pkcs8(&pkcs8).unwrap();
            let evp = sign_digest(&key, k, hash, scheme, &digest(hash, msg)).unwrap();
            // The server's path: EC keys sign through their EC_KEY.
            let opened = SealedKey::new(key).unwrap();
            assert_eq!(opened.ec.is_some(), is_ec(k));
            let served = opened.sign(k, hash, scheme, &digest(hash, msg)).unwrap();
            let kp = crate::keys::load(&pkcs8, k).unwrap();
            let spki = rcgen::PublicKeyData::subject_public_key_info(&kp);
            let (_, info) =
                <x509_parser::x509::SubjectPublicKeyInfo as x509_parser::prelude::FromDer<_>>::from_der(&spki).unwrap();
            let pk = UnparsedPublicKey::new(alg, info.subject_public_key.data.to_vec());
            for sig in [evp, served] {
                pk.verify(msg, &sig).unwrap_or_else(|_| panic!("{k:?} {scheme:?}"));
            }
        }
    }

    #[test]
    fn pss_params_as_pyhanko_sends_them_are_read() {
        // SHA-256, MGF1 with SHA-256, salt 222 (the largest for RSA-2048).
        let der = hex::decode(concat!(
            "3034a00f300d06096086480165030402010500",
            "a11c301a06092a864886f70d010108300d06096086480165030402010500",
            "a2030201de"
        ))
        .unwrap();
        assert_eq!(pss_params(&der), Some((HashAlgo::Sha256, 222)));
        // The SHA-1 defaults (an empty SEQUENCE) are refused.
        assert_eq!(pss_params(&[0x30, 0x00]), None);
    }

    #[test]
    fn a_digest_of_the_wrong_length_or_an_rsa_scheme_on_an_ec_key_is_refused() {
        let pkcs8 = generate(KeyType::P256).unwrap();
        let key = PKey::private_key_from_pkcs8(&pkcs8).unwrap();
        let e = sign_digest(&key, KeyType::P256, HashAlgo::Sha256, SignScheme::Ecdsa, &[0; 31]);
        assert!(matches!(e, Err(CoreError::Invalid { .. })));
        let e = sign_digest(&key, KeyType::P256, HashAlgo::Sha256, SignScheme::RsaPkcs1, &[0; 32]);
        assert!(matches!(e, Err(CoreError::Invalid { .. })));
        let opened = SealedKey::new(key).unwrap();
        let e = opened.sign(KeyType::P256, HashAlgo::Sha256, SignScheme::Ecdsa, &[0; 31]);
        assert!(matches!(e, Err(CoreError::Invalid { .. })));
        let e = opened.sign(KeyType::P256, HashAlgo::Sha256, SignScheme::RsaPkcs1, &[0; 32]);
        assert!(matches!(e, Err(CoreError::Invalid { .. })));
    }

    /// A certificate for `pkcs8`'s key, self-signed by `signer` (or by itself), CA or not.
    fn cert_for(pkcs8: &[u8], signer: Option<&[u8]>, ca: bool) -> Vec<u8> {
        use openssl::x509::extension::{BasicConstraints, KeyUsage};
        let key = PKey::private_key_from_pkcs8(pkcs8).unwrap();
        let signing = PKey::private_key_from_pkcs8(signer.unwrap_or(pkcs8)).unwrap();
        let mut b = openssl::x509::X509Builder::new().unwrap();
        b.set_version(2).unwrap();
        let mut name = openssl::x509::X509NameBuilder::new().unwrap();
        name.append_entry_by_text("CN", "t").unwrap();
        let name = name.build();
        b.set_subject_name(&name).unwrap();
        b.set_issuer_name(&name).unwrap();
        b.set_pubkey(&key).unwrap();
        b.set_not_before(&openssl::asn1::Asn1Time::days_from_now(0).unwrap()).unwrap();
        b.set_not_after(&openssl::asn1::Asn1Time::days_from_now(1).unwrap()).unwrap();
        if ca {
            b.append_extension(BasicConstraints::new().critical().ca().build().unwrap()).unwrap();
            b.append_extension(KeyUsage::new().key_cert_sign().crl_sign().build().unwrap())
                .unwrap();
        } else {
            b.append_extension(KeyUsage::new().digital_signature().build().unwrap()).unwrap();
        }
        b.sign(&signing, openssl::hash::MessageDigest::sha256()).unwrap();
        b.build().to_der().unwrap()
    }

    fn pkcs8_of(keys: &CredentialKeys, id: Uuid, sealed: &str) -> Vec<u8> {
        let at = credential_binding(id, KeyType::P256);
        keys.master.open(&at, &STANDARD.decode(sealed).unwrap()).unwrap().to_vec()
    }

    /// Signs one digest as credential `id` with `sealed`, `cert` and the CA `issuer`.
    async fn sign_one(
        keys: &CredentialKeys,
        id: Uuid,
        sealed: &str,
        cert: &[u8],
        issuer: &[u8],
    ) -> sigil_core::Result<Vec<Vec<u8>>> {
        let key = CredentialKey {
            id,
            key_type: KeyType::P256,
            sealed_key: sealed,
            certificate: cert,
            ca_chain: &[issuer.to_vec()],
        };
        let d = vec![digest(HashAlgo::Sha256, b"tbs of www.bank.example")];
        keys.sign_hashes(key, HashAlgo::Sha256, SignScheme::Ecdsa, d).await
    }

    #[tokio::test]
    async fn a_sealed_key_signs_after_being_opened_once() {
        let dir = tempfile::tempdir().unwrap();
        let master = Arc::new(MasterKey::load_or_create(&dir.path().join("master.key")).unwrap());
        let keys = CredentialKeys::new(master);
        let ca = generate(KeyType::P256).unwrap();
        let ca_cert = cert_for(&ca, None, true);
        let id = Uuid::now_v7();
        let (sealed, csr) = keys.generate(id, KeyType::P256, "alice", None).await.unwrap();
        assert!(!csr.is_empty());
        let cert = cert_for(&pkcs8_of(&keys, id, &sealed), Some(&ca), false);
        assert_eq!(sign_one(&keys, id, &sealed, &cert, &ca_cert).await.unwrap().len(), 1);
        // A different sealed key under the same id is opened anew, not served from the cache.
        let (other, _) = keys.generate(id, KeyType::P256, "bob", None).await.unwrap();
        let other_cert = cert_for(&pkcs8_of(&keys, id, &other), Some(&ca), false);
        assert_eq!(sign_one(&keys, id, &other, &other_cert, &ca_cert).await.unwrap().len(), 1);
        assert!(keys.cache.lock().unwrap().get(&id).is_some_and(|(s, ..)| *s == other));
        // Another key than the certificate's signs nothing, even for a cached id.
        assert!(sign_one(&keys, id, &other, &cert, &ca_cert).await.is_err());
    }

    #[tokio::test]
    async fn a_key_sealed_for_another_row_or_an_uncertified_key_signs_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let master = Arc::new(MasterKey::load_or_create(&dir.path().join("master.key")).unwrap());
        let keys = CredentialKeys::new(master.clone());
        let ca = generate(KeyType::P256).unwrap();
        let ca_cert = cert_for(&ca, None, true);
        let (alice, bob) = (Uuid::now_v7(), Uuid::now_v7());
        let (alice_sealed, _) = keys.generate(alice, KeyType::P256, "alice", None).await.unwrap();
        let alice_cert = cert_for(&pkcs8_of(&keys, alice, &alice_sealed), Some(&ca), false);
        assert!(sign_one(&keys, alice, &alice_sealed, &alice_cert, &ca_cert).await.is_ok());
        // Alice's row copied to Bob's id (key and certificate): sealed for Alice only.
        assert!(sign_one(&keys, bob, &alice_sealed, &alice_cert, &ca_cert).await.is_err());
        // The CA's key, sealed as the CA's, in a credential's row with its certificate.
        let ca_sealed = STANDARD.encode(
            master
                .seal(&sigil_core::certs::ca::ca_key_binding("default", KeyType::P256), &ca)
                .unwrap(),
        );
        assert!(sign_one(&keys, alice, &ca_sealed, &ca_cert, &ca_cert).await.is_err());
        // Even a CA key sealed for this very credential (only the master key's holder could do
        // that): a CA certificate certifies no signing credential.
        let as_alice =
            STANDARD.encode(master.seal(&credential_binding(alice, KeyType::P256), &ca).unwrap());
        assert!(sign_one(&keys, alice, &as_alice, &ca_cert, &ca_cert).await.is_err());
        // A forged end-entity certificate for the CA's key, not signed by the CA.
        let forged = cert_for(&ca, Some(&generate(KeyType::P256).unwrap()), false);
        assert!(sign_one(&keys, alice, &as_alice, &forged, &ca_cert).await.is_err());
        // A genuine end-entity certificate for the CA's own key, signed by the CA.
        let ee_for_ca = cert_for(&ca, Some(&ca), false);
        assert!(sign_one(&keys, alice, &as_alice, &ee_for_ca, &ca_cert).await.is_err());
        // Alice's own certificate, but checked against an issuer that did not sign it.
        let other_ca = cert_for(&generate(KeyType::P256).unwrap(), None, true);
        let keys = CredentialKeys::new(master);
        assert!(sign_one(&keys, alice, &alice_sealed, &alice_cert, &other_ca).await.is_err());
    }

    /// Only these may be signed while their SAD's spend commits (and so for a SAD then
    /// refused): a few digests with a sealed P-256 key. A P-384 or RSA key, or a key on a
    /// token, waits for the spend.
    #[test]
    fn only_a_few_digests_with_a_sealed_p256_key_are_signed_inline() {
        let dir = tempfile::tempdir().unwrap();
        let master = Arc::new(MasterKey::load_or_create(&dir.path().join("master.key")).unwrap());
        let keys = CredentialKeys::new(master);
        let sealed = "c2VhbGVk";
        let on_token = TokenKeyRef {
            token: "sigil".into(),
            label: TokenKeyRef::credential_label(Uuid::now_v7()),
            id: "01".into(),
        }
        .encode();
        assert!(keys.signs_inline(KeyType::P256, sealed, 1));
        assert!(keys.signs_inline(KeyType::P256, sealed, INLINE_EC));
        assert!(!keys.signs_inline(KeyType::P256, sealed, INLINE_EC + 1));
        assert!(!keys.signs_inline(KeyType::P256, &on_token, 1));
        // Half a millisecond (P-384) or a millisecond (RSA) each: never.
        for k in [KeyType::P384, KeyType::Rsa2048, KeyType::Rsa3072] {
            assert!(!keys.signs_inline(k, sealed, 1));
        }
    }
}
