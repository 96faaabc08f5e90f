-- Device serials and people's source ids are unique within an office, not across offices: a
-- value unique across offices would tell an operator who sees one office that another office
-- holds it (an existence oracle). SQLite cannot drop a column constraint, so both tables are
-- rebuilt with their indexes.
CREATE TABLE devices_new (
    id          TEXT PRIMARY KEY,
    office_id   TEXT NOT NULL,
    holder_id   TEXT,
    kind        TEXT NOT NULL,
    serial      TEXT NOT NULL,
    status      TEXT NOT NULL,
    batch       TEXT,
    created_at  BIGINT NOT NULL,
    body        TEXT NOT NULL
);
INSERT INTO devices_new (id, office_id, holder_id, kind, serial, status, batch, created_at, body)
    SELECT id, office_id, holder_id, kind, serial, status, batch, created_at, body FROM devices;
DROP TABLE devices;
ALTER TABLE devices_new RENAME TO devices;
CREATE INDEX devices_office ON devices (office_id, id);
CREATE INDEX devices_holder ON devices (holder_id);
CREATE INDEX devices_status ON devices (status, id);
CREATE INDEX devices_kind ON devices (kind, id);
CREATE INDEX devices_batch ON devices (batch);
CREATE UNIQUE INDEX devices_office_serial ON devices (office_id, serial);
CREATE INDEX devices_serial ON devices (serial);

CREATE TABLE people_new (
    id          TEXT PRIMARY KEY,
    office_id   TEXT NOT NULL,
    external_id TEXT,
    family_name TEXT NOT NULL,
    email       TEXT,
    created_at  BIGINT NOT NULL,
    body        TEXT NOT NULL
);
INSERT INTO people_new (id, office_id, external_id, family_name, email, created_at, body)
    SELECT id, office_id, external_id, family_name, email, created_at, body FROM people;
DROP TABLE people;
ALTER TABLE people_new RENAME TO people;
CREATE INDEX people_office ON people (office_id, id);
CREATE INDEX people_family_name ON people (family_name);
CREATE INDEX people_email ON people (email);
CREATE UNIQUE INDEX people_office_external_id ON people (office_id, external_id);
CREATE INDEX people_external_id ON people (external_id);
