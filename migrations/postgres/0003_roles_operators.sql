-- Roles group permissions; operators are people who act through Sigil and hold roles. An API key
-- may be bound to an operator, and then never exceeds the operator's roles.
CREATE TABLE roles (
    name        TEXT PRIMARY KEY,
    description TEXT NOT NULL DEFAULT '',
    permissions TEXT NOT NULL,
    built_in    BIGINT NOT NULL DEFAULT 0,
    created_at  BIGINT NOT NULL,
    updated_at  BIGINT NOT NULL
);
INSERT INTO roles (name, description, permissions, built_in, created_at, updated_at) VALUES
    ('administrator', 'Every permission', '["*"]', 1, 0, 0),
    ('auditor', 'Reads, exports and verifies the audit trail', '["audit:*"]', 1, 0, 0),
    ('security-officer', 'Manages API keys, roles, operators and exposure',
     '["api_keys:*","exposure:*","roles:*","operators:*"]', 1, 0, 0);

CREATE TABLE operators (
    id                 TEXT PRIMARY KEY,
    username           TEXT NOT NULL UNIQUE,
    display_name       TEXT NOT NULL,
    email              TEXT,
    roles              TEXT NOT NULL,
    enabled            BIGINT NOT NULL,
    client_cert_sha256 TEXT UNIQUE,
    created_at         BIGINT NOT NULL,
    updated_at         BIGINT NOT NULL
);
CREATE INDEX operators_enabled ON operators (enabled);
