-- A renewed certificate is superseded by its renewal and revoked (reason superseded) once
-- its grace has passed: `superseded_until` is when, set in the renewal's issuing unit.
ALTER TABLE certificates ADD COLUMN superseded_by TEXT;
ALTER TABLE certificates ADD COLUMN superseded_until BIGINT;
CREATE INDEX certificates_superseded_until ON certificates (superseded_until);
-- Certificates renewed before this migration name their renewal too (the first, for one renewed
-- more than once before renewals were claimed); their revocation is not scheduled after the
-- fact (it was not the rule when they were renewed).
UPDATE certificates SET superseded_by =
    (SELECT r.id FROM certificates r WHERE r.renewed_from = certificates.id
     ORDER BY r.issued_at, r.id LIMIT 1)
WHERE EXISTS (SELECT 1 FROM certificates r WHERE r.renewed_from = certificates.id);
