use time::OffsetDateTime;

use super::*;
use crate::access::authz::Principal;
use crate::audit::{AuditAction, NewAuditEvent};

/// Signatures are "ok:<key>" for the pinned keys "k1" and "k2".
struct Pinned;
impl SignatureCheck for Pinned {
    fn knows(&self, key_id: &str) -> bool {
        matches!(key_id, "k1" | "k2")
    }
    fn verify(&self, key_id: &str, _: &[u8], sig: &str) -> bool {
        sig == format!("ok:{key_id}")
    }
}

fn chain(n: i64) -> Vec<AuditEvent> {
    let actor = Principal::system();
    let mut prev = GENESIS_HASH.to_owned();
    (1..=n)
        .map(|seq| {
            let e = NewAuditEvent::new(&actor, AuditAction::PersonCreate, "thing", seq).seal(
                seq,
                OffsetDateTime::UNIX_EPOCH,
                &prev,
            );
            prev = e.hash.clone();
            e
        })
        .collect()
}

/// Checkpoints at the given sequence numbers of `events`, signed by k1, chained.
fn checkpoints(events: &[AuditEvent], at: &[i64], signed_at_us: i64) -> Vec<Checkpoint> {
    let mut out: Vec<Checkpoint> = vec![];
    for &seq in at {
        let e = &events[(seq - 1) as usize];
        let mut c = Checkpoint::next(out.last(), seq, &e.hash, signed_at_us, "k1");
        c.signature = "ok:k1".into();
        out.push(c);
    }
    out
}

fn run(events: &[AuditEvent], start: Start, head: i64) -> VerifyReport {
    let mut v = ChainVerifier::start(start, &Pinned);
    for e in events {
        v.push(e.clone());
    }
    v.finish(Some(head))
}

fn verify(events: Vec<AuditEvent>, head: i64) -> VerifyReport {
    run(&events, Start::chain(), head)
}

fn problem(events: Vec<AuditEvent>, head: i64) -> (i64, ProblemKind) {
    let p = verify(events, head).problem.expect("a problem");
    (p.seq, p.kind)
}

fn with(cps: Vec<Checkpoint>) -> Start {
    Start { checkpoints: cps, ..Start::chain() }
}

