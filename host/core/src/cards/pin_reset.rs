//! PIN reset: setting up a device's unblock secrets at personalization, and unblocking its PIN
//! for an operator (help desk) or for the holder through self-service.
//!
//! The secrets are sealed in their own table; the device record only says which methods are
//! set up. A reset restores the device's PIN retries and is audited with its method, never with
//! the response or the code it handed out.

use crate::ErrorCode;
use crate::audit::AuditAction;
use std::sync::Arc;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use uuid::Uuid;
use zeroize::Zeroizing;

use crate::access::api_key::{RateLimit, RateUnit};
use crate::access::api_keys::throttle;
use crate::access::authz::{Capability, Principal, perm};
use crate::audit::NewAuditEvent;
use crate::cards::device::{Device, DeviceStatus};
use crate::cards::devices::{Also, DeviceService, PIN_RETRIES, RowWrite};
use crate::cards::unlock::{
    DeviceSecret, UnlockAlgorithm, UnlockCrypto, admin_key_binding, unlock_code_binding,
};
use crate::error::{CoreError, Result};
use crate::ports::{Clock, Store};
use crate::records::{Collection, Record};
use crate::sealing::SealBinding;

/// A secret to set: a given value, one Sigil generates (returned once), or none (removed).
#[derive(Clone)]
pub enum SecretInput {
    /// This value (hex for a key, text for a code).
    Given(Zeroizing<String>),
    /// Generate one.
    Generate,
    /// Remove it.
    Remove,
}

impl std::fmt::Debug for SecretInput {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Given(_) => "Given(..)",
            Self::Generate => "Generate",
            Self::Remove => "Remove",
        })
    }
}

/// A change of a device's PIN reset setup; absent parts stay as they are.
#[derive(Debug, Clone, Default)]
pub struct PinResetChange {
    /// Cipher of the administration key (needed with a new key).
    pub algorithm: Option<UnlockAlgorithm>,
    /// The administration key.
    pub admin_key: Option<SecretInput>,
    /// The unlock code (PUK).
    pub unlock_code: Option<SecretInput>,
}

/// Secrets Sigil generated, shown once (the personalization station writes them to the card).
#[derive(Default)]
pub struct Generated {
    /// Administration key, hex.
    pub admin_key: Option<Zeroizing<String>>,
    /// Unlock code.
    pub unlock_code: Option<Zeroizing<String>>,
}

/// The outcome of a PIN reset.
pub struct PinReset {
    /// The device, with its retries restored.
    pub device: Device,
    /// `challenge-response` or `unlock-code`.
    pub method: &'static str,
    /// The response to the card's challenge, hex.
    pub response: Option<String>,
    /// The card's unlock code.
    pub unlock_code: Option<Zeroizing<String>>,
}

/// Length of a generated unlock code (digits, as PUKs are).
const CODE_DIGITS: usize = 8;

fn check_code(code: &str) -> Result<()> {
    if !(4..=16).contains(&code.len()) || !code.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(CoreError::invalid(
            ErrorCode::InvalidUnlockCode,
            "an unlock code is 4 to 16 printable ASCII characters",
        ));
    }
    Ok(())
}

/// What a reset will do, decided (and its input checked) before it is metered.
enum Plan {
    /// Answer `challenge` with the sealed administration key.
    Respond { alg: UnlockAlgorithm, sealed: String, challenge: Vec<u8> },
    /// Hand out the sealed unlock code.
    HandOut { sealed: String },
}

/// PIN reset operations.
pub struct PinResetService {
    store: Arc<dyn Store>,
    clock: Arc<dyn Clock>,
    devices: Arc<DeviceService>,
    crypto: Arc<dyn UnlockCrypto>,
    per_day: u32,
}

impl std::fmt::Debug for PinResetService {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PinResetService").finish_non_exhaustive()
    }
}

impl PinResetService {
    /// Wires the service.
    pub fn new(
        store: Arc<dyn Store>,
        clock: Arc<dyn Clock>,
        devices: Arc<DeviceService>,
        crypto: Arc<dyn UnlockCrypto>,
        per_day: u32,
    ) -> Self {
        Self { store, clock, devices, crypto, per_day }
    }

