//! Keys on a PKCS#11 token (ARCHITECTURE §9.4), through the `cryptoki` crate.
//!
//! One module instance per process and module path (a PKCS#11 module is initialised once per
//! process; finalising it under a second user would end the first one's sessions). The token
//! is found by its label (slot ids are not stable: SoftHSM gives a new one after every
//! initialisation), the user logs in once, and a session is kept open for the process's life so
//! that the login lasts. Signing sessions come from a small pool: a PKCS#11 session is not
//! thread safe, so each call takes one for itself and gives it back.
//!
//! Every token call runs off the async worker threads (`block_in_place` on a multi-threaded
//! runtime): an HSM answers in milliseconds, a busy one in much more, and the server's other
//! requests must not wait behind it. A token that lost its sessions or its login (a reset, a
//! removal and re-insertion, a logout by another tool) is recovered once per call: the slot is
//! found again by label, the user logs in again and the key's handle is looked up again by its
//! label and CKA_ID; only if that fails does the call fail.
//!
//! Keys are generated on the token as sensitive, non-extractable private keys labelled
//! `sigil-…` with a random CKA_ID; the database keeps only the label, the id and (through the
//! certificate) the public key. ECDSA signatures come from the token as r‖s and are returned
//! DER-encoded; RSA PKCS#1 v1.5 signs DigestInfo‖hash with CKM_RSA_PKCS; RSA-PSS uses
//! CKM_RSA_PKCS_PSS with MGF1 over the same hash.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};

use cryptoki::context::{CInitializeArgs, CInitializeFlags, Function, Pkcs11};
use cryptoki::error::{Error as CkError, RvError};
use cryptoki::mechanism::rsa::{PkcsMgfType, PkcsPssParams};
use cryptoki::mechanism::{Mechanism, MechanismType};
use cryptoki::object::{Attribute, AttributeType, ObjectClass, ObjectHandle};
use cryptoki::session::{Session, UserType};
use cryptoki::slot::Slot;
use cryptoki::types::AuthPin;
use sigil_core::certs::KeyType;
use sigil_core::signing::credential::{HashAlgo, SignScheme};
use sigil_core::{CoreError, ErrorCode};
use zeroize::Zeroizing;

/// Sessions kept for reuse; more may be open at once under load, and are closed after use.
const POOL: usize = 8;

/// Where the token is and how to log in.
pub struct TokenConfig {
    /// The module (`.so`) path.
    pub module: PathBuf,
    /// The token's label.
    pub token_label: String,
    /// The user PIN.
    pub pin: Zeroizing<String>,
}

impl std::fmt::Debug for TokenConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenConfig")
            .field("module", &self.module)
            .field("token_label", &self.token_label)
            .finish_non_exhaustive()
    }
}

/// A logged-in token.
pub struct Token {
    ctx: Pkcs11,
    /// Found again by label after the token went away (slot ids change on re-insertion).
    slot: Mutex<Slot>,
    module: String,
    label: String,
    /// Kept to log in again after the token lost its login.
    pin: Zeroizing<String>,
    /// Set when the token refused the PIN on a re-login: no more tries until a restart (an
    /// HSM locks its user PIN after a few wrong ones).
    pin_refused: std::sync::atomic::AtomicBool,
    pool: Mutex<Vec<Session>>,
    /// Open for the process's life: the login lasts while a session is open.
    login: Mutex<Option<Session>>,
}

impl std::fmt::Debug for Token {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Token").field("module", &self.module).field("label", &self.label).finish()
    }
}

/// The process's module instances, by path.
fn modules() -> &'static Mutex<HashMap<PathBuf, Pkcs11>> {
    static M: OnceLock<Mutex<HashMap<PathBuf, Pkcs11>>> = OnceLock::new();
    M.get_or_init(Default::default)
}

/// Logged-in tokens by (module, token label).
type Tokens = Mutex<HashMap<(PathBuf, String), Arc<Token>>>;

/// The process's logged-in tokens: every store of the process shares one.
fn tokens() -> &'static Tokens {
    static T: OnceLock<Tokens> = OnceLock::new();
    T.get_or_init(Default::default)
}

