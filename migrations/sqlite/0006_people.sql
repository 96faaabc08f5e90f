-- People with extended attributes, and the custom field definitions those are validated against.
CREATE TABLE custom_fields (
    id         TEXT PRIMARY KEY,
    name       TEXT NOT NULL UNIQUE,
    created_at BIGINT NOT NULL,
    body       TEXT NOT NULL
);

CREATE TABLE people (
    id          TEXT PRIMARY KEY,
    office_id   TEXT NOT NULL,
    external_id TEXT UNIQUE,
    family_name TEXT NOT NULL,
    email       TEXT,
    created_at  BIGINT NOT NULL,
    body        TEXT NOT NULL
);
CREATE INDEX people_office ON people (office_id, id);
CREATE INDEX people_family_name ON people (family_name);
CREATE INDEX people_email ON people (email);

INSERT INTO roles (name, description, permissions, built_in, created_at, updated_at) VALUES
    ('registration-officer', 'Registers people in the offices of its scope',
     '["organizations:read","people:*"]', 1, 0, 0);
