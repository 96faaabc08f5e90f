//! PIN reset of smart cards and tokens: the secrets a card shares with its card management
//! system, and the two ways a blocked PIN is unblocked.
//!
//! - Challenge-response: the card (through its middleware) hands out a random challenge; the
//!   response is the challenge encrypted with the card's administration key, one block in ECB
//!   mode, as PIV management keys and the Windows smart-card minidriver `UnblockPin` flow do
//!   (3DES with an 8-byte challenge, AES with a 16-byte one). The key never leaves Sigil.
//! - Unlock code: the card's PUK (unblock code) is handed to the authorized caller once per
//!   reset, and every hand-out is audited.
//!
//! Both secrets are stored sealed under the master key in their own table, apart from the
//! device record, so no read of a device can carry them.

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use uuid::Uuid;
use zeroize::Zeroizing;

use crate::sealing::{SealBinding, SealPurpose};

/// Cipher of a card's administration key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub enum UnlockAlgorithm {
    /// Three-key triple DES (24-byte key, 8-byte challenge).
    #[serde(rename = "3des")]
    Tdes,
    /// AES-128 (16-byte key, 16-byte challenge).
    #[serde(rename = "aes128")]
    Aes128,
    /// AES-192 (24-byte key, 16-byte challenge).
    #[serde(rename = "aes192")]
    Aes192,
    /// AES-256 (32-byte key, 16-byte challenge).
    #[serde(rename = "aes256")]
    Aes256,
}

impl UnlockAlgorithm {
    /// Key length, bytes.
    pub fn key_len(self) -> usize {
        match self {
            Self::Aes128 => 16,
            Self::Tdes | Self::Aes192 => 24,
            Self::Aes256 => 32,
        }
    }

    /// Challenge (block) length, bytes.
    pub fn block_len(self) -> usize {
        match self {
            Self::Tdes => 8,
            _ => 16,
        }
    }

    /// Wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Tdes => "3des",
            Self::Aes128 => "aes128",
            Self::Aes192 => "aes192",
            Self::Aes256 => "aes256",
        }
    }
}

/// What a device record says about its PIN reset (never the secrets themselves).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct PinResetSetup {
    /// Cipher of the administration key, when challenge-response is set up.
    pub challenge_response: Option<UnlockAlgorithm>,
    /// Whether an unlock code (PUK) is on file.
    pub unlock_code: bool,
}

impl PinResetSetup {
    /// Whether any PIN reset method is set up.
    pub fn any(&self) -> bool {
        self.challenge_response.is_some() || self.unlock_code
    }
}

/// A device's sealed secrets. Base64 of what [`UnlockCrypto::seal`] produced.
#[derive(Clone, Serialize, Deserialize)]
pub struct DeviceSecret {
    /// The device.
    pub id: Uuid,
    /// Cipher of `admin_key`.
    pub algorithm: Option<UnlockAlgorithm>,
    /// The sealed administration key.
    pub admin_key: Option<String>,
    /// The sealed unlock code.
    pub unlock_code: Option<String>,
    /// Last change.
    #[serde(with = "time::serde::rfc3339")]
    pub updated_at: OffsetDateTime,
}

impl std::fmt::Debug for DeviceSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DeviceSecret")
            .field("id", &self.id)
            .field("algorithm", &self.algorithm)
            .finish_non_exhaustive()
    }
}

/// Where device `id`'s administration key for `algorithm` is sealed.
pub fn admin_key_binding(id: Uuid, algorithm: UnlockAlgorithm) -> SealBinding {
    SealBinding::new(SealPurpose::CardAdminKey, id, algorithm.as_str())
}

/// Where device `id`'s unlock code is sealed.
pub fn unlock_code_binding(id: Uuid) -> SealBinding {
    SealBinding::new(SealPurpose::CardUnlockCode, id, "text")
}

/// Sealing and the challenge-response cipher; implemented in `sigil-pki`.
pub trait UnlockCrypto: Send + Sync {
    /// Encrypts a secret for storage, bound to `binding`.
    fn seal(&self, binding: &SealBinding, plain: &[u8]) -> crate::Result<Vec<u8>>;
    /// Decrypts what `seal` produced for the same `binding`.
    fn open(&self, binding: &SealBinding, sealed: &[u8]) -> crate::Result<Zeroizing<Vec<u8>>>;
    /// The response to `challenge`: one block encrypted with `key` (lengths already checked).
    fn respond(
        &self,
        algorithm: UnlockAlgorithm,
        key: &[u8],
        challenge: &[u8],
    ) -> crate::Result<Vec<u8>>;
    /// `len` random bytes.
    fn random(&self, len: usize) -> crate::Result<Zeroizing<Vec<u8>>>;
}
