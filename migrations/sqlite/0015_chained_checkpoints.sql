-- Chained audit checkpoints (issue 14): each one signs the head, a counter and the digest of the
-- checkpoint before it. The unchained checkpoints of 0001 are kept, renamed, as history; nothing
-- reads them any more (their message format cannot say what came before them).
ALTER TABLE audit_checkpoints RENAME TO audit_checkpoints_v1;

CREATE TABLE audit_checkpoints (
    counter   BIGINT PRIMARY KEY,
    seq       BIGINT NOT NULL,
    hash      TEXT NOT NULL,
    prev      TEXT NOT NULL,
    signed_at BIGINT NOT NULL,
    key_id    TEXT NOT NULL,
    signature TEXT NOT NULL
);
