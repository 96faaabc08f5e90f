-- Text search over subject and SANs (`q=` on the certificate list) through a trigram index:
-- `LIKE '%text%'` alone reads every certificate (half a second over a million). The FTS5 table
-- keeps the certificate id and its search text; the store narrows a search to the ids whose
-- trigrams match, then applies the LIKE itself, so the answer is the same as without the index.
-- Certificates are never deleted and their search text never changes, so only inserts are
-- mirrored; a stale entry could only offer a candidate that the LIKE then refuses.
CREATE VIRTUAL TABLE certificates_search USING fts5(id UNINDEXED, search, tokenize = 'trigram');
INSERT INTO certificates_search (id, search) SELECT id, search FROM certificates;
CREATE TRIGGER certificates_search_insert AFTER INSERT ON certificates BEGIN
    INSERT INTO certificates_search (id, search) VALUES (new.id, new.search);
END;
