//! What a sealed secret is bound to. Every secret Sigil keeps in the database (CA keys, signing
//! credential keys, card administration keys and unlock codes) is encrypted with associated
//! data naming its purpose, table, row and key type, so a sealed blob opens only where it was
//! sealed: a CA key copied into a credential's row, a credential key moved to another
//! credential, or an administration key handed out as an unlock code all fail to open.
//!
//! Blobs sealed before this binding existed ("v1", one shared label) are refused everywhere.
//! `sigil migrate --reseal-legacy`, run once by the operator while upgrading, re-seals each one
//! that fits its row (a key must match the certificate on record, and more); the server itself
//! never opens a legacy blob, so one planted later (from an old backup) stays unusable.

pub mod reseal;

use std::fmt;

/// What a sealed secret is used for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SealPurpose {
    /// An issuing CA's private key (`cas.key_sealed`).
    CaKey,
    /// A root CA's private key (`cas.root_key_sealed`, only in databases from before the root
    /// key moved out).
    CaRootKey,
    /// A signing credential's private key (`signing_credentials`, `sealed_key`).
    CredentialKey,
    /// A card's administration key (`device_secrets`, `admin_key`).
    CardAdminKey,
    /// A card's unlock code (`device_secrets`, `unlock_code`).
    CardUnlockCode,
    /// An ACME external account binding key (`acme_eab_keys`, `sealed_key`).
    AcmeEabKey,
}

impl SealPurpose {
    /// Stable name, part of the associated data.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::CaKey => "ca-key",
            Self::CaRootKey => "ca-root-key",
            Self::CredentialKey => "credential-key",
            Self::CardAdminKey => "card-admin-key",
            Self::CardUnlockCode => "card-unlock-code",
            Self::AcmeEabKey => "acme-eab-key",
        }
    }

    /// The table the secret lives in.
    pub fn table(self) -> &'static str {
        match self {
            Self::CaKey | Self::CaRootKey => "cas",
            Self::CredentialKey => "signing_credentials",
            Self::CardAdminKey | Self::CardUnlockCode => "device_secrets",
            Self::AcmeEabKey => "acme_eab_keys",
        }
    }
}

/// Where a sealed secret belongs: purpose (and so table), row id and key type.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SealBinding {
    /// What it is for.
    pub purpose: SealPurpose,
    /// The row's id.
    pub row: String,
    /// Its key type (`p256`, `rsa3072`, `aes128`, … or `text` for an unlock code).
    pub key_type: String,
}

impl SealBinding {
    /// The binding of a secret for `purpose` in row `row` with key type `key_type`.
    pub fn new(purpose: SealPurpose, row: impl fmt::Display, key_type: impl Into<String>) -> Self {
        Self { purpose, row: row.to_string(), key_type: key_type.into() }
    }

    /// The AEAD associated data: a label, then each field length-prefixed (so no two bindings
    /// encode alike).
    pub fn aad(&self) -> Vec<u8> {
        let mut out = b"sigil-sealed-v2".to_vec();
        for part in [self.purpose.as_str(), self.purpose.table(), &self.row, &self.key_type] {
            let len = u32::try_from(part.len()).unwrap_or(u32::MAX);
            out.extend_from_slice(&len.to_be_bytes());
            out.extend_from_slice(part.as_bytes());
        }
        out
    }
}

impl fmt::Display for SealBinding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} of {} {} ({})",
            self.purpose.as_str(),
            self.purpose.table(),
            self.row,
            self.key_type
        )
    }
}

/// What a blob sealed before bindings existed must be to be re-sealed for its row.
#[derive(Debug, Clone, Copy)]
pub enum LegacyCheck<'a> {
    /// A PKCS#8 private key whose public key is the one in `cert` (DER).
    KeyOf {
        /// The certificate on record.
        cert: &'a [u8],
        /// `cert` must be an end-entity certificate (no CA, no certificate or CRL signing).
        end_entity: bool,
        /// `cert` must be signed by this CA certificate (DER), when given.
        issued_by: Option<&'a [u8]>,
        /// The key must not be the key of any of these certificates (DER): CA keys, for a
        /// credential; the root's, for an issuing CA that is not its own root.
        not_of: &'a [Vec<u8>],
    },
    /// A symmetric key of exactly this many bytes.
    SymmetricKey(usize),
    /// An unlock code: 4 to 16 printable ASCII characters.
    UnlockCode,
}

/// The outcome of re-sealing one legacy blob.
#[derive(Debug)]
pub enum Resealed {
    /// Already bound; nothing to do.
    Current,
    /// Re-sealed for its binding: store this.
    New(Vec<u8>),
    /// A legacy blob that is not what its row says (or does not open): left as it is, and
    /// refused wherever it is used.
    Refused(String),
}

/// Re-sealing of legacy blobs, implemented in `sigil-pki`.
pub trait Resealer: Send + Sync {
    /// Whether `sealed` is already bound (cheap: no decryption).
    fn is_bound(&self, sealed: &[u8]) -> bool;
    /// Re-seals `sealed` for `binding` when it is a legacy blob that passes `check`.
    fn reseal_legacy(
        &self,
        sealed: &[u8],
        binding: &SealBinding,
        check: LegacyCheck<'_>,
    ) -> Resealed;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bindings_that_differ_in_any_field_have_different_associated_data() {
        let base = SealBinding::new(SealPurpose::CredentialKey, "a", "p256");
        let others = [
            SealBinding::new(SealPurpose::CaKey, "a", "p256"),
            SealBinding::new(SealPurpose::CredentialKey, "b", "p256"),
            SealBinding::new(SealPurpose::CredentialKey, "a", "p384"),
            // Moving bytes between fields must not give the same encoding.
            SealBinding::new(SealPurpose::CredentialKey, "ap", "256"),
        ];
        for o in others {
            assert_ne!(base.aad(), o.aad(), "{o}");
        }
        assert_eq!(base.aad(), SealBinding::new(SealPurpose::CredentialKey, "a", "p256").aad());
    }
}
