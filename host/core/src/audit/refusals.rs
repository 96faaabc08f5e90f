//! Refusals (denied requests, refused logins) aggregated per minute.
//!
//! A refusal is a security event, but one event per refused request lets any caller grow the
//! trail as fast as it can send requests. So the first refusal of a kind (action, who, object,
//! code) in a minute is written at once, and the rest of that minute are only counted: when the
//! minute is over one `<action>.repeated` event records how many more there were. The number of
//! kinds tracked per minute is bounded; past the bound, refusals of an action are counted
//! together under `who = "*"`.

use std::collections::HashMap;
use std::sync::Mutex;

use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use super::NewAuditEvent;

/// What one kind of refusal is counted under.
type Kind = (String, String, String, String);

#[derive(Debug)]
struct Entry {
    first: NewAuditEvent,
    more: u64,
}

#[derive(Debug, Default)]
struct Window {
    minute: i64,
    kinds: HashMap<Kind, Entry>,
    /// Events handed out that could not be written; they go out again with the next ones.
    unwritten: Vec<NewAuditEvent>,
}

/// Most events kept for a retry after a failed write.
const MAX_UNWRITTEN: usize = 10_000;

/// The aggregator, one per node.
#[derive(Debug)]
pub struct Refusals {
    window: Mutex<Window>,
    max_kinds: usize,
}

/// What to write now.
#[derive(Debug, Default)]
pub struct Admitted {
    /// The refusal itself, when it is the first of its kind this minute.
    pub event: Option<NewAuditEvent>,
    /// Summaries of the minute that just ended.
    pub summaries: Vec<NewAuditEvent>,
}

impl Admitted {
    /// Everything to write, in order.
    pub fn into_events(self) -> Vec<NewAuditEvent> {
        let mut v = self.summaries;
        v.extend(self.event);
        v
    }
}

impl Refusals {
    /// At most `max_kinds` kinds tracked per minute.
    pub fn new(max_kinds: usize) -> Self {
        Self { window: Mutex::new(Window::default()), max_kinds: max_kinds.max(1) }
    }

    /// Counts refusal `ev` by `who` (a principal id or a client address) of `what` (the
    /// object it is counted under: an endpoint; empty to count every object together, as for
    /// usernames an anonymous caller makes up) with `code`.
    pub fn admit(
        &self,
        now: OffsetDateTime,
        who: &str,
        what: &str,
        code: &str,
        ev: NewAuditEvent,
    ) -> Admitted {
        let minute = now.unix_timestamp().div_euclid(60);
        let Ok(mut w) = self.window.lock() else {
            // A poisoned lock: write the event rather than lose it.
            return Admitted { event: Some(ev), summaries: vec![] };
        };
        let mut summaries = std::mem::take(&mut w.unwritten);
        if w.minute != minute {
            summaries.extend(Self::roll(&mut w, minute));
        }
        let mut kind = (ev.action.clone(), who.to_owned(), what.to_owned(), code.to_owned());
        if !w.kinds.contains_key(&kind) && w.kinds.len() >= self.max_kinds {
            kind = (ev.action.clone(), "*".into(), "*".into(), "*".into());
        }
        let event = match w.kinds.get_mut(&kind) {
            Some(e) => {
                e.more += 1;
                None
            }
            None => {
                w.kinds.insert(kind, Entry { first: ev.clone(), more: 0 });
                Some(ev)
            }
        };
        Admitted { event, summaries }
    }

    /// Summaries of a minute that has ended by `now` (every counted refusal when `all`, as at
    /// shutdown).
    pub fn drain(&self, now: OffsetDateTime, all: bool) -> Vec<NewAuditEvent> {
        let minute = now.unix_timestamp().div_euclid(60);
        match self.window.lock() {
            Ok(mut w) => {
                let mut out = std::mem::take(&mut w.unwritten);
                if all || w.minute != minute {
                    out.extend(Self::roll(&mut w, minute));
                }
                out
            }
            Err(_) => vec![],
        }
    }

    /// Takes back `events` that could not be written (the store failed), so that the next
    /// write carries them: a count is not lost to one failed commit. At most
    /// [`MAX_UNWRITTEN`] are kept.
    pub fn put_back(&self, events: Vec<NewAuditEvent>) {
        if let Ok(mut w) = self.window.lock() {
            let room = MAX_UNWRITTEN.saturating_sub(w.unwritten.len());
            w.unwritten.extend(events.into_iter().take(room));
        }
    }

