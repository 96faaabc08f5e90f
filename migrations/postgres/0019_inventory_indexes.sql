-- Inventory pages filter on status or profile and sort by issue time or expiry. An index that
-- only starts with the filtered column makes the database sort every matching certificate for
-- one page (seconds over a million); these serve the filter and the order together, so a page
-- reads about as many index entries as it returns.
DROP INDEX certificates_status;
CREATE INDEX certificates_status ON certificates (status, issued_at, id);
CREATE INDEX certificates_status_expiry ON certificates (status, not_after, id);
DROP INDEX certificates_profile;
CREATE INDEX certificates_profile ON certificates (profile, issued_at, id);
CREATE INDEX certificates_profile_expiry ON certificates (profile, not_after, id);
