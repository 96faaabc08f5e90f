//! The audit trail: events, the hash chain that links them, and its verification.
//!
//! Each event's hash is SHA-256 over a length-prefixed canonical encoding of every stored field
//! plus the previous event's hash, so editing, deleting, inserting or reordering a stored event
//! breaks the chain at a position the verifier names. Checkpoints (sequence number, hash) are
//! signed with the audit key so that a rewrite of the whole tail is caught as well.

use std::fmt::Write as _;
use std::sync::Arc;

use sha2::{Digest, Sha256};
use time::OffsetDateTime;
use uuid::Uuid;

use crate::authz::Principal;

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
        action: &str,
        object_type: &str,
        object_id: impl ToString,
    ) -> Self {
        Self {
            actor: Arc::clone(actor),
            action: action.to_owned(),
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

/// A signed statement that the chain reached `seq` with `hash`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Checkpoint {
    /// Sequence number covered.
    pub seq: i64,
    /// The event hash at `seq`.
    pub hash: String,
    /// Signing time, microseconds since the epoch.
    pub signed_at_us: i64,
    /// Identifier of the audit key (hex SHA-256 of its SubjectPublicKeyInfo, first 16 bytes).
    pub key_id: String,
    /// Base64 DER ECDSA signature over [`Checkpoint::message`].
    pub signature: String,
}

impl Checkpoint {
    /// The exact bytes that are signed.
    pub fn message(seq: i64, hash: &str, signed_at_us: i64, key_id: &str) -> Vec<u8> {
        format!("sigil-audit-checkpoint-v1\n{seq}\n{hash}\n{signed_at_us}\n{key_id}\n").into_bytes()
    }
}

/// Verifies signatures made with an audit key; implemented outside core (it needs crypto).
pub trait SignatureCheck: Send + Sync {
    /// Whether `signature` (base64 DER) over `message` is valid for the key `key_id`.
    fn verify(&self, key_id: &str, message: &[u8], signature: &str) -> bool;
}

/// What went wrong at the first broken link.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ProblemKind {
    /// A stored event no longer matches its hash.
    Edited,
    /// Events are missing.
    Deleted,
    /// An event that was never written by Sigil sits in the chain.
    Inserted,
    /// Events are out of order.
    Reordered,
    /// A checkpoint does not match the chain, or its signature does not verify.
    CheckpointMismatch,
    /// The chain ends before what was recorded (head or checkpoint).
    Truncated,
}

/// The first broken link.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, utoipa::ToSchema)]
pub struct ChainProblem {
    /// Sequence number where the chain breaks.
    pub seq: i64,
    /// Classification.
    pub kind: ProblemKind,
    /// Explanation.
    pub detail: String,
}

/// Streams events in sequence order and finds the first broken link. It keeps one event of
/// look-ahead so that a swapped pair is reported as reordered rather than edited.
#[derive(Debug)]
pub struct ChainVerifier {
    expected_seq: i64,
    prev_hash: String,
    prev_prev_hash: Option<String>,
    pending: Option<AuditEvent>,
    checkpoints: std::collections::VecDeque<Checkpoint>,
    checked: u64,
    checkpoints_checked: u64,
    problem: Option<ChainProblem>,
}

/// Result of a verification run.
#[derive(Debug, Clone, serde::Serialize, utoipa::ToSchema)]
pub struct VerifyReport {
    /// True when no problem was found.
    pub valid: bool,
    /// Events checked.
    pub events_checked: u64,
    /// Signed checkpoints checked.
    pub checkpoints_checked: u64,
    /// Last sequence number seen.
    pub last_seq: i64,
    /// Its hash.
    pub last_hash: String,
    /// The last signed checkpoint; events after it are chained but not yet signed.
    pub last_checkpoint_seq: Option<i64>,
    /// The first broken link, when there is one.
    pub problem: Option<ChainProblem>,
}

impl ChainVerifier {
    /// Starts at `first_seq` expecting `prev_hash` (the genesis hash for a full chain).
    /// `checkpoints` must be sorted by seq; each is checked when the chain passes its seq.
    pub fn new(
        first_seq: i64,
        prev_hash: &str,
        checkpoints: Vec<Checkpoint>,
        signatures: &dyn SignatureCheck,
    ) -> Self {
        let mut v = Self {
            expected_seq: first_seq,
            prev_hash: prev_hash.to_owned(),
            prev_prev_hash: None,
            pending: None,
            checkpoints: checkpoints.into(),
            checked: 0,
            checkpoints_checked: 0,
            problem: None,
        };
        for c in &v.checkpoints {
            let msg = Checkpoint::message(c.seq, &c.hash, c.signed_at_us, &c.key_id);
            if !signatures.verify(&c.key_id, &msg, &c.signature) {
                v.problem = Some(ChainProblem {
                    seq: c.seq,
                    kind: ProblemKind::CheckpointMismatch,
                    detail: format!(
                        "the signature on the checkpoint at {} does not verify with audit key {}",
                        c.seq, c.key_id
                    ),
                });
                break;
            }
        }
        v
    }