    /// Counts a reset of device `d` in today's window (UTC, across nodes); past
    /// `devices.pin_resets_per_day` the reset is refused (429) and the refusal audited. With a
    /// challenge-response key every answer is a use of the card's administration key, so the
    /// key must not be an unmetered oracle.
    async fn meter(&self, p: &Arc<Principal>, d: &Device) -> Result<()> {
        if self.per_day == 0 {
            return Ok(());
        }
        let limit = RateLimit { requests: self.per_day, per: RateUnit::Day };
        let bucket = format!("pin-reset:{}", d.id);
        let now = self.clock.now();
        if let Err(e) = throttle(self.store.as_ref(), &bucket, limit, now).await {
            if matches!(e, CoreError::RateLimited { .. }) {
                let ev = NewAuditEvent::new(p, AuditAction::DevicePinReset, "device", d.id)
                    .details(serde_json::json!({
                        "serial": d.serial,
                        "refused": "pin_reset_limit",
                        "per_day": self.per_day,
                    }))
                    .failed();
                self.store.commit_ops(vec![], vec![ev], now).await?;
            }
            return Err(e);
        }
        Ok(())
    }

    fn seal(&self, at: &SealBinding, plain: &[u8]) -> Result<String> {
        Ok(STANDARD.encode(self.crypto.seal(at, plain)?))
    }

    fn open(&self, at: &SealBinding, sealed: &str) -> Result<Zeroizing<Vec<u8>>> {
        let raw = STANDARD
            .decode(sealed)
            .map_err(|_| CoreError::Storage("corrupt sealed device secret".into()))?;
        self.crypto.open(at, &raw)
    }

    fn generate_code(&self) -> Result<Zeroizing<String>> {
        let bytes = self.crypto.random(CODE_DIGITS)?;
        // One random byte per digit, rejection-free: the bias of `% 10` over 256 values is
        // below 0.4 % per digit, far under what a PUK's retry limit leaves an attacker.
        Ok(Zeroizing::new(bytes.iter().map(|b| char::from(b'0' + b % 10)).collect()))
    }

    async fn secret(&self, id: Uuid) -> Result<Option<DeviceSecret>> {
        let body = self.store.record(Collection::DeviceSecrets, &id.to_string()).await?;
        match body.map(|b| DeviceSecret::from_body(&b)).transpose()? {
            // A body copied into another row is not that row's secret.
            Some(s) if s.id != id => {
                Err(CoreError::Storage(format!("device secret row {id} holds another id")))
            }
            s => Ok(s),
        }
    }

    /// Sets up, replaces or removes a device's PIN reset secrets. Generated ones are returned
    /// once.
    pub async fn configure(
        &self,
        cap: &Capability<perm::DevicePersonalize>,
        id: Uuid,
        change: PinResetChange,
    ) -> Result<(Device, Generated)> {
        let p = cap.principal();
        let before = self.devices.visible(p, id).await?;
        if before.status.next().is_empty() {
            return Err(CoreError::conflict(
                ErrorCode::InvalidState,
                format!("a {} device cannot be personalized", before.status.as_str()),
            ));
        }
        let now = self.clock.now();
        let existing = self.secret(id).await?;
        let mut s = existing.clone().unwrap_or(DeviceSecret {
            id,
            algorithm: None,
            admin_key: None,
            unlock_code: None,
            updated_at: now,
        });
        let mut generated = Generated::default();
        match change.admin_key {
            None if change.algorithm.is_some() && change.algorithm != s.algorithm => {
                return Err(CoreError::invalid(
                    ErrorCode::InvalidField,
                    "a new `algorithm` needs a new `admin_key` (or \"generate\")",
                ));
            }
            None => {}
            Some(SecretInput::Remove) => {
                s.algorithm = None;
                s.admin_key = None;
            }
            Some(input) => {
                let alg = change.algorithm.ok_or_else(|| {
                    CoreError::invalid(
                        ErrorCode::InvalidField,
                        "an `admin_key` needs its `algorithm`",
                    )
                })?;
                let key = match input {
                    SecretInput::Given(hex_key) => {
                        let key = Zeroizing::new(hex::decode(hex_key.trim()).map_err(|_| {
                            CoreError::invalid(ErrorCode::InvalidAdminKey, "`admin_key` is hex")
                        })?);
                        if key.len() != alg.key_len() {
                            return Err(CoreError::invalid(
                                ErrorCode::InvalidAdminKey,
                                format!("a {} key is {} bytes", alg.as_str(), alg.key_len()),
                            ));
                        }
                        key
                    }
                    _ => {
                        let key = self.crypto.random(alg.key_len())?;
                        generated.admin_key = Some(Zeroizing::new(hex::encode(&*key)));
                        key
                    }
                };
                s.algorithm = Some(alg);
                s.admin_key = Some(self.seal(&admin_key_binding(id, alg), &key)?);
            }
        }
        match change.unlock_code {
            None => {}
            Some(SecretInput::Remove) => s.unlock_code = None,
            Some(SecretInput::Given(code)) => {
                check_code(&code)?;
                s.unlock_code = Some(self.seal(&unlock_code_binding(id), code.as_bytes())?);
            }
            Some(SecretInput::Generate) => {
                let code = self.generate_code()?;
                s.unlock_code = Some(self.seal(&unlock_code_binding(id), code.as_bytes())?);
                generated.unlock_code = Some(code);
            }
        }
        s.updated_at = now;
        let mut d = before.clone();
        d.pin_reset.challenge_response = s.algorithm;
        d.pin_reset.unlock_code = s.unlock_code.is_some();
        d.updated_at = now;
        let h = self.devices.history_entry(&d, p, "pin_reset_configured");
        let ev = NewAuditEvent::new(p, AuditAction::DevicePinResetConfigure, "device", id).details(
            serde_json::json!({
                "serial": d.serial,
                "challenge_response": d.pin_reset.challenge_response,
                "unlock_code": d.pin_reset.unlock_code,
                "generated": {
                    "admin_key": generated.admin_key.is_some(),
                    "unlock_code": generated.unlock_code.is_some(),
                },
            }),
        );
        let write = if existing.is_some() { RowWrite::Update(s) } else { RowWrite::Insert(s) };
        self.devices.save(&before, &d, h, vec![ev], Also { certs: &[], rows: &[write] }, p).await?;
        Ok((d, generated))
    }

