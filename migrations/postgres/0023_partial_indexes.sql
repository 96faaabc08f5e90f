-- Most certificates are not renewals and are never superseded, yet every issuance added an
-- entry for its NULL to both indexes: two more index pages in each group commit. The lookups
-- (`renewed_from = ?`, `superseded_until <= ?`) never match NULL, so partial indexes serve them.
DROP INDEX certificates_renewed_from;
CREATE INDEX certificates_renewed_from ON certificates (renewed_from) WHERE renewed_from IS NOT NULL;
DROP INDEX certificates_superseded_until;
CREATE INDEX certificates_superseded_until ON certificates (superseded_until)
    WHERE superseded_until IS NOT NULL;