    /// Whether a problem has been found (the caller may stop feeding events).
    pub fn failed(&self) -> bool {
        self.problem.is_some()
    }

    /// Feeds the next event in sequence order.
    pub fn push(&mut self, e: AuditEvent) {
        if let Some(cur) = self.pending.take() {
            self.check(&cur, Some(&e));
        }
        self.pending = Some(e);
    }

    /// Ends the stream; `head_seq` is what the store recorded as the last sequence number.
    pub fn finish(mut self, head_seq: Option<i64>) -> VerifyReport {
        if let Some(cur) = self.pending.take() {
            self.check(&cur, None);
        }
        let last_seq = self.expected_seq - 1;
        if self.problem.is_none() {
            if let Some(h) = head_seq.filter(|h| *h != last_seq) {
                self.problem = Some(ChainProblem {
                    seq: last_seq + 1,
                    kind: if h > last_seq { ProblemKind::Truncated } else { ProblemKind::Inserted },
                    detail: format!(
                        "the chain ends at {last_seq} but the store recorded {h} events"
                    ),
                });
            } else if let Some(c) = self.checkpoints.front() {
                self.problem = Some(ChainProblem {
                    seq: c.seq,
                    kind: ProblemKind::Truncated,
                    detail: format!(
                        "a signed checkpoint covers {} but the chain ends at {last_seq}",
                        c.seq
                    ),
                });
            }
        }
        VerifyReport {
            valid: self.problem.is_none(),
            events_checked: self.checked,
            checkpoints_checked: self.checkpoints_checked,
            last_seq,
            last_hash: self.prev_hash,
            last_checkpoint_seq: None,
            problem: self.problem,
        }
    }

    fn fail(&mut self, seq: i64, kind: ProblemKind, detail: String) {
        if self.problem.is_none() {
            self.problem = Some(ChainProblem { seq, kind, detail });
        }
    }

