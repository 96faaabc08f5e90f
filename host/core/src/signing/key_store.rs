//! Where a private key lives (ARCHITECTURE §9.4): sealed under the master key in the database,
//! or on a PKCS#11 token, which holds it as a sensitive, non-extractable object and signs with
//! it. What the database keeps of a token key is a reference: the token's label, the key's
//! label and its CKA_ID, nothing secret.

use serde::{Deserialize, Serialize};

/// The kind of key store.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum KeyStoreKind {
    /// AES-256-GCM under the master key, in the database.
    #[default]
    Sealed,
    /// On the configured PKCS#11 token.
    Pkcs11,
}

impl KeyStoreKind {
    /// Stable name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Sealed => "sealed",
            Self::Pkcs11 => "pkcs11",
        }
    }

    /// Parses a stable name.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "sealed" => Some(Self::Sealed),
            "pkcs11" => Some(Self::Pkcs11),
            _ => None,
        }
    }

    /// The store of a stored key (a token reference, or a sealed blob).
    pub fn of_stored(stored: &str) -> Self {
        if stored.starts_with(TokenKeyRef::TAG) { Self::Pkcs11 } else { Self::Sealed }
    }
}

/// A key on a token, as the database keeps it: `pkcs11:<token label>/<key label>/<CKA_ID hex>`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenKeyRef {
    /// The token's label.
    pub token: String,
    /// The key's CKA_LABEL.
    pub label: String,
    /// The key's CKA_ID, hex.
    pub id: String,
}

impl TokenKeyRef {
    const TAG: &'static str = "pkcs11:";
    const CREDENTIAL: &'static str = "sigil-cred-";

    /// The label of signing credential `id`'s key on a token.
    pub fn credential_label(id: uuid::Uuid) -> String {
        format!("{}{id}", Self::CREDENTIAL)
    }

    /// Whether this may be signing credential `id`'s key: labelled for that credential, with a
    /// CKA_ID. A token cannot bind a key to a database row as sealing does, so the label does:
    /// another credential's reference copied into this row names a key this one never had.
    pub fn is_credentials(&self, id: uuid::Uuid) -> bool {
        self.label == Self::credential_label(id) && !self.id.is_empty()
    }

    /// Whether this may be a CA's key: never a signing credential's.
    pub fn may_be_a_cas(&self) -> bool {
        !self.label.starts_with(Self::CREDENTIAL)
    }

    /// The stored form.
    pub fn encode(&self) -> String {
        format!("{}{}/{}/{}", Self::TAG, self.token, self.label, self.id)
    }

    /// Reads a stored form; `None` for anything else (a sealed key).
    pub fn decode(s: &str) -> Option<Self> {
        let rest = s.strip_prefix(Self::TAG)?;
        // Key labels and ids are Sigil's (no `/`); a token label may hold one.
        let mut parts = rest.rsplitn(3, '/');
        let id = parts.next()?.to_owned();
        let label = parts.next()?.to_owned();
        let token = parts.next()?.to_owned();
        (!label.is_empty() && id.bytes().all(|b| b.is_ascii_hexdigit())).then_some(Self {
            token,
            label,
            id,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_references_round_trip_and_nothing_else_reads_as_one() {
        let r =
            TokenKeyRef { token: "ca/hsm".into(), label: "sigil-cred-1".into(), id: "0a1b".into() };
        assert_eq!(TokenKeyRef::decode(&r.encode()), Some(r.clone()));
        assert_eq!(KeyStoreKind::of_stored(&r.encode()), KeyStoreKind::Pkcs11);
        assert_eq!(KeyStoreKind::of_stored("U0dMAg=="), KeyStoreKind::Sealed);
        assert_eq!(TokenKeyRef::decode("U0dMAg=="), None);
        assert_eq!(TokenKeyRef::decode("pkcs11:t/l/not-hex"), None);
    }

    #[test]
    fn a_credential_key_is_only_its_own_credentials_and_never_a_cas() {
        let mine = uuid::Uuid::now_v7();
        let other = uuid::Uuid::now_v7();
        let r = |label: String, id: &str| TokenKeyRef { token: "t".into(), label, id: id.into() };
        assert!(r(TokenKeyRef::credential_label(mine), "0a").is_credentials(mine));
        assert!(!r(TokenKeyRef::credential_label(other), "0a").is_credentials(mine));
        assert!(!r(TokenKeyRef::credential_label(mine), "").is_credentials(mine));
        assert!(!r("sigil-ca-builtin".into(), "0a").is_credentials(mine));
        assert!(!r(TokenKeyRef::credential_label(mine), "0a").may_be_a_cas());
        assert!(r("sigil-ca-builtin".into(), "").may_be_a_cas());
    }
}
