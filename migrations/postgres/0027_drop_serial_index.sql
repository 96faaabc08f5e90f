-- Every issuance wrote an entry at a random place in this index (serials are random), a page of
-- its own in each group commit's WAL, for a lookup the unique (ca_id, serial) index already
-- serves: a serial without its CA is looked up as `ca_id IN (SELECT id FROM cas) AND
-- serial = ?`, one probe of that index per CA.
DROP INDEX certificates_serial;
