-- The text-search index moves to a database file of its own (`sigil-search.db` beside
-- `sigil.db`, attached to every connection as `search`): in the main file, each indexing batch
-- held SQLite's one writer lock, and issuance waited behind it. The server creates the new
-- file's tables and fills them again from the certificates (see host/store/src/search.rs).
DROP TABLE IF EXISTS main.certificates_search;
DROP TABLE IF EXISTS main.certificates_search_mark;
