-- Settings changed through the API (the exposure configuration for now). Each node re-reads them
-- periodically, so a change made on one node reaches the others.
CREATE TABLE settings (
    name       TEXT PRIMARY KEY,
    value      TEXT NOT NULL,
    updated_at BIGINT NOT NULL,
    updated_by TEXT NOT NULL
);
