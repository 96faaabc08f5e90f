-- Two more indexes that every issuance wrote an entry to, for rows their lookups never read:
-- a CRL lists a CA's revoked and suspended certificates (`ca_id = ? AND status IN ('revoked',
-- 'suspended') ORDER BY revoked_at`), never its active ones, and office scoping compares
-- office_id (`= ?`, `IN (...)`), which never matches a certificate of no office. A certificate
-- enters the CRL index when it is revoked or suspended. A list filtered by CA alone uses the
-- unique (ca_id, serial) index.
DROP INDEX certificates_ca;
CREATE INDEX certificates_ca_revoked ON certificates (ca_id, revoked_at)
    WHERE status IN ('revoked', 'suspended');
DROP INDEX certificates_office;
CREATE INDEX certificates_office ON certificates (office_id, issued_at) WHERE office_id IS NOT NULL;
