-- Remote signing (CSC): signers, their signing credentials, CSC provider configurations, and
-- the tokens and SADs the CSC API hands out (stored by the SHA-256 of their secret).
CREATE TABLE signers (
    id         TEXT PRIMARY KEY,
    username   TEXT NOT NULL UNIQUE,
    person_id  TEXT,
    enabled    BIGINT NOT NULL,
    created_at BIGINT NOT NULL,
    body       TEXT NOT NULL
);
CREATE INDEX signers_person ON signers (person_id);
CREATE INDEX signers_enabled ON signers (enabled, id);

CREATE TABLE signing_credentials (
    id             TEXT PRIMARY KEY,
    signer_id      TEXT NOT NULL,
    certificate_id TEXT NOT NULL,
    status         TEXT NOT NULL,
    created_at     BIGINT NOT NULL,
    body           TEXT NOT NULL
);
CREATE INDEX signing_credentials_signer ON signing_credentials (signer_id, id);
CREATE INDEX signing_credentials_status ON signing_credentials (status, id);
CREATE INDEX signing_credentials_certificate ON signing_credentials (certificate_id);

CREATE TABLE csc_providers (
    id         TEXT PRIMARY KEY,
    name       TEXT NOT NULL UNIQUE,
    created_at BIGINT NOT NULL,
    body       TEXT NOT NULL
);

CREATE TABLE csc_tokens (
    id         TEXT PRIMARY KEY,
    signer_id  TEXT NOT NULL,
    kind       TEXT NOT NULL,
    expires_at BIGINT NOT NULL,
    body       TEXT NOT NULL
);
CREATE INDEX csc_tokens_signer ON csc_tokens (signer_id);
CREATE INDEX csc_tokens_expiry ON csc_tokens (expires_at);

-- Signature activation data: the columns are the whole record, so that signHash spends a SAD
-- with one conditional UPDATE (remaining, and for SCAL 2 the hex digests still authorized).
CREATE TABLE csc_sads (
    id            TEXT PRIMARY KEY,
    credential_id TEXT NOT NULL,
    signer_id     TEXT NOT NULL,
    remaining     BIGINT NOT NULL,
    hashes        TEXT,
    expires_at    BIGINT NOT NULL,
    created_at    BIGINT NOT NULL
);
CREATE INDEX csc_sads_credential ON csc_sads (credential_id);
CREATE INDEX csc_sads_expiry ON csc_sads (expires_at);
