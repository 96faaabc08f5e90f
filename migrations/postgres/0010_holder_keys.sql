-- API keys that act for a token holder (self-service).
ALTER TABLE api_keys ADD COLUMN holder_id TEXT;
