-- Enrolment requests.
CREATE TABLE enrolment_requests (
    id           TEXT PRIMARY KEY,
    office_id    TEXT NOT NULL,
    person_id    TEXT NOT NULL,
    status       TEXT NOT NULL,
    requested_by TEXT NOT NULL,
    profile      TEXT,
    created_at   BIGINT NOT NULL,
    body         TEXT NOT NULL
);
CREATE INDEX requests_office ON enrolment_requests (office_id, id);
CREATE INDEX requests_status ON enrolment_requests (status, id);
CREATE INDEX requests_requested_by ON enrolment_requests (requested_by, id);
CREATE INDEX requests_profile ON enrolment_requests (profile, id);
CREATE INDEX requests_person ON enrolment_requests (person_id, id);
CREATE INDEX requests_created ON enrolment_requests (created_at);

INSERT INTO roles (name, description, permissions, built_in, created_at, updated_at) VALUES
    ('request-approver', 'Approves and rejects enrolment requests',
     '["requests:read","requests:approve","people:read","organizations:read"]', 1, 0, 0);
UPDATE roles SET permissions = '["organizations:read","people:*","requests:read","requests:write"]'
    WHERE name = 'registration-officer';

-- Mutually exclusive roles (separation of duties).
ALTER TABLE roles ADD COLUMN excludes TEXT NOT NULL DEFAULT '[]';
