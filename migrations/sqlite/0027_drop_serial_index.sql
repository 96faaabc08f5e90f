-- An index every issuance wrote an entry to (about 2.5 WAL pages per group commit, as SQLite
-- rebalances an index's last leaves while it appends), for a lookup the unique (ca_id, serial)
-- index already serves: a serial without its CA is looked up as `ca_id IN (SELECT id FROM cas)
-- AND serial = ?`, one probe of that index per CA.
DROP INDEX certificates_serial;
