-- Devices (smart cards, USB tokens, virtual tokens) and their lifecycle history.
CREATE TABLE devices (
    id          TEXT PRIMARY KEY,
    office_id   TEXT NOT NULL,
    holder_id   TEXT,
    kind        TEXT NOT NULL,
    serial      TEXT NOT NULL UNIQUE,
    status      TEXT NOT NULL,
    batch       TEXT,
    created_at  BIGINT NOT NULL,
    body        TEXT NOT NULL
);
CREATE INDEX devices_office ON devices (office_id, id);
CREATE INDEX devices_holder ON devices (holder_id);
CREATE INDEX devices_status ON devices (status, id);
CREATE INDEX devices_kind ON devices (kind, id);
CREATE INDEX devices_batch ON devices (batch);

CREATE TABLE device_events (
    id         TEXT PRIMARY KEY,
    device_id  TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    body       TEXT NOT NULL
);
CREATE INDEX device_events_device ON device_events (device_id, id);

INSERT INTO roles (name, description, permissions, built_in, created_at, updated_at) VALUES
    ('service-desk', 'Suspends and reactivates devices and certificates',
     '["devices:read","device:suspend","device:reactivate","certificates:read","certificate:suspend","certificate:reactivate","people:read"]',
     1, 0, 0),
    ('device-officer', 'Registers, hands out and withdraws devices',
     '["devices:*","device:*","people:read","certificates:read","organizations:read"]', 1, 0, 0);