fn module(path: &Path) -> Result<Pkcs11, String> {
    let mut m = modules().lock().map_err(|_| "the module table is poisoned".to_owned())?;
    if let Some(ctx) = m.get(path) {
        return Ok(ctx.clone());
    }
    let ctx = Pkcs11::new(path).map_err(|e| format!("cannot load {}: {e}", path.display()))?;
    match ctx.initialize(CInitializeArgs::new(CInitializeFlags::OS_LOCKING_OK)) {
        Ok(()) | Err(CkError::Pkcs11(RvError::CryptokiAlreadyInitialized, _)) => {}
        Err(e) => return Err(format!("cannot initialise {}: {e}", path.display())),
    }
    m.insert(path.to_owned(), ctx.clone());
    Ok(ctx)
}

impl Token {
    /// Opens (once per process) and logs in to the token `cfg` names. Errors name the module
    /// and the token, never the PIN.
    pub fn open(cfg: &TokenConfig) -> Result<Arc<Token>, String> {
        let key = (cfg.module.clone(), cfg.token_label.clone());
        if let Some(t) = tokens().lock().map_err(|_| "poisoned".to_owned())?.get(&key) {
            return Ok(Arc::clone(t));
        }
        let module_name = cfg.module.display().to_string();
        let ctx = module(&cfg.module)?;
        let slot = find_slot(&ctx, &module_name, &cfg.token_label)?;
        let login = log_in(&ctx, slot, &module_name, &cfg.token_label, &cfg.pin)
            .map_err(|e| e.to_string())?;
        let token = Arc::new(Token {
            ctx,
            slot: Mutex::new(slot),
            module: module_name,
            label: cfg.token_label.clone(),
            pin: cfg.pin.clone(),
            pin_refused: std::sync::atomic::AtomicBool::new(false),
            pool: Mutex::new(Vec::new()),
            login: Mutex::new(Some(login)),
        });
        tokens().lock().map_err(|_| "poisoned".to_owned())?.insert(key, Arc::clone(&token));
        Ok(token)
    }

    /// The token's label.
    pub fn label(&self) -> &str {
        &self.label
    }

    /// A token failure: a dependency of the operation failed (502 on REST, 503 on CSC); the
    /// detail names the module, token and key, and goes to the log, not to the client.
    fn fail(&self, what: &str, e: impl std::fmt::Display) -> CoreError {
        CoreError::Dependency {
            code: ErrorCode::KeyStoreUnavailable,
            detail: format!("{} token `{}`: {what}: {e}", self.module, self.label),
        }
    }

    fn slot(&self) -> Result<Slot, CkError> {
        self.slot
            .lock()
            .map(|s| *s)
            .map_err(|_| CkError::Pkcs11(RvError::GeneralError, Function::OpenSession))
    }

    /// Runs `f` with a session of the pool (opened when none is free), off the async threads;
    /// once more after recovering the token when the first attempt lost its session or login.
    fn with_session<R>(&self, f: impl Fn(&Session) -> Result<R, CkError>) -> Result<R, CkError> {
        off_async(|| self.retried(&f))
    }

    /// `f` with a session, once more after recovering the token when the first attempt lost
    /// its session or login. Called off the async threads.
    fn retried<R>(&self, f: &impl Fn(&Session) -> Result<R, CkError>) -> Result<R, CkError> {
        match self.attempt(f) {
            Err(e) if lost(&e) => {
                self.recover(&e);
                self.attempt(f)
            }
            out => out,
        }
    }

    fn attempt<R>(&self, f: &impl Fn(&Session) -> Result<R, CkError>) -> Result<R, CkError> {
        let session = match self.pool.lock().ok().and_then(|mut p| p.pop()) {
            Some(s) => s,
            None => self.ctx.open_rw_session(self.slot()?)?,
        };
        let out = f(&session);
        // A session that failed that way is dead; it is not given back.
        if !out.as_ref().is_err_and(lost)
            && let Ok(mut p) = self.pool.lock()
            && p.len() < POOL
        {
            p.push(session);
        }
        out
    }