    fn check(&mut self, e: &AuditEvent, next: Option<&AuditEvent>) {
        if self.problem.is_some() {
            return;
        }
        self.checked += 1;
        if e.seq > self.expected_seq {
            let (a, b) = (self.expected_seq, e.seq - 1);
            return self.fail(a, ProblemKind::Deleted, format!("events {a} to {b} are missing"));
        }
        if e.seq < self.expected_seq {
            return self.fail(
                e.seq,
                ProblemKind::Inserted,
                format!("sequence number {} appears again after {}", e.seq, self.expected_seq - 1),
            );
        }
        if e.prev_hash != self.prev_hash {
            let swapped =
                next.is_some_and(|n| n.hash == e.prev_hash || n.prev_hash == self.prev_hash);
            if swapped {
                return self.fail(
                    e.seq,
                    ProblemKind::Reordered,
                    format!("event {} is out of order with its neighbour", e.seq),
                );
            }
            if self.prev_prev_hash.as_deref() == Some(e.prev_hash.as_str()) {
                return self.fail(
                    e.seq - 1,
                    ProblemKind::Inserted,
                    format!(
                        "event {} was not in the chain that event {} was written after",
                        e.seq - 1,
                        e.seq
                    ),
                );
            }
            return self.fail(
                e.seq - 1,
                ProblemKind::Edited,
                format!(
                    "event {} was altered and re-hashed: event {} does not link to it",
                    e.seq - 1,
                    e.seq
                ),
            );
        }
        if e.compute_hash() != e.hash {
            return self.fail(
                e.seq,
                ProblemKind::Edited,
                format!("event {} does not match its hash", e.seq),
            );
        }
        while let Some(c) = self.checkpoints.front() {
            if c.seq > e.seq {
                break;
            }
            if c.seq == e.seq && c.hash != e.hash {
                return self.fail(
                    e.seq,
                    ProblemKind::CheckpointMismatch,
                    format!("the signed checkpoint at {} records a different hash", e.seq),
                );
            }
            self.checkpoints_checked += 1;
            self.checkpoints.pop_front();
        }
        self.prev_prev_hash = Some(std::mem::replace(&mut self.prev_hash, e.hash.clone()));
        self.expected_seq += 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct AnySig;
    impl SignatureCheck for AnySig {
        fn verify(&self, _: &str, _: &[u8], sig: &str) -> bool {
            sig == "ok"
        }
    }

    fn chain(n: i64) -> Vec<AuditEvent> {
        let actor = Principal::system();
        let mut prev = GENESIS_HASH.to_owned();
        (1..=n)
            .map(|seq| {
                let e = NewAuditEvent::new(&actor, "thing.create", "thing", seq).seal(
                    seq,
                    OffsetDateTime::UNIX_EPOCH,
                    &prev,
                );
                prev = e.hash.clone();
                e
            })
            .collect()
    }

    fn verify(events: Vec<AuditEvent>, head: i64) -> VerifyReport {
        let mut v = ChainVerifier::new(1, GENESIS_HASH, vec![], &AnySig);
        for e in events {
            v.push(e);
        }
        v.finish(Some(head))
    }

    fn problem(events: Vec<AuditEvent>, head: i64) -> (i64, ProblemKind) {
        let p = verify(events, head).problem.expect("a problem");
        (p.seq, p.kind)
    }

    #[test]
    fn an_intact_chain_verifies() {
        let r = verify(chain(5), 5);
        assert!(r.valid, "{r:?}");
        assert_eq!(r.events_checked, 5);
    }

    #[test]
    fn an_edited_event_is_named() {
        let mut c = chain(5);
        c[2].object_id = "tampered".into();
        assert_eq!(problem(c, 5), (3, ProblemKind::Edited));
    }

    #[test]
    fn an_edited_and_rehashed_event_breaks_the_next_link() {
        let mut c = chain(5);
        c[2].object_id = "tampered".into();
        c[2].hash = c[2].compute_hash();
        assert_eq!(problem(c, 5), (3, ProblemKind::Edited));
    }

    #[test]
    fn a_deleted_event_is_named() {
        let mut c = chain(5);
        c.remove(1);
        assert_eq!(problem(c, 5), (2, ProblemKind::Deleted));
        let mut c = chain(5);
        c.pop();
        assert_eq!(problem(c, 5), (5, ProblemKind::Truncated));
    }

    #[test]
    fn an_inserted_event_is_named() {
        let c = chain(5);
        let forged = NewAuditEvent::new(&Principal::system(), "forged", "thing", "x").seal(
            3,
            OffsetDateTime::UNIX_EPOCH,
            &c[1].hash,
        );
        let mut tampered: Vec<_> = c[..2].to_vec();
        tampered.push(forged);
        for e in &c[2..] {
            let mut e = e.clone();
            e.seq += 1;
            tampered.push(e);
        }
        assert_eq!(problem(tampered, 6), (3, ProblemKind::Inserted));
    }

    #[test]
    fn swapped_events_are_reported_as_reordered() {
        let mut c = chain(5);
        c.swap(1, 2);
        c[1].seq = 2;
        c[2].seq = 3;
        assert_eq!(problem(c, 5), (2, ProblemKind::Reordered));
    }

    #[test]
    fn checkpoints_must_match_and_verify() {
        let c = chain(3);
        let cp = |hash: &str, sig: &str| Checkpoint {
            seq: 2,
            hash: hash.into(),
            signed_at_us: 0,
            key_id: "k".into(),
            signature: sig.into(),
        };
        let run = |cps| {
            let mut v = ChainVerifier::new(1, GENESIS_HASH, cps, &AnySig);
            c.iter().cloned().for_each(|e| v.push(e));
            v.finish(Some(3))
        };
        assert!(run(vec![cp(&c[1].hash, "ok")]).valid);
        assert_eq!(
            run(vec![cp(&c[1].hash, "bad")]).problem.unwrap().kind,
            ProblemKind::CheckpointMismatch
        );
        assert_eq!(
            run(vec![cp(&c[0].hash, "ok")]).problem.unwrap().kind,
            ProblemKind::CheckpointMismatch
        );
    }

    #[test]
    fn secrets_are_redacted_from_details() {
        let e = NewAuditEvent::new(&Principal::system(), "a", "b", "c")
            .details(serde_json::json!({"name": "x", "nested": {"PIN": "1234"}, "secret": "s"}));
        let s = e.details.to_string();
        assert!(!s.contains("1234") && !s.contains("\"s\""), "{s}");
        assert!(s.contains("\"name\":\"x\""));
    }
}
