//! The audit trail: events, the hash chain that links them, and its verification.
//!
//! Each event's hash is SHA-256 over a length-prefixed canonical encoding of every stored field
//! plus the previous event's hash, so editing, deleting, inserting or reordering a stored event
//! breaks the chain at a position the verifier names. Checkpoints ([`verify`]) are signed with
//! the audit key and chained to each other, and each node keeps the ones it signed in an
//! append-only anchor log outside the database, so that a rewrite of the whole tail, a truncation
//! or a rollback is caught as well.

pub mod actions;
pub mod export;
pub mod refusals;
pub mod store;
pub mod trail;
pub mod verify;

pub use actions::AuditAction;
pub use verify::{
    AnchorLog, ChainProblem, ChainVerifier, Checkpoint, Freshness, ProblemKind, SignatureCheck,
    VerifyReport,
};

use std::fmt::Write as _;
use std::sync::Arc;

use sha2::{Digest, Sha256};
use time::OffsetDateTime;
use uuid::Uuid;

use crate::access::authz::Principal;

/// The `prev_hash` of the first event.
pub const GENESIS_HASH: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// Whether the audited operation succeeded.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize, utoipa::ToSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum Outcome {
    /// It took effect.
    Success,
    /// It was refused or failed.
    Failure,
}

impl Outcome {
    /// Stable name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Success => "success",
            Self::Failure => "failure",
        }
    }
}

/// An event about to be written; the store gives it its sequence number and hashes.
#[derive(Debug, Clone)]
pub struct NewAuditEvent {
    /// Who acted.
    pub actor: Arc<Principal>,
    /// Dotted action name, for example `api_key.create`.
    pub action: String,
    /// Object type, for example `api_key`.
    pub object_type: String,
    /// Object id.
    pub object_id: String,
    /// Outcome.
    pub outcome: Outcome,
    /// Details, already stripped of secrets.
    pub details: serde_json::Value,
}

impl NewAuditEvent {
    /// A successful action on an object.
    pub fn new(
        actor: &Arc<Principal>,
        action: AuditAction,
        object_type: &str,
        object_id: impl ToString,
    ) -> Self {
        Self {
            actor: Arc::clone(actor),
            action: action.as_str().to_owned(),
            object_type: object_type.to_owned(),
            object_id: object_id.to_string(),
            outcome: Outcome::Success,
            details: serde_json::Value::Object(Default::default()),
        }
    }

    /// Marks the event as a refused or failed attempt.
    pub fn failed(mut self) -> Self {
        self.outcome = Outcome::Failure;
        self
    }

    /// Sets the details, removing any field whose name suggests a secret.
    pub fn details(mut self, details: serde_json::Value) -> Self {
        self.details = redact(details);
        self
    }

    /// Fixes the stored form of this event at `seq`, chained after `prev_hash`.
    pub fn seal(&self, seq: i64, occurred_at: OffsetDateTime, prev_hash: &str) -> AuditEvent {
        let p = &self.actor;
        let mut e = AuditEvent {
            seq,
            id: Uuid::now_v7(),
            occurred_at_us: unix_micros(occurred_at),
            actor_kind: p.kind.as_str().to_owned(),
            actor_id: p.id.clone(),
            actor_name: p.name.clone(),
            api_key_id: p.api_key_id.map(|u| u.to_string()),
            operator_id: p.operator_id.clone(),
            action: self.action.clone(),
            object_type: self.object_type.clone(),
            object_id: self.object_id.clone(),
            outcome: self.outcome.as_str().to_owned(),
            request_id: p.context.request_id.clone(),
            client_ip: p.context.client_ip.map(|ip| ip.to_string()),
            details: self.details.to_string(),
            prev_hash: prev_hash.to_owned(),
            hash: String::new(),
        };
        e.hash = e.compute_hash();
        e
    }
}

const SECRET_NAMES: &[&str] = &[
    "secret",
    "password",
    "pin",
    "puk",
    "sad",
    "token",
    "private_key",
    "key_secret",
    "passphrase",
];

/// Removes fields whose names mark them as secrets, at any depth. Defence in depth: services
/// already leave secrets out of the details they write.
pub fn redact(v: serde_json::Value) -> serde_json::Value {
    use serde_json::Value;
    match v {
        Value::Object(map) => Value::Object(
            map.into_iter()
                .map(|(k, v)| {
                    if SECRET_NAMES.contains(&k.to_ascii_lowercase().as_str()) {
                        (k, Value::String("[redacted]".into()))
                    } else {
                        (k, redact(v))
                    }
                })
                .collect(),
        ),
        Value::Array(a) => Value::Array(a.into_iter().map(redact).collect()),
        other => other,
    }
}

