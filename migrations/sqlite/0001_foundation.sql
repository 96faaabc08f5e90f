-- Foundation: API keys, rate-limit windows, the audit chain and its signed checkpoints.
-- Times are microseconds since the Unix epoch (BIGINT) so that both backends index and compare
-- them the same way; JSON lists are TEXT.

CREATE TABLE api_keys (
    id                  TEXT PRIMARY KEY,
    name                TEXT NOT NULL UNIQUE,
    description         TEXT NOT NULL DEFAULT '',
    key_prefix          TEXT NOT NULL UNIQUE,
    secret_hash         TEXT NOT NULL,
    permissions         TEXT NOT NULL,
    expires_at          BIGINT,
    rate_limit_requests BIGINT,
    rate_limit_per      TEXT,
    ip_whitelist        TEXT NOT NULL DEFAULT '[]',
    operator_id         TEXT,
    created_at          BIGINT NOT NULL,
    updated_at          BIGINT NOT NULL,
    created_by          TEXT NOT NULL,
    revoked_at          BIGINT,
    revocation_reason   TEXT,
    previous_prefix     TEXT UNIQUE,
    previous_hash       TEXT,
    previous_expires_at BIGINT,
    rotated_at          BIGINT,
    client_cert_sha256  TEXT UNIQUE
);
CREATE INDEX api_keys_operator ON api_keys (operator_id);
CREATE INDEX api_keys_expires ON api_keys (expires_at);
CREATE INDEX api_keys_revoked ON api_keys (revoked_at);

CREATE TABLE rate_limit_windows (
    bucket       TEXT NOT NULL,
    window_start BIGINT NOT NULL,
    window_end   BIGINT NOT NULL,
    hits         BIGINT NOT NULL,
    PRIMARY KEY (bucket, window_start)
);
CREATE INDEX rate_limit_windows_end ON rate_limit_windows (window_end);

CREATE TABLE audit_events (
    seq         BIGINT PRIMARY KEY,
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
CREATE INDEX audit_events_object ON audit_events (object_type, object_id, seq);
CREATE INDEX audit_events_actor ON audit_events (actor_id, seq);
CREATE INDEX audit_events_action ON audit_events (action, seq);
CREATE INDEX audit_events_time ON audit_events (occurred_at, seq);

-- One row: the last sequence number and hash. Writers lock it to append, which keeps one chain
-- even when several nodes write at once.
CREATE TABLE audit_head (
    id   INTEGER PRIMARY KEY CHECK (id = 1),
    seq  BIGINT NOT NULL,
    hash TEXT NOT NULL
);
INSERT INTO audit_head (id, seq, hash)
VALUES (1, 0, '0000000000000000000000000000000000000000000000000000000000000000');

CREATE TABLE audit_checkpoints (
    seq       BIGINT NOT NULL,
    key_id    TEXT NOT NULL,
    hash      TEXT NOT NULL,
    signed_at BIGINT NOT NULL,
    signature TEXT NOT NULL,
    PRIMARY KEY (seq, key_id)
);

CREATE TABLE audit_keys (
    key_id         TEXT PRIMARY KEY,
    public_key_pem TEXT NOT NULL,
    created_at     BIGINT NOT NULL
);
