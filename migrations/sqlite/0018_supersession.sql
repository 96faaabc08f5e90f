-- A renewed certificate is superseded by its renewal and revoked (reason superseded) once
-- its grace has passed: `superseded_until` is when, set in the renewal's issuing unit.
ALTER TABLE certificates ADD COLUMN superseded_by TEXT;
ALTER TABLE certificates ADD COLUMN superseded_until BIGINT;
CREATE INDEX certificates_superseded_until ON certificates (superseded_until);
