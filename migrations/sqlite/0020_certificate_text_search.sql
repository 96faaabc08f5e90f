-- Text search over subject and SANs (`q=` on the certificate list) through a trigram index:
-- `LIKE '%text%'` alone reads every certificate (half a second over a million). The FTS5 table
-- keeps the certificate id and its search text. The server fills it in batches (one FTS insert
-- per issuance would slow issuance by about a tenth); the mark says up to which certificate
-- (rowid, and its id to notice renumbered rows) it is filled. A search narrowed by the index
-- also takes every certificate after the mark and always applies the LIKE itself, so the answer
-- is the same as without the index. Certificates are never deleted and their search text never
-- changes, so the index only grows.
CREATE VIRTUAL TABLE certificates_search USING fts5(id UNINDEXED, search, tokenize = 'trigram');
CREATE TABLE certificates_search_mark (
    id         INTEGER PRIMARY KEY CHECK (id = 1),
    last_rowid BIGINT NOT NULL,
    last_id    TEXT
);
INSERT INTO certificates_search_mark (id, last_rowid, last_id) VALUES (1, 0, NULL);
