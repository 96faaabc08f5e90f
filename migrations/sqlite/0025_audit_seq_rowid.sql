-- The audit trail keyed by its sequence number. `seq BIGINT PRIMARY KEY` is not SQLite's rowid
-- (only `INTEGER PRIMARY KEY` is), so every event was stored twice over: in the table under a
-- rowid of its own and in the primary key's separate index. As the rowid, `seq` orders the table
-- itself: one B-tree less written per event (each group commit rewrote its last leaf or two),
-- and the chain walk (`seq > ?`) reads the table directly. Same columns, same values, same
-- other indexes; PostgreSQL is unchanged.
CREATE TABLE audit_events_by_seq (
    seq         INTEGER PRIMARY KEY,
    id          TEXT NOT NULL UNIQUE,
    occurred_at BIGINT NOT NULL,
    actor_kind  TEXT NOT NULL,
    actor_id    TEXT NOT NULL,
    actor_name  TEXT NOT NULL,
    api_key_id  TEXT,
    operator_id TEXT,
    action      TEXT NOT NULL,
    object_type TEXT NOT NULL,
    object_id   TEXT NOT NULL,
    outcome     TEXT NOT NULL,
    request_id  TEXT,
    client_ip   TEXT,
    details     TEXT NOT NULL,
    prev_hash   TEXT NOT NULL,
    hash        TEXT NOT NULL
);
INSERT INTO audit_events_by_seq (seq, id, occurred_at, actor_kind, actor_id, actor_name,
    api_key_id, operator_id, action, object_type, object_id, outcome, request_id, client_ip,
    details, prev_hash, hash)
SELECT seq, id, occurred_at, actor_kind, actor_id, actor_name, api_key_id, operator_id, action,
    object_type, object_id, outcome, request_id, client_ip, details, prev_hash, hash
FROM audit_events ORDER BY seq;
DROP TABLE audit_events;
ALTER TABLE audit_events_by_seq RENAME TO audit_events;
CREATE INDEX audit_events_object ON audit_events (object_type, object_id, seq);
CREATE INDEX audit_events_actor ON audit_events (actor_id, seq);
CREATE INDEX audit_events_action ON audit_events (action, seq);
CREATE INDEX audit_events_time ON audit_events (occurred_at, seq);