/// Microseconds since the Unix epoch.
pub fn unix_micros(t: OffsetDateTime) -> i64 {
    i64::try_from(t.unix_timestamp_nanos() / 1000).unwrap_or(i64::MAX)
}

/// The inverse of [`unix_micros`].
pub fn from_unix_micros(us: i64) -> OffsetDateTime {
    OffsetDateTime::from_unix_timestamp_nanos(i128::from(us) * 1000)
        .unwrap_or(OffsetDateTime::UNIX_EPOCH)
}

/// Signs with the audit key; implemented in `sigil-pki`.
pub trait AuditCrypto: Send + Sync {
    /// This node's key id.
    fn key_id(&self) -> &str;
    /// This node's public key (SubjectPublicKeyInfo PEM).
    fn public_key_pem(&self) -> &str;
    /// Base64 DER ECDSA signature over `message`.
    fn sign(&self, message: &[u8]) -> crate::Result<String>;
}

/// An event as stored. Every field takes part in the hash.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct AuditEvent {
    /// Position in the chain, from 1, without gaps.
    pub seq: i64,
    /// Unique id.
    pub id: Uuid,
    /// Time of the change, microseconds since the epoch.
    pub occurred_at_us: i64,
    /// `api_key`, `operator`, `cli`, `system`, `plugin`.
    pub actor_kind: String,
    /// Actor id.
    pub actor_id: String,
    /// Actor display name.
    pub actor_name: String,
    /// API key used.
    pub api_key_id: Option<String>,
    /// Operator acted for.
    pub operator_id: Option<String>,
    /// Action.
    pub action: String,
    /// Object type.
    pub object_type: String,
    /// Object id.
    pub object_id: String,
    /// `success` or `failure`.
    pub outcome: String,
    /// Request id.
    pub request_id: Option<String>,
    /// Client address.
    pub client_ip: Option<String>,
    /// Details, JSON text exactly as hashed.
    pub details: String,
    /// Hash of the previous event.
    pub prev_hash: String,
    /// This event's hash.
    pub hash: String,
}

impl AuditEvent {
    /// Recomputes the hash from the stored fields.
    pub fn compute_hash(&self) -> String {
        let mut buf = String::with_capacity(512);
        let mut field = |v: Option<&str>| {
            // Length-prefixing keeps field boundaries unambiguous; `-` marks an absent value.
            match v {
                Some(s) => {
                    let _ = write!(buf, "{}:{s}|", s.len());
                }
                None => buf.push_str("-|"),
            }
        };
        field(Some("sigil-audit-v1"));
        field(Some(&self.seq.to_string()));
        field(Some(&self.id.to_string()));
        field(Some(&self.occurred_at_us.to_string()));
        field(Some(&self.actor_kind));
        field(Some(&self.actor_id));
        field(Some(&self.actor_name));
        field(self.api_key_id.as_deref());
        field(self.operator_id.as_deref());
        field(Some(&self.action));
        field(Some(&self.object_type));
        field(Some(&self.object_id));
        field(Some(&self.outcome));
        field(self.request_id.as_deref());
        field(self.client_ip.as_deref());
        field(Some(&self.details));
        field(Some(&self.prev_hash));
        hex::encode(Sha256::digest(buf.as_bytes()))
    }

    /// The time of the change.
    pub fn occurred_at(&self) -> OffsetDateTime {
        from_unix_micros(self.occurred_at_us)
    }
}

/// Filters for audit queries. Times are microseconds since the epoch, inclusive from, exclusive
/// until.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AuditFilter {
    /// Actor id (API key id, operator id, `cli`, `system`).
    pub actor_id: Option<String>,
    /// Object type.
    pub object_type: Option<String>,
    /// Object id.
    pub object_id: Option<String>,
    /// Action, exact, or a prefix when it ends with `*`.
    pub action: Option<String>,
    /// Outcome.
    pub outcome: Option<String>,
    /// From (inclusive).
    pub from_us: Option<i64>,
    /// Until (exclusive).
    pub until_us: Option<i64>,
    /// Only events with seq greater than this (cursor).
    pub after_seq: Option<i64>,
}

/// The stored head of the audit chain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditHead {
    /// Last sequence number (0 when empty).
    pub seq: i64,
    /// Its hash.
    pub hash: String,
}

/// A public audit key registered in the store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditKeyRecord {
    /// Key id.
    pub key_id: String,
    /// SubjectPublicKeyInfo, PEM.
    pub public_key_pem: String,
    /// Registration time, microseconds.
    pub created_at_us: i64,
}
