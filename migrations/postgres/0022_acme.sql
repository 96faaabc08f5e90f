-- ACME (RFC 8555): accounts (one key per account and profile), orders, authorizations with
-- their challenges, external account binding keys, and the anti-replay nonces every node of
-- the database shares.
CREATE TABLE acme_accounts (
    id         TEXT PRIMARY KEY,
    profile    TEXT NOT NULL,
    thumbprint TEXT NOT NULL,
    status     TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    body       TEXT NOT NULL
);
CREATE UNIQUE INDEX acme_accounts_key ON acme_accounts (profile, thumbprint);
CREATE INDEX acme_accounts_status ON acme_accounts (status, id);

CREATE TABLE acme_orders (
    id         TEXT PRIMARY KEY,
    account_id TEXT NOT NULL,
    status     TEXT NOT NULL,
    expires_at BIGINT NOT NULL,
    body       TEXT NOT NULL
);
CREATE INDEX acme_orders_account ON acme_orders (account_id, id);

CREATE TABLE acme_authzs (
    id         TEXT PRIMARY KEY,
    order_id   TEXT NOT NULL,
    account_id TEXT NOT NULL,
    status     TEXT NOT NULL,
    expires_at BIGINT NOT NULL,
    body       TEXT NOT NULL
);
CREATE INDEX acme_authzs_order ON acme_authzs (order_id);
CREATE INDEX acme_authzs_account ON acme_authzs (account_id, id);

CREATE TABLE acme_eab_keys (
    id         TEXT PRIMARY KEY,
    name       TEXT NOT NULL,
    account_id TEXT,
    created_at BIGINT NOT NULL,
    body       TEXT NOT NULL
);
CREATE INDEX acme_eab_keys_account ON acme_eab_keys (account_id);

CREATE TABLE acme_nonces (
    nonce      TEXT PRIMARY KEY,
    expires_at BIGINT NOT NULL
);
CREATE INDEX acme_nonces_expiry ON acme_nonces (expires_at);
