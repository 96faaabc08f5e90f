//! A token key as rcgen's signer, and the initialisation of a software token.

use std::path::Path;
use std::sync::{Arc, Mutex};

use cryptoki::session::UserType;
use cryptoki::types::AuthPin;
use sigil_core::CoreError;
use sigil_core::certs::KeyType;
use sigil_core::signing::credential::{HashAlgo, SignScheme};

use super::{Token, TokenKey, module};

/// A token key as rcgen's signer (the CSR of a token credential, and the certificates, CRLs
/// and OCSP responses of a CA whose key is on the token): rcgen hands the whole message, which
/// is hashed here and signed on the token.
pub struct TokenSigner {
    token: Arc<Token>,
    key: TokenKey,
    /// The subjectPublicKey bits of the SPKI.
    public: Vec<u8>,
}

impl std::fmt::Debug for TokenSigner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenSigner").field("key", &self.key.label).finish_non_exhaustive()
    }
}

impl TokenSigner {
    /// The signer of `key` on `token`.
    pub fn new(token: Arc<Token>, key: TokenKey) -> Result<Self, CoreError> {
        use x509_parser::prelude::{FromDer, SubjectPublicKeyInfo};
        let public = {
            let (_, spki) = SubjectPublicKeyInfo::from_der(&key.spki)
                .map_err(|e| CoreError::Internal(format!("token key `{}`: {e}", key.label)))?;
            spki.subject_public_key.data.to_vec()
        };
        Ok(Self { token, key, public })
    }
}

impl rcgen::PublicKeyData for TokenSigner {
    fn der_bytes(&self) -> &[u8] {
        &self.public
    }

    fn algorithm(&self) -> &'static rcgen::SignatureAlgorithm {
        crate::keys::signature_algorithm(self.key.key_type)
    }
}

impl rcgen::SigningKey for TokenSigner {
    fn sign(&self, msg: &[u8]) -> Result<Vec<u8>, rcgen::Error> {
        use sha2::Digest as _;
        // The hash each key type's signature algorithm names (keys::signature_algorithm).
        let (hash, digest, scheme) = match self.key.key_type {
            KeyType::P256 => {
                (HashAlgo::Sha256, sha2::Sha256::digest(msg).to_vec(), SignScheme::Ecdsa)
            }
            KeyType::P384 => {
                (HashAlgo::Sha384, sha2::Sha384::digest(msg).to_vec(), SignScheme::Ecdsa)
            }
            _ => (HashAlgo::Sha256, sha2::Sha256::digest(msg).to_vec(), SignScheme::RsaPkcs1),
        };
        self.token.sign_digest(&self.key, hash, scheme, &digest).map_err(|e| {
            tracing::error!(error = %e, "a token signature failed");
            rcgen::Error::RemoteKeyError
        })
    }
}

/// Initialises the module's free token as `label` with security officer PIN `so_pin` and user
/// PIN `pin`, in this process (what `softhsm2-util --init-token --free` does). For tests and
/// first set-up of a software token; a real HSM is initialised with its vendor's tools.
pub fn init_token(module_path: &Path, label: &str, so_pin: &str, pin: &str) -> Result<(), String> {
    // One at a time: two callers would otherwise both take the one free token.
    static ONE: Mutex<()> = Mutex::new(());
    let _turn = ONE.lock().map_err(|_| "poisoned".to_owned())?;
    let ctx = module(module_path)?;
    let slot = ctx
        .get_slots_with_token()
        .map_err(|e| e.to_string())?
        .into_iter()
        .find(|s| ctx.get_token_info(*s).is_ok_and(|i| !i.token_initialized()))
        .ok_or_else(|| format!("{}: no free token to initialise", module_path.display()))?;
    let so = AuthPin::new(so_pin.into());
    ctx.init_token(slot, &so, label).map_err(|e| e.to_string())?;
    let session = ctx.open_rw_session(slot).map_err(|e| e.to_string())?;
    session.login(UserType::So, Some(&so)).map_err(|e| e.to_string())?;
    session.init_pin(&AuthPin::new(pin.into())).map_err(|e| e.to_string())?;
    session.logout().map_err(|e| e.to_string())?;
    Ok(())
}
