//! Verification of the audit chain and its signed, chained checkpoints.
//!
//! A checkpoint signs the chain's head (sequence number and hash), a counter and the digest of
//! the checkpoint before it, so checkpoints form a chain of their own: deleting, editing or
//! re-signing one breaks a link. Only keys pinned by the verifier's configuration count (never a
//! key found in the database it checks), and the newest checkpoint a node signed is kept in an
//! append-only [`AnchorLog`] outside the database, so that a database writer who rewrites or
//! truncates the tail and drops the checkpoints after it is still caught. A [`Freshness`] bound
//! catches a rollback on a verifier that has no anchor log of its own.

use std::collections::VecDeque;

use sha2::{Digest, Sha256};

use super::{AuditEvent, GENESIS_HASH};
use crate::error::Result;

/// A signed statement that the chain reached `seq` with `hash`, linked to the checkpoint before.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Checkpoint {
    /// Position in the checkpoint chain, from 1, without gaps.
    pub counter: i64,
    /// Sequence number covered.
    pub seq: i64,
    /// The event hash at `seq`.
    pub hash: String,
    /// [`Checkpoint::digest`] of the previous checkpoint ([`GENESIS_HASH`] for the first).
    pub prev: String,
    /// Signing time, microseconds since the epoch.
    pub signed_at_us: i64,
    /// Identifier of the audit key (hex SHA-256 of its SubjectPublicKeyInfo, first 16 bytes).
    pub key_id: String,
    /// Base64 DER ECDSA signature over [`Checkpoint::message`].
    pub signature: String,
}

impl Checkpoint {
    /// The unsigned checkpoint that follows `prev` (`None`: the first one) at the head
    /// `seq`/`hash`.
    pub fn next(
        prev: Option<&Checkpoint>,
        seq: i64,
        hash: &str,
        signed_at_us: i64,
        key_id: &str,
    ) -> Self {
        Self {
            counter: prev.map_or(1, |p| p.counter + 1),
            seq,
            hash: hash.to_owned(),
            prev: prev.map_or_else(|| GENESIS_HASH.to_owned(), Checkpoint::digest),
            signed_at_us,
            key_id: key_id.to_owned(),
            signature: String::new(),
        }
    }

    /// The exact bytes that are signed.
    pub fn message(&self) -> Vec<u8> {
        format!(
            "sigil-audit-checkpoint-v2\n{}\n{}\n{}\n{}\n{}\n{}\n",
            self.counter, self.seq, self.hash, self.prev, self.signed_at_us, self.key_id
        )
        .into_bytes()
    }

    /// Hex SHA-256 of [`Checkpoint::message`]: what the next checkpoint links to.
    pub fn digest(&self) -> String {
        hex::encode(Sha256::digest(self.message()))
    }
}

/// Verifies signatures made with pinned audit keys; implemented outside core (it needs crypto).
pub trait SignatureCheck: Send + Sync {
    /// Whether `key_id` is one of the pinned keys.
    fn knows(&self, key_id: &str) -> bool;
    /// Whether `signature` (base64 DER) over `message` is valid for the pinned key `key_id`.
    fn verify(&self, key_id: &str, message: &[u8], signature: &str) -> bool;
}

/// Where a node keeps the checkpoints it signed, outside the database (append-only).
pub trait AnchorLog: Send + Sync {
    /// The newest checkpoint recorded, if any.
    fn latest(&self) -> Result<Option<Checkpoint>>;
    /// Records `c` durably; a checkpoint counts as anchored only once this returned.
    fn append(&self, c: &Checkpoint) -> Result<()>;
}

/// The newest checkpoint must be younger than `max_age_us` at `now_us`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Freshness {
    /// Now, microseconds since the epoch.
    pub now_us: i64,
    /// The bound, microseconds.
    pub max_age_us: i64,
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
    /// A checkpoint does not match the chain or the checkpoint before it, or its signature does
    /// not verify.
    CheckpointMismatch,
    /// Checkpoints are missing: a gap in the counters, the one anchored outside the database,
    /// or (under a freshness bound) any checkpoint at all.
    CheckpointMissing,
    /// The newest checkpoint is older than the freshness bound.
    CheckpointStale,
    /// A checkpoint is signed by a key the verifier's configuration does not pin.
    CheckpointUntrusted,
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
    /// The sequence number of the newest signed checkpoint; events after it are chained but not
    /// yet signed.
    pub last_checkpoint_seq: Option<i64>,
    /// The counter of the newest signed checkpoint.
    pub last_checkpoint_counter: Option<i64>,
    /// The counter of the checkpoint found in the anchor log, when one was checked.
    pub anchored_checkpoint: Option<i64>,
    /// The first broken link, when there is one.
    pub problem: Option<ChainProblem>,
}

