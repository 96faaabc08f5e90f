-- SQLite's text-search index moved to a file of its own (see the SQLite migration of the same
-- number). PostgreSQL keeps its pg_trgm index on certificates.search: nothing changes here.
SELECT 1;