    /// After `why`: drops every pooled session, finds the slot again by label and logs in
    /// again. Failures are logged; the retry that follows reports its own error.
    fn recover(&self, why: &CkError) {
        tracing::warn!(module = %self.module, token = %self.label, error = %why,
            "the PKCS#11 token lost its session or login; logging in again");
        if let Ok(mut p) = self.pool.lock() {
            p.clear();
        }
        // One recovery at a time; the old login session is replaced only once a new one is
        // logged in (closing the last session would log the token out).
        let Ok(mut login) = self.login.lock() else { return };
        let slot = match find_slot(&self.ctx, &self.module, &self.label) {
            Ok(slot) => slot,
            Err(e) => {
                tracing::error!(error = %e, "the PKCS#11 token is not there");
                return;
            }
        };
        if let Ok(mut s) = self.slot.lock() {
            *s = slot;
        }
        if self.pin_refused.load(std::sync::atomic::Ordering::Relaxed) {
            return;
        }
        match log_in(&self.ctx, slot, &self.module, &self.label, &self.pin) {
            Ok(session) => *login = Some(session),
            Err(LoginError::Pin(e)) => {
                self.pin_refused.store(true, std::sync::atomic::Ordering::Relaxed);
                tracing::error!(error = %e,
                    "the PKCS#11 token refused the configured PIN; no more login attempts until \
                     the server is restarted");
            }
            Err(LoginError::Other(e)) => {
                tracing::error!(error = %e, "logging in to the PKCS#11 token again failed");
            }
        }
    }

    /// Generates a key pair of type `k` labelled `label` with a random CKA_ID; returns the id
    /// (hex) and the public key (SPKI DER).
    pub fn generate(&self, k: KeyType, label: &str) -> Result<(String, Vec<u8>), CoreError> {
        let mut id = [0u8; 16];
        getrandom::fill(&mut id).map_err(|e| self.fail("random id", e))?;
        let common = |private: bool| {
            let mut a = vec![
                Attribute::Token(true),
                Attribute::Label(label.as_bytes().to_vec()),
                Attribute::Id(id.to_vec()),
            ];
            if private {
                a.extend([
                    Attribute::Private(true),
                    Attribute::Sensitive(true),
                    Attribute::Extractable(false),
                    Attribute::Sign(true),
                ]);
            } else {
                a.push(Attribute::Verify(true));
            }
            a
        };
        let (mech, mut public) = match k {
            KeyType::P256 | KeyType::P384 => {
                (Mechanism::EccKeyPairGen, vec![Attribute::EcParams(curve_oid_der(k).to_vec())])
            }
            KeyType::Rsa2048 | KeyType::Rsa3072 | KeyType::Rsa4096 => (
                Mechanism::RsaPkcsKeyPairGen,
                vec![
                    Attribute::ModulusBits(u64::from(rsa_bits(k)).into()),
                    Attribute::PublicExponent(vec![0x01, 0x00, 0x01]),
                ],
            ),
        };
        public.extend(common(false));
        let private = common(true);
        let (pubkey, _) = self
            .with_session(|s| s.generate_key_pair(&mech, &public, &private))
            .map_err(|e| self.fail(&format!("generating `{label}`"), e))?;
        let spki =
            self.public_key(pubkey, k).map_err(|e| self.fail(&format!("reading `{label}`"), e))?;
        Ok((hex::encode(id), spki))
    }

    /// The SPKI DER of public key object `h`.
    fn public_key(&self, h: ObjectHandle, k: KeyType) -> Result<Vec<u8>, String> {
        let attrs = match k {
            KeyType::P256 | KeyType::P384 => vec![AttributeType::EcPoint],
            _ => vec![AttributeType::Modulus, AttributeType::PublicExponent],
        };
        let got = self.with_session(|s| s.get_attributes(h, &attrs)).map_err(|e| e.to_string())?;
        spki_of(k, &got)
    }