    /// Resets the PIN of a device `p` sees (operators, within their scope).
    pub async fn reset(
        &self,
        cap: &Capability<perm::DevicePinReset>,
        id: Uuid,
        challenge: Option<String>,
    ) -> Result<PinReset> {
        let d = self.devices.visible(cap.principal(), id).await?;
        self.reset_device(cap.principal(), d, challenge).await
    }

    /// Unblocks `d`'s PIN: answers `challenge` (hex) with the administration key, or hands out
    /// the unlock code when there is no challenge. Only an active device's PIN is reset.
    pub(crate) async fn reset_device(
        &self,
        p: &Arc<Principal>,
        before: Device,
        challenge: Option<String>,
    ) -> Result<PinReset> {
        if before.status != DeviceStatus::Active {
            return Err(CoreError::conflict(
                ErrorCode::InvalidState,
                format!(
                    "only an active device's PIN is reset, this one is {}",
                    before.status.as_str()
                ),
            ));
        }
        let unavailable = |what: &str| {
            CoreError::conflict(
                ErrorCode::PinResetUnavailable,
                format!("device {} has no {what} on file", before.serial),
            )
        };
        let secret = self.secret(before.id).await?;
        // Everything is checked before the reset is metered; the secrets are used after.
        let plan = match challenge {
            Some(c) => {
                let (Some(alg), Some(sealed)) = (
                    secret.as_ref().and_then(|s| s.algorithm),
                    secret.as_ref().and_then(|s| s.admin_key.clone()),
                ) else {
                    return Err(unavailable("administration key"));
                };
                let challenge = hex::decode(c.trim()).map_err(|_| {
                    CoreError::invalid(ErrorCode::InvalidChallenge, "`challenge` is hex")
                })?;
                if challenge.len() != alg.block_len() {
                    return Err(CoreError::invalid(
                        ErrorCode::InvalidChallenge,
                        format!("a {} challenge is {} bytes", alg.as_str(), alg.block_len()),
                    ));
                }
                Plan::Respond { alg, sealed, challenge }
            }
            None => match secret.as_ref().and_then(|s| s.unlock_code.clone()) {
                Some(sealed) => Plan::HandOut { sealed },
                None => return Err(unavailable("unlock code")),
            },
        };
        self.meter(p, &before).await?;
        let (method, response, unlock_code) = match plan {
            Plan::Respond { alg, sealed, challenge } => {
                let key = self.open(&admin_key_binding(before.id, alg), &sealed)?;
                let r = self.crypto.respond(alg, &key, &challenge)?;
                ("challenge-response", Some(hex::encode(r)), None)
            }
            Plan::HandOut { sealed } => {
                let code = self.open(&unlock_code_binding(before.id), &sealed)?;
                let code = Zeroizing::new(String::from_utf8_lossy(&code).into_owned());
                ("unlock-code", None, Some(code))
            }
        };
        let now = self.clock.now();
        let mut d = before.clone();
        d.pin_retries_left = PIN_RETRIES;
        d.updated_at = now;
        let mut h = self.devices.history_entry(&d, p, "pin_reset");
        h.reason = Some(method.to_owned());
        let ev = NewAuditEvent::new(p, AuditAction::DevicePinReset, "device", d.id)
            .details(serde_json::json!({"serial": d.serial, "method": method}));
        self.devices.save(&before, &d, h, vec![ev], Also::default(), p).await?;
        self.devices.emit(
            crate::events::EventKind::DevicePinReset,
            &d,
            serde_json::json!({"method": method}),
        );
        Ok(PinReset { device: d, method, response, unlock_code })
    }
}