fn kind(r: VerifyReport) -> Option<ProblemKind> {
    r.problem.map(|p| p.kind)
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
    let forged = NewAuditEvent::new(&Principal::system(), AuditAction::PersonUpdate, "thing", "x")
        .seal(3, OffsetDateTime::UNIX_EPOCH, &c[1].hash);
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
fn chained_checkpoints_verify_and_each_must_match_the_chain() {
    let c = chain(4);
    assert!(run(&c, with(checkpoints(&c, &[2, 2, 4], 0)), 4).valid);
    let mut bad_sig = checkpoints(&c, &[2, 4], 0);
    bad_sig[1].signature = "forged".into();
    assert_eq!(kind(run(&c, with(bad_sig), 4)), Some(ProblemKind::CheckpointMismatch));
    // A checkpoint that records another hash at its seq.
    let mut wrong = checkpoints(&c, &[2, 4], 0);
    wrong[0].hash = c[0].hash.clone();
    assert_eq!(kind(run(&c, with(wrong), 4)), Some(ProblemKind::CheckpointMismatch));
}

#[test]
fn a_checkpoint_by_a_key_that_is_not_pinned_is_untrusted() {
    let c = chain(3);
    let mut cps = checkpoints(&c, &[3], 0);
    cps[0].key_id = "attacker".into();
    cps[0].signature = "ok:attacker".into();
    assert_eq!(kind(run(&c, with(cps), 3)), Some(ProblemKind::CheckpointUntrusted));
}

#[test]
fn a_deleted_or_resigned_checkpoint_breaks_the_checkpoint_chain() {
    let c = chain(4);
    let mut gap = checkpoints(&c, &[1, 2, 3, 4], 0);
    gap.remove(1);
    assert_eq!(kind(run(&c, with(gap), 4)), Some(ProblemKind::CheckpointMissing));
    let mut first_gone = checkpoints(&c, &[1, 2, 3], 0);
    first_gone.remove(0);
    assert_eq!(kind(run(&c, with(first_gone), 4)), Some(ProblemKind::CheckpointMissing));
    // A checkpoint re-made by a pinned key but not linked to its predecessor.
    let mut relinked = checkpoints(&c, &[1, 2, 3], 0);
    relinked[2].prev = GENESIS_HASH.into();
    assert_eq!(kind(run(&c, with(relinked), 4)), Some(ProblemKind::CheckpointMismatch));
}

#[test]
fn the_anchored_checkpoint_must_be_in_the_database_unchanged() {
    let c = chain(5);
    let cps = checkpoints(&c, &[2, 5], 0);
    let anchored = |a: &Checkpoint, cps: Vec<Checkpoint>| Start {
        checkpoints: cps,
        anchor: Some(a.clone()),
        ..Start::chain()
    };
    let r = run(&c, anchored(&cps[1], cps.clone()), 5);
    assert!(r.valid, "{r:?}");
    assert_eq!(r.anchored_checkpoint, Some(2));
    // Truncated tail with the newest checkpoint deleted and the head moved back.
    let r = run(&c[..3], anchored(&cps[1], cps[..1].to_vec()), 3);
    assert_eq!(kind(r), Some(ProblemKind::CheckpointMissing));
    // Truncated tail with the checkpoints kept.
    let r = run(&c[..3], anchored(&cps[1], cps.clone()), 3);
    assert_eq!(kind(r), Some(ProblemKind::Truncated));
    // The anchored checkpoint replaced by another one with the same counter.
    let mut other = cps.clone();
    other[1].signed_at_us = 7;
    let r = run(&c, anchored(&cps[1], other), 5);
    assert_eq!(kind(r), Some(ProblemKind::CheckpointMismatch));
}

#[test]
fn the_newest_checkpoint_must_be_younger_than_the_bound() {
    let c = chain(3);
    let fresh = |now_us: i64, cps: Vec<Checkpoint>| Start {
        checkpoints: cps,
        freshness: Some(Freshness { now_us, max_age_us: 1_000 }),
        ..Start::chain()
    };
    assert!(run(&c, fresh(1_500, checkpoints(&c, &[3], 1_000)), 3).valid);
    assert_eq!(
        kind(run(&c, fresh(2_500, checkpoints(&c, &[3], 1_000)), 3)),
        Some(ProblemKind::CheckpointStale)
    );
    // No checkpoint at all: event times are the database's word, so however recent they claim
    // to be, uncovered events fail under a bound.
    assert_eq!(kind(run(&c, fresh(2_500, vec![]), 3)), Some(ProblemKind::CheckpointMissing));
    assert_eq!(kind(run(&c, fresh(500, vec![]), 3)), Some(ProblemKind::CheckpointMissing));
    assert!(run(&[], fresh(500, vec![]), 0).valid, "an empty chain needs no checkpoint");
}

#[test]
fn verification_can_start_at_an_anchored_checkpoint() {
    let c = chain(6);
    let cps = checkpoints(&c, &[3, 3, 6], 0);
    let start = Start {
        first_seq: 4,
        prev_hash: c[2].hash.clone(),
        checkpoints: cps.clone(),
        anchor: Some(cps[0].clone()),
        freshness: None,
    };
    let r = run(&c[3..], start.clone(), 6);
    assert!(r.valid, "{r:?}");
    assert_eq!(r.checkpoints_checked, 3);
    // An event after the anchor edited and re-hashed, and the later checkpoint removed.
    let mut edited = c[3..].to_vec();
    edited[2].object_id = "x".into();
    edited[2].hash = edited[2].compute_hash();
    let r = run(&edited, Start { checkpoints: cps[..2].to_vec(), ..start.clone() }, 6);
    assert!(r.valid, "an unsigned tail verifies by itself: {r:?}");
    let r = run(&edited, start, 6);
    assert_eq!(kind(r), Some(ProblemKind::CheckpointMismatch));
}

#[test]
fn secrets_are_redacted_from_details() {
    let e = NewAuditEvent::new(&Principal::system(), AuditAction::PersonCreate, "b", "c")
        .details(serde_json::json!({"name": "x", "nested": {"PIN": "1234"}, "secret": "s"}));
    let s = e.details.to_string();
    assert!(!s.contains("1234") && !s.contains("\"s\""), "{s}");
    assert!(s.contains("\"name\":\"x\""));
    // At any depth, inside arrays too, whatever the case of the name; other fields kept.
    let e = NewAuditEvent::new(&Principal::system(), AuditAction::PersonCreate, "b", "c").details(
        serde_json::json!({"items": [{"Private_Key": "k1", "id": 1}, [{"passphrase": "p2"}]],
                           "Token": {"value": "t3"}, "tokens": "kept"}),
    );
    assert_eq!(
        e.details,
        serde_json::json!({"items": [{"Private_Key": "[redacted]", "id": 1}, [{"passphrase": "[redacted]"}]],
                           "Token": "[redacted]", "tokens": "kept"})
    );
}