    /// The private key labelled `label` with id `id_hex` (any id when empty: then the label
    /// must name one private key only), and its public key (SPKI DER): the public key object
    /// with the same label and CKA_ID.
    pub fn find(&self, label: &str, id_hex: &str, k: KeyType) -> Result<TokenKey, CoreError> {
        let what = format!("finding `{label}`");
        let id = hex::decode(id_hex).map_err(|e| self.fail(&format!("key `{label}` id"), e))?;
        let privates = off_async(|| self.find_objects(ObjectClass::PRIVATE_KEY, label, &id))
            .map_err(|e| self.fail(&what, e))?;
        let private = match privates.as_slice() {
            [one] => *one,
            [] => return Err(self.fail("no private key", format!("`{label}`"))),
            many => {
                return Err(self.fail(
                    &what,
                    format!(
                        "{} private keys carry this label and id; it must name one",
                        many.len()
                    ),
                ));
            }
        };
        let id = if id.is_empty() {
            let got = self
                .with_session(|s| s.get_attributes(private, &[AttributeType::Id]))
                .map_err(|e| self.fail(&what, e))?;
            got.into_iter()
                .find_map(|a| match a {
                    Attribute::Id(v) => Some(v),
                    _ => None,
                })
                .unwrap_or_default()
        } else {
            id
        };
        let spki = off_async(|| self.public_of(label, &id, k)).map_err(|e| self.fail(&what, e))?;
        Ok(TokenKey { handle: Mutex::new(private), id, spki, key_type: k, label: label.to_owned() })
    }

    /// The SPKI of the public key object labelled `label` with CKA_ID `id`.
    fn public_of(&self, label: &str, id: &[u8], k: KeyType) -> Result<Vec<u8>, String> {
        let public = self
            .find_objects(ObjectClass::PUBLIC_KEY, label, id)
            .map_err(|e| e.to_string())?
            .into_iter()
            .next()
            .ok_or_else(|| "no public key object".to_owned())?;
        self.public_key(public, k)
    }

    /// Deletes the key pair labelled `label` with CKA_ID `id_hex` (a key made for a credential
    /// that was then refused). Both objects must be found by label and id: nothing else goes.
    pub fn destroy(&self, label: &str, id_hex: &str) -> Result<(), CoreError> {
        let what = format!("deleting `{label}`");
        let id = hex::decode(id_hex).map_err(|e| self.fail(&what, e))?;
        if id.is_empty() {
            return Err(self.fail(&what, "no CKA_ID"));
        }
        for class in [ObjectClass::PRIVATE_KEY, ObjectClass::PUBLIC_KEY] {
            let found = off_async(|| self.find_objects(class, label, &id))
                .map_err(|e| self.fail(&what, e))?;
            for h in found {
                self.with_session(|s| s.destroy_object(h)).map_err(|e| self.fail(&what, e))?;
            }
        }
        Ok(())
    }

    /// Every object of `class` labelled `label` with CKA_ID `id` (any id when empty). Called
    /// off the async threads; recovers the token once, like `with_session`.
    fn find_objects(
        &self,
        class: ObjectClass,
        label: &str,
        id: &[u8],
    ) -> Result<Vec<ObjectHandle>, CkError> {
        let mut t = vec![Attribute::Class(class), Attribute::Label(label.as_bytes().to_vec())];
        if !id.is_empty() {
            t.push(Attribute::Id(id.to_vec()));
        }
        self.retried(&|s: &Session| s.find_objects(&t))
    }

    /// After a recovery: `key`'s private key looked up again by label and CKA_ID, if it is
    /// still the same key (its public key object holds the same public key). A replaced token
    /// with the same labels and ids holds other keys, which must not sign as these.
    fn refind(&self, key: &TokenKey) -> Option<ObjectHandle> {
        let private = self
            .attempt(&|s: &Session| {
                s.find_objects(&[
                    Attribute::Class(ObjectClass::PRIVATE_KEY),
                    Attribute::Label(key.label.as_bytes().to_vec()),
                    Attribute::Id(key.id.clone()),
                ])
            })
            .ok()?;
        let [one] = private.as_slice() else { return None };
        match self.public_of(&key.label, &key.id, key.key_type) {
            Ok(spki) if spki == key.spki => Some(*one),
            _ => {
                tracing::error!(module = %self.module, token = %self.label, key = %key.label,
                    "after recovery the token holds another key under this label; not using it");
                None
            }
        }
    }