/// Where verification starts and what it holds the chain to.
#[derive(Debug, Clone)]
pub struct Start {
    /// First sequence number expected (1 for the whole chain).
    pub first_seq: i64,
    /// The hash that event links to ([`GENESIS_HASH`] for the whole chain).
    pub prev_hash: String,
    /// Checkpoints ordered by counter. From the first (whole chain) or from the anchored one.
    pub checkpoints: Vec<Checkpoint>,
    /// The newest checkpoint of the anchor log, when there is one.
    pub anchor: Option<Checkpoint>,
    /// The freshness bound, when one applies.
    pub freshness: Option<Freshness>,
}

impl Start {
    /// The whole chain, with no checkpoints.
    pub fn chain() -> Self {
        Self::at(1, GENESIS_HASH)
    }

    /// A piece of the chain starting at `first_seq` after `prev_hash`, with no checkpoints.
    pub fn at(first_seq: i64, prev_hash: &str) -> Self {
        Self {
            first_seq,
            prev_hash: prev_hash.to_owned(),
            checkpoints: vec![],
            anchor: None,
            freshness: None,
        }
    }
}

/// Streams events in sequence order and finds the first broken link. It keeps one event of
/// look-ahead so that a swapped pair is reported as reordered rather than edited.
#[derive(Debug)]
pub struct ChainVerifier {
    expected_seq: i64,
    prev_hash: String,
    prev_prev_hash: Option<String>,
    pending: Option<AuditEvent>,
    checkpoints: VecDeque<Checkpoint>,
    newest: Option<Checkpoint>,
    anchored: Option<i64>,
    freshness: Option<Freshness>,
    checked: u64,
    checkpoints_checked: u64,
    problem: Option<ChainProblem>,
    checkpoint_problem: Option<ChainProblem>,
}

impl ChainVerifier {
    /// Starts at `first_seq` expecting `prev_hash`, with no checkpoints, anchor or bound (a piece
    /// of the chain, such as an export file).
    pub fn new(first_seq: i64, prev_hash: &str) -> Self {
        struct NoKeys;
        impl SignatureCheck for NoKeys {
            fn knows(&self, _: &str) -> bool {
                false
            }
            fn verify(&self, _: &str, _: &[u8], _: &str) -> bool {
                false
            }
        }
        Self::start(Start::at(first_seq, prev_hash), &NoKeys)
    }

    /// Starts as `start` says; checks the checkpoint chain, its signatures with `signatures`
    /// (pinned keys only) and the anchor at once; each checkpoint is matched against the events
    /// when the stream passes its sequence number.
    pub fn start(start: Start, signatures: &dyn SignatureCheck) -> Self {
        let Start { first_seq, prev_hash, checkpoints, anchor, freshness } = start;
        let mut v = Self {
            expected_seq: first_seq,
            prev_hash,
            prev_prev_hash: None,
            pending: None,
            checkpoints: VecDeque::new(),
            newest: checkpoints.last().cloned(),
            anchored: anchor.as_ref().map(|a| a.counter),
            freshness,
            checked: 0,
            checkpoints_checked: 0,
            problem: None,
            checkpoint_problem: None,
        };
        v.checkpoint_problem = v
            .check_checkpoints(&checkpoints, signatures)
            .or_else(|| anchor.and_then(|a| anchor_problem(&a, &checkpoints)));
        // Checkpoints at the starting point are checked against it now; later ones as the
        // stream passes them.
        for c in checkpoints {
            if c.seq >= first_seq {
                v.checkpoints.push_back(c);
            } else {
                v.checkpoints_checked += 1;
            }
        }
        v
    }

    fn check_checkpoints(
        &self,
        checkpoints: &[Checkpoint],
        signatures: &dyn SignatureCheck,
    ) -> Option<ChainProblem> {
        let problem =
            |c: &Checkpoint, kind, detail: String| Some(ChainProblem { seq: c.seq, kind, detail });
        let mut prev: Option<&Checkpoint> = None;
        for c in checkpoints {
            if !signatures.knows(&c.key_id) {
                return problem(
                    c,
                    ProblemKind::CheckpointUntrusted,
                    format!(
                        "checkpoint #{} is signed by audit key {}, which the configuration does \
                         not pin",
                        c.counter, c.key_id
                    ),
                );
            }
            if !signatures.verify(&c.key_id, &c.message(), &c.signature) {
                return problem(
                    c,
                    ProblemKind::CheckpointMismatch,
                    format!(
                        "the signature on checkpoint #{} does not verify with audit key {}",
                        c.counter, c.key_id
                    ),
                );
            }
            match prev {
                None if self.expected_seq == 1 && c.counter != 1 => {
                    return problem(
                        c,
                        ProblemKind::CheckpointMissing,
                        format!("checkpoints #1 to #{} are missing", c.counter - 1),
                    );
                }
                None if c.counter == 1 && c.prev != GENESIS_HASH => {
                    return problem(
                        c,
                        ProblemKind::CheckpointMismatch,
                        "checkpoint #1 does not start the checkpoint chain".into(),
                    );
                }
                None => {}
                Some(p) if c.counter != p.counter + 1 => {
                    return problem(
                        c,
                        ProblemKind::CheckpointMissing,
                        format!("checkpoints #{} to #{} are missing", p.counter + 1, c.counter - 1),
                    );
                }
                Some(p) if c.prev != p.digest() || c.seq < p.seq => {
                    return problem(
                        c,
                        ProblemKind::CheckpointMismatch,
                        format!(
                            "checkpoint #{} does not follow checkpoint #{}",
                            c.counter, p.counter
                        ),
                    );
                }
                Some(_) => {}
            }
            let start = self.expected_seq - 1;
            if c.seq < start || (c.seq == start && start > 0 && c.hash != self.prev_hash) {
                return problem(
                    c,
                    ProblemKind::CheckpointMismatch,
                    format!("checkpoint #{} does not match the chain at {}", c.counter, c.seq),
                );
            }
            prev = Some(c);
        }
        None
    }

