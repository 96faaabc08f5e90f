-- CA back ends (built-in keys sealed under the master key), profiles, and issued certificates.
CREATE TABLE cas (
    id              TEXT PRIMARY KEY,
    kind            TEXT NOT NULL,
    key_type        TEXT NOT NULL,
    cert_der        BLOB NOT NULL,
    key_sealed      BLOB NOT NULL,
    root_der        BLOB NOT NULL,
    root_key_sealed BLOB,
    created_at      BIGINT NOT NULL,
    crl_number      BIGINT NOT NULL DEFAULT 0,
    crl_der         BLOB,
    crl_this_update BIGINT,
    crl_next_update BIGINT,
    crl_stale       BIGINT NOT NULL DEFAULT 1
);

CREATE TABLE profiles (
    name       TEXT PRIMARY KEY,
    spec       TEXT NOT NULL,
    built_in   BIGINT NOT NULL DEFAULT 0,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);

CREATE TABLE certificates (
    id                TEXT PRIMARY KEY,
    serial            TEXT NOT NULL,
    ca_id             TEXT NOT NULL,
    profile           TEXT NOT NULL,
    status            TEXT NOT NULL,
    subject           TEXT NOT NULL,
    sans              TEXT NOT NULL,
    search            TEXT NOT NULL,
    key_type          TEXT NOT NULL,
    not_before        BIGINT NOT NULL,
    not_after         BIGINT NOT NULL,
    der               BLOB NOT NULL,
    sha256            TEXT NOT NULL,
    issued_at         BIGINT NOT NULL,
    issued_by         TEXT NOT NULL,
    revoked_at        BIGINT,
    revocation_reason TEXT,
    metadata          TEXT NOT NULL,
    renewed_from      TEXT,
    updated_at        BIGINT NOT NULL,
    UNIQUE (ca_id, serial)
);
CREATE INDEX certificates_serial ON certificates (serial);
CREATE INDEX certificates_status ON certificates (status, id);
CREATE INDEX certificates_profile ON certificates (profile, id);
CREATE INDEX certificates_ca ON certificates (ca_id, status);
CREATE INDEX certificates_not_after ON certificates (not_after, id);
CREATE INDEX certificates_issued_at ON certificates (issued_at, id);
CREATE INDEX certificates_renewed_from ON certificates (renewed_from);