    fn roll(w: &mut Window, minute: i64) -> Vec<NewAuditEvent> {
        let ended = w.minute;
        w.minute = minute;
        let start = OffsetDateTime::from_unix_timestamp(ended.saturating_mul(60))
            .ok()
            .and_then(|t| t.format(&Rfc3339).ok());
        let mut out: Vec<_> = w
            .kinds
            .drain()
            .filter(|(_, e)| e.more > 0)
            .map(|((_, who, what, code), e)| {
                let mut s = e.first;
                s.action = format!("{}.repeated", s.action);
                s.details = serde_json::json!({
                    "count": e.more,
                    "minute": start,
                    "by": who,
                    "of": what,
                    "code": code,
                    "first": s.details,
                });
                s
            })
            .collect();
        out.sort_by(|a, b| (&a.action, &a.object_id).cmp(&(&b.action, &b.object_id)));
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::access::authz::Principal;
    use crate::audit::AuditAction;

    fn denied(object: &str) -> NewAuditEvent {
        NewAuditEvent::new(&Principal::system(), AuditAction::AccessDenied, "endpoint", object)
            .failed()
    }

    fn at(secs: i64) -> OffsetDateTime {
        OffsetDateTime::from_unix_timestamp(secs).unwrap()
    }

    #[test]
    fn the_first_refusal_of_a_minute_is_written_and_the_rest_counted() {
        let r = Refusals::new(100);
        assert!(
            r.admit(at(60), "k1", "GET /a", "permission_denied", denied("GET /a")).event.is_some()
        );
        for _ in 0..500 {
            let a = r.admit(at(70), "k1", "GET /a", "permission_denied", denied("GET /a"));
            assert!(a.event.is_none() && a.summaries.is_empty());
        }
        // Another caller or endpoint is another kind.
        assert!(
            r.admit(at(80), "k2", "GET /a", "permission_denied", denied("GET /a")).event.is_some()
        );
        assert!(
            r.admit(at(80), "k1", "GET /b", "permission_denied", denied("GET /b")).event.is_some()
        );
        assert!(r.drain(at(119), false).is_empty());
        // The next minute's first refusal brings the summary of the last one.
        let a = r.admit(at(125), "k1", "GET /a", "permission_denied", denied("GET /a"));
        assert!(a.event.is_some());
        assert_eq!(a.summaries.len(), 1);
        let s = &a.summaries[0];
        assert_eq!(s.action, "access.denied.repeated");
        assert_eq!(s.details["count"], 500);
        assert_eq!(s.details["by"], "k1");
        assert_eq!(s.details["minute"], "1970-01-01T00:01:00Z");
    }

    #[test]
    fn summaries_that_could_not_be_written_go_out_with_the_next_ones() {
        let r = Refusals::new(10);
        r.admit(at(0), "k", "GET /a", "c", denied("GET /a"));
        r.admit(at(1), "k", "GET /a", "c", denied("GET /a"));
        let lost = r.drain(at(61), false);
        assert_eq!(lost.len(), 1);
        r.put_back(lost);
        // The next refusal carries the summary that failed, then its own event.
        let a = r.admit(at(62), "k", "GET /b", "c", denied("GET /b"));
        assert_eq!(a.summaries.len(), 1);
        assert_eq!(a.summaries[0].details["count"], 1);
        assert!(a.event.is_some());
        assert!(r.drain(at(200), true).is_empty());
    }

    #[test]
    fn kinds_past_the_bound_are_counted_together_and_drained_at_the_end() {
        let r = Refusals::new(2);
        let mut written = 0;
        for i in 0..1000 {
            let a = r.admit(at(0), &format!("10.0.0.{i}"), "", "x", denied("POST /login"));
            written += usize::from(a.event.is_some());
        }
        assert_eq!(written, 3, "two kinds and one overflow kind");
        let s = r.drain(at(30), true);
        assert_eq!(s.len(), 1);
        assert_eq!(
            (s[0].details["by"].as_str(), s[0].details["count"].as_u64()),
            (Some("*"), Some(997))
        );
        assert!(r.drain(at(30), true).is_empty());
    }
}