    /// Runs `f` with a session and `key`'s handle, off the async threads. When the token lost
    /// its session or login, it is recovered, the key's handle is looked up again by label and
    /// CKA_ID (handles need not survive a re-login) and checked to be the same key, and `f`
    /// runs once more.
    fn with_key<R>(
        &self,
        key: &TokenKey,
        f: impl Fn(&Session, ObjectHandle) -> Result<R, CkError>,
    ) -> Result<R, CkError> {
        let run = |s: &Session| f(s, key.handle());
        off_async(|| match self.attempt(&run) {
            Err(e) if lost(&e) => {
                self.recover(&e);
                match self.refind(key) {
                    Some(h) => {
                        if let Ok(mut held) = key.handle.lock() {
                            *held = h;
                        }
                        self.attempt(&run)
                    }
                    None => Err(e),
                }
            }
            out => out,
        })
    }

    /// Signs `digest` with key `key` under `scheme`: the token does the private-key operation.
    pub fn sign_digest(
        &self,
        key: &TokenKey,
        hash: HashAlgo,
        scheme: SignScheme,
        digest: &[u8],
    ) -> Result<Vec<u8>, CoreError> {
        if digest.len() != hash.digest_len() {
            return Err(CoreError::invalid(
                ErrorCode::InvalidRequest,
                "Invalid digest value length",
            ));
        }
        let ec = matches!(key.key_type, KeyType::P256 | KeyType::P384);
        if ec != (scheme == SignScheme::Ecdsa) {
            return Err(CoreError::invalid(
                ErrorCode::InvalidRequest,
                format!("a {} key does not sign with this signAlgo", key.key_type),
            ));
        }
        let what = format!("signing with `{}`", key.label);
        match scheme {
            SignScheme::Ecdsa => {
                let raw = self
                    .with_key(key, |s, h| s.sign(&Mechanism::Ecdsa, h, digest))
                    .map_err(|e| self.fail(&what, e))?;
                ecdsa_der(&raw).ok_or_else(|| self.fail(&what, "a malformed ECDSA signature"))
            }
            SignScheme::RsaPkcs1 => {
                let mut data = digest_info_prefix(hash).to_vec();
                data.extend_from_slice(digest);
                self.with_key(key, |s, h| s.sign(&Mechanism::RsaPkcs, h, &data))
                    .map_err(|e| self.fail(&what, e))
            }
            SignScheme::RsaPss { salt_len } => {
                let (hash_alg, mgf) = match hash {
                    HashAlgo::Sha256 => (MechanismType::SHA256, PkcsMgfType::MGF1_SHA256),
                    HashAlgo::Sha384 => (MechanismType::SHA384, PkcsMgfType::MGF1_SHA384),
                    HashAlgo::Sha512 => (MechanismType::SHA512, PkcsMgfType::MGF1_SHA512),
                };
                // RFC 8017 §9.1.1: emLen ≥ hLen + sLen + 2, emLen = ⌈(modBits − 1)/8⌉. Checked
                // here: a token told otherwise fails in its own words, or worse.
                let em_len = (rsa_bits(key.key_type) as usize - 1).div_ceil(8);
                let most = em_len.saturating_sub(hash.digest_len() + 2);
                if salt_len > most {
                    return Err(CoreError::invalid(
                        ErrorCode::InvalidRequest,
                        format!(
                            "Invalid parameter signAlgoParams: a salt of {salt_len} bytes is \
                             longer than this key and hash allow (at most {most})"
                        ),
                    ));
                }
                let s_len = u64::try_from(salt_len).map_err(|_| {
                    CoreError::invalid(ErrorCode::InvalidRequest, "PSS salt too long")
                })?;
                let params = PkcsPssParams { hash_alg, mgf, s_len: s_len.into() };
                self.with_key(key, |s, h| s.sign(&Mechanism::RsaPkcsPss(params), h, digest))
                    .map_err(|e| self.fail(&what, e))
            }
        }
    }
}