    /// Whether a broken event link has been found (the caller may stop feeding events).
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
        let problem = self.problem.take().or_else(|| self.end_problem(head_seq, last_seq));
        VerifyReport {
            valid: problem.is_none(),
            events_checked: self.checked,
            checkpoints_checked: self.checkpoints_checked,
            last_seq,
            last_hash: self.prev_hash,
            last_checkpoint_seq: self.newest.as_ref().map(|c| c.seq),
            last_checkpoint_counter: self.newest.as_ref().map(|c| c.counter),
            anchored_checkpoint: self.anchored,
            problem,
        }
    }

    fn end_problem(&mut self, head_seq: Option<i64>, last_seq: i64) -> Option<ChainProblem> {
        if let Some(h) = head_seq.filter(|h| *h != last_seq) {
            return Some(ChainProblem {
                seq: last_seq + 1,
                kind: if h > last_seq { ProblemKind::Truncated } else { ProblemKind::Inserted },
                detail: format!("the chain ends at {last_seq} but the store recorded {h} events"),
            });
        }
        if let Some(c) = self.checkpoints.front() {
            return Some(ChainProblem {
                seq: c.seq,
                kind: ProblemKind::Truncated,
                detail: format!(
                    "signed checkpoint #{} covers {} but the chain ends at {last_seq}",
                    c.counter, c.seq
                ),
            });
        }
        if let Some(p) = self.checkpoint_problem.take() {
            return Some(p);
        }
        let f = self.freshness?;
        let oldest_allowed = f.now_us.saturating_sub(f.max_age_us);
        match &self.newest {
            Some(c) if c.signed_at_us < oldest_allowed => Some(ChainProblem {
                seq: c.seq,
                kind: ProblemKind::CheckpointStale,
                detail: format!(
                    "the newest checkpoint (#{}) is {} s old, more than the bound of {} s: newer \
                     checkpoints may have been removed",
                    c.counter,
                    (f.now_us - c.signed_at_us) / 1_000_000,
                    f.max_age_us / 1_000_000
                ),
            }),
            // Event times are the database's word: with a bound, events must be covered by at
            // least one signed checkpoint (a server signs one as it starts).
            None if self.checked > 0 => Some(ChainProblem {
                seq: 1,
                kind: ProblemKind::CheckpointMissing,
                detail: "no signed checkpoint covers any event".into(),
            }),
            _ => None,
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
                    format!(
                        "signed checkpoint #{} records a different hash at {}",
                        c.counter, e.seq
                    ),
                );
            }
            self.checkpoints_checked += 1;
            self.checkpoints.pop_front();
        }
        self.prev_prev_hash = Some(std::mem::replace(&mut self.prev_hash, e.hash.clone()));
        self.expected_seq += 1;
    }
}

/// The anchored checkpoint must be in the database, unchanged.
fn anchor_problem(a: &Checkpoint, checkpoints: &[Checkpoint]) -> Option<ChainProblem> {
    match checkpoints.iter().find(|c| c.counter == a.counter) {
        None => Some(ChainProblem {
            seq: a.seq,
            kind: ProblemKind::CheckpointMissing,
            detail: format!(
                "checkpoint #{} (at {}), recorded in the anchor log, is missing from the database",
                a.counter, a.seq
            ),
        }),
        Some(c) if c.digest() != a.digest() => Some(ChainProblem {
            seq: a.seq,
            kind: ProblemKind::CheckpointMismatch,
            detail: format!("checkpoint #{} differs from the one in the anchor log", a.counter),
        }),
        Some(_) => None,
    }
}

#[cfg(test)]
mod tests;
