-- Key lineage: the API key that minted a key (NULL when an operator, the command line or the
-- server created it). Revoking a key can cascade to the keys it minted.
ALTER TABLE api_keys ADD COLUMN parent_id TEXT;
CREATE INDEX api_keys_parent ON api_keys (parent_id);
