-- SQLite's audit table is rebuilt keyed by its sequence number (see the SQLite migration of the
-- same number); PostgreSQL's primary key on seq already is the table's one key: nothing changes.
SELECT 1;
