-- Sessions of the admin web UI (/ui/). Only the SHA-256 of the browser's session token is
-- kept, so a copy of the database opens no session; times are Unix microseconds.
CREATE TABLE ui_sessions (
    token_hash   TEXT PRIMARY KEY,
    id           TEXT NOT NULL UNIQUE,
    api_key_id   TEXT NOT NULL,
    csrf_token   TEXT NOT NULL,
    created_at   BIGINT NOT NULL,
    last_seen_at BIGINT NOT NULL,
    expires_at   BIGINT NOT NULL
);
CREATE INDEX ui_sessions_expires_at ON ui_sessions (expires_at);

-- When each API key was last accepted (the UI's "last use"; written at most once a minute per
-- key and node).
ALTER TABLE api_keys ADD COLUMN last_used_at BIGINT;
