-- Organizations, divisions and registration offices, and operators' visibility scopes.
-- Records keep their JSON body as the source of truth; the other columns are what lists filter,
-- sort and constrain on (see sigil-core's `records` module).
CREATE TABLE organizations (
    id         TEXT PRIMARY KEY,
    name       TEXT NOT NULL UNIQUE,
    created_at BIGINT NOT NULL,
    body       TEXT NOT NULL
);

CREATE TABLE divisions (
    id              TEXT PRIMARY KEY,
    organization_id TEXT NOT NULL,
    name            TEXT NOT NULL,
    created_at      BIGINT NOT NULL,
    body            TEXT NOT NULL,
    UNIQUE (organization_id, name)
);

CREATE TABLE offices (
    id              TEXT PRIMARY KEY,
    organization_id TEXT NOT NULL,
    division_id     TEXT NOT NULL,
    code            TEXT NOT NULL UNIQUE,
    name            TEXT NOT NULL,
    created_at      BIGINT NOT NULL,
    body            TEXT NOT NULL
);
CREATE INDEX offices_organization ON offices (organization_id, id);
CREATE INDEX offices_division ON offices (division_id, id);

-- Existing operators stay unrestricted (they saw everything before scopes existed).
ALTER TABLE operators ADD COLUMN unrestricted BIGINT NOT NULL DEFAULT 1;
ALTER TABLE operators ADD COLUMN divisions TEXT NOT NULL DEFAULT '[]';
ALTER TABLE operators ADD COLUMN offices TEXT NOT NULL DEFAULT '[]';

INSERT INTO roles (name, description, permissions, built_in, created_at, updated_at) VALUES
    ('organization-manager', 'Manages organizations, divisions and registration offices',
     '["organizations:*"]', 1, 0, 0);