/// A private key found on a token: its handle, public key and type.
#[derive(Debug)]
pub struct TokenKey {
    /// The private key object (looked up again after the token is recovered).
    handle: Mutex<ObjectHandle>,
    /// CKA_ID.
    id: Vec<u8>,
    /// SPKI DER.
    pub spki: Vec<u8>,
    /// Type.
    pub key_type: KeyType,
    /// Label (for errors).
    pub label: String,
}

impl TokenKey {
    /// Its CKA_ID, hex (what a token reference records).
    pub fn id_hex(&self) -> String {
        hex::encode(&self.id)
    }

    fn handle(&self) -> ObjectHandle {
        // A poisoned lock still holds a handle; the token refuses it if it is stale.
        match self.handle.lock() {
            Ok(h) => *h,
            Err(p) => *p.into_inner(),
        }
    }
}

/// Finds the slot of the token labelled `label` (slot ids are not stable).
fn find_slot(ctx: &Pkcs11, module: &str, label: &str) -> Result<Slot, String> {
    let slots =
        ctx.get_slots_with_token().map_err(|e| format!("{module}: cannot list slots: {e}"))?;
    slots
        .into_iter()
        .find(|s| ctx.get_token_info(*s).is_ok_and(|i| i.label().trim() == label.trim()))
        .ok_or_else(|| format!("{module}: no token labelled `{label}`"))
}

/// Opens a session on `slot` and logs the user in; the session keeps the login alive. Errors
/// name the module and the token, never the PIN.
fn log_in(
    ctx: &Pkcs11,
    slot: Slot,
    module: &str,
    label: &str,
    pin: &Zeroizing<String>,
) -> Result<Session, LoginError> {
    let login = ctx
        .open_rw_session(slot)
        .map_err(|e| LoginError::Other(format!("{module}: cannot open a session: {e}")))?;
    match login.login(UserType::User, Some(&AuthPin::new(pin.as_str().into()))) {
        Ok(()) | Err(CkError::Pkcs11(RvError::UserAlreadyLoggedIn, _)) => Ok(login),
        Err(CkError::Pkcs11(RvError::PinIncorrect, _)) => {
            Err(LoginError::Pin(format!("{module}: the PIN of token `{label}` is wrong")))
        }
        Err(CkError::Pkcs11(RvError::PinLocked | RvError::PinExpired, _)) => Err(LoginError::Pin(
            format!("{module}: the user PIN of token `{label}` is locked or expired"),
        )),
        Err(e) => {
            Err(LoginError::Other(format!("{module}: cannot log in to token `{label}`: {e}")))
        }
    }
}

/// Why a login failed: the PIN (do not try again) or anything else.
enum LoginError {
    Pin(String),
    Other(String),
}

impl std::fmt::Display for LoginError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Pin(m) | Self::Other(m) => f.write_str(m),
        }
    }
}

/// Whether `e` says the session, the login or the object handles are gone (a token reset,
/// removal, or a logout by another application), so that logging in again may help.
fn lost(e: &CkError) -> bool {
    matches!(
        e,
        CkError::Pkcs11(
            RvError::SessionHandleInvalid
                | RvError::SessionClosed
                | RvError::UserNotLoggedIn
                | RvError::DeviceRemoved
                | RvError::TokenNotPresent
                | RvError::DeviceError
                | RvError::KeyHandleInvalid
                | RvError::ObjectHandleInvalid,
            _
        )
    )
}

/// Runs a blocking token call: on a multi-threaded runtime the worker hands its other tasks
/// away first (`block_in_place`); on a current-thread runtime, or outside one, it runs here.
fn off_async<R>(f: impl FnOnce() -> R) -> R {
    use tokio::runtime::{Handle, RuntimeFlavor};
    match Handle::try_current() {
        Ok(h) if h.runtime_flavor() == RuntimeFlavor::MultiThread => tokio::task::block_in_place(f),
        _ => f(),
    }
}

mod der;
mod signer;

use der::{curve_oid_der, digest_info_prefix, ecdsa_der, rsa_bits, spki_of};
pub use signer::{TokenSigner, init_token};
