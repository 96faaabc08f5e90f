-- Text search over subject and SANs (`q=` on the certificate list) through a trigram index:
-- `LIKE '%text%'` alone reads every certificate (half a second over a million). pg_trgm is a
-- trusted extension shipped with PostgreSQL: the database owner may create it.
CREATE EXTENSION IF NOT EXISTS pg_trgm;
CREATE INDEX certificates_search_trgm ON certificates USING gin (search gin_trgm_ops);
