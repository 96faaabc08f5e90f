-- Certificates belong to the registration office of their holder, when they have one.
ALTER TABLE certificates ADD COLUMN office_id TEXT;
CREATE INDEX certificates_office ON certificates (office_id, issued_at);
